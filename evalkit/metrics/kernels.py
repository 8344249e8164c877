"""Vectorised IR measures over a whole run, with trec_eval's semantics.

Every kernel takes a :class:`RankedGrades` (a run already joined to its judgments and put
in rank order) and returns one float per query. The maths is plain NumPy over 2-D arrays:
there is no Python loop over queries or documents.

What the kernels reproduce from trec_eval:

* a document is relevant when its grade is ``>= relevance_threshold`` (``-l``); documents
  with a negative grade count as judged-but-unjudged and are never relevant;
* recall, average precision and R-precision divide by every relevant judged document,
  retrieved or not; precision@k divides by ``k`` even when fewer were retrieved;
* nDCG uses the grade itself as gain (only positive grades count, whatever the threshold),
  discount ``log2(rank + 1)``, and the ideal ranking of all positive judged grades;
* a query without relevant documents scores 0 on every measure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from evalkit.errors import InputError

__all__ = [
    "UNJUDGED",
    "RankedGrades",
    "average_precision",
    "hit_rate",
    "ndcg",
    "precision",
    "r_precision",
    "recall",
    "reciprocal_rank",
]

UNJUDGED: Final[int] = int(np.iinfo(np.int32).min)
"""Grade given to retrieved documents that have no judgment, and to empty slots."""

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class RankedGrades:
    """A run joined to its judgments: what every kernel needs, for ``n`` queries.

    ``grades[i, r]`` is the grade of the document that query ``i`` retrieved at rank
    ``r + 1`` (:data:`UNJUDGED` for unjudged documents and for empty slots after the end
    of a shorter ranking). ``n_relevant[i]`` counts the judged documents of query ``i``
    with grade ``>= relevance_threshold``. The positive judged grades of query ``i``,
    sorted descending (its ideal ranking), are
    ``ideal_gains[ideal_offsets[i]:ideal_offsets[i + 1]]``; they are stored ragged rather
    than padded because one query may have thousands of relevant documents.
    """

    grades: NDArray[np.int32]
    n_relevant: NDArray[np.int64]
    ideal_gains: FloatArray
    ideal_offsets: NDArray[np.int64]
    relevance_threshold: int = field(default=1, kw_only=True)

    def __post_init__(self) -> None:
        if self.grades.ndim != 2:
            raise InputError(f"grades must be 2-D (queries x ranks), got shape {self.grades.shape}")
        n_queries = self.grades.shape[0]
        if self.n_relevant.shape != (n_queries,):
            raise InputError(
                f"n_relevant must have one entry per query ({n_queries}), "
                f"got shape {self.n_relevant.shape}"
            )
        if self.ideal_offsets.shape != (n_queries + 1,):
            raise InputError(
                f"ideal_offsets must have n_queries + 1 = {n_queries + 1} entries, "
                f"got shape {self.ideal_offsets.shape}"
            )
        if n_queries and (
            self.ideal_offsets[0] != 0 or self.ideal_offsets[-1] != self.ideal_gains.shape[0]
        ):
            raise InputError("ideal_offsets must start at 0 and end at len(ideal_gains)")
        if self.relevance_threshold < 0:
            raise InputError(
                f"relevance_threshold must be >= 0, got {self.relevance_threshold}",
                field="relevance_threshold",
            )

    @classmethod
    def from_lists(
        cls,
        retrieved: Sequence[Sequence[int | None]],
        judged: Sequence[Sequence[int]],
        *,
        relevance_threshold: int = 1,
    ) -> RankedGrades:
        """Build from plain lists: per query, the grades in rank order and all judged grades.

        ``None`` in ``retrieved`` marks an unjudged document. Meant for small inputs such as
        hand-computed examples; the evaluator builds the arrays directly.
        """
        if len(retrieved) != len(judged):
            raise InputError(f"retrieved has {len(retrieved)} queries but judged has {len(judged)}")
        depth = max((len(ranking) for ranking in retrieved), default=0)
        grades = np.full((len(retrieved), depth), UNJUDGED, dtype=np.int32)
        for row, ranking in enumerate(retrieved):
            grades[row, : len(ranking)] = [UNJUDGED if g is None else g for g in ranking]
        ideal = [sorted((g for g in query if g > 0), reverse=True) for query in judged]
        offsets = np.zeros(len(judged) + 1, dtype=np.int64)
        np.cumsum([len(gains) for gains in ideal], out=offsets[1:])
        n_relevant = np.array(
            [sum(g >= relevance_threshold for g in query) for query in judged],
            dtype=np.int64,
        )
        return cls(
            grades,
            n_relevant,
            np.array([g for gains in ideal for g in gains], dtype=np.float64),
            offsets,
            relevance_threshold=relevance_threshold,
        )

    @property
    def n_queries(self) -> int:
        """Number of queries (rows)."""
        return int(self.grades.shape[0])

    @property
    def depth(self) -> int:
        """Length of the longest ranking."""
        return int(self.grades.shape[1])

    @cached_property
    def relevant(self) -> NDArray[np.bool_]:
        """``relevant[i, r]``: the document at rank ``r + 1`` of query ``i`` is relevant."""
        return self.grades >= self.relevance_threshold

    @cached_property
    def relevant_so_far(self) -> NDArray[np.int32]:
        """Number of relevant documents at ranks ``1 .. r + 1`` (cumulative along ranks)."""
        return np.cumsum(self.relevant, axis=1, dtype=np.int32)

    def gains(self, *, k: int | None = None) -> FloatArray:
        """nDCG gain of the documents in the top ``k``: the grade when positive, else 0."""
        top = self.grades[:, : _width(self, k)]
        return np.where(top > 0, top, 0).astype(np.float64)

    @cached_property
    def _ideal_rows(self) -> NDArray[np.int64]:
        return np.repeat(np.arange(self.n_queries, dtype=np.int64), np.diff(self.ideal_offsets))

    @cached_property
    def _ideal_ranks(self) -> NDArray[np.int64]:
        positions = np.arange(self.ideal_gains.shape[0], dtype=np.int64)
        return positions - self.ideal_offsets[self._ideal_rows] + 1

    def ideal_dcg(self, *, k: int | None = None) -> FloatArray:
        """DCG of each query's ideal ranking, over its top ``k`` (all when ``None``)."""
        ranks = self._ideal_ranks
        keep = np.ones(ranks.shape, dtype=np.bool_) if k is None else ranks <= _check_cutoff(k)
        dcg: FloatArray = np.bincount(
            self._ideal_rows[keep],
            weights=self.ideal_gains[keep] / np.log2(ranks[keep] + 1.0),
            minlength=self.n_queries,
        ).astype(np.float64, copy=False)
        return dcg


