"""JSON Schemas (draft 2020-12) of what evalkit reads and sends, published with the package.

Each ``<name>.schema.json`` file next to this module is generated from the rules and models
the code itself uses (``python -m evalkit.schemas`` rewrites them) and a test keeps them
identical, so they cannot drift. ``load_schema`` imports nothing else of evalkit. The
schemas: docs/schemas.md.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from evalkit.errors import ConfigError

__all__ = ["SCHEMA_NAMES", "load_schema", "schema_file_name", "schema_text"]

SCHEMA_NAMES: tuple[str, ...] = (
    "goldset-query",
    "goldset-judgment",
    "corpus-document",
    "traffic-log-line",
    "http-retriever-request",
    "http-retriever-response",
    "alert-payload",
)
"""Every published schema, by name."""


def schema_file_name(name: str) -> str:
    """The file that holds the schema ``name``: ``<name>.schema.json``."""
    if name not in SCHEMA_NAMES:
        raise ConfigError(f"no schema {name!r}; the schemas are: {', '.join(SCHEMA_NAMES)}")
    return f"{name}.schema.json"


def schema_text(name: str) -> str:
    """The published schema ``name`` as the JSON text of its file."""
    return resources.files(__name__).joinpath(schema_file_name(name)).read_text("utf-8")


def load_schema(name: str) -> dict[str, Any]:
    """The published schema ``name``, decoded."""
    schema: dict[str, Any] = json.loads(schema_text(name))
    return schema
