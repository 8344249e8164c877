"""Rule kinds: each reads stored findings and says, per subject, whether its condition holds.

A kind is registered in ``RULE_KINDS`` with the model of its ``[[alerts.rules]]`` fields
and an evaluator ``(RuleContext, params) -> list[Signal]``; ``register_rule_kind`` adds
more, so a new area of evalkit plugs its findings in by name. Evaluators only read the
store; the engine (``evalkit.alerts.engine``) turns signals into notifications.

Kinds:

- ``precision_regression``: the newest goldset run against a pinned baseline run with the
  gate's paired statistics (``method = "gate"``), or the series of per-run means with a
  sequential detector (``page_hinkley``, ``cusum``).
- ``embedding_drift``: the newest stored drift check of each watched stream and subject.
- ``model_mismatch``: drift checks that found a model mismatch, and audit findings of
  vectors made by another model.
- ``audit_findings``: findings of the newest audit of each collection (duplicates,
  staleness, ANN recall, coverage...), with the finding's own severity.
- ``job_failure``: jobs whose last runs failed or were interrupted.
- ``low_confidence_rate``: the share of replayed traffic queries whose top score is low.
- ``faithfulness_drop``: the newest answer scoring against a pinned (or the previous)
  scoring, item by item, with the gate's paired statistics.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from evalkit.alerts.model import Severity, Signal
from evalkit.errors import ConfigError, EvalkitError
from evalkit.registry import register_named
from evalkit.store.alerts import has_tables

if TYPE_CHECKING:
    from evalkit.store.alerts import StoredAlertState
    from evalkit.store.store import RunRecord, Store

__all__ = [
    "MODEL_MISMATCH_FINDINGS",
    "RULE_KINDS",
    "RuleContext",
    "RuleKind",
    "register_rule_kind",
]

MODEL_MISMATCH_FINDINGS = (
    "model_fingerprint_mismatch",
    "vectors_from_another_model",
)
"""Audit finding kinds that mean the index was built with another embedding model."""

_CACHE_SIZE = 64


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What an evaluator gets besides its parameters.

    ``previous`` holds the stored state of this rule's keys by subject, so an evaluator can
    report a subject that no longer has findings as cleared.
    """

    store: Store
    now: datetime
    rule: str
    previous: Mapping[str, StoredAlertState]
    dashboard_url: str | None = None

    def dashboard(self, page: str, **query: str) -> dict[str, str]:
        """A dashboard link (as ``{"dashboard": url}``) when a dashboard URL is configured."""
        if not self.dashboard_url:
            return {}
        return {"dashboard": f"{self.dashboard_url.rstrip('/')}/{page}?{urlencode(query)}"}


@dataclass(frozen=True, slots=True)
class RuleKind:
    """A rule kind: its configuration model and evaluator."""

    name: str
    params: type[BaseModel]
    evaluate: Callable[[RuleContext, Any], list[Signal]]
    description: str


RULE_KINDS: dict[str, RuleKind] = {}
"""Rule kinds by name (see the module docstring)."""


def register_rule_kind(kind: RuleKind) -> None:
    """Make a rule kind available to ``[[alerts.rules]]`` (a name is registered once)."""
    register_named(RULE_KINDS, kind, what="rule kind")


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _iso(moment: datetime | None) -> str | None:
    return f"{moment.isoformat()}Z" if moment is not None else None


# -- precision regression ---------------------------------------------------------------


class PrecisionRegressionParams(_Params):
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
        from evalkit.metrics import parse_measures

        try:
            return [str(measure) for measure in parse_measures(names)]
        except EvalkitError as error:
            raise ValueError(str(error)) from error

    @model_validator(mode="after")
    def _baseline_for_gate(self) -> PrecisionRegressionParams:
        if self.method == "gate" and not self.baseline_run:
            raise ValueError("method 'gate' needs baseline_run (the pinned baseline run id)")
        if self.h_alert < self.h_warning:
            raise ValueError("h_alert must be >= h_warning")
        return self


_gate_cache: OrderedDict[tuple[str, ...], list[Signal]] = OrderedDict()


