"""Incremental, idempotent ingest of traffic logs (JSON Lines, Parquet, OTLP/JSON Collector
files) into the store.

Per-file state is committed with each batch's records, so a crash loses nothing and
repeats nothing. docs/traffic.md, "Ingest".
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from queue import SimpleQueue
from typing import Any, BinaryIO, cast

import numpy as np
import pyarrow as pa

from evalkit.errors import ConfigError, InputError
from evalkit.files import (
    COMPRESSED_SUFFIXES,
    HEAD_BYTES,
    FileIdentity,
    compression_of,
    file_identity,
    files_oldest_first,
)
from evalkit.store.store import Store
from evalkit.store.traffic.ingest import (
    IngestTransaction,
    SourceState,
    commit_ingest_batch,
    find_source_state,
    ingest_settings,
)
from evalkit.traffic._lines import LineBlock, add_json_lines
from evalkit.traffic._records import RecordBatchBuilder, RecordError, decode_line, dedup_texts
from evalkit.traffic.log import LOG_FIELDS, REQUIRED_FIELDS
from evalkit.traffic.otlp import (
    OtlpPayloadError,
    SpanBatch,
    SpanIngest,
    SpanMapping,
    store_spans,
)
from evalkit.traffic.redaction import Redaction

__all__ = [
    "DEFAULT_BATCH_LINES",
    "HEAD_BYTES",
    "LOG_KINDS",
    "FileIngest",
    "IngestProblem",
    "IngestReport",
    "ingest_paths",
    "log_files",
    "watch",
]

DEFAULT_BATCH_LINES = 122_880
"""Lines per batch: what is held in memory and committed at once. One DuckDB row group, so
a batch of new records is written straight to the database file rather than through its
log and a checkpoint."""

DEFAULT_MAX_REPORTED_PROBLEMS = 200
# Lines decoded at once within a batch: large enough for Arrow's reader to pay off, small
# enough that the raw lines and their parse are a small part of a batch's memory.
_DECODE_LINES = 16_384

# Threads decoding parts while the writer thread stores the parts before them: with one, the
# writer waits on it; two keep a two-core machine busy (decoding costs about what storing
# does), and more only queue for the writer.
_DECODE_THREADS = 2

# Bytes read from a log at once; lines are then found in them with NumPy.
_READ_BYTES = 8 << 20
_NEWLINE = ord("\n")

_COMPRESSED_NOTE = (
    "compressed logs are not read; ingest files before rotating them into compression"
)
_JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json", ".log"})
_PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
_PARQUET_MAGIC = b"PAR1"
_EMPTY_FOLDER = (
    "holds no traffic log file (.jsonl, .ndjson, .json, .log or .parquet, rotated names such "
    "as app.jsonl.1 included; subfolders are not read): check the path"
)
_PENDING_NOTE = "an unfinished last line was left for the next pass"
_RESTARTED_NOTE = "the file was truncated or replaced since the last pass; read from the start"
# Lines per file and pass whose field names are checked against the format: enough to
# notice a misspelt field an application writes on every line, cheap on big files.
_FIELD_CHECK_LINES = 100


@dataclass(frozen=True, slots=True)
class IngestProblem:
    """A line (or a whole file, ``line`` None) that could not be ingested, and why."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class FileIngest:
    """What one pass did with one file.

    ``status``: ``new`` (first read), ``resumed`` (read on from where the last pass
    stopped), ``unchanged``, ``restarted`` (truncated or replaced: read again from the
    start; stored query ids are skipped), ``pending`` (a Parquet file still being written,
    tried again next pass), ``unreadable`` (a problem of the pass) or ``skipped`` (see
    ``note``).
    ``duplicates`` are records whose query id was already stored.
    """

    path: str
    kind: str
    status: str
    lines_read: int = 0
    records_added: int = 0
    duplicates: int = 0
    malformed: int = 0
    pending_bytes: int = 0
    note: str | None = None


