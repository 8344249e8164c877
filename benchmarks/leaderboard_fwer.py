"""Leaderboard calibration: the family-wise error rate under no difference, measured.

Draws ``--leaderboards`` seeded sets of ``--runs`` runs (default 5) on ``--queries`` queries
(default 200) from one and the same retriever behaviour, so that every difference between
them is per-query noise, and ranks each set with ``evalkit.stats.leaderboard.leaderboard``.
A set counts as a family-wise error when any of its pairs is called significant; the share
of such sets must be at most alpha (5 %) for Holm and Tukey. Two models, both with
per-query values correlated across the runs as real runs are:

* ranked nDCG@10: per query 1-5 relevant documents and a difficulty shared by every run;
  each run places the relevant documents at independent geometric ranks
  (``evalkit.stats.simulation``'s ranked model): discrete values, many exact ties;
* beta+noise: a shared quality ``Beta(2, 2)`` plus independent ``N(0, 0.1)`` per run,
  clipped to [0, 1].

Each set is ranked with the randomisation test (the default) under Holm and under Tukey's
HSD (``--t-test`` adds the t-test under both); the uncorrected rate (any raw p-value at most
alpha) is shown beside them. The interval is a 95 % Wilson interval of the measured rate.
The default 600 sets per model take about 3 CPU-minutes (2,400 leaderboards).

    .venv/bin/python benchmarks/leaderboard_fwer.py [--leaderboards 600] [--t-test]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from evalkit.stats import LeaderboardOptions
from evalkit.stats.leaderboard import leaderboard
from evalkit.stats.simulation import _ranked_measures

ALPHA = 0.05
MEASURE = "ndcg@10"
MAX_RELEVANT = 5


def wilson(successes: int, trials: int) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion."""
    z = 1.959963984540054
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (
        z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    )
    return centre - half, centre + half


def ranked_runs(n_queries: int, n_runs: int, rng: np.random.Generator) -> np.ndarray:
    """nDCG@10 of ``n_runs`` runs of one ranked-retrieval behaviour, queries x runs."""
    relevant = np.minimum(1 + rng.poisson(0.5, size=n_queries), MAX_RELEVANT)
    success = np.clip(rng.beta(0.7, 1.0, size=n_queries), 1e-3, 1.0)
    return np.column_stack(
        [_ranked_measures(relevant, success, rng)[MEASURE] for _ in range(n_runs)]
    )


def beta_runs(n_queries: int, n_runs: int, rng: np.random.Generator) -> np.ndarray:
    """Shared Beta(2, 2) quality plus independent N(0, 0.1) noise per run, clipped."""
    quality = rng.beta(2.0, 2.0, size=(n_queries, 1))
    return np.clip(quality + rng.normal(0.0, 0.1, size=(n_queries, n_runs)), 0.0, 1.0)


MODELS: dict[str, Callable[[int, int, np.random.Generator], np.ndarray]] = {
    "ranked nDCG@10": ranked_runs,
    "beta+noise": beta_runs,
}
SETTINGS: dict[str, LeaderboardOptions] = {
    "randomisation, Holm": LeaderboardOptions(),
    "randomisation, Tukey HSD": LeaderboardOptions(correction="tukey"),
}
T_SETTINGS: dict[str, LeaderboardOptions] = {
    "t-test, Holm": LeaderboardOptions(test="t"),
    "t-test, Tukey HSD": LeaderboardOptions(test="t", correction="tukey"),
}


def report(title: str, errors: dict[str, int], trials: int) -> None:
    """One line per setting: the family-wise error rate and its interval."""
    print(f"  {title}:")
    for setting, count in errors.items():
        low, high = wilson(count, trials)
        print(
            f"    {setting:<28} family-wise error {count / trials:6.1%} "
            f"({count}/{trials}; 95 % interval {low:.1%}-{high:.1%})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leaderboards", type=int, default=600)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--t-test", action="store_true", help="also the t-test settings")
    args = parser.parse_args()
    settings = {**SETTINGS, **(T_SETTINGS if args.t_test else {})}

    ids = pd.Index([f"q{i:04d}" for i in range(args.queries)], name="query_id")
    names = [f"run{r}" for r in range(args.runs)]
    pairs = args.runs * (args.runs - 1) // 2
    started = time.perf_counter()
    load = os.getloadavg()[0]
    print(
        f"{args.leaderboards} leaderboards per model, {args.runs} runs of the same behaviour "
        f"x {args.queries} queries ({pairs} pairs), {args.resamples:,} resamples, alpha {ALPHA}"
    )
    pooled = dict.fromkeys([*settings, "uncorrected (randomisation)"], 0)
    for model, draw in MODELS.items():
        errors = dict.fromkeys(pooled, 0)
        for seed in range(args.leaderboards):
            values = draw(args.queries, args.runs, np.random.default_rng(seed))
            runs = {
                name: pd.DataFrame({MEASURE: values[:, r]}, index=ids)
                for r, name in enumerate(names)
            }
            for setting, options in settings.items():
                chosen = LeaderboardOptions(
                    test=options.test,
                    correction=options.correction,
                    resamples=args.resamples,
                    seed=seed,
                )
                pairs_found = leaderboard(runs, [MEASURE], options=chosen).board(MEASURE).pairs
                errors[setting] += any(pair.significant for pair in pairs_found)
                if setting == "randomisation, Holm":
                    errors["uncorrected (randomisation)"] += any(
                        pair.p_value <= ALPHA for pair in pairs_found
                    )
        report(model, errors, args.leaderboards)
        pooled = {setting: pooled[setting] + count for setting, count in errors.items()}
    report("both models", pooled, args.leaderboards * len(MODELS))
    print(
        f"  {time.perf_counter() - started:.0f} s; load average {load:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after (on {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
