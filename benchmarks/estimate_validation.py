"""Validate the label-free precision estimate (evalkit.judging.estimate) on real BM25 runs.

Data (read from ../shared/data, never copied; the script exits when it is absent): the BM25
runs ``reference_values/scifact_test_bm25_top100.run`` (BEIR SciFact test, 300 queries, 100
documents each) and ``reference_values/vaswani_bm25_top1000.run`` (Vaswani/NPL, 93 topics,
1,000 documents each), judged by ``beir_scifact/qrels/test.tsv`` and the Vaswani qrels.
Documents are ranked as trec_eval ranks them (score descending, ties by docno descending).

For each collection and seeded split of its queries into two halves, the calibration is
fitted on one half (the "goldset run") and the other half plays the unlabelled traffic:

* **held out**: its actual P@k (from the qrels) against the estimate and its interval;
* **degraded index**: a random 25 % or 50 % of the documents the run retrieved (seeded by
  the split) leave the index, so the documents below move up and the top k fills with
  lower scores; the calibration stays the one fitted on the intact index, as it would in
  production;
* **coverage**: over ``--coverage-splits`` splits, how often the interval holds the held-out
  half's actual precision, and how often estimate and actual agree within their joint
  uncertainty (|estimate - actual| <= sqrt(h_e^2 + h_a^2), h_e and h_a the half-widths of
  the estimate's interval and of the actual's own bootstrap interval over queries). The
  interval targets the precision of the traffic the window was drawn from; the half's
  actual precision is itself a noisy draw of it, which is why both are shown;
* **ablations**: the interval without the calibration's replicates (the window's queries
  resampled alone), a calibration fitted at depth 100 applied to the top 10 (the bias that
  makes ``estimate_precision`` refuse another depth), and the logistic calibration.

    .venv/bin/python benchmarks/estimate_validation.py [--splits 5] [--coverage-splits 100]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from evalkit.judging.estimate import (
    PrecisionEstimate,
    ScoreCalibration,
    estimate_precision,
    fit_calibration,
)

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SCIFACT_RUN = SHARED_DATA / "reference_values" / "scifact_test_bm25_top100.run"
SCIFACT_QRELS = SHARED_DATA / "beir_scifact" / "qrels" / "test.tsv"
VASWANI_RUN = SHARED_DATA / "reference_values" / "vaswani_bm25_top1000.run"
VASWANI_QRELS = SHARED_DATA / "vaswani_npl" / "tests" / "fixtures" / "vaswani_npl" / "qrels"
DROPS = (0.0, 0.25, 0.5)
DEPTHS = (10, 5)
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Collection:
    """A run ranked as trec_eval ranks it, and the relevant documents of each query."""

    name: str
    rankings: dict[str, list[tuple[str, float]]]
    relevant: dict[str, set[str]]

    @property
    def queries(self) -> list[str]:
        """Queries with both a ranking and a relevant document, sorted."""
        return sorted(query for query in self.rankings if self.relevant.get(query))

    @property
    def documents(self) -> list[str]:
        """Every document the run retrieved, sorted (the others cannot change a ranking)."""
        return sorted({doc for ranking in self.rankings.values() for doc, _ in ranking})


def read_run(path: Path) -> dict[str, list[tuple[str, float]]]:
    """TREC run (``qid Q0 docid rank score tag``) ranked by score, ties by docno descending."""
    rankings: dict[str, list[tuple[str, float]]] = defaultdict(list)
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            query, _, doc, _, score, *_ = line.split()
            rankings[query].append((doc, float(score)))
    for ranking in rankings.values():
        ranking.sort(key=lambda pair: pair[0], reverse=True)
        ranking.sort(key=lambda pair: pair[1], reverse=True)
    return dict(rankings)


def read_qrels(path: Path) -> dict[str, set[str]]:
    """Relevant documents (grade >= 1) from TREC qrels (``qid iter docid grade``) or BEIR
    TSV (``query-id corpus-id score`` after a header row)."""
    relevant: dict[str, set[str]] = defaultdict(set)
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            if not fields or fields[0] == "query-id":
                continue
            query, doc, grade = fields[0], fields[-2], fields[-1]
            if int(grade) >= 1:
                relevant[query].add(doc)
    return dict(relevant)


def load(name: str) -> Collection:
    """One of the two collections by name."""
    run, qrels = {"scifact": (SCIFACT_RUN, SCIFACT_QRELS), "vaswani": (VASWANI_RUN, VASWANI_QRELS)}[
        name
    ]
    return Collection(name, read_run(run), read_qrels(qrels))


def split(collection: Collection, seed: int) -> tuple[list[str], list[str]]:
    """Two seeded halves of the queries: (goldset, held out)."""
    queries = collection.queries
    order = np.random.default_rng(seed).permutation(len(queries))
    half = len(queries) // 2
    return [queries[i] for i in order[:half]], [queries[i] for i in order[half:]]


def degrade(collection: Collection, fraction: float, seed: int) -> Collection:
    """The collection with a seeded random ``fraction`` of its documents removed."""
    if fraction == 0.0:
        return collection
    documents = collection.documents
    rng = np.random.default_rng(seed)
    removed = set(rng.choice(documents, size=round(fraction * len(documents)), replace=False))
    rankings = {
        query: [(doc, score) for doc, score in ranking if doc not in removed]
        for query, ranking in collection.rankings.items()
    }
    return replace(collection, rankings=rankings)


def ranked(collection: Collection, queries: list[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Scores and relevance flags of each query's ranking, in rank order."""
    scores = [np.array([score for _, score in collection.rankings[q]]) for q in queries]
    flags = [
        np.array([doc in collection.relevant[q] for doc, _ in collection.rankings[q]])
        for q in queries
    ]
    return scores, flags


