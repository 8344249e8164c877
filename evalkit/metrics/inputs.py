"""Evaluation inputs converted once, at the edge, into Arrow string arrays and NumPy arrays.

Judgments arrive as a DataFrame, ``Judgment`` records or ``{query_id: {doc_id: grade}}``;
runs as a DataFrame, ``{query_id: {doc_id: score}}`` or dense :class:`RunArrays`. Bad input
raises ``InputError`` naming the field, here, before any ranking starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from evalkit.errors import InputError
from evalkit.metrics.kernels import UNJUDGED
from evalkit.records import Judgment

__all__ = [
    "JudgmentsInput",
    "LongRun",
    "RepeatedPairError",
    "RunArrays",
    "RunInput",
    "codes_in",
    "judgment_columns",
    "long_run",
    "sorted_codes",
    "strings",
    "to_int64",
]


class RepeatedPairError(InputError):
    """A (query, document) pair given twice: a document a ranking lists twice, or one judged
    twice. ``query_id`` and ``doc_id`` name it, so that whoever knows the file it came from
    can name its lines (``at``)."""

    def __init__(
        self,
        subject: str,
        advice: str,
        *,
        query_id: str,
        doc_id: str,
        path: str | None = None,
        lines: Sequence[int] = (),
    ) -> None:
        self.subject, self.advice = subject, advice
        self.query_id, self.doc_id = query_id, doc_id
        where = f" (first on line {lines[0]})" if len(lines) > 1 else ""
        super().__init__(
            f"{subject}{where}; {advice}",
            path=path,
            line=lines[1] if len(lines) > 1 else None,
            field="doc_id",
        )

    def at(self, path: str, lines: Sequence[int]) -> RepeatedPairError:
        """The same error in file ``path``, where the pair is on ``lines`` (the first two
        are named: the repeat as the error's line, and the first)."""
        return RepeatedPairError(
            self.subject,
            self.advice,
            query_id=self.query_id,
            doc_id=self.doc_id,
            path=path,
            lines=lines,
        )


JudgmentsInput = pd.DataFrame | Iterable[Judgment] | Mapping[str, Mapping[str, int]]
"""Judgments: a DataFrame (query_id, doc_id, relevance), Judgment records, or
``{query_id: {doc_id: grade}}``."""

RunInput = pd.DataFrame | Mapping[str, Mapping[str, float]]
"""A run: a DataFrame (query_id, doc_id, score) or ``{query_id: {doc_id: score}}``."""

Int64Array = NDArray[np.int64]

MIN_GRADE = UNJUDGED + 1
MAX_GRADE = int(np.iinfo(np.int32).max)
"""The grades a judgment can hold: the kernels keep them as 32-bit integers, the lowest
marking a document as unjudged."""


@dataclass(frozen=True, eq=False)
class RunArrays:
    """A run held as dense arrays over a corpus indexed by :meth:`Evaluator.corpus_index`.

    Row ``i`` ranks query ``query_ids[i]``: ``doc_indices[i, j]`` a document's position in
    the corpus (-1: empty slot), ``scores[i, j]`` its score; columns are in any order.
    """

    query_ids: Sequence[str] | NDArray[Any]
    doc_indices: NDArray[np.integer[Any]]
    scores: NDArray[np.floating[Any]]


@dataclass(frozen=True, eq=False)
class LongRun:
    """A run in long form: one row per (query, document); queries given per group."""

    groups: pa.Array
    group_lengths: Int64Array | None
    doc_ids: pa.Array
    scores: NDArray[np.float64]
    may_repeat_docs: bool


def judgment_columns(judgments: JudgmentsInput) -> tuple[pa.Array, pa.Array, Int64Array]:
    """Convert judgments, in any accepted form, to query ids, doc ids and grades."""
    if isinstance(judgments, pd.DataFrame):
        _require_columns(judgments, ("query_id", "doc_id", "relevance"), what="judgments")
        query_ids = strings(judgments["query_id"], what="query_id")
        doc_ids = strings(judgments["doc_id"], what="doc_id")
        grades = _grades(judgments["relevance"])
    elif isinstance(judgments, Mapping):
        inner = list(judgments.values())
        _require_mappings(inner, what="judgments")
        lengths = np.fromiter(map(len, inner), dtype=np.int64, count=len(inner))
        query_ids = strings(list(judgments.keys()), what="query_id").take(
            pa.array(np.repeat(np.arange(len(inner)), lengths))
        )
        doc_ids = strings(chain.from_iterable(inner), what="doc_id", size=int(lengths.sum()))
        grades = _grades(_numbers(chain.from_iterable(v.values() for v in inner)))
    else:
        records = list(judgments)
        if not all(isinstance(record, Judgment) for record in records):
            raise InputError(
                "judgments must be a DataFrame (query_id, doc_id, relevance), Judgment "
                "records, or {query_id: {doc_id: grade}}"
            )
        query_ids = strings([r.query_id for r in records], what="query_id")
        doc_ids = strings([r.doc_id for r in records], what="doc_id")
        grades = _grades(_numbers(r.relevance for r in records))
    return query_ids, doc_ids, grades


def long_run(run: RunInput) -> LongRun:
    """Convert a run DataFrame or dict to long-form Arrow / NumPy columns."""
    if isinstance(run, pd.DataFrame):
        _require_columns(run, ("query_id", "doc_id", "score"), what="run")
        query_ids = strings(run["query_id"], what="query_id")
        doc_ids = strings(run["doc_id"], what="doc_id")
        scores = _scores(run["score"], query_ids=query_ids, doc_ids=doc_ids)
        return LongRun(query_ids, None, doc_ids, scores, may_repeat_docs=True)
    if isinstance(run, Mapping):
        inner = list(run.values())
        _require_mappings(inner, what="run")
        lengths = np.fromiter(map(len, inner), dtype=np.int64, count=len(inner))
        groups = strings(list(run.keys()), what="query_id")
        doc_ids = strings(chain.from_iterable(inner), what="doc_id", size=int(lengths.sum()))
        try:
            scores = np.fromiter(
                chain.from_iterable(v.values() for v in inner),
                dtype=np.float64,
                count=int(lengths.sum()),
            )
        except (TypeError, ValueError) as error:
            raise InputError(f"every score must be a number: {error}", field="score") from error
        if np.isnan(scores).any():
            row = int(np.flatnonzero(np.isnan(scores))[0])
            group = int(np.searchsorted(np.cumsum(lengths), row, side="right"))
            raise InputError(
                f"score is NaN for query {groups[group].as_py()!r}, document "
                f"{doc_ids[row].as_py()!r}; every retrieved document needs a numeric score",
                field="score",
            )
        return LongRun(groups, lengths, doc_ids, scores, may_repeat_docs=False)
    raise InputError(
        "a run must be a DataFrame (query_id, doc_id, score) or {query_id: {doc_id: score}}, "
        f"got {type(run).__name__}"
    )


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], *, what: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise InputError(
            f"{what} is missing column(s) {', '.join(missing)}; expected {', '.join(columns)} "
            f"(found {', '.join(map(str, frame.columns)) or 'none'})"
        )


