"""How often the interval of a judged traffic window holds the value of the traffic it was
drawn from, by window size, and how often the window test calls a regression between two
windows of the same traffic.

A judged window is a sample of queries, each with its top 10 graded. The populations:

* ``scifact``, ``vaswani``: BM25's top 10 on BEIR SciFact test (300 queries) and on
  Vaswani (93 queries), graded from the qrels (an oracle assessor), read from
  ../shared/data (left out when it is absent);
* four synthetic populations of 100,000 queries, each query with its own chance of
  relevance drawn from a beta distribution: ``rare`` (about SciFact's precision@10),
  ``mid``, ``high`` (almost every query hits) and ``clustered`` (a query's documents are
  mostly all relevant or all not).

For each population and window size the script draws ``--reps`` windows with replacement,
and counts the windows whose interval (``evalkit.judging.window.labelled_figures``) holds
the population's value, and those whose interval has no width; beside it, the percentile
bootstrap over queries evalkit used before (1,000 resamples). Then pairs of windows of the
same population go through the window test (``evalkit.drift.traffic_precision.window_test``,
one-sided at alpha 0.05, no minimum effect): the share called a drop is its false-alarm
rate, which should be at most 0.05.

    .venv/bin/python benchmarks/window_intervals.py [--reps 1000] [--sizes 5,10,20,30,50,100]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from evalkit.drift.traffic_precision import window_test
from evalkit.judging.window import _per_query, labelled_figures
from evalkit.store.judging import JudgedFigure, WindowFigure

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
RUNS = {
    "scifact": (
        SHARED_DATA / "reference_values" / "scifact_test_bm25_top100.run",
        SHARED_DATA / "beir_scifact" / "qrels" / "test.tsv",
    ),
    "vaswani": (
        SHARED_DATA / "reference_values" / "vaswani_bm25_top1000.run",
        SHARED_DATA / "vaswani_npl" / "tests" / "fixtures" / "vaswani_npl" / "qrels",
    ),
}
SYNTHETIC = {"rare": (0.2, 8.0), "mid": (1.0, 2.0), "high": (4.0, 1.0), "clustered": (0.1, 0.3)}
K = 10
T0 = datetime(2026, 11, 1)

Grades = npt.NDArray[np.int64]


def read_population(run: Path, qrels: Path) -> Grades:
    """The top ``K`` of every query of a TREC run that has a relevant document, graded 3
    when the qrels say relevant and 0 otherwise (ranked by score, ties by docno
    descending, as trec_eval ranks them)."""
    relevant: dict[str, set[str]] = defaultdict(set)
    for line in qrels.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if fields and fields[0] != "query-id" and int(fields[-1]) >= 1:
            relevant[fields[0]].add(fields[-2])
    rankings: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for line in run.read_text(encoding="utf-8").splitlines():
        query, _, doc, _, score, *_ = line.split()
        rankings[query].append((doc, float(score)))
    rows = []
    for query in sorted(q for q in rankings if relevant.get(q)):
        ranking = sorted(rankings[query], key=lambda pair: pair[0], reverse=True)
        ranking.sort(key=lambda pair: pair[1], reverse=True)
        row = [3 if doc in relevant[query] else 0 for doc, _ in ranking[:K]]
        rows.append(row + [-2] * (K - len(row)))
    return np.asarray(rows, dtype=np.int64)


def synthetic_population(a: float, b: float, rng: np.random.Generator) -> Grades:
    """100,000 queries' top ``K``, each query relevant at its own beta(a, b) rate; relevant
    documents graded 2 or 3, the others 0 or 1."""
    n = 100_000
    chance = rng.beta(a, b, size=n)
    relevant = rng.random((n, K)) < chance[:, None]
    return np.where(
        relevant, rng.integers(2, 4, size=(n, K)), rng.integers(0, 2, size=(n, K))
    ).astype(np.int64)


def bootstrap_interval(
    values: npt.NDArray[np.float64], rng: np.random.Generator
) -> tuple[float, float]:
    """The percentile bootstrap over queries evalkit used before (1,000 resamples)."""
    means = values[rng.integers(0, len(values), size=(1000, len(values)))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def window_point(label: str, grades: Grades) -> WindowFigure:
    """``grades``' precision@K as a stored window figure."""
    figure = next(f for f in labelled_figures(grades) if f.measure == f"precision@{K}")
    judged = JudgedFigure(
        "r", "assessor", "a", figure.measure, figure.value, figure.low, figure.high,
        figure.n_queries, 1.0, "complete", None, T0, {},
    )  # fmt: skip
    return WindowFigure(label, T0, "r-" + label, T0, "http:x", judged)


def measure(name: str, population: Grades, sizes: list[int], reps: int, seed: int) -> None:
    """Print the coverage table and the window test's false-alarm rate of one population."""
    rng = np.random.default_rng(seed)
    values = _per_query(population, 2)
    truth = {m: float(v.mean()) for m, v in values.items()}
    shown = ", ".join(f"{m} {v:.3f}" for m, v in truth.items())
    print(f"\n{name}: {len(population):,} queries; {shown}")
    header = ("n", "measure", "evalkit", "no width", "bootstrap", "no width")
    print("{:>4} {:<13} {:>9} {:>9} {:>10} {:>9}".format(*header))
    for n in sizes:
        held: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for _ in range(reps):
            rows = rng.integers(0, len(population), size=n)
            figures = labelled_figures(population[rows])
            for figure in figures:
                counts = held[figure.measure]
                counts[0] += figure.low <= truth[figure.measure] <= figure.high
                counts[1] += figure.high - figure.low < 1e-12
                low, high = bootstrap_interval(values[figure.measure][rows], rng)
                counts[2] += low <= truth[figure.measure] <= high
                counts[3] += high - low < 1e-12
        for m, (ours, ours_flat, boot, boot_flat) in held.items():
            print(
                f"{n:>4} {m:<13} {ours / reps:>9.3f} {ours_flat / reps:>9.3f} "
                f"{boot / reps:>10.3f} {boot_flat / reps:>9.3f}"
            )
    alarms = []
    for n in sizes:
        called = 0
        for _ in range(reps):
            base = window_point("a", population[rng.integers(0, len(population), size=n)])
            now = window_point("b", population[rng.integers(0, len(population), size=n)])
            called += window_test(base, now, alpha=0.05, min_effect=0.0).regression
        alarms.append(f"n={n} {called / reps:.3f}")
    print(f"window test, same traffic, alpha 0.05: false alarms {', '.join(alarms)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--sizes", default="5,10,20,30,50,100")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"{args.reps} windows a size; Monte Carlo sd of a coverage near 0.95: "
          f"{np.sqrt(0.95 * 0.05 / args.reps):.3f}")  # fmt: skip
    for name, (run, qrels) in RUNS.items():
        if run.is_file() and qrels.is_file():
            measure(name, read_population(run, qrels), sizes, args.reps, args.seed)
        else:
            print(f"\n{name}: {run} or {qrels} is absent; left out", file=sys.stderr)
    for name, (a, b) in SYNTHETIC.items():
        rng = np.random.default_rng(args.seed)
        measure(name, synthetic_population(a, b, rng), sizes, args.reps, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
