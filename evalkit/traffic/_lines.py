"""Decoding a block of log lines at once, with the per-line path as the judge.

Arrow's JSON reader parses and types a whole block in C; the rules types cannot say are then
checked on whole columns. A line the block path cannot vouch for is never guessed at: it goes
through ``RecordBatchBuilder.add_line``, which decides and says why. A block Arrow refuses is
halved until the halves pass or are small enough to read line by line.

The block path accepts exactly what the per-line path accepts, given these guards: every
non-blank line starts with ``{`` and ends with ``}`` and the block yields one row per such
line (so no value spans lines); no ``NaN`` or ``Inf`` (Arrow reads them as numbers, JSON has
no such literals); every string is valid UTF-8 (Arrow does not check; msgspec does).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from evalkit.jsonsafe import TooDeepError, depth_checked
from evalkit.traffic._records import (
    MAX_EPOCH_SECONDS,
    MAX_TEXT_LENGTH,
    RECORD_SCHEMA,
    RecordBatchBuilder,
    RecordError,
    Tags,
    dedup_texts,
    epoch_microseconds,
    tags_json,
    timestamp_seconds,
)

__all__ = ["LineBlock", "add_json_lines"]

_SMALLEST_BLOCK = 256
"""Lines below which a block Arrow refuses is read line by line instead of halved."""

_READ_BLOCK_BYTES = 4 << 20
_OPEN, _CLOSE = b"{}"
# Arrow's reader takes ``NaN``, ``Inf`` and ``Infinity`` for numbers; JSON has no such literal.
_NON_JSON_LITERALS = (b"NaN", b"Inf")
_JSON_WHITESPACE = b" \t\r\n"
# Timestamps Arrow parses as Python's ``datetime.fromisoformat`` does; any other text goes
# to Python. Arrow needs an offset for a zoned type: naive ones (UTC, as the per-line path
# reads them) are cast with a ``Z`` appended.
_ISO_ZONED = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$"
_MAYBE_PADDED = r"^[^!-~]|[^!-~]$"
_ISO_NAIVE = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?$"
_UTC_MICROSECONDS = pa.timestamp("us", tz="UTC")
_MICROSECONDS = 1_000_000
_FLOAT_EXACT = 2**53


class _LineTags(msgspec.Struct, gc=False):
    """The tags of a log line, typed as in ``LogLine``, so they decode (or fail) alike."""

    tags: Tags | None = None


_TAGS_DECODER = msgspec.json.Decoder(_LineTags)


class _UndecodableError(Exception):
    """The block path cannot vouch for this block; smaller blocks or single lines may do."""


class LineBlock(Sequence[bytes]):
    """Complete lines, each ending in a newline, held as a range of one buffer.

    ``ends`` holds the offset in ``buffer`` just past each line, the block starting at
    ``begin``. Blocks cut from one buffer share it (finding newlines with NumPy costs a
    fraction of a bytes object per line); a line's bytes are copied out only when asked for.
    """

    __slots__ = ("begin", "buffer", "ends")

    def __init__(
        self, buffer: bytes, ends: np.ndarray[Any, np.dtype[np.int64]], begin: int = 0
    ) -> None:
        self.buffer = buffer
        self.ends = ends
        self.begin = begin

    @classmethod
    def of(cls, lines: Sequence[bytes]) -> LineBlock:
        """The block holding these lines, in order."""
        if isinstance(lines, LineBlock):
            return lines
        lengths = np.fromiter(map(len, lines), dtype=np.int64, count=len(lines))
        return cls(b"".join(lines), np.cumsum(lengths))

    @property
    def end(self) -> int:
        """The offset in ``buffer`` just past the block's last line."""
        return int(self.ends[-1]) if len(self.ends) else self.begin

    @property
    def nbytes(self) -> int:
        """The block's length in bytes."""
        return self.end - self.begin

    def view(self) -> memoryview:
        """The block's bytes, not copied."""
        return memoryview(self.buffer)[self.begin : self.end]

    def contains(self, text: bytes) -> bool:
        """Whether ``text`` occurs in the block."""
        return _has(self.buffer, text, self.begin, self.end)

    def __len__(self) -> int:
        return len(self.ends)

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> LineBlock: ...

    def __getitem__(self, index: int | slice) -> bytes | LineBlock:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self.ends))
            if step != 1:
                raise ValueError("a LineBlock is sliced without a step")
            begin = int(self.ends[start - 1]) if start else self.begin
            return LineBlock(self.buffer, self.ends[start : max(start, stop)], begin)
        position = range(len(self.ends))[index]
        begin = int(self.ends[position - 1]) if position else self.begin
        return self.buffer[begin : int(self.ends[position])]

    def __iter__(self) -> Iterator[bytes]:
        begin = self.begin
        for end in self.ends.tolist():
            yield self.buffer[begin:end]
            begin = end


