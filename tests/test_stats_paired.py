"""Paired comparison engine: hand-computed values, oracles, edge cases and errors."""

from __future__ import annotations

import itertools
import json
import math
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

import evalkit.stats
from evalkit.errors import ConfigError, EvalkitError, InputError
from evalkit.stats import (
    Comparison,
    Decision,
    MetricComparison,
    PairedTestSettings,
    _resampling,
    compare_runs,
    holm_adjust,
    worst_queries,
)
from evalkit.stats._resampling import (
    bca_interval,
    bootstrap_means,
    percentile_interval,
    sign_flip_pvalues,
)
from evalkit.stats.paired import _wilcoxon_pvalues
from evalkit.stats.simulation import beta_noise_pair


def frame(values: dict[str, list[float]], ids: list[str] | None = None) -> pd.DataFrame:
    length = len(next(iter(values.values())))
    index = ids if ids is not None else [f"q{i}" for i in range(length)]
    return pd.DataFrame(values, index=pd.Index(index, name="query_id"))


def test_public_surface_is_exported() -> None:
    required = {
        "compare_runs",
        "Comparison",
        "MetricComparison",
        "Decision",
        "worst_queries",
        "queries_needed",
        "power_table",
        "to_junit_xml",
        "to_markdown",
    }
    assert required <= set(evalkit.stats.__all__)
    for name in evalkit.stats.__all__:
        assert getattr(evalkit.stats, name) is not None


def test_hand_computed_means_delta_effect_size() -> None:
    baseline = frame({"ndcg@10": [0.5, 0.5, 0.5]})
    candidate = frame({"ndcg@10": [0.6, 0.7, 0.8]})
    result = compare_runs(baseline, candidate, PairedTestSettings(resamples=2000))
    assert result.ci_method == "percentile"
    metric = result.metric("ndcg@10")
    assert metric.n == 3
    assert metric.baseline_mean == pytest.approx(0.5)
    assert metric.candidate_mean == pytest.approx(0.7)
    assert metric.delta == pytest.approx(0.2)
    assert metric.sd_diff == pytest.approx(0.1)
    assert metric.effect_size == pytest.approx(2.0)
    assert list(metric.differences) == pytest.approx([0.1, 0.2, 0.3])
    assert list(metric.differences.index) == ["q0", "q1", "q2"]
    # Every difference is positive: the exact two-sided sign-flip p-value is 2 / 2**3.
    assert metric.p_permutation == pytest.approx(0.25, abs=0.03)
    # Resampled means are accumulated in float32: bounds hold to that precision.
    assert metric.ci_low >= 0.1 - 1e-6
    assert metric.ci_high <= 0.3 + 1e-6


def test_identical_runs_pass_even_with_zero_min_effect() -> None:
    baseline, _ = beta_noise_pair(200, rng=np.random.default_rng(1))
    baseline["recall@10"] = baseline["ndcg@10"] ** 2
    result = compare_runs(
        baseline, baseline.copy(), PairedTestSettings(min_effect=0.0, resamples=500)
    )
    assert result.decision is Decision.PASS
    for metric in result.metrics:
        assert (metric.ci_low, metric.ci_high) == (0.0, 0.0)
        assert metric.p_permutation == 1.0
        assert metric.p_wilcoxon == 1.0
        assert metric.p_adjusted == 1.0
        assert metric.effect_size == 0.0
        assert metric.queries_needed is None


def test_identical_single_query_passes() -> None:
    one = frame({"mrr": [0.25]})
    assert compare_runs(one, one, PairedTestSettings(resamples=100)).decision is Decision.PASS


