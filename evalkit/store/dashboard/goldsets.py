"""Queries behind the Goldsets page: stored versions and the judgment coverage of runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from evalkit.store.dashboard.shared import FINISHED_STATUSES, RETRIEVER_SQL, read_frame

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = ["goldset_coverage_frame", "goldset_versions_frame"]


def goldset_versions_frame(store: Store) -> pd.DataFrame:
    """Every stored goldset version with its size and what its judgments hold, each name's
    current version first (``evalkit.store.goldsets.list_goldsets``).

    Columns: name, version, source, imported_at, n_queries, n_judgments, n_relevant
    (judgments at grade >= 1), n_judged_queries, n_queries_without_relevant, n_runs.
    """
    return read_frame(
        store,
        "WITH j AS (SELECT goldset_version, count(*) FILTER (WHERE relevance >= 1) AS n_relevant,"
        "  count(DISTINCT query_id) AS n_judged_queries,"
        "  count(DISTINCT query_id) FILTER (WHERE relevance >= 1) AS n_queries_with_relevant"
        "  FROM judgments GROUP BY goldset_version),"
        " r AS (SELECT goldset_name, goldset_version, count(*) AS n_runs FROM runs"
        "  GROUP BY ALL)"
        " SELECT g.name, g.version, g.source, g.imported_at, g.n_queries, g.n_judgments,"
        " coalesce(j.n_relevant, 0) AS n_relevant,"
        " coalesce(j.n_judged_queries, 0) AS n_judged_queries,"
        " g.n_queries - coalesce(j.n_queries_with_relevant, 0) AS n_queries_without_relevant,"
        " coalesce(r.n_runs, 0) AS n_runs"
        " FROM goldsets g LEFT JOIN j ON j.goldset_version = g.version"
        " LEFT JOIN r ON r.goldset_name = g.name AND r.goldset_version = g.version"
        " ORDER BY g.name, g.current_since DESC, g.version",
    )


def goldset_coverage_frame(store: Store, *, depth: int = 10) -> pd.DataFrame:
    """Judgment coverage of the newest finished run per goldset version and retriever: how many
    of the top ``depth`` (and of all) retrieved documents are judged; a run with k below
    ``depth`` has no ``judged_at_depth``. Columns: goldset_name, goldset_version, retriever,
    run_id, started_at, k, n_top, n_top_judged, judged_at_depth, n_retrieved,
    n_retrieved_judged, judged_at_k."""
    return read_frame(
        store,
        f"WITH latest AS (SELECT run_id, goldset_name, goldset_version, {RETRIEVER_SQL}"
        "  AS retriever, started_at, k FROM runs"
        "  WHERE goldset_version IS NOT NULL AND list_contains(?::VARCHAR[], status)"
        "  QUALIFY row_number() OVER (PARTITION BY goldset_version, retriever"
        "   ORDER BY started_at DESC, run_id DESC) = 1)"
        " SELECT l.goldset_name, l.goldset_version, l.retriever, l.run_id, l.started_at, l.k,"
        " count(*) FILTER (WHERE rr.rank <= ?) AS n_top,"
        " count(j.doc_id) FILTER (WHERE rr.rank <= ?) AS n_top_judged,"
        # A run that retrieved fewer than `depth` documents has no share of the top
        # `depth`: over its shorter top it would stand beside the others as if comparable.
        " CASE WHEN l.k >= ? THEN count(j.doc_id) FILTER (WHERE rr.rank <= ?)"
        "  / nullif(count(*) FILTER (WHERE rr.rank <= ?), 0) END AS judged_at_depth,"
        " count(rr.doc_id) AS n_retrieved, count(j.doc_id) AS n_retrieved_judged,"
        " count(j.doc_id) / nullif(count(rr.doc_id), 0) AS judged_at_k"
        " FROM latest l LEFT JOIN run_results rr ON rr.run_id = l.run_id"
        " LEFT JOIN judgments j ON j.goldset_version = l.goldset_version"
        "  AND j.query_id = rr.query_id AND j.doc_id = rr.doc_id"
        " GROUP BY l.goldset_name, l.goldset_version, l.retriever, l.run_id, l.started_at, l.k"
        " ORDER BY l.goldset_name, l.goldset_version, l.retriever",
        [list(FINISHED_STATUSES), depth, depth, depth, depth, depth],
    )