@dataclass(frozen=True, slots=True)
class IngestReport:
    """The outcome of one ingest pass over some files.

    ``problems`` lists the first malformed lines (all are counted in ``n_problems`` and
    stored in the ``traffic_ingest_problems`` table); ``unknown_fields`` counts fields the
    log format does not have (a typo such as ``tennant`` shows up here).
    """

    files: tuple[FileIngest, ...]
    problems: tuple[IngestProblem, ...]
    n_problems: int
    unknown_fields: Mapping[str, int] = field(default_factory=dict)
    redaction: Mapping[str, list[str]] = field(default_factory=dict)

    @property
    def records_added(self) -> int:
        """Records stored by this pass."""
        return sum(f.records_added for f in self.files)

    @property
    def lines_read(self) -> int:
        """Lines (or Parquet rows) consumed by this pass."""
        return sum(f.lines_read for f in self.files)

    @property
    def malformed(self) -> int:
        """Malformed lines met by this pass."""
        return sum(f.malformed for f in self.files)

    @property
    def duplicates(self) -> int:
        """Records skipped because their query id was already stored."""
        return sum(f.duplicates for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "records_added": self.records_added,
            "lines_read": self.lines_read,
            "duplicates": self.duplicates,
            "malformed": self.malformed,
            "files": [asdict(entry) for entry in self.files],
            "problems": [asdict(problem) for problem in self.problems],
            "n_problems": self.n_problems,
            "unknown_fields": dict(self.unknown_fields),
            "redaction": dict(self.redaction),
        }


@dataclass(slots=True)
class _Pass:
    """Mutable bookkeeping of one ingest pass."""

    store: Store
    redaction: Redaction
    batch_lines: int
    max_problems: int
    progress: Callable[[int, int | None], None] | None = None
    spans: SpanMapping = field(default_factory=SpanMapping)
    problems: list[IngestProblem] = field(default_factory=list)
    n_problems: int = 0
    unknown_fields: Counter[str] = field(default_factory=Counter)
    records_committed: int = 0

    def note_problems(self, path: str, problems: Iterable[tuple[int | None, str]]) -> None:
        for line, message in problems:
            self.n_problems += 1
            if len(self.problems) < self.max_problems:
                self.problems.append(IngestProblem(path, line, message))

    def note_commit(
        self, path: str, problems: Iterable[tuple[int | None, str]], stored: int
    ) -> None:
        """Note a batch of ``path`` once committed: its problems and the records it stored,
        then report progress."""
        self.note_problems(path, problems)
        self.records_committed += stored
        if self.progress is not None:
            # After the commit, so a callback that raises (a job being stopped) loses nothing:
            # the next pass resumes after this batch.
            self.progress(self.records_committed, None)


def _matches(identity: FileIdentity, state: SourceState, kind: str) -> bool:
    """Whether ``state`` is how far this file was read, read as ``kind``: a file read before
    as another format (a Collector file ingested without ``--format otlp-json``) is read
    again from the start, its stored query ids skipped."""
    return state.kind == kind and identity.starts_as(state.head_length, state.head_hash)


def _restarted_note(state: SourceState | None, kind: str, otherwise: str = _RESTARTED_NOTE) -> str:
    """Why a file is read again from the start: read before as another format, else
    ``otherwise``."""
    if state is not None and state.kind != kind:
        return f"read as {state.kind} before; read again from the start as {kind}"
    return otherwise


def _source_state(
    identity: FileIdentity, path: str, kind: str, *, byte_offset: int, lines_read: int
) -> SourceState:
    return SourceState(
        device=identity.device,
        inode=identity.inode,
        path=path,
        kind=kind,
        head_hash=identity.head_hash,
        head_length=len(identity.head),
        byte_offset=byte_offset,
        lines_read=lines_read,
    )


