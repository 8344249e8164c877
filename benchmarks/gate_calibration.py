"""Gate calibration: false-fail rate, power, interval coverage and the power table, measured.

1. False fails: many seeded pairs of runs drawn from the *same* retriever behaviour
   (``evalkit.stats.simulation``: discrete nDCG@10 + recall@10 from ranked retrieval, and
   continuous Beta + noise); the share the gate calls ``regression`` must be <= alpha.
2. Power: the candidate loses every relevant document on a share of the queries.
3. The same two questions for the rules the gate replaces: "fail on any drop of the mean"
   and "fail when the mean drops by more than 10 %".
4. Coverage of the bootstrap interval (BCa and percentile) for small and large golden sets.
5. The power table (queries needed for drops of 0.01 / 0.02 / 0.05 nDCG@10 at 80 % power).

``--measure-sd`` re-measures the spread of per-query nDCG@10 differences between real
retrievers on BEIR SciFact (BM25 from ``shared/data/reference_values`` vs an exact dense
run with all-MiniLM-L6-v2 and vs their reciprocal-rank fusion); it embeds 5,183 abstracts,
which takes a few minutes on two cores.

    .venv/bin/python benchmarks/gate_calibration.py [--seeds 1000] [--measure-sd]
        [--sparse-seeds 2000]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit.stats import (
    Comparison,
    Decision,
    PairedTestSettings,
    compare_runs,
    decide,
    overall_decision,
    power_table,
    power_table_markdown,
)
from evalkit.stats._resampling import CI_METHODS, bootstrap_means
from evalkit.stats.simulation import beta_noise_pair, break_queries, ranked_ndcg_pair

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
ALPHA = 0.05
Model = Callable[..., tuple[pd.DataFrame, pd.DataFrame]]
MODELS: dict[str, Model] = {
    "ranked nDCG@10+recall@10": ranked_ndcg_pair,
    "beta+noise": beta_noise_pair,
}


def wilson(successes: int, trials: int) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion."""
    z = 1.959963984540054
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (
        z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    )
    return centre - half, centre + half


def rate(successes: int, trials: int) -> str:
    low, high = wilson(successes, trials)
    return f"{successes / trials:.3f} [{low:.3f}, {high:.3f}]"


def redecide(result: Comparison, min_effect: float) -> Decision:
    """The verdict the same statistics give under another minimum effect."""
    return overall_decision(
        decide(
            ci_low=m.ci_low,
            ci_high=m.ci_high,
            p_adjusted=m.p_adjusted,
            alpha=result.alpha,
            min_effect=min_effect,
        )
        for m in result.metrics
    )


def naive_fails(baseline: pd.DataFrame, candidate: pd.DataFrame) -> tuple[bool, bool]:
    """(any drop of a mean, a drop of a mean by more than 10 %) on ``ndcg@10``."""
    before, after = baseline["ndcg@10"].mean(), candidate["ndcg@10"].mean()
    return bool(after < before), bool(after < 0.9 * before)


def false_fails(seeds: int, queries: int, resamples: int) -> None:
    print(f"\n## False fails: same behaviour, {queries} queries, {seeds} seeds, alpha {ALPHA}")
    print("(rate [95 % Wilson CI]; the gate must stay <= alpha)")
    for name, model in MODELS.items():
        regressions = {0.0: 0, 0.01: 0}
        significant = naive_any = naive_ten = 0
        start = time.perf_counter()
        for seed in range(seeds):
            baseline, candidate = model(queries, rng=np.random.default_rng(seed))
            result = compare_runs(
                baseline, candidate, PairedTestSettings(resamples=resamples, seed=seed)
            )
            for min_effect in regressions:
                regressions[min_effect] += redecide(result, min_effect) is Decision.REGRESSION
            significant += any(m.p_adjusted < ALPHA for m in result.metrics)
            any_drop, ten_percent = naive_fails(baseline, candidate)
            naive_any += any_drop
            naive_ten += ten_percent
        elapsed = time.perf_counter() - start
        print(f"- {name} ({elapsed:.1f} s):")
        for min_effect, count in regressions.items():
            print(f"    gate regression, min_effect {min_effect:g}: {rate(count, seeds)}")
        print(f"    p_adjusted < alpha either direction (FWER): {rate(significant, seeds)}")
        print(f"    'fail on any drop of the mean': {rate(naive_any, seeds)}")
        print(f"    'fail on a drop > 10 %': {rate(naive_ten, seeds)}")


