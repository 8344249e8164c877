"""Chroma as a retriever: a collection, embedded or on a server, queried with evalkit's own
query embeddings (``query_embeddings=``; see ``chroma_client`` for the metadata it checks).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from evalkit.embedding import ModelFingerprint, TextEmbedder
from evalkit.errors import CollectionNotFoundError, ConfigError, RetrieverError
from evalkit.files import replace_text
from evalkit.records import Query, QueryResult
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
from evalkit.retrievers.chroma_client import (
    INDEX_FINGERPRINT_KEY,
    INDEXING_STARTED_KEY,
    ChromaLocation,
    close_client,
    collection_space,
    contents_fingerprint,
    get_collection,
    model_mismatch_detail,
    open_chroma_client,
    set_hnsw_configuration,
)
from evalkit.retrievers.embedded import EmbeddedQueryRetriever
from evalkit.retrievers.model_check import (
    REEMBED_SAMPLE,
    ReembeddingCheck,
    check_reembedding,
    describe_model_check,
)

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

__all__ = [
    "SCORE_FROM_DISTANCE",
    "WHERE_KEY_SAMPLE",
    "ChromaRetriever",
    "hnsw_ef_search",
    "restore_interrupted_ef_search",
    "tenant_where",
]

WHERE_KEY_SAMPLE = 1000
"""Records (the first) whose metadata must hold the tenant key (``where_key``) somewhere:
Chroma has no filter for a key being present, so the check reads them."""


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


class ChromaRetriever(EmbeddedQueryRetriever[dict[str, Any] | None]):
    """A Chroma collection queried with evalkit's own query embeddings.

    Queries are embedded in batches and searched one by one (latency ``per_query``); with
    ``where_key`` a query sees only its tenant's documents (``ConfigError`` for a key no
    sampled record has). ``RetrieverError`` for a collection indexed with another model
    (unless ``allow_model_mismatch``) or dimension; ``defer_model_check=True`` waits for
    ``verify_model()``. See docs/retrievers.md.
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
        super().__init__(embedder, batch_size=batch_size)
        self._collection = collection
        self._where_key = where_key
        self._location = location or ChromaLocation(kind="chroma")
        self._owned_client: ClientAPI | None = None
        metadata = dict(collection.metadata or {})
        self._stored_model = ModelFingerprint.from_metadata(metadata)
        space = collection_space(collection)
        if space not in SCORE_FROM_DISTANCE:
            raise RetrieverError(
                f"Chroma collection '{collection.name}' uses distance space '{space}', which "
                f"evalkit cannot turn into scores; use one of {sorted(SCORE_FROM_DISTANCE)}"
            )
        self._space = space
        self._score = SCORE_FROM_DISTANCE[space]
        self._allow_model_mismatch = allow_model_mismatch
        if where_key is not None:
            self._check_where_key(where_key)
        self._model_checked = False
        self._reembedding: ReembeddingCheck | None = None
        self._model_check_skipped: str | None = None
        self._previous_ef_search: int | None = None
        self._ef_search_mark: Path | None = None
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
        ef_search: int | None = None,
    ) -> ChromaRetriever:
        """Query collection ``collection_name`` of the embedded Chroma store at ``path``.

        With ``ef_search`` the collection is searched with that HNSW ``ef_search``. Chroma
        has no per-query setting, so the collection's configuration is changed (and the
        store reopened: its searcher keeps the value it was opened with) and the previous
        value is put back by ``close``. ``RetrieverError`` when the collection has no HNSW
        index (SPANN) or refuses the change.
        """
        client = open_chroma_client(path=path)
        # A process killed while it searched with a sweep's ef_search left the collection
        # at that value; the mark it wrote first says what the collection's own value was.
        left = _interrupted_ef_search(path, collection_name)
        wanted = ef_search if ef_search is not None else left
        previous: int | None = None
        changed = False
        if wanted is not None:
            try:
                collection = get_collection(client, collection_name)
                original = left if left is not None else hnsw_ef_search(collection)
                if ef_search is not None and ef_search != original:
                    _remember_ef_search(path, collection_name, original)
                    previous = original
                changed = _apply_ef_search(collection, wanted) is not None
                if previous is None:
                    _forget_ef_search(path, collection_name)
            except BaseException:
                close_client(client)
                raise
        try:
            if changed:
                # The store's searcher keeps the ef_search it was opened with.
                close_client(client)
                client = open_chroma_client(path=path)
            retriever = cls._owning(
                client,
                collection_name,
                embedder,
                ChromaLocation(kind="chroma-embedded", path=str(path)),
                batch_size=batch_size,
                where_key=where_key,
                allow_model_mismatch=allow_model_mismatch,
                defer_model_check=defer_model_check,
            )
        except BaseException:
            if previous is not None:
                _put_back_ef_search(path, collection_name, previous)
            raise
        retriever._previous_ef_search = previous
        retriever._ef_search_mark = (
            _mark_of(path, collection_name) if previous is not None else None
        )
        return retriever

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

    def _check_where_key(self, key: str) -> None:
        """Refuse a tenant key that none of the first ``WHERE_KEY_SAMPLE`` records has in its
        metadata: every query with a tenant would find nothing, and the run would be stored
        complete with scores of 0."""
        try:
            sample = self._collection.get(limit=WHERE_KEY_SAMPLE, include=["metadatas"])
        except Exception as error:  # connection and server errors alike
            raise RetrieverError(
                f"cannot read Chroma collection '{self._collection.name}' to check its "
                f"metadata key {key!r} (`where_key`): {describe_exception(error)}"
            ) from error
        metadatas = [dict(metadata or {}) for metadata in sample.get("metadatas") or []]
        if not metadatas or any(key in metadata for metadata in metadatas):
            return
        keys = sorted({name for metadata in metadatas for name in metadata})
        raise ConfigError(
            f"no record of Chroma collection '{self._collection.name}' has metadata key "
            f"{key!r} (`where_key`): every query with a tenant would find nothing. Metadata "
            f"keys of its first {len(metadatas)} records: {', '.join(keys) or 'none'}"
        )

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
                    f"Chroma collection '{name}' was {model_mismatch_detail(stored, current)}: "
                    "vectors of different dimensions cannot be compared. Query it with the "
                    "model it was built with, or re-index it with this one."
                )
            if not stored.matches(current) and not allow_model_mismatch:
                raise RetrieverError(
                    f"Chroma collection '{name}' was {model_mismatch_detail(stored, current)}. "
                    "Retrieval across two embedding spaces is silently wrong: query with the "
                    "model the collection was built with, re-index it "
                    "(`evalkit index --rebuild`), or allow the mismatch explicitly "
                    "(--allow-model-mismatch) to measure what it costs."
                )
            return
        # A collection evalkit did not build records no model, and two models of one
        # dimension (MiniLM and bge-small are both 384) would pass a dimension check while
        # every search is silently wrong; Chroma keeps each record's text, so a sample of
        # them is re-embedded and compared with the stored vectors.
        sample = self._collection.get(limit=REEMBED_SAMPLE, include=["embeddings", "documents"])
        embeddings = sample.get("embeddings")
        if embeddings is None or len(embeddings) == 0:
            self._model_check_skipped = "the collection holds no records"
            return
        dimension = len(embeddings[0])
        if dimension != current.dimension:
            raise RetrieverError(
                f"Chroma collection '{name}' holds {dimension}-dimensional vectors, but "
                f"the embedder {current.name} makes {current.dimension}-dimensional ones; "
                "query it with the model it was built with."
            )
        texts: Sequence[str | None] = sample.get("documents") or []
        rows = [
            (text, [float(value) for value in vector])
            for text, vector in zip(texts, embeddings, strict=False)
            if isinstance(text, str)
        ]
        self._reembedding = check_reembedding(
            rows,
            self._embedder,
            store=f"Chroma collection '{name}'",
            text_source="stored text",
            remedy=(
                "if the stored texts are not what was embedded, allow the mismatch explicitly "
                "(--allow-model-mismatch)"
            ),
            refuse=not allow_model_mismatch,
        )

    def _groups(self, queries: Sequence[Query]) -> list[tuple[dict[str, Any] | None, list[int]]]:
        key = self._where_key
        return [
            (None if tenant is None or key is None else tenant_where(key, tenant), positions)
            for tenant, positions in tenant_groups(queries, filtered=key is not None)
        ]

    def _retrieve_batch(
        self, batch: Sequence[Query], k: int, where: dict[str, Any] | None
    ) -> list[QueryResult]:
        start = time.perf_counter()
        try:
            vectors = self._embedder.embed([query.text for query in batch])
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
        return [
            self._search(query, vectors[position : position + 1], k, where)
            for position, query in enumerate(batch)
        ]

    def _search(
        self, query: Query, vector: npt.NDArray[np.float32], k: int, where: dict[str, Any] | None
    ) -> QueryResult:
        """``query`` searched alone, so that its latency is the collection's answer to it
        (its vector ready: the batch's embedding is evalkit's work, not the index's)."""
        start = time.perf_counter()
        try:
            response = self._collection.query(
                query_embeddings=vector, n_results=k, where=where, include=["distances"]
            )
        except Exception as error:  # recorded for this query, never swallowed
            message = f"Chroma query failed: {describe_exception(error)}"
            return failed_result(query.id, message, elapsed_ms(start))
        latency = elapsed_ms(start)
        ids = response.get("ids") or []
        distances = response.get("distances") or []
        if len(ids) != 1 or len(distances) != 1:
            message = (
                f"Chroma answered {len(ids)} result lists for one query; "
                "the server response is malformed"
            )
            return failed_result(query.id, message, latency)
        return self._result(query, list(ids[0]), distances[0], latency)

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
        """Kind, location, collection, document count, distance space and model, the
        ``indexed_fingerprint`` ``evalkit index`` stored (what runs recorded as their index
        fingerprint before it covered the collection's contents, so that ``index_changed``
        can tell their index from this one), and ``unfinished_indexing`` (when it started)
        for a collection an ``evalkit index`` left half written."""
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
            **{LATENCY_TIMING: PER_QUERY},
            where_key=self._where_key,
            ef_search=_configured_ef_search(self._collection),
            indexed_fingerprint=(self._collection.metadata or {}).get(INDEX_FINGERPRINT_KEY),
        )
        if self._stored_model is None and self._model_checked:
            description["model_check"] = describe_model_check(
                self._reembedding,
                text_source=None if self._reembedding is None else "stored texts",
                unset=self._model_check_skipped or "the collection keeps no texts to re-embed",
            )
        unfinished = (self._collection.metadata or {}).get(INDEXING_STARTED_KEY)
        if unfinished is not None:
            description["unfinished_indexing"] = str(unfinished)
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
        """What the collection holds now (``contents_fingerprint``: the fingerprint
        ``index_corpus`` stored, the count and the first and last documents), so a change
        made without evalkit shows too; None when the collection cannot be read."""
        try:
            return contents_fingerprint(self._collection)
        except Exception:  # an unreadable collection fails the run's queries, not its record
            return None

    def index_size(self) -> IndexSize | None:
        """The collection's record count (``count()``): each record is one document with its
        vector; None when the collection cannot be read."""
        try:
            count = int(self._collection.count())
        except Exception:  # an unreadable collection fails the run's queries, not its record
            return None
        return IndexSize(documents=count, vectors=count)

    def close(self) -> None:
        """Put back the ``ef_search`` the collection had before ``embedded`` changed it,
        and release the Chroma client this retriever opened (``embedded`` / ``server``)."""
        previous, self._previous_ef_search = self._previous_ef_search, None
        try:
            if previous is not None:
                _set_ef_search(self._collection, previous)
                if self._ef_search_mark is not None:
                    self._ef_search_mark.unlink(missing_ok=True)
        finally:
            if self._owned_client is not None:
                close_client(self._owned_client)
                self._owned_client = None


