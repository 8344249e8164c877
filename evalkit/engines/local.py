"""The local engine: queries replayed in this process, batch by batch, keeping every
query's outcome.

A batch that raises is not allowed to end the run: each of its queries is recorded as failed
with the error, and the run carries on, so one outage window shows up as failed queries
(and a ``partial`` run) instead of a crash that hides what did work.
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pandas as pd

from evalkit.engines.base import (
    BatchSink,
    EngineReport,
    Progress,
    ReplayQueries,
    ReplaySpec,
    ReplayTiming,
)
from evalkit.errors import ConfigError, RetrieverError
from evalkit.records import Query, QueryResult
from evalkit.retrievers.base import SupportsRetrieve, checked_results, finite_float

__all__ = ["DEFAULT_BATCH_SIZE", "LocalEngine", "replay", "results_frame"]

DEFAULT_BATCH_SIZE = 64
"""Queries per retriever call of a local replay."""


@dataclass(frozen=True, slots=True)
class LocalEngine:
    """The engine protocol (``evalkit.engines.base.Engine``) in this process: ``retriever``
    is called with ``batch_size`` queries at a time, and the results come back in the
    report (and to ``on_batch`` as each batch is answered)."""

    retriever: SupportsRetrieve
    batch_size: int = DEFAULT_BATCH_SIZE

    @property
    def name(self) -> str:
        """``local``."""
        return "local"

    def replay(
        self,
        spec: ReplaySpec,
        queries: ReplayQueries,
        *,
        progress: Progress | None = None,
        on_batch: BatchSink | None = None,
    ) -> EngineReport:
        """Replay the in-memory ``queries`` (see ``replay``); ConfigError for a query table,
        which only the Ray engine reads."""
        if queries.table is not None:
            raise ConfigError(
                f'{queries.table}: a query table is replayed on Ray (engine = "ray"), not locally'
            )
        timing = ReplayTiming()
        results = replay(
            queries.queries,
            self.retriever,
            k=spec.k,
            batch_size=self.batch_size,
            on_batch=on_batch,
            progress=progress,
            timing=timing,
        )
        return EngineReport(
            engine=self.name, timing=timing, n_replayed=len(results), results=results
        )


def replay(
    queries: Sequence[Query],
    retriever: SupportsRetrieve,
    *,
    k: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: BatchSink | None = None,
    progress: Progress | None = None,
    timing: ReplayTiming | None = None,
) -> list[QueryResult]:
    """Send ``queries`` to ``retriever`` in batches; one QueryResult per query, in order.

    A batch that raises or answers other queries fails each of its queries; a non-``QueryResult``
    answer raises ConfigError (``checked_results``). ``on_batch`` gets each batch's results at
    once (so a crash keeps them); ``progress(done, total)`` follows each batch.
    """
    if k < 1:
        raise RetrieverError(f"k must be at least 1, got {k}")
    timing = timing if timing is not None else ReplayTiming()
    results: list[QueryResult] = []
    total = len(queries)
    for start in range(0, total, batch_size):
        batch = list(queries[start : start + batch_size])
        began = time.perf_counter()
        try:
            answered = retriever.retrieve(batch, k)
            batch_results = _check_answer(batch, answered, k)
        except ConfigError:  # a broken adapter (another return type): every batch would fail
            raise
        except Exception as error:  # any adapter fault becomes per-query errors
            elapsed_ms = (time.perf_counter() - began) * 1000.0
            message = f"{type(error).__name__}: {error}"
            batch_results = [
                QueryResult(query_id=q.id, docs=(), latency_ms=elapsed_ms, error=message)
                for q in batch
            ]
        timing.retriever_seconds += time.perf_counter() - began
        timing.batches += 1
        sink_began = time.perf_counter()
        if on_batch is not None:
            on_batch(batch_results)
        results.extend(batch_results)
        if progress is not None:
            progress(len(results), total)
        timing.sink_seconds += time.perf_counter() - sink_began
    return results


def results_frame(results: Sequence[QueryResult]) -> pd.DataFrame:
    """Retrieved documents as a run DataFrame (query_id, doc_id, score) for the evaluator."""
    return pd.DataFrame(
        {
            "query_id": pd.Series([r.query_id for r in results for _ in r.docs], dtype=object),
            "doc_id": pd.Series([d.doc_id for r in results for d in r.docs], dtype=object),
            "score": pd.Series([d.score for r in results for d in r.docs], dtype="float64"),
        }
    )


def _check_answer(batch: list[Query], answered: object, k: int) -> list[QueryResult]:
    return [
        _with_finite_scores(_without_repeats(_within_k(result, k)))
        for result in checked_results(batch, answered)
    ]


def _within_k(result: QueryResult, k: int) -> QueryResult:
    """At most ``k`` documents, the best-ranked (the protocol's "at most k"): scored deeper,
    a retriever that returns more would inflate every measure cut below its count. Cut
    before repeats are dropped, as the HTTP, LangChain and LlamaIndex adapters cut their
    answers: otherwise a chunk-level ranking's repeats would make room for documents past
    position ``k``."""
    if len(result.docs) <= k:
        return result
    return replace(result, docs=tuple(sorted(result.docs, key=lambda doc: doc.rank)[:k]))


def _with_finite_scores(result: QueryResult) -> QueryResult:
    """The result, or the query failed when a score is not a finite number (NaN, None, a
    string): metrics rank by score, and NaN has no place in a ranking (nor in the store)."""
    bad = next((doc for doc in result.docs if not _is_finite_number(doc.score)), None)
    if bad is None:
        return result
    shown = _shown_score(bad.score)
    return replace(
        result,
        docs=(),
        error=f"MalformedResults: document {bad.doc_id!r} has score {shown}; scores must "
        "be finite numbers",
    )


def _is_finite_number(score: object) -> bool:
    return isinstance(score, bool) or finite_float(score) is not None


def _shown_score(score: object) -> str:
    if isinstance(score, int) and not isinstance(score, bool) and finite_float(score) is None:
        # Printed whole, a score of hundreds of digits would bury the message.
        return "an integer too large for a 64-bit float"
    return str(score) if isinstance(score, numbers.Real) else repr(score)


def _without_repeats(result: QueryResult) -> QueryResult:
    """Keep each document's best-ranked entry; metrics, like trec_eval, need distinct ones."""
    seen: set[str] = set()
    kept = []
    for doc in sorted(result.docs, key=lambda doc: doc.rank):
        if doc.doc_id not in seen:
            seen.add(doc.doc_id)
            kept.append(doc)
    if len(kept) == len(result.docs):
        return result
    return replace(result, docs=tuple(kept), n_duplicates=len(result.docs) - len(kept))
