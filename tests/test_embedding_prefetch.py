"""Loading the query model and embedding a goldset's queries ahead of the replay.

Fast tests drive ``LazyEmbedder`` over a fake encoder (counting and holding its calls);
the real one replays the demo goldset through embedded Chroma with the bundled MiniLM and
checks that the queries are embedded in one call and score exactly as batch by batch.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from demo_index import DEPTH, Reference, demo_goldset

from evalkit.config import EmbedBackend, Settings
from evalkit.embedding import CANARY_TEXTS, Embedder, LazyEmbedder, load_embedder, runs_on_onnx
from evalkit.embedding import lazy as lazy_embedding
from evalkit.embedding.local import remembering_vectors
from evalkit.errors import EmbeddingError
from evalkit.pipeline import evaluate_goldset
from evalkit.records.requests import GoldsetRunRequest
from evalkit.retrievers import ChromaRetriever
from evalkit.retrievers.factory import RetrieverOptions, query_embedder_ahead
from evalkit.store import Store

TEXTS = [f"query number {index} " + "word " * (index % 7) for index in range(20)]


class FakeEncoder:
    """Vectors made from the texts alone, every ``encode`` call recorded; ``hold`` keeps a
    call waiting until it is set."""

    backend = "fake"

    def __init__(self, *, fail_with: Exception | None = None) -> None:
        self.calls: list[list[str]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.started = threading.Event()
        self.fail_with = fail_with

    def get_embedding_dimension(self) -> int:
        return 4

    def encode(self, sentences: list[str], **_: Any) -> npt.NDArray[np.float32]:
        self.calls.append(list(sentences))
        self.started.set()
        self.hold.wait(timeout=30)
        if self.fail_with is not None:
            raise self.fail_with
        rows = [
            [len(text), sum(map(ord, text)) % 97, index, 1.0]
            for index, text in enumerate(sentences)
        ]
        return np.asarray(rows, dtype=np.float32)


@pytest.fixture
def encoder(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEncoder]:
    fake = FakeEncoder()
    loads: list[int] = []

    def load(*_: Any, **__: Any) -> Embedder:
        loads.append(1)
        return Embedder(fake, name="fake")

    monkeypatch.setattr(lazy_embedding, "load_embedder", load)
    fake.loads = loads  # type: ignore[attr-defined]
    yield fake
    fake.hold.set()


def test_prefetched_texts_are_embedded_once_in_one_call(encoder: FakeEncoder) -> None:
    lazy = LazyEmbedder()
    lazy.prefetch(TEXTS)
    whole = Embedder(FakeEncoder(), name="fake").embed(TEXTS)
    first = lazy.embed(TEXTS[:8])
    later = lazy.embed([TEXTS[15], TEXTS[3], TEXTS[15]])
    assert encoder.calls == [TEXTS]
    np.testing.assert_array_equal(first, whole[:8])
    np.testing.assert_array_equal(later, whole[[15, 3, 15]])
    assert first.flags["C_CONTIGUOUS"]
    lazy.close()


def test_texts_outside_the_prefetched_set_are_embedded_as_asked(encoder: FakeEncoder) -> None:
    lazy = LazyEmbedder()
    lazy.prefetch(TEXTS[:5])
    asked = [TEXTS[0], "not prefetched"]
    vectors = lazy.embed(asked)
    assert encoder.calls[-1] == asked
    assert vectors.shape == (2, 4)
    lazy.close()


def test_the_same_set_prefetched_twice_is_embedded_once(encoder: FakeEncoder) -> None:
    lazy = LazyEmbedder()
    lazy.prefetch(TEXTS)
    lazy.prefetch(list(TEXTS))
    lazy.embed(TEXTS[:2])
    lazy.close()
    assert encoder.calls == [TEXTS]


def test_start_loading_loads_in_the_background_once(encoder: FakeEncoder) -> None:
    lazy = LazyEmbedder()
    lazy.start_loading()
    lazy.close()
    assert lazy.loaded
    lazy.embed(["a"])
    assert encoder.loads == [1]  # type: ignore[attr-defined]


def test_a_load_failing_in_the_background_raises_in_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts: list[str] = []

    def load(*_: Any, **__: Any) -> Embedder:
        attempts.append(threading.current_thread().name)
        raise EmbeddingError("no model here")

    monkeypatch.setattr(lazy_embedding, "load_embedder", load)
    lazy = LazyEmbedder()
    lazy.prefetch(TEXTS)
    with pytest.raises(EmbeddingError, match="no model here"):
        lazy.embed(TEXTS[:3])
    lazy.close()
    assert "evalkit-embedder" in attempts
    assert attempts[-1] == threading.current_thread().name


def test_an_embedding_failing_in_the_background_raises_in_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeEncoder(fail_with=RuntimeError("out of memory"))
    monkeypatch.setattr(lazy_embedding, "load_embedder", lambda *_, **__: Embedder(fake, name="f"))
    lazy = LazyEmbedder()
    lazy.prefetch(TEXTS)
    with pytest.raises(RuntimeError, match="out of memory"):
        lazy.embed(TEXTS[:3])
    lazy.close()


def test_close_finishes_the_call_under_way_and_drops_the_vectors(encoder: FakeEncoder) -> None:
    encoder.hold.clear()
    lazy = LazyEmbedder()
    lazy.prefetch(TEXTS)
    assert encoder.started.wait(timeout=30)
    closer = threading.Thread(target=lazy.close)
    closer.start()
    closer.join(timeout=0.2)
    assert closer.is_alive(), "close returned while the background call was still running"
    encoder.hold.set()
    closer.join(timeout=30)
    assert not closer.is_alive()
    assert not any(thread.name == "evalkit-embedder" for thread in threading.enumerate())
    lazy.embed(TEXTS[:2])
    assert encoder.calls == [TEXTS, TEXTS[:2]]


def test_only_vector_stores_on_onnx_start_loading_ahead(
    encoder: FakeEncoder, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path)
    chroma = query_embedder_ahead(RetrieverOptions(collection="demo"), settings)
    assert isinstance(chroma, LazyEmbedder)
    chroma.close()
    assert chroma.loaded
    assert query_embedder_ahead(RetrieverOptions(http_url="http://127.0.0.1:9/q"), settings) is None
    on_torch = settings.model_copy(update={"embed_backend": EmbedBackend.torch})
    assert query_embedder_ahead(RetrieverOptions(collection="demo"), on_torch) is None


def test_a_model_onnx_runtime_cannot_run_is_not_loaded_ahead(tmp_path: Path) -> None:
    """Its load would import torch, which a command refused on a cheaper check then waits
    for at exit; the bundled model, which ONNX Runtime runs, is loaded ahead."""
    not_a_model = tmp_path / "model"
    not_a_model.mkdir()
    (not_a_model / "modules.json").write_text("[]", encoding="utf-8")
    settings = Settings(home=tmp_path, model_path=not_a_model)
    assert not runs_on_onnx(not_a_model, EmbedBackend.auto)
    assert query_embedder_ahead(RetrieverOptions(collection="demo"), settings) is None
    assert runs_on_onnx(None, EmbedBackend.auto)
    assert not runs_on_onnx(None, EmbedBackend.torch)


def test_a_goldset_replay_embeds_its_queries_in_one_pass_and_scores_the_same(
    demo_reference: Reference, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against the reference run, which embedded batch by batch with a plain Embedder."""
    calls: list[int] = []
    real_embed = Embedder.embed

    def counting(self: Embedder, texts: Any) -> npt.NDArray[np.float32]:
        calls.append(len(texts))
        return real_embed(self, texts)

    monkeypatch.setattr(Embedder, "embed", counting)
    goldset = demo_goldset()
    lazy = LazyEmbedder()
    with (
        ChromaRetriever.embedded(demo_reference.chroma_path, "demo", lazy) as retriever,
        Store.open(tmp_path / "store.duckdb") as store,
    ):
        outcome = evaluate_goldset(
            store, goldset, retriever, GoldsetRunRequest(k=DEPTH, answers=False)
        )
    lazy.close()
    assert len(goldset.queries) in calls
    assert max(calls) == len(goldset.queries)
    assert sum(calls) <= len(goldset.queries) + len(CANARY_TEXTS)
    ndcg = outcome.run.aggregates["ndcg@10"]
    assert ndcg is not None
    assert abs(ndcg - demo_reference.ndcg10) < 1e-9


