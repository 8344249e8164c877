"""The Index health page's data: audits, one collection's findings and measurements."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from evalkit.store import Store
from evalkit.store.dashboard import index_health as sql

__all__ = ["IndexHealthData", "index_health", "index_latency"]


@dataclass(frozen=True, slots=True)
class IndexHealthData:
    """Audits, and for one collection its chosen (default newest) audit's findings and the
    history of every measurement."""

    audits: pd.DataFrame
    collection: str | None
    findings: pd.DataFrame
    measurements: pd.DataFrame


def index_health(
    store: Store, *, collection: str | None = None, audit_id: str | None = None
) -> IndexHealthData:
    """Audits of the store; findings and measurement history of one collection."""
    audits = sql.audits_frame(store)
    if audit_id is not None:
        chosen = audits[audits["audit_id"] == audit_id]
        if not chosen.empty:
            collection = str(chosen.iloc[0]["collection"])
    if collection is None and not audits.empty:
        collection = str(audits.iloc[0]["collection"])
    if collection is None:
        return IndexHealthData(audits, None, pd.DataFrame(), pd.DataFrame())
    return IndexHealthData(
        audits=audits,
        collection=collection,
        findings=sql.audit_findings_frame(store, collection=collection, audit_id=audit_id),
        measurements=sql.audit_measurements_frame(store, collection=collection),
    )


def index_latency(store: Store) -> pd.DataFrame:
    """Runs that counted their index, with their replay latency
    (``latency_by_index_size_frame``), for the latency against index size chart."""
    return sql.latency_by_index_size_frame(store)
