"""The review queue's workflows: queue drafts and disagreements, and review them
(``evalkit.pipeline.review_publish`` measures reviewer agreement and publishes).

Each function takes a ``WriterAccess`` and opens the store only for one short block, so a
reviewer's save never holds it for long. Items are ranked by ``review_priority``
(``0.7 * signal + 0.3 * volume``); items reviewed by enough reviewers come last. The
priority's terms: docs/goldsets.md, "Review queue".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.clock import utc_now
from evalkit.errors import GoldsetError, InputError
from evalkit.goldset.drafts import Draft, DraftQuery, read_draft
from evalkit.goldset.model import Goldset, check_goldset_name, unknown_documents
from evalkit.goldset.review import asked_as, review_item_id, shared_texts, tenant_phrase
from evalkit.pipeline.judge_pool import DocumentTexts
from evalkit.records import Query
from evalkit.records.review import (
    REVIEW_GRADES,
    DisagreementRequest,
    ReviewDocument,
    ReviewItem,
    ReviewOrigin,
    ReviewRecord,
    Verdict,
    reviewer_problem,
)
from evalkit.store.access import WriterAccess
from evalkit.store.goldsets import current_goldset, load_stored_goldset
from evalkit.store.review import (
    AssessorGrade,
    QueueCounts,
    QueuedItem,
    add_review,
    assessor_grades,
    get_item,
    item_reviews,
    list_items,
    save_items,
    traffic_volume,
)

__all__ = [
    "SIGNAL_WEIGHT",
    "VOLUME_SATURATION",
    "VOLUME_WEIGHT",
    "ItemDetails",
    "QueueOutcome",
    "ingest_draft",
    "queue_disagreements",
    "record_review",
    "review_item",
    "review_priority",
    "review_queue",
]

SIGNAL_WEIGHT = 0.7
"""Share of an item's priority from its own signal (disagreement size, uncertainty)."""
VOLUME_WEIGHT = 0.3
"""Share of an item's priority from how often production asked its query."""
VOLUME_SATURATION = 1000
"""Logged queries from which the volume share is full."""
_UNKNOWN_SIGNAL = 0.5


def review_priority(signal: float | None, volume: int) -> float:
    """An item's priority from its signal (0-1; None: unknown, counted 0.5) and the number
    of logged traffic queries with its text (see the module docstring)."""
    share = min(1.0, math.log1p(max(volume, 0)) / math.log1p(VOLUME_SATURATION))
    value = SIGNAL_WEIGHT * (_UNKNOWN_SIGNAL if signal is None else signal) + VOLUME_WEIGHT * share
    return round(value, 6)


@dataclass(frozen=True, slots=True)
class QueueOutcome:
    """What queueing did: the goldset, the items offered and what became of them, and the
    draft queries the goldset asks already under another id (``already_asked``: draft query
    id, goldset query id), which ``evalkit goldset publish`` merges into that query."""

    goldset: str
    item_ids: tuple[str, ...]
    counts: QueueCounts
    source: str
    already_asked: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "goldset": self.goldset,
            "source": self.source,
            "items": list(self.item_ids),
            **self.counts.to_dict(),
            "already_asked": [
                {"query_id": query_id, "goldset_query_id": asked}
                for query_id, asked in self.already_asked
            ],
        }


def _draft_item(goldset: str, drafted: DraftQuery, volume: int, *, shared: bool) -> ReviewItem:
    query = drafted.query
    if drafted.origin is ReviewOrigin.generated:
        kind = drafted.provenance.get("kind")
        generator = drafted.provenance.get("generator")
        reason = "generated question" + (f" ({kind})" if kind else "")
        reason += f" by {generator}" if generator else ""
    else:
        reason = "promoted traffic" + (f": {', '.join(drafted.reasons)}" if drafted.reasons else "")
    if volume:
        reason += f"; asked {volume} time{'s' if volume != 1 else ''} in traffic"
    return ReviewItem(
        item_id=review_item_id(
            goldset, drafted.origin, query.text, query.id if shared else None, query.tenant
        ),
        goldset=goldset,
        origin=drafted.origin,
        query=query,
        documents=drafted.documents,
        priority=review_priority(drafted.priority, volume),
        reason=reason,
        provenance={**drafted.provenance, "traffic_volume": str(volume)},
    )


