"""Scoring the answers of a run and storing the scores, shared by goldset runs, traffic
replays, the Ray engine's runs and answer files."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from evalkit import answers as answer_stage
from evalkit.answers.cache import JudgeCache, MemoryJudgeCache
from evalkit.answers.records import AnswerRecord, AnswerScores, CachedJudgment
from evalkit.config import JudgeSettings, load_settings
from evalkit.embedding import Embedder
from evalkit.engines import ANSWERS_DIR, SHARD_SUFFIX
from evalkit.errors import ConfigError, NotFoundError
from evalkit.records import Query, QueryResult
from evalkit.store import Store
from evalkit.store.access import StoreBusyError, WriterAccess
from evalkit.store.answers import (
    StoreEmbeddingCache,
    StoreJudgeCache,
    get_scoring,
    metric_summaries,
    save_answer_scores,
    save_cached_judgments,
)
from evalkit.store.runs import run_queries
from evalkit.store.traffic import logged_answers

if TYPE_CHECKING:
    from evalkit.answers import OfflineFaithfulness

logger = logging.getLogger(__name__)


def cache_judged(cache_path: Path, shard_dir: Path) -> None:
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


def stored_answers(store: Store, scoring_id: str) -> AnswerScores | None:
    """The summaries and counts of a stored scoring (None when it was not stored: the run
    generated no answer); its per-answer scores stay in the store."""
    try:
        scoring = get_scoring(store, scoring_id)
    except NotFoundError:
        return None
    return scoring.answer_scores(metric_summaries(store, scoring_id))


def score_answers_for_run(
    store: WriterAccess,
    run_id: str,
    *,
    settings: JudgeSettings | None = None,
    offline: OfflineFaithfulness | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AnswerScores | None:
    """Score the answers production logged for the queries of a traffic replay run (what the
    application generated then, not what the retriever returns now) and store them under
    ``run_id``; None, storing nothing, when no replayed query has a logged answer. ``store`` and
    failures are handled as in ``score_run_answers``.
    """
    settings = settings or load_settings().judge
    with _scoring_recorded_run(run_id, settings):
        with store.writer("reading the logged answers") as reading:
            query_ids = [str(query_id) for query_id in run_queries(reading, run_id)["query_id"]]
            records = [
                AnswerRecord(
                    id=logged.query_id,
                    question=logged.text,
                    answer=logged.answer,
                    contexts=logged.contexts,
                )
                for logged in logged_answers(reading, query_ids)
            ]
        if not records:
            return None
        return score_and_store_answers(
            records,
            store=store,
            settings=settings,
            run_id=run_id,
            offline=offline,
            progress=progress,
        )


def score_and_store_answers(
    records: Sequence[AnswerRecord],
    *,
    store: WriterAccess,
    settings: JudgeSettings | None = None,
    run_id: str | None = None,
    source: str | None = None,
    embedder: Embedder | None = None,
    offline: OfflineFaithfulness | None = None,
    progress: Callable[[int, int], None] | None = None,
    judge_must_answer: bool = False,
) -> AnswerScores:
    """Score ``records`` (``evalkit.answers.score_answers``) and store every score under a new
    scoring id, carried by the returned ``AnswerScores`` (caches: docs/answers.md).

    A ``WriterAccess`` that does not keep the store open is opened only for the caches and the
    final transaction; a StoreBusyError then says no score is stored and what the cache keeps.
    """
    settings = settings or load_settings().judge
    scored = (
        f"the answers of run {run_id} (which is recorded)"
        if run_id is not None
        else f"the answers of {source}"
        if source is not None
        else "the answers"
    )
    try:
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
                judge_must_answer=judge_must_answer,
            )
    except StoreBusyError as error:  # reading or adding to the caches
        raise StoreBusyError(
            f"{scored} could not be scored, and no scores are stored: "
            f"{error}{_rerun_note(settings)}"
        ) from error
    with contextlib.ExitStack() as stack:
        try:
            writing = stack.enter_context(store.writer("storing answer scores"))
        except StoreBusyError as error:
            # The scores live only in this process, which gives up on them.
            raise StoreBusyError(
                f"{scored} were scored but their scores could not be stored, and are not "
                f"stored: {error}{_rerun_note(settings)}"
            ) from error
        scoring_id = save_answer_scores(
            writing, result, settings=settings.public_dict(), records=records
        )
    return dataclasses.replace(result, scoring_id=scoring_id)


def _rerun_note(settings: JudgeSettings) -> str:
    """What scoring the same answers again costs, after a scoring that stored no score."""
    if not answer_stage.uses_judge(settings):
        return ""
    return (
        "; the judge's outputs that reached its cache are kept, so scoring the same answers "
        "again sends it only the other calls"
    )


@contextlib.contextmanager
def _scoring_recorded_run(run_id: str, settings: JudgeSettings) -> Iterator[None]:
    """Say on the log, when the scoring of recorded run ``run_id``'s answers fails or is
    stopped (Ctrl-C, SIGTERM, a cancelled job), that the run stays recorded without answer
    scores, and re-raise. A store busy past the wait says so in its own message."""
    try:
        yield
    except StoreBusyError:
        raise
    except BaseException:
        logger.warning(
            "run %s is recorded as it finished, but its answers were not scored: no answer "
            "scores are stored for it%s",
            run_id,
            _rerun_note(settings),
        )
        raise


@contextlib.contextmanager
def _judge_cache(settings: JudgeSettings, store: WriterAccess) -> Iterator[JudgeCache]:
    if not answer_stage.uses_judge(settings):
        yield MemoryJudgeCache()
    elif settings.cache_path is not None:
        with Store.open(settings.cache_path) as own:
            yield StoreJudgeCache(own)
    else:
        yield StoreJudgeCache(store)


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
            f"answer scoring: {error}; or turn answer scoring off (`answers = false`)"
        ) from error
    return settings


def run_answer_records(
    queries: Sequence[Query], results: Sequence[QueryResult]
) -> list[AnswerRecord]:
    """One answer record per answered query whose result carries a generated answer, with the
    goldset's references; failed or answerless queries give none, an answer without contexts
    gives one scored ``empty_contexts``.
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
    store: WriterAccess,
    run_id: str,
    queries: Sequence[Query],
    results: Sequence[QueryResult],
    *,
    settings: JudgeSettings | None = None,
    offline: OfflineFaithfulness | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> AnswerScores | None:
    """Score the answers generated during a run and store them under ``run_id``; None, storing
    nothing, when no result carries an answer (docs/answers.md). A scoring that fails or is
    stopped (the run is recorded by then) says so on the log.
    """
    records = run_answer_records(queries, results)
    if not records:
        return None
    settings = settings or load_settings().judge
    with _scoring_recorded_run(run_id, settings):
        return score_and_store_answers(
            records,
            store=store,
            settings=settings,
            run_id=run_id,
            offline=offline,
            progress=progress,
        )
