"""What an audit reports: findings with a severity, per-check measurements, the whole report.

A ``Finding`` is one problem of one kind (``exact_duplicates``, ``changed_at_source``...)
with every document or query it concerns. A ``CheckOutcome`` is what one check measured,
whether or not it found anything (or why it did not run). An ``AuditReport`` holds both,
with what was audited and when, and decides whether a deployment gate fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from evalkit.errors import ConfigError

__all__ = [
    "FINDING_KINDS",
    "AuditReport",
    "CheckOutcome",
    "Finding",
    "FindingKind",
    "Severity",
]


class Severity(StrEnum):
    """How bad a finding is, in increasing order: ``info`` < ``warning`` < ``critical``."""

    info = "info"
    warning = "warning"
    critical = "critical"

    @property
    def rank(self) -> int:
        """0 for info, 1 for warning, 2 for critical."""
        return _RANKS[self]

    def at_least(self, other: Severity) -> bool:
        """True when this severity is ``other`` or worse."""
        return self.rank >= other.rank

    @classmethod
    def parse(cls, value: str | Severity) -> Severity:
        """The severity named ``value``; raises ``ConfigError`` listing the valid names."""
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            names = ", ".join(member.value for member in cls)
            raise ConfigError(f"unknown severity {value!r}; use one of: {names}") from None


_RANKS = {Severity.info: 0, Severity.warning: 1, Severity.critical: 2}


@dataclass(frozen=True, slots=True)
class FindingKind:
    """A kind of finding: the check that reports it, its default severity, what it means."""

    name: str
    check: str
    severity: Severity
    description: str


FINDING_KINDS: Mapping[str, FindingKind] = {
    kind.name: kind
    for kind in (
        FindingKind(
            "exact_duplicates",
            "duplicates",
            Severity.warning,
            "documents with the same content hash indexed under different ids",
        ),
        FindingKind(
            "near_duplicates",
            "duplicates",
            Severity.warning,
            "documents whose stored vectors are closer than the near-duplicate threshold",
        ),
        FindingKind(
            "changed_at_source",
            "staleness",
            Severity.warning,
            "documents whose source content changed since they were indexed",
        ),
        FindingKind(
            "deleted_at_source",
            "staleness",
            Severity.warning,
            "documents deleted from the source but still indexed",
        ),
        FindingKind(
            "missing_from_index",
            "staleness",
            Severity.warning,
            "documents in the source that were never indexed",
        ),
        FindingKind(
            "model_fingerprint_mismatch",
            "model",
            Severity.critical,
            "the collection records another embedding model than the query model",
        ),
        FindingKind(
            "model_fingerprint_missing",
            "model",
            Severity.info,
            "the collection records no embedding model fingerprint",
        ),
        FindingKind(
            "vectors_from_another_model",
            "model",
            Severity.critical,
            "stored vectors that the query model does not reproduce from the stored text",
        ),
        FindingKind(
            "low_ann_recall",
            "ann_recall",
            Severity.warning,
            "the ANN index misses documents that exact search over its own vectors finds",
        ),
        FindingKind(
            "low_judgment_coverage",
            "coverage",
            Severity.warning,
            "few of the documents the index returns for golden queries are judged",
        ),
        FindingKind(
            "orphaned_judgments",
            "orphans",
            Severity.warning,
            "judged documents that are not in the index (critical when more than "
            "orphaned_relevant_critical_share of the relevant ones)",
        ),
        FindingKind(
            "span_text_changed",
            "spans",
            Severity.warning,
            "span-anchored judgments whose quoted text no longer stands at its offsets in "
            "the source",
        ),
        FindingKind(
            "span_source_missing",
            "spans",
            Severity.warning,
            "span-anchored judgments whose source the corpus no longer holds",
        ),
    )
}
"""Every kind of finding an audit reports, by name (the names the store and alerts use)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found by an audit.

    ``count`` is how many documents (or queries) are affected; ``doc_ids`` lists them,
    ``clusters`` groups them when they come in groups (duplicates), ``query_ids`` names the
    queries concerned. ``value`` is the measured figure compared with ``threshold`` when
    the finding comes from a threshold (recall, coverage, cosine).
    """

    kind: str
    check: str
    severity: Severity
    message: str
    count: int
    doc_ids: tuple[str, ...] = ()
    clusters: tuple[tuple[str, ...], ...] = ()
    query_ids: tuple[str, ...] = ()
    value: float | None = None
    threshold: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "check": self.check,
            "severity": self.severity.value,
            "message": self.message,
            "count": self.count,
            "doc_ids": list(self.doc_ids),
            "clusters": [list(cluster) for cluster in self.clusters],
            "query_ids": list(self.query_ids),
            "value": self.value,
            "threshold": self.threshold,
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """What one check measured and found, or why it did not run (``ran`` False, ``note``)."""

    name: str
    ran: bool
    measurements: Mapping[str, float] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    note: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (findings are listed once, in the report)."""
        return {
            "name": self.name,
            "ran": self.ran,
            "measurements": dict(self.measurements),
            "n_findings": len(self.findings),
            "note": self.note,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The result of one audit of one collection: what was audited, measured and found."""

    collection: str
    location: str
    started_at: datetime
    finished_at: datetime
    n_documents: int
    checks: tuple[CheckOutcome, ...]
    config: Mapping[str, Any]
    seed: int
    model_name: str | None = None
    model_fingerprint: str | None = None
    stored_model_fingerprint: str | None = None
    index_fingerprint: str | None = None
    goldset_name: str | None = None
    goldset_version: str | None = None
    source: str | None = None

    @property
    def findings(self) -> tuple[Finding, ...]:
        """Every finding, check by check, in the order the checks ran."""
        return tuple(finding for check in self.checks for finding in check.findings)

    @property
    def measurements(self) -> dict[str, float]:
        """Every measurement of every check that ran, by its (unique) name."""
        return {name: value for check in self.checks for name, value in check.measurements.items()}

    @property
    def max_severity(self) -> Severity | None:
        """The worst severity found, or None when nothing was found."""
        severities = [finding.severity for finding in self.findings]
        return max(severities, key=lambda severity: severity.rank) if severities else None

    def fails(self, at: Severity | str) -> bool:
        """True when a finding of severity ``at`` or worse exists (a deployment gate)."""
        threshold = Severity.parse(at)
        return any(finding.severity.at_least(threshold) for finding in self.findings)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        worst = self.max_severity
        return {
            "collection": self.collection,
            "location": self.location,
            "started_at": self.started_at.isoformat() + "Z",
            "finished_at": self.finished_at.isoformat() + "Z",
            "n_documents": self.n_documents,
            "model": {
                "name": self.model_name,
                "fingerprint": self.model_fingerprint,
                "stored_fingerprint": self.stored_model_fingerprint,
            },
            "index_fingerprint": self.index_fingerprint,
            "goldset": {"name": self.goldset_name, "version": self.goldset_version},
            "source": self.source,
            "seed": self.seed,
            "config": dict(self.config),
            "max_severity": worst.value if worst is not None else None,
            "n_findings": len(self.findings),
            "checks": [check.to_dict() for check in self.checks],
            "findings": [finding.to_dict() for finding in self.findings],
        }
