"""Retrievers: what evalkit replays queries against, and the Chroma index it builds.

- ``Retriever`` (``base``): the protocol every adapter follows, batched and error-keeping;
  ``SupportsRetrieve``, its ``retrieve`` alone, is all a retriever of one's own needs;
- ``open_chroma_client``, ``get_collection``, ``index_fingerprint`` (``chroma_client``):
  Chroma clients and collections, and the metadata evalkit keeps in them;
- ``ChromaRetriever`` (``chroma``): a Chroma collection, embedded or on a server, queried
  with evalkit's own embedding model;
- ``index_corpus`` (``indexing``): a corpus embedded and written into a collection, and
  ``save_hnsw_graph``, which has an embedded store save its search graph once written;
- ``HttpRetriever`` (``http``): any HTTP JSON endpoint;
- ``RetrieverOptions`` and ``build_retriever`` (``factory``): the retriever a command or job
  names, built by its registered kind;
- ``PluginRetriever`` and ``ENTRY_POINT_GROUP`` (``plugins``): the user's own factory
  (``module:attribute``) or an installed plug-in package, and what it returned, adapted.

Chroma itself is imported only when a client is opened, so importing this package is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalkit.lazy import lazy_attributes

if TYPE_CHECKING:
    from evalkit.embedding import TextEmbedder
    from evalkit.retrievers.base import (
        Retriever,
        SupportsCheck,
        SupportsRetrieve,
        check_retriever,
    )
    from evalkit.retrievers.chroma import ChromaRetriever
    from evalkit.retrievers.chroma_client import (
        ChromaLocation,
        get_collection,
        index_fingerprint,
        open_chroma_client,
    )
    from evalkit.retrievers.factory import (
        RETRIEVER_KINDS,
        RetrieverKind,
        RetrieverOptions,
        build_retriever,
        register_retriever_kind,
    )
    from evalkit.retrievers.http import HttpRetriever
    from evalkit.retrievers.indexing import (
        IndexReport,
        ProgressCallback,
        index_corpus,
        save_hnsw_graph,
    )
    from evalkit.retrievers.plugins import ENTRY_POINT_GROUP, PluginRetriever

__all__ = [
    "ENTRY_POINT_GROUP",
    "RETRIEVER_KINDS",
    "ChromaLocation",
    "ChromaRetriever",
    "HttpRetriever",
    "IndexReport",
    "PluginRetriever",
    "ProgressCallback",
    "Retriever",
    "RetrieverKind",
    "RetrieverOptions",
    "SupportsCheck",
    "SupportsRetrieve",
    "TextEmbedder",
    "build_retriever",
    "check_retriever",
    "get_collection",
    "index_corpus",
    "index_fingerprint",
    "open_chroma_client",
    "register_retriever_kind",
    "save_hnsw_graph",
]

# Importing the package loads none of its modules; each name loads its own on first use.
__getattr__ = lazy_attributes(
    __name__,
    {
        "ChromaLocation": "evalkit.retrievers.chroma_client",
        "ChromaRetriever": "evalkit.retrievers.chroma",
        "ENTRY_POINT_GROUP": "evalkit.retrievers.plugins",
        "HttpRetriever": "evalkit.retrievers.http",
        "IndexReport": "evalkit.retrievers.indexing",
        "PluginRetriever": "evalkit.retrievers.plugins",
        "ProgressCallback": "evalkit.retrievers.indexing",
        "RETRIEVER_KINDS": "evalkit.retrievers.factory",
        "Retriever": "evalkit.retrievers.base",
        "RetrieverKind": "evalkit.retrievers.factory",
        "RetrieverOptions": "evalkit.retrievers.factory",
        "SupportsCheck": "evalkit.retrievers.base",
        "SupportsRetrieve": "evalkit.retrievers.base",
        "TextEmbedder": "evalkit.embedding.query",
        "build_retriever": "evalkit.retrievers.factory",
        "check_retriever": "evalkit.retrievers.base",
        "get_collection": "evalkit.retrievers.chroma_client",
        "index_corpus": "evalkit.retrievers.indexing",
        "index_fingerprint": "evalkit.retrievers.chroma_client",
        "open_chroma_client": "evalkit.retrievers.chroma_client",
        "register_retriever_kind": "evalkit.retrievers.factory",
        "save_hnsw_graph": "evalkit.retrievers.indexing",
    },
)
