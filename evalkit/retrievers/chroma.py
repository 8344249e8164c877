"""Chroma as a retriever (embedded store or server) and as the index evalkit builds.

evalkit always embeds with its own model and hands Chroma vectors (``embeddings=`` when
writing, ``query_embeddings=`` when querying): collections are opened with
``embedding_function=None``, so Chroma's default embedding function, which would download
an ONNX model, is never built or called.

What evalkit writes into a collection's metadata (see ``docs/retrievers.md``):

- the embedding model's fingerprint (``evalkit_model_*``, from ``ModelFingerprint``), so a
  retriever refuses to query the index with another model;
- ``evalkit_index_fingerprint``: a hash of every (document id, content hash) pair and the
  model fingerprint, which changes exactly when what is indexed changes;
- ``evalkit_indexed_at``: when the index last changed (UTC, ISO 8601).

and into each document's metadata ``evalkit_content_hash`` (so re-indexing embeds only
the documents that changed), ``evalkit_title`` when the document has a title, and the
document's own metadata.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from evalkit.embedding import ModelFingerprint
from evalkit.errors import ConfigError, EmbeddingError, InputError, RetrieverError
from evalkit.goldset import content_hash
from evalkit.records import Document, Query, QueryResult
from evalkit.retrievers.base import (
    TextEmbedder,
    describe_exception,
    elapsed_ms,
    failed_result,
    ranked_docs,
    redact,
    validate_k,
)

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection
    from chromadb.api.types import Metadatas

__all__ = [
    "CHROMA_TOKEN_ENV",
    "CONTENT_HASH_KEY",
    "INDEXED_AT_KEY",
    "INDEX_FINGERPRINT_KEY",
    "SCORE_FROM_DISTANCE",
    "TITLE_KEY",
    "ChromaLocation",
    "ChromaRetriever",
    "IndexReport",
    "ProgressCallback",
    "close_client",
    "collection_space",
    "get_collection",
    "index_corpus",
    "index_fingerprint",
    "open_chroma_client",
    "parse_chroma_url",
]

CONTENT_HASH_KEY = "evalkit_content_hash"
TITLE_KEY = "evalkit_title"
INDEX_FINGERPRINT_KEY = "evalkit_index_fingerprint"
INDEXED_AT_KEY = "evalkit_indexed_at"
CHROMA_TOKEN_ENV = "EVALKIT_CHROMA_TOKEN"
"""Environment variable holding a token sent to a Chroma server as ``Authorization: Bearer``."""

_RESERVED_PREFIX = "evalkit_"
_DEFAULT_PORTS = {"http": 8000, "https": 443}
_STORED_HASH_PAGE = 5000
# Chroma's own default when a collection names no space.
_CHROMA_DEFAULT_SPACE = "l2"

ProgressCallback = Callable[[int, int | None], None]
"""``progress(done, total)``: documents processed so far, and the total when known."""

FloatArray = npt.NDArray[np.float64]


def _score_cosine(distances: FloatArray) -> FloatArray:
    """Cosine similarity from Chroma's cosine distance (1 - cos)."""
    return 1.0 - distances


def _score_inner_product(distances: FloatArray) -> FloatArray:
    """Inner product from Chroma's ip distance (1 - dot); the cosine for unit vectors."""
    return 1.0 - distances


def _score_squared_l2(distances: FloatArray) -> FloatArray:
    """Cosine similarity from squared L2 distance, which is 2 - 2cos for unit vectors."""
    return 1.0 - distances / 2.0


SCORE_FROM_DISTANCE: dict[str, Callable[[FloatArray], FloatArray]] = {
    "cosine": _score_cosine,
    "ip": _score_inner_product,
    "l2": _score_squared_l2,
}
"""Turns a Chroma distance into a score (higher is better), per HNSW space."""


