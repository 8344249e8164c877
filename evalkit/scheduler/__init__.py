"""The scheduler service: ``evalkit serve`` runs evalkit's jobs unattended.

- ``config``: the ``[[jobs]]`` of the settings resolved to their kinds (``ServiceConfig``);
- ``jobs``: the registry of job kinds, ``JOB_KINDS``, by name;
- ``job_kinds``: the job kinds (goldset replay, traffic ingest, traffic, drift check,
  audit, freshness, answers, sweep, retention, command), grouped by what they run;
- ``runner``: runs one job, never two copies at once, and records every run;
- ``lock``: the lock and address of ``evalkit serve`` (one service per store); how every
  process shares the DuckDB file is ``evalkit.store.access``;
- ``health``: ``/healthz``, ``/metrics`` (Prometheus) and ``/jobs``;
- ``service``: APScheduler, the outbox deliverer, signals and recovery after a crash.

``docs/scheduler.md`` documents the jobs, the settings and the one-writer design.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalkit.lazy import lazy_attributes

if TYPE_CHECKING:
    from evalkit.scheduler.config import JobDefinition, ServiceConfig, service_config
    from evalkit.scheduler.health import HealthServer, ServiceState, metric_families
    from evalkit.scheduler.jobs import (
        JOB_KINDS,
        JobCancelledError,
        JobContext,
        JobKind,
        JobOutcome,
        register_job_kind,
    )
    from evalkit.scheduler.lock import MAX_TRIGGER_WAIT, ServiceInfo, find_service, trigger_wait
    from evalkit.scheduler.runner import JobListener, JobRunner, NotStarted
    from evalkit.scheduler.service import SchedulerService


__all__ = [
    "JOB_KINDS",
    "MAX_TRIGGER_WAIT",
    "HealthServer",
    "JobCancelledError",
    "JobContext",
    "JobDefinition",
    "JobKind",
    "JobListener",
    "JobOutcome",
    "JobRunner",
    "NotStarted",
    "SchedulerService",
    "ServiceConfig",
    "ServiceInfo",
    "ServiceState",
    "find_service",
    "metric_families",
    "register_job_kind",
    "service_config",
    "trigger_wait",
]

# Importing the package loads none of its modules; each name loads its own on first use.
__getattr__ = lazy_attributes(
    __name__,
    {
        "HealthServer": "evalkit.scheduler.health",
        "JOB_KINDS": "evalkit.scheduler.jobs",
        "MAX_TRIGGER_WAIT": "evalkit.scheduler.lock",
        "JobCancelledError": "evalkit.scheduler.jobs",
        "JobContext": "evalkit.scheduler.jobs",
        "JobDefinition": "evalkit.scheduler.config",
        "JobKind": "evalkit.scheduler.jobs",
        "JobListener": "evalkit.scheduler.runner",
        "JobOutcome": "evalkit.scheduler.jobs",
        "JobRunner": "evalkit.scheduler.runner",
        "NotStarted": "evalkit.scheduler.runner",
        "SchedulerService": "evalkit.scheduler.service",
        "ServiceConfig": "evalkit.scheduler.config",
        "ServiceInfo": "evalkit.scheduler.lock",
        "ServiceState": "evalkit.scheduler.health",
        "find_service": "evalkit.scheduler.lock",
        "metric_families": "evalkit.scheduler.health",
        "register_job_kind": "evalkit.scheduler.jobs",
        "service_config": "evalkit.scheduler.config",
        "trigger_wait": "evalkit.scheduler.lock",
    },
)
