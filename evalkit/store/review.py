"""The review queue: draft goldset items, the reviews people give them, and what was published.

``review_items`` holds one row per item (keyed by a content hash,
``evalkit.goldset.review.review_item_id``) with its status; ``reviews`` is append-only, under
random ids, so two reviewers saving at once both keep their review;
``review_publications`` and ``review_published_items`` record each publish. Every write is
one short transaction, so a reviewer's save holds the store for far less than a second; a
read-only store refuses writes with a ``StoreError``. Columns: docs/store.md.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb

from evalkit.clock import utc_now
from evalkit.errors import InputError, NotFoundError
from evalkit.goldset.review import combine_reviews, review_item_id, tenant_phrase
from evalkit.records import Query, Span, dedup_text
from evalkit.records.review import (
    ReviewDocument,
    ReviewItem,
    ReviewOrigin,
    ReviewRecord,
    ReviewSource,
    Verdict,
)
from evalkit.store.columns import column_names, placeholders, qualified, values_of
from evalkit.store.goldsets import insert_goldset_version
from evalkit.store.traffic.ingest import query_key_sql

if TYPE_CHECKING:
    from evalkit.goldset.model import Goldset
    from evalkit.store.store import Store

__all__ = [
    "ITEM_STATUSES",
    "AssessorGrade",
    "ImportedSigners",
    "Publication",
    "QueueCounts",
    "QueuedItem",
    "add_review",
    "add_reviews",
    "assessor_grades",
    "get_item",
    "imported_signers",
    "item_reviews",
    "list_items",
    "list_publications",
    "publish_version",
    "published_item_ids",
    "save_items",
    "traffic_volume",
]

ITEM_STATUSES: tuple[str, ...] = ("open", "accepted", "rejected", "published")
"""An item's statuses: no verdict yet, accepted or rejected by its reviews, published."""

_ITEM_COLUMNS = (
    "item_id, goldset, origin, query_id, query_text, tenant, tags, reference_answer,"
    " reference_context_ids, documents, priority, reason, provenance, status, created_at,"
    " updated_at"
)


@dataclass(frozen=True, slots=True)
class QueuedItem:
    """An item of the queue with its status and who reviewed it so far."""

    item: ReviewItem
    status: str
    created_at: datetime
    updated_at: datetime
    reviewers: tuple[str, ...]
    n_reviews: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        item = self.item
        return {
            "item_id": item.item_id,
            "goldset": item.goldset,
            "origin": str(item.origin),
            "status": self.status,
            "priority": item.priority,
            "reason": item.reason,
            "query": _query_dict(item.query),
            "documents": [asdict(document) for document in item.documents],
            "provenance": dict(item.provenance),
            "reviewers": list(self.reviewers),
            "n_reviews": self.n_reviews,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """What saving items did: ``added`` new items, ``updated`` open items nobody had reviewed
    yet (their documents, priority and reason replaced), ``kept`` items left as they were
    (reviewed or decided already); ``item_ids``: the id each item offered is queued under,
    in order (an item queued before tenants were part of an item's id keeps that id)."""

    added: int
    updated: int
    kept: int
    item_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, int]:
        """JSON-ready form."""
        return {"added": self.added, "updated": self.updated, "kept": self.kept}


@dataclass(frozen=True, slots=True)
class Publication:
    """One publish: the goldset version it made from which items, and what changed."""

    goldset: str
    goldset_version: str
    previous_version: str | None
    published_at: datetime
    min_reviews: int
    n_items: int
    n_queries_added: int
    n_queries_edited: int
    n_judgments_added: int
    n_judgments_changed: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "goldset": self.goldset,
            "version": self.goldset_version,
            "previous_version": self.previous_version,
            "published_at": self.published_at.isoformat(),
            "min_reviews": self.min_reviews,
            "items": self.n_items,
            "queries_added": self.n_queries_added,
            "queries_edited": self.n_queries_edited,
            "judgments_added": self.n_judgments_added,
            "judgments_changed": self.n_judgments_changed,
        }


