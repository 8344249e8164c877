"""Building the retriever a command or a job names: ``RetrieverOptions`` and a registry of kinds.

Every entry point (``run``, ``gate``, ``traffic replay``, the scheduler's jobs) describes the
retriever it wants with one frozen ``RetrieverOptions`` and calls ``build_retriever``; the
kind (``chroma``, ``http``, or one registered with ``register_retriever_kind``) picks the
factory. The adapters' modules are cheap to import: Chroma itself is imported when a client
is opened, and the embedding model when it first embeds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from evalkit.config import Settings
from evalkit.embedding import LazyEmbedder
from evalkit.errors import ConfigError
from evalkit.registry import register_named
from evalkit.retrievers.base import Retriever, check_retriever
from evalkit.retrievers.chroma import ChromaRetriever
from evalkit.retrievers.http import HttpRetriever

__all__ = [
    "RETRIEVER_KINDS",
    "RetrieverKind",
    "RetrieverOptions",
    "build_retriever",
    "register_retriever_kind",
]


@dataclass(frozen=True)
class RetrieverOptions:
    """What names a live retriever: a Chroma collection (embedded or server) or an HTTP URL.

    ``kind`` may be left out: an ``http_url`` means ``http``, a ``collection`` means
    ``chroma``. ``allow_model_mismatch`` queries a collection built with another embedding
    model (diagnosis only); ``defer_model_check`` leaves the model check to the retriever's
    ``verify_model()`` or first query, for callers with cheaper checks to make first.
    """

    collection: str | None = None
    chroma_url: str | None = None
    http_url: str | None = None
    where_key: str | None = None
    allow_model_mismatch: bool = False
    defer_model_check: bool = False
    kind: str | None = None

    def resolved_kind(self) -> str:
        """The registered kind these options name; ConfigError when they name none or two."""
        if self.kind is not None:
            return self.kind
        if self.http_url and (self.collection or self.chroma_url):
            raise ConfigError("give either --http-retriever or --collection/--chroma-url, not both")
        if self.http_url:
            return "http"
        if self.collection:
            return "chroma"
        raise ConfigError("name the retriever: --collection NAME or --http-retriever URL")


@dataclass(frozen=True)
class RetrieverKind:
    """A named way of building a retriever from options and settings."""

    name: str
    build: Callable[[RetrieverOptions, Settings], Retriever]


RETRIEVER_KINDS: dict[str, RetrieverKind] = {}


def register_retriever_kind(kind: RetrieverKind) -> None:
    """Make ``kind`` buildable by name; ConfigError if the name is taken."""
    register_named(RETRIEVER_KINDS, kind, what="retriever kind")


def build_retriever(options: RetrieverOptions, settings: Settings) -> Retriever:
    """The retriever ``options`` name, built by its registered kind.

    Checks cost in the order they are made: the options, then reaching the endpoint (an
    HTTP probe query, the Chroma server or store), then the collection, and only then the
    embedding model is loaded, to compare it with the one the collection was built with.
    """
    name = options.resolved_kind()
    kind = RETRIEVER_KINDS.get(name)
    if kind is None:
        known = ", ".join(sorted(RETRIEVER_KINDS))
        raise ConfigError(f"unknown retriever kind {name!r}; known kinds: {known}")
    return kind.build(options, settings)


def _build_http(options: RetrieverOptions, settings: Settings) -> Retriever:
    if not options.http_url:
        raise ConfigError("the http retriever needs a URL (--http-retriever URL)")
    endpoint = HttpRetriever(
        options.http_url,
        timeout=settings.http_timeout,
        retries=settings.http_retries,
        concurrency=settings.http_concurrency,
    )
    # An endpoint that is down or misconfigured fails here, before a run is recorded.
    check_retriever(endpoint)
    return endpoint


def _build_chroma(options: RetrieverOptions, settings: Settings) -> Retriever:
    if not options.collection:
        raise ConfigError("name the Chroma collection: --collection NAME")
    embedder = LazyEmbedder(settings.model_path, batch_size=settings.embed_batch_size)
    url = options.chroma_url or settings.chroma_url
    if url:
        return ChromaRetriever.server(
            url,
            options.collection,
            embedder,
            batch_size=settings.query_batch_size,
            where_key=options.where_key,
            allow_model_mismatch=options.allow_model_mismatch,
            defer_model_check=options.defer_model_check,
        )
    return ChromaRetriever.embedded(
        settings.resolved_chroma_path,
        options.collection,
        embedder,
        batch_size=settings.query_batch_size,
        where_key=options.where_key,
        allow_model_mismatch=options.allow_model_mismatch,
        defer_model_check=options.defer_model_check,
    )


register_retriever_kind(RetrieverKind("http", _build_http))
register_retriever_kind(RetrieverKind("chroma", _build_chroma))
