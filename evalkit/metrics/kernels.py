"""Vectorised IR measures over a whole run, with trec_eval's semantics.

Every kernel takes a :class:`RankedGrades` and returns one float per query, by NumPy
``bincount`` sums over the judged retrieved documents only (no Python loop; memory in those,
not queries x depth). As in trec_eval: relevant is grade ``>= relevance_threshold`` (``-l``),
a negative grade never; recall, AP and R-precision divide by every relevant judged document,
P@k by ``k``; nDCG's gain is the positive grade, its discount ``log2(rank + 1)``, its ideal
all positive judged grades (``ndcg_judged``: the judged top k's); a query with no relevant
document scores 0.
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
    "ndcg_judged",
    "precision",
    "r_precision",
    "recall",
    "reciprocal_rank",
]

UNJUDGED: Final[int] = int(np.iinfo(np.int32).min)
"""Grade the evaluator gives retrieved documents that have no judgment."""

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class RankedGrades:
    """A ranked run joined to its judgments: what every kernel needs, for ``n_queries``.

    Entry ``i`` says that query ``rows[i]`` retrieved, at 0-based rank ``ranks[i]``, a
    judged document of grade ``grades[i]``; unjudged documents are left out. Entries are
    kept sorted by (row, rank). ``n_relevant[q]`` counts the judged documents of query
    ``q`` with grade ``>= relevance_threshold``. The positive judged grades of query
    ``q``, sorted descending (its ideal ranking), are
    ``ideal_gains[ideal_offsets[q]:ideal_offsets[q + 1]]``.
    """

    rows: IntArray
    ranks: IntArray
    grades: NDArray[np.int32]
    n_relevant: IntArray
    ideal_gains: FloatArray
    ideal_offsets: IntArray
    relevance_threshold: int = field(default=1, kw_only=True)

    def __post_init__(self) -> None:
        n_queries = self.n_relevant.shape[0]
        if not (self.rows.shape == self.ranks.shape == self.grades.shape) or self.rows.ndim != 1:
            raise InputError(
                "rows, ranks and grades must be 1-D arrays of the same length, got shapes "
                f"{self.rows.shape}, {self.ranks.shape}, {self.grades.shape}"
            )
        if self.rows.size and (
            self.rows.min() < 0 or self.rows.max() >= n_queries or self.ranks.min() < 0
        ):
            raise InputError(
                f"rows must lie in 0 .. {n_queries - 1} (one per query) and ranks be >= 0"
            )
        if self.ideal_offsets.shape != (n_queries + 1,):
            raise InputError(
                f"ideal_offsets must have n_queries + 1 = {n_queries + 1} entries, "
                f"got shape {self.ideal_offsets.shape}"
            )
        if self.ideal_offsets[0] != 0 or self.ideal_offsets[-1] != self.ideal_gains.shape[0]:
            raise InputError("ideal_offsets must start at 0 and end at len(ideal_gains)")
        if self.relevance_threshold < 0:
            raise InputError(
                f"relevance_threshold must be >= 0, got {self.relevance_threshold}",
                field="relevance_threshold",
            )
        step_row = np.diff(self.rows)
        if ((step_row < 0) | ((step_row == 0) & (np.diff(self.ranks) <= 0))).any():
            raise InputError("entries must be sorted by (row, rank), each rank used once")

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
        entries = [
            (row, rank, grade)
            for row, ranking in enumerate(retrieved)
            for rank, grade in enumerate(ranking)
            if grade is not None
        ]
        rows, ranks, grades = (
            np.array([entry[i] for entry in entries], dtype=np.int64) for i in range(3)
        )
        ideal = [sorted((g for g in query if g > 0), reverse=True) for query in judged]
        offsets = np.zeros(len(judged) + 1, dtype=np.int64)
        np.cumsum([len(gains) for gains in ideal], out=offsets[1:])
        return cls(
            rows,
            ranks,
            grades.astype(np.int32),
            np.array([sum(g >= relevance_threshold for g in q) for q in judged], dtype=np.int64),
            np.array([g for gains in ideal for g in gains], dtype=np.float64),
            offsets,
            relevance_threshold=relevance_threshold,
        )

    @classmethod
    def from_top_k(
        cls, grades: NDArray[np.integer[Any]], *, relevance_threshold: int = 1
    ) -> RankedGrades:
        """Build from a matrix of each query's top k grades (one row per query, one column
        per rank), whose judgments are those grades alone; a negative entry is a document
        without a grade, or no document, and is left out."""
        if grades.ndim != 2:
            raise InputError(f"grades must be a 2-D matrix, got shape {grades.shape}")
        rows, ranks = np.nonzero(grades >= 0)
        return cls._judged_by_entries(
            rows.astype(np.int64),
            ranks.astype(np.int64),
            grades[rows, ranks].astype(np.int32),
            n_queries=grades.shape[0],
            relevance_threshold=relevance_threshold,
        )

    def judged_top(self, k: int) -> RankedGrades:
        """The entries of each query's top ``k``, with those judged documents as the only
        judgments (their relevant count and their ideal ranking)."""
        keep = self.ranks < _check_cutoff(k)
        return self._judged_by_entries(
            self.rows[keep],
            self.ranks[keep],
            self.grades[keep],
            n_queries=self.n_queries,
            relevance_threshold=self.relevance_threshold,
        )

    @classmethod
    def _judged_by_entries(
        cls,
        rows: IntArray,
        ranks: IntArray,
        grades: NDArray[np.int32],
        *,
        n_queries: int,
        relevance_threshold: int,
    ) -> RankedGrades:
        positive = np.flatnonzero(grades > 0)
        # One integer key, row first and grade descending: faster than lexsort on two keys.
        top = int(grades[positive].max(initial=0)) + 1
        key = rows[positive] * top + (top - 1 - grades[positive].astype(np.int64))
        by_gain = positive[np.argsort(key, kind="stable")]
        offsets = np.zeros(n_queries + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows[by_gain], minlength=n_queries), out=offsets[1:])
        relevant = rows[grades >= relevance_threshold]
        return cls(
            rows,
            ranks,
            grades,
            np.bincount(relevant, minlength=n_queries).astype(np.int64),
            grades[by_gain].astype(np.float64),
            offsets,
            relevance_threshold=relevance_threshold,
        )

    @property
    def n_queries(self) -> int:
        """Number of queries."""
        return int(self.n_relevant.shape[0])

    @cached_property
    def relevant(self) -> tuple[IntArray, IntArray, IntArray]:
        """Row, rank and hits so far (1-based count within its row) of each relevant entry."""
        relevant = np.flatnonzero(self.grades >= self.relevance_threshold)
        rows, ranks = self.rows[relevant], self.ranks[relevant]
        first_of_row = np.ones(rows.size, dtype=np.bool_)
        first_of_row[1:] = rows[1:] != rows[:-1]
        starts = np.flatnonzero(first_of_row)
        run_lengths = np.diff(np.append(starts, rows.size))
        hits = np.arange(rows.size, dtype=np.int64) - np.repeat(starts, run_lengths) + 1
        return rows, ranks, hits

    def relevant_in_top(self, k: int | None) -> FloatArray:
        """Number of relevant documents among each query's top ``k`` (all when ``None``)."""
        rows, ranks, _ = self.relevant
        return self.sum_per_query(rows if k is None else rows[ranks < _check_cutoff(k)])

    def ideal_dcg(self, *, k: int | None = None) -> FloatArray:
        """DCG of each query's ideal ranking, over its top ``k`` (all when ``None``)."""
        ranks = self._ideal_ranks
        keep = slice(None) if k is None else ranks < _check_cutoff(k)
        return self.sum_per_query(
            self._ideal_rows[keep], self.ideal_gains[keep] / np.log2(ranks[keep] + 2.0)
        )

    @cached_property
    def _ideal_rows(self) -> IntArray:
        return np.repeat(np.arange(self.n_queries, dtype=np.int64), np.diff(self.ideal_offsets))

    @cached_property
    def _ideal_ranks(self) -> IntArray:
        positions = np.arange(self.ideal_gains.shape[0], dtype=np.int64)
        return positions - self.ideal_offsets[self._ideal_rows]

    def sum_per_query(self, rows: IntArray, weights: FloatArray | None = None) -> FloatArray:
        """Sum of ``weights`` (1 each when ``None``) for each query, from each entry's row."""
        total: FloatArray = np.bincount(rows, weights=weights, minlength=self.n_queries).astype(
            np.float64, copy=False
        )
        return total


