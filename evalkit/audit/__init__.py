"""Index health audits: duplicates, staleness, model mismatch, ANN recall, coverage, orphans,
and span judgments that no longer quote their source.

``run_audit`` reads a Chroma collection once and runs every check in ``CHECKS`` over it; the
pure kernels behind the checks work on arrays and can be used alone. ``docs/audit.md``
explains each check, its thresholds and the finding kinds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalkit.lazy import lazy_attributes

if TYPE_CHECKING:
    from evalkit.audit.ann import EXACT_SCORES as EXACT_SCORES
    from evalkit.audit.ann import AnnRecall as AnnRecall
    from evalkit.audit.ann import ann_recall as ann_recall
    from evalkit.audit.ann import exact_scores as exact_scores
    from evalkit.audit.context import AuditContext as AuditContext
    from evalkit.audit.coverage import judged_at_k as judged_at_k
    from evalkit.audit.coverage import judgments_frame as judgments_frame
    from evalkit.audit.duplicates import NearDuplicatePairs as NearDuplicatePairs
    from evalkit.audit.duplicates import cluster_pairs as cluster_pairs
    from evalkit.audit.duplicates import exact_duplicate_groups as exact_duplicate_groups
    from evalkit.audit.duplicates import near_duplicate_pairs as near_duplicate_pairs
    from evalkit.audit.duplicates import unit_rows as unit_rows
    from evalkit.audit.model import rowwise_cosine as rowwise_cosine
    from evalkit.audit.runner import CHECKS as CHECKS
    from evalkit.audit.runner import run_audit as run_audit
    from evalkit.audit.snapshot import IndexSnapshot as IndexSnapshot
    from evalkit.audit.snapshot import read_snapshot as read_snapshot
    from evalkit.audit.staleness import StalenessDiff as StalenessDiff
    from evalkit.audit.staleness import compare_hashes as compare_hashes
    from evalkit.audit.staleness import source_hashes as source_hashes
    from evalkit.records.audit import CHECK_NAMES as CHECK_NAMES
    from evalkit.records.audit import FINDING_KINDS as FINDING_KINDS
    from evalkit.records.audit import AuditConfig as AuditConfig
    from evalkit.records.audit import AuditReport as AuditReport
    from evalkit.records.audit import CheckOutcome as CheckOutcome
    from evalkit.records.audit import Finding as Finding
    from evalkit.records.audit import Severity as Severity
else:
    # Importing the package loads none of its modules; each name loads its own on first use.
    __getattr__ = lazy_attributes(__name__)