@dataclass(frozen=True, slots=True)
class ChromaLocation:
    """Where a collection lives: ``chroma-embedded`` at ``path``, ``chroma-http`` at ``url``."""

    kind: str
    path: str | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class IndexReport:
    """What ``index_corpus`` did.

    ``added`` + ``updated`` + ``unchanged`` == ``total``, the documents read from the
    corpus. ``removed`` documents were deleted because the corpus no longer holds them
    (``prune=True``); ``stale`` such documents are still in the collection.
    """

    collection: str
    added: int
    updated: int
    unchanged: int
    total: int
    index_fingerprint: str
    removed: int = 0
    stale: int = 0


def parse_chroma_url(url: str) -> tuple[str, int, bool]:
    """``(host, port, ssl)`` of a Chroma server URL such as ``http://127.0.0.1:8000``.

    The port defaults to 8000 for http and 443 for https. Raises ``ConfigError`` for
    anything else (no scheme, a path, credentials in the URL).
    """
    expected = "expected http://HOST:PORT or https://HOST[:PORT]"
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise ConfigError(f"Chroma URL {url!r} does not parse ({error}); {expected}") from error
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ConfigError(f"Chroma URL {url!r} is not an http(s) URL with a host; {expected}")
    if parts.username or parts.password:
        raise ConfigError(
            f"Chroma URL for host {parts.hostname} carries credentials; remove them and set "
            f"{CHROMA_TOKEN_ENV} instead"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"Chroma URL {url!r} has a path or query; {expected}")
    return parts.hostname, port or _DEFAULT_PORTS[parts.scheme], parts.scheme == "https"


def _chroma_settings() -> Any:
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False)


