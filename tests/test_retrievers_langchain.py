"""LangChain retrievers replayed through ``LangChainRetriever``, on real langchain_core objects.

The parity check is the issue's: the demo goldset replayed through a LangChain
``InMemoryVectorStore`` holding the same MiniLM embeddings as an embedded Chroma collection
gives the same nDCG@10 within ANN noise, and the run stores how its scores were made.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from demo_index import (
    DEPTH,
    PARITY,
    Reference,
    demo_documents,
    demo_goldset,
    demo_vectors,
    minilm,
)
from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import InMemoryVectorStore
from pydantic import ConfigDict, Field

from evalkit.errors import ConfigError
from evalkit.pipeline import evaluate_goldset
from evalkit.records import Query
from evalkit.records.requests import GoldsetRunRequest
from evalkit.retrievers.base import BATCH_SHARE, LATENCY_TIMING, PER_QUERY
from evalkit.retrievers.langchain import LangChainRetriever
from evalkit.stats.latency_check import run_latencies
from evalkit.store import Store
from evalkit.store.runs import get_run, run_results


class MiniLMEmbeddings(Embeddings):
    """evalkit's bundled MiniLM as a LangChain ``Embeddings``."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return minilm().embed(texts).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        return minilm().embed([text])[0].tolist()  # type: ignore[no-any-return]


class ScoringStore(InMemoryVectorStore):
    """An in-memory store as most LangChain stores are: it takes a dict filter, and gives
    relevance scores in [0, 1] (cosine similarity rescaled, as stores do)."""

    def similarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: Any = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        if isinstance(filter, dict):
            wanted = filter
            filter = lambda document: all(  # noqa: E731
                document.metadata.get(key) == value for key, value in wanted.items()
            )
        return super().similarity_search_with_score_by_vector(embedding, k, filter, **kwargs)

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return lambda similarity: (1.0 + similarity) / 2.0


def demo_store(kind: type[InMemoryVectorStore]) -> InMemoryVectorStore:
    """The demo corpus in a LangChain in-memory store, with the vectors Chroma holds."""
    store = kind(embedding=MiniLMEmbeddings())
    for document, vector in zip(demo_documents(), demo_vectors(), strict=True):
        store.store[document.id] = {
            "id": document.id,
            "vector": vector.tolist(),
            "text": document.content,
            "metadata": {"doc_id": document.id, **document.metadata},
        }
    return store


@pytest.fixture(scope="module")
def vector_store() -> InMemoryVectorStore:
    """The demo corpus in LangChain's own in-memory store (it gives no relevance scores)."""
    return demo_store(InMemoryVectorStore)


@pytest.fixture(scope="module")
def scoring_store() -> InMemoryVectorStore:
    """The demo corpus in a store that gives relevance scores."""
    return demo_store(ScoringStore)


def replay_stored(directory: Path, adapter: LangChainRetriever) -> tuple[Any, Any]:
    """The demo goldset replayed through ``evalkit.pipeline``: the stored run and results."""
    with Store.open(directory / "langchain.duckdb") as store:
        outcome = evaluate_goldset(
            store, demo_goldset(), adapter, GoldsetRunRequest(k=DEPTH, answers=False)
        )
        return get_run(store, outcome.run.run_id), run_results(store, outcome.run.run_id)


@pytest.mark.slow
def test_a_vector_store_retriever_matches_embedded_chroma(
    vector_store: InMemoryVectorStore, demo_reference: Reference, tmp_path: Path
) -> None:
    adapter = LangChainRetriever(vector_store.as_retriever(), concurrency=4)
    run, results = replay_stored(tmp_path, adapter)
    assert run.status == "complete"
    ndcg = run.aggregates["ndcg@10"]
    assert abs(ndcg - demo_reference.ndcg10) <= PARITY, (ndcg, demo_reference.ndcg10)
    assert adapter.model_fingerprint() is None
    stored = run.spec.retriever_config
    assert stored["vector_store"].endswith("InMemoryVectorStore")
    assert stored["k_passed_as"] == "search argument k"
    assert stored["calls"] == "abatch"
    assert "cannot fingerprint" in stored["model"]
    # InMemoryVectorStore gives no relevance scores: the run says so, and scores are by rank.
    assert "relevance" not in stored["scores"].split("(")[0]
    assert stored["scores"].endswith("else 1/rank for that query")
    assert results["score"].tolist() == pytest.approx((1.0 / results["rank"]).tolist())


