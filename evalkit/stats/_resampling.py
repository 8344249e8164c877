"""Vectorised resampling kernels for paired comparisons: sign-flip tests and the bootstrap.

Each kernel takes per-query differences ``(n_queries, n_measures)`` and applies one sign or
resample matrix per chunk to every measure with one matrix product: faster, and the right
joint resampling for measures of the same queries. Chunk sizes depend only on the number of
queries, so memory stays bounded and a seed always yields the same numbers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import scipy

from evalkit.errors import ConfigError

__all__ = [
    "CI_METHODS",
    "IntervalMethod",
    "bca_interval",
    "bootstrap_means",
    "check_resampling",
    "chunk_rows",
    "paired_resampling",
    "percentile_interval",
    "run_streams",
    "sign_flip_hits",
    "sign_flip_pvalues",
    "stream_sizes",
    "tie_tolerance",
]

FloatMatrix = npt.NDArray[np.float64]
FloatVector = npt.NDArray[np.float64]

# Bootstrap counts are tallied by one bincount per block; keeping that block near the size
# of the CPU's L2 cache is what makes bincount fast (random writes into a larger array
# thrash). Matrix products, on the other hand, want few large calls: their per-call cost
# (thread start-up in BLAS) dominates for thin blocks.
_BINCOUNT_CHUNK_ELEMENTS: Final = 1 << 18
_PRODUCT_CHUNK_ELEMENTS: Final = 1 << 22
# Bounds the Python-level chunk loop for very large query sets; the working memory is then
# about 20 bytes x this x n_queries per stream (160 MB at a million queries).
_MIN_CHUNK_ROWS: Final = 8
# Resampled statistics are accumulated in float32 matrix products. Two statistics closer
# than this fraction of sum(|d|) are treated as equal, so exact ties (common with discrete
# measures) are counted as ties despite float32 rounding.
_TIE_RTOL: Final = 1e-6
# Resampling is split into this many independent streams (fixed, so results do not depend
# on the machine); they run on threads once there are enough draws to pay for the pool.
_STREAMS: Final = 2
_PARALLEL_MIN_DRAWS: Final = 1 << 22


def chunk_rows(n_queries: int, resamples: int, elements: int = _PRODUCT_CHUNK_ELEMENTS) -> int:
    """Rows of resamples drawn at a time so that a chunk holds about ``elements`` values."""
    return int(min(resamples, max(_MIN_CHUNK_ROWS, elements // max(n_queries, 1))))


def stream_sizes(resamples: int) -> list[int]:
    """``resamples`` split into the ``_STREAMS`` fixed parts (empty parts left out), each
    drawn from its own child generator, so results do not depend on the machine."""
    parts = [resamples // _STREAMS + (i < resamples % _STREAMS) for i in range(_STREAMS)]
    return [part for part in parts if part]


def run_streams(jobs: Sequence[Callable[[], Any]], *, draws: int) -> list[Any]:
    """The results of ``jobs`` in order: on a small thread pool once ``draws`` (queries x
    resamples) pay for it (numpy's generators, bincount and BLAS release the GIL)."""
    workers = min(len(jobs), os.cpu_count() or 1)
    if workers > 1 and draws >= _PARALLEL_MIN_DRAWS:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda job: job(), jobs))
    return [job() for job in jobs]


