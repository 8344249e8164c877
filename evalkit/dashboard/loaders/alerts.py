"""The Alerts page's data: notifications with their deliveries, conditions firing now and
job runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from evalkit.dashboard.loaders.shared import has_area
from evalkit.store import Store
from evalkit.store.dashboard import alerts as sql
from evalkit.store.dashboard.shared import existing_tables

__all__ = ["AlertsData", "alert", "alert_deliveries", "alerts"]


@dataclass(frozen=True, slots=True)
class AlertsData:
    """Alert history with delivery summaries (one page of it), conditions firing now, and
    job runs.

    ``alerts``: the ``page_size`` notifications from row ``offset``, newest first;
    ``total``: how many the store holds (of the status asked for); ``undelivered`` and
    ``abandoned``: how many of those have a delivery pending or given up.
    """

    alerts: pd.DataFrame
    open_alerts: pd.DataFrame
    jobs: pd.DataFrame | None
    total: int = 0
    offset: int = 0
    undelivered: int = 0
    abandoned: int = 0
    total_jobs: int = 0


def alerts(
    store: Store, *, status: str | None = None, offset: int = 0, page_size: int = 50
) -> AlertsData:
    """One page of notifications (optionally of one status) with the true total, open
    conditions and recent job runs."""
    states = sql.alert_state_counts(store, status=status)
    return AlertsData(
        alerts=sql.alerts_frame(store, status=status, limit=page_size, offset=offset),
        open_alerts=sql.open_alerts_frame(store),
        jobs=sql.job_runs_frame(store) if has_area(existing_tables(store), "jobs") else None,
        total=sql.alerts_count(store, status=status),
        offset=offset,
        undelivered=states["pending"],
        abandoned=states["abandoned"],
        total_jobs=sql.job_runs_count(store) if has_area(existing_tables(store), "jobs") else 0,
    )


def alert(store: Store, *, alert_id: str) -> dict[str, Any] | None:
    """One notification (alert_id, kind, title, severity, status, summary), or None."""
    return sql.alert_row(store, alert_id=alert_id)


def alert_deliveries(store: Store, *, alert_id: str) -> pd.DataFrame:
    """Every delivery attempt of one alert."""
    return sql.alert_deliveries_frame(store, alert_id=alert_id)