def tenant_where(key: str, tenant: str) -> dict[str, Any]:
    """The Chroma ``where`` filter keeping the records whose metadata ``key`` is ``tenant``.

    Chroma compares types strictly and goldset tenants are text, so a tenant written as an
    integer (``integer_tenant``) matches the integer too; ``$in`` refuses mixed types, so
    that is an ``$or`` of the two.
    """
    number = integer_tenant(tenant)
    if number is None:
        return {key: tenant}
    return {"$or": [{key: tenant}, {key: number}]}


def _configured_ef_search(collection: Collection) -> int | None:
    # The stored JSON: reading `configuration` parses the embedding function too, which
    # evalkit never sets, and Chroma warns about it.
    hnsw = (collection.configuration_json or {}).get("hnsw") or {}
    value = hnsw.get("ef_search")
    return None if value is None else int(value)


def _set_ef_search(collection: Collection, ef_search: int) -> None:
    set_hnsw_configuration(collection, {"ef_search": ef_search})


def hnsw_ef_search(collection: Collection) -> int:
    """The HNSW ``ef_search`` a Chroma collection is searched with; ``RetrieverError`` when
    it has no HNSW index (a SPANN collection, as Chroma Cloud makes)."""
    value = _configured_ef_search(collection)
    if value is None:
        raise RetrieverError(
            f"Chroma collection '{collection.name}' has no HNSW index, so it has no "
            "ef_search to set"
        )
    return value


