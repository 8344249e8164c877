"""Probable causes of a regression, a drift or an alert, joined from the store's evidence.

``join`` joins and scores, ``subjects`` finds the runs a drift check or an alert is about,
``records`` holds what comes out. docs/cli.md, "Probable causes: `evalkit explain`".
"""

from evalkit.causes.join import explain_comparison, explain_runs, previous_run
from evalkit.causes.latency import INDEX_GROWTH, index_growth
from evalkit.causes.records import (
    CAUSE_KINDS,
    EVIDENCE_ROWS,
    Cause,
    CauseKind,
    CauseLink,
    Explanation,
)
from evalkit.causes.subjects import explain_alert, explain_drift_check

__all__ = [
    "CAUSE_KINDS",
    "EVIDENCE_ROWS",
    "INDEX_GROWTH",
    "Cause",
    "CauseKind",
    "CauseLink",
    "Explanation",
    "explain_alert",
    "explain_comparison",
    "explain_drift_check",
    "explain_runs",
    "index_growth",
    "previous_run",
]
