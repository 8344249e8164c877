"""Reading what changed at the source since a subject's last check.

Change tables (JSON Lines, Parquet, a DuckDB table) and corpora, each read on from where the
last check stopped: docs/freshness.md, "Where the changes come from". Every malformed row is
reported (file, line, field) in one ``InputError`` and nothing of that source is read, so the
check can run again once it is fixed.
"""

from __future__ import annotations

import functools
import math
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from evalkit.audit.freshness.passages import probe_passages
from evalkit.clock import CLOCK_SKEW, MAX_EPOCH_SECONDS, naive_utc, utc_now
from evalkit.errors import GoldsetError, InputError
from evalkit.files import HEAD_BYTES, FileIdentity, file_identity, files_oldest_first
from evalkit.goldset.corpus import content_hash, detect_corpus_format, iter_corpus_lines
from evalkit.records.freshness import FreshnessRequest
from evalkit.retrievers.versions import text_hash
from evalkit.store.freshness import CHANGE_COLUMNS, SourceCursor, read_duckdb_changes

__all__ = [
    "HEAD_BYTES",
    "ChangeRead",
    "change_files",
    "read_changes",
]

MAX_LISTED_PROBLEMS = 50

_JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json", ".log"})
_PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
_DUCKDB_SUFFIXES = frozenset({".duckdb", ".db"})
_TABLE_COLUMNS = ("doc_id", "updated_at", "content", "text")


@dataclass(frozen=True, slots=True)
class ChangeRead:
    """What one check read: the changes (``CHANGE_COLUMNS``, ``updated_at`` naive UTC), the
    read positions after them, and notes for people (a line left for the next check)."""

    changes: pd.DataFrame
    cursors: tuple[SourceCursor, ...]
    notes: tuple[str, ...] = ()


@dataclass
class _Rows:
    """Changes gathered from every part of a source, and the problems met."""

    doc_ids: list[str] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    hashes: list[str | None] = field(default_factory=list)
    latest: datetime = field(default_factory=lambda: utc_now() + CLOCK_SKEW)
    problems: list[InputError] = field(default_factory=list)
    n_problems: int = 0
    cursors: list[SourceCursor] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(
        self, doc_id: str, moment: datetime, origin: str, text: str, digest: str | None = None
    ) -> None:
        self.doc_ids.append(doc_id)
        self.times.append(moment)
        self.origins.append(origin)
        self.texts.append(text)
        self.hashes.append(digest)

    def moment(self, value: object) -> datetime:
        """``value`` as naive UTC (``_moment``), refused when it is after ``latest``."""
        moment = _moment(value)
        if moment > self.latest:
            raise _BadValueError(
                f"{moment:%Y-%m-%dT%H:%M:%SZ} is in the future (this check's clock reads "
                f"{self.latest - CLOCK_SKEW:%Y-%m-%dT%H:%M:%SZ}); fix the time, or the clock "
                "of what wrote it"
            )
        return moment

    def problem(self, message: str, *, path: str, line: int | None, field: str | None) -> None:
        self.n_problems += 1
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            self.problems.append(InputError(message, path=path, line=line, field=field))