def _unchanged(ctx: RuleContext, subject: str, inputs: Mapping[str, Any]) -> Signal | None:
    """The stored verdict of ``subject`` when it was reached from the same ``inputs``.

    Paired comparisons cost a bootstrap; a restarted service (or a rule evaluated again
    before anything new was stored) reads the verdict it stored instead of recomputing it.
    """
    state = ctx.previous.get(subject)
    if state is None or not state.title:
        return None
    if any(state.evidence.get(name) != value for name, value in inputs.items()):
        return None
    return Signal(
        subject=subject,
        active=state.active,
        title=state.title,
        summary=state.summary,
        severity=Severity(state.severity) if state.severity else None,
        evidence=dict(state.evidence),
        links=dict(state.links),
    )


def _gate_inputs(
    params: PrecisionRegressionParams, baseline: RunRecord, candidate: RunRecord
) -> dict[str, Any]:
    return {
        "baseline_run": baseline.run_id,
        "candidate_run": candidate.run_id,
        "measures": list(params.measures),
        "alpha": params.alpha,
        "min_effect": params.min_effect,
        "resamples": params.resamples,
        "seed": params.seed,
        "worst": params.worst,
    }


def _goldset_runs(
    store: Store,
    params: PrecisionRegressionParams,
    *,
    limit: int,
    statuses: tuple[str, ...] = ("complete",),
) -> list[RunRecord]:
    runs = store.list_runs(goldset=params.goldset, status=None, limit=limit)
    return [
        run
        for run in runs
        if run.status in statuses
        and run.spec.kind == "goldset"
        and (params.label is None or run.spec.label == params.label)
    ]


def _subject(params: PrecisionRegressionParams) -> str:
    return params.goldset if params.label is None else f"{params.goldset}/{params.label}"


def _precision_regression(ctx: RuleContext, params: PrecisionRegressionParams) -> list[Signal]:
    if params.method == "gate":
        return _gate(ctx, params)
    return _sequential(ctx, params)


