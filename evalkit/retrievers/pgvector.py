"""pgvector as a retriever: the user's own PostgreSQL table, queried with evalkit's query
embeddings over one reused connection (psycopg 3).

Each query is one statement, timed alone, shaped (``ORDER BY embedding <op> vector LIMIT k``
in a ``LATERAL`` subquery) for the planner to use an HNSW or IVFFlat index. Search settings
are set with ``set_config(..., true)``, so they last one transaction and never leak into a
pooled connection. Requires the ``pgvector`` extra; imported only when asked for.
docs/retrievers.md, "pgvector".
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from evalkit.config import DistanceMetric, PgvectorSettings, SearchMode
from evalkit.embedding import TextEmbedder
from evalkit.errors import CollectionNotFoundError, ConfigError, RetrieverError
from evalkit.records import Query, QueryResult
from evalkit.redaction import register_secrets, url_secrets
from evalkit.retrievers.base import (
    LATENCY_TIMING,
    PER_QUERY,
    IndexSize,
    describe_exception,
    elapsed_ms,
    failed_result,
    ranked_docs,
    redact,
    tenant_groups,
)
from evalkit.retrievers.contents import Contents, Vectors, vector_rows
from evalkit.retrievers.embedded import EmbeddedQueryRetriever
from evalkit.retrievers.model_check import (
    REEMBED_SAMPLE,
    ReembeddingCheck,
    check_reembedding,
    describe_model_check,
)

__all__ = [
    "METRICS",
    "VECTOR_TYPES",
    "PgvectorMetric",
    "PgvectorRetriever",
    "open_connection",
    "read_pgvector_contents",
    "shown_table_name",
    "split_table_name",
]


@dataclass(frozen=True, slots=True)
class PgvectorMetric:
    """How one distance is searched in pgvector and turned into a score."""

    operator: str
    """pgvector's distance operator: what ``ORDER BY ... LIMIT k`` sorts on."""
    opclass_suffix: str
    """Operator class an index must have to serve this operator (``vector_`` + suffix)."""
    score: Callable[[float], float]
    """Score from distance, higher is better."""
    score_meaning: str


METRICS: dict[DistanceMetric, PgvectorMetric] = {
    DistanceMetric.cosine: PgvectorMetric(
        "<=>", "cosine_ops", lambda distance: 1.0 - distance, "cosine similarity (1 - distance)"
    ),
    DistanceMetric.inner_product: PgvectorMetric(
        "<#>", "ip_ops", lambda distance: -distance, "inner product (<#> is its negation)"
    ),
    DistanceMetric.l2: PgvectorMetric(
        "<->", "l2_ops", lambda distance: -distance, "negated Euclidean distance"
    ),
}
"""Operator and score per metric. ``<#>`` is the negated inner product, so its score is the
inner product itself; for L2 the score is the distance negated (order-preserving, not a
similarity: it is not comparable with Chroma's ``l2`` score)."""

_SPACES = {
    DistanceMetric.cosine: "cosine",
    DistanceMetric.inner_product: "ip",
    DistanceMetric.l2: "l2",
}

VECTOR_TYPES = frozenset({"vector", "halfvec"})
"""pgvector column types evalkit can search (dense vectors, full or half precision)."""

_MIN_ITERATIVE_SCAN = (0, 8)
_DEFAULT_EF_SEARCH = 40
_MAX_EF_SEARCH = 1000
_SEPARATOR = "\x1f"
_FLOAT4_FORMAT = "{:.9g}".format

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    type_name: str
    typmod: int
    declared: str
    number: int


@dataclass(frozen=True, slots=True)
class _Index:
    name: str
    method: str
    opclass: str
    options: tuple[str, ...] = ()
    """Its build options as the catalog lists them (``m=16``), those set."""