def _resume_point(
    run: _Pass, identity: FileIdentity, kind: str
) -> tuple[int, int, str, str | None]:
    """Where a log of lines read as ``kind`` is read from: the byte offset and the lines read
    before it, the file's status (``resumed`` where the last pass stopped, else ``new`` or
    ``restarted`` from the start) and, when restarted, why."""
    state = find_source_state(run.store, device=identity.device, inode=identity.inode)
    if state is not None and _matches(identity, state, kind) and identity.size >= state.byte_offset:
        return state.byte_offset, state.lines_read, "resumed", None
    if state is None:
        return 0, 0, "new", None
    return 0, 0, "restarted", _restarted_note(state, kind)


def _ingest_jsonl(run: _Pass, path: Path) -> FileIngest:
    name = str(path)
    with path.open("rb") as handle:
        identity = file_identity(handle)
        offset, lines, status, restarted = _resume_point(run, identity, "jsonl")
        if status == "resumed" and offset == identity.size:
            return FileIngest(name, "jsonl", "unchanged")
        handle.seek(offset)
        consumed, added, duplicates, malformed, pending = _read_lines(
            run, handle, identity, name, offset=offset, lines=lines
        )
    note = restarted
    if note is None and pending:
        note = _PENDING_NOTE
    return FileIngest(name, "jsonl", status, consumed, added, duplicates, malformed, pending, note)


def _read_lines(
    run: _Pass, handle: BinaryIO, identity: FileIdentity, name: str, *, offset: int, lines: int
) -> tuple[int, int, int, int, int]:
    """Read complete lines from the handle's position on, committing a batch at a time.

    Parts are decoded on ``_DECODE_THREADS`` threads while the writer thread stores the ones
    before them; batches are still committed in file order, each in one transaction, and an
    exception on any side rolls back every batch not yet committed.
    Returns lines consumed, records added, duplicates, malformed lines and pending bytes.
    """
    reader = _LineReader(handle, identity, name, offset=offset, lines=lines)
    added = duplicates = malformed = 0
    open_feeds: list[SimpleQueue[object]] = []
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="evalkit-ingest") as writer,
        ThreadPoolExecutor(_DECODE_THREADS, thread_name_prefix="evalkit-decode") as decoders,
        closing(_decoded_in_order(run, decoders, reader.parts(run.batch_lines))) as parts,
    ):
        try:
            # The batch last handed over whole, and the one being handed over.
            writing: tuple[Future[int], RecordBatchBuilder] | None = None
            feed: SimpleQueue[object] | None = None
            storing: Future[int] | None = None
            batch = RecordBatchBuilder()
            for (decoded, records), state in parts:
                if feed is None or storing is None:
                    feed = SimpleQueue()
                    open_feeds.append(feed)
                    storing = writer.submit(_store_parts, run, name, feed)
                    batch = RecordBatchBuilder()
                batch.absorb(decoded)
                if records.num_rows:
                    feed.put(records)
                if state is None:
                    continue
                if writing is not None:
                    stored, skipped = _account(run, name, writing[1], writing[0].result())
                    added, duplicates = added + stored, duplicates + skipped
                    malformed += len(writing[1].problems)
                feed.put(_Finish(batch.problems, state))
                open_feeds.remove(feed)
                writing, feed, storing = (storing, batch), None, None
            if writing is not None:
                stored, skipped = _account(run, name, writing[1], writing[0].result())
                added, duplicates = added + stored, duplicates + skipped
                malformed += len(writing[1].problems)
        except BaseException:
            for unfinished in open_feeds:
                unfinished.put(_ABORT)
            raise
    return reader.consumed, added, duplicates, malformed, reader.pending


