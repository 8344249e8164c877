"""How far an assessor's labels can be trusted: agreement with human judgments.

Per pair, weighted Cohen's kappa with a bootstrap interval; per system, Kendall's tau between
run rankings under human and assessor labels. LLM labels agree only moderately pair by pair
yet rank systems almost as humans do, so they are for window- and system-level figures,
never one query's verdict (docs/judging.md, "Agreement").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
import scipy

from evalkit.errors import EvalkitError

__all__ = [
    "KappaResult",
    "TauResult",
    "kendall_tau",
    "weighted_kappa",
    "weighted_kappa_interval",
]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class KappaResult:
    """Weighted Cohen's kappa of two raters over the same pairs, with its bootstrap interval.

    ``confusion[i][j]`` counts pairs graded ``human_levels[i]`` / ``assessor_levels[j]``; ``scale``
    is ``graded`` (linear weights) or ``binary`` (at ``assessor_threshold``).
    """

    kappa: float
    low: float
    high: float
    confidence: float
    n_pairs: int
    scale: str
    assessor_threshold: int
    human_levels: tuple[int, ...]
    assessor_levels: tuple[int, ...]
    confusion: tuple[tuple[int, ...], ...]
    n_resamples: int
    seed: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form: the fields by name, the levels and the confusion as lists."""
        return asdict(self) | {
            "human_levels": list(self.human_levels),
            "assessor_levels": list(self.assessor_levels),
            "confusion": [list(row) for row in self.confusion],
        }


@dataclass(frozen=True, slots=True)
class TauResult:
    """Kendall's tau-b between two rankings of the same runs, with its two-sided p-value."""

    tau: float
    p_value: float
    n_runs: int


def _kappas(
    counts: npt.NDArray[np.float64], weights: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Weighted kappa of each confusion matrix of ``counts`` (shape: matrices x levels x
    levels); NaN where chance explains every agreement (both raters gave one label to all)."""
    totals = counts.sum(axis=(1, 2))[:, None, None]
    observed = counts / np.where(totals == 0, 1.0, totals)
    expected = observed.sum(axis=2)[:, :, None] * observed.sum(axis=1)[:, None, :]
    disagreement_expected = (weights * expected).sum(axis=(1, 2))
    disagreement_observed = (weights * observed).sum(axis=(1, 2))
    undefined = disagreement_expected == 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        kappas = 1.0 - disagreement_observed / np.where(undefined, 1.0, disagreement_expected)
    return np.where(undefined, np.nan, kappas)


def _prepare(
    human: Sequence[int], assessor: Sequence[int], assessor_threshold: int
) -> tuple[IntArray, IntArray, str, int]:
    human_grades = np.asarray(human, dtype=np.int64)
    assessor_grades = np.asarray(assessor, dtype=np.int64)
    if human_grades.shape != assessor_grades.shape or human_grades.ndim != 1:
        raise EvalkitError("kappa needs one human and one assessor grade per pair")
    if human_grades.size == 0:
        raise EvalkitError("kappa needs at least one pair judged by both")
    if not 0 <= assessor_threshold <= 3:
        raise EvalkitError(f"assessor_threshold {assessor_threshold} is outside 0 to 3")
    binary = np.unique(np.clip(human_grades, 0, None)).size <= 2 and human_grades.max() <= 1
    if binary:
        return (
            (human_grades >= 1).astype(np.int64),
            (assessor_grades >= assessor_threshold).astype(np.int64),
            "binary",
            2,
        )
    return np.clip(human_grades, 0, 3), np.clip(assessor_grades, 0, 3), "graded", 4


def weighted_kappa(
    human: Sequence[int], assessor: Sequence[int], *, assessor_threshold: int = 2
) -> float:
    """Weighted Cohen's kappa of ``human`` and ``assessor`` grades of the same pairs (see the
    module docstring for the scale); NaN when chance explains every agreement (one label
    everywhere)."""
    rows, columns, _, levels = _prepare(human, assessor, assessor_threshold)
    counts = np.bincount(rows * levels + columns, minlength=levels * levels)
    matrix = counts.astype(np.float64).reshape(1, levels, levels)
    return float(_kappas(matrix, _linear_weights(levels))[0])


def _linear_weights(levels: int) -> npt.NDArray[np.float64]:
    grid = np.arange(levels, dtype=np.float64)
    return np.abs(grid[:, None] - grid[None, :]) / max(levels - 1, 1)


def weighted_kappa_interval(
    human: Sequence[int],
    assessor: Sequence[int],
    *,
    assessor_threshold: int = 2,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> KappaResult:
    """Weighted kappa with a percentile bootstrap interval over pairs and the confusion
    matrix (see ``KappaResult``). Resamples in which kappa is undefined are left out."""
    rows, columns, scale, levels = _prepare(human, assessor, assessor_threshold)
    weights = _linear_weights(levels)
    cells = rows * levels + columns
    counts = np.bincount(cells, minlength=levels * levels).astype(np.float64)
    kappa = float(_kappas(counts.reshape(1, levels, levels), weights)[0])
    rng = np.random.default_rng(seed)
    n = cells.size
    # One multinomial draw per resample over the observed cells is the pair bootstrap.
    resampled = rng.multinomial(n, counts / n, size=n_resamples).astype(np.float64)
    values = _kappas(resampled.reshape(n_resamples, levels, levels), weights)
    values = values[np.isfinite(values)]
    tail = (1.0 - confidence) / 2.0
    low, high = (
        (float(np.quantile(values, tail)), float(np.quantile(values, 1.0 - tail)))
        if values.size
        else (float("nan"), float("nan"))
    )
    human_grades = np.asarray(human, dtype=np.int64)
    assessor_grades = np.asarray(assessor, dtype=np.int64)
    human_levels = tuple(int(level) for level in np.unique(human_grades))
    assessor_levels = (0, 1, 2, 3)
    confusion = tuple(
        tuple(
            int(np.count_nonzero((human_grades == h) & (assessor_grades == a)))
            for a in assessor_levels
        )
        for h in human_levels
    )
    return KappaResult(
        kappa=kappa,
        low=low,
        high=high,
        confidence=confidence,
        n_pairs=n,
        scale=scale,
        assessor_threshold=assessor_threshold,
        human_levels=human_levels,
        assessor_levels=assessor_levels,
        confusion=confusion,
        n_resamples=n_resamples,
        seed=seed,
    )


def kendall_tau(by_humans: Sequence[float], by_assessor: Sequence[float]) -> TauResult:
    """Kendall's tau-b between the runs' figures under human and under assessor labels
    (same runs, same order); needs at least three runs."""
    if len(by_humans) != len(by_assessor):
        raise EvalkitError("Kendall's tau needs one figure per run from each label source")
    if len(by_humans) < 3:
        raise EvalkitError(f"Kendall's tau over runs needs at least 3 runs; {len(by_humans)} given")
    result = scipy.stats.kendalltau(by_humans, by_assessor)
    return TauResult(
        tau=float(result.statistic), p_value=float(result.pvalue), n_runs=len(by_humans)
    )
