"""The run lifecycle every replayed run goes through: the run row created ``running``, the
queries replayed (locally or on the Ray engine), the results stored, the run finished
``complete``, ``partial`` or ``failed``, and a crash recorded as ``failed``."""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import pandas as pd

from evalkit import answers as answer_stage
from evalkit.answers.records import AnswerScores
from evalkit.config import JudgeSettings
from evalkit.engines import (
    SHARD_SUFFIX,
    Engine,
    EngineReport,
    RayEngine,
    ReplayQueries,
    ReplaySpec,
    ReplayTiming,
)
from evalkit.engines.base import Progress
from evalkit.metrics import parse_measures
from evalkit.metrics.defaults import DefaultMeasures, default_measures_for, shallow_run_note
from evalkit.pipeline.answer_scores import cache_judged, stored_answers
from evalkit.records import Query, QueryResult
from evalkit.retrievers.base import describe_exception
from evalkit.store import RunRecord, RunSpec, Store, utc_now
from evalkit.store.access import FileLock, StoreBusyError, WriterAccess
from evalkit.store.answers import new_scoring_id
from evalkit.store.runs import (
    RunRecorder,
    get_run,
    new_run_id,
    run_lock,
)
from evalkit.store.shards import ShardAnswers, load_engine_report, write_judge_cache_snapshot

logger = logging.getLogger(__name__)


def default_measures(k: int) -> list[str]:
    """The default measures at ``k`` retrieved documents per query: ``DEFAULT_MEASURES``
    with each cutoff deeper than ``k`` taken at ``k`` (``default_measures_for``)."""
    return list(default_measures_for(k).measures)


def canonical_measures(names: Sequence[str]) -> list[str]:
    """``names`` by their canonical names (``P@10`` is ``precision@10``), each once, as runs
    store them; MeasureError saying why a name does not parse."""
    return [str(measure) for measure in parse_measures(names)]


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
    unfiltered_tenants: tuple[int, int] = (0, 0)
    """(queries, tenants) of a goldset's tenanted queries replayed on a retriever that does
    not filter by tenant: each searched every tenant's documents."""
    nothing_judged_note: str | None = None
    """What to tell when the queries answered returned no document at all, or not one that
    the goldset judges (its ids are likely not the goldset's); None otherwise."""

    @property
    def unfiltered_tenants_note(self) -> str | None:
        """What to tell of tenanted queries replayed without a tenant filter; None when
        there are none."""
        queries, tenants = self.unfiltered_tenants
        if not queries:
            return None
        return (
            f"{queries} of the goldset's queries belong to {tenants} tenant(s), and the "
            "retriever does not filter by tenant: each searched every tenant's documents "
            "(--where-key KEY, the metadata key holding the tenant, restricts each query "
            "to its own)"
        )

    @property
    def shallow_measures_note(self) -> str | None:
        """What to tell of the measures named cut deeper than the run's k
        (``shallow_run_note``); None when every cutoff is within k."""
        return shallow_run_note(self.run.spec.measures, self.run.spec.k)


_Value = TypeVar("_Value")
_Outcome = TypeVar("_Outcome")


@dataclass(frozen=True, slots=True)
class Recorded(Generic[_Value]):
    """What a kind of run stored besides its query results: the figures its final row
    takes, and a value of its own for ``conclude``."""

    per_query: pd.DataFrame | None
    aggregates: Mapping[str, float]
    n_evaluated: int
    n_total: int
    value: _Value


@contextlib.contextmanager
def closing_retriever(retriever: object | None) -> Iterator[None]:
    """Close ``retriever`` (if given and closable) when the block ends, however it ends; a
    ``close()`` that raises is logged, not raised, so it hides neither a stored outcome nor
    another error on its way.
    """
    try:
        yield
    finally:
        close = getattr(retriever, "close", None)
        if callable(close):
            try:
                close()
            except Exception as error:  # the user's retriever may raise anything
                made = type(retriever)
                logger.warning(
                    "closing the retriever (%s.%s) raised %s; what was stored stands",
                    made.__module__,
                    made.__qualname__,
                    describe_exception(error),
                )


