"""Rule kinds: each reads stored findings and says, per subject, whether its condition holds.

A kind is registered in ``RULE_KINDS`` with the model of its ``[[alerts.rules]]`` fields
and an evaluator ``(RuleContext, params) -> list[Signal]``; ``register_rule_kind`` adds
more. Evaluators only read the store; the engine (``evalkit.alerts.engine``) turns signals
into notifications. ``base`` holds the context, the registry and the parameter base; each
other module holds the kinds of one area. The kinds and their fields: docs/alerts.md, "Rules".
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
from evalkit.alerts.rules.slices import (
    SLICE_EMERGED,
    SLICE_PRECISION_DROP,
    SliceEmergedParams,
    SlicePrecisionDropParams,
)
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
    "SliceEmergedParams",
    "SlicePrecisionDropParams",
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
    SLICE_PRECISION_DROP,
    SLICE_EMERGED,
    LATENCY_REGRESSION,
    FRESHNESS_LAG,
):
    register_rule_kind(_kind)
