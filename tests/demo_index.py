"""The demo goldset, its corpus embedded once with the bundled MiniLM, and the reference run.

Every retriever adapter is checked against the same yardstick: the demo goldset replayed
through an embedded Chroma collection built with the same embeddings. ``chroma_reference``
indexes it and returns nDCG@10 (once per test session, through ``reference`` below).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from evalkit.embedding import CachingEmbedder, Embedder, load_embedder
from evalkit.embedding.onnx import default_cache_dir
from evalkit.goldset import Goldset, iter_corpus, load_goldset
from evalkit.pipeline import evaluate_goldset
from evalkit.records import Document
from evalkit.records.requests import GoldsetRunRequest
from evalkit.retrievers import ChromaRetriever
from evalkit.retrievers.chroma_client import close_client, open_chroma_client
from evalkit.retrievers.indexing import index_corpus
from evalkit.store import Store

DEMO_DIR = Path(__file__).resolve().parents[1] / "goldsets" / "demo"
DEPTH = 10
"""Depth of the adapters' parity runs: nDCG@10 needs no more."""
PARITY = 0.01
"""How far an adapter's nDCG@10 may be from embedded Chroma's (ANN noise)."""


@cache
def demo_goldset() -> Goldset:
    """The demo goldset (129 queries, two tenants)."""
    return load_goldset(DEMO_DIR, name="demo")


@cache
def demo_documents() -> tuple[Document, ...]:
    """The demo corpus (330 documents)."""
    return tuple(iter_corpus(DEMO_DIR / "corpus.jsonl"))


@cache
def minilm() -> Embedder:
    """The bundled MiniLM, loaded once."""
    return load_embedder()


@cache
def cached_minilm() -> CachingEmbedder:
    """The bundled MiniLM with its document vectors kept in the cache ``evalkit index`` keeps
    them in (the session's, ``conftest.evalkit_cache``): the demo corpus is embedded once, by
    whichever test process or command comes first."""
    cache = os.environ.get("EVALKIT_CACHE_DIR")
    return CachingEmbedder(minilm(), Path(cache) if cache else default_cache_dir())


@cache
def demo_vectors() -> npt.NDArray[np.float32]:
    """The demo corpus's embeddings, in ``demo_documents()`` order (unit vectors)."""
    return cached_minilm().embed([document.content for document in demo_documents()])


@dataclass(frozen=True)
class Reference:
    """The embedded-Chroma run every adapter is compared with."""

    ndcg10: float
    chroma_path: Path


def chroma_reference(directory: Path) -> Reference:
    """Index the demo corpus into embedded Chroma under ``directory`` and replay the goldset."""
    client = open_chroma_client(path=directory / "chroma")
    try:
        index_corpus(client, demo_documents(), cached_minilm(), collection_name="demo")
    finally:
        close_client(client)
    with (
        ChromaRetriever.embedded(directory / "chroma", "demo", minilm()) as retriever,
        Store.open(directory / "reference.duckdb") as store,
    ):
        outcome = evaluate_goldset(
            store, demo_goldset(), retriever, GoldsetRunRequest(k=DEPTH, answers=False)
        )
    ndcg = outcome.run.aggregates["ndcg@10"]
    assert ndcg is not None
    return Reference(ndcg10=float(ndcg), chroma_path=directory / "chroma")


def replay_ndcg10(directory: Path, retriever: object) -> tuple[float, str]:
    """nDCG@10 and status of the demo goldset replayed through ``retriever``."""
    with Store.open(directory / "adapter.duckdb") as store:
        outcome = evaluate_goldset(
            store,
            demo_goldset(),
            retriever,  # type: ignore[arg-type]
            GoldsetRunRequest(k=DEPTH, answers=False),
        )
    ndcg = outcome.run.aggregates["ndcg@10"]
    assert ndcg is not None
    return float(ndcg), outcome.run.status