def check_resampling(*, alpha: float, confidence: float, resamples: int, seed: int) -> None:
    """ConfigError unless ``alpha`` and ``confidence`` lie strictly between 0 and 1,
    ``resamples`` is a positive integer and ``seed`` a non-negative one."""
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must be strictly between 0 and 1, got {alpha!r}")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ConfigError(f"resamples must be a positive integer, got {resamples!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")


def tie_tolerance(differences: FloatMatrix) -> FloatVector:
    """Per column, how close two resampled sums of ``differences`` are to count as a tie."""
    return np.asarray(_TIE_RTOL * np.abs(differences).sum(axis=0), dtype=np.float64)


def sign_flip_pvalues(
    differences: FloatMatrix, *, resamples: int, rng: np.random.Generator
) -> FloatVector:
    """Two-sided paired randomisation (sign-flip) p-values, one per measure (column).

    The statistic is the sum of differences; the p-value is ``(1 + hits) / (1 + resamples)``
    (never 0) over sign vectors shared by all measures.
    """
    hits = sign_flip_hits(differences, resamples=resamples, rng=rng)
    return np.asarray((1.0 + hits) / (1.0 + resamples), dtype=np.float64)


def sign_flip_hits(
    differences: FloatMatrix, *, resamples: int, rng: np.random.Generator
) -> npt.NDArray[np.int64]:
    """How many of ``resamples`` random sign vectors reach the observed ``|sum(d)|``."""
    n_queries, _ = differences.shape
    weights = differences.astype(np.float32)
    total = differences.sum(axis=0)
    threshold = np.abs(total) - tie_tolerance(differences)
    hits = np.zeros(differences.shape[1], dtype=np.int64)
    rows = chunk_rows(n_queries, resamples, _PRODUCT_CHUNK_ELEMENTS // 2)
    for start in range(0, resamples, rows):
        chunk = min(rows, resamples - start)
        packed = np.frombuffer(rng.bytes((chunk * n_queries + 7) // 8), dtype=np.uint8)
        keep = np.unpackbits(packed, count=chunk * n_queries).reshape(chunk, n_queries)
        # With s = 2b - 1 for a bit b, sum(s * d) = 2 * (b @ d) - sum(d): a single GEMM.
        flipped = 2.0 * (keep.astype(np.float32) @ weights).astype(np.float64) - total
        hits += (np.abs(flipped) >= threshold).sum(axis=0)
    return hits


def bootstrap_means(
    differences: FloatMatrix, *, resamples: int, rng: np.random.Generator
) -> FloatMatrix:
    """Means of ``resamples`` bootstrap resamples of the queries, shape ``(resamples, m)``.

    Each resample draws ``n`` queries with replacement; its mean is ``counts @ d / n`` where
    ``counts`` holds how often each query was drawn. Counts are built a few rows at a time
    (one bincount over cache-sized blocks) into a float32 block that then takes a single
    matrix product shared by every measure.
    """
    n_queries, _ = differences.shape
    observed = differences.mean(axis=0)
    # Centring first keeps float32 rounding relative to the spread, not to the values.
    weights = (differences - observed).astype(np.float32)
    means = np.empty((resamples, differences.shape[1]), dtype=np.float64)
    block_rows = chunk_rows(n_queries, resamples)
    count_rows = min(block_rows, chunk_rows(n_queries, resamples, _BINCOUNT_CHUNK_ELEMENTS))
    counts = np.empty((block_rows, n_queries), dtype=np.float32)
    row_offsets = (np.arange(count_rows, dtype=np.int64) * n_queries)[:, np.newaxis]
    for start in range(0, resamples, block_rows):
        block = min(block_rows, resamples - start)
        for first in range(0, block, count_rows):
            rows = min(count_rows, block - first)
            drawn = rng.integers(0, n_queries, size=(rows, n_queries))
            drawn += row_offsets[:rows]
            tally = np.bincount(drawn.ravel(), minlength=rows * n_queries)
            counts[first : first + rows] = tally.reshape(rows, n_queries)
        means[start : start + block] = counts[:block] @ weights
    means /= n_queries
    means += observed
    return means


def paired_resampling(
    differences: FloatMatrix, *, resamples: int, rng: np.random.Generator
) -> tuple[FloatVector, FloatMatrix]:
    """Sign-flip p-values and bootstrap means, drawn in parallel streams.

    Both resampling schemes are split into the ``stream_sizes`` parts, each drawn from its
    own child of ``rng`` (``Generator.spawn``); results are identical whether the parts run
    one after another or on threads (``run_streams``).
    """
    parts = stream_sizes(resamples)
    flip_rngs = rng.spawn(len(parts))
    boot_rngs = rng.spawn(len(parts))
    jobs: list[Callable[[], npt.NDArray[np.int64] | FloatMatrix]] = [
        partial(sign_flip_hits, differences, resamples=part, rng=child)
        for part, child in zip(parts, flip_rngs, strict=True)
    ] + [
        partial(bootstrap_means, differences, resamples=part, rng=child)
        for part, child in zip(parts, boot_rngs, strict=True)
    ]
    results = run_streams(jobs, draws=differences.shape[0] * resamples)
    hits = np.sum(results[: len(parts)], axis=0)
    p_values = np.asarray((1.0 + hits) / (1.0 + resamples), dtype=np.float64)
    return p_values, np.concatenate(results[len(parts) :], axis=0)


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
            scipy.special.stdtrit(n_queries - 1.0, 1.0 - tail)
        )
    else:
        upper = float(scipy.special.ndtri(1.0 - tail))
    return np.array([[-upper], [upper]], dtype=np.float64)


def percentile_interval(
    boot_means: FloatMatrix, differences: FloatMatrix, *, confidence: float, expand: bool = True
) -> tuple[FloatVector, FloatVector]:
    """Percentile bootstrap interval of the mean difference, per measure.

    With ``expand`` the percentiles are those of the small-sample expanded bounds.
    """
    bounds = _normal_bounds(differences.shape[0], confidence, expand=expand)
    levels = scipy.special.ndtr(bounds)
    levels = np.broadcast_to(levels, (2, boot_means.shape[1])).astype(np.float64)
    quantiles = _column_quantiles(np.sort(boot_means, axis=0), levels)
    return quantiles[0], quantiles[1]


def bca_interval(
    boot_means: FloatMatrix, differences: FloatMatrix, *, confidence: float, expand: bool = True
) -> tuple[FloatVector, FloatVector]:
    """Bias-corrected and accelerated (BCa) bootstrap interval of the mean, per measure.

    ``z0`` counts ties as half (so discrete measures are not pushed to one side); the
    acceleration is the mean's closed-form jackknife skewness. With ``expand`` the normal
    bounds fed into the BCa levels are the small-sample expanded ones.
    """
    resamples = boot_means.shape[0]
    observed = differences.mean(axis=0)
    tolerance = tie_tolerance(differences) / differences.shape[0]
    below = (boot_means < observed - tolerance).mean(axis=0)
    tied = (np.abs(boot_means - observed) <= tolerance).mean(axis=0)
    share = np.clip(below + 0.5 * tied, 0.5 / resamples, 1.0 - 0.5 / resamples)
    bias = scipy.special.ndtri(share)
    centred = differences - observed
    spread = (centred**2).sum(axis=0) ** 1.5
    skew = (centred**3).sum(axis=0)
    acceleration = np.divide(skew, 6.0 * spread, out=np.zeros_like(skew), where=spread > 0)
    shifted = bias + _normal_bounds(differences.shape[0], confidence, expand=expand)
    levels = scipy.special.ndtr(bias + shifted / (1.0 - acceleration * shifted))
    quantiles = _column_quantiles(np.sort(boot_means, axis=0), np.asarray(levels, np.float64))
    return quantiles[0], quantiles[1]


IntervalMethod = Callable[..., tuple[FloatVector, FloatVector]]
"""``(boot_means, differences, *, confidence, expand=True) -> (low, high)``, per measure."""

CI_METHODS: Final[Mapping[str, IntervalMethod]] = {
    "bca": bca_interval,
    "percentile": percentile_interval,
}
"""Bootstrap interval methods by the name that ``compare_runs(ci_method=...)`` accepts."""