@pytest.mark.slow
def test_prefetched_vectors_match_batch_by_batch_to_float_rounding() -> None:
    texts = [query.text for query in demo_goldset().queries]
    model = load_embedder()
    batched = np.vstack(
        [model.embed(texts[start : start + 16]) for start in range(0, len(texts), 16)]
    )
    lazy = LazyEmbedder()
    lazy.prefetch(texts)
    ahead = np.vstack([lazy.embed(texts[start : start + 16]) for start in range(0, len(texts), 16)])
    lazy.close()
    cosine = np.sum(batched * ahead, axis=1)
    assert float(np.max(1.0 - cosine)) < 1e-6


def test_inside_remembering_vectors_a_text_is_embedded_once_and_after_it_again() -> None:
    """A drill's cycles replay the same queries: inside the block each text is embedded
    once (a repeat within a call too) and gets the vector it first got; after the block the
    model embeds it again."""
    fake = FakeEncoder()
    embedder = Embedder(fake, name="fake")
    with remembering_vectors():
        first = embedder.embed(TEXTS[:3])
        again = embedder.embed([TEXTS[2], TEXTS[5], TEXTS[2]])
    assert fake.calls == [TEXTS[:3], [TEXTS[5]]]
    np.testing.assert_array_equal(again[[0, 2]], first[[2, 2]])
    assert again.shape == (3, 4)
    assert embedder._remembered == {}, "forgotten when the block ends"
    embedder.embed(TEXTS[:3])
    assert fake.calls[-1] == TEXTS[:3], "forgotten after the block"
