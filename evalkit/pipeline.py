"""Wires the stages together: goldset -> replay -> metrics (and answers) -> store.

The CLI, the scheduler and the tests all call these functions; no stage calls another stage
that comes after it in the data flow.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from evalkit import __version__
from evalkit.config import JudgeSettings, load_settings
from evalkit.errors import ConfigError
from evalkit.goldset.model import Goldset
from evalkit.metrics import Evaluator, parse_measures
from evalkit.records import Query, QueryResult
from evalkit.replay import ReplayTiming, replay
from evalkit.retrievers.base import Retriever
from evalkit.store import RunRecord, RunSpec, Store, utc_now

if TYPE_CHECKING:
    from evalkit.answers import AnswerRecord, AnswerScores, OfflineFaithfulness

__all__ = [
    "DEFAULT_MEASURES",
    "RunOutcome",
    "StoreOpener",
    "answer_settings",
    "default_measures",
    "evaluate_goldset",
    "results_frame",
    "run_answer_records",
    "score_logged_answers",
    "score_run_answers",
]

DEFAULT_MEASURES: tuple[str, ...] = (
    "ndcg@10",
    "recall@10",
    "recall@100",
    "precision@10",
    "mrr@10",
    "map@100",
    "hit_rate@10",
    "r_precision",
)


def default_measures(k: int) -> list[str]:
    """The default measures that make sense for ``k`` retrieved documents per query."""
    chosen = []
    for measure in parse_measures(list(DEFAULT_MEASURES)):
        if measure.cutoff is None or measure.cutoff <= k:
            chosen.append(str(measure))
    return chosen


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


def results_frame(results: Sequence[QueryResult]) -> pd.DataFrame:
    """Retrieved documents as a run DataFrame (query_id, doc_id, score) for the evaluator."""
    return pd.DataFrame(
        {
            "query_id": pd.Series([r.query_id for r in results for _ in r.docs], dtype=object),
            "doc_id": pd.Series([d.doc_id for r in results for d in r.docs], dtype=object),
            "score": pd.Series([d.score for r in results for d in r.docs], dtype="float64"),
        }
    )


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
    first query is sent.
    """
    measure_names = [str(m) for m in parse_measures(list(measures or default_measures(k)))]
    if answers:
        judge_settings = answer_settings(judge_settings)
    spec = _goldset_run_spec(
        goldset,
        retriever,
        k=k,
        measure_names=measure_names,
        relevance_threshold=relevance_threshold,
        label=label,
    )
    timing = ReplayTiming()
    if isinstance(store, Store):
        store.save_goldset(goldset)
        run_id = store.create_run(spec)
        store_seconds = 0.0

        def store_batch(batch: list[QueryResult]) -> None:
            nonlocal store_seconds
            began = time.perf_counter()
            store.add_query_results(run_id, batch)
            store_seconds += time.perf_counter() - began

        try:
            results = replay(
                goldset.queries,
                retriever,
                k=k,
                batch_size=batch_size,
                on_batch=store_batch,
                progress=progress,
                timing=timing,
            )
            metrics_seconds, finish_seconds = _finish_goldset_run(
                store,
                run_id,
                goldset,
                results,
                measure_names=measure_names,
                relevance_threshold=relevance_threshold,
            )
        except BaseException as error:
            # The original error is what the user must see; if the store itself is what
            # broke, the run simply stays 'running', which never reads as complete.
            with contextlib.suppress(Exception):
                store.fail_run(run_id, f"{type(error).__name__}: {error}")
            raise
        return _goldset_outcome(
            store,
            run_id,
            goldset,
            results,
            timing=timing,
            seconds_metrics=metrics_seconds,
            seconds_store=store_seconds + finish_seconds,
            answers=answers,
            judge_settings=judge_settings,
            offline=offline,
        )
    started_at = utc_now()
    try:
        results = replay(
            goldset.queries,
            retriever,
            k=k,
            batch_size=batch_size,
            progress=progress,
            timing=timing,
        )
    except BaseException as error:
        with contextlib.suppress(Exception), store() as writing:
            writing.save_goldset(goldset)
            failed = writing.create_run(spec, started_at=started_at)
            writing.fail_run(failed, f"{type(error).__name__}: {error}")
        raise
    with store() as writing:
        began = time.perf_counter()
        writing.save_goldset(goldset)
        run_id = writing.create_run(spec, started_at=started_at)
        try:
            writing.add_query_results(run_id, results)
            store_seconds = time.perf_counter() - began
            metrics_seconds, finish_seconds = _finish_goldset_run(
                writing,
                run_id,
                goldset,
                results,
                measure_names=measure_names,
                relevance_threshold=relevance_threshold,
            )
        except BaseException as error:
            with contextlib.suppress(Exception):
                writing.fail_run(run_id, f"{type(error).__name__}: {error}")
            raise
        return _goldset_outcome(
            writing,
            run_id,
            goldset,
            results,
            timing=timing,
            seconds_metrics=metrics_seconds,
            seconds_store=store_seconds + finish_seconds,
            answers=answers,
            judge_settings=judge_settings,
            offline=offline,
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


def _finish_goldset_run(
    store: Store,
    run_id: str,
    goldset: Goldset,
    results: Sequence[QueryResult],
    *,
    measure_names: Sequence[str],
    relevance_threshold: int,
) -> tuple[float, float]:
    """Score the replayed results and write the metrics and final status; the seconds
    spent scoring and writing."""
    began = time.perf_counter()
    answered = [r.query_id for r in results if r.ok]
    n_failed = len(results) - len(answered)
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
    metrics_seconds = time.perf_counter() - began
    if not answered:
        status = "failed"
    elif n_failed:
        status = "partial"
    else:
        status = "complete"
    first_error = next((r.error for r in results if r.error), None)
    began = time.perf_counter()
    store.finish_run(
        run_id,
        status=status,
        per_query=evaluation.per_query if evaluation else None,
        aggregates=evaluation.aggregate if evaluation else {},
        n_evaluated=evaluation.n_queries if evaluation else 0,
        n_total=sum(1 for query in goldset.queries if query.id in judged),
        n_failed=n_failed,
        error=(
            f"{n_failed} of {len(results)} queries failed; first: {first_error}"
            if n_failed
            else None
        ),
    )
    return metrics_seconds, time.perf_counter() - began


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
        run=store.get_run(run_id),
        timing=timing,
        seconds_metrics=seconds_metrics,
        seconds_store=seconds_store,
        answers=scored,
        seconds_answers=time.perf_counter() - began if scored is not None else 0.0,
    )


def answer_settings(settings: JudgeSettings | None = None) -> JudgeSettings:
    """The judge settings a run's answers will be scored with (default: the ``[judge]``
    settings), checked now, so a configuration mistake fails before any query is sent.

    Raises ConfigError saying what to fix, or how to turn answer scoring off.
    """
    from evalkit.answers import check_judge_settings

    try:
        settings = settings or load_settings().judge
        check_judge_settings(settings)
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
    from evalkit.answers import AnswerRecord

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
    from evalkit.answers import score_answers

    return score_answers(records, settings=settings, store=store, run_id=run_id, offline=offline)


def score_logged_answers(
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
    from evalkit.answers import AnswerRecord, score_answers
    from evalkit.store.traffic import logged_answers

    query_ids = [str(query_id) for query_id in store.run_queries(run_id)["query_id"]]
    records = [
        AnswerRecord(
            id=logged.query_id, question=logged.text, answer=logged.answer, contexts=logged.contexts
        )
        for logged in logged_answers(store, query_ids)
    ]
    if not records:
        return None
    return score_answers(records, settings=settings, store=store, run_id=run_id, offline=offline)