def test_five_queries_with_a_real_small_drop_are_inconclusive() -> None:
    rng = np.random.default_rng(5)
    baseline = frame({"ndcg@10": list(rng.uniform(0.3, 0.9, 5))})
    candidate = baseline - 0.03 + rng.normal(0.0, 0.03, (5, 1))
    result = compare_runs(baseline, candidate, PairedTestSettings(min_effect=0.01, resamples=4000))
    metric = result.metric("ndcg@10")
    assert metric.decision is Decision.INCONCLUSIVE
    assert result.decision is Decision.INCONCLUSIVE
    assert metric.queries_needed is not None
    assert metric.queries_needed > 5
    assert "min_effect 0.01" in metric.queries_needed_note


def test_five_queries_cannot_regress_however_large_the_drop() -> None:
    baseline = frame({"ndcg@10": [0.9, 0.8, 0.95, 0.7, 0.85]})
    candidate = baseline - 0.5
    metric = compare_runs(baseline, candidate, PairedTestSettings(resamples=4000)).metric("ndcg@10")
    # 2 of the 32 sign vectors reach the observed |sum|: p = 1/16 > 0.05.
    assert metric.p_permutation == pytest.approx(1 / 16, abs=0.012)
    assert metric.decision is Decision.INCONCLUSIVE


def test_drop_on_a_tenth_of_the_queries_is_a_regression_listing_them() -> None:
    rng = np.random.default_rng(11)
    n = 300
    baseline = frame({"ndcg@10": list(rng.uniform(0.4, 1.0, n))})
    candidate = baseline + rng.normal(0.0, 0.02, (n, 1))
    broken = sorted(rng.choice(baseline.index.to_numpy(), size=30, replace=False))
    candidate.loc[broken, "ndcg@10"] = 0.0
    result = compare_runs(baseline, candidate, PairedTestSettings(min_effect=0.01, resamples=2000))
    assert result.decision is Decision.REGRESSION
    metric = result.metric("ndcg@10")
    assert metric.decision is Decision.REGRESSION
    assert metric.ci_high < -0.01
    worst = worst_queries(result, "ndcg@10", n=30)
    assert sorted(drop.query_id for drop in worst) == broken
    assert [drop.delta for drop in worst] == sorted(drop.delta for drop in worst)
    first = worst[0]
    assert first.candidate == 0.0
    assert first.delta == pytest.approx(-first.baseline)
    assert first.lost_docs == ()


def test_worst_queries_lists_only_queries_that_got_worse() -> None:
    baseline = frame({"ndcg@10": [0.5, 0.5, 0.5, 0.5]}, ids=["d", "c", "b", "a"])
    candidate = frame({"ndcg@10": [0.4, 0.6, 0.4, 0.3]}, ids=["d", "c", "b", "a"])
    result = compare_runs(baseline, candidate, PairedTestSettings(resamples=200))
    worst = worst_queries(result, "ndcg@10", n=10)
    assert [drop.query_id for drop in worst] == ["a", "b", "d"]
    assert worst[0].delta == pytest.approx(-0.2)
    assert worst_queries(result, "ndcg@10", n=1)[0].query_id == "a"
    assert worst_queries(result, "ndcg@10", n=0) == ()


def test_mismatched_query_sets_are_reported_and_compared_on_the_shared_ones() -> None:
    rng = np.random.default_rng(3)
    baseline = frame({"ndcg@10": list(rng.uniform(size=6))}, ids=list("abcdef"))
    candidate = frame({"ndcg@10": list(rng.uniform(size=5))}, ids=list("cdefg"))
    result = compare_runs(baseline, candidate, PairedTestSettings(resamples=500))
    assert result.n_shared == 4
    assert result.only_in_baseline == ("a", "b")
    assert result.only_in_candidate == ("g",)
    assert result.n_dropped == 3
    shared = list("cdef")
    reference = compare_runs(
        baseline.loc[shared], candidate.loc[shared], PairedTestSettings(resamples=500)
    )
    assert result.metrics == reference.metrics
    payload = result.to_dict()
    assert payload["only_in_baseline"] == ["a", "b"]
    assert payload["only_in_candidate"] == ["g"]
    assert payload["n_shared"] == 4