_PUBLICATION_COLUMNS = (
    "goldset, goldset_version, previous_version, published_at, min_reviews, n_items,"
    " n_queries_added, n_queries_edited, n_judgments_added, n_judgments_changed"
)


@dataclass(frozen=True, slots=True)
class AssessorGrade:
    """A goldset judgment beside an assessor's grade of the same query text and document
    (the assessor's newest, from the judged pool)."""

    query_id: str
    query_text: str
    doc_id: str
    human: int
    assessor: str
    grade: int
    reason: str | None
    judged_at: datetime


def _query_dict(query: Query) -> dict[str, Any]:
    return {
        "id": query.id,
        "text": query.text,
        "tenant": query.tenant,
        "tags": list(query.tags),
        "reference_answer": query.reference_answer,
        "reference_context_ids": list(query.reference_context_ids),
    }


def _document_from(data: Mapping[str, Any]) -> ReviewDocument:
    span = data.get("span")
    return ReviewDocument(
        doc_id=str(data["doc_id"]),
        text=str(data.get("text") or ""),
        suggested_grade=data.get("suggested_grade"),
        suggested_by=data.get("suggested_by"),
        span=None
        if not span
        else Span(
            source_id=str(span["source_id"]),
            start=span.get("start"),
            end=span.get("end"),
            text=span.get("text"),
        ),
    )


def _item_row(item: ReviewItem, status: str, now: datetime) -> list[object]:
    query = item.query
    return [
        item.item_id,
        item.goldset,
        str(item.origin),
        query.id,
        query.text,
        query.tenant,
        list(query.tags),
        query.reference_answer,
        list(query.reference_context_ids),
        json.dumps([asdict(document) for document in item.documents]),
        float(item.priority),
        item.reason,
        json.dumps(dict(item.provenance), sort_keys=True),
        status,
        now,
        now,
    ]


def _earlier_ids(item: ReviewItem) -> list[str]:
    """The ids ``item``'s query may have been queued under before: with and without its
    query id, which is hashed only while another query of its draft or goldset asks the same
    text (a later draft or a publication can add one, or take it away), and for a tenanted
    query also those from before its tenant was part of an item's id."""
    args = (item.goldset, item.origin, item.query.text)
    tenant = item.query.tenant
    earlier = [
        review_item_id(*args, tenant=tenant),
        review_item_id(*args, item.query.id, tenant),
    ]
    if tenant is not None:
        earlier += [review_item_id(*args), review_item_id(*args, item.query.id)]
    return earlier


def _adopt_earlier_ids(
    items: Sequence[ReviewItem], stored: Mapping[str, tuple[str, str | None]]
) -> list[ReviewItem]:
    """``items``, each one not queued under its id but queued before under an earlier id
    (``_earlier_ids``) for the same query id and tenant (``stored``: the queued items' query
    id and tenant by item id), taking that id: re-queuing a query queued before refreshes
    (or keeps) its item instead of queuing it again."""
    adopted = []
    for item in items:
        same = (item.query.id, item.query.tenant)
        found = next(
            (i for i in [item.item_id, *_earlier_ids(item)] if stored.get(i) == same), None
        )
        if found is None or found == item.item_id:
            adopted.append(item)
        else:
            adopted.append(dataclasses.replace(item, item_id=found))
    return adopted


