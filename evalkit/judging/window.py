"""Measures of rankings labelled by an assessor, with intervals over queries.

Input: one row per query, one column per rank (grade 0-3, ``UNLABELLED`` or ``NO_DOCUMENT``).
Only queries whose top ``k`` is fully labelled count: an unlabelled document counted as not
relevant would bias the window low, and those queries are a random sample of it. Scored by
``evalkit.metrics`` as ``ndcg_judged@k``, never ``ndcg@k``: docs/judging.md, "The interval of
a window".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy

from evalkit.errors import EvalkitError
from evalkit.metrics.kernels import RankedGrades
from evalkit.metrics.measures import Measure

__all__ = [
    "NO_DOCUMENT",
    "UNLABELLED",
    "WINDOW_INTERVAL",
    "LabelledFigure",
    "figures_of",
    "judged_share",
    "labelled_figures",
    "labelled_per_query",
    "mean_interval",
]

UNLABELLED = -1
"""A retrieved document with no grade."""
NO_DOCUMENT = -2
"""A rank past the end of a shorter ranking."""

GradeMatrix = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_EQUAL = 1e-9
"""Values of a window closer than this are equal."""
_LARGEST_SIZE = 1e12
"""The largest effective size an interval is computed at: values that barely differ give
sizes of 1e20 and more, at which the beta quantiles are NaN (at 1e12 the interval is
already narrower than 1e-6)."""

WINDOW_INTERVAL = "korn-graubard"
"""The name of ``mean_interval`` in a stored figure's details (``interval``): figures
stored before it have a percentile bootstrap interval and ``resamples`` instead."""


@dataclass(frozen=True, slots=True)
class LabelledFigure:
    """One measure over the fully labelled queries: the mean and its interval
    (``mean_interval``), and how many queries it rests on (value and bounds None when none
    is)."""

    measure: str
    value: float | None
    low: float | None
    high: float | None
    n_queries: int


def _per_query(grades: GradeMatrix, threshold: int) -> dict[str, FloatArray]:
    k = grades.shape[1]
    ranked = RankedGrades.from_top_k(grades, relevance_threshold=threshold)
    measures = (Measure("precision", k), Measure("ndcg_judged", k), Measure("hit_rate", k))
    return {str(measure): measure.compute(ranked) for measure in measures}


def mean_interval(values: FloatArray, *, confidence: float = 0.95) -> tuple[float, float]:
    """The interval of the mean of ``values`` (each in [0, 1]) at ``confidence`` (docs/judging.md).

    Clopper-Pearson at the effective sample size n * m(1 - m) / s^2 (n where all values are
    equal), scaled by (z / t)^2 on n - 1 degrees of freedom (Korn and Graubard). One value: [0, 1].
    """
    n = len(values)
    if n < 2:
        return 0.0, 1.0
    mean = float(values.mean())
    tail = (1.0 - confidence) / 2.0
    # Equal values (up to rounding: estimates from one calibration plateau differ by 1e-17)
    # are taken as equal: their floating-point variance, 1e-35, would read as an effective
    # size without bound, and the beta quantiles of such a size are NaN.
    variance = float(values.var(ddof=1)) if np.ptp(values) > _EQUAL else 0.0
    n_eff = min(n * mean * (1.0 - mean) / variance, _LARGEST_SIZE) if variance > 0 else float(n)
    normal = float(scipy.stats.norm.ppf(1.0 - tail))
    student = float(scipy.stats.t.ppf(1.0 - tail, n - 1))
    size = n_eff * (normal / student) ** 2
    hits = mean * size
    low = float(scipy.stats.beta.ppf(tail, hits, size - hits + 1)) if mean > 0 else 0.0
    high = float(scipy.stats.beta.ppf(1.0 - tail, hits + 1, size - hits)) if mean < 1 else 1.0
    return low, high


def labelled_per_query(
    grades: GradeMatrix, *, threshold: int = 2
) -> tuple[npt.NDArray[np.bool_], dict[str, FloatArray]]:
    """Which rows of ``grades`` are fully labelled, and each measure's value for each of
    those rows (in row order), plus ``max_grade@k``: the highest grade in the row's top k
    (-1 when it retrieved nothing)."""
    if grades.ndim != 2 or grades.shape[1] == 0:
        raise EvalkitError("labelled figures need a depth of at least 1")
    complete = ~(grades == UNLABELLED).any(axis=1)
    labelled = grades[complete]
    per_query = _per_query(labelled, threshold)
    highest = labelled.max(axis=1, initial=NO_DOCUMENT).astype(np.float64)
    per_query[f"max_grade@{grades.shape[1]}"] = np.where(highest < 0, -1.0, highest)
    return complete, per_query


def labelled_figures(
    grades: GradeMatrix, *, threshold: int = 2, confidence: float = 0.95
) -> list[LabelledFigure]:
    """The window's figures over its fully labelled queries (see the module docstring),
    each with its ``mean_interval`` over those queries. With no fully labelled query (or no
    query) every figure has no value (``n_queries`` 0)."""
    _, per_query = labelled_per_query(grades, threshold=threshold)
    return figures_of(per_query, confidence=confidence)


def figures_of(
    per_query: dict[str, FloatArray], *, confidence: float = 0.95
) -> list[LabelledFigure]:
    """``labelled_figures`` of the values ``labelled_per_query`` gave (its ``max_grade@k``
    left out: a grade, not a measure)."""
    measures = {m: v for m, v in per_query.items() if not m.startswith("max_grade@")}
    figures = []
    for measure, values in measures.items():
        n = len(values)
        low, high = mean_interval(values, confidence=confidence) if n else (None, None)
        figures.append(
            LabelledFigure(
                measure=measure,
                value=float(values.mean()) if n else None,
                low=low,
                high=high,
                n_queries=n,
            )
        )
    return figures


def judged_share(grades: GradeMatrix) -> float:
    """The share of the retrieved documents of ``grades`` that have a grade (0 when none
    was retrieved)."""
    retrieved = np.count_nonzero(grades != NO_DOCUMENT)
    return float(np.count_nonzero(grades >= 0) / retrieved) if retrieved else 0.0
