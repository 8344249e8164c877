"""Label-free signals: how much ranked results and retrieval scores moved between two runs.

No judgments are needed, so these work on production traffic: replay the same queries before
and after a change and compare. The ranking overlaps live in ``evalkit.metrics.overlap``
(below traffic, whose replay uses them too).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from evalkit.drift.base import FloatArray
from evalkit.errors import ConfigError, InputError
from evalkit.records.drift import DriftResult

__all__ = ["low_confidence_share", "top1_score_shift"]


def _scores(values: npt.ArrayLike, name: str) -> FloatArray:
    try:
        array = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError) as error:
        raise InputError(f"{name} must be numbers: {error}") from error
    if array.size == 0:
        raise InputError(f"{name} is empty; pass the top-1 score of at least one query")
    if not np.isfinite(array).all():
        raise InputError(f"{name} contains NaN or infinite scores; drop failed queries first")
    return array


def top1_score_shift(
    reference_scores: npt.ArrayLike,
    current_scores: npt.ArrayLike,
    *,
    alpha: float = 0.05,
) -> DriftResult:
    """Two-sample KS test on the top-1 retrieval scores of two runs.

    ``statistic`` is the KS distance; ``effect_size`` is median(current) -
    median(reference) in score units (negative: the retriever got less confident).
    """
    from scipy.stats import ks_2samp

    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
    reference = _scores(reference_scores, "reference_scores")
    current = _scores(current_scores, "current_scores")
    result = ks_2samp(reference, current)
    p_value = float(result.pvalue)
    details: dict[str, Any] = {
        "reference_median": float(np.median(reference)),
        "current_median": float(np.median(current)),
    }
    return DriftResult(
        statistic=float(result.statistic),
        p_value=p_value,
        threshold=alpha,
        is_drift=p_value <= alpha,
        effect_size=details["current_median"] - details["reference_median"],
        method="top1_score_ks",
        n_reference=reference.size,
        n_current=current.size,
        seed=None,
        details=details,
    )


def low_confidence_share(top_scores: npt.ArrayLike, *, threshold: float) -> float:
    """Share of queries whose top retrieval score is below ``threshold``."""
    scores = _scores(top_scores, "top_scores")
    return float(np.count_nonzero(scores < threshold) / scores.size)
