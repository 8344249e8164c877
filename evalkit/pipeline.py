"""Wires the stages together: goldset -> replay -> metrics (and answers) -> store.

The CLI, the scheduler and the tests all call these functions; no stage calls another stage
that comes after it in the data flow.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow.compute as pc

from evalkit import __version__
from evalkit import answers as answer_stage
from evalkit.answers.cache import JudgeCache, MemoryJudgeCache
from evalkit.answers.files import read_answer_records
from evalkit.answers.records import AnswerRecord, AnswerScores, CachedJudgment, MetricSummary
from evalkit.causes import Explanation, explain_comparison
from evalkit.config import JudgeSettings, load_settings
from evalkit.drift import AlertLevel, cusum, page_hinkley
from evalkit.drift.base import DriftResult
from evalkit.drift.watch import (
    ModelCheck,
    PrecisionWatch,
    check_embeddings,
    check_model,
    load_embeddings,
    watch_precision,
)
from evalkit.embedding import Embedder, ModelFingerprint, build_query_embedder
from evalkit.engines import (
    ANSWERS_DIR,
    JUDGED_SCHEMA,
    SHARD_SUFFIX,
    EngineStoppedError,
    RayEngine,
    actor_judge_settings,
    number_query_table,
    write_query_table,
)
from evalkit.errors import ConfigError, NotFoundError, RetrieverError, StoreError
from evalkit.extras import require
from evalkit.goldset.formats import load_goldset as read_goldset_files
from evalkit.goldset.jsonl import QUERIES_FILE
from evalkit.goldset.model import Goldset
from evalkit.metrics import EvaluationResult, Evaluator, parse_measures, read_qrels
from evalkit.metrics.defaults import DEFAULT_MEASURES, DefaultMeasures, default_measures_for
from evalkit.records import Query, QueryResult
from evalkit.replay import ReplayTiming, replay, results_frame
from evalkit.retrievers.base import Retriever, SupportsPrefetch
from evalkit.retrievers.factory import RetrieverOptions, build_retriever
from evalkit.stats.compare import ComparisonReport, compare_scored, score_run
from evalkit.stats.decision import Decision
from evalkit.stats.render import to_junit_xml, to_markdown
from evalkit.store import RunRecord, RunSpec, Store, utc_now
from evalkit.store.answers import (
    StoreEmbeddingCache,
    StoreJudgeCache,
    answer_summaries,
    get_scoring,
    new_scoring_id,
    save_answer_scores,
    save_cached_judgments,
)
from evalkit.store.audit import StoredAudit, latest_measurements, save_audit
from evalkit.store.drift import StoredDriftCheck, save_drift_check
from evalkit.store.export import export_run, import_run, is_run_export
from evalkit.store.goldsets import judgments_frame, list_goldsets, load_goldset, save_goldset
from evalkit.store.runs import (
    add_query_results,
    create_run,
    fail_run,
    finish_run,
    get_run,
    list_runs,
    new_run_id,
    run_queries,
)
from evalkit.store.shards import (
    ShardAnswers,
    load_run_shards,
    summarize_shards,
    write_lost_shard,
)
from evalkit.store.traffic import (
    StoredWindowSummary,
    latest_window_summary,
    list_samples,
    list_window_summaries,
    logged_answers,
    window_embeddings,
)
from evalkit.traffic.replay import (
    DEFAULT_EMBEDDING_SAMPLE,
    plan_replay,
    save_window_summary,
)
from evalkit.traffic.summary import DEFAULT_LOW_CONFIDENCE
from evalkit.traffic.windows import parse_window

if TYPE_CHECKING:
    from evalkit.answers import OfflineFaithfulness
    from evalkit.audit import AuditConfig, AuditReport
    from evalkit.config import Settings
    from evalkit.embedding import TextEmbedder

__all__ = [
    "DEFAULT_MEASURES",
    "GATE_CANDIDATE_LABEL",
    "GATE_EXIT_CODES",
    "AuditOutcome",
    "DriftOutcome",
    "GateOutcome",
    "RunOutcome",
    "StoreOpener",
    "TrafficReplay",
    "answer_settings",
    "audit_collection",
    "check_drift_documents",
    "check_drift_embeddings",
    "check_drift_metric",
    "check_drift_model",
    "check_drift_precision",
    "check_drift_queries",
    "collection_vectors",
    "comparison_judgments",
    "default_measures",
    "evaluate_goldset",
    "evaluate_query_table",
    "gate_against_baseline",
    "newest_sample",
    "record_baseline",
    "replay_candidate",
    "replay_traffic_window",
    "resolve_goldset",
    "results_frame",
    "run_answer_records",
    "run_reference",
    "save_documents_reference",
    "score_and_store_answers",
    "score_answer_file",
    "score_answers_for_run",
    "score_run_answers",
    "write_gate_reports",
]


def default_measures(k: int) -> list[str]:
    """The default measures at ``k`` retrieved documents per query: ``DEFAULT_MEASURES``
    with each cutoff deeper than ``k`` taken at ``k`` (``default_measures_for``)."""
    return list(default_measures_for(k).measures)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """A finished run as stored, with where its time went.

    ``answers`` holds the scores of the answers the retriever generated (stored under the
    run id), or None when it generated none or answer scoring was turned off.
    """

    run: RunRecord
    timing: ReplayTiming
    seconds_metrics: float = 0.0
    seconds_store: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    answers: AnswerScores | None = None
    seconds_answers: float = 0.0
    default_measures: DefaultMeasures | None = None
    """The default measures the run was scored on, with those adapted to its k (None when
    the measures were named)."""


StoreOpener = Callable[[], AbstractContextManager[Store]]
"""Opens the store for writing for the duration of a block (``StoreAccess.writer``)."""


def evaluate_goldset(
    store: Store | StoreOpener,
    goldset: Goldset,
    retriever: Retriever,
    *,
    k: int,
    measures: Sequence[str] | None = None,
    relevance_threshold: int = 1,
    batch_size: int = 64,
    label: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    answers: bool = True,
    judge_settings: JudgeSettings | None = None,
    offline: OfflineFaithfulness | None = None,
    close_retriever: bool = False,
    engine: RayEngine | None = None,
) -> RunOutcome:
    """Replay a goldset against a live retriever, score it and store everything.

    Given an open ``store``, the run row is committed as ``running`` before the first query
    is sent; results are stored batch by batch; metrics and the final status are written in
    one transaction. Given a ``StoreOpener`` instead, the store is not held during the
    replay (other writers can work meanwhile): the queries are replayed and scored first,
    then the store is opened once and the run is recorded, from its ``running`` row to its
    final status, in one short stretch; a process killed during the replay leaves nothing
    in the store, and any other crash during it is recorded as a ``failed`` run.

    Queries whose retrieval failed are left out of the averages (never scored as zero), and
    the run is ``partial``; the aggregates record how many queries they cover. Any crash
    marks the run ``failed`` and re-raises.

    When the retriever generated answers (a RAG endpoint) and ``answers`` is true, they are
    scored once the run is stored (``score_run_answers``: faithfulness by the LLM judge of
    ``judge_settings``, default the ``[judge]`` settings, or by the offline method) and
    the scores are stored under the run id. The judge settings are checked before the
    first query is sent. With ``close_retriever`` the retriever is closed on the way out,
    whatever happens (for callers that built it for this one run).

    With an ``engine`` (``RayEngine``) the replay runs on Ray instead (``_engine_run``):
    ``retriever`` then only describes the run (its kind, configuration and model), each
    actor builds its own from ``engine.retriever``; the per-query figures are those of a
    local run. Answers are not scored on that engine.
    """
    with _closing(retriever if close_retriever else None):
        defaults = None if measures else default_measures_for(k)
        measure_names = [str(m) for m in parse_measures(list(measures or default_measures(k)))]
        spec = _goldset_run_spec(
            goldset,
            retriever,
            k=k,
            measure_names=measure_names,
            relevance_threshold=relevance_threshold,
            label=label,
        )
        if answers:
            judge_settings = answer_settings(judge_settings)
        if engine is not None:
            if answers and judge_settings is not None and answer_stage.uses_judge(judge_settings):
                # A judge concurrency the actors cannot share fails before any query.
                actor_judge_settings(judge_settings, engine.actors)
            judged = {judgment.query_id for judgment in goldset.judgments}
            outcome = _engine_run(
                store,
                spec,
                engine,
                write_queries=lambda path: write_query_table(
                    path, goldset.queries, goldset.judgments
                ),
                k=k,
                measure_names=measure_names,
                relevance_threshold=relevance_threshold,
                n_total=sum(1 for query in goldset.queries if query.id in judged),
                prepare=lambda writing: save_goldset(writing, goldset),
                progress=progress,
                nothing_answered="failed",
                answers=judge_settings if answers else None,
            )
            return dataclasses.replace(outcome, default_measures=defaults)
        timing = ReplayTiming()
        if isinstance(retriever, SupportsPrefetch):
            # The goldset is known in full: its queries are embedded in one length-sorted
            # pass (less padding than batch by batch) that starts before the first batch.
            retriever.prefetch([query.text for query in goldset.queries])

        def record(writing: Store, run_id: str, results: Sequence[QueryResult]) -> _Recorded[float]:
            began = time.perf_counter()
            evaluation, n_total = _score_goldset(
                goldset,
                results,
                measure_names=measure_names,
                relevance_threshold=relevance_threshold,
            )
            return _Recorded(
                per_query=evaluation.per_query if evaluation else None,
                aggregates=evaluation.aggregate if evaluation else {},
                n_evaluated=evaluation.n_queries if evaluation else 0,
                n_total=n_total,
                value=time.perf_counter() - began,
            )

        def conclude(
            writing: Store,
            run_id: str,
            results: Sequence[QueryResult],
            metrics_seconds: float,
            store_seconds: float,
        ) -> RunOutcome:
            return _goldset_outcome(
                writing,
                run_id,
                goldset,
                results,
                timing=timing,
                seconds_metrics=metrics_seconds,
                seconds_store=store_seconds,
                answers=answers,
                judge_settings=judge_settings,
                offline=offline,
            )

        outcome = _replay_run(
            store,
            spec,
            goldset.queries,
            retriever,
            k=k,
            batch_size=batch_size,
            progress=progress,
            timing=timing,
            prepare=lambda writing: save_goldset(writing, goldset),
            record=record,
            conclude=conclude,
            nothing_answered="failed",
        )
        return dataclasses.replace(outcome, default_measures=defaults)


def evaluate_query_table(
    store: Store | StoreOpener,
    path: Path,
    engine: RayEngine,
    *,
    k: int,
    measures: Sequence[str] | None = None,
    relevance_threshold: int = 1,
    label: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RunOutcome:
    """Replay the queries of a Parquet query table (``evalkit.engines``: one row per query
    with its judgments) on the Ray engine, score and store the run (kind ``queries``).

    For query sets too large for a goldset in memory (a day of traffic, a re-embedded
    index): the driver never holds the queries or their results, DuckDB reads both from
    Parquet. The retriever is built once here to describe the run, then closed.
    """
    # Parquet's reader is for the engine's paths only, not every `evalkit run`'s start.
    import pyarrow.parquet as pq

    measure_names = [str(m) for m in parse_measures(list(measures or default_measures(k)))]
    n_queries = n_total = 0
    # A batch at a time: a table of millions of queries is never held whole.
    for batch in pq.ParquetFile(path).iter_batches(columns=["judged_doc_ids"]):
        judged = pc.list_value_length(batch.column(0))
        n_queries += batch.num_rows
        n_total += int(pc.sum(pc.greater(judged, 0)).as_py() or 0)
    described = build_retriever(engine.retriever, engine.settings)
    with _closing(described):
        fingerprint = described.model_fingerprint()
        config = described.describe()
        spec = RunSpec(
            kind="queries",
            retriever_kind=str(config.get("kind", type(described).__name__)),
            k=k,
            measures=tuple(measure_names),
            evalkit_version=__version__,
            relevance_threshold=relevance_threshold,
            retriever_config=config,
            collection=config.get("collection"),
            model_name=fingerprint.name if fingerprint else None,
            model_dimension=fingerprint.dimension if fingerprint else None,
            model_fingerprint=fingerprint.canary_hash if fingerprint else None,
            index_fingerprint=described.index_fingerprint(),
            label=label,
            n_queries=n_queries,
        )

    return _engine_run(
        store,
        spec,
        engine,
        write_queries=lambda numbered: number_query_table(path, numbered),
        k=k,
        measure_names=measure_names,
        relevance_threshold=relevance_threshold,
        n_total=n_total,
        prepare=lambda writing: None,
        progress=progress,
        nothing_answered="failed",
    )


_Value = TypeVar("_Value")
_Outcome = TypeVar("_Outcome")


@dataclass(frozen=True, slots=True)
class _Recorded(Generic[_Value]):
    """What a kind of run stored besides its query results: the figures its final row
    takes, and a value of its own for ``conclude``."""

    per_query: pd.DataFrame | None
    aggregates: Mapping[str, float]
    n_evaluated: int
    n_total: int
    value: _Value


@contextlib.contextmanager
def _closing(retriever: object | None) -> Iterator[None]:
    """Close ``retriever`` (if given and closable) when the block ends, however it ends."""
    try:
        yield
    finally:
        close = getattr(retriever, "close", None)
        if callable(close):
            close()


def _replay_run(
    store: Store | StoreOpener,
    spec: RunSpec,
    queries: Sequence[Query],
    retriever: Retriever,
    *,
    k: int,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
    timing: ReplayTiming,
    prepare: Callable[[Store], object],
    record: Callable[[Store, str, Sequence[QueryResult]], _Recorded[_Value]],
    conclude: Callable[[Store, str, Sequence[QueryResult], _Value, float], _Outcome],
    nothing_answered: str,
) -> _Outcome:
    """The lifecycle of every replayed run (goldset and traffic).

    ``prepare`` writes what the run row refers to (its goldset); the run row is created
    ``running``; the queries are replayed; ``record`` stores what this kind of run derives
    from its results and returns the figures of its final row; the run is finished
    ``complete``, ``partial`` (some queries failed) or ``failed`` (every query failed; with
    no query at all, ``nothing_answered``); ``conclude`` builds the outcome from the
    finished run, outside the run's failure handling (what it does, like scoring answers,
    cannot fail the run). Any crash before the run is finished marks it ``failed`` with the
    error, and re-raises.

    Given an open ``store``, the run row is created before the first query and results are
    stored batch by batch. Given a ``StoreOpener``, the store is opened only after the
    replay, and the run row is created then, with the replay's start time; a replay that
    crashes is recorded as a ``failed`` run in a short stretch of its own. ``conclude``'s
    last argument is the seconds spent writing to the store.
    """
    if isinstance(store, Store):
        prepare(store)
        run_id = create_run(store, spec)
        batches_seconds = 0.0

        def store_batch(batch: list[QueryResult]) -> None:
            nonlocal batches_seconds
            began = time.perf_counter()
            add_query_results(store, run_id, batch)
            batches_seconds += time.perf_counter() - began

        try:
            results = replay(
                queries,
                retriever,
                k=k,
                batch_size=batch_size,
                on_batch=store_batch,
                progress=progress,
                timing=timing,
            )
            recorded, finish_seconds = _finish_run(
                store, run_id, results, record, nothing_answered=nothing_answered
            )
        except BaseException as error:
            # The original error is what the user must see; if the store itself is what
            # broke, the run simply stays 'running', which never reads as complete.
            with contextlib.suppress(Exception):
                fail_run(store, run_id, f"{type(error).__name__}: {error}")
            raise
        return conclude(store, run_id, results, recorded, batches_seconds + finish_seconds)
    started_at = utc_now()
    try:
        results = replay(
            queries, retriever, k=k, batch_size=batch_size, progress=progress, timing=timing
        )
    except BaseException as error:
        with contextlib.suppress(Exception), store() as writing:
            prepare(writing)
            failed = create_run(writing, spec, started_at=started_at)
            fail_run(writing, failed, f"{type(error).__name__}: {error}")
        raise
    with store() as writing:
        began = time.perf_counter()
        prepare(writing)
        run_id = create_run(writing, spec, started_at=started_at)
        try:
            add_query_results(writing, run_id, results)
            results_seconds = time.perf_counter() - began
            recorded, finish_seconds = _finish_run(
                writing, run_id, results, record, nothing_answered=nothing_answered
            )
        except BaseException as error:
            with contextlib.suppress(Exception):
                fail_run(writing, run_id, f"{type(error).__name__}: {error}")
            raise
        return conclude(writing, run_id, results, recorded, results_seconds + finish_seconds)


def _finish_run(
    store: Store,
    run_id: str,
    results: Sequence[QueryResult],
    record: Callable[[Store, str, Sequence[QueryResult]], _Recorded[_Value]],
    *,
    nothing_answered: str,
) -> tuple[_Value, float]:
    """``record`` the run's figures, then write its final status; ``record``'s value and the
    seconds spent writing the final row."""
    recorded = record(store, run_id, results)
    n_failed = sum(1 for result in results if not result.ok)
    first_error = next((r.error for r in results if r.error), None)
    began = time.perf_counter()
    finish_run(
        store,
        run_id,
        status=_run_status(n_failed, len(results), nothing_answered=nothing_answered),
        per_query=recorded.per_query,
        aggregates=recorded.aggregates,
        n_evaluated=recorded.n_evaluated,
        n_total=recorded.n_total,
        n_failed=n_failed,
        error=_failure_note(n_failed, len(results), first_error),
    )
    return recorded.value, time.perf_counter() - began


def _run_status(n_failed: int, n_results: int, *, nothing_answered: str) -> str:
    """A replayed run's final status: ``failed`` when every query failed (with no query at
    all, ``nothing_answered``), ``partial`` when some did, else ``complete``."""
    if n_failed and n_failed == n_results:
        return "failed"
    if not n_results:
        return nothing_answered
    return "partial" if n_failed else "complete"


def _failure_note(n_failed: int, n_results: int, first_error: str | None) -> str | None:
    if not n_failed:
        return None
    return f"{n_failed} of {n_results} queries failed; first: {first_error}"


def _engine_run(
    store: Store | StoreOpener,
    spec: RunSpec,
    engine: RayEngine,
    *,
    write_queries: Callable[[Path], object],
    k: int,
    measure_names: Sequence[str],
    relevance_threshold: int,
    n_total: int,
    prepare: Callable[[Store], object],
    progress: Callable[[int, int], None] | None,
    nothing_answered: str,
    answers: JudgeSettings | None = None,
) -> RunOutcome:
    """The run lifecycle of a replay on the Ray engine (``evaluate_goldset`` and
    ``evaluate_query_table`` with an ``engine``).

    ``write_queries(path)`` writes the numbered query table (``evalkit.engines``) to
    ``path`` (removed after the load); it is replayed on Ray
    (``evalkit.engines.ray``); the actors leave one Parquet shard per batch. The one
    writer then records the queries no shard holds (an actor lost more often than Ray
    retries it, an engine that stopped) as failed with the reason, and loads every shard
    and the run's final status in one transaction (``load_run_shards``): the store holds
    a run with all its rows or none of them, and never a run that looks complete with
    rows missing. The shards are removed once loaded.

    Given an open ``store``, the run row is created ``running`` before the replay; given a
    ``StoreOpener``, the store is opened only once the engine has finished, as a local
    replay does. A crash (or an interruption through ``progress``) marks the run
    ``failed`` and re-raises; its shards stay on disk.

    With ``answers`` (judge settings) the actors score the answers the retriever generates
    (reading a snapshot of the judge cache taken before the replay, when a judge scores
    them); their scores, the answers and the judge's new outputs are loaded with the
    run's shards, in the same transaction, as one answer scoring of the run.
    """
    engine_module = require("evalkit.engines.ray", "the Ray engine (--engine ray)")
    started_at = utc_now()
    run_id = new_run_id(started_at)
    shard_dir = engine.shard_dir(run_id)
    queries = shard_dir.with_name(f"{run_id}.queries.parquet")
    write_queries(queries)
    judge_cache = (
        _judge_cache_snapshot(store, answers, shard_dir.with_name(f"{run_id}.judge_cache.parquet"))
        if answers is not None and answer_stage.uses_judge(answers)
        else None
    )
    scoring = (
        ShardAnswers(
            scoring_id=new_scoring_id(started_at),
            started_at=started_at,
            settings=answers.public_dict(),
            cache_in_store=answers.cache_path is None,
        )
        if answers is not None
        else None
    )
    held = isinstance(store, Store)
    if isinstance(store, Store):
        prepare(store)
        create_run(store, spec, started_at=started_at, run_id=run_id)
    began = time.perf_counter()
    try:
        stopped: EngineStoppedError | None = None
        try:
            engine_module.replay_on_ray(
                queries,
                shard_dir,
                engine,
                k=k,
                measures=measure_names,
                relevance_threshold=relevance_threshold,
                total=spec.n_queries,
                progress=progress,
                answers=answers,
                judge_cache=judge_cache,
            )
        except EngineStoppedError as error:  # the shards so far are kept; the rest is lost
            stopped = error
        replay_seconds = time.perf_counter() - began
        with _writer(store) as writing:
            if not held:
                prepare(writing)
                create_run(writing, spec, started_at=started_at, run_id=run_id)
            store_began = time.perf_counter()
            _load_engine_run(
                writing,
                run_id,
                shard_dir,
                queries,
                stopped=stopped,
                measure_names=measure_names,
                n_total=n_total,
                nothing_answered=nothing_answered,
                answers=scoring,
            )
            store_seconds = time.perf_counter() - store_began
            if answers is not None and answers.cache_path is not None:
                _cache_judged(answers.cache_path, shard_dir)
            outcome = RunOutcome(
                run=get_run(writing, run_id),
                timing=ReplayTiming(retriever_seconds=replay_seconds),
                seconds_store=store_seconds,
                extra={"engine": "ray", "shard_dir": str(shard_dir)},
                answers=_stored_answers(writing, scoring.scoring_id) if scoring else None,
            )
    except BaseException as error:
        with contextlib.suppress(Exception), _writer(store) as writing:
            if not _run_exists(writing, run_id):
                prepare(writing)
                create_run(writing, spec, started_at=started_at, run_id=run_id)
            # A run loaded and finished stays as loaded (what failed came after its load).
            if get_run(writing, run_id).status == "running":
                fail_run(writing, run_id, f"{type(error).__name__}: {error}")
        raise
    shutil.rmtree(shard_dir, ignore_errors=True)
    queries.unlink(missing_ok=True)
    if judge_cache is not None:
        judge_cache.unlink(missing_ok=True)
    return outcome


def _judge_cache_snapshot(store: Store | StoreOpener, settings: JudgeSettings, path: Path) -> Path:
    """The judge's cached outputs for its model, written to the Parquet file ``path`` for
    the actors to read (they cannot open the store: it has one writer)."""
    import pyarrow.parquet as pq

    columns = ", ".join(JUDGED_SCHEMA.names)
    path.parent.mkdir(parents=True, exist_ok=True)
    opened = (
        Store.open(settings.cache_path)
        if settings.cache_path is not None
        else contextlib.nullcontext(store)
        if isinstance(store, Store)
        else store()
    )
    with opened as source:
        source.copy_query(
            f"SELECT {columns} FROM judge_cache WHERE judge_model = ?",
            [settings.model],
            path,
            options="FORMAT parquet",
        )
    # DuckDB's types as the actors' reader expects them, whatever the table's.
    pq.write_table(pq.read_table(path).cast(JUDGED_SCHEMA), path)
    return path


def _cache_judged(cache_path: Path, shard_dir: Path) -> None:
    """Add the judge outputs of a run's answer shards to the judge's own cache file."""
    import pyarrow.parquet as pq

    entries: list[tuple[str, CachedJudgment]] = []
    for path in sorted((shard_dir / ANSWERS_DIR).glob(f"*.judged{SHARD_SUFFIX}")):
        for row in pq.read_table(path).to_pylist():
            key = row.pop("cache_key")
            entries.append((key, CachedJudgment(**row)))
    if entries:
        with Store.open(cache_path) as cache:
            save_cached_judgments(cache, entries)


def _stored_answers(store: Store, scoring_id: str) -> AnswerScores | None:
    """The summaries and counts of a stored scoring (None when it was not stored: the run
    generated no answer); its per-answer scores stay in the store."""
    try:
        scoring = get_scoring(store, scoring_id)
    except NotFoundError:
        return None
    summaries = [
        MetricSummary(
            metric=summary["metric"],
            method=summary["method"],
            mean=summary["mean"],
            n_measured=summary["n_measured"],
            n_unmeasured=summary["n_unmeasured"],
            unmeasured_by_reason=summary["unmeasured_by_reason"],
            judge_model=summary["judge_model"],
            prompt_version=summary["prompt_version"],
        )
        for summary in answer_summaries(store, scoring_id)
    ]
    return AnswerScores(
        scores=(),
        summaries=tuple(summaries),
        n_records=scoring.n_records,
        started_at=scoring.started_at,
        finished_at=scoring.finished_at,
        scoring_id=scoring.scoring_id,
        run_id=scoring.run_id,
        judge_calls=scoring.judge_calls,
        cache_hits=scoring.cache_hits,
    )


@contextlib.contextmanager
def _writer(store: Store | StoreOpener) -> Iterator[Store]:
    """``store`` itself, or the store ``store()`` opens for the duration of the block."""
    if isinstance(store, Store):
        yield store
        return
    with store() as opened:
        yield opened


def _run_exists(store: Store, run_id: str) -> bool:
    try:
        get_run(store, run_id)
    except NotFoundError:
        return False
    return True


def _load_engine_run(
    store: Store,
    run_id: str,
    shard_dir: Path,
    queries: Path,
    *,
    stopped: EngineStoppedError | None,
    measure_names: Sequence[str],
    n_total: int,
    nothing_answered: str,
    answers: ShardAnswers | None = None,
) -> None:
    reason = (
        f"lost: the Ray engine stopped before this query's batch was stored ({stopped})"
        if stopped is not None
        else "lost: no shard of the Ray engine holds this query"
    )
    shards = sorted(shard_dir.glob(f"*{SHARD_SUFFIX}"))
    lost = shard_dir / f"lost{SHARD_SUFFIX}"
    if write_lost_shard(store, queries, shards, lost, error=reason, measures=measure_names):
        shards.append(lost)
    summary = summarize_shards(store, shards, measure_names)
    load_run_shards(
        store,
        run_id,
        shards,
        measures=measure_names,
        status=_run_status(summary.n_failed, summary.n_queries, nothing_answered=nothing_answered),
        n_total=n_total,
        error=_failure_note(summary.n_failed, summary.n_queries, summary.first_error),
        summary=summary,
        answers=answers,
    )


def _goldset_run_spec(
    goldset: Goldset,
    retriever: Retriever,
    *,
    k: int,
    measure_names: Sequence[str],
    relevance_threshold: int,
    label: str | None,
) -> RunSpec:
    fingerprint = retriever.model_fingerprint()
    config = retriever.describe()
    return RunSpec(
        kind="goldset",
        retriever_kind=str(config.get("kind", type(retriever).__name__)),
        k=k,
        measures=tuple(measure_names),
        evalkit_version=__version__,
        relevance_threshold=relevance_threshold,
        goldset_name=goldset.name,
        goldset_version=goldset.version,
        retriever_config=config,
        collection=config.get("collection"),
        model_name=fingerprint.name if fingerprint else None,
        model_dimension=fingerprint.dimension if fingerprint else None,
        model_fingerprint=fingerprint.canary_hash if fingerprint else None,
        index_fingerprint=retriever.index_fingerprint(),
        label=label,
        n_queries=len(goldset.queries),
    )


def _score_goldset(
    goldset: Goldset,
    results: Sequence[QueryResult],
    *,
    measure_names: Sequence[str],
    relevance_threshold: int,
) -> tuple[EvaluationResult | None, int]:
    """The replayed results scored on the goldset's judgments (None when no query was
    answered), and the number of judged queries."""
    answered = [r.query_id for r in results if r.ok]
    evaluator = Evaluator(
        list(goldset.judgments),
        parse_measures(list(measure_names)),
        relevance_threshold=relevance_threshold,
    )
    judged = {judgment.query_id for judgment in goldset.judgments}
    evaluated_ids = [query_id for query_id in answered if query_id in judged]
    evaluation = (
        evaluator.evaluate(results_frame(results), complete=True, query_ids=evaluated_ids)
        if answered
        else None
    )
    return evaluation, sum(1 for query in goldset.queries if query.id in judged)


def _goldset_outcome(
    store: Store,
    run_id: str,
    goldset: Goldset,
    results: Sequence[QueryResult],
    *,
    timing: ReplayTiming,
    seconds_metrics: float,
    seconds_store: float,
    answers: bool,
    judge_settings: JudgeSettings | None,
    offline: OfflineFaithfulness | None,
) -> RunOutcome:
    # The run is complete as a retrieval run whatever happens to its answers' scoring.
    began = time.perf_counter()
    scored = (
        score_run_answers(
            store, run_id, goldset.queries, results, settings=judge_settings, offline=offline
        )
        if answers
        else None
    )
    return RunOutcome(
        run=get_run(store, run_id),
        timing=timing,
        seconds_metrics=seconds_metrics,
        seconds_store=seconds_store,
        answers=scored,
        seconds_answers=time.perf_counter() - began if scored is not None else 0.0,
    )


# -- the gate: a baseline against a candidate run or a live retriever ---------------------

GATE_EXIT_CODES: Final[Mapping[str, int]] = MappingProxyType(
    {"pass": 0, "regression": 1, "inconclusive": 4}
)
"""The exit code of ``evalkit gate`` for each decision (bad input exits 2, a retriever or
store failure 3: ``EvalkitError.exit_code``)."""

GATE_CANDIDATE_LABEL: Final = "gate candidate"
"""The label of the run a gate records when it replays a live candidate."""


@dataclass(frozen=True, slots=True)
class GateOutcome:
    """A gate's comparison, and the run it recorded when the candidate was a live retriever
    (None when the candidate was a stored run or a run file)."""

    report: ComparisonReport
    candidate_run: RunRecord | None = None
    seconds: float | None = None
    """How long the gate took, the candidate's replay included."""
    about: str | None = None
    """What the comparison is about, for JUnit's ``file``: the goldset's source, the qrels
    file, or the baseline run file."""
    explanation: Explanation | None = None
    """The probable causes of the difference (``explain_comparison``), when both runs are
    stored runs (a run export is imported as one); None when either is a TREC run file."""
    default_measures: DefaultMeasures | None = None
    """The default measures the live candidate's run was scored on besides the compared
    ones, with those adapted to its k (None without a live candidate)."""

    @property
    def decision(self) -> Decision:
        """The overall verdict: ``regression``, ``inconclusive`` or ``pass``."""
        return self.report.decision

    @property
    def exit_code(self) -> int:
        """What ``evalkit gate`` exits with for this verdict."""
        return GATE_EXIT_CODES[self.report.decision.value]

    @property
    def candidate_run_id(self) -> str | None:
        """The id of the live candidate's stored run, if one was replayed."""
        return self.candidate_run.run_id if self.candidate_run is not None else None


