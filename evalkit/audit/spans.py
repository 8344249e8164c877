"""Span judgments: does each span-anchored judgment still quote its source?

Each span judgment is placed in its source's current text by ``goldset.remap.locate_span``
(``evalkit goldset remap``'s rule); those whose text changed or moved, or whose source is
gone, are reported. Sources come from the audited corpus, else from the collection.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from evalkit.audit.context import AuditContext
from evalkit.audit.snapshot import fetch_documents
from evalkit.goldset.model import Goldset
from evalkit.goldset.remap import SourceText, locate_span, same_text, source_texts
from evalkit.records import Document, Judgment
from evalkit.records.audit import CheckOutcome, Finding

__all__ = ["check_spans", "span_source_ids", "span_sources"]


def span_source_ids(goldset: Goldset | None) -> set[str]:
    """The sources the goldset's span-anchored judgments name."""
    if goldset is None:
        return set()
    return {j.span.source_id for j in goldset.judgments if j.span is not None}


def span_sources(documents: Iterable[Document], goldset: Goldset | None) -> dict[str, SourceText]:
    """The current text of each source the goldset's spans name, rebuilt from ``documents``
    (a corpus's chunks or whole documents)."""
    wanted = span_source_ids(goldset)
    return source_texts(documents, wanted) if wanted else {}


def _changed(judgment: Judgment, source: SourceText | str) -> dict[str, object] | None:
    """What changed about the judgment's span in ``source``, or None when it still reads
    the same at its offsets (or, with no offsets, is found once)."""
    span = judgment.span
    if span is None:
        return None
    located = locate_span(span, source)
    if located.start is not None and not located.moved:
        return None
    detail: dict[str, object] = {
        "query_id": judgment.query_id,
        "doc_id": judgment.doc_id,
        "source_id": span.source_id,
        "start": span.start,
        "end": span.end,
    }
    if located.moved:
        detail["found_at"] = [located.start, located.end]
    else:
        detail["reason"] = located.reason
    if span.start is not None and span.end is not None:
        now = source[span.start : span.end]
        detail["now_reads"] = now if len(now) <= 200 else now[:197] + "..."
        detail["same_text"] = span.text is not None and same_text(now, span.text)
    return detail


def check_spans(context: AuditContext) -> CheckOutcome:
    """Report span judgments whose quoted text no longer stands at its offsets in the
    source, and those whose source is gone."""
    goldset = context.goldset
    if goldset is None:
        return CheckOutcome("spans", False, note="no goldset given (--goldset)")
    judgments = [(j, j.span) for j in goldset.judgments if j.span is not None]
    if not judgments:
        # Nothing can have gone stale: the check ran and measured that.
        return CheckOutcome(
            "spans",
            True,
            {"span_judgments": 0.0},
            note="the goldset has no span-anchored judgments to check",
        )
    texts: Mapping[str, SourceText | str]
    from_source = context.span_sources is not None
    if context.span_sources is not None:
        texts = context.span_sources
    else:
        stored = fetch_documents(
            collection=context.collection, doc_ids=sorted(span_source_ids(goldset))
        )
        texts = {doc_id: document.text for doc_id, document in stored.items()}
    config = context.config
    changed: list[dict[str, object]] = []
    gone: list[Judgment] = []
    unchecked = 0
    for judgment, span in judgments:
        source = texts.get(span.source_id)
        if source is None:
            if from_source:
                gone.append(judgment)
            else:
                unchecked += 1
            continue
        detail = _changed(judgment, source)
        if detail is not None:
            changed.append(detail)
    findings: list[Finding] = []
    if changed:
        findings.append(
            config.finding(
                "span_text_changed",
                f"{len(changed)} span-anchored judgments no longer quote their source at "
                "their offsets; review them, or remap the goldset onto the current corpus "
                "(`evalkit goldset remap`), which follows text that only moved",
                len(changed),
                doc_ids=_unique(str(item["doc_id"]) for item in changed),
                query_ids=_unique(str(item["query_id"]) for item in changed),
                details={"judgments": changed[: config.max_listed]},
            )
        )
    if gone:
        findings.append(
            config.finding(
                "span_source_missing",
                f"{len(gone)} span-anchored judgments name sources the corpus no longer "
                "holds; their judgments cannot be checked or remapped",
                len(gone),
                doc_ids=_unique(j.doc_id for j in gone),
                query_ids=_unique(j.query_id for j in gone),
                details={
                    "sources": sorted({j.span.source_id for j in gone if j.span is not None})[
                        : config.max_listed
                    ]
                },
            )
        )
    measurements = {
        "span_judgments": float(len(judgments)),
        "span_text_changed": float(len(changed)),
        "span_source_missing": float(len(gone)),
        "span_unchecked": float(unchecked),
    }
    note = (
        None
        if from_source or not unchecked
        else f"{unchecked} spans name sources the collection does not store as documents; "
        "give the corpus (--source) to check them"
    )
    return CheckOutcome("spans", True, measurements, tuple(findings), note=note)


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))
