"""Which version of each document an index holds, and since when: what a freshness check
reads where evalkit can read the index itself.

``IndexVersions.versions(doc_ids)`` gives one row per document the index holds:
``content_hash`` (evalkit's hash of title, text and metadata, as ``evalkit index`` stores
it), ``text_hash`` (``text_hash`` of the stored text) and ``indexed_at`` (when it was
written, naive UTC, or missing). A document held as several rows (chunks) is one row with no
hashes and the earliest write time of its chunks. Where each kind (Chroma, pgvector, Qdrant)
keeps them: docs/freshness.md, "Telling that the index reflects a change".
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import pandas as pd

from evalkit.clock import MAX_EPOCH_SECONDS, naive_utc
from evalkit.errors import ConfigError, RetrieverError
from evalkit.goldset.corpus import RESERVED_METADATA_PREFIX, content_hash
from evalkit.records import Document
from evalkit.retrievers.base import describe_exception
from evalkit.retrievers.chroma_client import (
    CONTENT_HASH_KEY,
    INDEXED_AT_KEY,
    TITLE_KEY,
    close_client,
    get_collection,
    open_chroma_client,
)
from evalkit.retrievers.kinds import RETRIEVER_KINDS, listed

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

    from evalkit.config import PgvectorSettings, QdrantSettings, Settings
    from evalkit.retrievers.factory import RetrieverOptions

__all__ = [
    "VERSION_COLUMNS",
    "ChromaVersions",
    "IndexVersions",
    "PgvectorVersions",
    "QdrantVersions",
    "open_chroma_versions",
    "open_index_versions",
    "open_pgvector_versions",
    "open_qdrant_versions",
    "parse_time",
    "reads_index",
    "text_hash",
    "version_kinds",
]

VERSION_COLUMNS = ("doc_id", "content_hash", "text_hash", "indexed_at")
"""The columns of ``IndexVersions.versions``."""

_PAGE = 1000

T = TypeVar("T")


def text_hash(text: str) -> str:
    """SHA-256 hex digest of ``text`` with its whitespace runs made single spaces: the same
    text stored by another tool (re-wrapped, trailing newline) hashes alike."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()


