"""Build the published schemas from the models and field rules the code uses: the goldset's
field rules for goldset and corpus lines, msgspec for the types of the traffic log line, the
HTTP retriever's messages and the alert payload.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from evalkit.alerts.payload import payload_json_schema
from evalkit.goldset import document_json_schema, judgment_json_schema, query_json_schema
from evalkit.retrievers.http import request_json_schema, response_json_schema
from evalkit.schemas import SCHEMA_NAMES, schema_file_name
from evalkit.traffic import log_line_json_schema

__all__ = ["DRAFT", "build_schema", "render", "write_schemas"]

DRAFT = "https://json-schema.org/draft/2020-12/schema"

_SOURCES: Mapping[str, tuple[Callable[[], dict[str, Any]], str, str]] = {
    "goldset-query": (
        query_json_schema,
        "evalkit goldset query",
        "One line of a goldset's queries.jsonl (docs/goldsets.md). Query ids must also be "
        "unique in the file.",
    ),
    "goldset-judgment": (
        judgment_json_schema,
        "evalkit goldset judgment",
        "One line of a goldset's judgments.jsonl (docs/goldsets.md). The query id must be "
        "one of queries.jsonl, and a (query, document) pair judged once.",
    ),
    "corpus-document": (
        document_json_schema,
        "evalkit corpus document",
        "One line of a JSONL corpus (docs/goldsets.md, Corpus files). Document ids must "
        "also be unique in the corpus.",
    ),
    "traffic-log-line": (
        log_line_json_schema,
        "evalkit traffic log line",
        "One line of a traffic log, as log_query writes it and evalkit traffic ingest "
        "reads it (docs/traffic.md). Fields not listed here are ignored.",
    ),
    "http-retriever-request": (
        request_json_schema,
        "evalkit HTTP retriever request",
        "The JSON body evalkit POSTs to an HTTP retriever endpoint, once per query "
        "(docs/retrievers.md, HTTP endpoint).",
    ),
    "http-retriever-response": (
        response_json_schema,
        "evalkit HTTP retriever response",
        "The JSON body an HTTP retriever endpoint answers with, status 200 "
        "(docs/retrievers.md, HTTP endpoint). Document ids must also be unique; other "
        "fields are ignored.",
    ),
    "alert-payload": (
        payload_json_schema,
        "evalkit alert payload",
        "The JSON body a webhook sink POSTs (format json) and a command sink writes to "
        "stdin for one alert (docs/alerts.md, Payload).",
    ),
}


def build_schema(name: str) -> dict[str, Any]:
    """The schema ``name`` built from its source, with ``$schema``, title and description.

    A schema msgspec generated as a reference into ``$defs`` has its root definition
    lifted to the top; the other definitions stay in ``$defs``.
    """
    schema_file_name(name)
    source, title, description = _SOURCES[name]
    generated = source()
    definitions = dict(generated.get("$defs", {}))
    reference = generated.get("$ref")
    root = definitions.pop(reference.rsplit("/", 1)[-1]) if reference else generated
    body = {key: value for key, value in root.items() if key not in ("title", "description")}
    document: dict[str, Any] = {
        "$schema": DRAFT,
        "title": title,
        "description": description,
        **body,
    }
    if definitions:
        document["$defs"] = definitions
    return document


def render(name: str) -> str:
    """The text of the file of schema ``name``."""
    return json.dumps(build_schema(name), indent=2, ensure_ascii=False) + "\n"


def write_schemas(directory: Path | None = None) -> list[Path]:
    """Write every schema's file into ``directory`` (default: the package's own)."""
    target = directory or Path(__file__).parent
    written = []
    for name in SCHEMA_NAMES:
        path = target / schema_file_name(name)
        path.write_text(render(name), encoding="utf-8")
        written.append(path)
    return written
