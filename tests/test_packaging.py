"""What pyproject.toml claims about Pythons is what the install check installs on.

``tests/install_check.py`` (``make install-check``) builds the wheel and installs and runs the
core on every Python of its ``PYTHONS``; requires-python and the classifiers must claim those
and no others, and the check must find interpreters as a machine with pyenv has them, saying
so when one is missing.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest
from install_check import PYTHONS, check_core, find_python
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_requires_python_admits_exactly_the_checked_pythons() -> None:
    admitted = SpecifierSet(PROJECT["requires-python"])
    candidates = [f"3.{minor}" for minor in range(8, 20)]
    assert tuple(v for v in candidates if admitted.contains(f"{v}.0")) == PYTHONS


def test_the_classifiers_name_exactly_the_checked_pythons() -> None:
    prefix = "Programming Language :: Python :: 3."
    named = tuple(
        classifier.removeprefix("Programming Language :: Python :: ")
        for classifier in PROJECT["classifiers"]
        if classifier.startswith(prefix)
    )
    assert named == PYTHONS


def _interpreter(path: Path, prints: str, exit_code: int = 0) -> Path:
    """A stand-in interpreter that answers the version question with ``prints``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho {prints}\nexit {exit_code}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_find_python_takes_pyenvs_newest_patch_then_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "pyenv"
    _interpreter(root / "versions/3.97.2/bin/python3.97", "3.97")
    newest = _interpreter(root / "versions/3.97.10/bin/python3.97", "3.97")
    on_path = tmp_path / "bin"
    _interpreter(on_path / "python3.96", "3.96")
    # A pyenv shim of a version that is not selected exits non-zero: not an interpreter.
    _interpreter(on_path / "python3.95", "3.95", exit_code=127)
    monkeypatch.setenv("PYENV_ROOT", str(root))
    monkeypatch.setenv("PATH", f"{on_path}{os.pathsep}/usr/bin:/bin")
    assert find_python("3.97") == newest
    assert find_python("3.96") == on_path / "python3.96"
    assert find_python("3.95") is None


def test_a_missing_python_is_a_skip_line_not_a_silent_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert check_core(tmp_path / "unused.whl", tmp_path, "3.94") is False
    said = capsys.readouterr().out
    assert "install-check: SKIP core on Python 3.94: no interpreter found" in said