def save_items(store: Store, items: Sequence[ReviewItem]) -> QueueCounts:
    """Queue ``items`` in one transaction: new items ``open``; a queued item is updated only
    while open and unreviewed. An item queued under the same id for another tenant is a
    conflict: nothing is queued and an ``InputError`` names both. A query queued before under
    another id (text shared then and not now, tenants not yet in ids) is found under that id
    (``_adopt_earlier_ids``)."""
    store.require_writable()
    if not items:
        return QueueCounts(0, 0, 0)
    now = utc_now()
    with store.writing(f"cannot queue review items in {store.path}") as con:
        # The items' own ids and those their tenanted ones had before, read at once.
        wanted = {item.item_id for item in items}
        wanted.update(earlier for item in items for earlier in _earlier_ids(item))
        rows = con.execute(
            "SELECT i.item_id, i.status, count(r.review_id), i.query_id, i.tenant"
            " FROM review_items i LEFT JOIN reviews r ON r.item_id = i.item_id"
            " WHERE list_contains(?, i.item_id)"
            " GROUP BY i.item_id, i.status, i.query_id, i.tenant",
            [sorted(wanted)],
        ).fetchall()
        queued_for = {row[0]: (row[3], row[4]) for row in rows}
        adopted = _adopt_earlier_ids(items, queued_for)
        unique = list({item.item_id: item for item in adopted}.values())
        existing = {row[0]: (row[1], row[2]) for row in rows}
        _refuse_conflicts(unique, queued_for)
        new = [item for item in unique if item.item_id not in existing]
        updatable = [
            item
            for item in unique
            if item.item_id in existing and existing[item.item_id] == ("open", 0)
        ]
        if new:
            con.executemany(
                f"INSERT INTO review_items ({_ITEM_COLUMNS}) VALUES ({placeholders(16)})",
                [_item_row(item, "open", now) for item in new],
            )
        for item in updatable:
            row = _item_row(item, "open", now)
            con.execute(
                "UPDATE review_items SET documents = ?, priority = ?, reason = ?,"
                " provenance = ?, updated_at = ? WHERE item_id = ?",
                [row[9], row[10], row[11], row[12], now, item.item_id],
            )
    return QueueCounts(
        added=len(new),
        updated=len(updatable),
        kept=len(unique) - len(new) - len(updatable),
        item_ids=tuple(item.item_id for item in adopted),
    )


def _describe(query_id: str, tenant: str | None) -> str:
    return f"query '{query_id}' of " + tenant_phrase(tenant)


def _refuse_conflicts(
    items: Sequence[ReviewItem], stored: Mapping[str, tuple[str, str | None]]
) -> None:
    problems = [
        InputError(
            f"review item {item.item_id} is queued already for "
            f"{_describe(*stored[item.item_id])}, and {_describe(item.query.id, item.query.tenant)}"
            f" asks the same question {item.query.text!r}; one item cannot hold both (their "
            "documents would be graded for the other's question): remove one of them from the "
            "draft",
            field="query_id",
        )
        for item in items
        # The same tenant asking again under another query id (a later traffic window's
        # record) refreshes or keeps its item as before: one question, one tenant's documents.
        if item.item_id in stored and stored[item.item_id][1] != item.query.tenant
    ]
    if len(problems) == 1:
        raise problems[0]
    if problems:
        lines = [f"cannot queue, {len(problems)} conflicts:", *(f"  {p}" for p in problems[:3])]
        raise InputError("\n".join(lines), problems=problems)


def _queued(row: Sequence[Any], reviewers: Sequence[str] | None, n_reviews: int) -> QueuedItem:
    values = dict(zip(column_names(_ITEM_COLUMNS), row, strict=True))
    item = ReviewItem(
        item_id=values["item_id"],
        goldset=values["goldset"],
        origin=ReviewOrigin(values["origin"]),
        query=Query(
            id=values["query_id"],
            text=values["query_text"],
            tenant=values["tenant"],
            tags=tuple(values["tags"] or ()),
            reference_answer=values["reference_answer"],
            reference_context_ids=tuple(values["reference_context_ids"] or ()),
        ),
        documents=tuple(_document_from(data) for data in json.loads(values["documents"])),
        priority=float(values["priority"]),
        reason=values["reason"],
        provenance=json.loads(values["provenance"]),
    )
    return QueuedItem(
        item=item,
        status=values["status"],
        created_at=values["created_at"],
        updated_at=values["updated_at"],
        reviewers=tuple(sorted(reviewers or ())),
        n_reviews=n_reviews,
    )


_QUEUE_SQL = (
    f"SELECT {qualified(_ITEM_COLUMNS, 'i')},"
    " list(DISTINCT r.reviewer) FILTER (WHERE r.reviewer IS NOT NULL), count(r.review_id)"
    " FROM review_items i LEFT JOIN reviews r ON r.item_id = i.item_id"
)
_QUEUE_GROUP = f" GROUP BY {qualified(_ITEM_COLUMNS, 'i')}"


