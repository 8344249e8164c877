"""Rule kind ``latency_regression``: a latency quantile that rose by more than allowed,
beyond the run-to-run noise (``evalkit.stats.latency_series``).

``source = "replay"`` judges each retriever's goldset runs, naming an index that grew as the
probable cause; ``source = "production"`` the replayed traffic windows' logged latencies.
Fields and behaviour: docs/alerts.md, "Rules"; the statistics: docs/gate.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
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
from evalkit.causes import index_growth
from evalkit.config.types import Increase, parse_quantile, quantile_name
from evalkit.stats.latency import DEFAULT_CONFIDENCE, DEFAULT_QUANTILE
from evalkit.stats.latency_check import run_latencies
from evalkit.stats.latency_series import (
    DEFAULT_REFERENCE_RUNS,
    DEFAULT_WARMUP,
    SeriesVerdict,
    judge_latency_series,
)
from evalkit.store.alerts import has_tables
from evalkit.store.runs import get_run
from evalkit.store.traffic import list_window_summaries, logged_latencies

if TYPE_CHECKING:
    from evalkit.stats.latency_series import ReferenceComparison
    from evalkit.store.runs import RunRecord
    from evalkit.store.traffic import StoredWindowSummary

__all__ = ["LATENCY_REGRESSION", "LatencyRegressionParams"]

NOT_MEASURABLE_SHOWN = 10
"""Unmeasurable runs (windows) the evidence names, newest first."""


class LatencyRegressionParams(RuleParams):
    """``kind = "latency_regression"``."""

    source: Literal["replay", "production"] = Field(
        default="replay",
        description="replay: the series of goldset runs of each retriever; production: the "
        "series of replayed traffic windows, each with the latencies production logged.",
    )
    goldset: str | None = Field(default=None, description="Stored goldset whose runs (replay).")
    label: str | None = Field(default=None, description="Only runs with this label (replay).")
    retriever: str | None = Field(
        default=None,
        description="Only runs of this retriever, as `evalkit runs list` names it (replay; "
        "default: each retriever of the goldset, a series of its own).",
    )
    baseline_run: str | None = Field(
        default=None,
        description="The run the series starts at (replay; default: the runs `history` "
        "reads); only its retriever is watched. Pin the first run of a new normal to accept "
        "a lasting change.",
    )
    quantile: str = Field(
        default=DEFAULT_QUANTILE, description="Latency quantile watched: p50, p95, p99."
    )
    max_increase: Increase = Field(
        default=0.2,
        description="Largest relative rise of the quantile allowed: 0.2 or '20%'. Fires when "
        "the interval of the rise over the quiet runs' level lies above it.",
    )
    confidence: float = Field(
        default=DEFAULT_CONFIDENCE, gt=0, lt=1, description="Two-sided confidence of the interval."
    )
    warmup: int = Field(
        default=DEFAULT_WARMUP,
        ge=3,
        description="Quiet runs (windows) the reference needs before a run is judged.",
    )
    reference_runs: int = Field(
        default=DEFAULT_REFERENCE_RUNS,
        ge=3,
        description="Most recent quiet runs (windows) whose spread is the noise a run is "
        "judged against.",
    )
    min_queries: int = Field(
        default=20,
        ge=1,
        description="A run (window) with fewer latencies is left out of the series.",
    )
    history: int = Field(default=50, ge=2, description="Recent runs (windows) read.")

    @field_validator("quantile")
    @classmethod
    def _quantile(cls, name: str) -> str:
        return quantile_name(parse_quantile(name))

    @model_validator(mode="after")
    def _consistent(self) -> LatencyRegressionParams:
        if self.source == "replay" and not self.goldset:
            raise ValueError("source 'replay' needs goldset (whose runs are watched)")
        if self.reference_runs < self.warmup:
            raise ValueError(
                f"reference_runs ({self.reference_runs}) must be at least warmup ({self.warmup})"
            )
        return self


_SERIES = {"quantile", "max_increase", "confidence", "warmup", "reference_runs"}
"""The parameters that are ``judge_latency_series``'s keywords."""


