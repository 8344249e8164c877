"""The ``[audit]`` table: when an index health finding is critical.

``evalkit audit`` and the scheduler's ``audit`` job read it (docs/audit.md); a finding at
``critical`` fails ``evalkit audit`` under its default ``--fail-on critical``.
"""

from __future__ import annotations

from pydantic import Field

from evalkit.config.types import SettingsTable
from evalkit.records.audit import DEFAULT_ORPHANED_RELEVANT_CRITICAL_SHARE

__all__ = ["DEFAULT_ORPHANED_RELEVANT_CRITICAL_SHARE", "AuditSettings"]


class AuditSettings(SettingsTable, frozen=True):
    """Thresholds of the index health audit that are settings rather than command options."""

    orphaned_relevant_critical_share: float = Field(
        default=DEFAULT_ORPHANED_RELEVANT_CRITICAL_SHARE,
        ge=0.0,
        le=1.0,
        description="Share of a goldset's relevant (judged at or above relevance_threshold) "
        "documents that may be missing from the index before the orphaned_judgments finding "
        "is critical rather than a warning; 0 makes any missing relevant document critical.",
    )
