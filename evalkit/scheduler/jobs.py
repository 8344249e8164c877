"""Job kinds: what a ``[[jobs]]`` entry can run.

A kind is registered in ``JOB_KINDS`` with the model of its fields and a function
``(JobContext, params) -> JobOutcome``; ``register_job_kind`` adds more (from a module
listed in ``[scheduler] plugins``, for example), so each area of evalkit plugs in by name.

Kinds:

- ``goldset_replay``: replay a stored goldset against the live retriever, score and store
  the run (labelled with the job's name unless ``label`` says otherwise);
- ``traffic_ingest``: ingest the new lines of log files and directories, nothing else
  (cheap: meant for a short interval, so the store follows the logs);
- ``traffic``: ingest log files, sample a window of traffic and replay the sample;
- ``drift_check``: test the newest traffic window's query embeddings against a reference
  window (``stream = "queries"``), or a goldset measure's series of run means with a
  sequential detector (``stream = "metric"``), and store the check;
- ``audit``: audit a Chroma collection's health and store the findings;
- ``freshness``: measure how long changes at the source take to become retrievable, and
  store the check (docs/freshness.md);
- ``answers``: score a JSONL file of answers (faithfulness and friends) and store the scores;
- ``sweep``: run the points of a sweep file that have no complete run yet (docs/sweeps.md);
- ``retention``: delete the per-query rows of old runs, keeping their aggregates;
- ``command``: run a program (it gets the store to itself: the service does not hold it).

A job that takes long checks ``JobContext.check_cancelled`` (the pipeline's progress
callback does it after every batch), so a shutdown interrupts it between batches and the
run it was writing is marked failed, never left looking complete.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from evalkit.audit import CHECK_NAMES, AuditConfig
from evalkit.clock import utc_now
from evalkit.config import Duration
from evalkit.embedding import build_query_embedder
from evalkit.engines import RayEngine
from evalkit.errors import ConfigError, EvalkitError, NotFoundError, StoreError
from evalkit.judging.assessor import RelevanceAssessor
from evalkit.pipeline import (
    CollectionTexts,
    CorpusTexts,
    DocumentTexts,
    audit_collection,
    check_drift_metric,
    check_drift_queries,
    check_freshness,
    estimate_traffic_run,
    evaluate_goldset,
    judge_traffic_run,
    load_sweep,
    prepare_traffic_replay,
    run_sweep_file,
    sample_and_replay,
    score_answer_file,
)
from evalkit.records.freshness import FreshnessRequest
from evalkit.records.requests import (
    JUDGING_DEFAULTS,
    TRAFFIC_REPLAY_DEFAULTS,
    GoldsetRunRequest,
    JudgingRequest,
    TrafficReplayRequest,
)
from evalkit.registry import register_named
from evalkit.retrievers.chroma_client import collection_name_problem
from evalkit.retrievers.factory import RetrieverOptions, build_retriever
from evalkit.retrievers.versions import open_index_versions, reads_index
from evalkit.store.goldsets import load_stored_goldset
from evalkit.store.retention import prune_run_details, retention_candidates
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
    from evalkit.retrievers.base import Retriever
    from evalkit.store.store import Store
    from evalkit.traffic.ingest import IngestReport
    from evalkit.traffic.redaction import Redaction

__all__ = [
    "JOB_KINDS",
    "JobCancelledError",
    "JobContext",
    "JobKind",
    "JobOutcome",
    "RetrieverParams",
    "register_job_kind",
]

_TERMINATE_GRACE = 5.0
_STDERR_CHARS = 500


class JobCancelledError(EvalkitError):
    """The job was asked to stop (the service is shutting down)."""


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """How a job ended: ``succeeded``, ``partial`` or ``failed``, the runs it stored, a
    JSON-able summary, and an error for people when it did not fully succeed."""

    status: str = "succeeded"
    run_ids: tuple[str, ...] = ()
    summary: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a running job gets: its name, settings, the store, and a way to be stopped.

    ``store`` is None for kinds that do not use it (``JobKind.uses_store``).
    ``pinned_runs`` are the baseline runs alert rules compare against.
    """

    job: str
    settings: Settings
    cancel: threading.Event
    store: Store | None = None
    pinned_runs: tuple[str, ...] = ()
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("evalkit.scheduler"))

    def require_store(self) -> Store:
        """The store (StoreError if this kind was declared not to use it)."""
        if self.store is None:
            raise StoreError(f"job {self.job}: this job kind runs without the store")
        return self.store

    def check_cancelled(self) -> None:
        """Raise JobCancelledError when the service has asked jobs to stop."""
        if self.cancel.is_set():
            raise JobCancelledError(f"job {self.job} was interrupted: evalkit serve is stopping")

    def progress(self, done: int, total: int | None) -> None:
        """A progress callback for the pipeline: stops the job between batches when asked."""
        self.check_cancelled()


