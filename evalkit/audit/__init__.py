"""Index health audits: duplicates, staleness, model mismatch, ANN recall, coverage, orphans,
and span judgments that no longer quote their source.

``run_audit`` reads a Chroma collection once (ids, content hashes, stored vectors) and runs
every check in ``CHECKS`` over it::

    report = run_audit(collection, embedder=load_embedder(), source="corpus.jsonl",
                       goldset=goldset, config=AuditConfig(near_duplicate_threshold=0.97))
    report.findings          # Finding(kind, check, severity, message, count, doc_ids, ...)
    report.fails("critical") # the deployment gate

The pure kernels behind the checks (``near_duplicate_pairs``, ``cluster_pairs``,
``compare_hashes``, ``ann_recall``, ``judged_at_k``) work on arrays and can be used alone.
``docs/audit.md`` explains each check, its thresholds and the finding kinds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalkit.lazy import lazy_attributes

if TYPE_CHECKING:
    from evalkit.audit.ann import EXACT_SCORES, AnnRecall, ann_recall, exact_scores
    from evalkit.audit.context import AuditContext
    from evalkit.audit.coverage import judged_at_k, judgments_frame
    from evalkit.audit.duplicates import (
        NearDuplicatePairs,
        cluster_pairs,
        exact_duplicate_groups,
        near_duplicate_pairs,
        unit_rows,
    )
    from evalkit.audit.model import rowwise_cosine
    from evalkit.audit.runner import CHECKS, run_audit
    from evalkit.audit.snapshot import IndexSnapshot, read_snapshot
    from evalkit.audit.staleness import StalenessDiff, compare_hashes, source_hashes
    from evalkit.records.audit import CHECK_NAMES, AuditConfig

from evalkit.records.audit import FINDING_KINDS, AuditReport, CheckOutcome, Finding, Severity

__all__ = [
    "CHECKS",
    "CHECK_NAMES",
    "EXACT_SCORES",
    "FINDING_KINDS",
    "AnnRecall",
    "AuditConfig",
    "AuditContext",
    "AuditReport",
    "CheckOutcome",
    "Finding",
    "IndexSnapshot",
    "NearDuplicatePairs",
    "Severity",
    "StalenessDiff",
    "ann_recall",
    "cluster_pairs",
    "compare_hashes",
    "exact_duplicate_groups",
    "exact_scores",
    "judged_at_k",
    "judgments_frame",
    "near_duplicate_pairs",
    "read_snapshot",
    "rowwise_cosine",
    "run_audit",
    "source_hashes",
    "unit_rows",
]

# Importing the package loads none of its modules; each name loads its own on first use.
__getattr__ = lazy_attributes(
    __name__,
    {
        "AnnRecall": "evalkit.audit.ann",
        "AuditConfig": "evalkit.records.audit",
        "AuditContext": "evalkit.audit.context",
        "CHECKS": "evalkit.audit.runner",
        "CHECK_NAMES": "evalkit.records.audit",
        "EXACT_SCORES": "evalkit.audit.ann",
        "IndexSnapshot": "evalkit.audit.snapshot",
        "NearDuplicatePairs": "evalkit.audit.duplicates",
        "StalenessDiff": "evalkit.audit.staleness",
        "ann_recall": "evalkit.audit.ann",
        "cluster_pairs": "evalkit.audit.duplicates",
        "compare_hashes": "evalkit.audit.staleness",
        "exact_duplicate_groups": "evalkit.audit.duplicates",
        "exact_scores": "evalkit.audit.ann",
        "judged_at_k": "evalkit.audit.coverage",
        "judgments_frame": "evalkit.audit.coverage",
        "near_duplicate_pairs": "evalkit.audit.duplicates",
        "read_snapshot": "evalkit.audit.snapshot",
        "rowwise_cosine": "evalkit.audit.model",
        "run_audit": "evalkit.audit.runner",
        "source_hashes": "evalkit.audit.staleness",
        "unit_rows": "evalkit.audit.duplicates",
    },
)
