"""Job kinds that read production traffic: ``traffic_ingest`` (new log lines only, for a short
interval) and ``traffic`` (ingest, sample a window, replay it and score, judge or estimate
it), holding the store only for short stretches as the ``evalkit traffic`` commands do.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import Field, model_validator

from evalkit.clock import utc_now
from evalkit.pipeline import CollectionTexts, CorpusTexts, DocumentTexts
from evalkit.pipeline.traffic_cycle import run_traffic_cycle
from evalkit.records.requests import (
    DEFAULT_MIN_PER_STRATUM,
    DEFAULT_TRAFFIC_SAMPLE,
    JUDGING_DEFAULTS,
    MAX_K,
    TRAFFIC_REPLAY_DEFAULTS,
    TrafficCycleRequest,
    TrafficReplayRequest,
)
from evalkit.scheduler.job_kinds.base import (
    JobContext,
    JobKind,
    JobOutcome,
    JobParams,
    RetrieverParams,
    checked_by,
)
from evalkit.store.traffic import record_count
from evalkit.traffic import (
    SampleSpec,
    ingest_paths,
    parse_stratification,
    parse_window,
    window_containing,
)
from evalkit.traffic.otlp import SpanMapping
from evalkit.traffic.redaction import Redaction

if TYPE_CHECKING:
    from evalkit.config import Settings
    from evalkit.store.store import Store
    from evalkit.traffic.ingest import IngestReport

__all__ = [
    "DEFAULT_REPORTED_PROBLEMS",
    "TRAFFIC",
    "TRAFFIC_INGEST",
    "TrafficIngestParams",
    "TrafficParams",
]


_UNITS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}
_READ_STATUSES = frozenset({"new", "resumed", "restarted"})
DEFAULT_REPORTED_PROBLEMS = 20
"""Malformed lines listed in an ingest's job-run summary (all are counted and stored)."""


class _IngestParams(JobParams):
    """What is ingested and how it is redacted (``evalkit traffic ingest``'s options)."""

    paths: list[Path] = Field(
        default_factory=list, description="Log files or directories ingested first."
    )
    redact: Annotated[list[str], checked_by(lambda names: Redaction.build(patterns=names))] = Field(
        default_factory=list, description="Named redaction patterns."
    )
    redact_pattern: Annotated[
        list[str], checked_by(lambda expressions: Redaction.build(custom=expressions))
    ] = Field(default_factory=list, description="RE2 regular expressions masked as <redacted>.")
    drop: Annotated[list[str], checked_by(lambda fields: Redaction.build(drop=fields))] = Field(
        default_factory=list, description="Fields not stored at all."
    )
    file_format: Literal["jsonl", "parquet", "otlp-json"] | None = Field(
        default=None,
        description="Read every file as this format (otlp-json: an OpenTelemetry Collector "
        "file exporter's output); default: by file name.",
    )

    def redaction(self) -> Redaction:
        """The redaction these fields describe."""

        return Redaction.build(patterns=self.redact, custom=self.redact_pattern, drop=self.drop)


def _ingest(
    ctx: JobContext, store: Store, params: _IngestParams, *, report_problems: int
) -> tuple[IngestReport, dict[str, Any]]:
    """Ingest ``params.paths`` into ``store`` (stoppable between batches) and summarise the
    pass."""

    report = ingest_paths(
        store,
        params.paths,
        redaction=params.redaction(),
        max_reported_problems=report_problems,
        progress=ctx.progress,
        file_format=params.file_format,
        spans=SpanMapping(
            tenant_attribute=ctx.settings.otlp.tenant_attribute,
            document_id_keys=tuple(ctx.settings.otlp.document_id_keys),
        ),
    )
    statuses = Counter(entry.status for entry in report.files)
    notes = [f"{entry.path}: {entry.note}" for entry in report.files if entry.note]
    summary = {
        "records_added": report.records_added,
        "lines_read": report.lines_read,
        "duplicates": report.duplicates,
        "malformed": report.malformed,
        "files_read": sum(statuses[status] for status in _READ_STATUSES),
        "files": dict(sorted(statuses.items())),
        "problems": [str(problem) for problem in report.problems],
        "n_problems": report.n_problems,
        "notes": notes[:report_problems],
        "unknown_fields": dict(report.unknown_fields),
    }
    return report, summary


