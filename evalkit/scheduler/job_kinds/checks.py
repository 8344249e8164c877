"""Job kinds that check the index and the traffic, and store the check: ``drift_check``
(its ``stream``s as docs/drift.md describes), ``audit`` and ``freshness`` (the checks run
without the store, as ``evalkit audit`` and ``evalkit freshness`` do); docs/scheduler.md
lists their fields.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from evalkit.config import Duration, Settings
from evalkit.embedding import build_document_embedder, close_embedder
from evalkit.errors import ConfigError
from evalkit.pipeline import (
    DriftOutcome,
    audit_collection,
    check_drift_documents,
    check_drift_metric,
    check_drift_model,
    check_drift_queries,
    check_drift_settings,
    check_named_index_freshness,
    query_drift_methods,
)
from evalkit.records.audit import AUDIT_DEFAULTS, AUDITED_KINDS, CHECK_NAMES, AuditConfig
from evalkit.records.freshness import FreshnessRequest
from evalkit.records.requests import (
    DEFAULT_DOCUMENT_SAMPLE,
    DEFAULT_MODEL_SAMPLE,
    DRIFT_TEST_DEFAULTS,
    METRIC_STREAM_MEASURE,
    METRIC_STREAM_METHOD,
    METRIC_STREAM_WARMUP,
    DriftTestSettings,
)
from evalkit.retrievers.chroma_client import collection_name_problem
from evalkit.scheduler.job_kinds.base import (
    JobContext,
    JobKind,
    JobOutcome,
    JobParams,
    RetrieverParams,
    checked_by,
    checked_measures,
    refused,
)
from evalkit.traffic.windows import RELATIVE_WINDOWS, parse_window

__all__ = [
    "AUDIT",
    "DRIFT_CHECK",
    "FRESHNESS",
    "AuditParams",
    "DriftCheckParams",
    "FreshnessParams",
]


def _checked_collection(name: str) -> str:
    problem = collection_name_problem(name)
    if problem is not None:
        raise ValueError(f"Chroma collection name {name!r} is not valid: {problem}")
    return name


_ChromaName = Annotated[str, AfterValidator(_checked_collection)]
"""A Chroma collection's name, refused when the configuration is read if Chroma would."""


# -- drift checks -------------------------------------------------------------------------


