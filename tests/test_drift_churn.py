"""Label-free churn signals: Jaccard@k, RBO_ext, top-1 score shift, low-confidence share."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from evalkit.drift import low_confidence_share, top1_score_shift
from evalkit.errors import ConfigError, InputError
from evalkit.metrics.overlap import (
    jaccard_at_k,
    jaccard_at_k_many,
    rank_biased_overlap,
    rank_biased_overlap_many,
)


def _naive_rbo_ext(first: list[str], second: list[str], p: float) -> float:
    """Webber, Moffat & Zobel (2010) eq. 32, written out loop by loop."""
    short, long = (first, second) if len(first) <= len(second) else (second, first)
    s, ell = len(short), len(long)
    if ell == 0:
        return 1.0
    if s == 0:
        return 0.0

    def overlap(depth: int) -> int:
        return len(set(short[:depth]) & set(long[:depth]))

    x_s, x_l = overlap(s), overlap(ell)
    agreement = sum(overlap(d) / d * p**d for d in range(1, ell + 1))
    extension = sum(x_s * (d - s) / (s * d) * p**d for d in range(s + 1, ell + 1))
    return (1 - p) / p * (agreement + extension) + ((x_l - x_s) / ell + x_s / s) * p**ell


def test_jaccard_by_hand() -> None:
    assert jaccard_at_k(["a", "b", "c"], ["b", "c", "d"], 3) == pytest.approx(2 / 4)
    assert jaccard_at_k(["a", "b", "c"], ["b", "c", "d"], 1) == 0.0
    assert jaccard_at_k(["a", "b", "c"], ["c", "b", "a"], 3) == 1.0
    assert jaccard_at_k(["a", "b"], ["a", "b", "c", "d"], 10) == pytest.approx(2 / 4)
    assert jaccard_at_k([], [], 5) == 1.0
    assert jaccard_at_k(["a"], [], 5) == 0.0


def test_jaccard_many_is_one_value_per_query() -> None:
    first = [["a", "b"], ["x"], [], [1, 2, 3]]
    second = [["b", "a"], ["y"], [], [3, 4, 5]]
    np.testing.assert_allclose(jaccard_at_k_many(first, second, 3), [1.0, 0.0, 1.0, 1 / 5])


def test_duplicate_ids_count_once_at_their_first_rank() -> None:
    assert jaccard_at_k(["a", "a", "b"], ["a", "b"], 2) == pytest.approx(1.0)
    assert rank_biased_overlap(["a", "a", "b"], ["a", "b"]) == pytest.approx(1.0)


def test_rbo_equal_lengths_by_hand() -> None:
    # X = 0, 2, 3: (3/3)·0.9³ + (0.1/0.9)·(0 + (2/2)·0.9² + (3/3)·0.9³) = 0.729 + 0.171 = 0.9
    assert rank_biased_overlap(["a", "b", "c"], ["b", "a", "c"], p=0.9) == pytest.approx(0.9)
    # X = 1, 1, 1: (1/3)·0.729 + (1/9)·(0.9 + 0.405 + 0.243) = 0.243 + 0.172 = 0.415
    assert rank_biased_overlap(["a", "b", "c"], ["a", "d", "e"], p=0.9) == pytest.approx(0.415)


def test_rbo_uneven_lengths_by_hand() -> None:
    # S = [a, b] (s = 2), L = [a, c, b] (l = 3); X1 = 1, X2 = 1, X3 = 2.
    # (1/9)·[0.9 + 0.5·0.81 + (2/3)·0.729 + 1·(3-2)/(2·3)·0.729] + ((2-1)/3 + 1/2)·0.729
    #   = (1/9)·1.9125 + 0.6075 = 0.82
    assert rank_biased_overlap(["a", "b"], ["a", "c", "b"], p=0.9) == pytest.approx(0.82)
    assert rank_biased_overlap(["a", "c", "b"], ["a", "b"], p=0.9) == pytest.approx(0.82)


def test_rbo_known_properties() -> None:
    ranking = [f"d{i}" for i in range(25)]
    assert rank_biased_overlap(ranking, ranking) == pytest.approx(1.0)
    assert rank_biased_overlap(ranking, [f"e{i}" for i in range(25)]) == 0.0
    assert rank_biased_overlap(["a"], ["a"]) == pytest.approx(1.0)
    assert rank_biased_overlap([], []) == 1.0
    assert rank_biased_overlap(["a"], []) == 0.0
    swapped_top = [ranking[1], ranking[0], *ranking[2:]]
    swapped_bottom = [*ranking[:23], ranking[24], ranking[23]]
    assert rank_biased_overlap(ranking, swapped_top) < rank_biased_overlap(ranking, swapped_bottom)


def test_rbo_depth_truncates_both_lists() -> None:
    assert rank_biased_overlap(["a", "b", "x"], ["a", "b", "y"], depth=2) == pytest.approx(1.0)


rankings = st.lists(st.sampled_from("abcdefghij"), max_size=10, unique=True)


@settings(max_examples=80, deadline=None)
@given(first=rankings, second=rankings, p=st.sampled_from([0.5, 0.8, 0.9, 0.98]))
def test_rbo_matches_the_loop_formula(first: list[str], second: list[str], p: float) -> None:
    value = rank_biased_overlap(first, second, p=p)
    assert value == pytest.approx(_naive_rbo_ext(first, second, p), abs=1e-12)
    assert value == pytest.approx(rank_biased_overlap(second, first, p=p), abs=1e-12)
    assert 0.0 <= value <= 1.0


@settings(max_examples=30, deadline=None)
@given(pairs=st.lists(st.tuples(rankings, rankings), max_size=8), k=st.integers(1, 12))
def test_many_equals_one_by_one(pairs: list[tuple[list[str], list[str]]], k: int) -> None:
    first = [pair[0] for pair in pairs]
    second = [pair[1] for pair in pairs]
    rbo = rank_biased_overlap_many(first, second)
    jaccard = jaccard_at_k_many(first, second, k)
    assert rbo.shape == jaccard.shape == (len(pairs),)
    for index, (a, b) in enumerate(pairs):
        assert rbo[index] == pytest.approx(rank_biased_overlap(a, b), abs=1e-12)
        expected = len(set(a[:k]) & set(b[:k])) / max(len(set(a[:k]) | set(b[:k])), 1)
        if not a[:k] and not b[:k]:
            expected = 1.0
        assert jaccard[index] == pytest.approx(expected)


def test_churn_input_errors() -> None:
    with pytest.raises(InputError, match="one ranking per query"):
        jaccard_at_k_many([["a"]], [["a"], ["b"]], 1)
    with pytest.raises(InputError, match="not one string"):
        jaccard_at_k("abc", "abd", 2)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        jaccard_at_k(["a"], ["a"], 0)
    with pytest.raises(ConfigError):
        rank_biased_overlap(["a"], ["a"], p=1.0)


def test_top1_score_shift_is_scipy_ks() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(0.8, 0.05, 300)
    current = rng.normal(0.75, 0.05, 250)
    result = top1_score_shift(reference, current)
    expected = stats.ks_2samp(reference, current)
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.is_drift
    assert result.method == "top1_score_ks"
    assert (result.n_reference, result.n_current) == (300, 250)
    assert result.effect_size == pytest.approx(np.median(current) - np.median(reference))
    same = top1_score_shift(reference, rng.normal(0.8, 0.05, 250))
    assert not same.is_drift


def test_top1_score_shift_rejects_empty_or_nan() -> None:
    with pytest.raises(InputError, match="empty"):
        top1_score_shift([], [0.5])
    with pytest.raises(InputError, match="NaN"):
        top1_score_shift([0.5, float("nan")], [0.5])


def test_low_confidence_share() -> None:
    assert low_confidence_share([0.2, 0.5, 0.7, 0.9], threshold=0.6) == 0.5
    assert low_confidence_share([0.6], threshold=0.6) == 0.0
    with pytest.raises(InputError):
        low_confidence_share([], threshold=0.5)
