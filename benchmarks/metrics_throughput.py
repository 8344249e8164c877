"""Throughput of evalkit's IR metrics against pytrec_eval and ranx, in one process.

One seeded run of 20,000 queries x 100 documents (continuous scores) with about 10 graded
judgments per query; five measures (ndcg@10, recall@100, precision@10, map, mrr) computed by

* evalkit and pytrec_eval from TREC files (read + index the judgments + evaluate),
* evalkit and pytrec_eval from dicts ({qid: {doc_id: score}}), with and without the
  one-off indexing of the judgments,
* evalkit from in-memory arrays (RunArrays over a corpus indexed once),
* ranx (numba; warmed up on a tiny run first, so its JIT compile is not counted).

Prints wall seconds, queries/s and CPU seconds for each, the speed-ups of evalkit over
pytrec_eval, peak memory, and whether all four agree on the means.
Run: ``.venv/bin/python benchmarks/metrics_throughput.py`` (about 1-3 minutes); it exits 1
when the contenders' means disagree.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.metrics import Evaluator, RunArrays, parse_measures, read_qrels, read_run

MEASURES = ("ndcg@10", "recall@100", "precision@10", "map", "mrr")
PYTREC_NAMES = {
    "ndcg@10": "ndcg_cut_10",
    "recall@100": "recall_100",
    "precision@10": "P_10",
    "map": "map",
    "mrr": "recip_rank",
}
RANX_NAMES = {
    "ndcg@10": "ndcg@10",
    "recall@100": "recall@100",
    "precision@10": "precision@10",
    "map": "map",
    "mrr": "mrr",
}


def make_data(n_queries: int, depth: int, seed: int) -> dict[str, Any]:
    """A seeded run (distinct docs per query, continuous scores) and graded qrels."""
    rng = np.random.default_rng(seed)
    stride = 10
    n_docs = 1_000_000
    base = rng.integers(0, n_docs - depth * stride - 7_000, size=n_queries)
    positions = (
        base[:, None] + np.arange(depth) * stride + rng.integers(0, stride, (n_queries, depth))
    )
    # Scores a C float holds exactly: pytrec_eval's trec_eval 9.x compares floats, evalkit
    # and trec_eval 10.0 doubles, and only such scores rank alike in both.
    scores = rng.random((n_queries, depth), dtype=np.float32).astype(np.float64)
    corpus = np.array([f"D{i:07d}" for i in range(n_docs)], dtype=object)
    query_ids = np.array([f"Q{i:05d}" for i in range(n_queries)], dtype=object)

    judged_retrieved = np.argsort(rng.random((n_queries, depth)), axis=1)[:, :5]
    judged_positions = np.concatenate(
        [
            np.take_along_axis(positions, judged_retrieved, axis=1),
            (base[:, None] + depth * stride + rng.integers(0, 1000, (n_queries, 5)) * 7),
        ],
        axis=1,
    )
    grades = rng.integers(0, 4, size=judged_positions.shape)
    qrels: dict[str, dict[str, int]] = {}
    for q, docs, rels in zip(query_ids, corpus[judged_positions], grades, strict=True):
        qrels[q] = dict(zip(docs.tolist(), rels.tolist(), strict=True))
    run = {
        q: dict(zip(docs.tolist(), s.tolist(), strict=True))
        for q, docs, s in zip(query_ids, corpus[positions], scores, strict=True)
    }
    return {
        "qrels": qrels,
        "run": run,
        "corpus": corpus,
        "query_ids": query_ids,
        "positions": positions,
        "scores": scores,
    }


def write_trec(data: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    """Write the qrels and run as TREC files (untimed)."""
    qrels_path, run_path = directory / "qrels.txt", directory / "run.txt"
    with qrels_path.open("w") as out:
        for q, judged in data["qrels"].items():
            out.writelines(f"{q} 0 {d} {r}\n" for d, r in judged.items())
    with run_path.open("w") as out:
        for q, ranking in data["run"].items():
            ordered = sorted(ranking.items(), key=lambda item: -item[1])
            out.writelines(
                f"{q} Q0 {d} {rank} {s:.17g} bench\n" for rank, (d, s) in enumerate(ordered, 1)
            )
    return qrels_path, run_path


class Stopwatch:
    """Best-of-n wall and CPU seconds per contender, in the order they were timed."""

    def __init__(self, repeats: int) -> None:
        self.repeats = repeats
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def time(self, name: str, function: Callable[[], Any], *, repeats: int | None = None) -> Any:
        """Run ``function`` ``repeats`` times; keep the fastest wall time and its CPU time.

        CPU time (all threads of this process) is shown too: on a shared machine it is less
        disturbed by other processes than wall time.
        """
        result = None
        for _ in range(repeats or self.repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            result = function()
            elapsed = time.perf_counter() - start
            if elapsed < self.wall.get(name, float("inf")):
                self.wall[name] = elapsed
                self.cpu[name] = time.process_time() - start_cpu
        return result


def traced_peak(function: Callable[[], Any]) -> float:
    """Peak Python/NumPy heap (MiB) allocated while ``function`` runs (tracemalloc)."""
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main() -> int:
    """Generate the data, time every contender, print the table and the agreement check;
    exit 1 when a contender's means differ from pytrec_eval's."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import pytrec_eval
    import ranx

    data = make_data(args.queries, args.depth, args.seed)
    measures = parse_measures(MEASURES)
    pytrec_measures = set(PYTREC_NAMES.values())
    clock = Stopwatch(args.repeats)
    means: dict[str, dict[str, float]] = {}
    memory: dict[str, float] = {}

    with tempfile.TemporaryDirectory() as tmp:
        qrels_path, run_path = write_trec(data, Path(tmp))

        def evalkit_trec() -> dict[str, float]:
            evaluator = Evaluator(read_qrels(qrels_path), measures)
            return evaluator.evaluate(read_run(run_path)).aggregate

        def pytrec_trec() -> dict[str, dict[str, float]]:
            with qrels_path.open() as q_file, run_path.open() as r_file:
                qrels, run = pytrec_eval.parse_qrel(q_file), pytrec_eval.parse_run(r_file)
            return pytrec_eval.RelevanceEvaluator(qrels, pytrec_measures).evaluate(run)

        means["evalkit, TREC files"] = clock.time("evalkit: TREC files", evalkit_trec, repeats=2)
        clock.time("pytrec_eval: TREC files", pytrec_trec, repeats=2)
        memory["TREC files"] = traced_peak(evalkit_trec)

    means["evalkit, dict"] = clock.time(
        "evalkit: dict, index + evaluate",
        lambda: Evaluator(data["qrels"], measures).evaluate(data["run"]).aggregate,
        repeats=2,
    )
    clock.time(
        "pytrec_eval: dict, index + evaluate",
        lambda: pytrec_eval.RelevanceEvaluator(data["qrels"], pytrec_measures).evaluate(
            data["run"]
        ),
        repeats=2,
    )
    evaluator = Evaluator(data["qrels"], measures)
    clock.time("evalkit: dict, evaluate", lambda: evaluator.evaluate(data["run"]))
    pytrec_evaluator = pytrec_eval.RelevanceEvaluator(data["qrels"], pytrec_measures)
    pytrec_values = clock.time(
        "pytrec_eval: dict, evaluate", lambda: pytrec_evaluator.evaluate(data["run"])
    )
    means["pytrec_eval"] = {
        m: float(np.mean([v[PYTREC_NAMES[m]] for v in pytrec_values.values()])) for m in MEASURES
    }
    memory["dict"] = traced_peak(lambda: evaluator.evaluate(data["run"]))

    corpus = clock.time(
        "(evalkit: corpus_index, once)", lambda: evaluator.corpus_index(data["corpus"]), repeats=1
    )
    arrays = RunArrays(data["query_ids"], data["positions"], data["scores"])
    means["evalkit, arrays"] = clock.time(
        "evalkit: arrays, evaluate", lambda: evaluator.evaluate_arrays(arrays, corpus=corpus)
    ).aggregate
    memory["arrays"] = traced_peak(lambda: evaluator.evaluate_arrays(arrays, corpus=corpus))

    metrics = list(RANX_NAMES.values())
    ranx.evaluate(ranx.Qrels({"q": {"d1": 1}}), ranx.Run({"q": {"d1": 1.0, "d2": 0.5}}), metrics)
    ranx_qrels, ranx_run = clock.time(
        "(ranx: Qrels + Run from dicts)",
        lambda: (ranx.Qrels(data["qrels"]), ranx.Run(data["run"])),
        repeats=1,
    )
    ranx_means = clock.time(
        "ranx: evaluate (warm)",
        lambda: ranx.evaluate(ranx_qrels, ranx_run, metrics, make_comparable=True),
    )
    means["ranx"] = {m: float(ranx_means[RANX_NAMES[m]]) for m in MEASURES}

    n = args.queries
    print(f"{n:,} queries x {args.depth} docs; measures: {', '.join(MEASURES)}")
    print(f"{'contender':38s} {'wall s':>8s} {'queries/s':>11s} {'CPU s':>8s}")
    for name, seconds in clock.wall.items():
        print(f"{name:38s} {seconds:8.3f} {n / seconds:11,.0f} {clock.cpu[name]:8.3f}")
    print()
    for ours, theirs in (
        ("evalkit: TREC files", "pytrec_eval: TREC files"),
        ("evalkit: dict, index + evaluate", "pytrec_eval: dict, index + evaluate"),
        ("evalkit: dict, evaluate", "pytrec_eval: dict, evaluate"),
        ("evalkit: arrays, evaluate", "pytrec_eval: dict, evaluate"),
    ):
        wall = clock.wall[theirs] / clock.wall[ours]
        cpu = clock.cpu[theirs] / clock.cpu[ours]
        print(f"{ours} vs {theirs}: {wall:.1f}x faster (CPU time: {cpu:.1f}x)")
    print()
    traced = ", ".join(f"{path} {mib:.0f} MiB" for path, mib in memory.items())
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"evalkit peak traced heap (tracemalloc): {traced}")
    print(f"process peak RSS, all contenders and the data: {peak_rss:.0f} MiB")
    print()
    reference = means["pytrec_eval"]
    worst = 0.0
    for contender, values in means.items():
        worst = max(worst, *(abs(values[m] - reference[m]) for m in MEASURES))
        shown = ", ".join(f"{m}={values[m]:.6f}" for m in MEASURES)
        print(f"{contender:20s} {shown}")
    verdict = "all agree" if worst < 1e-9 else "DISAGREE"
    print(f"largest difference from pytrec_eval: {worst:.1e} ({verdict})")
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"load average (1, 5, 15 min): {load} on {os.cpu_count()} cores")
    # Speed-ups over peers that compute other numbers mean nothing: fail the run.
    return 0 if worst < 1e-9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
