"""Rule kinds: each reads stored findings and says, per subject, whether its condition holds.

A kind is registered in ``RULE_KINDS`` with the model of its ``[[alerts.rules]]`` fields
and an evaluator ``(RuleContext, params) -> list[Signal]``; ``register_rule_kind`` adds
more, so a new area of evalkit plugs its findings in by name. Evaluators only read the
store; the engine (``evalkit.alerts.engine``) turns signals into notifications.

Kinds, by module (``base`` holds the context, the registry and the parameter base):

- ``precision_regression`` (``precision``): the newest goldset run against a pinned
  baseline run with the gate's paired statistics (``method = "gate"``), or the series of
  per-run means with a sequential detector (``page_hinkley``, ``cusum``).
- ``embedding_drift`` (``embeddings``): the newest stored drift check of each watched
  stream and subject.
- ``model_mismatch`` (``embeddings``): drift checks that found a model mismatch, and audit
  findings of vectors made by another model.
- ``audit_findings`` (``audit``): findings of the newest audit of each collection (duplicates,
  staleness, ANN recall, coverage...), with the finding's own severity.
- ``job_failure`` (``jobs``): jobs whose last runs failed or were interrupted.
- ``low_confidence_rate`` (``traffic``): the share of replayed traffic queries whose top
  score is low.
- ``faithfulness_drop`` (``answers``): the newest answer scoring against a pinned (or the previous)
  scoring, item by item, with the gate's paired statistics.
- ``latency_regression`` (``latency``): a latency quantile of the newest goldset run or
  production window rose by more than allowed beyond the spread of the quiet runs (windows)
  before it, and stays risen.
- ``freshness_lag`` (``freshness``): the freshness objective of each subject's newest check
  (p95 lag, and the age of the oldest change not yet retrievable).
"""

from evalkit.alerts.rules.answers import FAITHFULNESS_DROP, FaithfulnessDropParams
from evalkit.alerts.rules.audit import AUDIT_FINDINGS, MODEL_MISMATCH_FINDINGS, AuditFindingsParams
from evalkit.alerts.rules.base import (
    RULE_KINDS,
    RuleContext,
    RuleKind,
    RuleParams,
    describe_params,
    register_rule_kind,
)
from evalkit.alerts.rules.embeddings import (
    EMBEDDING_DRIFT,
    MODEL_MISMATCH,
    EmbeddingDriftParams,
    ModelMismatchParams,
)
from evalkit.alerts.rules.freshness import FRESHNESS_LAG, FreshnessLagParams
from evalkit.alerts.rules.jobs import JOB_FAILURE, JobFailureParams
from evalkit.alerts.rules.latency import LATENCY_REGRESSION, LatencyRegressionParams
from evalkit.alerts.rules.precision import PRECISION_REGRESSION, PrecisionRegressionParams
from evalkit.alerts.rules.traffic import (
    LOW_CONFIDENCE_RATE,
    TRAFFIC_PRECISION_DROP,
    LowConfidenceParams,
    TrafficPrecisionDropParams,
)

__all__ = [
    "MODEL_MISMATCH_FINDINGS",
    "RULE_KINDS",
    "AuditFindingsParams",
    "EmbeddingDriftParams",
    "FaithfulnessDropParams",
    "FreshnessLagParams",
    "JobFailureParams",
    "LatencyRegressionParams",
    "LowConfidenceParams",
    "ModelMismatchParams",
    "PrecisionRegressionParams",
    "RuleContext",
    "RuleKind",
    "RuleParams",
    "TrafficPrecisionDropParams",
    "describe_params",
    "register_rule_kind",
]

# Registered in this order, the order in which the kinds are listed.
for _kind in (
    FAITHFULNESS_DROP,
    PRECISION_REGRESSION,
    EMBEDDING_DRIFT,
    MODEL_MISMATCH,
    AUDIT_FINDINGS,
    JOB_FAILURE,
    LOW_CONFIDENCE_RATE,
    TRAFFIC_PRECISION_DROP,
    LATENCY_REGRESSION,
    FRESHNESS_LAG,
):
    register_rule_kind(_kind)
