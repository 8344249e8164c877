"""Sharing one DuckDB file between ``evalkit serve``, CLI commands and the dashboard.

While one process has a DuckDB file open for writing, no other can open it at all, so
evalkit keeps it open only for short pieces of work and coordinates writers with ``flock``
locks beside the store: ``<store>.writer.lock`` (it records its holder, so a waiting process
can say why) and ``<store>.outbox.lock`` (one deliverer at a time). The kernel releases them
when a process dies, even by ``kill -9``, so a crash never leaves the store locked. The
design: docs/scheduler.md, "One writer".
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import duckdb

from evalkit.clock import utc_now
from evalkit.errors import StoreError
from evalkit.store.store import Store, is_lock_conflict

if TYPE_CHECKING:
    from evalkit.config import Settings

__all__ = [
    "FileLock",
    "Holder",
    "StoreAccess",
    "StoreBusyError",
    "StoreWait",
    "StoreWaitStoppedError",
    "WriterAccess",
    "is_store_fault",
    "outbox_lock",
    "process_alive",
    "store_sibling",
]


class WriterAccess(Protocol):
    """How a piece of work gets the store to write in: a ``StoreAccess`` (opened per block,
    one writer at a time), an open ``Store`` or any object of that shape. With ``keeps_open``
    the pipeline records a run as it goes; otherwise it opens the store only for short
    stretches around the slow part."""

    @property
    def keeps_open(self) -> bool:
        """Whether the store is open already and stays open (an open ``Store``)."""
        ...

    def writer(self, purpose: str) -> AbstractContextManager[Store]:
        """The store, open for writing, for the duration of the block; ``purpose`` names
        the work to those who wait for it."""
        ...


StoreWait = Literal["command", "job", "ingest"]
"""Whose patience a ``StoreAccess`` has (see ``StoreAccess.from_settings``)."""

_POLL = 0.1
_UNWRITABLE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
"""Why a lock file cannot be made: the store is read-only to this process."""
_REPORT_EVERY = 30.0


class StoreBusyError(StoreError):
    """Another process kept the store for longer than this one was willing to wait."""


class StoreWaitStoppedError(StoreError):
    """The wait for the store was given up because this process is stopping."""


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a lock: process, program, what for, since when (UTC, ISO 8601)."""

    pid: int
    program: str
    purpose: str
    since: str
    host: str

    def describe(self) -> str:
        """``pid 4242 (evalkit serve: job nightly) since 2026-11-21T02:00:00Z``."""
        return f"pid {self.pid} ({self.program}: {self.purpose}) since {self.since}"


