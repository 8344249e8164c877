"""Alert rules and sinks resolved to their kinds, from the ``alerts`` settings.

Each rule and sink gets its kind, whose model validates the entry's own fields, so a
misspelt field is an error naming the table and field. Names must be unique and a rule may
only name configured sinks (``alerts_config``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from evalkit.alerts.rules import RULE_KINDS, JobFailureParams
from evalkit.alerts.sinks import DEFAULT_LOG_SINK, SINK_KINDS
from evalkit.config import (
    AlertsSettings,
    JobConfig,
    RuleConfig,
    Settings,
    SinkConfig,
    field_problems,
)
from evalkit.config.sources import line_at, toml_lines, toml_place
from evalkit.config.tomlfile import did_you_mean, validate_toml
from evalkit.errors import ConfigError

__all__ = [
    "AlertsConfig",
    "Configured",
    "ConfiguredRule",
    "ConfiguredSink",
    "alerts_config",
    "find_named",
    "resolve_entries",
    "resolve_kind",
    "unique_names",
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
            f"{path}: {label}: {toml_place(path, (*at, 'kind'))}field 'kind': unknown kind "
            f"{entry.kind!r}{did_you_mean(entry.kind, sorted(kinds))} (known kinds: "
            f"{', '.join(sorted(kinds))})"
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
_EntryT = TypeVar("_EntryT", bound=JobConfig | RuleConfig | SinkConfig)
_ResolvedT = TypeVar("_ResolvedT")


def find_named(entries: Sequence[_NamedT], name: str, *, what: str, path: Path) -> _NamedT:
    """The entry called ``name`` (``what`` says what it is: ``job``, ``alert rule``);
    ConfigError naming the configured ones otherwise."""
    for entry in entries:
        if entry.name == name:
            return entry
    known = ", ".join(entry.name for entry in entries) or "none"
    raise ConfigError(f"{path}: no {what} named {name!r} (configured: {known})")


@dataclass(frozen=True, slots=True)
class Configured(Generic[_ConfigT]):
    """A validated entry (a job, a rule, a sink): its common settings and its kind's
    parameters."""

    config: _ConfigT
    params: BaseModel

    @property
    def name(self) -> str:
        """The entry's name."""
        return self.config.name


@dataclass(frozen=True, slots=True)
class ConfiguredRule(Configured[RuleConfig]):
    """A validated rule: its common settings and its kind's parameters."""


@dataclass(frozen=True, slots=True)
class ConfiguredSink(Configured[SinkConfig]):
    """A validated sink: its common settings and its kind's parameters."""


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """Everything about alerts in one configuration file."""

    path: Path
    settings: AlertsSettings
    rules: tuple[ConfiguredRule, ...]
    sinks: tuple[ConfiguredSink, ...]
    jobs: frozenset[str] | None = None
    """The names of the file's ``[[jobs]]``; None when it has none (the jobs another
    configuration runs, unknown here)."""

    def rule(self, name: str) -> ConfiguredRule:
        """The rule called ``name`` (ConfigError naming the configured ones otherwise)."""
        return find_named(self.rules, name, what="alert rule", path=self.path)


def unique_names(names: Sequence[str], *, table: tuple[str, ...], path: Path) -> None:
    """Raise ConfigError when two entries of the array of tables ``table`` (``("jobs",)``)
    share a name, naming both entries and the lines of their names."""
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if name not in seen:
            seen[name] = index
            continue
        lines = toml_lines(path)
        found = [line_at(lines, (*table, at, "name")) for at in (seen[name], index)]
        where = f"lines {found[0]} and {found[1]}, " if None not in found else ""
        raise ConfigError(
            f"{path}: [[{'.'.join(table)}]] #{seen[name] + 1} and #{index + 1}: {where}"
            f"field 'name': the name {name!r} is used twice; give each entry its own"
        )


