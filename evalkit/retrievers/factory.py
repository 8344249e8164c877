"""Building the retriever a command or a job names: ``RetrieverOptions`` and a registry of kinds.

Every entry point describes its retriever with one frozen ``RetrieverOptions`` and calls
``build_retriever``; the kind picks the factory: a registered kind (``retrievers.kinds``),
the user's ``factory``, or a plug-in under the entry-point group ``evalkit.retrievers``. A
built-in kind wins over a plug-in of the same name. Adapters are imported by their factory,
so importing this module stays cheap.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evalkit.config import Settings
from evalkit.config.sources import toml_place
from evalkit.config.tomlfile import did_you_mean
from evalkit.embedding import (
    LazyEmbedder,
    TextEmbedder,
    build_query_embedder,
    local_model_modules,
    runs_on_onnx,
)
from evalkit.errors import ConfigError
from evalkit.extras import require_all
from evalkit.retrievers.base import Retriever, check_retriever
from evalkit.retrievers.chroma_client import check_collection_name
from evalkit.retrievers.http import HttpRetriever
from evalkit.retrievers.kinds import (
    RETRIEVER_KINDS,
    RetrieverKind,
    built_in_kinds,
    register_retriever_kind,
)
from evalkit.retrievers.plugins import (
    FACTORY_KIND,
    PluginRetriever,
    build_from_factory,
    find_plugin,
    installed_plugins,
    parse_factory_spec,
    warn_if_shadowed,
)

__all__ = [
    "RETRIEVER_KINDS",
    "RetrieverKind",
    "RetrieverOptions",
    "build_retriever",
    "query_embedder_ahead",
    "register_retriever_kind",
]


@dataclass(frozen=True)
class RetrieverOptions:
    """What names a live retriever: a kind or factory, a Chroma collection, or an HTTP URL.

    Without ``kind``: ``retriever`` (a kind's name or a ``module:attribute`` factory), else
    ``http_url`` (http), else ``collection`` (chroma), else ``[retriever]`` names it.
    ``query_embedder`` None builds the ``[embedder]`` model afresh. A collection name Chroma
    would refuse is a ConfigError when the options are made. See docs/retrievers.md.
    """

    collection: str | None = None
    chroma_url: str | None = None
    http_url: str | None = None
    where_key: str | None = None
    allow_model_mismatch: bool = False
    defer_model_check: bool = False
    kind: str | None = None
    retriever: str | None = None
    factory_options: Mapping[str, Any] | None = None
    query_embedder: TextEmbedder | None = None

    def __post_init__(self) -> None:
        # A name Chroma refuses is bad input, reported before the command does any work.
        if self.collection and self._names_chroma():
            check_collection_name(self.collection)
        if self.where_key is not None and not self.where_key.strip():
            # Chroma would filter on a key named "", which no document has: every query of a
            # tenant would retrieve nothing, and the run would still say complete.
            raise ConfigError("`where_key` is empty: name the metadata key holding the tenant")

    def _names_chroma(self) -> bool:
        """Whether these options name a Chroma collection (a ``collection`` with no other
        kind, or kind ``chroma``); the settings are consulted only when they name nothing."""
        if self.kind is not None:
            return self.kind == "chroma"
        if self.retriever:
            return self.retriever == "chroma"
        return not self.http_url

    def resolved_kind(self, settings: Settings) -> str:
        """The registered kind these options (or ``settings``) name; ConfigError when they
        name none or two."""
        if self.kind is not None:
            return self.kind
        if self.http_url and (self.collection or self.chroma_url or self.retriever):
            raise ConfigError("give one of `http_url`, `retriever` or `collection`/`chroma_url`")
        if self.retriever:
            return FACTORY_KIND if ":" in self.retriever else self.retriever
        if self.http_url:
            return "http"
        if self.collection:
            return "chroma"
        if settings.retriever.factory:
            return FACTORY_KIND
        if settings.retriever.kind:
            return settings.retriever.kind
        raise ConfigError(
            "name the retriever: `retriever` KIND or module:factory, `collection` NAME, "
            "`http_url` URL, or a [retriever] table in evalkit.toml (docs/retrievers.md)"
        )


def build_retriever(options: RetrieverOptions, settings: Settings) -> Retriever:
    """The retriever ``options`` name, built by its registered kind.

    Checks cost in the order they are made: the options, then reaching the endpoint (an
    HTTP probe query, the Chroma server or store), then the collection, and only then the
    embedding model is loaded, to compare it with the one the collection was built with.

    A name no built-in kind has is looked up among the installed plug-ins; ConfigError,
    listing the built-in and installed kinds, when none has it either.
    """
    name = options.resolved_kind(settings)
    kind = RETRIEVER_KINDS.get(name)
    if kind is not None:
        if options.factory_options and not kind.takes_options:
            given = ", ".join(sorted(options.factory_options))
            raise ConfigError(
                f"the {name} retriever takes no options ({given} given); options are for the "
                f"kinds that take them ({', '.join(_optioned())}, module:factory, plug-ins): "
                "docs/retrievers.md"
            )
        warn_if_shadowed(name)
        return kind.built(options, settings)
    plugin = find_plugin(name)
    if plugin is None:
        built_in = ", ".join(sorted(set(RETRIEVER_KINDS) - {FACTORY_KIND}))
        installed = ", ".join(sorted(installed_plugins())) or "none"
        known = sorted({*RETRIEVER_KINDS, *installed_plugins()} - {FACTORY_KIND})
        from_file = not (
            options.kind or options.retriever or options.http_url or options.collection
        )
        # Said as the file's when the [retriever] table named it, as a misspelt key is.
        where = (
            f"{settings.config_file}: [retriever]: "
            f"{toml_place(settings.config_file, ('retriever', 'kind'))}field 'kind': "
            if from_file
            else ""
        )
        raise ConfigError(
            f"{where}unknown retriever kind {name!r}; built-in kinds: {built_in}; installed "
            f"plug-ins (entry-point group evalkit.retrievers): {installed}; or give "
            f"module:factory of your own function (docs/retrievers.md){did_you_mean(name, known)}"
        )
    return _checked(
        build_from_factory(
            plugin, settings, options=options.factory_options, where_key=options.where_key
        )
    )


def _optioned() -> list[str]:
    """The built-in kinds a user gives options to (``RetrieverKind.takes_options``)."""
    return [name for name in built_in_kinds() if RETRIEVER_KINDS[name].takes_options]


def query_embedder_ahead(options: RetrieverOptions, settings: Settings) -> LazyEmbedder | None:
    """The local ONNX model ``options``' retriever will embed queries with, already loading
    in a background thread; None when it embeds none locally or the model loads on torch.

    Pass it as ``options.query_embedder`` and ``close`` it when done. ConfigError when the
    options name no retriever.
    """
    kind = RETRIEVER_KINDS.get(options.resolved_kind(settings))
    if kind is None or not kind.embeds_queries:
        return None
    embedder = build_query_embedder(settings)
    if not isinstance(embedder, LazyEmbedder):
        return None
    if not runs_on_onnx(settings.model_path, settings.embed_backend):
        return None
    embedder.start_loading()
    return embedder


def _query_embedder(options: RetrieverOptions, settings: Settings) -> TextEmbedder | None:
    if options.query_embedder is not None:
        return options.query_embedder
    return build_query_embedder(settings)


def _vector_query_embedder(
    options: RetrieverOptions, settings: Settings, retriever: str
) -> TextEmbedder:
    """The query embedder of a retriever that searches by vector, which cannot do without one."""
    embedder = _query_embedder(options, settings)
    if embedder is None:
        raise ConfigError(
            f"{retriever} searches by vector, so evalkit must embed the queries: "
            "set [embedder] kind to sentence-transformers or openai, not none"
        )
    return embedder


def _checked(retriever: PluginRetriever) -> Retriever:
    # A store that is down or misconfigured fails here, before a run is recorded.
    try:
        check_retriever(retriever)
    except BaseException:
        retriever.close()
        raise
    return retriever


def build_factory(options: RetrieverOptions, settings: Settings) -> Retriever:
    """The retriever of the user's ``module:attribute`` (kind ``factory``)."""
    if options.retriever and ":" in options.retriever:
        spec = options.retriever
    elif settings.retriever.factory:
        spec = settings.retriever.factory
    else:
        raise ConfigError(
            "kind 'factory' needs the function to call: `retriever` module:factory, or "
            'factory = "module:factory" in the [retriever] table'
        )
    source = parse_factory_spec(spec)
    return _checked(
        build_from_factory(
            source, settings, options=options.factory_options, where_key=options.where_key
        )
    )


def build_http(options: RetrieverOptions, settings: Settings) -> Retriever:
    """The HTTP JSON endpoint ``options.http_url``, checked with a probe query."""
    if not options.http_url:
        raise ConfigError("the http retriever needs a URL (`http_url` URL)")
    if options.where_key:
        # Accepted, it would read as a filter evalkit applies, which it does not.
        raise ConfigError(
            "the http retriever sends each query's tenant to the endpoint, which filters by "
            "it: there is no metadata key for evalkit to filter on; leave `where_key` out"
        )
    endpoint = HttpRetriever(
        options.http_url,
        timeout=settings.http_timeout,
        retries=settings.http_retries,
        concurrency=settings.http_concurrency,
    )
    # An endpoint that is down or misconfigured fails here, before a run is recorded.
    check_retriever(endpoint)
    return endpoint


def build_chroma(options: RetrieverOptions, settings: Settings) -> Retriever:
    """The Chroma collection ``options.collection``, on a server or the embedded store."""
    require_all(("chromadb", *local_model_modules(settings)), "the Chroma retriever")
    # Chroma is heavy: only a Chroma retriever pays for it.
    from evalkit.retrievers.chroma import ChromaRetriever

    if not options.collection:
        raise ConfigError("name the Chroma collection: `collection` NAME")
    embedder = _query_embedder(options, settings)
    if embedder is None:
        raise ConfigError(
            "a Chroma collection is queried with vectors: set [embedder] kind to "
            "sentence-transformers or openai (kind none is for retrievers that embed queries "
            "themselves)"
        )
    url = options.chroma_url or settings.chroma_url
    ef_search = settings.retriever.chroma.ef_search
    if url and ef_search is not None:
        raise ConfigError(
            f"[retriever.chroma] ef_search = {ef_search} cannot be set on the Chroma server "
            f"at {url}: Chroma has no per-query ef_search, and a server keeps the value its "
            "searcher opened with until it restarts; set it on an embedded store only"
        )
    open_store = (
        functools.partial(ChromaRetriever.server, url)
        if url
        else functools.partial(
            ChromaRetriever.embedded, settings.resolved_chroma_path, ef_search=ef_search
        )
    )
    return open_store(
        options.collection,
        embedder,
        batch_size=settings.query_batch_size,
        where_key=options.where_key,
        allow_model_mismatch=options.allow_model_mismatch,
        defer_model_check=options.defer_model_check,
    )


def _vector_store_arguments(
    options: RetrieverOptions, settings: Settings, extra: str, retriever: str
) -> dict[str, Any]:
    """Check that the optional ``extra`` (and the local model's modules) is installed; the
    keyword arguments of ``retriever``, a vector-store retriever: its query embedder and
    what the options and settings say of every vector store."""
    require_all((extra, *local_model_modules(settings)), retriever)
    return {
        "embedder": _vector_query_embedder(options, settings, retriever),
        "where_key": options.where_key,
        "batch_size": settings.query_batch_size,
        "defer_model_check": options.defer_model_check,
    }


def build_pgvector(options: RetrieverOptions, settings: Settings) -> Retriever:
    """The pgvector table of ``[retriever.pgvector]``."""
    arguments = _vector_store_arguments(options, settings, "psycopg", "the pgvector retriever")
    # psycopg is an optional extra: only a pgvector retriever imports it.
    from evalkit.retrievers.pgvector import PgvectorRetriever

    return PgvectorRetriever(settings.retriever.pgvector, **arguments)


def build_qdrant(options: RetrieverOptions, settings: Settings) -> Retriever:
    """The Qdrant collection of the options or ``[retriever.qdrant]``."""
    arguments = _vector_store_arguments(options, settings, "qdrant_client", "the qdrant retriever")
    # qdrant_client is an optional extra: only a Qdrant retriever imports it.
    from evalkit.retrievers.qdrant import QdrantRetriever

    return QdrantRetriever(settings.retriever.qdrant, collection=options.collection, **arguments)


def build_bm25(options: RetrieverOptions, settings: Settings) -> Retriever:
    """The bm25s index the options (``index=DIR``) name."""
    require_all(("bm25s",), "the bm25 retriever")
    # bm25s is an optional extra: only a bm25 retriever imports it.
    from evalkit.retrievers.bm25 import build_bm25_retriever

    if options.where_key:
        raise ConfigError(
            "the bm25 retriever cannot filter by tenant (`where_key`): its index holds no "
            "tenants; leave `where_key` out"
        )
    given = options.factory_options
    if given is None:
        given = settings.retriever.options if settings.retriever.kind == "bm25" else {}
    return build_bm25_retriever(given)
