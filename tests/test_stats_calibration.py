"""The gate's error rates, measured on seeded simulated pairs of runs.

Null: baseline and candidate come from the same retriever behaviour (per-query noise only);
the gate must fail at most alpha of them, within Monte-Carlo error. Alternative: the
candidate lost every relevant document on 10 % of 300 queries; the gate must catch it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from evalkit.stats import (
    Comparison,
    Decision,
    PairedTestSettings,
    compare_runs,
    decide,
    overall_decision,
)
from evalkit.stats.simulation import beta_noise_pair, break_queries, ranked_ndcg_pair

ALPHA = 0.05
SEEDS = 200
QUERIES = 300
RESAMPLES = 1000
BOUND = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / SEEDS)
MIN_EFFECTS = (0.0, 0.01)
WIDE_TOLERANCE = 0.08

MODELS = {"ranked nDCG@10 + recall@10": ranked_ndcg_pair, "beta + noise": beta_noise_pair}


def verdict_at(result: Comparison, min_effect: float) -> Decision:
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


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.slow
def test_false_fail_rate_is_at_most_alpha(model: str) -> None:
    regressions = dict.fromkeys(MIN_EFFECTS, 0)
    significant = passes = 0
    for seed in range(SEEDS):
        baseline, candidate = MODELS[model](QUERIES, rng=np.random.default_rng(seed))
        result = compare_runs(
            baseline, candidate, PairedTestSettings(alpha=ALPHA, resamples=RESAMPLES, seed=seed)
        )
        for min_effect in MIN_EFFECTS:
            regressions[min_effect] += verdict_at(result, min_effect) is Decision.REGRESSION
        significant += any(m.p_adjusted < ALPHA for m in result.metrics)
        passes += verdict_at(result, WIDE_TOLERANCE) is Decision.PASS
    for count in regressions.values():
        assert count / SEEDS <= BOUND
    # The family-wise rate of significance in either direction is the test's own size.
    assert significant / SEEDS <= BOUND
    # With 300 queries the sd of the mean difference is about 0.3 / sqrt(300) = 0.017, so a
    # tolerance of 0.08 is ~2.7 standard errors beyond the interval's reach: pass is the norm.
    assert passes / SEEDS >= 0.9


def test_losing_the_relevant_documents_of_a_tenth_of_the_queries_is_caught() -> None:
    trials = 100
    caught = 0
    for seed in range(trials):
        rng = np.random.default_rng(10_000 + seed)
        baseline, candidate = ranked_ndcg_pair(QUERIES, rng=rng)
        damaged, _ = break_queries(candidate, share=0.1, rng=rng)
        result = compare_runs(
            baseline, damaged, PairedTestSettings(min_effect=0.01, resamples=RESAMPLES, seed=seed)
        )
        caught += result.decision is Decision.REGRESSION
    assert caught / trials >= 0.9
