"""LlamaIndex retrievers replayed through ``LlamaIndexRetriever``, on real llama_index objects.

The parity check is the issue's: the demo goldset replayed through a LlamaIndex
``VectorStoreIndex`` holding the same MiniLM embeddings as an embedded Chroma collection gives
the same nDCG@10 within ANN noise. No LLM is configured and nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import math
import threading
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
from llama_index.core import VectorStoreIndex
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.core.vector_stores import FilterOperator, MetadataFilter, MetadataFilters

from evalkit.errors import ConfigError
from evalkit.records import Query
from evalkit.retrievers.llamaindex import LlamaIndexRetriever


class MiniLMEmbedding(BaseEmbedding):
    """evalkit's bundled MiniLM as a LlamaIndex embedding model."""

    def _get_query_embedding(self, query: str) -> list[float]:
        return minilm().embed([query])[0].tolist()  # type: ignore[no-any-return]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return minilm().embed([text])[0].tolist()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def index() -> VectorStoreIndex:
    """The demo corpus in a LlamaIndex vector index, with the vectors Chroma holds."""
    nodes = [
        TextNode(id_=document.id, text=document.content, embedding=vector.tolist())
        for document, vector in zip(demo_documents(), demo_vectors(), strict=True)
    ]
    return VectorStoreIndex(nodes, embed_model=MiniLMEmbedding())


@pytest.mark.slow
def test_a_vector_index_retriever_matches_embedded_chroma(
    index: VectorStoreIndex, demo_reference: Reference, tmp_path: Path
) -> None:
    users = index.as_retriever(similarity_top_k=2)
    adapter = LlamaIndexRetriever(users, concurrency=4)
    ndcg, status = replay_ndcg10(tmp_path, adapter)
    assert status == "complete"
    assert abs(ndcg - demo_reference.ndcg10) <= PARITY, (ndcg, demo_reference.ndcg10)
    assert users.similarity_top_k == 2
    described = adapter.describe()
    assert described["k_passed_as"] == "similarity_top_k"
    assert described["calls"] == "aretrieve"
    assert described["scores"].startswith("NodeWithScore.score when every hit has a finite one")
    assert adapter.model_fingerprint() is None


class Scripted(BaseRetriever):
    """A LlamaIndex retriever answering from a script, counting calls in flight."""

    def __init__(
        self, *, fail_on: str = "boom", scored: bool = True, id_key: str = "", nan_at: int = 0
    ) -> None:
        super().__init__()
        self.fail_on, self.scored, self.id_key, self.nan_at = fail_on, scored, id_key, nan_at
        self.lock, self.active, self.peak = threading.Lock(), 0, 0

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if self.fail_on in query_bundle.query_str:
            raise ConnectionError("vector store unreachable")
        return [self._node(rank) for rank in range(1, 6)]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            await asyncio.sleep(0.02)
            return self._retrieve(query_bundle)
        finally:
            with self.lock:
                self.active -= 1

    def _node(self, rank: int) -> NodeWithScore:
        metadata: dict[str, Any] = {self.id_key: f"doc{rank}"} if self.id_key else {}
        node = TextNode(id_=f"chunk{rank}", text="text", metadata=metadata)
        if rank == self.nan_at:
            return NodeWithScore(node=node, score=math.nan)
        return NodeWithScore(node=node, score=1.0 - rank / 10 if self.scored else None)


def test_failures_are_recorded_and_async_concurrency_is_bounded() -> None:
    users = Scripted()
    queries = [Query(id=f"q{i}", text="boom" if i == 3 else f"q {i}") for i in range(10)]
    results = LlamaIndexRetriever(users, concurrency=3).retrieve(queries, 4)
    assert [result.query_id for result in results] == [query.id for query in queries]
    assert results[3].error == "ConnectionError: vector store unreachable"
    assert all(len(result.docs) == 4 for i, result in enumerate(results) if i != 3)
    assert 1 < users.peak <= 3