def list_items(
    store: Store,
    *,
    goldset: str | None = None,
    status: str | None = None,
    needed_reviews: int = 1,
    limit: int | None = None,
) -> list[QueuedItem]:
    """Queued items, optionally of one goldset and status, in review order: items that fewer
    than ``needed_reviews`` distinct reviewers reviewed first, then by priority (highest
    first), then oldest first."""
    if status is not None and status not in ITEM_STATUSES:
        raise InputError(
            f"unknown status {status!r}; use one of: {', '.join(ITEM_STATUSES)}", field="status"
        )
    rows = store.fetch(
        f"{_QUEUE_SQL} WHERE (? IS NULL OR i.goldset = ?) AND (? IS NULL OR i.status = ?)"
        f"{_QUEUE_GROUP}"
        " ORDER BY count(DISTINCT r.reviewer) >= ?, i.priority DESC, i.created_at, i.item_id"
        " LIMIT ?",
        [goldset, goldset, status, status, needed_reviews, limit],
    )
    return [_queued(row[:-2], row[-2], int(row[-1])) for row in rows]


def get_item(store: Store, item_id: str) -> QueuedItem:
    """The item ``item_id`` (or the one item whose id starts with it)."""
    rows = store.fetch(
        f"{_QUEUE_SQL} WHERE starts_with(i.item_id, ?){_QUEUE_GROUP} ORDER BY i.item_id LIMIT 3",
        [item_id],
    )
    exact = [row for row in rows if row[0] == item_id]
    if exact:
        rows = exact
    if not rows:
        raise NotFoundError(
            f"no review item {item_id!r} in {store.path}; `evalkit review list` lists them"
        )
    if len(rows) > 1:
        raise InputError(
            f"{item_id!r} names more than one review item ({', '.join(row[0] for row in rows)}"
            "...); give more of the id",
            field="item",
        )
    row = rows[0]
    return _queued(row[:-2], row[-2], int(row[-1]))


def _review(row: Sequence[Any]) -> ReviewRecord:
    return ReviewRecord(
        item_id=row[0],
        reviewer=row[1],
        verdict=Verdict(row[2]),
        grades={str(doc): int(grade) for doc, grade in json.loads(row[3]).items()},
        reviewed_at=row[4],
        question=row[5],
        note=row[6],
        source=None if row[7] is None else ReviewSource(row[7], row[8], row[9], row[10]),
    )


_REVIEW_SELECT = (
    "SELECT r.item_id, r.reviewer, r.verdict, r.grades, r.reviewed_at, r.question, r.note,"
    " r.source_tool, r.source_annotation_id, r.source_user_id, r.source_user_email"
    " FROM reviews r"
)


def item_reviews(
    store: Store, *, item_ids: Iterable[str] | None = None, goldset: str | None = None
) -> dict[str, list[ReviewRecord]]:
    """Every review of the items ``item_ids`` (or of every item of ``goldset``, or of all
    items), oldest first, by item id."""
    ids = None if item_ids is None else sorted(set(item_ids))
    rows = store.fetch(
        f"{_REVIEW_SELECT} JOIN review_items i ON i.item_id = r.item_id"
        " WHERE (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], r.item_id))"
        " AND (? IS NULL OR i.goldset = ?)"
        " ORDER BY r.item_id, r.reviewed_at, r.review_id",
        [ids, ids, goldset, goldset],
    )
    reviews: dict[str, list[ReviewRecord]] = {}
    for row in rows:
        reviews.setdefault(row[0], []).append(_review(row))
    return reviews


@dataclass(frozen=True, slots=True)
class ImportedSigners:
    """The name each annotator of an annotation tool was signed with when their annotations
    were first imported: by that tool's user id, and by their email (in lower case); and the
    user id of each email that a review gives both of (``user_of``)."""

    by_user: Mapping[str, str]
    by_email: Mapping[str, str]
    user_of: Mapping[str, str]


