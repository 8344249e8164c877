"""The expected time of a long embedding, measured on its first small batch and told before
the rest: `embed_paced`, `PacedEmbedder`, and `evalkit index` (`index_corpus`)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from evalkit.cli import invoke
from evalkit.embedding import ModelFingerprint
from evalkit.embedding import pace as pace_module
from evalkit.embedding.pace import EmbeddingPace, PacedEmbedder, embed_paced
from evalkit.records import Document
from evalkit.retrievers import open_chroma_client
from evalkit.retrievers.indexing import index_corpus

DIMENSION = 8


class HashEmbedder:
    """Each text to a fixed pseudo-random unit vector; records the size of every call."""

    name = "hash-model"
    dimension = DIMENSION

    def __init__(self) -> None:
        self.calls: list[int] = []

    @property
    def fingerprint(self) -> ModelFingerprint:
        return ModelFingerprint(self.name, DIMENSION, "0" * 16)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(len(texts))
        rows = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        for row, text in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            vector = np.random.default_rng(seed).normal(size=DIMENSION)
            rows[row] = vector / np.linalg.norm(vector)
        return rows


def ticking(step: float) -> Iterator[float]:
    """A clock that moves ``step`` seconds at each reading."""
    now = 0.0
    while True:
        yield now
        now += step


def test_a_long_embedding_is_told_its_expected_time_from_the_first_batch() -> None:
    embedder = HashEmbedder()
    texts = [f"text number {i:04d}" for i in range(1000)]  # 16 characters each
    told: list[EmbeddingPace] = []
    clock = ticking(2.0)  # the first 16 texts take 2 s: 8 texts a second

    vectors = embed_paced(embedder, texts, told.append, clock=lambda: next(clock))

    assert embedder.calls == [16, 984]
    np.testing.assert_array_equal(vectors, HashEmbedder().embed(texts))
    [pace] = told
    assert (pace.texts, pace.measured, pace.seconds, pace.characters) == (1000, 16, 2.0, 256)
    assert pace.rate == pytest.approx(8.0)
    assert pace.remaining_seconds == pytest.approx(984 / 8)
    assert pace.describe("re-embedding") == (
        "re-embedding 1,000 texts, about 2 min at the measured rate (8.0 texts a second over "
        "a first batch of 16, 16 characters a text on average)"
    )
    assert EmbeddingPace(5183, 16, 1.7, 23680, at_most=True).describe("embedding", "documents") == (
        "embedding up to 5,183 documents, about 9 min at the measured rate (9.4 documents a "
        "second over a first batch of 16, 1,480 characters a text on average)"
    )


def test_a_short_embedding_is_not_told_and_without_a_callback_is_one_call() -> None:
    embedder = HashEmbedder()
    texts = [f"t{i}" for i in range(40)]
    told: list[EmbeddingPace] = []
    clock = ticking(0.1)
    embed_paced(embedder, texts, told.append, clock=lambda: next(clock))
    assert told == []
    assert embedder.calls == [16, 24]
    embed_paced(embedder, texts, None)
    assert embedder.calls[-1] == 40


def test_a_paced_embedder_tells_each_long_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pace_module, "LONG_EMBEDDING", 0.0)
    told: list[EmbeddingPace] = []
    paced = PacedEmbedder(HashEmbedder(), told.append)
    assert (paced.name, paced.dimension) == ("hash-model", DIMENSION)
    assert paced.fingerprint == HashEmbedder().fingerprint
    paced.embed([f"t{i}" for i in range(100)])
    paced.embed([f"u{i}" for i in range(30)])
    assert [(pace.texts, pace.measured) for pace in told] == [(100, 16), (30, 16)]


def documents(count: int, start: int = 0) -> list[Document]:
    return [
        Document(id=f"d{i:04d}", text=f"Document {i} says something.") for i in range(start, count)
    ]


def test_indexing_tells_the_expected_time_of_what_it_will_embed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pace_module, "LONG_EMBEDDING", 0.0)
    client = open_chroma_client(path=tmp_path / "chroma")
    told: list[EmbeddingPace] = []
    progress: list[tuple[int, int | None]] = []
    embedder = HashEmbedder()
    index_corpus(
        client,
        documents(100),
        embedder,
        collection_name="paced",
        batch_size=32,
        total=100,
        progress=lambda done, total: progress.append((done, total)),
        pace=told.append,
    )
    # A new collection: every document is embedded, and that many are told.
    [pace] = told
    assert (pace.texts, pace.measured, pace.at_most) == (100, 16, False)
    assert embedder.calls == [16, 16, 32, 32, 4]
    # The bar knows the total before the first batch, instead of "0/?".
    assert progress[0] == (0, 100)
    stored = client.get_collection("paced").get(ids=["d0000", "d0099"], include=["embeddings"])
    np.testing.assert_allclose(
        np.asarray(stored["embeddings"]),
        HashEmbedder().embed(["Document 0 says something.", "Document 99 says something."]),
        atol=1e-6,
    )

    # Documents already indexed are skipped: what is left to read is at most what is left
    # to embed, counted from the first batch that embeds anything.
    told.clear()
    index_corpus(
        client,
        documents(120),
        HashEmbedder(),
        collection_name="paced",
        batch_size=32,
        total=120,
        pace=told.append,
    )
    [pace] = told
    assert (pace.texts, pace.measured, pace.at_most) == (20, 16, True)
    assert pace.describe("embedding", "documents").startswith("embedding up to 20 documents")


@pytest.mark.slow
def test_index_says_it_loads_the_model_and_audit_tells_its_reembedding_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`evalkit index` showed `0/?` for about 25 s while the model loaded, saying nothing;
    neither it nor the audit's re-embedding check said how long embedding would take."""
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(pace_module, "LONG_EMBEDDING", 0.0)
    corpus = tmp_path / "corpus.jsonl"
    facts = (f"Fact {i}: the number {i} is {i % 7} modulo seven." for i in range(40))
    corpus.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(facts))
    )

    assert invoke(["index", "--corpus", str(corpus), "--collection", "small"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "loading embedding model sentence-transformers/all-MiniLM-L6-v2 ..."
    assert re.fullmatch(
        r"embedding model sentence-transformers/all-MiniLM-L6-v2 \(384 dimensions\) ready in "
        r"\d+\.\d s",
        lines[1],
    )
    told = [line for line in lines if line.startswith("embedding 40 documents, about ")]
    assert len(told) == 1
    assert re.search(r"over a first batch of 16, 4\d characters a text on average\)$", told[0])

    code = invoke(
        ["audit", "--collection", "small", "--check", "model", "--model-sample", "0", "--no-save"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert re.search(
        r"^embedding 40 texts, about \d+ s at the measured rate \([\d,.]+ texts a second over "
        r"a first batch of 16, ",
        captured.err,
        re.MULTILINE,
    )