def _gate(ctx: RuleContext, params: PrecisionRegressionParams) -> list[Signal]:
    baseline = ctx.store.get_run(str(params.baseline_run))
    # A partial run is the newest evidence too: skipping it would report the older complete
    # run as "no regression" while the retriever fails queries. Its failed queries count as 0.
    candidates = [
        run
        for run in _goldset_runs(ctx.store, params, limit=50, statuses=("complete", "partial"))
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
    stored = _unchanged(ctx, _subject(params), _gate_inputs(params, baseline, candidate))
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
    from evalkit.pipeline import compare_scored, score_stored_run
    from evalkit.stats import worst_queries

    base = score_stored_run(ctx.store, baseline.run_id, params.measures)
    cand = score_stored_run(ctx.store, candidate.run_id, params.measures)
    comparison = compare_scored(
        base,
        cand,
        params.measures,
        failed_as_zero=True,
        alpha=params.alpha,
        min_effect=params.min_effect,
        resamples=params.resamples,
        seed=params.seed,
    )
    regressed = [m for m in comparison.metrics if m.decision.value == "regression"]
    primary = min(regressed or comparison.metrics, key=lambda metric: metric.delta)
    active = comparison.decision.value == "regression"
    worst = [
        {
            "query_id": drop.query_id,
            "baseline": drop.baseline,
            "candidate": drop.candidate,
            "delta": drop.delta,
        }
        for drop in worst_queries(comparison, primary.measure, n=params.worst)
    ]
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
        "candidate_started_at": _iso(candidate.started_at),
        "metrics": {metric.measure: metric.to_dict() for metric in comparison.metrics},
        "worst_queries": worst,
    }
    measures = " ".join(f"-m {measure}" for measure in params.measures)
    links = {
        "candidate_run": f"evalkit runs show {candidate.run_id}",
        "baseline_run": f"evalkit runs show {baseline.run_id}",
        "compare": f"evalkit compare {baseline.run_id} {candidate.run_id} {measures}",
        **ctx.dashboard("compare", baseline=baseline.run_id, candidate=candidate.run_id),
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
        title = f"{primary.measure} dropped {primary.delta:+.4f} on goldset {params.goldset}"
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


def _sequential(ctx: RuleContext, params: PrecisionRegressionParams) -> list[Signal]:
    from evalkit.drift import AlertLevel, cusum, page_hinkley

    runs = list(reversed(_goldset_runs(ctx.store, params, limit=params.history)))
    signals = []
    for measure in params.measures:
        series = [(run, run.aggregates.get(measure)) for run in runs]
        points = [(run, float(value)) for run, value in series if value is not None]
        if len(points) <= params.warmup:
            continue
        values = [value for _, value in points]
        if params.method == "cusum":
            trace = cusum(
                values,
                k=params.allowance,
                h_warning=params.h_warning,
                h_alert=params.h_alert,
                warmup=params.warmup,
                min_sd=params.min_sd,
            )
        else:
            trace = page_hinkley(
                values,
                delta=params.allowance,
                h_warning=params.h_warning,
                h_alert=params.h_alert,
                warmup=params.warmup,
                min_sd=params.min_sd,
            )
        last = trace.state(len(values) - 1)
        latest_run = points[-1][0]
        change_run = points[last.change_point][0].run_id if last.change_point is not None else None
        severity = Severity.warning if last.level is AlertLevel.WARNING else None
        evidence = {
            "method": params.method,
            "goldset": params.goldset,
            "label": params.label,
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
                {"run_id": run.run_id, "value": value, "started_at": _iso(run.started_at)}
                for run, value in points[-10:]
            ],
        }
        active = last.level is not AlertLevel.OK
        verb = "is dropping" if active else "is steady"
        signals.append(
            Signal(
                subject=f"{_subject(params)}:{measure}",
                active=active,
                severity=severity,
                title=f"{measure} on goldset {params.goldset} {verb} ({params.method})",
                summary=(
                    f"{measure} {last.value:.4f} in run {latest_run.run_id} against a baseline "
                    f"of {trace.baseline_mean:.4f}; {params.method} statistic "
                    f"{last.statistic:.2f} (warning at {params.h_warning:g}, alert at "
                    f"{params.h_alert:g}), level {last.level.value}"
                    + (f", change from run {change_run}" if change_run else "")
                ),
                evidence=evidence,
                links={
                    "candidate_run": f"evalkit runs show {latest_run.run_id}",
                    **ctx.dashboard("quality", goldset=params.goldset, measure=measure),
                },
            )
        )
    return signals


# -- drift checks -----------------------------------------------------------------------


class EmbeddingDriftParams(_Params):
    """``kind = "embedding_drift"``."""

    streams: list[str] = Field(
        default_factory=lambda: ["queries", "documents"],
        min_length=1,
        description="Drift-check streams watched (queries, documents, ...).",
    )
    subject: str | None = Field(default=None, description="Only checks of this subject.")
    include_warnings: bool = Field(
        default=False, description="Also fire on checks whose finding is 'warning'."
    )
    lookback: int = Field(default=500, ge=1, description="Checks read per stream.")


def _latest_checks(
    ctx: RuleContext, streams: Sequence[str | None], subject: str | None, lookback: int
) -> list[Any]:
    from evalkit.store.drift import list_drift_checks

    latest: dict[tuple[str, str | None], Any] = {}
    for stream in streams:
        for check in list_drift_checks(ctx.store, stream=stream, subject=subject, limit=lookback):
            latest.setdefault((check.stream, check.subject), check)
    return list(latest.values())


def _check_evidence(check: Any) -> dict[str, Any]:
    return {
        "check_id": check.check_id,
        "stream": check.stream,
        "subject": check.subject,
        "finding": check.finding,
        "method": check.method,
        "statistic": check.statistic,
        "p_value": check.p_value,
        "threshold": check.threshold,
        "effect_size": check.effect_size,
        "n_reference": check.n_reference,
        "n_current": check.n_current,
        "reference": check.reference,
        "current": check.current,
        "checked_at": _iso(check.created_at),
        "report_path": check.report_path,
        "details": dict(check.details),
    }


