"""What the vector-store adapters share (Chroma, pgvector, Qdrant): evalkit embeds the queries
with the query embedder and searches the store ``batch_size`` queries at a time, one group
(a tenant, or the store's filter for it) per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic

from evalkit.embedding import ModelFingerprint, TextEmbedder, prefetch_queries
from evalkit.errors import ConfigError
from evalkit.records import Query, QueryResult
from evalkit.retrievers.base import ClosesOnExit, Group, retrieve_in_batches, validate_k

__all__ = ["EmbeddedQueryRetriever"]


class EmbeddedQueryRetriever(ClosesOnExit, Generic[Group]):
    """A store searched with evalkit's own query embeddings, in batches of one group.

    A subclass says how the store's model is checked (``verify_model``, before the first
    batch), how queries are grouped (``_groups``) and how one batch of a group is answered
    (``_retrieve_batch``).
    """

    def __init__(self, embedder: TextEmbedder, *, batch_size: int) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self._embedder = embedder
        self._batch_size = batch_size

    def verify_model(self) -> None:
        """Refuse a store whose vectors were made by another model than the query embedder."""
        raise NotImplementedError

    def _groups(self, queries: Sequence[Query]) -> Sequence[tuple[Group, list[int]]]:
        """The positions of ``queries`` by the group their batches are searched in."""
        raise NotImplementedError

    def _retrieve_batch(self, batch: list[Query], k: int, group: Group) -> list[QueryResult]:
        """The results of ``batch``, queries of ``group``, in order."""
        raise NotImplementedError

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        """Return the top ``k`` documents of every query, one result per query, in order."""
        validate_k(k)
        self.verify_model()
        return retrieve_in_batches(
            queries,
            self._groups(queries),
            batch_size=self._batch_size,
            retrieve_batch=lambda batch, group: self._retrieve_batch(batch, k, group),
        )

    def model_fingerprint(self) -> ModelFingerprint | None:
        """The query embedder's fingerprint, which ``verify_model`` checked the store against.

        Not a model the store records: queried with another model (``allow_model_mismatch``)
        or a store that records none, the run would record a model its queries were not
        embedded with, and a change of query model between runs would go unseen.
        """
        return self._embedder.fingerprint

    def prefetch(self, texts: Sequence[str]) -> None:
        """Have the query embedder embed ``texts`` ahead of the batches that will need them."""
        prefetch_queries(self._embedder, texts)
