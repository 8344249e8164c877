"""A Qdrant collection, on a server (``url``) or in a local on-disk store (``path``).

Batches and latency, scores, ids, tenants, the checks before the run and what the index
fingerprint covers: docs/retrievers.md, "Qdrant".
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient, models

from evalkit.config import QdrantSettings
from evalkit.embedding import TextEmbedder
from evalkit.errors import CollectionNotFoundError, ConfigError, RetrieverError
from evalkit.records import Query, QueryResult
from evalkit.redaction import mask_url, register_secrets
from evalkit.retrievers.base import (
    LATENCY_TIMING,
    PER_QUERY,
    IndexSize,
    describe_exception,
    elapsed_ms,
    failed_result,
    integer_tenant,
    ranked_docs,
    tenant_groups,
)
from evalkit.retrievers.contents import Contents, Vectors, vector_rows
from evalkit.retrievers.embedded import EmbeddedQueryRetriever
from evalkit.retrievers.framework import MissingIdError
from evalkit.retrievers.model_check import (
    REEMBED_SAMPLE,
    ReembeddingCheck,
    check_reembedding,
    describe_model_check,
)

__all__ = [
    "FINGERPRINT_SAMPLE",
    "TENANT_KEY_SAMPLE",
    "QdrantRetriever",
    "collection_name",
    "open_client",
    "read_qdrant_contents",
    "tenant_filter",
]

FINGERPRINT_SAMPLE = 64
"""Points (the first in id order) whose content the index fingerprint covers."""

TENANT_KEY_SAMPLE = 100
"""Points whose payload keys are named when the tenant key is in none of the points."""

_DISTANCES_AS_SCORES = {models.Distance.COSINE, models.Distance.DOT}
_SPACES = {
    models.Distance.COSINE: "cosine",
    models.Distance.DOT: "ip",
    models.Distance.EUCLID: "l2",
}
_PAGE = 1000


class QdrantRetriever(EmbeddedQueryRetriever[str | None]):
    """Searches a Qdrant collection with evalkit's query embeddings."""

    def __init__(
        self,
        settings: QdrantSettings,
        embedder: TextEmbedder,
        *,
        collection: str | None = None,
        where_key: str | None = None,
        batch_size: int = 64,
        defer_model_check: bool = False,
    ) -> None:
        super().__init__(embedder, batch_size=batch_size)
        if (settings.url is None) == (settings.path is None):
            given = "both are given" if settings.url is not None else "neither is given"
            raise ConfigError(
                "the qdrant retriever needs one of url (a server) or path (a local store) in "
                f"[retriever.qdrant] of evalkit.toml, not both ({given}; docs/retrievers.md)"
            )
        if settings.path is not None and not Path(settings.path).is_dir():
            # The client would create an empty store there, then find no collection in it.
            raise ConfigError(
                f"[retriever.qdrant] path {settings.path}: no local Qdrant store (no such "
                "folder); give the folder a QdrantClient(path=...) wrote, or url for a server"
            )
        self._settings = settings
        self._collection = collection_name(settings, collection)
        self._tenant_key = where_key or settings.tenant_key
        api_key = settings.api_key()
        register_secrets([api_key])
        self._where = mask_url(settings.url) if settings.url else str(settings.path)
        try:
            self._client = open_client(settings, api_key)
        except Exception as error:  # the client raises its own and lock errors alike
            raise RetrieverError(
                f"cannot open Qdrant at {self._where}: {describe_exception(error)}"
            ) from error
        self._vector_size, self._distance = self._read_collection()
        if self._tenant_key is not None:
            try:
                self._check_tenant_key(self._tenant_key)
            except BaseException:
                self.close()
                raise
        self._model_checked = False
        self._reembedding: ReembeddingCheck | None = None
        if not defer_model_check:
            try:
                self.verify_model()
            except BaseException:
                self.close()  # a local store stays locked until its client closes
                raise

    def _read_collection(self) -> tuple[int, models.Distance]:
        try:
            exists = self._client.collection_exists(self._collection)
            if not exists:
                found = ", ".join(c.name for c in self._client.get_collections().collections)
                raise CollectionNotFoundError(
                    f"Qdrant at {self._where} has no collection {self._collection!r} "
                    f"(it has: {found or 'none'})"
                )
            info = self._client.get_collection(self._collection)
        except RetrieverError:
            self.close()
            raise
        except Exception as error:  # connection refused, timeout, HTTP errors
            self.close()
            raise RetrieverError(
                f"cannot reach Qdrant at {self._where}: {describe_exception(error)}; is the "
                "server running, and is url right?"
            ) from error
        indexed = (info.payload_schema or {}).get(self._tenant_key or "")
        self._tenant_index = indexed.data_type if indexed is not None else None
        vectors = info.config.params.vectors
        self._config_text = json.dumps({"vectors": _jsonable(vectors)}, sort_keys=True)
        if isinstance(vectors, dict):
            name = self._settings.vector_name
            if name is None or name not in vectors:
                self.close()
                what = "set vector_name" if name is None else f"vector_name {name!r} is none"
                raise ConfigError(
                    f"Qdrant collection {self._collection!r} has named vectors "
                    f"({', '.join(sorted(vectors))}): {what} of them in [retriever.qdrant]"
                )
            params = vectors[name]
        elif vectors is None:
            self.close()
            raise RetrieverError(f"Qdrant collection {self._collection!r} has no dense vectors")
        else:
            params = vectors
        return params.size, params.distance

    def _check_tenant_key(self, key: str) -> None:
        """Refuse a tenant key that no point holds a value under: every query with a tenant
        would find nothing, and the run would be stored complete with scores of 0."""
        holding = models.Filter(
            must_not=[models.IsEmptyCondition(is_empty=models.PayloadField(key=key))]
        )
        try:
            found, _ = self._client.scroll(
                self._collection, scroll_filter=holding, limit=1, with_vectors=False
            )
            if found:
                return
            sample, _ = self._client.scroll(
                self._collection, limit=TENANT_KEY_SAMPLE, with_payload=True, with_vectors=False
            )
        except Exception:  # the client raises its own and transport errors alike
            # A server in strict mode refuses a filter on an unindexed key; so does each
            # tenant query then, and the run records that error instead of empty results.
            return
        if not sample:
            return  # an empty collection: no key is missing from its points
        keys = sorted({name for point in sample for name in point.payload or {}})
        raise ConfigError(
            f"no point of Qdrant collection {self._collection!r} at {self._where} has payload "
            f"key {key!r} (`where_key`, or tenant_key in [retriever.qdrant]): every query with "
            f"a tenant would find nothing. Payload keys of its first {len(sample)} points: "
            f"{', '.join(keys) or 'none'}"
        )

    def verify_model(self) -> None:
        """Refuse a collection whose vectors were made by another model than the query
        embedder: another size, or (with ``text_payload_key``) re-embedded points that do
        not agree with their stored vectors (``check_reembedding``)."""
        if self._model_checked:
            return
        if self._embedder.dimension != self._vector_size:
            raise RetrieverError(
                f"Qdrant collection {self._collection!r} holds {self._vector_size}-dimensional "
                f"vectors, but the query embedder {self._embedder.name} makes "
                f"{self._embedder.dimension}-dimensional ones: the collection was built with "
                "another model; set [embedder] (or model_path) to the model it was built with"
            )
        if self._settings.text_payload_key is not None:
            self._reembedding = check_reembedding(
                self._sampled_texts(self._settings.text_payload_key),
                self._embedder,
                store=f"Qdrant collection {self._collection!r}",
                text_source=f"payload {self._settings.text_payload_key!r}",
            )
        self._model_checked = True

    def _sampled_texts(self, key: str) -> list[tuple[str, list[float]]]:
        """(text, stored vector) of up to ``REEMBED_SAMPLE`` of the first points that carry
        ``key`` (no payload filter: a collection in strict mode refuses one on an unindexed
        key)."""
        try:
            points, _ = self._client.scroll(
                self._collection,
                limit=REEMBED_SAMPLE * 4,
                with_payload=[key],
                with_vectors=[self._settings.vector_name] if self._settings.vector_name else True,
            )
        except Exception as error:  # the client raises its own and transport errors alike
            raise RetrieverError(
                f"cannot read sample points of Qdrant collection {self._collection!r} to check "
                f"the embedding model: {describe_exception(error)}"
            ) from error
        rows = []
        for point in points:
            text = (point.payload or {}).get(key)
            stored: object = point.vector
            if isinstance(stored, dict):
                stored = stored.get(self._settings.vector_name or "")
            # A multivector (a list of lists) has no single vector to compare: left out.
            if not isinstance(text, str) or not isinstance(stored, list) or not stored:
                continue
            if all(isinstance(value, float | int) for value in stored):
                rows.append((text, [float(value) for value in stored]))
        return rows[:REEMBED_SAMPLE]

    def _model_check(self) -> dict[str, Any]:
        return describe_model_check(
            self._reembedding,
            text_source=(
                None if self._settings.text_payload_key is None else "points' text_payload_key"
            ),
            unset="set text_payload_key to re-embed sampled points",
        )

    def check(self) -> None:
        """Raise RetrieverError when the collection cannot be reached now."""
        try:
            self._client.get_collection(self._collection)
        except Exception as error:
            raise RetrieverError(
                f"cannot reach Qdrant collection {self._collection!r} at {self._where}: "
                f"{describe_exception(error)}"
            ) from error

    def _groups(self, queries: Sequence[Query]) -> list[tuple[str | None, list[int]]]:
        return tenant_groups(queries, filtered=self._tenant_key is not None)

    def _request(self, vector: Any, k: int, tenant: str | None) -> models.QueryRequest:
        wanted = (
            None
            if tenant is None or self._tenant_key is None
            else tenant_filter(self._tenant_key, tenant, indexed=self._tenant_index)
        )
        id_key = self._settings.id_payload_key
        return models.QueryRequest(
            query=[float(value) for value in vector],
            using=self._settings.vector_name,
            filter=wanted,
            limit=k,
            params=models.SearchParams(hnsw_ef=self._settings.hnsw_ef, exact=self._settings.exact),
            with_payload=[id_key] if id_key else False,
        )

    def _retrieve_batch(self, batch: list[Query], k: int, tenant: str | None) -> list[QueryResult]:
        start = time.perf_counter()
        try:
            vectors = self._embedder.embed([query.text for query in batch])
        except Exception as error:
            message = describe_exception(error)
            return [failed_result(query.id, message, elapsed_ms(start)) for query in batch]
        return [
            self._retrieve_one(query, self._request(vector, k, tenant))
            for query, vector in zip(batch, vectors, strict=True)
        ]

    def _retrieve_one(self, query: Query, request: models.QueryRequest) -> QueryResult:
        """``query`` searched alone, so that its latency is the collection's answer to it
        (its vector ready: the batch's embedding is evalkit's work, not Qdrant's)."""
        start = time.perf_counter()
        try:
            [response] = self._client.query_batch_points(self._collection, requests=[request])
        except Exception as error:
            return failed_result(query.id, describe_exception(error), elapsed_ms(start))
        return self._result(query, response.points, elapsed_ms(start))

    def _result(
        self, query: Query, points: Sequence[models.ScoredPoint], latency_ms: float
    ) -> QueryResult:
        try:
            ids = [self._doc_id(point) for point in points]
        except MissingIdError as error:
            return failed_result(query.id, f"ConfigError: {error}", latency_ms)
        sign = 1.0 if self._distance in _DISTANCES_AS_SCORES else -1.0
        scores = [sign * point.score for point in points]
        return QueryResult(query_id=query.id, docs=ranked_docs(ids, scores), latency_ms=latency_ms)

    def _doc_id(self, point: models.ScoredPoint) -> str:
        key = self._settings.id_payload_key
        if key is None:
            return str(point.id)
        value = (point.payload or {}).get(key)
        if value is None or value == "":
            raise MissingIdError(
                f"point {point.id} of Qdrant collection {self._collection!r} has no payload "
                f"field {key!r} (id_payload_key in [retriever.qdrant])"
            )
        return str(value)

    @property
    def index_name(self) -> str:
        """The collection's name."""
        return self._collection

    @property
    def space(self) -> str | None:
        """The collection's distance in Chroma's names (None for Manhattan)."""
        return _SPACES.get(self._distance)

    def read_contents(self) -> Contents:
        """Every document of the collection (``read_qdrant_contents``)."""
        try:
            return read_qdrant_contents(self._client, self._collection, self._settings)
        except Exception as error:  # connection, server and lock errors alike
            raise RetrieverError(
                f"cannot read Qdrant collection {self._collection!r}: {describe_exception(error)}"
            ) from error

    def search_vectors(self, vectors: Vectors, k: int) -> list[list[str]]:
        """The top ``k`` document ids of each vector, with the run's search parameters."""
        found: list[list[str]] = []
        for start in range(0, len(vectors), self._batch_size):
            requests = [
                self._request(row, k, None) for row in vectors[start : start + self._batch_size]
            ]
            try:
                responses = self._client.query_batch_points(self._collection, requests=requests)
            except Exception as error:
                raise RetrieverError(
                    f"querying Qdrant collection {self._collection!r} failed: "
                    f"{describe_exception(error)}"
                ) from error
            found += [
                list(dict.fromkeys(self._doc_id(point) for point in response.points))
                for response in responses
            ]
        return found

    def describe(self) -> dict[str, Any]:
        """Where the collection is, its keys and search parameters; never the API key."""
        return {
            "kind": "qdrant",
            "url": mask_url(self._settings.url) if self._settings.url else None,
            "path": str(self._settings.path) if self._settings.path else None,
            "collection": self._collection,
            "distance": str(self._distance.value),
            "vector_size": self._vector_size,
            "vector_name": self._settings.vector_name,
            "id_payload_key": self._settings.id_payload_key,
            "where_key": self._tenant_key,
            "hnsw_ef": self._settings.hnsw_ef,
            "exact": self._settings.exact,
            LATENCY_TIMING: PER_QUERY,
            "api_key_from_env": bool(self._settings.api_key()),
            "model_check": self._model_check(),
        }

    def index_fingerprint(self) -> str | None:
        """A hash of the exact point count, the vector configuration and the first
        ``FINGERPRINT_SAMPLE`` points, read now; None when the collection cannot be read."""
        try:
            count = self._client.count(self._collection, exact=True).count
            points, _ = self._client.scroll(
                self._collection,
                limit=FINGERPRINT_SAMPLE,
                with_payload=True,
                with_vectors=True,
            )
        except Exception:  # an unreadable collection fails the run's queries, not its record
            return None
        digest = hashlib.sha256(f"{self._config_text}\n{count}\n".encode())
        for point in points:
            digest.update(
                json.dumps(
                    [str(point.id), point.payload, point.vector], sort_keys=True, default=str
                ).encode("utf-8")
            )
            digest.update(b"\n")
        return digest.hexdigest()[:16]

    def index_size(self) -> IndexSize | None:
        """The collection's exact point count (``count``), each point a document with its
        vector; None when the collection cannot be read."""
        try:
            count = int(self._client.count(self._collection, exact=True).count)
        except Exception:  # an unreadable collection fails the run's queries, not its record
            return None
        return IndexSize(documents=count, vectors=count)

    def close(self) -> None:
        """Close the client (a local store's lock is released)."""
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()
            self._client = None  # type: ignore[assignment]