def resolve_goldset(
    store: Store | StoreOpener | None,
    value: str | os.PathLike[str],
    *,
    root: Path | None = None,
    format: str = "jsonl",
    name: str | None = None,
    split: str = "test",
    topics: Path | None = None,
) -> str | Goldset:
    """What a goldset argument (``--goldset``, the pytest plugin's ``goldset=``) names: a
    stored goldset's name, or goldset files, read now.

    ``value`` is a path when it is spelt as one (a ``PathLike``, or text with a path
    separator: ``goldsets/demo``, ``./demo``); it must then exist. A bare word is the name of a
    stored goldset when ``store`` (an open store, a ``StoreOpener``, or None) holds one of
    that name, else the file or folder of that name if it exists, else a name that the
    store will say it does not know. Relative paths are relative to ``root`` (default: the
    working directory). Files are read as ``evalkit goldset import`` reads them (``format``
    jsonl, beir or trec with ``topics``; ``split``; ``name`` defaults to the file's or
    folder's stem) and their version is their content's hash, so storing them later adds a
    version only when the content is new. The ``Goldset``'s ``source`` is the path relative
    to ``root`` when it lies inside.
    """
    text = os.fspath(value)
    base = root or Path.cwd()
    path = base / Path(text).expanduser()
    spelt_as_path = isinstance(value, os.PathLike) or any(
        separator and separator in text for separator in ("/", os.sep, os.altsep)
    )
    if spelt_as_path:
        if not path.exists():
            raise ConfigError(
                f"goldset {text}: no such file or folder ({path}); give the path of a goldset "
                f"folder or file (relative to {base}), or the name of a stored goldset"
            )
    elif not path.exists() or _goldset_stored(store, text):
        return text
    loaded = read_goldset_files(
        path, format=format, name=name or path.stem, split=split, topics=topics
    )
    shown = path.relative_to(base) if path.is_relative_to(base) else path
    return dataclasses.replace(loaded, source=str(shown))


