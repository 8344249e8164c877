"""Fusion speed: evalkit's ``fuse`` against ranx's ``fuse`` on the same five runs, in one
process.

Five seeded runs of 10,000 queries x 100 documents (each query's documents drawn from a
pool of 300, so the runs share about half of them; continuous scores), held as evalkit
takes them, DataFrames ordered as ``run_results`` gives them, and as ranx takes them,
``Run`` objects (built beforehand, not timed: building them takes longer than fusing).
Two fusions, as ``evalkit fuse`` would store them with every candidate kept:

* ``rrf`` (k = 60);
* ``wsum`` with min-max normalisation, equal weights.

evalkit's time includes indexing the DataFrames (ids to codes, each run's ranking,
the candidates of each query); its fusion alone, on runs indexed once
(``FusionRuns``, what ``optimize_fusion`` reuses across its trials), is printed beside it.
ranx is warmed up on a tiny fusion first, so numba's compilation is not counted. Each
timing is the best of ``--repeats``; CPU seconds are this process's, all threads (ranx's
numba loops run on every core). The fused scores of both are compared on a sample of
queries (to 1e-9); the script exits 1 when they differ.

    .venv/bin/python benchmarks/fusion.py [--queries 10000] [--runs 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import numpy as np
import pandas as pd
from timing import best_time_and_cpu

from evalkit.metrics.fusion import Fusion, FusionRuns, fuse

DEPTH = 100
POOL = 300
SAMPLE = 200


def synthetic(n_runs: int, n_queries: int, seed: int) -> list[pd.DataFrame]:
    """``n_runs`` runs as ``run_results`` frames: query_id, rank, doc_id, score, ranked."""
    rng = np.random.default_rng(seed)
    query_ids = np.array([f"q{q:05d}" for q in range(n_queries)], dtype=object)
    frames = []
    for _ in range(n_runs):
        picks = np.argsort(rng.random((n_queries, POOL)), axis=1)[:, :DEPTH]
        docs = (np.arange(n_queries)[:, None] * POOL + picks).ravel()
        scores = -np.sort(-rng.random((n_queries, DEPTH)), axis=1).ravel()
        frames.append(
            pd.DataFrame(
                {
                    "query_id": np.repeat(query_ids, DEPTH),
                    "rank": np.tile(np.arange(1, DEPTH + 1, dtype=np.int32), n_queries),
                    "doc_id": np.array([f"d{d:08d}" for d in docs], dtype=object),
                    "score": scores,
                }
            )
        )
    return frames


def ranx_runs(frames: list[pd.DataFrame]) -> list[Any]:
    """The same runs as ranx ``Run`` objects."""
    from ranx import Run

    runs = []
    for frame in frames:
        as_dict: dict[str, dict[str, float]] = {}
        for query, doc, score in zip(
            frame["query_id"], frame["doc_id"], frame["score"], strict=True
        ):
            as_dict.setdefault(query, {})[doc] = score
        runs.append(Run.from_dict(as_dict))
    return runs


def warm_up_ranx() -> None:
    """Compile ranx's numba functions on a tiny fusion, so no timing counts compilation."""
    from ranx import Run
    from ranx import fuse as ranx_fuse

    tiny = [Run.from_dict({"q": {"a": 1.0, "b": 0.5}}), Run.from_dict({"q": {"a": 0.2, "c": 0.4}})]
    ranx_fuse(tiny, norm="min-max", method="rrf")
    ranx_fuse(tiny, norm="min-max", method="wsum", params={"weights": [0.5, 0.5]})


def largest_difference(ours: pd.DataFrame, theirs: Any, queries: list[str]) -> float:
    """The largest difference between evalkit's and ranx's fused scores over ``queries``
    (infinite when they fuse different documents)."""
    sample = ours[ours["query_id"].isin(set(queries))]
    worst = 0.0
    for query, group in sample.groupby("query_id"):
        expected = dict(theirs[query])
        if set(group["doc_id"]) != set(expected):
            return float("inf")
        got = group["score"].to_numpy()
        want = np.array([expected[doc] for doc in group["doc_id"]])
        worst = max(worst, float(np.abs(got - want).max()))
    return worst


def main() -> int:
    """Time both fusions of both tools; exit 1 when the fused scores differ."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from ranx import fuse as ranx_fuse

    print(
        f"{args.runs} runs x {args.queries:,} queries x {DEPTH} documents; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    frames = synthetic(args.runs, args.queries, args.seed)
    runs = ranx_runs(frames)
    warm_up_ranx()
    weights = [1 / args.runs] * args.runs
    sample = [f"q{q:05d}" for q in range(0, args.queries, max(args.queries // SAMPLE, 1))]
    cases = [
        ("rrf", Fusion.of("rrf", n_runs=args.runs), {}),
        (
            "wsum, min-max",
            Fusion.of("wsum", norm="min-max", weights=weights, n_runs=args.runs),
            {"weights": weights},
        ),
    ]
    print(
        f"{'fusion':<15} {'evalkit s':>10} {'cpu':>6} {'indexed s':>10} "
        f"{'ranx s':>8} {'cpu':>6} {'ranx/evalkit':>13} {'max |diff|':>11}"
    )
    prepared = FusionRuns(frames)
    worst = 0.0
    for name, fusion, params in cases:
        method = fusion.definition.ranx_name
        ours_s, ours_cpu = best_time_and_cpu(lambda f=fusion: fuse(frames, f), args.repeats)
        indexed_s, _ = best_time_and_cpu(lambda f=fusion: prepared.fuse(f), args.repeats)
        theirs_s, theirs_cpu = best_time_and_cpu(
            lambda f=fusion, m=method, p=params: ranx_fuse(runs, norm=f.norm, method=m, params=p),
            args.repeats,
        )
        difference = largest_difference(
            fuse(frames, fusion),
            ranx_fuse(runs, norm=fusion.norm, method=method, params=params),
            sample,
        )
        worst = max(worst, difference)
        print(
            f"{name:<15} {ours_s:>10.2f} {ours_cpu:>6.2f} {indexed_s:>10.2f} "
            f"{theirs_s:>8.2f} {theirs_cpu:>6.2f} {theirs_s / ours_s:>12.2f}x "
            f"{difference:>11.1e}"
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if worst > 1e-9:
        # A speed-up over ranx fusing to other scores means nothing.
        print(f"the fused scores differ from ranx's (up to {worst:.1e})")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
