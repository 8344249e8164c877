"""Rule kind ``faithfulness_drop``: the newest answer scoring against a pinned (or the
previous) scoring, item by item, with the gate's paired statistics.

Only scorings of the same method version are compared (``offline-v2`` and ``offline-v3``
read on different scales): the default baseline is the newest earlier scoring of the same
version, and a pinned baseline of another version is a configuration error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from evalkit.alerts.model import Signal
from evalkit.alerts.rules.base import (
    RuleContext,
    RuleKind,
    RuleParams,
    close_unwatched,
    stored_verdict,
)
from evalkit.answers.records import method_version
from evalkit.errors import ConfigError
from evalkit.records.requests import PairedTestSettings
from evalkit.stats import compare_runs, worst_queries
from evalkit.store.alerts import has_tables
from evalkit.store.answers import answer_scores_frame, get_scoring, list_scorings

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = [
    "FAITHFULNESS_DROP",
    "FaithfulnessDropParams",
]


class FaithfulnessDropParams(RuleParams):
    """``kind = "faithfulness_drop"``."""

    metric: str = Field(default="faithfulness", description="Answer metric watched.")
    method: str | None = Field(
        default=None, description="Scoring method (default: the only one the scorings used)."
    )
    source: str | None = Field(
        default=None, description="Only scorings of this source (a file or a run)."
    )
    baseline_scoring: str | None = Field(
        default=None, description="Pinned baseline scoring (default: the previous scoring)."
    )
    min_effect: float = Field(default=0.05, ge=0, description="Smallest drop that matters.")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="Error rate of the test.")
    resamples: int = Field(default=10_000, ge=100, description="Bootstrap resamples.")
    seed: int = Field(default=0, ge=0, description="Seed of the resampling.")
    worst: int = Field(default=5, ge=0, description="Least faithful changes in the evidence.")


def _scored(store: Store, scoring_id: str, params: FaithfulnessDropParams) -> Any:
    """The scoring's measured rows of the watched metric and method."""
    frame = answer_scores_frame(store, scoring_id)
    frame = frame[(frame["metric"] == params.metric) & frame["value"].notna()]
    methods = sorted(set(frame["method"]))
    if params.method is not None:
        frame = frame[frame["method"] == params.method]
    elif len(methods) > 1:
        raise ConfigError(
            f"scoring {scoring_id} has {params.metric} by several methods "
            f"({', '.join(methods)}); set `method` in the rule"
        )
    return frame


def _versions(frame: Any) -> frozenset[str]:
    """The method versions of scored rows (``offline-v3``, an LLM judge's prompt version)."""
    return frozenset(
        method_version(str(version)) or "-" for version in frame["prompt_version"].fillna("-")
    )


def _item_values(frame: Any, metric: str) -> Any:
    values = frame.set_index("item_id")["value"].astype(float)
    return values.to_frame(metric), len(frame)


def _faithfulness_drop(ctx: RuleContext, params: FaithfulnessDropParams) -> list[Signal]:
    subject = params.metric + (f"/{params.source}" if params.source else "")
    closed = close_unwatched(
        ctx, lambda watched: watched == subject, "the rule's metric or source changed"
    )
    return closed + _compare_scorings(ctx, params, subject)


def _compare_scorings(
    ctx: RuleContext, params: FaithfulnessDropParams, subject: str
) -> list[Signal]:
    if not has_tables(ctx.store, "answer_scorings", "answer_scores"):
        return []
    scorings = [
        scoring
        for scoring in list_scorings(ctx.store, limit=50)
        if params.source is None or params.source in (scoring.source, scoring.run_id)
    ]
    if not scorings:
        return []
    current = scorings[0]
    cand_frame = _scored(ctx.store, current.scoring_id, params)
    version = _versions(cand_frame)
    # Scores of different method versions (offline-v2 and offline-v3, two judge prompts)
    # read on different scales: a difference between them is no drop of faithfulness.
    if params.baseline_scoring is not None:
        baseline = get_scoring(ctx.store, params.baseline_scoring)
        base_frame = _scored(ctx.store, baseline.scoring_id, params)
        if _versions(base_frame) != version:
            raise ConfigError(
                f"baseline scoring {baseline.scoring_id} has {params.metric} by "
                f"{', '.join(sorted(_versions(base_frame))) or 'nothing'}, the newest scoring "
                f"{current.scoring_id} by {', '.join(sorted(version)) or 'nothing'}: scores of "
                "different method versions are not comparable; pin a baseline scored the "
                "same way"
            )
    else:
        for earlier in scorings[1:]:
            base_frame = _scored(ctx.store, earlier.scoring_id, params)
            if _versions(base_frame) == version:
                baseline = earlier
                break
        else:
            return []
    if baseline.scoring_id == current.scoring_id:
        return []
    inputs = {
        "baseline_scoring": baseline.scoring_id,
        "current_scoring": current.scoring_id,
        "settings": params.model_dump(mode="json"),
    }
    stored = stored_verdict(ctx, subject, inputs)
    if stored is not None:
        return [stored]
    base, n_base = _item_values(base_frame, params.metric)
    cand, n_cand = _item_values(cand_frame, params.metric)
    shared = base.index.intersection(cand.index)
    if len(shared) < 2:
        return []
    test = PairedTestSettings(
        alpha=params.alpha,
        min_effect=params.min_effect,
        resamples=params.resamples,
        seed=params.seed,
    )
    comparison = compare_runs(base, cand, test, measures=[params.metric])
    metric = comparison.metric(params.metric)
    active = comparison.decision.value == "regression"
    confidence = round(comparison.confidence * 100)
    return [
        Signal(
            subject=subject,
            active=active,
            title=(
                f"{params.metric} of answers dropped by {-metric.delta:.4f}"
                if active
                else f"{params.metric} of answers: no significant drop"
            ),
            summary=(
                f"{params.metric} {metric.baseline_mean:.4f} -> {metric.candidate_mean:.4f} "
                f"(delta {metric.delta:+.4f}, {confidence}% CI [{metric.ci_low:+.4f}, "
                f"{metric.ci_high:+.4f}], p = {metric.p_adjusted:.3g}, {metric.n} answers "
                f"scored in both); scoring {current.scoring_id} vs {baseline.scoring_id}"
            ),
            evidence={
                **inputs,
                "metric": params.metric,
                "method": params.method,
                "baseline": metric.baseline_mean,
                "candidate": metric.candidate_mean,
                "delta": metric.delta,
                "ci_low": metric.ci_low,
                "ci_high": metric.ci_high,
                "p_value": metric.p_adjusted,
                "n_items": metric.n,
                "n_measured_baseline": n_base,
                "n_measured_current": n_cand,
                "decision": comparison.decision.value,
                "min_effect": params.min_effect,
                "worst_queries": [
                    drop.to_dict()
                    for drop in worst_queries(comparison, params.metric, n=params.worst)
                ],
            },
            links={
                "scoring": f"evalkit answers show {current.scoring_id}",
                **ctx.dashboard("answers", scoring=current.scoring_id),
            },
        )
    ]


FAITHFULNESS_DROP = RuleKind(
    "faithfulness_drop",
    FaithfulnessDropParams,
    _faithfulness_drop,
    "answers became less faithful to their contexts",
)