def test_the_store_s_relevance_scores_are_stored_and_the_run_says_so(
    scoring_store: InMemoryVectorStore, demo_reference: Reference, tmp_path: Path
) -> None:
    adapter = LangChainRetriever(scoring_store.as_retriever(), concurrency=4)
    run, results = replay_stored(tmp_path, adapter)
    assert run.status == "complete"
    assert abs(run.aggregates["ndcg@10"] - demo_reference.ndcg10) <= PARITY
    assert run.spec.retriever_config["scores"].startswith("the store's relevance score")
    for query in demo_goldset().queries[:5]:
        expected = scoring_store.similarity_search_with_relevance_scores(query.text, k=DEPTH)
        stored = results[results["query_id"] == query.id]
        assert stored["doc_id"].tolist() == [document.id for document, _ in expected]
        assert stored["score"].tolist() == pytest.approx([score for _, score in expected])


def test_relevance_scores_keep_the_retriever_s_search_kwargs_and_order(
    scoring_store: InMemoryVectorStore,
) -> None:
    queries = [Query("q", "reset a password"), Query("r", "export a report")]
    only_some = {"doc_id": next(iter(scoring_store.store))}
    users = scoring_store.as_retriever(search_kwargs={"filter": only_some})
    for query, result in zip(queries, LangChainRetriever(users).retrieve(queries, 5), strict=True):
        [(document, score)] = scoring_store.similarity_search_with_relevance_scores(
            query.text, k=5, filter=only_some
        )
        assert [(doc.doc_id, doc.score) for doc in result.docs] == [
            (document.id, pytest.approx(score))
        ]
    plain = [doc.id for doc in scoring_store.as_retriever().invoke(queries[0].text, k=7)]
    [scored] = LangChainRetriever(scoring_store.as_retriever()).retrieve(queries[:1], 7)
    assert [doc.doc_id for doc in scored.docs] == plain
    cut = (scored.docs[2].score + scored.docs[3].score) / 2
    threshold = scoring_store.as_retriever(
        search_type="similarity_score_threshold", search_kwargs={"score_threshold": cut}
    )
    [kept] = LangChainRetriever(threshold).retrieve(queries[:1], 7)
    assert kept.docs == scored.docs[:3]


def test_mmr_and_stores_without_relevance_scores_are_scored_by_rank(
    scoring_store: InMemoryVectorStore, vector_store: InMemoryVectorStore
) -> None:
    for retriever in (scoring_store.as_retriever(search_type="mmr"), vector_store.as_retriever()):
        adapter = LangChainRetriever(retriever)
        assert "relevance" not in adapter.describe()["scores"].split("(")[0]
        [result] = adapter.retrieve([Query("q", "reset a password")], 3)
        assert [doc.score for doc in result.docs] == pytest.approx([1.0, 0.5, 1 / 3])


def test_k_reaches_a_vector_store_retriever_without_changing_it(
    vector_store: InMemoryVectorStore,
) -> None:
    users = vector_store.as_retriever(search_kwargs={"k": 2})
    [result] = LangChainRetriever(users).retrieve([Query(id="q", text="reset a password")], 7)
    assert len(result.docs) == 7
    assert users.search_kwargs == {"k": 2}
    assert [doc.rank for doc in result.docs] == list(range(1, 8))