def add_json_lines(builder: RecordBatchBuilder, lines: Sequence[bytes], first_line: int) -> None:
    """Add complete log lines (each ending in a newline), numbered from ``first_line``, to
    ``builder``: what the block path can vouch for as columns, the rest line by line.

    Records and problems are the ones ``builder.add_line`` would give for each line.
    """
    block = LineBlock.of(lines)
    try:
        table, doubtful = _decode_block(block, first_line)
    except _UndecodableError:
        if len(block) <= _SMALLEST_BLOCK:
            for index, raw in enumerate(block):
                if raw.strip():
                    builder.add_line(raw, first_line + index)
            return
        middle = len(block) // 2
        add_json_lines(builder, block[:middle], first_line)
        add_json_lines(builder, block[middle:], first_line + middle)
        return
    builder.add_records(table)
    for number in doubtful:
        builder.add_line(block[number - first_line], number, keys_checked=True)


def _decode_block(lines: LineBlock, first_line: int) -> tuple[pa.Table, list[int]]:
    """The block's records that pass every check, and the numbers of the other lines."""
    data, first, numbers, longest = _objects(lines, first_line)
    if not numbers.size:
        return RECORD_SCHEMA.empty_table(), []
    schema = _schema_for(first)
    try:
        parsed = pj.read_json(
            pa.BufferReader(pa.py_buffer(data)),
            # One thread: ingest decodes one part while its writer thread stores the last,
            # so the cores are busy already; Arrow's threads would add a fifth to the CPU.
            read_options=pj.ReadOptions(
                use_threads=False, block_size=max(_READ_BLOCK_BYTES, 2 * longest)
            ),
            parse_options=pj.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore"
            ),
        )
        if parsed.num_rows != numbers.size:
            raise _UndecodableError
        parsed.validate(full=True)
    except pa.ArrowException as error:
        raise _UndecodableError from error
    columns = {name: parsed.column(name).combine_chunks() for name in parsed.column_names}
    good = np.ones(numbers.size, dtype=bool)

    query_ids = columns["query_id"]
    if pa.types.is_string(query_ids.type):
        good &= _true(pc.greater(pc.binary_length(query_ids), 0))
        # An id that starts or ends with anything but printable ASCII may start or end with
        # (Unicode) whitespace, which the per-line path refuses: it decides those lines.
        good &= ~_true(pc.match_substring_regex(query_ids, _MAYBE_PADDED))
    else:
        good &= _true(query_ids.is_valid())
        query_ids = query_ids.cast(pa.string())

    texts = columns["text"]
    good &= _true(texts.is_valid())
    good &= _true(pc.less_equal(pc.utf8_length(texts), MAX_TEXT_LENGTH))
    dedup = dedup_texts(texts)
    good &= _true(pc.greater(pc.binary_length(dedup), 0))

    moments, parsed_moment = _microseconds(columns["timestamp"])
    good &= parsed_moment

    latencies = columns["latency_ms"]
    good &= ~_true(pc.less(latencies, 0.0))

    doc_ids, scores, bad_results = _results(columns["results"])
    good[bad_results] = False
    contexts = columns["contexts"]
    good[_rows_with_bad_items(contexts, pc.is_null(pc.list_flatten(contexts)))] = False

    tags, bad_tags = _tags(columns["tags"], lines, numbers - first_line)
    good[bad_tags] = False

    tenants = columns["tenant"]
    tenants = pc.if_else(pc.equal(tenants, ""), pa.scalar(None, pa.string()), tenants)
    table = pa.Table.from_arrays(
        [
            query_ids,
            pa.array(moments, pa.timestamp("us")),
            texts,
            tenants,
            tags,
            doc_ids,
            scores,
            columns["answer"],
            contexts,
            latencies,
            pa.array(numbers, pa.int64()),
            dedup,
        ],
        schema=RECORD_SCHEMA,
    )
    if good.all():
        return table, []
    return table.filter(pa.array(good)), numbers[~good].tolist()