def _decoded_in_order(
    run: _Pass,
    decoders: ThreadPoolExecutor,
    parts: Iterable[tuple[_Part, SourceState | None]],
) -> Generator[tuple[tuple[RecordBatchBuilder, pa.Table], SourceState | None], None, None]:
    """Each part decoded and redacted (``_prepare``), in file order, with what ``parts``
    gave beside it; the parts after it are read and decoded meanwhile, at most one per
    decoder thread ahead, so memory stays bounded."""
    ahead: deque[tuple[Future[tuple[RecordBatchBuilder, pa.Table]], SourceState | None]] = deque()
    try:
        for part, state in parts:
            ahead.append((decoders.submit(_decode_part, run, part), state))
            if len(ahead) > _DECODE_THREADS:
                future, after = ahead.popleft()
                yield future.result(), after
        while ahead:
            future, after = ahead.popleft()
            yield future.result(), after
    finally:
        for future, _ in ahead:
            future.cancel()


def _decode_part(run: _Pass, part: _Part) -> tuple[RecordBatchBuilder, pa.Table]:
    """A part's lines decoded (records and problems) and its records as stored."""
    decoded = part.decode()
    return decoded, _prepare(run, decoded.to_table())


@dataclass(frozen=True, slots=True)
class _Part:
    """Lines of a log to decode, numbered from ``first_line``: complete ones, then the
    file's unterminated last line when it is a whole record; the field names of the first
    ``fields_checked`` lines are checked against the format."""

    lines: LineBlock
    first_line: int
    tail: bytes | None = None
    fields_checked: int = 0

    def decode(self) -> RecordBatchBuilder:
        """The part's records and problems, in a builder of its own."""
        builder = RecordBatchBuilder()
        for raw in self.lines[: self.fields_checked]:
            if raw.strip():
                builder.note_fields(raw)
        add_json_lines(builder, self.lines, self.first_line)
        if self.tail is not None:
            builder.add_line(self.tail, self.first_line + len(self.lines))
        return builder


@dataclass(frozen=True, slots=True)
class _Finish:
    """The end of a batch handed to the writer: its problems and the file's state after it."""

    problems: list[tuple[int, str]]
    state: SourceState


_ABORT = object()
"""Handed to the writer instead of ``_Finish``: roll the batch back."""


class _AbortedError(Exception):
    """A batch the reader gave up (it failed, or the batch before it did)."""


def _store_parts(run: _Pass, name: str, feed: SimpleQueue[object]) -> int:
    """Store a batch's records as its parts arrive, and commit it with its problems and the
    file's state once ``_Finish`` arrives; returns records stored."""
    with IngestTransaction(run.store, source=name) as batch:
        while True:
            item = feed.get()
            if item is _ABORT:
                raise _AbortedError
            if isinstance(item, _Finish):
                batch.finish(problems=item.problems, state=item.state)
                break
            batch.add_records(cast("pa.Table", item))
    return batch.inserted


