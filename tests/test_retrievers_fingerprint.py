"""Model fingerprints: what lets a retriever refuse an index built with another model."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from evalkit.embedding import (
    DEFAULT_MODEL_NAME,
    EmbedBackend,
    Embedder,
    ModelFingerprint,
    default_model_path,
    load_embedder,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    """The model on torch: these tests reach into the sentence-transformers module."""
    return load_embedder(backend=EmbedBackend.torch)


def independent_load() -> Embedder:
    """A second copy of the default model, read from disk again (not the process cache)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(default_model_path()), device="cpu", local_files_only=True)
    return Embedder(model, name=DEFAULT_MODEL_NAME)


def test_two_loads_of_the_same_model_agree(embedder: Embedder) -> None:
    again = independent_load()
    assert again is not embedder
    assert again.fingerprint.canary_hash == embedder.fingerprint.canary_hash
    assert again.fingerprint.matches(embedder.fingerprint)
    assert embedder.fingerprint.canary_similarity(again.fingerprint) == pytest.approx(1.0, abs=1e-3)


def test_fingerprint_survives_collection_metadata(embedder: Embedder) -> None:
    metadata = embedder.fingerprint.to_metadata()
    assert all(key.startswith("evalkit_model_") for key in metadata)
    assert all(isinstance(value, str | int) for value in metadata.values())
    restored = ModelFingerprint.from_metadata(dict(metadata))
    assert restored == embedder.fingerprint
    assert ModelFingerprint.from_metadata({"unrelated": 1}) is None


def test_a_perturbed_model_does_not_match(embedder: Embedder) -> None:
    import torch  # here, not at the top: collecting the suite need not load torch

    model = copy.deepcopy(embedder._model)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        weights = model[0].auto_model.embeddings.word_embeddings.weight
        weights.add_(torch.randn(weights.shape, generator=generator) * weights.std() * 0.5)
    perturbed = Embedder(model, name=DEFAULT_MODEL_NAME)

    assert perturbed.fingerprint.canary_hash != embedder.fingerprint.canary_hash
    assert not perturbed.fingerprint.matches(embedder.fingerprint)
    similarity = perturbed.fingerprint.canary_similarity(embedder.fingerprint)
    assert similarity is not None
    assert similarity < 0.999


def test_fingerprints_from_other_vectors_do_not_match(embedder: Embedder) -> None:
    mine = embedder.fingerprint
    canaries = np.frombuffer(mine.canary_vectors, dtype=np.float16).astype(np.float32)
    canaries = canaries.reshape(-1, mine.dimension)

    rotated = np.roll(canaries, 1, axis=1)
    other = ModelFingerprint(
        mine.name, mine.dimension, "ffffffffffffffff", rotated.astype(np.float16).tobytes()
    )
    assert not mine.matches(other)

    noise = np.random.default_rng(11).normal(scale=1e-4, size=canaries.shape)
    jittered = canaries + noise
    jittered /= np.linalg.norm(jittered, axis=1, keepdims=True)
    close = ModelFingerprint(
        mine.name, mine.dimension, "eeeeeeeeeeeeeeee", jittered.astype(np.float16).tobytes()
    )
    assert mine.matches(close)  # last-bit noise is the same model

    smaller = ModelFingerprint(mine.name, 128, mine.canary_hash, b"")
    assert not mine.matches(smaller)
    unknown = ModelFingerprint(mine.name, mine.dimension, "dddddddddddddddd", b"")
    assert not mine.matches(unknown)
