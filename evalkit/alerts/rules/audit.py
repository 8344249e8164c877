"""Rule kind ``audit_findings``: findings of the newest audit of each collection (duplicates,
staleness, ANN recall, coverage...), with the finding's own severity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import Field

from evalkit.alerts.model import Signal
from evalkit.alerts.rules.base import RuleContext, RuleKind, RuleParams, close_unwatched, iso
from evalkit.records import AlertSeverity
from evalkit.store.alerts import StoredAlertState, has_tables
from evalkit.store.audit import (
    SEVERITY_RANKS,
    StoredAudit,
    StoredFinding,
    audit_findings,
    list_audits,
)

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
    """One signal per collection (and per finding kind with ``per_kind``) of the audits'
    current findings, and a cleared signal for each active subject they no longer report.

    Each check of a collection is read from the newest audit that ran it: an audit of a few
    checks (``evalkit audit --check staleness``) neither clears nor hides what the others
    found, and only a newer audit that ran a finding's check clears it.
    """
    ran_in: dict[tuple[str, str], StoredAudit] = {}
    findings: list[StoredFinding] = []
    for audit in list_audits(ctx.store, collection=collection, limit=1000):
        fresh = {name for name in audit.checks_run if (audit.collection, name) not in ran_in}
        if not fresh:
            continue
        ran_in.update({(audit.collection, name): audit for name in fresh})
        findings += [
            finding
            for finding in audit_findings(ctx.store, audit.audit_id)
            if finding.check in fresh
            and SEVERITY_RANKS[finding.severity] >= SEVERITY_RANKS[min_severity]
            and (kinds is None or finding.kind in kinds)
            and finding.kind not in exclude
        ]
    grouped: dict[str, list[StoredFinding]] = {}
    for finding in findings:
        key = f"{subject_prefix}{finding.collection}"
        if per_kind:
            key = f"{key}/{finding.kind}"
        grouped.setdefault(key, []).append(finding)
    signals = []
    for subject, found in grouped.items():
        worst = max(found, key=lambda finding: finding.severity == "critical")
        newest = max(
            (ran_in[(finding.collection, finding.check)] for finding in found),
            key=lambda audit: (audit.started_at, audit.audit_id),
        )
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
                    "audited_at": iso(newest.finished_at),
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
        clearing = _clearing_audit(state, audited, ran_in)
        if clearing is not None:
            signals.append(
                Signal(
                    subject=subject,
                    active=False,
                    title=f"index audit of {audited}: finding cleared",
                    summary=f"the newest audit of {audited} that ran its check "
                    f"({clearing.audit_id}) no longer reports it",
                    evidence={"audit_id": clearing.audit_id, "collection": audited},
                )
            )
    return signals


def _clearing_audit(
    state: StoredAlertState, collection: str, ran_in: Mapping[tuple[str, str], StoredAudit]
) -> StoredAudit | None:
    """The newest audit that ran the checks behind an active subject's findings (as its
    evidence names them); None while one of them has not run since."""
    reported = state.evidence.get("findings")
    checks = {str(finding.get("check")) for finding in reported or () if finding.get("check")}
    if not checks:
        # A state stored without its findings: any newer audit of the collection decides.
        checks = {check for audited, check in ran_in if audited == collection}
    audits = [ran_in.get((collection, check)) for check in checks]
    if not audits or any(audit is None for audit in audits):
        return None
    return max(
        (audit for audit in audits if audit is not None),
        key=lambda audit: (audit.started_at, audit.audit_id),
    )


def _audit_findings(ctx: RuleContext, params: AuditFindingsParams) -> list[Signal]:
    # A kind dropped from ``kinds`` is cleared by ``audit_signals`` (the newest audit that ran
    # its check no longer reports it as watched); a collection left out is never read again.
    closed = close_unwatched(
        ctx,
        lambda subject: params.collection in (None, subject.rpartition("/")[0]),
        "the rule's collection changed",
    )
    if not has_tables(ctx.store, "audits", "audit_findings"):
        return closed
    return closed + audit_signals(
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