class _LineReader:
    """Batches of a JSONL file's lines, a part at a time, with the file's state after each."""

    def __init__(
        self, handle: BinaryIO, identity: FileIdentity, name: str, *, offset: int, lines: int
    ) -> None:
        self.handle = handle
        self.identity = identity
        self.name = name
        self.offset = offset
        self.lines = lines
        self.consumed = 0
        self.pending = 0
        self.at_end = False
        # Read ahead: the lines not handed out yet start at ``_begin``; ``_ends`` holds the
        # offset just past each complete one; the buffer's last line may not be complete.
        self._buffer = b""
        self._begin = 0
        self._ends = np.zeros(0, dtype=np.int64)

    def parts(self, size: int) -> Iterator[tuple[_Part, SourceState | None]]:
        """Each batch of up to ``size`` lines, a part of at most ``_DECODE_LINES`` lines
        at a time, with the file's state after the batch on its last part (None on the
        others). At least one batch, so the state is committed."""
        first = True
        while first or not self.at_end:
            first = False
            part = _Part(LineBlock.of([]), self.lines + 1)
            wanted = size
            while wanted and not self.at_end:
                # Read a slice at a time: only the batch's records are held whole.
                part, read = self._next_part(min(wanted, _DECODE_LINES))
                wanted -= read
                if wanted and not self.at_end:
                    yield part, None
            yield (
                part,
                _source_state(
                    self.identity,
                    self.name,
                    "jsonl",
                    byte_offset=self.offset,
                    lines_read=self.lines,
                ),
            )

    def _next_lines(self, count: int) -> tuple[LineBlock, bytes | None]:
        """The next ``count`` complete lines, fewer at the end of the file, and there the
        file's last line if it has no newline (None if it has)."""
        at_eof = False
        while len(self._ends) < count:
            chunk = self.handle.read(_READ_BYTES)
            if not chunk:
                at_eof = True
                break
            # The lines not handed out yet and the new bytes become one buffer.
            kept = self._buffer[self._begin :]
            found = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == _NEWLINE)
            self._ends = np.concatenate([self._ends - self._begin, found + (len(kept) + 1)])
            self._buffer, self._begin = kept + chunk, 0
        taken = self._ends[:count]
        block = LineBlock(self._buffer, taken, self._begin)
        self._ends = self._ends[len(taken) :]
        self._begin = block.end
        tail = None
        if at_eof:
            # Only the file's last line can lack its newline: it is still being written, or
            # the writer ended the file without one.
            tail = self._buffer[self._begin :] or None
            self._buffer, self._begin = b"", 0
            if len(block) + (tail is not None) < count:
                self.at_end = True
        return block, tail

    def _next_part(self, count: int) -> tuple[_Part, int]:
        """The next ``count`` lines, fewer at the end of the file, and how many were read."""
        fields_checked = max(_FIELD_CHECK_LINES - self.consumed, 0)
        block, tail = self._next_lines(count)
        first_line = self.lines + 1
        self.lines += len(block)
        self.consumed += len(block)
        self.offset += block.nbytes
        whole_tail = None
        if tail is not None:
            self.at_end = True
            if _is_complete_record(tail):
                # The line's newline may still follow; it is then read as an empty line,
                # which is why this line is not counted in ``lines`` yet.
                whole_tail = tail
                self.offset += len(tail)
                self.consumed += 1
            else:
                self.pending = len(tail)
        part = _Part(block, first_line, whole_tail, fields_checked)
        return part, len(block) + (tail is not None)


def _is_complete_record(raw: bytes) -> bool:
    try:
        return isinstance(decode_line(raw), dict)
    except RecordError:
        return False


def _prepare(run: _Pass, records: pa.Table) -> pa.Table:
    """Records as stored: redacted."""
    records = run.redaction.apply(records)
    if run.redaction.patterns and records.num_rows:
        # Queries that differ only in what was masked are the same query once stored.
        masked = dedup_texts(records.column("text").combine_chunks())
        index = records.schema.get_field_index("dedup_text")
        records = records.set_column(index, "dedup_text", masked)
    return records


def _store(run: _Pass, name: str, builder: RecordBatchBuilder, state: SourceState) -> int:
    """Redact and commit one batch with the file's state after it; returns records stored."""
    return commit_ingest_batch(
        run.store,
        records=_prepare(run, builder.to_table()),
        source=name,
        problems=builder.problems,
        state=state,
    )


def _account(run: _Pass, name: str, builder: RecordBatchBuilder, stored: int) -> tuple[int, int]:
    """Note a committed batch in the pass and report progress; returns records stored and
    duplicates skipped."""
    run.unknown_fields.update(builder.unknown_fields)
    run.note_commit(name, builder.problems, stored)
    return stored, len(builder) - stored


