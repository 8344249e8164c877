"""Retrievers: what evalkit replays queries against, and the Chroma index it builds.

- ``Retriever`` (``base``): the protocol every adapter follows, batched and error-keeping;
- ``ChromaRetriever`` and ``index_corpus`` (``chroma``): a Chroma collection, embedded or
  on a server, queried and indexed with evalkit's own embedding model;
- ``HttpRetriever`` (``http``): any HTTP JSON endpoint.

Chroma itself is imported only when a client is opened, so importing this package is cheap.
"""

from evalkit.retrievers.base import Retriever, SupportsCheck, TextEmbedder, check_retriever
from evalkit.retrievers.chroma import (
    ChromaLocation,
    ChromaRetriever,
    IndexReport,
    ProgressCallback,
    get_collection,
    index_corpus,
    index_fingerprint,
    open_chroma_client,
)
from evalkit.retrievers.http import HttpRetriever

__all__ = [
    "ChromaLocation",
    "ChromaRetriever",
    "HttpRetriever",
    "IndexReport",
    "ProgressCallback",
    "Retriever",
    "SupportsCheck",
    "TextEmbedder",
    "check_retriever",
    "get_collection",
    "index_corpus",
    "index_fingerprint",
    "open_chroma_client",
]
