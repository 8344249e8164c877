"""Maximum mean discrepancy (MMD²) drift detectors with an RBF kernel and permutation p-values.

The bandwidth comes from the *pooled* sample, so one bandwidth serves every relabelling and
the permutation test stays exact. ``MMDDrift`` uses exact kernel sums up to
``exact_max_pool`` pooled rows and random Fourier features above; ``RFFMMDDrift`` always
uses the features. docs/drift.md, "How `mmd` works".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from evalkit.drift.base import (
    DriftDetector,
    Embeddings,
    FloatArray,
    permutation_p_value,
    permuted_label_sums,
    random_assignments,
    register_detector,
    resolve_seed,
)
from evalkit.errors import ConfigError, InputError
from evalkit.records.drift import DriftResult

__all__ = [
    "MMDDrift",
    "RFFMMDDrift",
    "median_bandwidth",
    "mmd2_unbiased",
    "rbf_kernel",
]


def rbf_kernel(x: FloatArray, y: FloatArray, *, bandwidth: float) -> FloatArray:
    """RBF kernel matrix ``exp(-||x_i - y_j||² / (2 bandwidth²))`` (small inputs only)."""
    squared = _squared_distances(x, np.einsum("ij,ij->i", x, x), y, np.einsum("ij,ij->i", y, y))
    return np.exp(squared * (-0.5 / bandwidth**2))


def _squared_distances(
    x: FloatArray, x_norms: FloatArray, y: FloatArray, y_norms: FloatArray
) -> FloatArray:
    squared = x_norms[:, None] + y_norms[None, :] - 2.0 * (x @ y.T)
    return np.maximum(squared, 0.0, out=squared)


def median_bandwidth(
    pooled: Embeddings, *, max_points: int = 300, rng: np.random.Generator | None = None
) -> float:
    """Median pairwise Euclidean distance of ``pooled`` (a subsample of ``max_points`` rows).

    Falls back to 1.0 when the median is 0 (most points identical), where any bandwidth
    gives the same verdict.
    """
    chosen = pooled
    if pooled.shape[0] > max_points:
        generator = rng if rng is not None else np.random.default_rng(0)
        chosen = pooled[np.sort(generator.choice(pooled.shape[0], max_points, replace=False))]
    sample: FloatArray = chosen.astype(np.float64, copy=False)
    norms = np.einsum("ij,ij->i", sample, sample)
    squared = _squared_distances(sample, norms, sample, norms)
    upper = squared[np.triu_indices(sample.shape[0], k=1)]
    median = math.sqrt(float(np.median(upper))) if upper.size else 0.0
    return median if median > 0.0 else 1.0


def _kernel_label_forms(
    pooled: FloatArray, labels: FloatArray, *, bandwidth: float, block_size: int
) -> tuple[FloatArray, FloatArray, float]:
    """For every label column ``a``: ``a'Ka``, ``a'K1`` and ``1'K1``, computed in row blocks."""
    norms = np.einsum("ij,ij->i", pooled, pooled)
    scale = -0.5 / bandwidth**2
    quadratic = np.zeros(labels.shape[1])
    row_sums = np.empty(pooled.shape[0])
    for start in range(0, pooled.shape[0], block_size):
        stop = min(start + block_size, pooled.shape[0])
        squared = _squared_distances(pooled[start:stop], norms[start:stop], pooled, norms)
        # The diagonal is exactly zero distance; rounding in the expansion must not move it.
        block_rows = np.arange(stop - start)
        squared[block_rows, block_rows + start] = 0.0
        kernel = np.exp(squared * scale, out=squared)
        row_sums[start:stop] = kernel.sum(axis=1)
        quadratic += np.einsum("ij,ij->j", labels[start:stop], kernel @ labels)
    return quadratic, labels.T @ row_sums, float(row_sums.sum())