@dataclass(frozen=True, slots=True)
class JobKind:
    """A job kind: its configuration model, its function, and whether it uses the store."""

    name: str
    params: type[BaseModel]
    run: Callable[[JobContext, Any], JobOutcome]
    description: str
    uses_store: bool = True


JOB_KINDS: dict[str, JobKind] = {}
"""Job kinds by name (see the module docstring)."""


def register_job_kind(kind: JobKind) -> None:
    """Make a job kind available to ``[[jobs]]`` (a name is registered once)."""
    register_named(JOB_KINDS, kind, what="job kind")


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetrieverParams(_Params):
    """The fields of a job that queries a live retriever (``evalkit run``'s options)."""

    retriever: str | None = Field(
        default=None,
        description="Retriever kind (built-in or plug-in) or module:factory of your own "
        "function (default: collection / http_retriever, else the [retriever] table).",
    )
    retriever_options: dict[str, Any] | None = Field(
        default=None,
        description="Keyword arguments of the retriever factory or plug-in (default: the "
        "[retriever] options).",
    )
    collection: str | None = Field(default=None, description="Chroma collection to query.")
    chroma_url: str | None = Field(default=None, description="Chroma server URL.")
    http_retriever: str | None = Field(default=None, description="HTTP retriever URL.")
    where_key: str | None = Field(
        default=None,
        description="Metadata key (pgvector: column) holding each document's tenant.",
    )
    allow_model_mismatch: bool = Field(
        default=False, description="Query a collection built with another model (diagnosis)."
    )

    @property
    def needs_retriever(self) -> bool:
        """Whether the job queries a retriever (a traffic job may only sample)."""
        return True

    def unnamed_retriever(self, settings: Settings) -> str | None:
        """What is missing when the job needs a retriever that neither these fields nor the
        ``[retriever]`` table name; None when nothing is."""
        named = self.retriever or self.collection or self.chroma_url or self.http_retriever
        configured = settings.retriever.kind or settings.retriever.factory
        if not self.needs_retriever or named or configured:
            return None
        return (
            "name the retriever: retriever (a kind or module:factory), collection or "
            "http_retriever, or a [retriever] table for every job that names none"
        )

    @model_validator(mode="after")
    def _valid_collection(self) -> Self:
        try:
            self.options()
        except ConfigError as error:  # a Chroma collection name Chroma would refuse
            raise ValueError(str(error)) from None
        return self

    def options(self) -> RetrieverOptions:
        """The retriever options these fields describe."""
        return RetrieverOptions(
            collection=self.collection,
            chroma_url=self.chroma_url,
            http_url=self.http_retriever,
            retriever=self.retriever,
            factory_options=self.retriever_options,
            where_key=self.where_key,
            allow_model_mismatch=self.allow_model_mismatch,
        )

    def build(self, settings: Settings) -> Retriever:
        """The retriever these fields name (the ``[retriever]`` table's when they name none)."""
        return build_retriever(self.options(), settings)


_RUN_STATUS = {"complete": "succeeded", "partial": "partial", "failed": "failed"}


# -- goldset replay -----------------------------------------------------------------------


class GoldsetReplayParams(RetrieverParams):
    """``kind = "goldset_replay"``."""

    goldset: str = Field(description="Stored goldset name.")
    goldset_version: str | None = Field(default=None, description="Version (default: newest).")
    k: int | None = Field(default=None, ge=1, description="Documents per query (default: k).")
    measures: list[str] | None = Field(default=None, description="Measures (default set).")
    label: str | None = Field(
        default=None, description="Label stored with the run (default: the job's name)."
    )
    engine: Literal["local", "ray"] = Field(
        default="local",
        description="Where the replay runs: local (the service's process) or ray (a pool of "
        "Ray actors; needs the [ray] extra; docs/scale.md).",
    )
    ray_address: str | None = Field(
        default=None,
        description="Ray cluster of engine = ray (default: RAY_ADDRESS, else a local Ray "
        "instance started for the run).",
    )
    ray_actors: int = Field(
        default=2, ge=1, description="Actors replaying queries with engine = ray."
    )

    def ray_engine(self, settings: Settings) -> RayEngine | None:
        """The Ray engine these fields ask for, or None for the local one."""
        if self.engine != "ray":
            return None
        return RayEngine(self.options(), settings, address=self.ray_address, actors=self.ray_actors)


