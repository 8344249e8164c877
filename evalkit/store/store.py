"""The DuckDB store's connection: opening, migrating, transactions and statements.

evalkit.store is the only place in evalkit that speaks SQL. ``Store`` holds the connection;
each area keeps its tables and queries in a module of functions taking the store first.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import duckdb

from evalkit.clock import utc_now
from evalkit.errors import NotFoundError, StoreError
from evalkit.store.migrations import MIGRATIONS, Migration
from evalkit.store.views import registered

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Store", "is_lock_conflict", "no_store_error"]

_OPEN_WITH_OTHER_SETTINGS = "different configuration than existing connections"
"""What DuckDB says when this process already has the file open another way."""


_LOCK_CONFLICT = "Could not set lock on file"
"""What DuckDB says when another process holds the file open."""


def is_lock_conflict(error: BaseException | None) -> bool:
    """Whether ``error`` is DuckDB refusing to open the file because another process holds
    it, which passes once that process closes it (unlike a damaged file, whose DuckDB
    message may name a "block")."""
    return isinstance(error, duckdb.IOException) and _LOCK_CONFLICT in str(error)


_DAMAGED_FILE = (
    "Corrupt database file",
    "not a valid DuckDB database file",
    "Could not read enough bytes from file",
)
"""What DuckDB says of a store file cut short or overwritten."""

_DAMAGED_LOG = ("Failure while replaying WAL file", "Corrupt WAL file")
"""What DuckDB says of a write-ahead log it cannot replay."""

_NEW_STORE_SCHEMA: dict[tuple[Migration, ...], str] = {}
"""Per list of migrations, the statements that create the schema they build, taken from the
first new store this process migrated: a later new store runs them in one transaction, which
takes a third less CPU than replaying each migration in its own (``Store.migrate``)."""


def damaged_store_error(path: Path, error: duckdb.Error) -> StoreError | None:
    """When ``error`` says the store at ``path`` or its write-ahead log is damaged: the error
    naming that file, what happened and what the user can do (no retry or migration mends
    it); else None."""
    detail = str(error).removeprefix("IO Error: ")
    if any(sign in detail for sign in _DAMAGED_LOG):
        log = path.with_name(path.name + ".wal")
        return StoreError(
            f"the write-ahead log {log} of the store {path} is damaged ({detail}); evalkit "
            "changed neither file. A writer was killed or the disk failed as it wrote the "
            f"log: the store opens without it, as of its last checkpoint but without the "
            f"writes the log holds, once {log.name} is moved aside (keep it); or restore both "
            "files from a copy"
        )
    if any(sign in detail for sign in _DAMAGED_FILE):
        return StoreError(
            f"the store {path} is damaged or not a DuckDB file ({detail}); evalkit changed "
            "nothing in it. If it is the store, it was cut short or overwritten (a full disk, "
            "a copy that stopped part-way, a storage fault) and evalkit cannot repair it: keep "
            "it aside and restore it from a copy. Else point EVALKIT_STORE_PATH at the store"
        )
    return None


def store_failure(what: str, path: Path, error: duckdb.Error) -> StoreError:
    """The error of a statement or an open of the store at ``path`` that failed: ``what``
    and DuckDB's words, or what ``damaged_store_error`` says of a damaged file."""
    return damaged_store_error(path, error) or StoreError(f"{what}: {error}")


def no_store_error(path: Path) -> NotFoundError:
    """The error of a command that needs a store where there is none."""
    return NotFoundError(
        f"no evalkit store at {path}: run `evalkit run` (or `make demo`) first, "
        "or point EVALKIT_HOME / EVALKIT_STORE_PATH at an existing store"
    )