def _record_run(
    store: WriterAccess,
    spec: RunSpec,
    engine: Engine,
    queries: ReplayQueries,
    replay_spec: ReplaySpec,
    *,
    started_at: datetime,
    progress: Progress | None,
    prepare: Callable[[Store], object],
    nothing_answered: str,
    finish: Callable[[RunRecorder, EngineReport], _Value],
    conclude: Callable[[Store, RunRecorder, _Value], _Outcome],
    record_first: bool = False,
) -> _Outcome:
    """The lifecycle of every replayed run on any ``engine``, each step a ``RunRecorder``'s.

    ``prepare`` writes what the run row refers to; ``engine.replay`` replays; ``finish`` stores
    the report and finishes the run; ``conclude`` builds the outcome (it cannot fail the run). A
    crash before the run is finished marks it ``failed`` and re-raises. An open ``Store`` records
    the run ``running`` first; any other ``WriterAccess`` is not held during the replay
    (docs/scheduler.md "One writer") unless ``record_first`` (Ray's shards) holds ``run_lock``.
    """
    run_id = replay_spec.run_id
    purpose = f"{spec.kind} run {run_id}"

    def recorder(writing: Store, *, recorded: bool = False) -> RunRecorder:
        return RunRecorder(
            writing,
            spec,
            nothing_answered=nothing_answered,
            started_at=started_at,
            run_id=run_id,
            recorded=recorded,
        )

    def run_replay(recording: RunRecorder | None) -> EngineReport:
        return engine.replay(
            replay_spec,
            queries,
            progress=progress,
            on_batch=recording.add if recording is not None else None,
        )

    if store.keeps_open:
        with store.writer(purpose) as held:
            prepare(held)
            with recorder(held) as recording:
                value = finish(recording, run_replay(recording))
            return conclude(held, recording, value)
    if record_first:
        return _record_first(
            store,
            purpose,
            recorder=recorder,
            run_replay=run_replay,
            prepare=prepare,
            finish=finish,
            conclude=conclude,
        )
    try:
        replayed = run_replay(None)
    except BaseException as error:
        with contextlib.suppress(Exception), store.writer(purpose) as writing:
            prepare(writing)
            with recorder(writing) as recording:
                recording.fail(error)
        raise
    with _recording_replayed(store, purpose, run_id) as writing:
        prepare(writing)
        with recorder(writing) as recording:
            value = finish(recording, replayed)
        return conclude(writing, recording, value)


@contextlib.contextmanager
def _recording_replayed(store: WriterAccess, purpose: str, run_id: str) -> Iterator[Store]:
    """``store.writer(purpose)`` for recording run ``run_id`` once its queries are replayed.

    When the store stays busy past the wait, the StoreBusyError says that the replayed
    results are not stored: they live only in this process, which gives up on them.
    """
    with contextlib.ExitStack() as stack:
        try:
            writing = stack.enter_context(store.writer(purpose))
        except StoreBusyError as error:
            raise StoreBusyError(
                f"run {run_id} was replayed but its results could not be recorded, and are not "
                f"stored: {error}"
            ) from error
        yield writing


def _record_first(
    store: WriterAccess,
    purpose: str,
    *,
    recorder: Callable[..., RunRecorder],
    run_replay: Callable[[RunRecorder | None], EngineReport],
    prepare: Callable[[Store], object],
    finish: Callable[[RunRecorder, EngineReport], _Value],
    conclude: Callable[[Store, RunRecorder, _Value], _Outcome],
) -> _Outcome:
    """``_record_run`` with the run recorded ``running`` (under its lock) before the
    replay, in a short stretch of its own, and finished in another after it."""
    lock: FileLock | None = None
    try:
        with store.writer(purpose) as writing:
            prepare(writing)
            created = recorder(writing)
            lock = run_lock(writing.path, created.run_id)
            lock.acquire(purpose=purpose, wait=0)
            created.record_running()
        try:
            replayed = run_replay(None)
        except BaseException as error:
            with contextlib.suppress(Exception), store.writer(purpose) as writing:
                recorder(writing, recorded=True).fail(error)
            raise
        with _recording_replayed(store, purpose, created.run_id) as writing:
            with recorder(writing, recorded=True) as recording:
                value = finish(recording, replayed)
            return conclude(writing, recording, value)
    finally:
        if lock is not None:
            lock.release()
            lock.path.unlink(missing_ok=True)


