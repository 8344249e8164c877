"""How commands open the store: one writer at a time, readers between writes.

Writing commands wait for the writer lock up to ``store_wait``, readers while a writer has
the file open (docs/scheduler.md, "One writer: how `serve`, the CLI and the dashboard
share the store").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evalkit.cli._output import say, settings

if TYPE_CHECKING:
    from evalkit.config import Settings
    from evalkit.store import Store

__all__ = ["CommandStore", "open_store"]


@contextmanager
def open_store(
    *, write: bool, purpose: str, config: Settings | None = None, existing: bool = False
) -> Iterator[Store]:
    """The store of ``config`` (default: the command's settings), open for writing or
    reading during the block.

    ``purpose`` names the command in the lock file. Raises StoreBusyError (exit code 3) when
    the wait runs out; with ``existing``, a writer does not create a missing store
    (NotFoundError, as a reader raises).
    """
    from evalkit.store.access import StoreAccess

    config = config or settings()
    if existing and write and not config.resolved_store_path.exists():
        from evalkit.store.store import no_store_error

        raise no_store_error(config.resolved_store_path)
    access = StoreAccess.from_settings(
        config,
        program="evalkit",
        on_wait=say,
    )
    if not write:
        with access.reader() as store:
            yield store
        return
    with access.writer(purpose) as store:
        _fail_orphaned_runs(store, purpose)
        yield store


@dataclass(frozen=True, slots=True)
class CommandStore:
    """The store as command ``purpose`` opens it (``open_store``), for the pipeline
    (``evalkit.store.access.WriterAccess``): opened for each piece of work the pipeline
    does, never held in between, so other writers need not wait for a slow replay.
    ``write=False`` opens it read-only (a comparison of stored runs).
    """

    purpose: str
    write: bool = True
    config: Settings | None = None
    keeps_open = False

    def writer(self, purpose: str) -> AbstractContextManager[Store]:
        """The store, open during the block (``purpose``, the pipeline's, is the command's)."""
        return open_store(write=self.write, purpose=self.purpose, config=self.config)


def _fail_orphaned_runs(store: Store, purpose: str) -> None:
    """Runs still ``running`` while this process holds the store belong to a process that
    stopped (killed, or the disk filled before it could record the failure): say so."""
    from evalkit.store.runs import fail_running_runs

    note = f"the process writing it stopped before it finished (found by `evalkit {purpose}`)"
    for run_id in fail_running_runs(store, note=note):
        say(f"note: run {run_id} was left running by a process that stopped; marked failed")
