"""Rule kind ``precision_regression``: the newest goldset run of the pinned baseline run's
retriever against that baseline with the gate's paired statistics (``method = "gate"``), or
each retriever's series of per-run means with a sequential detector (``page_hinkley``,
``cusum``). A retriever is ``RunRecord.retriever_id``: two factories, or one factory with
other options, are two series.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

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
from evalkit.causes import Explanation, explain_comparison, explain_runs
from evalkit.drift import AlertLevel, sequential_trace
from evalkit.errors import EvalkitError
from evalkit.metrics import parse_measures
from evalkit.records import AlertSeverity
from evalkit.records.requests import PairedTestSettings
from evalkit.stats import compare_stored_runs
from evalkit.store.runs import get_run

if TYPE_CHECKING:
    from evalkit.store.runs import RunRecord

__all__ = [
    "PRECISION_REGRESSION",
    "PrecisionRegressionParams",
]


class PrecisionRegressionParams(RuleParams):
    """``kind = "precision_regression"``."""

    goldset: str = Field(description="Stored goldset whose runs are watched.")
    label: str | None = Field(
        default=None,
        description="Only runs with this label (a scheduled replay labels its runs with the "
        "job's name).",
    )
    measures: list[str] = Field(
        default_factory=lambda: ["precision@10"], min_length=1, description="Measures watched."
    )
    method: Literal["gate", "page_hinkley", "cusum"] = Field(
        default="gate",
        description="gate: paired test of the newest run against baseline_run; page_hinkley "
        "or cusum: sequential detector over the series of run means.",
    )
    baseline_run: str | None = Field(default=None, description="Pinned baseline run (gate).")
    retriever: str | None = Field(
        default=None,
        description="Only runs of this retriever, as `evalkit runs list` names it (sequential "
        "methods; default: every retriever, each its own series). The gate compares runs of "
        "baseline_run's retriever.",
    )
    min_effect: float = Field(default=0.01, ge=0, description="Smallest drop that matters.")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="Family-wise error rate.")
    resamples: int = Field(default=10_000, ge=100, description="Bootstrap resamples.")
    seed: int = Field(default=0, ge=0, description="Seed of the resampling.")
    worst: int = Field(default=5, ge=0, description="Worst-regressed queries in the evidence.")
    warmup: int = Field(default=5, ge=2, description="Runs that set the sequential baseline.")
    allowance: float = Field(
        default=0.5, ge=0, description="Sequential slack (k or delta), in standard deviations."
    )
    h_warning: float = Field(default=5.0, gt=0, description="Sequential warning threshold.")
    h_alert: float = Field(default=8.0, gt=0, description="Sequential alert threshold.")
    min_sd: float = Field(default=1e-3, gt=0, description="Floor of the sequential run sd.")
    history: int = Field(default=200, ge=3, description="Runs read for a sequential series.")

    @field_validator("measures")
    @classmethod
    def _canonical(cls, names: list[str]) -> list[str]:
        try:
            return [str(measure) for measure in parse_measures(names)]
        except EvalkitError as error:
            raise ValueError(str(error)) from error

    @property
    def paired_test(self) -> PairedTestSettings:
        """The settings of the gate method's paired test."""
        return PairedTestSettings(
            alpha=self.alpha, min_effect=self.min_effect, resamples=self.resamples, seed=self.seed
        )

    @model_validator(mode="after")
    def _baseline_for_gate(self) -> PrecisionRegressionParams:
        if self.method == "gate" and not self.baseline_run:
            raise ValueError("method 'gate' needs baseline_run (the pinned baseline run id)")
        if self.h_alert < self.h_warning:
            raise ValueError("h_alert must be >= h_warning")
        return self


_DETECTOR = {"allowance", "h_warning", "h_alert", "warmup", "min_sd"}
"""The parameters that are the sequential detector's keywords."""

CAUSE_EVIDENCE_ROWS = 10
"""Evidence rows per probable cause in an alert (the statement carries the full counts)."""