class Tracker:
    """Counts calls and the most calls in flight at once (shared by a retriever's copies)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.calls = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self.lock:
            self.active += 1
            self.calls += 1
            self.peak = max(self.peak, self.active)

    def __exit__(self, *exc_info: object) -> None:
        with self.lock:
            self.active -= 1


class Scripted(BaseRetriever):
    """A LangChain retriever answering from a script: ids, scores, failures, a k field."""

    k: int = 4
    fail_on: str = "boom"
    with_scores: bool = True
    id_in_metadata: bool = False
    delay: float = 0.0
    tracker: Tracker = Field(default_factory=Tracker)

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        with self.tracker:
            time.sleep(self.delay)
            if self.fail_on in query:
                raise TimeoutError(f"store timed out on {query!r}")
            return [self._document(rank) for rank in range(1, self.k + 1)]

    def _document(self, rank: int) -> Document:
        metadata: dict[str, Any] = {"score": 1.0 - rank / 100} if self.with_scores else {}
        if self.id_in_metadata:
            return Document(page_content="chunk", metadata={**metadata, "source_id": f"d{rank}"})
        return Document(page_content="chunk", id=f"d{rank}", metadata=metadata)


def test_a_failing_query_is_recorded_and_the_others_answered() -> None:
    queries = [Query(id="a", text="fine"), Query(id="b", text="boom now"), Query(id="c", text="x")]
    results = LangChainRetriever(Scripted()).retrieve(queries, 3)
    assert [result.query_id for result in results] == ["a", "b", "c"]
    assert results[1].error is not None
    assert results[1].error.startswith("TimeoutError")
    assert results[1].docs == ()
    assert [len(result.docs) for result in (results[0], results[2])] == [3, 3]
    assert all(result.latency_ms >= 0 for result in results)


def test_a_k_field_is_set_on_a_copy_and_store_scores_are_kept() -> None:
    users = Scripted(k=4)
    adapter = LangChainRetriever(users)
    [result] = adapter.retrieve([Query(id="q", text="anything")], 6)
    assert [doc.doc_id for doc in result.docs] == [f"d{rank}" for rank in range(1, 7)]
    assert [doc.score for doc in result.docs] == pytest.approx([0.99, 0.98, 0.97, 0.96, 0.95, 0.94])
    assert users.k == 4
    assert adapter.describe()["k_passed_as"] == "field k"


def test_without_scores_the_order_is_scored_by_rank() -> None:
    adapter = LangChainRetriever(Scripted(with_scores=False))
    rule = adapter.describe()["scores"]
    [result] = adapter.retrieve([Query(id="q", text="anything")], 3)
    assert [doc.score for doc in result.docs] == pytest.approx([1.0, 0.5, 1 / 3])
    assert adapter.describe()["scores"] == rule
    assert rule.startswith("a score in the documents' metadata")
    assert rule.endswith("else 1/rank for that query")


class HugeScored(Scripted):
    """Puts an integer too large for a float in every document's metadata score."""

    def _document(self, rank: int) -> Document:
        return Document(page_content="chunk", id=f"d{rank}", metadata={"score": 10**400})


def test_a_metadata_score_too_large_for_a_float_is_scored_by_rank() -> None:
    """It raised OverflowError and failed every query instead."""
    [result] = LangChainRetriever(HugeScored(k=3)).retrieve([Query(id="q", text="x")], 3)
    assert result.ok, result.error
    assert [(doc.doc_id, doc.score) for doc in result.docs] == [
        ("d1", 1.0),
        ("d2", 0.5),
        ("d3", pytest.approx(1 / 3)),
    ]


def test_ids_come_from_the_metadata_key_or_the_query_fails_naming_it() -> None:
    chunked = Scripted(id_in_metadata=True)
    [named] = LangChainRetriever(chunked, id_key="source_id").retrieve([Query("q", "x")], 2)
    assert [doc.doc_id for doc in named.docs] == ["d1", "d2"]
    [unnamed] = LangChainRetriever(chunked).retrieve([Query("q", "x")], 2)
    assert unnamed.error is not None
    assert "id_key" in unnamed.error
    [wrong_key] = LangChainRetriever(chunked, id_key="doc").retrieve([Query("q", "x")], 2)
    assert wrong_key.error is not None
    assert "'doc'" in wrong_key.error
    assert "source_id" in wrong_key.error


