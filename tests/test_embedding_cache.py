"""Document vectors are embedded once per model and kept between runs (``CachingEmbedder``)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import chromadb
import numpy as np
import numpy.typing as npt
import pytest
from chromadb.config import Settings as ChromaSettings

from evalkit.cli import invoke
from evalkit.embedding import (
    CANARY_TEXTS,
    CachingEmbedder,
    Embedder,
    ModelFingerprint,
    fingerprint_from_canaries,
)
from evalkit.embedding.onnx import default_cache_dir

DEMO_CORPUS = Path(__file__).resolve().parents[1] / "goldsets" / "demo" / "corpus.jsonl"
TEXTS = ["alpha", "beta", "gamma", "delta"]
SAMPLE = 40


class CountingModel:
    """A model whose vectors depend on ``seed`` and the text; it records what it embeds."""

    def __init__(self, seed: int = 0, dimension: int = 8) -> None:
        self.name = "counting"
        self.dimension = dimension
        self.seed = seed
        self.embedded: list[str] = []

    def _vector(self, text: str) -> npt.NDArray[np.float32]:
        digest = hashlib.sha256(f"{self.seed}:{text}".encode()).digest()
        vector = np.frombuffer(digest[: self.dimension], dtype=np.uint8).astype(np.float32) + 1
        return vector / np.linalg.norm(vector)

    @property
    def fingerprint(self) -> ModelFingerprint:
        vectors = np.stack([self._vector(text) for text in CANARY_TEXTS])
        return fingerprint_from_canaries(self.name, self.dimension, vectors)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.embedded.extend(texts)
        return np.stack([self._vector(text) for text in texts])


def test_a_text_is_embedded_once_and_later_processes_read_it(tmp_path: Path) -> None:
    model = CountingModel()
    first = CachingEmbedder(model, tmp_path)
    vectors = first.embed(TEXTS[:3])
    first.close()
    assert model.embedded == TEXTS[:3]

    second = CachingEmbedder(model, tmp_path)  # as another process would, on the same cache
    again = second.embed([TEXTS[3], TEXTS[0], TEXTS[3], TEXTS[2]])
    second.close()
    assert model.embedded == [*TEXTS[:3], TEXTS[3]], "only the new text, once"
    np.testing.assert_array_equal(again[1], vectors[0])
    np.testing.assert_array_equal(again[3], vectors[2])
    np.testing.assert_array_equal(again[0], again[2])
    np.testing.assert_array_equal(again, model.embed([TEXTS[3], TEXTS[0], TEXTS[3], TEXTS[2]]))
    assert first.name == "counting"
    assert first.dimension == 8
    assert first.fingerprint == model.fingerprint


def test_another_model_keeps_vectors_of_its_own(tmp_path: Path) -> None:
    old, new = CountingModel(seed=0), CountingModel(seed=1)
    CachingEmbedder(old, tmp_path).embed(TEXTS)
    vectors = CachingEmbedder(new, tmp_path).embed(TEXTS)
    assert new.embedded == TEXTS
    np.testing.assert_array_equal(vectors, new.embed(TEXTS))
    assert len(list((tmp_path / "vectors").glob("*.sqlite3"))) == 2


def test_a_model_that_truncates_elsewhere_is_another_model(tmp_path: Path) -> None:
    """The canary texts are short, so two windows embed them alike: the window tells."""

    class Truncating(CountingModel):
        def __init__(self, window: int) -> None:
            super().__init__()
            self.max_seq_length = window

        def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
            self.embedded.extend(texts)
            return np.stack([self._vector(text[: self.max_seq_length]) for text in texts])

    wide, narrow = Truncating(window=4000), Truncating(window=500)
    assert wide.fingerprint == narrow.fingerprint
    document = "a long document. " * 50
    CachingEmbedder(wide, tmp_path).embed([document])
    CachingEmbedder(narrow, tmp_path).embed([document])
    assert narrow.embedded == [document]
    assert len(list((tmp_path / "vectors").glob("*.sqlite3"))) == 2


def test_a_cache_that_cannot_be_kept_embeds_every_text_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache directory would go", encoding="utf-8")
    model = CountingModel()
    with caplog.at_level(logging.WARNING, logger="evalkit.embedding.cache"):
        vectors = CachingEmbedder(model, blocked).embed(TEXTS)
    np.testing.assert_array_equal(vectors, model.embed(TEXTS))
    assert "cannot be opened" in caplog.text

    caplog.clear()
    cached = CachingEmbedder(model, tmp_path / "fine")
    cached.embed(TEXTS[:1])
    (cache_file,) = (tmp_path / "fine" / "vectors").glob("*.sqlite3")
    cached.close()
    cache_file.write_bytes(b"not a database" * 100)
    model.embedded.clear()
    with caplog.at_level(logging.WARNING, logger="evalkit.embedding.cache"):
        vectors = CachingEmbedder(model, tmp_path / "fine").embed(TEXTS)
    assert model.embedded == TEXTS
    np.testing.assert_array_equal(vectors, model.embed(TEXTS))
    assert "embedding every text" in caplog.text


@pytest.mark.slow
def test_indexing_a_corpus_again_embeds_nothing_and_writes_the_same_vectors(
    evalkit_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``evalkit index`` into a second collection, with the bundled model: every document
    vector comes from the cache, equal to the first collection's to the bit; the audit's
    model check reads the stored texts' vectors from it too."""
    corpus = tmp_path / "corpus.jsonl"
    lines = DEMO_CORPUS.read_text(encoding="utf-8").splitlines()[:SAMPLE]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cache = tmp_path / "cache"
    exports = default_cache_dir() / "onnx"  # the model's ONNX export, made once per machine
    exports.mkdir(parents=True, exist_ok=True)
    cache.mkdir()
    (cache / "onnx").symlink_to(exports, target_is_directory=True)
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(cache))
    embedded: list[int] = []
    real_embed = Embedder.embed

    def counting(self: Embedder, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        embedded.append(len(texts))
        return real_embed(self, texts)

    monkeypatch.setattr(Embedder, "embed", counting)
    for collection in ("first-copy", "second-copy"):
        embedded.clear()
        args = ["index", "--corpus", str(corpus), "--collection", collection]
        assert invoke([*args, "--format", "json"]) == 0
        if collection == "first-copy":
            assert sum(embedded) >= SAMPLE
    assert sum(embedded) <= len(CANARY_TEXTS), "only the canaries of the fingerprint"
    embedded.clear()
    audit = ["audit", "--collection", "second-copy", "--check", "model", "--model-sample", "0"]
    assert invoke([*audit, "--format", "json"]) == 0
    assert sum(embedded) <= len(CANARY_TEXTS), "every stored text's vector read from the cache"

    client = chromadb.PersistentClient(
        path=str(evalkit_home / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
    )
    first, second = (
        client.get_collection(name).get(include=["embeddings"])
        for name in ("first-copy", "second-copy")
    )
    by_id = dict(zip(first["ids"], first["embeddings"], strict=True))
    assert len(by_id) == SAMPLE
    for doc_id, vector in zip(second["ids"], second["embeddings"], strict=True):
        np.testing.assert_array_equal(vector, by_id[doc_id])
