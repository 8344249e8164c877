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
dashboard read, each setting its paired test with a ``PairedTestSettings``.
``compare_latency`` compares two runs' latency quantile (a paired bootstrap of its relative
increase; ``evalkit.stats.latency_check`` reads stored runs' latencies for it).
``evalkit.stats.leaderboard.leaderboard`` ranks more than two runs with
corrected pairwise tests and letter groups; ``leaderboard_rows``, ``leaderboard_markdown`` and
``leaderboard_latex`` render it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalkit.lazy import lazy_attributes

if TYPE_CHECKING:
    from evalkit.records.requests import PairedTestSettings
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
    from evalkit.stats.latency import LatencyComparison, compare_latency
    from evalkit.stats.leaderboard import (
        LatencySummary,
        Leaderboard,
        LeaderboardOptions,
        MeasureLeaderboard,
        PairComparison,
        RunStanding,
        compact_letters,
    )
    from evalkit.stats.leaderboard_render import (
        PAIR_HEADERS,
        leaderboard_headers,
        leaderboard_latex,
        leaderboard_markdown,
        leaderboard_rows,
        pair_rows,
    )
    from evalkit.stats.paired import (
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


# The leaderboard function is ``evalkit.stats.leaderboard.leaderboard``: at package level the
# name ``leaderboard`` is its module.
__all__ = [
    "PAIR_HEADERS",
    "TABLE_HEADERS",
    "TYPICAL_SD_DIFFS",
    "UNCUT_DEPTH",
    "Comparison",
    "ComparisonReport",
    "Decision",
    "FailedQueriesError",
    "LatencyComparison",
    "LatencySummary",
    "Leaderboard",
    "LeaderboardOptions",
    "MeasureLeaderboard",
    "MetricComparison",
    "PairComparison",
    "PairedTestSettings",
    "PowerRow",
    "QueryDrop",
    "RunStanding",
    "ScoredRun",
    "compact_letters",
    "compare_latency",
    "compare_runs",
    "compare_scored",
    "compare_stored_runs",
    "decide",
    "document_depth",
    "holm_adjust",
    "leaderboard_headers",
    "leaderboard_latex",
    "leaderboard_markdown",
    "leaderboard_rows",
    "lost_relevant_documents",
    "overall_decision",
    "pair_rows",
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
        "Comparison": "evalkit.stats.paired",
        "ComparisonReport": "evalkit.stats.compare",
        "Decision": "evalkit.stats.decision",
        "FailedQueriesError": "evalkit.stats.paired",
        "LatencyComparison": "evalkit.stats.latency",
        "LatencySummary": "evalkit.stats.leaderboard",
        "Leaderboard": "evalkit.stats.leaderboard",
        "LeaderboardOptions": "evalkit.stats.leaderboard",
        "MeasureLeaderboard": "evalkit.stats.leaderboard",
        "MetricComparison": "evalkit.stats.paired",
        "PAIR_HEADERS": "evalkit.stats.leaderboard_render",
        "PairComparison": "evalkit.stats.leaderboard",
        "PairedTestSettings": "evalkit.records.requests",
        "PowerRow": "evalkit.stats.power",
        "QueryDrop": "evalkit.stats.paired",
        "RunStanding": "evalkit.stats.leaderboard",
        "ScoredRun": "evalkit.stats.compare",
        "TABLE_HEADERS": "evalkit.stats.render",
        "TYPICAL_SD_DIFFS": "evalkit.stats.power",
        "UNCUT_DEPTH": "evalkit.stats.compare",
        "compact_letters": "evalkit.stats.leaderboard",
        "compare_latency": "evalkit.stats.latency",
        "compare_runs": "evalkit.stats.paired",
        "compare_scored": "evalkit.stats.compare",
        "compare_stored_runs": "evalkit.stats.compare",
        "decide": "evalkit.stats.decision",
        "document_depth": "evalkit.stats.compare",
        "holm_adjust": "evalkit.stats.paired",
        "leaderboard_headers": "evalkit.stats.leaderboard_render",
        "leaderboard_latex": "evalkit.stats.leaderboard_render",
        "leaderboard_markdown": "evalkit.stats.leaderboard_render",
        "leaderboard_rows": "evalkit.stats.leaderboard_render",
        "lost_relevant_documents": "evalkit.stats.compare",
        "overall_decision": "evalkit.stats.decision",
        "pair_rows": "evalkit.stats.leaderboard_render",
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
