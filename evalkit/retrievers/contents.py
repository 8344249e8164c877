"""An index read whole: every document as its retriever reads it, and the search by vector.

A retriever whose index can be read back (``ReadableIndex``: Qdrant, pgvector) can be
audited as a Chroma collection is (``evalkit.audit.view``), and a drill copies it through the
same reading.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Contents", "ReadableIndex", "Vectors", "vector_rows"]

Vectors = np.ndarray[Any, np.dtype[np.float32]]


@dataclass(frozen=True, slots=True)
class Contents:
    """Every document of an index: ids, vectors (a row each), texts and metadata."""

    ids: list[str]
    embeddings: Vectors
    documents: list[str | None]
    metadatas: list[Mapping[str, Any] | None]
    entries: int | None = None
    """The points or rows read, when more than the documents (a document stored as several:
    its first is its document here); None when each is one."""


def vector_rows(vectors: Sequence[Any], count: int) -> Vectors:
    """``vectors`` as ``count`` float32 rows (no columns when there are none)."""
    if count == 0:
        return np.empty((0, 0), dtype=np.float32)
    return np.asarray(vectors, dtype=np.float32).reshape(count, -1)


@runtime_checkable
class ReadableIndex(Protocol):
    """A retriever whose index can be read back and searched with given query vectors."""

    @property
    def index_name(self) -> str:
        """The index as runs record it (a run's ``collection``: a collection or a table)."""
        ...

    @property
    def space(self) -> str | None:
        """The distance the index ranks by, in Chroma's names (``cosine``, ``ip``, ``l2``);
        None for one the audit cannot compute (Manhattan, L1)."""
        ...

    def read_contents(self) -> Contents:
        """Every document, as the retriever reads it (a document of several points once)."""
        ...

    def search_vectors(self, vectors: Vectors, k: int) -> list[list[str]]:
        """The top ``k`` document ids of each query vector, as the retriever searches."""
        ...

    def describe(self) -> dict[str, Any]:
        """The retriever's description (where the index is)."""
        ...