def _goldset_stored(store: Store | StoreOpener | None, name: str) -> bool:
    with _session(store) as opened:
        return opened is not None and bool(list_goldsets(opened, name))


def comparison_judgments(
    store: Store | None, goldset: str | Goldset | None, qrels: Path | None
) -> pd.DataFrame | None:
    """The judgments two runs are scored with: a TREC qrels file, or a goldset (a stored
    goldset's name, or a loaded ``Goldset``); None when neither is given (a stored run is
    then scored with its own goldset's judgments)."""
    if qrels is not None and goldset is not None:
        raise ConfigError("give --qrels or --goldset, not both")
    if qrels is not None:
        return read_qrels(qrels)
    if isinstance(goldset, Goldset):
        return pd.DataFrame(
            {
                "query_id": [judgment.query_id for judgment in goldset.judgments],
                "doc_id": [judgment.doc_id for judgment in goldset.judgments],
                "relevance": [judgment.relevance for judgment in goldset.judgments],
            }
        )
    if goldset is not None:
        if store is None:
            raise ConfigError(f"no store to read goldset {goldset!r} from")
        return judgments_frame(store, load_goldset(store, goldset).version)
    return None


def replay_candidate(
    store: Store,
    goldset: Goldset,
    retriever: Retriever | RetrieverOptions,
    *,
    settings: Settings,
    measures: Sequence[str] = (),
    k: int | None = None,
    label: str = GATE_CANDIDATE_LABEL,
    progress: Callable[[int, int], None] | None = None,
) -> RunOutcome:
    """Replay ``goldset`` against a live candidate and store the run (``evaluate_goldset``,
    without answer scoring), scored on the default measures for ``k`` plus ``measures``.

    ``retriever`` is a ready retriever (left open) or the options to build one with
    ``settings`` (built only now, closed afterwards). ``k`` defaults to ``settings.k``;
    ``progress`` is called as the replay advances (queries done, total).
    Raises RetrieverError unless every query was answered: a gate never compares a partial
    run as if it were complete.
    """
    depth = k or settings.k
    if isinstance(retriever, RetrieverOptions):
        live, built = build_retriever(retriever, settings), True
    else:
        live, built = retriever, False
    wanted = list(dict.fromkeys([*default_measures(depth), *measures]))
    outcome = evaluate_goldset(
        store,
        goldset,
        live,
        k=depth,
        measures=wanted,
        relevance_threshold=settings.relevance_threshold,
        batch_size=settings.query_batch_size,
        label=label,
        progress=progress,
        # The gate decides on retrieval metrics; judging answers would only add cost.
        answers=False,
        close_retriever=built,
    )
    if outcome.run.status != "complete":
        raise RetrieverError(
            f"the candidate run {outcome.run.run_id} is {outcome.run.status}: "
            f"{outcome.run.error}. The gate needs every query answered."
        )
    return dataclasses.replace(outcome, default_measures=default_measures_for(depth))