def _apply_ef_search(collection: Collection, ef_search: int) -> int | None:
    """Set the collection's HNSW ``ef_search``; the value it had, or None when it already
    had ``ef_search``."""
    current = hnsw_ef_search(collection)
    if current == ef_search:
        return None
    try:
        _set_ef_search(collection, ef_search)
    except Exception as error:  # Chroma's own errors and a read-only store alike
        raise RetrieverError(
            f"cannot set ef_search {ef_search} on Chroma collection '{collection.name}': "
            f"{describe_exception(error)}"
        ) from error
    return current


def _put_back_ef_search(path: Path | str, collection_name: str, previous: int) -> None:
    client = open_chroma_client(path=path)
    try:
        _set_ef_search(get_collection(client, collection_name), previous)
        _forget_ef_search(path, collection_name)
    finally:
        close_client(client)


def restore_interrupted_ef_search(path: Path | str, collection_name: str) -> int | None:
    """Put back the ef_search a run killed while it searched with a sweep's value left on
    collection ``collection_name`` of the embedded store at ``path`` (its mark says the
    collection's own value); that value, or None when nothing was left. Commands that open
    the collection without a retriever (``evalkit index``, ``evalkit audit``) call it first,
    so an audit measures the collection as its users search it. A mark for a collection
    that no longer exists is dropped."""
    left = _interrupted_ef_search(path, collection_name)
    if left is None:
        return None
    try:
        _put_back_ef_search(path, collection_name, left)
    except CollectionNotFoundError:
        _forget_ef_search(path, collection_name)
        return None
    return left


_EF_SEARCH_MARKS = ".evalkit-ef-search"
"""Folder of the embedded store holding, per collection whose ef_search a run changed, the
value to put back: written before the change, removed once it is put back."""


def _mark_of(path: Path | str, collection_name: str) -> Path:
    return Path(path) / _EF_SEARCH_MARKS / f"{collection_name}.json"


def _remember_ef_search(path: Path | str, collection_name: str, original: int) -> None:
    mark = _mark_of(path, collection_name)
    mark.parent.mkdir(parents=True, exist_ok=True)
    replace_text(mark, json.dumps({"ef_search": original}) + "\n")


def _forget_ef_search(path: Path | str, collection_name: str) -> None:
    _mark_of(path, collection_name).unlink(missing_ok=True)


def _interrupted_ef_search(path: Path | str, collection_name: str) -> int | None:
    """The ef_search a killed run left a mark for (the collection's own value), or None."""
    mark = _mark_of(path, collection_name)
    try:
        value = json.loads(mark.read_text(encoding="utf-8")).get("ef_search")
    except (OSError, ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None
