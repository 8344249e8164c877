"""The ranking engine: judgments indexed once, runs ranked as trec_eval ranks them.

The run is joined to the judgments by Arrow hash lookups and ``searchsorted`` over ``int64``
(query, document) keys, and each query's judged documents get their rank (rows of a 2-D array
sorted, or the documents ahead counted) and grade: the kernels' ``RankedGrades``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from evalkit.errors import InputError
from evalkit.metrics.inputs import (
    Int64Array,
    LongRun,
    RepeatedPairError,
    RunArrays,
    codes_in,
    sorted_codes,
    strings,
    to_int64,
)
from evalkit.metrics.kernels import UNJUDGED

__all__ = [
    "CorpusIndex",
    "JudgmentIndex",
    "RankedRows",
    "corpus_index",
    "index_judgments",
    "ragged_subset",
    "rank_long_run",
    "rank_run_arrays",
    "repeated_judgment",
]


BoolArray = NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class JudgmentIndex:
    """Judgments indexed once: query vocabulary, sorted (query, doc) keys, ideal gains."""

    query_ids: pa.Array
    query_labels: NDArray[np.object_]
    doc_ids: pa.Array
    keys: Int64Array
    grades: NDArray[np.int32]
    table: pa.Table
    n_relevant: Int64Array
    ideal_gains: NDArray[np.float64]
    ideal_offsets: Int64Array

    @property
    def n_queries(self) -> int:
        return len(self.query_ids)

    @property
    def key_base(self) -> int:
        return max(len(self.doc_ids), 1)


@dataclass(frozen=True, eq=False)
class CorpusIndex:
    """A corpus's doc ids bound to one evaluator's judgments, for ``evaluate_arrays``.

    Built once by :meth:`Evaluator.corpus_index`: each document's trec_eval tie-break place;
    ``sole_query`` / ``sole_grade`` the one query judging it (-1: none, -2: several) and its
    grade; the sorted (query, position) keys of documents several queries judge in
    ``shared_keys`` / ``shared_grades``.
    """

    doc_ids: pa.Array
    tie_order: Int64Array
    sole_query: NDArray[np.int32]
    sole_grade: NDArray[np.int32]
    shared_keys: Int64Array
    shared_grades: NDArray[np.int32]
    _owner: JudgmentIndex

    @property
    def n_docs(self) -> int:
        """Number of documents in the corpus."""
        return len(self.doc_ids)


@dataclass(frozen=True, eq=False)
class RankedRows:
    """The judged documents of a ranked run: query code, 0-based rank and grade of each."""

    present: BoolArray
    query_codes: Int64Array
    ranks: Int64Array
    grades: NDArray[np.int32]


def rank_long_run(index: JudgmentIndex, run: LongRun, selected: BoolArray | None) -> RankedRows:
    """Keep the rows of judged (and selected) queries, rank each query's rows, grade them."""
    group_codes = codes_in(run.groups, index.query_ids)
    if selected is not None:
        judged = group_codes >= 0
        group_codes = np.where(judged & selected[np.maximum(group_codes, 0)], group_codes, -1)
    present = np.zeros(index.n_queries, dtype=np.bool_)
    present[group_codes[group_codes >= 0]] = True

    query_codes = (
        group_codes if run.group_lengths is None else np.repeat(group_codes, run.group_lengths)
    )
    doc_ids, scores = run.doc_ids, run.scores
    if not (query_codes >= 0).all():
        kept = np.flatnonzero(query_codes >= 0)
        query_codes, scores, doc_ids = query_codes[kept], scores[kept], doc_ids.take(kept)
    grouped = _group_rows(query_codes)
    if grouped is not None:
        query_codes, scores, doc_ids = query_codes[grouped], scores[grouped], doc_ids.take(grouped)

    if run.may_repeat_docs:
        _reject_repeated_docs(index, query_codes, doc_ids)
    judged = pa.table(
        {"query": query_codes, "doc": doc_ids, "row": np.arange(query_codes.size)}
    ).join(index.table, keys=["query", "doc"], join_type="inner")
    judged_rows = to_int64(judged.column("row"))
    return RankedRows(
        present=present,
        query_codes=query_codes[judged_rows],
        ranks=_ranks_of_rows(query_codes, _double_precision(scores), doc_ids, judged_rows),
        grades=np.asarray(judged.column("grade").to_numpy(), dtype=np.int32),
    )


