"""Moving span-anchored judgments onto the chunks of a re-chunked corpus.

A judgment anchored to a span of its source (``Judgment.span``) outlives the chunking: when
the corpus is split again, ``remap_judgments`` finds the span in the new chunks' source and
gives the judgment's grade to every new chunk it overlaps enough. The rule
(docs/goldsets.md, Re-chunking):

- a chunk is a ``Document`` with ``source_id`` and ``start``/``end`` offsets into its
  source's text; a document without ``source_id`` is its own source, whole;
- the source's text is rebuilt from its new chunks, each placed at its offsets;
- a span with offsets and quoted text is kept where it is when the text there still reads
  the same (whitespace aside); otherwise the text is searched for in the source: one
  occurrence moves the span there (``moved``), none or several make it ``stale``;
- a span with only text is searched for the same way; a span with only offsets is taken as
  it is (nothing tells whether its text changed);
- a new chunk of the same source receives the judgment when
  ``overlap characters / min(len(span), len(chunk)) >= min_overlap``, and a chunk that
  several spans reach keeps the HIGHEST of their grades (grade 0 included: a chunk judged
  not relevant stays judged);
- a judgment without a span goes through the old corpus: the old chunk's source and offsets
  (and its text, to notice a change) make its span, and an old document without a source
  is its own source, whole; a chunk with a source but no offsets, or a document the old
  corpus lacks, leaves the judgment ``unmapped``;
- a source that no new chunk comes from makes the judgment ``unmapped`` (``source gone``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from evalkit.errors import ConfigError
from evalkit.records import Document, Judgment, Span
from evalkit.records.requests import DEFAULT_MIN_OVERLAP

__all__ = [
    "ChunkIndex",
    "LocatedSpan",
    "RemapResult",
    "RemapStatus",
    "SpanMapping",
    "locate_span",
    "remap_judgments",
    "same_text",
    "source_texts",
]

MOVED = "moved"
THROUGH_OLD_CORPUS = "through the old corpus"
SOURCE_GONE = "source gone"


class RemapStatus(StrEnum):
    """What became of one old judgment (or one of its new judgments)."""

    mapped = "mapped"
    stale = "stale"
    unmapped = "unmapped"


@dataclass(frozen=True, slots=True)
class SpanMapping:
    """One row of a remap: the old judgment ``(query_id, old_doc_id)`` and a new chunk it
    became (``mapped``), or why it became none (``stale``/``unmapped``, ``new_doc_id`` None).

    ``overlap`` is the share of the rule for a mapped chunk; ``reason`` says why a judgment
    was not mapped, or how a mapped one was found (``moved``, ``through the old corpus``).
    """

    query_id: str
    old_doc_id: str
    status: RemapStatus
    new_doc_id: str | None = None
    overlap: float | None = None
    reason: str | None = None
    grade: int | None = None


@dataclass(frozen=True, slots=True)
class RemapResult:
    """The new judgments and every mapping row, old judgment by old judgment."""

    judgments: tuple[Judgment, ...]
    mappings: tuple[SpanMapping, ...]
    min_overlap: float

    def outcome_of(self) -> dict[tuple[str, str], RemapStatus]:
        """Each old judgment's status: ``mapped`` when it reached at least one chunk."""
        outcome: dict[tuple[str, str], RemapStatus] = {}
        for row in self.mappings:
            key = (row.query_id, row.old_doc_id)
            if row.status is RemapStatus.mapped or key not in outcome:
                outcome[key] = row.status
        return outcome

    @property
    def counts(self) -> dict[str, int]:
        """Old judgments by status (every status present, 0 when none)."""
        counts = {status.value: 0 for status in RemapStatus}
        for status in self.outcome_of().values():
            counts[status.value] += 1
        return counts

    @property
    def lost(self) -> tuple[SpanMapping, ...]:
        """The rows of old judgments that reached no chunk (stale or unmapped)."""
        return tuple(row for row in self.mappings if row.status is not RemapStatus.mapped)


@dataclass(frozen=True, slots=True)
class LocatedSpan:
    """Where a span stands in the current source text, or why it cannot be placed.

    ``start``/``end`` are set when it was placed (``moved`` when the quoted text was found
    elsewhere than its offsets); otherwise ``status`` and ``reason`` say why not.
    """

    start: int | None = None
    end: int | None = None
    moved: bool = False
    status: RemapStatus = RemapStatus.mapped
    reason: str | None = None

    @property
    def placed(self) -> bool:
        """True when the span has offsets in the current source."""
        return self.start is not None and self.end is not None


