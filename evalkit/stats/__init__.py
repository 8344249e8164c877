"""Statistical comparison of two runs: the engine behind the CI gate.

``compare_runs(baseline, candidate)`` compares per-query measure values over the queries both
runs share, with a seeded bootstrap interval, a sign-flip permutation test, a Wilcoxon
signed-rank test and Holm correction across measures, and decides ``pass``,
``regression`` or ``inconclusive`` per measure and overall (see ``docs/gate.md``).
Queries whose retrieval failed are refused, or counted as 0 with ``failed_as_zero``.
``worst_queries`` lists the largest per-query drops; ``queries_needed`` and ``power_table``
size golden sets; ``to_junit_xml`` and ``to_markdown`` render a comparison for CI.
``evalkit.stats.compare`` scores stored runs and TREC run files for comparison and gives the
one ``ComparisonReport`` the gate, the alert rules, the precision-drift check and the
dashboard read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalkit.lazy import lazy_attributes

if TYPE_CHECKING:
    from evalkit.stats.compare import (
        UNCUT_DEPTH,
        ComparisonReport,
        ScoredRun,
        compare_scored,
        compare_stored_runs,
        document_depth,
        lost_relevant_documents,
        score_run,
        score_run_file,
        score_stored_run,
    )
    from evalkit.stats.decision import Decision, decide, overall_decision
    from evalkit.stats.paired import (
        CompareOptions,
        Comparison,
        FailedQueriesError,
        MetricComparison,
        QueryDrop,
        compare_runs,
        holm_adjust,
        worst_queries,
    )
    from evalkit.stats.power import TYPICAL_SD_DIFFS, PowerRow, power_table, queries_needed
    from evalkit.stats.render import (
        TABLE_HEADERS,
        power_table_markdown,
        table_rows,
        to_junit_xml,
        to_markdown,
    )


__all__ = [
    "TABLE_HEADERS",
    "TYPICAL_SD_DIFFS",
    "UNCUT_DEPTH",
    "CompareOptions",
    "Comparison",
    "ComparisonReport",
    "Decision",
    "FailedQueriesError",
    "MetricComparison",
    "PowerRow",
    "QueryDrop",
    "ScoredRun",
    "compare_runs",
    "compare_scored",
    "compare_stored_runs",
    "decide",
    "document_depth",
    "holm_adjust",
    "lost_relevant_documents",
    "overall_decision",
    "power_table",
    "power_table_markdown",
    "queries_needed",
    "score_run",
    "score_run_file",
    "score_stored_run",
    "table_rows",
    "to_junit_xml",
    "to_markdown",
    "worst_queries",
]

# Importing the package loads none of its modules; each name loads its own on first use.
__getattr__ = lazy_attributes(
    __name__,
    {
        "CompareOptions": "evalkit.stats.paired",
        "Comparison": "evalkit.stats.paired",
        "ComparisonReport": "evalkit.stats.compare",
        "Decision": "evalkit.stats.decision",
        "FailedQueriesError": "evalkit.stats.paired",
        "MetricComparison": "evalkit.stats.paired",
        "PowerRow": "evalkit.stats.power",
        "QueryDrop": "evalkit.stats.paired",
        "ScoredRun": "evalkit.stats.compare",
        "TABLE_HEADERS": "evalkit.stats.render",
        "TYPICAL_SD_DIFFS": "evalkit.stats.power",
        "UNCUT_DEPTH": "evalkit.stats.compare",
        "compare_runs": "evalkit.stats.paired",
        "compare_scored": "evalkit.stats.compare",
        "compare_stored_runs": "evalkit.stats.compare",
        "decide": "evalkit.stats.decision",
        "document_depth": "evalkit.stats.compare",
        "holm_adjust": "evalkit.stats.paired",
        "lost_relevant_documents": "evalkit.stats.compare",
        "overall_decision": "evalkit.stats.decision",
        "power_table": "evalkit.stats.power",
        "power_table_markdown": "evalkit.stats.render",
        "queries_needed": "evalkit.stats.power",
        "score_run": "evalkit.stats.compare",
        "score_run_file": "evalkit.stats.compare",
        "score_stored_run": "evalkit.stats.compare",
        "table_rows": "evalkit.stats.render",
        "to_junit_xml": "evalkit.stats.render",
        "to_markdown": "evalkit.stats.render",
        "worst_queries": "evalkit.stats.paired",
    },
)
