"""The model check of a Chroma collection: does the query model embed as the model the
index was built with? By the fingerprint the collection records and by a sample of its
stored documents re-embedded from their text (the audit's ``reembed_stored``), stored as a
drift check of stream ``model`` (``evalkit drift model``, the ``drift_check`` job)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from evalkit.audit.model import reembed_stored, sample_rows
from evalkit.audit.snapshot import stored_documents
from evalkit.drift.watch import ModelCheck, check_query_model
from evalkit.embedding import ModelFingerprint, build_document_embedder, close_embedder
from evalkit.errors import ConfigError
from evalkit.records.audit import AUDIT_DEFAULTS
from evalkit.records.requests import DEFAULT_MODEL_SAMPLE, DRIFT_TEST_DEFAULTS
from evalkit.retrievers.chroma_client import configured_collection
from evalkit.store.access import WriterAccess

if TYPE_CHECKING:
    from evalkit.config import Settings

__all__ = ["check_drift_model"]


def check_drift_model(
    store: WriterAccess,
    settings: Settings,
    collection: str,
    *,
    chroma_url: str | None = None,
    sample: int = DEFAULT_MODEL_SAMPLE,
    seed: int = DRIFT_TEST_DEFAULTS.seed,
) -> ModelCheck:
    """Check that the query model embeds as a collection's model did, by stored fingerprint and
    by re-embedding a seeded ``sample`` of stored documents, and store the check (a mismatch
    is a finding). The store is opened only after the re-embedding.
    """
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
        raise ConfigError(f"the model check's sample must be at least 1 document, got {sample!r}")
    embedder = build_document_embedder(settings)
    if embedder is None:
        raise ConfigError(
            "the model check embeds canary texts with the query embedder, and [embedder] kind "
            "is none: set kind = sentence-transformers (with model_path) or openai to the "
            "model the collection was indexed with"
        )
    try:
        with configured_collection(settings, collection, chroma_url) as opened:
            metadata = dict(opened.metadata or {})
            ids = [str(doc_id) for doc_id in opened.get(include=[])["ids"]]
            rows = sample_rows(len(ids), sample, np.random.default_rng(seed))
            held = stored_documents(opened, [ids[row] for row in rows], vectors=True)
        dimensions = {len(doc.vector) for doc in held.values() if doc.vector is not None}
        stored_dimension = max(dimensions) if dimensions else None
        reembedded = None
        if stored_dimension is None or stored_dimension == embedder.dimension:
            reembedded = reembed_stored(
                list(held.values()), embedder, min_cosine=AUDIT_DEFAULTS.model_min_cosine
            )
    finally:
        close_embedder(embedder)
    with store.writer("drift check") as writing:
        return check_query_model(
            ModelFingerprint.from_metadata(metadata),
            embedder,
            subject=collection,
            store=writing,
            reembedded=reembedded,
            stored_dimension=stored_dimension,
        )
