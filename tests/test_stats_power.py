"""Sample sizes for the gate: exact paired-t power against statsmodels and hand values."""

from __future__ import annotations

import math

import pytest
from scipy.special import ndtri

from evalkit.errors import ConfigError, InputError
from evalkit.stats import TYPICAL_SD_DIFFS, power_table, queries_needed
from evalkit.stats.power import paired_t_power


@pytest.mark.parametrize("sd_diff", [0.05, 0.18, 0.28, 0.4])
@pytest.mark.parametrize("effect", [0.01, 0.02, 0.05, 0.2])
@pytest.mark.parametrize("one_sided", [True, False])
def test_queries_needed_matches_statsmodels(sd_diff: float, effect: float, one_sided: bool) -> None:
    power_module = pytest.importorskip("statsmodels.stats.power")
    solved = power_module.TTestPower().solve_power(
        effect_size=effect / sd_diff,
        alpha=0.05,
        power=0.8,
        alternative="larger" if one_sided else "two-sided",
    )
    needed = queries_needed(sd_diff, effect, alpha=0.05, power=0.8, one_sided=one_sided)
    assert needed == max(2, math.ceil(solved - 1e-9))


def test_queries_needed_is_the_smallest_n_reaching_the_power() -> None:
    needed = queries_needed(0.28, 0.02)
    assert paired_t_power(needed, 0.02 / 0.28)[()] >= 0.8
    assert paired_t_power(needed - 1, 0.02 / 0.28)[()] < 0.8


def test_queries_needed_close_to_the_normal_approximation() -> None:
    # ((z_0.95 + z_0.8) * 0.3 / 0.02) ** 2 = 1391.1; the t correction adds a query or two.
    approximation = ((ndtri(0.95) + ndtri(0.8)) * 0.3 / 0.02) ** 2
    assert approximation == pytest.approx(1391.1, abs=0.1)
    assert 1392 <= queries_needed(0.3, 0.02) <= 1395


def test_queries_needed_edge_cases_and_monotonicity() -> None:
    assert queries_needed(0.0, 0.01) == 2
    assert queries_needed(0.3, 10.0) >= 2
    assert queries_needed(0.3, 0.01) > queries_needed(0.3, 0.02) > queries_needed(0.3, 0.05)
    assert queries_needed(0.3, 0.02, one_sided=False) > queries_needed(0.3, 0.02)
    assert queries_needed(0.3, 0.02, power=0.9) > queries_needed(0.3, 0.02)
    assert queries_needed(0.3, 0.02, alpha=0.01) > queries_needed(0.3, 0.02)


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        ((-0.1, 0.02), {}, InputError),
        ((float("nan"), 0.02), {}, InputError),
        ((0.2, 0.0), {}, InputError),
        ((0.2, -0.02), {}, InputError),
        ((0.2, 0.02), {"alpha": 0.0}, ConfigError),
        ((0.2, 0.02), {"power": 1.0}, ConfigError),
    ],
)
def test_queries_needed_rejects_invalid_values(
    args: tuple[float, float], kwargs: dict[str, float], error: type[Exception]
) -> None:
    with pytest.raises(error):
        queries_needed(*args, **kwargs)


def test_power_table_rows_follow_queries_needed() -> None:
    rows = power_table({"narrow": 0.1, "wide": 0.3}, effects=(0.01, 0.05))
    assert [(r.source, r.effect) for r in rows] == [
        ("narrow", 0.01),
        ("narrow", 0.05),
        ("wide", 0.01),
        ("wide", 0.05),
    ]
    for row in rows:
        assert row.queries_needed == queries_needed(row.sd_diff, row.effect)


def test_default_power_table_uses_the_measured_spreads() -> None:
    rows = power_table()
    assert {row.source for row in rows} == set(TYPICAL_SD_DIFFS)
    assert {row.effect for row in rows} == {0.01, 0.02, 0.05}
    assert all(0.05 < sd < 0.5 for sd in TYPICAL_SD_DIFFS.values())


def test_queries_needed_for_tiny_effects_stays_cheap_and_exact() -> None:
    needed = queries_needed(0.3, 1e-4)
    approximation = ((ndtri(0.95) + ndtri(0.8)) * 0.3 / 1e-4) ** 2
    assert approximation <= needed <= approximation + 3
