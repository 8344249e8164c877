"""A Qdrant collection or a pgvector table seen as the audit sees a Chroma collection.

The index is read whole once (``ReadableIndex.read_contents``: the documents as its
retriever reads them) and answers the two calls the checks make of a Chroma collection:
``get`` (pages, or documents by id) and ``query`` (the index searched with query vectors, as
its retriever searches: HNSW settings included, so the ANN recall check measures them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from evalkit.errors import ConfigError
from evalkit.retrievers.contents import Contents, ReadableIndex, Vectors

__all__ = ["IndexView", "advice"]


class IndexView:
    """``index`` read whole, answering the audit's ``get`` and ``query`` as Chroma does."""

    def __init__(self, index: ReadableIndex) -> None:
        space = index.space
        if space is None:
            raise ConfigError(
                f"index {index.index_name!r} ranks by a distance the audit cannot compute "
                "exactly (cosine, inner product and L2 it can)"
            )
        self._index = index
        self.engine = str(index.describe().get("kind", "the engine"))
        self.name = index.index_name
        self.space = space
        self.metadata: Mapping[str, Any] = {}
        self.configuration_json: Mapping[str, Any] = {"hnsw": {"space": space}}

    @cached_property
    def _contents(self) -> Contents:
        return self._index.read_contents()

    @property
    def stored_as_several(self) -> str | None:
        """Why ANN recall cannot be measured here: documents stored as several points or
        rows (chunks under one id), which the index searches each, while exact search has
        each document's first; None when each document is one."""
        entries = self._contents.entries
        if entries is None:
            return None
        return (
            f"the index stores {len(self._contents.ids):,} documents as {entries:,} points "
            "or rows: its searches rank each, an exact search over documents would not"
        )

    @cached_property
    def _rows(self) -> dict[str, int]:
        return {doc_id: row for row, doc_id in enumerate(self._contents.ids)}

    def get(
        self,
        ids: Sequence[str] | None = None,
        *,
        include: Sequence[str] = (),
        limit: int | None = None,
        offset: int | None = None,
    ) -> dict[str, Any]:
        """The documents ``ids`` (those the index holds), or a page of every document, with
        the fields ``include`` names (``embeddings``, ``documents``, ``metadatas``)."""
        contents = self._contents
        if ids is not None:
            rows = [self._rows[doc_id] for doc_id in ids if doc_id in self._rows]
        else:
            start = offset or 0
            rows = list(range(start, len(contents.ids) if limit is None else start + limit))
            rows = [row for row in rows if row < len(contents.ids)]
        return {
            "ids": [contents.ids[row] for row in rows],
            "embeddings": contents.embeddings[rows] if "embeddings" in include else None,
            "documents": [contents.documents[row] for row in rows]
            if "documents" in include
            else None,
            "metadatas": [contents.metadatas[row] for row in rows]
            if "metadatas" in include
            else None,
        }

    def query(
        self, query_embeddings: Vectors, n_results: int, include: Sequence[str] = ()
    ) -> dict[str, Any]:
        """The ids the index returns for each query vector (top ``n_results``)."""
        return {"ids": self._index.search_vectors(query_embeddings, n_results)}


def advice(collection: object, chroma: str, other: str) -> str:
    """What to do about a finding: ``chroma`` for a Chroma collection (``evalkit index``,
    Chroma's calls), ``other`` for another engine's index, its ``{engine}`` named."""
    if isinstance(collection, IndexView):
        return other.replace("{engine}", collection.engine)
    return chroma
