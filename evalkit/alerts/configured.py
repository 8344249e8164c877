"""Alert rules and sinks resolved to their kinds, from the ``alerts`` settings.

``evalkit.config`` reads and shapes the ``[alerts]``, ``[[alerts.rules]]`` and
``[[alerts.sinks]]`` tables (see ``evalkit.config.alerts``); here each rule and sink gets its
kind, whose model validates the entry's own fields, so a misspelt field is an error naming
the table and field. Names must be unique and a rule may only name configured sinks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from evalkit.alerts.rules import RULE_KINDS
from evalkit.alerts.sinks import DEFAULT_LOG_SINK, SINK_KINDS
from evalkit.config import (
    AlertsSettings,
    JobConfig,
    RuleConfig,
    Settings,
    SinkConfig,
    field_problems,
)
from evalkit.config.tomlfile import validate_toml
from evalkit.errors import ConfigError

__all__ = [
    "AlertsConfig",
    "ConfiguredRule",
    "ConfiguredSink",
    "alerts_config",
    "find_named",
    "resolve_kind",
]


class _HasParams(Protocol):
    @property
    def params(self) -> type[BaseModel]: ...


def resolve_kind(
    entry: JobConfig | RuleConfig | SinkConfig,
    kinds: Mapping[str, _HasParams],
    *,
    path: Path,
    at: tuple[str | int, ...],
) -> BaseModel:
    """Validate the fields of an entry that belong to its kind; return them as its model.

    ``at`` locates the entry in the file (``("jobs", 1)`` is ``[[jobs]] #2``). Raises
    ConfigError naming the file, the entry and each bad field with its line.
    """
    *table, index = at
    label = f"[[{'.'.join(map(str, table))}]] #{int(index) + 1} '{entry.name}'"
    kind = kinds.get(entry.kind)
    if kind is None:
        raise ConfigError(
            f"{path}: {label} field 'kind': unknown kind {entry.kind!r}; known kinds: "
            f"{', '.join(sorted(kinds))}"
        )
    try:
        return validate_toml(kind.params, entry.params)
    except ValidationError as error:
        raise ConfigError(
            f"{path}: {label} (kind {entry.kind}): "
            + field_problems(
                error, path=path, at=at, model=kind.params, beside=tuple(type(entry).model_fields)
            )
        ) from error


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_ConfigT = TypeVar("_ConfigT", bound=_Named)
_NamedT = TypeVar("_NamedT", bound=_Named)


def find_named(entries: Sequence[_NamedT], name: str, *, what: str, path: Path) -> _NamedT:
    """The entry called ``name`` (``what`` says what it is: ``job``, ``alert rule``);
    ConfigError naming the configured ones otherwise."""
    for entry in entries:
        if entry.name == name:
            return entry
    known = ", ".join(entry.name for entry in entries) or "none"
    raise ConfigError(f"{path}: no {what} named {name!r} (configured: {known})")


@dataclass(frozen=True, slots=True)
class _Configured(Generic[_ConfigT]):
    """A validated entry: its common settings and its kind's parameters."""

    config: _ConfigT
    params: BaseModel

    @property
    def name(self) -> str:
        """The entry's name."""
        return self.config.name


@dataclass(frozen=True, slots=True)
class ConfiguredRule(_Configured[RuleConfig]):
    """A validated rule: its common settings and its kind's parameters."""


@dataclass(frozen=True, slots=True)
class ConfiguredSink(_Configured[SinkConfig]):
    """A validated sink: its common settings and its kind's parameters."""


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """Everything about alerts in one configuration file."""

    path: Path
    settings: AlertsSettings
    rules: tuple[ConfiguredRule, ...]
    sinks: tuple[ConfiguredSink, ...]

    def rule(self, name: str) -> ConfiguredRule:
        """The rule called ``name`` (ConfigError naming the configured ones otherwise)."""
        return find_named(self.rules, name, what="alert rule", path=self.path)


def _unique(names: Sequence[str], *, table: str, path: Path) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ConfigError(f"{path}: {table}: the name {name!r} is used twice")
        seen.add(name)


def alerts_config(settings: Settings) -> AlertsConfig:
    """The alert rules and sinks of ``settings``, each resolved to its kind.

    Raises ConfigError naming the file, the entry and the field of a problem.
    """

    path = settings.config_file
    table = settings.alerts
    sinks = tuple(
        ConfiguredSink(
            entry,
            resolve_kind(
                entry,
                SINK_KINDS,
                path=path,
                at=("alerts", "sinks", i),
            ),
        )
        for i, entry in enumerate(table.sinks)
    )
    rules = tuple(
        ConfiguredRule(
            entry,
            resolve_kind(
                entry,
                RULE_KINDS,
                path=path,
                at=("alerts", "rules", i),
            ),
        )
        for i, entry in enumerate(table.rules)
    )
    _unique([sink.name for sink in sinks], table="[[alerts.sinks]]", path=path)
    _unique([rule.name for rule in rules], table="[[alerts.rules]]", path=path)
    # With no sink configured, alerts go to the log sink build_sinks makes; a rule may name it.
    sink_names = {sink.name for sink in sinks} or {DEFAULT_LOG_SINK}
    for rule in rules:
        unknown = [name for name in rule.config.sinks or () if name not in sink_names]
        if unknown:
            raise ConfigError(
                f"{path}: [[alerts.rules]] '{rule.name}' field 'sinks': no sink named "
                f"{', '.join(map(repr, unknown))} (configured: {', '.join(sorted(sink_names))})"
            )
    if table.retry_max < table.retry_initial:
        raise ConfigError(f"{path}: [alerts] field 'retry_max': must be >= retry_initial")
    return AlertsConfig(path=path, settings=table, rules=rules, sinks=sinks)