def test_concurrency_is_bounded_by_the_setting() -> None:
    users = Scripted(delay=0.05)
    queries = [Query(id=f"q{i}", text=f"query {i}") for i in range(12)]
    adapter = LangChainRetriever(users, concurrency=3)
    results = adapter.retrieve(queries, 2)
    assert adapter.describe()["calls"] == "batch"
    # Each query's own start/end events, not an average: at least its 50 ms sleep each.
    assert all(result.latency_ms >= 45 for result in results)
    assert users.tracker.calls == 12
    assert 1 < users.tracker.peak <= 3


class Untraced(Scripted):
    """A retriever whose class replaces ``invoke``, answering without LangChain's start and
    end events, as some community retrievers do."""

    def invoke(self, input: str, config: Any = None, **kwargs: Any) -> list[Document]:
        noop = CallbackManagerForRetrieverRun.get_noop_manager()
        return self._get_relevant_documents(input, run_manager=noop)


def test_a_retriever_that_sends_no_events_records_batch_shares_the_latency_test_refuses(
    tmp_path: Path,
) -> None:
    """Its queries fall back to their share of the batch's time: the run must say so
    (latency_timing batch_share), or the latency test compares batch averages as if each
    were a query's latency."""
    assert LangChainRetriever(Scripted()).describe()[LATENCY_TIMING] == PER_QUERY
    adapter = LangChainRetriever(Untraced(delay=0.01), concurrency=4)
    assert adapter.describe()[LATENCY_TIMING] == BATCH_SHARE
    with Store.open(tmp_path / "langchain.duckdb") as store:
        outcome = evaluate_goldset(
            store, demo_goldset(), adapter, GoldsetRunRequest(k=DEPTH, answers=False)
        )
        run = get_run(store, outcome.run.run_id)
        assert run.spec.retriever_config[LATENCY_TIMING] == BATCH_SHARE
        latencies = run_latencies(store, run.run_id, run.run_id)
    assert latencies.latencies is None
    assert latencies.missing is not None
    assert latencies.missing.startswith(f"not measurable: run {run.run_id} timed its queries")
    assert "its LangChain retriever sends no start and end events" in latencies.missing


class AsyncOnly(Scripted):
    """A retriever that answers only asynchronously, as PGVector with async_mode=True."""

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        raise RuntimeError("This method must be called without async_mode")

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        with self.tracker:
            await asyncio.sleep(self.delay)
            if self.fail_on in query:
                raise TimeoutError(f"store timed out on {query!r}")
            return [self._document(rank) for rank in range(1, self.k + 1)]


def test_an_async_only_retriever_is_replayed_through_abatch() -> None:
    users = AsyncOnly(delay=0.05)
    queries = [Query(id=f"q{i}", text="boom" if i == 4 else f"query {i}") for i in range(12)]
    adapter = LangChainRetriever(users, concurrency=3)
    results = adapter.retrieve(queries, 2)
    assert adapter.describe()["calls"] == "abatch"
    assert [result.query_id for result in results] == [query.id for query in queries]
    assert results[4].error is not None
    assert results[4].error.startswith("TimeoutError")
    assert all(len(result.docs) == 2 for i, result in enumerate(results) if i != 4)
    # Latency comes from the retriever's own start/end events: at least its 50 ms sleep each.
    assert all(result.latency_ms >= 45 for result in results)
    assert users.tracker.calls == 12
    assert 1 < users.tracker.peak <= 3


def test_retrieve_works_inside_a_running_event_loop(vector_store: InMemoryVectorStore) -> None:
    queries = [Query("a", "reset a password"), Query("b", "boom")]

    async def from_a_notebook() -> list[list[Any]]:
        return [
            LangChainRetriever(retriever).retrieve(queries, 3)
            for retriever in (AsyncOnly(), Scripted(), vector_store.as_retriever())
        ]

    replayed = asyncio.run(from_a_notebook())
    assert [len(results[0].docs) for results in replayed] == [3, 3, 3]
    assert [results[0].error for results in replayed] == [None, None, None]
    assert [len(results[1].docs) for results in replayed] == [0, 0, 3]


