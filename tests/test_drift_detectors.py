"""Each embedding detector on seeded synthetic Gaussians: no drift, drift, false-alarm rate."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from evalkit.drift import make_detector
from evalkit.drift.base import permutation_p_value

METHODS = ["auto", "mmd", "moments", "mmd_rff", "classifier", "ks", "mean_cosine"]
ALPHA = 0.05


@pytest.fixture(autouse=True)
def _single_thread_blas() -> Iterator[None]:
    with threadpool_limits(1):
        yield


def _gaussians(
    seed: int, *, n: int = 150, dimension: int = 16, shift: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian windows centred away from the origin, like embeddings of one domain."""
    rng = np.random.default_rng(seed)
    reference = rng.standard_normal((n, dimension)) + 1.0
    current = rng.standard_normal((n, dimension)) + 1.0
    current[:, :4] += shift
    return reference, current


@pytest.mark.parametrize("method", METHODS)
def test_same_distribution_is_not_drift(method: str) -> None:
    reference, current = _gaussians(1)
    result = make_detector(method, seed=3).fit(reference).test(current)
    assert not result.is_drift
    assert result.p_value > 0.1


@pytest.mark.parametrize("method", METHODS)
def test_shifted_distribution_is_drift(method: str) -> None:
    reference, current = _gaussians(2, shift=0.6)
    result = make_detector(method, seed=3).fit(reference).test(current)
    assert result.is_drift
    assert result.p_value < 0.01
    assert result.effect_size > 0.0


@pytest.mark.parametrize("method", ["mmd", "mmd_rff", "moments"])
def test_mmd_sees_a_change_of_spread_with_the_same_mean(method: str) -> None:
    rng = np.random.default_rng(4)
    reference = rng.standard_normal((200, 8))
    current = 1.6 * rng.standard_normal((200, 8))
    mmd = make_detector(method, seed=1).fit(reference).test(current)
    mean_only = make_detector("mean_cosine", seed=1).fit(reference).test(current)
    assert mmd.is_drift
    assert mmd.p_value < 0.01
    assert mean_only.p_value > 0.05


def _false_alarm_bound(trials: int) -> float:
    """alpha plus three Monte-Carlo standard deviations of a rate whose truth is alpha."""
    return ALPHA + 3.0 * math.sqrt(ALPHA * (1.0 - ALPHA) / trials)


@pytest.mark.parametrize(
    ("method", "settings"),
    [
        ("mmd", {"n_permutations": 200}),
        ("mmd_rff", {}),
        ("moments", {"n_permutations": 200}),
        ("auto", {}),
        ("classifier", {}),
        ("ks", {}),
        ("mean_cosine", {"n_permutations": 200}),
    ],
)
def test_false_alarm_rate_is_at_most_alpha(method: str, settings: dict[str, int]) -> None:
    trials = 100
    alarms = 0
    for trial in range(trials):
        rng = np.random.default_rng([7, trial])
        reference = rng.standard_normal((40, 8))
        current = rng.standard_normal((40, 8))
        detector = make_detector(method, alpha=ALPHA, seed=trial, **settings)
        alarms += detector.fit(reference).test(current).is_drift
    assert alarms / trials <= _false_alarm_bound(trials)


def test_permutation_p_values_are_uniform_under_no_drift() -> None:
    p_values = []
    for trial in range(100):
        rng = np.random.default_rng([8, trial])
        reference, current = rng.standard_normal((30, 4)), rng.standard_normal((30, 4))
        detector = make_detector("mean_cosine", n_permutations=99, seed=trial)
        p_values.append(detector.fit(reference).test(current).p_value)
    from scipy.stats import kstest

    assert kstest(p_values, "uniform").pvalue > 0.001


@pytest.mark.parametrize("method", ["mean_cosine", "mmd_rff"])
@pytest.mark.parametrize("data_seed", [4, 6])
def test_two_rows_per_window_of_noise_are_not_drift(method: str, data_seed: int) -> None:
    # 2 + 2 rows have 3 distinct splits: no p-value below about 1/3 is attainable.
    rng = np.random.default_rng(data_seed)
    reference = rng.standard_normal((2, 384)).astype(np.float32)
    current = rng.standard_normal((2, 384)).astype(np.float32)
    result = make_detector(method).fit(reference).test(current)
    assert not result.is_drift
    assert result.p_value > 0.25


@pytest.mark.parametrize("method", ["mean_cosine", "mmd_rff", "mmd", "moments"])
def test_two_rows_per_window_never_raise_a_false_alarm(method: str) -> None:
    alarms = 0
    for trial in range(100):
        rng = np.random.default_rng([11, trial])
        reference = rng.standard_normal((2, 64)).astype(np.float32)
        current = rng.standard_normal((2, 64)).astype(np.float32)
        alarms += make_detector(method, seed=trial).fit(reference).test(current).is_drift
    assert alarms == 0


