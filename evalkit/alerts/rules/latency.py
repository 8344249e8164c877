"""Rule kind ``latency_regression``: a latency quantile that rose by more than allowed,
beyond the noise, with the gate's latency statistics (``evalkit.stats.latency``: a
bootstrap interval of the quantile's relative increase, paired by query).

``source = "replay"``: per retriever of ``goldset`` (``RunRecord.retriever_id``), its newest
finished goldset run against ``baseline_run`` when one is pinned (then only that run's
retriever is watched), else against the run before it of the same goldset and retriever
(``evalkit.causes.previous_run``, the baseline ``evalkit explain`` takes). An index that
grew between the two runs is named as the probable cause (``evalkit.causes.index_growth``).

``source = "production"``: the latencies production logged (``traffic_records.latency_ms``)
in the newest replayed traffic window against those of the window before it, unpaired: the
requests of one window are not those of the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from pydantic import Field, field_validator, model_validator

from evalkit.alerts.model import Signal
from evalkit.alerts.rules.base import (
    RuleContext,
    RuleKind,
    RuleParams,
    close_unwatched,
    goldset_runs,
    iso,
    stored_verdict,
)
from evalkit.causes import index_growth, previous_run
from evalkit.config.types import Increase, parse_quantile, quantile_name
from evalkit.errors import ConfigError
from evalkit.stats.decision import Decision
from evalkit.stats.latency import (
    DEFAULT_CONFIDENCE,
    DEFAULT_QUANTILE,
    DEFAULT_RESAMPLES,
    compare_latency,
)
from evalkit.stats.latency_check import run_latencies
from evalkit.store.alerts import has_tables
from evalkit.store.runs import get_run
from evalkit.store.traffic import list_window_summaries, logged_latencies

if TYPE_CHECKING:
    from evalkit.stats.latency import LatencyComparison
    from evalkit.store.runs import RunRecord
    from evalkit.store.traffic import StoredWindowSummary

__all__ = ["LATENCY_REGRESSION", "LatencyRegressionParams"]


class LatencyRegressionParams(RuleParams):
    """``kind = "latency_regression"``."""

    source: Literal["replay", "production"] = Field(
        default="replay",
        description="replay: the newest goldset run of each retriever against its baseline; "
        "production: the latencies logged in the newest traffic window against the window "
        "before it.",
    )
    goldset: str | None = Field(default=None, description="Stored goldset whose runs (replay).")
    label: str | None = Field(default=None, description="Only runs with this label (replay).")
    retriever: str | None = Field(
        default=None,
        description="Only runs of this retriever, as `evalkit runs list` names it (replay; "
        "default: each retriever of the goldset, a subject of its own).",
    )
    baseline_run: str | None = Field(
        default=None,
        description="Pinned baseline run (replay; default: the run before the newest of the "
        "same goldset and retriever).",
    )
    quantile: str = Field(
        default=DEFAULT_QUANTILE, description="Latency quantile watched: p50, p95, p99."
    )
    max_increase: Increase = Field(
        default=0.2,
        description="Largest relative rise of the quantile allowed: 0.2 or '20%'. Fires when "
        "the interval of the rise lies above it.",
    )
    confidence: float = Field(
        default=DEFAULT_CONFIDENCE, gt=0, lt=1, description="Two-sided confidence of the interval."
    )
    resamples: int = Field(default=DEFAULT_RESAMPLES, ge=100, description="Bootstrap resamples.")
    seed: int = Field(default=0, ge=0, description="Seed of the resampling.")
    min_queries: int = Field(
        default=20,
        ge=1,
        description="Compare only when both runs (windows) have at least this many latencies.",
    )
    history: int = Field(default=50, ge=2, description="Recent runs read (replay).")

    @field_validator("quantile")
    @classmethod
    def _quantile(cls, name: str) -> str:
        return quantile_name(parse_quantile(name))

    @model_validator(mode="after")
    def _goldset_for_replay(self) -> LatencyRegressionParams:
        if self.source == "replay" and not self.goldset:
            raise ValueError("source 'replay' needs goldset (whose runs are watched)")
        return self


def _settings(params: LatencyRegressionParams) -> dict[str, Any]:
    """The parameters a verdict was reached with (a changed one means comparing again):
    the options ``compare_latency`` is called with."""
    return params.model_dump(
        include={"quantile", "max_increase", "confidence", "resamples", "seed"}
    )


def _compare(
    params: LatencyRegressionParams, before: pd.Series, after: pd.Series, *, paired: bool
) -> LatencyComparison:
    """The rule's comparison of two sets of latencies (by query id when ``paired``)."""
    return compare_latency(before, after, **_settings(params), paired=paired)


def _figures(compared: LatencyComparison) -> dict[str, Any]:
    data = compared.to_dict()
    return {name: data[name] for name in data if name not in ("quantile", "max_increase")}


def _title(compared: LatencyComparison, where: str) -> str:
    if compared.decision is Decision.REGRESSION:
        return f"{compared.quantile} latency rose {compared.increase:+.0%} {where}"
    return f"{compared.quantile} latency {where}: no rise beyond {compared.max_increase:.0%}"


def _latency_regression(ctx: RuleContext, params: LatencyRegressionParams) -> list[Signal]:
    if params.source == "production":
        return _unwatched(ctx, lambda subject: subject == "traffic") + _production(ctx, params)
    return _replay(ctx, params)


def _unwatched(ctx: RuleContext, watches: Callable[[str], bool]) -> list[Signal]:
    return close_unwatched(
        ctx, watches, "the rule's source, goldset, label, retriever or baseline_run changed"
    )


