"""Queries behind the Overview page: series of goldset x retriever, their latest and
baseline runs, paired per-query differences, sparkline history and drifting checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from evalkit.store.dashboard.shared import FINISHED_STATUSES, RETRIEVER_SQL, read_frame

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = [
    "aggregates_frame",
    "drifting_series_frame",
    "measured_series_frame",
    "paired_differences_frame",
    "per_query_values",
    "series_frame",
    "series_history_frame",
]


def series_frame(store: Store) -> pd.DataFrame:
    """One row per goldset x retriever: run counts, the latest finished run, the baseline
    (its oldest complete run) and the newest run of any status.

    Columns: goldset_name, retriever, n_runs, latest_run, latest_status, latest_started,
    latest_goldset_version, latest_model_fingerprint, latest_index_fingerprint, n_evaluated,
    latest_n_queries, latest_n_failed, baseline_run, baseline_started, newest_run,
    newest_status, newest_started, newest_error.
    """
    return read_frame(
        store,
        f"WITH r AS (SELECT *, {RETRIEVER_SQL} AS retriever FROM runs"
        "  WHERE goldset_name IS NOT NULL),"
        " counts AS (SELECT goldset_name, retriever, count(*) AS n_runs FROM r GROUP BY ALL),"
        " latest AS (SELECT goldset_name, retriever, run_id AS latest_run,"
        "  status AS latest_status, started_at AS latest_started,"
        "  goldset_version AS latest_goldset_version,"
        "  model_fingerprint AS latest_model_fingerprint,"
        "  index_fingerprint AS latest_index_fingerprint, n_evaluated,"
        "  n_queries AS latest_n_queries, n_failed AS latest_n_failed"
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
        " l.latest_index_fingerprint, l.n_evaluated, l.latest_n_queries, l.latest_n_failed,"
        " b.baseline_run, b.baseline_started,"
        " n.newest_run, n.newest_status, n.newest_started, n.newest_error"
        " FROM counts c"
        " LEFT JOIN latest l USING (goldset_name, retriever)"
        " LEFT JOIN baseline b USING (goldset_name, retriever)"
        " LEFT JOIN newest n USING (goldset_name, retriever)"
        " ORDER BY c.goldset_name, c.retriever",
        [list(FINISHED_STATUSES)],
    )


def measured_series_frame(store: Store, *, measure: str) -> pd.DataFrame:
    """Per goldset x retriever, the newest finished run that stored ``measure``
    (``measured_run``; not the latest when that one has another k or measure set) and the
    oldest complete one (``baseline_run``). Columns: goldset_name, retriever, latest_k,
    measured_run, measured_started, measured_k, baseline_run, baseline_started (NULL where no
    run stored the measure)."""
    return read_frame(
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
    return read_frame(
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
    return read_frame(
        store,
        "SELECT run_id, measure, value, n_evaluated, n_total FROM run_aggregates"
        " WHERE run_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY run_id, measure",
        [list(run_ids)],
    )


def per_query_values(store: Store, run_ids: Sequence[str], measure: str) -> pd.DataFrame:
    """Stored per-query values of one measure for these runs: run_id, query_id, value."""
    return read_frame(
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
    return read_frame(
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


def drifting_series_frame(
    store: Store, *, series: Sequence[tuple[str, str]], measure: str
) -> pd.DataFrame:
    """For each (goldset, retriever) series, the streams whose newest drift check about it
    drifts or found a model mismatch, in one line each. A check is about a series by its
    subject: ``goldset|retriever``, the retriever, its collection or URL, or
    ``goldset:measure``. Columns: goldset_name, retriever, drift."""
    return read_frame(
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
