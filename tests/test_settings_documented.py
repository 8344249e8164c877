"""Every setting has a help text and is documented (sqlite-utils' habit).

The walk covers the whole settings tree (its sub-models and the models of list entries) and
the models of every registered job, rule and sink kind, whose fields sit in the same
tables. A field added without a description, or missing from its page, fails here.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from pydantic import BaseModel

from evalkit.alerts import RULE_KINDS, SINK_KINDS
from evalkit.config import (
    AlertsSettings,
    AuditSettings,
    ChromaSettings,
    EmbedderSettings,
    FreshnessSettings,
    JobConfig,
    JudgeSettings,
    OtlpSettings,
    PgvectorSettings,
    QdrantSettings,
    RetrieverSettings,
    RuleConfig,
    SchedulerSettings,
    Settings,
    SinkConfig,
)
from evalkit.scheduler import JOB_KINDS

DOCS = REPO_ROOT / "docs"
PAGES: dict[type[BaseModel], Path] = {
    Settings: DOCS / "configuration.md",
    JudgeSettings: DOCS / "answers.md",
    OtlpSettings: DOCS / "configuration.md",
    AuditSettings: DOCS / "audit.md",
    FreshnessSettings: DOCS / "configuration.md",
    SchedulerSettings: DOCS / "scheduler.md",
    JobConfig: DOCS / "scheduler.md",
    AlertsSettings: DOCS / "alerts.md",
    RuleConfig: DOCS / "alerts.md",
    SinkConfig: DOCS / "alerts.md",
    RetrieverSettings: DOCS / "retrievers.md",
    ChromaSettings: DOCS / "retrievers.md",
    PgvectorSettings: DOCS / "retrievers.md",
    QdrantSettings: DOCS / "retrievers.md",
    EmbedderSettings: DOCS / "retrievers.md",
}


def _models(annotation: object) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    elif typing.get_origin(annotation) is not None or isinstance(annotation, types.UnionType):
        for argument in typing.get_args(annotation):
            yield from _models(argument)


def tree(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, type[BaseModel], str]]:
    """``(dotted path, model, field name)`` for every field under ``model``."""
    for name, field in model.model_fields.items():
        yield f"{prefix}{name}", model, name
        for sub in _models(field.annotation):
            yield from tree(sub, f"{prefix}{name}.")


def settings_fields() -> list[tuple[str, type[BaseModel], str, Path]]:
    fields = [(path, model, name, PAGES[model]) for path, model, name in tree(Settings)]
    for registry, table, page in (
        (JOB_KINDS, "jobs", "scheduler.md"),
        (RULE_KINDS, "alerts.rules", "alerts.md"),
        (SINK_KINDS, "alerts.sinks", "alerts.md"),
    ):
        for kind_name, kind in registry.items():
            fields.extend(
                (f"{table}[kind={kind_name}].{path}", model, name, DOCS / page)
                for path, model, name in tree(kind.params)
            )
    return fields


FIELDS = settings_fields()


def documented(name: str, text: str) -> bool:
    """Named as `name` in prose or a table, or set as `name = ...` in a TOML example."""
    return f"`{name}`" in text or re.search(rf"^#?\s*{re.escape(name)}\s*=", text, re.M) is not None


def test_the_walk_reaches_every_table_and_kind() -> None:
    paths = {path for path, *_ in FIELDS}
    assert {"home", "judge.model", "scheduler.timezone", "jobs.cron", "alerts.retry_max"} <= paths
    assert {"alerts.rules.cooldown", "alerts.sinks.min_severity"} <= paths
    assert any(path.startswith("jobs[kind=goldset_replay].") for path in paths)
    assert any(path.startswith("alerts.sinks[kind=webhook].") for path in paths)


@pytest.mark.parametrize(("path", "model", "name", "page"), FIELDS, ids=[f[0] for f in FIELDS])
def test_every_setting_has_help_and_is_documented(
    path: str, model: type[BaseModel], name: str, page: Path
) -> None:
    assert model.model_fields[name].description, f"{path} ({model.__name__}) has no help text"
    assert documented(name, page.read_text(encoding="utf-8")), (
        f"{path} is not documented in docs/{page.name}"
    )