def same_text(first: str, second: str) -> bool:
    """True when two passages read the same, runs of whitespace aside."""
    return first.split() == second.split()


def _occurrences(source: str, text: str) -> list[tuple[int, int]]:
    words = text.split()
    if not words:
        return []
    pattern = re.compile(r"\s+".join(re.escape(word) for word in words))
    return [(match.start(), match.end()) for match in pattern.finditer(source)]


def locate_span(span: Span, source: str) -> LocatedSpan:
    """Place ``span`` in ``source`` (the current text of its source) by the rule above."""
    has_offsets = span.start is not None and span.end is not None
    if has_offsets and span.text is None:
        if span.end is not None and span.end > len(source):
            return LocatedSpan(
                status=RemapStatus.stale,
                reason=f"offsets past the end of the source ({len(source)} characters)",
            )
        return LocatedSpan(span.start, span.end)
    if span.text is None:
        return LocatedSpan(status=RemapStatus.unmapped, reason="span has neither offsets nor text")
    if has_offsets and same_text(source[span.start : span.end], span.text):
        return LocatedSpan(span.start, span.end)
    found = _occurrences(source, span.text)
    if len(found) == 1:
        start, end = found[0]
        return LocatedSpan(start, end, moved=has_offsets)
    if not found:
        changed = "text at its offsets changed" if has_offsets else "text not in the source"
        return LocatedSpan(status=RemapStatus.stale, reason=f"{changed}; not found elsewhere")
    return LocatedSpan(
        status=RemapStatus.stale,
        reason=f"text no longer at its offsets and found {len(found)} times in the source",
    )


def _chunk_bounds(document: Document) -> tuple[str, int, int] | None:
    """(source, start, end) of a chunk; a document with no source is its own, whole."""
    if document.source_id is None:
        return document.id, 0, len(document.text)
    if document.start is None or document.end is None:
        return None
    return document.source_id, document.start, document.end


def source_texts(
    documents: Iterable[Document], wanted: Iterable[str] | None = None
) -> dict[str, str]:
    """The text of each source rebuilt from its chunks (only the ``wanted`` sources when
    given): each chunk's text is placed at its ``start``; characters no chunk covers are
    spaces. A document without ``source_id`` is the whole text of the source of its id;
    chunks with a source but no offsets cannot be placed and are left out."""
    keep = None if wanted is None else set(wanted)
    pieces: dict[str, list[tuple[int, int, str]]] = {}
    for document in documents:
        bounds = _chunk_bounds(document)
        if bounds is None or (keep is not None and bounds[0] not in keep):
            continue
        source, start, end = bounds
        pieces.setdefault(source, []).append((start, end, document.text))
    return {source: _rebuild(parts) for source, parts in pieces.items()}


def _rebuild(parts: list[tuple[int, int, str]]) -> str:
    length = max(end for _, end, _ in parts)
    characters = [" "] * length
    for start, end, text in sorted(parts):
        placed = text[: end - start]
        characters[start : start + len(placed)] = placed
    return "".join(characters)


@dataclass(frozen=True, slots=True)
class ChunkIndex:
    """A corpus's chunks by source: their offsets and the sources' rebuilt texts."""

    chunks: Mapping[str, tuple[tuple[int, int, str], ...]]
    texts: Mapping[str, str]
    spans_by_id: Mapping[str, Span] = field(default_factory=dict)
    unplaced: frozenset[str] = frozenset()

    @classmethod
    def build(cls, documents: Iterable[Document], *, keep_spans: bool = False) -> ChunkIndex:
        """Index ``documents``; ``keep_spans`` also keeps each chunk's own span (with its
        text) by id, for the old corpus, whose chunk ids the judgments name. Chunks with a
        source but no offsets are listed in ``unplaced``."""
        grouped: dict[str, list[tuple[int, int, str]]] = {}
        texts: dict[str, list[tuple[int, int, str]]] = {}
        spans: dict[str, Span] = {}
        unplaced: set[str] = set()
        for document in documents:
            bounds = _chunk_bounds(document)
            if bounds is None:
                unplaced.add(document.id)
                continue
            source, start, end = bounds
            grouped.setdefault(source, []).append((start, end, document.id))
            texts.setdefault(source, []).append((start, end, document.text))
            if keep_spans:
                spans[document.id] = Span(source, start, end, document.text)
        return cls(
            chunks={source: tuple(sorted(rows)) for source, rows in grouped.items()},
            texts={source: _rebuild(parts) for source, parts in texts.items()},
            spans_by_id=spans,
            unplaced=frozenset(unplaced),
        )

    def overlapping(
        self, source: str, start: int, end: int, min_overlap: float
    ) -> list[tuple[str, float]]:
        """Chunks of ``source`` that ``[start, end)`` overlaps by at least ``min_overlap`` of
        the shorter of the two, with that share, in source order."""
        found = []
        for chunk_start, chunk_end, chunk_id in self.chunks.get(source, ()):
            if chunk_start >= end:
                break
            shared = min(end, chunk_end) - max(start, chunk_start)
            shorter = min(end - start, chunk_end - chunk_start)
            # A share of exactly min_overlap counts, whatever the float rounding of the product.
            if shared > 0 and shorter > 0 and shared >= min_overlap * shorter - 1e-9:
                found.append((chunk_id, shared / shorter))
        return found


