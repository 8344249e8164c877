"""The re-embedding model check on its own, with a small deterministic embedder (the real
stores and model are in the pgvector and Qdrant tests)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from evalkit.embedding import ModelFingerprint
from evalkit.errors import RetrieverError
from evalkit.retrievers.model_check import (
    REEMBED_MAX_CHARS,
    SAME_MODEL_MEDIAN_COSINE,
    check_reembedding,
)

DIMENSION = 16


class HashEmbedder:
    """Each text to a fixed pseudo-random unit vector; remembers what it was asked."""

    name = "hash-model"
    dimension = DIMENSION

    def __init__(self) -> None:
        self.seen: list[str] = []

    @property
    def fingerprint(self) -> ModelFingerprint:
        return ModelFingerprint(self.name, DIMENSION, "0" * 16)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.seen.extend(texts)
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            vector = np.random.default_rng(seed).normal(size=DIMENSION)
            rows.append(vector / np.linalg.norm(vector))
        return np.asarray(rows, dtype=np.float32)


def stored_by(embedder: HashEmbedder, texts: list[str]) -> list[tuple[str, list[float]]]:
    vectors = embedder.embed(texts)
    return [(text, vector.tolist()) for text, vector in zip(texts, vectors, strict=True)]


TEXTS = [f"document number {n} about refunds" for n in range(16)]


def test_vectors_made_by_the_same_model_pass_with_their_median() -> None:
    embedder = HashEmbedder()
    check = check_reembedding(stored_by(embedder, TEXTS), embedder, store="t", text_source="c")
    assert check is not None
    assert check.same_model
    assert (check.sampled, check.median_cosine) == (16, pytest.approx(1.0))


def test_vectors_of_another_space_are_refused_naming_the_store_and_the_cosine() -> None:
    embedder = HashEmbedder()
    rotation, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(DIMENSION, DIMENSION)))
    rows = [(text, (np.asarray(v) @ rotation).tolist()) for text, v in stored_by(embedder, TEXTS)]
    with pytest.raises(RetrieverError, match=r"table kb.*hash-model.*median cosine") as refused:
        check_reembedding(rows, embedder, store="table kb", text_source="column 'body'")
    assert f"the limit is {SAME_MODEL_MEDIAN_COSINE}" in str(refused.value)


def test_rows_it_cannot_compare_are_left_out_and_long_texts_are_cut() -> None:
    embedder = HashEmbedder()
    long_text = "refund " * 1000
    rows = [
        ("", [0.0] * DIMENSION),
        ("short vector", [1.0, 0.0]),
        (long_text, embedder.embed([long_text[:REEMBED_MAX_CHARS]])[0].tolist()),
    ]
    embedder.seen.clear()
    check = check_reembedding(rows, embedder, store="t", text_source="c")
    assert check is not None
    assert check.sampled == 1
    assert check.median_cosine == pytest.approx(1.0)
    assert [len(text) for text in embedder.seen] == [REEMBED_MAX_CHARS]
    assert check_reembedding(rows[:2], embedder, store="t", text_source="c") is None
