"""Queries behind the Index health page: audits, their findings and measurements."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pandas as pd

from evalkit.store.dashboard.shared import RETRIEVER_SQL, read_frame

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = [
    "audit_findings_frame",
    "audit_measurements_frame",
    "audits_frame",
    "latency_by_index_size_frame",
]


def audits_frame(store: Store, *, limit: int = 500) -> pd.DataFrame:
    """Stored audits, newest first: audit_id, collection, started_at, finished_at,
    n_documents, goldset_name, max_severity, n_findings, model_name, and ``skipped``: the
    checks it did not run, as ``name: why``, joined by ``; `` (empty when it ran all)."""
    frame = read_frame(
        store,
        "SELECT audit_id, collection, started_at, finished_at, n_documents, goldset_name,"
        " max_severity, n_findings, model_name, checks FROM audits"
        " ORDER BY started_at DESC, audit_id DESC LIMIT ?",
        [limit],
    )
    skipped = [
        "; ".join(
            f"{check.get('name')}: {check['note']}" if check.get("note") else str(check.get("name"))
            for check in json.loads(checks or "[]")
            if not check.get("ran", True)
        )
        for checks in frame["checks"]
    ]
    return frame.drop(columns=["checks"]).assign(skipped=skipped)


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


def latency_by_index_size_frame(store: Store, *, limit: int = 1000) -> pd.DataFrame:
    """The newest ``limit`` finished runs recorded in this store that counted their index,
    newest first, with their replay latency: run_id, started_at, retriever, collection,
    goldset_name, index_documents, index_vectors, n_latencies, latency_p50, latency_p95
    (answered queries only)."""
    return read_frame(
        store,
        "WITH sized AS (SELECT run_id, started_at, " + RETRIEVER_SQL + " AS retriever,"
        " collection, goldset_name, index_documents, index_vectors FROM runs"
        " WHERE index_documents IS NOT NULL AND status IN ('complete', 'partial')"
        " AND imported_from IS NULL ORDER BY started_at DESC, run_id DESC LIMIT ?),"
        " latency AS (SELECT run_id, count(*) AS n_latencies,"
        " quantile_cont(latency_ms, 0.5) AS latency_p50,"
        " quantile_cont(latency_ms, 0.95) AS latency_p95 FROM run_queries"
        " WHERE run_id IN (SELECT run_id FROM sized) AND error IS NULL"
        " AND latency_ms IS NOT NULL GROUP BY run_id)"
        " SELECT s.*, l.n_latencies, l.latency_p50, l.latency_p95"
        " FROM sized s JOIN latency l USING (run_id) ORDER BY s.started_at DESC, s.run_id DESC",
        [limit],
    )