def test_row_order_and_id_types_do_not_change_the_result() -> None:
    rng = np.random.default_rng(4)
    baseline = pd.DataFrame({"query_id": [3, 1, 2, 4], "mrr": rng.uniform(size=4)})
    candidate = pd.DataFrame({"query_id": ["4", "2", "1", "3"], "mrr": rng.uniform(size=4)})
    result = compare_runs(baseline, candidate, PairedTestSettings(resamples=300))
    assert result.n_shared == 4
    assert result.metrics[0].query_ids == ("1", "2", "3", "4")
    shuffled = compare_runs(
        baseline.iloc[::-1], candidate.iloc[::-1], PairedTestSettings(resamples=300)
    )
    assert shuffled.metrics == result.metrics


def test_seed_is_recorded_and_reproducible() -> None:
    baseline, candidate = beta_noise_pair(100, rng=np.random.default_rng(7))
    first = compare_runs(baseline, candidate, PairedTestSettings(seed=42, resamples=999))
    again = compare_runs(baseline, candidate, PairedTestSettings(seed=42, resamples=999))
    other = compare_runs(baseline, candidate, PairedTestSettings(seed=43, resamples=999))
    assert first.seed == 42
    assert first.to_dict()["seed"] == 42
    assert first.to_dict()["resamples"] == 999
    assert first.metrics == again.metrics
    assert first.metrics[0].ci_low != other.metrics[0].ci_low


def test_to_dict_is_json_ready_and_complete() -> None:
    baseline, candidate = beta_noise_pair(50, rng=np.random.default_rng(8))
    payload = compare_runs(
        baseline, candidate, PairedTestSettings(resamples=300, min_effect=0.02)
    ).to_dict()
    decoded = json.loads(json.dumps(payload, allow_nan=False))
    top = {"decision", "n_shared", "only_in_baseline", "only_in_candidate", "alpha"}
    top |= {"min_effect", "resamples", "seed", "confidence", "metrics"}
    assert top <= decoded.keys()
    per_metric = {
        "decision",
        "delta",
        "ci_low",
        "ci_high",
        "p_permutation",
        "p_wilcoxon",
        "p_adjusted",
        "effect_size",
        "n",
        "baseline_mean",
        "candidate_mean",
        "queries_needed",
    }
    assert per_metric <= decoded["metrics"]["ndcg@10"].keys()
    assert decoded["decision"] in {"pass", "regression", "inconclusive"}


def test_holm_adjustment_hand_checked() -> None:
    # Sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> max(0.06, 0.04).
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([0.5, 0.7]) == pytest.approx([1.0, 1.0])
    assert holm_adjust([0.2]) == pytest.approx([0.2])
    assert holm_adjust([]).size == 0


