"""Giving the store file back the space deleted rows held.

DuckDB never shrinks its file (neither ``CHECKPOINT`` nor ``VACUUM`` does), but a copy does:
``compact_store`` copies the database beside the store, checks every table's row count,
and only then renames the copy onto the store, all under the writer lock. A failure before
the rename leaves the store as it was; the next compaction removes the leftover copy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.errors import NotFoundError, StoreError
from evalkit.store.access import StoreAccess, store_sibling
from evalkit.store.store import Store

__all__ = ["CompactReport", "compact_store"]

_COPY_SUFFIX = ".compacting"


@dataclass(frozen=True, slots=True)
class CompactReport:
    """What ``compact_store`` did: the file's size before and after, and the rows kept."""

    path: Path
    bytes_before: int
    bytes_after: int
    tables: int
    rows: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {**dataclasses.asdict(self), "path": str(self.path)}


def compact_store(access: StoreAccess, *, purpose: str = "store compact") -> CompactReport:
    """Rewrite the store of ``access`` into a file without the space of deleted rows
    (docs/store.md): holds the writer lock and waits, as ``access`` waits, for other processes
    to close the file. Raises NotFoundError without a store, StoreBusyError when the lock is
    not had in time, and StoreError when the copy fails or differs (the store left as it was)."""
    # A store reached through a symbolic link is compacted where it is.
    path = access.store_path.resolve()
    if not path.exists():
        raise NotFoundError(f"no evalkit store at {path}: there is nothing to compact")
    copy = store_sibling(path, _COPY_SUFFIX)
    with access.holding(purpose) as deadline:
        _remove(copy)
        original = path.stat()
        try:
            with access.open_when_free(deadline) as store:
                # A writer killed before it checkpointed left its log; reading the store
                # replays it, and this folds it into the file before the file is replaced.
                store.execute("CHECKPOINT")
                expected = _row_counts(store)
                _copy_into(store, copy)
            _refuse_leftover_log(path)
            with Store.open(copy, memory_limit=access.memory_limit) as copied:
                copied_counts = _row_counts(copied)
                copied.execute("CHECKPOINT")
            _refuse_leftover_log(copy)
            if copied_counts != expected:
                changed = sorted(
                    name
                    for name in set(expected) | set(copied_counts)
                    if expected.get(name) != copied_counts.get(name)
                )
                raise StoreError(
                    f"the compacted copy of {path} does not hold the same rows (tables "
                    f"{', '.join(changed)}); the store is left as it was"
                )
            _keep_mode_and_owner(copy, original)
            os.replace(copy, path)
            _sync_directory(path.parent)
        except BaseException:
            _remove(copy)
            raise
    return CompactReport(
        path=path,
        bytes_before=original.st_size,
        bytes_after=path.stat().st_size,
        tables=len(expected),
        rows=sum(expected.values()),
    )


def _copy_into(store: Store, copy: Path) -> None:
    """Copy every object of ``store`` into the new file ``copy`` (``COPY FROM DATABASE``)."""
    catalog = str(store.fetch("SELECT current_database()")[0][0])
    literal = str(copy).replace("'", "''")
    try:
        store.execute(f"ATTACH '{literal}' AS evalkit_compacted")
        try:
            store.execute(f'COPY FROM DATABASE "{catalog}" TO evalkit_compacted')
        finally:
            store.execute("DETACH evalkit_compacted")
    except StoreError as error:
        raise StoreError(
            f"cannot compact {store.path}: {error}; the store is left as it was"
        ) from error


def _row_counts(store: Store) -> dict[str, int]:
    tables = [
        str(row[0])
        for row in store.fetch(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
            " AND schema_name = 'main' ORDER BY table_name"
        )
    ]
    return {table: int(store.fetch(f'SELECT count(*) FROM "{table}"')[0][0]) for table in tables}


def _refuse_leftover_log(path: Path) -> None:
    """A store checkpointed and closed has folded its write-ahead log into the file; one left
    over would be replayed onto whatever file then has the store's name."""
    log = store_sibling(path, ".wal")
    if log.exists() and log.stat().st_size > 0:
        raise StoreError(
            f"{log} is still there after the store was checkpointed and closed, so it is no "
            f"log DuckDB replays into {path.name}; not compacting. Move it away if no process "
            "is writing the store, and compact again"
        )


def _keep_mode_and_owner(copy: Path, original: os.stat_result) -> None:
    """The copy takes the store's permissions and, where this process may give them, its
    owner: `sudo evalkit store compact` must not leave `evalkit serve` a file it cannot
    write."""
    os.chmod(copy, stat.S_IMODE(original.st_mode))
    if (original.st_uid, original.st_gid) != (os.getuid(), os.getgid()):
        with contextlib.suppress(PermissionError):
            os.chown(copy, original.st_uid, original.st_gid)


def _remove(copy: Path) -> None:
    for leftover in (copy, store_sibling(copy, ".wal")):
        if leftover.is_dir() and not leftover.is_symlink():
            raise StoreError(
                f"{leftover} is a folder, where the compaction writes its copy of the store; "
                "move it away and compact again"
            )
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


def _sync_directory(directory: Path) -> None:
    """Make the rename durable: a crash right after it must not bring the old file back."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
