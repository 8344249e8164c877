"""Any LlamaIndex retriever (``llama_index.core`` ``BaseRetriever``), replayed as it runs.

Queries run through the retriever's own ``aretrieve`` when it has a real async path, at most
``concurrency`` at a time on one event loop; a retriever whose async path is only the
synchronous one in disguise runs on ``concurrency`` threads instead. A query that raises is
recorded with its error while the others are answered.

``k`` is passed through as ``similarity_top_k`` on a copy of a retriever that has it (the
vector index retriever and most store retrievers), so the user's object is never changed;
any other retriever's results are cut to ``k``. Node ids come from the metadata key
``id_key`` when set (chunks usually carry their source document's id there), else from
``node.node_id``; scores from ``NodeWithScore.score``, else by rank.

Tenants: a LlamaIndex retriever takes its metadata filters when it is built, so evalkit
cannot give it a query's tenant; a ``where_key`` is refused up front (as for Chroma, tenants
are ignored without one). Build one retriever per tenant in your factory, or use a store
adapter with a tenant key (pgvector, Qdrant, Chroma).

The retriever embeds its queries itself: evalkit cannot fingerprint its model, and the run
records that (``model_fingerprint()`` is None, ``describe()`` says why).
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import NodeWithScore

from evalkit.errors import ConfigError
from evalkit.records import Query, QueryResult
from evalkit.retrievers.base import describe_exception, elapsed_ms, failed_result, validate_k
from evalkit.retrievers.framework import (
    FrameworkAdapter,
    Hit,
    MissingIdError,
    hits_result,
    metadata_id,
)

__all__ = ["LlamaIndexRetriever"]


class LlamaIndexRetriever(FrameworkAdapter):
    """Replays queries through a LlamaIndex ``BaseRetriever``."""

    def __init__(
        self,
        retriever: BaseRetriever,
        *,
        id_key: str | None = None,
        concurrency: int = 8,
        where_key: str | None = None,
    ) -> None:
        super().__init__(
            retriever,
            BaseRetriever,
            framework="LlamaIndex",
            id_key=id_key,
            concurrency=concurrency,
        )
        if where_key is not None:
            raise ConfigError(
                "a LlamaIndex retriever takes its filters when it is built, so evalkit cannot "
                "give it a query's tenant (--where-key); build one retriever per tenant in "
                "your factory"
            )
        self._retriever = retriever
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

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        """Return the top ``k`` documents of every query, one result per query, in order."""
        validate_k(k)
        retriever = self._for_depth(k)
        if self._is_async:
            return asyncio.run(self._retrieve_async(retriever, queries, k))
        workers = max(1, min(self._concurrency, len(queries)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="evalkit-li") as pool:
            return list(pool.map(lambda query: self._ask(retriever, query, k), queries))

    async def _retrieve_async(
        self, retriever: BaseRetriever, queries: Sequence[Query], k: int
    ) -> list[QueryResult]:
        slots = asyncio.Semaphore(self._concurrency)

        async def ask(query: Query) -> QueryResult:
            async with slots:
                start = time.perf_counter()
                try:
                    nodes = await retriever.aretrieve(query.text)
                except Exception as error:
                    return failed_result(query.id, describe_exception(error), elapsed_ms(start))
                return self._result(query, nodes, k, elapsed_ms(start))

        return list(await asyncio.gather(*(ask(query) for query in queries)))

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
                    score=None if found.score is None else float(found.score),
                )
                for found in nodes
            ]
        except MissingIdError as error:
            return failed_result(query.id, describe_exception(error), latency_ms)
        self._note_scores(hits)
        return hits_result(query, hits, k, latency_ms)

    def describe(self) -> dict[str, Any]:
        """The retriever's class, the id key, concurrency and how k is passed; no secrets."""
        described = self._described("llamaindex", self._retriever)
        described["calls"] = "aretrieve" if self._is_async else "retrieve on threads"
        described["k_passed_as"] = "similarity_top_k" if self._has_top_k else "results cut to k"
        return described
