"""Where the time of `evalkit run` goes, on a real goldset: BEIR SciFact (test split).

Indexes SciFact's 5,183 abstracts once into an embedded Chroma collection (kept under
BENCH_HOME between runs), replays the 300 test queries through the same pipeline as
`evalkit run`, and prints the split between query embedding, Chroma search and everything
evalkit adds (metrics, store writes, bookkeeping). Target: evalkit's own share <= 10 %.

It also checks the answer: nDCG@10 through Chroma's HNSW index against exact brute-force
cosine search over the same stored vectors with the same model (they should agree within
0.01).

    .venv/bin/python benchmarks/replay.py [--home DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path("reports/bench-replay"))
    parser.add_argument("--k", type=int, default=100)
    args = parser.parse_args()
    if not SCIFACT.is_dir():
        print(f"skipped: {SCIFACT} is not present")
        return 0

    from evalkit.embedding import load_embedder
    from evalkit.goldset import count_documents, iter_corpus, load_goldset
    from evalkit.metrics import Evaluator, parse_measures
    from evalkit.pipeline import evaluate_goldset
    from evalkit.retrievers.chroma import ChromaRetriever
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

    timed = TimedEmbedder(embedder)
    retriever = ChromaRetriever(get_collection(client, "scifact"), timed)  # type: ignore[arg-type]
    with Store.open(home / "evalkit.duckdb") as store:
        began = time.perf_counter()
        outcome = evaluate_goldset(store, goldset, retriever, k=args.k)
        total = time.perf_counter() - began
    run = outcome.run
    retriever_seconds = outcome.timing.retriever_seconds
    embed_seconds = timed.seconds
    search_seconds = retriever_seconds - embed_seconds
    own_seconds = total - retriever_seconds
    print(f"run {run.run_id}: {run.status}, {run.n_evaluated} queries, k={args.k}")
    print(f"{'stage':<34}{'seconds':>9}{'share':>8}")
    for label, seconds in (
        ("query embedding (model)", embed_seconds),
        ("Chroma search (HNSW)", search_seconds),
        ("evalkit: metrics", outcome.seconds_metrics),
        ("evalkit: store writes", outcome.seconds_store),
        (
            "evalkit: other bookkeeping",
            own_seconds - outcome.seconds_metrics - outcome.seconds_store,
        ),
        ("total", total),
    ):
        print(f"{label:<34}{seconds:>9.3f}{seconds / total:>8.1%}")
    print(f"evalkit's own share: {own_seconds / total:.1%} (target <= 10 %)")

    stored = get_collection(client, "scifact").get(include=["embeddings"])
    doc_ids = np.asarray(stored["ids"])
    vectors = np.asarray(stored["embeddings"], dtype=np.float32)
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
    chroma = float(run.aggregates["ndcg@10"] or 0.0)
    print(
        f"nDCG@10: Chroma {chroma:.4f}, exact brute-force {exact:.4f}, "
        f"difference {chroma - exact:+.4f} (must be within 0.01)"
    )
    close_client(client)
    return 0 if abs(chroma - exact) <= 0.01 else 1


if __name__ == "__main__":
    sys.exit(main())