def _group_rows(query_codes: Int64Array) -> Int64Array | None:
    """A permutation making each query's rows contiguous; ``None`` when they already are."""
    if query_codes.size == 0:
        return None
    block_starts = np.flatnonzero(query_codes[1:] != query_codes[:-1]) + 1
    blocks_per_query = np.bincount(query_codes[np.concatenate(([0], block_starts))])
    if blocks_per_query.max() <= 1:
        return None
    return np.argsort(query_codes, kind="stable")


def _double_precision(scores: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """Scores as trec_eval compares them: since 10.0 each score is a C ``double`` (9.x
    stored a ``float``, which tied scores that differ beyond its 7 digits)."""
    return scores.astype(np.float64, copy=False)


def _ranks_of_rows(
    query_codes: Int64Array, scores: NDArray[np.float64], doc_ids: pa.Array, wanted: Int64Array
) -> Int64Array:
    """0-based rank of the rows ``wanted`` within their block of equal ``query_codes``.

    Blocks are contiguous. Equal-length blocks (top-k runs) are one 2-D array; otherwise
    blocks are padded per doubling of length, so a few long rankings never pad the others.
    """
    if wanted.size == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.concatenate(([0], np.flatnonzero(query_codes[1:] != query_codes[:-1]) + 1))
    lengths = np.diff(np.append(starts, query_codes.size))
    if (lengths == lengths[0]).all():
        width = int(lengths[0])
        by_block = scores.reshape(-1, width)

        def doc_order(row: Int64Array, column: Int64Array) -> Int64Array:
            return _string_order(doc_ids.take(row * width + column))

        all_filled = np.ones(by_block.shape, dtype=np.bool_)
        if _counting_is_cheaper(wanted.size, scores.size, width):
            return _count_ranks(by_block, all_filled, wanted // width, wanted % width, doc_order)
        order = _order_rows(by_block, all_filled, doc_order)
        return _inverse_rows(order).reshape(-1)[wanted].astype(np.int64)

    ranks = np.empty(query_codes.size, dtype=np.int64)
    by_length = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[by_length]
    first = 0
    while first < by_length.size:
        last = int(np.searchsorted(sorted_lengths, 2 * sorted_lengths[first], side="right"))
        blocks = by_length[first:last]
        columns = np.arange(sorted_lengths[last - 1])
        filled = columns < lengths[blocks, None]
        rows = np.where(filled, starts[blocks, None] + columns, 0)

        def block_doc_order(
            row: Int64Array, column: Int64Array, rows: Int64Array = rows
        ) -> Int64Array:
            return _string_order(doc_ids.take(rows[row, column]))

        order = _order_rows(scores[rows], filled, block_doc_order)
        ranks[np.take_along_axis(rows, order, axis=1)[filled]] = np.broadcast_to(
            columns, filled.shape
        )[filled]
        first = last
    return ranks[wanted]


def _order_rows(
    scores: NDArray[np.floating[Any]],
    filled: BoolArray,
    tie_keys: Callable[[Int64Array, Int64Array], Int64Array],
) -> Int64Array:
    """Column order of each row by score descending, equal scores by tie key descending.

    ``filled`` marks real entries; the others go last. ``tie_keys(rows, columns)`` orders
    the real entries that share a score (trec_eval: doc id, descending), and is asked only
    about those.
    """
    all_filled = bool(filled.all())
    sort_scores = scores if all_filled else np.where(filled, scores, -np.inf)
    order = np.argsort(-sort_scores, axis=1)
    sorted_scores = np.take_along_axis(sort_scores, order, axis=1)
    equal_next = sorted_scores[:, 1:] == sorted_scores[:, :-1]
    if not equal_next.any():
        return order
    in_tie = np.zeros(sorted_scores.shape, dtype=np.bool_)
    in_tie[:, 1:] |= equal_next
    in_tie[:, :-1] |= equal_next
    rows, columns = np.nonzero(in_tie)
    members = order[rows, columns]
    keys = np.full(rows.size, -1, dtype=np.int64)
    real = filled[rows, members]
    keys[real] = tie_keys(rows[real], members[real])
    # Equal scores are contiguous in row-major order: sorting the members by (row, score
    # descending, key descending) and writing them back keeps every group in its slots.
    regrouped = np.lexsort((-keys, -sorted_scores[rows, columns], rows))
    order[rows, columns] = members[regrouped]
    return order


def _string_order(values: pa.Array) -> Int64Array:
    """Rank of each string among ``values`` in byte order (trec_eval's ``strcmp``)."""
    order = to_int64(pc.sort_indices(values))
    ranks = np.empty(order.size, dtype=np.int64)
    ranks[order] = np.arange(order.size, dtype=np.int64)
    return ranks


def rank_run_arrays(
    index: JudgmentIndex, corpus: CorpusIndex, run: RunArrays, selected: BoolArray | None
) -> RankedRows:
    """Rank each row of a dense run by score (ties by doc id) and grade its judged documents."""
    positions, scores, run_queries = _checked_arrays(run, corpus)
    query_codes = codes_in(run_queries, index.query_ids)
    if selected is not None:
        judged = query_codes >= 0
        query_codes = np.where(judged & selected[np.maximum(query_codes, 0)], query_codes, -1)
    if not (query_codes >= 0).all():
        rows = np.flatnonzero(query_codes >= 0)
        positions, scores, query_codes = positions[rows], scores[rows], query_codes[rows]
    present = np.zeros(index.n_queries, dtype=np.bool_)
    present[query_codes] = True

    filled = positions >= 0
    all_filled = bool(filled.all())
    safe_positions = positions if all_filled else np.where(filled, positions, 0)
    if np.isnan(scores).any() and np.isnan(scores[filled]).any():
        bad_row = int(np.argwhere(filled & np.isnan(scores))[0, 0])
        raise InputError(
            f"score is NaN for query {index.query_labels[query_codes[bad_row]]!r}; every "
            "retrieved document needs a numeric score",
            field="scores",
        )
    _reject_repeated_positions(positions, query_codes, index, corpus)

    sole_query = corpus.sole_query[safe_positions]
    judged_here = sole_query == query_codes.astype(np.int32)[:, None]
    shared = sole_query == -2
    if not all_filled:
        judged_here &= filled
        shared &= filled
    flat = np.flatnonzero(judged_here)
    grades = corpus.sole_grade[positions.reshape(-1)[flat]]
    if shared.any():
        shared_flat = np.flatnonzero(shared)
        shared_grades = _lookup(
            corpus.shared_keys,
            corpus.shared_grades,
            query_codes[shared_flat // positions.shape[1]],
            positions.reshape(-1)[shared_flat],
            key_base=max(corpus.n_docs, 1),
        )
        found = shared_grades != UNJUDGED
        flat = np.concatenate((flat, shared_flat[found]))
        grades = np.concatenate((grades, shared_grades[found]))
    width = max(positions.shape[1], 1)
    candidate_rows = flat // width

    def doc_order(row: Int64Array, column: Int64Array) -> Int64Array:
        return corpus.tie_order[safe_positions[row, column]]

    if _counting_is_cheaper(flat.size, scores.size, width):
        ranks = _count_ranks(scores, filled, candidate_rows, flat % width, doc_order)
    else:
        order = _order_rows(scores, filled, doc_order)
        ranks = _inverse_rows(order).reshape(-1)[flat].astype(np.int64)
    return RankedRows(
        present=present,
        query_codes=query_codes[candidate_rows],
        ranks=ranks,
        grades=grades,
    )


def _counting_is_cheaper(n_wanted: int, n_entries: int, width: int) -> bool:
    """Whether counting the documents ahead of ``n_wanted`` entries beats sorting every row.

    Counting costs about ``n_wanted * width`` comparisons, sorting ``n_entries * log(width)``
    steps; the constant is measured (counting wins below roughly 10 % at depth 100).
    """
    return bool(n_wanted * width < 1.5 * n_entries * np.log2(width + 1))


def _count_ranks(
    scores: NDArray[np.floating[Any]],
    filled: BoolArray,
    rows: Int64Array,
    columns: Int64Array,
    tie_keys: Callable[[Int64Array, Int64Array], Int64Array],
    *,
    block: int = 4096,
) -> Int64Array:
    """0-based rank of the entries (rows, columns) among their row, without sorting rows.

    An entry's rank is the number of real entries of its row with a higher score, plus
    those with an equal score and a higher tie key; rows are compared a block at a time.
    """
    padded = scores if bool(filled.all()) else np.where(filled, scores, -np.inf)
    own = padded[rows, columns]
    ranks = np.empty(rows.size, dtype=np.int64)
    # Row counts as a matrix-vector product with ones: BLAS sums faster than count_nonzero.
    ones = np.ones(padded.shape[1], dtype=np.float32)
    tied_blocks = []
    for start in range(0, rows.size, block):
        others = padded[rows[start : start + block]]
        mine = own[start : start + block, None]
        # The operands are 0s and 1s, so an "invalid" flag can only be one BLAS left set (seen
        # after other libraries ran in the process); numpy would report it as a warning.
        with np.errstate(invalid="ignore"):
            higher = (others > mine).astype(np.float32) @ ones
            at_least = (others >= mine).astype(np.float32) @ ones
        ranks[start : start + block] = higher
        tied_blocks.append(np.flatnonzero(at_least - higher > 1) + start)
    tied = np.concatenate(tied_blocks) if tied_blocks else np.zeros(0, dtype=np.int64)
    if tied.size:
        tie_rows = rows[tied]
        member_of, member_column = np.nonzero(padded[tie_rows] == own[tied, None])
        member_row = tie_rows[member_of]
        real = np.flatnonzero(filled[member_row, member_column])
        # One call, so that keys are comparable (string keys are ranks within the call).
        keys = tie_keys(
            np.concatenate((member_row[real], tie_rows)),
            np.concatenate((member_column[real], columns[tied])),
        )
        member_keys = np.full(member_of.size, -1, dtype=np.int64)
        member_keys[real] = keys[: real.size]
        ahead = member_keys > keys[real.size :][member_of]
        ranks[tied] += np.bincount(member_of[ahead], minlength=tied.size)
    return ranks


def _inverse_rows(order: Int64Array) -> NDArray[np.int32]:
    """For each row of column orders, the rank of every column (the inverse permutation)."""
    n_rows, width = order.shape
    inverse = np.empty(order.size, dtype=np.int32)
    row_offsets = np.arange(n_rows, dtype=np.int64)[:, None] * width
    inverse[(order + row_offsets).reshape(-1)] = np.tile(np.arange(width, dtype=np.int32), n_rows)
    return inverse.reshape(order.shape)


def _checked_arrays(
    run: RunArrays, corpus: CorpusIndex
) -> tuple[Int64Array, NDArray[np.float64], pa.Array]:
    """Validate a :class:`RunArrays` against ``corpus``: shapes, dtypes, index range, ids."""
    positions = np.asarray(run.doc_indices)
    scores = np.asarray(run.scores)
    if positions.ndim != 2 or scores.shape != positions.shape:
        raise InputError(
            "doc_indices and scores must be 2-D arrays of the same shape, got "
            f"{positions.shape} and {scores.shape}",
            field="doc_indices",
        )
    if not np.issubdtype(positions.dtype, np.integer):
        raise InputError(
            f"doc_indices must be integers, got {positions.dtype}", field="doc_indices"
        )
    if not (np.issubdtype(scores.dtype, np.floating) or np.issubdtype(scores.dtype, np.integer)):
        raise InputError(f"scores must be real numbers, got {scores.dtype}", field="scores")
    queries = strings(run.query_ids, what="query_ids")
    if len(queries) != positions.shape[0]:
        raise InputError(
            f"query_ids has {len(queries)} entries but doc_indices has {positions.shape[0]} rows",
            field="query_ids",
        )
    _reject_repeated_queries(queries)
    if positions.size and (positions.min() < -1 or positions.max() >= corpus.n_docs):
        bad = np.argwhere((positions < -1) | (positions >= corpus.n_docs))[0]
        raise InputError(
            f"doc index {int(positions[bad[0], bad[1]])} for query "
            f"{queries[int(bad[0])].as_py()!r} is outside the corpus "
            f"(0 .. {corpus.n_docs - 1}, or -1 for an empty slot)",
            field="doc_indices",
        )
    return positions.astype(np.int64, copy=False), _double_precision(scores), queries


def _reject_repeated_positions(
    positions: Int64Array, query_codes: Int64Array, index: JudgmentIndex, corpus: CorpusIndex
) -> None:
    compact = positions.astype(np.int32) if corpus.n_docs < 2**31 - 1 else positions.copy()
    compact.sort(axis=1)
    repeated = (compact[:, 1:] == compact[:, :-1]) & (compact[:, 1:] >= 0)
    if repeated.any():
        bad_row, bad_column = np.argwhere(repeated)[0]
        doc = corpus.doc_ids[int(compact[bad_row, bad_column])].as_py()
        raise InputError(
            f"document {doc!r} appears more than once for query "
            f"{index.query_labels[query_codes[bad_row]]!r}; a ranking lists each document "
            "once (trec_eval rejects such runs too)",
            field="doc_indices",
        )


def _reject_repeated_queries(queries: pa.Array) -> None:
    counts = pc.value_counts(queries)
    repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    if len(repeated):
        raise InputError(
            f"query {repeated[0].as_py()!r} has more than one row; give each query one ranking",
            field="query_ids",
        )


def _reject_repeated_docs(index: JudgmentIndex, query_codes: Int64Array, doc_ids: pa.Array) -> None:
    """Raise if a query lists a document twice."""
    encoded = doc_ids.dictionary_encode()
    codes = to_int64(encoded.indices)
    dictionary = encoded.dictionary
    keys = query_codes * max(len(dictionary), 1) + codes
    by_key = np.sort(keys)
    repeated = np.flatnonzero(by_key[1:] == by_key[:-1])
    if repeated.size:
        query_code, doc_code = divmod(int(by_key[repeated[0]]), max(len(dictionary), 1))
        doc_id, query_id = dictionary[doc_code].as_py(), index.query_labels[query_code]
        raise RepeatedPairError(
            f"document {doc_id!r} appears more than once for query {query_id!r}",
            "a ranking lists each document once (trec_eval rejects such runs too)",
            query_id=str(query_id),
            doc_id=str(doc_id),
        )


def _lookup(
    keys: Int64Array,
    grades: NDArray[np.int32],
    query_codes: Int64Array,
    doc_codes: Int64Array,
    *,
    key_base: int,
) -> NDArray[np.int32]:
    """Grade of each (query, doc) pair, UNJUDGED where absent; ``keys`` sorted ascending."""
    found = np.full(query_codes.shape, UNJUDGED, dtype=np.int32)
    if keys.size == 0:
        return found
    if (doc_codes >= 0).all():
        known: Int64Array | slice = slice(None)
        wanted = query_codes * key_base + doc_codes
    else:
        known = np.flatnonzero(doc_codes >= 0)
        wanted = query_codes[known] * key_base + doc_codes[known]
    at = np.searchsorted(keys, wanted)
    np.minimum(at, keys.size - 1, out=at)
    hit = keys[at] == wanted
    found[known] = np.where(hit, grades[at], UNJUDGED)
    return found


def ragged_subset(
    values: NDArray[np.float64], offsets: Int64Array, rows: Int64Array
) -> tuple[NDArray[np.float64], Int64Array]:
    """The segments ``rows`` of a ragged array (values + offsets), as a new ragged array."""
    if rows.size == offsets.size - 1:
        return values, offsets
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts
    new_offsets = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    gather = np.repeat(starts - new_offsets[:-1], lengths) + np.arange(new_offsets[-1])
    return values[gather], new_offsets


def index_judgments(
    query_ids: pa.Array, doc_ids: pa.Array, grades: Int64Array, *, relevance_threshold: int
) -> JudgmentIndex:
    query_codes, query_vocabulary = sorted_codes(query_ids)
    encoded_docs = doc_ids.dictionary_encode()
    doc_codes = to_int64(encoded_docs.indices)
    doc_vocabulary = encoded_docs.dictionary
    key_base = max(len(doc_vocabulary), 1)
    keys = query_codes * key_base + doc_codes
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    repeated = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    if repeated.size:
        row = int(order[repeated[0] + 1])
        doc_id, query_id = doc_ids[row].as_py(), query_ids[row].as_py()
        raise repeated_judgment(str(query_id), str(doc_id))
    n_queries = len(query_vocabulary)
    n_relevant = np.bincount(
        query_codes[grades >= relevance_threshold], minlength=n_queries
    ).astype(np.int64)
    positive = np.flatnonzero(grades > 0)
    ideal_order = positive[np.lexsort((-grades[positive], query_codes[positive]))]
    ideal_offsets = np.zeros(n_queries + 1, dtype=np.int64)
    np.cumsum(np.bincount(query_codes[positive], minlength=n_queries), out=ideal_offsets[1:])
    return JudgmentIndex(
        query_ids=query_vocabulary,
        query_labels=np.array(query_vocabulary.to_pylist(), dtype=object),
        doc_ids=doc_vocabulary,
        keys=sorted_keys,
        grades=grades[order].astype(np.int32),
        table=pa.table({"query": query_codes, "doc": doc_ids, "grade": grades.astype(np.int32)}),
        n_relevant=n_relevant,
        ideal_gains=grades[ideal_order].astype(np.float64),
        ideal_offsets=ideal_offsets,
    )


def corpus_index(
    index: JudgmentIndex, doc_ids: Sequence[str] | NDArray[Any] | pd.Series | pa.Array
) -> CorpusIndex:
    """Index a corpus's doc ids (unique) against ``index``'s judgments, for ``rank_run_arrays``."""
    ids = strings(doc_ids, what="doc_ids")
    order = to_int64(pc.sort_indices(ids))
    sorted_ids = ids.take(pa.array(order))
    if len(ids) > 1:
        repeated = np.flatnonzero(
            pc.equal(sorted_ids[1:], sorted_ids[:-1]).to_numpy(zero_copy_only=False)
        )
        if repeated.size:
            raise InputError(
                f"doc id {sorted_ids[int(repeated[0])].as_py()!r} appears more than once "
                "in the corpus; each position must hold a distinct document",
                field="doc_ids",
            )
    tie_order = np.empty(len(ids), dtype=np.int64)
    tie_order[order] = np.arange(len(ids), dtype=np.int64)

    position_of_judged_doc = codes_in(index.doc_ids, ids)
    judged_query = index.keys // index.key_base
    judged_position = position_of_judged_doc[index.keys % index.key_base]
    in_corpus = judged_position >= 0
    judged_query, judged_position = judged_query[in_corpus], judged_position[in_corpus]
    judged_grades = index.grades[in_corpus]
    queries_per_doc = np.bincount(judged_position, minlength=len(ids))
    sole_query = np.full(len(ids), -1, dtype=np.int32)
    sole_query[judged_position] = judged_query
    sole_query[queries_per_doc > 1] = -2
    sole_grade = np.zeros(len(ids), dtype=np.int32)
    sole_grade[judged_position] = judged_grades
    shared = queries_per_doc[judged_position] > 1
    keys = judged_query[shared] * max(len(ids), 1) + judged_position[shared]
    order_by_key = np.argsort(keys, kind="stable")
    return CorpusIndex(
        doc_ids=ids,
        tie_order=tie_order,
        sole_query=sole_query,
        sole_grade=sole_grade,
        shared_keys=keys[order_by_key],
        shared_grades=judged_grades[shared][order_by_key],
        _owner=index,
    )


def repeated_judgment(query_id: str, doc_id: str) -> RepeatedPairError:
    """The error for judgments that judge ``doc_id`` more than once for ``query_id``."""
    return RepeatedPairError(
        f"document {doc_id!r} is judged more than once for query {query_id!r}",
        "judge each (query_id, doc_id) pair once (trec_eval rejects such qrels too)",
        query_id=query_id,
        doc_id=doc_id,
    )
