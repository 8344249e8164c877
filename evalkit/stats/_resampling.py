"""Vectorised resampling kernels for paired comparisons: sign-flip tests and the bootstrap.

Every kernel takes a matrix of per-query differences ``(n_queries, n_measures)`` and
treats the measures jointly: one sign matrix and one resample matrix are drawn per chunk and
applied to every measure with a single matrix product, which is both faster and the right
joint resampling for measures computed on the same queries.

Resamples are drawn in chunks of rows whose size depends only on the number of queries, so
memory stays bounded (a few MB per chunk) and a given seed always yields the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr, ndtri, stdtrit

__all__ = [
    "CI_METHODS",
    "IntervalMethod",
    "bca_interval",
    "bootstrap_means",
    "percentile_interval",
    "sign_flip_pvalues",
]

FloatMatrix = npt.NDArray[np.float64]
FloatVector = npt.NDArray[np.float64]

# A bootstrap chunk's counts live in one bincount array; keeping it near the size of the
# CPU's L2 cache is what makes bincount fast (random writes into a larger array thrash).
_BOOTSTRAP_CHUNK_ELEMENTS: Final = 1 << 18
_SIGN_FLIP_CHUNK_ELEMENTS: Final = 1 << 21
# Bounds the Python-level chunk loop for very large query sets; memory per chunk is then
# about 30 bytes x this x n_queries (240 MB at a million queries).
_MIN_CHUNK_ROWS: Final = 8
# Resampled statistics are accumulated in float32 matrix products. Two statistics closer
# than this fraction of sum(|d|) are treated as equal, so exact ties (common with discrete
# measures) are counted as ties despite float32 rounding.
_TIE_RTOL: Final = 1e-6
_TWO_POW_32: Final = 1 << 32


def _chunk_rows(n_queries: int, resamples: int, elements: int) -> int:
    return int(min(resamples, max(_MIN_CHUNK_ROWS, elements // max(n_queries, 1))))


def _tie_tolerance(differences: FloatMatrix) -> FloatVector:
    return np.asarray(_TIE_RTOL * np.abs(differences).sum(axis=0), dtype=np.float64)


def sign_flip_pvalues(
    differences: FloatMatrix, *, resamples: int, rng: np.random.Generator
) -> FloatVector:
    """Two-sided paired randomisation (sign-flip) p-values, one per measure (column).

    Under the null hypothesis that baseline and candidate are exchangeable within each
    query, every per-query difference is equally likely to carry either sign. The statistic
    is the sum of differences (equivalently their mean); the p-value counts resampled sign
    vectors whose absolute statistic reaches the observed one, with the +1 correction
    ``(1 + hits) / (1 + resamples)`` so that it is never 0. All measures share the same
    sign vectors.
    """
    n_queries, _ = differences.shape
    weights = differences.astype(np.float32)
    total = differences.sum(axis=0)
    threshold = np.abs(total) - _tie_tolerance(differences)
    hits = np.zeros(differences.shape[1], dtype=np.int64)
    rows = _chunk_rows(n_queries, resamples, _SIGN_FLIP_CHUNK_ELEMENTS)
    for start in range(0, resamples, rows):
        chunk = min(rows, resamples - start)
        packed = np.frombuffer(rng.bytes((chunk * n_queries + 7) // 8), dtype=np.uint8)
        keep = np.unpackbits(packed, count=chunk * n_queries).reshape(chunk, n_queries)
        # With s = 2b - 1 for a bit b, sum(s * d) = 2 * (b @ d) - sum(d): a single GEMM.
        flipped = 2.0 * (keep.astype(np.float32) @ weights).astype(np.float64) - total
        hits += (np.abs(flipped) >= threshold).sum(axis=0)
    return np.asarray((1.0 + hits) / (1.0 + resamples), dtype=np.float64)


def _uniform_indices(rng: np.random.Generator, *, size: int, high: int) -> npt.NDArray[np.intp]:
    """``size`` exactly uniform integers in ``[0, high)`` from 32-bit words (Lemire's method).

    Multiply-shift maps a 32-bit word to ``[0, high)``; the few words whose low half falls
    below ``2**32 mod high`` would bias the result, so they are redrawn, which keeps the
    draw exactly uniform at a fraction of ``Generator.integers``' per-element cost.
    """
    words = rng.bit_generator.random_raw((size + 1) // 2).view(np.uint32)[:size]
    product = words.astype(np.uint64) * np.uint64(high)
    indices = (product >> np.uint64(32)).astype(np.intp)
    biased = np.flatnonzero(product.astype(np.uint32) < (_TWO_POW_32 % high))
    if biased.size:
        indices[biased] = rng.integers(0, high, size=biased.size)
    return indices


def bootstrap_means(
    differences: FloatMatrix, *, resamples: int, rng: np.random.Generator
) -> FloatMatrix:
    """Means of ``resamples`` bootstrap resamples of the queries, shape ``(resamples, m)``.

    Each resample draws ``n`` queries with replacement; its mean is ``counts @ d / n`` where
    ``counts`` holds how often each query was drawn, so a chunk of resamples is one bincount
    and one matrix product shared by every measure.
    """
    n_queries, _ = differences.shape
    observed = differences.mean(axis=0)
    # Centring first keeps float32 rounding relative to the spread, not to the values.
    weights = (differences - observed).astype(np.float32)
    means = np.empty((resamples, differences.shape[1]), dtype=np.float64)
    rows = _chunk_rows(n_queries, resamples, _BOOTSTRAP_CHUNK_ELEMENTS)
    row_offsets = (np.arange(rows, dtype=np.intp) * n_queries)[:, np.newaxis]
    for start in range(0, resamples, rows):
        chunk = min(rows, resamples - start)
        drawn = _uniform_indices(rng, size=chunk * n_queries, high=n_queries)
        drawn = (drawn.reshape(chunk, n_queries) + row_offsets[:chunk]).ravel()
        counts = np.bincount(drawn, minlength=chunk * n_queries).reshape(chunk, n_queries)
        means[start : start + chunk] = counts.astype(np.float32) @ weights
    means /= n_queries
    means += observed
    return means


def _column_quantiles(sorted_values: FloatMatrix, levels: FloatMatrix) -> FloatMatrix:
    """Linear-interpolation quantiles (numpy's default) of each column at per-column levels.

    ``sorted_values`` is ``(B, m)`` sorted along axis 0; ``levels`` is ``(k, m)``.
    """
    last = sorted_values.shape[0] - 1
    position = np.clip(levels, 0.0, 1.0) * last
    below = np.floor(position).astype(np.intp)
    above = np.minimum(below + 1, last)
    fraction = position - below
    columns = np.arange(sorted_values.shape[1])[np.newaxis, :]
    low = sorted_values[below, columns]
    high = sorted_values[above, columns]
    return np.asarray(low + fraction * (high - low), dtype=np.float64)


def _normal_bounds(n_queries: int, confidence: float, *, expand: bool) -> FloatMatrix:
    """Lower and upper standard-normal quantiles, shape ``(2, 1)``, optionally expanded.

    The bootstrap distribution of a mean is too narrow for small samples (it uses the
    plug-in variance and normal tails). The expansion (Hesterberg 2015, "What teachers
    should know about the bootstrap") replaces ``z`` by ``sqrt(n / (n - 1)) * t_(n-1)``,
    which restores coverage for golden sets of 5-30 queries and vanishes as n grows.
    """
    tail = (1.0 - confidence) / 2.0
    if expand and n_queries > 1:
        upper = math.sqrt(n_queries / (n_queries - 1.0)) * float(
            stdtrit(n_queries - 1.0, 1.0 - tail)
        )
    else:
        upper = float(ndtri(1.0 - tail))
    return np.array([[-upper], [upper]], dtype=np.float64)


def percentile_interval(
    boot_means: FloatMatrix, differences: FloatMatrix, *, confidence: float, expand: bool = True
) -> tuple[FloatVector, FloatVector]:
    """Percentile bootstrap interval of the mean difference, per measure.

    With ``expand`` the percentiles are those of the small-sample expanded bounds.
    """
    bounds = _normal_bounds(differences.shape[0], confidence, expand=expand)
    levels = np.broadcast_to(ndtr(bounds), (2, boot_means.shape[1])).astype(np.float64)
    quantiles = _column_quantiles(np.sort(boot_means, axis=0), levels)
    return quantiles[0], quantiles[1]


def bca_interval(
    boot_means: FloatMatrix, differences: FloatMatrix, *, confidence: float, expand: bool = True
) -> tuple[FloatVector, FloatVector]:
    """Bias-corrected and accelerated (BCa) bootstrap interval of the mean, per measure.

    The bias correction ``z0`` comes from the share of bootstrap means below the observed
    mean (ties count half, so discrete measures are not pushed to one side); the
    acceleration ``a`` is the jackknife skewness, which for a mean has the closed form
    ``sum(c**3) / (6 * sum(c**2) ** 1.5)`` with ``c`` the centred differences. With
    ``expand`` the normal bounds fed into the BCa levels are the small-sample expanded ones.
    """
    resamples = boot_means.shape[0]
    observed = differences.mean(axis=0)
    tolerance = _tie_tolerance(differences) / differences.shape[0]
    below = (boot_means < observed - tolerance).mean(axis=0)
    tied = (np.abs(boot_means - observed) <= tolerance).mean(axis=0)
    share = np.clip(below + 0.5 * tied, 0.5 / resamples, 1.0 - 0.5 / resamples)
    bias = ndtri(share)
    centred = differences - observed
    spread = (centred**2).sum(axis=0) ** 1.5
    skew = (centred**3).sum(axis=0)
    acceleration = np.divide(skew, 6.0 * spread, out=np.zeros_like(skew), where=spread > 0)
    shifted = bias + _normal_bounds(differences.shape[0], confidence, expand=expand)
    levels = ndtr(bias + shifted / (1.0 - acceleration * shifted))
    quantiles = _column_quantiles(np.sort(boot_means, axis=0), np.asarray(levels, np.float64))
    return quantiles[0], quantiles[1]


IntervalMethod = Callable[..., tuple[FloatVector, FloatVector]]
"""``(boot_means, differences, *, confidence, expand=True) -> (low, high)``, per measure."""

CI_METHODS: Final[Mapping[str, IntervalMethod]] = {
    "bca": bca_interval,
    "percentile": percentile_interval,
}
"""Bootstrap interval methods by the name that ``compare_runs(ci_method=...)`` accepts."""