def read_changes(
    request: FreshnessRequest,
    subject: str,
    cursors: Mapping[str, SourceCursor],
    *,
    passages: bool,
    seen: Callable[[datetime], Collection[str]] = lambda moment: (),
    now: datetime | None = None,
) -> ChangeRead:
    """The changes ``request``'s source made since ``subject``'s ``cursors``, with probe
    passages when ``passages``. ``seen(moment)`` gives the documents of time ``moment``
    already read, which a corpus read again from its newest time skips.

    Raises InputError listing every bad row (file, line, field): malformed, or dated more
    than ``CLOCK_SKEW`` after ``now`` (default: the clock's time).
    """
    rows = _Rows(latest=(now or utc_now()) + CLOCK_SKEW)
    if request.corpus is not None:
        _read_corpus(
            rows,
            request.corpus,
            subject,
            cursors,
            key=request.updated_at_key,
            since=request.since,
            seen=seen,
        )
    else:
        for path, kind in change_files(request.changes):
            if kind == "jsonl":
                _read_jsonl(rows, path, subject, cursors)
            elif kind == "parquet":
                _read_parquet(rows, path, subject, cursors)
            else:
                _read_duckdb(rows, path, subject, cursors, table=request.changes_table)
    if rows.problems:
        first = rows.problems[0]
        shown = "; ".join(str(problem) for problem in rows.problems[:5])
        more = f" (and {rows.n_problems - 5} more)" if rows.n_problems > 5 else ""
        plural = "" if rows.n_problems == 1 else "s"
        raise InputError(
            f"{rows.n_problems} malformed change{plural}: {shown}{more}. Fix them and run "
            "the check again: nothing of the source was read",
            path=first.path,
            problems=rows.problems,
        )
    frame = pd.DataFrame(
        {
            "doc_id": pd.Series(rows.doc_ids, dtype=object),
            "updated_at": pd.to_datetime(pd.Series(rows.times, dtype=object)).astype(
                "datetime64[us]"
            )
            if rows.times
            else pd.Series([], dtype="datetime64[us]"),
            "origin": pd.Series(rows.origins, dtype=object),
            "content_hash": pd.Series(rows.hashes, dtype=object),
            "text_hash": pd.Series([text_hash(text) for text in rows.texts], dtype=object),
            "probe_text": pd.Series(
                probe_passages(rows.texts) if passages else [None] * len(rows.texts),
                dtype=object,
            ),
        },
        columns=list(CHANGE_COLUMNS),
    )
    if request.since is not None and not frame.empty:
        frame = frame[frame["updated_at"] >= pd.Timestamp(request.since)].reset_index(drop=True)
    return ChangeRead(frame, tuple(rows.cursors), tuple(rows.notes))


def _kind(path: Path, *, explicit: bool) -> str | None:
    suffixes = {suffix.lower() for suffix in path.suffixes}
    if suffixes & _DUCKDB_SUFFIXES:
        return "duckdb"
    if suffixes & _PARQUET_SUFFIXES:
        return "parquet"
    if suffixes & _JSONL_SUFFIXES or explicit:
        return "jsonl"
    return None


def change_files(paths: Sequence[Path]) -> Iterator[tuple[Path, str]]:
    """Each change file ``paths`` name, with its kind (``jsonl``, ``parquet``, ``duckdb``):
    a folder's files oldest first; raises InputError for a path that does not exist."""
    for path in paths:
        if path.is_dir():
            for entry in files_oldest_first(path):
                kind = _kind(entry, explicit=False)
                if kind is not None:
                    yield entry, kind
        elif path.is_file():
            yield path, _kind(path, explicit=True) or "jsonl"
        else:
            raise InputError("no such file or directory", path=str(path))


# -- values --------------------------------------------------------------------------------


_EARLIEST = datetime(1970, 1, 1)
"""No change is dated before 1970, as no epoch seconds are (and pandas' times end in 1677)."""


class _BadValueError(Exception):
    """A value of a change row that cannot be used; the message says why."""