def _objects(
    lines: LineBlock, first_line: int
) -> tuple[bytes | memoryview, bytes, np.ndarray[Any, np.dtype[np.int64]], int]:
    """The block's non-blank lines as one buffer of JSON objects, one per line, the first
    of them, their line numbers and the longest line's length; raises _UndecodableError when
    a non-blank line is not ``{...}`` or the block holds a literal JSON does not have."""
    ends = lines.ends
    lengths = np.diff(ends, prepend=lines.begin)
    octets = np.frombuffer(lines.buffer, dtype=np.uint8)
    # Every line ends in its newline: the byte before it closes the object.
    if (
        len(ends)
        and (lengths > 1).all()
        and (octets[ends - lengths] == _OPEN).all()
        and (octets[ends - 2] == _CLOSE).all()
    ):
        if any(lines.contains(literal) for literal in _NON_JSON_LITERALS):
            raise _UndecodableError
        numbers = np.arange(first_line, first_line + len(lines), dtype=np.int64)
        return lines.view(), lines[0], numbers, int(lengths.max())
    kept: list[int] = []
    objects: list[bytes] = []
    for index, raw in enumerate(lines):
        if not raw.strip():
            continue
        stripped = raw.strip(_JSON_WHITESPACE)
        if not (stripped.startswith(b"{") and stripped.endswith(b"}")):
            raise _UndecodableError
        kept.append(first_line + index)
        objects.append(stripped)
    if not objects:
        return b"", b"", np.zeros(0, dtype=np.int64), 0
    first = objects[0]
    longest = max(map(len, objects))
    objects.append(b"")
    data = b"\n".join(objects)
    if any(_has(data, literal) for literal in _NON_JSON_LITERALS):
        raise _UndecodableError
    return data, first, np.array(kept, dtype=np.int64), longest


def _has(data: bytes, literal: bytes, begin: int = 0, end: int | None = None) -> bool:
    """Whether ``literal`` occurs in ``data[begin:end]`` (not copied)."""
    # Looking for the first byte alone is a memchr, far faster than a substring search.
    return data.find(literal[:1], begin, end) >= 0 and data.find(literal, begin, end) >= 0


def _schema_for(first: bytes) -> pa.Schema:
    """Arrow types for a block, taken from its first line where the format allows two."""
    query_id: pa.DataType = pa.string()
    timestamp: pa.DataType = pa.string()
    doc_id_items = False
    try:
        record = depth_checked(msgspec.json.decode, first)
    except (msgspec.DecodeError, TooDeepError, UnicodeDecodeError):
        record = None
    if isinstance(record, dict):
        if type(record.get("query_id")) is int:
            query_id = pa.int64()
        if type(record.get("timestamp")) in (int, float):
            timestamp = pa.float64()
        results = record.get("results")
        doc_id_items = isinstance(results, list) and bool(results) and isinstance(results[0], str)
    result_item = (
        pa.string()
        if doc_id_items
        else pa.struct([("doc_id", pa.string()), ("score", pa.float64())])
    )
    return pa.schema(
        [
            ("query_id", query_id),
            ("timestamp", timestamp),
            ("text", pa.string()),
            ("tenant", pa.string()),
            # No fields: only whether a line has tags; they are decoded from its line.
            ("tags", pa.struct([])),
            ("results", pa.list_(result_item)),
            ("answer", pa.string()),
            ("contexts", pa.list_(pa.string())),
            ("latency_ms", pa.float64()),
        ]
    )


def _true(mask: pa.Array | pa.ChunkedArray) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """A boolean Arrow mask as NumPy, null counted as false."""
    return np.asarray(pc.fill_null(mask, False), dtype=bool)


