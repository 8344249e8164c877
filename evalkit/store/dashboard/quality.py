"""Queries behind the Quality over time page: a measure per run of a goldset, with what
changed between runs, and the alerts fired about it."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd

from evalkit.embedding.fingerprint import same_model
from evalkit.store.dashboard.shared import FINISHED_STATUSES, RETRIEVER_SQL, read_frame
from evalkit.store.runs import index_changed_sql, query_models

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = ["alert_events_frame", "series_points_frame"]


def series_points_frame(store: Store, *, goldset: str, measure: str) -> pd.DataFrame:
    """Every finished run of a goldset with the measure's mean and per-query spread, and what
    changed since the previous run of the same retriever.

    Columns: run_id, retriever, label, status, started_at, k, goldset_version, model_name,
    model_fingerprint, index_fingerprint, value (NULL when not stored), n, sd, goldset_changed,
    model_changed (as ``RunSpec.same_query_model`` tells), model_change_unconfirmed,
    index_changed, k_changed and the previous run's goldset_version, model_fingerprint,
    index_fingerprint and k (prev_*)."""
    points = read_frame(
        store,
        f"WITH r AS (SELECT run_id, {RETRIEVER_SQL} AS retriever, label, status, started_at,"
        "  k, goldset_version, model_name, model_fingerprint, index_fingerprint,"
        "  retriever_config FROM runs"
        "  WHERE goldset_name = ? AND list_contains(?::VARCHAR[], status)),"
        " spread AS (SELECT run_id, count(*) AS n, stddev_samp(value) AS sd FROM query_metrics"
        "  WHERE measure = ? AND run_id IN (SELECT run_id FROM r) GROUP BY run_id),"
        " points AS (SELECT r.*, a.value, s.n, s.sd,"
        "  lag(r.run_id) OVER w AS prev_run,"
        "  lag(r.goldset_version) OVER w AS prev_goldset_version,"
        "  lag(r.model_fingerprint) OVER w AS prev_model_fingerprint,"
        "  lag(r.model_name) OVER w AS prev_model_name,"
        "  lag(r.index_fingerprint) OVER w AS prev_index_fingerprint,"
        "  lag(r.retriever_config) OVER w AS prev_retriever_config,"
        "  lag(r.k) OVER w AS prev_k"
        "  FROM r LEFT JOIN run_aggregates a ON a.run_id = r.run_id AND a.measure = ?"
        "  LEFT JOIN spread s ON s.run_id = r.run_id"
        "  WINDOW w AS (PARTITION BY r.retriever ORDER BY r.started_at, r.run_id))"
        " SELECT *,"
        " prev_run IS NOT NULL AND goldset_version IS DISTINCT FROM prev_goldset_version"
        "  AS goldset_changed,"
        " prev_run IS NOT NULL AND (model_fingerprint IS DISTINCT FROM prev_model_fingerprint"
        "  OR model_name IS DISTINCT FROM prev_model_name) AS model_changed,"
        f" prev_run IS NOT NULL AND {index_changed_sql('prev_', '')} AS index_changed,"
        " prev_run IS NOT NULL AND k IS DISTINCT FROM prev_k AS k_changed"
        " FROM points ORDER BY retriever, started_at, run_id",
        [goldset, list(FINISHED_STATUSES), measure, measure],
    )
    return _models_compared(store, points)


def _models_compared(store: Store, points: pd.DataFrame) -> pd.DataFrame:
    """``points`` with ``model_changed`` decided by the runs' canary embeddings where SQL
    saw another canary hash or name (few rows: the canaries are read for those only)."""
    differs = points[points["model_changed"].astype(bool)]
    changed = [
        (str(run), str(prev))
        for run, prev in zip(differs["run_id"], differs["prev_run"], strict=True)
    ]
    models = query_models(store, [run for pair in changed for run in pair]) if changed else {}
    verdicts = {run: same_model(models.get(prev), models.get(run)) for run, prev in changed}
    compared = [verdicts.get(str(run), True) for run in points["run_id"]]
    return points.assign(
        model_changed=[same is not True for same in compared],
        model_change_unconfirmed=[same is None for same in compared],
    )


def alert_events_frame(
    store: Store, *, goldset: str, since: datetime, until: datetime
) -> pd.DataFrame:
    """Firing notifications about a goldset (subject ``goldset``, ``goldset/label...`` or
    ``goldset:...``) created in ``[since, until]``: created_at, rule, severity, title."""
    return read_frame(
        store,
        "SELECT created_at, rule, severity, subject, title FROM alerts"
        " WHERE status = 'firing' AND created_at BETWEEN ? AND ?"
        " AND (subject = ? OR starts_with(subject, ? || '/') OR starts_with(subject, ? || ':')"
        "  OR starts_with(subject, ? || '|'))"
        " ORDER BY created_at",
        [since, until, goldset, goldset, goldset, goldset],
    )