def _check_against_goldset(
    draft: Draft, current: Goldset | None, published: Collection[tuple[str, str]]
) -> None:
    """Refuse draft queries whose id the goldset asks for another tenant, or with another
    text unless that text is a reviewer's rewording of the same query: ``published`` holds
    the (query id, drafted text) of the items published into the goldset."""
    if current is None:
        return
    known = {query.id: query for query in current.queries}
    problems = []
    for drafted in draft.queries:
        stored = known.get(drafted.query.id)
        if stored is None:
            continue
        if stored.tenant != drafted.query.tenant:
            other = f"{stored.text!r} of {tenant_phrase(stored.tenant)}, the draft's of "
            other += tenant_phrase(drafted.query.tenant)
        elif stored.text != drafted.query.text and (stored.id, drafted.query.text) not in published:
            other = repr(stored.text)
        else:
            continue
        problems.append(
            InputError(
                f"query id '{stored.id}' is already another query of goldset "
                f"{current.name!r} (version {current.version}: {other}); give the draft's "
                "query another id",
                path=str(draft.queries_file),
                line=drafted.line,
                field="id",
            )
        )
    if problems:
        lines = [f"invalid draft, {len(problems)} problem(s):", *(f"  {p}" for p in problems[:3])]
        raise GoldsetError("\n".join(lines), path=str(draft.directory), problems=problems)


def _already_asked(
    draft: Draft, current: Goldset | None, published: Collection[tuple[str, str]]
) -> tuple[tuple[str, str], ...]:
    """The draft's new queries that ``current`` asks already (same tenant, same text up to
    case and whitespace, ``asked_as``), each with the first goldset query asking it; a
    query whose item was published (merged there already) is none."""
    if current is None:
        return ()
    asked: dict[tuple[str | None, str], str] = {}
    for query in current.queries:
        asked.setdefault(asked_as(query), query.id)
    ids = {query.id for query in current.queries}
    return tuple(
        (drafted.query.id, asked[asked_as(drafted.query)])
        for drafted in draft.queries
        if drafted.query.id not in ids
        and asked_as(drafted.query) in asked
        and (drafted.query.id, drafted.query.text) not in published
    )


def ingest_draft(
    access: WriterAccess,
    directory: Path | str,
    *,
    goldset: str | None = None,
    texts: DocumentTexts | None = None,
) -> QueueOutcome:
    """Queue every query of the draft folder ``directory`` for ``goldset`` (default: its name).
    A malformed draft or clashing query id raises GoldsetError naming file, line and field
    (nothing queued); earlier items keep their reviews; already-asked queries are listed.
    """
    # Checked before anything is queued: `goldset publish` could never take the name later.
    name = check_goldset_name(goldset or Path(directory).resolve().name, option="--goldset")
    draft = read_draft(directory)
    with access.writer("review add") as store:
        published = {
            (queued.item.query.id, queued.item.query.text)
            for queued in list_items(store, goldset=name, status="published")
        }
        current = current_goldset(store, name)
        _check_against_goldset(draft, current, published)
        volumes = traffic_volume(
            store, ((drafted.query.text, drafted.query.tenant) for drafted in draft.queries)
        )
        shared = shared_texts(drafted.query for drafted in draft.queries)
        items = [
            _draft_item(
                name,
                drafted,
                volumes.get((drafted.query.text, drafted.query.tenant), 0),
                shared=drafted.query.text in shared,
            )
            for drafted in draft.queries
        ]
        if texts is not None:
            items = _with_texts(items, texts)
        counts = save_items(store, items)
    return QueueOutcome(
        name, counts.item_ids, counts, str(directory), _already_asked(draft, current, published)
    )