def remap_judgments(
    judgments: Sequence[Judgment],
    new_corpus: Iterable[Document],
    *,
    old_corpus: Iterable[Document] | None = None,
    min_overlap: float = DEFAULT_MIN_OVERLAP,
) -> RemapResult:
    """Map every judgment onto the chunks of ``new_corpus`` (the module's rule).

    ``old_corpus`` (the chunks the judgments' doc ids name) lets judgments without a span go
    through their old chunk's offsets. Returns the new judgments (one per query and chunk,
    the highest grade, each carrying the span it came from placed in the new source) and a
    mapping row per new judgment made of each old one, or one row saying why none was.
    """
    if not 0.0 < min_overlap <= 1.0:
        raise ConfigError(f"min_overlap must be in (0, 1], got {min_overlap}")
    new_index = ChunkIndex.build(new_corpus)
    old_index = ChunkIndex.build(old_corpus, keep_spans=True) if old_corpus is not None else None
    rows: list[SpanMapping] = []
    best: dict[tuple[str, str], tuple[int, Span]] = {}
    order: list[tuple[str, str]] = []
    for judgment in judgments:
        span, how = _span_of(judgment, old_index)
        if span is None:
            rows.append(_lost(judgment, RemapStatus.unmapped, how))
            continue
        source = new_index.texts.get(span.source_id)
        if source is None:
            rows.append(_lost(judgment, RemapStatus.unmapped, SOURCE_GONE))
            continue
        located = locate_span(span, source)
        if located.start is None or located.end is None:
            rows.append(_lost(judgment, located.status, located.reason))
            continue
        reached = new_index.overlapping(span.source_id, located.start, located.end, min_overlap)
        if not reached:
            rows.append(
                _lost(
                    judgment,
                    RemapStatus.unmapped,
                    f"no chunk overlaps the span by at least {min_overlap:g} of the shorter",
                )
            )
            continue
        placed = Span(span.source_id, located.start, located.end, span.text)
        reason = MOVED if located.moved else how
        for chunk_id, share in reached:
            rows.append(
                SpanMapping(
                    judgment.query_id,
                    judgment.doc_id,
                    RemapStatus.mapped,
                    new_doc_id=chunk_id,
                    overlap=share,
                    reason=reason,
                    grade=judgment.relevance,
                )
            )
            key = (judgment.query_id, chunk_id)
            if key not in best:
                order.append(key)
                best[key] = (judgment.relevance, placed)
            elif judgment.relevance > best[key][0]:
                best[key] = (judgment.relevance, placed)
    new_judgments = tuple(
        Judgment(query_id, chunk_id, best[(query_id, chunk_id)][0], best[(query_id, chunk_id)][1])
        for query_id, chunk_id in order
    )
    return RemapResult(judgments=new_judgments, mappings=tuple(rows), min_overlap=min_overlap)


def _span_of(judgment: Judgment, old_index: ChunkIndex | None) -> tuple[Span | None, str | None]:
    """The judgment's span and how it was found, or None and why there is none."""
    if judgment.span is not None:
        return judgment.span, None
    if old_index is None:
        return None, "no span, and no old corpus to find the chunk's offsets in"
    span = old_index.spans_by_id.get(judgment.doc_id)
    if span is not None:
        return span, THROUGH_OLD_CORPUS
    if judgment.doc_id in old_index.unplaced:
        return None, "no span, and its chunk in the old corpus has a source but no offsets"
    return None, "no span, and the old corpus does not hold its document"


def _lost(judgment: Judgment, status: RemapStatus, reason: str | None) -> SpanMapping:
    return SpanMapping(
        judgment.query_id, judgment.doc_id, status, reason=reason, grade=judgment.relevance
    )
