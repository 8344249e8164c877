"""CUSUM and Page-Hinkley on per-run metric series: hand values, false alarms, delay."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import scipy.stats

from evalkit.drift import AlertLevel, Cusum, PageHinkley, cusum, page_hinkley, sequential_trace
from evalkit.drift.sequential import warmup_widening
from evalkit.errors import ConfigError, InputError

OK, WARNING, ALERT = AlertLevel.OK, AlertLevel.WARNING, AlertLevel.ALERT


def test_cusum_by_hand() -> None:
    values = [1.0, 0.9, 0.8, 1.05, 0.7]
    # z = (1 - x)/0.1 - 0.5 = -0.5, 0.5, 1.5, -1.0, 2.5 -> S = 0, 0.5, 2.0, 1.0, 3.5
    trace = cusum(values, target=1.0, sd=0.1, k=0.5, h_warning=1.0, h_alert=2.0)
    np.testing.assert_allclose(trace.statistic, [0.0, 0.5, 2.0, 1.0, 3.5], atol=1e-12)
    assert trace.levels == (OK, OK, WARNING, OK, ALERT)
    assert trace.change_points.tolist() == [-1, 1, 1, 1, 1]
    assert trace.first_warning == 2
    assert trace.first_alert == 4
    assert trace.monitoring_start == 0
    state = trace.state(4)
    assert (state.index, state.value, state.level, state.change_point) == (4, 0.7, ALERT, 1)
    assert trace.state(0).change_point is None


def test_page_hinkley_by_hand() -> None:
    values = [1.0, 1.0, 0.4, 0.4]
    # Running means 1, 1, 0.8, 0.7; z = mean - x - 0.1 = -0.1, -0.1, 0.3, 0.2.
    trace = page_hinkley(values, sd=1.0, delta=0.1, h_warning=0.25, h_alert=0.45)
    np.testing.assert_allclose(trace.statistic, [0.0, 0.0, 0.3, 0.5], atol=1e-12)
    assert trace.levels == (OK, OK, WARNING, ALERT)
    assert trace.change_points.tolist() == [-1, -1, 2, 2]


def test_warmup_estimates_the_baseline_and_monitoring_starts_after_it() -> None:
    warmup = [0.5, 0.7, 0.6, 0.6]
    trace = cusum([*warmup, 0.3], warmup=4, k=0.0, h_warning=1.0, h_alert=2.0)
    sd = float(np.std(warmup, ddof=1)) * warmup_widening(4)
    assert trace.baseline_mean == pytest.approx(0.6)
    assert trace.baseline_sd == pytest.approx(sd)
    assert trace.monitoring_start == 4
    np.testing.assert_allclose(trace.statistic[:4], 0.0)
    assert trace.statistic[4] == pytest.approx(0.3 / sd)
    assert trace.change_points[4] == 4


def test_short_warmups_widen_the_sd_to_the_upper_bound_of_a_20_run_warmup() -> None:
    def bound(n: int) -> float:
        return math.sqrt((n - 1) / scipy.stats.chi2.ppf(0.05, n - 1))

    assert warmup_widening(5) == pytest.approx(bound(5) / bound(20))
    assert warmup_widening(5) == pytest.approx(1.731, abs=1e-3)
    assert warmup_widening(10) == pytest.approx(1.201, abs=1e-3)
    assert warmup_widening(20) == warmup_widening(50) == 1.0
    values = [0.5, 0.7, 0.6, 0.6, 0.55]
    assert cusum(values, warmup=5).baseline_sd == pytest.approx(
        float(np.std(values, ddof=1)) * warmup_widening(5)
    )
    assert cusum(values, warmup=5, target=0.6, sd=0.05).baseline_sd == 0.05


@pytest.mark.parametrize(("method", "bound"), [("page_hinkley", 0.06), ("cusum", 0.13)])
def test_a_five_run_warmup_keeps_the_false_alarm_rate_of_a_20_run_one(
    method: str, bound: float
) -> None:
    # 20-run warm-ups: 0.032 (Page-Hinkley) and 0.086 (CUSUM) within 100 runs; 5-run
    # warm-ups with the sd as estimated alarmed on 0.15 and 0.28 of stable series.
    seeds = 400
    alarms = 0
    for seed in range(seeds):
        values = np.random.default_rng([21, seed]).normal(0.6, 0.02, 100)
        alarms += sequential_trace(method, values, warmup=5).first_alert is not None
    assert alarms / seeds <= bound


def test_identical_warmup_uses_the_sd_floor() -> None:
    trace = cusum([0.5] * 5 + [0.49], warmup=5, min_sd=0.001, h_warning=3.0, h_alert=5.0)
    assert trace.baseline_sd == 0.001
    assert trace.statistic[-1] == pytest.approx(10.0 - 0.5)
    assert trace.levels[-1] == ALERT


def test_rise_direction_watches_for_increases() -> None:
    values = [10.0, 10.0, 13.0, 16.0]
    rising = cusum(values, target=10.0, sd=1.0, k=0.5, direction="rise")
    falling = cusum(values, target=10.0, sd=1.0, k=0.5, direction="drop")
    np.testing.assert_allclose(rising.statistic, [0.0, 0.0, 2.5, 8.0])
    np.testing.assert_allclose(falling.statistic, 0.0)
    assert rising.levels[-1] == WARNING


def _both_ways(
    function: Any, incremental: type, values: np.ndarray, *, warmup: int
) -> tuple[Any, Any]:
    """The vectorised trace of ``values`` and the incremental detector fed them one at a
    time, having checked that both gave the same states."""
    trace = function(values, warmup=warmup)
    detector = incremental(warmup=warmup)
    states = [detector.update(value) for value in values]
    np.testing.assert_allclose([state.statistic for state in states], trace.statistic, atol=1e-9)
    assert tuple(state.level for state in states) == trace.levels
    assert [-1 if s.change_point is None else s.change_point for s in states] == list(
        trace.change_points
    )
    return trace, detector


@pytest.mark.parametrize(
    ("function", "incremental"),
    [(cusum, Cusum), (page_hinkley, PageHinkley)],
)
@pytest.mark.parametrize("seed", range(5))
def test_incremental_equals_the_vectorised_function(
    function: object, incremental: type, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    values = 0.6 + 0.02 * rng.standard_normal(120)
    values[60:] -= 0.03 * (seed % 3)
    trace, detector = _both_ways(function, incremental, values, warmup=20)
    assert detector.baseline == pytest.approx((trace.baseline_mean, trace.baseline_sd))
    detector.reset()
    assert detector.baseline is None
    assert detector.update(0.0).statistic == 0.0


@pytest.mark.parametrize(
    ("function", "incremental"),
    [(cusum, Cusum), (page_hinkley, PageHinkley)],
)
def test_an_alert_clears_once_the_series_is_back_at_its_baseline(
    function: object, incremental: type
) -> None:
    """A deterministic retriever (sd floored at min_sd) down 0.05 for five runs: the
    statistic passed 200, and fell by the allowance per run once fixed, so CUSUM stayed in
    alert for good and Page-Hinkley for 30 runs."""
    values = np.array([0.75] * 5 + [0.70] * 5 + [0.75] * 6 + [0.72] * 4)
    trace, _ = _both_ways(function, incremental, values, warmup=5)
    assert trace.levels[5:10] == (ALERT,) * 5
    # Back at the baseline: reset on the fourth such run; a partial recovery is a new drop.
    assert trace.levels[10:16] == (ALERT, ALERT, ALERT, OK, OK, OK)
    assert trace.state(13).change_point is None
    assert trace.levels[16:] == (ALERT,) * 4
    assert trace.state(19).change_point == 16


@pytest.mark.parametrize(
    ("function", "incremental"),
    [(cusum, Cusum), (page_hinkley, PageHinkley)],
)
@pytest.mark.parametrize("seed", range(5))
def test_incremental_equals_the_vectorised_function_through_recoveries(
    function: object, incremental: type, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    values = 0.6 + 0.02 * rng.standard_normal(160)
    values[40:55] -= 0.08
    values[90:100] -= 0.03 * (1 + seed % 3)
    trace, _ = _both_ways(function, incremental, values, warmup=20)
    assert OK in trace.levels[trace.first_alert :]


def test_incremental_without_warmup_monitors_from_the_first_value() -> None:
    detector = Cusum(target=1.0, sd=0.1, k=0.5, h_warning=1.0, h_alert=2.0)
    levels = [detector.update(value).level for value in [1.0, 0.9, 0.8, 1.05, 0.7]]
    assert levels == [OK, OK, WARNING, OK, ALERT]


RUNS_AFTER_WARMUP = 100
SEEDS = 300


def _mc_bound(rate: float, trials: int) -> float:
    return rate + 3.0 * math.sqrt(rate * (1.0 - rate) / trials)


@pytest.mark.parametrize(
    ("function", "measured_rate"),
    # Alert rates measured over 1,000 seeds with these defaults (warm-up 20, then 100 runs):
    # CUSUM 0.086, Page-Hinkley 0.032 (the warm-up estimate of mean and sd is the main source).
    [(cusum, 0.086), (page_hinkley, 0.032)],
)
def test_flat_noisy_series_rarely_alerts(function: object, measured_rate: float) -> None:
    alerts = 0
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        values = 0.6 + 0.02 * rng.standard_normal(20 + RUNS_AFTER_WARMUP)
        alerts += function(values).first_alert is not None  # type: ignore[operator]
    assert alerts / SEEDS <= _mc_bound(measured_rate, SEEDS)


@pytest.mark.parametrize("function", [cusum, page_hinkley])
def test_three_sd_step_drop_alerts_within_six_runs(function: object) -> None:
    change = 50
    delays = []
    for seed in range(200):
        rng = np.random.default_rng(1000 + seed)
        values = 0.6 + 0.02 * rng.standard_normal(120)
        values[change:] -= 0.06
        first_alert = function(values).first_alert  # type: ignore[operator]
        delays.append(math.inf if first_alert is None else first_alert - change)
    delays_array = np.array(delays)
    assert np.mean((delays_array >= 0) & (delays_array < 6)) >= 0.9


def test_change_point_estimate_lands_near_the_step() -> None:
    rng = np.random.default_rng(3)
    values = 0.6 + 0.01 * rng.standard_normal(80)
    values[50:] -= 0.05
    trace = cusum(values)
    alert = trace.first_alert
    assert alert is not None
    assert abs(int(trace.change_points[alert]) - 50) <= 2


@pytest.mark.parametrize(
    "settings",
    [
        {"h_warning": 5.0, "h_alert": 5.0},
        {"k": -1.0},
        {"warmup": 1},
        {"sd": 0.0, "target": 1.0},
        {"direction": "sideways"},
        {"min_sd": 0.0},
    ],
)
def test_invalid_settings(settings: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        cusum([1.0] * 30, **settings)  # type: ignore[arg-type]


def test_bad_series() -> None:
    with pytest.raises(InputError, match="NaN"):
        cusum([1.0, float("nan")] * 20)
    with pytest.raises(InputError, match="1-D"):
        cusum(np.zeros((3, 3)))
    with pytest.raises(InputError, match="warm-up needs 20"):
        cusum([1.0] * 5)
    with pytest.raises(InputError, match="not finite"):
        Cusum().update(float("inf"))