def _subject(params: LatencyRegressionParams, retriever: str) -> str:
    goldset = str(params.goldset) if params.label is None else f"{params.goldset}/{params.label}"
    return f"{goldset}|{retriever}"


def _replay(ctx: RuleContext, params: LatencyRegressionParams) -> list[Signal]:
    pinned = get_run(ctx.store, params.baseline_run) if params.baseline_run else None
    watched = pinned.retriever_id if pinned is not None else params.retriever
    prefix = _subject(params, "")
    signals = _unwatched(
        ctx,
        lambda subject: (
            subject == _subject(params, watched)
            if watched is not None
            else subject.startswith(prefix)
        ),
    )
    newest: dict[str, RunRecord] = {}
    for run in goldset_runs(
        ctx.store,
        params.goldset,
        label=params.label,
        limit=params.history,
        statuses=("complete", "partial"),
        retriever=watched,
    ):
        if run.imported_from is None:
            newest.setdefault(run.retriever_id, run)
    for retriever, candidate in newest.items():
        if pinned is not None:
            baseline = pinned
        else:
            try:
                baseline = previous_run(ctx.store, candidate)
            except ConfigError:
                continue
        if baseline.run_id == candidate.run_id:
            continue
        signal = _replay_signal(ctx, params, _subject(params, retriever), baseline, candidate)
        if signal is not None:
            signals.append(signal)
    return signals


def _replay_signal(
    ctx: RuleContext,
    params: LatencyRegressionParams,
    subject: str,
    baseline: RunRecord,
    candidate: RunRecord,
) -> Signal | None:
    inputs = {
        **_settings(params),
        "baseline_run": baseline.run_id,
        "candidate_run": candidate.run_id,
    }
    stored = stored_verdict(ctx, subject, inputs)
    if stored is not None:
        return stored
    before = run_latencies(ctx.store, baseline.run_id, baseline.run_id).latencies
    after = run_latencies(ctx.store, candidate.run_id, candidate.run_id).latencies
    if before is None or after is None:
        return None
    if min(len(before), len(after)) < params.min_queries:
        return None
    compared = _compare(params, before, after, paired=True)
    grew = index_growth(baseline, candidate) if compared.increase > 0 else None
    summary = f"{compared.summary()}; run {candidate.run_id} vs baseline {baseline.run_id}"
    if grew is not None:
        summary += f". Probable cause: {grew.statement}"
    if compared.note:
        summary += f". Note: {compared.note}"
    collection = candidate.spec.collection
    return Signal(
        subject=subject,
        active=compared.decision is Decision.REGRESSION,
        title=_title(compared, f"on goldset {params.goldset}"),
        summary=summary,
        evidence={
            **inputs,
            "source": "replay",
            "goldset": params.goldset,
            "label": params.label,
            "retriever": candidate.retriever_id,
            **_figures(compared),
            "candidate_started_at": iso(candidate.started_at),
            "index_size": {
                run.run_id: {
                    "documents": run.spec.index_documents,
                    "vectors": run.spec.index_vectors,
                }
                for run in (baseline, candidate)
            },
            "probable_causes": [grew.to_dict()] if grew is not None else [],
        },
        links={
            "candidate_run": f"evalkit runs show {candidate.run_id}",
            "baseline_run": f"evalkit runs show {baseline.run_id}",
            "gate": f"evalkit gate --baseline {baseline.run_id} --candidate {candidate.run_id} "
            f"--max-latency-increase {params.max_increase:.0%} "
            f"--latency-quantile {params.quantile}",
            **ctx.dashboard("index_health", **({"collection": collection} if collection else {})),
        },
    )


def _two_windows(ctx: RuleContext) -> list[StoredWindowSummary]:
    """The newest replayed traffic window and the one before it (newest replay of each)."""
    windows: dict[str, StoredWindowSummary] = {}
    for summary in list_window_summaries(ctx.store, limit=200):
        windows.setdefault(summary.window_label, summary)
        if len(windows) == 2:
            break
    return list(windows.values())


def _production(ctx: RuleContext, params: LatencyRegressionParams) -> list[Signal]:
    if not has_tables(ctx.store, "traffic_window_summaries"):
        return []
    windows = _two_windows(ctx)
    if len(windows) < 2:
        return []
    current, reference = windows
    after = logged_latencies(ctx.store, start=current.window_start, end=current.window_end)
    before = logged_latencies(ctx.store, start=reference.window_start, end=reference.window_end)
    if min(len(before), len(after)) < params.min_queries:
        return []
    inputs = {
        **_settings(params),
        "baseline_window": reference.window_label,
        "candidate_window": current.window_label,
        "n_baseline": len(before),
        "n_candidate": len(after),
    }
    stored = stored_verdict(ctx, "traffic", inputs)
    if stored is not None:
        return [stored]
    compared = _compare(
        params,
        pd.Series(before, dtype="float64"),
        pd.Series(after, dtype="float64"),
        paired=False,
    )
    summary = (
        f"{compared.summary()}; production latencies logged in window {current.window_label} "
        f"({len(after):,} requests) vs {reference.window_label} ({len(before):,})"
    )
    if compared.note:
        summary += f". Note: {compared.note}"
    return [
        Signal(
            subject="traffic",
            active=compared.decision is Decision.REGRESSION,
            title=_title(compared, f"in production window {current.window_label}"),
            summary=summary,
            evidence={**inputs, "source": "production", **_figures(compared)},
            links=ctx.dashboard("traffic", window=current.window_label),
        )
    ]


LATENCY_REGRESSION = RuleKind(
    "latency_regression",
    LatencyRegressionParams,
    _latency_regression,
    "a latency quantile rose by more than allowed (replayed goldset runs or production windows)",
)
