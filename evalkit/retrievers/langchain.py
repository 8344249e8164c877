"""Any LangChain retriever (``langchain_core.retrievers.BaseRetriever``), replayed as it runs.

How its queries are sent and timed, how ``k``, ids, scores and tenants are passed, and why
its model is not fingerprinted: docs/retrievers.md, "LangChain".
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    BaseCallbackHandler,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig
from langchain_core.vectorstores import InMemoryVectorStore, VectorStore, VectorStoreRetriever

from evalkit.coroutines import run_sync
from evalkit.errors import ConfigError
from evalkit.records import Query, QueryResult
from evalkit.retrievers.base import (
    BATCH_SHARE,
    LATENCY_TIMING,
    PER_QUERY,
    describe_exception,
    failed_result,
    tenant_groups,
    validate_k,
)
from evalkit.retrievers.framework import (
    SCORE_METADATA_KEYS,
    FrameworkAdapter,
    Hit,
    MissingIdError,
    finite_score,
    hits_result,
    metadata_id,
    metadata_score,
    qualified_name,
    rank_fallback,
)

__all__ = ["LangChainRetriever"]

_RELEVANCE_KEY = "evalkit_relevance_score"
"""Metadata key under which the scoring copy hands each document's relevance score over."""

_SCORED_SEARCH_TYPES = ("similarity", "similarity_score_threshold")
_SYNC_RELEVANCE = (
    "similarity_search_with_relevance_scores",
    "_similarity_search_with_relevance_scores",
)
_ASYNC_RELEVANCE: tuple[str, ...] = (
    "asimilarity_search_with_relevance_scores",
    "_asimilarity_search_with_relevance_scores",
    "asimilarity_search_with_score",
)
_ASYNC_SEARCH: dict[str, tuple[str, ...]] = {
    "similarity": ("asimilarity_search",),
    "mmr": ("amax_marginal_relevance_search",),
}


def _overrides(cls: type, base: type, *names: str) -> bool:
    """Whether ``cls`` has its own version of any of ``base``'s methods ``names``."""
    return any(getattr(cls, name, None) is not getattr(base, name, None) for name in names)


def _gives_relevance_scores(store: VectorStore) -> bool:
    """Whether ``store`` can answer ``similarity_search_with_relevance_scores``.

    VectorStore's default needs both a scored search and a relevance function, and raises
    NotImplementedError without them (InMemoryVectorStore has no relevance function).
    """
    if _overrides(type(store), VectorStore, *_SYNC_RELEVANCE):
        return True
    if not _overrides(type(store), VectorStore, "similarity_search_with_score"):
        return False
    try:
        store._select_relevance_score_fn()
    except (NotImplementedError, ValueError):
        return False
    return True


def _with_score(document: Document, score: float) -> Document:
    return document.model_copy(update={"metadata": {**document.metadata, _RELEVANCE_KEY: score}})


class _RelevanceScored(VectorStoreRetriever):
    """A ``VectorStoreRetriever`` whose documents carry the store's relevance scores.

    The search is the one ``VectorStoreRetriever`` makes for the ``similarity`` and
    ``similarity_score_threshold`` search types, through the store's relevance-scored method.
    """

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        found = self.vectorstore.similarity_search_with_relevance_scores(
            query, **(self.search_kwargs | kwargs)
        )
        return [_with_score(document, score) for document, score in found]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        found = await self.vectorstore.asimilarity_search_with_relevance_scores(
            query, **(self.search_kwargs | kwargs)
        )
        return [_with_score(document, score) for document, score in found]


@functools.cache
def _relevance_scored_class(cls: type[VectorStoreRetriever]) -> type[VectorStoreRetriever]:
    """``_RelevanceScored`` for ``cls`` (a subclass of ``VectorStoreRetriever`` keeps its own
    fields and methods, and takes the scored search)."""
    if cls is VectorStoreRetriever:
        return _RelevanceScored
    return type(cls.__name__, (_RelevanceScored, cls), {"__module__": __name__})


def _relevance_scored_copy(retriever: VectorStoreRetriever) -> VectorStoreRetriever:
    scored_class = _relevance_scored_class(type(retriever))
    fields = {name: getattr(retriever, name) for name in type(retriever).model_fields}
    return scored_class.model_construct(_fields_set=set(retriever.model_fields_set), **fields)


