"""Statistical comparison of runs: the engine behind the CI gate, the alert rules, the
precision-drift check and the dashboard.

Methods: docs/gate.md. ``stats`` never touches the file system: run references are resolved
in ``evalkit.pipeline.compared_runs``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalkit.lazy import lazy_attributes

if TYPE_CHECKING:
    from evalkit.records.requests import PairedTestSettings as PairedTestSettings
    from evalkit.stats.compare import UNCUT_DEPTH as UNCUT_DEPTH
    from evalkit.stats.compare import ComparisonReport as ComparisonReport
    from evalkit.stats.compare import ScoredRun as ScoredRun
    from evalkit.stats.compare import compare_scored as compare_scored
    from evalkit.stats.compare import compare_stored_runs as compare_stored_runs
    from evalkit.stats.compare import document_depth as document_depth
    from evalkit.stats.compare import lost_relevant_documents as lost_relevant_documents
    from evalkit.stats.compare import score_run as score_run
    from evalkit.stats.compare import score_run_file as score_run_file
    from evalkit.stats.compare import score_stored_run as score_stored_run
    from evalkit.stats.decision import Decision as Decision
    from evalkit.stats.decision import decide as decide
    from evalkit.stats.decision import overall_decision as overall_decision
    from evalkit.stats.latency import LatencyComparison as LatencyComparison
    from evalkit.stats.latency import compare_latency as compare_latency
    from evalkit.stats.leaderboard import LatencySummary as LatencySummary
    from evalkit.stats.leaderboard import Leaderboard as Leaderboard
    from evalkit.stats.leaderboard import LeaderboardOptions as LeaderboardOptions
    from evalkit.stats.leaderboard import MeasureLeaderboard as MeasureLeaderboard
    from evalkit.stats.leaderboard import PairComparison as PairComparison
    from evalkit.stats.leaderboard import RunStanding as RunStanding
    from evalkit.stats.leaderboard import compact_letters as compact_letters
    from evalkit.stats.leaderboard_render import PAIR_HEADERS as PAIR_HEADERS
    from evalkit.stats.leaderboard_render import leaderboard_headers as leaderboard_headers
    from evalkit.stats.leaderboard_render import leaderboard_latex as leaderboard_latex
    from evalkit.stats.leaderboard_render import leaderboard_markdown as leaderboard_markdown
    from evalkit.stats.leaderboard_render import leaderboard_rows as leaderboard_rows
    from evalkit.stats.leaderboard_render import pair_rows as pair_rows
    from evalkit.stats.paired import Comparison as Comparison
    from evalkit.stats.paired import FailedQueriesError as FailedQueriesError
    from evalkit.stats.paired import MetricComparison as MetricComparison
    from evalkit.stats.paired import QueryDrop as QueryDrop
    from evalkit.stats.paired import compare_runs as compare_runs
    from evalkit.stats.paired import holm_adjust as holm_adjust
    from evalkit.stats.paired import worst_queries as worst_queries
    from evalkit.stats.power import TYPICAL_SD_DIFFS as TYPICAL_SD_DIFFS
    from evalkit.stats.power import PowerRow as PowerRow
    from evalkit.stats.power import power_table as power_table
    from evalkit.stats.power import queries_needed as queries_needed
    from evalkit.stats.render import TABLE_HEADERS as TABLE_HEADERS
    from evalkit.stats.render import power_table_markdown as power_table_markdown
    from evalkit.stats.render import table_rows as table_rows
    from evalkit.stats.render import to_junit_xml as to_junit_xml
    from evalkit.stats.render import to_markdown as to_markdown
else:
    # Importing the package loads none of its modules; each name loads its own on first use.
    # The leaderboard function is ``evalkit.stats.leaderboard.leaderboard``: at package level the
    # name ``leaderboard`` is its module.
    __getattr__ = lazy_attributes(__name__)
