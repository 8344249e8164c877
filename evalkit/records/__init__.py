"""Immutable records passed between stages.

Dicts and DataFrames are accepted only at the edges (files, HTTP, SQL) and converted once
into these records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "AlertSeverity",
    "Document",
    "Judgment",
    "Query",
    "QueryResult",
    "ScoredDoc",
    "Span",
    "dedup_text",
]


class AlertSeverity(StrEnum):
    """How urgent an alert is, in increasing order. (An audit finding's severity, which also
    has ``info``, is ``evalkit.records.audit.Severity``.)"""

    warning = "warning"
    critical = "critical"

    @property
    def rank(self) -> int:
        """0 for warning, 1 for critical."""
        return 0 if self is AlertSeverity.warning else 1


@dataclass(frozen=True, slots=True)
class Query:
    """One query of a golden set or of production traffic."""

    id: str
    text: str
    tenant: str | None = None
    tags: tuple[str, ...] = ()
    reference_answer: str | None = None
    reference_context_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Span:
    """Where in a source document a judged passage stands, so that the judgment outlives the
    chunking: ``source_id`` names the source (the document before it was split into chunks),
    ``start``/``end`` are character offsets into its text (``end`` exclusive) and ``text`` is
    the quoted passage. A span names its source and at least the offsets or the text."""

    source_id: str
    start: int | None = None
    end: int | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Judgment:
    """A graded judgment: ``relevance`` >= 0; relevant when >= the threshold (default 1).

    ``span``, when set, anchors the judgment to the passage of its source that it grades, as
    well as to ``doc_id`` (the chunk the retriever returns); ``evalkit goldset remap`` maps
    span-anchored judgments onto the chunks of a re-chunked corpus.
    """

    query_id: str
    doc_id: str
    relevance: int
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class Document:
    """A corpus document to index.

    A chunk of a longer source may say which: ``source_id`` and the character offsets
    ``start``/``end`` (``end`` exclusive) of ``text`` in the source's text.
    """

    id: str
    text: str
    title: str = ""
    metadata: dict[str, str | int | float | bool] = field(default_factory=dict)
    source_id: str | None = None
    start: int | None = None
    end: int | None = None

    @property
    def content(self) -> str:
        """The text that is embedded: title and body, as BEIR's dense baselines do."""
        return f"{self.title}\n{self.text}" if self.title else self.text


@dataclass(frozen=True, slots=True)
class ScoredDoc:
    """One retrieved document: its id, the retriever's score (higher is better) and 1-based rank."""

    doc_id: str
    score: float
    rank: int


@dataclass(frozen=True, slots=True)
class QueryResult:
    """What the retriever returned for one query. With ``error`` set, ``docs`` is empty and the
    run is ``partial``. A retriever that also generates sets ``answer`` and the ``contexts`` /
    ``context_ids`` it was given, in rank order (scored by ``evalkit.answers``);
    ``n_duplicates`` counts repeated documents, of which replay keeps the best-ranked."""

    query_id: str
    docs: tuple[ScoredDoc, ...]
    latency_ms: float
    error: str | None = None
    answer: str | None = None
    contexts: tuple[str, ...] = ()
    context_ids: tuple[str, ...] = ()
    n_duplicates: int = 0

    @property
    def ok(self) -> bool:
        """True when the retriever answered this query."""
        return self.error is None


def dedup_text(text: str) -> str:
    """The form of a query's text under which identical queries are recognised: lower case,
    whitespace collapsed to single spaces, trimmed (a traffic window's distinct queries,
    a promoted query a goldset asks already)."""
    return " ".join(text.lower().split())
