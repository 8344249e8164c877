"""Golden sets: load, validate, import and export them, and stream their corpora.

A goldset is a named, versioned set of queries with graded relevance judgments. evalkit's
own format is a folder of JSON Lines files (``jsonl``); BEIR folders (``beir``) and TREC
qrels + topics (``trec``) are imported. ``docs/goldsets.md`` documents the formats, every
validation rule and how the version (a content hash) is computed.
"""

from __future__ import annotations

from evalkit.goldset._schema import document_json_schema, judgment_json_schema, query_json_schema
from evalkit.goldset.beir import load_beir_goldset
from evalkit.goldset.corpus import (
    CORPUS_READERS,
    content_hash,
    count_documents,
    detect_corpus_format,
    iter_corpus,
    no_documents,
    validate_corpus,
)
from evalkit.goldset.formats import (
    GOLDSET_FORMATS,
    Exported,
    GoldsetFormat,
    LoadOptions,
    export_goldset,
    load_goldset,
    validate_goldset,
)
from evalkit.goldset.jsonl import load_jsonl_goldset, write_jsonl_goldset
from evalkit.goldset.model import Goldset, goldset_version
from evalkit.goldset.trec import load_trec_goldset

__all__ = [
    "CORPUS_READERS",
    "GOLDSET_FORMATS",
    "Exported",
    "Goldset",
    "GoldsetFormat",
    "LoadOptions",
    "content_hash",
    "count_documents",
    "detect_corpus_format",
    "document_json_schema",
    "export_goldset",
    "goldset_version",
    "iter_corpus",
    "judgment_json_schema",
    "load_beir_goldset",
    "load_goldset",
    "load_jsonl_goldset",
    "load_trec_goldset",
    "no_documents",
    "query_json_schema",
    "validate_corpus",
    "validate_goldset",
    "write_jsonl_goldset",
]
