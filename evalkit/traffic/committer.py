"""The spool's committer: one thread that moves received span batches from the spool
(``evalkit.traffic.spool``) into the store.

It takes the store through the same ``StoreAccess`` as the service's jobs, commits in spool
order, each batch in its own transaction, and deletes a file only after its commit; a
session lasts a couple of seconds at most, so a waiting job has its chance. A batch the store
keeps refusing is set aside (``.batch.failed``); a fault of the store itself is retried and
never counted against a batch. On close the thread is always joined, so the store is never
closed with the thread inside DuckDB (which aborts the interpreter); the next start commits
the rest. Committing a batch twice stores nothing twice (ids come from trace and span ids).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from evalkit.errors import EvalkitError
from evalkit.store.access import (
    StoreAccess,
    StoreBusyError,
    StoreWaitStoppedError,
    is_store_fault,
)
from evalkit.traffic.otlp import SpanIngest, commit_spans
from evalkit.traffic.spool import Spool, SpoolCorruptError, SpooledBatch

__all__ = ["SOURCE", "SpoolCommitter"]

SOURCE = "otlp"
"""The ``source`` of records received over OTLP/HTTP."""

_log = logging.getLogger("evalkit.otlp")
_RETRY_COMMIT_SECONDS = 1.0
# Commits of one batch that fail with the store open before the batch is set aside: its
# data, not the store's availability, is the trouble, and it must not hold back the rest.
_MAX_BATCH_ATTEMPTS = 5
# One store session commits for so long at most, then lets a waiting job take the store.
_SESSION_SECONDS = 2.0
_SESSION_BATCHES = 256
_BETWEEN_SESSIONS_SECONDS = 0.3
_REPORT_BUSY_EVERY = 60.0


class SpoolCommitter:
    """One thread that moves spooled batches into the store whenever it is free (see the
    module docstring); ``on_commit`` hears what became of each committed batch."""

    def __init__(
        self,
        spool: Spool,
        access: StoreAccess,
        on_commit: Callable[[SpanIngest], None],
        stop: threading.Event,
    ) -> None:
        self._spool = spool
        self._access = access
        self._on_commit = on_commit
        self._stop = stop
        self._wake = threading.Event()
        self._closing = threading.Event()
        # Set once close's grace has passed: no batch is begun after it.
        self._overdue = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="evalkit-otlp-committer", daemon=True
        )
        self.last_error: str | None = None
        self.last_commit: float | None = None
        self._busy_reported = 0.0
        self._attempts: dict[int, int] = {}

    def start(self) -> None:
        """Start committing (what the spool already holds first)."""
        self._thread.start()

    @property
    def started(self) -> bool:
        """Whether ``start`` ran (a thread never started cannot be joined)."""
        return self._thread.ident is not None

    def wake(self) -> None:
        """A batch was spooled: commit it as soon as the store can be had."""
        self._wake.set()

    def close(self, grace: float) -> None:
        """Commit what the spool holds for up to ``grace`` seconds if the store can be had,
        then stop: the batch under way is finished and no other begun. Returns once the
        thread has ended, whatever the grace; what is left waits for the next start."""
        self._closing.set()
        self._wake.set()
        self._thread.join(grace)
        self._overdue.set()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            closing = self._closing.is_set()
            batches = self._spool.ready(_SESSION_BATCHES)
            committed_all = True
            if batches:
                committed_all = self._commit(batches, closing=closing)
            if closing and (
                not batches
                or not committed_all
                or self._overdue.is_set()
                or not self._spool.ready(1)
            ):
                left = self._spool.status()
                if left.batches:
                    _log.info(
                        "otlp: %d spooled batch(es) (%d bytes) left uncommitted at stop; the "
                        "next start commits them",
                        left.batches,
                        left.bytes,
                    )
                return
            if not committed_all:
                self._wake.wait(_RETRY_COMMIT_SECONDS)
            elif self._spool.ready(1):
                if not closing:
                    # More to commit: give a job waiting for the store its chance first.
                    time.sleep(_BETWEEN_SESSIONS_SECONDS)
                continue
            else:
                self._wake.wait()
            self._wake.clear()

    def _commit(self, batches: list[SpooledBatch], *, closing: bool) -> bool:
        """Commit ``batches`` in one store session; False when the store could not be had
        or a commit failed (the batches left wait in the spool)."""
        began = time.monotonic()
        spans = 0
        try:
            with self._access.writer(
                f"otlp: committing {len(batches)} spooled batch(es)",
                stop=self._overdue if closing else self._stop,
            ) as store:
                for spooled in batches:
                    try:
                        prepared = self._spool.read(spooled)
                    except SpoolCorruptError as error:
                        kept = self._spool.set_aside(spooled)
                        _log.error(
                            "otlp: spool file %s is not a whole batch (%s): set aside as %s",
                            spooled.path.name,
                            error,
                            kept.name,
                        )
                        continue
                    try:
                        outcome = commit_spans(store, prepared, source=SOURCE)
                    except Exception as error:
                        if not self._gives_up(spooled, error):
                            raise
                        continue
                    self._attempts.pop(spooled.sequence, None)
                    self._spool.remove(spooled)
                    self._on_commit(outcome)
                    spans += prepared.spans
                    if time.monotonic() - began > _SESSION_SECONDS or self._overdue.is_set():
                        break
        except StoreWaitStoppedError:
            return False
        except StoreBusyError as error:
            now = time.monotonic()
            if now - self._busy_reported > _REPORT_BUSY_EVERY:
                status = self._spool.status()
                _log.info(
                    "otlp: %d received batch(es) spooled (%d bytes) wait for the store: %s",
                    status.batches,
                    status.bytes,
                    error,
                )
                self._busy_reported = now
            return False
        except EvalkitError as error:
            self.last_error = str(error)
            _log.warning("otlp: cannot commit spooled spans now (retrying): %s", error)
            return False
        except Exception as error:
            self.last_error = f"internal error: {type(error).__name__}: {error}"
            _log.exception("otlp: unexpected failure committing spooled spans (retrying)")
            return False
        self.last_error = None
        self.last_commit = time.time()
        self._busy_reported = 0.0
        _log.debug("otlp: committed %d spans in %.3f s", spans, time.monotonic() - began)
        return True

    def _gives_up(self, spooled: SpooledBatch, error: Exception) -> bool:
        """Count a failed commit of ``spooled`` with the store open; after
        ``_MAX_BATCH_ATTEMPTS`` set it aside as ``.batch.failed`` (True) so the batches
        after it are committed. A fault of the store itself (a full disk, an I/O or memory
        failure) is not the batch's: every batch would meet it, so it is retried as when the
        store is busy and never counts."""
        if is_store_fault(error):
            return False
        attempts = self._attempts.get(spooled.sequence, 0) + 1
        if attempts < _MAX_BATCH_ATTEMPTS:
            self._attempts[spooled.sequence] = attempts
            return False
        self._attempts.pop(spooled.sequence, None)
        kept = self._spool.set_aside(spooled, reason="failed")
        self.last_error = f"set aside {kept.name}: the store refused it ({error})"
        _log.error(
            "otlp: the store refused spooled batch %s %d times (%s: %s): set aside as %s; "
            "the batches after it carry on",
            spooled.path.name,
            attempts,
            type(error).__name__,
            error,
            kept.name,
        )
        return True