def _with_texts(items: list[ReviewItem], texts: DocumentTexts) -> list[ReviewItem]:
    """``items`` with the text of every document that has none, where ``texts`` has it."""
    wanted = {doc.doc_id for item in items for doc in item.documents if not doc.text}
    found = texts(wanted) if wanted else {}
    return [
        dataclasses.replace(
            item,
            documents=tuple(
                doc
                if doc.text or doc.doc_id not in found
                else dataclasses.replace(doc, text=found[doc.doc_id])
                for doc in item.documents
            ),
        )
        for item in items
    ]


def _disagreement_size(
    grade: AssessorGrade, *, binary: bool, request: DisagreementRequest
) -> float | None:
    if binary:
        flipped = (grade.human >= 1) != (grade.grade >= request.assessor_threshold)
        return 1.0 if flipped else None
    gap = abs(min(max(grade.human, 0), 3) - grade.grade)
    return gap / 3 if gap >= request.min_gap else None


def queue_disagreements(
    access: WriterAccess,
    goldset: str,
    request: DisagreementRequest,
    *,
    texts: DocumentTexts | None = None,
) -> QueueOutcome:
    """Queue the judgments of ``goldset``'s current version an LLM assessor graded differently,
    one item per query: the suggested grade is the assessor's (the most distant), the human's
    is in the provenance; texts come from ``texts``, else the judgment's quoted span.
    """
    with access.writer("review disagreements") as store:
        current = load_stored_goldset(store, goldset)
        grades = assessor_grades(store, current.version, assessors=request.assessors)
        binary = max((j.relevance for j in current.judgments), default=0) <= 1
        by_query: dict[str, dict[str, tuple[float, AssessorGrade]]] = {}
        for grade in grades:
            size = _disagreement_size(grade, binary=binary, request=request)
            if size is None:
                continue
            documents = by_query.setdefault(grade.query_id, {})
            kept = documents.get(grade.doc_id)
            if kept is None or size > kept[0]:
                documents[grade.doc_id] = (size, grade)
        queries = {query.id: query for query in current.queries}
        volumes = traffic_volume(
            store, ((queries[query_id].text, queries[query_id].tenant) for query_id in by_query)
        )
    found = texts({doc for documents in by_query.values() for doc in documents}) if texts else {}
    shared = shared_texts(current.queries)
    items = [
        _disagreement_item(current, queries[query_id], documents, volumes, found, shared=shared)
        for query_id, documents in sorted(by_query.items())
    ]
    with access.writer("review disagreements") as store:
        counts = save_items(store, items)
    return QueueOutcome(goldset, counts.item_ids, counts, f"judged pool vs {current.version}")


def _disagreement_item(
    current: Goldset,
    query: Query,
    documents: Mapping[str, tuple[float, AssessorGrade]],
    volumes: Mapping[tuple[str, str | None], int],
    texts: Mapping[str, str],
    *,
    shared: frozenset[str],
) -> ReviewItem:
    spans = {(j.query_id, j.doc_id): j.span for j in current.judgments}

    def text_of(doc_id: str) -> str:
        span = spans.get((query.id, doc_id))
        return texts.get(doc_id) or (span.text if span is not None and span.text else "")

    ordered = sorted(documents.items(), key=lambda entry: (-entry[1][0], entry[0]))
    volume = volumes.get((query.text, query.tenant), 0)
    provenance = {
        "goldset_version": current.version,
        "assessors": ",".join(sorted({grade.assessor for _, grade in documents.values()})),
        **{f"human:{doc_id}": str(grade.human) for doc_id, (_, grade) in ordered},
        "traffic_volume": str(volume),
    }
    shown = "; ".join(
        f"{grade.assessor} graded {doc_id} {grade.grade}, the goldset {grade.human}"
        for doc_id, (_, grade) in ordered[:3]
    )
    more = f" (and {len(ordered) - 3} more)" if len(ordered) > 3 else ""
    return ReviewItem(
        item_id=review_item_id(
            current.name,
            ReviewOrigin.disagreement,
            query.text,
            query.id if query.text in shared else None,
            query.tenant,
        ),
        goldset=current.name,
        origin=ReviewOrigin.disagreement,
        query=query,
        documents=tuple(
            ReviewDocument(
                doc_id=doc_id,
                text=text_of(doc_id),
                suggested_grade=grade.grade,
                suggested_by=grade.assessor,
                span=spans.get((query.id, doc_id)),
            )
            for doc_id, (_, grade) in ordered
        ),
        priority=review_priority(ordered[0][1][0], volume),
        reason=f"assessor disagrees: {shown}{more}",
        provenance=provenance,
    )