def run_reference(store: Store | None, reference: str) -> str:
    """``reference`` as ``score_run`` takes it: a run export (``is_run_export``: a Parquet
    export's directory or its ``run.json``) is imported into ``store`` (``import_run``,
    idempotent) and named by its run id, so that it is compared as the stored run it was,
    with its provenance; a stored run id or a TREC run file is returned as it is."""
    path = Path(reference)
    if not is_run_export(path):
        return reference
    if store is None:
        raise ConfigError(f"{reference} is a run export: comparing it needs a store to import it")
    return import_run(store, path).run_id


@contextlib.contextmanager
def _session(store: Store | StoreOpener | None) -> Iterator[Store | None]:
    """``store`` itself, or the store ``store()`` opens for the duration of the block."""
    if store is None or isinstance(store, Store):
        yield store
        return
    with store() as opened:
        yield opened


def gate_against_baseline(
    store: Store | StoreOpener | None,
    baseline: str,
    candidate: str | Retriever | RetrieverOptions,
    *,
    measures: Sequence[str] = ("ndcg@10",),
    goldset: str | Goldset | None = None,
    qrels: Path | None = None,
    settings: Settings | None = None,
    k: int | None = None,
    alpha: float = 0.05,
    min_effect: float = 0.01,
    resamples: int = 10_000,
    seed: int = 0,
    worst: int = 10,
    failed_as_zero: bool = False,
    label: str = GATE_CANDIDATE_LABEL,
    progress: Callable[[int, int], None] | None = None,
) -> GateOutcome:
    """The gate's workflow, which ``evalkit gate``, ``evalkit compare`` and the pytest plugin
    share: score ``baseline``, get the candidate, score it, compare the two.

    ``baseline`` is a stored run id, a run export (imported first: ``run_reference``) or a
    TREC run file; so is ``candidate`` when it is a string, else it is a live retriever (a
    ready one, or ``RetrieverOptions`` built with ``settings``, default the loaded settings)
    replayed now on ``goldset`` (``replay_candidate``) and stored as a run labelled
    ``label``. Both runs are scored with the judgments of ``qrels`` or ``goldset``
    (``comparison_judgments``; a stored run without either uses its own goldset's).
    ``store`` is an open store, a ``StoreOpener`` (opened for the scoring and the replay,
    closed before the statistics run) or None when only run files are compared. The
    comparison (``compare_scored``) refuses runs with failed queries unless
    ``failed_as_zero`` counts them as 0. ``progress`` follows a live candidate's replay.
    """
    started = time.perf_counter()
    with _session(store) as opened:
        judgments = comparison_judgments(opened, goldset, qrels)
        base = score_run(opened, run_reference(opened, baseline), measures, judgments=judgments)
        replayed: RunRecord | None = None
        defaults: DefaultMeasures | None = None
        gold: Goldset | None = goldset if isinstance(goldset, Goldset) else None
        if isinstance(candidate, str):
            reference = run_reference(opened, candidate)
        else:
            if goldset is None or opened is None:
                raise ConfigError("a live candidate needs --goldset NAME to replay")
            gold = gold or load_goldset(opened, str(goldset))
            live = replay_candidate(
                opened,
                gold,
                candidate,
                settings=settings or load_settings(),
                measures=measures,
                k=k,
                label=label,
                progress=progress,
            )
            replayed, defaults = live.run, live.default_measures
            reference = replayed.run_id
        cand = score_run(opened, reference, measures, judgments=judgments)
    report = compare_scored(
        base,
        cand,
        measures,
        alpha=alpha,
        min_effect=min_effect,
        resamples=resamples,
        seed=seed,
        worst=worst,
        failed_as_zero=failed_as_zero,
    )
    explanation = None
    if base.run_id is not None and cand.run_id is not None:
        with _session(store) as opened:
            if opened is not None:
                explanation = explain_comparison(opened, report)
    return GateOutcome(
        report=report,
        candidate_run=replayed,
        seconds=time.perf_counter() - started,
        about=_gate_subject(gold, qrels, baseline),
        explanation=explanation,
        default_measures=defaults,
    )