class DriftCheckParams(JobParams):
    """``kind = "drift_check"``."""

    stream: Literal["queries", "metric", "documents", "model"] = Field(
        default="queries",
        description="queries: traffic query embeddings, newest window vs a reference window; "
        "metric: a goldset measure's run means with a sequential detector; documents: a "
        "Chroma collection's stored embeddings vs a reference snapshot; model: the query "
        "model vs the collection's (fingerprint and re-embedded stored documents).",
    )
    collection: _ChromaName | None = Field(
        default=None, description="Chroma collection to check (documents, model)."
    )
    chroma_url: str | None = Field(
        default=None, description="Chroma server URL (documents, model; default: the settings')."
    )
    reference: Path | None = Field(
        default=None,
        description="Reference snapshot, a .npy file (documents; default: the newest saved; "
        "with none, the first run saves one).",
    )
    sample: int | None = Field(
        default=None,
        ge=1,
        description=f"Documents sampled from the collection (documents: "
        f"{DEFAULT_DOCUMENT_SAMPLE}, at least 2; model: {DEFAULT_MODEL_SAMPLE} re-embedded).",
    )
    reference_window: str | None = Field(
        default=None, description="Reference window (default: the one before the newest)."
    )
    method: str = Field(
        default=DRIFT_TEST_DEFAULTS.method,
        validate_default=True,
        description="Detector: auto, mmd, moments, mmd_rff, classifier, ks, mean_cosine "
        "(queries, documents); page_hinkley or cusum (metric); none for model. auto: the "
        "stream's default (queries, documents: auto's choice by window size; metric: "
        "page_hinkley).",
    )
    alpha: float = Field(
        default=DRIFT_TEST_DEFAULTS.alpha, gt=0, lt=1, description="False-alarm rate per check."
    )
    seed: int = Field(
        default=DRIFT_TEST_DEFAULTS.seed,
        ge=0,
        description="Seed of the test's random steps and of the documents sampled.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Extra detector settings (see docs/drift.md)."
    )
    subject: str = Field(default="traffic", description="Subject stored with the check.")
    goldset: str | None = Field(default=None, description="Goldset (metric stream).")
    measure: str = Field(default=METRIC_STREAM_MEASURE, description="Measure (metric stream).")
    label: str | None = Field(default=None, description="Only runs with this label (metric).")
    retriever: str | None = Field(
        default=None,
        description="Only runs of this retriever, as `evalkit runs list` names it (metric; "
        "default: the newest run's).",
    )
    warmup: int = Field(
        default=METRIC_STREAM_WARMUP, ge=2, description="Runs that set the baseline (metric)."
    )

    @field_validator("method")
    @classmethod
    def _known_method(cls, method: str, info: ValidationInfo) -> str:
        # Checked when the configuration is read, not when the job first runs. `auto` (the
        # default) is each stream's own default, as in `evalkit drift precision` and `drift
        # queries`; no model validator sees the input first, so the file's types stay checked.
        if info.data.get("stream") == "metric":
            if method == DRIFT_TEST_DEFAULTS.method:
                return METRIC_STREAM_METHOD
            if method not in ("page_hinkley", "cusum"):
                raise ValueError("stream 'metric' uses method page_hinkley or cusum")
        elif info.data.get("stream") == "model":
            if method != DRIFT_TEST_DEFAULTS.method:
                raise ValueError("stream 'model' compares two models and takes no method")
        elif method not in query_drift_methods():
            known = ", ".join(query_drift_methods())
            raise ValueError(f"unknown drift method {method!r}; choose one of: {known}")
        return method

    @field_validator("options")
    @classmethod
    def _detector_builds(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # With a stream or method already refused there is nothing to build.
        if info.data.get("stream") == "model":
            if options:
                raise ValueError("stream 'model' compares two models and takes no options")
        elif "stream" in info.data and "method" in info.data:
            with refused():
                check_drift_settings(
                    info.data["stream"],
                    info.data["method"],
                    alpha=info.data.get("alpha", DRIFT_TEST_DEFAULTS.alpha),
                    seed=info.data.get("seed", DRIFT_TEST_DEFAULTS.seed),
                    options=options,
                )
        return options

    @field_validator("measure")
    @classmethod
    def _known_measure(cls, name: str) -> str:
        (canonical,) = checked_measures([name])
        return canonical

    @field_validator("reference_window")
    @classmethod
    def _window_label(cls, label: str | None) -> str | None:
        if label is None:
            return None
        if label.strip() in RELATIVE_WINDOWS:
            raise ValueError(
                f"{label.strip()!r} moves with the clock; give a replayed window's label "
                "(2026-11-21, 2026-11-21T13, 2026-W47, 2026-11 or START/END), or leave "
                "reference_window out to compare with the window before the newest"
            )
        with refused():
            return parse_window(label).label

    @model_validator(mode="after")
    def _stream_needs_its_subject(self) -> DriftCheckParams:
        if self.stream == "metric" and self.goldset is None:
            raise ValueError("stream 'metric' needs goldset")
        if self.stream in ("documents", "model") and self.collection is None:
            raise ValueError(f"stream {self.stream!r} needs collection")
        if self.stream == "documents" and self.sample is not None and self.sample < 2:
            raise ValueError("stream 'documents' samples at least 2 documents")
        return self

    def test_settings(self) -> DriftTestSettings:
        """The statistical test these fields ask for (queries, documents)."""
        return DriftTestSettings(
            method=self.method, alpha=self.alpha, seed=self.seed, options=self.options
        )


def _drift_check(ctx: JobContext, params: DriftCheckParams) -> JobOutcome:
    # The collection streams read Chroma and re-embed documents without the store, as
    # `evalkit drift documents` and `drift model` do.
    access = ctx.require_access()
    if params.stream == "model":
        assert params.collection is not None  # the model requires it for this stream
        check = check_drift_model(
            access,
            ctx.settings,
            params.collection,
            chroma_url=params.chroma_url,
            sample=params.sample or DEFAULT_MODEL_SAMPLE,
            seed=params.seed,
        )
        return JobOutcome(
            summary={
                "check_id": check.check_id,
                "finding": check.finding,
                "collection": params.collection,
                "evidence": list(check.evidence),
            }
        )
    outcome: DriftOutcome
    if params.stream == "documents":
        assert params.collection is not None  # the model requires it for this stream
        outcome = check_drift_documents(
            access,
            ctx.settings,
            params.collection,
            chroma_url=params.chroma_url,
            reference=params.reference,
            sample=params.sample or DEFAULT_DOCUMENT_SAMPLE,
            test=params.test_settings(),
            first_reference=True,
        )
    else:
        with access.writer("drift check") as store:
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
                    test=params.test_settings(),
                    subject=params.subject,
                    before_test=ctx.check_cancelled,
                )
    if outcome.check is None:
        return JobOutcome(summary={**outcome.compared, "note": outcome.note})
    summary: dict[str, Any] = {"check_id": outcome.check.check_id, "finding": outcome.check.finding}
    if outcome.result is not None:
        summary.update(p_value=outcome.result.p_value, **outcome.compared)
    return JobOutcome(summary=summary)


# -- audit --------------------------------------------------------------------------------