def _settings(params: LatencyRegressionParams) -> dict[str, Any]:
    """The parameters a verdict was reached with (a changed one means judging again)."""
    return params.model_dump(include=_SERIES | {"min_queries"})


@dataclass(frozen=True, slots=True)
class _Point:
    """One run (window) of a series: its name, its latencies' quantile and how many."""

    name: str
    quantile_ms: float
    n: int


@dataclass(frozen=True, slots=True)
class _Judged:
    """The newest measurable point of a series as the series judged it."""

    points: list[_Point]
    verdicts: list[SeriesVerdict]
    comparison: ReferenceComparison
    not_measurable: dict[str, str]

    @property
    def firing(self) -> bool:
        return self.verdicts[-1].firing

    @property
    def candidate(self) -> _Point:
        return self.points[-1]

    @property
    def reference(self) -> list[str]:
        return [self.points[position].name for position in self.verdicts[-1].reference]

    @property
    def slow_since(self) -> str | None:
        """The first point of the slowdown under way, None when there is none."""
        first = None
        for point, verdict in zip(reversed(self.points), reversed(self.verdicts), strict=True):
            if not verdict.firing:
                break
            first = point.name
        return first

    def evidence(self) -> dict[str, Any]:
        """The comparison's figures, the reference, the slowdown's start and what was left
        out."""
        figures = self.comparison.to_dict()
        return {
            **{name: figures[name] for name in figures if name not in ("quantile", "max_increase")},
            "n_candidate": self.candidate.n,
            "reference": self.reference,
            "slow_since": self.slow_since,
            "not_measurable": dict(list(self.not_measurable.items())[:NOT_MEASURABLE_SHOWN]),
        }

    def summary(self, noun: str) -> str:
        """The comparison's line, naming the judged ``noun`` (run, window) and its reference."""
        reference = self.reference
        text = (
            f"{self.comparison.summary(f'{noun}s')}; {noun} {self.candidate.name} against the "
            f"quiet {noun}s {reference[0]} .. {reference[-1]}"
        )
        since = self.slow_since
        if self.firing and since is not None and since != self.candidate.name:
            text += f"; slower than them since {since}"
        if self.not_measurable:
            name, why = next(iter(self.not_measurable.items()))
            text += f". Left out as not measurable: {name} ({why})"
            if len(self.not_measurable) > 1:
                text += f" and {len(self.not_measurable) - 1} more"
        return text


def _judge(
    params: LatencyRegressionParams, series: Iterable[tuple[str, Sequence[float] | str]]
) -> _Judged | None:
    """The series (name and latencies, or why it has none, oldest first) judged on its
    newest measurable point; None until that point can be."""
    points: list[_Point] = []
    not_measurable: dict[str, str] = {}
    for name, latencies in series:
        point = latencies if isinstance(latencies, str) else _point(params, name, latencies)
        if isinstance(point, _Point):
            points.append(point)
        else:
            not_measurable = {name: point, **not_measurable}
    if not points:
        return None
    quantiles = [point.quantile_ms for point in points]
    verdicts = judge_latency_series(quantiles, **params.model_dump(include=_SERIES))
    comparison = verdicts[-1].comparison
    if comparison is None:
        return None
    return _Judged(points, verdicts, comparison, not_measurable)


def _point(params: LatencyRegressionParams, name: str, latencies: Sequence[float]) -> _Point | str:
    """A point of the series, or why ``latencies`` are not measurable."""
    values = np.asarray(latencies, dtype=np.float64)
    if len(values) < params.min_queries:
        return f"{len(values)} latencies, fewer than min_queries ({params.min_queries})"
    distinct = len(np.unique(values))
    if distinct < 2:
        return f"its {len(values):,} latencies take {distinct} distinct value"
    level = parse_quantile(params.quantile)
    return _Point(name, float(np.quantile(values, level)), len(values))