def actual_precision(flags: list[np.ndarray], k: int) -> np.ndarray:
    """Per-query P@k from the qrels (trec_eval: divided by k)."""
    return np.array([query[:k].sum() / k for query in flags])


def half_width_of_mean(values: np.ndarray, *, seed: int, resamples: int = 2000) -> float:
    """Half-width of the 95 % percentile bootstrap interval of the mean over queries."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(high - low) / 2.0


@dataclass(frozen=True)
class Trial:
    """One split x depth x index state: the actual and estimated precision of the half."""

    actual: float
    actual_half_width: float
    estimate: PrecisionEstimate
    window_only: PrecisionEstimate

    @property
    def inside(self) -> bool:
        """The interval holds the half's actual precision."""
        return self.estimate.low <= self.actual <= self.estimate.high

    @property
    def consistent(self) -> bool:
        """Estimate and actual agree within both intervals' half-widths in quadrature."""
        half_width = (self.estimate.high - self.estimate.low) / 2.0
        joint = float(np.hypot(half_width, self.actual_half_width))
        return abs(self.estimate.estimate - self.actual) <= joint


def trial(
    collection: Collection,
    calibration: ScoreCalibration,
    held_out: list[str],
    *,
    seed: int,
    resamples: int,
) -> Trial:
    """Estimate and measure P@k of the held-out queries of ``collection``."""
    scores, flags = ranked(collection, held_out)
    per_query = actual_precision(flags, calibration.k)
    estimate = estimate_precision(scores, calibration, n_resamples=resamples, seed=seed)
    exact = replace(calibration, replicates=())
    window_only = estimate_precision(scores, exact, n_resamples=resamples, seed=seed)
    return Trial(
        actual=float(per_query.mean()),
        actual_half_width=half_width_of_mean(per_query, seed=seed),
        estimate=estimate,
        window_only=window_only,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--splits", type=int, default=5, help="splits shown one by one")
    parser.add_argument("--coverage-splits", type=int, default=100)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--replicates", type=int, default=200)
    args = parser.parse_args()
    if not SHARED_DATA.is_dir():
        print(f"{SHARED_DATA} is absent: nothing to validate on")
        return 0
    started = time.perf_counter()
    collections = {name: load(name) for name in ("scifact", "vaswani")}
    splits = max(args.splits, args.coverage_splits)
    trials: dict[tuple[str, int, float], list[Trial]] = defaultdict(list)
    depth_bias: dict[str, list[tuple[float, float]]] = defaultdict(list)
    logistic: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
    for name, collection in collections.items():
        for seed in range(splits):
            goldset, held_out = split(collection, seed)
            fit_scores, fit_flags = ranked(collection, goldset)
            degraded = {drop: degrade(collection, drop, seed) for drop in DROPS}
            for k in DEPTHS:
                calibration = fit_calibration(
                    fit_scores, fit_flags, k=k, n_replicates=args.replicates, seed=seed
                )
                for drop in DROPS:
                    trials[name, k, drop].append(
                        trial(
                            degraded[drop],
                            calibration,
                            held_out,
                            seed=seed,
                            resamples=args.resamples,
                        )
                    )
                logistic_fit = fit_calibration(
                    fit_scores, fit_flags, k=k, method="logistic", n_replicates=0, seed=seed
                )
                held_scores, held_flags = ranked(collection, held_out)
                actual = actual_precision(held_flags, k).mean()
                guess = estimate_precision(held_scores, logistic_fit, n_resamples=1).estimate
                logistic[name, k].append((guess, float(actual)))
            deep = fit_calibration(fit_scores, fit_flags, k=100, n_replicates=0, seed=seed)
            held_scores, held_flags = ranked(collection, held_out)
            tops = [deep.probability(query[:10]).sum() / 10 for query in held_scores]
            depth_bias[name].append(
                (float(np.mean(tops)), float(actual_precision(held_flags, 10).mean()))
            )

    print("# Label-free precision estimate on BM25 runs (isotonic, fitted at depth k)")
    print(
        f"calibration on one half of the queries ({args.replicates} replicates), estimate on "
        f"the other ({args.resamples} resamples, {CONFIDENCE:.0%} interval); "
        "documents removed with the split's seed\n"
    )
    print("## Seeded splits")
    print("| collection | P@k | index | split | actual | estimate [95 % interval] | abs error |")
    print("|---|---|---|---|---|---|---|")
    for (name, k, drop), rows in trials.items():
        index = "intact" if drop == 0.0 else f"{drop:.0%} removed"
        for seed, row in enumerate(rows[: args.splits]):
            estimate = row.estimate
            print(
                f"| {name} | P@{k} | {index} | {seed} | {row.actual:.3f} | "
                f"{estimate.estimate:.3f} [{estimate.low:.3f}, {estimate.high:.3f}]"
                f"{'' if row.inside else ' (misses)'} | "
                f"{abs(estimate.estimate - row.actual):.3f} |"
            )
    print(f"\n## Over {splits} seeded splits")
    print(
        "| collection | P@k | index | mean actual | mean estimate | mean abs error | "
        "interval holds actual | consistent | window-only interval holds actual | "
        "mean interval width |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (name, k, drop), rows in trials.items():
        index = "intact" if drop == 0.0 else f"{drop:.0%} removed"
        actual = np.array([row.actual for row in rows])
        estimates = np.array([row.estimate.estimate for row in rows])
        widths = np.array([row.estimate.high - row.estimate.low for row in rows])
        window_only = sum(row.window_only.low <= row.actual <= row.window_only.high for row in rows)
        print(
            f"| {name} | P@{k} | {index} | {actual.mean():.3f} | {estimates.mean():.3f} | "
            f"{np.abs(estimates - actual).mean():.3f} | "
            f"{sum(row.inside for row in rows)}/{len(rows)} | "
            f"{sum(row.consistent for row in rows)}/{len(rows)} | "
            f"{window_only}/{len(rows)} | {widths.mean():.3f} |"
        )
    print("\n## Drop of P@k when documents are removed (mean over splits, same held-out halves)")
    print("| collection | P@k | index | actual drop | estimated drop | estimated / actual |")
    print("|---|---|---|---|---|---|")
    for name in collections:
        for k in DEPTHS:
            intact = trials[name, k, 0.0]
            for drop in DROPS[1:]:
                rows = trials[name, k, drop]
                actual_drop = np.mean(
                    [a.actual - b.actual for a, b in zip(intact, rows, strict=True)]
                )
                estimated_drop = np.mean(
                    [
                        a.estimate.estimate - b.estimate.estimate
                        for a, b in zip(intact, rows, strict=True)
                    ]
                )
                print(
                    f"| {name} | P@{k} | {drop:.0%} removed | {actual_drop:.3f} | "
                    f"{estimated_drop:.3f} | {estimated_drop / actual_drop:.2f} |"
                )
    print("\n## Ablations (intact index, mean over splits)")
    print("| collection | what | mean estimate | mean actual | mean abs error |")
    print("|---|---|---|---|---|")
    for name in collections:
        estimates, actuals = (np.array(column) for column in zip(*depth_bias[name], strict=True))
        print(
            f"| {name} | P@10 from a calibration fitted at depth 100 | {estimates.mean():.3f} | "
            f"{actuals.mean():.3f} | {np.abs(estimates - actuals).mean():.3f} |"
        )
        for k in DEPTHS:
            isotonic = trials[name, k, 0.0]
            print(
                f"| {name} | P@{k}, isotonic | "
                f"{np.mean([row.estimate.estimate for row in isotonic]):.3f} | "
                f"{np.mean([row.actual for row in isotonic]):.3f} | "
                f"{np.mean([abs(row.estimate.estimate - row.actual) for row in isotonic]):.3f} |"
            )
            guesses, actuals = (np.array(column) for column in zip(*logistic[name, k], strict=True))
            print(
                f"| {name} | P@{k}, logistic | {guesses.mean():.3f} | {actuals.mean():.3f} | "
                f"{np.abs(guesses - actuals).mean():.3f} |"
            )
    print(
        f"\n{time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} CPUs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
