"""Readers for TREC qrels and run files, into DataFrames.

Ids stay strings as written (``"007"``); numbers are plain decimal (``1_000`` is refused: it
is 1 to trec_eval); the run's rank is ignored, as trec_eval does. A file Arrow's CSV reader
cannot take is read line by line, raising :class:`InputError` naming file, line and field.
"""

from __future__ import annotations

import codecs
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv

from evalkit.errors import InputError
from evalkit.metrics.inputs import MAX_GRADE, MIN_GRADE, RepeatedPairError

__all__ = ["pair_lines", "read_qrels", "read_run", "repeat_in_file"]


@dataclass(frozen=True, slots=True)
class _Layout:
    kind: str
    fields: tuple[str, ...]
    value_field: str
    value_type: pa.DataType
    value_dtype: type[np.generic]
    parse_value: Callable[[bytes], int | float]
    value_rule: str
    extra_fields_allowed: bool
    value_range: tuple[float, float] | None = None


class _OutOfRangeError(ValueError):
    """A value of the right kind outside what it may be; ``rule`` says what it may be."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


def _parse_grade(token: bytes) -> int:
    grade = int(_plain(token))
    if not MIN_GRADE <= grade <= MAX_GRADE:
        raise _OutOfRangeError(f"a grade from {MIN_GRADE} to {MAX_GRADE}")
    return grade


def _parse_score(token: bytes) -> float:
    value = float(_plain(token))
    if math.isnan(value):
        raise ValueError("NaN")
    return value


def _plain(token: bytes) -> bytes:
    """``token``, refused when it holds ``_``, which Python reads as a digit separator."""
    if b"_" in token:
        raise ValueError("underscore")
    return token


_QRELS = _Layout(
    kind="qrels",
    fields=("query_id", "iteration", "doc_id", "relevance"),
    value_field="relevance",
    value_type=pa.int64(),
    value_dtype=np.int64,
    parse_value=_parse_grade,
    value_rule="an integer grade",
    extra_fields_allowed=False,
    value_range=(MIN_GRADE, MAX_GRADE),
)
_RUN = _Layout(
    kind="run",
    fields=("query_id", "iteration", "doc_id", "rank", "score", "run_tag"),
    value_field="score",
    value_type=pa.float64(),
    value_dtype=np.float64,
    parse_value=_parse_score,
    value_rule="a number",
    extra_fields_allowed=True,
)


def read_qrels(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a TREC qrels file into a DataFrame with columns query_id, doc_id, relevance.

    Ids are strings (Arrow-backed), relevance is int64. Raises :class:`InputError` naming
    the file, line and field of the first malformed line.
    """
    return _read(path, _QRELS)


