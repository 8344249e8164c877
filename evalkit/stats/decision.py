"""The gate's decision rule: regression, pass or inconclusive, per measure and overall.

Identical runs pass even with ``min_effect = 0`` (``lo >= -min_effect``). Overall: any
regression, else any inconclusive, else pass. The rule: docs/gate.md, "Decision rule".
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

__all__ = ["Decision", "decide", "overall_decision"]


class Decision(StrEnum):
    """The gate's verdict for one measure or for a whole comparison."""

    PASS = "pass"
    REGRESSION = "regression"
    INCONCLUSIVE = "inconclusive"


_SEVERITY = {Decision.PASS: 0, Decision.INCONCLUSIVE: 1, Decision.REGRESSION: 2}


def decide(
    *,
    ci_low: float,
    ci_high: float,
    p_adjusted: float,
    alpha: float,
    min_effect: float,
    higher_is_better: bool = True,
) -> Decision:
    """Apply the decision rule to one measure's interval of ``candidate - baseline``.

    With ``higher_is_better=False`` (a measure such as latency) a rise is the regression:
    the interval is mirrored before the rule is applied.
    """
    low, high = (ci_low, ci_high) if higher_is_better else (-ci_high, -ci_low)
    if p_adjusted < alpha and high < -min_effect:
        return Decision.REGRESSION
    if low >= -min_effect:
        return Decision.PASS
    return Decision.INCONCLUSIVE


def overall_decision(decisions: Iterable[Decision]) -> Decision:
    """Combine per-measure decisions: the most severe one wins (an empty set passes)."""
    return max(decisions, key=_SEVERITY.__getitem__, default=Decision.PASS)