_CACHE_SIZE = 64
_gate_cache: OrderedDict[tuple[str, ...], list[Signal]] = OrderedDict()


def _gate_inputs(
    params: PrecisionRegressionParams, baseline: RunRecord, candidate: RunRecord
) -> dict[str, Any]:
    return {
        "baseline_run": baseline.run_id,
        "candidate_run": candidate.run_id,
        "measures": list(params.measures),
        **asdict(params.paired_test),
        "worst": params.worst,
    }


def _subject(params: PrecisionRegressionParams) -> str:
    return params.goldset if params.label is None else f"{params.goldset}/{params.label}"


def _precision_regression(ctx: RuleContext, params: PrecisionRegressionParams) -> list[Signal]:
    watched = _gate(ctx, params) if params.method == "gate" else _sequential(ctx, params)
    return _unwatched(ctx, params) + watched


def _watches(params: PrecisionRegressionParams, subject: str) -> bool:
    """Whether the rule as configured can still report on ``subject``."""
    if params.method == "gate":
        return subject == _subject(params)
    if subject in {f"{_subject(params)}:{measure}" for measure in params.measures}:
        return True  # the one mixed series of earlier versions: ``_retired`` clears it
    return subject.startswith(f"{_subject(params)}|") and any(
        subject.endswith(f":{measure}") for measure in params.measures
    )


def _unwatched(ctx: RuleContext, params: PrecisionRegressionParams) -> list[Signal]:
    return close_unwatched(
        ctx,
        lambda subject: _watches(params, subject),
        "the rule's goldset, label, method or measures changed",
    )


def _gate(ctx: RuleContext, params: PrecisionRegressionParams) -> list[Signal]:
    baseline = get_run(ctx.store, str(params.baseline_run))
    # A partial run is the newest evidence too: skipping it would report the older complete
    # run as "no regression" while the retriever fails queries. Its failed queries count as 0.
    # The baseline's own retriever: a run of another factory or options is no candidate.
    candidates = [
        run
        for run in goldset_runs(
            ctx.store,
            params.goldset,
            label=params.label,
            limit=50,
            statuses=("complete", "partial"),
            retriever=baseline.retriever_id,
        )
        if run.run_id != baseline.run_id
    ]
    if not candidates:
        return []
    candidate = candidates[0]
    key = (
        str(ctx.store.path),
        ctx.rule,
        baseline.run_id,
        candidate.run_id,
        params.model_dump_json(),
    )
    if key in _gate_cache:
        _gate_cache.move_to_end(key)
        return _gate_cache[key]
    stored = stored_verdict(ctx, _subject(params), _gate_inputs(params, baseline, candidate))
    signals = [stored or _compare(ctx, params, baseline, candidate)]
    _gate_cache[key] = signals
    if len(_gate_cache) > _CACHE_SIZE:
        _gate_cache.popitem(last=False)
    return signals


