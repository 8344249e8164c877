"""One read of a Chroma collection that every check shares: ids, content hashes, vectors.

The collection is paged through once (``collection.get`` with ``limit``/``offset``), keeping
only what the checks need: each document's id, its ``evalkit_content_hash`` and its stored
vector (float32). Document texts are fetched only for the sample the model check re-embeds,
and for documents written without a content hash, whose hash is then derived from them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

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

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

__all__ = ["IndexSnapshot", "fetch_documents", "read_snapshot"]

DEFAULT_PAGE_SIZE = 1000

FloatMatrix = npt.NDArray[np.float32]


@dataclass(frozen=True, eq=False)
class IndexSnapshot:
    """What a collection holds: ``ids[i]`` has content hash ``hashes[i]`` and vector ``vectors[i]``.

    A document written without an evalkit content hash (by another tool) gets the hash of its
    stored text, title and metadata, as ``evalkit index`` computes it; ``hashes[i]`` is empty
    only when it was stored without text.
    ``space`` is the collection's distance space (``cosine``, ``ip`` or ``l2``).
    """

    name: str
    ids: tuple[str, ...]
    hashes: tuple[str, ...]
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


def read_snapshot(collection: Collection, *, page_size: int = DEFAULT_PAGE_SIZE) -> IndexSnapshot:
    """Page through ``collection`` once and keep ids, content hashes and vectors.

    Raises ``RetrieverError`` when the collection cannot be read or holds documents
    without vectors.
    """
    ids: list[str] = []
    hashes: list[str] = []
    pages: list[FloatMatrix] = []
    offset = 0
    while True:
        page = _get(
            collection,
            include=["embeddings", "metadatas"],
            limit=page_size,
            offset=offset,
        )
        page_ids = [str(doc_id) for doc_id in page["ids"]]
        if not page_ids:
            break
        metadatas = page.get("metadatas") or [None] * len(page_ids)
        embeddings = page.get("embeddings")
        if embeddings is None or len(embeddings) != len(page_ids):
            raise RetrieverError(
                f"Chroma collection '{collection.name}' returned documents without vectors "
                f"(offset {offset}); it cannot be audited"
            )
        ids.extend(page_ids)
        hashes.extend(str((metadata or {}).get(CONTENT_HASH_KEY, "")) for metadata in metadatas)
        pages.append(np.asarray(embeddings, dtype=np.float32))
        if len(page_ids) < page_size:
            break
        offset += len(page_ids)
    vectors = np.concatenate(pages) if pages else np.zeros((0, 0), dtype=np.float32)
    unhashed = [doc_id for doc_id, digest in zip(ids, hashes, strict=True) if not digest]
    if unhashed:
        derived = _derived_hashes(collection, unhashed, page_size=page_size)
        hashes = [
            digest or derived.get(doc_id, "") for doc_id, digest in zip(ids, hashes, strict=True)
        ]
    return IndexSnapshot(
        name=collection.name,
        ids=tuple(ids),
        hashes=tuple(hashes),
        vectors=np.ascontiguousarray(vectors),
        space=collection_space(collection),
        metadata=dict(collection.metadata or {}),
    )


def fetch_documents(
    collection: Collection, doc_ids: Sequence[str], *, page_size: int = DEFAULT_PAGE_SIZE
) -> dict[str, Document]:
    """The stored text (and title) of ``doc_ids``, as the ``Document`` that was embedded.

    Documents stored without text are left out.
    """
    documents: dict[str, Document] = {}
    for doc_id, text, metadata in _stored_texts(collection, doc_ids, page_size=page_size):
        title = str(metadata.get(TITLE_KEY, ""))
        documents[doc_id] = Document(id=doc_id, text=text, title=title)
    return documents


def _stored_texts(
    collection: Collection, doc_ids: Sequence[str], *, page_size: int
) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """The id, text and metadata of each of ``doc_ids`` stored with a text, page by page."""
    for start in range(0, len(doc_ids), page_size):
        page = _get(
            collection,
            ids=list(doc_ids[start : start + page_size]),
            include=["documents", "metadatas"],
        )
        texts = page.get("documents") or [None] * len(page["ids"])
        metadatas = page.get("metadatas") or [None] * len(page["ids"])
        for doc_id, text, metadata in zip(page["ids"], texts, metadatas, strict=True):
            if text is not None:
                yield str(doc_id), str(text), dict(metadata or {})


def _derived_hashes(
    collection: Collection, doc_ids: Sequence[str], *, page_size: int
) -> dict[str, str]:
    """Content hashes of documents written without one, from their stored text and metadata.

    The same hash ``evalkit index`` would have stored when the metadata round-trips
    (scalar values); documents stored without text get none.
    """
    derived: dict[str, str] = {}
    for doc_id, text, stored in _stored_texts(collection, doc_ids, page_size=page_size):
        document = Document(
            id=doc_id,
            text=text,
            title=str(stored.get(TITLE_KEY, "")),
            metadata={
                key: value
                for key, value in stored.items()
                if not key.startswith(RESERVED_METADATA_PREFIX)
                and isinstance(value, str | int | float | bool)
            },
        )
        derived[doc_id] = content_hash(document)
    return derived


def _get(collection: Collection, **arguments: Any) -> Mapping[str, Any]:
    try:
        result: Mapping[str, Any] = collection.get(**arguments)
    except Exception as error:  # connection, server and validation errors alike
        raise RetrieverError(
            f"cannot read Chroma collection '{collection.name}': {describe_exception(error)}"
        ) from error
    return result
