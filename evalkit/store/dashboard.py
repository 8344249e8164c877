"""Read-only queries behind the dashboard: every aggregation it shows, done in DuckDB.

Each function takes an open ``Store`` (the dashboard opens it read-only) and returns a
DataFrame, or a small value. Nothing here writes. Values the user picks (a goldset, a run,
a search text) are always passed as ``?`` parameters, never formatted into the SQL.

A *series* is one goldset evaluated by one retriever: runs are grouped by goldset name and
by the retriever's subject, ``kind:collection`` (or ``kind:url`` / ``kind:path``, or the
bare kind), the same key ``evalkit drift precision`` uses. Tables of later areas (traffic,
answers, audit, alerts, drift) may be missing from a store; ``existing_tables`` says which
are there, and callers ask before querying them.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evalkit.store.runs import RETRIEVER_ID_SQL

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = [
    "AREA_TABLES",
    "FINISHED_STATUSES",
    "RETRIEVER_SQL",
    "aggregates_frame",
    "alert_deliveries_frame",
    "alert_events_frame",
    "alert_row",
    "alert_state_counts",
    "alerts_count",
    "alerts_frame",
    "answer_items_frame",
    "answer_series_frame",
    "audit_findings_frame",
    "audit_measurements_frame",
    "audits_frame",
    "drift_checks_frame",
    "drifting_series_frame",
    "existing_tables",
    "goldset_coverage_frame",
    "goldset_names",
    "goldset_versions_frame",
    "job_runs_count",
    "job_runs_frame",
    "judgments_of_query",
    "latest_job_runs_frame",
    "measured_series_frame",
    "measures_frame",
    "open_alerts_frame",
    "paired_differences_frame",
    "per_query_values",
    "plain_frame",
    "query_across_runs_frame",
    "query_results_frame",
    "query_texts_frame",
    "query_values_frame",
    "relevant_ranks_frame",
    "runs_frame",
    "scoring_source",
    "search_queries",
    "series_frame",
    "series_history_frame",
    "series_points_frame",
    "store_counts",
    "traffic_record_count",
    "traffic_tenants_frame",
    "traffic_volume_frame",
    "traffic_window_count",
    "traffic_windows_frame",
    "unmeasured_frame",
    "window_embeddings_frame",
    "window_labels_frame",
]

FINISHED_STATUSES: tuple[str, ...] = ("complete", "partial")
"""Run statuses that carry metrics."""

AREA_TABLES: dict[str, tuple[str, ...]] = {
    "core": ("goldsets", "runs", "run_results", "query_metrics", "run_aggregates"),
    "drift": ("drift_checks",),
    "traffic": ("traffic_records", "traffic_window_summaries", "traffic_replay_queries"),
    "embeddings": ("traffic_window_embeddings",),
    "answers": ("answer_scorings", "answer_scores"),
    "audit": ("audits", "audit_findings", "audit_measurements"),
    "alerts": ("alerts", "alert_state", "alert_outbox", "alert_delivery_attempts"),
    "jobs": ("job_runs",),
}
"""The tables each area of evalkit writes (an area's page needs all of its tables)."""

RETRIEVER_SQL = RETRIEVER_ID_SQL
"""SQL naming a run's retriever, the key of a series (``evalkit.store.runs.RETRIEVER_ID_SQL``)."""


def plain_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with pandas' nullable columns (``Int64``, ``boolean``, ``string``) made
    plain: numbers as float64 with NaN where missing (int64 when none is), the rest as
    objects with None where missing.

    DuckDB hands an integer or boolean column holding a NULL to pandas as a nullable
    column whose gaps are ``pd.NA``, which neither Plotly nor Streamlit can serialise (a
    run that did not store a measure has no per-query count); every frame the dashboard
    reads goes through here, so no page meets ``pd.NA``.
    """
    plain: dict[Hashable, np.ndarray[Any, Any]] = {}
    for column in frame.columns:
        values = frame[column]
        dtype = values.dtype
        if not isinstance(dtype, pd.api.extensions.ExtensionDtype) or isinstance(
            dtype, pd.DatetimeTZDtype | pd.CategoricalDtype
        ):
            continue
        missing = bool(values.isna().any())
        if pd.api.types.is_bool_dtype(dtype):
            plain[column] = _objects(values) if missing else values.to_numpy(dtype=bool)
        elif pd.api.types.is_numeric_dtype(dtype):
            plain[column] = (
                values.to_numpy(dtype="float64", na_value=np.nan)
                if missing
                else values.to_numpy(dtype=getattr(dtype, "numpy_dtype", "float64"))
            )
        else:
            plain[column] = _objects(values)
    if not plain:
        return frame
    converted = frame.copy()
    for name, data in plain.items():
        converted[name] = data
    return converted


def _objects(values: pd.Series) -> np.ndarray[Any, Any]:
    objects = values.astype(object).to_numpy()
    objects[values.isna().to_numpy()] = None
    return objects


def _frame(store: Store, sql: str, parameters: Sequence[object] = ()) -> pd.DataFrame:
    """A query's result as a plain DataFrame (see ``plain_frame``)."""
    return plain_frame(store.fetch_frame(sql, parameters))


def existing_tables(store: Store) -> frozenset[str]:
    """Names of the tables this store holds (areas whose migration ran)."""
    rows = store.fetch("SELECT table_name FROM duckdb_tables()")
    return frozenset(str(row[0]) for row in rows)


def store_counts(store: Store) -> dict[str, int]:
    """How much the store holds: goldsets, runs and finished runs."""
    row = store.fetch(
        "SELECT (SELECT count(*) FROM goldsets), (SELECT count(*) FROM runs),"
        " (SELECT count(*) FROM runs WHERE status IN (SELECT unnest(?::VARCHAR[])))",
        [list(FINISHED_STATUSES)],
    )[0]
    return {"goldsets": int(row[0]), "runs": int(row[1]), "finished_runs": int(row[2])}


def goldset_names(store: Store) -> list[str]:
    """Names of the stored goldsets, sorted."""
    return [str(row[0]) for row in store.fetch("SELECT DISTINCT name FROM goldsets ORDER BY 1")]


# -- runs and series -----------------------------------------------------------------------


def runs_frame(
    store: Store,
    *,
    goldset: str | None = None,
    retriever: str | None = None,
    statuses: Sequence[str] | None = None,
    limit: int = 1000,
) -> pd.DataFrame:
    """Runs with a goldset, newest first, with their series key ``retriever``.

    Columns: run_id, goldset_name, goldset_version, retriever, label, status, started_at,
    finished_at, k, relevance_threshold, measures, model_name, model_fingerprint,
    index_fingerprint, n_queries, n_evaluated, n_failed, error.
    """
    return _frame(
        store,
        "SELECT run_id, goldset_name, goldset_version, retriever, label, status, started_at,"
        " finished_at, k, relevance_threshold, measures, model_name, model_fingerprint,"
        " index_fingerprint, n_queries, n_evaluated, n_failed, error"
        f" FROM (SELECT *, {RETRIEVER_SQL} AS retriever FROM runs"
        "  WHERE goldset_name IS NOT NULL)"
        " WHERE (? IS NULL OR goldset_name = ?) AND (? IS NULL OR retriever = ?)"
        " AND (? IS NULL OR list_contains(?::VARCHAR[], status))"
        " ORDER BY started_at DESC, run_id DESC LIMIT ?",
        [
            goldset,
            goldset,
            retriever,
            retriever,
            None if statuses is None else list(statuses),
            None if statuses is None else list(statuses),
            limit,
        ],
    )


def series_frame(store: Store) -> pd.DataFrame:
    """One row per goldset x retriever: run counts, the latest finished run, the baseline
    (its oldest complete run) and the newest run of any status.

    Columns: goldset_name, retriever, n_runs, latest_run, latest_status, latest_started,
    latest_goldset_version, latest_model_fingerprint, latest_index_fingerprint, n_evaluated,
    baseline_run, baseline_started, newest_run, newest_status, newest_started, newest_error.
    """
    return _frame(
        store,
        f"WITH r AS (SELECT *, {RETRIEVER_SQL} AS retriever FROM runs"
        "  WHERE goldset_name IS NOT NULL),"
        " counts AS (SELECT goldset_name, retriever, count(*) AS n_runs FROM r GROUP BY ALL),"
        " latest AS (SELECT goldset_name, retriever, run_id AS latest_run,"
        "  status AS latest_status, started_at AS latest_started,"
        "  goldset_version AS latest_goldset_version,"
        "  model_fingerprint AS latest_model_fingerprint,"
        "  index_fingerprint AS latest_index_fingerprint, n_evaluated"
        "  FROM r WHERE list_contains(?::VARCHAR[], status)"
        "  QUALIFY row_number() OVER (PARTITION BY goldset_name, retriever"
        "   ORDER BY started_at DESC, run_id DESC) = 1),"
        " baseline AS (SELECT goldset_name, retriever, run_id AS baseline_run,"
        "  started_at AS baseline_started FROM r WHERE status = 'complete'"
        "  QUALIFY row_number() OVER (PARTITION BY goldset_name, retriever"
        "   ORDER BY started_at, run_id) = 1),"
        " newest AS (SELECT goldset_name, retriever, run_id AS newest_run,"
        "  status AS newest_status, started_at AS newest_started, error AS newest_error FROM r"
        "  QUALIFY row_number() OVER (PARTITION BY goldset_name, retriever"
        "   ORDER BY started_at DESC, run_id DESC) = 1)"
        " SELECT c.goldset_name, c.retriever, c.n_runs, l.latest_run, l.latest_status,"
        " l.latest_started, l.latest_goldset_version, l.latest_model_fingerprint,"
        " l.latest_index_fingerprint, l.n_evaluated, b.baseline_run, b.baseline_started,"
        " n.newest_run, n.newest_status, n.newest_started, n.newest_error"
        " FROM counts c"
        " LEFT JOIN latest l USING (goldset_name, retriever)"
        " LEFT JOIN baseline b USING (goldset_name, retriever)"
        " LEFT JOIN newest n USING (goldset_name, retriever)"
        " ORDER BY c.goldset_name, c.retriever",
        [list(FINISHED_STATUSES)],
    )


def measured_series_frame(store: Store, *, measure: str) -> pd.DataFrame:
    """Per goldset x retriever, which finished runs stored a value of ``measure``: the
    newest (``measured_run``) and the oldest complete one (``baseline_run``, the series'
    baseline on this measure), with the k of those and of the latest finished run.

    Columns: goldset_name, retriever, latest_k, measured_run, measured_started, measured_k,
    baseline_run, baseline_started (NULL where no run stored the measure). A series whose
    latest finished run did not store the measure (another k or measure set, or no query
    answered) has a ``measured_run`` other than its latest run.
    """
    return _frame(
        store,
        f"WITH r AS (SELECT r.goldset_name, {RETRIEVER_SQL} AS retriever, r.run_id, r.status,"
        "  r.started_at, r.k, a.value FROM runs r LEFT JOIN run_aggregates a"
        "  ON a.run_id = r.run_id AND a.measure = ?"
        "  WHERE r.goldset_name IS NOT NULL AND list_contains(?::VARCHAR[], r.status)),"
        " latest AS (SELECT goldset_name, retriever, k AS latest_k FROM r"
        "  QUALIFY row_number() OVER (PARTITION BY goldset_name, retriever"
        "   ORDER BY started_at DESC, run_id DESC) = 1),"
        " measured AS (SELECT goldset_name, retriever, run_id AS measured_run,"
        "  started_at AS measured_started, k AS measured_k FROM r WHERE value IS NOT NULL"
        "  QUALIFY row_number() OVER (PARTITION BY goldset_name, retriever"
        "   ORDER BY started_at DESC, run_id DESC) = 1),"
        " baseline AS (SELECT goldset_name, retriever, run_id AS baseline_run,"
        "  started_at AS baseline_started FROM r WHERE value IS NOT NULL AND status = 'complete'"
        "  QUALIFY row_number() OVER (PARTITION BY goldset_name, retriever"
        "   ORDER BY started_at, run_id) = 1)"
        " SELECT l.goldset_name, l.retriever, l.latest_k, m.measured_run, m.measured_started,"
        " m.measured_k, b.baseline_run, b.baseline_started FROM latest l"
        " LEFT JOIN measured m USING (goldset_name, retriever)"
        " LEFT JOIN baseline b USING (goldset_name, retriever)"
        " ORDER BY l.goldset_name, l.retriever",
        [measure, list(FINISHED_STATUSES)],
    )


def series_history_frame(store: Store, *, measure: str, points: int = 30) -> pd.DataFrame:
    """Per goldset x retriever, ``measure`` of its newest ``points`` finished runs that
    stored it, oldest first (for sparklines). Columns: goldset_name, retriever, history."""
    return _frame(
        store,
        f"WITH r AS (SELECT r.goldset_name, {RETRIEVER_SQL} AS retriever, r.started_at,"
        "  r.run_id, a.value FROM runs r JOIN run_aggregates a ON a.run_id = r.run_id"
        "  AND a.measure = ? AND a.value IS NOT NULL"
        "  WHERE r.goldset_name IS NOT NULL AND list_contains(?::VARCHAR[], r.status)"
        "  QUALIFY row_number() OVER (PARTITION BY r.goldset_name, retriever"
        "   ORDER BY r.started_at DESC, r.run_id DESC) <= ?)"
        " SELECT goldset_name, retriever, list(value ORDER BY started_at, run_id) AS history"
        " FROM r GROUP BY ALL ORDER BY goldset_name, retriever",
        [measure, list(FINISHED_STATUSES), points],
    )


def aggregates_frame(store: Store, run_ids: Sequence[str]) -> pd.DataFrame:
    """Stored aggregates of these runs, long: run_id, measure, value, n_evaluated, n_total."""
    return _frame(
        store,
        "SELECT run_id, measure, value, n_evaluated, n_total FROM run_aggregates"
        " WHERE run_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY run_id, measure",
        [list(run_ids)],
    )


def measures_frame(store: Store, *, goldset: str | None = None) -> pd.DataFrame:
    """Measures stored for finished runs (of one goldset), with how many runs have each."""
    return _frame(
        store,
        "SELECT a.measure, count(*) AS n_runs FROM run_aggregates a JOIN runs r USING (run_id)"
        " WHERE (? IS NULL OR r.goldset_name = ?) AND a.value IS NOT NULL"
        " GROUP BY a.measure ORDER BY n_runs DESC, a.measure",
        [goldset, goldset],
    )


def per_query_values(store: Store, run_ids: Sequence[str], measure: str) -> pd.DataFrame:
    """Stored per-query values of one measure for these runs: run_id, query_id, value."""
    return _frame(
        store,
        "SELECT run_id, query_id, value FROM query_metrics"
        " WHERE run_id IN (SELECT unnest(?::VARCHAR[])) AND measure = ?"
        " ORDER BY run_id, query_id",
        [list(run_ids), measure],
    )


def paired_differences_frame(
    store: Store, *, pairs: Sequence[tuple[str, str]], measure: str
) -> pd.DataFrame:
    """Per (baseline, candidate) pair of runs: the per-query differences of ``measure``
    (candidate - baseline, over the queries both stored) summarised.

    Columns: baseline_run, candidate_run, n, mean_diff, sd_diff, baseline_mean,
    candidate_mean.
    """
    return _frame(
        store,
        "WITH pairs AS (SELECT unnest(?::VARCHAR[]) AS baseline_run,"
        "  unnest(?::VARCHAR[]) AS candidate_run),"
        " d AS (SELECT p.baseline_run, p.candidate_run, b.value AS before, c.value AS after"
        "  FROM pairs p"
        "  JOIN query_metrics b ON b.run_id = p.baseline_run AND b.measure = ?"
        "  JOIN query_metrics c ON c.run_id = p.candidate_run AND c.measure = ?"
        "   AND c.query_id = b.query_id)"
        " SELECT baseline_run, candidate_run, count(*) AS n, avg(after - before) AS mean_diff,"
        " coalesce(stddev_samp(after - before), 0) AS sd_diff, avg(before) AS baseline_mean,"
        " avg(after) AS candidate_mean FROM d GROUP BY ALL",
        [[b for b, _ in pairs], [c for _, c in pairs], measure, measure],
    )


def series_points_frame(store: Store, *, goldset: str, measure: str) -> pd.DataFrame:
    """Every finished run of a goldset with the measure's mean and per-query spread, plus
    what changed since the previous run of the same retriever.

    Columns: run_id, retriever, label, status, started_at, k, goldset_version, model_name,
    model_fingerprint, index_fingerprint, value (the stored aggregate; NULL when the run
    did not store the measure), n, sd (over the
    stored per-query values), goldset_changed, model_changed, index_changed, and the
    previous run's goldset_version, model_fingerprint and index_fingerprint (prev_*).
    """
    return _frame(
        store,
        f"WITH r AS (SELECT run_id, {RETRIEVER_SQL} AS retriever, label, status, started_at,"
        "  k, goldset_version, model_name, model_fingerprint, index_fingerprint FROM runs"
        "  WHERE goldset_name = ? AND list_contains(?::VARCHAR[], status)),"
        " spread AS (SELECT run_id, count(*) AS n, stddev_samp(value) AS sd FROM query_metrics"
        "  WHERE measure = ? AND run_id IN (SELECT run_id FROM r) GROUP BY run_id),"
        " points AS (SELECT r.*, a.value, s.n, s.sd,"
        "  lag(r.run_id) OVER w AS prev_run,"
        "  lag(r.goldset_version) OVER w AS prev_goldset_version,"
        "  lag(r.model_fingerprint) OVER w AS prev_model_fingerprint,"
        "  lag(r.index_fingerprint) OVER w AS prev_index_fingerprint"
        "  FROM r LEFT JOIN run_aggregates a ON a.run_id = r.run_id AND a.measure = ?"
        "  LEFT JOIN spread s ON s.run_id = r.run_id"
        "  WINDOW w AS (PARTITION BY r.retriever ORDER BY r.started_at, r.run_id))"
        " SELECT *,"
        " prev_run IS NOT NULL AND goldset_version IS DISTINCT FROM prev_goldset_version"
        "  AS goldset_changed,"
        " prev_run IS NOT NULL AND model_fingerprint IS DISTINCT FROM prev_model_fingerprint"
        "  AS model_changed,"
        " prev_run IS NOT NULL AND index_fingerprint IS DISTINCT FROM prev_index_fingerprint"
        "  AS index_changed"
        " FROM points ORDER BY retriever, started_at, run_id",
        [goldset, list(FINISHED_STATUSES), measure, measure],
    )


def alert_events_frame(
    store: Store, *, goldset: str, since: datetime, until: datetime
) -> pd.DataFrame:
    """Firing notifications about a goldset (subject ``goldset``, ``goldset/label...`` or
    ``goldset:...``) created in ``[since, until]``: created_at, rule, severity, title."""
    return _frame(
        store,
        "SELECT created_at, rule, severity, subject, title FROM alerts"
        " WHERE status = 'firing' AND created_at BETWEEN ? AND ?"
        " AND (subject = ? OR starts_with(subject, ? || '/') OR starts_with(subject, ? || ':')"
        "  OR starts_with(subject, ? || '|'))"
        " ORDER BY created_at",
        [since, until, goldset, goldset, goldset, goldset],
    )


# -- queries of a goldset ------------------------------------------------------------------


def search_queries(
    store: Store, *, goldset_version: str, text: str | None = None, limit: int = 200
) -> pd.DataFrame:
    """Queries of a goldset version whose id or text contains ``text`` (case-insensitive).

    Columns: query_id, text, tenant, n_relevant (judged relevant at grade >= 1).
    """
    return _frame(
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
    return _frame(
        store,
        "SELECT q.query_id, q.text FROM goldset_queries q"
        " JOIN runs r ON r.goldset_version = q.goldset_version WHERE r.run_id = ?"
        " ORDER BY q.ordinal",
        [run_id],
    )


def window_labels_frame(store: Store, *, run_ids: Sequence[str]) -> pd.DataFrame:
    """The window label of each traffic replay run: run_id, window_label."""
    return _frame(
        store,
        "SELECT run_id, window_label FROM traffic_window_summaries"
        " WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
        [list(run_ids)],
    )


def query_across_runs_frame(
    store: Store, *, goldset: str, query_id: str, limit: int = 50
) -> pd.DataFrame:
    """One query's stored values in the newest ``limit`` finished runs of a goldset, long.

    Columns: run_id, started_at, retriever, measure, value.
    """
    return _frame(
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
    return _frame(
        store,
        "SELECT measure, value FROM query_metrics WHERE run_id = ? AND query_id = ?"
        " ORDER BY measure",
        [run_id, query_id],
    )


def query_results_frame(store: Store, *, run_id: str, query_id: str) -> pd.DataFrame:
    """What one run retrieved for one query, with each document's judged grade.

    Columns: rank, doc_id, score, relevance (None when the document is not judged).
    """
    return _frame(
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
    return _frame(
        store,
        "SELECT doc_id, relevance FROM judgments WHERE goldset_version = ? AND query_id = ?"
        " ORDER BY relevance DESC, doc_id",
        [goldset_version, query_id],
    )


def relevant_ranks_frame(
    store: Store, *, goldset: str, query_id: str, relevance_threshold: int = 1, limit: int = 50
) -> pd.DataFrame:
    """Where each judged-relevant document of a query was ranked in the newest finished runs.

    Columns: run_id, started_at, retriever, doc_id, relevance, rank (None: not retrieved;
    the best rank when the run returned the document more than once).
    """
    return _frame(
        store,
        f"WITH r AS (SELECT run_id, started_at, goldset_version, {RETRIEVER_SQL} AS retriever"
        "  FROM runs WHERE goldset_name = ? AND list_contains(?::VARCHAR[], status)"
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


# -- goldsets ------------------------------------------------------------------------------


def goldset_versions_frame(store: Store) -> pd.DataFrame:
    """Every stored goldset version with its size and what its judgments hold.

    Columns: name, version, source, imported_at, n_queries, n_judgments, n_relevant
    (judgments at grade >= 1), n_judged_queries, n_queries_without_relevant, n_runs.
    """
    return _frame(
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
        " ORDER BY g.name, g.imported_at DESC",
    )


def goldset_coverage_frame(store: Store, *, depth: int = 10) -> pd.DataFrame:
    """Judgment coverage of the newest finished run per goldset version and retriever: how
    many of the top ``depth`` (and of all) retrieved documents are judged.

    Columns: goldset_name, goldset_version, retriever, run_id, started_at, k, n_top,
    n_top_judged, judged_at_depth, n_retrieved, n_retrieved_judged, judged_at_k.
    """
    return _frame(
        store,
        f"WITH latest AS (SELECT run_id, goldset_name, goldset_version, {RETRIEVER_SQL}"
        "  AS retriever, started_at, k FROM runs"
        "  WHERE goldset_version IS NOT NULL AND list_contains(?::VARCHAR[], status)"
        "  QUALIFY row_number() OVER (PARTITION BY goldset_version, retriever"
        "   ORDER BY started_at DESC, run_id DESC) = 1)"
        " SELECT l.goldset_name, l.goldset_version, l.retriever, l.run_id, l.started_at, l.k,"
        " count(*) FILTER (WHERE rr.rank <= ?) AS n_top,"
        " count(j.doc_id) FILTER (WHERE rr.rank <= ?) AS n_top_judged,"
        " count(j.doc_id) FILTER (WHERE rr.rank <= ?)"
        "  / nullif(count(*) FILTER (WHERE rr.rank <= ?), 0) AS judged_at_depth,"
        " count(rr.doc_id) AS n_retrieved, count(j.doc_id) AS n_retrieved_judged,"
        " count(j.doc_id) / nullif(count(rr.doc_id), 0) AS judged_at_k"
        " FROM latest l LEFT JOIN run_results rr ON rr.run_id = l.run_id"
        " LEFT JOIN judgments j ON j.goldset_version = l.goldset_version"
        "  AND j.query_id = rr.query_id AND j.doc_id = rr.doc_id"
        " GROUP BY l.goldset_name, l.goldset_version, l.retriever, l.run_id, l.started_at, l.k"
        " ORDER BY l.goldset_name, l.goldset_version, l.retriever",
        [list(FINISHED_STATUSES), depth, depth, depth, depth],
    )


# -- drift ---------------------------------------------------------------------------------


def drift_checks_frame(
    store: Store, *, stream: str | None = None, limit: int = 5000
) -> pd.DataFrame:
    """Stored drift checks (optionally of one stream), oldest first, newest ``limit``."""
    return _frame(
        store,
        "SELECT * FROM (SELECT check_id, created_at, stream, subject, finding, method,"
        " reference, current, n_reference, n_current, statistic, p_value, threshold,"
        " effect_size, is_drift, seed, details, report_path FROM drift_checks"
        " WHERE ? IS NULL OR stream = ? ORDER BY created_at DESC, check_id DESC LIMIT ?)"
        " ORDER BY created_at, check_id",
        [stream, stream, limit],
    )


def drifting_series_frame(
    store: Store, *, series: Sequence[tuple[str, str]], measure: str
) -> pd.DataFrame:
    """For each (goldset, retriever) series, the streams whose newest drift check about it
    drifts (or found a model mismatch), described in one line.

    A check is about a series when its subject is ``goldset|retriever`` (``evalkit drift
    precision``), the retriever, its collection or URL, or ``goldset:measure`` (the
    scheduler's metric drift). Columns: goldset_name, retriever, drift.
    """
    return _frame(
        store,
        "WITH newest AS (SELECT stream, subject, finding, method, created_at, is_drift"
        "  FROM drift_checks QUALIFY row_number() OVER (PARTITION BY stream, subject"
        "  ORDER BY created_at DESC, check_id DESC) = 1),"
        " drifting AS (SELECT * FROM newest WHERE is_drift OR finding = 'model_mismatch'),"
        " s AS (SELECT unnest(?::VARCHAR[]) AS goldset_name, unnest(?::VARCHAR[]) AS retriever)"
        " SELECT s.goldset_name, s.retriever, string_agg(d.stream || ' ' || d.finding || ' ('"
        "  || d.method || ', ' || strftime(d.created_at, '%Y-%m-%d %H:%M') || ')', '; '"
        "  ORDER BY d.created_at, d.stream) AS drift"
        " FROM s JOIN drifting d ON d.subject IN (s.goldset_name || '|' || s.retriever,"
        "  s.retriever, substr(s.retriever, strpos(s.retriever, ':') + 1),"
        "  s.goldset_name || ':' || ?)"
        " GROUP BY ALL",
        [[g for g, _ in series], [r for _, r in series], measure],
    )


def window_embeddings_frame(store: Store, *, run_id: str, limit: int = 2000) -> pd.DataFrame:
    """The first ``limit`` stored query embeddings of a traffic replay: query_id, embedding."""
    return _frame(
        store,
        "SELECT query_id, embedding FROM traffic_window_embeddings WHERE run_id = ?"
        " ORDER BY ordinal LIMIT ?",
        [run_id, limit],
    )


# -- traffic -------------------------------------------------------------------------------


def traffic_record_count(store: Store) -> int:
    """How many production traffic records are ingested."""
    return int(store.fetch("SELECT count(*) FROM traffic_records")[0][0])


def traffic_window_count(store: Store) -> int:
    """How many distinct traffic windows have been replayed."""
    return int(
        store.fetch("SELECT count(DISTINCT window_label) FROM traffic_window_summaries")[0][0]
    )


def traffic_windows_frame(store: Store, *, limit: int = 200) -> pd.DataFrame:
    """The newest replay of each traffic window (newest ``limit`` windows, oldest first)."""
    return _frame(
        store,
        "SELECT * FROM (SELECT run_id, sample_id, window_label, window_start, window_end,"
        " computed_at, k, volume, n_distinct, n_replayed, n_failed, latency_p50, latency_p95,"
        " latency_p99, logged_latency_p50, logged_latency_p95, logged_latency_p99, top1_mean,"
        " top1_p50, low_confidence_threshold, low_confidence_share, empty_share, n_compared,"
        " overlap_mean, rbo_mean, churn, embedding_model, embedding_fingerprint, n_embeddings"
        " FROM traffic_window_summaries"
        " QUALIFY row_number() OVER (PARTITION BY window_label"
        "  ORDER BY computed_at DESC, run_id DESC) = 1"
        " ORDER BY window_start DESC LIMIT ?) ORDER BY window_start",
        [limit],
    )


def traffic_tenants_frame(store: Store, *, run_ids: Sequence[str]) -> pd.DataFrame:
    """Per replayed window and tenant: replayed and failed queries, low-confidence share
    (top-1 score below the window's threshold, or nothing returned, among answered
    queries), churn (1 - mean overlap@k with the logged results) and mean top-1 score.

    Columns: run_id, window_label, tenant, n_replayed, n_failed, low_confidence_share,
    churn, top1_mean, n_compared.
    """
    return _frame(
        store,
        "SELECT q.run_id, w.window_label, coalesce(q.tenant, '(none)') AS tenant,"
        " count(*) AS n_replayed, count(*) FILTER (WHERE q.failed) AS n_failed,"
        " avg(CASE WHEN q.n_results = 0 OR q.top1_score < w.low_confidence_threshold"
        "  THEN 1.0 ELSE 0.0 END) FILTER (WHERE NOT q.failed) AS low_confidence_share,"
        " 1 - avg(q.overlap_at_k) AS churn, avg(q.top1_score) AS top1_mean,"
        " count(q.overlap_at_k) AS n_compared"
        " FROM traffic_replay_queries q JOIN traffic_window_summaries w ON w.run_id = q.run_id"
        " WHERE q.run_id IN (SELECT unnest(?::VARCHAR[]))"
        " GROUP BY ALL ORDER BY w.window_label, tenant",
        [list(run_ids)],
    )


_VOLUME_COLUMNS = ("window_label", "tenant", "records", "latency_p50", "latency_p95", "latency_p99")


def traffic_volume_frame(
    store: Store, *, windows: Sequence[tuple[str, datetime, datetime]]
) -> pd.DataFrame:
    """Logged records and latency percentiles per window and tenant.

    ``windows`` are (label, start, end) with ``end`` exclusive. Columns: window_label,
    tenant, records, latency_p50, latency_p95, latency_p99.
    """
    if not windows:
        return pd.DataFrame(columns=[*_VOLUME_COLUMNS])
    return _frame(
        store,
        "WITH w AS (SELECT unnest(?::VARCHAR[]) AS window_label,"
        "  unnest(?::TIMESTAMP[]) AS window_start, unnest(?::TIMESTAMP[]) AS window_end)"
        " SELECT w.window_label, coalesce(t.tenant, '(none)') AS tenant, count(*) AS records,"
        " quantile_cont(t.latency_ms, 0.5) AS latency_p50,"
        " quantile_cont(t.latency_ms, 0.95) AS latency_p95,"
        " quantile_cont(t.latency_ms, 0.99) AS latency_p99"
        " FROM w JOIN traffic_records t ON t.ts >= w.window_start AND t.ts < w.window_end"
        " GROUP BY ALL ORDER BY w.window_label, tenant",
        [
            [label for label, _, _ in windows],
            [start for _, start, _ in windows],
            [end for _, _, end in windows],
        ],
    )


# -- answers -------------------------------------------------------------------------------


def answer_series_frame(store: Store) -> pd.DataFrame:
    """Per scoring, metric, method, method version and judge: when, the mean over measured
    rows and the measured / unmeasured counts (means skip unmeasured rows; NULL when none
    was measured).

    ``method_version`` is the stored prompt version without its threshold (``offline-v2``,
    ``offline-v3``, an LLM judge's prompt version): scores of different versions read on
    different scales, so they are never one series.

    Columns: scoring_id, run_id, source, started_at, metric, method, method_version,
    judge_model, mean, n_measured, n_unmeasured.
    """
    return _frame(
        store,
        "SELECT s.scoring_id, s.run_id, s.source, s.started_at, a.metric, a.method,"
        " coalesce(split_part(a.prompt_version, '/threshold=', 1), '-') AS method_version,"
        " coalesce(a.judge_model, '-') AS judge_model, avg(a.value) AS mean,"
        " count(a.value) AS n_measured, count(*) - count(a.value) AS n_unmeasured"
        " FROM answer_scores a JOIN answer_scorings s USING (scoring_id)"
        " GROUP BY ALL ORDER BY s.started_at, s.scoring_id, a.metric, a.method",
    )


def scoring_source(store: Store, *, scoring_id: str) -> str | None:
    """The file a scoring read its answers from (None for a run's answers or no scoring)."""
    rows = store.fetch("SELECT source FROM answer_scorings WHERE scoring_id = ?", [scoring_id])
    return str(rows[0][0]) if rows and rows[0][0] is not None else None


def unmeasured_frame(store: Store, *, scoring_id: str) -> pd.DataFrame:
    """Unmeasured rows of a scoring by metric, method and reason: metric, method, reason, n."""
    return _frame(
        store,
        "SELECT metric, method, unmeasured_reason AS reason, count(*) AS n FROM answer_scores"
        " WHERE scoring_id = ? AND value IS NULL GROUP BY ALL ORDER BY metric, method, reason",
        [scoring_id],
    )


def answer_items_frame(
    store: Store,
    *,
    scoring_id: str,
    metric: str,
    limit: int = 20,
    with_traffic: bool = False,
) -> pd.DataFrame:
    """The lowest-scored measured items of a scoring on ``metric``, lowest first.

    Columns: item_id, method, judge_model, value, n_claims, n_supported, detail, question,
    answer, contexts. The last three are what was scored (stored with the scoring), else
    the traffic record with the item's id (``with_traffic``, when the traffic tables
    exist), else the question from the scored run's goldset; None when none is stored.
    """
    traffic_join = " LEFT JOIN traffic_records t ON t.query_id = a.item_id" if with_traffic else ""
    traffic_columns = (
        "coalesce(i.question, t.text, q.text) AS question, coalesce(i.answer, t.answer) AS answer,"
        " coalesce(i.contexts, t.contexts) AS contexts"
        if with_traffic
        else "coalesce(i.question, q.text) AS question, i.answer, i.contexts"
    )
    return _frame(
        store,
        "SELECT a.item_id, a.method, a.judge_model, a.value, a.n_claims, a.n_supported,"
        f" a.detail, {traffic_columns}"
        " FROM answer_scores a"
        " LEFT JOIN answer_items i ON i.scoring_id = a.scoring_id AND i.item_id = a.item_id"
        " LEFT JOIN runs r ON r.run_id = a.run_id"
        " LEFT JOIN goldset_queries q ON q.goldset_version = r.goldset_version"
        "  AND q.query_id = a.item_id"
        f"{traffic_join}"
        " WHERE a.scoring_id = ? AND a.metric = ? AND a.value IS NOT NULL"
        " ORDER BY a.value, a.item_id LIMIT ?",
        [scoring_id, metric, limit],
    )


# -- index health --------------------------------------------------------------------------


def audits_frame(store: Store, *, limit: int = 500) -> pd.DataFrame:
    """Stored audits, newest first: audit_id, collection, started_at, finished_at,
    n_documents, goldset_name, max_severity, n_findings, model_name."""
    return _frame(
        store,
        "SELECT audit_id, collection, started_at, finished_at, n_documents, goldset_name,"
        " max_severity, n_findings, model_name FROM audits"
        " ORDER BY started_at DESC, audit_id DESC LIMIT ?",
        [limit],
    )


def audit_findings_frame(
    store: Store, *, collection: str, audit_id: str | None = None
) -> pd.DataFrame:
    """Findings of one audit (default: the newest of ``collection``), worst first.

    Columns: audit_id, created_at, kind, check_name, severity, message, n_affected,
    doc_ids, clusters, query_ids, value, threshold.
    """
    return _frame(
        store,
        "SELECT audit_id, created_at, kind, check_name, severity, message, n_affected,"
        " doc_ids, clusters, query_ids, value, threshold FROM audit_findings"
        " WHERE audit_id = coalesce(?, (SELECT audit_id FROM audits WHERE collection = ?"
        "  ORDER BY started_at DESC, audit_id DESC LIMIT 1))"
        " ORDER BY severity_rank DESC, ordinal",
        [audit_id, collection],
    )


def audit_measurements_frame(store: Store, *, collection: str) -> pd.DataFrame:
    """Every measurement of every audit of a collection, oldest first: audit_id,
    measured_at, check_name, name, value; plus findings per audit and severity
    (as measurement ``findings:<severity>``)."""
    return _frame(
        store,
        "SELECT audit_id, measured_at, check_name, name, value FROM audit_measurements"
        " WHERE collection = ?"
        " UNION ALL"
        " SELECT a.audit_id, a.finished_at, 'findings', 'findings:' || f.severity,"
        "  count(*)::DOUBLE FROM audits a JOIN audit_findings f USING (audit_id)"
        " WHERE a.collection = ? GROUP BY ALL"
        " ORDER BY measured_at, audit_id, name",
        [collection, collection],
    )


# -- alerts and jobs -----------------------------------------------------------------------


def alerts_count(store: Store, *, status: str | None = None, rule: str | None = None) -> int:
    """How many notifications are stored (of one status, of one rule)."""
    return int(
        store.fetch(
            "SELECT count(*) FROM alerts WHERE (? IS NULL OR status = ?)"
            " AND (? IS NULL OR rule = ?)",
            [status, status, rule, rule],
        )[0][0]
    )


def alert_state_counts(store: Store, *, status: str | None = None) -> dict[str, int]:
    """How many notifications (of one status) have a delivery ``pending`` or ``abandoned``."""
    row = store.fetch(
        "SELECT count(DISTINCT o.alert_id) FILTER (WHERE o.state = 'pending'),"
        " count(DISTINCT o.alert_id) FILTER (WHERE o.state = 'abandoned')"
        " FROM alert_outbox o JOIN alerts a USING (alert_id) WHERE (? IS NULL OR a.status = ?)",
        [status, status],
    )[0]
    return {"pending": int(row[0] or 0), "abandoned": int(row[1] or 0)}


def alerts_frame(
    store: Store,
    *,
    status: str | None = None,
    rule: str | None = None,
    limit: int = 500,
    offset: int = 0,
) -> pd.DataFrame:
    """Notifications, newest first (``limit`` of them from row ``offset``), with their
    deliveries summarised per alert.

    Columns: alert_id, created_at, fired_at, rule, kind, subject, status, severity, title,
    summary, n_sinks, delivered, pending, abandoned, attempts, last_error.
    """
    return _frame(
        store,
        "WITH o AS (SELECT alert_id, count(*) FILTER (WHERE state = 'delivered') AS delivered,"
        "  count(*) FILTER (WHERE state = 'pending') AS pending,"
        "  count(*) FILTER (WHERE state = 'abandoned') AS abandoned,"
        "  sum(attempts) AS attempts, max(last_error) AS last_error"
        "  FROM alert_outbox GROUP BY alert_id)"
        " SELECT a.alert_id, a.created_at, a.fired_at, a.rule, a.kind, a.subject, a.status,"
        " a.severity, a.title, a.summary, a.n_sinks, coalesce(o.delivered, 0) AS delivered,"
        " coalesce(o.pending, 0) AS pending, coalesce(o.abandoned, 0) AS abandoned,"
        " coalesce(o.attempts, 0) AS attempts, o.last_error"
        " FROM alerts a LEFT JOIN o USING (alert_id)"
        " WHERE (? IS NULL OR a.status = ?) AND (? IS NULL OR a.rule = ?)"
        " ORDER BY a.created_at DESC, a.alert_id DESC LIMIT ? OFFSET ?",
        [status, status, rule, rule, limit, offset],
    )


def alert_row(store: Store, *, alert_id: str) -> dict[str, Any] | None:
    """One notification's kind, title, severity, status and summary, or None when not
    stored."""
    columns = ("alert_id", "kind", "title", "severity", "status", "summary")
    rows = store.fetch(f"SELECT {', '.join(columns)} FROM alerts WHERE alert_id = ?", [alert_id])
    if not rows:
        return None
    return dict(zip(columns, rows[0], strict=True))


def alert_deliveries_frame(store: Store, *, alert_id: str) -> pd.DataFrame:
    """Delivery attempts of one alert, oldest first: sink, attempt, attempted_at,
    duration_ms, ok, status_code, error."""
    return _frame(
        store,
        "SELECT sink, attempt, attempted_at, duration_ms, ok, status_code, error"
        " FROM alert_delivery_attempts WHERE alert_id = ?"
        " ORDER BY attempted_at, sink, attempt",
        [alert_id],
    )


def open_alerts_frame(store: Store) -> pd.DataFrame:
    """Conditions firing now (one per deduplication key), worst and oldest first.

    Columns: dedup_key, rule, subject, severity, since, last_evaluated_at, title.
    """
    return _frame(
        store,
        "SELECT s.dedup_key, s.rule, s.subject, s.severity, s.since, s.last_evaluated_at,"
        " a.title FROM alert_state s LEFT JOIN alerts a ON a.alert_id = s.last_alert_id"
        " WHERE s.active"
        " ORDER BY CASE s.severity WHEN 'critical' THEN 0 ELSE 1 END, s.since, s.dedup_key",
    )


def latest_job_runs_frame(store: Store) -> pd.DataFrame:
    """The newest run of every job: job, kind, trigger, status, started_at, finished_at,
    seconds, n_runs, error."""
    return _frame(
        store,
        "SELECT job, kind, trigger, status, started_at, finished_at,"
        " epoch(finished_at) - epoch(started_at) AS seconds, len(run_ids) AS n_runs, error"
        " FROM job_runs QUALIFY row_number() OVER (PARTITION BY job"
        "  ORDER BY started_at DESC, job_run_id DESC) = 1"
        " ORDER BY started_at DESC",
    )


def job_runs_count(store: Store) -> int:
    """How many job runs are recorded."""
    return int(store.fetch("SELECT count(*) FROM job_runs")[0][0])


def job_runs_frame(store: Store, *, limit: int = 200) -> pd.DataFrame:
    """Job runs, newest first: job_run_id, job, kind, trigger, status, started_at,
    finished_at, seconds, n_runs, error."""
    return _frame(
        store,
        "SELECT job_run_id, job, kind, trigger, status, started_at, finished_at,"
        " epoch(finished_at) - epoch(started_at) AS seconds, len(run_ids) AS n_runs, error"
        " FROM job_runs ORDER BY started_at DESC, job_run_id DESC LIMIT ?",
        [limit],
    )
