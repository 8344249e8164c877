"""The ``[scheduler]`` table and the ``[[jobs]]`` entries of ``evalkit.toml``.

::

    [scheduler]
    health_host = "127.0.0.1"
    health_port = 8765
    timezone = "UTC"

    [[jobs]]
    name = "nightly-demo"
    kind = "goldset_replay"
    cron = "0 2 * * *"        # or: interval = "15m"; neither: run only on demand
    goldset = "demo"
    collection = "demo"
    k = 100

Each job has a ``kind`` (see ``evalkit.scheduler.jobs.JOB_KINDS``); the fields beside the
common ones are that kind's own settings. The file is the one ``evalkit.config`` reads
(``$EVALKIT_CONFIG`` or ``./evalkit.toml``); the ``[alerts]`` tables are read by
``evalkit.alerts.config`` from the same file.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evalkit.alerts.config import (
    NAME_PATTERN,
    AlertsConfig,
    Duration,
    parse_alerts_config,
    read_config_file,
    validate_entry,
)
from evalkit.errors import ConfigError

__all__ = [
    "JobConfig",
    "JobDefinition",
    "SchedulerSettings",
    "ServiceConfig",
    "format_duration",
    "load_service_config",
    "parse_service_config",
]


def format_duration(seconds: float) -> str:
    """``90`` -> ``"90s"``, ``900`` -> ``"15m"``, ``7200`` -> ``"2h"``."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SchedulerSettings(_Strict):
    """How ``evalkit serve`` runs: its health endpoint, time zone, and patience."""

    health_host: str = Field(
        default="127.0.0.1",
        description="Address of the /healthz and /metrics endpoint (keep it on loopback; "
        "triggering jobs over HTTP is refused on any other address).",
    )
    health_port: int = Field(
        default=8765, ge=0, le=65535, description="Port of the endpoint (0: any free port)."
    )
    timezone: str = Field(default="UTC", description="Time zone of cron expressions.")
    misfire_grace_time: Duration = Field(
        default=300.0,
        description="A run that could not start on time still starts if it is late by at "
        "most this much (otherwise it is skipped).",
    )
    coalesce: bool = Field(
        default=True,
        description="Runs missed while the service was down are run once, not "
        "once per missed time.",
    )
    max_workers: int = Field(default=4, ge=1, description="Jobs that may run at the same time.")
    lock_wait: Duration = Field(
        default=600.0,
        description="How long a job waits for the store while another process writes it.",
    )
    shutdown_grace: Duration = Field(
        default=30.0,
        description="On SIGTERM or SIGINT, running jobs get this long to finish before they "
        "are interrupted (their runs are then marked failed).",
    )
    plugins: list[str] = Field(
        default_factory=list,
        description="Python modules imported at start; they may register job, rule and sink kinds.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {zone!r} (use an IANA name)") from error
        return zone


class JobConfig(_Strict):
    """The fields every job has; the rest of its table belongs to its kind."""

    name: str = Field(pattern=NAME_PATTERN, description="Unique name (`evalkit jobs run NAME`).")
    kind: str = Field(description="What the job does (see docs/scheduler.md for the kinds).")
    cron: str | None = Field(
        default=None, description="Crontab schedule, e.g. '0 2 * * *' (02:00 every day)."
    )
    interval: Duration | None = Field(default=None, description="Run every this long, e.g. '15m'.")
    enabled: bool = Field(default=True, description="Schedule this job.")
    misfire_grace_time: Duration | None = Field(
        default=None, description="Overrides [scheduler] misfire_grace_time for this job."
    )
    description: str = Field(default="", description="Free text shown by `evalkit jobs list`.")

    @model_validator(mode="after")
    def _one_trigger(self) -> JobConfig:
        if self.cron is not None and self.interval is not None:
            raise ValueError("give cron or interval, not both")
        if self.interval is not None and self.interval <= 0:
            raise ValueError("interval must be positive")
        if self.cron is not None:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(self.cron, timezone="UTC")
            except ValueError as error:
                raise ValueError(f"cron {self.cron!r} does not parse: {error}") from error
        return self