def _gate_subject(gold: Goldset | None, qrels: Path | None, baseline: str) -> str | None:
    """The file a gate's verdict is about: the goldset's queries file (its source, when that
    is a file), else the qrels file, else the baseline run file (None when the baseline is a
    stored run id). CI reporters annotate files, not folders."""
    if gold is not None and gold.source:
        source = Path(gold.source)
        if source.is_dir() and (source / QUERIES_FILE).is_file():
            return str(source / QUERIES_FILE)
        return str(gold.source)
    if qrels is not None:
        return str(qrels)
    return baseline if Path(baseline).is_file() else None


def gate_reports(outcome: GateOutcome, *, dashboard_url: str | None = None) -> tuple[str, str]:
    """The gate's JUnit XML (``to_junit_xml``, with the gate's ``time`` and ``file``) and
    Markdown summary (``to_markdown``). Under a verdict other than pass both carry the
    probable causes, linked under ``dashboard_url`` (in the JUnit failures' text and the
    suite's output)."""
    report = outcome.report
    explained = outcome.explanation if report.decision is not Decision.PASS else None
    junit = to_junit_xml(
        report.comparison,
        time=outcome.seconds,
        file=outcome.about,
        details=explained.to_text(dashboard_url) if explained is not None else None,
    )
    summary = to_markdown(report.comparison, worst=report.worst_queries)
    if explained is not None:
        summary = summary.rstrip() + "\n\n" + explained.to_markdown(dashboard_url)
    return junit, summary