def _compare(
    ctx: RuleContext,
    params: PrecisionRegressionParams,
    baseline: RunRecord,
    candidate: RunRecord,
) -> Signal:
    report = compare_stored_runs(
        ctx.store,
        baseline.run_id,
        candidate.run_id,
        params.measures,
        params.paired_test,
        worst=params.worst,
        failed_as_zero=True,
    )
    comparison = report.comparison
    regressed = [m for m in comparison.metrics if m.decision.value == "regression"]
    primary = min(regressed or comparison.metrics, key=lambda metric: metric.delta)
    active = comparison.decision.value == "regression"
    worst = [drop.to_dict() for drop in report.worst_for(primary.measure)]
    confidence = round(comparison.confidence * 100)
    evidence = {
        **_gate_inputs(params, baseline, candidate),
        "method": "gate",
        "goldset": params.goldset,
        "label": params.label,
        "metric": primary.measure,
        "baseline": primary.baseline_mean,
        "candidate": primary.candidate_mean,
        "delta": primary.delta,
        "ci_low": primary.ci_low,
        "ci_high": primary.ci_high,
        "confidence": comparison.confidence,
        "p_value": primary.p_adjusted,
        "p_permutation": primary.p_permutation,
        "p_wilcoxon": primary.p_wilcoxon,
        "n_queries": primary.n,
        "decision": comparison.decision.value,
        "failed_in_baseline": list(comparison.failed_in_baseline),
        "failed_in_candidate": list(comparison.failed_in_candidate),
        "candidate_started_at": iso(candidate.started_at),
        "metrics": {metric.measure: metric.to_dict() for metric in comparison.metrics},
        "worst_queries": worst,
    }
    measures = " ".join(f"-m {measure}" for measure in params.measures)
    links = {
        "candidate_run": f"evalkit runs show {candidate.run_id}",
        "baseline_run": f"evalkit runs show {baseline.run_id}",
        "compare": f"evalkit compare {baseline.run_id} {candidate.run_id} {measures}",
        # The measures the rule tested, so Compare opens on them rather than its default.
        **ctx.dashboard(
            "compare",
            baseline=baseline.run_id,
            candidate=candidate.run_id,
            measure=",".join(params.measures),
        ),
    }
    figures = (
        f"{primary.measure} {primary.baseline_mean:.4f} -> {primary.candidate_mean:.4f} "
        f"(delta {primary.delta:+.4f}, {confidence}% CI [{primary.ci_low:+.4f}, "
        f"{primary.ci_high:+.4f}], Holm-adjusted p = {primary.p_adjusted:.3g}, "
        f"{primary.n} queries); run {candidate.run_id} vs baseline {baseline.run_id}"
    )
    failed = [
        f"{len(ids)} failed queries of the {role} counted as 0"
        for role, ids in (
            ("candidate", comparison.failed_in_candidate),
            ("baseline", comparison.failed_in_baseline),
        )
        if ids
    ]
    if failed:
        figures += f"; {'; '.join(failed)}"
    if active:
        figures += _explain(ctx, evidence, lambda: explain_comparison(ctx.store, report))
        title = f"{primary.measure} dropped by {-primary.delta:.4f} on goldset {params.goldset}"
    else:
        title = f"{primary.measure} on goldset {params.goldset}: no significant drop"
    return Signal(
        subject=_subject(params),
        active=active,
        title=title,
        summary=figures,
        evidence=evidence,
        links=links,
    )


def _explain(ctx: RuleContext, evidence: dict[str, Any], explain: Callable[[], Explanation]) -> str:
    """Add the probable causes to ``evidence`` (``probable_causes``) and return the top one
    for the summary. Causes are extra evidence: when they cannot be joined (runs scored
    without a goldset, say) the alert fires without them and says why."""
    try:
        explanation = explain()
    except EvalkitError as error:
        evidence["probable_causes"] = {"causes": [], "unavailable": str(error)}
        return ""
    data = explanation.to_dict(ctx.dashboard_url)
    for cause in data["causes"]:
        cause["evidence"] = cause["evidence"][:CAUSE_EVIDENCE_ROWS]
    evidence["probable_causes"] = data
    top = explanation.top
    if top is None or top.score <= 0:
        return ""
    return f". Probable cause ({top.score:.0%} of the loss): {top.statement}"


def _sequential(ctx: RuleContext, params: PrecisionRegressionParams) -> list[Signal]:
    runs = goldset_runs(
        ctx.store,
        params.goldset,
        label=params.label,
        limit=params.history,
        retriever=params.retriever,
    )
    series: dict[str, list[RunRecord]] = {}
    for run in reversed(runs):
        series.setdefault(run.retriever_id, []).append(run)
    return _retired(ctx, params) + [
        signal
        for retriever, retriever_runs in series.items()
        for signal in _sequential_series(ctx, params, retriever, retriever_runs)
    ]