def process_alive(pid: int | None, host: str | None) -> bool:
    """Whether process ``pid`` on ``host`` may still be running (True when unknowable)."""
    if pid is None or (host is not None and host != socket.gethostname()):
        return pid is not None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FileLock:
    """An exclusive ``flock`` on a file, recording its holder inside the file."""

    def __init__(self, path: Path, *, program: str) -> None:
        self.path = path
        self.program = program
        self._fd: int | None = None

    def _try(self) -> int | None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if created:
            _give_to_folder_owner(fd, self.path.parent)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        self._fd = fd
        return fd

    def acquire(
        self,
        *,
        purpose: str,
        wait: float | None,
        on_wait: Callable[[Holder | None], None] | None = None,
        stop: threading.Event | None = None,
        defer: Callable[[], bool] | None = None,
    ) -> bool:
        """Take the lock, waiting up to ``wait`` seconds (None: forever); False on time-out.

        ``on_wait`` is told who holds it when the wait starts, and every 30 s after. When
        ``stop`` is set during the wait, StoreWaitStoppedError is raised. While ``defer()``
        is true the lock is not tried, so that another waiter of this process goes first.
        """
        if self._fd is not None:
            raise StoreError(f"{self.path} is already held by this object")
        deadline = None if wait is None else time.monotonic() + wait
        next_report = time.monotonic()
        unnamed_since: float | None = None
        while (fd := None if defer is not None and defer() else self._try()) is None:
            now = time.monotonic()
            if stop is not None and stop.is_set():
                raise StoreWaitStoppedError(f"gave up waiting for {self.path}: stopping")
            if deadline is not None and now >= deadline:
                return False
            if on_wait is not None and now >= next_report:
                holder = self.holder()
                # A holder releasing the lock clears its record a moment before it unlocks:
                # a record still missing a second later is a holder that wrote none.
                if holder is None and (unnamed_since is None or now - unnamed_since < 1.0):
                    unnamed_since = now if unnamed_since is None else unnamed_since
                else:
                    on_wait(holder)
                    next_report = now + _REPORT_EVERY
                    unnamed_since = None
            time.sleep(_POLL)
        holder = Holder(
            pid=os.getpid(),
            program=self.program,
            purpose=purpose,
            since=f"{utc_now().isoformat(timespec='seconds')}Z",
            host=socket.gethostname(),
        )
        record = json.dumps(asdict(holder)).encode()
        # Written over the last record, then cut to length: the file is never empty while
        # held, where a waiter would read "another process" for this one. A full disk must
        # not stop the locking itself: waiters then only lack a name.
        try:
            os.pwrite(fd, record, 0)
            os.ftruncate(fd, len(record))
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
        return True

    def release(self) -> None:
        """Give the lock back (and clear the holder record)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def holder(self) -> Holder | None:
        """The recorded holder, if the file names one."""
        try:
            text = self.path.read_text(encoding="utf-8")
            data = json.loads(text) if text.strip() else None
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        try:
            return Holder(**data)
        except TypeError:
            return None

    def is_held(self) -> bool:
        """Whether some process holds the lock right now."""
        if self._fd is not None:
            return True
        if self._try() is None:
            return True
        self.release()
        return False

    @contextmanager
    def hold(
        self,
        *,
        purpose: str,
        wait: float | None,
        on_wait: Callable[[Holder | None], None] | None = None,
        busy: Callable[[Holder | None], str] | None = None,
        stop: threading.Event | None = None,
        unwritable: Callable[[OSError], str] | None = None,
        defer: Callable[[], bool] | None = None,
    ) -> Iterator[None]:
        """Hold the lock for a block; raises StoreBusyError (``busy``'s message) on time-out,
        StoreWaitStoppedError when ``stop`` is set while waiting, and StoreError
        (``unwritable``'s message) when the lock file cannot be created or opened; ``defer``
        as for ``acquire``."""
        try:
            acquired = self.acquire(
                purpose=purpose, wait=wait, on_wait=on_wait, stop=stop, defer=defer
            )
        except OSError as error:
            if unwritable is None or error.errno not in _UNWRITABLE:
                raise
            raise StoreError(unwritable(error)) from error
        if not acquired:
            holder = self.holder()
            message = (
                busy(holder)
                if busy is not None
                else f"{self.path} is held by {holder.describe() if holder else 'another process'}"
            )
            raise StoreBusyError(message)
        try:
            yield
        finally:
            self.release()


def _give_to_folder_owner(fd: int, folder: Path) -> None:
    """A lock file root created (`sudo evalkit ...`) in a folder of the service's user goes
    to that user: root-owned, the service's own commands could not open it any more."""
    if os.geteuid() != 0:
        return
    owner = folder.stat()
    if owner.st_uid != 0:
        with contextlib.suppress(OSError):
            os.fchown(fd, owner.st_uid, owner.st_gid)


def store_sibling(store_path: Path, suffix: str) -> Path:
    """The file beside the store named by its name and ``suffix`` (``evalkit.duckdb.x``)."""
    return store_path.with_name(store_path.name + suffix)


def is_store_fault(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is the store's own trouble rather than the
    data written: an operating-system error (no space left, a read-only or vanished file)
    or DuckDB's I/O and out-of-memory errors. Every write would meet it, so a writer retries
    rather than blaming what it was writing."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, (OSError, duckdb.IOException, duckdb.OutOfMemoryException)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _duckdb_lock_conflict(error: StoreError) -> bool:
    return is_lock_conflict(error.__cause__)


class StoreAccess:
    """Opens the store for one short piece of work at a time, one writer at a time
    (``writer``, also by calling the access; ``reader``): a ``WriterAccess`` that does not
    keep the store open, with DuckDB's memory bounded by ``memory_limit``."""

    keeps_open = False

    def __init__(
        self,
        store_path: Path,
        *,
        wait: float,
        program: str,
        on_wait: Callable[[str], None] | None = None,
        memory_limit: str | None = None,
    ) -> None:
        self.store_path = store_path
        self.wait = wait
        self.program = program
        self.memory_limit = memory_limit
        self._on_wait = on_wait
        # Beside the file itself: processes that reach one store by different paths (a
        # symbolic link) must still wait for each other.
        self.lock_path = store_sibling(store_path.resolve(), ".writer.lock")
        self._blocked_by: str | None = None
        self._first_waiting = 0
        self._first_lock = threading.Lock()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        program: str,
        wait_as: StoreWait = "command",
        on_wait: Callable[[str], None] | None = None,
    ) -> StoreAccess:
        """Access to the store of ``settings``, with its memory limit and the patience of
        ``wait_as``: ``command`` waits ``store_wait``, ``job`` ``[scheduler] lock_wait``,
        ``ingest`` ``[otlp] store_wait``. ``program`` names this process in the lock file;
        ``on_wait`` hears who the store is waited for."""
        waits: dict[StoreWait, float] = {
            "command": settings.store_wait,
            "job": settings.scheduler.lock_wait,
            "ingest": settings.otlp.store_wait,
        }
        return cls(
            settings.resolved_store_path,
            wait=waits[wait_as],
            program=program,
            on_wait=on_wait,
            memory_limit=settings.store_memory_limit,
        )

    def for_work(self, work: str, *, stop: threading.Event | None = None) -> WriterAccess:
        """This access for ``work`` (``job nightly``, a test's id): the lock names it, then
        the piece of it that has the store (``job nightly: goldset run ...``); ``stop`` as
        for ``writer``."""
        return _ForWork(self, work, stop)

    def for_reading(self) -> WriterAccess:
        """This access for work that only reads (checking what the store holds): its
        blocks get the store open read-only (``reader``), and must not write."""
        return _ReadOnly(self)

    def _tell(self, message: str) -> None:
        if self._on_wait is not None:
            self._on_wait(message)

    @contextmanager
    def writer(
        self, purpose: str, *, stop: threading.Event | None = None, first: bool = False
    ) -> Iterator[Store]:
        """The store, open for writing, for the duration of the block.

        When ``stop`` is set while waiting for the store, StoreWaitStoppedError is raised (the
        block does not run); once the store is open, ``stop`` no longer matters. ``first``:
        as ``holding``.
        """
        with self.holding(purpose, stop=stop, first=first) as deadline:
            try:
                store = self.open_when_free(deadline, stop)
            finally:
                self._blocked_by = None
            try:
                yield store
            finally:
                store.close()

    __call__ = writer

    def first(self, purpose: str) -> AbstractContextManager[Store]:
        """``writer`` for a short piece of work that goes before this access's other waiters
        (the outbox recording a delivery, ahead of the jobs of ``evalkit serve`` waiting to
        start); other processes are waited for as by ``writer``."""
        return self.writer(purpose, first=True)

    @contextmanager
    def holding(
        self, purpose: str, *, stop: threading.Event | None = None, first: bool = False
    ) -> Iterator[float]:
        """The writer lock, held for the block, without opening the store (for work that
        replaces the file); yields the ``time.monotonic()`` deadline by which the store should be
        open. Waits and fails as ``writer`` does; a ``first`` waiter goes before this access's
        other waiters (not other processes')."""
        deadline = time.monotonic() + self.wait
        lock = FileLock(self.lock_path, program=self.program)

        notices = 0

        def waiting(holder: Holder | None) -> None:
            nonlocal notices
            notices += 1
            if notices == 1 and _of_this_process(holder) and self._blocked_by is None:
                # This process's own work (a job recording its result while the outbox waits
                # to deliver): a moment, not contention; told at the next notice if it lasts.
                return
            self._tell(
                f"waiting for the store {self.store_path}: it is held by {self._held_by(holder)}"
            )

        def busy(holder: Holder | None) -> str:
            # The wait and the holder are two facts: several holders may have had the store
            # in turn while this process waited, and the one named is only the last.
            return (
                f"waited {self.wait:g} s for the store {self.store_path}, which other work "
                f"held all that time; it is held now by {self._held_by(holder)}; try again "
                "when it is done (`evalkit jobs list` shows running jobs)"
            )

        def unwritable(error: OSError) -> str:
            why = (
                "it is on a read-only file system"
                if error.errno == errno.EROFS
                else "this user may not create files in its folder"
            )
            return (
                f"the store {self.store_path} cannot be written: {why} (its writer lock "
                f"{self.lock_path}: {error.strerror}). Reading commands work on it as it is; "
                "to write, use a writable copy (EVALKIT_STORE_PATH)"
            )

        if first:
            self._count_first(1)
        counted = first
        try:
            with lock.hold(
                purpose=purpose,
                wait=self.wait,
                on_wait=waiting,
                busy=busy,
                stop=stop,
                unwritable=unwritable,
                defer=None if first else self._first_waits,
            ):
                if counted:
                    self._count_first(-1)
                    counted = False
                yield deadline
        finally:
            if counted:
                self._count_first(-1)

    def _count_first(self, change: int) -> None:
        with self._first_lock:
            self._first_waiting += change

    def _first_waits(self) -> bool:
        return self._first_waiting > 0

    def _held_by(self, holder: Holder | None) -> str:
        if holder is None:
            return "another process"
        if not _of_this_process(holder):
            return holder.describe()
        # Another piece of work of this very process has the lock: its pid would only name
        # the waiter itself, so name that work, and what it is waiting for if it waits.
        mine = f"this process's {holder.purpose!r} ({holder.program}) since {holder.since}"
        blocked = self._blocked_by
        if blocked is not None:
            return f"another process that has the store open ({blocked}); {mine} waits for it"
        return mine

    def open_when_free(self, deadline: float, stop: threading.Event | None = None) -> Store:
        """The store open for writing, once no other process has the file open (DuckDB's
        own lock: a writer that does not take the writer lock, a reader), waiting until
        the ``time.monotonic()`` ``deadline``; for a holder of the writer lock."""
        return self._open_polling(
            deadline,
            stop=stop,
            busy=lambda cause: (
                f"the store {self.store_path} has been open in another writing process "
                f"for more than {self.wait:g} s ({cause}); try again when it is done"
            ),
            waiting=lambda cause: (
                f"waiting for the store {self.store_path}: another process has it open ({cause})"
            ),
        )

    def _open_polling(
        self,
        deadline: float,
        *,
        busy: Callable[[BaseException | None], str],
        waiting: Callable[[BaseException | None], str],
        read_only: bool = False,
        stop: threading.Event | None = None,
    ) -> Store:
        """The store, opened as soon as DuckDB's own lock lets it, trying until ``deadline``;
        ``busy`` and ``waiting`` word the StoreBusyError and the one notice by the conflict."""
        told = False
        while True:
            if stop is not None and stop.is_set():
                raise StoreWaitStoppedError(
                    f"gave up waiting for the store {self.store_path}: stopping"
                )
            try:
                return Store.open(
                    self.store_path, read_only=read_only, memory_limit=self.memory_limit
                )
            except StoreError as error:
                if not _duckdb_lock_conflict(error):
                    raise
                if time.monotonic() >= deadline:
                    raise StoreBusyError(busy(error.__cause__)) from error
                if not read_only:
                    # What a holder of the writer lock waits for, to name it to its own waiters.
                    self._blocked_by = str(error.__cause__)
                if not told:
                    self._tell(waiting(error.__cause__))
                    told = True
            time.sleep(_POLL)

    def _writer(self) -> str:
        """Who writes the store, as its writer lock names them."""
        holder = FileLock(self.lock_path, program=self.program).holder()
        return holder.describe() if holder else "another process"

    @contextmanager
    def reader(self) -> Iterator[Store]:
        """The store, open read-only, for the duration of the block."""
        store = self._open_polling(
            time.monotonic() + self.wait,
            read_only=True,
            busy=lambda cause: (
                f"the store {self.store_path} has been written by {self._writer()} for "
                f"more than {self.wait:g} s ({cause}); try again when it is done"
            ),
            waiting=lambda _: f"waiting to read the store: it is being written by {self._writer()}",
        )
        try:
            yield store
        finally:
            store.close()


@dataclass(frozen=True, slots=True)
class _ForWork:
    """``StoreAccess.for_work``: the access, with the work it is for named in the lock."""

    access: StoreAccess
    work: str
    stop: threading.Event | None
    keeps_open = False

    def writer(self, purpose: str) -> AbstractContextManager[Store]:
        """The store, open for writing for the block, the lock naming the work and ``purpose``."""
        return self.access.writer(f"{self.work}: {purpose}", stop=self.stop)


@dataclass(frozen=True, slots=True)
class _ReadOnly:
    """``StoreAccess.for_reading``: a ``WriterAccess`` whose blocks only read."""

    access: StoreAccess
    keeps_open = False

    def writer(self, purpose: str) -> AbstractContextManager[Store]:
        """The store, open read-only for the block (``purpose`` names no lock: none is taken)."""
        return self.access.reader()


def outbox_lock(store_path: Path, *, program: str) -> FileLock:
    """The lock one outbox deliverer holds during a delivery pass."""
    return FileLock(store_sibling(store_path, ".outbox.lock"), program=program)


def _of_this_process(holder: Holder | None) -> bool:
    """Whether ``holder`` is a piece of work of this very process."""
    return holder is not None and holder.pid == os.getpid() and holder.host == socket.gethostname()