def read_run(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a TREC run file into a DataFrame with columns query_id, doc_id, score.

    Ids are strings (Arrow-backed), score is float64; the rank and run tag columns are
    dropped. Raises :class:`InputError` naming the file, line and field of the first
    malformed line.
    """
    return _read(path, _RUN)


def pair_lines(
    path: str | os.PathLike[str], query_id: str, doc_id: str, *, limit: int = 2
) -> list[int]:
    """The numbers of the first ``limit`` lines of a qrels or run file that pair ``query_id``
    (the first field) with ``doc_id`` (the third), as ``read_qrels`` and ``read_run`` count
    lines: to name where a pair is repeated once the rows are indexed. Only the lines holding
    ``doc_id`` are split, so a large file is searched at the speed of ``bytes.find``."""
    data = Path(path).read_bytes().removeprefix(codecs.BOM_UTF8)
    query, doc = query_id.encode(), doc_id.encode()
    found: list[int] = []
    number, counted = 1, 0
    position = data.find(doc)
    while position >= 0 and len(found) < limit:
        start = data.rfind(b"\n", 0, position) + 1
        end = data.find(b"\n", position)
        end = len(data) if end < 0 else end
        number += data.count(b"\n", counted, start)
        counted = start
        fields = data[start:end].split()
        if len(fields) >= 3 and fields[0] == query and fields[2] == doc:
            found.append(number)
        position = data.find(doc, end)
    return found


def repeat_in_file(error: RepeatedPairError, path: str | os.PathLike[str]) -> RepeatedPairError:
    """``error``, a pair given twice that was found once the rows were indexed, named in the
    file ``path`` it was read from, with the pair's first two lines there."""
    return error.at(str(path), pair_lines(path, error.query_id, error.doc_id))


def _read(path: str | os.PathLike[str], layout: _Layout) -> pd.DataFrame:
    name = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise InputError(
            f"cannot read the {layout.kind} file: {error.strerror or error}", path=name
        ) from error
    data = data.removeprefix(codecs.BOM_UTF8)
    columns = _read_regular(data, layout)
    if columns is None:
        columns = _read_line_by_line(data, layout, path=name)
    query_ids, doc_ids, values = columns
    return pd.DataFrame(
        {
            "query_id": pd.arrays.ArrowStringArray(query_ids),
            "doc_id": pd.arrays.ArrowStringArray(doc_ids),
            layout.value_field: values,
        }
    )


_Columns = tuple[pa.ChunkedArray, pa.ChunkedArray, np.ndarray]


def _read_regular(data: bytes, layout: _Layout) -> _Columns | None:
    """Parse with Arrow when every line is plainly delimited; ``None`` when it cannot."""
    delimiter = _plain_delimiter(data)
    if delimiter is None:
        return None
    query_id, _, doc_id = layout.fields[:3]
    try:
        table = pcsv.read_csv(
            pa.BufferReader(data),
            read_options=pcsv.ReadOptions(column_names=list(layout.fields)),
            parse_options=pcsv.ParseOptions(
                delimiter=delimiter,
                quote_char=False,
                double_quote=False,
                escape_char=False,
                newlines_in_values=False,
                ignore_empty_lines=True,
            ),
            convert_options=pcsv.ConvertOptions(
                column_types={
                    query_id: pa.string(),
                    doc_id: pa.string(),
                    layout.value_field: layout.value_type,
                },
                include_columns=[query_id, doc_id, layout.value_field],
                null_values=[],
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    values = table.column(layout.value_field)
    if values.null_count:
        return None
    array = values.to_numpy().astype(layout.value_dtype, copy=False)
    if array.dtype.kind == "f" and np.isnan(array).any():
        return None
    if layout.value_range is not None:
        low, high = layout.value_range
        if array.size and (array.min() < low or array.max() > high):
            return None  # read line by line, which names the line
    return table.column(query_id), table.column(doc_id), array


def _plain_delimiter(data: bytes) -> str | None:
    """The single delimiter (tab or space) of a plainly delimited file, else ``None``.

    Plain means: one delimiter character between fields, none at either end of a line, no
    other whitespace, no comment lines, and ``\\n`` or ``\\r\\n`` line ends.
    """
    if not data.strip():
        return None
    line_end = data.find(b"\n")
    first_line = data if line_end < 0 else data[:line_end]
    delimiter, other = (b"\t", b" ") if b"\t" in first_line else (b" ", b"\t")
    carriage_returns = data.count(b"\r")
    if carriage_returns and carriage_returns != data.count(b"\r\n"):
        return None
    irregular = (
        other in data
        or b"\x0b" in data
        or b"\x0c" in data
        or delimiter * 2 in data
        or data.startswith(delimiter)
        or data.rstrip(b"\r\n").endswith(delimiter)
        or b"\n" + delimiter in data
        or delimiter + b"\n" in data
        or delimiter + b"\r" in data
        or data.startswith(b"#")
        or b"\n#" in data
    )
    return None if irregular else delimiter.decode()


def _read_line_by_line(data: bytes, layout: _Layout, *, path: str) -> _Columns:
    n_fields = len(layout.fields)
    value_position = layout.fields.index(layout.value_field)
    query_ids: list[str] = []
    doc_ids: list[str] = []
    values: list[int | float] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        fields = line.split()
        if not fields or fields[0].startswith(b"#"):
            continue
        if len(fields) < n_fields or (len(fields) > n_fields and not layout.extra_fields_allowed):
            raise _field_count_error(layout, len(fields), path=path, line=number)
        query_ids.append(_text(fields[0], field="query_id", path=path, line=number))
        doc_ids.append(_text(fields[2], field="doc_id", path=path, line=number))
        token = fields[value_position]
        try:
            values.append(layout.parse_value(token))
        except ValueError as error:
            rule = error.rule if isinstance(error, _OutOfRangeError) else layout.value_rule
            raise InputError(
                f"{layout.value_field} must be {rule}, got {token.decode('utf-8', 'replace')!r}",
                path=path,
                line=number,
                field=layout.value_field,
            ) from None
    return (
        pa.chunked_array([pa.array(query_ids, pa.string())]),
        pa.chunked_array([pa.array(doc_ids, pa.string())]),
        np.array(values, dtype=layout.value_dtype),
    )


def _field_count_error(layout: _Layout, found: int, *, path: str, line: int) -> InputError:
    expected = " ".join(layout.fields)
    n_fields = len(layout.fields)
    if found < n_fields:
        return InputError(
            f"expected {n_fields} whitespace-separated fields ({expected}), found {found}",
            path=path,
            line=line,
            field=layout.fields[found],
        )
    return InputError(
        f"expected exactly {n_fields} whitespace-separated fields ({expected}), found {found}",
        path=path,
        line=line,
        field=f"column {n_fields + 1}",
    )


def _text(token: bytes, *, field: str, path: str, line: int) -> str:
    try:
        return token.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(
            f"{field} is not valid UTF-8: {token!r}", path=path, line=line, field=field
        ) from None
