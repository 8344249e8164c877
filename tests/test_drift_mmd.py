"""MMD² arithmetic against naive O(n²) formulas, and the permutation machinery."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.drift.base import (
    permutation_p_value,
    permuted_label_sums,
    random_assignments,
)
from evalkit.drift.mmd import (
    _kernel_label_forms,
    _mmd2_from_forms,
    _random_fourier_features,
    median_bandwidth,
    mmd2_unbiased,
    rbf_kernel,
)
from evalkit.errors import InputError


def _naive_mmd2(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
    """Gretton et al. (2012) eq. 3, term by term."""

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return math.exp(-float(np.sum((a - b) ** 2)) / (2.0 * bandwidth**2))

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2.0 * xy


def test_rbf_kernel_hand_values() -> None:
    x = np.array([[0.0, 0.0], [3.0, 4.0]])
    kernel = rbf_kernel(x, x, bandwidth=5.0)
    assert kernel[0, 0] == 1.0
    assert kernel[0, 1] == pytest.approx(math.exp(-25.0 / 50.0))


def test_mmd2_two_points_each_by_hand() -> None:
    # x = {0, 1}, y = {3, 4} on a line, bandwidth 1: k(d) = exp(-d²/2).
    x = np.array([[0.0], [1.0]])
    y = np.array([[3.0], [4.0]])
    k = [math.exp(-(d**2) / 2.0) for d in range(5)]
    expected = k[1] + k[1] - 2.0 * (k[3] + k[4] + k[2] + k[3]) / 4.0
    assert mmd2_unbiased(x, y, bandwidth=1.0) == pytest.approx(expected, rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(2, 12),
    n=st.integers(2, 12),
    dimension=st.integers(1, 5),
    bandwidth=st.floats(0.3, 5.0),
    seed=st.integers(0, 2**16),
)
def test_mmd2_matches_the_naive_formula(
    m: int, n: int, dimension: int, bandwidth: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, dimension))
    y = rng.standard_normal((n, dimension)) + 0.5
    assert mmd2_unbiased(x, y, bandwidth=bandwidth) == pytest.approx(
        _naive_mmd2(x, y, bandwidth), abs=1e-12
    )


@pytest.mark.parametrize("block_size", [1, 3, 17, 64, 1000])
def test_blocked_kernel_sums_equal_unblocked(block_size: int) -> None:
    rng = np.random.default_rng(1)
    pooled = rng.standard_normal((64, 5))
    labels = np.zeros((64, 4))
    labels[:30, 0] = 1.0
    for column in range(1, 4):
        labels[rng.choice(64, 30, replace=False), column] = 1.0
    kernel = rbf_kernel(pooled, pooled, bandwidth=2.0)
    quadratic, linear, total = _kernel_label_forms(
        pooled, labels, bandwidth=2.0, block_size=block_size
    )
    np.testing.assert_allclose(quadratic, np.einsum("ij,ik,kj->j", labels, kernel, labels))
    np.testing.assert_allclose(linear, labels.T @ kernel.sum(axis=1))
    assert total == pytest.approx(kernel.sum())
    unblocked = mmd2_unbiased(pooled[:30], pooled[30:], bandwidth=2.0, block_size=64)
    blocked = mmd2_unbiased(pooled[:30], pooled[30:], bandwidth=2.0, block_size=block_size)
    assert blocked == pytest.approx(unblocked, abs=1e-14)


def test_mmd2_rejects_mismatched_or_tiny_samples() -> None:
    with pytest.raises(InputError):
        mmd2_unbiased(np.zeros((3, 2)), np.zeros((3, 4)), bandwidth=1.0)
    with pytest.raises(InputError):
        mmd2_unbiased(np.zeros((1, 2)), np.zeros((3, 2)), bandwidth=1.0)


def test_median_bandwidth_by_hand_and_subsampled() -> None:
    points = np.array([[0.0], [1.0], [3.0]])  # distances 1, 2, 3
    assert median_bandwidth(points) == pytest.approx(2.0)
    assert median_bandwidth(np.zeros((5, 3))) == 1.0
    rng = np.random.default_rng(0)
    many = rng.standard_normal((3000, 4))
    estimate = median_bandwidth(many, max_points=400, rng=np.random.default_rng(1))
    # The median distance between two standard normals in 4-D is about sqrt(2 * 3.36).
    assert estimate == pytest.approx(math.sqrt(2 * 3.357), rel=0.05)


def test_random_fourier_features_approximate_the_kernel() -> None:
    rng = np.random.default_rng(2)
    points = rng.standard_normal((40, 6))
    features = _random_fourier_features(
        points, bandwidth=3.0, n_frequencies=4000, rng=np.random.default_rng(3)
    )
    approximation = features.astype(np.float64) @ features.T.astype(np.float64)
    np.testing.assert_allclose(np.diag(approximation), 1.0, atol=1e-5)
    np.testing.assert_allclose(approximation, rbf_kernel(points, points, bandwidth=3.0), atol=0.05)


def test_rff_forms_give_the_unbiased_statistic_of_the_feature_kernel() -> None:
    rng = np.random.default_rng(4)
    points = rng.standard_normal((30, 3))
    features = _random_fourier_features(
        points, bandwidth=1.5, n_frequencies=16, rng=np.random.default_rng(5)
    ).astype(np.float64)
    kernel = features @ features.T
    m = 12
    expected = (
        (kernel[:m, :m].sum() - np.trace(kernel[:m, :m])) / (m * (m - 1))
        + (kernel[m:, m:].sum() - np.trace(kernel[m:, m:])) / (18 * 17)
        - 2.0 * kernel[:m, m:].sum() / (m * 18)
    )
    sums = permuted_label_sums(features, m, n_permutations=5, rng=np.random.default_rng(0))
    value = _mmd2_from_forms(sums.square[:1], sums.cross[:1], sums.total, m, 18)[0]
    assert value == pytest.approx(expected, abs=1e-6)


def test_random_assignments_pick_exactly_n_reference_rows_uniformly() -> None:
    rng = np.random.default_rng(6)
    chunks = list(random_assignments(3, 10, 4000, rng, chunk=1500))
    assert [chunk.shape for chunk in chunks] == [(10, 1500), (10, 1500), (10, 1000)]
    labels = np.hstack(chunks)
    assert set(np.unique(labels)) == {0.0, 1.0}
    np.testing.assert_array_equal(labels.sum(axis=0), 3.0)
    np.testing.assert_allclose(labels.mean(axis=1), 0.3, atol=0.03)


@pytest.mark.parametrize(("n_pool", "n_reference"), [(60, 25), (61, 30), (97, 40), (128, 64)])
def test_cyclic_label_sums_equal_brute_force_over_all_shifts(n_pool: int, n_reference: int) -> None:
    """Fast FFT lengths (60, 128) and awkward ones (61, 97 are prime: the padded path)."""
    rng = np.random.default_rng(n_pool)
    features = rng.standard_normal((n_pool, 5)) + 2.0
    sums = permuted_label_sums(
        features, n_reference, n_permutations=10, rng=np.random.default_rng(42)
    )
    assert sums.scheme == "cyclic"
    assert sums.n_permutations == n_pool - 1
    order = np.random.default_rng(42).permutation(n_pool)
    base = (order < n_reference).astype(float)
    total = features.sum(axis=0)
    for shift in range(n_pool):
        labels = np.zeros(n_pool)
        labels[order] = np.roll(base, shift)
        reference_sum = labels @ features
        assert sums.square[shift] == pytest.approx(reference_sum @ reference_sum, rel=1e-9)
        assert sums.cross[shift] == pytest.approx(reference_sum @ total, rel=1e-9)
    assert sums.total == pytest.approx(total @ total)
    observed = features[:n_reference].sum(axis=0)
    assert sums.square[0] == pytest.approx(observed @ observed)


def test_cyclic_label_sums_in_float32_stay_accurate() -> None:
    rng = np.random.default_rng(7)
    features = (rng.standard_normal((5000, 8)) + 3.0).astype(np.float32)
    sums = permuted_label_sums(features, 2500, n_permutations=100, rng=rng)
    exact = features[:2500].astype(np.float64).sum(axis=0)
    assert sums.square[0] == pytest.approx(exact @ exact, rel=1e-6)


def test_random_label_sums_match_their_labels() -> None:
    rng = np.random.default_rng(8)
    features = rng.standard_normal((20, 3))
    sums = permuted_label_sums(features, 8, n_permutations=50, rng=np.random.default_rng(1))
    assert sums.scheme == "random"
    assert sums.n_permutations == 50
    replay = np.random.default_rng(1)
    labels = next(random_assignments(8, 20, 50, replay, chunk=10**6))
    reference_sums = labels.T @ features
    np.testing.assert_allclose(sums.square[1:], np.sum(reference_sums**2, axis=1))
    np.testing.assert_allclose(sums.cross[1:], reference_sums @ features.sum(axis=0))


def test_permutation_p_value_counts_the_observed_labelling() -> None:
    null = np.array([0.1, 0.5, 0.5, 0.9])
    assert permutation_p_value(0.5, null) == pytest.approx(4 / 5)
    assert permutation_p_value(1.0, null) == pytest.approx(1 / 5)
    assert permutation_p_value(0.0, null) == pytest.approx(1.0)
