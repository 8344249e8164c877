"""Rule kind ``low_confidence_rate``: the share of replayed traffic queries whose top score is
low.
"""

from __future__ import annotations

from pydantic import Field

from evalkit.alerts.model import Signal
from evalkit.alerts.rules.base import RuleContext, RuleKind, RuleParams
from evalkit.store.alerts import has_tables
from evalkit.store.traffic.windows import list_window_summaries

__all__ = [
    "LOW_CONFIDENCE_RATE",
    "LowConfidenceParams",
]


class LowConfidenceParams(RuleParams):
    """``kind = "low_confidence_rate"``."""

    threshold: float = Field(
        default=0.2, ge=0, le=1, description="Fire when the low-confidence share exceeds this."
    )
    min_replayed: int = Field(
        default=20, ge=1, description="Ignore windows with fewer replayed queries."
    )


def _low_confidence(ctx: RuleContext, params: LowConfidenceParams) -> list[Signal]:

    if not has_tables(ctx.store, "traffic_window_summaries"):
        return []
    summaries = list_window_summaries(ctx.store, limit=1)
    if not summaries:
        return []
    window = summaries[0]
    share = window.low_confidence_share
    if share is None or window.n_replayed < params.min_replayed:
        return []
    active = share > params.threshold
    return [
        Signal(
            subject="traffic",
            active=active,
            title=f"{share:.1%} of traffic in {window.window_label} is low-confidence"
            + (f" (above {params.threshold:.1%})" if active else ""),
            summary=f"{share:.1%} of {window.n_replayed} replayed queries of window "
            f"{window.window_label} have a top score below "
            f"{window.low_confidence_threshold:g} (threshold {params.threshold:.1%}); "
            f"run {window.run_id}",
            evidence={
                "window": window.window_label,
                "run_id": window.run_id,
                "share": share,
                "threshold": params.threshold,
                "score_threshold": window.low_confidence_threshold,
                "n_replayed": window.n_replayed,
                "empty_share": window.empty_share,
                "top1_mean": window.top1_mean,
                "churn": window.churn,
            },
            links={
                "run": f"evalkit runs show {window.run_id}",
                **ctx.dashboard("traffic", window=window.window_label),
            },
        )
    ]


LOW_CONFIDENCE_RATE = RuleKind(
    "low_confidence_rate",
    LowConfidenceParams,
    _low_confidence,
    "too many traffic queries have a low top score",
)
