"""The two-moment block permutation test and the size-dependent default (``auto``)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
from scipy.stats import kstest
from threadpoolctl import threadpool_limits

from evalkit.drift import DEFAULT_METHOD, make_detector
from evalkit.drift.moments import BlockLayout
from evalkit.errors import InputError

ALPHA = 0.05


@pytest.fixture(autouse=True)
def _single_thread_blas() -> Iterator[None]:
    with threadpool_limits(1):
        yield


def _false_alarm_bound(trials: int) -> float:
    return ALPHA + 3.0 * math.sqrt(ALPHA * (1.0 - ALPHA) / trials)


@pytest.mark.parametrize(("m", "n", "blocks"), [(53, 41, 10), (60, 60, 12), (7, 90, 40)])
def test_block_distances_equal_brute_force_relabellings(m: int, n: int, blocks: int) -> None:
    rng = np.random.default_rng(1)
    reference = rng.standard_normal((m, 5))
    current = rng.standard_normal((n, 5)) + 0.1
    layout = BlockLayout(m, n, n_blocks=blocks, n_permutations=30, rng=np.random.default_rng(0))
    size = layout.block_size
    pooled = np.vstack([reference, current])
    block_rows = [np.arange(i * size, (i + 1) * size) for i in range(layout.reference_blocks)]
    block_rows += [m + np.arange(j * size, (j + 1) * size) for j in range(layout.current_blocks)]
    leftover_reference = np.arange(layout.reference_blocks * size, m)
    for squared in (False, True):
        (distances,) = layout.mean_distances(layout.sums(reference, current, squared=squared))
        values = pooled**2 if squared else pooled
        for labels, distance in zip(layout.labels, distances, strict=True):
            chosen = [block_rows[k] for k in np.flatnonzero(labels)]
            reference_rows = np.concatenate([*chosen, leftover_reference])
            assert reference_rows.size == m
            in_current = np.ones(m + n, dtype=bool)
            in_current[reference_rows] = False
            expected = np.sum((values[reference_rows].mean(0) - values[in_current].mean(0)) ** 2)
            # The relabelling products run in single precision.
            assert distance == pytest.approx(expected, rel=1e-5, abs=1e-9)


def test_every_relabelling_moves_whole_blocks_and_keeps_the_window_sizes() -> None:
    layout = BlockLayout(5000, 4990, n_blocks=200, n_permutations=500, rng=np.random.default_rng(2))
    assert layout.block_size == 49
    assert (layout.reference_blocks, layout.current_blocks) == (102, 101)
    assert layout.labels.shape == (501, 203)
    assert layout.scheme == "block permutations"
    assert np.all(layout.labels.sum(axis=1) == 102)
    assert np.all(layout.labels[0, :102] == 1.0)
    assert np.all(layout.labels[0, 102:] == 0.0)
    # The relabellings are not all the observed one: each block lands in either window.
    assert 0.4 < layout.labels[1:, 0].mean() < 0.6


def test_windows_with_as_many_blocks_swap_random_block_pairs() -> None:
    layout = BlockLayout(5000, 5000, n_blocks=100, n_permutations=400, rng=np.random.default_rng(4))
    assert (layout.block_size, layout.reference_blocks, layout.scheme) == (
        100,
        50,
        "block pair swaps",
    )
    pairs = layout.labels[:, :50] + layout.labels[:, 50:]
    assert np.all(pairs == 1.0)
    assert 0.4 < layout.labels[1:, :50].mean() < 0.6


def test_a_small_window_against_a_large_one_still_gets_blocks_on_both_sides() -> None:
    layout = BlockLayout(3, 5000, n_blocks=200, n_permutations=10, rng=np.random.default_rng(3))
    assert layout.block_size == 3
    assert layout.reference_blocks == 1


def test_mean_shift_and_change_of_spread_are_each_seen_by_their_own_distance() -> None:
    rng = np.random.default_rng(4)
    reference = rng.standard_normal((3000, 16)) * 0.05
    shifted = rng.standard_normal((3000, 16)) * 0.05 + 0.006
    wider = rng.standard_normal((3000, 16)) * 0.05 * 1.1
    shift = make_detector("moments", seed=1).fit(reference).test(shifted)
    spread = make_detector("moments", seed=1).fit(reference).test(wider)
    mean_only = make_detector("mean_cosine", seed=1).fit(reference).test(wider)
    assert shift.is_drift
    assert shift.details["mean_p_value"] < 0.01
    assert spread.is_drift
    assert spread.details["spread_p_value"] < 0.01
    assert spread.details["mean_p_value"] > 0.05
    assert mean_only.p_value > 0.05
    assert spread.statistic == pytest.approx(spread.details["spread_z"])


def test_effect_size_is_the_mean_distance_relative_to_the_pooled_spread() -> None:
    rng = np.random.default_rng(5)
    reference = rng.standard_normal((500, 6))
    current = rng.standard_normal((700, 6)) + 0.2
    result = make_detector("moments").fit(reference).test(current)
    pooled = np.vstack([reference, current])
    expected = np.linalg.norm(reference.mean(0) - current.mean(0)) / math.sqrt(
        pooled.var(axis=0).sum()
    )
    assert result.effect_size == pytest.approx(expected, rel=1e-6)
    assert result.details["mean_distance"] == pytest.approx(
        float(np.sum((reference.mean(0) - current.mean(0)) ** 2)), rel=1e-5
    )
    centre = pooled.mean(axis=0)
    spread_reference = ((reference - centre) ** 2).mean(axis=0)
    spread_current = ((current - centre) ** 2).mean(axis=0)
    assert result.details["spread_distance"] == pytest.approx(
        float(np.sum((spread_reference - spread_current) ** 2)), rel=1e-5
    )


def test_a_move_of_the_mean_alone_is_not_read_as_a_change_of_spread() -> None:
    rng = np.random.default_rng(7)
    reference = rng.standard_normal((3000, 8)) * 0.1 + 3.0
    current = rng.standard_normal((3000, 8)) * 0.1 + 3.01
    result = make_detector("moments", seed=2).fit(reference).test(current)
    assert result.details["mean_p_value"] < 0.01
    assert result.details["spread_p_value"] > 0.05


def test_false_alarm_rate_and_uniform_p_values_on_large_windows() -> None:
    trials = 200
    p_values = []
    for trial in range(trials):
        rng = np.random.default_rng([11, trial])
        centre = np.full(24, 0.2)
        reference = (rng.standard_normal((1500, 24)) * 0.3 + centre).astype(np.float32)
        current = (rng.standard_normal((1400, 24)) * 0.3 + centre).astype(np.float32)
        result = make_detector("moments", seed=trial, n_permutations=199).fit(reference)
        p_values.append(result.test(current).p_value)
    alarms = np.mean(np.array(p_values) <= ALPHA)
    assert alarms <= _false_alarm_bound(trials)
    assert kstest(p_values, "uniform").pvalue > 0.001


def _bursty_window(rng: np.random.Generator, bursts: int, length: int) -> np.ndarray:
    """Queries arriving in bursts: each burst is ``length`` rows around its own topic."""
    topics = rng.standard_normal((bursts, 24)) * 0.3
    rows = np.repeat(topics, length, axis=0) + rng.standard_normal((bursts * length, 24)) * 0.3
    return rows.astype(np.float32)


def test_bursts_of_related_queries_are_not_taken_for_drift() -> None:
    trials = 60
    block_alarms = row_alarms = 0
    for trial in range(trials):
        rng = np.random.default_rng([12, trial])
        reference, current = _bursty_window(rng, 300, 5), _bursty_window(rng, 300, 5)
        blocks = make_detector("moments", seed=trial, n_permutations=199).fit(reference)
        rows = make_detector("mean_cosine", seed=trial, n_permutations=199).fit(reference)
        block_alarms += blocks.test(current).is_drift
        row_alarms += rows.test(current).is_drift
    # Row-by-row permutations treat 5 related rows as 5 independent ones; blocks (15 rows
    # here) hold whole bursts but for the ones cut at block edges.
    assert row_alarms / trials > 0.3
    assert block_alarms / trials <= _false_alarm_bound(trials)


def test_auto_runs_exact_mmd_on_small_pools_and_moments_on_large_ones() -> None:
    assert DEFAULT_METHOD == "auto"
    rng = np.random.default_rng(6)
    reference, current = rng.standard_normal((60, 8)), rng.standard_normal((60, 8)) + 0.5
    small = make_detector("auto", exact_max_pool=120).fit(reference).test(current)
    large = make_detector("auto", exact_max_pool=119).fit(reference).test(current)
    assert (small.method, small.details["estimator"]) == ("mmd", "exact")
    assert large.method == "moments"
    assert large.details["permutations"] == "block pair swaps"
    assert small.is_drift
    assert large.is_drift
    same = make_detector("auto", exact_max_pool=119, seed=9)
    assert same.fit(reference).test(current) == same.fit(reference).test(current)


def test_the_cli_and_the_scheduler_default_to_the_default_method() -> None:
    import inspect

    from evalkit.cli.drift import documents, embeddings
    from evalkit.scheduler.jobs import DriftCheckParams

    for command in (embeddings, documents):
        assert inspect.signature(command).parameters["method"].default == DEFAULT_METHOD
    assert DriftCheckParams.model_fields["method"].default == DEFAULT_METHOD


@pytest.mark.parametrize(("method", "rows"), [("moments", 3000), ("auto", 3000), ("auto", 40)])
@pytest.mark.parametrize("window", ["reference", "current"])
def test_nan_rows_are_named_even_when_the_sums_find_them(
    method: str, rows: int, window: str
) -> None:
    rng = np.random.default_rng(8)
    reference, current = rng.standard_normal((rows, 6)), rng.standard_normal((rows, 6))
    bad = reference if window == "reference" else current
    bad[17, 2] = np.nan
    bad[rows - 1, 0] = np.inf
    detector = make_detector(method).fit(reference)
    with pytest.raises(InputError, match=rf"{window} contains NaN.*\[17, {rows - 1}\]"):
        detector.test(current)


def test_values_whose_squares_overflow_are_refused() -> None:
    huge = np.full((3000, 4), 3e20, dtype=np.float32)
    detector = make_detector("moments").fit(huge)
    with pytest.raises(InputError, match="too large"):
        detector.test(huge)


@pytest.mark.parametrize(("method", "rows"), [("moments", 50), ("auto", 1250)])
def test_large_but_finite_values_give_the_verdict_of_the_same_values_scaled_down(
    method: str, rows: int
) -> None:
    rng = np.random.default_rng(5)
    reference = rng.standard_normal((rows, 384)).astype(np.float32)
    current = rng.standard_normal((rows, 384)).astype(np.float32)
    unit = make_detector(method).fit(reference).test(current)
    large = make_detector(method).fit(reference * 1e9).test(current * 1e9)
    assert large.method == "moments"
    assert math.isfinite(large.statistic)
    assert large.statistic == pytest.approx(unit.statistic, rel=1e-3)
    assert large.p_value == pytest.approx(unit.p_value, abs=0.005)
    assert not large.is_drift


def test_values_whose_block_products_overflow_are_refused() -> None:
    rng = np.random.default_rng(6)
    reference, current = (
        rng.standard_normal((50, 384)) * 1e80,
        rng.standard_normal((50, 384)) * 1e80,
    )
    detector = make_detector("moments").fit(reference)
    with pytest.raises(
        InputError,
        match=r"^the embeddings are too large: their squares overflow; scale them down "
        r"\(for example, normalise each row to unit length\)$",
    ):
        detector.test(current)


def test_a_statistic_that_could_not_be_computed_is_never_drift() -> None:
    detector = make_detector("moments")
    result = detector._result(
        statistic=math.nan,
        p_value=0.001,
        effect_size=math.nan,
        n_reference=50,
        n_current=50,
        seed=0,
        details={},
    )
    assert result.p_value == pytest.approx(0.001)
    assert not result.is_drift
