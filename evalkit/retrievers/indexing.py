"""Building a Chroma index: embed a corpus with evalkit's model and write it into a
collection (``embeddings=``), idempotently, recording the fingerprints that
``chroma_client`` describes, and in each document's metadata its content hash
(``evalkit_content_hash``) and when that version was written (``evalkit_indexed_at``, ISO
8601 UTC), which a freshness check reads as the time it became retrievable.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from evalkit.embedding import ModelFingerprint, TextEmbedder
from evalkit.embedding.pace import PaceCallback, embed_paced
from evalkit.errors import ConfigError, EmbeddingError, InputError, RetrieverError
from evalkit.goldset import content_hash
from evalkit.goldset.corpus import RESERVED_METADATA_PREFIX
from evalkit.records import Document
from evalkit.retrievers.base import describe_exception
from evalkit.retrievers.chroma_client import (
    CONTENT_HASH_KEY,
    INDEX_FINGERPRINT_KEY,
    INDEXED_AT_KEY,
    INDEXING_STARTED_KEY,
    TITLE_KEY,
    check_collection_name,
    close_client,
    find_collection,
    get_collection,
    index_fingerprint,
    model_mismatch_detail,
    open_chroma_client,
    set_hnsw_configuration,
)

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection
    from chromadb.api.types import Metadatas

__all__ = ["IndexReport", "ProgressCallback", "index_corpus", "save_hnsw_graph"]


_STORED_HASH_PAGE = 5000


@contextlib.contextmanager
def _chroma_errors(action: str, hint: str = "") -> Iterator[None]:
    """Raise any error of the Chroma call inside (validation, invalid names, connection and
    server errors alike) as a RetrieverError: ``{action}: {error}{hint}``."""
    try:
        yield
    except Exception as error:
        raise RetrieverError(f"{action}: {describe_exception(error)}{hint}") from error


ProgressCallback = Callable[[int, int | None], None]
"""``progress(done, total)``: documents processed so far, and the total when known."""


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
    pace: PaceCallback | None = None,
) -> IndexReport:
    """Embed and write ``documents`` into the Chroma collection ``collection_name``.

    Idempotent by content hash (unchanged documents are skipped, changed ones upserted;
    ``prune=True`` deletes the ones gone), streamed in batches; see docs/retrievers.md.
    Raises ``ConfigError`` for a name Chroma refuses, ``EmbeddingError`` for a collection
    built with another model, ``RetrieverError`` for vectors evalkit did not write (unless
    ``rebuild=True``), ``InputError`` for a repeated id or a reserved metadata key.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    check_collection_name(collection_name)
    model = embedder.fingerprint
    created = find_collection(client, collection_name) is None or rebuild
    collection = _prepare_collection(client, collection_name, model, rebuild=rebuild)
    try:
        return _index_into(
            collection,
            documents,
            embedder,
            batch_size=_capped_batch_size(client, batch_size),
            prune=prune,
            total=total,
            progress=progress,
            pace=pace,
        )
    except BaseException:
        # A corpus refused before anything was written must not leave an empty collection
        # behind, which a run would then search instead of saying it does not exist.
        if created and collection.count() == 0:
            with contextlib.suppress(Exception):
                client.delete_collection(collection_name)
        raise


