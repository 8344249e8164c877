"""The NumPy kernels on small rankings whose values are worked out by hand."""

from __future__ import annotations

from math import log2

import numpy as np
import pytest

from evalkit.errors import InputError
from evalkit.metrics import UNJUDGED, RankedGrades
from evalkit.metrics.kernels import (
    average_precision,
    hit_rate,
    ndcg,
    precision,
    r_precision,
    recall,
    reciprocal_rank,
)

# One query: grades of the documents at ranks 1..5 (None = unjudged), and every judged
# grade of that query (one relevant document, grade 1, was not retrieved; -1 is a judged
# "unjudged in pool" document, never relevant).
RETRIEVED = [0, 2, None, 1, 3]
JUDGED = [0, 2, 1, 3, 1, -1]


def ranked(threshold: int = 1) -> RankedGrades:
    return RankedGrades.from_lists([RETRIEVED], [JUDGED], relevance_threshold=threshold)


def test_precision_divides_by_k_even_past_the_end_of_the_ranking() -> None:
    # relevant at ranks 2, 4, 5
    assert precision(ranked(), k=1)[0] == 0.0
    assert precision(ranked(), k=2)[0] == pytest.approx(1 / 2)
    assert precision(ranked(), k=5)[0] == pytest.approx(3 / 5)
    assert precision(ranked(), k=10)[0] == pytest.approx(3 / 10)


def test_recall_divides_by_every_relevant_judged_document() -> None:
    # 4 relevant judged documents (grades 2, 1, 3, 1); one never retrieved
    assert recall(ranked(), k=2)[0] == pytest.approx(1 / 4)
    assert recall(ranked(), k=5)[0] == pytest.approx(3 / 4)
    assert recall(ranked(), k=100)[0] == pytest.approx(3 / 4)


def test_hit_rate() -> None:
    assert hit_rate(ranked(), k=1)[0] == 0.0
    assert hit_rate(ranked(), k=2)[0] == 1.0


def test_reciprocal_rank_with_and_without_cutoff() -> None:
    assert reciprocal_rank(ranked())[0] == pytest.approx(1 / 2)
    assert reciprocal_rank(ranked(), k=1)[0] == 0.0
    assert reciprocal_rank(ranked(), k=2)[0] == pytest.approx(1 / 2)


def test_average_precision_and_its_cutoff() -> None:
    # precision at the relevant ranks 2, 4, 5: 1/2, 2/4, 3/5; divided by 4 relevant
    assert average_precision(ranked())[0] == pytest.approx((1 / 2 + 2 / 4 + 3 / 5) / 4)
    assert average_precision(ranked(), k=4)[0] == pytest.approx((1 / 2 + 2 / 4) / 4)
    assert average_precision(ranked(), k=1)[0] == 0.0


def test_r_precision() -> None:
    # R = 4: relevant among the top 4 are ranks 2 and 4
    assert r_precision(ranked())[0] == pytest.approx(2 / 4)


def test_ndcg_uses_grades_as_gains_and_the_judged_ideal() -> None:
    dcg = 2 / log2(3) + 1 / log2(5) + 3 / log2(6)
    ideal = 3 / log2(2) + 2 / log2(3) + 1 / log2(4) + 1 / log2(5)
    assert ndcg(ranked())[0] == pytest.approx(dcg / ideal)
    assert ndcg(ranked(), k=2)[0] == pytest.approx((2 / log2(3)) / (3 + 2 / log2(3)))
    assert ndcg(ranked(), k=1)[0] == 0.0


def test_threshold_two_changes_relevance_but_not_ndcg_gains() -> None:
    strict = ranked(threshold=2)
    # relevant now: grades >= 2 -> ranks 2 and 5; judged relevant: 2 and 3 -> R = 2
    assert precision(strict, k=5)[0] == pytest.approx(2 / 5)
    assert recall(strict, k=5)[0] == pytest.approx(1.0)
    assert recall(strict, k=4)[0] == pytest.approx(1 / 2)
    assert average_precision(strict)[0] == pytest.approx((1 / 2 + 2 / 5) / 2)
    assert reciprocal_rank(strict)[0] == pytest.approx(1 / 2)
    assert r_precision(strict)[0] == pytest.approx(1 / 2)
    assert hit_rate(strict, k=1)[0] == 0.0
    assert ndcg(strict)[0] == pytest.approx(ndcg(ranked())[0])


def test_threshold_zero_makes_grade_zero_relevant_but_never_negative_grades() -> None:
    loose = RankedGrades.from_lists([[-1, 0, None]], [[-1, 0, 2]], relevance_threshold=0)
    # judged grades >= 0: 0 and 2 -> R = 2; relevant retrieved: rank 2 only
    assert precision(loose, k=3)[0] == pytest.approx(1 / 3)
    assert reciprocal_rank(loose)[0] == pytest.approx(1 / 2)
    assert recall(loose, k=3)[0] == pytest.approx(1 / 2)
    assert ndcg(loose)[0] == 0.0


