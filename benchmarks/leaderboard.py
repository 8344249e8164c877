"""Leaderboard speed: ``leaderboard`` against ranx's ``compare`` on 20 runs x 10,000 queries.

Builds a synthetic collection (1-3 judged documents per query, a difficulty per query shared
by every run, and 20 runs of graded skill that place each relevant document at a geometric
rank), scores nDCG@10 per query with ranx, then times

* evalkit: ``evalkit.stats.leaderboard.leaderboard`` on the per-query values, the whole call
  with its defaults (10,000 bootstrap resamples for the 20 means and 190 differences, a
  sign-flip test of all 190 pairs with 10,000 shared sign vectors, Holm, letters); and its
  Tukey, t-test options for reference;
* ranx 0.3.21: ``ranx.compare(qrels, runs, "ndcg@10", stat_test="fisher",
  n_permutations=10_000)``, its randomisation test. ranx tests every *ordered* pair (380 for
  20 runs), each with its own permutations, which takes many minutes, so by default it is
  timed on ``--ranx-runs`` of the runs and the statistics extrapolated per test to 380
  tests; its scoring of all 20 runs is timed apart and added. ``--ranx-runs 20`` times the
  whole call instead.

Each evalkit timing is the best of ``--repeats`` runs after a warm-up (ranx compiles with
numba, so it is warmed up on a small collection first).

    .venv/bin/python benchmarks/leaderboard.py [--runs 20] [--queries 10000] [--ranx-runs 2]
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import numpy as np
import pandas as pd
from timing import best_time, cpu_time

from evalkit.stats import LeaderboardOptions
from evalkit.stats.leaderboard import leaderboard

MEASURE = "ndcg@10"
DEPTH = 10


def synthetic(n_queries: int, n_runs: int, seed: int) -> tuple[Any, list[Any]]:
    """ranx Qrels and ``n_runs`` Runs with skills from 0.8 to 1.6 (mean nDCG@10 from about
    0.55 to 0.64, neighbours 0.005 apart: many pairs too close to tell apart)."""
    from ranx import Qrels, Run

    rng = np.random.default_rng(seed)
    relevant = rng.integers(1, 4, size=n_queries)
    difficulty = rng.gamma(2.0, 2.0, size=n_queries)
    qrels = {
        f"q{q}": {f"d{q}_{r}": int(rng.integers(1, 3)) for r in range(relevant[q])}
        for q in range(n_queries)
    }
    scores = np.linspace(1.0, 0.1, DEPTH).tolist()
    runs = []
    for skill in np.linspace(0.8, 1.6, n_runs):
        mean_rank = 1.0 + difficulty / skill
        ranks = rng.geometric(1.0 / mean_rank[:, np.newaxis], size=(n_queries, 3)) - 1
        run: dict[str, dict[str, float]] = {}
        for q in range(n_queries):
            order = [f"d{q}_x{i}" for i in range(DEPTH)]
            for r in range(relevant[q]):
                if ranks[q, r] < DEPTH:
                    order[ranks[q, r]] = f"d{q}_{r}"
            run[f"q{q}"] = dict(zip(order, scores, strict=True))
        runs.append(Run(run, name=f"skill_{skill:.2f}"))
    return Qrels(qrels), runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--ranx-runs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import ranx

    qrels, runs = synthetic(args.queries, args.runs, seed=0)
    ids = pd.Index(list(qrels.keys()), name="query_id")
    per_query = {
        run.name: pd.DataFrame(
            {MEASURE: ranx.evaluate(qrels, run, MEASURE, return_mean=False)}, index=ids
        )
        for run in runs
    }

    def ours(**settings: Any) -> Any:
        chosen = LeaderboardOptions(resamples=args.resamples, **settings)
        return leaderboard(per_query, [MEASURE], options=chosen)

    subset = runs[: args.ranx_runs]

    def ranx_compare() -> object:
        return ranx.compare(
            qrels, subset, [MEASURE], stat_test="fisher", n_permutations=args.resamples
        )

    def ranx_scoring(which: list[Any]) -> object:
        return [ranx.evaluate(qrels, run, MEASURE, return_mean=False) for run in which]

    small_qrels, small_runs = synthetic(50, 2, seed=1)
    ranx.compare(small_qrels, small_runs, [MEASURE], stat_test="fisher", n_permutations=10)
    ranx.compare(small_qrels, small_runs, [MEASURE], stat_test="tukey")
    ours()

    load = os.getloadavg()[0]
    default = best_time(ours, args.repeats)
    default_cpu = cpu_time(ours)
    tukey = best_time(lambda: ours(correction="tukey"), 1)
    t_holm = best_time(lambda: ours(test="t"), args.repeats)
    t_tukey = best_time(lambda: ours(test="t", correction="tukey"), 1)
    scoring_all = best_time(lambda: ranx_scoring(runs), 1)
    scoring_subset = best_time(lambda: ranx_scoring(subset), 1)
    fisher_subset = best_time(ranx_compare, 1)
    ranx_tukey = best_time(
        lambda: ranx.compare(qrels, runs, [MEASURE], stat_test="tukey", max_p=0.05), 1
    )
    load_after = os.getloadavg()[0]

    tests_subset = len(subset) * (len(subset) - 1)
    tests_all = args.runs * (args.runs - 1)
    per_test = (fisher_subset - scoring_subset) / tests_subset
    ranx_total = scoring_all + per_test * tests_all
    measured = len(subset) == args.runs
    board = ours()
    ranked = board.board(MEASURE).ranked()
    print(
        f"{args.runs} runs x {args.queries:,} queries, {MEASURE}, {args.resamples:,} "
        f"resamples/permutations"
    )
    print(
        f"  load average: {load:.1f} before timing, {load_after:.1f} after "
        f"(on {os.cpu_count()} cores)"
    )
    print(
        f"  evalkit leaderboard, defaults (randomisation + Holm), whole call: {default:.3f} s "
        f"(best of {args.repeats}; CPU {default_cpu:.3f} s)"
    )
    print(f"    with correction='tukey' (randomised Tukey HSD): {tukey:.3f} s")
    print(
        f"    with test='t' (Holm): {t_holm:.3f} s; test='t', correction='tukey': {t_tukey:.3f} s"
    )
    print(
        f"  ranx.compare stat_test='fisher' on {len(subset)} runs ({tests_subset} ordered "
        f"tests): {fisher_subset:.3f} s, of which scoring {scoring_subset:.3f} s -> "
        f"{per_test:.3f} s per test"
    )
    label = "measured" if measured else f"extrapolated from {len(subset)} runs"
    print(
        f"  ranx.compare on all {args.runs} runs ({tests_all} ordered tests, {label}): "
        f"{ranx_total:.1f} s = scoring {scoring_all:.2f} s + {tests_all} x {per_test:.3f} s"
    )
    print(f"  ranx.compare stat_test='tukey' (SciPy's one-way HSD) on all runs: {ranx_tukey:.3f} s")
    print(
        f"  ratio ranx fisher / evalkit: {ranx_total / default:.0f}x "
        f"(statistics only: {(ranx_total - scoring_all) / default:.0f}x; target >= 10x)"
    )
    letters = ", ".join(f"{s.run} {s.mean:.3f} {s.letters}" for s in ranked[:4])
    print(f"  top of the evalkit leaderboard: {letters}, ... (last {ranked[-1].mean:.3f})")
    print(
        f"  significant pairs (Holm): "
        f"{sum(p.significant for p in board.board(MEASURE).pairs)} of "
        f"{len(board.board(MEASURE).pairs)}"
    )


if __name__ == "__main__":
    main()
