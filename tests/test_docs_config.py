"""The TOML examples of docs/*.md load as they are: an `evalkit.toml` fragment through the
settings, the jobs and the alert rules and sinks (as `evalkit serve` reads them), a sweep file
through the sweep loader. A renamed field or kind would otherwise leave a page whose example
a user copies refused with "Extra inputs are not permitted"."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from evalkit.alerts.configured import alerts_config
from evalkit.config import load_settings, parse_settings
from evalkit.errors import ConfigError
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


RULE_COMMON = {"name", "kind", "severity", "cooldown", "repeat_interval", "sinks", "enabled"}
"""The fields of every ``[[alerts.rules]]`` entry, above the table of kinds."""


def rules_table_fields(kind: str) -> str:
    """The fields column of ``kind``'s row in the rules table of docs/alerts.md."""
    text = (REPO_ROOT / "docs" / "alerts.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith(f"| `{kind}` |"))
    return row.split(" | ")[1]


def marked_required(column: str, field: str) -> bool:
    """Whether the table says ``field`` is required: its name, then a parenthesis saying so."""
    found = re.search(rf"`{re.escape(field)}` \(([^)]*)", column)
    return found is not None and "required" in found.group(1)


DOCUMENTED_RULES = [
    (where, rule)
    for where, text in CONFIGS
    if where.startswith("alerts.md")
    for rule in tomllib.loads(text).get("alerts", {}).get("rules", [])
]


@pytest.mark.parametrize(
    ("where", "rule"), DOCUMENTED_RULES, ids=[f"{w}:{r['name']}" for w, r in DOCUMENTED_RULES]
)
def test_a_rule_loads_without_every_field_the_table_does_not_call_required(
    where: str, rule: dict[str, object], tmp_path: Path
) -> None:
    """A user who copies the example and drops what the table does not call required gets a
    rule that loads; one who drops a field the table calls required is told so. The gate
    method's baseline_run was required but the table did not say."""
    column = rules_table_fields(str(rule["kind"]))
    for field in sorted(set(rule) - RULE_COMMON):
        left = {name: value for name, value in rule.items() if name != field}
        settings = parse_settings({"alerts": {"rules": [left]}}, tmp_path / "evalkit.toml")
        if marked_required(column, field):
            with pytest.raises(ConfigError, match=field):
                alerts_config(settings)
        else:
            assert alerts_config(settings).rules, f"{rule['name']} without {field}"
