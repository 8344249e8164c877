"""Moving span-anchored judgments onto the chunks of a re-chunked corpus.

``remap_judgments`` finds each judgment's span in the new chunks' source text (rebuilt from
the chunks' offsets, reporting overlapping chunks that disagree as ``ChunkConflict``) and
gives its grade to every new chunk it overlaps by ``min_overlap``; a chunk several spans
reach keeps the highest grade (0 included). Each judgment ends ``mapped``, ``stale`` or
``unmapped``. The rules: docs/goldsets.md, "Re-chunking".
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from evalkit.errors import ConfigError
from evalkit.goldset._reading import ProblemLog
from evalkit.goldset.corpus import iter_corpus_lines
from evalkit.records import Document, Judgment, Span
from evalkit.records.requests import DEFAULT_MIN_OVERLAP

__all__ = [
    "Chunk",
    "ChunkConflict",
    "ChunkIndex",
    "ChunkedSource",
    "LocatedSpan",
    "RemapResult",
    "RemapStatus",
    "SourceText",
    "SpanMapping",
    "iter_chunks",
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
    """The new judgments, every mapping row (old judgment by old judgment) and the
    conflicting chunks met on the way."""

    judgments: tuple[Judgment, ...]
    mappings: tuple[SpanMapping, ...]
    min_overlap: float
    conflicts: tuple[ChunkConflict, ...] = ()
    """Chunks of the judged sources that overlap another chunk of their source with other
    text (each chunk once)."""

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


@dataclass(frozen=True, slots=True)
class Chunk:
    """A placed chunk: its id, its ``start``/``end`` in its source's text, and its text (cut
    to ``end - start`` characters: beyond that it cannot stand in the source)."""

    id: str
    start: int
    end: int
    text: str


class SourceText:
    """A source's text rebuilt from its chunks, each placed at its offsets.

    Only the chunks' characters are held (a stretch no chunk covers reads as one space), so
    memory follows the chunks' text, never their offsets. Where chunks overlap, the chunk
    that starts first (the longer of two) gives the text. Slicing, ``len`` and ``find`` take
    and give offsets into the source.
    """

    __slots__ = ("_compact", "_compact_starts", "_ends", "_providers", "_starts", "length")

    def __init__(self, chunks: Iterable[Chunk]) -> None:
        starts: list[int] = []
        ends: list[int] = []
        islands: list[str] = []
        pieces: list[str] = []
        providers: list[tuple[int, str]] = []
        self.length = 0
        for chunk in sorted(chunks, key=lambda c: (c.start, -c.end, c.id)):
            self.length = max(self.length, chunk.end)
            piece = chunk.text[max(ends[-1] - chunk.start, 0) :] if ends else chunk.text
            if not piece:
                continue
            if not ends or chunk.start > ends[-1]:
                if pieces:
                    islands.append("".join(pieces))
                    pieces = []
                starts.append(chunk.start)
                ends.append(chunk.start)
            providers.append((ends[-1], chunk.id))
            pieces.append(piece)
            ends[-1] += len(piece)
        if pieces:
            islands.append("".join(pieces))
        self._starts, self._ends, self._providers = starts, ends, providers
        self._compact = " ".join(islands)
        self._compact_starts = []
        offset = 0
        for island in islands:
            self._compact_starts.append(offset)
            offset += len(island) + 1

    @classmethod
    def of(cls, text: str) -> SourceText:
        """The source whose whole text is ``text``."""
        return cls([Chunk("", 0, len(text), text)])

    def __len__(self) -> int:
        return self.length

    def __str__(self) -> str:
        return self._compact

    def __getitem__(self, key: slice) -> str:
        start, stop, _ = key.indices(self.length)
        if start >= stop:
            return ""
        return self._compact[self._to_compact(start, 0) : self._to_compact(stop, 1)]

    def _to_compact(self, offset: int, into_gap: int) -> int:
        """The position of ``offset`` in the held text; an offset in a stretch no chunk
        covers is before (``into_gap`` 0) or after (1) the one space that stands for it."""
        island = bisect_right(self._starts, offset) - 1
        if island < 0:
            return 0
        within = min(offset, self._ends[island]) - self._starts[island]
        gap = into_gap if offset > self._ends[island] else 0
        return min(self._compact_starts[island] + within + gap, len(self._compact))

    def find(self, text: str) -> list[tuple[int, int]]:
        """Where ``text`` stands in the source (runs of whitespace match any whitespace)."""
        return [
            (self._to_source(start), self._to_source(end))
            for start, end in _occurrences(self._compact, text)
        ]

    def _to_source(self, position: int) -> int:
        island = bisect_right(self._compact_starts, position) - 1
        return self._starts[island] + position - self._compact_starts[island]

    def provider(self, offset: int) -> str | None:
        """The id of the chunk whose text the source reads at ``offset`` (None: no chunk's)."""
        index = bisect_right(self._providers, (offset, "\U0010ffff")) - 1
        island = bisect_right(self._starts, offset) - 1
        if index < 0 or island < 0 or offset >= self._ends[island]:
            return None
        return self._providers[index][1]


class _Overlay:
    """A source read with one chunk's text over the others' where they disagree."""

    def __init__(self, text: SourceText, chunk: Chunk) -> None:
        self.text, self.chunk = text, chunk
        self.length = text.length

    def __getitem__(self, key: slice) -> str:
        start, stop, _ = key.indices(self.length)
        chunk = self.chunk
        low, high = max(start, chunk.start), min(stop, chunk.start + len(chunk.text))
        if low >= high:
            return self.text[start:stop]
        return (
            self.text[start:low]
            + chunk.text[low - chunk.start : high - chunk.start]
            + self.text[high:stop]
        )

    def find(self, text: str) -> list[tuple[int, int]]:
        return [
            (self.chunk.start + start, self.chunk.start + end)
            for start, end in _occurrences(self.chunk.text, text)
        ]


_Reading = SourceText | _Overlay


def locate_span(span: Span, source: SourceText | str) -> LocatedSpan:
    """Place ``span`` in ``source`` (the current text of its source) by the rule above."""
    text = SourceText.of(source) if isinstance(source, str) else source
    return _locate(span, [text])[0]


def _locate(span: Span, readings: Sequence[_Reading]) -> tuple[LocatedSpan, int]:
    """``locate_span`` over several readings of one source (the first is its text): the
    placed span, and which reading holds it."""
    length = readings[0].length
    has_offsets = span.start is not None and span.end is not None
    if has_offsets and span.text is None:
        if span.end is not None and span.end > length:
            return LocatedSpan(
                status=RemapStatus.stale,
                reason=f"offsets past the end of the source ({length} characters)",
            ), 0
        return LocatedSpan(span.start, span.end), 0
    if span.text is None:
        return LocatedSpan(
            status=RemapStatus.unmapped, reason="span has neither offsets nor text"
        ), 0
    if has_offsets:
        for index, reading in enumerate(readings):
            if same_text(reading[span.start : span.end], span.text):
                return LocatedSpan(span.start, span.end), index
    found: dict[tuple[int, int], int] = {}
    for index, reading in enumerate(readings):
        for place in reading.find(span.text):
            found.setdefault(place, index)
    if len(found) == 1:
        (((start, end), index),) = found.items()
        return LocatedSpan(start, end, moved=has_offsets), index
    if not found:
        changed = "text at its offsets changed" if has_offsets else "text not in the source"
        return LocatedSpan(status=RemapStatus.stale, reason=f"{changed}; not found elsewhere"), 0
    return LocatedSpan(
        status=RemapStatus.stale,
        reason=f"text no longer at its offsets and found {len(found)} times in the source",
    ), 0


@dataclass(frozen=True, slots=True)
class ChunkConflict:
    """Two chunks of one source that overlap with different text: the source reads as
    ``kept`` there, ``other`` says something else from ``offset`` on (``start``/``end``:
    where the two overlap)."""

    source_id: str
    kept: str
    other: str
    start: int
    end: int
    offset: int


def _chunk_bounds(document: Document) -> tuple[str, int, int] | None:
    """(source, start, end) of a chunk; a document with no source is its own, whole."""
    if document.source_id is None:
        return document.id, 0, len(document.text)
    if document.start is None or document.end is None:
        return None
    return document.source_id, document.start, document.end


def _chunk_of(document: Document) -> tuple[str, Chunk] | None:
    bounds = _chunk_bounds(document)
    if bounds is None:
        return None
    source, start, end = bounds
    return source, Chunk(document.id, start, end, document.text[: end - start])


def source_texts(
    documents: Iterable[Document], wanted: Iterable[str] | None = None
) -> dict[str, SourceText]:
    """The text of each source rebuilt from its chunks (only the ``wanted`` sources when
    given; ``SourceText``). A document without ``source_id`` is the whole text of the source
    of its id; chunks with a source but no offsets cannot be placed and are left out."""
    return {
        source: chunked.text
        for source, chunked in ChunkIndex.build(documents, wanted=wanted).sources.items()
    }


@dataclass(frozen=True, slots=True)
class ChunkedSource:
    """One source's chunks (by start), its rebuilt text and its conflicting chunks."""

    chunks: tuple[Chunk, ...]
    text: SourceText
    conflicts: tuple[ChunkConflict, ...]

    @classmethod
    def build(cls, source_id: str, chunks: Iterable[Chunk]) -> ChunkedSource:
        """Rebuild the source from ``chunks`` and find the ones whose text differs from it."""
        ordered = tuple(sorted(chunks, key=lambda c: (c.start, c.end, c.id)))
        text = SourceText(ordered)
        by_id = {chunk.id: chunk for chunk in ordered}
        conflicts = []
        for chunk in ordered:
            reads = text[chunk.start : chunk.start + len(chunk.text)]
            if reads == chunk.text:
                continue
            at = chunk.start + next(
                (n for n, (a, b) in enumerate(zip(reads, chunk.text, strict=False)) if a != b),
                min(len(reads), len(chunk.text)),
            )
            kept = by_id[text.provider(at) or chunk.id]
            conflicts.append(
                ChunkConflict(
                    source_id,
                    kept.id,
                    chunk.id,
                    max(kept.start, chunk.start),
                    min(kept.end, chunk.end),
                    at,
                )
            )
        return cls(ordered, text, tuple(conflicts))

    def place(self, span: Span) -> tuple[LocatedSpan, _Reading]:
        """Place ``span`` (``locate_span``), reading the text of each conflicting chunk too;
        with the reading that holds it."""
        readings: list[_Reading] = [self.text]
        if self.conflicts and span.text is not None:
            named = {conflict.kept for conflict in self.conflicts}
            named.update(conflict.other for conflict in self.conflicts)
            readings.extend(_Overlay(self.text, c) for c in self.chunks if c.id in named)
        located, index = _locate(span, readings)
        return located, readings[index]

    def overlapping(
        self, start: int, end: int, min_overlap: float, reading: _Reading | None = None
    ) -> list[tuple[str, float]]:
        """Chunks that ``[start, end)`` overlaps by at least ``min_overlap`` of the shorter of
        the two, with that share, in source order; given the ``reading`` that holds the
        span, not those of the conflicting chunks whose text differs from it there."""
        disputed = {conflict.other for conflict in self.conflicts}
        disputed.update(conflict.kept for conflict in self.conflicts)
        found = []
        for chunk in self.chunks:
            if chunk.start >= end:
                break
            shared = min(end, chunk.end) - max(start, chunk.start)
            shorter = min(end - start, chunk.end - chunk.start)
            # A share of exactly min_overlap counts, whatever the float rounding of the product.
            if not (shared > 0 and shorter > 0 and shared >= min_overlap * shorter - 1e-9):
                continue
            if reading is not None and chunk.id in disputed:
                low = max(start, chunk.start)
                high = min(end, chunk.start + len(chunk.text))
                if chunk.text[low - chunk.start : high - chunk.start] != reading[low:high]:
                    continue
            found.append((chunk.id, shared / shorter))
        return found


@dataclass(frozen=True, slots=True)
class ChunkIndex:
    """A corpus's chunks by source (``ChunkedSource``), and, for the old corpus, each chunk's
    own span (with its text) by id, whose chunk ids the judgments name."""

    sources: Mapping[str, ChunkedSource]
    spans_by_id: Mapping[str, Span] = field(default_factory=dict)
    unplaced: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls,
        documents: Iterable[Document],
        *,
        keep_spans: bool = False,
        wanted: Iterable[str] | None = None,
    ) -> ChunkIndex:
        """Index ``documents`` (of the ``wanted`` sources only, when given); ``keep_spans``
        keeps each chunk's own span by id instead of rebuilding the sources. Chunks with a
        source but no offsets are listed in ``unplaced``."""
        keep = None if wanted is None else set(wanted)
        grouped: dict[str, list[Chunk]] = {}
        spans: dict[str, Span] = {}
        unplaced: set[str] = set()
        for document in documents:
            placed = _chunk_of(document)
            if placed is None:
                unplaced.add(document.id)
                continue
            source, chunk = placed
            if keep_spans:
                spans[document.id] = Span(source, chunk.start, chunk.end, document.text)
            elif keep is None or source in keep:
                grouped.setdefault(source, []).append(chunk)
        return cls(
            sources={source: ChunkedSource.build(source, rows) for source, rows in grouped.items()},
            spans_by_id=spans,
            unplaced=frozenset(unplaced),
        )