class TrafficIngestParams(_IngestParams):
    """``kind = "traffic_ingest"``: ingest new log lines, nothing else."""

    paths: list[Path] = Field(
        min_length=1, description="Log files or directories (a directory's traffic files)."
    )
    strict: bool = Field(
        default=False,
        description="A pass that met malformed lines or unreadable files ends `partial`.",
    )
    report_problems: int = Field(
        default=DEFAULT_REPORTED_PROBLEMS,
        ge=0,
        description="Malformed lines listed (file:line) in the job run's summary.",
    )


def _traffic_ingest(ctx: JobContext, params: TrafficIngestParams) -> JobOutcome:
    report, summary = _ingest(
        ctx, ctx.require_store(), params, report_problems=params.report_problems
    )
    if params.strict and report.n_problems:
        first = f"; first: {report.problems[0]}" if report.problems else ""
        return JobOutcome(
            status="partial",
            summary=summary,
            error=f"{report.n_problems} malformed line(s) or unreadable file(s) in the traffic "
            f"logs (the other lines were ingested){first}",
        )
    return JobOutcome(summary=summary)


class TrafficParams(RetrieverParams, _IngestParams):
    """``kind = "traffic"``: ingest, sample a window, replay the sample."""

    window: Annotated[str | None, checked_by(parse_window)] = Field(
        default=None, description="Window label to sample (default: the previous one)."
    )
    granularity: Literal["hour", "day", "week"] = Field(
        default="day", description="Window size when `window` is not given."
    )
    offset: int = Field(
        default=1, ge=0, description="Windows back from the current one (1: the last complete)."
    )
    n: int = Field(default=DEFAULT_TRAFFIC_SAMPLE, ge=1, le=MAX_K, description="Queries sampled.")
    seed: int = Field(default=0, ge=0, description="Sample seed.")
    stratify_by: Annotated[str | None, checked_by(parse_stratification)] = Field(
        default=None, description="tenant or tag:KEY."
    )
    min_per_stratum: int = Field(
        default=DEFAULT_MIN_PER_STRATUM, ge=0, description="Minimum per stratum."
    )
    replay: bool = Field(default=True, description="Replay the sample.")
    k: int = Field(
        default=TRAFFIC_REPLAY_DEFAULTS.k,
        ge=1,
        le=MAX_K,
        description="Documents per replayed query.",
    )
    low_confidence: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="Top-1 score below which a query is low-confidence.",
    )
    embed_sample: int = Field(
        default=TRAFFIC_REPLAY_DEFAULTS.embedding_sample_size,
        ge=0,
        description="Query embeddings stored for drift checks (0: none).",
    )
    tenant_isolation: bool = Field(
        default=TRAFFIC_REPLAY_DEFAULTS.tenant_isolation, description="Filter each query by tenant."
    )
    answers: bool = Field(
        default=TRAFFIC_REPLAY_DEFAULTS.answers,
        description="Score the answers the log holds for the replayed queries (faithfulness).",
    )
    judge: bool = Field(
        default=False,
        description="Label the replayed (and logged) top-k with the [judge] LLM assessor and "
        "store the window's judged precision, nDCG and hit rate (needs `corpus`).",
    )
    corpus: Path | None = Field(
        default=None,
        description="The corpus the index was built from, for `judge`'s texts (default: the "
        "job's collection's stored documents).",
    )
    max_judgments: int | None = Field(
        default=JUDGING_DEFAULTS.max_judgments,
        ge=0,
        description="With `judge`: new pairs sent at most per run (default: no limit).",
    )
    estimate: bool = Field(
        default=False,
        description="Estimate the window's precision@k without labels, from the scores "
        "calibrated on the newest goldset run of the same retriever and model (no LLM).",
    )
    slices: bool = Field(
        default=False,
        description="Cut the window into slices (topics, tenants, tags) and test each against "
        "the baseline window (docs/slices.md), for the slice_precision_drop and "
        "slice_emerged rules.",
    )

    @model_validator(mode="after")
    def _judge_needs_a_corpus(self) -> Self:
        if self.judge and self.corpus is None and self.collection is None:
            raise ValueError(
                "judge = true needs corpus (the corpus the index was built from) or a "
                "collection that holds the documents"
            )
        return self

    def document_texts(self, settings: Settings) -> DocumentTexts:
        """Where ``judge`` reads document texts: ``corpus``, else the job's collection."""
        if self.corpus is not None:
            return CorpusTexts(self.corpus)
        return CollectionTexts(settings, str(self.collection), self.chroma_url)

    @property
    def needs_retriever(self) -> bool:
        """Whether the job replays its sample, and so queries a retriever."""
        return self.replay