def parse_time(value: object, *, field: str = "the write time") -> datetime | None:
    """A stored write time as naive UTC: a ``datetime`` (naive means UTC), ISO 8601 text or
    epoch seconds; None for anything else. ConfigError, naming ``field``, for a number that
    is not epoch seconds (milliseconds, say): every lag measured from it would be wrong."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, bool):
        return None
    elif isinstance(value, int | float):
        if not math.isfinite(value):
            return None
        if not -MAX_EPOCH_SECONDS < value < MAX_EPOCH_SECONDS:
            raise ConfigError(
                f"{field} holds {value}, which is no time in epoch seconds (milliseconds or "
                "nanoseconds?): store write times as epoch seconds or ISO 8601 text "
                "(docs/freshness.md)"
            )
        moment = datetime.fromtimestamp(float(value), UTC)
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return naive_utc(moment)


class IndexVersions(Protocol):
    """What a freshness check reads of an index: the versions it holds of some documents."""

    @property
    def kind(self) -> str:
        """The index's kind: ``chroma``, ``pgvector`` or ``qdrant``."""
        ...

    @property
    def name(self) -> str:
        """The index as a subject of checks, ``kind:collection`` or ``kind:table``."""
        ...

    def versions(self, doc_ids: Sequence[str]) -> pd.DataFrame:
        """One row (``VERSION_COLUMNS``) per document of ``doc_ids`` the index holds."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


_Version = tuple[str, str | None, str | None, datetime | None]


def _version(
    doc_id: object, content: str | None, text: object, written: object, field: str
) -> _Version:
    """The ``VERSION_COLUMNS`` row of ``doc_id``; ``field`` names where ``written`` is kept."""
    return (
        str(doc_id),
        content,
        text_hash(text) if isinstance(text, str) else None,
        parse_time(written, field=field),
    )


def _frame(rows: Iterable[_Version]) -> pd.DataFrame:
    """One row per document: a document held as several rows keeps no hash (its chunks'
    texts are not its own) and its earliest write time."""
    frame = pd.DataFrame(list(rows), columns=list(VERSION_COLUMNS))
    frame["indexed_at"] = pd.to_datetime(frame["indexed_at"])
    if frame.empty or frame["doc_id"].is_unique:
        return frame
    counts = frame.groupby("doc_id", sort=False)["doc_id"].transform("size")
    chunked = counts > 1
    frame.loc[chunked, ["content_hash", "text_hash"]] = None
    earliest = frame.groupby("doc_id", sort=False)["indexed_at"].transform("min")
    frame["indexed_at"] = earliest
    return frame.drop_duplicates("doc_id").reset_index(drop=True)


def _read_pages(
    doc_ids: Sequence[str],
    read: Callable[[list[str]], T],
    *,
    what: str,
    errors: type[Exception] = Exception,
) -> Iterator[T]:
    """``read`` of each page of the distinct ``doc_ids``; RetrieverError ``cannot read
    {what}`` when it raises one of ``errors``."""
    unique = list(dict.fromkeys(doc_ids))
    for start in range(0, len(unique), _PAGE):
        try:
            found = read(unique[start : start + _PAGE])
        except errors as error:
            raise RetrieverError(f"cannot read {what}: {describe_exception(error)}") from error
        yield found


class ChromaVersions:
    """The versions a Chroma collection holds (its documents' evalkit metadata)."""

    kind = "chroma"

    def __init__(self, collection: Collection, *, close: Callable[[], None] | None = None) -> None:
        self._collection = collection
        self._close = close

    @property
    def name(self) -> str:
        """``chroma:COLLECTION``."""
        return f"chroma:{self._collection.name}"

    def versions(self, doc_ids: Sequence[str]) -> pd.DataFrame:
        """The stored version of each document of ``doc_ids`` the collection holds."""
        return _frame(self._rows(doc_ids))

    def _rows(self, doc_ids: Sequence[str]) -> Iterator[_Version]:
        # Chroma raises its own errors and transport errors alike: any is a failed read.
        pages = _read_pages(
            doc_ids,
            lambda page: self._collection.get(ids=page, include=["metadatas", "documents"]),
            what=f"documents of Chroma collection '{self._collection.name}'",
        )
        for got in pages:
            metadatas = got.get("metadatas") or []
            documents = got.get("documents") or []
            for position, doc_id in enumerate(got["ids"]):
                metadata = dict(metadatas[position] or {}) if position < len(metadatas) else {}
                text = documents[position] if position < len(documents) else None
                stored = metadata.get(CONTENT_HASH_KEY)
                if not stored and text is not None:
                    stored = _foreign_hash(str(doc_id), text, metadata)
                yield _version(
                    doc_id,
                    str(stored) if stored else None,
                    text,
                    metadata.get(INDEXED_AT_KEY),
                    f"metadata key {INDEXED_AT_KEY!r}",
                )

    def close(self) -> None:
        """Close the client this reader opened (none when given a collection)."""
        if self._close is not None:
            self._close()


def _foreign_hash(doc_id: str, text: str, metadata: dict[str, Any]) -> str:
    """The content hash ``evalkit index`` would have stored for a document another tool
    wrote (``evalkit.audit.snapshot`` derives it alike)."""
    title = metadata.get(TITLE_KEY)
    own = {
        key: value
        for key, value in metadata.items()
        if not key.startswith(RESERVED_METADATA_PREFIX) and value is not None
    }
    document = Document(id=doc_id, text=text, title=str(title or ""), metadata=own)
    return content_hash(document)


class PgvectorVersions:
    """The versions a pgvector table holds: its text column and, when named, the column of
    each row's write time."""

    kind = "pgvector"

    def __init__(self, settings: PgvectorSettings, *, indexed_at_column: str | None) -> None:
        # psycopg is an optional extra: only a pgvector index is read with it.
        import psycopg
        from psycopg import sql

        from evalkit.retrievers.pgvector import open_connection, split_table_name

        if settings.dsn is None or not settings.table:
            raise ConfigError(
                "reading a pgvector table needs dsn and table in [retriever.pgvector] "
                "(docs/retrievers.md)"
            )
        if settings.text_column is None and indexed_at_column is None:
            raise ConfigError(
                f"evalkit cannot tell which version of a document table {settings.table!r} "
                "holds: set text_column in [retriever.pgvector] or indexed_at_field in "
                '[freshness], or probe the retriever instead (method = "probe")'
            )
        self._settings = settings
        self._table_name = settings.table
        self._time_column = indexed_at_column
        parts = split_table_name(settings.table)
        try:
            self._conn = open_connection(settings.dsn, connect_timeout=settings.connect_timeout)
        except psycopg.Error as error:
            raise RetrieverError(
                f"cannot connect to PostgreSQL to read table {settings.table!r}: "
                f"{describe_exception(error)}"
            ) from error
        try:
            id_type = self._conn.execute(
                "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
                " WHERE a.attrelid = to_regclass(%s) AND a.attname = %s AND NOT a.attisdropped",
                (sql.Identifier(*parts).as_string(self._conn), settings.id_column),
            ).fetchone()
        except psycopg.Error as error:
            self._conn.close()
            raise RetrieverError(
                f"cannot read the catalog of table {settings.table!r}: {describe_exception(error)}"
            ) from error
        if id_type is None:
            self._conn.close()
            raise RetrieverError(
                f"table {settings.table!r} does not exist or has no column "
                f"{settings.id_column!r} (id_column in [retriever.pgvector])"
            )
        columns = [
            sql.SQL("{column}::text").format(column=sql.Identifier(settings.id_column)),
            sql.SQL("{column}::text").format(column=sql.Identifier(settings.text_column))
            if settings.text_column
            else sql.SQL("NULL::text"),
            sql.Identifier(indexed_at_column) if indexed_at_column else sql.SQL("NULL"),
        ]
        self._query = sql.SQL(
            "SELECT {columns} FROM {table} WHERE {id} = ANY(%s::{id_type}[])"
        ).format(
            columns=sql.SQL(", ").join(columns),
            table=sql.Identifier(*parts),
            id=sql.Identifier(settings.id_column),
            id_type=sql.SQL(str(id_type[0])),
        )

    @property
    def name(self) -> str:
        """``pgvector:TABLE``."""
        return f"pgvector:{self._table_name}"

    def versions(self, doc_ids: Sequence[str]) -> pd.DataFrame:
        """The stored version of each document of ``doc_ids`` the table holds."""
        # psycopg is an optional extra: only a pgvector index is read with it.
        import psycopg

        pages = _read_pages(
            doc_ids,
            lambda page: self._conn.execute(self._query, (page,)).fetchall(),
            what=f"rows of table {self._table_name!r}",
            errors=psycopg.Error,
        )
        return _frame(
            _version(doc_id, None, text, written, f"column {self._time_column!r}")
            for fetched in pages
            for doc_id, text, written in fetched
        )

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


class QdrantVersions:
    """The versions a Qdrant collection holds: its points' text and write-time payloads."""

    kind = "qdrant"

    def __init__(
        self, settings: QdrantSettings, *, collection: str | None, indexed_at_key: str | None
    ) -> None:
        # qdrant_client is an optional extra: only a Qdrant index is read with it.
        from evalkit.retrievers.qdrant import collection_name, open_client

        name = collection_name(settings, collection)
        if (settings.url is None) == (settings.path is None):
            raise ConfigError(
                "reading a Qdrant collection needs one of url or path in [retriever.qdrant]"
            )
        if settings.text_payload_key is None and indexed_at_key is None:
            raise ConfigError(
                f"evalkit cannot tell which version of a document Qdrant collection {name!r} "
                "holds: set text_payload_key in [retriever.qdrant] or indexed_at_field in "
                '[freshness], or probe the retriever instead (method = "probe")'
            )
        self._settings = settings
        self._collection = name
        self._time_key = indexed_at_key
        try:
            self._client = open_client(settings, settings.api_key())
        except Exception as error:  # the client raises its own and lock errors alike
            raise RetrieverError(f"cannot open Qdrant: {describe_exception(error)}") from error

    @property
    def name(self) -> str:
        """``qdrant:COLLECTION``."""
        return f"qdrant:{self._collection}"

    def versions(self, doc_ids: Sequence[str]) -> pd.DataFrame:
        """The stored version of each document of ``doc_ids`` the collection holds."""
        # The client raises its own errors and transport errors alike: any is a failed read.
        pages = _read_pages(
            doc_ids, self._points, what=f"points of Qdrant collection {self._collection!r}"
        )
        return _frame(
            _version(
                doc_id,
                None,
                payload.get(self._settings.text_payload_key or ""),
                payload.get(self._time_key) if self._time_key else None,
                f"payload key {self._time_key!r}",
            )
            for points in pages
            for doc_id, payload in points
        )

    def _points(self, page: list[str]) -> list[tuple[str, dict[str, Any]]]:
        # qdrant_client is an optional extra: only a Qdrant index is read with it.
        from qdrant_client import models

        key = self._settings.id_payload_key
        if key is None:
            ids: list[int | str] = [int(value) if value.isdigit() else value for value in page]
            found = self._client.retrieve(
                self._collection, ids=ids, with_payload=True, with_vectors=False
            )
            return [(str(point.id), dict(point.payload or {})) for point in found]
        wanted = models.Filter(
            must=[models.FieldCondition(key=key, match=models.MatchAny(any=page))]
        )
        points: list[tuple[str, dict[str, Any]]] = []
        offset: Any = None
        while True:
            batch, offset = self._client.scroll(
                self._collection,
                scroll_filter=wanted,
                limit=_PAGE,
                offset=offset,
                with_payload=True,
                with_vectors=False,
            )
            points.extend(
                (str((point.payload or {}).get(key)), dict(point.payload or {})) for point in batch
            )
            if offset is None:
                return points

    def close(self) -> None:
        """Close the client (a local store stays locked until it is)."""
        self._client.close()


def open_chroma_versions(options: RetrieverOptions, settings: Settings) -> IndexVersions:
    """The versions of the Chroma collection ``options`` name, on its server or store."""
    if not options.collection:
        raise ConfigError("name the Chroma collection: `collection` NAME")
    url = options.chroma_url or settings.chroma_url
    client = open_chroma_client(path=None if url else settings.resolved_chroma_path, url=url)
    try:
        collection = get_collection(client, options.collection)
    except BaseException:
        close_client(client)
        raise
    return ChromaVersions(collection, close=lambda: close_client(client))


def open_pgvector_versions(_options: RetrieverOptions, settings: Settings) -> IndexVersions:
    """The versions of the pgvector table of ``[retriever.pgvector]``."""
    time_field = settings.freshness.indexed_at_field
    return PgvectorVersions(settings.retriever.pgvector, indexed_at_column=time_field)


def open_qdrant_versions(options: RetrieverOptions, settings: Settings) -> IndexVersions:
    """The versions of the Qdrant collection of the options or ``[retriever.qdrant]``."""
    return QdrantVersions(
        settings.retriever.qdrant,
        collection=options.collection,
        indexed_at_key=settings.freshness.indexed_at_field,
    )


def open_index_versions(options: RetrieverOptions, settings: Settings) -> IndexVersions:
    """The reader of the index ``options`` name, as its kind declares it
    (``RetrieverKind.index_versions``: a Chroma collection, the pgvector table or the Qdrant
    collection of the settings); ConfigError for a retriever whose index evalkit cannot
    read, with what to do instead."""
    name = options.resolved_kind(settings)
    kind = RETRIEVER_KINDS.get(name)
    if kind is not None and kind.index_versions is not None:
        return kind.open_versions(options, settings)
    readable = listed([RETRIEVER_KINDS[known].shown for known in version_kinds()])
    raise ConfigError(
        f"evalkit cannot read the index behind the retriever {name!r} (it reads "
        f'{readable}): probe it instead (method = "probe"), which queries it with a passage of '
        "each changed document"
    )


def version_kinds() -> list[str]:
    """The retriever kinds whose index evalkit can read (``open_index_versions``)."""
    return [name for name, kind in RETRIEVER_KINDS.items() if kind.index_versions is not None]


def reads_index(method: str, options: RetrieverOptions, settings: Settings) -> bool:
    """Whether a freshness check of ``method`` reads the index ``options`` name (``index``,
    or ``auto`` with an index evalkit can read) rather than probing the retriever."""
    return method == "index" or (
        method == "auto" and options.resolved_kind(settings) in version_kinds()
    )
