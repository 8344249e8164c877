"""A durable spool of received span batches, committed to the store when it is free.

The OTLP receiver answers 200 once a batch is here, not in the store, so a job holding the
store never makes it refuse traffic. A file is written to ``.tmp``, fsynced and renamed
(then the directory fsynced) before the request is acknowledged: a ``.batch`` file is
complete, a ``.tmp`` one was never acknowledged. Batches are stored already redacted:
nothing unredacted ever reaches disk. Committing a batch twice stores nothing twice (records
are keyed by trace and span ids). A file, ``<sequence>-<request id>.batch``: magic
``EVKSPL01``, ``>IQQ`` lengths, a JSON header, records and generations as Arrow IPC streams,
and a CRC-32 of everything before it. Set-aside batches and bounds: docs/traffic.md,
"Receiving spans".
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from evalkit.errors import EvalkitError
from evalkit.traffic.otlp import PreparedSpans

__all__ = [
    "SPOOL_SUFFIX",
    "Spool",
    "SpoolCorruptError",
    "SpoolFullError",
    "SpoolRecovery",
    "SpoolStatus",
    "SpoolWriteError",
    "SpooledBatch",
    "decode_batch",
    "encode_batch",
]

SPOOL_SUFFIX = ".otlp-spool"
"""The spool of a store is the directory ``<store file name><SPOOL_SUFFIX>`` beside it."""

_MAGIC = b"EVKSPL01"
_LENGTHS = struct.Struct(">IQQ")
_CRC = struct.Struct(">I")
_VERSION = 1
_BATCH = ".batch"
_TEMPORARY = ".batch.tmp"
_CORRUPT = ".batch.corrupt"
_FAILED = ".batch.failed"


class SpoolFullError(EvalkitError):
    """The spool holds ``max_bytes`` already: the batch is refused (send it again later)."""


class SpoolWriteError(EvalkitError):
    """The batch could not be written durably (a full disk, an I/O error); nothing of it is
    left in the spool."""


class SpoolCorruptError(EvalkitError):
    """A spool file is not a whole batch (truncated, or its checksum does not match)."""


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    """One batch waiting in the spool: its file, commit order, request id, size, and when
    it was written (``time.time()``)."""

    path: Path
    sequence: int
    request_id: str
    size: int
    written_at: float


@dataclass(frozen=True, slots=True)
class SpoolRecovery:
    """What ``recover`` found: batches left to commit, their bytes, and the writes that were
    cut short (removed: never acknowledged)."""

    batches: int
    bytes: int
    torn: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SpoolStatus:
    """The spool now: batches and bytes waiting, the bound, the age of the oldest batch
    (seconds; 0 when empty), and the files set aside since the start."""

    batches: int
    bytes: int
    max_bytes: int
    lag_seconds: float
    torn: int
    corrupt: int
    failed: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {name: getattr(self, name) for name in self.__slots__}


def encode_batch(prepared: PreparedSpans, *, request_id: str, received_at: float) -> bytes:
    """A prepared batch as the bytes of one spool file (see the module docstring)."""
    header = json.dumps(
        {
            "version": _VERSION,
            "request_id": request_id,
            "received_at": received_at,
            "spans": prepared.spans,
            "retrieval": prepared.retrieval,
            "generations": prepared.generations_seen,
            "without_text": prepared.without_text,
            "ignored": prepared.ignored,
            "problems": [list(problem) for problem in prepared.problems],
        },
        ensure_ascii=False,
    ).encode()
    records = _ipc(prepared.records)
    generations = _ipc(prepared.generations)
    body = b"".join(
        (
            _MAGIC,
            _LENGTHS.pack(len(header), len(records), len(generations)),
            header,
            records,
            generations,
        )
    )
    return body + _CRC.pack(zlib.crc32(body))


def decode_batch(data: bytes) -> tuple[str, PreparedSpans]:
    """The request id and prepared batch of one spool file's bytes; SpoolCorruptError when
    they are not a whole batch."""
    fixed = len(_MAGIC) + _LENGTHS.size
    if len(data) < fixed + _CRC.size or not data.startswith(_MAGIC):
        raise SpoolCorruptError("not a spooled batch (no header: truncated or another file)")
    header_length, records_length, generations_length = _LENGTHS.unpack_from(data, len(_MAGIC))
    expected = fixed + header_length + records_length + generations_length + _CRC.size
    if len(data) != expected:
        raise SpoolCorruptError(f"truncated: {len(data)} bytes of the {expected} it announces")
    (checksum,) = _CRC.unpack_from(data, expected - _CRC.size)
    if zlib.crc32(data[: expected - _CRC.size]) != checksum:
        raise SpoolCorruptError("its checksum does not match its contents")
    view = memoryview(data)
    start = fixed
    try:
        header = json.loads(bytes(view[start : start + header_length]))
        start += header_length
        records = pa.ipc.open_stream(view[start : start + records_length]).read_all()
        start += records_length
        generations = pa.ipc.open_stream(view[start : start + generations_length]).read_all()
        if header.get("version") != _VERSION:
            raise SpoolCorruptError(
                f"written in spool format {header.get('version')!r}, this evalkit reads {_VERSION}"
            )
        prepared = PreparedSpans(
            records=records,
            generations=generations,
            problems=tuple((line, str(message)) for line, message in header["problems"]),
            spans=int(header["spans"]),
            retrieval=int(header["retrieval"]),
            generations_seen=int(header["generations"]),
            without_text=int(header["without_text"]),
            ignored=int(header["ignored"]),
        )
        return str(header["request_id"]), prepared
    except (ValueError, KeyError, TypeError, pa.ArrowException) as error:
        raise SpoolCorruptError(f"its contents cannot be read ({error})") from None


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


@dataclass(slots=True)
class _State:
    ready: dict[int, SpooledBatch] = field(default_factory=dict)
    writing: set[int] = field(default_factory=set)
    reserved: int = 0
    next_sequence: int = 1
    torn: int = 0
    corrupt: int = 0
    failed: int = 0


class Spool:
    """The spool directory ``directory``, bounded to ``max_bytes`` (see the module
    docstring). Thread-safe: any number of request threads append, one committer reads."""

    def __init__(self, directory: Path, *, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._state = _State()

    def recover(self) -> SpoolRecovery:
        """Read the directory (creating it): index the batches left by an earlier process,
        remove the writes that were cut short. Call once, before ``append``."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            names = sorted(os.listdir(self.directory))
            if not os.access(self.directory, os.W_OK | os.X_OK):
                raise PermissionError(errno.EACCES, "permission denied")
        except OSError as error:
            raise SpoolWriteError(
                f"cannot use the spool directory {self.directory}: {error.strerror or error}"
            ) from error
        torn: list[str] = []
        found: dict[int, SpooledBatch] = {}
        highest = 0
        for name in names:
            path = self.directory / name
            if name.endswith(_TEMPORARY):
                # Never acknowledged: the rename that acknowledges it did not happen.
                with contextlib.suppress(OSError):
                    path.unlink()
                torn.append(name)
                continue
            parsed = _parse_name(name)
            if parsed is None:
                continue
            sequence, request_id, kind = parsed
            highest = max(highest, sequence)
            if kind != _BATCH:
                continue
            try:
                stat = path.stat()
            except OSError:
                continue
            found[sequence] = SpooledBatch(path, sequence, request_id, stat.st_size, stat.st_mtime)
        if torn:
            _fsync_directory(self.directory)
        with self._lock:
            self._state.ready.update(found)
            self._state.next_sequence = highest + 1
            self._state.torn += len(torn)
        return SpoolRecovery(
            batches=len(found), bytes=sum(b.size for b in found.values()), torn=tuple(torn)
        )

    def append(self, prepared: PreparedSpans, *, request_id: str | None = None) -> SpooledBatch:
        """Write one batch durably (file and directory fsynced) and return it; raises
        SpoolFullError beyond the bound and SpoolWriteError when the write fails."""
        request_id = request_id or new_request_id()
        received_at = time.time()
        data = encode_batch(prepared, request_id=request_id, received_at=received_at)
        with self._lock:
            state = self._state
            waiting = state.reserved + sum(b.size for b in state.ready.values())
            if waiting and waiting + len(data) > self.max_bytes:
                raise SpoolFullError(
                    f"the spool holds {waiting} bytes waiting for the store, and this batch "
                    f"of {len(data)} bytes would pass its bound of {self.max_bytes} bytes "
                    "([otlp] spool_max_bytes)"
                )
            sequence = state.next_sequence
            state.next_sequence += 1
            state.writing.add(sequence)
            state.reserved += len(data)
        path = self.directory / f"{sequence:020d}-{request_id}{_BATCH}"
        try:
            _write_durably(path, data)
        except OSError as error:
            with self._lock:
                self._state.writing.discard(sequence)
                self._state.reserved -= len(data)
            raise SpoolWriteError(
                f"cannot write to the spool {self.directory}: {error.strerror or error}"
            ) from error
        spooled = SpooledBatch(path, sequence, request_id, len(data), received_at)
        with self._lock:
            self._state.writing.discard(sequence)
            self._state.reserved -= len(data)
            self._state.ready[sequence] = spooled
        return spooled

    def ready(self, limit: int | None = None) -> list[SpooledBatch]:
        """The batches to commit next, in order: those before any write still under way."""
        with self._lock:
            state = self._state
            bound = min(state.writing, default=None)
            chosen = [
                state.ready[sequence]
                for sequence in sorted(state.ready)
                if bound is None or sequence < bound
            ]
        return chosen if limit is None else chosen[:limit]

    def read(self, batch: SpooledBatch) -> PreparedSpans:
        """The prepared batch in ``batch``'s file; SpoolCorruptError when it is not whole."""
        try:
            data = batch.path.read_bytes()
        except OSError as error:
            raise SpoolCorruptError(f"cannot be read: {error.strerror or error}") from error
        request_id, prepared = decode_batch(data)
        if request_id != batch.request_id:
            raise SpoolCorruptError(
                f"it holds request {request_id}, its name says {batch.request_id}"
            )
        return prepared

    def remove(self, batch: SpooledBatch) -> None:
        """Delete a committed batch's file. No fsync: should the deletion be lost to a
        crash, the batch is committed again, which stores nothing twice."""
        with contextlib.suppress(FileNotFoundError):
            batch.path.unlink()
        with self._lock:
            self._state.ready.pop(batch.sequence, None)

    def set_aside(self, batch: SpooledBatch, *, reason: str = "corrupt") -> Path:
        """Rename a batch that cannot be read (``reason="corrupt"``) or that the store keeps
        refusing (``"failed"``) to ``NAME.batch.<reason>``, kept for inspection and no
        longer committed; returns its new path."""
        if reason not in ("corrupt", "failed"):
            raise ValueError(f"unknown reason {reason!r}")
        target = batch.path.with_name(f"{batch.path.name}.{reason}")
        with contextlib.suppress(FileNotFoundError):
            batch.path.replace(target)
        with self._lock:
            self._state.ready.pop(batch.sequence, None)
            if reason == "failed":
                self._state.failed += 1
            else:
                self._state.corrupt += 1
        return target

    def status(self, now: float | None = None) -> SpoolStatus:
        """Batches and bytes waiting, and the age of the oldest."""
        moment = time.time() if now is None else now
        with self._lock:
            state = self._state
            batches = list(state.ready.values())
            oldest = min((batch.written_at for batch in batches), default=None)
            return SpoolStatus(
                batches=len(batches),
                bytes=sum(batch.size for batch in batches) + state.reserved,
                max_bytes=self.max_bytes,
                lag_seconds=0.0 if oldest is None else max(0.0, moment - oldest),
                torn=state.torn,
                corrupt=state.corrupt,
                failed=state.failed,
            )


def new_request_id() -> str:
    """A random id for one received request (12 hex digits)."""
    return secrets.token_hex(6)


def _parse_name(name: str) -> tuple[int, str, str] | None:
    for kind in (_CORRUPT, _FAILED, _BATCH):
        if name.endswith(kind):
            stem = name.removesuffix(kind)
            sequence, _, request_id = stem.partition("-")
            if sequence.isdigit() and request_id:
                return int(sequence), request_id, kind
    return None


def _write_durably(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
        _fsync_directory(path.parent)
    except OSError:
        for leftover in (temporary, path):
            with contextlib.suppress(OSError):
                leftover.unlink()
        raise


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
