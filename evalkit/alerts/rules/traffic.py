"""Traffic rule kinds: ``low_confidence_rate``, the share of replayed traffic queries whose
top score is low; ``traffic_precision_drop``, a drop of a figure judged on traffic windows by
an LLM assessor (``evalkit.drift.traffic_precision``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from evalkit.alerts.model import Signal
from evalkit.alerts.rules.base import RuleContext, RuleKind, RuleParams, close_unwatched
from evalkit.drift.traffic_precision import (
    DEFAULT_MIN_EFFECT,
    DEFAULT_MIN_JUDGED_SHARE,
    NoJudgedWindowError,
    watch_traffic_precision,
    window_measure,
)
from evalkit.errors import EvalkitError
from evalkit.records import AlertSeverity
from evalkit.records.requests import TRAFFIC_PRECISION_MEASURE
from evalkit.store.alerts import has_tables
from evalkit.store.traffic.windows import list_window_summaries

__all__ = [
    "LOW_CONFIDENCE_RATE",
    "TRAFFIC_PRECISION_DROP",
    "LowConfidenceParams",
    "TrafficPrecisionDropParams",
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


class TrafficPrecisionDropParams(RuleParams):
    """``kind = "traffic_precision_drop"``."""

    measure: str = Field(
        default=TRAFFIC_PRECISION_MEASURE,
        description="Measure watched, as judged traffic windows store it (precision@K, "
        "ndcg_judged@K, hit_rate@K at the depth the windows were judged).",
    )
    source: Literal["assessor", "assessor_logged"] = Field(
        default="assessor",
        description="assessor: the replayed rankings; assessor_logged: what production logged.",
    )
    assessor: str | None = Field(
        default=None,
        description="Only this assessor's labels (MODEL@PROMPT_VERSION); default: each "
        "assessor its own series, never mixed.",
    )
    retriever: str | None = Field(
        default=None, description="Only this retriever, as `evalkit runs list` names it."
    )
    baseline_window: str | None = Field(
        default=None, description="The window the newest is tested against (default: the first)."
    )
    alpha: float = Field(default=0.05, gt=0, lt=1, description="Level of the window test.")
    min_effect: float = Field(
        default=DEFAULT_MIN_EFFECT, ge=0, description="Smallest drop that matters."
    )
    min_judged_share: float = Field(
        default=DEFAULT_MIN_JUDGED_SHARE,
        ge=0,
        le=1,
        description="Leave out windows whose top-k has less than this share of labels.",
    )
    h_warning: float = Field(default=5.0, gt=0, description="Page-Hinkley warning threshold.")
    h_alert: float = Field(default=8.0, gt=0, description="Page-Hinkley alert threshold.")

    @field_validator("measure")
    @classmethod
    def _window_measure(cls, name: str) -> str:
        try:
            return window_measure(name)
        except EvalkitError as error:
            raise ValueError(str(error)) from error


def _traffic_watches(params: TrafficPrecisionDropParams, subject: str) -> bool:
    """Whether ``traffic|assessor|retriever:measure`` is a series the rule reads."""
    series, _, measure = subject.removeprefix("traffic|").rpartition(":")
    assessor, _, retriever = series.partition("|")
    return (
        subject.startswith("traffic|")
        and measure == params.measure
        and params.assessor in (None, assessor)
        and params.retriever in (None, retriever)
    )


def _traffic_precision_drop(ctx: RuleContext, params: TrafficPrecisionDropParams) -> list[Signal]:
    closed = close_unwatched(
        ctx,
        lambda subject: _traffic_watches(params, subject),
        "the rule's measure, assessor or retriever changed",
    )
    if not has_tables(ctx.store, "judged_run_figures"):
        return closed
    try:
        # The rule's fields are the watch's keywords, one for one.
        checks = watch_traffic_precision(ctx.store, **params.model_dump(), save=False)
    except NoJudgedWindowError:
        return closed
    signals = closed
    for check in checks:
        window, run_id, value, *_ = check.series[-1]
        test = check.test
        active = check.finding in ("drift", "warning")
        agreement = (
            f"assessor agreement {check.agreement_id}"
            if check.agreement_id
            else "agreement not measured"
        )
        summary = f"{check.measure} {value:.3f} in window {window} ({check.assessor} labels"
        summary += f", {agreement})"
        if test is not None:
            summary += (
                f"; against window {test.baseline_window} ({test.baseline:.3f}): "
                f"{test.delta:+.3f}, one-sided p {test.p_value:.3g}"
            )
        summary += f"; Page-Hinkley level {check.levels[-1]}"
        signals.append(
            Signal(
                subject=f"traffic|{check.subject}:{check.measure}",
                active=active,
                severity=AlertSeverity.warning if check.finding == "warning" else None,
                title=(
                    f"judged {check.measure} of traffic by {check.retriever} "
                    + ("is dropping" if active else "is steady")
                ),
                summary=summary,
                evidence=check.to_dict(),
                links={
                    "run": f"evalkit runs show {run_id}",
                    **ctx.dashboard("traffic", window=window),
                },
            )
        )
    return signals


TRAFFIC_PRECISION_DROP = RuleKind(
    "traffic_precision_drop",
    TrafficPrecisionDropParams,
    _traffic_precision_drop,
    "judged precision on production traffic dropped (window test or Page-Hinkley)",
)