def _ingest_parquet(run: _Pass, path: Path) -> FileIngest:
    import pyarrow.parquet as pq

    name = str(path)
    with path.open("rb") as handle:
        identity = file_identity(handle)
        state = find_source_state(run.store, device=identity.device, inode=identity.inode)
        try:
            parquet = pq.ParquetFile(handle)
            total = parquet.metadata.num_rows
        except (pa.ArrowException, OSError) as error:
            return _unopened_parquet(run, name, handle, identity, error)
        missing = [column for column in REQUIRED_FIELDS if column not in parquet.schema_arrow.names]
        if missing:
            message = (
                f"Parquet file lacks the column(s) {', '.join(missing)}; traffic files need "
                f"{', '.join(REQUIRED_FIELDS)}"
            )
            run.note_problems(name, [(None, message)])
            return FileIngest(name, "parquet", "unreadable", note=message)
        if (
            state is not None
            and _matches(identity, state, "parquet")
            and state.byte_offset == identity.size
        ):
            start_row, status = state.lines_read, "resumed"
        else:
            start_row, status = 0, "new" if state is None else "restarted"
        if start_row >= total and status == "resumed":
            return FileIngest(name, "parquet", "unchanged")
        columns = [column for column in parquet.schema_arrow.names if column in LOG_FIELDS]
        run.unknown_fields.update(
            {column: total for column in parquet.schema_arrow.names if column not in LOG_FIELDS}
        )
        row_number = added = duplicates = malformed = 0
        for batch in parquet.iter_batches(batch_size=run.batch_lines, columns=columns):
            first = row_number
            row_number += batch.num_rows
            if row_number <= start_row:
                continue
            builder = RecordBatchBuilder()
            skip = max(start_row - first, 0)
            for offset, row in enumerate(batch.slice(skip).to_pylist()):
                builder.add_row(row, first + skip + offset + 1)
            state_after = _source_state(
                identity, name, "parquet", byte_offset=identity.size, lines_read=row_number
            )
            stored, skipped = _account(run, name, builder, _store(run, name, builder, state_after))
            added += stored
            duplicates += skipped
            malformed += len(builder.problems)
    note = (
        _restarted_note(
            state, "parquet", "the file changed since the last pass; read from the start"
        )
        if status == "restarted"
        else None
    )
    return FileIngest(
        name,
        "parquet",
        status,
        lines_read=total - start_row,
        records_added=added,
        duplicates=duplicates,
        malformed=malformed,
        note=note,
    )


def _unopened_parquet(
    run: _Pass, name: str, handle: BinaryIO, identity: FileIdentity, error: Exception
) -> FileIngest:
    """A Parquet file that did not open: ``pending`` while it may still be being written
    (empty, or its opening magic bytes without the closing ones a writer adds last), else
    ``unreadable``, a problem of the pass."""
    handle.seek(max(identity.size - len(_PARQUET_MAGIC), 0))
    ends_whole = handle.read() == _PARQUET_MAGIC
    if identity.size == 0 or (identity.head.startswith(_PARQUET_MAGIC) and not ends_whole):
        note = "not a readable Parquet file yet (still being written?); tried again next pass"
        return FileIngest(name, "parquet", "pending", note=note)
    if not identity.head.startswith(_PARQUET_MAGIC):
        message = "not a Parquet file: it does not start with Parquet's magic bytes (PAR1)"
    else:
        message = f"a damaged Parquet file: {error}"
    run.note_problems(name, [(None, message)])
    return FileIngest(name, "parquet", "unreadable", note=message)


