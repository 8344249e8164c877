"""Retrievers: what evalkit replays queries against, and the Chroma index it builds.

``Retriever`` (``base``) is the protocol every adapter follows, batched and error-keeping;
``SupportsRetrieve`` is all a retriever of one's own needs. ``build_retriever`` (``factory``)
builds the retriever a command or job names by its registered kind. Chroma itself is
imported only when a client is opened, so importing this package is cheap. Adapters and
plug-ins: docs/retrievers.md.
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
