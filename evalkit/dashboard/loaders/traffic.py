"""The Traffic page's data: replayed windows per tenant beside the logs' volume, and the
figures an LLM assessor's labels gave them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from evalkit.dashboard.loaders.shared import has_area
from evalkit.store import Store
from evalkit.store.dashboard import traffic as sql
from evalkit.store.dashboard.shared import existing_tables
from evalkit.store.judging import agreements_by_id

__all__ = ["TrafficData", "traffic"]


@dataclass(frozen=True, slots=True)
class TrafficData:
    """Replayed traffic windows, and per window and tenant the replay's and the logs' figures.

    ``judged``: the windows' precision@k from an LLM assessor's labels
    (``evalkit.store.dashboard.traffic.traffic_judged_frame``), None where the store has no
    judging tables; ``agreements``: the summary of each agreement those figures were
    computed under, by agreement id.
    """

    windows: pd.DataFrame
    tenants: pd.DataFrame
    volume: pd.DataFrame
    records: int
    total_windows: int = 0
    judged: pd.DataFrame | None = None
    agreements: Mapping[str, str] = field(default_factory=dict)


def traffic(store: Store, *, windows: int = 30) -> TrafficData:
    """The newest ``windows`` replayed windows with per-tenant breakdowns and their judged
    precision, and how many windows were replayed in all (``total_windows``)."""
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
    judged = None
    agreements: dict[str, str] = {}
    if has_area(existing_tables(store), "judging"):
        judged = sql.traffic_judged_frame(
            store, window_labels=list(summaries["window_label"].astype(str))
        )
        agreements = _agreement_summaries(store, judged)
    return TrafficData(
        windows=summaries,
        tenants=tenants,
        volume=volume,
        records=records,
        total_windows=sql.traffic_window_count(store),
        judged=judged,
        agreements=agreements,
    )


def _agreement_summaries(store: Store, judged: pd.DataFrame) -> dict[str, str]:
    """``StoredAgreement.summary()`` of each agreement ``judged``'s figures name, by id."""
    named = judged["agreement_id"].dropna().astype(str)
    return {
        agreement_id: agreement.summary()
        for agreement_id, agreement in agreements_by_id(store, set(named)).items()
    }