class _LatencyTimer(BaseCallbackHandler):
    """Times one query: the retriever's top-level run, from its start event to its end.

    One timer per query, given in that query's config: ``BaseRetriever`` does not take a run
    id from the config, so runs cannot be told apart by an id chosen in advance.
    """

    run_inline = True
    """Called on the event loop itself under ``abatch``: timestamps not delayed by a thread."""

    def __init__(self) -> None:
        self._run_id: uuid.UUID | None = None
        self._started: float | None = None
        self._ended: float | None = None

    def on_retriever_start(
        self,
        serialized: dict[str, Any],
        query: str,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if parent_run_id is None and self._run_id is None:
            self._run_id, self._started = run_id, time.perf_counter()

    def _end(self, run_id: uuid.UUID) -> None:
        if run_id == self._run_id:
            self._ended = time.perf_counter()

    def on_retriever_end(
        self, documents: Sequence[Document], *, run_id: uuid.UUID, **kwargs: Any
    ) -> None:
        self._end(run_id)

    def on_retriever_error(self, error: BaseException, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        self._end(run_id)

    @property
    def timed(self) -> bool:
        """Whether the query's run was seen from its start to its end."""
        return self._started is not None and self._ended is not None

    def latency_ms(self, fallback_ms: float) -> float:
        """Milliseconds the query's run took, or ``fallback_ms`` if it was not seen."""
        if self._started is None or self._ended is None:
            return fallback_ms
        return (self._ended - self._started) * 1000.0


def _filters_by_predicate(store: VectorStore) -> bool:
    """Whether ``store`` filters with a function of the document (LangChain's own
    ``InMemoryVectorStore``, unless a subclass searches its own way) rather than a dict of
    metadata values."""
    return isinstance(store, InMemoryVectorStore) and not _overrides(
        type(store),
        InMemoryVectorStore,
        "similarity_search_with_score_by_vector",
        "similarity_search_by_vector",
        "similarity_search",
    )


def _tenant_predicate(where_key: str, tenant: str) -> Callable[[Document], bool]:
    """The filter function that keeps ``tenant``'s documents: their ``where_key`` metadata."""

    def of_tenant(document: Document) -> bool:
        return bool(document.metadata.get(where_key) == tenant)

    return of_tenant


class LangChainRetriever(FrameworkAdapter[BaseRetriever]):
    """Replays queries through a LangChain ``BaseRetriever``."""

    _framework = "LangChain"
    _base = BaseRetriever

    def _setup(self) -> None:
        retriever = self._retriever
        self._is_vector_store = isinstance(retriever, VectorStoreRetriever)
        self._tenant_by_predicate = isinstance(
            retriever, VectorStoreRetriever
        ) and _filters_by_predicate(retriever.vectorstore)
        self._own_filter = self._checked_filter(retriever, self._where_key)
        self._has_k_field = "k" in type(retriever).model_fields
        self._scored: VectorStoreRetriever | None = None
        if (
            isinstance(retriever, VectorStoreRetriever)
            and retriever.search_type in _SCORED_SEARCH_TYPES
            and not _overrides(
                type(retriever),
                VectorStoreRetriever,
                "_get_relevant_documents",
                "_aget_relevant_documents",
            )
            and _gives_relevance_scores(retriever.vectorstore)
        ):
            self._scored = _relevance_scored_copy(retriever)
        self._is_async = self._has_own_async_path(retriever)
        # BaseRetriever's own invoke and batch send the start/end events each query is timed
        # by; a class that replaces them may not.
        entry_points = ("ainvoke", "abatch") if self._is_async else ("invoke", "batch")
        self._timed_alone = not _overrides(type(retriever), BaseRetriever, *entry_points)

    @staticmethod
    def _checked_filter(retriever: BaseRetriever, where_key: str | None) -> dict[str, Any]:
        """The retriever's own dict filter, into which each query's tenant is merged."""
        if where_key is None:
            return {}
        if not isinstance(retriever, VectorStoreRetriever):
            raise ConfigError(
                f"a LangChain {type(retriever).__name__} cannot be told a query's tenant: "
                "`where_key` works with a VectorStoreRetriever, so return "
                "vectorstore.as_retriever() from your factory, or replay the store through an "
                "adapter with a tenant key (pgvector, Qdrant, Chroma)"
            )
        own = retriever.search_kwargs.get("filter")
        if _filters_by_predicate(retriever.vectorstore):
            if own is not None:
                raise ConfigError(
                    f"the retriever's search_kwargs filter is set, and its "
                    f"{type(retriever.vectorstore).__name__} takes one filter function: "
                    f"`where_key` {where_key} passes one for each query's tenant; drop the "
                    "retriever's filter, or drop `where_key`"
                )
            return {}
        if own is None:
            return {}
        if not isinstance(own, dict):
            raise ConfigError(
                f"the retriever's search_kwargs filter is a {type(own).__name__}, which evalkit "
                f"cannot combine with the tenant filter {{{where_key!r}: tenant}} of "
                "`where_key`: give the retriever a dict filter, or drop `where_key`"
            )
        if where_key in own:
            raise ConfigError(
                f"the retriever's search_kwargs filter already sets {where_key!r} "
                f"({own[where_key]!r}), which `where_key` {where_key} sets to each query's "
                "tenant: remove it from the retriever's filter, or drop `where_key`"
            )
        return dict(own)

    def _has_own_async_path(self, retriever: BaseRetriever) -> bool:
        """Whether ``abatch`` reaches async code of the retriever's (or its store's) own,
        rather than ``BaseRetriever``'s default, which runs the sync method on a thread."""
        if not isinstance(retriever, VectorStoreRetriever):
            return _overrides(type(retriever), BaseRetriever, "_aget_relevant_documents")
        if _overrides(type(retriever), VectorStoreRetriever, "_aget_relevant_documents"):
            return True
        if _overrides(type(retriever), VectorStoreRetriever, "_get_relevant_documents"):
            return False
        if self._scored is not None or retriever.search_type == "similarity_score_threshold":
            names = _ASYNC_RELEVANCE
        else:
            names = _ASYNC_SEARCH.get(retriever.search_type, ())
        return _overrides(type(retriever.vectorstore), VectorStore, *names)

    def _for_depth(self, k: int) -> tuple[BaseRetriever, dict[str, Any]]:
        """The retriever to call and the keyword arguments of each call (results are cut
        to ``k`` in any case)."""
        if self._scored is not None:
            return self._scored, {"k": k}
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
            if tenant is not None and self._where_key is not None:
                kwargs["filter"] = (
                    _tenant_predicate(self._where_key, tenant)
                    if self._tenant_by_predicate
                    else {**self._own_filter, self._where_key: tenant}
                )
            for query, result in zip(group, self._batch(retriever, group, k, kwargs), strict=True):
                results[query.id] = result
        return [results[query.id] for query in queries]

    def _batch(
        self, retriever: BaseRetriever, queries: list[Query], k: int, kwargs: dict[str, Any]
    ) -> list[QueryResult]:
        timers = [_LatencyTimer() for _ in queries]
        run_name = self._retriever.get_name()
        configs: list[RunnableConfig] = [
            {"max_concurrency": self._concurrency, "callbacks": [timer], "run_name": run_name}
            for timer in timers
        ]
        texts = [query.text for query in queries]
        start = time.perf_counter()
        if self._is_async:
            outputs = run_sync(
                lambda: retriever.abatch(texts, configs, return_exceptions=True, **kwargs)
            )
        else:
            outputs = retriever.batch(texts, configs, return_exceptions=True, **kwargs)
        fallback_ms = (time.perf_counter() - start) * 1000.0 / max(len(queries), 1)
        results = []
        for query, timer, output in zip(queries, timers, outputs, strict=True):
            latency = timer.latency_ms(fallback_ms)
            if not timer.timed:
                # From now on describe() says so: a batch share is no latency of a query.
                self._timed_alone = False
            if isinstance(output, BaseException):
                results.append(failed_result(query.id, describe_exception(output), latency))
                continue
            try:
                hits = [self._hit(document) for document in output]
            except MissingIdError as error:
                results.append(failed_result(query.id, describe_exception(error), latency))
                continue
            results.append(hits_result(query, hits, k, latency))
        return results

    def _hit(self, document: Document) -> Hit:
        doc_id = metadata_id(document.metadata, document.id, self._id_key, what="Document")
        if self._scored is not None:
            return Hit(doc_id=doc_id, score=finite_score(document.metadata.get(_RELEVANCE_KEY)))
        return Hit(doc_id=doc_id, score=metadata_score(document.metadata))

    def _scoring_rule(self) -> str:
        if self._scored is not None:
            return rank_fallback(
                "the store's relevance score (similarity_search_with_relevance_scores)"
            )
        return rank_fallback(
            f"a score in the documents' metadata ({', '.join(SCORE_METADATA_KEYS)})"
        )

    def describe(self) -> dict[str, Any]:
        """The retriever's class (and vector store's), how it is called and scored, the id key
        and concurrency; no secrets."""
        described = self._described("langchain", scores=self._scoring_rule())
        described["calls"] = "abatch" if self._is_async else "batch"
        described[LATENCY_TIMING] = PER_QUERY if self._timed_alone else BATCH_SHARE
        described["k_passed_as"] = (
            "search argument k"
            if self._is_vector_store
            else ("field k" if self._has_k_field else "results cut to k")
        )
        if isinstance(self._retriever, VectorStoreRetriever):
            described["vector_store"] = qualified_name(self._retriever.vectorstore)
            described["search_type"] = self._retriever.search_type
        return described