def review_queue(
    access: WriterAccess,
    *,
    goldset: str | None = None,
    status: str | None = None,
    needed_reviews: int = 1,
    limit: int | None = None,
) -> list[QueuedItem]:
    """The queue in review order (``evalkit.store.review.list_items``)."""
    with access.writer("review list") as store:
        return list_items(
            store, goldset=goldset, status=status, needed_reviews=needed_reviews, limit=limit
        )


@dataclass(frozen=True, slots=True)
class ItemDetails:
    """One item with every review it has had (oldest first)."""

    queued: QueuedItem
    reviews: tuple[ReviewRecord, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            **self.queued.to_dict(),
            "reviews": [_review_dict(review) for review in self.reviews],
        }


def _review_dict(review: ReviewRecord) -> dict[str, Any]:
    return {
        "reviewer": review.reviewer,
        "verdict": str(review.verdict),
        "grades": dict(review.grades),
        "question": review.question,
        "note": review.note,
        "reviewed_at": review.reviewed_at.isoformat(),
    }


def review_item(access: WriterAccess, item_id: str) -> ItemDetails:
    """The item ``item_id`` (or the one whose id starts with it) and its reviews."""
    with access.writer("review show") as store:
        queued = get_item(store, item_id)
        reviews = item_reviews(store, item_ids=[queued.item.item_id])
    return ItemDetails(queued, tuple(reviews.get(queued.item.item_id, ())))


def record_review(
    access: WriterAccess,
    item_id: str,
    *,
    reviewer: str,
    verdict: Verdict,
    grades: Mapping[str, int],
    question: str | None = None,
    note: str = "",
) -> ReviewRecord:
    """Save one reviewer's review of an item, in one short transaction: ``grades`` (document id ->
    0-3) name only the item's documents, at least one for an accept; ``question`` edits it.
    Raises InputError naming the wrong field; nothing is saved then.
    """
    name = reviewer.strip()
    if not name:
        raise InputError("give the reviewer's name", field="reviewer")
    problem = reviewer_problem(name)
    if problem is not None:
        raise InputError(problem, field="reviewer")
    for doc_id, grade in grades.items():
        if grade not in REVIEW_GRADES:
            raise InputError(
                f"grade {grade!r} of document {doc_id!r} is not one of 0, 1, 2, 3", field="grade"
            )
    if verdict is Verdict.accept and not grades:
        raise InputError(
            "an accepted item needs at least one graded document (DOC=GRADE); or reject it",
            field="grade",
        )
    edited = None if question is None else question.strip()
    if question is not None and not edited:
        raise InputError("the edited question is empty", field="question")
    if verdict is Verdict.reject and grades:
        raise InputError(
            "a rejected item takes no grades (they would be dropped); give either verdict "
            "`reject` or `grades`",
            field="grade",
        )
    with access.writer("review grade") as store:
        queued = get_item(store, item_id)
        if queued.status == "published":
            raise InputError(
                f"item {queued.item.item_id} is already published in goldset "
                f"{queued.item.goldset!r}: a review now would change nothing. To change its "
                "judgments, edit the goldset and import it as a new version",
                field="item",
            )
        known = [document.doc_id for document in queued.item.documents]
        unknown = sorted(set(grades) - set(known))
        if unknown:
            raise InputError(
                f"item {queued.item.item_id} has no document {unknown_documents(unknown, known)}",
                field="grade",
            )
        record = ReviewRecord(
            item_id=queued.item.item_id,
            reviewer=name,
            verdict=verdict,
            grades=dict(grades),
            reviewed_at=utc_now(),
            question=None if edited == queued.item.query.text else edited,
            note=note,
        )
        add_review(store, record)
    return record
