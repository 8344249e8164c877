"""Job kinds: what a ``[[jobs]]`` entry can run.

``JOB_KINDS`` maps a name to the model of its fields and a function ``(JobContext, params)
-> JobOutcome``; ``register_job_kind`` adds more (``[scheduler] plugins``). Importing this
module registers the built-in kinds of ``evalkit.scheduler.job_kinds``. A long job checks
``JobContext.check_cancelled`` between batches, so a shutdown interrupts it there.
"""

from __future__ import annotations

from evalkit.registry import register_named
from evalkit.scheduler.job_kinds.base import (
    JobCancelledError,
    JobContext,
    JobKind,
    JobOutcome,
    RetrieverParams,
)
from evalkit.scheduler.job_kinds.checks import (
    AUDIT,
    DRIFT_CHECK,
    FRESHNESS,
    AuditParams,
    DriftCheckParams,
    FreshnessParams,
)
from evalkit.scheduler.job_kinds.evaluation import (
    ANSWERS,
    GOLDSET_REPLAY,
    SWEEP,
    AnswersParams,
    GoldsetReplayParams,
    SweepParams,
)
from evalkit.scheduler.job_kinds.traffic import (
    DEFAULT_REPORTED_PROBLEMS,
    TRAFFIC,
    TRAFFIC_INGEST,
    TrafficIngestParams,
    TrafficParams,
)
from evalkit.scheduler.job_kinds.upkeep import (
    COMMAND,
    RETENTION,
    CommandParams,
    RetentionParams,
)

__all__ = [
    "DEFAULT_REPORTED_PROBLEMS",
    "JOB_KINDS",
    "AnswersParams",
    "AuditParams",
    "CommandParams",
    "DriftCheckParams",
    "FreshnessParams",
    "GoldsetReplayParams",
    "JobCancelledError",
    "JobContext",
    "JobKind",
    "JobOutcome",
    "RetentionParams",
    "RetrieverParams",
    "SweepParams",
    "TrafficIngestParams",
    "TrafficParams",
    "register_job_kind",
]

JOB_KINDS: dict[str, JobKind] = {}
"""Job kinds by name (see the module docstring)."""


def register_job_kind(kind: JobKind) -> None:
    """Make a job kind available to ``[[jobs]]`` (a name is registered once)."""
    register_named(JOB_KINDS, kind, what="job kind")


# Registered in this order, the order in which the kinds are listed.
for _kind in (
    GOLDSET_REPLAY,
    TRAFFIC_INGEST,
    TRAFFIC,
    DRIFT_CHECK,
    AUDIT,
    FRESHNESS,
    ANSWERS,
    SWEEP,
    RETENTION,
    COMMAND,
):
    register_job_kind(_kind)