def _unknown_names(
    rules: Sequence[ConfiguredRule],
    field: str,
    named: Callable[[ConfiguredRule], Sequence[str] | None],
    known: Collection[str],
    *,
    what: str,
    path: Path,
) -> None:
    """Raise ConfigError when a rule's ``field`` (``named(rule)``) names a ``what`` not in
    ``known``: the file, the rule, the line, each unknown name with the likely one, and the
    configured ones."""
    lines: dict[tuple[str | int, ...], int] | None = None
    for index, rule in enumerate(rules):
        unknown = [name for name in named(rule) or () if name not in known]
        if not unknown:
            continue
        lines = toml_lines(path) if lines is None else lines
        line = lines.get(("alerts", "rules", index, field)) or lines.get(("alerts", "rules", index))
        where = f"line {line}, " if line is not None else ""
        problems = "; ".join(
            f"no {what} named {name!r}{did_you_mean(name, sorted(known))}" for name in unknown
        )
        raise ConfigError(
            f"{path}: [[alerts.rules]] #{index + 1} '{rule.name}' (kind {rule.config.kind}): "
            f"{where}field '{field}': {problems} (configured: {', '.join(sorted(known)) or 'none'})"
        )


def resolve_entries(
    configured: Callable[[_EntryT, BaseModel], _ResolvedT],
    entries: Sequence[_EntryT],
    kinds: Mapping[str, _HasParams],
    *,
    table: tuple[str, ...],
    path: Path,
) -> tuple[_ResolvedT, ...]:
    """Each entry of the array of tables ``table`` (``("alerts", "rules")`` is
    ``[[alerts.rules]]``) made ``configured`` with its kind's parameters (``resolve_kind``)."""
    return tuple(
        configured(entry, resolve_kind(entry, kinds, path=path, at=(*table, index)))
        for index, entry in enumerate(entries)
    )


def _watched_jobs(rule: ConfiguredRule) -> Sequence[str] | None:
    return rule.params.jobs if isinstance(rule.params, JobFailureParams) else None


def alerts_config(settings: Settings) -> AlertsConfig:
    """The alert rules and sinks of ``settings``, each resolved to its kind.

    Raises ConfigError naming the file, the entry and the field of a problem: among them a
    rule's sink that is not configured, and a ``job_failure`` rule's job that is not one of
    the file's ``[[jobs]]`` (when it has any: without, the jobs are another file's).
    """

    path = settings.config_file
    table = settings.alerts
    sinks = resolve_entries(
        ConfiguredSink, table.sinks, SINK_KINDS, table=("alerts", "sinks"), path=path
    )
    rules = resolve_entries(
        ConfiguredRule, table.rules, RULE_KINDS, table=("alerts", "rules"), path=path
    )
    unique_names([sink.name for sink in sinks], table=("alerts", "sinks"), path=path)
    unique_names([rule.name for rule in rules], table=("alerts", "rules"), path=path)
    # With no sink configured, alerts go to the log sink build_sinks makes; a rule may name it.
    sink_names = {sink.name for sink in sinks} or {DEFAULT_LOG_SINK}
    _unknown_names(
        rules, "sinks", lambda rule: rule.config.sinks, sink_names, what="sink", path=path
    )
    # A misspelt job would silence its rule for good. The jobs that record job runs are
    # those of the file `evalkit serve` and `evalkit jobs run` read, this one when it has
    # [[jobs]]; a file with none evaluates rules over jobs another file runs, unknown here.
    job_names = {job.name for job in settings.jobs}
    if job_names:
        _unknown_names(rules, "jobs", _watched_jobs, job_names, what="job", path=path)
    if table.retry_max < table.retry_initial:
        raise ConfigError(
            f"{path}: [alerts]: {toml_place(path, ('alerts', 'retry_max'))}field 'retry_max': "
            "must be >= retry_initial"
        )
    return AlertsConfig(
        path=path, settings=table, rules=rules, sinks=sinks, jobs=frozenset(job_names) or None
    )