def imported_signers(store: Store, tool: str) -> ImportedSigners:
    """The names the annotators of the annotation tool ``tool`` were first signed with."""
    rows = store.fetch(
        "SELECT 'user', source_user_id, arg_min(reviewer, (reviewed_at, review_id))"
        " FROM reviews WHERE source_tool = ? AND source_user_id IS NOT NULL"
        " GROUP BY source_user_id"
        " UNION ALL SELECT 'email', lower(source_user_email),"
        " arg_min(reviewer, (reviewed_at, review_id))"
        " FROM reviews WHERE source_tool = ? AND source_user_email IS NOT NULL"
        " GROUP BY lower(source_user_email)"
        " UNION ALL SELECT 'link', lower(source_user_email), arg_max(source_user_id, reviewed_at)"
        " FROM reviews WHERE source_tool = ? AND source_user_email IS NOT NULL"
        " AND source_user_id IS NOT NULL GROUP BY lower(source_user_email)",
        [tool, tool, tool],
    )
    by_kind: dict[str, dict[str, str]] = {"user": {}, "email": {}, "link": {}}
    for kind, key, value in rows:
        by_kind[kind][str(key)] = str(value)
    return ImportedSigners(by_kind["user"], by_kind["email"], by_kind["link"])


def add_review(store: Store, record: ReviewRecord) -> str:
    """Append ``record`` to the reviews and set its item's status from all of its reviews
    (``evalkit.goldset.review``; a published item stays published), in one short
    transaction; returns the new review's id. Reviews are never replaced: two saves of the
    same item, at once or not, keep both."""
    return add_reviews(store, [record])[0]


def add_reviews(store: Store, records: Sequence[ReviewRecord]) -> list[str]:
    """``add_review`` for several reviews in one transaction: all of them are saved or none
    (an import from Label Studio); returns their ids in order."""
    store.require_writable()
    review_ids = [
        f"rev-{record.reviewed_at:%Y%m%dT%H%M%S}-{secrets.token_hex(6)}" for record in records
    ]
    with store.writing(f"cannot save the review in {store.path}") as con:
        for record, review_id in zip(records, review_ids, strict=True):
            _insert_review(con, store, record, review_id)
    return review_ids


def _insert_review(
    con: duckdb.DuckDBPyConnection, store: Store, record: ReviewRecord, review_id: str
) -> None:
    found = con.execute(
        "SELECT status FROM review_items WHERE item_id = ?", [record.item_id]
    ).fetchall()
    if not found:
        raise NotFoundError(f"no review item {record.item_id!r} in {store.path}")
    con.execute(
        "INSERT INTO reviews (review_id, item_id, reviewer, reviewed_at, verdict, grades,"
        " question, note, source_tool, source_annotation_id, source_user_id, source_user_email)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            review_id,
            record.item_id,
            record.reviewer,
            record.reviewed_at,
            str(record.verdict),
            json.dumps(dict(record.grades), sort_keys=True),
            record.question,
            record.note,
            *(
                (None, None, None, None)
                if record.source is None
                else (
                    record.source.tool,
                    record.source.annotation_id,
                    record.source.user_id,
                    record.source.user_email,
                )
            ),
        ],
    )
    rows = con.execute(
        f"{_REVIEW_SELECT} WHERE r.item_id = ? ORDER BY r.reviewed_at, r.review_id",
        [record.item_id],
    ).fetchall()
    status = found[0][0]
    if status != "published":
        verdict = combine_reviews(_review(row) for row in rows).verdict
        status = {Verdict.accept: "accepted", Verdict.reject: "rejected", None: "open"}[verdict]
    con.execute(
        "UPDATE review_items SET status = ?, updated_at = ? WHERE item_id = ?",
        [status, utc_now(), record.item_id],
    )