def _embedding_drift(ctx: RuleContext, params: EmbeddingDriftParams) -> list[Signal]:
    firing = {"drift", "warning"} if params.include_warnings else {"drift"}
    signals = []
    for check in _latest_checks(ctx, params.streams, params.subject, params.lookback):
        if check.finding == "model_mismatch":
            continue
        where = f"{check.stream}/{check.subject or '-'}"
        p_value = "-" if check.p_value is None else f"{check.p_value:.3g}"
        effect = "-" if check.effect_size is None else f"{check.effect_size:.4f}"
        signals.append(
            Signal(
                subject=where,
                active=check.finding in firing,
                severity=Severity.warning if check.finding == "warning" else None,
                title=f"{check.stream} embeddings of {check.subject or 'the index'}: "
                f"{check.finding}",
                summary=f"{check.method}: statistic {check.statistic}, p = {p_value}, effect "
                f"size {effect}, {check.n_reference} reference vs {check.n_current} current "
                f"({check.reference} -> {check.current})",
                evidence=_check_evidence(check),
                links=ctx.dashboard("drift", check=check.check_id),
            )
        )
    return signals


class ModelMismatchParams(_Params):
    """``kind = "model_mismatch"``."""

    streams: list[str] | None = Field(
        default=None, description="Drift-check streams read (default: all)."
    )
    audits: bool = Field(
        default=True, description="Also fire on audit findings of vectors from another model."
    )
    lookback: int = Field(default=500, ge=1, description="Checks read.")


def _model_mismatch(ctx: RuleContext, params: ModelMismatchParams) -> list[Signal]:
    signals = []
    streams: Sequence[str | None] = params.streams or [None]
    for check in _latest_checks(ctx, streams, None, params.lookback):
        signals.append(
            Signal(
                subject=f"{check.stream}/{check.subject or '-'}",
                active=check.finding == "model_mismatch",
                title=f"embedding model mismatch on {check.stream} of {check.subject or '-'}"
                if check.finding == "model_mismatch"
                else f"embedding models of {check.stream} of {check.subject or '-'} agree",
                summary=f"{check.method}: {check.reference} vs {check.current}",
                evidence=_check_evidence(check),
                links=ctx.dashboard("drift", check=check.check_id),
            )
        )
    if params.audits and has_tables(ctx.store, "audits", "audit_findings"):
        signals += _audit_signals(
            ctx,
            kinds=MODEL_MISMATCH_FINDINGS,
            collection=None,
            min_severity="warning",
            subject_prefix="audit/",
            per_kind=False,
        )
    return signals


# -- audit findings ---------------------------------------------------------------------


class AuditFindingsParams(_Params):
    """``kind = "audit_findings"``."""

    kinds: list[str] | None = Field(
        default=None,
        description="Finding kinds that fire (default: all but the model-mismatch kinds, "
        "which the model_mismatch rule covers).",
    )
    collection: str | None = Field(default=None, description="Only this collection.")
    min_severity: Literal["warning", "critical"] = Field(
        default="warning", description="Least severe finding that fires."
    )