def _traffic(ctx: JobContext, params: TrafficParams) -> JobOutcome:

    # Held through the replay (and the judge's calls), the store would keep every other
    # process and the service's alert outbox waiting for all of it (holds_store=False).
    access = ctx.require_access()
    summary: dict[str, Any] = {}
    if params.window is not None:
        window = parse_window(params.window)
    else:
        moment = utc_now() - _UNITS[params.granularity] * params.offset
        window = window_containing(moment, params.granularity)
    with access.writer("ingesting traffic") as store:
        if params.paths:
            _, summary["ingest"] = _ingest(
                ctx, store, params, report_problems=DEFAULT_REPORTED_PROBLEMS
            )
        empty = record_count(store) == 0
    summary["window"] = window.label
    if empty:
        return JobOutcome(summary={**summary, "note": "no traffic ingested yet"})
    ctx.check_cancelled()
    replay = TrafficReplayRequest.from_settings(
        ctx.settings,
        k=params.k,
        low_confidence=params.low_confidence,
        tenant_isolation=params.tenant_isolation,
        embedding_sample_size=params.embed_sample,
        answers=params.answers,
        label=ctx.job,
    )
    cycle = run_traffic_cycle(
        access,
        TrafficCycleRequest(
            replay=replay if params.replay else None,
            judge=params.judge,
            max_judgments=params.max_judgments,
            estimate=params.estimate,
            slices=params.slices,
        ),
        ctx.settings,
        partial(params.build, ctx.settings),
        texts=params.document_texts(ctx.settings) if params.judge else None,
        draw=SampleSpec(
            window=window,
            n=params.n,
            seed=params.seed,
            stratify_by=parse_stratification(params.stratify_by),
            min_per_stratum=params.min_per_stratum,
        ),
        progress=ctx.progress,
        judging_progress=ctx.progress,
        between=ctx.check_cancelled,
    )
    assert cycle.sample is not None, "the job draws its sample"
    summary["sample_id"] = cycle.sample.sample_id
    summary["n_sampled"] = cycle.sample.n_sampled
    replayed = cycle.replay
    if replayed is None:
        return JobOutcome(summary=summary)
    run = replayed.run
    summary.update(
        run_id=run.run_id,
        status=run.status,
        low_confidence_share=replayed.summary.low_confidence_share,
        churn=replayed.summary.churn,
    )
    if params.answers:
        scored = replayed.answers
        summary["answers"] = scored.to_dict(per_item=False) if scored else None
    judged = cycle.judged
    if judged is not None:
        summary["judged"] = {
            "judging": judged.judging.to_dict(),
            "figures": {
                f"{figure.source}:{figure.measure}": figure.value for figure in judged.figures
            },
            "agreement": judged.agreement.agreement_id if judged.agreement else None,
        }
    estimated = cycle.estimate
    if estimated is not None:
        summary["estimate"] = {
            "value": estimated.figure.value,
            "low": estimated.figure.low,
            "high": estimated.figure.high,
            "calibration_run": estimated.calibration_run.run_id,
        }
    elif cycle.estimate_note is not None:
        summary["estimate"] = {"note": cycle.estimate_note}
    if cycle.slices is not None:
        summary["slices"] = {
            "topic_version": None if cycle.slices.topics is None else cycle.slices.topics.version,
            "baseline_window": cycle.slices.baseline_window,
            "grew": [c.slice for c in cycle.slices.changes if c.grew],
            "dropped": [c.slice for c in cycle.slices.changes if c.dropped],
            "content_gaps": [f.slice for f in cycle.slices.content_gaps],
        }
    elif cycle.slices_note is not None:
        summary["slices"] = {"note": cycle.slices_note}
    return JobOutcome.of_run(run, summary)


TRAFFIC_INGEST = JobKind(
    "traffic_ingest", TrafficIngestParams, _traffic_ingest, "ingest new traffic log lines"
)
TRAFFIC = JobKind(
    "traffic",
    TrafficParams,
    _traffic,
    "ingest, sample and replay production traffic",
    holds_store=False,
)