def write_gate_reports(
    outcome: GateOutcome,
    *,
    junit: Path | None = None,
    markdown: Path | None = None,
    dashboard_url: str | None = None,
) -> None:
    """Write the gate's reports (``gate_reports``) where asked, creating their directories."""
    junit_xml, summary = gate_reports(outcome, dashboard_url=dashboard_url)
    for path, text in ((junit, junit_xml), (markdown, summary)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")


def record_baseline(
    store: Store,
    goldset: str | Goldset,
    retriever: Retriever | RetrieverOptions,
    path: Path,
    *,
    settings: Settings,
    measures: Sequence[str] = (),
    k: int | None = None,
    label: str = GATE_CANDIDATE_LABEL,
) -> RunOutcome:
    """A gate's first run, with no baseline yet: replay the live candidate on ``goldset`` (a
    stored goldset's name or a loaded ``Goldset``) with ``replay_candidate``, so only a
    complete run qualifies, and write its run as the TREC run file ``path``, the baseline of
    the gates that follow."""
    gold = goldset if isinstance(goldset, Goldset) else load_goldset(store, goldset)
    outcome = replay_candidate(
        store, gold, retriever, settings=settings, measures=measures, k=k, label=label
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    export_run(store, outcome.run.run_id, format="trec", output=path)
    return outcome


@dataclass(frozen=True, slots=True)
class TrafficReplay:
    """A stored traffic replay: its run, its window summary, where the time went, and the
    scores of the answers production logged for its queries (None when none were scored)."""

    run: RunRecord
    summary: StoredWindowSummary
    timing: ReplayTiming
    answers: AnswerScores | None = None


def replay_traffic_window(
    store: Store,
    sample_id: str,
    retriever: Retriever,
    *,
    k: int = 10,
    batch_size: int = 64,
    compare_k: int | None = None,
    rbo_p: float = 0.9,
    low_confidence_threshold: float = DEFAULT_LOW_CONFIDENCE,
    tenant_isolation: bool = True,
    embedder: TextEmbedder | None = None,
    embedding_sample_size: int = DEFAULT_EMBEDDING_SAMPLE,
    label: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    answers: bool = False,
    judge_settings: JudgeSettings | None = None,
    close_retriever: bool = False,
) -> TrafficReplay:
    """Replay the traffic sample ``sample_id`` against ``retriever``; store the run (kind
    ``traffic``), the comparison with logged results and the window summary.

    The store is held for the whole replay: the run row is created ``running`` before the
    first query and results are stored batch by batch (``evalkit.traffic.replay`` says what
    is compared and summarised). ``compare_k`` (default ``k``) is the depth of the
    comparison with logged results; with an ``embedder``, up to ``embedding_sample_size``
    distinct queries of the window are embedded and stored with the summary. Raises
    ConfigError when the sample holds tenants but the retriever does not filter by tenant
    (unless ``tenant_isolation=False``). A crash marks the run failed and re-raises.

    With ``answers``, the answers production logged for the replayed queries are scored
    once the run is stored (``score_answers_for_run``); the judge settings are checked
    before the first query is sent. With ``close_retriever`` the retriever is closed on the
    way out, whatever happens.
    """
    with _closing(retriever if close_retriever else None):
        if answers:
            # Checked before the replay, so a judge misconfiguration costs no retriever calls.
            judge_settings = answer_settings(judge_settings)
        plan = plan_replay(
            store,
            sample_id,
            retriever,
            k=k,
            compare_k=compare_k,
            tenant_isolation=tenant_isolation,
            label=label,
        )
        timing = ReplayTiming()

        def record(
            writing: Store, run_id: str, results: Sequence[QueryResult]
        ) -> _Recorded[StoredWindowSummary]:
            summary = save_window_summary(
                writing,
                plan,
                run_id,
                results,
                rbo_p=rbo_p,
                low_confidence_threshold=low_confidence_threshold,
                embedder=embedder,
                embedding_sample_size=embedding_sample_size,
            )
            return _Recorded(
                per_query=None, aggregates={}, n_evaluated=0, n_total=len(results), value=summary
            )

        def conclude(
            writing: Store,
            run_id: str,
            results: Sequence[QueryResult],
            summary: StoredWindowSummary,
            store_seconds: float,
        ) -> TrafficReplay:
            scored = (
                score_answers_for_run(writing, run_id, settings=judge_settings) if answers else None
            )
            return TrafficReplay(
                run=get_run(writing, run_id), summary=summary, timing=timing, answers=scored
            )

        return _replay_run(
            store,
            plan.spec,
            plan.queries,
            retriever,
            k=k,
            batch_size=batch_size,
            progress=progress,
            timing=timing,
            prepare=lambda writing: None,
            record=record,
            conclude=conclude,
            nothing_answered="complete",
        )


def newest_sample(store: Store, window: str) -> str:
    """The id of the newest stored sample of ``window`` (a window label or expression).

    Raises NotFoundError saying how to draw one when the window has none.
    """
    label = parse_window(window).label
    samples = list_samples(store, window_label=label, limit=1)
    if not samples:
        raise NotFoundError(
            f"window {label} has no stored sample; draw one with "
            f"`evalkit traffic sample --window {label}`"
        )
    return samples[0].sample_id


@dataclass(frozen=True, slots=True)
class AuditOutcome:
    """An audit's report, and the audit as stored (None when it was not stored)."""

    report: AuditReport
    stored: StoredAudit | None

    @property
    def audit_id(self) -> str | None:
        """The stored audit's id (None when it was not stored)."""
        return self.stored.audit_id if self.stored is not None else None


def audit_collection(
    store: Store | None,
    collection: str,
    *,
    settings: Settings,
    config: AuditConfig,
    embedder: TextEmbedder | None,
    chroma_url: str | None = None,
    source: Path | None = None,
    goldset: str | None = None,
    save: bool = True,
) -> AuditOutcome:
    """Audit the health of a Chroma collection and store the report (``save``).

    The collection is found at ``chroma_url`` (default the settings' server, else their
    embedded path). ``goldset``, a stored goldset's name, probes ANN recall and judgment
    coverage; ``store`` may be None only when neither ``save`` nor ``goldset`` needs it.
    The previous audit's measurements of the same collection (and goldset) are the
    baseline of the checks that compare with them.
    """
    # Chroma is a heavy optional dependency: loaded only when an audit runs.
    from evalkit.audit import run_audit
    from evalkit.retrievers.chroma_client import get_collection, open_chroma_client

    if store is None and (save or goldset):
        raise StoreError("audit_collection: saving an audit or reading a goldset needs a store")
    url = chroma_url or settings.chroma_url
    client = open_chroma_client(path=None if url else settings.resolved_chroma_path, url=url)
    gold = load_goldset(store, goldset) if store is not None and goldset else None
    previous = (
        latest_measurements(
            store,
            collection=collection,
            goldset_version=gold.version if gold is not None else None,
        )
        if store is not None
        else {}
    )
    report = run_audit(
        get_collection(client, collection),
        embedder=embedder,
        config=config,
        source=source,
        goldset=gold,
        previous=previous,
        location=url or str(settings.resolved_chroma_path),
    )
    stored = save_audit(store, report) if save and store is not None else None
    return AuditOutcome(report=report, stored=stored)


@dataclass(frozen=True, slots=True)
class DriftOutcome:
    """A drift check of a stream: the stored check, the test's result where a statistical
    test ran, and a note instead of a check when there was nothing to test yet.

    ``compared`` names what was compared (stream, subject, reference, current) when known.
    """

    check: StoredDriftCheck | None = None
    result: DriftResult | None = None
    note: str | None = None
    compared: Mapping[str, Any] = field(default_factory=dict)
    report: Path | None = None


def check_drift_embeddings(
    store: StoreOpener,
    reference: Path,
    current: Path,
    *,
    method: str = "auto",
    alpha: float = 0.05,
    seed: int = 0,
    stream: str = "queries",
    report_dir: Path | None = None,
) -> DriftOutcome:
    """Test two windows of embeddings (``.npy`` files) for drift and store the check.

    The store is opened once both files have been read.
    """
    reference_array = load_embeddings(reference)
    current_array = load_embeddings(current)
    with store() as writing:
        result, stored, report_path = check_embeddings(
            reference_array,
            current_array,
            method=method,
            alpha=alpha,
            seed=seed,
            stream=stream,
            reference_label=str(reference),
            current_label=str(current),
            store=writing,
            report_dir=report_dir,
        )
    return DriftOutcome(check=stored, result=result, report=report_path)


def check_drift_queries(
    store: Store,
    *,
    reference_window: str | None = None,
    method: str = "auto",
    alpha: float = 0.05,
    seed: int = 0,
    subject: str = "traffic",
    options: Mapping[str, Any] | None = None,
    before_test: Callable[[], None] | None = None,
) -> DriftOutcome:
    """Test the newest replayed traffic window's query embeddings against a reference
    window (default: the window before it) and store the check.

    Windows embedded with different models are not compared: a ``model_mismatch`` finding
    is stored instead. With fewer than two replayed windows or stored embeddings, nothing
    is stored and the outcome carries a note. ``before_test`` is called just before the
    statistical test (a scheduled job stops there when asked to).
    """
    summaries = list_window_summaries(store, limit=500)
    if not summaries:
        return DriftOutcome(note="no replayed traffic window yet")
    current = summaries[0]
    if reference_window is not None:
        reference = latest_window_summary(store, reference_window)
    else:
        older = [s for s in summaries if s.window_start < current.window_start]
        if not older:
            return DriftOutcome(note="only one replayed window so far")
        reference = older[0]
    compared: dict[str, Any] = {
        "stream": "queries",
        "subject": subject,
        "reference": reference.window_label,
        "current": current.window_label,
    }
    models = (reference.embedding_fingerprint, current.embedding_fingerprint)
    if None not in models and models[0] != models[1]:
        check = save_drift_check(
            store,
            **compared,
            finding="model_mismatch",
            method="fingerprint",
            is_drift=False,
            details={
                "reference_model": reference.embedding_model,
                "current_model": current.embedding_model,
                "reference_fingerprint": models[0],
                "current_fingerprint": models[1],
            },
        )
        return DriftOutcome(check=check, compared=compared)
    _, reference_vectors = window_embeddings(store, reference.run_id)
    _, current_vectors = window_embeddings(store, current.run_id)
    if len(reference_vectors) < 2 or len(current_vectors) < 2:
        return DriftOutcome(note="too few stored embeddings to test", compared=compared)
    if before_test is not None:
        before_test()
    result, stored, _ = check_embeddings(
        reference_vectors,
        current_vectors,
        method=method,
        alpha=alpha,
        seed=seed,
        stream="queries",
        subject=subject,
        reference_label=reference.window_label,
        current_label=current.window_label,
        store=store,
        settings=options,
        details={"reference_run": reference.run_id, "current_run": current.run_id},
    )
    return DriftOutcome(check=stored, result=result, compared=compared)


def check_drift_metric(
    store: Store,
    goldset: str,
    *,
    measure: str = "precision@10",
    method: str = "page_hinkley",
    label: str | None = None,
    warmup: int = 5,
    options: Mapping[str, Any] | None = None,
    retriever: str | None = None,
) -> DriftOutcome:
    """Run a sequential detector (``page_hinkley`` or ``cusum``) over the series of a
    goldset measure's means in complete runs (only runs labelled ``label`` if given) of one
    retriever (``retriever``, as ``evalkit runs list`` names it; default: the newest run's),
    and store where the newest run stands. A series still inside its warm-up gives a note."""
    labelled = [
        run
        for run in list_runs(store, goldset=goldset, status="complete", limit=500)
        if label is None or run.spec.label == label
    ]
    # Another retriever's runs are no point of this series: their means differ by design.
    followed = retriever
    if followed is None:
        followed = labelled[0].retriever_id if labelled else ""
    runs = [run for run in reversed(labelled) if run.retriever_id == followed]
    points = [(run, run.aggregates.get(measure)) for run in runs]
    series = [(run, float(value)) for run, value in points if value is not None]
    if len(series) <= warmup:
        return DriftOutcome(note=f"{len(series)} runs so far; the warm-up needs more")
    values = [value for _, value in series]
    detect = cusum if method == "cusum" else page_hinkley
    trace = detect(values, warmup=warmup, **dict(options or {}))
    last = trace.state(len(values) - 1)
    finding = {AlertLevel.OK: "ok", AlertLevel.WARNING: "warning", AlertLevel.ALERT: "drift"}
    check = save_drift_check(
        store,
        stream="metric",
        subject=f"{goldset}:{measure}",
        finding=finding[last.level],
        method=method,
        is_drift=last.level is AlertLevel.ALERT,
        reference=series[0][0].run_id,
        current=series[-1][0].run_id,
        n_reference=warmup,
        n_current=len(values),
        statistic=last.statistic,
        effect_size=last.value - trace.baseline_mean,
        details={
            "baseline_mean": trace.baseline_mean,
            "baseline_sd": trace.baseline_sd,
            "latest": last.value,
            "retriever": followed,
            "change_point_run": (
                series[last.change_point][0].run_id if last.change_point is not None else None
            ),
        },
    )
    return DriftOutcome(check=check)


def check_drift_precision(
    store: Store,
    goldset: str,
    *,
    measure: str = "ndcg@10",
    subject: str | None = None,
    baseline_run: str | None = None,
    alpha: float = 0.05,
    min_effect: float = 0.01,
    seed: int = 0,
) -> PrecisionWatch:
    """Watch every retriever's runs on ``goldset`` for a drop of ``measure`` (sequential
    detection plus a paired test of the latest run against the baseline), stored."""
    return watch_precision(
        store,
        goldset,
        measure=measure,
        subject=subject,
        baseline_run=baseline_run,
        alpha=alpha,
        min_effect=min_effect,
        seed=seed,
    )


def collection_vectors(
    settings: Settings,
    collection: str,
    *,
    chroma_url: str | None = None,
    sample: int = 2000,
    seed: int = 0,
) -> npt.NDArray[np.float32]:
    """A seeded sample of up to ``sample`` stored embeddings of a Chroma collection."""
    # Chroma is a heavy optional dependency: loaded only when a collection is read.
    from evalkit.retrievers.chroma_client import close_client, get_collection, open_chroma_client

    url = chroma_url or settings.chroma_url
    client = open_chroma_client(path=None if url else settings.resolved_chroma_path, url=url)
    try:
        return _sample_vectors(get_collection(client, collection), sample, seed)
    finally:
        close_client(client)


def _sample_vectors(collection: Any, sample: int, seed: int) -> npt.NDArray[np.float32]:
    count = collection.count()
    ids = collection.get(include=[])["ids"]
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(ids), min(sample, count), replace=False).tolist())
    picked = [ids[index] for index in chosen]
    vectors = []
    for start in range(0, len(picked), 1000):
        got = collection.get(ids=picked[start : start + 1000], include=["embeddings"])
        vectors.append(np.asarray(got["embeddings"], dtype=np.float32))
    return np.concatenate(vectors) if vectors else np.zeros((0, 0), dtype=np.float32)


