"""Jobs resolved to their kinds, and everything ``evalkit serve`` reads from the settings.

``evalkit.config`` reads and shapes the ``[scheduler]`` table and the ``[[jobs]]`` entries
(see ``evalkit.config.scheduler``); here each job gets its kind (see
``evalkit.scheduler.jobs.JOB_KINDS``), whose model validates the fields beside the common
ones, after the ``[scheduler] plugins`` that may register more kinds are imported.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from evalkit.alerts.configured import AlertsConfig, alerts_config, find_named, resolve_kind
from evalkit.config import (
    JobConfig,
    SchedulerSettings,
    Settings,
    cron_trigger,
    format_duration,
)
from evalkit.errors import ConfigError
from evalkit.scheduler.jobs import JOB_KINDS, RetrieverParams

__all__ = ["JobDefinition", "ServiceConfig", "service_config"]


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

    def described(self) -> dict[str, Any]:
        """What a listing of the jobs shows of this one's settings: name, kind, schedule,
        whether it is enabled, and its description."""
        return {
            "name": self.name,
            "kind": self.kind,
            "schedule": self.schedule,
            "enabled": self.config.enabled,
            "description": self.config.description,
        }

    def trigger(self, timezone: str) -> Any:
        """The APScheduler trigger of this job, or None for a job run only on demand."""
        from apscheduler.triggers.interval import IntervalTrigger

        if self.config.cron is not None:
            return cron_trigger(self.config.cron, timezone)
        if self.config.interval is not None:
            return IntervalTrigger(seconds=self.config.interval, timezone=timezone)
        return None

    def missed_time(
        self, timezone: str, *, last: datetime, now: datetime, grace: float
    ) -> datetime | None:
        """The latest time this job was due after ``last`` (its newest scheduled run) and
        at most ``grace`` seconds before ``now`` (aware datetimes); None when there is none
        or the job runs only on demand. An interval job's times count from ``last``.
        """
        from apscheduler.triggers.interval import IntervalTrigger

        if self.config.interval is not None:
            trigger: Any = IntervalTrigger(
                seconds=self.config.interval, start_date=last, timezone=timezone
            )
        elif self.config.cron is not None:
            trigger = cron_trigger(self.config.cron, timezone)
        else:
            return None
        earliest = max(last + timedelta(microseconds=1), now - timedelta(seconds=grace))
        if earliest > now:
            return None
        # Look back over a span that doubles until it holds a due time, then walk forward
        # to the latest one: a few steps however long the grace time is.
        span = timedelta(minutes=1)
        while True:
            start = max(earliest, now - span)
            fire: datetime | None = trigger.get_next_fire_time(None, start)
            if fire is not None and fire <= now:
                break
            if start == earliest:
                return None
            span *= 2
        while (following := trigger.get_next_fire_time(fire, now)) is not None and following <= now:
            fire = following
        return fire

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
        return find_named(self.jobs, name, what="job", path=self.path)

    def pinned_runs(self) -> tuple[str, ...]:
        """Runs alert rules compare against (retention never prunes them)."""
        pinned = []
        for rule in self.alerts.rules:
            baseline = getattr(rule.params, "baseline_run", None)
            if isinstance(baseline, str) and baseline:
                pinned.append(baseline)
        return tuple(dict.fromkeys(pinned))


def _import_plugins(modules: list[str], path: Path) -> None:
    # As for a `module:factory` retriever: a module beside evalkit.toml is importable as is.
    if modules and path.is_file() and str(path.resolve().parent) not in sys.path:
        sys.path.insert(0, str(path.resolve().parent))
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as error:  # the user's module may fail in any way while it loads
            reason = str(error) if isinstance(error, ImportError) else repr(error)
            raise ConfigError(
                f"{path}: [scheduler] field 'plugins': cannot import {module!r}: {reason}"
            ) from error


def service_config(settings: Settings) -> ServiceConfig:
    """The scheduler settings, jobs and alerts of ``settings``, each resolved to its kind.

    Imports the ``[scheduler] plugins`` first (they may register kinds). Raises ConfigError
    naming the file, the entry and the field of a problem.
    """

    path = settings.config_file
    scheduler = settings.scheduler
    _import_plugins(scheduler.plugins, path)
    jobs = tuple(
        JobDefinition(
            entry,
            resolve_kind(entry, JOB_KINDS, path=path, at=("jobs", i)),
        )
        for i, entry in enumerate(settings.jobs)
    )
    seen: dict[str, int] = {}
    for i, job in enumerate(jobs):
        missing = (
            job.params.unnamed_retriever(settings)
            if isinstance(job.params, RetrieverParams)
            else None
        )
        if missing:
            raise ConfigError(
                f"{path}: [[jobs]] #{i + 1} '{job.name}' (kind {job.kind}): {missing}"
            )
        if job.name in seen:
            raise ConfigError(
                f"{path}: [[jobs]] #{seen[job.name] + 1} and #{i + 1} field 'name': "
                f"the name {job.name!r} is used twice"
            )
        seen[job.name] = i
    return ServiceConfig(path=path, scheduler=scheduler, jobs=jobs, alerts=alerts_config(settings))
