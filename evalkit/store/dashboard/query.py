"""Queries behind the Query drill-down page (and Compare runs' query texts): a goldset's
queries, one query's results, judgments and values across runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from evalkit.store.dashboard.shared import FINISHED_STATUSES, RETRIEVER_SQL, read_frame

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = [
    "documents_returned",
    "judgments_of_query",
    "query_across_runs_frame",
    "query_error",
    "query_results_frame",
    "query_texts_frame",
    "query_values_frame",
    "relevant_ranks_frame",
    "search_queries",
]


def search_queries(
    store: Store, *, goldset_version: str, text: str | None = None, limit: int = 200
) -> pd.DataFrame:
    """Queries of a goldset version whose id or text contains ``text`` (case-insensitive).

    Columns: query_id, text, tenant, n_relevant (judged relevant at grade >= 1).
    """
    return read_frame(
        store,
        "SELECT q.query_id, q.text, q.tenant,"
        " (SELECT count(*) FROM judgments j WHERE j.goldset_version = q.goldset_version"
        "  AND j.query_id = q.query_id AND j.relevance >= 1) AS n_relevant"
        " FROM goldset_queries q WHERE q.goldset_version = ?"
        " AND (? IS NULL OR contains(lower(q.query_id), lower(?))"
        "  OR contains(lower(q.text), lower(?)))"
        " ORDER BY q.ordinal LIMIT ?",
        [goldset_version, text, text, text, limit],
    )


def query_texts_frame(store: Store, *, run_id: str) -> pd.DataFrame:
    """The text of every query of a run's goldset version: query_id, text."""
    return read_frame(
        store,
        "SELECT q.query_id, q.text FROM goldset_queries q"
        " JOIN runs r ON r.goldset_version = q.goldset_version WHERE r.run_id = ?"
        " ORDER BY q.ordinal",
        [run_id],
    )


def query_across_runs_frame(
    store: Store, *, goldset: str, query_id: str, limit: int = 50
) -> pd.DataFrame:
    """One query's stored values in the newest ``limit`` finished runs of a goldset, long.

    Columns: run_id, started_at, retriever, measure, value.
    """
    return read_frame(
        store,
        f"WITH r AS (SELECT run_id, started_at, {RETRIEVER_SQL} AS retriever FROM runs"
        "  WHERE goldset_name = ? AND list_contains(?::VARCHAR[], status)"
        "  ORDER BY started_at DESC, run_id DESC LIMIT ?)"
        " SELECT r.run_id, r.started_at, r.retriever, m.measure, m.value"
        " FROM r JOIN query_metrics m ON m.run_id = r.run_id AND m.query_id = ?"
        " ORDER BY r.started_at DESC, r.run_id DESC, m.measure",
        [goldset, list(FINISHED_STATUSES), limit, query_id],
    )


def query_values_frame(store: Store, *, run_id: str, query_id: str) -> pd.DataFrame:
    """One query's stored values in one run: measure, value."""
    return read_frame(
        store,
        "SELECT measure, value FROM query_metrics WHERE run_id = ? AND query_id = ?"
        " ORDER BY measure",
        [run_id, query_id],
    )


def query_results_frame(store: Store, *, run_id: str, query_id: str) -> pd.DataFrame:
    """What one run retrieved for one query, with each document's judged grade.

    Columns: rank, doc_id, score, relevance (None when the document is not judged).
    """
    return read_frame(
        store,
        "SELECT rr.rank, rr.doc_id, rr.score, j.relevance FROM run_results rr"
        " JOIN runs r ON r.run_id = rr.run_id"
        " LEFT JOIN judgments j ON j.goldset_version = r.goldset_version"
        "  AND j.query_id = rr.query_id AND j.doc_id = rr.doc_id"
        " WHERE rr.run_id = ? AND rr.query_id = ? ORDER BY rr.rank",
        [run_id, query_id],
    )


def judgments_of_query(store: Store, *, goldset_version: str, query_id: str) -> pd.DataFrame:
    """The judged documents of one query: doc_id, relevance (highest grade first)."""
    return read_frame(
        store,
        "SELECT doc_id, relevance FROM judgments WHERE goldset_version = ? AND query_id = ?"
        " ORDER BY relevance DESC, doc_id",
        [goldset_version, query_id],
    )


def relevant_ranks_frame(
    store: Store, *, goldset: str, query_id: str, relevance_threshold: int = 1, limit: int = 50
) -> pd.DataFrame:
    """Where each judged-relevant document of a query was ranked in the newest finished runs.
    Columns: run_id, started_at, retriever, doc_id, relevance, rank (None: not retrieved; the
    best rank of a repeated document). Runs whose per-query rows retention pruned are left
    out: they no longer say what they retrieved."""
    return read_frame(
        store,
        f"WITH r AS (SELECT run_id, started_at, goldset_version, {RETRIEVER_SQL} AS retriever"
        "  FROM runs WHERE goldset_name = ? AND list_contains(?::VARCHAR[], status)"
        "  AND run_id NOT IN (SELECT run_id FROM pruned_runs)"
        "  ORDER BY started_at DESC, run_id DESC LIMIT ?),"
        " relevant AS (SELECT r.run_id, r.started_at, r.retriever, j.doc_id, j.relevance"
        "  FROM r JOIN judgments j ON j.goldset_version = r.goldset_version"
        "  AND j.query_id = ? AND j.relevance >= ?)"
        # A retriever may return a document twice; its best rank is where it was found.
        " SELECT v.run_id, v.started_at, v.retriever, v.doc_id, v.relevance, min(rr.rank) AS rank"
        " FROM relevant v LEFT JOIN run_results rr ON rr.run_id = v.run_id"
        "  AND rr.query_id = ? AND rr.doc_id = v.doc_id"
        " GROUP BY ALL ORDER BY v.started_at DESC, v.run_id DESC, v.doc_id",
        [goldset, list(FINISHED_STATUSES), limit, query_id, relevance_threshold, query_id],
    )


def query_error(store: Store, *, run_id: str, query_id: str) -> str | None:
    """Why one query's retrieval failed in a run (its stored error), None when it did not."""
    rows = store.fetch(
        "SELECT error FROM run_queries WHERE run_id = ? AND query_id = ? AND error IS NOT NULL",
        [run_id, query_id],
    )
    return str(rows[0][0]) if rows else None


def documents_returned(store: Store, *, run_id: str, doc_ids: Sequence[str]) -> set[str]:
    """Which of ``doc_ids`` a run returned for any of its queries."""
    rows = store.fetch(
        "SELECT DISTINCT doc_id FROM run_results WHERE run_id = ?"
        " AND doc_id IN (SELECT unnest(?::VARCHAR[]))",
        [run_id, list(doc_ids)],
    )
    return {str(row[0]) for row in rows}