def save_documents_reference(
    settings: Settings,
    collection: str,
    *,
    chroma_url: str | None = None,
    sample: int = 2000,
    seed: int = 0,
) -> tuple[Path, int]:
    """Save a reference snapshot of a collection's embeddings under ``home/snapshots``
    for ``check_drift_documents``; its path and the number of vectors saved."""
    vectors = collection_vectors(
        settings, collection, chroma_url=chroma_url, sample=sample, seed=seed
    )
    snapshots = settings.home / "snapshots"
    snapshots.mkdir(parents=True, exist_ok=True)
    path = snapshots / f"{collection}-{utc_now():%Y%m%dT%H%M%S}.npy"
    np.save(path, vectors)
    return path, len(vectors)


def check_drift_documents(
    store: StoreOpener,
    settings: Settings,
    collection: str,
    *,
    chroma_url: str | None = None,
    reference: Path | None = None,
    sample: int = 2000,
    method: str = "auto",
    alpha: float = 0.05,
    seed: int = 0,
    report_dir: Path | None = None,
) -> DriftOutcome:
    """Test a sample of a collection's embeddings now against a reference snapshot
    (default: the newest saved by ``save_documents_reference``) and store the check.

    The store is opened only once the collection has been read.
    """
    vectors = collection_vectors(
        settings, collection, chroma_url=chroma_url, sample=sample, seed=seed
    )
    if reference is None:
        saved = sorted((settings.home / "snapshots").glob(f"{collection}-*.npy"))
        if not saved:
            raise ConfigError(
                f"no reference snapshot of {collection}: save one first with "
                f"`evalkit drift documents --collection {collection} --save-reference`"
            )
        reference = saved[-1]
    with store() as writing:
        result, stored, report_path = check_embeddings(
            load_embeddings(reference),
            vectors,
            method=method,
            alpha=alpha,
            seed=seed,
            stream="documents",
            subject=collection,
            reference_label=str(reference),
            current_label=f"{collection} now",
            store=writing,
            report_dir=report_dir,
        )
    return DriftOutcome(check=stored, result=result, report=report_path)