def _numbers(values: Iterable[object]) -> NDArray[Any]:
    """Python numbers as one NumPy array; anything else is kept as objects for ``_grades``."""
    items = list(values)
    try:
        return np.array(items, dtype=np.float64)
    except (TypeError, ValueError):
        return np.array(items, dtype=object)


def _require_mappings(values: Sequence[object], *, what: str) -> None:
    if not all(type(value) is dict for value in values) and not all(
        isinstance(value, Mapping) for value in values
    ):
        raise InputError(f"{what} given as a dict must map each query id to {{doc_id: value}}")


def strings(values: object, *, what: str, size: int | None = None) -> pa.Array:
    """Ids as one Arrow string array; integers are accepted and written in decimal.

    ``values`` may be an Arrow array, a pandas Series or Index, a NumPy array, or any
    iterable of ids (give ``size`` for an iterator).
    """
    try:
        if isinstance(values, pd.Series | pd.Index) and pd.api.types.is_integer_dtype(values.dtype):
            values = values.astype(str)
        if isinstance(values, pa.Array | pa.ChunkedArray):
            array = values
        elif isinstance(values, pd.Series | pd.Index | np.ndarray):
            array = pa.array(values, from_pandas=True)
        elif size is not None and not isinstance(values, Sequence):
            array = pa.array(values, type=pa.string(), size=size)
        else:
            items = values if isinstance(values, Sequence) else list(values)  # type: ignore[call-overload]
            try:
                array = pa.array(items, type=pa.string())
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                array = pa.array(items)
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        if pa.types.is_integer(array.type) or pa.types.is_null(array.type):
            array = array.cast(pa.string())
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
            raise InputError(f"{what} must hold strings, got {array.type}", field=what)
        array = array.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as error:
        raise InputError(f"{what} must hold strings: {error}", field=what) from error
    if array.null_count:
        raise InputError(f"{what} has {array.null_count} missing value(s)", field=what)
    return array


