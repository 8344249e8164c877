"""A scratch copy of the pgvector table for a drill, and a copy as incidents write to it.

The copy is the table's rows, columns, defaults and indexes (``CREATE TABLE ... (LIKE ...
INCLUDING ALL)``, then ``INSERT ... SELECT`` of the columns that take values, identity ones
included: no re-embedding), in the table's schema (an unqualified table's: the first of the
search path), under
``evalkit-drill-<drill id>-<table>`` (cut to PostgreSQL's 63 bytes), its comment marking the
process that owns it and since when (``copy_marks``); the next drill, and the ``retention``
job, drop a copy whose drill is over. A document is a row as ``PgvectorRetriever`` reads it:
its id from ``id_column``, its text from ``text_column``, its vector ``embedding_column``;
its other columns are its metadata. Rows are added through ``jsonb_populate_record``, so
every column takes its own type.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from evalkit.drill.index import Contents, NotInjectableError, Vectors, in_pages
from evalkit.drill.scratch import DRILL_PREFIX, copy_marks, drill_over
from evalkit.errors import ConfigError, RetrieverError
from evalkit.retrievers.base import describe_exception
from evalkit.retrievers.pgvector import (
    open_connection,
    read_pgvector_contents,
    shown_table_name,
    split_table_name,
    vector_text,
)

if TYPE_CHECKING:
    from evalkit.config import PgvectorSettings, Settings

__all__ = ["PgvectorCopies", "PgvectorIndex", "copy_pgvector_table", "sweep_pgvector_copies"]

_NAME_BYTES = 63
"""PostgreSQL cuts longer names to this many bytes."""
_HELD = "-held"


def _copy_name(table: str, drill_id: str) -> str:
    return f"{DRILL_PREFIX}{drill_id}-{table}".encode()[:_NAME_BYTES].decode(errors="ignore")


def _held_name(copy: str) -> str:
    return copy.encode()[: _NAME_BYTES - len(_HELD)].decode(errors="ignore") + _HELD


def connect(settings: PgvectorSettings) -> psycopg.Connection[Any]:
    """An autocommit connection to the server of ``settings``; RetrieverError when none."""
    if settings.dsn is None or not settings.table:
        raise ConfigError("a drill of a pgvector table needs dsn and table in [retriever.pgvector]")
    try:
        return open_connection(settings.dsn, connect_timeout=settings.connect_timeout)
    except psycopg.Error as error:
        raise RetrieverError(
            f"cannot connect to PostgreSQL: {describe_exception(error)}"
        ) from error


def copy_pgvector_table(conn: psycopg.Connection[Any], table: str, drill_id: str) -> str:
    """Copy ``table`` (``[retriever.pgvector]``'s form, ``schema.table`` or ``table``) into
    a scratch table of drill ``drill_id`` in its schema, in one transaction (a failed copy
    leaves nothing). Returns the copy as ``table`` names it."""
    *schema, name = split_table_name(table)
    copy = _copy_name(name, drill_id)
    live, made = sql.Identifier(*schema, name), sql.Identifier(*schema, copy)
    try:
        with conn.transaction():
            conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(made, live))
            columns = sql.SQL(", ").join(map(sql.Identifier, _stored_columns(conn, made)))
            conn.execute(
                sql.SQL("INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {}").format(
                    made, columns, columns, live
                )
            )
            marks = json.dumps(copy_marks(table))
            conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(made, sql.Literal(marks)))
            # The planner's statistics, as the live table has them: a copy the planner knew
            # nothing of could be searched with another plan.
            conn.execute(sql.SQL("ANALYZE {}").format(made))
    except psycopg.Error as error:
        raise RetrieverError(
            f"cannot copy pgvector table {table!r} into {copy!r}: {describe_exception(error)}"
        ) from error
    return shown_table_name(*schema, copy)


def _stored_columns(conn: psycopg.Connection[Any], table: sql.Identifier) -> dict[str, bool]:
    """The columns of ``table`` that take values (generated ones compute theirs), each with
    whether an identity or a sequence numbers it."""
    rows = conn.execute(
        "SELECT a.attname, a.attidentity <> '' OR coalesce(pg_get_expr(d.adbin, d.adrelid), '') "
        "LIKE 'nextval(%%' FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid "
        "AND d.adnum = a.attnum WHERE a.attrelid = %s::regclass AND a.attnum > 0 "
        "AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum",
        [table.as_string(conn)],
    ).fetchall()
    return {str(name): bool(numbered) for name, numbered in rows}


def _drop(conn: psycopg.Connection[Any], table: str) -> None:
    with contextlib.suppress(psycopg.Error):  # the server is gone: the next sweep drops it
        conn.execute(
            sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(*split_table_name(table)))
        )


def sweep_pgvector_copies(conn: psycopg.Connection[Any]) -> list[str]:
    """Drop the scratch tables whose drill is over (``drill_over``); their names."""
    try:
        found = conn.execute(
            "SELECT n.nspname, c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
            "AND starts_with(c.relname, %s)",
            [DRILL_PREFIX],
        ).fetchall()
    except psycopg.Error as error:
        raise RetrieverError(
            f"cannot list the drills' scratch tables: {describe_exception(error)}"
        ) from error
    removed = []
    for schema, name, comment in found:
        try:
            marks = json.loads(comment) if comment else None
        except ValueError:
            marks = None
        if drill_over(marks if isinstance(marks, dict) else None):
            table = shown_table_name(schema, name)
            _drop(conn, table)
            removed.append(table)
    return removed


_PGVECTOR_HNSW = {"m": ("max_neighbors", 16), "ef_construction": ("ef_construction", 64)}
"""pgvector's HNSW index options: their names in Chroma's terms, and pgvector's defaults."""


def hnsw_indexes(
    conn: psycopg.Connection[Any], table: sql.Identifier
) -> list[tuple[sql.Identifier, dict[str, int]]]:
    """The HNSW indexes of ``table``, each with its ``m`` and ``ef_construction`` under
    Chroma's names (``max_neighbors``, ``ef_construction``)."""
    rows = conn.execute(
        "SELECT n.nspname, c.relname, coalesce(c.reloptions, '{}') FROM pg_index x "
        "JOIN pg_class c ON c.oid = x.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_am am ON am.oid = c.relam WHERE x.indrelid = %s::regclass "
        "AND am.amname = 'hnsw' ORDER BY c.relname",
        [table.as_string(conn)],
    ).fetchall()
    found = []
    for schema, name, options in rows:
        given = dict(str(option).split("=", 1) for option in options)
        found.append(
            (
                sql.Identifier(schema, name),
                {
                    chroma: int(given.get(key, default))
                    for key, (chroma, default) in _PGVECTOR_HNSW.items()
                },
            )
        )
    return found


class PgvectorIndex:
    """The drill's copy of the pgvector table as a ``ScratchIndex``."""

    def __init__(self, conn: psycopg.Connection[Any], settings: PgvectorSettings, table: str):
        self._conn = conn
        self._settings = settings
        self._name = table
        self._table = sql.Identifier(*split_table_name(table))
        self._id = sql.Identifier(settings.id_column)

    @property
    def name(self) -> str:
        """The copy's name, without its schema."""
        return split_table_name(self._name)[-1]

    def close(self) -> None:
        """Nothing: the connection stays the drill's."""

    def contents(self) -> Contents:
        """Every row as a document (``read_pgvector_contents``)."""
        return read_pgvector_contents(self._conn, self._settings, self._table)

    def hnsw(self) -> Mapping[str, int]:
        """The ``m`` (as ``max_neighbors``) and ``ef_construction`` of the copy's first HNSW
        index, pgvector's defaults for those it does not set; none without an HNSW index."""
        found = hnsw_indexes(self._conn, self._table)
        return found[0][1] if found else {}

    def delete(self, ids: Sequence[str]) -> None:
        """Delete the rows of ``ids``."""
        for page in in_pages(ids):
            self._conn.execute(
                sql.SQL("DELETE FROM {} WHERE {}::text = ANY(%s)").format(self._table, self._id),
                [list(page)],
            )

    def add(
        self,
        ids: Sequence[str],
        embeddings: Vectors,
        documents: Sequence[str | None],
        metadatas: Sequence[Mapping[str, Any] | None],
    ) -> None:
        """Insert a row a document; an id the id column's type cannot hold (text in an
        integer or uuid column) is replaced by one it can (the next integers, a UUID)."""
        settings = self._settings
        kind = self._conn.execute(
            "SELECT atttypid::regtype::text FROM pg_attribute WHERE attrelid = %s::regclass "
            "AND attname = %s",
            [self._table.as_string(self._conn), settings.id_column],
        ).fetchone()
        numeric = kind is not None and kind[0] in ("integer", "bigint", "smallint")
        first_id = self._next_number(settings.id_column) if numeric else 0
        # A column an identity or a sequence numbers gets the next numbers of the copy: a
        # copied value would repeat the original's, and a default could draw on the live
        # table's sequence, which the copy's serial column still names.
        stored = _stored_columns(self._conn, self._table)
        numbered = {
            name: self._next_number(name)
            for name, counted in stored.items()
            if counted and name != settings.id_column
        }
        rows = []
        for n, (doc_id, row, text, metadata) in enumerate(
            zip(ids, embeddings, documents, metadatas, strict=True)
        ):
            record: dict[str, Any] = dict(metadata or {})
            record.update({name: start + n for name, start in numbered.items()})
            if numeric:
                record[settings.id_column] = first_id + n
            elif kind is not None and kind[0] == "uuid":
                record[settings.id_column] = str(uuid.uuid5(uuid.NAMESPACE_URL, doc_id))
            else:
                record[settings.id_column] = doc_id
            record[settings.embedding_column] = vector_text(row)
            if settings.text_column is not None:
                record[settings.text_column] = text
            rows.append(json.dumps(record))
        columns = sql.SQL(", ").join(map(sql.Identifier, stored))
        statement = sql.SQL(
            "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} "
            "FROM jsonb_populate_record(NULL::{}, %s)"
        ).format(self._table, columns, columns, self._table)
        with self._conn.cursor() as cursor:
            cursor.executemany(statement, [[row] for row in rows])

    def _next_number(self, column: str) -> int:
        """One past the largest value of ``column`` in the copy."""
        found = self._conn.execute(
            sql.SQL("SELECT coalesce(max({}), 0) FROM {}").format(
                sql.Identifier(column), self._table
            )
        ).fetchone()
        return int(found[0]) + 1 if found else 1

    def update(
        self, ids: Sequence[str], *, embeddings: Vectors, documents: Sequence[str] | None = None
    ) -> None:
        """Give the rows of ``ids`` these vectors (and texts, in ``text_column``)."""
        settings = self._settings
        vector = sql.Identifier(settings.embedding_column)
        text = None if documents is None or settings.text_column is None else settings.text_column
        assignments = [sql.SQL("{} = %s::vector").format(vector)]
        if text is not None:
            assignments.append(sql.SQL("{} = %s").format(sql.Identifier(text)))
        statement = sql.SQL("UPDATE {} SET {} WHERE {}::text = %s").format(
            self._table, sql.SQL(", ").join(assignments), self._id
        )
        rows = []
        for n, doc_id in enumerate(ids):
            values: list[Any] = [vector_text(embeddings[n])]
            if text is not None and documents is not None:
                values.append(documents[n])
            rows.append([*values, doc_id])
        with self._conn.cursor() as cursor:
            cursor.executemany(statement, rows)

    def set_texts(self, texts: Mapping[str, str]) -> None:
        """Give the rows of the documents (by id) these texts in ``text_column``, their
        vectors kept."""
        column = self._settings.text_column
        if column is None or not texts:
            return
        statement = sql.SQL("UPDATE {} SET {} = %s WHERE {}::text = %s").format(
            self._table, sql.Identifier(column), self._id
        )
        with self._conn.cursor() as cursor:
            cursor.executemany(statement, [[text, doc_id] for doc_id, text in texts.items()])


class PgvectorCopies:
    """The drill's copy of the pgvector table of ``[retriever.pgvector]``: made on entering
    (after sweeping what killed drills left), set aside (renamed) while an incident changes a
    fresh copy, put back by the restore, and dropped on leaving however it ends."""

    def __init__(self, settings: Settings, live_names: Iterable[str], drill_id: str) -> None:
        self._settings = settings.retriever.pgvector
        self._live = sorted(live_names)
        self._drill_id = drill_id
        self._conn: psycopg.Connection[Any] | None = None
        self.names: dict[str, str] = {}
        """Live table to its copy, as ``[retriever.pgvector] table`` names them."""
        self._indexes_held: dict[str, list[tuple[str, str]]] = {}

    def __enter__(self) -> PgvectorCopies:
        self._conn = connect(self._settings)
        try:
            sweep_pgvector_copies(self._conn)
            for table in self._live:
                self.names[table] = copy_pgvector_table(self._conn, table, self._drill_id)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        if self._conn is None:
            return
        for copy in self.names.values():
            _drop(self._conn, copy)
            _drop(self._conn, self._held(copy))
        self._conn.close()
        self._conn = None

    def _open(self) -> psycopg.Connection[Any]:
        assert self._conn is not None, "use PgvectorCopies as a context manager"
        return self._conn

    @staticmethod
    def _held(copy: str) -> str:
        *schema, name = split_table_name(copy)
        return shown_table_name(*schema, _held_name(name))

    def index(self, live: str) -> PgvectorIndex:
        """The copy of table ``live`` as incidents write to it."""
        return PgvectorIndex(self._open(), self._settings, self.names[live])

    def hold(self) -> None:
        """Rename every copy and its indexes aside and copy its table again under its name:
        an HNSW index built anew may rank a few queries differently, so the restore puts
        back the one the quiet cycles searched. The fresh copy's indexes take the quiet
        one's names, so that a run's record of the table differs only where an incident
        changed it."""
        conn = self._open()
        for number, (live, copy) in enumerate(self.names.items()):
            held = split_table_name(self._held(copy))[-1]
            try:
                with conn.transaction():  # a copy that fails leaves the quiet one where it was
                    aside = f"{DRILL_PREFIX}{self._drill_id}-{number}"
                    renamed = self._rename_indexes(conn, copy, aside)
                    conn.execute(
                        sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                            sql.Identifier(*split_table_name(copy)), sql.Identifier(held)
                        )
                    )
                    copy_pgvector_table(conn, live, self._drill_id)
            except psycopg.Error as error:
                raise RetrieverError(
                    f"cannot set pgvector copy {copy!r} aside: {describe_exception(error)}"
                ) from error
            self._indexes_held[copy] = renamed  # only once the transaction has committed

    @staticmethod
    def _rename_indexes(
        conn: psycopg.Connection[Any], copy: str, aside: str
    ) -> list[tuple[str, str]]:
        """Rename the indexes of table ``copy`` to ``aside``-numbered names; each (name,
        name while held)."""
        *schema, _ = split_table_name(copy)
        found = conn.execute(
            "SELECT c.relname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid "
            "WHERE x.indrelid = %s::regclass ORDER BY c.relname",
            [sql.Identifier(*split_table_name(copy)).as_string(conn)],
        ).fetchall()
        renamed = [(str(name), _held_name(f"{aside}-{n}")) for n, (name,) in enumerate(found)]
        for name, held in renamed:
            conn.execute(
                sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                    sql.Identifier(*schema, name), sql.Identifier(held)
                )
            )
        return renamed

    def restore(self) -> None:
        """Drop the changed copies and put back those ``hold`` set aside, indexes and all (a
        copy whose hold failed is still the quiet one, and stays)."""
        conn = self._open()
        for copy in self.names.values():
            if copy not in self._indexes_held:
                continue
            *schema, name = split_table_name(copy)
            try:
                with conn.transaction():
                    conn.execute(
                        sql.SQL("DROP TABLE IF EXISTS {}").format(
                            sql.Identifier(*split_table_name(copy))
                        )
                    )
                    conn.execute(
                        sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                            sql.Identifier(*split_table_name(self._held(copy))),
                            sql.Identifier(name),
                        )
                    )
                    for index, aside in self._indexes_held[copy]:
                        conn.execute(
                            sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                                sql.Identifier(*schema, aside), sql.Identifier(index)
                            )
                        )
            except psycopg.Error as error:
                raise RetrieverError(
                    f"cannot put pgvector copy {copy!r} back: {describe_exception(error)}"
                ) from error
            del self._indexes_held[copy]

    def rebuild(self, live: str, hnsw: Mapping[str, Any]) -> None:
        """Rebuild the HNSW indexes of ``live``'s copy with ``hnsw``'s ``max_neighbors`` (as
        ``m``) and ``ef_construction`` (``ALTER INDEX ... SET``, ``REINDEX``); the search
        breadth stays the session's ``hnsw.ef_search``. ``NotInjectableError`` for a table
        without an HNSW index (searched exactly, or through IVFFlat)."""
        conn = self._open()
        table = sql.Identifier(*split_table_name(self.names[live]))
        indexes = hnsw_indexes(conn, table)
        if not indexes:
            raise NotInjectableError(
                f"not injectable on pgvector table {live!r}: it has no HNSW index to rebuild "
                "(without one its searches are exact)"
            )
        options = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.SQL(option), sql.Literal(int(hnsw[chroma])))
            for option, (chroma, _) in _PGVECTOR_HNSW.items()
            if chroma in hnsw
        )
        for index, _ in indexes:
            conn.execute(sql.SQL("ALTER INDEX {} SET ({})").format(index, options))
            conn.execute(sql.SQL("REINDEX INDEX {}").format(index))
