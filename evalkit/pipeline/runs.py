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
from datetime import datetime
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
from evalkit.extras import require
from evalkit.metrics.defaults import DefaultMeasures, default_measures_for
from evalkit.pipeline.answer_scores import _cache_judged, _stored_answers
from evalkit.records import Query, QueryResult
from evalkit.retrievers.base import Retriever
from evalkit.store import RunRecord, RunSpec, Store, utc_now
from evalkit.store.answers import new_scoring_id
from evalkit.store.runs import (
    RunRecorder,
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
_Replayed = TypeVar("_Replayed")
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


def _record_run(
    store: Store | StoreOpener,
    spec: RunSpec,
    *,
    prepare: Callable[[Store], object],
    nothing_answered: str,
    run_replay: Callable[[RunRecorder | None], _Replayed],
    finish: Callable[[RunRecorder, _Replayed], _Value],
    conclude: Callable[[Store, RunRecorder, _Value], _Outcome],
    started_at: datetime | None = None,
    run_id: str | None = None,
) -> _Outcome:
    """The lifecycle of every replayed run (goldset, traffic, a gate's candidate; local or
    on Ray), each step of it a ``RunRecorder``'s.

    ``prepare`` writes what the run row refers to (its goldset) before the run is recorded
    ``running``; ``run_replay(recorder)`` replays the queries; ``finish(recorder, replayed)``
    stores what this kind of run derives from them and finishes the run (``complete``,
    ``partial``, ``failed``; with no query at all, ``nothing_answered``); ``conclude``
    builds the outcome from the finished run, outside the run's failure handling (what it
    does, like scoring answers, cannot fail the run). Any crash before the run is finished
    marks it ``failed`` with the error, and re-raises.

    Given an open ``store``, the run is recorded ``running`` before the replay, which gets
    the recorder to store its results as they come. Given a ``StoreOpener``, the store is
    opened only after the replay (``run_replay`` gets None), and the run is recorded then, with
    the replay's start time, from its ``running`` row to its final status in one short
    stretch; a replay that crashes is recorded as a ``failed`` run in a short stretch of its
    own.
    """
    started_at = started_at or utc_now()
    run_id = run_id or new_run_id(started_at)

    def recorder(writing: Store) -> RunRecorder:
        return RunRecorder(
            writing,
            spec,
            nothing_answered=nothing_answered,
            started_at=started_at,
            run_id=run_id,
        )

    if isinstance(store, Store):
        prepare(store)
        with recorder(store) as recording:
            value = finish(recording, run_replay(recording))
        return conclude(store, recording, value)
    try:
        replayed = run_replay(None)
    except BaseException as error:
        with contextlib.suppress(Exception), store() as writing:
            prepare(writing)
            with recorder(writing) as recording:
                recording.fail(error)
        raise
    with store() as writing:
        prepare(writing)
        with recorder(writing) as recording:
            value = finish(recording, replayed)
        return conclude(writing, recording, value)


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
    """A run replayed by the local engine (``_record_run``): given an open store, results
    are stored batch by batch as they come, else all at once after the replay. ``record``
    stores what this kind of run derives from its results and returns the figures of its
    final row; ``conclude``'s last argument is the seconds spent writing to the store."""

    def run(recording: RunRecorder | None) -> list[QueryResult]:
        return replay(
            queries,
            retriever,
            k=k,
            batch_size=batch_size,
            on_batch=recording.add if recording is not None else None,
            progress=progress,
            timing=timing,
        )

    def finish(
        recording: RunRecorder, results: list[QueryResult]
    ) -> tuple[_Value, list[QueryResult]]:
        if not isinstance(store, Store):
            recording.add(results)
        recorded = record(recording.store, recording.run_id, results)
        recording.finish(
            per_query=recorded.per_query,
            aggregates=recorded.aggregates,
            n_evaluated=recorded.n_evaluated,
            n_total=recorded.n_total,
        )
        return recorded.value, results

    return _record_run(
        store,
        spec,
        prepare=prepare,
        nothing_answered=nothing_answered,
        run_replay=run,
        finish=finish,
        conclude=lambda writing, recording, finished: conclude(
            writing, recording.run_id, finished[1], finished[0], recording.seconds_store
        ),
    )


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

    def run(recording: RunRecorder | None) -> tuple[EngineStoppedError | None, float]:
        began = time.perf_counter()
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
            return error, time.perf_counter() - began
        return None, time.perf_counter() - began

    def finish(
        recording: RunRecorder, replayed: tuple[EngineStoppedError | None, float]
    ) -> tuple[float, float]:
        stopped, replay_seconds = replayed
        began = time.perf_counter()
        _load_engine_run(
            recording,
            shard_dir,
            queries,
            stopped=stopped,
            measure_names=measure_names,
            n_total=n_total,
            answers=scoring,
        )
        store_seconds = time.perf_counter() - began
        if answers is not None and answers.cache_path is not None:
            _cache_judged(answers.cache_path, shard_dir)
        return replay_seconds, store_seconds

    def conclude(
        writing: Store, recording: RunRecorder, seconds: tuple[float, float]
    ) -> RunOutcome:
        return RunOutcome(
            run=get_run(writing, recording.run_id),
            timing=ReplayTiming(retriever_seconds=seconds[0]),
            seconds_store=seconds[1],
            extra={"engine": "ray", "shard_dir": str(shard_dir)},
            answers=_stored_answers(writing, scoring.scoring_id) if scoring else None,
        )

    outcome = _record_run(
        store,
        spec,
        prepare=prepare,
        nothing_answered=nothing_answered,
        run_replay=run,
        finish=finish,
        conclude=conclude,
        started_at=started_at,
        run_id=run_id,
    )
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


def _load_engine_run(
    recording: RunRecorder,
    shard_dir: Path,
    queries: Path,
    *,
    stopped: EngineStoppedError | None,
    measure_names: Sequence[str],
    n_total: int,
    answers: ShardAnswers | None = None,
) -> None:
    """Load the Ray engine's shards of the run ``recording`` records, and its final row,
    in one transaction; queries no shard holds are stored failed with the reason."""
    reason = (
        f"lost: the Ray engine stopped before this query's batch was stored ({stopped})"
        if stopped is not None
        else "lost: no shard of the Ray engine holds this query"
    )
    store = recording.store
    shards = sorted(shard_dir.glob(f"*{SHARD_SUFFIX}"))
    lost = shard_dir / f"lost{SHARD_SUFFIX}"
    if write_lost_shard(store, queries, shards, lost, error=reason, measures=measure_names):
        shards.append(lost)
    summary = summarize_shards(store, shards, measure_names)
    recording.finish_loaded(
        lambda status, note: load_run_shards(
            store,
            recording.run_id,
            shards,
            measures=measure_names,
            status=status,
            n_total=n_total,
            error=note,
            summary=summary,
            answers=answers,
        ),
        n_failed=summary.n_failed,
        n_results=summary.n_queries,
        first_error=summary.first_error,
    )


@contextlib.contextmanager
def _session(store: Store | StoreOpener | None) -> Iterator[Store | None]:
    """``store`` itself, or the store ``store()`` opens for the duration of the block."""
    if store is None or isinstance(store, Store):
        yield store
        return
    with store() as opened:
        yield opened
