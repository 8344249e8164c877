"""evalkit: watch the retrieval layer of RAG systems.

Replays golden query sets and production traffic against the live retriever, scores the
results exactly as trec_eval does, stores every figure in DuckDB, and tests statistically
whether quality or embeddings have drifted.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("evalkit")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
