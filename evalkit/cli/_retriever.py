"""The options that name a live retriever, one group (``RETRIEVER``) parsed into a
``RetrieverOptions`` that ``evalkit.retrievers.factory`` builds the retriever from."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any

import typer

from evalkit.cli._groups import OptionGroup
from evalkit.retrievers.kinds import built_in_kinds

if TYPE_CHECKING:
    from evalkit.retrievers.factory import RetrieverOptions

__all__ = [
    "RETRIEVER",
    "ChromaUrl",
    "Engine",
    "RayActors",
    "RayAddress",
    "chroma_collection_name",
    "parse_options",
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


def parse_options(values: list[str] | None) -> dict[str, Any] | None:
    """``--option KEY=VALUE`` values as keyword arguments (None when none is given): an
    integer, a decimal number, ``true`` or ``false`` is passed as one, anything else as
    text. ConfigError for a value without ``=`` or a key given twice."""
    from evalkit.errors import ConfigError

    if not values:
        return None
    parsed: dict[str, Any] = {}
    for value in values:
        key, equals, text = value.partition("=")
        key = key.strip()
        if not equals or not key:
            raise ConfigError(f"--option {value!r} is not KEY=VALUE (e.g. --option index=DIR)")
        if key in parsed:
            raise ConfigError(f"--option {key} is given twice")
        parsed[key] = _option_value(text)
    return parsed


def _option_value(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            number = kind(text)
        except ValueError:
            continue
        # "nan" and "inf" read as floats; they are words here (no store keeps them as numbers).
        return number if math.isfinite(number) else text
    return text


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
        help=f"Retriever kind ({', '.join(built_in_kinds())}, or a plug-in's) or "
        "module:factory of your own function returning a retriever (default: the "
        "[retriever] table of evalkit.toml; see docs/retrievers.md).",
    ),
]
RetrieverOption = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        metavar="KEY=VALUE",
        help="An option of the retriever, repeatable: bm25's index=DIR, or a keyword argument "
        "of a module:factory or plug-in (replacing the [retriever] options); a number or "
        "true/false is passed as one, anything else as text.",
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


def _retriever(
    *,
    collection: Collection = None,
    chroma_url: ChromaUrl = None,
    http_retriever: HttpUrl = None,
    retriever_spec: RetrieverSpec = None,
    option: RetrieverOption = None,
    where_key: WhereKey = None,
    allow_model_mismatch: AllowMismatch = False,
    defer_model_check: bool = False,
) -> RetrieverOptions:
    """The ``RetrieverOptions`` the retriever options name; a collection name Chroma
    refuses, or an ``--option`` that is not KEY=VALUE, is a ConfigError."""
    from evalkit.retrievers.factory import RetrieverOptions

    return RetrieverOptions(
        collection=collection,
        chroma_url=chroma_url,
        http_url=http_retriever,
        retriever=retriever_spec,
        where_key=where_key,
        allow_model_mismatch=allow_model_mismatch,
        defer_model_check=defer_model_check,
        factory_options=parse_options(option),
    )


RETRIEVER = OptionGroup(_retriever)
"""The options that name a live retriever, parsed into a ``RetrieverOptions``."""

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
