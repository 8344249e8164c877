"""Settings of the live retriever and the query embedder: ``[retriever]`` and ``[embedder]``.

``[retriever]`` names the retriever a command replays when its options name none, with a
typed sub-table per store that needs more than a name; ``kind`` is a registered kind, or is
left out when ``factory`` names the user's own ``module:attribute``. ``[embedder]`` says how
queries are embedded for retrievers that take vectors. Secrets are never settings:
``api_key_env`` names the variable holding a key, and a DSN's password comes from libpq's
``PGPASSWORD`` / ``.pgpass``. Every table, with an example: docs/retrievers.md.
"""

from __future__ import annotations

import math
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from evalkit.config.types import SettingsTable, WebUrl

__all__ = [
    "ChromaSettings",
    "DistanceMetric",
    "EmbedderKind",
    "EmbedderSettings",
    "FactoryOptions",
    "PgvectorSettings",
    "QdrantSettings",
    "RetrieverSettings",
    "SearchMode",
    "finite_options",
]


def finite_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` unchanged; ValueError naming the first option (``name``, ``name[2]``,
    ``name.key``) whose value is or holds a float that is not finite.

    TOML reads ``nan`` and ``inf`` as floats: such a value would reach the factory and the
    retriever's id (which is JSON, where NaN has no spelling) as a number no two runs agree
    on, since NaN equals nothing."""

    def check(value: Any, where: str) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(
                f"option {where} is {value}: an option must be a finite number "
                f'(write "{value}" in quotes to pass the word)'
            )
        if isinstance(value, dict):
            for key, item in value.items():
                check(item, f"{where}.{key}")
        elif isinstance(value, list | tuple):
            for position, item in enumerate(value):
                check(item, f"{where}[{position}]")

    for name, value in options.items():
        check(value, name)
    return options


FactoryOptions = Annotated[dict[str, Any], AfterValidator(finite_options)]
"""Keyword arguments of a retriever factory, as a settings or sweep file writes them."""


class DistanceMetric(StrEnum):
    """How a vector store compares a query with a document vector."""

    cosine = "cosine"
    inner_product = "inner_product"
    l2 = "l2"


class SearchMode(StrEnum):
    """Whether a vector search may use the table's approximate index."""

    auto = "auto"
    """Whatever the store's planner picks: the HNSW or IVFFlat index when there is one."""
    exact = "exact"
    """An exact (sequential) scan, the ground truth an ANN index is measured against."""


class ChromaSettings(SettingsTable):
    """Search settings of a Chroma collection (its name and place are options or settings
    of their own: ``--collection``, ``chroma_path``, ``chroma_url``)."""

    ef_search: int | None = Field(
        default=None,
        ge=1,
        description="HNSW ef_search while evalkit queries an embedded collection (Chroma has "
        "no per-query setting: the collection's configuration is set for the run and put "
        "back after it; a Chroma server keeps its searcher's value until it restarts, so it "
        "is refused there). Default: the collection's own.",
    )


class PgvectorSettings(SettingsTable):
    """The user's own pgvector table: where it is and which columns hold what."""

    dsn: str | None = Field(
        default=None,
        description="libpq connection string or URL of the PostgreSQL server (a password "
        "in it is never shown; prefer PGPASSWORD or ~/.pgpass).",
    )
    table: str | None = Field(
        default=None,
        description=(
            "Table (or schema.table) holding the documents' vectors; a name holding a dot or "
            'a quote is double-quoted as in SQL ("my schema"."my.table").'
        ),
    )
    id_column: str = Field(default="id", description="Column holding the document id.")
    embedding_column: str = Field(
        default="embedding", description="pgvector column holding the document embedding."
    )
    text_column: str | None = Field(
        default=None,
        description="Column holding the document text (optional); sampled rows are "
        "re-embedded to check the model.",
    )
    metric: DistanceMetric = Field(
        default=DistanceMetric.cosine,
        description="Distance the index was built for: cosine, inner_product or l2.",
    )
    tenant_column: str | None = Field(
        default=None,
        description="Column holding the tenant; a query with a tenant only sees its rows.",
    )
    search: SearchMode = Field(
        default=SearchMode.auto,
        description="auto (the table's HNSW/IVFFlat index when there is one) or exact.",
    )
    hnsw_ef_search: int | None = Field(
        default=None, ge=1, description="hnsw.ef_search for the session (pgvector default 40)."
    )
    ivfflat_probes: int | None = Field(
        default=None, ge=1, description="ivfflat.probes for the session (pgvector default 1)."
    )
    connect_timeout: float = Field(
        default=10.0, gt=0, description="Seconds before connecting to the server fails."
    )
    statement_timeout: float = Field(
        default=30.0, gt=0, description="Seconds before one search statement is cancelled."
    )


class QdrantSettings(SettingsTable):
    """A Qdrant collection: a server URL, or a local on-disk path (qdrant-client local mode)."""

    url: str | None = Field(
        default=None, description="URL of the Qdrant server, e.g. http://127.0.0.1:6333."
    )
    path: Path | None = Field(
        default=None, description="Directory of a local (embedded) Qdrant store, instead of url."
    )
    collection: str | None = Field(default=None, description="Collection to query.")
    api_key_env: str | None = Field(
        default="QDRANT_API_KEY",
        description="Name of the environment variable holding the API key (never the key).",
    )
    id_payload_key: str | None = Field(
        default=None,
        description="Payload key holding the document id (default: the point id).",
    )
    tenant_key: str | None = Field(
        default=None,
        description="Payload key holding the tenant; a query with a tenant only sees its points.",
    )
    vector_name: str | None = Field(
        default=None, description="Named vector to search (collections with several vectors)."
    )
    text_payload_key: str | None = Field(
        default=None,
        description="Payload key holding the document text (optional); sampled points are "
        "re-embedded to check the model.",
    )
    hnsw_ef: int | None = Field(default=None, ge=1, description="HNSW ef at search time.")
    exact: bool = Field(default=False, description="Search exactly, bypassing the HNSW index.")
    timeout: float = Field(default=10.0, gt=0, description="Seconds before a request fails.")

    def api_key(self) -> str | None:
        """The API key from the environment variable ``api_key_env``, or None."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class RetrieverSettings(SettingsTable):
    """The ``[retriever]`` table: which retriever to replay, and how."""

    kind: str | None = Field(
        default=None,
        description="Retriever kind: chroma, http, pgvector, qdrant, bm25, or one a plug-in "
        "package registers (entry-point group evalkit.retrievers).",
    )
    factory: str | None = Field(
        default=None,
        description="module:attribute of a function returning a Retriever, or a LangChain "
        "or LlamaIndex retriever; called with `options` as keyword arguments.",
    )
    options: FactoryOptions = Field(
        default_factory=dict,
        description="Keyword arguments passed to the factory (or the plug-in's factory), or "
        "the bm25 kind's options (index = the directory `evalkit index --kind bm25` wrote).",
    )
    id_key: str | None = Field(
        default=None,
        description="Metadata key holding the document id of LangChain documents or "
        "LlamaIndex nodes (default: Document.id / the node id).",
    )
    concurrency: int = Field(
        default=8,
        ge=1,
        description="Queries in flight at once for retrievers called through their own "
        "batch / async API (LangChain, LlamaIndex, plug-ins).",
    )
    chroma: ChromaSettings = Field(
        default_factory=ChromaSettings,
        description="The [retriever.chroma] table: search settings of a Chroma collection.",
    )
    pgvector: PgvectorSettings = Field(
        default_factory=PgvectorSettings,
        description="The [retriever.pgvector] table: the user's pgvector table.",
    )
    qdrant: QdrantSettings = Field(
        default_factory=QdrantSettings,
        description="The [retriever.qdrant] table: the user's Qdrant collection.",
    )


class EmbedderKind(StrEnum):
    """Who embeds the queries."""

    sentence_transformers = "sentence-transformers"
    """A local sentence-transformers model: the bundled MiniLM or ``model_path``."""
    openai = "openai"
    """An OpenAI-compatible ``/embeddings`` endpoint (``url`` and ``model``)."""
    none = "none"
    """Nobody in evalkit: the retriever embeds queries itself (LangChain, LlamaIndex, HTTP)."""


class EmbedBackend(StrEnum):
    """What runs a local sentence-transformers model."""

    auto = "auto"
    """ONNX Runtime when the model is one evalkit can export exactly (BERT, mean pooling: the
    bundled MiniLM), else torch."""
    onnx = "onnx"
    """ONNX Runtime, from an export of the local weights made once and cached; an error for a
    model it cannot run."""
    torch = "torch"
    """sentence-transformers on torch."""


class EmbedderSettings(SettingsTable):
    """The ``[embedder]`` table: how queries are embedded for vector-store retrievers."""

    kind: EmbedderKind = Field(
        default=EmbedderKind.sentence_transformers,
        description="sentence-transformers (the bundled MiniLM, or model_path), openai "
        "(an OpenAI-compatible /embeddings endpoint) or none.",
    )
    url: WebUrl = Field(
        default=None,
        description="Base URL of the OpenAI-compatible API, e.g. http://127.0.0.1:8080/v1.",
    )
    model: str | None = Field(default=None, description="Model name the endpoint serves.")
    api_key_env: str | None = Field(
        default="OPENAI_API_KEY",
        description="Name of the environment variable holding the endpoint's API key.",
    )
    dimensions: int | None = Field(
        default=None, ge=1, description="Vector length to ask the endpoint for (if it can cut)."
    )
    timeout: float = Field(default=30.0, gt=0, description="Seconds before a request fails.")
    max_retries: int = Field(
        default=3, ge=0, description="Retries of a failed embedding request, with back-off."
    )

    def api_key(self) -> str | None:
        """The API key from the environment variable ``api_key_env``, or None."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None