class PgvectorRetriever(EmbeddedQueryRetriever[str | None]):
    """The user's pgvector table, queried with evalkit's own query embeddings.

    Checks the extension, table, columns and dimension before any query (the dimension
    waits for ``verify_model()`` with ``defer_model_check``); a lost connection is re-opened
    once. A bad tenant column is a ``ConfigError``; a missing id, embedding or text column a
    ``RetrieverError``. Batches, tenants and scores: docs/retrievers.md, "pgvector".
    """

    def __init__(
        self,
        settings: PgvectorSettings,
        embedder: TextEmbedder,
        *,
        where_key: str | None = None,
        batch_size: int = 64,
        defer_model_check: bool = False,
    ) -> None:
        super().__init__(embedder, batch_size=batch_size)
        if settings.dsn is None:
            raise ConfigError(
                "the pgvector retriever needs a connection string: set dsn in "
                '[retriever.pgvector] of evalkit.toml (docs/retrievers.md); dsn = "" '
                "takes libpq's defaults (PGHOST, PGPORT, PGDATABASE, PGUSER)"
            )
        if not settings.table:
            raise ConfigError(
                "the pgvector retriever needs a table: set table in [retriever.pgvector]"
            )
        self._settings = settings
        self._dsn = settings.dsn
        self._secrets = _dsn_secrets(settings.dsn)
        register_secrets(self._secrets)
        self._metric = METRICS[settings.metric]
        self._tenant_column = where_key or settings.tenant_column
        self._tenant_option = (
            "`where_key`" if where_key else "tenant_column in [retriever.pgvector]"
        )
        self._table_parts = split_table_name(settings.table)
        self._table = sql.Identifier(*self._table_parts)
        self._model_checked = False
        self._reembedding: ReembeddingCheck | None = None
        self._sample_skipped: str | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._conn = self._connect()
        try:
            try:
                self._inspect()
            except psycopg.Error as error:
                raise RetrieverError(
                    f"cannot read the catalog or table {settings.table!r} on PostgreSQL "
                    f"({self._where()}): {self._redact(describe_exception(error))}"
                ) from error
            self.check()
            if not defer_model_check:
                self.verify_model()
        except BaseException:
            self.close()
            raise

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return open_connection(self._dsn, connect_timeout=self._settings.connect_timeout)
        except psycopg.Error as error:
            raise RetrieverError(
                f"cannot connect to PostgreSQL ({self._where()}): "
                f"{self._redact(describe_exception(error))}. Check dsn in [retriever.pgvector] "
                "and that the server is running and reachable."
            ) from error

    def _where(self) -> str:
        params = _safe_conninfo(self._dsn)
        host = params.get("host") or params.get("hostaddr") or "default host"
        port = params.get("port") or "5432"
        dbname = params.get("dbname") or "default database"
        return f"{host}:{port}/{dbname}"

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets)

    @property
    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    def _inspect(self) -> None:
        conn = self._connection
        row = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()
        if row is None:
            raise RetrieverError(
                f"the vector extension is not installed in database {conn.info.dbname!r} "
                f"({self._where()}); it holds no pgvector table to query"
            )
        self._pgvector_version = str(row[0])
        qualified = self._table.as_string(conn)
        found = conn.execute(
            "SELECT c.oid, n.nspname, c.relname, c.reltuples FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
            (qualified,),
        ).fetchone()
        if found is None:
            raise CollectionNotFoundError(
                f"table {self._settings.table!r} does not exist in database "
                f"{conn.info.dbname!r} ({self._where()}) or is not visible to user "
                f"{conn.info.user!r}; {self._vector_tables_hint(conn)}"
            )
        self._oid = int(found[0])
        self._qualified_name = shown_table_name(str(found[1]), str(found[2]))
        self._estimated_rows = max(int(found[3]), -1)
        columns = {
            name: _Column(name, type_name, int(typmod), declared, int(number))
            for name, type_name, typmod, declared, number in conn.execute(
                "SELECT a.attname, t.typname, a.atttypmod, format_type(a.atttypid, a.atttypmod),"
                " a.attnum FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
                " WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped",
                (self._oid,),
            ).fetchall()
        }
        settings = self._settings
        listed = ", ".join(sorted(columns))
        if self._tenant_column is not None and self._tenant_column not in columns:
            # A tenant column is chosen per run, as Chroma's and Qdrant's tenant keys are: a
            # name that is not there is a mistake in the options, not a failing table.
            raise ConfigError(
                f"table {self._qualified_name} has no column {self._tenant_column!r} "
                f"({self._tenant_option}) to hold each row's tenant; its columns are: {listed}"
            )
        wanted = {
            "id_column": settings.id_column,
            "embedding_column": settings.embedding_column,
            "text_column": settings.text_column,
        }
        for setting, name in wanted.items():
            if name is not None and name not in columns:
                raise RetrieverError(
                    f"table {self._qualified_name} has no column {name!r} ({setting}); its "
                    f"columns are: {listed}"
                )
        tenant = columns.get(self._tenant_column) if self._tenant_column else None
        if tenant is not None and (tenant.type_name in VECTOR_TYPES or tenant.type_name[:1] == "_"):
            # Every query would fail comparing its tenant with a vector or an array.
            raise ConfigError(
                f"the tenant column {tenant.name!r} ({self._tenant_option}) of "
                f"{self._qualified_name} is {tenant.declared}: a tenant is one value (text or "
                "a number); name the column that holds each row's tenant"
            )
        embedding = columns[settings.embedding_column]
        if embedding.type_name not in VECTOR_TYPES:
            raise RetrieverError(
                f"column {embedding.name!r} of {self._qualified_name} is {embedding.declared}, "
                f"not a pgvector column ({' or '.join(sorted(VECTOR_TYPES))})"
            )
        self._embedding = embedding
        self._dimension = embedding.typmod if embedding.typmod > 0 else self._sampled_dimension()
        self._indexes = [
            _Index(str(name), str(method), str(opclass), tuple(map(str, options)))
            for name, method, opclass, options in conn.execute(
                "SELECT i.relname, am.amname, opc.opcname, coalesce(i.reloptions, '{}')"
                " FROM pg_index x"
                " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam"
                " JOIN pg_opclass opc ON opc.oid = x.indclass[0]"
                " WHERE x.indrelid = %s AND x.indkey[0] = %s ORDER BY i.relname",
                (self._oid, embedding.number),
            ).fetchall()
        ]

    def _vector_tables_hint(self, conn: psycopg.Connection[Any]) -> str:
        tables = [
            shown_table_name(str(schema), str(table))
            for schema, table in conn.execute(
                "SELECT DISTINCT n.nspname, c.relname FROM pg_attribute a"
                " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n"
                " ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid"
                " WHERE t.typname IN ('vector', 'halfvec') AND c.relkind IN ('r', 'p', 'v', 'm')"
                " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
                " ORDER BY 1, 2 LIMIT 20"
            ).fetchall()
        ]
        if not tables:
            return "the database has no table with a vector column"
        return "tables with a vector column: " + ", ".join(tables)

    def _sampled_dimension(self) -> int | None:
        """Dimension of a stored vector, for a column declared without one (``vector``)."""
        query = sql.SQL(
            "SELECT vector_dims({column}) FROM {table} WHERE {column} IS NOT NULL LIMIT 1"
        )
        row = self._connection.execute(
            query.format(column=sql.Identifier(self._embedding.name), table=self._table)
        ).fetchone()
        return None if row is None else int(row[0])

    @property
    def ann_indexes(self) -> list[str]:
        """Names of the table's HNSW / IVFFlat indexes that serve the configured metric."""
        return [index.name for index in self._indexes if self._serves_metric(index)]

    def _serves_metric(self, index: _Index) -> bool:
        return index.method in ("hnsw", "ivfflat") and index.opclass == (
            f"{self._embedding.type_name}_{self._metric.opclass_suffix}"
        )

    def verify_model(self) -> None:
        """Refuse a table whose vectors were made by another model than the query embedder.

        Loads the query model; runs once. The dimensions must agree; with a ``text_column``,
        ``REEMBED_SAMPLE`` rows' texts re-embedded must also agree with their stored vectors
        (``check_reembedding``), which tells apart two models of one dimension.
        """
        if self._model_checked:
            return
        dimension = self._embedder.dimension
        if self._dimension is not None and self._dimension != dimension:
            raise RetrieverError(
                f"column {self._embedding.name!r} of {self._qualified_name} holds "
                f"{self._dimension}-dimensional vectors, but the query embedder "
                f"{self._embedder.name} makes {dimension}-dimensional ones: vectors of "
                "different dimensions cannot be compared. Configure [embedder] with the model "
                "the table was built with."
            )
        if self._settings.text_column is not None:
            self._reembedding = check_reembedding(
                self._sampled_texts(),
                self._embedder,
                store=f"table {self._qualified_name}",
                text_source=f"column {self._settings.text_column!r}",
            )
        self._model_checked = True

    def _sampled_texts(self) -> list[tuple[str, list[float]]]:
        """(text, stored vector) of up to ``REEMBED_SAMPLE`` rows, spread by a hash of their
        ids over the first thousand rows (no sort of the whole table)."""
        query = sql.SQL(
            "SELECT text, vector FROM (SELECT {id}::text AS id, {text}::text AS text, "
            "{embedding}::real[] AS vector FROM {table} WHERE {text} IS NOT NULL "
            "AND {text}::text <> '' AND {embedding} IS NOT NULL LIMIT 1000) AS rows "
            "ORDER BY md5(id) LIMIT %s"
        ).format(
            id=sql.Identifier(self._settings.id_column),
            text=sql.Identifier(str(self._settings.text_column)),
            embedding=sql.Identifier(self._embedding.name),
            table=self._table,
        )
        try:
            with self._connection.transaction():
                self._set_search_options(self._connection, 1)  # statement_timeout
                rows = self._connection.execute(query, (REEMBED_SAMPLE,)).fetchall()
        except psycopg.errors.QueryCanceled:
            # A text column that is nearly all NULL makes the sample a full scan: the
            # check is skipped (describe() says so) rather than holding up the run.
            self._sample_skipped = f"no sample within statement_timeout ({self._where()})"
            return []
        except psycopg.Error as error:
            raise RetrieverError(
                f"cannot read sample rows of {self._qualified_name} to check the embedding "
                f"model ({self._where()}): {self._redact(describe_exception(error))}"
            ) from error
        return [(str(text), list(vector)) for text, vector in rows]

    def _model_check(self) -> dict[str, Any]:
        return describe_model_check(
            self._reembedding,
            text_source=None if self._settings.text_column is None else "rows of text_column",
            unset="set text_column to re-embed sampled rows",
            skipped=self._sample_skipped,
        )

    def _groups(self, queries: Sequence[Query]) -> list[tuple[str | None, list[int]]]:
        return tenant_groups(queries, filtered=self._tenant_column is not None)

    def _retrieve_batch(
        self, batch: Sequence[Query], k: int, tenant: str | None
    ) -> list[QueryResult]:
        start = time.perf_counter()
        try:
            vectors = self._embedder.embed([query.text for query in batch])
        except Exception as error:  # recorded per query below, never swallowed
            if len(batch) == 1:
                message = f"pgvector query failed: {self._redact(describe_exception(error))}"
                return [failed_result(batch[0].id, message, elapsed_ms(start))]
            return [
                result for query in batch for result in self._retrieve_batch([query], k, tenant)
            ]
        results: list[QueryResult] = []
        for position, query in enumerate(batch):
            result, lost = self._search_one(query, vectors[position : position + 1], k, tenant)
            results.append(result)
            if lost:  # the server is gone: the rest of the batch would wait for it again
                message = result.error or "the connection was lost"
                rest = batch[position + 1 :]
                results += [failed_result(other.id, message, result.latency_ms) for other in rest]
                break
        return results

    def _search_one(
        self, query: Query, vector: FloatArray, k: int, tenant: str | None, *, again: bool = True
    ) -> tuple[QueryResult, bool]:
        """``query`` searched alone, so that its latency is the database's answer to it (its
        vector ready: the batch's embedding is evalkit's work, not the database's); and
        whether the connection is lost for good. A lost connection is re-opened and the
        query tried once more on the new one."""
        start = time.perf_counter()
        try:
            conn = self._connection
        except RetrieverError as error:  # the server is still gone
            return failed_result(query.id, str(error), elapsed_ms(start)), True
        try:
            rows = self._search(conn, vector, k, tenant)
        except Exception as error:  # recorded for this query, never swallowed
            latency = elapsed_ms(start)
            message = f"pgvector query failed: {self._redact(describe_exception(error))}"
            if not (conn.closed or conn.broken):
                return failed_result(query.id, message, latency), False
            lost = self._reconnect(message)
            if lost is not None:
                return failed_result(query.id, lost, latency), True
            if again:
                return self._search_one(query, vector, k, tenant, again=False)
            return failed_result(query.id, message, latency), False
        latency = elapsed_ms(start)
        docs = [(str(doc_id), float(distance)) for _, doc_id, distance in rows]
        return (
            QueryResult(
                query_id=query.id,
                docs=ranked_docs(
                    [doc_id for doc_id, _ in docs],
                    [self._metric.score(distance) for _, distance in docs],
                ),
                latency_ms=latency,
            ),
            False,
        )

    def _reconnect(self, message: str) -> str | None:
        """Re-open a lost connection; the error text for the batch when that fails too."""
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        try:
            self._conn = self._connect()
        except RetrieverError as error:
            return f"{message}; the connection was lost and reconnecting failed: {error}"
        return None

    def _search(
        self, conn: psycopg.Connection[Any], vectors: FloatArray, k: int, tenant: str | None
    ) -> list[tuple[Any, ...]]:
        embedding = sql.Identifier(self._embedding.name)
        vector_type = sql.SQL(self._embedding.type_name)
        operator = sql.SQL(self._metric.operator)
        distance = sql.SQL("{embedding} {operator} q.vec").format(
            embedding=embedding, operator=operator
        )
        conditions = [sql.SQL("{embedding} IS NOT NULL").format(embedding=embedding)]
        params: list[Any] = [[vector_text(vector) for vector in vectors]]
        if tenant is not None and self._tenant_column is not None:
            conditions.append(
                sql.SQL("{tenant} = %s").format(tenant=sql.Identifier(self._tenant_column))
            )
            params.append(tenant)
        params.append(k)
        statement = sql.SQL(
            "SELECT q.ord, r.id, r.distance"
            " FROM unnest(%s::{vector_type}[]) WITH ORDINALITY AS q(vec, ord)"
            " CROSS JOIN LATERAL (SELECT {id}::text AS id, {distance} AS distance"
            " FROM {table} WHERE {conditions} ORDER BY {distance} LIMIT %s) AS r"
            " ORDER BY q.ord, r.distance"
        ).format(
            vector_type=vector_type,
            id=sql.Identifier(self._settings.id_column),
            distance=distance,
            table=self._table,
            conditions=sql.SQL(" AND ").join(conditions),
        )
        with conn.transaction():
            self._set_search_options(conn, k)
            return conn.execute(statement, params).fetchall()

    def _search_options(self, k: int) -> dict[str, str]:
        settings = self._settings
        options = {"statement_timeout": f"{math.ceil(settings.statement_timeout * 1000)}ms"}
        if settings.search is SearchMode.exact:
            options["enable_indexscan"] = "off"
        ef_search = settings.hnsw_ef_search
        if self._iterative_scan:
            # An index scan yields hnsw.ef_search candidates (HNSW) or the rows of
            # ivfflat.probes lists (IVFFlat) and a WHERE filter drops rows after it, so
            # without iterative scans a query gets fewer than k rows when k is large or its
            # tenant small. Strict order keeps HNSW's ranking exact; IVFFlat has relaxed only.
            options["hnsw.iterative_scan"] = "strict_order"
            options["ivfflat.iterative_scan"] = "relaxed_order"
        elif k > (ef_search or _DEFAULT_EF_SEARCH):
            ef_search = min(k, _MAX_EF_SEARCH)
        if ef_search is not None:
            options["hnsw.ef_search"] = str(ef_search)
        if settings.ivfflat_probes is not None:
            options["ivfflat.probes"] = str(settings.ivfflat_probes)
        return options

    @property
    def _iterative_scan(self) -> bool:
        return _version(self._pgvector_version) >= _MIN_ITERATIVE_SCAN

    def _set_search_options(self, conn: psycopg.Connection[Any], k: int) -> None:
        options = self._search_options(k)
        calls = sql.SQL(", ").join(sql.SQL("set_config(%s, %s, true)") for _ in options)
        values = [value for pair in options.items() for value in pair]
        conn.execute(sql.SQL("SELECT {calls}").format(calls=calls), values)

    @property
    def index_name(self) -> str:
        """The table, ``schema.table``."""
        return self._qualified_name

    @property
    def space(self) -> str | None:
        """The metric in Chroma's names."""
        return _SPACES.get(self._settings.metric)

    def read_contents(self) -> Contents:
        """Every row as a document (``read_pgvector_contents``)."""
        try:
            return read_pgvector_contents(self._connection, self._settings, self._table)
        except psycopg.Error as error:
            raise RetrieverError(
                f"cannot read pgvector table {self._qualified_name!r}: "
                f"{self._redact(describe_exception(error))}"
            ) from error

    def search_vectors(self, vectors: Vectors, k: int) -> list[list[str]]:
        """The top ``k`` document ids of each vector, with the run's search settings."""
        found: list[list[str]] = [[] for _ in range(len(vectors))]
        for start in range(0, len(vectors), self._batch_size):
            try:
                rows = self._search(
                    self._connection, vectors[start : start + self._batch_size], k, None
                )
            except psycopg.Error as error:
                raise RetrieverError(
                    f"querying pgvector table {self._qualified_name!r} failed: "
                    f"{self._redact(describe_exception(error))}"
                ) from error
            for position, doc_id, _ in rows:
                found[start + int(position) - 1].append(str(doc_id))
        # Rows sharing an id are one document, ranked where its first row is.
        return [list(dict.fromkeys(ids)) for ids in found]

    def describe(self) -> dict[str, Any]:
        """Kind, server, table, columns, metric and search settings; never the password."""
        info = self._conn.info if self._conn is not None and not self._conn.closed else None
        params = _safe_conninfo(self._dsn)
        settings = self._settings
        return {
            "kind": "pgvector",
            "host": info.host if info else params.get("host"),
            "port": info.port if info else params.get("port"),
            "dbname": info.dbname if info else params.get("dbname"),
            "user": info.user if info else params.get("user"),
            "table": self._qualified_name,
            "id_column": settings.id_column,
            "embedding_column": self._embedding.name,
            "embedding_type": self._embedding.declared,
            "text_column": settings.text_column,
            "where_key": self._tenant_column,
            "metric": settings.metric.value,
            "score": self._metric.score_meaning,
            "search": settings.search.value,
            "hnsw_ef_search": settings.hnsw_ef_search,
            "ivfflat_probes": settings.ivfflat_probes,
            "iterative_scan": self._iterative_scan,
            "indexes": [
                {"name": i.name, "method": i.method, "opclass": i.opclass} for i in self._indexes
            ],
            "ann_indexes": self.ann_indexes,
            # Its own field, not the indexes': runs recorded before it lack it.
            "ann_index_options": {
                i.name: sorted(i.options) for i in self._indexes if self._serves_metric(i)
            },
            "estimated_rows": self._estimated_rows,
            "pgvector_version": self._pgvector_version,
            "dimension": self._dimension,
            "model": self._embedder.name,
            "model_check": self._model_check(),
            "batch_size": self._batch_size,
            LATENCY_TIMING: PER_QUERY,
            "statement_timeout": settings.statement_timeout,
        }

    def check(self) -> None:
        """Raise ``RetrieverError`` when the server or the table can no longer be read."""
        try:
            with self._connection.transaction():
                self._connection.execute(
                    sql.SQL("SELECT 1 FROM {table} LIMIT 1").format(table=self._table)
                )
        except psycopg.Error as error:
            if self._conn is not None and (self._conn.closed or self._conn.broken):
                self._conn.close()
                self._conn = None
            raise RetrieverError(
                f"cannot read table {self._qualified_name} on PostgreSQL ({self._where()}): "
                f"{self._redact(describe_exception(error))}"
            ) from error

    def index_fingerprint(self) -> str | None:
        """A hash of every row's id and vector; None when the table cannot be read within
        ``statement_timeout``.

        Reads the whole table (one sequential scan, parallel where the server allows; 1.2 s
        for 200,000 384-dimensional rows on a busy 2-core machine), so it changes whenever a
        row is added, removed or re-embedded; edits of other columns (the text, the tenant)
        leave it alone. It is the table's, whatever the run filters by: a run with a tenant
        column and one without see the same fingerprint of an unchanged table (the filter
        is recorded as ``where_key``). The rows' hashes are summed, so no sort is needed.
        """
        # The empty field after the id keeps the hash of runs recorded without a tenant
        # column, when the tenant was hashed too: an unchanged table keeps its fingerprint.
        row_hash = sql.SQL(
            "('x' || left(md5(convert_to(concat_ws(%s, {id}::text, ''), 'UTF8')"
            " || coalesce({send}({embedding}), ''::bytea)), 16))::bit(64)::bigint"
        ).format(
            id=sql.Identifier(self._settings.id_column),
            send=sql.Identifier(f"{self._embedding.type_name}_send"),
            embedding=sql.Identifier(self._embedding.name),
        )
        statement = sql.SQL("SELECT count(*), coalesce(sum({row_hash}), 0) FROM {table}").format(
            row_hash=row_hash, table=self._table
        )
        conn = self._connection
        try:
            with conn.transaction():
                self._set_search_options(conn, 1)
                row = conn.execute(statement, (_SEPARATOR,)).fetchone()
        except psycopg.Error:
            return None
        if row is None:
            return None
        digest = hashlib.sha256(
            f"pgvector:{self._embedding.type_name}:{self._dimension}:{row[0]}:{row[1]}".encode()
        )
        return digest.hexdigest()

    def index_size(self) -> IndexSize | None:
        """The table's rows (``count(*)``) and the rows holding an embedding; None when the
        table cannot be read within ``statement_timeout``."""
        statement = sql.SQL("SELECT count(*), count({embedding}) FROM {table}").format(
            embedding=sql.Identifier(self._embedding.name), table=self._table
        )
        conn = self._connection
        try:
            with conn.transaction():
                self._set_search_options(conn, 1)
                row = conn.execute(statement).fetchone()
        except psycopg.Error:
            return None
        return None if row is None else IndexSize(documents=int(row[0]), vectors=int(row[1]))

    def close(self) -> None:
        """Close the connection to the server."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def open_connection(dsn: str, *, connect_timeout: float) -> psycopg.Connection[Any]:
    """An autocommit connection to the database of ``dsn``, named ``evalkit`` on the
    server; psycopg.Error when it cannot be opened within ``connect_timeout`` seconds."""
    return psycopg.connect(
        dsn,
        connect_timeout=max(1, math.ceil(connect_timeout)),
        application_name="evalkit",
        autocommit=True,
    )


def read_pgvector_contents(
    conn: psycopg.Connection[Any], settings: PgvectorSettings, table: sql.Identifier
) -> Contents:
    """Every row of ``table`` with a vector as a document, as the pgvector retriever reads
    it: its id from ``id_column``, its vector ``embedding_column``, its text
    ``text_column``, its other columns as metadata; rows sharing an id once, the first."""
    embedding = sql.Identifier(settings.embedding_column)
    rows = conn.execute(
        sql.SQL(
            "SELECT {}::text, {}::real[], to_jsonb(t) - %s FROM {} AS t WHERE {} IS NOT NULL"
        ).format(sql.Identifier(settings.id_column), embedding, table, embedding),
        [settings.embedding_column],
    ).fetchall()
    kept = {settings.id_column, settings.text_column}
    first = list({str(row[0]): row for row in rows[::-1]}.values())[::-1]  # each id's first
    return Contents(
        [str(row[0]) for row in first],
        vector_rows([row[1] for row in first], len(first)),
        [
            None if settings.text_column is None else row[2].get(settings.text_column)
            for row in first
        ],
        [{key: value for key, value in row[2].items() if key not in kept} for row in first],
        len(rows) if len(rows) > len(first) else None,
    )


def split_table_name(table: str) -> tuple[str, ...]:
    """The names in ``table`` (``[retriever.pgvector] table``): ``(table,)`` or ``(schema,
    table)``; ConfigError when it is neither.

    A name is taken as written (``RAG Data.My-Chunks``), or double-quoted as in SQL
    (``"RAG Data"."my.chunks"``, ``""`` for a quote in it), which a name holding a dot or a
    quote needs.
    """
    parts: list[str] = []
    position = 0
    while True:
        if table.startswith('"', position):
            name, position = _quoted_name(table, position)
        else:
            end = table.find(".", position)
            end = len(table) if end < 0 else end
            name, position = table[position:end], end
            if '"' in name:
                raise ConfigError(_table_form_error(table, f"a quote inside the name {name!r}"))
        parts.append(name)
        if position == len(table):
            break
        if table[position] != ".":
            raise ConfigError(_table_form_error(table, f"{table[position:]!r} after a quoted name"))
        position += 1
    if len(parts) > 2 or not all(parts):
        raise ConfigError(_table_form_error(table, None))
    return tuple(parts)


def _quoted_name(table: str, start: int) -> tuple[str, int]:
    """The double-quoted name starting at ``start`` (``""`` is a quote in it), and the
    position after its closing quote."""
    name: list[str] = []
    position = start + 1
    while True:
        end = table.find('"', position)
        if end < 0:
            raise ConfigError(_table_form_error(table, "a quoted name is not closed"))
        name.append(table[position:end])
        if not table.startswith('"', end + 1):
            return "".join(name), end + 1
        name.append('"')
        position = end + 2


def _table_form_error(table: str, problem: str | None) -> str:
    return (
        f"table {table!r} in [retriever.pgvector] must be a table name or schema.table"
        + (f" ({problem})" if problem else "")
        + '; double-quote a name that holds a dot or a quote, as in SQL: "my schema"."my.table"'
    )


def shown_table_name(*parts: str) -> str:
    """``parts`` (schema, table) as ``table`` in [retriever.pgvector] takes them back
    (``split_table_name``): a name is double-quoted only when it holds a dot or a quote."""
    return ".".join(
        '"' + part.replace('"', '""') + '"' if "." in part or '"' in part else part
        for part in parts
    )


def _safe_conninfo(dsn: str) -> dict[str, Any]:
    """The DSN's parameters without the password, or nothing when it cannot be parsed."""
    try:
        params = dict(conninfo_to_dict(dsn))
    except psycopg.Error:
        return {}
    params.pop("password", None)
    return params


def _dsn_secrets(dsn: str) -> set[str]:
    secrets = url_secrets(dsn) if "://" in dsn else set()
    try:
        password = conninfo_to_dict(dsn).get("password")
    except psycopg.Error as error:
        raise ConfigError(
            "dsn in [retriever.pgvector] is not a valid libpq connection string or "
            f"postgresql:// URL: {redact(str(error), secrets)}"
        ) from error
    if password:
        secrets.add(str(password))
    return secrets


def vector_text(vector: npt.NDArray[np.floating[Any]]) -> str:
    """pgvector's text form of ``vector``: nine significant digits, exact for the float4
    values a ``vector`` column holds, and half the time of ``repr``."""
    return "[" + ",".join(map(_FLOAT4_FORMAT, vector.tolist())) + "]"


def _version(text: str) -> tuple[int, ...]:
    numbers: list[int] = []
    for part in text.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)
