"""What every dashboard query shares: plain frames (``read_frame``), the tables a store
holds, run pickers."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evalkit.store.columns import twice
from evalkit.store.runs import RETRIEVER_ID_SQL

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = [
    "AREA_TABLES",
    "FINISHED_STATUSES",
    "RETRIEVER_SQL",
    "existing_tables",
    "goldset_names",
    "measures_frame",
    "plain_frame",
    "read_frame",
    "runs_frame",
    "store_counts",
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
    "judging": ("judge_agreements", "judged_run_figures"),
    "review": ("review_items", "reviews", "review_publications"),
    "slices": ("traffic_slice_figures", "topic_sets"),
}
"""The tables each area of evalkit writes (an area's page needs all of its tables)."""


RETRIEVER_SQL = RETRIEVER_ID_SQL
"""SQL naming a run's retriever, the key of a series (``evalkit.store.runs.RETRIEVER_ID_SQL``)."""


def plain_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with pandas' nullable columns made plain: numbers as float64 with NaN (int64
    when nothing is missing), the rest as objects with None. DuckDB hands a column holding a
    NULL to pandas with ``pd.NA`` gaps, which neither Plotly nor Streamlit can serialise;
    every frame the dashboard reads goes through here."""
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


def read_frame(store: Store, sql: str, parameters: Sequence[object] = ()) -> pd.DataFrame:
    """A query's result as a plain DataFrame (see ``plain_frame``)."""
    return plain_frame(store.fetch_frame(sql, parameters))


def existing_tables(store: Store) -> frozenset[str]:
    """Names of the tables this store holds (areas whose migration ran)."""
    return store.table_names()


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
    return read_frame(
        store,
        "SELECT run_id, goldset_name, goldset_version, retriever, label, status, started_at,"
        " finished_at, k, relevance_threshold, measures, model_name, model_fingerprint,"
        " index_fingerprint, n_queries, n_evaluated, n_failed, error"
        f" FROM (SELECT *, {RETRIEVER_SQL} AS retriever FROM runs"
        "  WHERE goldset_name IS NOT NULL)"
        " WHERE (? IS NULL OR goldset_name = ?) AND (? IS NULL OR retriever = ?)"
        " AND (? IS NULL OR list_contains(?::VARCHAR[], status))"
        " ORDER BY started_at DESC, run_id DESC LIMIT ?",
        [*twice(goldset, retriever, None if statuses is None else list(statuses)), limit],
    )


def measures_frame(store: Store, *, goldset: str | None = None) -> pd.DataFrame:
    """Measures stored for finished runs (of one goldset), with how many runs have each."""
    return read_frame(
        store,
        "SELECT a.measure, count(*) AS n_runs FROM run_aggregates a JOIN runs r USING (run_id)"
        " WHERE (? IS NULL OR r.goldset_name = ?) AND a.value IS NOT NULL"
        " GROUP BY a.measure ORDER BY n_runs DESC, a.measure",
        [goldset, goldset],
    )
