"""evalkit.stats computes on runs already resolved: it never touches the file system and never
names a command-line flag (the CLI names its flags where it renders an error)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import evalkit.stats
from evalkit.cli import invoke
from evalkit.errors import ConfigError
from evalkit.pipeline.compared_runs import resolve_run, score_reference

STATS = Path(evalkit.stats.__file__).parent
FILE_MODULES = {"pathlib", "shutil", "glob", "tempfile", "io", "fileinput"}
# os's attributes that say nothing of files: a CPU count, a path's text.
PLAIN_OS = {"cpu_count", "fspath", "PathLike"}
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*")


def _docstrings(tree: ast.Module) -> set[int]:
    """The ids of the string statements of ``tree``: docstrings, of modules, functions and
    attributes, which may name a benchmark's flag; a message never stands alone."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    }


def _file_system_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = _docstrings(tree)
    uses = []
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            uses += [f"{where} import {a.name}" for a in node.names if a.name in FILE_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module in FILE_MODULES:
            uses.append(f"{where} from {node.module} import")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "os" and node.attr not in PLAIN_OS:
                uses.append(f"{where} os.{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "open":
                uses.append(f"{where} open()")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and (flag := FLAG.search(node.value))
        ):
            uses.append(f"{where} names the flag {flag.group()}")
    return sorted(uses)


def test_stats_never_touches_the_file_system_nor_names_a_flag() -> None:
    modules = sorted(STATS.glob("*.py"))
    assert len(modules) > 10
    uses = [use for module in modules for use in _file_system_uses(module)]
    assert uses == []


def test_the_check_sees_a_file_read_and_a_flag(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        '"""Docstring naming --qrels is fine."""\n'
        "import os\nfrom pathlib import Path\n\n"
        "def f(p):\n"
        "    os.path.exists(p)\n"
        "    open(p)\n"
        '    raise ValueError("give --qrels or --goldset")\n'
    )
    assert _file_system_uses(probe) == [
        "probe.py:3 from pathlib import",
        "probe.py:6 os.path",
        "probe.py:7 open()",
        "probe.py:8 names the flag --qrels",
    ]


def test_a_run_file_without_judgments_names_the_settings_and_the_cli_its_flags(
    tmp_path: Path, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "base.run"
    run.write_text("q1 Q0 d1 1 0.9 base\n")
    with pytest.raises(ConfigError) as refused:
        score_reference(None, resolve_run(None, str(run)), ["ndcg@10"])
    assert str(refused.value) == f"{run} is a run file: give qrels or goldset to score it"
    assert invoke(["compare", str(run), str(run)]) == 2
    said = capsys.readouterr().err
    assert f"{run} is a run file: give --qrels or --goldset to score it" in said
