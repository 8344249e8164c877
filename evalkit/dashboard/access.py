"""How the dashboard reads the store: read-only, briefly, cached, and patient with writers;
and how its one writer, the review page, saves a review.

The dashboard never holds a connection: a reader that kept the file open would lock out
``evalkit serve`` and every CLI command, so each cache miss opens the store read-only, runs
one loader and closes it. Results are cached until the store's file times change; while a
writer holds it, the last good result is served with a warning, then the page says who
holds it. ``write`` goes through ``StoreAccess`` (one short transaction). Details:
docs/dashboard.md, "Sharing the store with writers".
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st

from evalkit.clock import utc_now
from evalkit.config import DASHBOARD_READ_ONLY_ENV, load_settings
from evalkit.dashboard.loaders import LOADERS
from evalkit.errors import StoreError
from evalkit.store import Store
from evalkit.store.access import FileLock, StoreAccess, StoreBusyError
from evalkit.store.store import is_lock_conflict

__all__ = [
    "BUSY_KEY",
    "CACHE_SECONDS",
    "NOTICES_KEY",
    "WAIT_ENV",
    "StoreBusyError",
    "StoreVersion",
    "configured_store_path",
    "load",
    "open_read_only",
    "reviews_read_only",
    "store_version",
    "wait_seconds",
    "write",
]

T = TypeVar("T")

CACHE_SECONDS = 600
WAIT_ENV = "EVALKIT_DASHBOARD_WAIT"
"""Environment variable: seconds to keep retrying a store held by a writer (default 5)."""
DEFAULT_WAIT_SECONDS = 5.0
_FIRST_DELAY = 0.05
_MAX_DELAY = 1.0
_REMEMBERED_RESULTS = 256
NOTICES_KEY = "_evalkit_notices"
"""Session-state key of this script run's notices (the page shows them at its top)."""
BUSY_KEY = "_evalkit_store_busy"
"""Session-state key set when this script run found the store held by a writer."""


@dataclass(frozen=True, slots=True)
class StoreVersion:
    """A store file and the modification times of it and its write-ahead log (cache key)."""

    path: str
    mtime_ns: int
    wal_mtime_ns: int


def configured_store_path() -> Path:
    """The store the configuration names (``EVALKIT_STORE_PATH``, ``EVALKIT_HOME``,
    evalkit.toml), as an absolute path."""
    return load_settings().resolved_store_path.resolve()


def store_version(path: Path) -> StoreVersion | None:
    """The store's version for caching, or None when there is no store file."""
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        return None
    wal = path.with_name(path.name + ".wal")
    try:
        wal_mtime = wal.stat().st_mtime_ns
    except FileNotFoundError:
        wal_mtime = 0
    return StoreVersion(str(path), mtime, wal_mtime)


def wait_seconds() -> float:
    """How long to keep retrying a store held by a writer (``EVALKIT_DASHBOARD_WAIT``)."""
    try:
        return max(0.0, float(os.environ.get(WAIT_ENV, DEFAULT_WAIT_SECONDS)))
    except ValueError:
        return DEFAULT_WAIT_SECONDS


def _lock_conflict(error: StoreError) -> bool:
    return is_lock_conflict(error.__cause__)


def _holder(path: Path, error: StoreError) -> str:
    """Who holds the store: evalkit's writer lock record, else the pid DuckDB names."""
    holder = FileLock(path.with_name(path.name + ".writer.lock"), program="dashboard").holder()
    if holder is not None:
        return holder.describe()
    found = re.search(r"PID (\d+)", str(error.__cause__))
    return f"pid {found.group(1)}" if found else "another process"


def open_read_only(
    path: Path, *, wait: float | None = None, memory_limit: str | None = None
) -> Store:
    """Open the store read-only, retrying with back-off while a writer holds it.

    Raises ``StoreBusyError`` naming the holder when it is still held after ``wait`` seconds.
    ``memory_limit``: see ``Store.open``.
    """
    patience = wait_seconds() if wait is None else wait
    deadline = time.monotonic() + patience
    delay = _FIRST_DELAY
    while True:
        try:
            return Store.open(path, read_only=True, memory_limit=memory_limit)
        except StoreError as error:
            if not _lock_conflict(error):
                raise
            if time.monotonic() + delay > deadline:
                raise StoreBusyError(
                    f"the store {path} is being written by {_holder(path, error)}. DuckDB "
                    "lets no reader in while a writer has the file open, and the dashboard "
                    "stopped retrying. Reload when the writer is done."
                ) from error
            time.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)


