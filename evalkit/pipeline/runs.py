"""The run lifecycle every replayed run goes through: the run row created ``running``, the
queries replayed (locally or on the Ray engine), the results stored, the run finished
``complete``, ``partial`` or ``failed``, and a crash recorded as ``failed``."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import pandas as pd

from evalkit import answers as answer_stage
from evalkit.answers.records import AnswerScores
from evalkit.config import JudgeSettings
from evalkit.engines import (
    JUDGED_SCHEMA,
    SHARD_SUFFIX,
    EngineStoppedError,
    RayEngine,
    ReplayTiming,
    replay,
)
from evalkit.errors import NotFoundError
from evalkit.extras import require
from evalkit.metrics.defaults import DefaultMeasures, default_measures_for
from evalkit.pipeline.answer_scores import _cache_judged, _stored_answers
from evalkit.records import Query, QueryResult
from evalkit.retrievers.base import Retriever
from evalkit.store import RunRecord, RunSpec, Store, utc_now
from evalkit.store.answers import new_scoring_id
from evalkit.store.runs import (
    add_query_results,
    create_run,
    fail_run,
    finish_run,
    get_run,
    new_run_id,
)
from evalkit.store.shards import ShardAnswers, load_run_shards, summarize_shards, write_lost_shard


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
    (``evalkit.engines.ray_actors``); the actors leave one Parquet shard per batch. The one
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
    engine_module = require("evalkit.engines.ray_actors", "the Ray engine (--engine ray)")
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


@contextlib.contextmanager
def _session(store: Store | StoreOpener | None) -> Iterator[Store | None]:
    """``store`` itself, or the store ``store()`` opens for the duration of the block."""
    if store is None or isinstance(store, Store):
        yield store
        return
    with store() as opened:
        yield opened