def _goldset_replay(ctx: JobContext, params: GoldsetReplayParams) -> JobOutcome:

    store = ctx.require_store()
    settings = ctx.settings
    goldset = load_stored_goldset(store, params.goldset, params.goldset_version)
    outcome = evaluate_goldset(
        store,
        goldset,
        params.build(settings),
        GoldsetRunRequest.from_settings(
            settings, k=params.k, measures=params.measures, label=params.label or ctx.job
        ),
        progress=ctx.progress,
        close_retriever=True,
        engine=params.ray_engine(settings),
    )
    run = outcome.run
    return JobOutcome(
        status=_RUN_STATUS[run.status],
        run_ids=(run.run_id,),
        summary={
            "run_id": run.run_id,
            "status": run.status,
            "goldset": goldset.name,
            "goldset_version": goldset.version,
            "n_queries": run.n_queries,
            "n_failed": run.n_failed,
            "aggregates": dict(run.aggregates),
            "default_measures": (
                outcome.default_measures.to_dict() if outcome.default_measures else None
            ),
        },
        error=run.error,
    )


# -- traffic ------------------------------------------------------------------------------

_UNITS = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}
_READ_STATUSES = frozenset({"new", "resumed", "restarted"})
DEFAULT_REPORTED_PROBLEMS = 20
"""Malformed lines listed in an ingest's job-run summary (all are counted and stored)."""


class _IngestParams(_Params):
    """What is ingested and how it is redacted (``evalkit traffic ingest``'s options)."""

    paths: list[Path] = Field(
        default_factory=list, description="Log files or directories ingested first."
    )
    redact: list[str] = Field(default_factory=list, description="Named redaction patterns.")
    redact_pattern: list[str] = Field(
        default_factory=list, description="RE2 regular expressions masked as <redacted>."
    )
    drop: list[str] = Field(default_factory=list, description="Fields not stored at all.")
    file_format: Literal["jsonl", "parquet", "otlp-json"] | None = Field(
        default=None,
        description="Read every file as this format (otlp-json: an OpenTelemetry Collector "
        "file exporter's output); default: by file name.",
    )

    @field_validator("redact", "redact_pattern", "drop")
    @classmethod
    def _redaction_builds(cls, value: list[str], info: ValidationInfo) -> list[str]:

        option = {"redact": "patterns", "redact_pattern": "custom", "drop": "drop"}
        try:
            Redaction.build(**{option[str(info.field_name)]: value})
        except ConfigError as error:
            # A bad name or expression is refused when the file is read, not at 3 a.m.
            raise ValueError(str(error)) from error
        return value

    def redaction(self) -> Redaction:
        """The redaction these fields describe."""

        return Redaction.build(patterns=self.redact, custom=self.redact_pattern, drop=self.drop)


