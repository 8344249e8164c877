"""What an incident writes through: a drill's copy of an index, whatever engine holds it.

An incident reads the copy's documents whole (``contents``) and writes through four calls
(``delete``, ``add``, ``update``, and the HNSW settings it may rebuild with), so one
incident serves every engine a drill can copy. ``ChromaIndex`` is a Chroma collection;
``evalkit.drill.qdrant.QdrantIndex`` a Qdrant collection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from evalkit.errors import EvalkitError
from evalkit.retrievers.contents import Contents, Vectors, vector_rows

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

__all__ = [
    "ChromaIndex",
    "Contents",
    "NotInjectableError",
    "ScratchIndex",
    "Vectors",
    "in_pages",
    "vector_rows",
]

T = TypeVar("T")
CHROMA_HNSW_DEFAULTS: Mapping[str, int] = {
    "ef_search": 100,
    "ef_construction": 100,
    "max_neighbors": 16,
}
_PAGE = 1000


class NotInjectableError(EvalkitError):
    """The engine holding a copy cannot play an incident (the report says so)."""


@runtime_checkable
class ScratchIndex(Protocol):
    """A drill's copy of an index, as incidents write to it."""

    @property
    def name(self) -> str:
        """The copy's name (a drill's: ``DRILL_PREFIX``...)."""
        ...

    def contents(self) -> Contents:
        """Every document the copy holds."""
        ...

    def hnsw(self) -> Mapping[str, int]:
        """The copy's HNSW settings an ANN degradation lowers, under Chroma's names
        (``ef_search``, ``ef_construction``, ``max_neighbors``: those the engine has); none
        when it has no HNSW index to rebuild."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Remove the documents ``ids``."""
        ...

    def add(
        self,
        ids: Sequence[str],
        embeddings: Vectors,
        documents: Sequence[str | None],
        metadatas: Sequence[Mapping[str, Any] | None],
    ) -> None:
        """Add documents under new ids."""
        ...

    def update(
        self, ids: Sequence[str], *, embeddings: Vectors, documents: Sequence[str] | None = None
    ) -> None:
        """Give the documents ``ids`` these vectors (and texts), their ids and metadata kept."""
        ...

    def set_texts(self, texts: Mapping[str, str]) -> None:
        """Give documents (by id) these texts, every vector kept."""
        ...

    def close(self) -> None:
        """Let go of the engine (before the jobs open it)."""
        ...


def in_pages(items: Sequence[T]) -> list[Sequence[T]]:
    """``items`` in pages of at most 1,000 (a request's size every engine takes)."""
    return [items[start : start + _PAGE] for start in range(0, len(items), _PAGE)]


class ChromaIndex:
    """A Chroma collection as a ``ScratchIndex``; every call a page at a time."""

    def __init__(self, collection: Collection) -> None:
        self._collection = collection

    @property
    def name(self) -> str:
        """The collection's name."""
        return self._collection.name

    def close(self) -> None:
        """Nothing: the client stays the drill's."""

    def contents(self) -> Contents:
        """Every document, read a page at a time."""
        ids: list[str] = []
        vectors: list[Any] = []
        documents: list[str | None] = []
        metadatas: list[Mapping[str, Any] | None] = []
        while True:
            page = self._collection.get(
                include=["embeddings", "documents", "metadatas"], limit=_PAGE, offset=len(ids)
            )
            ids += page["ids"]
            vectors += list(page["embeddings"] if page["embeddings"] is not None else [])
            documents += page["documents"] or [None] * len(page["ids"])
            metadatas += page["metadatas"] or [None] * len(page["ids"])
            if len(page["ids"]) < _PAGE:
                break
        return Contents(ids, vector_rows(vectors, len(ids)), documents, metadatas)

    def hnsw(self) -> Mapping[str, int]:
        """The collection's HNSW settings, Chroma's defaults for those it does not store."""
        stored = (self._collection.configuration_json or {}).get("hnsw") or {}
        return {key: int(stored.get(key, value)) for key, value in CHROMA_HNSW_DEFAULTS.items()}

    def delete(self, ids: Sequence[str]) -> None:
        """Remove the documents ``ids``."""
        for page in in_pages(ids):
            self._collection.delete(ids=list(page))

    def add(
        self,
        ids: Sequence[str],
        embeddings: Vectors,
        documents: Sequence[str | None],
        metadatas: Sequence[Mapping[str, Any] | None],
    ) -> None:
        """Add documents under new ids."""
        for start in range(0, len(ids), _PAGE):
            end = start + _PAGE
            self._collection.add(
                ids=list(ids[start:end]),
                embeddings=embeddings[start:end],
                documents=list(documents[start:end]),  # type: ignore[arg-type]
                metadatas=list(metadatas[start:end]),  # type: ignore[arg-type]
            )

    def update(
        self, ids: Sequence[str], *, embeddings: Vectors, documents: Sequence[str] | None = None
    ) -> None:
        """Give the documents ``ids`` these vectors (and texts)."""
        for start in range(0, len(ids), _PAGE):
            end = start + _PAGE
            self._collection.update(
                ids=list(ids[start:end]),
                embeddings=embeddings[start:end],
                documents=None if documents is None else list(documents[start:end]),
            )

    def set_texts(self, texts: Mapping[str, str]) -> None:
        """Give documents (by id) these texts, their vectors kept (given again: a collection
        without an embedding function cannot take a text alone)."""
        ids = list(texts)
        for page in in_pages(ids):
            held = self._collection.get(ids=list(page), include=["embeddings"])
            if held["ids"]:
                self._collection.update(
                    ids=held["ids"],
                    embeddings=held["embeddings"],
                    documents=[texts[doc_id] for doc_id in held["ids"]],
                )