class AuditParams(JobParams):
    """``kind = "audit"``: the checks of ``evalkit audit``, stored."""

    retriever: Literal["chroma", "qdrant", "pgvector"] | None = Field(
        default=None,
        description="Engine of the index: chroma, qdrant or pgvector ([retriever.pgvector]'s "
        "table); default chroma with a collection, else [retriever] kind.",
    )
    collection: str | None = Field(
        default=None,
        description="Collection to audit: Chroma's, or Qdrant's (default: [retriever.qdrant]'s).",
    )
    chroma_url: str | None = Field(default=None, description="Chroma server URL.")
    source: Path | None = Field(default=None, description="Source corpus the index mirrors.")

    goldset: str | None = Field(default=None, description="Goldset probing recall/coverage.")
    checks: Annotated[
        list[str] | None, checked_by(lambda names: AuditConfig(checks=tuple(names)))
    ] = Field(default=None, description="Checks to run (default all).")

    near_duplicate_threshold: float = Field(
        default=AUDIT_DEFAULTS.near_duplicate_threshold, gt=0, le=1, description="Cosine."
    )
    model_sample: int = Field(
        default=AUDIT_DEFAULTS.model_sample_size or 0,
        ge=0,
        description="Documents re-embedded (0: all).",
    )
    k: int = Field(
        default=AUDIT_DEFAULTS.k, ge=1, description="Depth of ANN recall@k and judged@k."
    )
    ann_queries: int = Field(
        default=AUDIT_DEFAULTS.ann_max_queries, ge=1, description="Queries of the ANN recall check."
    )
    seed: int = Field(default=AUDIT_DEFAULTS.seed, ge=0, description="Seed of the samples.")

    @model_validator(mode="after")
    def _named_index(self) -> Self:
        if self.retriever == "chroma" and self.collection is None:
            raise ValueError("an audit of a Chroma collection needs `collection`")
        if self.retriever in (None, "chroma") and self.collection is not None:
            _checked_collection(self.collection)
        if self.retriever == "pgvector" and self.collection is not None:
            raise ValueError(
                "`collection` is not for pgvector: the audit reads [retriever.pgvector]'s table"
            )
        if self.retriever not in (None, "chroma") and self.chroma_url is not None:
            raise ValueError(
                f"`chroma_url` is for a Chroma collection, not a {self.retriever} index"
            )
        return self

    def kind(self, settings: Settings) -> str:
        """The engine audited: ``retriever``, else chroma for a ``collection``, else
        ``[retriever] kind``; ConfigError when evalkit cannot read that one's index."""
        kind = self.retriever or ("chroma" if self.collection else settings.retriever.kind)
        if kind not in AUDITED_KINDS:
            raise ConfigError(
                f"an audit job reads a Chroma or Qdrant collection or a pgvector table; "
                f"[retriever] kind {kind!r} is none of them: give the job a `collection` or "
                "`retriever`"
            )
        return kind


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
    # The checks run without the store, as `evalkit audit`'s do.
    embedder = build_document_embedder(settings)
    try:
        outcome = audit_collection(
            ctx.require_access(),
            params.collection,
            settings=settings,
            config=config,
            embedder=embedder,
            chroma_url=params.chroma_url,
            source=params.source,
            goldset=params.goldset,
            retriever=params.kind(settings),
        )
    finally:
        close_embedder(embedder)
    stored = outcome.stored
    assert stored is not None  # saved: a store was given
    return JobOutcome(
        summary={
            "audit_id": stored.audit_id,
            "collection": outcome.report.collection,
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
        default=None,
        validate_default=True,
        description="A corpus whose documents carry updated_at, instead.",
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

    @field_validator("corpus")
    @classmethod
    def _one_source(cls, corpus: Path | None, info: ValidationInfo) -> Path | None:
        changes = info.data.get("changes")
        if changes is not None and bool(changes) == (corpus is not None):
            raise ValueError(
                "give changes (change tables) or corpus, not both"
                if corpus is not None
                else "name the source of the changes: changes (change tables) or corpus"
            )
        return corpus


def _freshness(ctx: JobContext, params: FreshnessParams) -> JobOutcome:

    settings = ctx.settings
    # The job's fields are the request's of the same name.
    shared = {item.name for item in dataclasses.fields(FreshnessRequest)} - {"changes"}
    request = FreshnessRequest.from_settings(
        settings, changes=tuple(params.changes), **params.model_dump(include=shared)
    )
    # The index is probed without the store, as `evalkit freshness` probes it.
    check = check_named_index_freshness(
        ctx.require_access(), request, params.options(), settings, stop=ctx.check_cancelled
    )
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


DRIFT_CHECK = JobKind(
    "drift_check",
    DriftCheckParams,
    _drift_check,
    "test embeddings, a metric series or the embedding model",
    holds_store=False,
)
AUDIT = JobKind("audit", AuditParams, _audit, "audit a collection's health", holds_store=False)
FRESHNESS = JobKind(
    "freshness",
    FreshnessParams,
    _freshness,
    "measure how fresh the index is",
    holds_store=False,
)