def save_hnsw_graph(path: Path | str, collection_name: str) -> None:
    """Have Chroma save the HNSW graph of ``collection_name`` at ``path`` with every record.

    Records past the last save wait in Chroma's log and are re-inserted in no fixed order
    at each opening, so each opening would search another graph; lowering
    ``sync_threshold`` to 1 for one opening saves it. Call once the writing client is
    closed. Does nothing without a non-empty HNSW collection; ``RetrieverError`` if refused.
    """
    client = open_chroma_client(path=path)
    try:
        collection = find_collection(client, collection_name)
        if collection is None or not collection.count():
            return
        hnsw = (collection.configuration_json or {}).get("hnsw") or {}
        own = hnsw.get("sync_threshold")
        if own is None:
            return
        with _chroma_errors(f"cannot save the HNSW graph of Chroma collection '{collection_name}'"):
            set_hnsw_configuration(collection, {"sync_threshold": 1})
    finally:
        close_client(client)
    client = open_chroma_client(path=path)
    try:
        collection = get_collection(client, collection_name)
        with _chroma_errors(f"cannot save the HNSW graph of Chroma collection '{collection_name}'"):
            try:
                sample = collection.get(limit=1, include=["embeddings"])["embeddings"]
                # The first search of a store just opened loads the saved graph and inserts
                # the records only the log holds; at a threshold of 1 that saves the graph.
                collection.query(query_embeddings=sample, n_results=1, include=[])
            finally:
                set_hnsw_configuration(collection, {"sync_threshold": int(own)})
    finally:
        close_client(client)


