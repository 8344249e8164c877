"""Drift as the cosine distance between the mean embeddings of two windows.

The statistic is ``1 - cos(mean(reference), mean(current))`` with a permutation p-value
(``permuted_label_sums``). Cheap and easy to explain, but blind to a change in spread or
shape that keeps the mean (MMD sees both).
"""

from __future__ import annotations

import numpy as np

from evalkit.drift.base import (
    DriftDetector,
    Embeddings,
    FloatArray,
    LabelSums,
    permutation_p_value,
    permuted_label_sums,
    register_detector,
    resolve_seed,
)
from evalkit.errors import ConfigError
from evalkit.records.drift import DriftResult

__all__ = ["MeanCosineDrift", "mean_cosine_distance"]


def mean_cosine_distance(reference: Embeddings, current: Embeddings) -> float:
    """``1 - cos`` between the column means of two (n, d) arrays (0 when a mean is zero)."""
    first = np.asarray(reference, dtype=np.float64).mean(axis=0)
    second = np.asarray(current, dtype=np.float64).mean(axis=0)
    norms = float(np.linalg.norm(first) * np.linalg.norm(second))
    return 0.0 if norms == 0.0 else 1.0 - float(first @ second) / norms


def _distances_from_sums(sums: LabelSums) -> FloatArray:
    """``1 - cos(S, T - S)`` for every labelling; window sizes cancel out of the cosine."""
    dot = sums.cross - sums.square
    current_square = sums.total - 2.0 * sums.cross + sums.square
    norms = np.sqrt(np.maximum(sums.square, 0.0) * np.maximum(current_square, 0.0))
    cosine = np.divide(dot, norms, out=np.ones_like(dot), where=norms > 0.0)
    distances: FloatArray = 1.0 - np.clip(cosine, -1.0, 1.0)
    return distances


@register_detector("mean_cosine")
class MeanCosineDrift(DriftDetector):
    """Cosine distance between window mean embeddings, with a pooled permutation p-value.

    ``statistic`` and ``effect_size`` are both the cosine distance (0 = same direction).
    """

    def __init__(
        self, *, alpha: float = 0.05, seed: int | None = 0, n_permutations: int = 1000
    ) -> None:
        super().__init__(alpha=alpha, seed=seed)
        if n_permutations < 1:
            raise ConfigError(f"n_permutations must be at least 1, got {n_permutations}")
        self.n_permutations = n_permutations

    def _test(self, reference: Embeddings, current: Embeddings) -> DriftResult:
        seed = resolve_seed(self.seed)
        rng = np.random.default_rng(seed)
        pooled = np.vstack([reference, current])
        sums = permuted_label_sums(
            pooled, reference.shape[0], n_permutations=self.n_permutations, rng=rng
        )
        distances = _distances_from_sums(sums)
        observed = float(distances[0])
        return self._result(
            statistic=observed,
            p_value=permutation_p_value(observed, distances[1:]),
            effect_size=observed,
            n_reference=reference.shape[0],
            n_current=current.shape[0],
            seed=seed,
            details={"n_permutations": sums.n_permutations, "permutations": sums.scheme},
        )