def replay_run(
    store: WriterAccess,
    spec: RunSpec,
    engine: Engine,
    queries: Sequence[Query],
    *,
    progress: Progress | None,
    prepare: Callable[[Store], object],
    record: Callable[[Store, str, Sequence[QueryResult]], Recorded[_Value]],
    conclude: Callable[[Store, str, EngineReport, _Value, float], _Outcome],
    nothing_answered: str,
) -> _Outcome:
    """A run an engine hands back (``LocalEngine``), through ``_record_run``: stored batch by batch
    when ``store`` stays open, else after the replay. ``record`` stores what the run derives and
    returns its final figures; ``conclude`` gets the report and the seconds spent writing.
    """

    def finish(recording: RunRecorder, report: EngineReport) -> tuple[_Value, EngineReport]:
        if not store.keeps_open:
            recording.add(report.results)
        recorded = record(recording.store, recording.run_id, report.results)
        recording.finish(
            per_query=recorded.per_query,
            aggregates=recorded.aggregates,
            n_evaluated=recorded.n_evaluated,
            n_total=recorded.n_total,
        )
        return recorded.value, report

    started_at = utc_now()
    return _record_run(
        store,
        spec,
        engine,
        ReplayQueries(queries=queries),
        ReplaySpec(run_id=new_run_id(started_at), k=spec.k),
        started_at=started_at,
        progress=progress,
        prepare=prepare,
        nothing_answered=nothing_answered,
        finish=finish,
        conclude=lambda writing, recording, finished: conclude(
            writing, recording.run_id, finished[1], finished[0], recording.seconds_store
        ),
    )


def sharded_run(
    store: WriterAccess,
    spec: RunSpec,
    engine: RayEngine,
    queries: ReplayQueries,
    *,
    n_total: int,
    prepare: Callable[[Store], object],
    progress: Progress | None,
    nothing_answered: str,
    answers: JudgeSettings | None = None,
) -> RunOutcome:
    """A run an engine leaves as Parquet shards (``RayEngine``), through ``_record_run``.

    The writer records the queries no shard holds as failed, then loads every shard (and, with
    ``answers``, their answer scores) and the final status in one transaction: all rows or none.
    Loaded shards are removed; a crash or interruption marks the run ``failed`` and keeps them.
    """
    engine.preflight()
    started_at = utc_now()
    run_id = new_run_id(started_at)
    judge_cache = (
        _judge_cache_snapshot(
            store, answers, engine.shard_dir(run_id).with_name(f"{run_id}.judge_cache.parquet")
        )
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
    reports: list[EngineReport] = []

    def finish(recording: RunRecorder, report: EngineReport) -> float:
        reports.append(report)
        began = time.perf_counter()
        load_engine_report(
            recording, report, measures=spec.measures, n_total=n_total, answers=scoring
        )
        store_seconds = time.perf_counter() - began
        if answers is not None and answers.cache_path is not None and report.shard_dir:
            cache_judged(answers.cache_path, report.shard_dir)
        return store_seconds

    def conclude(writing: Store, recording: RunRecorder, store_seconds: float) -> RunOutcome:
        return RunOutcome(
            run=get_run(writing, recording.run_id),
            timing=reports[0].timing,
            seconds_store=store_seconds,
            extra=dict(reports[0].extra),
            answers=stored_answers(writing, scoring.scoring_id) if scoring else None,
        )

    try:
        outcome = _record_run(
            store,
            spec,
            engine,
            queries,
            ReplaySpec(
                run_id=run_id,
                k=spec.k,
                measures=spec.measures,
                relevance_threshold=spec.relevance_threshold,
                answers=answers,
                judge_cache=judge_cache,
            ),
            started_at=started_at,
            progress=progress,
            prepare=prepare,
            nothing_answered=nothing_answered,
            finish=finish,
            conclude=conclude,
            record_first=True,
        )
    except BaseException:
        _discard_unused(engine, run_id)
        raise
    finally:
        if judge_cache is not None:
            judge_cache.unlink(missing_ok=True)
    reports[0].discard()
    return outcome


def _discard_unused(engine: RayEngine, run_id: str) -> None:
    """Remove the files of run ``run_id`` that a crashed run leaves and nothing will read:
    its query table and shard directory when the engine wrote no shard (it never connected,
    or stopped before a batch finished). Shards that were written stay for inspection."""
    shard_dir = engine.shard_dir(run_id)
    if shard_dir.exists() and any(shard_dir.glob(f"*{SHARD_SUFFIX}")):
        return
    shutil.rmtree(shard_dir, ignore_errors=True)
    engine.query_table(run_id).unlink(missing_ok=True)


def _judge_cache_snapshot(store: WriterAccess, settings: JudgeSettings, path: Path) -> Path:
    """The judge's cached outputs for its model, in its cache file or else the store,
    written to ``path`` for the Ray engine's actors (``write_judge_cache_snapshot``)."""
    opened = (
        Store.open(settings.cache_path)
        if settings.cache_path is not None
        else store.writer("snapshot of the judge cache")
    )
    with opened as source:
        return write_judge_cache_snapshot(source, settings.model, path)


@contextlib.contextmanager
def _session(store: WriterAccess | None, purpose: str) -> Iterator[Store | None]:
    """The store ``store`` gives for the block's work ``purpose`` (None without one)."""
    if store is None:
        yield None
        return
    with store.writer(purpose) as opened:
        yield opened
