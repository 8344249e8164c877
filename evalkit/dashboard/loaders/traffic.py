"""The Traffic page's data: replayed windows per tenant beside the logs' volume."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from evalkit.store import Store
from evalkit.store.dashboard import traffic as sql

__all__ = ["TrafficData", "traffic"]


@dataclass(frozen=True, slots=True)
class TrafficData:
    """Replayed traffic windows, and per window and tenant the replay's and the logs' figures."""

    windows: pd.DataFrame
    tenants: pd.DataFrame
    volume: pd.DataFrame
    records: int
    total_windows: int = 0


def traffic(store: Store, *, windows: int = 30) -> TrafficData:
    """The newest ``windows`` replayed windows with per-tenant breakdowns, and how many
    windows were replayed in all (``total_windows``)."""
    summaries = sql.traffic_windows_frame(store, limit=windows)
    records = sql.traffic_record_count(store)
    tenants = sql.traffic_tenants_frame(store, run_ids=list(summaries["run_id"]))
    volume = sql.traffic_volume_frame(
        store,
        windows=[
            (
                str(row.window_label),
                row.window_start.to_pydatetime(),
                row.window_end.to_pydatetime(),
            )
            for row in summaries.itertuples()
        ],
    )
    return TrafficData(
        windows=summaries,
        tenants=tenants,
        volume=volume,
        records=records,
        total_windows=sql.traffic_window_count(store),
    )
