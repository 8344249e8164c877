"""One read of a Chroma collection that every check shares: ids, content hashes, vectors.

The collection is paged through once, keeping ids, vectors, the recorded
``evalkit_content_hash`` (the version indexed) and the stored text's hash (what it holds now).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from evalkit.audit.view import IndexView
from evalkit.embedding import ModelFingerprint
from evalkit.errors import RetrieverError
from evalkit.goldset.corpus import RESERVED_METADATA_PREFIX, content_hash
from evalkit.records import Document
from evalkit.retrievers.base import describe_exception
from evalkit.retrievers.chroma_client import (
    CONTENT_HASH_KEY,
    INDEX_FINGERPRINT_KEY,
    TITLE_KEY,
    collection_space,
)
from evalkit.retrievers.versions import text_hash

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

    AuditedCollection = Collection | IndexView
    """What an audit reads: a Chroma collection, or another engine's index read whole."""

__all__ = [
    "IndexSnapshot",
    "StoredDocument",
    "embedded_text_hash",
    "fetch_documents",
    "read_snapshot",
    "stored_documents",
]

DEFAULT_PAGE_SIZE = 1000

FloatMatrix = npt.NDArray[np.float32]


@dataclass(frozen=True, eq=False)
class IndexSnapshot:
    """What a collection holds: ``ids[i]`` has content hash ``hashes[i]``, stores a text
    whose ``embedded_text_hash`` is ``text_hashes[i]`` and vector ``vectors[i]``.

    ``hashes[i]`` is the hash recorded at indexing, else computed as ``evalkit index`` would;
    both hashes are empty for a document stored without text. ``space``: cosine, ip or l2.
    """

    name: str
    ids: tuple[str, ...]
    hashes: tuple[str, ...]
    text_hashes: tuple[str, ...]
    vectors: FloatMatrix
    space: str
    metadata: Mapping[str, Any]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dimension(self) -> int:
        """Length of the stored vectors (0 for an empty collection)."""
        return int(self.vectors.shape[1]) if self.vectors.ndim == 2 else 0

    @property
    def stored_model(self) -> ModelFingerprint | None:
        """The model fingerprint recorded in the collection metadata, if any."""
        return ModelFingerprint.from_metadata(dict(self.metadata))

    @property
    def index_fingerprint(self) -> str | None:
        """The index fingerprint recorded by ``index_corpus``, if any."""
        value = self.metadata.get(INDEX_FINGERPRINT_KEY)
        return None if value is None else str(value)

    @cached_property
    def positions(self) -> dict[str, int]:
        """Row of each document id."""
        return {doc_id: row for row, doc_id in enumerate(self.ids)}


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """One document as a collection stores it: the ``Document`` that is embedded (stored
    text, title and own metadata), the content hash recorded when it was indexed (``""``
    when it was written without one) and, when read, its stored vector."""

    document: Document
    recorded_hash: str
    vector: npt.NDArray[np.float32] | None = None

    @property
    def content_hash(self) -> str:
        """The content hash of what the collection stores now (``content_hash``)."""
        return content_hash(self.document)

    @property
    def rewritten(self) -> bool:
        """Whether the stored text, title or metadata is no longer what was indexed: the
        content hash recorded at indexing differs from the stored content's (a pipeline
        that updates documents in place leaves the recorded hash as it was)."""
        return bool(self.recorded_hash) and self.recorded_hash != self.content_hash


def embedded_text_hash(document: Document) -> str:
    """The hash of the text a document's vector embeds (title and text, ``Document.content``),
    whitespace runs counted as one space (``text_hash``): equal for the same document
    stored by another tool, blind to metadata."""
    return text_hash(document.content)


