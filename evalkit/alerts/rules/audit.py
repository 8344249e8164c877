"""Rule kind ``audit_findings``: findings of the newest audit of each collection (duplicates,
staleness, ANN recall, coverage...), with the finding's own severity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from evalkit.alerts.model import Signal
from evalkit.alerts.rules.base import RuleContext, RuleKind, RuleParams, iso
from evalkit.records import AlertSeverity
from evalkit.store.alerts import has_tables
from evalkit.store.audit import list_audit_findings, list_audits

__all__ = [
    "AUDIT_FINDINGS",
    "MODEL_MISMATCH_FINDINGS",
    "AuditFindingsParams",
    "audit_signals",
]

MODEL_MISMATCH_FINDINGS = (
    "model_fingerprint_mismatch",
    "vectors_from_another_model",
)
"""Audit finding kinds that mean the index was built with another embedding model."""


class AuditFindingsParams(RuleParams):
    """``kind = "audit_findings"``."""

    kinds: list[str] | None = Field(
        default=None,
        description="Finding kinds that fire (default: all but the model-mismatch kinds, "
        "which the model_mismatch rule covers).",
    )
    collection: str | None = Field(default=None, description="Only this collection.")
    min_severity: Literal["warning", "critical"] = Field(
        default="warning", description="Least severe finding that fires."
    )


def audit_signals(
    ctx: RuleContext,
    *,
    kinds: Sequence[str] | None,
    collection: str | None,
    min_severity: str,
    subject_prefix: str = "",
    per_kind: bool = True,
    exclude: Sequence[str] = (),
) -> list[Signal]:
    """One signal per collection (and per finding kind with ``per_kind``) of the newest
    audits' findings, and a cleared signal for each active subject they no longer report."""

    latest: dict[str, Any] = {}
    for audit in list_audits(ctx.store, collection=collection, limit=1000):
        latest.setdefault(audit.collection, audit)
    findings = [
        finding
        for finding in list_audit_findings(
            ctx.store, collection=collection, min_severity=min_severity, latest_only=True
        )
        if (kinds is None or finding.kind in kinds) and finding.kind not in exclude
    ]
    grouped: dict[str, list[Any]] = {}
    for finding in findings:
        key = f"{subject_prefix}{finding.collection}"
        if per_kind:
            key = f"{key}/{finding.kind}"
        grouped.setdefault(key, []).append(finding)
    signals = []
    for subject, found in grouped.items():
        worst = max(found, key=lambda finding: finding.severity == "critical")
        newest = latest.get(worst.collection)
        kinds_found = sorted({finding.kind for finding in found})
        signals.append(
            Signal(
                subject=subject,
                active=True,
                severity=AlertSeverity(worst.severity),
                title=f"index audit of {worst.collection}: {', '.join(kinds_found)}",
                summary="; ".join(finding.message for finding in found)[:1000],
                evidence={
                    "audit_id": worst.audit_id,
                    "collection": worst.collection,
                    "audited_at": iso(newest.finished_at if newest else worst.created_at),
                    "findings": [
                        {
                            "kind": finding.kind,
                            "check": finding.check,
                            "severity": finding.severity,
                            "message": finding.message,
                            "count": finding.count,
                            "value": finding.value,
                            "threshold": finding.threshold,
                            "doc_ids": list(finding.doc_ids[:10]),
                            "clusters": [list(c[:10]) for c in finding.clusters[:5]],
                            "query_ids": list(finding.query_ids[:10]),
                        }
                        for finding in found
                    ],
                    "value": worst.value,
                    "threshold": worst.threshold,
                },
                links={
                    "audit": f"evalkit audit --collection {worst.collection}",
                    **ctx.dashboard("index_health", audit=worst.audit_id),
                },
            )
        )
    for subject, state in ctx.previous.items():
        if not state.active or subject in grouped or not subject.startswith(subject_prefix):
            continue
        audited = subject[len(subject_prefix) :].split("/")[0]
        if audited in latest:
            signals.append(
                Signal(
                    subject=subject,
                    active=False,
                    title=f"index audit of {audited}: finding cleared",
                    summary=f"the newest audit of {audited} "
                    f"({latest[audited].audit_id}) no longer reports it",
                    evidence={"audit_id": latest[audited].audit_id, "collection": audited},
                )
            )
    return signals


def _audit_findings(ctx: RuleContext, params: AuditFindingsParams) -> list[Signal]:
    if not has_tables(ctx.store, "audits", "audit_findings"):
        return []
    return audit_signals(
        ctx,
        kinds=params.kinds,
        collection=params.collection,
        min_severity=params.min_severity,
        exclude=() if params.kinds else MODEL_MISMATCH_FINDINGS,
    )


AUDIT_FINDINGS = RuleKind(
    "audit_findings",
    AuditFindingsParams,
    _audit_findings,
    "the newest index audit has findings",
)
