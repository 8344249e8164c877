"""The scheduler service: ``evalkit serve`` runs evalkit's jobs unattended.

``config`` resolves the ``[[jobs]]`` to their kinds, ``jobs`` registers the kinds of
``job_kinds``, ``runner`` runs and records one job, ``lock`` keeps one service per store,
``health`` serves ``/healthz``, ``/metrics`` and ``/jobs``, and ``service`` ties them
together. ``docs/scheduler.md`` documents the jobs, the settings and the one-writer design.
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