def read_snapshot(
    collection: AuditedCollection, *, page_size: int = DEFAULT_PAGE_SIZE
) -> IndexSnapshot:
    """Page through ``collection`` once and keep ids, content hashes, text hashes and vectors.

    Raises ``RetrieverError`` when the collection cannot be read or holds documents
    without vectors.
    """
    ids: list[str] = []
    hashes: list[str] = []
    text_hashes: list[str] = []
    pages: list[FloatMatrix] = []
    offset = 0
    while True:
        page = _get(
            collection,
            include=["embeddings", "metadatas", "documents"],
            limit=page_size,
            offset=offset,
        )
        page_ids = [str(doc_id) for doc_id in page["ids"]]
        if not page_ids:
            break
        embeddings = page.get("embeddings")
        if embeddings is None or len(embeddings) != len(page_ids):
            raise RetrieverError(
                f"{_what(collection)} '{collection.name}' returned documents without vectors "
                f"(offset {offset}); it cannot be audited"
            )
        texts = page.get("documents") or [None] * len(page_ids)
        metadatas = page.get("metadatas") or [None] * len(page_ids)
        for doc_id, text, metadata in zip(page_ids, texts, metadatas, strict=True):
            recorded = str((metadata or {}).get(CONTENT_HASH_KEY, ""))
            if text is None:
                hashes.append(recorded)
                text_hashes.append("")
                continue
            stored = _stored_document(doc_id, str(text), metadata or {})
            hashes.append(recorded or stored.content_hash)
            text_hashes.append(embedded_text_hash(stored.document))
        ids.extend(page_ids)
        pages.append(np.asarray(embeddings, dtype=np.float32))
        if len(page_ids) < page_size:
            break
        offset += len(page_ids)
    vectors = np.concatenate(pages) if pages else np.zeros((0, 0), dtype=np.float32)
    return IndexSnapshot(
        name=collection.name,
        ids=tuple(ids),
        hashes=tuple(hashes),
        text_hashes=tuple(text_hashes),
        vectors=np.ascontiguousarray(vectors),
        space=collection.space
        if isinstance(collection, IndexView)
        else collection_space(collection),
        metadata=dict(collection.metadata or {}),
    )


def stored_documents(
    collection: AuditedCollection,
    doc_ids: Sequence[str],
    *,
    vectors: bool = False,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> dict[str, StoredDocument]:
    """The documents of ``doc_ids`` the collection stores with a text, as ``StoredDocument``
    (with their stored vectors when ``vectors``); documents stored without text are left
    out."""
    include = ["documents", "metadatas", *(["embeddings"] if vectors else [])]
    found: dict[str, StoredDocument] = {}
    for start in range(0, len(doc_ids), page_size):
        page = _get(collection, ids=list(doc_ids[start : start + page_size]), include=include)
        count = len(page["ids"])
        texts = page.get("documents") or [None] * count
        metadatas = page.get("metadatas") or [None] * count
        stored_vectors = page.get("embeddings")
        if stored_vectors is None:
            stored_vectors = [None] * count
        for doc_id, text, metadata, vector in zip(
            page["ids"], texts, metadatas, stored_vectors, strict=True
        ):
            if text is None:
                continue
            found[str(doc_id)] = _stored_document(
                str(doc_id),
                str(text),
                metadata or {},
                None if vector is None else np.asarray(vector, dtype=np.float32),
            )
    return found


def fetch_documents(
    collection: AuditedCollection, doc_ids: Sequence[str], *, page_size: int = DEFAULT_PAGE_SIZE
) -> dict[str, Document]:
    """The stored text (and title) of ``doc_ids``, as the ``Document`` that was embedded.

    Documents stored without text are left out.
    """
    stored = stored_documents(collection, doc_ids, page_size=page_size)
    return {doc_id: document.document for doc_id, document in stored.items()}


def _stored_document(
    doc_id: str,
    text: str,
    metadata: Mapping[str, Any],
    vector: npt.NDArray[np.float32] | None = None,
) -> StoredDocument:
    """A stored document as ``evalkit index`` wrote it: its title from evalkit's key, its own
    metadata the keys outside evalkit's whose values round-trip (scalars), so that its
    content hash is the one ``evalkit index`` computes for the same document."""
    document = Document(
        id=doc_id,
        text=text,
        title=str(metadata.get(TITLE_KEY, "")),
        metadata={
            key: value
            for key, value in metadata.items()
            if not key.startswith(RESERVED_METADATA_PREFIX)
            and isinstance(value, str | int | float | bool)
        },
    )
    return StoredDocument(document, str(metadata.get(CONTENT_HASH_KEY, "")), vector)


def _what(collection: AuditedCollection) -> str:
    return (
        f"{collection.engine} index" if isinstance(collection, IndexView) else "Chroma collection"
    )


def _get(collection: AuditedCollection, **arguments: Any) -> Mapping[str, Any]:
    try:
        result: Mapping[str, Any] = collection.get(**arguments)
    except RetrieverError:  # another engine's, which says what failed
        raise
    except Exception as error:  # connection, server and validation errors alike
        raise RetrieverError(
            f"cannot read {_what(collection)} '{collection.name}': {describe_exception(error)}"
        ) from error
    return result
