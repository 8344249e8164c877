"""Jobs resolved to their kinds, and everything ``evalkit serve`` reads from the settings.

``evalkit.config`` reads and shapes the ``[scheduler]`` table and the ``[[jobs]]`` entries
(see ``evalkit.config.scheduler``); here each job gets its kind (see
``evalkit.scheduler.jobs.JOB_KINDS``), whose model validates the fields beside the common
ones, after the ``[scheduler] plugins`` that may register more kinds are imported.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from evalkit.alerts.configured import (
    AlertsConfig,
    Configured,
    ConfiguredRule,
    alerts_config,
    find_named,
    resolve_entries,
    unique_names,
)
from evalkit.config import (
    JobConfig,
    SchedulerSettings,
    Settings,
    cron_trigger,
    format_duration,
)
from evalkit.errors import ConfigError
from evalkit.scheduler.jobs import JOB_KINDS, RetrieverParams

__all__ = ["ConfigFileWatch", "JobDefinition", "ServiceConfig", "service_config"]

_log = logging.getLogger("evalkit.scheduler")


@dataclass(frozen=True, slots=True)
class JobDefinition(Configured[JobConfig]):
    """A validated job: its common settings and its kind's parameters."""

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
    jobs = resolve_entries(JobDefinition, settings.jobs, JOB_KINDS, table=("jobs",), path=path)
    unique_names([job.name for job in jobs], table=("jobs",), path=path)
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
    return ServiceConfig(path=path, scheduler=scheduler, jobs=jobs, alerts=alerts_config(settings))


@dataclass(frozen=True, slots=True)
class _FileState:
    """The configuration file's content digest (None: no file) and its ``[[alerts.rules]]``
    entries by name (None: the file is not readable TOML)."""

    digest: str | None
    rules: Mapping[str, object] | None


def _file_state(path: Path) -> _FileState:
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return _FileState(None, {})
    except OSError:
        return _FileState("unreadable", None)
    digest = hashlib.sha256(content).hexdigest()
    try:
        data = tomllib.loads(content.decode("utf-8-sig"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return _FileState(digest, None)
    alerts = data.get("alerts")
    entries = alerts.get("rules") if isinstance(alerts, dict) else None
    if not isinstance(entries, list):
        return _FileState(digest, {})
    return _FileState(
        digest,
        {
            str(entry["name"]): entry
            for entry in entries
            if isinstance(entry, dict) and "name" in entry
        },
    )


class ConfigFileWatch:
    """Whether the configuration file changed under ``evalkit serve``, and which alert
    rules it may still evaluate then: only those the file still holds unchanged, retiring none,
    so the service and ``evalkit alerts evaluate`` never contradict each other
    (docs/scheduler.md, docs/alerts.md).
    """

    def __init__(self, path: Path, rules: Sequence[ConfiguredRule]) -> None:
        self.path = path
        self._rules = tuple(rules)
        self._loaded = _file_state(path)
        self._told: str | None = self._loaded.digest

    def changed(self) -> bool:
        """Whether the file now differs from what the service read; the first look at
        each change logs that the service keeps what it started with (the jobs and their
        schedules too, so it is said with no alert rule configured)."""
        return self._look()[0].digest != self._loaded.digest

    def rules_to_evaluate(self) -> list[str] | None:
        """None while the file is as the service read it (evaluate every enabled rule and
        retire the unconfigured ones); otherwise the names of the enabled rules it may still
        evaluate (and then retire none)."""
        now, kept = self._look()
        return None if now.digest == self._loaded.digest else kept

    def _look(self) -> tuple[_FileState, list[str]]:
        now = _file_state(self.path)
        if now.digest == self._loaded.digest:
            if self._told != now.digest:
                _log.info("%s is again the configuration evalkit serve started with", self.path)
                self._told = now.digest
            return now, []
        loaded = self._loaded.rules or {}
        enabled = [rule.name for rule in self._rules if rule.config.enabled]
        kept = (
            enabled
            if now.rules is None
            else [name for name in enabled if now.rules.get(name) == loaded.get(name)]
        )
        if self._told != now.digest:
            self._told = now.digest
            left = [name for name in enabled if name not in kept]
            until = ""
            if self._rules:
                until = " Until then it closes no alert of a rule it does not know"
                if left:
                    until += (
                        f" and does not evaluate the rules changed or removed since: "
                        f"{', '.join(left)}"
                    )
            _log.warning(
                "%s changed since evalkit serve started; the running service keeps the "
                "configuration it started with: restart it to apply the change.%s",
                self.path,
                until,
            )
        return now, kept