def _mmd2_from_forms(
    quadratic: FloatArray,
    linear: FloatArray,
    total: float,
    n_reference: int,
    n_current: int,
) -> FloatArray:
    """Unbiased MMD² from label forms of a kernel with unit diagonal (RBF, its RFF copy)."""
    m, n = n_reference, n_current
    within_reference = quadratic - m
    cross = linear - quadratic
    within_current = total - 2.0 * linear + quadratic - n
    result: FloatArray = (
        within_reference / (m * (m - 1)) + within_current / (n * (n - 1)) - 2.0 * cross / (m * n)
    )
    return result


def mmd2_unbiased(
    reference: npt.ArrayLike,
    current: npt.ArrayLike,
    *,
    bandwidth: float,
    block_size: int = 1024,
) -> float:
    """Unbiased MMD² between two samples under the RBF kernel, in O(n·block_size) memory."""
    x = np.asarray(reference, dtype=np.float64)
    y = np.asarray(current, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise InputError("reference and current must be 2-D arrays with the same dimension")
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise InputError("unbiased MMD² needs at least 2 rows in each sample")
    labels = np.zeros((x.shape[0] + y.shape[0], 1))
    labels[: x.shape[0]] = 1.0
    quadratic, linear, total = _kernel_label_forms(
        np.vstack([x, y]), labels, bandwidth=bandwidth, block_size=block_size
    )
    return float(_mmd2_from_forms(quadratic, linear, total, x.shape[0], y.shape[0])[0])


def _rff_frequencies(
    dimension: int, *, bandwidth: float, n_frequencies: int, rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    """Random frequencies ``W ~ N(0, σ⁻² I)`` of the RBF kernel's Fourier transform."""
    frequencies = rng.standard_normal((dimension, n_frequencies)).astype(np.float32)
    frequencies /= np.float32(bandwidth)
    return frequencies


def _fourier_features(
    points: Embeddings, frequencies: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """``[cos(xW), sin(xW)] / √F`` of every row, one feature per row of the (2F, n) result.

    Inner products of the columns approximate the kernel and ``φ(x)·φ(x) = 1`` exactly. The
    transposed layout lets the permutation FFTs run along contiguous memory.
    """
    n_frequencies = frequencies.shape[1]
    phases = frequencies.T @ points.astype(np.float32, copy=False).T
    features = np.empty((2 * n_frequencies, points.shape[0]), dtype=np.float32)
    np.cos(phases, out=features[:n_frequencies])
    np.sin(phases, out=features[n_frequencies:])
    features *= np.float32(1.0 / math.sqrt(n_frequencies))
    return features


def _random_fourier_features(
    points: Embeddings, *, bandwidth: float, n_frequencies: int, rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    """Random Fourier features of ``points`` with freshly drawn frequencies."""
    frequencies = _rff_frequencies(
        points.shape[1], bandwidth=bandwidth, n_frequencies=n_frequencies, rng=rng
    )
    return _fourier_features(points, frequencies).T


def _pooled_sample(
    reference: Embeddings, current: Embeddings, max_points: int, rng: np.random.Generator
) -> Embeddings:
    """A uniform subsample (at most ``max_points`` rows) of the pooled windows."""
    m, n_pool = reference.shape[0], reference.shape[0] + current.shape[0]
    if n_pool <= max_points:
        return np.vstack([reference, current])
    chosen = np.sort(rng.choice(n_pool, max_points, replace=False))
    return np.vstack([reference[chosen[chosen < m]], current[chosen[chosen >= m] - m]])


@register_detector("mmd")
class MMDDrift(DriftDetector):
    """Unbiased MMD² (RBF kernel, median-heuristic bandwidth) with a permutation p-value.

    Exact kernel sums while the pooled sample has at most ``exact_max_pool`` rows, random
    Fourier features above (see the module docstring). ``statistic`` is MMD²; ``effect_size``
    is MMD (the square root of MMD², 0 when the estimate is negative).
    """

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        seed: int | None = 0,
        n_permutations: int = 500,
        bandwidth: float | None = None,
        bandwidth_sample: int = 300,
        exact_max_pool: int = 2000,
        block_size: int = 512,
        n_frequencies: int = 64,
        rff_permutations: int = 200,
    ) -> None:
        super().__init__(alpha=alpha, seed=seed)
        if n_permutations < 1 or rff_permutations < 1:
            raise ConfigError("n_permutations and rff_permutations must be at least 1")
        if bandwidth is not None and not bandwidth > 0.0:
            raise ConfigError(f"bandwidth must be positive or None, got {bandwidth}")
        if bandwidth_sample < 2 or block_size < 1 or n_frequencies < 1 or exact_max_pool < 0:
            raise ConfigError(
                "bandwidth_sample must be >= 2, block_size and n_frequencies >= 1, "
                "exact_max_pool >= 0"
            )
        self.n_permutations = n_permutations
        self.bandwidth = bandwidth
        self.bandwidth_sample = bandwidth_sample
        self.exact_max_pool = exact_max_pool
        self.block_size = block_size
        self.n_frequencies = n_frequencies
        self.rff_permutations = rff_permutations

    def _test(self, reference: Embeddings, current: Embeddings) -> DriftResult:
        seed = resolve_seed(self.seed)
        rng = np.random.default_rng(seed)
        m, n = reference.shape[0], current.shape[0]
        bandwidth = self.bandwidth or median_bandwidth(
            _pooled_sample(reference, current, self.bandwidth_sample, rng)
        )
        details: dict[str, Any] = {"bandwidth": bandwidth, "kernel": "rbf"}
        if m + n <= self.exact_max_pool:
            pooled = np.vstack([reference, current]).astype(np.float64, copy=False)
            values = self._exact(pooled, m, bandwidth, rng)
            details.update(estimator="exact", permutations="random")
        else:
            # Features per window, then pooled: the (2F, n) stack is smaller than (n, d).
            frequencies = _rff_frequencies(
                reference.shape[1], bandwidth=bandwidth, n_frequencies=self.n_frequencies, rng=rng
            )
            features = np.concatenate(
                [_fourier_features(window, frequencies) for window in (reference, current)],
                axis=1,
            ).T
            sums = permuted_label_sums(features, m, n_permutations=self.rff_permutations, rng=rng)
            values = _mmd2_from_forms(sums.square, sums.cross, sums.total, m, n)
            details.update(
                estimator="rff", n_features=2 * self.n_frequencies, permutations=sums.scheme
            )
        observed = float(values[0])
        details["n_permutations"] = int(values.size - 1)
        return self._result(
            statistic=observed,
            p_value=permutation_p_value(observed, values[1:]),
            effect_size=math.sqrt(max(observed, 0.0)),
            n_reference=m,
            n_current=n,
            seed=seed,
            details=details,
        )

    def _exact(
        self, pooled: FloatArray, m: int, bandwidth: float, rng: np.random.Generator
    ) -> FloatArray:
        n_pool = pooled.shape[0]
        observed_labels = np.zeros((n_pool, 1))
        observed_labels[:m] = 1.0
        permuted = next(
            random_assignments(m, n_pool, self.n_permutations, rng, chunk=self.n_permutations)
        )
        labels = np.hstack([observed_labels, permuted])
        quadratic, linear, total = _kernel_label_forms(
            pooled, labels, bandwidth=bandwidth, block_size=self.block_size
        )
        return _mmd2_from_forms(quadratic, linear, total, m, n_pool - m)


@register_detector("mmd_rff")
class RFFMMDDrift(MMDDrift):
    """MMD² always estimated with random Fourier features: linear time for any window size."""

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        seed: int | None = 0,
        bandwidth: float | None = None,
        bandwidth_sample: int = 300,
        n_frequencies: int = 64,
        rff_permutations: int = 200,
    ) -> None:
        super().__init__(
            alpha=alpha,
            seed=seed,
            bandwidth=bandwidth,
            bandwidth_sample=bandwidth_sample,
            exact_max_pool=0,
            n_frequencies=n_frequencies,
            rff_permutations=rff_permutations,
        )