def collection_name(settings: QdrantSettings, collection: str | None) -> str:
    """The collection to read: ``collection`` when given, else the one of
    ``[retriever.qdrant]``; ConfigError when neither names one."""
    name = collection or settings.collection
    if not name:
        raise ConfigError(
            "name the Qdrant collection: `collection` NAME or collection in [retriever.qdrant]"
        )
    return name


def read_qdrant_contents(
    client: QdrantClient,
    collection: str,
    settings: QdrantSettings,
    on_point: Callable[[Any, str, Mapping[str, Any]], None] | None = None,
) -> Contents:
    """Every document of ``collection`` as the Qdrant retriever reads it: its id from
    ``id_payload_key`` (else the point id), its text from ``text_payload_key``, its other
    payload as metadata; a document of several points (chunks under one id) once, its first
    point's. ``on_point`` sees every point (its id, its document's id, its payload)."""
    ids: list[str] = []
    vectors: list[list[float]] = []
    documents: list[str | None] = []
    metadatas: list[Mapping[str, Any] | None] = []
    id_key, text_key = settings.id_payload_key, settings.text_payload_key
    seen: set[str] = set()
    entries = 0
    offset: Any = None
    while True:
        points, offset = client.scroll(
            collection, limit=_PAGE, offset=offset, with_payload=True, with_vectors=True
        )
        for point in points:
            entries += 1
            payload = dict(point.payload or {})
            doc_id = str(payload.get(id_key, point.id) if id_key else point.id)
            if on_point is not None:
                on_point(point.id, doc_id, payload)
            if doc_id in seen:
                continue
            seen.add(doc_id)
            ids.append(doc_id)
            vectors.append(stored_vector(point.vector, settings.vector_name))
            text = payload.get(text_key) if text_key else None
            documents.append(text if isinstance(text, str) else None)
            metadatas.append(
                {key: value for key, value in payload.items() if key not in (id_key, text_key)}
            )
        if offset is None:
            break
    return Contents(
        ids,
        vector_rows(vectors, len(ids)),
        documents,
        metadatas,
        entries if entries > len(ids) else None,
    )