def sparse_changes(seeds: int, resamples: int, *, queries: int = 100) -> None:
    """Null runs where only k of the queries change, each by a random sign: Wilcoxon's level.

    Most per-query differences are then exactly 0; the Wilcoxon p-value must still keep
    its level (with 5 non-zero differences no two-sided p below 0.0625 exists).
    """
    print(f"\n## Few changed queries: {queries} queries, k changed by a random sign, {seeds} seeds")
    print("(rate [95 % Wilson CI]; p_wilcoxon < alpha must stay <= alpha)")
    ids = [f"q{i}" for i in range(queries)]
    for changed in (5, 6, 8):
        significant = regressions = 0
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            base = rng.beta(2, 2, queries)
            cand = base.copy()
            rows = rng.choice(queries, changed, replace=False)
            steps = rng.choice([-1.0, 1.0], changed) * rng.uniform(0.01, 0.3, changed)
            cand[rows] = base[rows] + steps
            result = compare_runs(
                pd.DataFrame({"ndcg@10": base}, index=ids),
                pd.DataFrame({"ndcg@10": cand}, index=ids),
                PairedTestSettings(resamples=resamples, seed=seed),
                decision_test="wilcoxon",
            )
            significant += result.metrics[0].p_wilcoxon < ALPHA
            regressions += result.decision is Decision.REGRESSION
        print(
            f"- k = {changed}: p_wilcoxon < alpha {rate(significant, seeds)}; "
            f"regression (decision_test='wilcoxon') {rate(regressions, seeds)}"
        )


def power(seeds: int, resamples: int) -> None:
    print(f"\n## Power and false fails by golden-set size ({seeds} seeds each)")
    print("(ranked nDCG@10+recall@10 model; gate min_effect 0.01; broken = every relevant")
    print(" document of that share of the queries is no longer retrieved)")
    for queries, share in ((300, 0.10), (300, 0.05), (100, 0.10), (30, 0.10)):
        caught = naive_caught = false_fail = naive_false_fail = 0
        for seed in range(seeds):
            rng = np.random.default_rng(1_000_000 + seed)
            baseline, candidate = ranked_ndcg_pair(queries, rng=rng)
            damaged, _ = break_queries(candidate, share=share, rng=rng)
            test = PairedTestSettings(resamples=resamples, seed=seed, min_effect=0.01)
            broken = compare_runs(baseline, damaged, test)
            same = compare_runs(baseline, candidate, test)
            caught += broken.decision is Decision.REGRESSION
            false_fail += same.decision is Decision.REGRESSION
            naive_caught += naive_fails(baseline, damaged)[1]
            naive_false_fail += naive_fails(baseline, candidate)[1]
        print(
            f"- {queries} queries, {share:.0%} broken: gate catches {rate(caught, seeds)}, "
            f"false fails {rate(false_fail, seeds)}; 'drop > 10 %' rule catches "
            f"{rate(naive_caught, seeds)}, false fails {rate(naive_false_fail, seeds)}"
        )


def coverage(seeds: int, resamples: int) -> None:
    print(f"\n## Interval coverage of the true mean difference (0), {seeds} seeds")
    print("(ranked nDCG@10 model, same behaviour; nominal 0.95)")
    for queries in (5, 10, 30, 100, 300):
        covered = dict.fromkeys(CI_METHODS, 0)
        for seed in range(seeds):
            rng = np.random.default_rng(2_000_000 + seed)
            baseline, candidate = ranked_ndcg_pair(queries, rng=rng)
            differences = (candidate - baseline)[["ndcg@10"]].to_numpy()
            if not differences.any():
                for method in covered:
                    covered[method] += 1
                continue
            boot = bootstrap_means(differences, resamples=resamples, rng=rng)
            for method, interval in CI_METHODS.items():
                low, high = interval(boot, differences, confidence=0.95)
                covered[method] += int(low[0] <= 0.0 <= high[0])
        print(
            f"- {queries:>3} queries: "
            + ", ".join(f"{method} {rate(count, seeds)}" for method, count in covered.items())
        )