def _moment(value: object) -> datetime:
    """``updated_at`` as naive UTC: ISO 8601 text (naive meaning UTC), epoch seconds or a
    datetime."""
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        moment = value
    elif value is None:
        raise _BadValueError("is missing; give the time of the change (ISO 8601 or epoch seconds)")
    elif isinstance(value, bool):
        raise _BadValueError(
            f"{value!r} is not a time; give the time of the change (ISO 8601 or epoch seconds)"
        )
    elif isinstance(value, int | float | np.integer | np.floating):
        seconds = float(value)
        if not math.isfinite(seconds) or not 0 <= seconds < MAX_EPOCH_SECONDS:
            raise _BadValueError(f"{value!r} is not a time in epoch seconds")
        moment = datetime.fromtimestamp(seconds, UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise _BadValueError(
                f"{value!r} is not an ISO 8601 time (e.g. 2026-03-01T12:00:00Z)"
            ) from None
    else:
        raise _BadValueError(f"{value!r} is not a time (ISO 8601 text or epoch seconds)")
    try:
        utc = naive_utc(moment)
    except OverflowError:  # year 1 or 9999, moved past the calendar by its UTC offset
        utc = None
    if utc is None or utc < _EARLIEST:
        shown = value if isinstance(value, str) else moment.isoformat()
        raise _BadValueError(
            f"{shown!r} is not a time between 1970 and now; give the time of the change"
        )
    return utc


def _doc_id(value: object) -> str:
    if value is None:
        raise _BadValueError("is missing; give the changed document's id")
    if isinstance(value, bool):
        raise _BadValueError(f"{value!r} is not a document id (a non-empty string)")
    if isinstance(value, int | np.integer):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise _BadValueError(f"{value!r} is not a document id (a non-empty string)")
    return value


def _content(record: Mapping[str, Any]) -> tuple[str, str]:
    """The change's text and the field it came from."""
    name = "content" if "content" in record or "text" not in record else "text"
    value = record.get(name)
    if not isinstance(value, str) or not value.strip():
        if value is None:
            raise _BadValueError("is missing; give the document's new text")
        raise _BadValueError(f"{value!r} is not the document's text (a non-empty string)")
    return value, name


def _add_record(rows: _Rows, record: Mapping[str, Any], *, path: str, line: int) -> None:
    """Check one change row and add it, or note each of its problems."""
    bad = False
    for name, check in (("doc_id", _doc_id), ("updated_at", rows.moment)):
        try:
            check(record.get(name))
        except _BadValueError as error:
            rows.problem(str(error), path=path, line=line, field=name)
            bad = True
    try:
        text, _ = _content(record)
    except _BadValueError as error:
        name = "content" if "content" in record or "text" not in record else "text"
        rows.problem(str(error), path=path, line=line, field=name)
        bad = True
    if bad:
        return
    rows.add(_doc_id(record["doc_id"]), rows.moment(record["updated_at"]), f"{path}:{line}", text)


# -- change files --------------------------------------------------------------------------


def _part(identity: FileIdentity) -> str:
    return f"file:{identity.device}:{identity.inode}"


def _resumes(identity: FileIdentity, cursor: SourceCursor | None) -> bool:
    """Whether ``cursor`` is this file's, read up to no further than its size."""
    if cursor is None or cursor.head_hash is None or cursor.head_length is None:
        return False
    if (cursor.byte_offset or 0) > identity.size:
        return False
    return identity.starts_as(cursor.head_length, cursor.head_hash)


def _file_cursor(
    identity: FileIdentity, subject: str, kind: str, path: str, *, byte_offset: int, rows_read: int
) -> SourceCursor:
    """Where the subject's checks stopped reading the file ``identity``."""
    return SourceCursor(
        subject=subject,
        part=_part(identity),
        kind=kind,
        path=path,
        head_hash=identity.head_hash,
        head_length=len(identity.head),
        byte_offset=byte_offset,
        rows_read=rows_read,
    )


def _read_jsonl(rows: _Rows, path: Path, subject: str, cursors: Mapping[str, SourceCursor]) -> None:
    """A change log's complete lines from where the subject stopped, a line at a time (a
    log of any size is read in flat memory); a last line without its newline waits."""
    name = str(path)
    decoder = msgspec.json.Decoder()
    with path.open("rb") as handle:
        identity = file_identity(handle)
        cursor = cursors.get(_part(identity))
        resumed = _resumes(identity, cursor)
        offset = (cursor.byte_offset or 0) if resumed and cursor is not None else 0
        lines = (cursor.rows_read or 0) if resumed and cursor is not None else 0
        handle.seek(offset)
        for raw in handle:
            if not raw.endswith(b"\n"):
                rows.notes.append(f"{name}: an unfinished last line was left for the next check")
                break
            offset += len(raw)
            lines += 1
            if not raw.strip():
                continue
            try:
                record = decoder.decode(raw)
            except (msgspec.DecodeError, UnicodeDecodeError) as error:
                rows.problem(f"not a JSON object: {error}", path=name, line=lines, field=None)
                continue
            if not isinstance(record, dict):
                rows.problem("not a JSON object", path=name, line=lines, field=None)
                continue
            _add_record(rows, record, path=name, line=lines)
    rows.cursors.append(
        _file_cursor(identity, subject, "jsonl", name, byte_offset=offset, rows_read=lines)
    )


def _read_parquet(
    rows: _Rows, path: Path, subject: str, cursors: Mapping[str, SourceCursor]
) -> None:
    name = str(path)
    with path.open("rb") as handle:
        identity = file_identity(handle)
        cursor = cursors.get(_part(identity))
        unchanged = (
            _resumes(identity, cursor)
            and cursor is not None
            and cursor.byte_offset == identity.size
        )
        start = (cursor.rows_read or 0) if unchanged and cursor is not None else 0
        try:
            parquet = pq.ParquetFile(handle)
            columns = [column for column in _TABLE_COLUMNS if column in parquet.schema_arrow.names]
            table = parquet.read(columns=columns)
        except (pa.ArrowException, OSError) as error:
            rows.problem(f"not a readable Parquet file: {error}", path=name, line=None, field=None)
            return
    for required in ("doc_id", "updated_at"):
        if required not in columns:
            rows.problem(
                "a change table needs the columns doc_id, updated_at and content",
                path=name,
                line=None,
                field=required,
            )
            return
    records = table.slice(start).to_pylist()
    for offset, record in enumerate(records):
        _add_record(rows, record, path=name, line=start + offset + 1)
    rows.cursors.append(
        _file_cursor(
            identity, subject, "parquet", name, byte_offset=identity.size, rows_read=table.num_rows
        )
    )


def _read_duckdb(
    rows: _Rows,
    path: Path,
    subject: str,
    cursors: Mapping[str, SourceCursor],
    *,
    table: str,
) -> None:
    name = str(path)
    part = f"duckdb:{path.resolve()}:{table}"
    cursor = cursors.get(part)
    watermark = cursor.watermark if cursor is not None else None
    frame = read_duckdb_changes(path, table, watermark=watermark, columns=_TABLE_COLUMNS)
    newest = watermark
    where = f"{name}:{table}"
    for raw in frame.to_dict("records"):
        number = int(raw.pop("_row"))
        record = {str(key): None if _missing(value) else value for key, value in raw.items()}
        before = len(rows.doc_ids)
        _add_record(rows, record, path=where, line=number)
        if len(rows.doc_ids) == before:
            continue
        moment = rows.times[-1]
        if watermark is not None and moment < watermark:
            _drop_last(rows)
            continue
        newest = moment if newest is None else max(newest, moment)
    rows.cursors.append(SourceCursor(subject, part, "duckdb", name, watermark=newest))


def _missing(value: object) -> bool:
    return value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _drop_last(rows: _Rows) -> None:
    for values in (rows.doc_ids, rows.times, rows.origins, rows.texts, rows.hashes):
        values.pop()


# -- corpora -------------------------------------------------------------------------------


def _read_corpus(
    rows: _Rows,
    path: Path,
    subject: str,
    cursors: Mapping[str, SourceCursor],
    *,
    key: str,
    since: datetime | None,
    seen: Callable[[datetime], Collection[str]],
) -> None:
    part = f"corpus:{path.resolve()}"
    cursor = cursors.get(part)
    watermark = cursor.watermark if cursor is not None else None
    layout = detect_corpus_format(path)
    corpus_file = path / "corpus.jsonl" if layout == "beir" else path
    floor = max((moment for moment in (watermark, since) if moment is not None), default=None)
    newest = watermark
    known = frozenset(seen(watermark)) if watermark is not None else frozenset()
    with tempfile.TemporaryDirectory(prefix="evalkit-freshness-") as scratch:
        read_from, lines = path, None
        if floor is not None and layout in ("jsonl", "beir"):
            read_from, lines, skipped = _recent_lines(
                corpus_file,
                Path(scratch),
                key=key,
                floor=floor,
                layout=layout,
                known=known if floor == watermark else frozenset(),
            )
            if skipped is not None and (watermark is None or skipped >= watermark):
                newest = skipped if newest is None else max(newest, skipped)
        try:
            found = list(iter_corpus_lines(read_from, format=layout))
        except GoldsetError as error:
            for problem in error.problems:
                at = problem.line if lines is None or problem.line is None else lines[problem.line]
                rows.problem(problem.detail, path=str(corpus_file), line=at, field=problem.field)
            return
    for document, line in found:
        if layout == "files":
            where, number, name = str(path / document.id), None, "modification time"
            moment = datetime.fromtimestamp((path / document.id).stat().st_mtime, UTC).replace(
                tzinfo=None
            )
        else:
            where, name = str(corpus_file), f"metadata.{key}"
            number = line if lines is None else lines[line]
            try:
                moment = rows.moment(document.metadata.get(key))
            except _BadValueError as error:
                rows.problem(
                    f"document '{document.id}': {error}", path=where, line=number, field=name
                )
                continue
        if watermark is not None and moment < watermark:
            continue
        newest = moment if newest is None else max(newest, moment)
        if (since is not None and moment < since) or (moment == watermark and document.id in known):
            continue
        origin = where if number is None else f"{where}:{number}"
        rows.add(document.id, moment, origin, document.text, content_hash(document))
    rows.cursors.append(SourceCursor(subject, part, "corpus", str(path), watermark=newest))


def _recent_lines(
    corpus_file: Path,
    scratch: Path,
    *,
    key: str,
    floor: datetime,
    layout: str,
    known: Collection[str],
) -> tuple[Path, dict[int, int], datetime | None]:
    """The lines of a JSON Lines corpus that may have changed at or after ``floor`` (less
    the ``known`` ones of exactly that time), copied into ``scratch`` for the strict reader,
    with each copied line's original number and the newest time of the lines left out.

    Only a line's id and ``metadata.KEY`` are decoded to choose; a line whose time cannot
    be read is copied, so that the reader reports it.
    """
    decoder = _stamp_decoder(key)
    kept: list[bytes] = []
    numbers: dict[int, int] = {}
    newest: datetime | None = None
    with corpus_file.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                line = decoder.decode(raw)
                moment = _moment(line.metadata.value if line.metadata is not None else None)
            except (msgspec.DecodeError, UnicodeDecodeError, _BadValueError):
                moment = None
            if moment is not None and moment < floor:
                newest = moment if newest is None else max(newest, moment)
                continue
            if moment == floor and known and _line_id(line) in known:
                continue
            kept.append(raw if raw.endswith(b"\n") else raw + b"\n")
            numbers[len(kept)] = number
    copy = scratch / "corpus.jsonl"
    copy.write_bytes(b"".join(kept))
    return (scratch if layout == "beir" else copy), numbers, newest


@functools.cache
def _stamp_decoder(key: str) -> msgspec.json.Decoder[Any]:
    """A decoder of a corpus line that reads its id (``id`` or BEIR's ``_id``) and
    ``metadata.KEY`` and skips everything else."""
    stamp = msgspec.defstruct("Stamp", [("value", Any, None)], rename={"value": key})
    line = msgspec.defstruct(
        "StampedLine",
        [("id", Any, None), ("beir_id", Any, None), ("metadata", stamp | None, None)],
        rename={"beir_id": "_id"},
    )
    return msgspec.json.Decoder(line)


def _line_id(line: Any) -> str | None:
    value = line.id if line.id is not None else line.beir_id
    return None if value is None else str(value)