def test_a_relabelling_tied_with_the_observed_one_counts_despite_rounding() -> None:
    observed = 1.0670030633848115
    null = np.array([1.0670030633848113, 0.5, 0.25])
    assert permutation_p_value(observed, null) == pytest.approx(2 / 4)
    assert permutation_p_value(observed, np.array([1.06, 0.5, 0.25])) == pytest.approx(1 / 4)


def test_unequal_window_sizes() -> None:
    rng = np.random.default_rng(9)
    reference = rng.standard_normal((300, 8)) + 1.0
    current = rng.standard_normal((50, 8)) + 1.0
    current[:, :4] += 0.8
    for method in METHODS:
        result = make_detector(method, seed=0).fit(reference).test(current)
        assert result.is_drift, method
        assert (result.n_reference, result.n_current) == (300, 50)


def test_mmd_switches_to_random_fourier_features_above_exact_max_pool() -> None:
    reference, current = _gaussians(3, n=60)
    small = make_detector("mmd", exact_max_pool=120).fit(reference).test(current)
    large = make_detector("mmd", exact_max_pool=119).fit(reference).test(current)
    assert small.details["estimator"] == "exact"
    assert large.details["estimator"] == "rff"
    assert large.details["n_features"] == 128


def test_mmd_large_pool_uses_every_cyclic_shift() -> None:
    reference, current = _gaussians(5, n=300)
    result = make_detector("mmd_rff", rff_permutations=100).fit(reference).test(current)
    assert result.details["permutations"] == "cyclic"
    assert result.details["n_permutations"] == 599
    assert result.p_value >= 1 / 600


def test_ks_reports_the_dimensions_that_moved() -> None:
    rng = np.random.default_rng(10)
    reference = rng.standard_normal((300, 12))
    current = rng.standard_normal((300, 12))
    current[:, [3, 7]] += 1.0
    result = make_detector("ks").fit(reference).test(current)
    assert result.is_drift
    assert sorted(result.details["moved_dimensions"]) == [3, 7]
    assert result.details["n_moved"] == 2
    assert result.effect_size == pytest.approx(2 / 12)


def test_mean_cosine_statistic_is_the_cosine_distance_of_the_means() -> None:
    reference = np.array([[1.0, 0.0], [1.0, 0.2], [1.0, -0.2]])
    current = np.array([[0.0, 1.0], [0.2, 1.0], [-0.2, 1.0]])
    result = make_detector("mean_cosine", n_permutations=10).fit(reference).test(current)
    assert result.statistic == pytest.approx(1.0)
    assert result.effect_size == pytest.approx(1.0)


def test_classifier_holdout_auc_and_p_value_match_sklearn_and_scipy() -> None:
    from scipy.stats import mannwhitneyu
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    reference, current = _gaussians(12, n=80, dimension=5, shift=0.3)
    result = make_detector("classifier", seed=4).fit(reference).test(current)
    features = np.vstack([reference, current])
    labels = np.repeat([0, 1], 80)
    train, test = train_test_split(np.arange(160), test_size=0.5, stratify=labels, random_state=4)
    scores = LogisticRegression(max_iter=1000).fit(features[train], labels[train])
    held_out = scores.decision_function(features[test])
    assert result.statistic == pytest.approx(roc_auc_score(labels[test], held_out))
    expected_p = mannwhitneyu(
        held_out[labels[test] == 1], held_out[labels[test] == 0], alternative="greater"
    ).pvalue
    assert result.p_value == pytest.approx(expected_p)
    assert result.details["n_held_out"] == 80


def test_classifier_permutation_null_uses_cross_validated_auc() -> None:
    from sklearn.metrics import roc_auc_score

    from evalkit.drift.classifier import out_of_fold_scores

    reference, current = _gaussians(11, n=40, dimension=4, shift=1.0)
    result = (
        make_detector("classifier", seed=2, null="permutation", n_permutations=10)
        .fit(reference)
        .test(current)
    )
    labels = np.repeat(np.array([0, 1], dtype=np.int8), 40)
    scores, fold_aucs = out_of_fold_scores(
        np.vstack([reference, current]), labels, n_splits=5, regularization=1.0, seed=2
    )
    assert result.statistic == pytest.approx(roc_auc_score(labels, scores))
    assert result.details["fold_auc"] == pytest.approx(fold_aucs.tolist(), abs=1e-6)
    assert result.p_value == pytest.approx(1 / 11)
    assert result.details["n_permutations"] == 10
