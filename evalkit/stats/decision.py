"""The gate's decision rule: regression, pass or inconclusive, per measure and overall.

With ``d = candidate - baseline`` oriented so that higher is better, a confidence interval
``[lo, hi]`` of the mean of ``d`` and a Holm-adjusted p-value:

* ``regression``: the change is significant after Holm correction (``p_adjusted < alpha``)
  *and* the whole interval lies below ``-min_effect`` (``hi < -min_effect``), i.e. the
  data show a drop larger than the smallest drop worth failing a build for;
* ``pass``: the interval rules out such a drop (``lo >= -min_effect``);
* ``inconclusive``: neither; more queries are needed to tell.

The two first conditions cannot both hold (``lo <= hi``). Identical runs have ``d = 0``
everywhere, hence ``lo = hi = 0`` and ``pass`` even with ``min_effect = 0``.
The overall verdict is ``regression`` if any measure regressed, else ``inconclusive`` if
any measure is inconclusive, else ``pass``.
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
