"""The Pareto front of configurations: quality against a cost (a latency, a price)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["pareto_front"]


def pareto_front(points: Sequence[tuple[float | None, float | None]]) -> list[int]:
    """Indices of the points no other point dominates, in input order.

    Each point is (quality, cost): higher quality and lower cost are better (cost: a
    latency, a price). A point dominates another when it is at least as good on both and
    better on one; equal points are all on the front. A point missing either figure
    (None, or NaN) is on no front.
    """
    known = [
        (index, float(quality), float(cost))
        for index, (quality, cost) in enumerate(points)
        if quality is not None and cost is not None and not np.isnan(quality) and not np.isnan(cost)
    ]
    return [
        index
        for index, quality, cost in known
        if not any(
            other_quality >= quality
            and other_cost <= cost
            and (other_quality > quality or other_cost < cost)
            for _, other_quality, other_cost in known
        )
    ]