def open_chroma_client(
    *,
    path: Path | str | None = None,
    url: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> ClientAPI:
    """Open an embedded Chroma store at ``path`` or connect to a Chroma server at ``url``.

    Exactly one of them must be given. For a server, ``headers`` are sent with every
    request, and a token in ``EVALKIT_CHROMA_TOKEN`` becomes ``Authorization: Bearer``.
    Raises ``RetrieverError`` when the store cannot be opened or the server not reached.
    """
    if (path is None) == (url is None):
        raise ConfigError(
            "give exactly one of a Chroma path (embedded store) or a Chroma server URL"
        )
    import chromadb

    if url is not None:
        host, port, ssl = parse_chroma_url(url)
        sent_headers = dict(headers or {})
        token = os.environ.get(CHROMA_TOKEN_ENV)
        if token and not any(name.lower() == "authorization" for name in sent_headers):
            sent_headers["Authorization"] = f"Bearer {token}"
        try:
            return chromadb.HttpClient(
                host=host,
                port=port,
                ssl=ssl,
                headers=sent_headers or None,
                settings=_chroma_settings(),
            )
        except Exception as error:  # the client raises ValueError, httpx and Chroma errors
            reason = redact(describe_exception(error), sent_headers.values())
            raise RetrieverError(
                f"cannot reach the Chroma server at {url}: {reason}. Start one with "
                "`chroma run --path DIR --host 127.0.0.1 --port PORT`, or correct the URL "
                "(EVALKIT_CHROMA_URL)."
            ) from error
    store = Path(str(path))
    try:
        return chromadb.PersistentClient(path=str(store), settings=_chroma_settings())
    except Exception as error:  # sqlite, filesystem and Chroma errors alike
        raise RetrieverError(
            f"cannot open the embedded Chroma store at {store}: {describe_exception(error)}. "
            "Check that the path (EVALKIT_CHROMA_PATH) is a writable directory that no other "
            "process holds open."
        ) from error


def close_client(client: ClientAPI) -> None:
    """Release a Chroma client's resources (files of an embedded store, HTTP pools)."""
    # ``close`` exists on the concrete clients but not on the ClientAPI interface.
    close = getattr(client, "close", None)
    if callable(close):
        close()


def _collection_names(client: ClientAPI) -> list[str]:
    try:
        return sorted(collection.name for collection in client.list_collections())
    except Exception:  # listing only decorates an error message that is already on its way
        return []


def get_collection(client: ClientAPI, name: str) -> Collection:
    """Open the collection ``name`` without an embedding function.

    Raises ``RetrieverError`` listing the existing collections when it does not exist.
    """
    from chromadb.errors import NotFoundError as ChromaNotFoundError

    try:
        return client.get_collection(name=name, embedding_function=None)
    except ChromaNotFoundError as error:
        existing = ", ".join(_collection_names(client)) or "none"
        raise RetrieverError(
            f"Chroma collection '{name}' does not exist (existing collections: {existing}). "
            f"Index a corpus into it first (`evalkit index --corpus FILE --collection {name}`) "
            "or name an existing collection."
        ) from error
    except Exception as error:  # invalid names, connection and server errors
        raise RetrieverError(
            f"cannot open Chroma collection '{name}': {describe_exception(error)}"
        ) from error


def _find_collection(client: ClientAPI, name: str) -> Collection | None:
    from chromadb.errors import NotFoundError as ChromaNotFoundError

    try:
        return client.get_collection(name=name, embedding_function=None)
    except ChromaNotFoundError:
        return None
    except Exception as error:  # invalid names, connection and server errors
        raise RetrieverError(
            f"cannot open Chroma collection '{name}': {describe_exception(error)}"
        ) from error


def collection_space(collection: Collection) -> str:
    """The distance space (``cosine``, ``ip`` or ``l2``) of a collection's vector index."""
    configuration = collection.configuration_json or {}
    for index_kind in ("hnsw", "spann"):
        section = configuration.get(index_kind)
        if isinstance(section, dict) and section.get("space"):
            return str(section["space"])
    metadata = collection.metadata or {}
    return str(metadata.get("hnsw:space", _CHROMA_DEFAULT_SPACE))


def index_fingerprint(hashes: Mapping[str, str], model: ModelFingerprint) -> str:
    """SHA-256 over the model fingerprint and every sorted (document id, content hash) pair."""
    digest = hashlib.sha256()
    digest.update(f"model:{model.canary_hash}:{model.dimension}\n".encode())
    for doc_id in sorted(hashes):
        digest.update(json.dumps([doc_id, hashes[doc_id]], ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _fingerprint_summary(fingerprint: ModelFingerprint) -> str:
    return (
        f"{fingerprint.name} (dimension {fingerprint.dimension}, "
        f"fingerprint {fingerprint.canary_hash})"
    )


def _mismatch_detail(stored: ModelFingerprint, current: ModelFingerprint) -> str:
    similarity = stored.canary_similarity(current)
    closeness = "" if similarity is None else f"; lowest canary cosine {similarity:.4f}"
    return (
        f"indexed with {_fingerprint_summary(stored)}, but the embedder is "
        f"{_fingerprint_summary(current)}{closeness}"
    )


class ChromaRetriever:
    """A Chroma collection queried with evalkit's own query embeddings.

    Queries are embedded in batches of ``batch_size`` (one ``embed`` call and one
    ``collection.query`` per batch). When a batch fails, its queries are retried one by
    one, so one bad query does not fail its neighbours; a query that still fails carries
    its error. With ``where_key`` set, a query that has a tenant only sees documents whose
    metadata ``where_key`` equals that tenant. A query's latency is its share of its
    batch's wall time (embedding included).

    Raises ``RetrieverError`` when the collection was indexed with another embedding model
    (unless ``allow_model_mismatch=True``) or with vectors of another dimension. That check
    needs the query model's fingerprint, so it loads the model; with
    ``defer_model_check=True`` it waits for ``verify_model()`` (or the first ``retrieve``),
    so that cheaper checks can report their errors first.
    """

    def __init__(
        self,
        collection: Collection,
        embedder: TextEmbedder,
        *,
        batch_size: int = 64,
        where_key: str | None = None,
        allow_model_mismatch: bool = False,
        location: ChromaLocation | None = None,
        defer_model_check: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self._collection = collection
        self._embedder = embedder
        self._batch_size = batch_size
        self._where_key = where_key
        self._location = location or ChromaLocation(kind="chroma")
        self._owned_client: ClientAPI | None = None
        metadata = dict(collection.metadata or {})
        self._stored_model = ModelFingerprint.from_metadata(metadata)
        stored_index = metadata.get(INDEX_FINGERPRINT_KEY)
        self._index_fingerprint = None if stored_index is None else str(stored_index)
        space = collection_space(collection)
        if space not in SCORE_FROM_DISTANCE:
            raise RetrieverError(
                f"Chroma collection '{collection.name}' uses distance space '{space}', which "
                f"evalkit cannot turn into scores; use one of {sorted(SCORE_FROM_DISTANCE)}"
            )
        self._space = space
        self._score = SCORE_FROM_DISTANCE[space]
        self._allow_model_mismatch = allow_model_mismatch
        self._model_checked = False
        if not defer_model_check:
            self.verify_model()

    @classmethod
    def embedded(
        cls,
        path: Path | str,
        collection_name: str,
        embedder: TextEmbedder,
        *,
        batch_size: int = 64,
        where_key: str | None = None,
        allow_model_mismatch: bool = False,
        defer_model_check: bool = False,
    ) -> ChromaRetriever:
        """Query collection ``collection_name`` of the embedded Chroma store at ``path``."""
        client = open_chroma_client(path=path)
        return cls._owning(
            client,
            collection_name,
            embedder,
            ChromaLocation(kind="chroma-embedded", path=str(path)),
            batch_size=batch_size,
            where_key=where_key,
            allow_model_mismatch=allow_model_mismatch,
            defer_model_check=defer_model_check,
        )

    @classmethod
    def server(
        cls,
        url: str,
        collection_name: str,
        embedder: TextEmbedder,
        *,
        batch_size: int = 64,
        where_key: str | None = None,
        allow_model_mismatch: bool = False,
        headers: Mapping[str, str] | None = None,
        defer_model_check: bool = False,
    ) -> ChromaRetriever:
        """Query collection ``collection_name`` of the Chroma server at ``url``."""
        client = open_chroma_client(url=url, headers=headers)
        return cls._owning(
            client,
            collection_name,
            embedder,
            ChromaLocation(kind="chroma-http", url=url),
            batch_size=batch_size,
            where_key=where_key,
            allow_model_mismatch=allow_model_mismatch,
            defer_model_check=defer_model_check,
        )

    @classmethod
    def _owning(
        cls,
        client: ClientAPI,
        collection_name: str,
        embedder: TextEmbedder,
        location: ChromaLocation,
        *,
        batch_size: int,
        where_key: str | None,
        allow_model_mismatch: bool,
        defer_model_check: bool,
    ) -> ChromaRetriever:
        try:
            retriever = cls(
                get_collection(client, collection_name),
                embedder,
                batch_size=batch_size,
                where_key=where_key,
                allow_model_mismatch=allow_model_mismatch,
                location=location,
                defer_model_check=defer_model_check,
            )
        except BaseException:
            close_client(client)
            raise
        retriever._owned_client = client
        return retriever

    def verify_model(self) -> None:
        """Refuse a collection built with another embedding model (loads the query model).

        Runs once; ``RetrieverError`` says which models differ and what to do.
        """
        if not self._model_checked:
            self._check_model(allow_model_mismatch=self._allow_model_mismatch)
            self._model_checked = True

    def _check_model(self, *, allow_model_mismatch: bool) -> None:
        current = self._embedder.fingerprint
        stored = self._stored_model
        name = self._collection.name
        if stored is not None:
            if stored.dimension != current.dimension:
                raise RetrieverError(
                    f"Chroma collection '{name}' was {_mismatch_detail(stored, current)}: "
                    "vectors of different dimensions cannot be compared. Query it with the "
                    "model it was built with, or re-index it with this one."
                )
            if not stored.matches(current) and not allow_model_mismatch:
                raise RetrieverError(
                    f"Chroma collection '{name}' was {_mismatch_detail(stored, current)}. "
                    "Retrieval across two embedding spaces is silently wrong: query with the "
                    "model the collection was built with, re-index it "
                    "(`evalkit index --rebuild`), or allow the mismatch explicitly."
                )
            return
        sample = self._collection.get(limit=1, include=["embeddings"])
        embeddings = sample.get("embeddings")
        if embeddings is not None and len(embeddings) > 0:
            dimension = len(embeddings[0])
            if dimension != current.dimension:
                raise RetrieverError(
                    f"Chroma collection '{name}' holds {dimension}-dimensional vectors, but "
                    f"the embedder {current.name} makes {current.dimension}-dimensional ones; "
                    "query it with the model it was built with."
                )

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        """Return the top ``k`` documents of every query, one result per query, in order."""
        validate_k(k)
        self.verify_model()
        by_position: dict[int, QueryResult] = {}
        for where, positions in self._groups(queries):
            for start in range(0, len(positions), self._batch_size):
                batch = positions[start : start + self._batch_size]
                answered = self._retrieve_batch([queries[i] for i in batch], k, where)
                by_position.update(zip(batch, answered, strict=True))
        return [by_position[position] for position in range(len(queries))]

    def _groups(self, queries: Sequence[Query]) -> list[tuple[dict[str, Any] | None, list[int]]]:
        if self._where_key is None:
            return [(None, list(range(len(queries))))]
        by_tenant: dict[str | None, list[int]] = {}
        for position, query in enumerate(queries):
            by_tenant.setdefault(query.tenant, []).append(position)
        return [
            (None if tenant is None else {self._where_key: tenant}, positions)
            for tenant, positions in by_tenant.items()
        ]

    def _retrieve_batch(
        self, batch: Sequence[Query], k: int, where: dict[str, Any] | None
    ) -> list[QueryResult]:
        start = time.perf_counter()
        try:
            vectors = self._embedder.embed([query.text for query in batch])
            response = self._collection.query(
                query_embeddings=vectors,
                n_results=k,
                where=where,
                include=["distances"],
            )
        except Exception as error:  # recorded per query below, never swallowed
            if len(batch) == 1:
                return [
                    failed_result(
                        batch[0].id,
                        f"Chroma query failed: {describe_exception(error)}",
                        elapsed_ms(start),
                    )
                ]
            return [result for query in batch for result in self._retrieve_batch([query], k, where)]
        share = elapsed_ms(start) / len(batch)
        ids = response.get("ids") or []
        distances = response.get("distances") or []
        if len(ids) != len(batch) or len(distances) != len(batch):
            message = (
                f"Chroma answered {len(ids)} result lists for {len(batch)} queries; "
                "the server response is malformed"
            )
            return [failed_result(query.id, message, share) for query in batch]
        return [
            self._result(query, list(doc_ids), row, share)
            for query, doc_ids, row in zip(batch, ids, distances, strict=True)
        ]

    def _result(
        self, query: Query, doc_ids: list[str], distances: Sequence[float], latency: float
    ) -> QueryResult:
        if len(doc_ids) != len(distances):
            return failed_result(
                query.id,
                f"Chroma returned {len(doc_ids)} ids but {len(distances)} distances",
                latency,
            )
        scores = self._score(np.asarray(distances, dtype=np.float64))
        return QueryResult(
            query_id=query.id, docs=ranked_docs(doc_ids, scores.tolist()), latency_ms=latency
        )

    def describe(self) -> dict[str, Any]:
        """Kind, location, collection, document count, distance space and model."""
        description: dict[str, Any] = {"kind": self._location.kind}
        if self._location.path is not None:
            description["path"] = self._location.path
        if self._location.url is not None:
            description["url"] = self._location.url
        try:
            count: int | None = self._collection.count()
        except Exception:  # a description is best effort; the run records query errors
            count = None
        description.update(
            collection=self._collection.name,
            count=count,
            space=self._space,
            model=self._embedder.name,
            batch_size=self._batch_size,
            where_key=self._where_key,
        )
        return description

    def check(self) -> None:
        """Raise ``RetrieverError`` when the collection can no longer be read."""
        try:
            self._collection.count()
        except Exception as error:  # connection and server errors alike
            where = self._location.url or self._location.path or "Chroma"
            raise RetrieverError(
                f"cannot read Chroma collection '{self._collection.name}' at {where}: "
                f"{describe_exception(error)}"
            ) from error

    def index_fingerprint(self) -> str | None:
        """The index fingerprint ``index_corpus`` stored in the collection, if any."""
        return self._index_fingerprint

    def model_fingerprint(self) -> ModelFingerprint | None:
        """The embedding model fingerprint stored in the collection, if any."""
        return self._stored_model

    def close(self) -> None:
        """Release the Chroma client this retriever opened (``embedded`` / ``server``)."""
        if self._owned_client is not None:
            close_client(self._owned_client)
            self._owned_client = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def index_corpus(
    client: ClientAPI,
    documents: Iterable[Document],
    embedder: TextEmbedder,
    *,
    collection_name: str,
    batch_size: int = 128,
    rebuild: bool = False,
    prune: bool = False,
    total: int | None = None,
    progress: ProgressCallback | None = None,
) -> IndexReport:
    """Embed and write ``documents`` into the Chroma collection ``collection_name``.

    Creates the collection (cosine distance) when missing, recording the embedder's model
    fingerprint. Idempotent: a document whose content hash is already stored is neither
    embedded nor written; a changed one is re-embedded and upserted; a new one is added.
    Documents are streamed in batches of ``batch_size``; only the map of stored ids to
    content hashes is held in memory. With ``prune=True`` documents no longer in the corpus
    are deleted. ``progress(done, total)`` is called after every batch (``total`` defaults
    to ``len(documents)`` when it has one).

    Raises ``EmbeddingError`` when the collection was built with another model, and
    ``RetrieverError`` when it holds vectors evalkit did not write; ``rebuild=True``
    deletes and recreates the collection instead. Raises ``InputError`` for a document id
    repeated in the corpus or a metadata key evalkit reserves.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    model = embedder.fingerprint
    collection = _prepare_collection(client, collection_name, model, rebuild=rebuild)
    batch_size = _capped_batch_size(client, batch_size)
    stored = _stored_hashes(collection)
    if total is None and isinstance(documents, Sized):
        total = len(documents)

    seen: set[str] = set()
    added = updated = unchanged = done = 0
    for chunk in _chunks(documents, batch_size):
        pending: list[tuple[Document, str]] = []
        for document in chunk:
            if document.id in seen:
                raise InputError(
                    f"document id '{document.id}' appears more than once in the corpus; "
                    "ids must be unique"
                )
            seen.add(document.id)
            digest = content_hash(document)
            previous = stored.get(document.id)
            if previous == digest:
                unchanged += 1
                continue
            if previous is None:
                added += 1
            else:
                updated += 1
            pending.append((document, digest))
        if pending:
            _write(collection, pending, embedder)
            stored.update((document.id, digest) for document, digest in pending)
        done += len(chunk)
        if progress is not None:
            progress(done, total)

    absent = [doc_id for doc_id in stored if doc_id not in seen]
    removed = 0
    if prune and absent:
        for start in range(0, len(absent), batch_size):
            batch = absent[start : start + batch_size]
            _delete(collection, batch)
            removed += len(batch)
        for doc_id in absent:
            del stored[doc_id]

    fingerprint = index_fingerprint(stored, model)
    metadata = dict(collection.metadata or {})
    if metadata.get(INDEX_FINGERPRINT_KEY) != fingerprint:
        metadata.update(
            {
                **model.to_metadata(),
                INDEX_FINGERPRINT_KEY: fingerprint,
                INDEXED_AT_KEY: datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        try:
            collection.modify(metadata=metadata)
        except Exception as error:  # connection and server errors alike
            raise RetrieverError(
                f"cannot record the index fingerprint of Chroma collection "
                f"'{collection_name}': {describe_exception(error)}; re-run indexing"
            ) from error
    return IndexReport(
        collection=collection_name,
        added=added,
        updated=updated,
        unchanged=unchanged,
        total=added + updated + unchanged,
        index_fingerprint=fingerprint,
        removed=removed,
        stale=len(absent) - removed,
    )


def _prepare_collection(
    client: ClientAPI, name: str, model: ModelFingerprint, *, rebuild: bool
) -> Collection:
    existing = _find_collection(client, name)
    if existing is not None and rebuild:
        try:
            client.delete_collection(name)
        except Exception as error:  # connection and server errors alike
            raise RetrieverError(
                f"cannot delete Chroma collection '{name}' to rebuild it: "
                f"{describe_exception(error)}"
            ) from error
        existing = None
    if existing is None:
        try:
            return client.create_collection(
                name=name,
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine"}},
                metadata=model.to_metadata(),
            )
        except Exception as error:  # invalid names, connection and server errors
            raise RetrieverError(
                f"cannot create Chroma collection '{name}': {describe_exception(error)}"
            ) from error
    stored = ModelFingerprint.from_metadata(existing.metadata)
    if stored is None:
        count = existing.count()
        if count:
            raise RetrieverError(
                f"Chroma collection '{name}' holds {count} documents but no evalkit model "
                "fingerprint, so its vectors may come from another model. Index into a new "
                "collection, or rebuild this one (`evalkit index --rebuild`)."
            )
    elif not stored.matches(model):
        raise EmbeddingError(
            f"Chroma collection '{name}' was {_mismatch_detail(stored, model)}. Adding "
            "documents would mix two embedding spaces: index into a new collection, or "
            "rebuild this one (`evalkit index --rebuild`)."
        )
    return existing


def _capped_batch_size(client: ClientAPI, batch_size: int) -> int:
    try:
        limit = int(client.get_max_batch_size())
    except Exception:  # older servers do not report a limit; the requested size stands
        return batch_size
    return min(batch_size, limit) if limit > 0 else batch_size


def _stored_hashes(collection: Collection) -> dict[str, str]:
    hashes: dict[str, str] = {}
    offset = 0
    while True:
        page = collection.get(include=["metadatas"], limit=_STORED_HASH_PAGE, offset=offset)
        ids = page["ids"]
        metadatas = page.get("metadatas") or []
        for position, doc_id in enumerate(ids):
            metadata = metadatas[position] if position < len(metadatas) else None
            # A document without a hash (written by another tool) is rewritten when indexed.
            hashes[doc_id] = str((metadata or {}).get(CONTENT_HASH_KEY, ""))
        if len(ids) < _STORED_HASH_PAGE:
            return hashes
        offset += len(ids)


def _chunks(documents: Iterable[Document], size: int) -> Iterator[list[Document]]:
    iterator = iter(documents)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _document_metadata(document: Document, digest: str) -> dict[str, str | int | float | bool]:
    metadata: dict[str, str | int | float | bool] = {}
    for key, value in document.metadata.items():
        if key.startswith(_RESERVED_PREFIX):
            raise InputError(
                f"document '{document.id}': metadata key '{key}' is reserved for evalkit "
                f"(keys starting with '{_RESERVED_PREFIX}'); rename it"
            )
        if value is None:
            continue
        is_scalar = isinstance(value, str | int | float | bool)
        metadata[key] = value if is_scalar else json.dumps(value, sort_keys=True)
    if document.title:
        metadata[TITLE_KEY] = document.title
    metadata[CONTENT_HASH_KEY] = digest
    return metadata


def _write(
    collection: Collection, pending: Sequence[tuple[Document, str]], embedder: TextEmbedder
) -> None:
    metadatas: Metadatas = [_document_metadata(document, digest) for document, digest in pending]
    vectors = embedder.embed([document.content for document, _ in pending])
    try:
        collection.upsert(
            ids=[document.id for document, _ in pending],
            embeddings=vectors,
            documents=[document.text for document, _ in pending],
            metadatas=metadatas,
        )
    except Exception as error:  # validation, connection and server errors alike
        raise RetrieverError(
            f"writing documents '{pending[0][0].id}' to '{pending[-1][0].id}' into Chroma "
            f"collection '{collection.name}' failed: {describe_exception(error)}. Documents "
            "before them were written; re-running indexing resumes from there."
        ) from error


def _delete(collection: Collection, doc_ids: list[str]) -> None:
    try:
        collection.delete(ids=doc_ids)
    except Exception as error:  # connection and server errors alike
        raise RetrieverError(
            f"deleting {len(doc_ids)} documents from Chroma collection "
            f"'{collection.name}' failed: {describe_exception(error)}"
        ) from error