def iter_chunks(path: Path | str) -> Iterator[Document]:
    """The documents of the corpus at ``path`` (``iter_corpus``), refusing offsets that no
    text backs before anything is built from them: a chunk whose ``end`` lies past its
    ``start`` plus its text's length, or past the end of its source when the corpus holds
    that source whole (a document without ``source_id``). ``GoldsetError`` names the file,
    line and field."""
    location = Path(path)
    file = location / "corpus.jsonl" if location.is_dir() else location
    problems = ProblemLog()
    whole: dict[str, tuple[int, int]] = {}
    furthest: dict[str, tuple[int, int, str]] = {}
    for document, line in iter_corpus_lines(location):
        if document.source_id is None:
            whole[document.id] = (len(document.text), line)
        elif document.start is not None and document.end is not None:
            reach = document.start + len(document.text)
            if document.end > reach:
                problems.add(
                    f"end {document.end} of chunk '{document.id}' lies past its text: from "
                    f"start {document.start}, its {len(document.text)} characters end at "
                    f"{reach}; a chunk's end is its start plus the length of its text",
                    path=file,
                    line=line,
                    field="end",
                )
                problems.raise_if_any("corpus", path=file)
            if document.end > furthest.get(document.source_id, (-1, 0, ""))[0]:
                furthest[document.source_id] = (document.end, line, document.id)
        yield document
    for source, (end, line, chunk_id) in furthest.items():
        length, whole_line = whole.get(source, (end, 0))
        if end > length:
            problems.add(
                f"end {end} of chunk '{chunk_id}' lies past the end of its source '{source}', "
                f"whose whole text (line {whole_line}) has {length} characters",
                path=file,
                line=line,
                field="end",
            )
    problems.raise_if_any("corpus", path=file)


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
    the highest grade, each carrying the span it came from placed in the new source), a
    mapping row per new judgment made of each old one, or one row saying why none was, and
    the conflicting chunks of the sources the judgments name. Only those sources are
    rebuilt.
    """
    if not 0.0 < min_overlap <= 1.0:
        raise ConfigError(f"min_overlap must be in (0, 1], got {min_overlap}")
    old_index = ChunkIndex.build(old_corpus, keep_spans=True) if old_corpus is not None else None
    spans = [_span_of(judgment, old_index) for judgment in judgments]
    new_index = ChunkIndex.build(
        new_corpus, wanted={span.source_id for span, _ in spans if span is not None}
    )
    rows: list[SpanMapping] = []
    best: dict[tuple[str, str], tuple[int, Span]] = {}
    order: list[tuple[str, str]] = []
    for judgment, (span, how) in zip(judgments, spans, strict=True):
        if span is None:
            rows.append(_lost(judgment, RemapStatus.unmapped, how))
            continue
        source = new_index.sources.get(span.source_id)
        if source is None:
            rows.append(_lost(judgment, RemapStatus.unmapped, SOURCE_GONE))
            continue
        located, reading = source.place(span)
        if located.start is None or located.end is None:
            rows.append(_lost(judgment, located.status, located.reason))
            continue
        reached = source.overlapping(
            located.start, located.end, min_overlap, reading if span.text is not None else None
        )
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
    conflicts = tuple(
        conflict for source in new_index.sources.values() for conflict in source.conflicts
    )
    return RemapResult(
        judgments=new_judgments,
        mappings=tuple(rows),
        min_overlap=min_overlap,
        conflicts=conflicts,
    )


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
