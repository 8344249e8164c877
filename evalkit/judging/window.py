"""Measures of rankings labelled by an assessor, with bootstrap intervals over queries.

The input is one row per query and one column per rank (the top ``k``): the assessor's
grade 0-3, ``UNLABELLED`` (-1) where the document has no grade (no text, over the budget,
left unjudged), or ``NO_DOCUMENT`` (-2) past the end of a ranking shorter than ``k``.

The figures rest only on the queries whose top ``k`` is fully labelled; a query with any
unlabelled document is left out, never scored with that document as not relevant. Counting
it as not relevant (as trec_eval counts an unjudged document of a goldset run) would bias a
partly labelled window low by about its unlabelled share, enough for a window test to call
a drop that is not there. Left out at random (the caller decides which queries are labelled
in a random order), the fully labelled queries are a random sample of the window and its
figures are unbiased, with intervals as wide as the sample is small. The share of retrieved
documents that have a grade is reported beside every figure (``judged_share``).

* ``precision@k``: documents graded ``threshold`` or more, divided by ``k``;
* ``hit_rate@k``: 1 when any of them is;
* ``ndcg@k``: grades as gains, discount log2(rank + 1), the ideal from the same query's
  labelled documents sorted by grade (the only judgments a traffic query has).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from evalkit.errors import EvalkitError

__all__ = ["NO_DOCUMENT", "UNLABELLED", "LabelledFigure", "judged_share", "labelled_figures"]

UNLABELLED = -1
"""A retrieved document with no grade."""
NO_DOCUMENT = -2
"""A rank past the end of a shorter ranking."""

GradeMatrix = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class LabelledFigure:
    """One measure over the fully labelled queries: the mean and its percentile bootstrap
    interval, and how many queries it rests on (value and bounds None when none is)."""

    measure: str
    value: float | None
    low: float | None
    high: float | None
    n_queries: int


def _per_query(grades: GradeMatrix, threshold: int) -> dict[str, FloatArray]:
    k = grades.shape[1]
    gains = np.where(grades < 0, 0, grades).astype(np.float64)
    relevant = grades >= threshold
    discounts = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    dcg = gains @ discounts
    ideal = -np.sort(-gains, axis=1) @ discounts
    with np.errstate(divide="ignore", invalid="ignore"):
        ndcg = np.where(ideal > 0, dcg / np.where(ideal > 0, ideal, 1.0), 0.0)
    return {
        f"precision@{k}": relevant.sum(axis=1) / k,
        f"ndcg@{k}": ndcg,
        f"hit_rate@{k}": relevant.any(axis=1).astype(np.float64),
    }


def labelled_figures(
    grades: GradeMatrix,
    *,
    threshold: int = 2,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> list[LabelledFigure]:
    """The window's figures over its fully labelled queries (see the module docstring).
    With no fully labelled query (or no query) every figure has no value (``n_queries`` 0).

    Every measure's interval comes from the same ``n_resamples`` resamples of the queries
    (one seeded draw of indices, shared across measures).
    """
    if grades.ndim != 2 or grades.shape[1] == 0:
        raise EvalkitError("labelled figures need a depth of at least 1")
    labelled = grades[~(grades == UNLABELLED).any(axis=1)]
    per_query = _per_query(labelled, threshold)
    n = labelled.shape[0]
    if n == 0:
        return [LabelledFigure(measure, None, None, None, 0) for measure in per_query]
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_resamples, n))
    tail = (1.0 - confidence) / 2.0
    figures = []
    for measure, values in per_query.items():
        means = values[draws].mean(axis=1)
        figures.append(
            LabelledFigure(
                measure=measure,
                value=float(values.mean()),
                low=float(np.quantile(means, tail)),
                high=float(np.quantile(means, 1.0 - tail)),
                n_queries=n,
            )
        )
    return figures


def judged_share(grades: GradeMatrix) -> float:
    """The share of the retrieved documents of ``grades`` that have a grade (0 when none
    was retrieved)."""
    retrieved = np.count_nonzero(grades != NO_DOCUMENT)
    return float(np.count_nonzero(grades >= 0) / retrieved) if retrieved else 0.0