def publish_version(
    store: Store,
    goldset: Goldset,
    publication: Publication,
    item_reviewers: Mapping[str, int],
) -> bool:
    """Store ``goldset`` (a new version of its name), the ``publication`` and which items went
    into it (``item_reviewers``: item id -> how many reviewers decided it), and mark those
    items published, all in ONE transaction: a publish that fails or is killed at any point
    leaves the previous version current and nothing of this one written. Returns False when
    the goldset's content was stored under its name already."""
    import pandas as pd

    store.require_writable()
    published = pd.DataFrame(
        {
            "item_id": list(item_reviewers),
            "goldset": goldset.name,
            "goldset_version": goldset.version,
            "published_at": publication.published_at,
            "verdict_reviews": pd.array(list(item_reviewers.values()), dtype="int32"),
        }
    )
    with store.writing(f"cannot publish goldset {goldset.name}") as con:
        created = insert_goldset_version(store, con, goldset).created
        con.execute(
            f"INSERT INTO review_publications ({_PUBLICATION_COLUMNS}) VALUES ({placeholders(10)})",
            values_of(publication, _PUBLICATION_COLUMNS),
        )
        store.insert_frame("review_published_items", published)
        con.execute(
            "UPDATE review_items SET status = 'published', updated_at = ?"
            " WHERE list_contains(?, item_id)",
            [publication.published_at, list(item_reviewers)],
        )
    return created


def list_publications(store: Store, goldset: str | None = None) -> list[Publication]:
    """Publishes, newest first (optionally of one goldset)."""
    rows = store.fetch(
        f"SELECT {_PUBLICATION_COLUMNS} FROM review_publications WHERE ? IS NULL OR goldset = ?"
        " ORDER BY published_at DESC",
        [goldset, goldset],
    )
    return [Publication(*row) for row in rows]


def published_item_ids(store: Store, goldset_version: str) -> list[str]:
    """The items published into ``goldset_version``."""
    rows = store.fetch(
        "SELECT item_id FROM review_published_items WHERE goldset_version = ? ORDER BY item_id",
        [goldset_version],
    )
    return [row[0] for row in rows]


def assessor_grades(
    store: Store, goldset_version: str, *, assessors: Sequence[str] = ()
) -> list[AssessorGrade]:
    """Each judgment of ``goldset_version`` that an assessor graded too (the judged pool's
    newest grade of the same query text and document id by that assessor), optionally only
    of ``assessors``; by query, document and assessor."""
    names = list(assessors) or None
    rows = store.fetch(
        "SELECT j.query_id, q.text, j.doc_id, j.relevance, p.assessor, p.grade, p.reason,"
        " p.judged_at FROM judgments j"
        " JOIN goldset_queries q ON q.goldset_version = j.goldset_version"
        "  AND q.query_id = j.query_id"
        " JOIN judged_pool p ON p.query_hash = sha256(q.text) AND p.doc_id = j.doc_id"
        " WHERE j.goldset_version = ? AND p.grade IS NOT NULL"
        " AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], p.assessor))"
        " QUALIFY row_number() OVER (PARTITION BY j.query_id, j.doc_id, p.assessor"
        "  ORDER BY p.judged_at DESC) = 1"
        " ORDER BY j.query_id, j.doc_id, p.assessor",
        [goldset_version, names, names],
    )
    return [AssessorGrade(*row) for row in rows]


def traffic_volume(
    store: Store, queries: Iterable[tuple[str, str | None]]
) -> dict[tuple[str, str | None], int]:
    """How many logged traffic queries asked each of ``queries`` (text, tenant): records of
    the same text up to case and whitespace (``dedup_text``, as traffic counts identical
    queries: they share a ``query_key``) and the same tenant, an untenanted query counting
    the untenanted records (another tenant asking the same words says nothing of how often
    this one does). Queries never logged are absent."""
    wanted = sorted(set(queries), key=lambda query: (query[0], query[1] or ""))
    if not wanted:
        return {}
    rows = store.fetch(
        "SELECT w.text, w.tenant, count(*) FROM traffic_records t"
        " JOIN (SELECT unnest(?::VARCHAR[]) AS text, unnest(?::VARCHAR[]) AS tenant,"
        " unnest(?::VARCHAR[]) AS dedup) w"
        f" ON t.query_key = {query_key_sql('w.tenant', 'w.dedup')}"
        " AND t.text IS NOT NULL GROUP BY w.text, w.tenant",
        [
            [text for text, _ in wanted],
            [tenant for _, tenant in wanted],
            [dedup_text(text) for text, _ in wanted],
        ],
    )
    return {(row[0], row[1]): int(row[2]) for row in rows}
