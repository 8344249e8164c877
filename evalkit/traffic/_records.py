"""Turning log lines (JSON) and Parquet rows into columns, one batch at a time.

msgspec decodes and type-checks each line against ``LogLine``; what types cannot say is
checked here. A malformed line becomes a ``(line, message)`` problem and the batch carries
on. Messages never quote values, which may be personal data redaction has not seen yet.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, cast

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from msgspec.structs import astuple

from evalkit.clock import MAX_EPOCH_SECONDS
from evalkit.jsonsafe import REPEATED_KEY, TooDeepError, depth_checked
from evalkit.records import dedup_text
from evalkit.traffic.log import LOG_FIELDS

__all__ = [
    "MAX_EPOCH_SECONDS",
    "MAX_TEXT_LENGTH",
    "RECORD_SCHEMA",
    "LogLine",
    "LoggedDoc",
    "RecordBatchBuilder",
    "RecordError",
    "Tags",
    "decode_line",
    "dedup_text",
    "dedup_texts",
    "epoch_microseconds",
    "log_line_json_schema",
    "tags_json",
    "timestamp_seconds",
]

RECORD_SCHEMA = pa.schema(
    [
        ("query_id", pa.string()),
        ("ts", pa.timestamp("us")),
        ("text", pa.string()),
        ("tenant", pa.string()),
        ("tags", pa.string()),
        ("logged_doc_ids", pa.list_(pa.string())),
        ("logged_scores", pa.list_(pa.float64())),
        ("answer", pa.string()),
        ("contexts", pa.list_(pa.string())),
        ("latency_ms", pa.float64()),
        ("line", pa.int64()),
        ("dedup_text", pa.string()),
    ]
)
"""Columns of one ingested batch: what ``traffic_records`` stores, less provenance, plus the
normalised text its ``query_key`` is hashed from."""


class LoggedDoc(msgspec.Struct, gc=False):
    """One result production logged: a document id and, optionally, its score."""

    doc_id: Annotated[str, msgspec.Meta(min_length=1)]
    score: float | None = None


def _described(name: str) -> msgspec.Meta:
    return msgspec.Meta(description=LOG_FIELDS[name])


# What types cannot say and ``_append`` checks (non-blank text, a date or epoch seconds)
# is added to the JSON Schema only (``extra_json_schema``), so decoding costs nothing more.
MAX_TEXT_LENGTH = 100_000
"""The longest query text a log line may hold, in characters: a query is short, and one of
megabytes (a document pasted in, a runaway client) would be embedded and replayed at a cost
in time and memory no query is worth."""
_NON_BLANK = msgspec.Meta(extra_json_schema={"pattern": r"\S"})
_QUERY_TEXT = msgspec.Meta(extra_json_schema={"maxLength": MAX_TEXT_LENGTH})
_ISO_DATE = msgspec.Meta(extra_json_schema={"pattern": r"^[0-9]{4}-?[0-9]{2}-?[0-9]{2}"})
_EPOCH_SECONDS = msgspec.Meta(
    extra_json_schema={"minimum": 0, "exclusiveMaximum": MAX_EPOCH_SECONDS}
)


Tags = dict[str, str | int | float | bool]
"""What a log line's ``tags`` may hold: names to strings (numbers and booleans are kept as
their JSON text)."""


class LogLine(msgspec.Struct, gc=False):
    """One line of the traffic log format (``evalkit.traffic.log``).

    Fields the format does not have are ignored (an application may log more).
    """

    query_id: Annotated[Annotated[str, msgspec.Meta(min_length=1)] | int, _described("query_id")]
    timestamp: Annotated[
        Annotated[str, _ISO_DATE] | Annotated[float, _EPOCH_SECONDS], _described("timestamp")
    ]
    text: Annotated[str, _NON_BLANK, _QUERY_TEXT, _described("text")]
    tenant: Annotated[str | None, _described("tenant")] = None
    tags: Annotated[Tags | None, _described("tags")] = None
    results: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1)] | LoggedDoc] | None,
        _described("results"),
    ] = None
    answer: Annotated[str | None, _described("answer")] = None
    contexts: Annotated[list[str] | None, _described("contexts")] = None
    latency_ms: Annotated[Annotated[float, msgspec.Meta(ge=0)] | None, _described("latency_ms")] = (
        None
    )


def log_line_json_schema() -> dict[str, Any]:
    """JSON Schema of one traffic log line, generated from ``LogLine``."""
    return msgspec.json.schema(LogLine)


_DECODER = msgspec.json.Decoder(LogLine)
_ANY_DECODER = msgspec.json.Decoder()
_KNOWN_FIELDS = frozenset(LOG_FIELDS)
_FIELD_TOKENS = tuple(f'"{name}"'.encode() for name in LOG_FIELDS)
# A key holding a \uXXXX escape: "ten\u0061nt" is the field tenant, spelt otherwise.
_ESCAPED_KEY = re.compile(rb'\\u[0-9a-fA-F]{4}[^"]*"\s*:')
_MICROSECONDS = 1_000_000


NOT_UTF8 = "not valid JSON (a string is not valid UTF-8)"
_BOM_NOTE = (
    "not valid JSON (the line starts with a UTF-8 byte order mark; write the log without one)"
)


def _not_json(raw: bytes, error: msgspec.DecodeError | TooDeepError) -> str:
    return (
        _BOM_NOTE if raw.lstrip(b" \t").startswith(codecs.BOM_UTF8) else f"not valid JSON ({error})"
    )


class RecordError(ValueError):
    """One record is malformed; the message says which field and what was expected."""


def decode_line(raw: bytes) -> object:
    """Decode one JSON line into Python objects; raises RecordError when it is not JSON."""
    try:
        return depth_checked(_ANY_DECODER.decode, raw)
    except (msgspec.DecodeError, TooDeepError) as error:
        raise RecordError(_not_json(raw, error)) from None
    except UnicodeDecodeError:
        raise RecordError(NOT_UTF8) from None


class RecordBatchBuilder:
    """Collects valid records as columns and malformed ones as ``(line, message)`` problems."""

    def __init__(self) -> None:
        self.problems: list[tuple[int, str]] = []
        self.unknown_fields: Counter[str] = Counter()
        self._tables: list[pa.Table] = []
        self._taken = 0
        self.query_ids: list[str] = []
        self.timestamps: list[float] = []
        self.texts: list[str] = []
        self.tenants: list[str | None] = []
        self.tags: list[str | None] = []
        self.doc_ids: list[Sequence[str] | None] = []
        self.scores: list[Sequence[float | None] | None] = []
        self.answers: list[str | None] = []
        self.contexts: list[list[str] | None] = []
        self.latencies: list[float | None] = []
        self.lines: list[int] = []
        self.dedup_texts: list[str] = []

    def __len__(self) -> int:
        """Valid records added, including those of absorbed parts."""
        return (
            self._taken + len(self.query_ids) + sum(int(table.num_rows) for table in self._tables)
        )

    def absorb(self, part: RecordBatchBuilder) -> None:
        """Count ``part``'s records and take its problems and unknown fields as this
        builder's: a batch decoded a part at a time, each part in a builder of its own,
        whose records go on separately."""
        self._taken += len(part)
        self.problems.extend(part.problems)
        self.unknown_fields.update(part.unknown_fields)

    def add_records(self, table: pa.Table) -> None:
        """Add records already checked and in columns (``RECORD_SCHEMA``), e.g. a block of
        lines decoded at once."""
        if table.schema != RECORD_SCHEMA:
            raise TypeError(f"records must have RECORD_SCHEMA, got {table.schema}")
        if table.num_rows:
            self._tables.append(table)

    def add_line(self, raw: bytes, line: int, *, keys_checked: bool = False) -> None:
        """Parse one JSON line; a malformed one is recorded as a problem.

        ``keys_checked``: the line is known to give no field of the format twice (Arrow's
        reader parsed it, and refuses a repeated one), so that is not looked for again.
        """
        try:
            record = depth_checked(_DECODER.decode, raw)
        except msgspec.ValidationError as error:
            self.problems.append((line, f"invalid record: {error}"))
            return
        except (msgspec.DecodeError, TooDeepError) as error:
            self.problems.append((line, _not_json(raw, error)))
            return
        except UnicodeDecodeError:
            self.problems.append((line, NOT_UTF8))
            return
        repeated = None if keys_checked else _repeated_field(raw)
        if repeated is not None:
            self.problems.append(
                (line, f"invalid record: `{repeated}` {REPEATED_KEY} - at `$.{repeated}`")
            )
            return
        try:
            self._append(record, line)
        except RecordError as error:
            self.problems.append((line, str(error)))

    def note_fields(self, raw: bytes) -> None:
        """Count the fields of this line that the log format does not have (typos show up)."""
        try:
            record = depth_checked(_ANY_DECODER.decode, raw)
        except (msgspec.DecodeError, TooDeepError, UnicodeDecodeError):
            return
        if isinstance(record, dict):
            self.unknown_fields.update(key for key in record if key not in _KNOWN_FIELDS)

    def add_row(self, row: Mapping[str, Any], line: int) -> None:
        """Add one Parquet row (a dict of column values); a malformed one becomes a problem."""
        values = dict(row)
        moment = values.get("timestamp")
        if isinstance(moment, datetime):
            values["timestamp"] = moment.isoformat()
        tags = values.get("tags")
        if isinstance(tags, list):
            # Parquet MAP columns arrive as (key, value) pairs.
            try:
                values["tags"] = dict(tags)
            except (TypeError, ValueError):
                self.problems.append((line, "invalid record: tags must map names to strings"))
                return
        try:
            record = msgspec.convert(values, LogLine)
        except msgspec.ValidationError as error:
            self.problems.append((line, f"invalid record: {error}"))
            return
        try:
            self._append(record, line)
        except RecordError as error:
            self.problems.append((line, str(error)))

    def _append(self, record: LogLine, line: int) -> None:
        query_id = record.query_id
        text = record.text
        if not text or text.isspace():
            raise RecordError("invalid record: `text` is empty - at `$.text`")
        if len(text) > MAX_TEXT_LENGTH:
            raise RecordError(
                f"invalid record: `text` is longer than {MAX_TEXT_LENGTH} characters "
                f"({len(text)}) - at `$.text`"
            )
        if type(query_id) is str and query_id != query_id.strip():
            # A goldset id may not have it either: such a query could be promoted into a
            # goldset no import accepts, or trimmed into another query's id.
            raise RecordError(
                "invalid record: `query_id` has leading or trailing whitespace - at `$.query_id`"
            )
        timestamp = timestamp_seconds(record.timestamp)
        doc_ids, scores = _ranked(record.results)
        tags = record.tags
        self.query_ids.append(query_id if type(query_id) is str else str(query_id))
        self.timestamps.append(timestamp)
        self.texts.append(text)
        self.tenants.append(record.tenant or None)
        self.tags.append(tags_json(tags) if tags else None)
        self.doc_ids.append(doc_ids)
        self.scores.append(scores)
        self.answers.append(record.answer)
        self.contexts.append(record.contexts)
        self.latencies.append(record.latency_ms)
        self.lines.append(line)
        self.dedup_texts.append(dedup_text(text))

    def to_table(self) -> pa.Table:
        """The valid records as an Arrow table with ``RECORD_SCHEMA`` (naive UTC times), in
        line order."""
        table = self._row_table()
        if not self._tables:
            return table
        parts = [*self._tables, table] if table.num_rows else self._tables
        if len(parts) == 1:
            return parts[0]
        merged = pa.concat_tables(parts)
        if (np.diff(np.asarray(merged.column("line"))) > 0).all():
            return merged
        return merged.sort_by("line")

    def _row_table(self) -> pa.Table:
        return pa.Table.from_arrays(
            [
                pa.array(self.query_ids, pa.string()),
                pa.array(epoch_microseconds(self.timestamps), pa.timestamp("us")),
                pa.array(self.texts, pa.string()),
                pa.array(self.tenants, pa.string()),
                pa.array(self.tags, pa.string()),
                pa.array(self.doc_ids, pa.list_(pa.string())),
                pa.array(self.scores, pa.list_(pa.float64())),
                pa.array(self.answers, pa.string()),
                pa.array(self.contexts, pa.list_(pa.string())),
                pa.array(self.latencies, pa.float64()),
                pa.array(self.lines, pa.int64()),
                pa.array(self.dedup_texts, pa.string()),
            ],
            schema=RECORD_SCHEMA,
        )


def _repeated_field(raw: bytes) -> str | None:
    """The first field of the log format that this line (one JSON object, valid UTF-8)
    gives twice, or None. Cheap for the usual line: the exact check parses only a line that
    names a field twice somewhere or has a key spelt with a ``\\u`` escape."""
    if not any(raw.count(token) > 1 for token in _FIELD_TOKENS) and not (
        b"\\u" in raw and _ESCAPED_KEY.search(raw)
    ):
        return None
    try:
        pairs = depth_checked(_pairs, raw)
    except ValueError:  # not JSON after all, nested too deeply, or an integer too long to read
        return None
    seen: set[str] = set()
    for key, _ in pairs if isinstance(pairs, list) else ():
        if key in _KNOWN_FIELDS:
            if key in seen:
                return str(key)
            seen.add(key)
    return None


def _pairs(raw: bytes) -> object:
    """The JSON ``raw`` with each object as its list of ``(key, value)`` pairs."""
    return json.loads(raw, object_pairs_hook=list)


# What ``str.split()`` would change in an ASCII text besides case: a whitespace character
# other than the space (those below 128 it splits on), two spaces in a row, a leading or
# trailing space. An ASCII text with none of these is its own ``dedup_text`` once lowered.
_NEEDS_SPLITTING = r"[\t\n\x0b\x0c\r\x1c-\x1f]|  |^ | $"


def dedup_texts(texts: pa.Array) -> pa.Array:
    """``dedup_text`` of each text of a string array (empty for a blank or null one).

    Single-spaced ASCII texts (nearly all queries) are lowered by Arrow, a whole column at a
    time; the others go through ``dedup_text`` itself, whose Unicode case and whitespace
    rules they need.
    """
    filled = texts.fill_null("")
    lowered = pc.ascii_lower(filled)
    lowered_is_enough = np.asarray(
        pc.and_(
            pc.string_is_ascii(filled),
            pc.invert(pc.match_substring_regex(filled, _NEEDS_SPLITTING)),
        ),
        dtype=bool,
    )
    if lowered_is_enough.all():
        return lowered.cast(pa.string())
    values = lowered.to_pylist()
    originals = filled.to_pylist()
    for row in np.flatnonzero(~lowered_is_enough).tolist():
        values[row] = dedup_text(originals[row])
    return pa.array(values, pa.string())


def _ranked(
    results: list[str | LoggedDoc] | None,
) -> tuple[Sequence[str] | None, Sequence[float | None] | None]:
    """Document ids and scores of the logged results, in their order."""
    if results is None:
        return None, None
    if not results:
        return (), ()
    try:
        # All-object results (the common case) unzip in C; astuple rejects a bare id string.
        doc_ids, scores = zip(*map(astuple, cast("list[LoggedDoc]", results)), strict=True)
    except TypeError:
        return (
            tuple(item if isinstance(item, str) else item.doc_id for item in results),
            tuple(None if isinstance(item, str) else item.score for item in results),
        )
    return doc_ids, scores


def epoch_microseconds(
    seconds: Sequence[float] | np.ndarray[Any, Any],
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Epoch microseconds, rounded, of epoch seconds."""
    # Epoch seconds as float64 resolve a microsecond for any date up to year 2255.
    return np.round(np.asarray(seconds, dtype=np.float64) * _MICROSECONDS).astype(np.int64)


def timestamp_seconds(value: str | float) -> float:
    """Epoch seconds (UTC) of ISO 8601 text (UTC unless it has an offset) or epoch seconds."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise RecordError(
                "invalid record: `timestamp` is not an ISO 8601 date-time such as "
                "2026-11-21T18:35:00Z - at `$.timestamp`"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp()
        if not 0 <= seconds < MAX_EPOCH_SECONDS:
            raise RecordError(
                "invalid record: `timestamp` must lie between 1970 and the year 5138 (UTC) "
                "- at `$.timestamp`"
            )
        return seconds
    if not math.isfinite(value) or not 0 <= value < MAX_EPOCH_SECONDS:
        raise RecordError(
            "invalid record: `timestamp` as a number must be epoch seconds since 1970 (not "
            "milliseconds) - at `$.timestamp`"
        )
    return float(value)


def tags_json(tags: Tags) -> str:
    """Tags as stored: a JSON object, keys sorted, every value as text."""
    text = {
        key: value if isinstance(value, str) else msgspec.json.encode(value).decode()
        for key, value in sorted(tags.items())
    }
    return msgspec.json.encode(text).decode()
