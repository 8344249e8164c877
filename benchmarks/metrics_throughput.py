"""Throughput of evalkit's IR metrics against pytrec_eval and ranx, in one process.

One seeded run of 20,000 queries x 100 documents with about 10 graded judgments per query;
five measures (ndcg@10, recall@100, precision@10, map, mrr) computed by

* evalkit from TREC files (read_qrels + read_run + Evaluator + evaluate),
* evalkit from dict input ({qid: {doc_id: score}}, as pytrec_eval takes it),
* evalkit from in-memory arrays (RunArrays over an indexed corpus),
* pytrec_eval from TREC files (its parse_qrel / parse_run) and from dicts,
* ranx (numba; warmed up on a tiny run first, so its JIT compile is not counted).

Prints queries/s for each, the ratios evalkit / pytrec_eval, peak memory, and checks that
all four agree on the means. Run: ``.venv/bin/python benchmarks/metrics_throughput.py``.
"""

from __future__ import annotations

import argparse
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
    scores = rng.random((n_queries, depth))
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


def best_of(repeats: int, function: Callable[[], Any]) -> tuple[float, Any]:
    """Fastest wall time over ``repeats`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def traced_peak(function: Callable[[], Any]) -> float:
    """Peak Python/NumPy heap (MiB) allocated while ``function`` runs (tracemalloc)."""
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main() -> None:
    """Generate the data, time every contender, print the table and the agreement check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import pytrec_eval
    import ranx

    data = make_data(args.queries, args.depth, args.seed)
    n = args.queries
    measures = parse_measures(MEASURES)
    timings: dict[str, float] = {}
    means: dict[str, dict[str, float]] = {}

    with tempfile.TemporaryDirectory() as tmp:
        qrels_path, run_path = write_trec(data, Path(tmp))

        def evalkit_trec() -> dict[str, float]:
            evaluator = Evaluator(read_qrels(qrels_path), measures)
            return evaluator.evaluate(read_run(run_path)).aggregate

        timings["evalkit, TREC files"], means["evalkit (TREC)"] = best_of(
            args.repeats, evalkit_trec
        )

        def pytrec_trec() -> dict[str, dict[str, float]]:
            with qrels_path.open() as q_file, run_path.open() as r_file:
                qrels, run = pytrec_eval.parse_qrel(q_file), pytrec_eval.parse_run(r_file)
            return pytrec_eval.RelevanceEvaluator(qrels, set(PYTREC_NAMES.values())).evaluate(run)

        timings["pytrec_eval, TREC files"], _ = best_of(1, pytrec_trec)
        trec_memory = traced_peak(evalkit_trec)

    def evalkit_dict() -> dict[str, float]:
        return Evaluator(data["qrels"], measures).evaluate(data["run"]).aggregate

    def pytrec_dict() -> dict[str, dict[str, float]]:
        evaluator = pytrec_eval.RelevanceEvaluator(data["qrels"], set(PYTREC_NAMES.values()))
        return evaluator.evaluate(data["run"])

    timings["evalkit, dict"], means["evalkit (dict)"] = best_of(args.repeats, evalkit_dict)
    timings["pytrec_eval, dict"], pytrec_values = best_of(args.repeats, pytrec_dict)
    means["pytrec_eval"] = {
        m: float(np.mean([v[PYTREC_NAMES[m]] for v in pytrec_values.values()])) for m in MEASURES
    }
    dict_memory = traced_peak(evalkit_dict)

    evaluator = Evaluator(data["qrels"], measures)
    index_time, corpus = best_of(1, lambda: evaluator.index_corpus(data["corpus"]))
    arrays = RunArrays(data["query_ids"], data["positions"], data["scores"])
    timings["evalkit, arrays"], result = best_of(
        args.repeats, lambda: evaluator.evaluate_arrays(arrays, corpus=corpus)
    )
    means["evalkit (arrays)"] = result.aggregate
    arrays_memory = traced_peak(lambda: evaluator.evaluate_arrays(arrays, corpus=corpus))

    tiny_qrels = ranx.Qrels({"q": {"d1": 1}})
    ranx.evaluate(tiny_qrels, ranx.Run({"q": {"d1": 1.0, "d2": 0.5}}), list(RANX_NAMES.values()))
    convert_time, (ranx_qrels, ranx_run) = best_of(
        1, lambda: (ranx.Qrels(data["qrels"]), ranx.Run(data["run"]))
    )
    timings["ranx (warm)"], ranx_means = best_of(
        args.repeats,
        lambda: ranx.evaluate(
            ranx_qrels, ranx_run, list(RANX_NAMES.values()), make_comparable=True
        ),
    )
    means["ranx"] = {m: float(ranx_means[RANX_NAMES[m]]) for m in MEASURES}

    print(f"{n:,} queries x {args.depth} docs, measures: {', '.join(MEASURES)}")
    print(f"{'contender':28s} {'seconds':>8s} {'queries/s':>12s}")
    for name, seconds in timings.items():
        print(f"{name:28s} {seconds:8.3f} {n / seconds:12,.0f}")
    print(f"{'(ranx Qrels+Run from dicts)':28s} {convert_time:8.3f}")
    print(f"{'(evalkit index_corpus, once)':28s} {index_time:8.3f}")
    print()
    for ours, theirs in (
        ("evalkit, TREC files", "pytrec_eval, TREC files"),
        ("evalkit, dict", "pytrec_eval, dict"),
        ("evalkit, arrays", "pytrec_eval, dict"),
    ):
        print(f"speed-up {ours} vs {theirs}: {timings[theirs] / timings[ours]:.1f}x")
    print()
    print(
        f"peak traced heap (tracemalloc): TREC {trec_memory:.0f} MiB, dict {dict_memory:.0f} MiB, "
        f"arrays {arrays_memory:.0f} MiB; process peak RSS "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )
    print()
    reference = means["pytrec_eval"]
    worst = 0.0
    for contender, values in means.items():
        differences = {m: abs(values[m] - reference[m]) for m in MEASURES}
        worst = max(worst, *differences.values())
        shown = ", ".join(f"{m}={values[m]:.6f}" for m in MEASURES)
        print(f"{contender:18s} {shown}")
    verdict = "AGREE" if worst < 1e-9 else "DIFFER"
    print(f"largest difference from pytrec_eval: {worst:.2e} -> {verdict}")


if __name__ == "__main__":
    main()
