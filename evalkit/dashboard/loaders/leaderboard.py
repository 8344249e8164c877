"""The Leaderboard page's data: stored runs ranked as ``evalkit compare RUN RUN RUN`` ranks
them (``evalkit.pipeline.leaderboard_of_runs``, the CLI's numbers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from evalkit.dashboard.loaders.shared import RESAMPLES, SEED
from evalkit.pipeline import RunLeaderboard, describe_run, leaderboard_of_runs
from evalkit.records.requests import LeaderboardRequest
from evalkit.stats.leaderboard import LatencySummary
from evalkit.store import Store
from evalkit.store.dashboard.leaderboard import run_tags_frame

__all__ = ["LeaderboardData", "leaderboard", "run_tags"]


@dataclass(frozen=True, slots=True)
class LeaderboardData:
    """Runs ranked: ``standings`` one row per run and measure (rank, run, what, measure,
    mean, ci_low, ci_high, letters, latency_p50_ms, latency_p95_ms), best first on the
    first measure; ``pairs`` one row per pair and measure, each seen from its better run
    (measure, better, worse, delta, ci_low, ci_high, effect_size, p_value, p_adjusted,
    significant); ``markdown`` the report ``--format markdown`` prints."""

    ranked: RunLeaderboard
    standings: pd.DataFrame
    pairs: pd.DataFrame
    markdown: str


def _latency(summary: LatencySummary | None) -> dict[str, float | None]:
    if summary is None:
        return {"latency_p50_ms": None, "latency_p95_ms": None}
    return {"latency_p50_ms": summary.p50_ms, "latency_p95_ms": summary.p95_ms}


def run_tags(store: Store, *, goldset: str | None = None) -> pd.DataFrame:
    """The tags of the runs of ``goldset`` (run_id, tag, started_at)."""
    return run_tags_frame(store, goldset=goldset)


def leaderboard(
    store: Store, *, runs: Sequence[str], measures: Sequence[str], correction: str = "holm"
) -> LeaderboardData:
    """Rank ``runs`` on ``measures`` with ``correction``, as ``evalkit compare`` does with
    ``--failed-as-zero`` (a partial run is shown, its failed queries counted as 0)."""
    ranked = leaderboard_of_runs(
        store,
        list(runs),
        LeaderboardRequest(
            measures=tuple(measures),
            resamples=RESAMPLES,
            seed=SEED,
            correction=correction,
            failed_as_zero=True,
        ),
    )
    board = ranked.board
    what = {record.run_id: describe_run(record) for record in ranked.records if record is not None}
    order = sorted(range(len(board.runs)), key=lambda r: (board.boards[0].standings[r].rank, r))
    standings = pd.DataFrame(
        [
            {
                "rank": measure_board.standings[r].rank,
                "run": board.runs[r],
                "what": what.get(board.runs[r], ""),
                "measure": measure_board.measure,
                "mean": measure_board.standings[r].mean,
                "ci_low": measure_board.standings[r].ci_low,
                "ci_high": measure_board.standings[r].ci_high,
                "letters": measure_board.standings[r].letters,
                **_latency(board.latency[r]),
            }
            for measure_board in board.boards
            for r in order
        ]
    )
    pairs = pd.DataFrame(
        [
            {
                "measure": measure_board.measure,
                "better": seen.first,
                "worse": seen.second,
                "delta": seen.delta,
                "ci_low": seen.ci_low,
                "ci_high": seen.ci_high,
                "effect_size": seen.effect_size,
                "p_value": seen.p_value,
                "p_adjusted": seen.p_adjusted,
                "significant": seen.significant,
            }
            for measure_board in board.boards
            for pair in measure_board.pairs
            for seen in [pair if pair.delta >= 0 else pair.reversed()]
        ]
    )
    return LeaderboardData(
        ranked=ranked, standings=standings, pairs=pairs, markdown=ranked.markdown()
    )
