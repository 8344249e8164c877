"""Any LangChain retriever (``langchain_core.retrievers.BaseRetriever``), replayed as it runs.

The queries go through the retriever's own ``batch`` with ``max_concurrency`` (its thread
pool, its callbacks, its tracing), and ``return_exceptions`` so that a query that raises is
recorded with its error while the others are answered. Each query's latency is measured by a
callback handler on the retriever's own start/end events.

``k`` is passed through: a ``VectorStoreRetriever`` receives it as the ``k`` search argument
of each call; another retriever with a ``k`` field (BM25, most community retrievers) is
copied with that field set, so the user's object is never changed; any other retriever's
results are cut to ``k``. Document ids come from the metadata key ``id_key`` when set, else
from ``Document.id``; scores from the documents' metadata when the retriever leaves them
there (``relevance_score``, ``score``...), else by rank (see ``evalkit.retrievers.framework``).

Tenants, as for Chroma, are filtered when a ``where_key`` is given: a
``VectorStoreRetriever`` then passes ``filter={where_key: tenant}`` to the store, the dict
filter of Chroma, PGVector, Pinecone, Qdrant and most LangChain stores. Any other retriever
cannot be told a tenant, so a ``where_key`` for one is refused up front rather than risk
returning another tenant's documents.

The retriever embeds its queries itself: evalkit cannot fingerprint its model, and the run
records that (``model_fingerprint()`` is None, ``describe()`` says why).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig
from langchain_core.vectorstores import VectorStoreRetriever

from evalkit.errors import ConfigError
from evalkit.records import Query, QueryResult
from evalkit.retrievers.base import (
    describe_exception,
    failed_result,
    tenant_groups,
    validate_k,
)
from evalkit.retrievers.framework import (
    FrameworkAdapter,
    Hit,
    MissingIdError,
    hits_result,
    metadata_id,
    metadata_score,
    qualified_name,
)

__all__ = ["LangChainRetriever"]


class _LatencyTimer(BaseCallbackHandler):
    """Records when each retriever run (by run id) started and ended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started: dict[uuid.UUID, float] = {}
        self.ended: dict[uuid.UUID, float] = {}

    def on_retriever_start(
        self, serialized: dict[str, Any], query: str, *, run_id: uuid.UUID, **kwargs: Any
    ) -> None:
        with self._lock:
            self.started.setdefault(run_id, time.perf_counter())

    def _end(self, run_id: uuid.UUID) -> None:
        with self._lock:
            self.ended[run_id] = time.perf_counter()

    def on_retriever_end(
        self, documents: Sequence[Document], *, run_id: uuid.UUID, **kwargs: Any
    ) -> None:
        self._end(run_id)

    def on_retriever_error(self, error: BaseException, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        self._end(run_id)

    def latency_ms(self, run_id: uuid.UUID, fallback_ms: float) -> float:
        """Milliseconds the run ``run_id`` took, or ``fallback_ms`` if it was not seen."""
        with self._lock:
            start, end = self.started.get(run_id), self.ended.get(run_id)
        return (end - start) * 1000.0 if start is not None and end is not None else fallback_ms


class LangChainRetriever(FrameworkAdapter):
    """Replays queries through a LangChain ``BaseRetriever``."""

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
            framework="LangChain",
            id_key=id_key,
            concurrency=concurrency,
        )
        self._retriever = retriever
        self._where_key = where_key
        self._is_vector_store = isinstance(retriever, VectorStoreRetriever)
        if where_key is not None and not self._is_vector_store:
            raise ConfigError(
                f"a LangChain {type(retriever).__name__} cannot be told a query's tenant: "
                "--where-key works with a VectorStoreRetriever (vectorstore.as_retriever()); "
                "otherwise build one retriever per tenant in your factory"
            )
        self._has_k_field = "k" in type(retriever).model_fields

    def _for_depth(self, k: int) -> tuple[BaseRetriever, dict[str, Any]]:
        """The retriever to call and the keyword arguments of each call (results are cut
        to ``k`` in any case)."""
        if self._is_vector_store:
            return self._retriever, {"k": k}
        if self._has_k_field:
            return self._retriever.model_copy(update={"k": k}), {}
        return self._retriever, {}

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        """Return the top ``k`` documents of every query, one result per query, in order."""
        validate_k(k)
        results: dict[str, QueryResult] = {}
        retriever, call_kwargs = self._for_depth(k)
        for tenant, positions in tenant_groups(queries, filtered=self._where_key is not None):
            group = [queries[position] for position in positions]
            kwargs = dict(call_kwargs)
            if tenant is not None:
                kwargs["filter"] = {self._where_key: tenant}
            for query, result in zip(group, self._batch(retriever, group, k, kwargs), strict=True):
                results[query.id] = result
        return [results[query.id] for query in queries]

    def _batch(
        self, retriever: BaseRetriever, queries: list[Query], k: int, kwargs: dict[str, Any]
    ) -> list[QueryResult]:
        timer = _LatencyTimer()
        run_ids = [uuid.uuid4() for _ in queries]
        configs: list[RunnableConfig] = [
            {"max_concurrency": self._concurrency, "callbacks": [timer], "run_id": run_id}
            for run_id in run_ids
        ]
        start = time.perf_counter()
        outputs = retriever.batch(
            [query.text for query in queries], configs, return_exceptions=True, **kwargs
        )
        fallback_ms = (time.perf_counter() - start) * 1000.0 / max(len(queries), 1)
        results = []
        for query, run_id, output in zip(queries, run_ids, outputs, strict=True):
            latency = timer.latency_ms(run_id, fallback_ms)
            if isinstance(output, BaseException):
                results.append(failed_result(query.id, describe_exception(output), latency))
                continue
            try:
                hits = [self._hit(document) for document in output]
            except MissingIdError as error:
                results.append(failed_result(query.id, describe_exception(error), latency))
                continue
            self._note_scores(hits)
            results.append(hits_result(query, hits, k, latency))
        return results

    def _hit(self, document: Document) -> Hit:
        doc_id = metadata_id(document.metadata, document.id, self._id_key, what="Document")
        return Hit(doc_id=doc_id, score=metadata_score(document.metadata))

    def describe(self) -> dict[str, Any]:
        """The retriever's class (and vector store's), the id key and concurrency; no secrets."""
        described = self._described("langchain", self._retriever)
        described["where_key"] = self._where_key
        described["k_passed_as"] = (
            "search argument k"
            if self._is_vector_store
            else ("field k" if self._has_k_field else "results cut to k")
        )
        if isinstance(self._retriever, VectorStoreRetriever):
            described["vector_store"] = qualified_name(self._retriever.vectorstore)
            described["search_type"] = self._retriever.search_type
        return described