def stored_vector(stored: Any, vector_name: str | None) -> list[float]:
    """A point's vector (its ``vector_name`` one when it has several) as floats."""
    if isinstance(stored, dict):
        stored = stored.get(vector_name or "")
    return [float(value) for value in stored or []]


def tenant_filter(
    key: str, tenant: str, *, indexed: models.PayloadSchemaType | None = None
) -> models.Filter:
    """The filter keeping the points whose payload ``key`` is ``tenant``.

    Qdrant matches types strictly, and goldset tenants are text: a tenant written as an
    integer (``integer_tenant``) matches the integer too, or only the integer when ``key``
    has an integer payload index (``indexed``), as a server in strict mode refuses a
    condition its index cannot serve. Another index (keyword) keeps the text alone.
    """
    number = integer_tenant(tenant)
    values: list[str | int] = [tenant]
    if number is not None and indexed is models.PayloadSchemaType.INTEGER:
        values = [number]
    elif number is not None and indexed is None:
        values.append(number)
    conditions: list[models.Condition] = [
        models.FieldCondition(key=key, match=models.MatchValue(value=value)) for value in values
    ]
    if len(conditions) == 1:
        return models.Filter(must=conditions)
    return models.Filter(should=conditions)


def open_client(settings: QdrantSettings, api_key: str | None) -> QdrantClient:
    """A client of the server at ``url``, or of the local store at ``path``, of
    ``settings`` (the caller has checked that exactly one is set)."""
    if settings.url is not None:
        # evalkit checks the collection itself, with a clearer message than the client's
        # version probe, which only warns.
        return QdrantClient(
            url=settings.url,
            api_key=api_key,
            timeout=int(max(1, settings.timeout)),
            check_compatibility=False,
        )
    return QdrantClient(path=str(settings.path))


def _jsonable(vectors: Any) -> Any:
    if isinstance(vectors, dict):
        return {name: params.model_dump(mode="json") for name, params in vectors.items()}
    return vectors.model_dump(mode="json") if vectors is not None else None