def precision(ranked: RankedGrades, *, k: int) -> FloatArray:
    """Precision@k: relevant documents in the top ``k``, divided by ``k`` (trec_eval ``P_k``)."""
    return ranked.relevant_in_top(k) / k


def recall(ranked: RankedGrades, *, k: int) -> FloatArray:
    """Recall@k: relevant documents in the top ``k`` over all relevant judged documents."""
    return _divide(ranked.relevant_in_top(k), ranked.n_relevant)


def hit_rate(ranked: RankedGrades, *, k: int) -> FloatArray:
    """Hit rate@k: 1 when a relevant document is in the top ``k`` (trec_eval ``success_k``)."""
    return (ranked.relevant_in_top(k) > 0).astype(np.float64)


def r_precision(ranked: RankedGrades) -> FloatArray:
    """R-precision: precision at rank R, R being the number of relevant judged documents."""
    rows, ranks, _ = ranked.relevant
    in_top_r = ranked.sum_per_query(rows[ranks < ranked.n_relevant[rows]])
    return _divide(in_top_r, ranked.n_relevant)


def average_precision(ranked: RankedGrades, *, k: int | None = None) -> FloatArray:
    """Average precision over the top ``k`` (all ranks when ``None``; trec_eval ``map_cut_k``).

    The sum of precision at each relevant retrieved rank, divided by the number of relevant
    judged documents.
    """
    rows, ranks, hits = ranked.relevant
    keep = slice(None) if k is None else ranks < _check_cutoff(k)
    precision_at_hits = ranked.sum_per_query(rows[keep], hits[keep] / (ranks[keep] + 1.0))
    return _divide(precision_at_hits, ranked.n_relevant)