def _ingest(
    ctx: JobContext, params: _IngestParams, *, report_problems: int
) -> tuple[IngestReport, dict[str, Any]]:
    """Ingest ``params.paths`` (stoppable between batches) and summarise the pass."""

    report = ingest_paths(
        ctx.require_store(),
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
    report, summary = _ingest(ctx, params, report_problems=params.report_problems)
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

    window: str | None = Field(
        default=None, description="Window label to sample (default: the previous one)."
    )
    granularity: Literal["hour", "day", "week"] = Field(
        default="day", description="Window size when `window` is not given."
    )
    offset: int = Field(
        default=1, ge=0, description="Windows back from the current one (1: the last complete)."
    )
    n: int = Field(default=2000, ge=1, description="Queries sampled.")
    seed: int = Field(default=0, ge=0, description="Sample seed.")
    stratify_by: str | None = Field(default=None, description="tenant or tag:KEY.")
    min_per_stratum: int = Field(default=0, ge=0, description="Minimum per stratum.")
    replay: bool = Field(default=True, description="Replay the sample.")
    k: int = Field(
        default=TRAFFIC_REPLAY_DEFAULTS.k, ge=1, description="Documents per replayed query."
    )
    low_confidence: float | None = Field(
        default=None, description="Top-1 score below which a query is low-confidence."
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

    store = ctx.require_store()
    summary: dict[str, Any] = {}
    if params.paths:
        _, summary["ingest"] = _ingest(ctx, params, report_problems=DEFAULT_REPORTED_PROBLEMS)
        ctx.check_cancelled()
    if params.window is not None:
        window = parse_window(params.window)
    else:
        moment = utc_now() - _UNITS[params.granularity] * params.offset
        window = window_containing(moment, params.granularity)
    summary["window"] = window.label
    if record_count(store) == 0:
        return JobOutcome(summary={**summary, "note": "no traffic ingested yet"})
    request = TrafficReplayRequest(
        k=params.k,
        low_confidence_threshold=(
            TRAFFIC_REPLAY_DEFAULTS.low_confidence_threshold
            if params.low_confidence is None
            else params.low_confidence
        ),
        tenant_isolation=params.tenant_isolation,
        embedding_sample_size=params.embed_sample,
        answers=params.answers,
        batch_size=ctx.settings.query_batch_size,
        label=ctx.job,
    )
    # Before the retriever is built: a judge misconfiguration costs no connection.
    setup = prepare_traffic_replay(request, ctx.settings) if params.replay else None
    assessor = RelevanceAssessor(ctx.settings.judge) if params.judge and params.replay else None
    cycle = sample_and_replay(
        store,
        SampleSpec(
            window=window,
            n=params.n,
            seed=params.seed,
            stratify_by=parse_stratification(params.stratify_by),
            min_per_stratum=params.min_per_stratum,
        ),
        partial(params.build, ctx.settings) if params.replay else None,
        request,
        setup=setup,
        progress=ctx.progress,
        between=ctx.check_cancelled,
    )
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
    if assessor is not None:
        ctx.check_cancelled()
        judged = judge_traffic_run(
            store,
            run.run_id,
            assessor,
            params.document_texts(ctx.settings),
            JudgingRequest(k=params.k, max_judgments=params.max_judgments),
            progress=ctx.progress,
        )
        summary["judged"] = {
            "judging": judged.judging.to_dict(),
            "figures": {
                f"{figure.source}:{figure.measure}": figure.value for figure in judged.figures
            },
            "agreement": judged.agreement.agreement_id if judged.agreement else None,
        }
    if params.estimate:
        try:
            estimated = estimate_traffic_run(store, run.run_id, k=params.k)
        except EvalkitError as error:
            if isinstance(error, StoreError) and not isinstance(error, NotFoundError):
                raise
            summary["estimate"] = {"note": str(error)}
        else:
            summary["estimate"] = {
                "value": estimated.figure.value,
                "low": estimated.figure.low,
                "high": estimated.figure.high,
                "calibration_run": estimated.calibration_run.run_id,
            }
    return JobOutcome(
        status=_RUN_STATUS[run.status], run_ids=(run.run_id,), summary=summary, error=run.error
    )


# -- drift checks -------------------------------------------------------------------------


class DriftCheckParams(_Params):
    """``kind = "drift_check"``."""

    stream: Literal["queries", "metric"] = Field(
        default="queries",
        description="queries: traffic query embeddings, newest window vs a reference window; "
        "metric: a goldset measure's run means with a sequential detector.",
    )
    reference_window: str | None = Field(
        default=None, description="Reference window (default: the one before the newest)."
    )
    method: str = Field(
        default="auto",
        description="Detector: auto, mmd, moments, mmd_rff, classifier, ks, mean_cosine "
        "(queries); "
        "page_hinkley or cusum (metric).",
    )
    alpha: float = Field(default=0.05, gt=0, lt=1, description="False-alarm rate per check.")
    seed: int = Field(default=0, ge=0, description="Seed of the test's random steps.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Extra detector settings (see docs/drift.md)."
    )
    subject: str = Field(default="traffic", description="Subject stored with the check.")
    goldset: str | None = Field(default=None, description="Goldset (metric stream).")
    measure: str = Field(default="precision@10", description="Measure (metric stream).")
    label: str | None = Field(default=None, description="Only runs with this label (metric).")
    retriever: str | None = Field(
        default=None,
        description="Only runs of this retriever, as `evalkit runs list` names it (metric; "
        "default: the newest run's).",
    )
    warmup: int = Field(default=5, ge=2, description="Runs that set the baseline (metric).")

    @model_validator(mode="after")
    def _metric_needs_goldset(self) -> DriftCheckParams:
        if self.stream == "metric":
            if self.goldset is None:
                raise ValueError("stream 'metric' needs goldset")
            if self.method not in ("page_hinkley", "cusum"):
                raise ValueError("stream 'metric' uses method page_hinkley or cusum")
        return self


def _drift_check(ctx: JobContext, params: DriftCheckParams) -> JobOutcome:

    store = ctx.require_store()
    if params.stream == "metric":
        assert params.goldset is not None  # the model requires it for this stream
        outcome = check_drift_metric(
            store,
            params.goldset,
            measure=params.measure,
            method=params.method,
            label=params.label,
            warmup=params.warmup,
            options=params.options,
            retriever=params.retriever,
        )
    else:
        outcome = check_drift_queries(
            store,
            reference_window=params.reference_window,
            method=params.method,
            alpha=params.alpha,
            seed=params.seed,
            subject=params.subject,
            options=params.options,
            before_test=ctx.check_cancelled,
        )
    if outcome.check is None:
        return JobOutcome(summary={**outcome.compared, "note": outcome.note})
    summary: dict[str, Any] = {"check_id": outcome.check.check_id, "finding": outcome.check.finding}
    if outcome.result is not None:
        summary.update(p_value=outcome.result.p_value, **outcome.compared)
    return JobOutcome(summary=summary)


# -- audit --------------------------------------------------------------------------------


class AuditParams(_Params):
    """``kind = "audit"``: the checks of ``evalkit audit``, stored."""

    collection: str = Field(description="Chroma collection to audit.")
    chroma_url: str | None = Field(default=None, description="Chroma server URL.")
    source: Path | None = Field(default=None, description="Source corpus the index mirrors.")

    @field_validator("collection")
    @classmethod
    def _chroma_name(cls, name: str) -> str:
        problem = collection_name_problem(name)
        if problem is not None:
            raise ValueError(f"Chroma collection name {name!r} is not valid: {problem}")
        return name

    goldset: str | None = Field(default=None, description="Goldset probing recall/coverage.")
    checks: list[str] | None = Field(default=None, description="Checks to run (default all).")
    near_duplicate_threshold: float = Field(default=0.95, gt=0, le=1, description="Cosine.")
    model_sample: int = Field(default=256, ge=0, description="Documents re-embedded (0: all).")
    k: int = Field(default=10, ge=1, description="Depth of ANN recall@k and judged@k.")
    ann_queries: int = Field(default=200, ge=1, description="Queries of the ANN recall check.")
    seed: int = Field(default=0, ge=0, description="Seed of the samples.")


def _audit(ctx: JobContext, params: AuditParams) -> JobOutcome:

    settings = ctx.settings
    config = AuditConfig(
        checks=tuple(params.checks) if params.checks else CHECK_NAMES,
        near_duplicate_threshold=params.near_duplicate_threshold,
        model_sample_size=params.model_sample or None,
        k=params.k,
        ann_max_queries=params.ann_queries,
        relevance_threshold=settings.relevance_threshold,
        orphaned_relevant_critical_share=settings.audit.orphaned_relevant_critical_share,
        seed=params.seed,
    )
    outcome = audit_collection(
        ctx.require_store(),
        params.collection,
        settings=settings,
        config=config,
        embedder=build_query_embedder(settings),
        chroma_url=params.chroma_url,
        source=params.source,
        goldset=params.goldset,
    )
    stored = outcome.stored
    assert stored is not None  # saved: a store was given
    return JobOutcome(
        summary={
            "audit_id": stored.audit_id,
            "collection": params.collection,
            "n_findings": stored.n_findings,
            "max_severity": stored.max_severity,
        }
    )


# -- freshness ----------------------------------------------------------------------------


class FreshnessParams(RetrieverParams):
    """``kind = "freshness"``: the check of ``evalkit freshness``, stored (the objective is
    the ``[freshness]`` table's unless the job sets its own)."""

    changes: list[Path] = Field(
        default_factory=list,
        description="Change tables: JSON Lines files or folders, Parquet or DuckDB files.",
    )
    corpus: Path | None = Field(
        default=None, description="A corpus whose documents carry updated_at, instead."
    )
    changes_table: str | None = Field(default=None, description="Table of a DuckDB change file.")
    method: Literal["auto", "index", "probe"] = Field(
        default="auto", description="index, probe, or auto (index where evalkit can read it)."
    )
    subject: str | None = Field(default=None, description="Series name (default: the index).")
    k: int | None = Field(default=None, ge=1, description="Probe depth.")
    probe_timeout: Duration | None = Field(default=None, description="Probing time per check.")
    probe_interval: Duration | None = Field(default=None, description="Between probe rounds.")
    slo_p95_lag: Duration | None = Field(default=None, description="Objective on the p95 lag.")
    max_unreflected_age: Duration | None = Field(
        default=None, description="Objective on the oldest unreflected change."
    )


def _freshness(ctx: JobContext, params: FreshnessParams) -> JobOutcome:

    settings = ctx.settings
    request = FreshnessRequest.from_settings(
        settings,
        changes=tuple(params.changes),
        corpus=params.corpus,
        changes_table=params.changes_table,
        method=params.method,
        subject=params.subject,
        k=params.k,
        probe_timeout=params.probe_timeout,
        probe_interval=params.probe_interval,
        slo_p95_lag=params.slo_p95_lag,
        max_unreflected_age=params.max_unreflected_age,
    )
    options = params.options()
    if reads_index(params.method, options, settings):
        index = open_index_versions(options, settings)
        try:
            check = check_freshness(ctx.require_store(), request, index=index)
        finally:
            index.close()
    else:
        retriever = params.build(settings)
        try:
            check = check_freshness(
                ctx.require_store(), request, retriever=retriever, stop=ctx.check_cancelled
            )
        finally:
            close = getattr(retriever, "close", None)
            if callable(close):
                close()
    return JobOutcome(
        summary={
            "check_id": check.check_id,
            "subject": check.subject,
            "n_read": check.n_read,
            "n_reflected": check.n_reflected,
            "n_pending": check.n_pending,
            "lag_p95_seconds": check.lag_p95,
            "oldest_unreflected_seconds": check.oldest_unreflected_seconds,
            "breached": check.breached,
            "breaches": list(check.breaches),
        }
    )


# -- answers ------------------------------------------------------------------------------


class AnswersParams(_Params):
    """``kind = "answers"``: score answers with the judge of the ``[judge]`` table."""

    path: Path = Field(description="JSONL of answer records (see docs/answers.md).")


def _answers(ctx: JobContext, params: AnswersParams) -> JobOutcome:

    scores = score_answer_file(
        params.path,
        settings=ctx.settings.judge,
        store=ctx.require_store(),
        progress=ctx.progress,
    )
    return JobOutcome(
        summary={
            "scoring_id": scores.scoring_id,
            "n_records": scores.n_records,
            "judge_calls": scores.judge_calls,
            "means": {f"{s.metric}/{s.method}": s.mean for s in scores.summaries},
        }
    )


# -- sweep --------------------------------------------------------------------------------


class SweepParams(_Params):
    """``kind = "sweep"``: run the points of a sweep file that have no complete run."""

    file: Path = Field(description="The sweep file (TOML; see docs/sweeps.md).")
    engine: Literal["local", "ray"] = Field(
        default="local", description="Where each point's replay runs: local or ray."
    )
    ray_address: str | None = Field(default=None, description="Ray cluster of engine = ray.")
    ray_actors: int = Field(default=2, ge=1, description="Actors with engine = ray.")

    @field_validator("file")
    @classmethod
    def _sweep_reads(cls, value: Path) -> Path:
        try:
            # A bad sweep file is refused when the configuration is read, not at 3 a.m.
            load_sweep(value)
        except ConfigError as error:
            raise ValueError(str(error)) from error
        return value


def _sweep(ctx: JobContext, params: SweepParams) -> JobOutcome:

    outcome = run_sweep_file(
        ctx.require_store(),
        params.file,
        ctx.settings,
        engine=params.engine,
        ray_address=params.ray_address,
        ray_actors=params.ray_actors,
        query_progress=ctx.progress,
    )
    failed = outcome.failed
    status = "succeeded" if not failed else "partial" if outcome.run_ids else "failed"
    return JobOutcome(
        status=status,
        run_ids=tuple(
            point.run.run_id for point in outcome.points if point.run and not point.reused
        ),
        summary=outcome.to_dict(),
        error="; ".join(f"point {p.number} ({p.point.describe()}): {p.error}" for p in failed)
        or None,
    )


# -- retention ----------------------------------------------------------------------------


class RetentionParams(_Params):
    """``kind = "retention"``: prune per-query rows of old runs, keep their aggregates."""

    keep_days: Duration = Field(
        default=90 * 86400.0, description="Runs younger than this keep everything ('90d')."
    )
    keep_latest: int = Field(
        default=10, ge=0, description="Newest runs of each goldset and label kept whole."
    )
    keep_runs: list[str] = Field(
        default_factory=list, description="Runs never pruned (baselines of rules are added)."
    )


def _retention(ctx: JobContext, params: RetentionParams) -> JobOutcome:

    store = ctx.require_store()
    keep = list(dict.fromkeys([*params.keep_runs, *ctx.pinned_runs]))
    candidates = retention_candidates(
        store,
        older_than=utc_now() - timedelta(seconds=params.keep_days),
        keep_latest=params.keep_latest,
        keep=keep,
    )
    deleted = 0
    pruned: list[str] = []
    for run_id in candidates:
        ctx.check_cancelled()
        deleted += prune_run_details(store, [run_id])
        pruned.append(run_id)
    return JobOutcome(
        summary={"runs_pruned": len(pruned), "rows_deleted": deleted, "kept": keep},
    )


# -- command ------------------------------------------------------------------------------


class CommandParams(_Params):
    """``kind = "command"``: run a program; exit status 0 is success."""

    command: list[str] = Field(min_length=1, description="Program and arguments.")
    timeout: Duration | None = Field(default=None, description="Kill it after this long.")
    cwd: Path | None = Field(default=None, description="Working directory.")


def _command(ctx: JobContext, params: CommandParams) -> JobOutcome:
    began = time.monotonic()
    env = {**os.environ, "EVALKIT_JOB": ctx.job}
    try:
        child = subprocess.Popen(
            params.command,
            cwd=params.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as error:
        raise ConfigError(f"job {ctx.job}: cannot run {params.command[0]}: {error}") from error
    with child:
        stderr, stopped = _wait_for(child, ctx, timeout=params.timeout, began=began)
    if stopped == "timeout":
        return JobOutcome(
            status="failed", error=f"{params.command[0]} ran longer than {params.timeout:g} s"
        )
    if stopped == "cancelled":
        ctx.check_cancelled()
    tail = stderr.decode(errors="replace").strip()[-_STDERR_CHARS:]
    summary = {"exit_code": child.returncode, "seconds": round(time.monotonic() - began, 3)}
    if child.returncode == 0:
        return JobOutcome(summary=summary)
    return JobOutcome(
        status="failed",
        summary=summary,
        error=f"{params.command[0]} exited with {child.returncode}" + (f": {tail}" if tail else ""),
    )


def _wait_for(
    child: subprocess.Popen[bytes], ctx: JobContext, *, timeout: float | None, began: float
) -> tuple[bytes, str | None]:
    """Wait for the child; stop it when the job is cancelled or runs out of time."""
    try:
        while True:
            try:
                _, stderr = child.communicate(timeout=0.2)
                return stderr, None
            except subprocess.TimeoutExpired:
                if ctx.cancel.is_set():
                    _stop(child)
                    return b"", "cancelled"
                if timeout is not None and time.monotonic() - began > timeout:
                    _stop(child)
                    return b"", "timeout"
    finally:
        if child.poll() is None:
            _stop(child)


def _stop(child: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(child.pid, signal.SIGTERM)
        child.wait(timeout=_TERMINATE_GRACE)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    except ProcessLookupError:
        child.wait()


for _kind in (
    JobKind(
        "goldset_replay",
        GoldsetReplayParams,
        _goldset_replay,
        "replay a goldset against the live retriever",
    ),
    JobKind("traffic_ingest", TrafficIngestParams, _traffic_ingest, "ingest new traffic log lines"),
    JobKind("traffic", TrafficParams, _traffic, "ingest, sample and replay production traffic"),
    JobKind("drift_check", DriftCheckParams, _drift_check, "test embeddings or a metric series"),
    JobKind("audit", AuditParams, _audit, "audit a collection's health"),
    JobKind("freshness", FreshnessParams, _freshness, "measure how fresh the index is"),
    JobKind("answers", AnswersParams, _answers, "score answers and store the scores"),
    JobKind("sweep", SweepParams, _sweep, "run a sweep file's missing points"),
    JobKind("retention", RetentionParams, _retention, "prune per-query rows of old runs"),
    JobKind("command", CommandParams, _command, "run a program", uses_store=False),
):
    register_job_kind(_kind)
