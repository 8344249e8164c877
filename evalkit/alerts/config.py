"""The ``[alerts]``, ``[[alerts.rules]]`` and ``[[alerts.sinks]]`` tables of ``evalkit.toml``.

The file is the one ``evalkit.config`` reads: ``$EVALKIT_CONFIG`` or ``./evalkit.toml``. A
missing file means no rules and no sinks. Every rule and sink has a ``kind``; the fields
beside the common ones (``name``, ``kind``, ``severity``...) are that kind's own settings,
validated by the kind's model, so a misspelt field is an error naming the table and field::

    [alerts]
    dashboard_url = "http://127.0.0.1:8501"

    [[alerts.sinks]]
    name = "oncall"
    kind = "webhook"
    url_env = "ONCALL_WEBHOOK_URL"
    secret_env = "ONCALL_WEBHOOK_SECRET"

    [[alerts.rules]]
    name = "precision-drop"
    kind = "precision_regression"
    severity = "critical"
    cooldown = "1h"
    goldset = "demo"
    baseline_run = "20261121T101500-1a2b3c"
    measures = ["precision@10"]

Secrets are never values here: ``secret_env`` and ``url_env`` name environment variables.
Durations are seconds or strings such as ``"90s"``, ``"15m"``, ``"2h"``, ``"7d"``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from evalkit.alerts.model import Severity
from evalkit.errors import ConfigError

__all__ = [
    "CONFIG_FILE_ENV",
    "DEFAULT_CONFIG_FILE",
    "NAME_PATTERN",
    "AlertsConfig",
    "AlertsSettings",
    "ConfiguredRule",
    "ConfiguredSink",
    "Duration",
    "RuleConfig",
    "SinkConfig",
    "config_file_path",
    "load_alerts_config",
    "parse_alerts_config",
    "parse_duration",
    "read_config_file",
    "validate_entry",
]

CONFIG_FILE_ENV = "EVALKIT_CONFIG"
DEFAULT_CONFIG_FILE = "evalkit.toml"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def parse_duration(value: object) -> float:
    """Seconds from a number of seconds or a string such as ``"90s"``, ``"15m"``, ``"2h"``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string such as '15m'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(
            f"{value!r} is not a duration: give seconds (90) or a string such as '90s', "
            "'15m', '2h', '7d'"
        )
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A length of time in seconds, accepting ``"15m"``-style strings in ``evalkit.toml``."""


def config_file_path() -> Path:
    """The configuration file evalkit reads: ``$EVALKIT_CONFIG`` or ``./evalkit.toml``."""
    return Path(os.environ.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE))


def read_config_file(path: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """The parsed TOML of ``path`` (default: ``config_file_path()``).

    A missing default file reads as empty; a missing file named explicitly (or by
    ``$EVALKIT_CONFIG``) and a file that is not valid TOML raise ConfigError.
    """
    explicit = path is not None or CONFIG_FILE_ENV in os.environ
    chosen = path or config_file_path()
    if not chosen.is_file():
        if explicit:
            raise ConfigError(f"{chosen}: no such configuration file")
        return chosen, {}
    try:
        with chosen.open("rb") as handle:
            return chosen, tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{chosen}: not valid TOML: {error}") from error
    except OSError as error:
        raise ConfigError(f"{chosen}: cannot read it: {error}") from error


def _problems(error: ValidationError) -> str:
    parts = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "(table)"
        parts.append(f"field '{field}': {problem['msg']}")
    return "; ".join(parts)


class _HasParams(Protocol):
    @property
    def params(self) -> type[BaseModel]: ...


M = TypeVar("M", bound=BaseModel)


def validate_entry(
    raw: object,
    common: type[M],
    kinds: Mapping[str, _HasParams],
    *,
    where: str,
    path: Path,
) -> tuple[M, BaseModel]:
    """Validate one ``[[table]]`` entry: its common fields, then its kind's own fields.

    ``where`` names the entry for people (``[[jobs]] #2 'nightly'``). Raises ConfigError
    naming the file, the entry and each bad field.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: {where} must be a table, got {type(raw).__name__}")
    name = raw.get("name")
    label = f"{where} '{name}'" if isinstance(name, str) else where
    shared = {key: value for key, value in raw.items() if key in common.model_fields}
    own = {key: value for key, value in raw.items() if key not in common.model_fields}
    try:
        entry = common.model_validate(shared)
    except ValidationError as error:
        raise ConfigError(f"{path}: {label}: {_problems(error)}") from error
    kind_name = str(getattr(entry, "kind", ""))
    kind = kinds.get(kind_name)
    if kind is None:
        raise ConfigError(
            f"{path}: {label} field 'kind': unknown kind {kind_name!r}; known kinds: "
            f"{', '.join(sorted(kinds))}"
        )
    try:
        params = kind.params.model_validate(own)
    except ValidationError as error:
        raise ConfigError(f"{path}: {label} (kind {kind_name}): {_problems(error)}") from error
    return entry, params


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleConfig(_Strict):
    """The fields every alert rule has; the rest of its table belongs to its kind."""

    name: str = Field(
        pattern=NAME_PATTERN, description="Unique name; the first part of every dedup key."
    )
    kind: str = Field(description="What the rule watches (see docs/alerts.md for the kinds).")
    severity: Severity = Field(
        default=Severity.critical,
        description="Severity of the alerts it raises (some kinds raise the finding's own).",
    )
    cooldown: Duration = Field(
        default=3600.0,
        description="After a firing notification, a new one for the same key waits this long "
        "(a condition that clears and returns within it is reported once it has passed).",
    )
    repeat_interval: Duration | None = Field(
        default=None,
        description="Remind receivers of a condition still firing this often (default: never).",
    )
    sinks: tuple[str, ...] | None = Field(
        default=None, description="Sinks this rule notifies (default: every sink)."
    )
    enabled: bool = Field(default=True, description="Evaluate this rule.")


class SinkConfig(_Strict):
    """The fields every sink has; the rest of its table belongs to its kind."""

    name: str = Field(pattern=NAME_PATTERN, description="Unique name, stored with deliveries.")
    kind: str = Field(description="webhook, command or log.")
    min_severity: Severity = Field(
        default=Severity.warning, description="Only alerts at least this severe are sent here."
    )


class AlertsSettings(_Strict):
    """The ``[alerts]`` table itself (its ``rules`` and ``sinks`` are validated apart)."""

    dashboard_url: str | None = Field(
        default=None,
        description="Base URL of the evalkit dashboard; alerts then link to the runs they "
        "are about.",
    )
    retry_initial: Duration = Field(
        default=10.0, description="Wait before the first retry of a failed delivery."
    )
    retry_max: Duration = Field(
        default=300.0, description="Longest wait between retries (the wait doubles up to it)."
    )
    give_up_after: Duration | None = Field(
        default=None,
        description="Abandon a delivery still failing this long after the alert was raised "
        "(default: never; it stays pending and is retried, also across restarts).",
    )
    deliver_interval: Duration = Field(
        default=5.0, description="How often `evalkit serve` looks for deliveries that are due."
    )
    evaluate_interval: Duration = Field(
        default=300.0,
        description="How often `evalkit serve` evaluates the rules between jobs (they are "
        "also evaluated after every job).",
    )
    rules: list[Any] = Field(default_factory=list, description="[[alerts.rules]] entries.")
    sinks: list[Any] = Field(default_factory=list, description="[[alerts.sinks]] entries.")


@dataclass(frozen=True, slots=True)
class ConfiguredRule:
    """A validated rule: its common settings and its kind's parameters."""

    config: RuleConfig
    params: BaseModel

    @property
    def name(self) -> str:
        """The rule's name."""
        return self.config.name


@dataclass(frozen=True, slots=True)
class ConfiguredSink:
    """A validated sink: its common settings and its kind's parameters."""

    config: SinkConfig
    params: BaseModel

    @property
    def name(self) -> str:
        """The sink's name."""
        return self.config.name


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """Everything about alerts in one configuration file."""

    path: Path
    settings: AlertsSettings
    rules: tuple[ConfiguredRule, ...]
    sinks: tuple[ConfiguredSink, ...]

    def rule(self, name: str) -> ConfiguredRule:
        """The rule called ``name`` (ConfigError naming the configured ones otherwise)."""
        for rule in self.rules:
            if rule.name == name:
                return rule
        known = ", ".join(rule.name for rule in self.rules) or "none"
        raise ConfigError(f"{self.path}: no alert rule named {name!r} (configured: {known})")


def _unique(names: Sequence[str], *, table: str, path: Path) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ConfigError(f"{path}: {table}: the name {name!r} is used twice")
        seen.add(name)


def parse_alerts_config(data: Mapping[str, Any], path: Path) -> AlertsConfig:
    """Validate the ``alerts`` table of a parsed configuration file."""
    from evalkit.alerts.rules import RULE_KINDS
    from evalkit.alerts.sinks import SINK_KINDS

    raw = data.get("alerts", {})
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: `alerts` must be a table ([alerts])")
    try:
        settings = AlertsSettings.model_validate(dict(raw))
    except ValidationError as error:
        raise ConfigError(f"{path}: [alerts]: {_problems(error)}") from error
    sinks = tuple(
        ConfiguredSink(
            *validate_entry(
                entry, SinkConfig, SINK_KINDS, where=f"[[alerts.sinks]] #{i + 1}", path=path
            )
        )
        for i, entry in enumerate(settings.sinks)
    )
    rules = tuple(
        ConfiguredRule(
            *validate_entry(
                entry, RuleConfig, RULE_KINDS, where=f"[[alerts.rules]] #{i + 1}", path=path
            )
        )
        for i, entry in enumerate(settings.rules)
    )
    _unique([sink.name for sink in sinks], table="[[alerts.sinks]]", path=path)
    _unique([rule.name for rule in rules], table="[[alerts.rules]]", path=path)
    sink_names = {sink.name for sink in sinks}
    for rule in rules:
        unknown = [name for name in rule.config.sinks or () if name not in sink_names]
        if unknown:
            raise ConfigError(
                f"{path}: [[alerts.rules]] '{rule.name}' field 'sinks': no sink named "
                f"{', '.join(map(repr, unknown))} (configured: {', '.join(sorted(sink_names))})"
            )
    if settings.retry_max < settings.retry_initial:
        raise ConfigError(f"{path}: [alerts] field 'retry_max': must be >= retry_initial")
    return AlertsConfig(path=path, settings=settings, rules=rules, sinks=sinks)


def load_alerts_config(path: Path | None = None) -> AlertsConfig:
    """Read and validate the alert rules and sinks of the configuration file."""
    chosen, data = read_config_file(path)
    return parse_alerts_config(data, chosen)