def _retired(ctx: RuleContext, params: PrecisionRegressionParams) -> list[Signal]:
    """Clear what earlier versions raised about the one series that mixed every retriever
    of the goldset (subject ``goldset[/label]:measure``): each retriever is a series of its
    own now, under its own subject, and the mixed one would otherwise stay firing."""
    signals = []
    for measure in params.measures:
        legacy = f"{_subject(params)}:{measure}"
        state = ctx.previous.get(legacy)
        if state is None or not state.active:
            continue
        signals.append(
            Signal(
                subject=legacy,
                active=False,
                title=f"{measure} on goldset {params.goldset}: now watched per retriever",
                summary=(
                    "this series mixed the runs of every retriever of the goldset; each "
                    "retriever is now a series of its own, alerting under its own subject"
                ),
            )
        )
    return signals


def _sequential_series(
    ctx: RuleContext, params: PrecisionRegressionParams, retriever: str, runs: list[RunRecord]
) -> list[Signal]:
    """The signals of one retriever's series of runs (oldest first), one per measure."""
    signals = []
    for measure in params.measures:
        series = [(run, run.aggregates.get(measure)) for run in runs]
        points = [(run, float(value)) for run, value in series if value is not None]
        if len(points) <= params.warmup:
            continue
        values = [value for _, value in points]
        trace = sequential_trace(params.method, values, **params.model_dump(include=_DETECTOR))
        last = trace.state(len(values) - 1)
        latest_run = points[-1][0]
        change_run = points[last.change_point][0].run_id if last.change_point is not None else None
        severity = AlertSeverity.warning if last.level is AlertLevel.WARNING else None
        evidence: dict[str, Any] = {
            "method": params.method,
            "goldset": params.goldset,
            "label": params.label,
            "retriever": retriever,
            "metric": measure,
            "candidate": last.value,
            "baseline": trace.baseline_mean,
            "baseline_sd": trace.baseline_sd,
            "delta": last.value - trace.baseline_mean,
            "statistic": last.statistic,
            "level": last.level.value,
            "h_warning": params.h_warning,
            "h_alert": params.h_alert,
            "change_point_run": change_run,
            "candidate_run": latest_run.run_id,
            "n_runs": len(values),
            "recent": [
                {"run_id": run.run_id, "value": value, "started_at": iso(run.started_at)}
                for run, value in points[-10:]
            ],
        }
        active = last.level is not AlertLevel.OK
        verb = "is dropping" if active else "is steady"
        explained = ""
        if active and last.change_point is not None and last.change_point > 0:
            # The change point is the first run of the new level: the run before it is the
            # last of the old one, the baseline the causes are joined against.
            before = points[last.change_point - 1][0].run_id
            explained = _explain(
                ctx,
                evidence,
                partial(
                    explain_runs,
                    ctx.store,
                    latest_run.run_id,
                    baseline=before,
                    measures=[measure],
                    test=PairedTestSettings(resamples=params.resamples, seed=params.seed),
                ),
            )
        signals.append(
            Signal(
                subject=f"{_subject(params)}|{retriever}:{measure}",
                active=active,
                severity=severity,
                title=(
                    f"{measure} on goldset {params.goldset} by {retriever} {verb} ({params.method})"
                ),
                summary=(
                    f"{measure} {last.value:.4f} in run {latest_run.run_id} against a baseline "
                    f"of {trace.baseline_mean:.4f}; {params.method} statistic "
                    f"{last.statistic:.2f} (warning at {params.h_warning:g}, alert at "
                    f"{params.h_alert:g}), level {last.level.value}"
                    + (f", change from run {change_run}" if change_run else "")
                    + explained
                ),
                evidence=evidence,
                links={
                    "candidate_run": f"evalkit runs show {latest_run.run_id}",
                    **ctx.dashboard("quality", goldset=params.goldset, measure=measure),
                },
            )
        )
    return signals


PRECISION_REGRESSION = RuleKind(
    "precision_regression",
    PrecisionRegressionParams,
    _precision_regression,
    "a goldset measure dropped (gate statistics or a sequential detector)",
)
