"""Queries behind the Index health page: audits, their findings and measurements."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from evalkit.store.dashboard.shared import read_frame

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = ["audit_findings_frame", "audit_measurements_frame", "audits_frame"]


def audits_frame(store: Store, *, limit: int = 500) -> pd.DataFrame:
    """Stored audits, newest first: audit_id, collection, started_at, finished_at,
    n_documents, goldset_name, max_severity, n_findings, model_name."""
    return read_frame(
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
    return read_frame(
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
    return read_frame(
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