def test_node_ids_metadata_ids_and_rank_scores() -> None:
    [own] = LlamaIndexRetriever(Scripted()).retrieve([Query("q", "x")], 2)
    assert [(doc.doc_id, doc.score) for doc in own.docs] == [("chunk1", 0.9), ("chunk2", 0.8)]
    adapter = LlamaIndexRetriever(Scripted(id_key="source", scored=False), id_key="source")
    [named] = adapter.retrieve([Query("q", "x")], 3)
    assert [doc.doc_id for doc in named.docs] == ["doc1", "doc2", "doc3"]
    assert [doc.score for doc in named.docs] == pytest.approx([1.0, 0.5, 1 / 3])
    [missing] = LlamaIndexRetriever(Scripted(), id_key="source").retrieve([Query("q", "x")], 3)
    assert missing.error is not None
    assert "'source'" in missing.error


def test_a_score_that_is_not_finite_scores_the_query_by_rank() -> None:
    [result] = LlamaIndexRetriever(Scripted(nan_at=2)).retrieve([Query("q", "x")], 3)
    assert [doc.doc_id for doc in result.docs] == ["chunk1", "chunk2", "chunk3"]
    assert [doc.score for doc in result.docs] == pytest.approx([1.0, 0.5, 1 / 3])


def test_retrieve_works_inside_a_running_event_loop(index: VectorStoreIndex) -> None:
    queries = [Query("a", "reset a password"), Query("b", "boom")]

    async def from_a_notebook() -> list[list[Any]]:
        return [
            LlamaIndexRetriever(retriever).retrieve(queries, 3)
            for retriever in (Scripted(), index.as_retriever())
        ]

    replayed = asyncio.run(from_a_notebook())
    assert [[len(result.docs) for result in results] for results in replayed] == [[3, 0], [3, 3]]
    assert replayed[0][1].error == "ConnectionError: vector store unreachable"


def tenant_index() -> VectorStoreIndex:
    """Two tenants' documents, in English and German, in a real vector index."""
    nodes = [
        TextNode(
            id_=f"{tenant}-{lang}-{n}",
            text=f"password reset {n}",
            metadata={"t": tenant, "lang": lang},
        )
        for tenant in ("acme", "globex")
        for lang in ("en", "de")
        for n in range(3)
    ]
    return VectorStoreIndex(nodes, embed_model=MiniLMEmbedding())


def test_tenants_are_filtered_through_the_index_when_a_where_key_is_given() -> None:
    index = tenant_index()
    queries = [
        Query("a", "password reset", tenant="acme"),
        Query("g", "reset", tenant="globex"),
        Query("a2", "reset 2", tenant="acme"),
    ]
    users = index.as_retriever(similarity_top_k=2)
    adapter = LlamaIndexRetriever(users, where_key="t")
    results = adapter.retrieve(queries, 20)
    assert [{doc.doc_id.split("-")[0] for doc in result.docs} for result in results] == [
        {"acme"},
        {"globex"},
        {"acme"},
    ]
    assert [len(result.docs) for result in results] == [6, 6, 6]
    assert users._filters is None
    assert adapter.describe()["where_key"] == "t"
    german = MetadataFilters(
        filters=[MetadataFilter(key="lang", value="de", operator=FilterOperator.EQ)]
    )
    own_filters = index.as_retriever(filters=german)
    results = LlamaIndexRetriever(own_filters, where_key="t").retrieve(queries[:2], 20)
    assert [{doc.doc_id.rsplit("-", 1)[0] for doc in result.docs} for result in results] == [
        {"acme-de"},
        {"globex-de"},
    ]


def test_a_where_key_is_refused_for_a_retriever_without_filters_and_foreign_objects() -> None:
    with pytest.raises(ConfigError, match="no metadata filters evalkit can add") as refused:
        LlamaIndexRetriever(Scripted(), where_key="tenant")
    assert "one retriever per tenant" not in str(refused.value)
    with pytest.raises(ConfigError, match="BaseRetriever"):
        LlamaIndexRetriever(object())  # type: ignore[arg-type]
