"""Drift in the first two moments of the embeddings, in linear time (method ``moments``).

The statistic is the larger standardised move of the mean and of the per-dimension spread.
Its permutation null relabels blocks of consecutive rows, which keeps the test exact under
exchangeability and a burst of related rows on one side, computed from the block sums'
Gram matrix whatever the number of rows. docs/drift.md, "How `moments` works".
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from evalkit.drift.base import (
    DriftDetector,
    Embeddings,
    FloatArray,
    permutation_p_value,
    register_detector,
    require_finite,
    resolve_seed,
)
from evalkit.errors import ConfigError, InputError
from evalkit.records.drift import DriftResult

if TYPE_CHECKING:
    from threadpoolctl import ThreadpoolController

__all__ = ["BlockLayout", "BlockSums", "MomentsDrift", "moments_test"]

_TOO_LARGE = (
    "the embeddings are too large: their squares overflow; "
    "scale them down (for example, normalise each row to unit length)"
)


class BlockSums(NamedTuple):
    """Per-block column sums of a feature of both windows' rows."""

    blocks: FloatArray  # (K, d): the reference window's blocks first
    leftover_reference: FloatArray  # (d,): reference rows in no block
    total: FloatArray  # (d,): every row of both windows


class BlockLayout:
    """Consecutive-row blocks of two windows and random block relabellings.

    ``moves`` has one row per labelling, row 0 the observed one; ``moves @ move_vectors(B)``
    is how much each labelling changes the reference window's sum of block sums ``B`` (pair
    swaps need K/2 columns, not K). docs/drift.md, "How `moments` works".
    """

    def __init__(
        self,
        n_reference: int,
        n_current: int,
        *,
        n_blocks: int,
        n_permutations: int,
        rng: np.random.Generator,
    ) -> None:
        pool = n_reference + n_current
        self.n_reference, self.n_current = n_reference, n_current
        self.block_size = max(1, min(n_reference, n_current, pool // n_blocks))
        self.reference_blocks = n_reference // self.block_size
        self.current_blocks = n_current // self.block_size
        self.paired = self.reference_blocks == self.current_blocks
        if self.paired:
            swaps = rng.integers(0, 2, (n_permutations, self.reference_blocks))
            moves = np.vstack([np.zeros(self.reference_blocks), swaps])
        else:
            observed = self._observed()
            relabelled = rng.permuted(np.tile(observed, (n_permutations, 1)), axis=1)
            moves = np.vstack([observed, relabelled]) - observed
        self.moves = moves.astype(np.float32)

    def _observed(self) -> FloatArray:
        observed = np.zeros(self.reference_blocks + self.current_blocks)
        observed[: self.reference_blocks] = 1.0
        return observed

    @property
    def scheme(self) -> str:
        """How relabellings are drawn: ``block pair swaps`` or ``block permutations``."""
        return "block pair swaps" if self.paired else "block permutations"

    @property
    def labels(self) -> FloatArray:
        """The (1 + P, K) 0/1 block labels: 1 where a block is on the reference side."""
        moves = self.moves.astype(np.float64)
        if self.paired:
            return np.hstack([1.0 - moves, moves])
        result: FloatArray = self._observed() + moves
        return result

    def move_vectors(self, blocks: FloatArray) -> FloatArray:
        """What each column of ``moves`` adds to the reference sum, given block sums."""
        if self.paired:
            difference: FloatArray = (
                blocks[self.reference_blocks :] - blocks[: self.reference_blocks]
            )
            return difference
        return blocks

    def sums(
        self,
        reference: npt.NDArray[np.floating[Any]],
        current: npt.NDArray[np.floating[Any]],
        *,
        squared: bool = False,
    ) -> BlockSums:
        """Block sums of the rows (or of their elementwise squares) of both windows."""
        size = self.block_size

        def blocked(rows: npt.NDArray[np.floating[Any]]) -> FloatArray:
            grouped = rows.reshape(-1, size, rows.shape[1])
            if squared:
                summed = np.einsum("kbd,kbd->kd", grouped, grouped)
            else:  # a product with ones runs in BLAS, faster than a reduction over rows
                summed = (np.ones((1, size), dtype=rows.dtype) @ grouped)[:, 0]
            result: FloatArray = np.asarray(summed, dtype=np.float64)
            return result

        def leftover(rows: npt.NDArray[np.floating[Any]]) -> FloatArray:
            values = np.square(rows) if squared else rows
            result: FloatArray = values.sum(axis=0, dtype=np.float64)
            return result

        split_reference = self.reference_blocks * size
        split_current = self.current_blocks * size
        blocks = np.vstack([blocked(reference[:split_reference]), blocked(current[:split_current])])
        leftover_reference = leftover(reference[split_reference:])
        total = blocks.sum(axis=0) + leftover_reference + leftover(current[split_current:])
        return BlockSums(blocks, leftover_reference, total)

    def centred_squares(self, squares: BlockSums, sums: BlockSums) -> BlockSums:
        """Sums of ``(x − pooled mean)²`` from the sums of ``x²`` and of ``x``.

        Centring on the pooled mean (the same for every relabelling) makes the spread
        distance measure spread alone: squares of uncentred values also move when only the
        mean does.
        """
        n_pool = self.n_reference + self.n_current
        leftover_rows = self.n_reference - self.reference_blocks * self.block_size
        centre = sums.total / n_pool

        def centred(square: FloatArray, linear: FloatArray, count: float) -> FloatArray:
            result: FloatArray = square - 2.0 * centre * linear + count * centre**2
            return result

        return BlockSums(
            centred(squares.blocks, sums.blocks, self.block_size),
            centred(squares.leftover_reference, sums.leftover_reference, leftover_rows),
            centred(squares.total, sums.total, n_pool),
        )

    def mean_distances(self, *features: BlockSums) -> list[FloatArray]:
        """``‖mean over reference rows − mean over current rows‖²`` of each feature under
        every labelling, one (1 + P,) array per feature."""
        m, n = self.n_reference, self.n_current
        # With D the observed reference sum minus its share m/N of the total and V the move
        # vectors, a relabelling's deviation is D + x·V for its move x, so its square norm
        # is ‖D‖² + 2 x·(V·D) + xᵀ(V·Vᵀ)x: one product of the moves with [V·Vᵀ | V·D] per
        # feature, whatever the number of rows.
        forms, magnitudes, observed_squares = [], [], []
        with np.errstate(over="ignore", invalid="ignore"):
            for sums in features:
                reference_sum = sums.blocks[: self.reference_blocks].sum(axis=0)
                deviation = reference_sum + sums.leftover_reference - (m / (m + n)) * sums.total
                vectors = self.move_vectors(sums.blocks)
                form = vectors @ np.column_stack([vectors.T, deviation])
                # Each form is scaled to at most 1 before the single-precision product, whose
                # range (about 3e38) the squared block sums of large values would exceed.
                magnitude = float(np.abs(form).max(initial=0.0)) or 1.0
                forms.append(form / magnitude)
                magnitudes.append(magnitude)
                observed_squares.append(float(deviation @ deviation))
        # Single precision halves the largest product; its rounding (~1e-7 relative) is far
        # below the differences between relabellings that the p-value compares.
        stacked = (self.moves @ np.hstack(forms).astype(np.float32)).astype(np.float64)
        # mean(reference) − mean(current) = (S_ref − m/N·T)·(1/m + 1/n)
        scale = (1.0 / m + 1.0 / n) ** 2
        distances = []
        for product, magnitude, observed_square in zip(
            np.split(stacked, len(features), axis=1), magnitudes, observed_squares, strict=True
        ):
            quadratic = np.einsum("ij,ij->i", product[:, :-1], self.moves, dtype=np.float64)
            with np.errstate(over="ignore", invalid="ignore"):
                relabelled = magnitude * (2.0 * product[:, -1] + quadratic)
                distances.append((observed_square + relabelled) * scale)
        return distances


def _standardised(values: FloatArray) -> FloatArray:
    spread = float(values.std())
    if spread == 0.0:
        return np.zeros_like(values)
    result: FloatArray = (values - values.mean()) / spread
    return result


@functools.cache
def _blas() -> ThreadpoolController:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def moments_test(
    reference: Embeddings,
    current: Embeddings,
    *,
    n_blocks: int,
    n_permutations: int,
    rng: np.random.Generator,
) -> tuple[float, float, float, dict[str, Any]]:
    """Statistic, p-value, effect size and details of the two-moment block permutation test."""
    # The products here are small (K ≤ a few hundred): starting BLAS threads costs more than
    # they save, and on a loaded machine many times more (measured 56 ms against 4 ms).
    with _blas().limit(limits=1, user_api="blas"):
        return _moments(
            reference,
            current,
            BlockLayout(
                reference.shape[0],
                current.shape[0],
                n_blocks=n_blocks,
                n_permutations=n_permutations,
                rng=rng,
            ),
        )


def _moments(
    reference: Embeddings, current: Embeddings, layout: BlockLayout
) -> tuple[float, float, float, dict[str, Any]]:
    m, n = reference.shape[0], current.shape[0]
    first = layout.sums(reference, current)
    squares = layout.sums(reference, current, squared=True)
    if not (np.isfinite(first.total).all() and np.isfinite(squares.total).all()):
        require_finite(reference, name="reference")
        require_finite(current, name="current")
        raise InputError(_TOO_LARGE)
    second = layout.centred_squares(squares, first)
    mean_distances, spread_distances = layout.mean_distances(first, second)
    if not (np.isfinite(mean_distances).all() and np.isfinite(spread_distances).all()):
        raise InputError(_TOO_LARGE)
    mean_z, spread_z = _standardised(mean_distances), _standardised(spread_distances)
    combined = np.maximum(mean_z, spread_z)
    total_variance = float(second.total.sum()) / (m + n)
    effect = math.sqrt(mean_distances[0] / total_variance) if total_variance > 0.0 else 0.0
    details = {
        "mean_distance": float(mean_distances[0]),
        "mean_z": float(mean_z[0]),
        "mean_p_value": permutation_p_value(float(mean_z[0]), mean_z[1:]),
        "spread_distance": float(spread_distances[0]),
        "spread_z": float(spread_z[0]),
        "spread_p_value": permutation_p_value(float(spread_z[0]), spread_z[1:]),
        "permutations": layout.scheme,
        "n_permutations": layout.moves.shape[0] - 1,
        "block_size": layout.block_size,
        "n_blocks": layout.reference_blocks + layout.current_blocks,
    }
    observed = float(combined[0])
    return observed, permutation_p_value(observed, combined[1:]), effect, details


@register_detector("moments")
class MomentsDrift(DriftDetector):
    """Has the mean embedding or the per-dimension spread moved? Linear time, exact p-value.

    ``statistic`` is the larger standardised distance (mean or spread, in standard
    deviations of its permutation null); ``effect_size`` is the distance between the mean
    embeddings relative to the pooled spread, ``‖Δmean‖ / √(total variance)``.
    """

    checks_finite_in_test = True

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        seed: int | None = 0,
        n_blocks: int = 100,
        n_permutations: int = 999,
    ) -> None:
        super().__init__(alpha=alpha, seed=seed)
        if n_blocks < 2 or n_permutations < 1:
            raise ConfigError("n_blocks must be at least 2 and n_permutations at least 1")
        self.n_blocks = n_blocks
        self.n_permutations = n_permutations

    def _test(self, reference: Embeddings, current: Embeddings) -> DriftResult:
        seed = resolve_seed(self.seed)
        statistic, p_value, effect, details = moments_test(
            reference,
            current,
            n_blocks=self.n_blocks,
            n_permutations=self.n_permutations,
            rng=np.random.default_rng(seed),
        )
        return self._result(
            statistic=statistic,
            p_value=p_value,
            effect_size=effect,
            n_reference=reference.shape[0],
            n_current=current.shape[0],
            seed=seed,
            details=details,
        )
