"""Options shared by every command that talks to a live retriever (run, gate, traffic)."""

from __future__ import annotations

from typing import Annotated

import typer

from evalkit.config import Settings
from evalkit.errors import ConfigError
from evalkit.retrievers.base import Retriever, check_retriever

__all__ = ["ChromaUrl", "Collection", "HttpUrl", "build_retriever"]

Collection = Annotated[
    str | None, typer.Option(help="Chroma collection to query (embedded store or --chroma-url).")
]
ChromaUrl = Annotated[
    str | None,
    typer.Option(
        help="Chroma server URL, e.g. http://127.0.0.1:8000 (default: the embedded store "
        "under EVALKIT_HOME)."
    ),
]
HttpUrl = Annotated[
    str | None,
    typer.Option(
        "--http-retriever",
        help="URL of an HTTP JSON retriever endpoint (see docs/retrievers.md).",
    ),
]
WhereKey = Annotated[
    str | None,
    typer.Option(help="Chroma metadata key holding the tenant; queries are filtered by it."),
]
AllowMismatch = Annotated[
    bool,
    typer.Option(
        help="Query a collection built with another embedding model anyway (results are "
        "then meaningless; for diagnosis only)."
    ),
]


def build_retriever(
    config: Settings,
    *,
    collection: str | None,
    chroma_url: str | None,
    http_url: str | None,
    where_key: str | None = None,
    allow_model_mismatch: bool = False,
    defer_model_check: bool = False,
) -> Retriever:
    """The retriever the options name: a Chroma collection (server or embedded) or HTTP.

    Checks cost in the order they are made: the options, then reaching the endpoint (an
    HTTP probe query, the Chroma server or store), then the collection, and only then the
    embedding model is loaded, to compare it with the one the collection was built with.
    With ``defer_model_check`` a Chroma retriever leaves even that to ``verify_model()``
    (or its first query), for callers that have cheaper checks of their own to make first.
    """
    if http_url and (collection or chroma_url):
        raise ConfigError("give either --http-retriever or --collection/--chroma-url, not both")
    if http_url:
        from evalkit.retrievers.http import HttpRetriever

        endpoint = HttpRetriever(
            http_url,
            timeout=config.http_timeout,
            retries=config.http_retries,
            concurrency=config.http_concurrency,
        )
        # An endpoint that is down or misconfigured fails here, before a run is recorded.
        check_retriever(endpoint)
        return endpoint
    if not collection:
        raise ConfigError("name the retriever: --collection NAME or --http-retriever URL")
    from evalkit.embedding import LazyEmbedder
    from evalkit.retrievers.chroma import ChromaRetriever

    embedder = LazyEmbedder(config.model_path, batch_size=config.embed_batch_size)
    url = chroma_url or config.chroma_url
    if url:
        return ChromaRetriever.server(
            url,
            collection,
            embedder,
            batch_size=config.query_batch_size,
            where_key=where_key,
            allow_model_mismatch=allow_model_mismatch,
            defer_model_check=defer_model_check,
        )
    return ChromaRetriever.embedded(
        config.resolved_chroma_path,
        collection,
        embedder,
        batch_size=config.query_batch_size,
        where_key=where_key,
        allow_model_mismatch=allow_model_mismatch,
        defer_model_check=defer_model_check,
    )