def textbook_holm(p_values: list[float]) -> list[float]:
    """Holm (1979) step by step: the i-th smallest p times (m - i + 1), monotone, capped."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=12))
def test_holm_matches_the_textbook_procedure(p_values: list[float]) -> None:
    assert holm_adjust(p_values) == pytest.approx(textbook_holm(p_values), abs=1e-12)


def test_holm_matches_statsmodels() -> None:
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p_values = [0.001, 0.2, 0.013, 0.04, 0.04, 0.9, 0.0125]
    expected = multitest.multipletests(p_values, method="holm")[1]
    assert holm_adjust(p_values) == pytest.approx(expected, abs=1e-12)


def test_compare_runs_holm_adjusts_the_permutation_p_values_across_measures() -> None:
    rng = np.random.default_rng(9)
    n = 80
    baseline = pd.DataFrame(rng.uniform(size=(n, 3)), columns=["ndcg@10", "mrr", "map"])
    candidate = baseline + rng.normal([-0.03, 0.0, -0.01], 0.1, size=(n, 3))
    result = compare_runs(baseline, candidate, PairedTestSettings(resamples=2000))
    raw = [m.p_permutation for m in result.metrics]
    assert [m.p_adjusted for m in result.metrics] == pytest.approx(list(holm_adjust(raw)))
    by_wilcoxon = compare_runs(
        baseline, candidate, PairedTestSettings(resamples=2000), decision_test="wilcoxon"
    )
    raw_w = [m.p_wilcoxon for m in by_wilcoxon.metrics]
    assert [m.p_adjusted for m in by_wilcoxon.metrics] == pytest.approx(list(holm_adjust(raw_w)))
    assert by_wilcoxon.decision_test == "wilcoxon"


def exact_sign_flip_p(differences: np.ndarray) -> float:
    signs = np.array(list(itertools.product([-1.0, 1.0], repeat=differences.size)))
    flipped = np.abs(signs @ differences)
    observed = abs(differences.sum())
    return float(np.mean(flipped >= observed - 1e-12))


@pytest.mark.parametrize("n", [3, 6, 8, 10])
@pytest.mark.parametrize("discrete", [False, True])
def test_permutation_p_agrees_with_exact_enumeration(n: int, discrete: bool) -> None:
    rng = np.random.default_rng(n + 100 * discrete)
    raw = rng.normal(0.15, 0.3, size=n)
    differences = np.round(raw * 4) / 4 if discrete else raw
    resamples = 20_000
    estimated = sign_flip_pvalues(
        differences[:, np.newaxis], resamples=resamples, rng=np.random.default_rng(1)
    )[0]
    exact = exact_sign_flip_p(differences)
    error = 4 * math.sqrt(exact * (1 - exact) / resamples) + 2 / resamples
    assert estimated == pytest.approx(exact, abs=error)


def test_permutation_p_never_zero_and_shared_across_measures() -> None:
    differences = np.column_stack([np.full(50, -0.2), np.zeros(50)])
    p = sign_flip_pvalues(differences, resamples=999, rng=np.random.default_rng(0))
    assert p[0] == pytest.approx(1 / 1000)
    assert p[1] == 1.0


def test_wilcoxon_matches_scipy_on_many_nonzero_differences() -> None:
    rng = np.random.default_rng(12)
    baseline = pd.DataFrame(rng.uniform(size=(80, 2)), columns=["ndcg@10", "recall@10"])
    candidate = baseline + rng.normal(-0.02, 0.1, (80, 2))
    candidate.loc[:9, "recall@10"] = baseline.loc[:9, "recall@10"]
    result = compare_runs(baseline, candidate, PairedTestSettings(resamples=200))
    for metric in result.metrics:
        expected = scipy.stats.wilcoxon(candidate[metric.measure] - baseline[metric.measure])
        assert metric.p_wilcoxon == pytest.approx(expected.pvalue)


def test_wilcoxon_is_exact_when_few_of_many_differences_are_nonzero() -> None:
    # Five drops among 95 unchanged queries: no two-sided p below 2 / 2**5 exists.
    ids = [f"q{i}" for i in range(100)]
    baseline = pd.DataFrame({"ndcg@10": np.full(100, 0.5)}, index=ids)
    candidate = baseline.copy()
    candidate.iloc[:5, 0] -= [0.1, 0.2, 0.05, 0.3, 0.15]
    result = compare_runs(
        baseline, candidate, PairedTestSettings(resamples=2000), decision_test="wilcoxon"
    )
    assert result.metrics[0].p_wilcoxon == pytest.approx(0.0625)
    assert result.decision != "regression"


def exact_signed_rank_p(differences: np.ndarray) -> float:
    ranks = scipy.stats.rankdata(np.abs(differences))
    signs = np.array(list(itertools.product([0.0, 1.0], repeat=differences.size)))
    centre = ranks.sum() / 2
    observed = abs(ranks[differences > 0].sum() - centre)
    return float(np.mean(np.abs(signs @ ranks - centre) >= observed - 1e-9))


@pytest.mark.parametrize("n", [1, 4, 9, 12])
@pytest.mark.parametrize("discrete", [False, True])
def test_wilcoxon_agrees_with_exact_enumeration_ties_and_zeros_included(
    n: int, discrete: bool
) -> None:
    rng = np.random.default_rng(n + 100 * discrete)
    raw = rng.normal(0.1, 0.3, size=n)
    differences = np.round(raw * 4) / 4 if discrete else raw
    nonzero = differences[differences != 0.0]
    expected = exact_signed_rank_p(nonzero) if nonzero.size else 1.0
    padded = np.concatenate([differences, np.zeros(40)])
    assert _wilcoxon_pvalues(padded[:, np.newaxis])[0] == pytest.approx(expected)
    if not discrete:
        exact = scipy.stats.wilcoxon(differences, method="exact").pvalue
        assert _wilcoxon_pvalues(differences[:, np.newaxis])[0] == pytest.approx(exact)


def test_bca_interval_matches_scipy_bootstrap() -> None:
    rng = np.random.default_rng(13)
    sample = rng.exponential(size=40) - 0.8
    expected = scipy.stats.bootstrap(
        (sample,), np.mean, n_resamples=20_000, method="BCa", rng=np.random.default_rng(0)
    ).confidence_interval
    boot = bootstrap_means(sample[:, np.newaxis], resamples=20_000, rng=np.random.default_rng(1))
    low, high = bca_interval(boot, sample[:, np.newaxis], confidence=0.95, expand=False)
    width = expected.high - expected.low
    assert low[0] == pytest.approx(expected.low, abs=0.03 * width)
    assert high[0] == pytest.approx(expected.high, abs=0.03 * width)


@pytest.mark.parametrize("method", ["bca", "percentile"])
def test_bootstrap_interval_covers_the_true_mean_about_95_percent(method: str) -> None:
    rng = np.random.default_rng(14)
    trials, n = 400, 60
    true_mean = 0.02
    covered = 0
    interval = {"bca": bca_interval, "percentile": percentile_interval}[method]
    for _ in range(trials):
        # Skewed, IR-like differences: mostly small, a few large losses and gains.
        sample = rng.gamma(0.5, 0.2, size=n) - 0.1 + true_mean
        boot = bootstrap_means(sample[:, np.newaxis], resamples=1000, rng=rng)
        low, high = interval(boot, sample[:, np.newaxis], confidence=0.95)
        covered += int(low[0] <= true_mean <= high[0])
    coverage = covered / trials
    assert coverage == pytest.approx(0.95, abs=3 * math.sqrt(0.95 * 0.05 / trials))


def test_small_sample_expansion_widens_small_sets_and_vanishes_for_large_ones() -> None:
    rng = np.random.default_rng(22)
    # Expected widening sqrt(n / (n - 1)) * t_(n-1) / z: 1.0955 for 20 queries, ~1 for 2,000.
    for n in (20, 2000):
        factor = (
            math.sqrt(n / (n - 1)) * scipy.stats.t.ppf(0.975, n - 1) / scipy.stats.norm.ppf(0.975)
        )
        sample = rng.normal(0.0, 1.0, size=(n, 1))
        boot = bootstrap_means(sample, resamples=20_000, rng=rng)
        plain = percentile_interval(boot, sample, confidence=0.95, expand=False)
        expanded = percentile_interval(boot, sample, confidence=0.95)
        ratio = (expanded[1] - expanded[0])[0] / (plain[1] - plain[0])[0]
        assert ratio == pytest.approx(factor, rel=0.03)
    assert factor < 1.001


def test_a_single_changed_query_has_an_unbounded_interval() -> None:
    result = compare_runs(
        frame({"mrr": [0.5]}), frame({"mrr": [0.9]}), PairedTestSettings(resamples=100)
    )
    metric = result.metric("mrr")
    assert (metric.ci_low, metric.ci_high) == (-math.inf, math.inf)
    assert metric.decision is Decision.INCONCLUSIVE
    payload = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert payload["metrics"]["mrr"]["ci_low"] is None


def test_one_changed_query_among_many_has_a_bounded_interval() -> None:
    # gate.md: only a comparison on a single query is unbounded; one drop among 129
    # unchanged queries is bounded, and the interval still reaches 0 (most resamples miss it).
    baseline = [0.5] * 129
    candidate = [0.5] * 128 + [0.5 - 0.83]
    result = compare_runs(
        frame({"mrr": baseline}), frame({"mrr": candidate}), PairedTestSettings(resamples=2000)
    )
    metric = result.metric("mrr")
    assert math.isfinite(metric.ci_low)
    assert metric.ci_low == pytest.approx(-3 * 0.83 / 129, abs=0.004)
    assert metric.ci_high == pytest.approx(0.0, abs=1e-6)
    assert metric.decision is Decision.INCONCLUSIVE


def test_bootstrap_means_fill_every_chunk_for_large_query_sets() -> None:
    rng = np.random.default_rng(15)
    differences = rng.uniform(-1, 1, size=(50_000, 2))
    means = bootstrap_means(differences, resamples=37, rng=rng)
    assert means.shape == (37, 2)
    standard_error = differences.std(axis=0) / math.sqrt(50_000)
    assert np.all(np.abs(means - differences.mean(axis=0)) < 6 * standard_error)


def test_parallel_streams_give_the_same_numbers_as_running_them_in_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    differences = np.random.default_rng(25).normal(size=(5000, 3))
    threaded = _resampling.paired_resampling(
        differences, resamples=1001, rng=np.random.default_rng(7)
    )
    monkeypatch.setattr(_resampling, "_PARALLEL_MIN_DRAWS", 10**12)
    in_turn = _resampling.paired_resampling(
        differences, resamples=1001, rng=np.random.default_rng(7)
    )
    assert np.array_equal(threaded[0], in_turn[0])
    assert np.array_equal(threaded[1], in_turn[1])
    assert threaded[1].shape == (1001, 3)


def test_resampling_memory_stays_bounded() -> None:
    differences = np.random.default_rng(24).normal(size=(10_000, 5))
    tracemalloc.start()
    try:
        sign_flip_pvalues(differences, resamples=3000, rng=np.random.default_rng(0))
        bootstrap_means(differences, resamples=3000, rng=np.random.default_rng(0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # An unchunked 3,000 x 10,000 float32 matrix alone would take 120 MB.
    assert peak < 60 * 2**20


def test_bootstrap_resamples_are_multinomial_draws_of_the_queries() -> None:
    # With one-hot differences, a resample's mean of column j is (times query j drawn) / n.
    n, resamples = 7, 6000
    means = bootstrap_means(np.eye(n), resamples=resamples, rng=np.random.default_rng(23))
    counts = np.rint(means * n).astype(int)
    assert np.abs(means * n - counts).max() < 1e-4
    assert np.all(counts.sum(axis=1) == n)
    observed = np.bincount(counts.ravel(), minlength=n + 1)
    expected = scipy.stats.binom.pmf(np.arange(n + 1), n, 1 / n) * counts.size
    pooled_observed = [*observed[:4], observed[4:].sum()]
    pooled_expected = [*expected[:4], expected[4:].sum()]
    assert scipy.stats.chisquare(pooled_observed, pooled_expected).pvalue > 1e-4


def test_lower_is_better_measures_regress_when_they_rise() -> None:
    rng = np.random.default_rng(17)
    baseline = frame({"latency_ms": list(rng.uniform(10, 20, 200))})
    candidate = baseline + 5 + rng.normal(0, 1, (200, 1))
    result = compare_runs(
        baseline,
        candidate,
        PairedTestSettings(resamples=1000, min_effect=1.0),
        higher_is_better=False,
    )
    assert result.decision is Decision.REGRESSION
    worst = worst_queries(result, "latency_ms", n=3)
    assert all(drop.delta > 0 for drop in worst)


def test_zero_min_effect_inconclusive_sizes_for_the_observed_difference() -> None:
    baseline, candidate = beta_noise_pair(40, rng=np.random.default_rng(18))
    result = compare_runs(baseline, candidate, PairedTestSettings(resamples=1000, min_effect=0.0))
    metric = result.metric("ndcg@10")
    assert metric.decision is Decision.INCONCLUSIVE
    assert metric.queries_needed is not None
    assert "observed |delta|" in metric.queries_needed_note


def test_zero_min_effect_and_zero_mean_difference_explains_why_no_size() -> None:
    baseline = frame({"mrr": [0.5, 0.5, 0.5, 0.5]})
    candidate = frame({"mrr": [0.6, 0.4, 0.7, 0.3]})
    metric = compare_runs(baseline, candidate, PairedTestSettings(resamples=500)).metric("mrr")
    assert metric.decision is Decision.INCONCLUSIVE
    assert metric.queries_needed is None
    assert "set min_effect" in metric.queries_needed_note


def test_metric_comparison_is_frozen_and_values_read_only() -> None:
    baseline, candidate = beta_noise_pair(20, rng=np.random.default_rng(19))
    result = compare_runs(baseline, candidate, PairedTestSettings(resamples=100))
    metric = result.metrics[0]
    assert isinstance(result, Comparison)
    assert isinstance(metric, MetricComparison)
    with pytest.raises(AttributeError):
        metric.delta = 0.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        metric.baseline_values[0] = 1.0


def test_unknown_measure_lookup_names_the_known_ones() -> None:
    baseline, candidate = beta_noise_pair(10, rng=np.random.default_rng(20))
    result = compare_runs(baseline, candidate, PairedTestSettings(resamples=100))
    with pytest.raises(InputError, match="ndcg@10"):
        result.metric("map")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"test": PairedTestSettings(alpha=0.0)}, "alpha"),
        ({"test": PairedTestSettings(alpha=1.5)}, "alpha"),
        ({"confidence": 1.0}, "confidence"),
        ({"test": PairedTestSettings(min_effect=-0.1)}, "min_effect"),
        ({"test": PairedTestSettings(min_effect=float("nan"))}, "min_effect"),
        ({"test": PairedTestSettings(resamples=0)}, "resamples"),
        ({"test": PairedTestSettings(resamples=10.5)}, "resamples"),  # type: ignore[arg-type]
        ({"test": PairedTestSettings(seed=-1)}, "seed"),
        ({"ci_method": "student"}, "ci_method"),
        ({"decision_test": "ttest"}, "decision_test"),
    ],
)
def test_invalid_options_raise_config_error(options: dict[str, object], message: str) -> None:
    one = frame({"mrr": [0.1, 0.2]})
    with pytest.raises(ConfigError, match=message):
        compare_runs(one, one, **options)  # type: ignore[arg-type]


def test_invalid_inputs_raise_input_errors_that_say_what_to_do() -> None:
    good = frame({"ndcg@10": [0.1, 0.2], "mrr": [0.3, 0.4]})
    with pytest.raises(InputError, match="share no query id"):
        compare_runs(good, frame({"ndcg@10": [0.1], "mrr": [0.2]}, ids=["x"]))
    with pytest.raises(InputError, match=r"no finite ndcg@10 for queries q1"):
        compare_runs(good, frame({"ndcg@10": [0.1, float("nan")], "mrr": [0.3, 0.4]}))
    with pytest.raises(InputError, match="more than one row"):
        compare_runs(good, frame({"ndcg@10": [0.1, 0.2], "mrr": [0.1, 0.2]}, ids=["q0", "q0"]))
    with pytest.raises(InputError, match="pass measures="):
        compare_runs(good, frame({"ndcg@10": [0.1, 0.2]}))
    with pytest.raises(InputError, match=r"candidate has no column for measures \['mrr'\]"):
        compare_runs(good, frame({"ndcg@10": [0.1, 0.2]}), measures=["ndcg@10", "mrr"])
    with pytest.raises(InputError, match="DataFrame"):
        compare_runs(good, [0.1, 0.2])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="non-numeric"):
        compare_runs(good, frame({"ndcg@10": ["a", "b"], "mrr": [0.3, 0.4]}))
    with pytest.raises(InputError, match="repeated"):
        compare_runs(good, good, measures=["mrr", "mrr"])
    with pytest.raises(EvalkitError):
        compare_runs(good, good, measures=[])


def test_measures_subset_is_compared_in_the_given_order() -> None:
    baseline, candidate = beta_noise_pair(30, rng=np.random.default_rng(21))
    baseline["mrr"] = baseline["ndcg@10"]
    candidate["mrr"] = candidate["ndcg@10"]
    candidate["extra"] = 1.0
    result = compare_runs(
        baseline, candidate, PairedTestSettings(resamples=100), measures=["mrr", "ndcg@10"]
    )
    assert result.measures == ("mrr", "ndcg@10")
    single = compare_runs(baseline, candidate, PairedTestSettings(resamples=100), measures="mrr")
    assert single.measures == ("mrr",)


@pytest.mark.shared_data
def test_real_bm25_run_against_itself_and_against_a_damaged_copy(shared_data) -> None:  # type: ignore[no-untyped-def]
    reference = json.loads(
        (shared_data / "reference_values" / "scifact_test_bm25_top100.pytrec_eval.json").read_text()
    )
    per_query = reference["per_query"]
    values = pd.DataFrame(
        {"ndcg@10": {q: v["ndcg_cut_10"] for q, v in per_query.items()}}
    ).rename_axis("query_id")
    assert (
        compare_runs(values, values, PairedTestSettings(resamples=1000)).decision is Decision.PASS
    )
    damaged = values.copy()
    worst_hit = values.index[values["ndcg@10"] > 0][::10]
    damaged.loc[worst_hit, "ndcg@10"] = 0.0
    result = compare_runs(values, damaged, PairedTestSettings(resamples=2000, min_effect=0.01))
    assert result.decision is Decision.REGRESSION
    listed = {drop.query_id for drop in worst_queries(result, "ndcg@10", n=len(worst_hit))}
    assert listed == set(worst_hit)


def test_failed_queries_are_refused_or_compared_as_zero_never_dropped() -> None:
    ids = [f"q{i}" for i in range(40)]
    baseline = pd.DataFrame({"ndcg@10": 0.8}, index=ids)
    # The candidate failed on q0..q9: they have no values, like a stored partial run.
    candidate = pd.DataFrame({"ndcg@10": 0.8}, index=ids[10:])
    failed = ids[:10]
    with pytest.raises(
        evalkit.stats.FailedQueriesError, match="10 queries failed in the candidate"
    ):
        compare_runs(
            baseline, candidate, PairedTestSettings(resamples=500), failed_in_candidate=failed
        )
    comparison = compare_runs(
        baseline,
        candidate,
        PairedTestSettings(resamples=500),
        failed_in_candidate=failed,
        failed_as_zero=True,
    )
    assert comparison.only_in_baseline == ()
    assert comparison.n_shared == 40
    assert comparison.failed_in_candidate == tuple(sorted(failed))
    assert comparison.metric("ndcg@10").candidate_mean == pytest.approx(0.6)
    assert comparison.decision.value == "regression"
    # A failed baseline query counts as 0 on the baseline's side.
    swapped = compare_runs(
        candidate,
        baseline,
        PairedTestSettings(resamples=500),
        failed_in_baseline=failed,
        failed_as_zero=True,
    )
    assert swapped.metric("ndcg@10").baseline_mean == pytest.approx(0.6)
    with pytest.raises(ConfigError, match="higher_is_better"):
        compare_runs(
            baseline,
            candidate,
            failed_in_candidate=failed,
            failed_as_zero=True,
            higher_is_better=False,
        )