def check_drift_model(
    store: StoreOpener,
    settings: Settings,
    collection: str,
    *,
    chroma_url: str | None = None,
) -> ModelCheck:
    """Check that the configured query model embeds as the model a collection was built
    with (its stored fingerprint) and store the check; a mismatch is its own finding."""
    # Chroma is a heavy optional dependency: loaded only here.
    from evalkit.retrievers.chroma_client import close_client, get_collection, open_chroma_client

    url = chroma_url or settings.chroma_url
    client = open_chroma_client(path=None if url else settings.resolved_chroma_path, url=url)
    try:
        metadata = dict(get_collection(client, collection).metadata or {})
    finally:
        close_client(client)
    embedder = build_query_embedder(settings)
    if embedder is None:
        raise ConfigError(
            "the model check embeds canary texts with the query embedder, and [embedder] kind "
            "is none: set kind = sentence-transformers (with model_path) or openai to the "
            "model the collection was indexed with"
        )
    with store() as writing:
        return check_model(
            ModelFingerprint.from_metadata(metadata), embedder, subject=collection, store=writing
        )


def score_answers_for_run(
    store: Store,
    run_id: str,
    *,
    settings: JudgeSettings | None = None,
    offline: OfflineFaithfulness | None = None,
) -> AnswerScores | None:
    """Score the answers production logged for the queries of a traffic replay run.

    The answers and contexts are those of the traffic log (what the application generated
    then, not what the replayed retriever returns now); the scores are stored under
    ``run_id``. Returns None, storing nothing, when no replayed query has a logged answer.
    """
    query_ids = [str(query_id) for query_id in run_queries(store, run_id)["query_id"]]
    records = [
        AnswerRecord(
            id=logged.query_id, question=logged.text, answer=logged.answer, contexts=logged.contexts
        )
        for logged in logged_answers(store, query_ids)
    ]
    if not records:
        return None
    return score_and_store_answers(
        records, store=store, settings=settings, run_id=run_id, offline=offline
    )


def score_and_store_answers(
    records: Sequence[AnswerRecord],
    *,
    store: Store,
    settings: JudgeSettings | None = None,
    run_id: str | None = None,
    source: str | None = None,
    embedder: Embedder | None = None,
    offline: OfflineFaithfulness | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AnswerScores:
    """Score ``records`` (``evalkit.answers.score_answers``) and store every score.

    The judge's cache is the ``cache_path`` file when the settings name one, else the
    store's ``judge_cache`` table; the offline method's context vectors are cached in the
    store's ``context_embeddings`` table. The scores are stored under a new scoring id,
    which the returned ``AnswerScores`` carries.
    """
    settings = settings or load_settings().judge
    with _judge_cache(settings, store) as cache:
        result = answer_stage.score_answers(
            records,
            settings=settings,
            run_id=run_id,
            source=source,
            embedder=embedder,
            cache=cache,
            offline=offline,
            embedding_cache=StoreEmbeddingCache(store),
            progress=progress,
        )
    scoring_id = save_answer_scores(store, result, settings=settings.public_dict(), records=records)
    return dataclasses.replace(result, scoring_id=scoring_id)


@contextlib.contextmanager
def _judge_cache(settings: JudgeSettings, store: Store) -> Iterator[JudgeCache]:
    if not answer_stage.uses_judge(settings):
        yield MemoryJudgeCache()
    elif settings.cache_path is not None:
        with Store.open(settings.cache_path) as own:
            yield StoreJudgeCache(own)
    else:
        yield StoreJudgeCache(store)


def score_answer_file(
    path: Path | str,
    *,
    settings: JudgeSettings | None = None,
    store: Store | None = None,
    embedder: Embedder | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AnswerScores:
    """Read a JSONL of answer records (see ``evalkit.answers.files``), score and store it.

    Without ``store`` the scores are only returned.
    """
    records = read_answer_records(path)
    if progress is not None:
        progress(0, len(records))
    if store is None:
        result = answer_stage.score_answers(
            records, settings=settings, source=str(path), embedder=embedder, progress=progress
        )
    else:
        result = score_and_store_answers(
            records,
            store=store,
            settings=settings,
            source=str(path),
            embedder=embedder,
            progress=progress,
        )
    if progress is not None:
        progress(len(records), len(records))
    return result


def answer_settings(settings: JudgeSettings | None = None) -> JudgeSettings:
    """The judge settings a run's answers will be scored with (default: the ``[judge]``
    settings), checked now, so a configuration mistake fails before any query is sent.

    Raises ConfigError saying what to fix, or how to turn answer scoring off.
    """
    try:
        settings = settings or load_settings().judge
        answer_stage.check_judge_settings(settings)
    except ConfigError as error:
        raise ConfigError(
            f"answer scoring: {error}; or turn answer scoring off (--no-answers)"
        ) from error
    return settings


def run_answer_records(
    queries: Sequence[Query], results: Sequence[QueryResult]
) -> list[AnswerRecord]:
    """One answer record per answered query that came back with a generated answer.

    The record carries the query's text, reference answer and reference context ids (from
    the goldset) and the result's answer, contexts and context ids. Queries whose retrieval
    failed, and results without an answer, give no record; an answer without contexts does,
    and is then scored as unmeasured (``empty_contexts``).
    """
    by_id = {query.id: query for query in queries}
    return [
        AnswerRecord.from_query(
            by_id[result.query_id],
            answer=result.answer,
            contexts=result.contexts,
            context_ids=result.context_ids,
        )
        for result in results
        if result.ok and result.answer is not None and result.query_id in by_id
    ]


def score_run_answers(
    store: Store,
    run_id: str,
    queries: Sequence[Query],
    results: Sequence[QueryResult],
    *,
    settings: JudgeSettings | None = None,
    offline: OfflineFaithfulness | None = None,
) -> AnswerScores | None:
    """Score the answers generated during a run and store them under ``run_id``.

    Returns None, storing nothing, when no result carries an answer. Otherwise every
    answer is scored by ``evalkit.answers.score_answers``: faithfulness by the LLM judge
    when ``settings`` configure one, else by the offline method; context precision / recall
    where the goldset has reference context ids. Answers that cannot be measured (no claim,
    no context, a judge failure) are stored with their reason and left out of the means.
    """
    records = run_answer_records(queries, results)
    if not records:
        return None
    return score_and_store_answers(
        records, store=store, settings=settings, run_id=run_id, offline=offline
    )