def reciprocal_rank(ranked: RankedGrades, *, k: int | None = None) -> FloatArray:
    """Reciprocal rank of the first relevant document in the top ``k`` (all when ``None``)."""
    rows, ranks, hits = ranked.relevant
    first = hits == 1
    if k is not None:
        first &= ranks < _check_cutoff(k)
    return ranked.sum_per_query(rows[first], 1.0 / (ranks[first] + 1.0))


def ndcg(ranked: RankedGrades, *, k: int | None = None) -> FloatArray:
    """nDCG over the top ``k`` (all ranks when ``None``; trec_eval ``ndcg_cut_k`` / ``ndcg``)."""
    gaining = ranked.grades > 0
    if k is not None:
        gaining &= ranked.ranks < _check_cutoff(k)
    dcg = ranked.sum_per_query(
        ranked.rows[gaining], ranked.grades[gaining] / np.log2(ranked.ranks[gaining] + 2.0)
    )
    return _divide(dcg, ranked.ideal_dcg(k=k))


def ndcg_judged(ranked: RankedGrades, *, k: int) -> FloatArray:
    """nDCG@k whose ideal ranking is that of the judged documents in the top ``k``, not of
    all judgments: :func:`ndcg` over ``ranked.judged_top(k)``. For rankings whose only
    judgments are their own top k (a traffic window an assessor labelled) it is their nDCG;
    where judgments reach past the top k it is at least trec_eval's."""
    return ndcg(ranked.judged_top(k), k=k)


def _check_cutoff(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InputError(f"cutoff k must be a positive integer, got {k!r}", field="k")
    return int(k)


def _divide(numerator: NDArray[Any], denominator: NDArray[Any]) -> FloatArray:
    result = np.zeros(np.shape(numerator), dtype=np.float64)
    np.divide(numerator, denominator, out=result, where=denominator > 0)
    return result