def _audit_signals(
    ctx: RuleContext,
    *,
    kinds: Sequence[str] | None,
    collection: str | None,
    min_severity: str,
    subject_prefix: str = "",
    per_kind: bool = True,
    exclude: Sequence[str] = (),
) -> list[Signal]:
    from evalkit.store.audit import list_audit_findings, list_audits

    latest: dict[str, Any] = {}
    for audit in list_audits(ctx.store, collection=collection, limit=1000):
        latest.setdefault(audit.collection, audit)
    findings = [
        finding
        for finding in list_audit_findings(
            ctx.store, collection=collection, min_severity=min_severity, latest_only=True
        )
        if (kinds is None or finding.kind in kinds) and finding.kind not in exclude
    ]
    grouped: dict[str, list[Any]] = {}
    for finding in findings:
        key = f"{subject_prefix}{finding.collection}"
        if per_kind:
            key = f"{key}/{finding.kind}"
        grouped.setdefault(key, []).append(finding)
    signals = []
    for subject, found in grouped.items():
        worst = max(found, key=lambda finding: finding.severity == "critical")
        newest = latest.get(worst.collection)
        kinds_found = sorted({finding.kind for finding in found})
        signals.append(
            Signal(
                subject=subject,
                active=True,
                severity=Severity(worst.severity),
                title=f"index audit of {worst.collection}: {', '.join(kinds_found)}",
                summary="; ".join(finding.message for finding in found)[:1000],
                evidence={
                    "audit_id": worst.audit_id,
                    "collection": worst.collection,
                    "audited_at": _iso(newest.finished_at if newest else worst.created_at),
                    "findings": [
                        {
                            "kind": finding.kind,
                            "check": finding.check,
                            "severity": finding.severity,
                            "message": finding.message,
                            "count": finding.count,
                            "value": finding.value,
                            "threshold": finding.threshold,
                            "doc_ids": list(finding.doc_ids[:10]),
                            "clusters": [list(c[:10]) for c in finding.clusters[:5]],
                            "query_ids": list(finding.query_ids[:10]),
                        }
                        for finding in found
                    ],
                    "value": worst.value,
                    "threshold": worst.threshold,
                },
                links={
                    "audit": f"evalkit audit --collection {worst.collection}",
                    **ctx.dashboard("index_health", audit=worst.audit_id),
                },
            )
        )
    for subject, state in ctx.previous.items():
        if not state.active or subject in grouped or not subject.startswith(subject_prefix):
            continue
        audited = subject[len(subject_prefix) :].split("/")[0]
        if audited in latest:
            signals.append(
                Signal(
                    subject=subject,
                    active=False,
                    title=f"index audit of {audited}: finding cleared",
                    summary=f"the newest audit of {audited} "
                    f"({latest[audited].audit_id}) no longer reports it",
                    evidence={"audit_id": latest[audited].audit_id, "collection": audited},
                )
            )
    return signals


def _audit_findings(ctx: RuleContext, params: AuditFindingsParams) -> list[Signal]:
    if not has_tables(ctx.store, "audits", "audit_findings"):
        return []
    return _audit_signals(
        ctx,
        kinds=params.kinds,
        collection=params.collection,
        min_severity=params.min_severity,
        exclude=() if params.kinds else MODEL_MISMATCH_FINDINGS,
    )


# -- job failures -----------------------------------------------------------------------


class JobFailureParams(_Params):
    """``kind = "job_failure"``."""

    jobs: list[str] | None = Field(default=None, description="Jobs watched (default: all).")
    statuses: tuple[Literal["failed", "interrupted", "partial"], ...] = Field(
        default=("failed", "interrupted"),
        min_length=1,
        description="Job-run statuses that count as failures.",
    )
    consecutive: int = Field(
        default=1, ge=1, description="Fire after this many failed runs in a row."
    )


def _job_failure(ctx: RuleContext, params: JobFailureParams) -> list[Signal]:
    from evalkit.store.jobs import latest_job_runs, list_job_runs

    names = params.jobs if params.jobs is not None else sorted(latest_job_runs(ctx.store))
    signals = []
    for job in names:
        finished = [
            run
            for run in list_job_runs(ctx.store, job=job, limit=params.consecutive + 5)
            if run.status != "running"
        ]
        if not finished:
            continue
        streak = 0
        for run in finished:
            if run.status not in params.statuses:
                break
            streak += 1
        last = finished[0]
        active = streak >= params.consecutive
        signals.append(
            Signal(
                subject=job,
                active=active,
                title=f"job {job} {last.status}"
                + (f" ({streak} runs in a row)" if streak > 1 else ""),
                summary=(last.error or f"job {job} {last.status}")[:1000],
                evidence={
                    "job": job,
                    "kind": last.kind,
                    "job_run_id": last.job_run_id,
                    "status": last.status,
                    "error": last.error,
                    "trigger": last.trigger,
                    "started_at": _iso(last.started_at),
                    "finished_at": _iso(last.finished_at),
                    "consecutive_failures": streak,
                    "run_ids": list(last.run_ids),
                },
                links={"history": f"evalkit jobs history {job}"},
            )
        )
    return signals


# -- traffic ----------------------------------------------------------------------------


