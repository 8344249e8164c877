"""Per-dimension two-sample Kolmogorov-Smirnov tests with Benjamini-Hochberg control.

Vectorised KS p-values as ``scipy.stats.ks_2samp`` gives them; ``p_value`` is Simes'
combined one (``<= alpha`` exactly when BH finds a moved dimension), ``effect_size`` the
share of dimensions that moved.
"""

from __future__ import annotations

import warnings

import numpy as np
import numpy.typing as npt

from evalkit.drift.base import (
    DriftDetector,
    Embeddings,
    FloatArray,
    register_detector,
)
from evalkit.errors import ConfigError
from evalkit.records.drift import DriftResult

__all__ = ["KSDrift", "benjamini_hochberg", "ks_p_values", "ks_statistics"]


def ks_statistics(reference: Embeddings, current: Embeddings) -> FloatArray:
    """Two-sample KS statistic of every column: ``max |F_ref - F_cur|`` over the pooled values.

    Computed on integer counts (``|i·n - j·m| / (m·n)``) so equal statistics compare equal,
    and only where the pooled value changes, so ties are handled as scipy does.
    """
    m, n = reference.shape[0], current.shape[0]
    pooled = np.vstack([reference, current])
    order = np.argsort(pooled, axis=0, kind="stable")
    sorted_values = np.take_along_axis(pooled, order, axis=0)
    reference_count = np.cumsum(order < m, axis=0, dtype=np.int64)
    current_count = np.arange(1, m + n + 1, dtype=np.int64)[:, None] - reference_count
    gaps = np.abs(reference_count * n - current_count * m)
    # Only the last of a run of equal values is a point where both ECDFs are evaluated.
    gaps[:-1][sorted_values[:-1] == sorted_values[1:]] = 0
    statistics: FloatArray = gaps.max(axis=0) / (m * n)
    return statistics


def ks_p_values(statistics: FloatArray, reference: Embeddings, current: Embeddings) -> FloatArray:
    """scipy's ``ks_2samp`` p-value for each column's statistic.

    The p-value depends only on the two sample sizes and the statistic, so scipy runs once
    per distinct statistic (on a column that has it) instead of once per column.
    """
    from scipy import stats

    _, first_column, inverse = np.unique(statistics, return_index=True, return_inverse=True)
    with warnings.catch_warnings():
        # For a few awkward size pairs scipy's exact method gives up and says it switched to
        # the asymptotic one; that switch is the documented behaviour, not a problem.
        warnings.filterwarnings("ignore", "ks_2samp: Exact calculation", RuntimeWarning)
        result = stats.ks_2samp(reference[:, first_column], current[:, first_column], axis=0)
    p_distinct = np.atleast_1d(np.asarray(result.pvalue, dtype=np.float64))
    p_values: FloatArray = p_distinct[inverse.reshape(-1)]
    return p_values


def benjamini_hochberg(p_values: npt.ArrayLike) -> FloatArray:
    """Benjamini-Hochberg adjusted p-values (reject those <= the target FDR)."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return p.copy()
    order = np.argsort(p)
    ranked = p[order] * p.size / np.arange(1, p.size + 1)
    adjusted_sorted = np.minimum.accumulate(ranked[::-1])[::-1]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(adjusted_sorted, 1.0)
    return adjusted


@register_detector("ks")
class KSDrift(DriftDetector):
    """Per-dimension KS tests, Benjamini-Hochberg at FDR ``alpha``; drift if any dimension moved.

    Deterministic: ``seed`` is accepted for a uniform interface and not used.
    """

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        seed: int | None = None,
        max_reported_dimensions: int = 20,
    ) -> None:
        super().__init__(alpha=alpha, seed=seed)
        if max_reported_dimensions < 0:
            raise ConfigError("max_reported_dimensions must be >= 0")
        self.max_reported_dimensions = max_reported_dimensions

    def _test(self, reference: Embeddings, current: Embeddings) -> DriftResult:
        statistics = ks_statistics(reference, current)
        p_values = ks_p_values(statistics, reference, current)
        adjusted = benjamini_hochberg(p_values)
        moved = np.flatnonzero(adjusted <= self.alpha)
        strongest = moved[np.lexsort((-statistics[moved], adjusted[moved]))]
        return self._result(
            statistic=float(statistics.max()),
            p_value=float(adjusted.min()),
            effect_size=moved.size / statistics.size,
            n_reference=reference.shape[0],
            n_current=current.shape[0],
            seed=None,
            details={
                "n_dimensions": int(statistics.size),
                "n_moved": int(moved.size),
                "moved_dimensions": strongest[: self.max_reported_dimensions].tolist(),
            },
        )