def _ingest_otlp_json(run: _Pass, path: Path) -> FileIngest:
    """An OpenTelemetry Collector file exporter's output: one OTLP/JSON request per line."""
    name = str(path)
    kind = "otlp-json"
    with path.open("rb") as handle:
        identity = file_identity(handle)
        offset, lines, status, restarted = _resume_point(run, identity, kind)
        if status == "resumed" and offset == identity.size:
            return FileIngest(name, kind, "unchanged")
        handle.seek(offset)
        consumed = pending = 0
        totals: Counter[str] = Counter()
        batch = SpanBatch(run.spans)

        def flush() -> None:
            nonlocal batch
            done = _commit_spans(
                run,
                batch,
                name,
                _source_state(identity, name, kind, byte_offset=offset, lines_read=lines),
            )
            totals.update(
                stored=done.stored,
                duplicates=done.duplicates,
                malformed=len(batch.problems),
                without_text=done.without_text,
                ignored=done.ignored,
            )
            batch = SpanBatch(run.spans)

        for raw in handle:
            if not raw.endswith(b"\n") and not _is_complete_record(raw):
                pending = len(raw)
                break
            complete = raw.endswith(b"\n")
            number = lines + 1
            if complete:
                lines += 1
            consumed += 1
            offset += len(raw)
            if raw.strip():
                try:
                    batch.add_json(raw, line=number)
                except OtlpPayloadError as error:
                    batch.problems.append((number, str(error)))
            if batch.spans >= run.batch_lines:
                flush()
        flush()
    notes = []
    if restarted is not None:
        notes.append(restarted)
    elif pending:
        notes.append(_PENDING_NOTE)
    if totals["without_text"]:
        notes.append(
            f"{totals['without_text']} retrieval span(s) recorded no query text: stored for "
            "logged results and latency, never sampled for replay"
        )
    if totals["ignored"]:
        notes.append(f"{totals['ignored']} span(s) neither retrieval nor generation were ignored")
    return FileIngest(
        name,
        kind,
        status,
        consumed,
        totals["stored"],
        totals["duplicates"],
        totals["malformed"],
        pending,
        "; ".join(notes) or None,
    )


def _commit_spans(run: _Pass, batch: SpanBatch, name: str, state: SourceState) -> SpanIngest:
    done = store_spans(run.store, batch, source=name, redaction=run.redaction, state=state)
    run.note_commit(name, batch.problems, done.stored)
    return done


LOG_KINDS: Mapping[str, Callable[[_Pass, Path], FileIngest]] = {
    "jsonl": _ingest_jsonl,
    "parquet": _ingest_parquet,
    "otlp-json": _ingest_otlp_json,
}
"""Readers of traffic files by kind."""


def _kind(path: Path, *, explicit: bool) -> str | None:
    suffixes = {suffix.lower() for suffix in path.suffixes}
    if suffixes & COMPRESSED_SUFFIXES:
        return None
    if suffixes & _PARQUET_SUFFIXES:
        return "parquet"
    if suffixes & _JSONL_SUFFIXES or explicit:
        return "jsonl"
    return None


def log_files(paths: Iterable[Path | str]) -> Iterator[tuple[Path, str | None]]:
    """Each traffic file named by ``paths`` (directories are listed, oldest file first) with
    its kind, or None for a file that cannot be read (compressed)."""
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for entry in files_oldest_first(path):
                kind = _kind(entry, explicit=False)
                if kind is not None or entry.suffix.lower() in COMPRESSED_SUFFIXES:
                    yield entry, kind
        elif path.is_file():
            yield path, _kind(path, explicit=True)
        else:
            raise InputError("no such file or directory", path=str(path))