class LowConfidenceParams(_Params):
    """``kind = "low_confidence_rate"``."""

    threshold: float = Field(
        default=0.2, ge=0, le=1, description="Fire when the low-confidence share exceeds this."
    )
    min_replayed: int = Field(
        default=20, ge=1, description="Ignore windows with fewer replayed queries."
    )


def _low_confidence(ctx: RuleContext, params: LowConfidenceParams) -> list[Signal]:
    from evalkit.store.traffic import list_window_summaries

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


# -- answers ---------------------------------------------------------------------------


class FaithfulnessDropParams(_Params):
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


def _item_values(store: Store, scoring_id: str, params: FaithfulnessDropParams) -> Any:
    from evalkit.store.answers import answer_scores_frame

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
    values = frame.set_index("item_id")["value"].astype(float)
    return values.to_frame(params.metric), len(frame)


def _faithfulness_drop(ctx: RuleContext, params: FaithfulnessDropParams) -> list[Signal]:
    from evalkit.stats import compare_runs, worst_queries
    from evalkit.store.answers import get_scoring, list_scorings

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
    if params.baseline_scoring is not None:
        baseline = get_scoring(ctx.store, params.baseline_scoring)
    elif len(scorings) > 1:
        baseline = scorings[1]
    else:
        return []
    if baseline.scoring_id == current.scoring_id:
        return []
    subject = params.metric + (f"/{params.source}" if params.source else "")
    inputs = {
        "baseline_scoring": baseline.scoring_id,
        "current_scoring": current.scoring_id,
        "settings": params.model_dump(mode="json"),
    }
    stored = _unchanged(ctx, subject, inputs)
    if stored is not None:
        return [stored]
    base, n_base = _item_values(ctx.store, baseline.scoring_id, params)
    cand, n_cand = _item_values(ctx.store, current.scoring_id, params)
    shared = base.index.intersection(cand.index)
    if len(shared) < 2:
        return []
    comparison = compare_runs(
        base,
        cand,
        measures=[params.metric],
        alpha=params.alpha,
        min_effect=params.min_effect,
        resamples=params.resamples,
        seed=params.seed,
    )
    metric = comparison.metric(params.metric)
    active = comparison.decision.value == "regression"
    confidence = round(comparison.confidence * 100)
    return [
        Signal(
            subject=subject,
            active=active,
            title=(
                f"{params.metric} of answers dropped {metric.delta:+.4f}"
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
                    {
                        "query_id": drop.query_id,
                        "baseline": drop.baseline,
                        "candidate": drop.candidate,
                        "delta": drop.delta,
                    }
                    for drop in worst_queries(comparison, params.metric, n=params.worst)
                ],
            },
            links={
                "scoring": f"evalkit answers show {current.scoring_id}",
                **ctx.dashboard("answers", scoring=current.scoring_id),
            },
        )
    ]


for _kind in (
    RuleKind(
        "faithfulness_drop",
        FaithfulnessDropParams,
        _faithfulness_drop,
        "answers became less faithful to their contexts",
    ),
    RuleKind(
        "precision_regression",
        PrecisionRegressionParams,
        _precision_regression,
        "a goldset measure dropped (gate statistics or a sequential detector)",
    ),
    RuleKind(
        "embedding_drift",
        EmbeddingDriftParams,
        _embedding_drift,
        "the newest drift check of a stream found drift",
    ),
    RuleKind(
        "model_mismatch",
        ModelMismatchParams,
        _model_mismatch,
        "query and index embeddings come from different models",
    ),
    RuleKind(
        "audit_findings",
        AuditFindingsParams,
        _audit_findings,
        "the newest index audit has findings",
    ),
    RuleKind("job_failure", JobFailureParams, _job_failure, "a scheduled job failed"),
    RuleKind(
        "low_confidence_rate",
        LowConfidenceParams,
        _low_confidence,
        "too many traffic queries have a low top score",
    ),
):
    register_rule_kind(_kind)


def describe_params(params: BaseModel) -> dict[str, Any]:
    """A rule's parameters as JSON-able values (for listings)."""
    return dict(json.loads(params.model_dump_json()))
