"""`check_drift_documents` on real embedded Chroma collections: which snapshot it tests
against, and windows that share no document with the reference."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from evalkit.config import Settings, load_settings
from evalkit.errors import ConfigError
from evalkit.pipeline import check_drift_documents, save_documents_reference
from evalkit.retrievers import open_chroma_client
from evalkit.store import Store

DIMENSION = 32


def _vectors(seed: int, n: int, *, shift: float = 0.0) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIMENSION)) + shift * (np.arange(DIMENSION) < 8)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def _add(settings: Settings, name: str, vectors: npt.NDArray[np.float32], first: int = 0) -> None:
    client = open_chroma_client(path=settings.resolved_chroma_path)
    collection = client.get_or_create_collection(name, embedding_function=None)
    ids = [f"{name}-{i:05d}" for i in range(first, first + len(vectors))]
    collection.add(ids=ids, embeddings=vectors)


@pytest.fixture
def settings(evalkit_home: Path) -> Settings:
    return load_settings(home=evalkit_home)


def test_the_newest_snapshot_is_the_collection_s_own_not_a_longer_name_s(
    settings: Settings, store: Store
) -> None:
    """`kbase-v2`'s snapshot sorts after `kbase`'s ("v" after a digit) and matched `kbase-*.npy`: an
    unchanged `kbase` was tested against another collection and reported as drifted."""
    _add(settings, "kbase", _vectors(1, 120))
    _add(settings, "kbase-v2", _vectors(2, 120, shift=1.5))
    own, _ = save_documents_reference(settings, "kbase")
    time.sleep(1.1)  # snapshots are named to the second
    save_documents_reference(settings, "kbase-v2")
    outcome = check_drift_documents(store, settings, "kbase")
    assert outcome.check is not None
    assert outcome.check.reference == str(own)
    assert outcome.result is not None
    assert not outcome.result.is_drift


def test_documents_added_since_the_snapshot_are_tested_on_their_own(
    settings: Settings, store: Store
) -> None:
    """The current sample held the reference's rows too (the whole collection, here), so
    10 % of documents from elsewhere went unseen (p = 1). The window now holds only
    documents outside the reference."""
    _add(settings, "grown", _vectors(3, 300))
    save_documents_reference(settings, "grown")
    unchanged = check_drift_documents(store, settings, "grown")
    assert unchanged.result is not None
    assert not unchanged.result.is_drift
    _add(settings, "grown", _vectors(4, 30, shift=1.0), first=300)
    grown = check_drift_documents(store, settings, "grown")
    assert grown.result is not None
    assert grown.result.is_drift
    assert grown.result.p_value < 0.01


def test_a_collection_larger_than_the_sample_is_compared_with_other_documents(
    settings: Settings, store: Store
) -> None:
    """Disjoint samples of one unchanged collection: no drift."""
    _add(settings, "large", _vectors(5, 600))
    save_documents_reference(settings, "large", sample=200)
    outcome = check_drift_documents(store, settings, "large", sample=200)
    assert outcome.result is not None
    assert not outcome.result.is_drift
    assert outcome.result.n_current == 200


def test_an_empty_collection_says_so_instead_of_blaming_the_model(
    settings: Settings, store: Store
) -> None:
    _add(settings, "filled", _vectors(6, 50))
    reference, _ = save_documents_reference(settings, "filled")
    open_chroma_client(path=settings.resolved_chroma_path).get_or_create_collection(
        "empty", embedding_function=None
    )
    with pytest.raises(ConfigError, match="'empty' holds 0 embedded documents"):
        check_drift_documents(store, settings, "empty", reference=reference)
