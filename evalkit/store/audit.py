"""Stored index audits: one row per audit, its findings, and its measurements.

``audit_findings`` is what alert rules read (severity ranked for "at or above" filters);
``audit_measurements`` keeps every figure an audit measured, for trends and the next audit's
comparison. Columns: docs/store.md.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb

from evalkit import __version__
from evalkit.errors import ConfigError, NotFoundError
from evalkit.records.jsonready import JsonReady
from evalkit.store.columns import json_text, json_value, placeholders, values_of

if TYPE_CHECKING:
    from evalkit.records.audit import AuditReport
    from evalkit.store.store import Store

__all__ = [
    "SEVERITY_RANKS",
    "StoredAudit",
    "StoredFinding",
    "audit_findings",
    "get_audit",
    "latest_measurements",
    "list_audit_findings",
    "list_audits",
    "save_audit",
]

SEVERITY_RANKS: Mapping[str, int] = {"info": 0, "warning": 1, "critical": 2}
"""Finding severities in increasing order, as stored in ``audit_findings.severity_rank``."""

_AUDIT_COLUMNS = (
    "audit_id, collection, location, started_at, finished_at, n_documents, model_name,"
    " model_fingerprint, stored_model_fingerprint, index_fingerprint, goldset_name,"
    " goldset_version, source, seed, config, checks, max_severity, n_findings, evalkit_version"
)
_FINDING_COLUMNS = (
    "audit_id, ordinal, collection, created_at, kind, check_name, severity, message,"
    " n_affected, doc_ids, clusters, query_ids, value, threshold, details"
)


@dataclass(frozen=True, slots=True)
class StoredAudit(JsonReady):
    """One stored audit: what was audited, when, with what, and how it came out."""

    audit_id: str
    collection: str
    location: str | None
    started_at: datetime
    finished_at: datetime
    n_documents: int
    model_name: str | None
    model_fingerprint: str | None
    stored_model_fingerprint: str | None
    index_fingerprint: str | None
    goldset_name: str | None
    goldset_version: str | None
    source: str | None
    seed: int | None
    config: Mapping[str, Any]
    checks: Sequence[Mapping[str, Any]]
    max_severity: str | None
    n_findings: int
    evalkit_version: str

    @property
    def checks_run(self) -> frozenset[str]:
        """The checks this audit ran (a check whose inputs were missing is listed, not run)."""
        return frozenset(str(check.get("name")) for check in self.checks if check.get("ran"))


@dataclass(frozen=True, slots=True)
class StoredFinding(JsonReady):
    """One stored finding of an audit (see ``evalkit.audit.FINDING_KINDS`` for the kinds)."""

    audit_id: str
    ordinal: int
    collection: str
    created_at: datetime
    kind: str
    check: str
    severity: str
    message: str
    count: int
    doc_ids: tuple[str, ...]
    clusters: tuple[tuple[str, ...], ...]
    query_ids: tuple[str, ...]
    value: float | None
    threshold: float | None
    details: Mapping[str, Any]


def save_audit(store: Store, report: AuditReport) -> StoredAudit:
    """Store an audit, its findings and its measurements in one transaction."""
    audit_id = f"{report.started_at:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
    worst = report.max_severity
    checks = [check.to_dict() for check in report.checks]
    audit_row = values_of(
        report,
        _AUDIT_COLUMNS,
        audit_id=audit_id,
        config=json_text(dict(report.config)),
        checks=json_text(checks),
        max_severity=worst.value if worst is not None else None,
        n_findings=len(report.findings),
        evalkit_version=__version__,
    )
    with store.writing(
        f"cannot store the audit of collection '{report.collection}' in {store.path}"
    ) as con:
        _insert(con, audit_id, report, audit_row)
    return get_audit(store, audit_id)


def _insert(
    con: duckdb.DuckDBPyConnection, audit_id: str, report: AuditReport, audit_row: list[Any]
) -> None:
    con.execute(f"INSERT INTO audits ({_AUDIT_COLUMNS}) VALUES ({placeholders(19)})", audit_row)
    for ordinal, finding in enumerate(report.findings):
        con.execute(
            f"INSERT INTO audit_findings ({_FINDING_COLUMNS}, severity_rank)"
            f" VALUES ({placeholders(16)})",
            [
                audit_id,
                ordinal,
                report.collection,
                report.finished_at,
                finding.kind,
                finding.check,
                finding.severity.value,
                finding.message,
                finding.count,
                list(finding.doc_ids),
                [list(cluster) for cluster in finding.clusters],
                list(finding.query_ids),
                finding.value,
                finding.threshold,
                json_text(dict(finding.details)),
                SEVERITY_RANKS[finding.severity.value],
            ],
        )
    for check in report.checks:
        for name, value in check.measurements.items():
            con.execute(
                "INSERT INTO audit_measurements VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    audit_id,
                    report.collection,
                    report.goldset_version,
                    report.finished_at,
                    check.name,
                    name,
                    float(value),
                ],
            )


def _audit(row: Sequence[Any]) -> StoredAudit:
    values = list(row)
    values[14] = json_value(values[14])
    values[15] = json_value(values[15], empty=list)
    return StoredAudit(*values)


def _finding(row: Sequence[Any]) -> StoredFinding:
    values = list(row)
    values[9] = tuple(values[9] or ())
    values[10] = tuple(tuple(cluster) for cluster in values[10] or ())
    values[11] = tuple(values[11] or ())
    values[14] = json_value(values[14])
    return StoredFinding(*values)


def get_audit(store: Store, audit_id: str) -> StoredAudit:
    """The audit ``audit_id``; raises ``NotFoundError`` when there is none."""
    rows = store.fetch(f"SELECT {_AUDIT_COLUMNS} FROM audits WHERE audit_id = ?", [audit_id])
    if not rows:
        raise NotFoundError(f"no audit {audit_id!r} in {store.path}; run `evalkit audit` first")
    return _audit(rows[0])


def list_audits(
    store: Store,
    *,
    collection: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    oldest_first: bool = False,
    limit: int = 20,
) -> list[StoredAudit]:
    """Stored audits, newest first (``oldest_first``: oldest first), optionally of one
    collection, finished at or after ``since`` and started at or before ``until`` (naive
    UTC)."""
    order = "ASC" if oldest_first else "DESC"
    rows = store.fetch(
        f"SELECT {_AUDIT_COLUMNS} FROM audits WHERE (? IS NULL OR collection = ?)"
        " AND (? IS NULL OR finished_at >= ?) AND (? IS NULL OR started_at <= ?)"
        f" ORDER BY started_at {order}, audit_id {order} LIMIT ?",
        [collection, collection, since, since, until, until, limit],
    )
    return [_audit(row) for row in rows]


def audit_findings(store: Store, audit_id: str) -> list[StoredFinding]:
    """The findings of one audit, in the order they were reported."""
    rows = store.fetch(
        f"SELECT {_FINDING_COLUMNS} FROM audit_findings WHERE audit_id = ? ORDER BY ordinal",
        [audit_id],
    )
    return [_finding(row) for row in rows]


def list_audit_findings(
    store: Store,
    *,
    collection: str | None = None,
    min_severity: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    latest_only: bool = False,
    limit: int = 1000,
) -> list[StoredFinding]:
    """Stored findings, newest first: what alert rules read.

    Filters: one ``collection``; severity ``min_severity`` or worse (``info``, ``warning``,
    ``critical``); one ``kind``; found at or after ``since`` (naive UTC); ``latest_only``
    keeps only each collection's most recent audit.
    """
    if min_severity is not None and min_severity not in SEVERITY_RANKS:
        raise ConfigError(
            f"unknown severity {min_severity!r}; use one of: {', '.join(SEVERITY_RANKS)}"
        )
    rank = SEVERITY_RANKS[min_severity] if min_severity is not None else None
    rows = store.fetch(
        f"SELECT {_FINDING_COLUMNS} FROM audit_findings f"
        " WHERE (? IS NULL OR f.collection = ?)"
        " AND (? IS NULL OR f.severity_rank >= ?)"
        " AND (? IS NULL OR f.kind = ?)"
        " AND (? IS NULL OR f.created_at >= ?)"
        " AND (NOT ? OR f.audit_id = (SELECT a.audit_id FROM audits a"
        "   WHERE a.collection = f.collection ORDER BY a.started_at DESC, a.audit_id DESC"
        "   LIMIT 1))"
        " ORDER BY f.created_at DESC, f.audit_id DESC, f.ordinal LIMIT ?",
        [collection, collection, rank, rank, kind, kind, since, since, latest_only, limit],
    )
    return [_finding(row) for row in rows]


def latest_measurements(
    store: Store, *, collection: str, goldset_version: str | None = None
) -> dict[str, float]:
    """The measurements of the newest audit of ``collection`` (and goldset version, if given).

    Empty when there is no such audit. ``run_audit(previous=...)`` compares with these.
    """
    rows = store.fetch(
        "SELECT audit_id FROM audits WHERE collection = ?"
        " AND (? IS NULL OR goldset_version = ?)"
        " ORDER BY started_at DESC, audit_id DESC LIMIT 1",
        [collection, goldset_version, goldset_version],
    )
    if not rows:
        return {}
    measured = store.fetch(
        "SELECT name, value FROM audit_measurements WHERE audit_id = ?", [rows[0][0]]
    )
    return {str(name): float(value) for name, value in measured}