@dataclass(frozen=True, slots=True)
class _Remembered:
    value: Any
    loaded_at: datetime


class _LastGood:
    """The newest result of each (loader, parameters), kept to show while the store is busy."""

    def __init__(self) -> None:
        self._results: OrderedDict[Hashable, _Remembered] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._results[key] = _Remembered(value, utc_now())
            self._results.move_to_end(key)
            while len(self._results) > _REMEMBERED_RESULTS:
                self._results.popitem(last=False)

    def recall(self, key: Hashable) -> _Remembered | None:
        with self._lock:
            return self._results.get(key)


@st.cache_resource(show_spinner=False)
def _last_good(path: str) -> _LastGood:
    return _LastGood()


@st.cache_data(ttl=CACHE_SECONDS, max_entries=512, show_spinner=False)
def _cached(
    loader: str,
    version: StoreVersion,
    parameters: tuple[tuple[str, Any], ...],
    _wait: float | None = None,
) -> Any:
    store = open_read_only(
        Path(version.path), wait=_wait, memory_limit=load_settings().store_memory_limit
    )
    try:
        return LOADERS[loader](store, **dict(parameters))
    finally:
        store.close()


def _freeze(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    return value


def load(path: Path, loader: str, **parameters: Any) -> Any:
    """Run loader ``loader`` (see ``evalkit.dashboard.loaders.LOADERS``) on the store at ``path``.

    Results are cached until the store changes. While a writer holds the store, the last
    good result is returned and a warning says since when; with none, ``StoreBusyError`` is
    raised for the page to explain.
    """
    version = store_version(path)
    if version is None:
        raise StoreError(f"no evalkit store at {path}")
    frozen = tuple(sorted((name, _freeze(value)) for name, value in parameters.items()))
    key = (loader, frozen)
    memory = _last_good(str(path))
    # Once the store was found busy in this script run, later loads do not wait again.
    wait = 0.0 if st.session_state.get(BUSY_KEY) else None
    try:
        result = _cached(loader, version, frozen, wait)
    except StoreBusyError as busy:
        st.session_state[BUSY_KEY] = True
        remembered = memory.recall(key)
        if remembered is None:
            raise
        _warn_stale(str(busy), remembered.loaded_at)
        return remembered.value
    memory.remember(key, result)
    return result


def _warn_stale(reason: str, loaded_at: datetime) -> None:
    notices: list[str] = st.session_state.setdefault(NOTICES_KEY, [])
    if not notices:
        notices.append(f"Showing figures loaded at {loaded_at:%H:%M:%S} UTC: {reason}")


def reviews_read_only() -> bool:
    """True unless ``evalkit dashboard`` allowed reviews (it does on loopback, unless
    ``--read-only``): a dashboard started any other way does not write."""
    return os.environ.get(DASHBOARD_READ_ONLY_ENV, "1") != "0"


def write(path: Path, purpose: str, work: Callable[[Store], T]) -> T:
    """Run ``work`` on the store at ``path`` opened for writing, under the writer lock (waiting
    up to ``wait_seconds()`` for it), and close the store at once; cached figures are then
    forgotten, so the page shows what was written. Raises ``StoreError`` (``StoreBusyError``
    when the store stayed busy) and ``PermissionError`` on a read-only dashboard."""
    if reviews_read_only():
        raise PermissionError(
            "this dashboard is read-only: start it with `evalkit dashboard` on a loopback "
            "address (or with --allow-reviews) to save reviews"
        )
    access = StoreAccess(
        path,
        wait=wait_seconds(),
        program="dashboard",
        memory_limit=load_settings().store_memory_limit,
    )
    with access.writer(purpose) as store:
        result = work(store)
    st.cache_data.clear()
    return result
