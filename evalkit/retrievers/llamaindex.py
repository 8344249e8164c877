"""Any LlamaIndex retriever (``llama_index.core`` ``BaseRetriever``), replayed as it runs.

How its queries are sent, how ``k``, ids, scores and tenants are passed, and why its model
is not fingerprinted: docs/retrievers.md, "LlamaIndex".
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.indices.vector_store.retrievers import VectorIndexRetriever
from llama_index.core.schema import NodeWithScore
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from evalkit.coroutines import map_requests, run_sync
from evalkit.errors import ConfigError
from evalkit.records import Query, QueryResult
from evalkit.retrievers.base import (
    describe_exception,
    elapsed_ms,
    failed_result,
    tenant_groups,
    validate_k,
)
from evalkit.retrievers.framework import (
    FrameworkAdapter,
    Hit,
    MissingIdError,
    finite_score,
    hits_result,
    metadata_id,
    rank_fallback,
)

__all__ = ["LlamaIndexRetriever"]


def _tenant_filters(own: MetadataFilters | None, where_key: str, tenant: str) -> MetadataFilters:
    """``own`` AND ``where_key == tenant``: flat when ``own`` is already an AND (what every
    vector store supports), nested otherwise."""
    tenant_filter = MetadataFilter(key=where_key, value=tenant, operator=FilterOperator.EQ)
    if own is None or not own.filters:
        return MetadataFilters(filters=[tenant_filter], condition=FilterCondition.AND)
    if own.condition in (None, FilterCondition.AND):
        return MetadataFilters(filters=[*own.filters, tenant_filter], condition=FilterCondition.AND)
    return MetadataFilters(filters=[own, tenant_filter], condition=FilterCondition.AND)


class LlamaIndexRetriever(FrameworkAdapter[BaseRetriever]):
    """Replays queries through a LlamaIndex ``BaseRetriever``."""

    _framework = "LlamaIndex"
    _base = BaseRetriever

    def _setup(self) -> None:
        retriever = self._retriever
        if self._where_key is not None and not isinstance(retriever, VectorIndexRetriever):
            raise ConfigError(
                f"a LlamaIndex {type(retriever).__name__} has no metadata filters evalkit can "
                "add a query's tenant to: `where_key` works with a VectorIndexRetriever, so "
                "return index.as_retriever() from your factory, or replay the store through an "
                "adapter with a tenant key (pgvector, Qdrant, Chroma)"
            )
        top_k = getattr(type(retriever), "similarity_top_k", None)
        self._has_top_k = isinstance(top_k, property) and top_k.fset is not None
        # BaseRetriever._aretrieve only calls the synchronous _retrieve: no concurrency there.
        self._is_async = type(retriever)._aretrieve is not BaseRetriever._aretrieve

    def _for_depth(self, k: int) -> BaseRetriever:
        if not self._has_top_k:
            return self._retriever
        retriever = copy.copy(self._retriever)
        retriever.similarity_top_k = k  # type: ignore[attr-defined]
        return retriever

    def _for_tenant(self, retriever: BaseRetriever, tenant: str | None) -> BaseRetriever:
        if tenant is None or self._where_key is None:
            return retriever
        assert isinstance(retriever, VectorIndexRetriever)  # checked in __init__
        filtered = copy.copy(retriever)
        filtered._filters = _tenant_filters(retriever._filters, self._where_key, tenant)
        return filtered

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        """Return the top ``k`` documents of every query, one result per query, in order."""
        validate_k(k)
        at_depth = self._for_depth(k)
        by_position: dict[int, tuple[BaseRetriever, Query]] = {}
        for tenant, positions in tenant_groups(queries, filtered=self._where_key is not None):
            retriever = self._for_tenant(at_depth, tenant)
            by_position.update((position, (retriever, queries[position])) for position in positions)
        asks = [by_position[position] for position in range(len(queries))]
        if self._is_async:
            return run_sync(lambda: self._retrieve_async(asks, k))
        return map_requests(
            lambda ask, _: self._ask(ask[0], ask[1], k),
            asks,
            workers=min(self._concurrency, len(queries)),
        )

    async def _retrieve_async(
        self, asks: Sequence[tuple[BaseRetriever, Query]], k: int
    ) -> list[QueryResult]:
        slots = asyncio.Semaphore(self._concurrency)

        async def ask(retriever: BaseRetriever, query: Query) -> QueryResult:
            async with slots:
                start = time.perf_counter()
                try:
                    nodes = await retriever.aretrieve(query.text)
                except Exception as error:
                    return failed_result(query.id, describe_exception(error), elapsed_ms(start))
                return self._result(query, nodes, k, elapsed_ms(start))

        return list(await asyncio.gather(*(ask(retriever, query) for retriever, query in asks)))

    def _ask(self, retriever: BaseRetriever, query: Query, k: int) -> QueryResult:
        start = time.perf_counter()
        try:
            nodes = retriever.retrieve(query.text)
        except Exception as error:
            return failed_result(query.id, describe_exception(error), elapsed_ms(start))
        return self._result(query, nodes, k, elapsed_ms(start))

    def _result(
        self, query: Query, nodes: Sequence[NodeWithScore], k: int, latency_ms: float
    ) -> QueryResult:
        try:
            hits = [
                Hit(
                    doc_id=metadata_id(
                        found.node.metadata, found.node.node_id, self._id_key, what="node"
                    ),
                    score=finite_score(found.score),
                )
                for found in nodes
            ]
        except MissingIdError as error:
            return failed_result(query.id, describe_exception(error), latency_ms)
        return hits_result(query, hits, k, latency_ms)

    def describe(self) -> dict[str, Any]:
        """The retriever's class, how it is called and scored, the id key, concurrency, the
        tenant key and how k is passed; no secrets."""
        described = self._described("llamaindex", scores=rank_fallback("NodeWithScore.score"))
        described["calls"] = "aretrieve" if self._is_async else "retrieve on threads"
        described["k_passed_as"] = "similarity_top_k" if self._has_top_k else "results cut to k"
        return described