class Store:
    """A DuckDB file holding goldsets, runs, per-query results and metrics: its connection.

    Open it with ``Store.open(path)`` (creates and migrates the file) or
    ``Store.open(path, read_only=True)`` (never writes; the file must exist).
    """

    def __init__(self, connection: duckdb.DuckDBPyConnection, path: Path, *, read_only: bool):
        self._con = connection
        self.path = path
        self.read_only = read_only
        self.migrated: tuple[str, ...] = ()
        """The names of the migrations opening this store applied (none when it was current)."""
        self.job_run_id: str | None = None
        """The job run whose work this connection does (``working_for``): every run recorded
        through it is added to that job run's runs as the run's row is written."""

    @classmethod
    def open(
        cls, path: Path | str, *, read_only: bool = False, memory_limit: str | None = None
    ) -> Store:
        """Open (and, unless read-only, create and migrate) the store at ``path``.

        ``memory_limit`` (a DuckDB size such as ``1GB``; None or empty: DuckDB's default of
        80 % of the RAM) bounds what DuckDB holds in memory; larger work spills to disk.
        """
        path = Path(path)
        if read_only and not path.exists():
            raise no_store_error(path)
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        config: dict[str, str | bool | int | float | list[str]] = (
            {"memory_limit": memory_limit} if memory_limit else {}
        )
        if read_only:
            # DuckDB spills beside the file (``<store>.tmp``) by default: a reader of a store on
            # a read-only mount would fail on a large query where it could have spilled.
            config["temp_directory"] = str(
                Path(tempfile.gettempdir()) / f"evalkit-duckdb-{os.getuid()}"
            )
        created = not read_only and not path.exists()
        try:
            connection = duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.Error as error:
            if created and not is_lock_conflict(error) and not damaged_store_error(path, error):
                # A file DuckDB could not finish creating (a full disk) would be refused as
                # damaged by every later command. One it found unreadable is another
                # process's, created meanwhile: that one is left alone.
                for stub in (path, path.with_name(path.name + ".wal")):
                    with suppress(OSError):
                        stub.unlink()
            raise cls._open_failure(path, error) from error
        store = cls(connection, path, read_only=read_only)
        if read_only:
            store._check_schema_current()
        else:
            store.migrated = tuple(store.migrate())
        return store

    @staticmethod
    def _open_failure(path: Path, error: duckdb.Error) -> StoreError:
        """The error of a store that DuckDB could not open."""
        if isinstance(error, duckdb.IOException):
            if is_lock_conflict(error):
                return StoreError(
                    f"the store {path} is held by another writing process (for example "
                    "`evalkit serve`); wait for it to finish or open the store read-only"
                )
        elif _OPEN_WITH_OTHER_SETTINGS in str(error):
            return StoreError(
                f"cannot open the store {path}: another Store of this process holds it "
                "open with other settings (read-only where this one writes, or the "
                "reverse, or another memory limit), and DuckDB opens a file one way per "
                "process; close that Store first"
            )
        return store_failure(f"cannot open the store {path}", path, error)

    def close(self) -> None:
        """Close the connection."""
        self._con.close()

    keeps_open = True
    """An open store is its own ``WriterAccess`` (``evalkit.store.access``): it stays open
    between the pieces of work that use it, so a run given one records as it goes."""

    @contextmanager
    def writer(self, purpose: str) -> Iterator[Store]:
        """This store itself, for a block of work (``WriterAccess``); left open after it.

        ``purpose`` is what the work is; an open store has no lock to name it in."""
        yield self

    @contextmanager
    def working_for(self, job_run_id: str) -> Iterator[Store]:
        """This store, doing the work of job run ``job_run_id`` for the block: a run recorded
        through it names the job run from the moment its row is written, so a job killed
        mid-run still lists it, whatever becomes of the run before the job run is marked
        interrupted."""
        self.job_run_id = job_run_id
        try:
            yield self
        finally:
            self.job_run_id = None

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Run the enclosed statements atomically: all of them or none."""
        self.require_writable()
        self._con.begin()
        try:
            yield self._con
        except BaseException:
            # A rollback that fails too must not hide why the transaction failed.
            with suppress(duckdb.Error):
                self._con.rollback()
            raise
        self._con.commit()

    @contextmanager
    def writing(self, failure: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """``transaction``, a DuckDB error in it raised as ``StoreError`` ``failure: error``."""
        try:
            with self.transaction() as con:
                yield con
        except duckdb.Error as error:
            raise StoreError(f"{failure}: {error}") from error

    @contextmanager
    def configured(self, **settings: str | int) -> Iterator[None]:
        """DuckDB's settings (``SET name = value``) as given for the duration of the block,
        each put back as it was afterwards."""
        try:
            before = {
                name: self._con.execute("SELECT current_setting(?)", [name]).fetchall()[0][0]
                for name in settings
            }
            for name, value in settings.items():
                self._con.execute(f"SET {name} = ?", [value])
        except duckdb.Error as error:
            raise StoreError(f"cannot configure the store {self.path}: {error}") from error
        try:
            yield
        finally:
            # A connection that cannot take a SET any more has failed for a reason the
            # block's own error tells better.
            with suppress(duckdb.Error):
                for name, value in before.items():
                    self._con.execute(f"SET {name} = ?", [value])

    def require_writable(self) -> None:
        """Raise ``StoreError`` when the store was opened read-only."""
        if self.read_only:
            raise StoreError(f"the store {self.path} is open read-only; this needs a writer")

    def execute(self, sql: str, parameters: Sequence[object] = ()) -> None:
        """Run one parameterised write statement in its own transaction."""
        try:
            with self.transaction() as con:
                con.execute(sql, list(parameters))
        except duckdb.Error as error:
            raise store_failure(f"store write failed on {self.path}", self.path, error) from error

    def fetch(self, sql: str, parameters: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Rows of a parameterised query (for evalkit.store's own modules)."""
        try:
            return self._con.execute(sql, list(parameters)).fetchall()
        except duckdb.Error as error:
            raise store_failure(f"store query failed on {self.path}", self.path, error) from error

    def fetch_by_prefix(self, sql: str, prefix: str, *, missing: str, what: str) -> tuple[Any, ...]:
        """The row of ``sql`` (rows whose id, their first column, starts with its one parameter
        ``prefix``) whose id is ``prefix``, else the only row; NotFoundError ``missing`` when
        there is none, or naming the ``what`` id prefix ambiguous when there are several."""
        rows = self.fetch(sql, [prefix])
        if not rows:
            raise NotFoundError(missing)
        exact = [row for row in rows if row[0] == prefix]
        if len(rows) > 1 and not exact:
            raise NotFoundError(
                f"{what} id prefix {prefix!r} is ambiguous: "
                + ", ".join(str(row[0]) for row in rows[:5])
            )
        return exact[0] if exact else rows[0]

    def fetch_frame(self, sql: str, parameters: Sequence[object] = ()) -> pd.DataFrame:
        """A parameterised query's result as a DataFrame (for evalkit.store's own modules)."""
        try:
            return self._con.execute(sql, list(parameters)).df()
        except duckdb.Error as error:
            raise store_failure(f"store query failed on {self.path}", self.path, error) from error

    def table_names(self) -> frozenset[str]:
        """Names of the tables this store holds (the areas whose migration ran)."""
        return frozenset(
            str(row[0]) for row in self.fetch("SELECT table_name FROM duckdb_tables()")
        )

    def fetch_batches(
        self, sql: str, parameters: Sequence[object] = (), *, rows: int = 50_000
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Rows of a parameterised query, ``rows`` at a time, so a large result never has
        to fit in memory at once. Run no other statement until the iterator is exhausted:
        the connection holds the result."""
        try:
            cursor = self._con.execute(sql, list(parameters))
            while batch := cursor.fetchmany(rows):
                yield batch
        except duckdb.Error as error:
            raise store_failure(f"store query failed on {self.path}", self.path, error) from error

    def copy_query(
        self, sql: str, parameters: Sequence[object], path: Path, *, options: str
    ) -> None:
        """Write a parameterised query's result to the file ``path`` with DuckDB's
        ``COPY ... TO`` (``options`` such as ``FORMAT parquet``); works read-only too."""
        try:
            self._con.execute(f"COPY ({sql}) TO ? ({options})", [*parameters, str(path)])
        except duckdb.Error as error:
            raise store_failure(
                f"cannot write {path} from {self.path}", self.path, error
            ) from error

    def insert_frame(self, table: str, frame: pd.DataFrame) -> None:
        """Bulk-insert a DataFrame whose columns are named as the table's (inside a transaction)."""
        if frame.empty:
            return
        columns = ", ".join(frame.columns)
        with registered(self._con, f"_incoming_{table}", frame) as view:
            self._con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {view}")

    # -- schema -------------------------------------------------------------------------

    def migrate(self) -> list[str]:
        """Apply the migrations this file has not had yet; returns their names."""
        self.require_writable()
        self._con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "number INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
        )
        applied = {row[0] for row in self.fetch("SELECT number FROM schema_migrations")}
        self._refuse_newer_schema(max(applied, default=0))
        migrations = MIGRATIONS
        steps: list[tuple[str, tuple[Migration, ...]]] = [
            (m.sql, (m,)) for m in migrations if m.number not in applied
        ]
        if not applied and migrations in _NEW_STORE_SCHEMA:
            steps = [(_NEW_STORE_SCHEMA[migrations], migrations)]
        names: list[str] = []
        reached = max(applied, default=0)
        for sql, done in steps:
            try:
                with self.transaction() as con:
                    con.execute(sql)
                    con.executemany(
                        "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                        [[m.number, m.name, utc_now()] for m in done],
                    )
            except duckdb.Error as error:
                damaged = damaged_store_error(self.path, error)
                if damaged is not None:
                    raise damaged from error
                numbers = "-".join(dict.fromkeys(str(m.number) for m in (done[0], done[-1])))
                raise StoreError(
                    f"migration {numbers} ({done[0].name}) failed on {self.path}: "
                    f"{error}. The store stays at schema version {reached}, as the migrations "
                    "before this one left it (this one was rolled back); once the cause is "
                    "mended (free space on a full disk, for one), `evalkit store migrate` goes "
                    "on from there"
                ) from error
            names.extend(m.name for m in done)
            reached = done[-1].number
        if not applied and steps and migrations not in _NEW_STORE_SCHEMA:
            _NEW_STORE_SCHEMA[migrations] = self._schema_statements()
        return names

    def _schema_statements(self) -> str:
        """The statements that create this store's schema as it stands (sequences, tables in
        the order they were made, views, indexes), ``schema_migrations`` aside."""
        this = "database_name = current_database()"
        rows = [
            *self.fetch(f"SELECT sql FROM duckdb_sequences() WHERE {this} AND NOT temporary"),
            *self.fetch(
                f"SELECT sql FROM duckdb_tables() WHERE {this} AND NOT internal AND NOT temporary "
                "AND table_name <> 'schema_migrations' ORDER BY table_oid"
            ),
            *self.fetch(
                f"SELECT sql FROM duckdb_views() WHERE {this} AND NOT internal AND NOT temporary"
            ),
            *self.fetch(f"SELECT sql FROM duckdb_indexes() WHERE {this} AND sql IS NOT NULL"),
        ]
        return "\n".join(row[0] for row in rows)

    def schema_version(self) -> int:
        """The highest migration applied to this file (0 for an empty file)."""
        try:
            rows = self._con.execute("SELECT max(number) FROM schema_migrations").fetchall()
        except duckdb.CatalogException:
            return 0
        return int(rows[0][0] or 0)

    def _refuse_newer_schema(self, current: int) -> None:
        """Refuse a file a newer evalkit migrated: this one does not know its tables."""
        latest = MIGRATIONS[-1].number
        if current > latest:
            raise StoreError(
                f"the store {self.path} has schema version {current}, newer than this "
                f"evalkit's {latest}: a newer evalkit wrote it. Upgrade evalkit "
                "(pip install -U evalkit-retrieval) to use it; an older evalkit would "
                "misread or damage what the newer one added"
            )

    def _check_schema_current(self) -> None:
        current = self.schema_version()
        latest = MIGRATIONS[-1].number
        self._refuse_newer_schema(current)
        if current < latest:
            older = (
                f"the store {self.path} has schema version {current}, this evalkit needs {latest}"
            )
            if not _writable(self.path):
                raise StoreError(
                    f"{older}, and it cannot be migrated where it is: it is read-only here "
                    "(a read-only file, folder or mount). Copy it somewhere writable and run "
                    "`evalkit store migrate` with EVALKIT_STORE_PATH set to the copy, then "
                    "read the copy"
                )
            raise StoreError(f"{older}: run `evalkit store migrate` once to migrate it")


def _writable(path: Path) -> bool:
    """Whether this process may write ``path`` and create files beside it (DuckDB's
    write-ahead log, the writer lock): not on a read-only mount or a file of another user."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)
