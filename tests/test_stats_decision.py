"""The gate's decision rule, case by case."""

from __future__ import annotations

import pytest

from evalkit.stats import Decision, decide, overall_decision


@pytest.mark.parametrize(
    ("ci_low", "ci_high", "p_adjusted", "min_effect", "expected"),
    [
        # Significant and the whole interval below -min_effect: regression.
        (-0.08, -0.03, 0.001, 0.02, Decision.REGRESSION),
        # Significant but the interval reaches above -min_effect: not a big-enough drop.
        (-0.08, -0.01, 0.001, 0.02, Decision.INCONCLUSIVE),
        # Interval below -min_effect but not significant after Holm: inconclusive.
        (-0.08, -0.03, 0.06, 0.02, Decision.INCONCLUSIVE),
        # Interval rules out a drop larger than min_effect: pass, whatever p says.
        (-0.015, 0.04, 0.5, 0.02, Decision.PASS),
        (-0.02, 0.04, 0.5, 0.02, Decision.PASS),
        (0.01, 0.04, 0.001, 0.0, Decision.PASS),
        # min_effect 0: only an interval entirely >= 0 passes.
        (-0.001, 0.04, 0.3, 0.0, Decision.INCONCLUSIVE),
        (0.0, 0.0, 1.0, 0.0, Decision.PASS),
        (-0.05, -0.001, 0.01, 0.0, Decision.REGRESSION),
        # p exactly alpha is not significant.
        (-0.08, -0.03, 0.05, 0.0, Decision.INCONCLUSIVE),
    ],
)
def test_decision_rule(
    ci_low: float, ci_high: float, p_adjusted: float, min_effect: float, expected: Decision
) -> None:
    decision = decide(
        ci_low=ci_low, ci_high=ci_high, p_adjusted=p_adjusted, alpha=0.05, min_effect=min_effect
    )
    assert decision is expected


def test_lower_is_better_mirrors_the_interval() -> None:
    rise = {"ci_low": 3.0, "ci_high": 8.0, "p_adjusted": 0.001, "alpha": 0.05, "min_effect": 1.0}
    assert decide(**rise, higher_is_better=False) is Decision.REGRESSION
    assert decide(**rise, higher_is_better=True) is Decision.PASS
    fall = {"ci_low": -8.0, "ci_high": 0.5, "p_adjusted": 0.2, "alpha": 0.05, "min_effect": 1.0}
    assert decide(**fall, higher_is_better=False) is Decision.PASS


def test_overall_decision_takes_the_most_severe() -> None:
    assert overall_decision([Decision.PASS, Decision.PASS]) is Decision.PASS
    assert overall_decision([Decision.PASS, Decision.INCONCLUSIVE]) is Decision.INCONCLUSIVE
    assert (
        overall_decision([Decision.INCONCLUSIVE, Decision.REGRESSION, Decision.PASS])
        is Decision.REGRESSION
    )
    assert overall_decision([]) is Decision.PASS


def test_decision_values_are_the_documented_strings() -> None:
    assert [d.value for d in Decision] == ["pass", "regression", "inconclusive"]
    assert str(Decision.REGRESSION) == "regression"
    assert Decision("inconclusive") is Decision.INCONCLUSIVE