def measure_sd() -> dict[str, float]:
    """sd of per-query nDCG@10 differences between real SciFact runs (embeds the corpus)."""
    import pytrec_eval

    from evalkit.embedding import load_embedder
    from evalkit.records import Document

    scifact = SHARED_DATA / "beir_scifact"
    reference = SHARED_DATA / "reference_values" / "scifact_test_bm25_top100.run"
    documents = [
        Document(id=row["_id"], text=row["text"], title=row.get("title", ""))
        for row in map(json.loads, (scifact / "corpus.jsonl").read_text().splitlines())
    ]
    texts = {
        row["_id"]: row["text"]
        for row in map(json.loads, (scifact / "queries.jsonl").read_text().splitlines())
    }
    qrels: dict[str, dict[str, int]] = {}
    for line in (scifact / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        query_id, doc_id, grade = line.strip().split("\t")
        qrels.setdefault(query_id, {})[doc_id] = int(grade)
    bm25: dict[str, dict[str, float]] = {}
    for line in reference.read_text().splitlines():
        query_id, _, doc_id, _, score, _ = line.split()
        bm25.setdefault(query_id, {})[doc_id] = float(score)

    embedder = load_embedder()
    start = time.perf_counter()
    doc_vectors = embedder.embed([doc.content for doc in documents])
    query_ids = sorted(qrels)
    similarity = embedder.embed([texts[q] for q in query_ids]) @ doc_vectors.T
    print(f"embedded {len(documents)} documents in {time.perf_counter() - start:.0f} s")
    doc_ids = np.array([doc.id for doc in documents])
    top = np.argsort(-similarity, axis=1)[:, :100]
    dense = {
        q: {doc_ids[j]: float(similarity[i, j]) for j in top[i]} for i, q in enumerate(query_ids)
    }
    fused: dict[str, dict[str, float]] = {}
    for q in query_ids:
        scores: dict[str, float] = {}
        for run in (bm25.get(q, {}), dense[q]):
            for rank, doc_id in enumerate(sorted(run, key=lambda d, r=run: (-r[d], d)), 1):
                scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (60 + rank)
        fused[q] = scores
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"})

    def ndcg(run: dict[str, dict[str, float]]) -> np.ndarray:
        values = evaluator.evaluate(run)
        return np.array([values.get(q, {}).get("ndcg_cut_10", 0.0) for q in query_ids])

    base = ndcg(bm25)
    spreads = {}
    for label, run in (("BM25+dense (RRF)", fused), ("dense (all-MiniLM-L6-v2)", dense)):
        other = ndcg(run)
        key = f"SciFact nDCG@10, BM25 vs {label}"
        spreads[key] = float(np.std(other - base, ddof=1))
        print(
            f"- {key}: means {base.mean():.4f} -> {other.mean():.4f}, "
            f"sd of differences {spreads[key]:.4f}, unchanged queries "
            f"{np.mean(other == base):.1%}"
        )
    return spreads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--power-seeds", type=int, default=500)
    parser.add_argument("--coverage-seeds", type=int, default=1000)
    parser.add_argument("--measure-sd", action="store_true")
    parser.add_argument(
        "--sparse-seeds",
        type=int,
        default=0,
        help="also measure the Wilcoxon test when only a few queries change (2000 in the docs)",
    )
    args = parser.parse_args()

    false_fails(args.seeds, args.queries, args.resamples)
    power(args.power_seeds, args.resamples)
    coverage(args.coverage_seeds, args.resamples)
    if args.sparse_seeds:
        sparse_changes(args.sparse_seeds, args.resamples)
    spreads = None
    if args.measure_sd:
        print("\n## Spread of per-query differences between real runs")
        spreads = measure_sd()
    print("\n## Power table: queries needed, 80 % power, one-sided alpha 0.05")
    print(power_table_markdown(power_table(spreads)))
    print("## Same, at the gate's own level (one-sided 0.025 = two-sided 0.05 / 95 % CI)")
    print(power_table_markdown(power_table(spreads, alpha=0.025)))


if __name__ == "__main__":
    main()
