"""What an audit is asked to check (``AuditConfig``) and what it reports: findings
(``Finding``) with a severity, each check's ``CheckOutcome`` and the whole ``AuditReport``,
which decides whether a deployment gate fails."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from evalkit.errors import ConfigError
from evalkit.records.jsonready import json_ready

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "AUDITED_KINDS",
    "AUDIT_DEFAULTS",
    "CHECK_NAMES",
    "DEFAULT_ORPHANED_RELEVANT_CRITICAL_SHARE",
    "FINDING_KINDS",
    "AuditConfig",
    "AuditReport",
    "CheckOutcome",
    "Finding",
    "FindingKind",
    "Reembedding",
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
            "changed_in_index",
            "staleness",
            Severity.warning,
            "documents whose stored text differs from their source although the source has "
            "not changed since they were indexed (the index was written to afterwards)",
        ),
        FindingKind(
            "not_in_source",
            "staleness",
            Severity.warning,
            "indexed documents the source does not hold (deleted from it, or never in it)",
        ),
        FindingKind(
            "duplicates_of_source",
            "staleness",
            Severity.warning,
            "indexed documents not in the source that store a source document's text under "
            "another id (ingested again without deduplication)",
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
            "content_replaced",
            "model",
            Severity.warning,
            "stored vectors that the query model does not reproduce from a stored text that "
            "is not the document's (it differs from the source, or from what was indexed): "
            "the content was replaced, not the model",
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
    """One problem found by an audit: ``count`` documents (or queries) affected, listed in
    ``doc_ids`` (grouped in ``clusters`` when they come in groups) and ``query_ids``; ``value``
    is the figure compared with ``threshold`` for a threshold finding."""

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
        return {**json_ready(self), "severity": self.severity.value}


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


@dataclass(frozen=True, slots=True)
class Reembedding:
    """Stored documents re-embedded from their stored text with the query model. ``cosines[i]``
    compares ``doc_ids[i]``'s stored vector with that embedding; ``content_changed[i]`` says
    its text is not the document's own. Below ``min_cosine`` a vector is ``other_model`` when
    its text is the document's, else ``replaced``."""

    doc_ids: tuple[str, ...]
    cosines: npt.NDArray[np.float64]
    content_changed: npt.NDArray[np.bool_]
    min_cosine: float

    def __len__(self) -> int:
        return len(self.doc_ids)

    @property
    def other_model(self) -> npt.NDArray[np.bool_]:
        """Documents whose own text does not reproduce their stored vector."""
        result: npt.NDArray[np.bool_] = (self.cosines < self.min_cosine) & ~self.content_changed
        return result

    @property
    def replaced(self) -> npt.NDArray[np.bool_]:
        """Documents whose stored vector and text are both not the document's own."""
        result: npt.NDArray[np.bool_] = (self.cosines < self.min_cosine) & self.content_changed
        return result

    def ids(self, rows: npt.NDArray[np.bool_]) -> tuple[str, ...]:
        """The ids of the documents ``rows`` selects."""
        return tuple(doc_id for doc_id, kept in zip(self.doc_ids, rows, strict=True) if kept)

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts: sampled, made by another model, replaced, lowest cosine."""
        return {
            "sampled": len(self),
            "other_model": int(self.other_model.sum()),
            "content_replaced": int(self.replaced.sum()),
            "lowest_cosine": round(float(self.cosines.min()), 6) if len(self) else None,
            "min_cosine": self.min_cosine,
        }


DEFAULT_ORPHANED_RELEVANT_CRITICAL_SHARE: Final = 0.01
"""Above 1 % of a goldset's relevant documents missing, its recall figures no longer
describe the retriever: every query that judged one is capped below 1, whatever is tried."""

AUDITED_KINDS: tuple[str, ...] = ("chroma", "qdrant", "pgvector")
"""The retrievers whose index evalkit can read back, so audit."""

CHECK_NAMES: tuple[str, ...] = (
    "duplicates",
    "staleness",
    "model",
    "ann_recall",
    "coverage",
    "orphans",
    "spans",
)
"""The audit's checks, in the order they run."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditConfig:
    """What an audit checks and the thresholds that turn measurements into findings
    (docs/audit.md): ANN recall and judged@k at depth ``k`` on ``ann_max_queries`` sampled
    queries; ``model_sample_size`` documents re-embedded (None: all); ``max_judged_drop`` a
    relative drop from the previous audit's judged@k; ``severities`` replace a finding kind's
    default severity."""

    checks: tuple[str, ...] = CHECK_NAMES
    near_duplicate_threshold: float = 0.95
    block_size: int = 2048
    max_near_duplicate_pairs: int = 5_000_000
    model_sample_size: int | None = 256
    model_min_cosine: float = 0.99
    k: int = 10
    ann_max_queries: int = 200
    ann_min_recall: float = 0.95
    ann_critical_recall: float = 0.80
    min_judged_at_k: float = 0.05
    max_judged_drop: float = 0.5
    orphaned_relevant_critical_share: float = DEFAULT_ORPHANED_RELEVANT_CRITICAL_SHARE
    relevance_threshold: int = 1
    seed: int = 0
    page_size: int = 1000
    max_listed: int = 50
    severities: Mapping[str, Severity] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [name for name in self.checks if name not in CHECK_NAMES]
        if unknown:
            raise ConfigError(
                f"unknown audit checks {unknown}; choose from: {', '.join(CHECK_NAMES)}"
            )
        for name in ("near_duplicate_threshold", "model_min_cosine"):
            _require(name, getattr(self, name), low=-1.0, high=1.0, low_open=True)
        for name in (
            "ann_min_recall",
            "ann_critical_recall",
            "min_judged_at_k",
            "max_judged_drop",
            "orphaned_relevant_critical_share",
        ):
            _require(name, getattr(self, name), low=0.0, high=1.0)
        for name in ("block_size", "max_near_duplicate_pairs", "k", "ann_max_queries"):
            _require(name, getattr(self, name), low=1, high=math.inf)
        for name in ("page_size", "max_listed"):
            _require(name, getattr(self, name), low=1, high=math.inf)
        if self.model_sample_size is not None:
            _require("model_sample_size", self.model_sample_size, low=1, high=math.inf)
        unknown_kinds = [kind for kind in self.severities if kind not in FINDING_KINDS]
        if unknown_kinds:
            raise ConfigError(
                f"severities given for unknown finding kinds {unknown_kinds}; kinds are: "
                + ", ".join(FINDING_KINDS)
            )

    def severity(self, kind: str) -> Severity:
        """The severity of findings of ``kind``: the configured one, else the default."""
        configured = self.severities.get(kind)
        return Severity.parse(configured) if configured else FINDING_KINDS[kind].severity

    def finding(self, kind: str, message: str, count: int, **fields: Any) -> Finding:
        """A finding of ``kind`` with its check and configured severity filled in."""
        severity = fields.pop("severity", None) or self.severity(kind)
        return Finding(
            kind=kind,
            check=FINDING_KINDS[kind].check,
            severity=severity,
            message=message,
            count=count,
            **fields,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (recorded with every audit)."""
        data = asdict(self)
        data["checks"] = list(self.checks)
        data["severities"] = {kind: str(value) for kind, value in self.severities.items()}
        return data


def _require(name: str, value: float, *, low: float, high: float, low_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"audit setting {name} must be a number, got {value!r}")
    too_low = value <= low if low_open else value < low
    if too_low or value > high:
        bound = f"({low}" if low_open else f"[{low}"
        raise ConfigError(f"audit setting {name} must be in {bound}, {high}], got {value}")


AUDIT_DEFAULTS: Final = AuditConfig()
"""``evalkit audit`` and the ``audit`` job: their options' defaults are read from here."""
