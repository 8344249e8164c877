"""Runs as stored: reads over the ``runs`` and ``run_aggregates`` tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = ["LatestAggregate", "latest_aggregates"]


@dataclass(frozen=True, slots=True)
class LatestAggregate:
    """One measure of the newest finished goldset run of a goldset and label."""

    goldset: str
    label: str
    run_id: str
    status: str
    started_at: datetime
    measure: str
    value: float | None


def latest_aggregates(store: Store) -> list[LatestAggregate]:
    """Aggregates of the newest complete or partial goldset run per (goldset, label)."""
    rows = store.fetch(
        "WITH latest AS (SELECT run_id, goldset_name, coalesce(label, '') AS label, status,"
        " started_at FROM runs WHERE kind = 'goldset' AND status IN ('complete', 'partial')"
        " QUALIFY row_number() OVER (PARTITION BY goldset_name, coalesce(label, '')"
        " ORDER BY started_at DESC, run_id DESC) = 1)"
        " SELECT l.goldset_name, l.label, l.run_id, l.status, l.started_at, a.measure, a.value"
        " FROM latest l JOIN run_aggregates a USING (run_id) ORDER BY ALL"
    )
    return [LatestAggregate(*row) for row in rows]
