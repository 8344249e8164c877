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
    from evalkit.embedding.query import TextEmbedder as TextEmbedder
    from evalkit.retrievers.base import Retriever as Retriever
    from evalkit.retrievers.base import SupportsCheck as SupportsCheck
    from evalkit.retrievers.base import SupportsRetrieve as SupportsRetrieve
    from evalkit.retrievers.base import check_retriever as check_retriever
    from evalkit.retrievers.chroma import ChromaRetriever as ChromaRetriever
    from evalkit.retrievers.chroma_client import ChromaLocation as ChromaLocation
    from evalkit.retrievers.chroma_client import get_collection as get_collection
    from evalkit.retrievers.chroma_client import index_fingerprint as index_fingerprint
    from evalkit.retrievers.chroma_client import open_chroma_client as open_chroma_client
    from evalkit.retrievers.factory import RETRIEVER_KINDS as RETRIEVER_KINDS
    from evalkit.retrievers.factory import RetrieverKind as RetrieverKind
    from evalkit.retrievers.factory import RetrieverOptions as RetrieverOptions
    from evalkit.retrievers.factory import build_retriever as build_retriever
    from evalkit.retrievers.factory import register_retriever_kind as register_retriever_kind
    from evalkit.retrievers.http import HttpRetriever as HttpRetriever
    from evalkit.retrievers.indexing import IndexReport as IndexReport
    from evalkit.retrievers.indexing import ProgressCallback as ProgressCallback
    from evalkit.retrievers.indexing import index_corpus as index_corpus
    from evalkit.retrievers.indexing import save_hnsw_graph as save_hnsw_graph
    from evalkit.retrievers.plugins import ENTRY_POINT_GROUP as ENTRY_POINT_GROUP
    from evalkit.retrievers.plugins import PluginRetriever as PluginRetriever
else:
    # Importing the package loads none of its modules; each name loads its own on first use.
    __getattr__ = lazy_attributes(__name__)
