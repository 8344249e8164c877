"""Rule kinds over stored drift checks: ``embedding_drift`` (the newest check of each watched
stream and subject) and ``model_mismatch`` (checks that found a model mismatch, and audit
findings of vectors made by another model).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from evalkit.alerts.model import Signal
from evalkit.alerts.rules.audit import MODEL_MISMATCH_FINDINGS, audit_signals
from evalkit.alerts.rules.base import (
    RuleContext,
    RuleKind,
    RuleParams,
    close_unwatched,
    iso,
)
from evalkit.records import AlertSeverity
from evalkit.store.alerts import has_tables
from evalkit.store.drift import list_drift_checks

__all__ = [
    "EMBEDDING_DRIFT",
    "MODEL_MISMATCH",
    "EmbeddingDriftParams",
    "ModelMismatchParams",
]


class EmbeddingDriftParams(RuleParams):
    """``kind = "embedding_drift"``."""

    streams: list[str] = Field(
        default_factory=lambda: ["queries", "documents"],
        min_length=1,
        description="Drift-check streams watched (queries, documents, ...).",
    )
    subject: str | None = Field(default=None, description="Only checks of this subject.")
    include_warnings: bool = Field(
        default=False, description="Also fire on checks whose finding is 'warning'."
    )
    lookback: int = Field(default=500, ge=1, description="Checks read per stream.")


def _latest_checks(
    ctx: RuleContext, streams: Sequence[str | None], subject: str | None, lookback: int
) -> list[Any]:
    latest: dict[tuple[str, str | None], Any] = {}
    for stream in streams:
        for check in list_drift_checks(ctx.store, stream=stream, subject=subject, limit=lookback):
            latest.setdefault((check.stream, check.subject), check)
    return list(latest.values())


def _check_evidence(check: Any) -> dict[str, Any]:
    return {
        "check_id": check.check_id,
        "stream": check.stream,
        "subject": check.subject,
        "finding": check.finding,
        "method": check.method,
        "statistic": check.statistic,
        "p_value": check.p_value,
        "threshold": check.threshold,
        "effect_size": check.effect_size,
        "n_reference": check.n_reference,
        "n_current": check.n_current,
        "reference": check.reference,
        "current": check.current,
        "checked_at": iso(check.created_at),
        "report_path": check.report_path,
        "details": dict(check.details),
    }


def _drift_watches(params: EmbeddingDriftParams, subject: str) -> bool:
    """Whether ``stream/subject`` is one of the streams (and the subject) the rule reads."""
    stream, _, checked = subject.partition("/")
    return stream in params.streams and params.subject in (None, checked)


def _embedding_drift(ctx: RuleContext, params: EmbeddingDriftParams) -> list[Signal]:
    firing = {"drift", "warning"} if params.include_warnings else {"drift"}
    signals = close_unwatched(
        ctx,
        lambda subject: _drift_watches(params, subject),
        "the rule's streams or subject changed",
    )
    for check in _latest_checks(ctx, params.streams, params.subject, params.lookback):
        if check.finding == "model_mismatch":
            continue
        where = f"{check.stream}/{check.subject or '-'}"
        statistic = "-" if check.statistic is None else f"{check.statistic:.4g}"
        p_value = "-" if check.p_value is None else f"{check.p_value:.3g}"
        effect = "-" if check.effect_size is None else f"{check.effect_size:.4f}"
        # A check of two arrays (`evalkit drift embeddings`) names no subject: no index.
        of = f" of {check.subject}" if check.subject else ""
        signals.append(
            Signal(
                subject=where,
                active=check.finding in firing,
                severity=AlertSeverity.warning if check.finding == "warning" else None,
                title=f"{check.stream} embeddings{of}: {check.finding}",
                summary=f"{check.method}: statistic {statistic}, p = {p_value}, effect "
                f"size {effect}, {check.n_reference} reference vs {check.n_current} current "
                f"({check.reference} -> {check.current})",
                evidence=_check_evidence(check),
                links=ctx.dashboard("drift", check=check.check_id),
            )
        )
    return signals


class ModelMismatchParams(RuleParams):
    """``kind = "model_mismatch"``."""

    streams: list[str] | None = Field(
        default=None, description="Drift-check streams read (default: all)."
    )
    audits: bool = Field(
        default=True, description="Also fire on audit findings of vectors from another model."
    )
    lookback: int = Field(default=500, ge=1, description="Checks read.")


def _mismatch_watches(params: ModelMismatchParams, subject: str) -> bool:
    """Whether ``stream/subject`` (or ``audit/collection``) is something the rule reads."""
    if subject.startswith("audit/"):
        return params.audits
    return params.streams is None or subject.partition("/")[0] in params.streams


def _model_mismatch(ctx: RuleContext, params: ModelMismatchParams) -> list[Signal]:
    signals = close_unwatched(
        ctx,
        lambda subject: _mismatch_watches(params, subject),
        "the rule's streams or audits changed",
    )
    streams: Sequence[str | None] = params.streams or [None]
    for check in _latest_checks(ctx, streams, None, params.lookback):
        signals.append(
            Signal(
                subject=f"{check.stream}/{check.subject or '-'}",
                active=check.finding == "model_mismatch",
                title=f"embedding model mismatch on {check.stream} of {check.subject or '-'}"
                if check.finding == "model_mismatch"
                else f"embedding models of {check.stream} of {check.subject or '-'} agree",
                summary=f"{check.method}: {check.reference} vs {check.current}",
                evidence=_check_evidence(check),
                links=ctx.dashboard("drift", check=check.check_id),
            )
        )
    if params.audits and has_tables(ctx.store, "audits", "audit_findings"):
        signals += audit_signals(
            ctx,
            kinds=MODEL_MISMATCH_FINDINGS,
            collection=None,
            min_severity="warning",
            subject_prefix="audit/",
            per_kind=False,
        )
    return signals


EMBEDDING_DRIFT = RuleKind(
    "embedding_drift",
    EmbeddingDriftParams,
    _embedding_drift,
    "the newest drift check of a stream found drift",
)


MODEL_MISMATCH = RuleKind(
    "model_mismatch",
    ModelMismatchParams,
    _model_mismatch,
    "query and index embeddings come from different models",
)
