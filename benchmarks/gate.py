"""Gate speed: compare_runs against ranx.compare on the same 10,000-query pair of runs.

Builds a synthetic qrels and two runs (100 documents per query), scores five measures per
query with ranx, then times

* evalkit: ``compare_runs`` on the per-query values (bootstrap CI + sign-flip test +
  Wilcoxon + Holm, 10,000 resamples, all five measures);
* ranx 0.3.21: ``ranx.compare(qrels, runs, metrics, stat_test="fisher",
  n_permutations=10_000)`` (its randomisation test) and ``stat_test="student"``; ranx
  also scores the runs inside ``compare``, so its scoring time is measured separately and
  subtracted to give the statistics-only time.

Each timing is the best of ``--repeats`` runs after a warm-up (ranx compiles with numba).

    .venv/bin/python benchmarks/gate.py [--queries 10000] [--resamples 10000]
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import numpy as np
import pandas as pd
from timing import best_time, cpu_time

from evalkit.stats import compare_runs

MEASURES = ["ndcg@10", "recall@10", "precision@10", "mrr@10", "map@100"]
DEPTH = 100


def synthetic(n_queries: int, seed: int) -> tuple[Any, Any, Any]:
    """ranx Qrels and two Runs: the candidate is the baseline with mild rank noise."""
    from ranx import Qrels, Run

    rng = np.random.default_rng(seed)
    qrels: dict[str, dict[str, int]] = {}
    runs: list[dict[str, dict[str, float]]] = [{}, {}]
    scores = np.sort(rng.random(DEPTH))[::-1]
    for q in range(n_queries):
        qid = f"q{q}"
        relevant = rng.integers(1, 4)
        qrels[qid] = {f"d{q}_{r}": int(rng.integers(1, 3)) for r in range(relevant)}
        for run, spread in zip(runs, (8.0, 9.0), strict=True):
            ranks = np.minimum(rng.geometric(1.0 / spread, size=relevant) - 1, DEPTH - 1)
            order = [f"d{q}_x{i}" for i in range(DEPTH)]
            for r, rank in enumerate(ranks):
                order[rank] = f"d{q}_{r}"
            run[qid] = dict(zip(order, scores.tolist(), strict=True))
    return Qrels(qrels), Run(runs[0], name="baseline"), Run(runs[1], name="candidate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import ranx

    qrels, baseline_run, candidate_run = synthetic(args.queries, seed=0)
    per_query = [
        pd.DataFrame(
            ranx.evaluate(qrels, run, MEASURES, return_mean=False),
            index=pd.Index(list(qrels.keys()), name="query_id"),
        )
        for run in (baseline_run, candidate_run)
    ]

    def evalkit_gate() -> object:
        return compare_runs(*per_query, resamples=args.resamples, min_effect=0.01)

    def ranx_compare(test: str) -> object:
        return ranx.compare(
            qrels,
            [baseline_run, candidate_run],
            MEASURES,
            stat_test=test,
            n_permutations=args.resamples,
            max_p=0.05,
        )

    def ranx_scoring() -> object:
        return [
            ranx.evaluate(qrels, run, MEASURES, return_mean=False)
            for run in (baseline_run, candidate_run)
        ]

    load = os.getloadavg()[0]
    small_qrels, small_a, small_b = synthetic(50, seed=1)
    ranx.compare(small_qrels, [small_a, small_b], MEASURES, stat_test="fisher", n_permutations=10)
    evalkit_gate()

    ours = best_time(evalkit_gate, args.repeats)
    ours_cpu = cpu_time(evalkit_gate)
    fisher_cpu = cpu_time(lambda: ranx_compare("fisher"))
    scoring = best_time(ranx_scoring, args.repeats)
    fisher = best_time(lambda: ranx_compare("fisher"), args.repeats)
    student = best_time(lambda: ranx_compare("student"), args.repeats)
    result = evalkit_gate()

    print(
        f"{args.queries:,} queries x {len(MEASURES)} measures, {args.resamples:,} resamples "
        f"(best of {args.repeats})"
    )
    print(f"  load average before timing: {load:.1f} (on {os.cpu_count()} cores)")
    print(
        f"  evalkit compare_runs (bootstrap + sign-flip + Wilcoxon + Holm): {ours:.3f} s "
        f"(CPU {ours_cpu:.3f} s)"
    )
    print(
        f"  ranx.compare stat_test='fisher' ({args.resamples:,} permutations): {fisher:.3f} s "
        f"(CPU {fisher_cpu:.3f} s)"
    )
    print(f"      of which scoring (ranx.evaluate x 2): {scoring:.3f} s")
    print(f"      statistics only: {fisher - scoring:.3f} s")
    print(f"  ranx.compare stat_test='student': {student:.3f} s")
    print(
        f"  ratio ranx fisher / evalkit: {fisher / ours:.1f}x (statistics only: "
        f"{(fisher - scoring) / ours:.1f}x)"
    )
    print(
        f"  evalkit verdict: {result.decision.value}; "
        + ", ".join(f"{m.measure} {m.delta:+.4f} p={m.p_adjusted:.2g}" for m in result.metrics)
    )


if __name__ == "__main__":
    main()