def _index_into(
    collection: Collection,
    documents: Iterable[Document],
    embedder: TextEmbedder,
    *,
    batch_size: int,
    prune: bool,
    total: int | None,
    progress: ProgressCallback | None,
    pace: PaceCallback | None,
) -> IndexReport:
    collection_name = collection.name
    model = embedder.fingerprint
    stored, stored_keys = _stored_documents(collection)
    if total is None and isinstance(documents, Sized):
        total = len(documents)
    if progress is not None:
        progress(0, total)
    # Documents already stored unchanged are not embedded again: with any stored, the
    # documents left to read are at most what is left to embed.
    at_most = bool(stored)
    if total is None:
        pace = None

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
            _mark_indexing(collection)
            left = len(pending) + (total - done - len(chunk) if total is not None else 0)
            _write(collection, pending, embedder, stored_keys, pace, total=left, at_most=at_most)
            stored.update((document.id, digest) for document, digest in pending)
            pace = None
        done += len(chunk)
        if progress is not None:
            progress(done, total)
    if not done:
        raise InputError("the corpus holds no document: there is nothing to index")

    absent = [doc_id for doc_id in stored if doc_id not in seen]
    removed = 0
    if prune and absent:
        _mark_indexing(collection)
        for start in range(0, len(absent), batch_size):
            batch = absent[start : start + batch_size]
            _delete(collection, batch)
            removed += len(batch)
        for doc_id in absent:
            del stored[doc_id]

    fingerprint = index_fingerprint(stored, model)
    metadata = dict(collection.metadata or {})
    unfinished = metadata.pop(INDEXING_STARTED_KEY, None) is not None
    if metadata.get(INDEX_FINGERPRINT_KEY) != fingerprint or unfinished:
        metadata.update(
            {
                **model.to_metadata(),
                INDEX_FINGERPRINT_KEY: fingerprint,
                INDEXED_AT_KEY: datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        with _chroma_errors(
            f"cannot record the index fingerprint of Chroma collection '{collection_name}'",
            "; re-run indexing",
        ):
            collection.modify(metadata=metadata)
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


def _mark_indexing(collection: Collection) -> None:
    """Record in the collection that an indexing is writing to it, before its first write,
    so that one stopped before its end leaves a mark runs can see (``INDEXING_STARTED_KEY``);
    the end of ``_index_into`` removes it. Kept from an earlier stopped indexing as it is."""
    metadata = dict(collection.metadata or {})
    if INDEXING_STARTED_KEY in metadata:
        return
    metadata[INDEXING_STARTED_KEY] = datetime.now(UTC).isoformat(timespec="seconds")
    with _chroma_errors(f"cannot mark Chroma collection '{collection.name}' as being indexed"):
        collection.modify(metadata=metadata)


def _prepare_collection(
    client: ClientAPI, name: str, model: ModelFingerprint, *, rebuild: bool
) -> Collection:
    existing = find_collection(client, name)
    if existing is not None and rebuild:
        with _chroma_errors(f"cannot delete Chroma collection '{name}' to rebuild it"):
            client.delete_collection(name)
        existing = None
    if existing is None:
        with _chroma_errors(f"cannot create Chroma collection '{name}'"):
            return client.create_collection(
                name=name,
                embedding_function=None,
                configuration={"hnsw": {"space": "cosine"}},
                metadata=model.to_metadata(),
            )
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
            f"Chroma collection '{name}' was {model_mismatch_detail(stored, model)}. Adding "
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


def _stored_documents(
    collection: Collection,
) -> tuple[dict[str, str], dict[str, frozenset[str]]]:
    """Each stored document's content hash ("" when it has none) and its metadata keys."""
    hashes: dict[str, str] = {}
    keys: dict[str, frozenset[str]] = {}
    shared: dict[frozenset[str], frozenset[str]] = {}  # one set per distinct key set
    offset = 0
    while True:
        page = collection.get(include=["metadatas"], limit=_STORED_HASH_PAGE, offset=offset)
        ids = page["ids"]
        metadatas = page.get("metadatas") or []
        for position, doc_id in enumerate(ids):
            metadata = (metadatas[position] if position < len(metadatas) else None) or {}
            # A document without a hash (written by another tool) is rewritten when indexed.
            hashes[doc_id] = str(metadata.get(CONTENT_HASH_KEY, ""))
            names = frozenset(metadata)
            keys[doc_id] = shared.setdefault(names, names)
        if len(ids) < _STORED_HASH_PAGE:
            return hashes, keys
        offset += len(ids)


def _chunks(documents: Iterable[Document], size: int) -> Iterator[list[Document]]:
    iterator = iter(documents)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _document_metadata(document: Document, digest: str) -> dict[str, str | int | float | bool]:
    metadata: dict[str, str | int | float | bool] = {}
    for key, value in document.metadata.items():
        if key.startswith(RESERVED_METADATA_PREFIX):
            raise InputError(
                f"document '{document.id}': metadata key '{key}' is reserved for evalkit "
                f"(keys starting with '{RESERVED_METADATA_PREFIX}'); rename it"
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
    collection: Collection,
    pending: Sequence[tuple[Document, str]],
    embedder: TextEmbedder,
    stored_keys: Mapping[str, frozenset[str]],
    pace: PaceCallback | None = None,
    *,
    total: int | None = None,
    at_most: bool = False,
) -> None:
    texts = [document.content for document, _ in pending]
    vectors = embed_paced(embedder, texts, pace, total=total, at_most=at_most)
    # Taken once the batch is embedded, just before it is written: a freshness check reads
    # it as the time this version became retrievable.
    written = datetime.now(UTC).isoformat(timespec="milliseconds")
    metadatas: Metadatas = []
    for document, digest in pending:
        metadata: dict[str, str | int | float | bool | None] = {
            **_document_metadata(document, digest),
            INDEXED_AT_KEY: written,
        }
        # Chroma's upsert keeps the keys it is not sent: a title or a metadata key the
        # corpus dropped would stay beside the new text (an audit then reads the old title
        # into the embedded text, and a dropped tenant still filters). None removes a key.
        for key in stored_keys.get(document.id, frozenset()) - metadata.keys():
            metadata[key] = None
        metadatas.append(metadata)
    with _chroma_errors(
        f"writing documents '{pending[0][0].id}' to '{pending[-1][0].id}' into Chroma "
        f"collection '{collection.name}' failed",
        ". Documents before them were written; re-running indexing resumes from there.",
    ):
        collection.upsert(
            ids=[document.id for document, _ in pending],
            embeddings=vectors,
            documents=[document.text for document, _ in pending],
            metadatas=metadatas,
        )


def _delete(collection: Collection, doc_ids: list[str]) -> None:
    with _chroma_errors(
        f"deleting {len(doc_ids)} documents from Chroma collection '{collection.name}' failed"
    ):
        collection.delete(ids=doc_ids)
