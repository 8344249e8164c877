"""The TOML examples of docs/*.md load as they are: an `evalkit.toml` fragment through the
settings, the jobs and the alert rules and sinks (as `evalkit serve` reads them), a sweep file
through the sweep loader. A renamed field or kind would otherwise leave a page whose example
a user copies refused with "Extra inputs are not permitted"."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from evalkit.alerts.configured import alerts_config
from evalkit.config import load_settings
from evalkit.pipeline.sweep.file import load_sweep
from evalkit.scheduler.config import service_config

FENCE = re.compile(r"^```toml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def toml_examples() -> list[tuple[str, str]]:
    """Each ```toml block of the docs, as ``page:line`` and its text."""
    found = []
    for page in sorted((REPO_ROOT / "docs").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{page.name}:{line}", match.group(1)))
    return found


EXAMPLES = toml_examples()
# A package's own pyproject.toml (a plug-in's entry point, pytest's ini options).
OTHER_FILES = [(where, text) for where, text in EXAMPLES if "pyproject.toml" in text]
SWEEPS = [(where, text) for where, text in EXAMPLES if where.startswith("sweeps.md")]
CONFIGS = [(where, text) for where, text in EXAMPLES if (where, text) not in OTHER_FILES + SWEEPS]


def test_the_docs_hold_the_examples() -> None:
    assert len(CONFIGS) > 20
    assert len(SWEEPS) >= 3
    assert len(OTHER_FILES) <= 2


@pytest.mark.parametrize(("where", "text"), CONFIGS, ids=[where for where, _ in CONFIGS])
def test_an_evalkit_toml_example_loads(
    where: str, text: str, evalkit_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Path("evalkit.toml")
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("EVALKIT_CONFIG", str(path.resolve()))
    settings = load_settings()
    service_config(settings)
    alerts_config(settings)


@pytest.mark.parametrize(("where", "text"), SWEEPS, ids=[where for where, _ in SWEEPS])
def test_a_sweep_file_example_loads(where: str, text: str, tmp_path: Path) -> None:
    path = tmp_path / "sweep.toml"
    path.write_text(text, encoding="utf-8")
    assert load_sweep(path).name
