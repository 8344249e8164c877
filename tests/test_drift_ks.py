"""Per-dimension KS statistics and p-values against scipy; Benjamini-Hochberg by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from evalkit.drift.ks import KSDrift, benjamini_hochberg, ks_p_values, ks_statistics


@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful:RuntimeWarning")
@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(1, 40),
    n=st.integers(1, 40),
    levels=st.sampled_from([3, 10, 1000]),
    seed=st.integers(0, 2**16),
)
def test_statistics_and_p_values_match_scipy_with_ties(
    m: int, n: int, levels: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    # Few distinct levels force many ties within and across the samples.
    reference = rng.integers(0, levels, (m, 5)).astype(float)
    current = rng.integers(0, levels, (n, 5)).astype(float) + (seed % 2)
    statistics = ks_statistics(reference, current)
    p_values = ks_p_values(statistics, reference, current)
    for column in range(5):
        expected = stats.ks_2samp(reference[:, column], current[:, column])
        assert statistics[column] == pytest.approx(expected.statistic, abs=1e-12)
        assert p_values[column] == pytest.approx(expected.pvalue, rel=1e-9)


def test_statistic_by_hand() -> None:
    reference = np.array([[1.0], [2.0], [3.0], [4.0]])
    current = np.array([[3.5], [5.0]])
    # ECDF gap is largest after 3: F_ref = 3/4, F_cur = 0.
    assert ks_statistics(reference, current)[0] == pytest.approx(0.75)


def test_benjamini_hochberg_by_hand_and_against_scipy() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.5])
    # Sorted 0.01, 0.03, 0.04, 0.5 -> times 4/rank: 0.04, 0.06, 0.0533, 0.5 -> running min
    # from the top: 0.04, 0.0533, 0.0533, 0.5.
    np.testing.assert_allclose(benjamini_hochberg(p), [0.04, 0.16 / 3, 0.16 / 3, 0.5])
    rng = np.random.default_rng(0)
    random_p = rng.random(200) ** 3
    np.testing.assert_allclose(
        benjamini_hochberg(random_p), stats.false_discovery_control(random_p)
    )
    assert benjamini_hochberg([]).size == 0


def test_detector_p_value_is_the_smallest_adjusted_p_value() -> None:
    rng = np.random.default_rng(3)
    reference = rng.standard_normal((80, 10))
    current = rng.standard_normal((80, 10))
    current[:, 0] += 0.7
    result = KSDrift().fit(reference).test(current)
    adjusted = stats.false_discovery_control(
        [stats.ks_2samp(reference[:, j], current[:, j]).pvalue for j in range(10)]
    )
    assert result.p_value == pytest.approx(adjusted.min())
    assert result.statistic == pytest.approx(
        max(stats.ks_2samp(reference[:, j], current[:, j]).statistic for j in range(10))
    )
    assert result.details["moved_dimensions"][0] == 0


def test_reported_dimensions_are_capped() -> None:
    rng = np.random.default_rng(4)
    reference = rng.standard_normal((100, 30))
    current = rng.standard_normal((100, 30)) + 1.0
    result = KSDrift(max_reported_dimensions=5).fit(reference).test(current)
    assert result.details["n_moved"] == 30
    assert len(result.details["moved_dimensions"]) == 5
    assert result.effect_size == 1.0
