"""Queries behind the Alerts page (and the Overview's open alerts and jobs): notifications,
their deliveries, conditions firing now and job runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from evalkit.store.alerts import alert_status_condition
from evalkit.store.dashboard.shared import read_frame

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = [
    "alert_deliveries_frame",
    "alert_row",
    "alert_state_counts",
    "alerts_count",
    "alerts_frame",
    "job_runs_count",
    "job_runs_frame",
    "latest_job_runs_frame",
    "open_alerts_frame",
]


def alerts_count(store: Store, *, status: str | None = None, rule: str | None = None) -> int:
    """How many notifications are stored (of one status as ``alerts_frame`` lists it, of one
    rule)."""
    condition, parameters = alert_status_condition(status)
    return int(
        store.fetch(
            f"SELECT count(*) FROM alerts a WHERE {condition} AND (? IS NULL OR a.rule = ?)",
            [*parameters, rule, rule],
        )[0][0]
    )


def alert_state_counts(store: Store, *, status: str | None = None) -> dict[str, int]:
    """How many notifications (of one status as ``alerts_frame`` lists it) have a delivery
    ``pending`` or ``abandoned``."""
    condition, parameters = alert_status_condition(status)
    row = store.fetch(
        "SELECT count(DISTINCT o.alert_id) FILTER (WHERE o.state = 'pending'),"
        " count(DISTINCT o.alert_id) FILTER (WHERE o.state = 'abandoned')"
        f" FROM alert_outbox o JOIN alerts a USING (alert_id) WHERE {condition}",
        parameters,
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
    """Notifications, newest first (``limit`` from row ``offset``), deliveries summarised per
    alert; ``status="firing"`` lists the firing notices of conditions still open. Columns:
    alert_id, created_at, fired_at, rule, kind, subject, status, severity, title, summary,
    n_sinks, delivered, pending, abandoned, attempts, last_error."""
    condition, parameters = alert_status_condition(status)
    return read_frame(
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
        f" WHERE {condition} AND (? IS NULL OR a.rule = ?)"
        " ORDER BY a.created_at DESC, a.alert_id DESC LIMIT ? OFFSET ?",
        [*parameters, rule, rule, limit, offset],
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
    return read_frame(
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
    return read_frame(
        store,
        "SELECT s.dedup_key, s.rule, s.subject, s.severity, s.since, s.last_evaluated_at,"
        " a.title FROM alert_state s LEFT JOIN alerts a ON a.alert_id = s.last_alert_id"
        " WHERE s.active"
        " ORDER BY CASE s.severity WHEN 'critical' THEN 0 ELSE 1 END, s.since, s.dedup_key",
    )


def latest_job_runs_frame(store: Store) -> pd.DataFrame:
    """The newest run of every job: job, kind, trigger, status, started_at, finished_at,
    seconds, n_runs, error."""
    return read_frame(
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
    return read_frame(
        store,
        "SELECT job_run_id, job, kind, trigger, status, started_at, finished_at,"
        " epoch(finished_at) - epoch(started_at) AS seconds, len(run_ids) AS n_runs, error"
        " FROM job_runs ORDER BY started_at DESC, job_run_id DESC LIMIT ?",
        [limit],
    )
