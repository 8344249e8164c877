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
    from evalkit.scheduler.config import JobDefinition as JobDefinition
    from evalkit.scheduler.config import ServiceConfig as ServiceConfig
    from evalkit.scheduler.config import service_config as service_config
    from evalkit.scheduler.health import HealthServer as HealthServer
    from evalkit.scheduler.health import ServiceState as ServiceState
    from evalkit.scheduler.health import metric_families as metric_families
    from evalkit.scheduler.jobs import JOB_KINDS as JOB_KINDS
    from evalkit.scheduler.jobs import JobCancelledError as JobCancelledError
    from evalkit.scheduler.jobs import JobContext as JobContext
    from evalkit.scheduler.jobs import JobKind as JobKind
    from evalkit.scheduler.jobs import JobOutcome as JobOutcome
    from evalkit.scheduler.jobs import register_job_kind as register_job_kind
    from evalkit.scheduler.lock import MAX_TRIGGER_WAIT as MAX_TRIGGER_WAIT
    from evalkit.scheduler.lock import ServiceInfo as ServiceInfo
    from evalkit.scheduler.lock import find_service as find_service
    from evalkit.scheduler.lock import trigger_wait as trigger_wait
    from evalkit.scheduler.runner import JobListener as JobListener
    from evalkit.scheduler.runner import JobRunner as JobRunner
    from evalkit.scheduler.runner import NotStarted as NotStarted
    from evalkit.scheduler.service import SchedulerService as SchedulerService
else:
    # Importing the package loads none of its modules; each name loads its own on first use.
    __getattr__ = lazy_attributes(__name__)
