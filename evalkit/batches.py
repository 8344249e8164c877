"""Keeping what arrives while work goes on: ``BatchWriter`` saves items in batches from a
thread of its own, so that the code producing them (an event loop sending a judge's calls)
never waits for the store, and a process killed part-way loses at most the last second's.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["FLUSH_EVERY", "FLUSH_SECONDS", "BatchWriter"]

T = TypeVar("T")

FLUSH_EVERY = 256
"""Items that make a batch be saved at once."""
FLUSH_SECONDS = 1.0
"""The longest an item waits to be saved."""


class BatchWriter(Generic[T]):
    """Saves items with ``save`` as they arrive: a batch at most ``FLUSH_SECONDS`` after its
    first item arrived (or at ``FLUSH_EVERY`` items), from a thread named ``name``.

    A failed save is kept: ``add`` raises it, so the work stops instead of producing what
    could not be kept, and ``close`` saves what is left (the failed batch tried once more)
    and raises it.
    """

    def __init__(self, save: Callable[[list[T]], None], *, name: str) -> None:
        self._save = save
        self._queue: queue.Queue[T | None] = queue.Queue()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def add(self, item: T) -> None:
        """Queue ``item``; raises the failure of an earlier save."""
        if self._failure is not None:
            raise self._failure
        self._queue.put(item)

    def close(self, *, raise_failure: bool = True) -> None:
        """Save what is queued and stop the thread; re-raise a save's failure unless
        ``raise_failure`` is False (another error is already on its way)."""
        self._queue.put(None)
        self._thread.join()
        if self._failure is not None and raise_failure:
            raise self._failure

    def _run(self) -> None:
        pending: list[T] = []
        deadline = None
        finished = False
        while not finished:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                pass
            else:
                if item is None:
                    finished = True
                else:
                    pending.append(item)
                    deadline = deadline or time.monotonic() + FLUSH_SECONDS
            due = deadline is not None and time.monotonic() >= deadline
            if pending and (finished or due or len(pending) >= FLUSH_EVERY):
                if self._flush(pending, attempts=2 if finished else 1):
                    pending, deadline = [], None
                elif finished:
                    return
                else:
                    deadline = None  # kept for the last flush; add() now reports the failure

    def _flush(self, pending: list[T], *, attempts: int) -> bool:
        """Save ``pending``; on failure keep the error and say False."""
        for _ in range(attempts):
            try:
                self._save(pending)
            except Exception as error:
                self._failure = error
            else:
                self._failure = None
                return True
        return False