def _scores(values: pd.Series, *, query_ids: pa.Array, doc_ids: pa.Array) -> NDArray[np.float64]:
    if len(values) == 0:
        return np.zeros(0, dtype=np.float64)
    if pd.api.types.is_bool_dtype(values.dtype) or not pd.api.types.is_numeric_dtype(values.dtype):
        raise InputError(f"score must be numeric, got dtype {values.dtype}", field="score")
    scores = values.to_numpy(dtype=np.float64, na_value=np.nan)
    missing = np.flatnonzero(np.isnan(scores))
    if missing.size:
        row = int(missing[0])
        raise InputError(
            f"score is missing or NaN for query {query_ids[row].as_py()!r}, document "
            f"{doc_ids[row].as_py()!r} (row {row}, {missing.size} row(s) in all); every "
            "retrieved document needs a numeric score",
            field="score",
        )
    return scores


def _grades(values: pd.Series | NDArray[Any]) -> Int64Array:
    if isinstance(values, np.ndarray):
        values = pd.Series(values, copy=False)
    if pd.api.types.is_bool_dtype(values.dtype):
        raise InputError("relevance must hold integer grades, got booleans", field="relevance")
    numbers = pd.to_numeric(values, errors="coerce")
    floats = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    not_integer = ~np.isfinite(floats) | (floats != np.round(floats))
    bad = not_integer | (floats > MAX_GRADE) | (floats < MIN_GRADE)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = values.iloc[row]
        shown = value.item() if isinstance(value, np.generic) else value
        rule = (
            "an integer grade" if not_integer[row] else f"a grade from {MIN_GRADE} to {MAX_GRADE}"
        )
        raise InputError(f"relevance must be {rule}, got {shown!r} (row {row})", field="relevance")
    if pd.api.types.is_integer_dtype(numbers.dtype):
        return numbers.to_numpy(dtype=np.int64)
    return floats.astype(np.int64)


def sorted_codes(values: pa.Array) -> tuple[Int64Array, pa.Array]:
    """Codes of ``values`` into their sorted distinct values, and those values."""
    encoded = values.dictionary_encode()
    dictionary = encoded.dictionary
    order = to_int64(pc.sort_indices(dictionary))
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size, dtype=np.int64)
    return rank[to_int64(encoded.indices)], dictionary.take(pa.array(order))


def codes_in(values: pa.Array, vocabulary: pa.Array) -> Int64Array:
    """Position of each value in ``vocabulary``, -1 where absent."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    return to_int64(pc.fill_null(pc.index_in(values, value_set=vocabulary), -1))


def to_int64(array: pa.Array | pa.ChunkedArray) -> Int64Array:
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.int64)
