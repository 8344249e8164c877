"""How the reviews of one draft goldset item combine into its verdict and grades.

Each reviewer counts once, with their newest review. The verdict is the majority of accepts
and rejects (none on a tie); each document's grade is the median of the accepting reviewers'
grades, the lower middle one on an even count (the more cautious grade); the question is the
newest edit by an accepting reviewer. The rules: docs/goldsets.md, "Review queue".
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from evalkit.records import Query, dedup_text
from evalkit.records.review import ReviewOrigin, ReviewRecord, Verdict

__all__ = [
    "CombinedReview",
    "asked_as",
    "combine_reviews",
    "latest_per_reviewer",
    "lower_median",
    "review_item_id",
    "shared_texts",
    "tenant_phrase",
]


def review_item_id(
    goldset: str,
    origin: ReviewOrigin,
    query_text: str,
    query_id: str | None = None,
    tenant: str | None = None,
) -> str:
    """The id of a review item: 16 hex digits of the SHA-256 of its goldset's name, its
    origin, its query text and its query's tenant, so that the same draft ingested twice is
    queued once, and the same question asked by two tenants is two items (one tenant's
    documents are never graded for another's question).

    A query with no tenant hashes no tenant (the ids of untenanted items are those from
    before tenants were part of the id). ``query_id`` is given for a text that several
    queries of the same draft or goldset share (SciFact asks some questions twice, with
    other judgments): each of them is then an item of its own instead of one silently
    replacing the other."""
    key: list[object] = [goldset, str(origin), query_text]
    if query_id is not None:
        key.append(query_id)
    if tenant is not None:
        # An object, not a string: a tenant never hashes like a query id.
        key.append({"tenant": tenant})
    payload = json.dumps(key, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def asked_as(query: Query, text: str | None = None) -> tuple[str | None, str]:
    """What makes two queries of a goldset the same question: the same tenant and the same
    text up to case and whitespace (``dedup_text``, the form under which traffic counts a
    window's distinct queries). ``text`` stands for the query's own (a reviewer's rewording)."""
    return (query.tenant, dedup_text(query.text if text is None else text))


def tenant_phrase(tenant: str | None) -> str:
    """Whose question a query is, for messages: ``tenant 'acme'`` or ``no tenant``."""
    return "no tenant" if tenant is None else f"tenant {tenant!r}"


def shared_texts(queries: Iterable[Query]) -> frozenset[str]:
    """The texts more than one of ``queries`` asks (their items are keyed by query id too)."""
    counts = Counter(query.text for query in queries)
    return frozenset(text for text, n in counts.items() if n > 1)


@dataclass(frozen=True, slots=True)
class CombinedReview:
    """The reviews of one item taken together (see the module docstring for the rule)."""

    verdict: Verdict | None
    grades: Mapping[str, int]
    question: str | None
    reviewers: tuple[str, ...]
    n_accept: int
    n_reject: int

    @property
    def n_reviewers(self) -> int:
        """How many distinct reviewers reviewed the item."""
        return len(self.reviewers)


def latest_per_reviewer(records: Iterable[ReviewRecord]) -> list[ReviewRecord]:
    """The newest review of each reviewer, oldest first (reviews of one reviewer at the same
    instant: the one given last)."""
    newest: dict[str, ReviewRecord] = {}
    for record in records:
        kept = newest.get(record.reviewer)
        if kept is None or record.reviewed_at >= kept.reviewed_at:
            newest[record.reviewer] = record
    return sorted(newest.values(), key=lambda record: (record.reviewed_at, record.reviewer))


def lower_median(grades: Sequence[int]) -> int:
    """The median of ``grades``; of an even number, the lower middle one."""
    if not grades:
        raise ValueError("the median of no grades is undefined")
    ordered = sorted(grades)
    return ordered[(len(ordered) - 1) // 2]


def combine_reviews(records: Iterable[ReviewRecord]) -> CombinedReview:
    """Combine the reviews of one item: each reviewer's newest, majority verdict, median
    grades of the accepting reviewers, their newest edit of the question."""
    latest = latest_per_reviewer(records)
    accepting = [record for record in latest if record.verdict is Verdict.accept]
    n_accept = len(accepting)
    n_reject = len(latest) - n_accept
    verdict: Verdict | None = None
    if n_accept > n_reject:
        verdict = Verdict.accept
    elif n_reject > n_accept:
        verdict = Verdict.reject
    by_document: dict[str, list[int]] = {}
    for record in accepting:
        for doc_id, grade in record.grades.items():
            by_document.setdefault(doc_id, []).append(grade)
    edits = [record.question for record in accepting if record.question is not None]
    return CombinedReview(
        verdict=verdict,
        grades={doc_id: lower_median(grades) for doc_id, grades in sorted(by_document.items())},
        question=edits[-1] if edits else None,
        reviewers=tuple(sorted(record.reviewer for record in latest)),
        n_accept=n_accept,
        n_reject=n_reject,
    )
