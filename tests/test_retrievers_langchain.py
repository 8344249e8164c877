"""LangChain retrievers replayed through ``LangChainRetriever``, on real langchain_core objects.

The parity check is the issue's: the demo goldset replayed through a LangChain
``InMemoryVectorStore`` holding the same MiniLM embeddings as an embedded Chroma collection
gives the same nDCG@10 within ANN noise.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from demo_index import (
    PARITY,
    Reference,
    demo_documents,
    demo_vectors,
    minilm,
    replay_ndcg10,
)
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import InMemoryVectorStore
from pydantic import ConfigDict, Field

from evalkit.errors import ConfigError
from evalkit.records import Query
from evalkit.retrievers.langchain import LangChainRetriever


class MiniLMEmbeddings(Embeddings):
    """evalkit's bundled MiniLM as a LangChain ``Embeddings``."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return minilm().embed(texts).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        return minilm().embed([text])[0].tolist()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def vector_store() -> InMemoryVectorStore:
    """The demo corpus in a LangChain in-memory store, with the vectors Chroma holds."""
    store = InMemoryVectorStore(embedding=MiniLMEmbeddings())
    for document, vector in zip(demo_documents(), demo_vectors(), strict=True):
        store.store[document.id] = {
            "id": document.id,
            "vector": vector.tolist(),
            "text": document.content,
            "metadata": {"doc_id": document.id, **document.metadata},
        }
    return store


def test_a_vector_store_retriever_matches_embedded_chroma(
    vector_store: InMemoryVectorStore, demo_reference: Reference, tmp_path: Path
) -> None:
    adapter = LangChainRetriever(vector_store.as_retriever(), concurrency=4)
    ndcg, status = replay_ndcg10(tmp_path, adapter)
    assert status == "complete"
    assert abs(ndcg - demo_reference.ndcg10) <= PARITY, (ndcg, demo_reference.ndcg10)
    assert adapter.model_fingerprint() is None
    described = adapter.describe()
    assert described["vector_store"].endswith("InMemoryVectorStore")
    assert described["k_passed_as"] == "search argument k"
    assert "cannot fingerprint" in described["model"]


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
    [result] = adapter.retrieve([Query(id="q", text="anything")], 3)
    assert [doc.score for doc in result.docs] == pytest.approx([1.0, 0.5, 1 / 3])
    assert adapter.describe()["scores"].startswith("by rank")


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
    LangChainRetriever(users, concurrency=3).retrieve(queries, 2)
    assert users.tracker.calls == 12
    assert 1 < users.tracker.peak <= 3


class DictFilterStore(InMemoryVectorStore):
    """An in-memory store taking the dict filter most LangChain stores take."""

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        wanted = kwargs.pop("filter", None)
        if isinstance(wanted, dict):
            kwargs["filter"] = lambda document: all(
                document.metadata.get(key) == value for key, value in wanted.items()
            )
        return super().similarity_search(query, k=k, **kwargs)


def test_tenants_are_filtered_through_the_store_when_a_where_key_is_given() -> None:
    store = DictFilterStore(embedding=MiniLMEmbeddings())
    store.add_documents(
        [
            Document(id=f"{tenant}-{n}", page_content=f"password reset {n}", metadata={"t": tenant})
            for tenant in ("acme", "globex")
            for n in range(5)
        ]
    )
    queries = [Query("a", "password reset", tenant="acme"), Query("g", "reset", tenant="globex")]
    results = LangChainRetriever(store.as_retriever(), where_key="t").retrieve(queries, 10)
    assert {doc.doc_id.split("-")[0] for doc in results[0].docs} == {"acme"}
    assert {doc.doc_id.split("-")[0] for doc in results[1].docs} == {"globex"}
    assert [len(result.docs) for result in results] == [5, 5]


def test_a_where_key_is_refused_for_a_retriever_that_cannot_filter() -> None:
    with pytest.raises(ConfigError, match="cannot be told a query's tenant"):
        LangChainRetriever(Scripted(), where_key="tenant")


def test_anything_but_a_langchain_retriever_is_refused() -> None:
    with pytest.raises(ConfigError, match="BaseRetriever"):
        LangChainRetriever(object())  # type: ignore[arg-type]