def tenant_store() -> ScoringStore:
    """Two tenants' documents, in English and German, in a store taking dict filters."""
    store = ScoringStore(embedding=MiniLMEmbeddings())
    store.add_documents(
        [
            Document(
                id=f"{tenant}-{lang}-{n}",
                page_content=f"password reset {n}",
                metadata={"t": tenant, "lang": lang},
            )
            for tenant in ("acme", "globex")
            for lang in ("en", "de")
            for n in range(3)
        ]
    )
    return store


def test_tenants_are_filtered_through_the_store_when_a_where_key_is_given() -> None:
    store = tenant_store()
    queries = [Query("a", "password reset", tenant="acme"), Query("g", "reset", tenant="globex")]
    results = LangChainRetriever(store.as_retriever(), where_key="t").retrieve(queries, 20)
    assert {doc.doc_id.split("-")[0] for doc in results[0].docs} == {"acme"}
    assert {doc.doc_id.split("-")[0] for doc in results[1].docs} == {"globex"}
    assert [len(result.docs) for result in results] == [6, 6]


def test_langchain_s_in_memory_store_is_filtered_with_a_function_per_tenant() -> None:
    """InMemoryVectorStore takes a filter function, not a dict: a dict failed every query
    ("'dict' object is not callable")."""
    store = InMemoryVectorStore(embedding=MiniLMEmbeddings())
    store.add_documents(
        tenant_store().get_by_ids([f"{t}-en-{n}" for t in ("acme", "globex") for n in range(3)])
    )
    queries = [Query("a", "password reset", tenant="acme"), Query("g", "reset", tenant="globex")]
    results = LangChainRetriever(store.as_retriever(), where_key="t").retrieve(queries, 20)
    assert [result.error for result in results] == [None, None]
    assert {doc.doc_id.split("-")[0] for doc in results[0].docs} == {"acme"}
    assert {doc.doc_id.split("-")[0] for doc in results[1].docs} == {"globex"}
    own = store.as_retriever(search_kwargs={"filter": lambda document: True})
    with pytest.raises(ConfigError, match="takes one filter function"):
        LangChainRetriever(own, where_key="t")


def test_the_tenant_filter_is_merged_into_the_retriever_s_own_filter() -> None:
    users = tenant_store().as_retriever(search_kwargs={"filter": {"lang": "de"}})
    queries = [Query("a", "password reset", tenant="acme"), Query("g", "reset", tenant="globex")]
    results = LangChainRetriever(users, where_key="t").retrieve(queries, 20)
    assert {doc.doc_id.rsplit("-", 1)[0] for doc in results[0].docs} == {"acme-de"}
    assert {doc.doc_id.rsplit("-", 1)[0] for doc in results[1].docs} == {"globex-de"}
    assert users.search_kwargs == {"filter": {"lang": "de"}}


def test_a_filter_the_tenant_key_cannot_be_merged_into_is_refused() -> None:
    store = tenant_store()
    pinned = store.as_retriever(search_kwargs={"filter": {"t": "acme"}})
    with pytest.raises(ConfigError, match="already sets 't'"):
        LangChainRetriever(pinned, where_key="t")
    opaque = store.as_retriever(search_kwargs={"filter": lambda document: True})
    with pytest.raises(ConfigError, match="cannot combine"):
        LangChainRetriever(opaque, where_key="t")


def test_a_where_key_is_refused_for_a_retriever_that_cannot_filter() -> None:
    with pytest.raises(ConfigError, match="cannot be told a query's tenant") as refused:
        LangChainRetriever(Scripted(), where_key="tenant")
    assert "one retriever per tenant" not in str(refused.value)


def test_anything_but_a_langchain_retriever_is_refused() -> None:
    with pytest.raises(ConfigError, match="BaseRetriever"):
        LangChainRetriever(object())  # type: ignore[arg-type]