def _microseconds(
    values: pa.Array,
) -> tuple[np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.bool_]]]:
    """Epoch microseconds (UTC) of each timestamp, as the per-line path computes them, and
    which timestamps are valid."""
    count = len(values)
    micros = np.zeros(count, dtype=np.int64)
    if pa.types.is_floating(values.type):
        epoch = np.asarray(values.fill_null(-1.0), dtype=np.float64)
        valid = np.isfinite(epoch) & (epoch >= 0) & (epoch < MAX_EPOCH_SECONDS)
        micros[valid] = epoch_microseconds(epoch[valid])
        return micros, valid
    valid = np.zeros(count, dtype=bool)
    remaining = _true(values.is_valid())
    for pattern, suffix in ((_ISO_ZONED, ""), (_ISO_NAIVE, "Z")):
        if not remaining.any():
            break
        matched = _true(pc.match_substring_regex(values, pattern)) & remaining
        if not matched.any():
            continue
        texts = pc.filter(values, pa.array(matched))
        if suffix:
            texts = pc.binary_join_element_wise(texts, suffix, "")
        try:
            exact = pc.cast(texts, _UTC_MICROSECONDS)
        except pa.ArrowInvalid:
            continue  # a date such as February 30th: Python judges them one by one
        exact_micros = np.asarray(exact.cast(pa.int64()), dtype=np.int64)
        # The per-line path goes through float seconds; the same arithmetic gives the same
        # microsecond wherever an int64 of microseconds is exact as a float64.
        exact_float = np.abs(exact_micros) < _FLOAT_EXACT
        # Out of range, a timestamp is left to Python, which names the line and the field.
        in_range = (exact_micros >= 0) & (exact_micros < MAX_EPOCH_SECONDS * _MICROSECONDS)
        kept = exact_float & in_range
        rows = np.flatnonzero(matched)[kept]
        micros[rows] = epoch_microseconds(exact_micros[kept] / _MICROSECONDS)
        valid[rows] = True
        remaining[rows] = False
    if remaining.any():
        strings = values.to_pylist()
        for index in np.flatnonzero(remaining).tolist():
            try:
                seconds = timestamp_seconds(strings[index])
            except RecordError:
                continue
            micros[index] = epoch_microseconds([seconds])[0]
            valid[index] = True
    return micros, valid


def _rows_with_bad_items(lists: pa.Array, bad_items: pa.Array) -> np.ndarray[Any, Any]:
    """Row indices of the lists that hold at least one bad item."""
    bad = _true(bad_items)
    if not bad.any():
        return np.zeros(0, dtype=np.int64)
    parents = np.asarray(pc.list_parent_indices(lists))
    return np.unique(parents[bad])


def _results(results: pa.Array) -> tuple[pa.Array, pa.Array, np.ndarray[Any, Any]]:
    """Logged document ids and scores as two list columns, and the rows whose results the
    format refuses (a null item, a missing or empty id)."""
    items = pc.list_flatten(results)
    lengths = np.asarray(pc.list_value_length(results).fill_null(0), dtype=np.int32)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    missing = results.is_null()
    if pa.types.is_string(items.type):
        doc_ids, scores = items, pa.nulls(len(items), pa.float64())
    else:
        doc_ids, scores = items.flatten()
    bad_items = pc.or_kleene(
        items.is_null(), pc.fill_null(pc.equal(pc.binary_length(doc_ids), 0), True)
    )
    return (
        pa.ListArray.from_arrays(offsets, doc_ids, mask=missing),
        pa.ListArray.from_arrays(offsets, scores, mask=missing),
        _rows_with_bad_items(results, bad_items),
    )


def _tags(
    present: pa.Array, lines: LineBlock, positions: np.ndarray[Any, Any]
) -> tuple[pa.Array, list[int]]:
    """Each row's tags as stored (JSON text, keys sorted) and the rows whose tags the
    format refuses; tags are decoded from the row's own line, as the per-line path does."""
    rows = np.flatnonzero(_true(present.is_valid()))
    if not rows.size:
        return pa.nulls(len(present), pa.string()), []
    values: list[str | None] = [None] * len(present)
    bad: list[int] = []
    for row in rows.tolist():
        try:
            tags = depth_checked(_TAGS_DECODER.decode, lines[positions[row]]).tags
        except (msgspec.DecodeError, TooDeepError, UnicodeDecodeError):
            bad.append(row)
            continue
        values[row] = tags_json(tags) if tags else None
    return pa.array(values, pa.string()), bad
