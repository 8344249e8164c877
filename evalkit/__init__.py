"""evalkit: watch the retrieval layer of RAG systems.

Replays golden query sets and production traffic against the live retriever, scores the
results exactly as trec_eval does, stores every figure in DuckDB, and tests statistically
whether quality or embeddings have drifted.
"""

# The one place the version is written: pyproject.toml reads it from here.
__version__ = "0.2.0"

__all__ = ["__version__"]