def _title(judged: _Judged, params: LatencyRegressionParams, where: str) -> str:
    compared = judged.comparison
    if judged.firing:
        return f"{compared.quantile} latency rose {compared.increase:+.0%} {where}"
    return f"{compared.quantile} latency {where}: no rise beyond {params.max_increase:.0%}"


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
    series: dict[str, list[RunRecord]] = {}
    for run in goldset_runs(
        ctx.store,
        params.goldset,
        label=params.label,
        limit=params.history,
        statuses=("complete", "partial"),
        retriever=watched,
    ):
        if run.imported_from is None and (pinned is None or run.started_at >= pinned.started_at):
            series.setdefault(run.retriever_id, []).append(run)
    for retriever, runs in series.items():
        signal = _replay_signal(ctx, params, _subject(params, retriever), runs[::-1])
        if signal is not None:
            signals.append(signal)
    return signals


def _replay_signal(
    ctx: RuleContext, params: LatencyRegressionParams, subject: str, runs: list[RunRecord]
) -> Signal | None:
    """The verdict of one retriever's series (``runs``, oldest first) on its newest
    measurable run; None until that run can be judged."""
    inputs = {
        **_settings(params),
        "newest_run": runs[-1].run_id,
        "first_run": runs[0].run_id,
        "n_runs": len(runs),
    }
    stored = stored_verdict(ctx, subject, inputs)
    if stored is not None:
        return stored

    def latencies(run: RunRecord) -> list[float] | str:
        read = run_latencies(ctx.store, run.run_id, run.run_id)
        if read.latencies is None:
            return read.missing or "no latency"
        return list(read.latencies.tolist())

    judged = _judge(params, ((run.run_id, latencies(run)) for run in runs))
    if judged is None:
        return None
    by_id = {run.run_id: run for run in runs}
    candidate = by_id[judged.candidate.name]
    baseline = by_id[judged.reference[-1]]
    grew = index_growth(baseline, candidate) if judged.comparison.increase > 0 else None
    summary = judged.summary("run")
    if grew is not None:
        summary += f". Probable cause: {grew.statement}"
    collection = candidate.spec.collection
    return Signal(
        subject=subject,
        active=judged.firing,
        title=_title(judged, params, f"on goldset {params.goldset}"),
        summary=summary,
        evidence={
            **inputs,
            "source": "replay",
            "goldset": params.goldset,
            "label": params.label,
            "retriever": candidate.retriever_id,
            "candidate_run": candidate.run_id,
            "baseline_run": baseline.run_id,
            **judged.evidence(),
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


def _windows(ctx: RuleContext, limit: int) -> list[StoredWindowSummary]:
    """The replayed traffic windows (the newest replay of each), at most ``limit``, oldest
    first."""
    windows: dict[str, StoredWindowSummary] = {}
    for summary in list_window_summaries(ctx.store, limit=max(200, 4 * limit)):
        windows.setdefault(summary.window_label, summary)
        if len(windows) == limit:
            break
    return list(windows.values())[::-1]


def _production(ctx: RuleContext, params: LatencyRegressionParams) -> list[Signal]:
    if not has_tables(ctx.store, "traffic_window_summaries"):
        return []
    windows = _windows(ctx, params.history)
    if not windows:
        return []
    inputs = {
        **_settings(params),
        "newest_window": windows[-1].window_label,
        "first_window": windows[0].window_label,
        "n_windows": len(windows),
    }
    stored = stored_verdict(ctx, "traffic", inputs)
    if stored is not None:
        return [stored]
    judged = _judge(
        params,
        (
            (
                window.window_label,
                logged_latencies(ctx.store, start=window.window_start, end=window.window_end),
            )
            for window in windows
        ),
    )
    if judged is None:
        return []
    newest = judged.candidate.name
    return [
        Signal(
            subject="traffic",
            active=judged.firing,
            title=_title(judged, params, f"in production window {newest}"),
            summary=f"production latencies logged: {judged.summary('window')}",
            evidence={
                **inputs,
                "source": "production",
                "candidate_window": newest,
                "baseline_window": judged.reference[-1],
                **judged.evidence(),
            },
            links=ctx.dashboard("traffic", window=newest),
        )
    ]


LATENCY_REGRESSION = RuleKind(
    "latency_regression",
    LatencyRegressionParams,
    _latency_regression,
    "a latency quantile rose by more than allowed (replayed goldset runs or production windows)",
)
