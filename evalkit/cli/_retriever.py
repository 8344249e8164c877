"""Command-line options shared by every command that names a live retriever.

They become a ``RetrieverOptions``; ``evalkit.retrievers.factory`` builds the retriever.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from evalkit.retrievers.factory import RetrieverOptions

__all__ = [
    "AllowMismatch",
    "ChromaUrl",
    "Collection",
    "Engine",
    "HttpUrl",
    "RayActors",
    "RayAddress",
    "RetrieverSpec",
    "WhereKey",
    "chroma_collection_name",
    "retriever_options",
]


def chroma_collection_name(value: str | None) -> str | None:
    """Option callback of the commands that only read Chroma: a collection name Chroma
    would refuse is a usage error (exit 2) before the command starts any work."""
    from evalkit.errors import ConfigError
    from evalkit.retrievers.chroma_client import check_collection_name

    if value is None:
        return None
    try:
        return check_collection_name(value)
    except ConfigError as error:
        raise typer.BadParameter(str(error)) from None


def retriever_options(
    *,
    collection: str | None,
    chroma_url: str | None,
    http_retriever: str | None,
    retriever_spec: str | None,
    where_key: str | None,
    allow_model_mismatch: bool,
    defer_model_check: bool = False,
) -> RetrieverOptions:
    """The ``RetrieverOptions`` that a command's retriever options name (``--collection``,
    ``--chroma-url``, ``--http-retriever``, ``--retriever``, ``--where-key``,
    ``--allow-model-mismatch``); a collection name Chroma refuses is a ConfigError."""
    from evalkit.retrievers.factory import RetrieverOptions

    return RetrieverOptions(
        collection=collection,
        chroma_url=chroma_url,
        http_url=http_retriever,
        retriever=retriever_spec,
        where_key=where_key,
        allow_model_mismatch=allow_model_mismatch,
        defer_model_check=defer_model_check,
    )


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
RetrieverSpec = Annotated[
    str | None,
    typer.Option(
        "--retriever",
        help="Retriever kind (chroma, http, pgvector, qdrant, or a plug-in's) or "
        "module:factory of your own function returning a retriever (default: the "
        "[retriever] table of evalkit.toml; see docs/retrievers.md).",
    ),
]
WhereKey = Annotated[
    str | None,
    typer.Option(
        help="Metadata key (pgvector: column) holding each document's tenant; a query with a "
        "tenant sees only its tenant's documents (Chroma, pgvector, Qdrant, a LangChain "
        "VectorStoreRetriever, a LlamaIndex VectorIndexRetriever; refused by retrievers "
        "that cannot filter)."
    ),
]
AllowMismatch = Annotated[
    bool,
    typer.Option(
        help="Query a collection built with another embedding model anyway (results are "
        "then meaningless; for diagnosis only)."
    ),
]
Engine = Annotated[
    str,
    typer.Option(
        "--engine",
        help="Where the replay runs: local (this process) or ray (a pool of Ray actors; "
        "needs the [ray] extra; see docs/scale.md).",
    ),
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="Ray cluster to run on with --engine ray (default: RAY_ADDRESS, else a local "
        "Ray instance started for the run).",
    ),
]
RayActors = Annotated[
    int,
    typer.Option(
        "--ray-actors",
        min=1,
        help="Actors replaying queries with --engine ray, each with one retriever client.",
    ),
]