def test_ties_in_scores_are_not_the_kernels_business_but_duplicated_grades_are_fine() -> None:
    same = RankedGrades.from_lists([[1, 1, 1]], [[1, 1, 1]])
    assert average_precision(same)[0] == pytest.approx(1.0)
    assert ndcg(same)[0] == pytest.approx(1.0)
    assert r_precision(same)[0] == pytest.approx(1.0)


def test_queries_without_relevant_documents_score_zero_everywhere() -> None:
    none_relevant = RankedGrades.from_lists([[0, None, -1]], [[0, -1]])
    for kernel in (average_precision, reciprocal_rank, ndcg):
        assert kernel(none_relevant)[0] == 0.0
    for cut_kernel in (precision, recall, hit_rate):
        assert cut_kernel(none_relevant, k=3)[0] == 0.0
    assert r_precision(none_relevant)[0] == 0.0


def test_a_query_judged_only_with_negative_grades_scores_zero() -> None:
    negative = RankedGrades.from_lists([[-1, None]], [[-1, -1]], relevance_threshold=0)
    for kernel in (average_precision, reciprocal_rank, ndcg, r_precision):
        assert kernel(negative)[0] == 0.0
    assert ndcg(negative, k=5)[0] == 0.0
    assert precision(negative, k=1)[0] == 0.0


def test_empty_rankings_and_an_empty_run() -> None:
    mixed = RankedGrades.from_lists([[], [1]], [[1], [1]])
    assert list(precision(mixed, k=1)) == [0.0, 1.0]
    assert list(ndcg(mixed)) == [0.0, 1.0]
    nothing = RankedGrades.from_lists([[], []], [[2], []])
    assert nothing.rows.size == 0
    for kernel in (average_precision, reciprocal_rank, ndcg, r_precision):
        assert list(kernel(nothing)) == [0.0, 0.0]
    assert list(recall(nothing, k=5)) == [0.0, 0.0]
    no_queries = RankedGrades.from_lists([], [])
    assert ndcg(no_queries).shape == (0,)
    assert precision(no_queries, k=3).shape == (0,)


def test_several_queries_are_scored_independently() -> None:
    many = RankedGrades.from_lists([[1, 0], [0, 1], [None, None]], [[1], [1, 1], [1]])
    assert list(reciprocal_rank(many)) == pytest.approx([1.0, 0.5, 0.0])
    assert list(recall(many, k=2)) == pytest.approx([1.0, 0.5, 0.0])
    assert list(average_precision(many)) == pytest.approx([1.0, 0.25, 0.0])


def test_r_precision_when_fewer_documents_were_retrieved_than_are_relevant() -> None:
    short = RankedGrades.from_lists([[1]], [[1, 1, 1]])
    assert r_precision(short)[0] == pytest.approx(1 / 3)


def test_ideal_dcg_is_ragged_and_cut_per_query() -> None:
    grades = RankedGrades.from_lists([[], []], [[1, 3, 2], [1]])
    assert list(grades.ideal_dcg()) == pytest.approx([3 + 2 / log2(3) + 1 / 2, 1.0])
    assert list(grades.ideal_dcg(k=1)) == pytest.approx([3.0, 1.0])


def test_bad_cutoffs_and_shapes_are_rejected() -> None:
    with pytest.raises(InputError, match="positive integer"):
        precision(ranked(), k=0)
    with pytest.raises(InputError, match="positive integer"):
        ndcg(ranked(), k=True)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="relevance_threshold"):
        RankedGrades.from_lists([[1]], [[1]], relevance_threshold=-1)
    with pytest.raises(InputError, match="retrieved has 1 queries but judged has 2"):
        RankedGrades.from_lists([[1]], [[1], [1]])


def entries(
    rows: list[int], ranks: list[int], n_queries: int = 2, offsets: list[int] | None = None
) -> RankedGrades:
    return RankedGrades(
        np.array(rows, dtype=np.int64),
        np.array(ranks, dtype=np.int64),
        np.ones(len(rows), dtype=np.int32),
        np.ones(n_queries, dtype=np.int64),
        np.ones(n_queries),
        np.array(offsets if offsets is not None else range(n_queries + 1), dtype=np.int64),
    )


def test_entries_are_validated() -> None:
    assert list(reciprocal_rank(entries([0, 1], [3, 0]))) == pytest.approx([0.25, 1.0])
    with pytest.raises(InputError, match=r"sorted by \(row, rank\)"):
        entries([1, 0], [0, 0])
    with pytest.raises(InputError, match=r"sorted by \(row, rank\)"):
        entries([0, 0], [2, 2])
    with pytest.raises(InputError, match=r"rows must lie in 0 \.\. 1"):
        entries([0, 2], [0, 0])
    with pytest.raises(InputError, match="ideal_offsets must have"):
        entries([0], [0], offsets=[0, 1])
    with pytest.raises(InputError, match="same length"):
        RankedGrades(
            np.zeros(2, dtype=np.int64),
            np.zeros(1, dtype=np.int64),
            np.zeros(2, dtype=np.int32),
            np.zeros(1, dtype=np.int64),
            np.zeros(0),
            np.zeros(2, dtype=np.int64),
        )


def test_unjudged_marker_is_the_smallest_int32() -> None:
    assert np.iinfo(np.int32).min == UNJUDGED