@dataclass(frozen=True, slots=True)
class JobDefinition:
    """A validated job: its common settings and its kind's parameters."""

    config: JobConfig
    params: BaseModel

    @property
    def name(self) -> str:
        """The job's name."""
        return self.config.name

    @property
    def kind(self) -> str:
        """The job's kind."""
        return self.config.kind

    @property
    def schedule(self) -> str:
        """The schedule for people: ``cron 0 2 * * *``, ``every 15m`` or ``on demand``."""
        if self.config.cron is not None:
            return f"cron {self.config.cron}"
        if self.config.interval is not None:
            return f"every {format_duration(self.config.interval)}"
        return "on demand"

    def trigger(self, timezone: str) -> Any:
        """The APScheduler trigger of this job, or None for a job run only on demand."""
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        if self.config.cron is not None:
            return CronTrigger.from_crontab(self.config.cron, timezone=timezone)
        if self.config.interval is not None:
            return IntervalTrigger(seconds=self.config.interval, timezone=timezone)
        return None

    def next_cron_time(self, timezone: str, now: datetime) -> datetime | None:
        """The next time a cron job fires after ``now`` (aware); None for other jobs."""
        if self.config.cron is None:
            return None
        fire: datetime | None = self.trigger(timezone).get_next_fire_time(None, now)
        return fire


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """Everything ``evalkit serve`` reads from the configuration file."""

    path: Path
    scheduler: SchedulerSettings
    jobs: tuple[JobDefinition, ...]
    alerts: AlertsConfig

    def job(self, name: str) -> JobDefinition:
        """The job called ``name`` (ConfigError naming the configured ones otherwise)."""
        for job in self.jobs:
            if job.name == name:
                return job
        known = ", ".join(job.name for job in self.jobs) or "none"
        raise ConfigError(f"{self.path}: no job named {name!r} (configured: {known})")

    def pinned_runs(self) -> tuple[str, ...]:
        """Runs alert rules compare against (retention never prunes them)."""
        pinned = []
        for rule in self.alerts.rules:
            baseline = getattr(rule.params, "baseline_run", None)
            if isinstance(baseline, str) and baseline:
                pinned.append(baseline)
        return tuple(dict.fromkeys(pinned))


def _import_plugins(modules: list[str], path: Path) -> None:
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ConfigError(
                f"{path}: [scheduler] field 'plugins': cannot import {module!r}: {error}"
            ) from error


def parse_service_config(data: Mapping[str, Any], path: Path) -> ServiceConfig:
    """Validate the ``[scheduler]``, ``[[jobs]]`` and ``[alerts]`` tables of a parsed file."""
    from evalkit.scheduler.jobs import JOB_KINDS

    raw = data.get("scheduler", {})
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: `scheduler` must be a table ([scheduler])")
    try:
        scheduler = SchedulerSettings.model_validate(dict(raw))
    except ValidationError as error:
        problems = "; ".join(
            f"field '{'.'.join(str(p) for p in problem['loc'])}': {problem['msg']}"
            for problem in error.errors()
        )
        raise ConfigError(f"{path}: [scheduler]: {problems}") from error
    _import_plugins(scheduler.plugins, path)
    entries = data.get("jobs", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: `jobs` must be an array of tables ([[jobs]])")
    jobs = tuple(
        JobDefinition(
            *validate_entry(entry, JobConfig, JOB_KINDS, where=f"[[jobs]] #{i + 1}", path=path)
        )
        for i, entry in enumerate(entries)
    )
    seen: set[str] = set()
    for job in jobs:
        if job.name in seen:
            raise ConfigError(f"{path}: [[jobs]]: the name {job.name!r} is used twice")
        seen.add(job.name)
    return ServiceConfig(
        path=path, scheduler=scheduler, jobs=jobs, alerts=parse_alerts_config(data, path)
    )


def load_service_config(path: Path | None = None) -> ServiceConfig:
    """Read and validate the configuration file (``$EVALKIT_CONFIG`` or ``./evalkit.toml``)."""
    chosen, data = read_config_file(path)
    return parse_service_config(data, chosen)
