"""Retrievers: what evalkit replays queries against, and the Chroma index it builds.

- ``Retriever`` (``base``): the protocol every adapter follows, batched and error-keeping;
- ``open_chroma_client``, ``get_collection``, ``index_fingerprint`` (``chroma_client``):
  Chroma clients and collections, and the metadata evalkit keeps in them;
- ``ChromaRetriever`` (``chroma``): a Chroma collection, embedded or on a server, queried
  with evalkit's own embedding model;
- ``index_corpus`` (``indexing``): a corpus embedded and written into a collection;
- ``HttpRetriever`` (``http``): any HTTP JSON endpoint;
- ``RetrieverOptions`` and ``build_retriever`` (``factory``): the retriever a command or job
  names, built by its registered kind;
- ``PluginRetriever`` and ``ENTRY_POINT_GROUP`` (``plugins``): the user's own factory
  (``module:attribute``) or an installed plug-in package, and what it returned, adapted.

Chroma itself is imported only when a client is opened, so importing this package is cheap.
"""

from evalkit.embedding import TextEmbedder
from evalkit.retrievers.base import Retriever, SupportsCheck, check_retriever
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
from evalkit.retrievers.indexing import IndexReport, ProgressCallback, index_corpus
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
    "TextEmbedder",
    "build_retriever",
    "check_retriever",
    "get_collection",
    "index_corpus",
    "index_fingerprint",
    "open_chroma_client",
    "register_retriever_kind",
]