def ingest_paths(
    store: Store,
    paths: Iterable[Path | str],
    *,
    redaction: Redaction | None = None,
    batch_lines: int = DEFAULT_BATCH_LINES,
    max_reported_problems: int = DEFAULT_MAX_REPORTED_PROBLEMS,
    progress: Callable[[int, int | None], None] | None = None,
    file_format: str | None = None,
    spans: SpanMapping | None = None,
) -> IngestReport:
    """Ingest every traffic file in ``paths`` (files or directories) that has new lines.

    ``file_format`` reads every file as that kind of ``LOG_KINDS`` (``otlp-json`` mapped to
    records by ``spans``) instead of telling the kind by the file name. Re-running it ingests
    nothing twice; unreadable files are problems of the report (docs/traffic.md, "Ingest").
    Raises InputError for a path that does not exist and StoreError when the store cannot be
    written; malformed lines never raise.
    ``progress(records_added_so_far, None)`` is called after every committed batch; an
    exception it raises stops the pass there, with every committed batch kept. It runs
    while the writer thread stores the next batch on the store's connection, so it must
    not use the store itself. During the pass the store has the settings of
    ``ingest_settings``; they are put back afterwards.
    """
    if batch_lines < 1:
        raise ConfigError(f"batch_lines must be at least 1, got {batch_lines}")
    if max_reported_problems < 0:
        raise ConfigError(f"max_reported_problems must be at least 0, got {max_reported_problems}")
    if file_format is not None and file_format not in LOG_KINDS:
        raise ConfigError(
            f"unknown traffic file format '{file_format}'; use one of: {', '.join(LOG_KINDS)}"
        )
    run = _Pass(
        store,
        redaction or Redaction(),
        batch_lines,
        max_reported_problems,
        progress,
        spans or SpanMapping(),
    )
    listed = [(Path(given), list(log_files([given]))) for given in paths]
    files: list[FileIngest] = []
    with ingest_settings(store, busy_threads=_DECODE_THREADS):
        for given, found in listed:
            if not found and given.is_dir():
                run.note_problems(str(given), [(None, _EMPTY_FOLDER)])
            files.extend(_ingest_file(run, path, kind, file_format) for path, kind in found)
    return IngestReport(
        files=tuple(files),
        problems=tuple(run.problems),
        n_problems=run.n_problems,
        unknown_fields=dict(run.unknown_fields.most_common()),
        redaction=run.redaction.describe(),
    )


def _ingest_file(run: _Pass, path: Path, kind: str | None, file_format: str | None) -> FileIngest:
    """One file of a pass read as its kind (``file_format`` when given)."""
    if kind is None:
        return _skipped_compressed(path, _COMPRESSED_NOTE)
    try:
        compression = compression_of(path)
        if compression is not None:
            return _skipped_compressed(
                path,
                f"compressed logs are not read: the file holds {compression} data; decompress "
                "it, or ingest files before rotating them into compression",
            )
        return LOG_KINDS[kind if file_format is None else file_format](run, path)
    except FileNotFoundError:
        # Rotated away between listing and opening: its new name is read next pass.
        return FileIngest(str(path), kind, "skipped", note="the file disappeared")
    except PermissionError as error:
        message = f"cannot read the file: {error.strerror}"
        run.note_problems(str(path), [(None, message)])
        return FileIngest(str(path), kind, "unreadable", note=message)


def _skipped_compressed(path: Path, note: str) -> FileIngest:
    return FileIngest(str(path), "compressed", "skipped", note=note)


def watch(
    store: Store | Callable[[], AbstractContextManager[Store]],
    paths: Iterable[Path | str],
    *,
    interval: float,
    on_report: Callable[[IngestReport], None],
    redaction: Redaction | None = None,
    batch_lines: int = DEFAULT_BATCH_LINES,
    max_passes: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    file_format: str | None = None,
    spans: SpanMapping | None = None,
) -> int:
    """Ingest ``paths`` every ``interval`` seconds until interrupted (or ``max_passes``).

    ``store`` is an open store, or a callable that opens one for each pass, which leaves
    the store free between passes for other writers (``evalkit serve``'s jobs). Each
    pass's report goes to ``on_report``; ``file_format`` and ``spans`` are as for
    ``ingest_paths``. Returns the number of passes made.
    """
    if interval < 0:
        raise ConfigError(f"interval must be >= 0 seconds, got {interval}")
    targets = list(paths)
    passes = 0
    while max_passes is None or passes < max_passes:
        if isinstance(store, Store):
            report = ingest_paths(
                store,
                targets,
                redaction=redaction,
                batch_lines=batch_lines,
                file_format=file_format,
                spans=spans,
            )
        else:
            with store() as opened:
                report = ingest_paths(
                    opened,
                    targets,
                    redaction=redaction,
                    batch_lines=batch_lines,
                    file_format=file_format,
                    spans=spans,
                )
        passes += 1
        on_report(report)
        if max_passes is not None and passes >= max_passes:
            break
        sleep(interval)
    return passes