def precision(ranked: RankedGrades, *, k: int) -> FloatArray:
    """Precision@k: relevant documents in the top ``k``, divided by ``k`` (trec_eval ``P_k``)."""
    return _relevant_in_top(ranked, _check_cutoff(k)) / k


def recall(ranked: RankedGrades, *, k: int) -> FloatArray:
    """Recall@k: relevant documents in the top ``k`` over all relevant judged documents."""
    return _divide(_relevant_in_top(ranked, _check_cutoff(k)), ranked.n_relevant)


def hit_rate(ranked: RankedGrades, *, k: int) -> FloatArray:
    """Hit rate@k: 1 when a relevant document is in the top ``k`` (trec_eval ``success_k``)."""
    return (_relevant_in_top(ranked, _check_cutoff(k)) > 0).astype(np.float64)


def r_precision(ranked: RankedGrades) -> FloatArray:
    """R-precision: precision at rank R, R being the number of relevant judged documents."""
    cut = np.minimum(ranked.n_relevant, ranked.depth)
    hits = np.zeros(ranked.n_queries, dtype=np.float64)
    rows = np.flatnonzero(cut > 0)
    hits[rows] = ranked.relevant_so_far[rows, cut[rows] - 1]
    return _divide(hits, ranked.n_relevant)


def average_precision(ranked: RankedGrades, *, k: int | None = None) -> FloatArray:
    """Average precision over the top ``k`` (all ranks when ``None``; trec_eval ``map_cut_k``).

    The sum of precision at each relevant retrieved rank, divided by the number of relevant
    judged documents.
    """
    width = _width(ranked, k)
    hits_so_far = np.where(ranked.relevant[:, :width], ranked.relevant_so_far[:, :width], 0)
    inverse_ranks = 1.0 / np.arange(1, width + 1, dtype=np.float64)
    return _divide(hits_so_far @ inverse_ranks, ranked.n_relevant)


def reciprocal_rank(ranked: RankedGrades, *, k: int | None = None) -> FloatArray:
    """Reciprocal rank of the first relevant document in the top ``k`` (all when ``None``)."""
    width = _width(ranked, k)
    if width == 0:
        return np.zeros(ranked.n_queries, dtype=np.float64)
    relevant = ranked.relevant[:, :width]
    first = relevant.argmax(axis=1)
    found = relevant[np.arange(ranked.n_queries), first]
    return np.where(found, 1.0 / (first + 1.0), 0.0)


def ndcg(ranked: RankedGrades, *, k: int | None = None) -> FloatArray:
    """nDCG over the top ``k`` (all ranks when ``None``; trec_eval ``ndcg_cut_k`` / ``ndcg``)."""
    width = _width(ranked, k)
    discounts = 1.0 / np.log2(np.arange(2, width + 2, dtype=np.float64))
    dcg = ranked.gains(k=k) @ discounts
    return _divide(dcg, ranked.ideal_dcg(k=k))


def _check_cutoff(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InputError(f"cutoff k must be a positive integer, got {k!r}", field="k")
    return int(k)


def _width(ranked: RankedGrades, k: int | None) -> int:
    return ranked.depth if k is None else min(_check_cutoff(k), ranked.depth)


def _relevant_in_top(ranked: RankedGrades, k: int) -> FloatArray:
    width = min(k, ranked.depth)
    if width == 0:
        return np.zeros(ranked.n_queries, dtype=np.float64)
    return ranked.relevant_so_far[:, width - 1].astype(np.float64)


def _divide(numerator: NDArray[Any], denominator: NDArray[Any]) -> FloatArray:
    result = np.zeros(np.shape(numerator), dtype=np.float64)
    np.divide(numerator, denominator, out=result, where=denominator > 0)
    return result
