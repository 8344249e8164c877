"""Publishing the review queue: how far reviewers agree, and the accepted items of a goldset
made into a new content-hashed goldset version, in one transaction.

``evalkit review agreement`` and ``evalkit goldset publish`` call these, as the dashboard's
review page does; how the reviews of one item combine is ``evalkit.goldset.review``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from evalkit.clock import utc_now
from evalkit.errors import ConfigError, GoldsetError, InputError, NotFoundError
from evalkit.goldset.model import Goldset
from evalkit.goldset.review import (
    asked_as,
    combine_reviews,
    latest_per_reviewer,
    tenant_phrase,
)
from evalkit.judging.agreement import weighted_kappa_interval
from evalkit.records import Judgment, Query
from evalkit.records.review import (
    PUBLISH_DEFAULTS,
    PublishRequest,
    ReviewItem,
    ReviewRecord,
    Verdict,
)
from evalkit.store.access import WriterAccess
from evalkit.store.goldsets import current_goldset, list_goldsets
from evalkit.store.review import (
    Publication,
    item_reviews,
    list_items,
    publish_version,
)

__all__ = [
    "MergedQuery",
    "PublishOutcome",
    "ReviewerAgreement",
    "pair_agreement",
    "publish_goldset",
    "reviewer_agreement",
]


@dataclass(frozen=True, slots=True)
class ReviewerAgreement:
    """How far two reviewers agree on the items both reviewed: weighted Cohen's kappa over
    the documents both graded (linear weights on 0-3; plain kappa when both graded only 0
    and 1), with its bootstrap interval, and the share of items with the same verdict."""

    reviewer_a: str
    reviewer_b: str
    n_items: int
    n_pairs: int
    kappa: float | None
    low: float | None
    high: float | None
    scale: str | None
    verdict_agreement: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "reviewers": [self.reviewer_a, self.reviewer_b],
            "items": self.n_items,
            "pairs": self.n_pairs,
            "kappa": self.kappa,
            "low": self.low,
            "high": self.high,
            "scale": self.scale,
            "verdict_agreement": self.verdict_agreement,
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def pair_agreement(
    reviewer_a: str,
    reviewer_b: str,
    reviews: Iterable[tuple[ReviewRecord, ReviewRecord]],
    *,
    seed: int = 0,
) -> ReviewerAgreement:
    """The agreement of two reviewers from their reviews of the same items (one pair of
    reviews per item). Grades count where both accepted the item: a rejection's grades
    (saved before imports dropped them) judge nothing."""
    a_grades: list[int] = []
    b_grades: list[int] = []
    same_verdict = n_items = 0
    for first, second in reviews:
        n_items += 1
        same_verdict += first.verdict is second.verdict
        if first.verdict is not Verdict.accept or second.verdict is not Verdict.accept:
            continue
        for doc_id in sorted(set(first.grades) & set(second.grades)):
            a_grades.append(first.grades[doc_id])
            b_grades.append(second.grades[doc_id])
    kappa = low = high = None
    scale = None
    if a_grades:
        # The kappa kernel makes its second rater binary when the first graded only 0 and 1;
        # putting the rater with the wider scale first keeps the comparison graded.
        first_grades, second_grades = a_grades, b_grades
        if max(a_grades) <= 1 < max(b_grades):
            first_grades, second_grades = b_grades, a_grades
        result = weighted_kappa_interval(
            first_grades, second_grades, assessor_threshold=1, n_resamples=1000, seed=seed
        )
        kappa, low, high = _finite(result.kappa), _finite(result.low), _finite(result.high)
        scale = result.scale
    return ReviewerAgreement(
        reviewer_a=reviewer_a,
        reviewer_b=reviewer_b,
        n_items=n_items,
        n_pairs=len(a_grades),
        kappa=kappa,
        low=low,
        high=high,
        scale=scale,
        verdict_agreement=same_verdict / n_items if n_items else math.nan,
    )


def reviewer_agreement(access: WriterAccess, goldset: str) -> list[ReviewerAgreement]:
    """Cohen's kappa of every pair of reviewers over the items of ``goldset`` both reviewed
    (each reviewer's newest review of an item), by reviewer pair."""
    with access.writer("review agreement") as store:
        reviews = item_reviews(store, goldset=goldset)
    newest = {
        item_id: {review.reviewer: review for review in latest_per_reviewer(records)}
        for item_id, records in reviews.items()
    }
    reviewers = sorted({name for by_reviewer in newest.values() for name in by_reviewer})
    results = []
    for first, second in itertools.combinations(reviewers, 2):
        shared = [
            (by_reviewer[first], by_reviewer[second])
            for _, by_reviewer in sorted(newest.items())
            if first in by_reviewer and second in by_reviewer
        ]
        if shared:
            results.append(pair_agreement(first, second, shared))
    return results


@dataclass(frozen=True, slots=True)
class MergedQuery:
    """A published item whose new query asks what a query of the goldset (or of an item
    published before it in the same publish) asks already: its grades went into that query,
    ``into``, instead of a second copy of the question. ``replaced``: the judgments of
    ``into`` whose grade the item's reviews changed (document id, grade before, after)."""

    item_id: str
    query_id: str
    into: str
    replaced: tuple[tuple[str, int, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "item_id": self.item_id,
            "query_id": self.query_id,
            "into": self.into,
            "replaced": [
                {"doc_id": doc_id, "before": before, "after": after}
                for doc_id, before, after in self.replaced
            ],
        }


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    """What ``publish_goldset`` did: the publication (None: nothing was ready to publish),
    whether its content was new, the accepted items left waiting for more reviews, the
    accepted items no accepting reviewer graded a document of (``ungraded``: left in the
    queue, they would add a query with no judgment), and the items merged into a query the
    goldset asks already (``merged``)."""

    goldset: str
    publication: Publication | None
    created: bool
    waiting: tuple[str, ...]
    ungraded: tuple[str, ...] = ()
    merged: tuple[MergedQuery, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "goldset": self.goldset,
            "published": self.publication is not None,
            "publication": None if self.publication is None else self.publication.to_dict(),
            "new_version": self.created,
            "waiting_for_reviews": list(self.waiting),
            "ungraded": list(self.ungraded),
            "merged": [merged.to_dict() for merged in self.merged],
        }

    def merged_summary(self) -> str:
        """Which reviewed queries were merged into a query the goldset asks already, and the
        grades their reviews replaced ("" when none was)."""
        if not self.merged:
            return ""
        into = ", ".join(f"{m.query_id} into {m.into}" for m in self.merged[:5])
        more = f" and {len(self.merged) - 5} more" if len(self.merged) > 5 else ""
        replaced = [
            f"{m.into} {doc_id} {before} -> {after}"
            for m in self.merged
            for doc_id, before, after in m.replaced
        ]
        n = len(self.merged)
        text = (
            f"{n} reviewed quer{'y' if n == 1 else 'ies'} already in the goldset (same tenant, "
            f"same text up to case and spacing), merged instead of added: {into}{more}"
        )
        if replaced:
            shown = ", ".join(replaced[:5]) + (", ..." if len(replaced) > 5 else "")
            text += f"; reviewed grades replaced the goldset's: {shown}"
        return text


@dataclass(slots=True)
class _Merge:
    queries: list[Query]
    positions: dict[str, int]
    judgments: dict[tuple[str, str], Judgment]
    queries_added: int = 0
    queries_edited: int = 0
    judgments_added: int = 0
    judgments_changed: int = 0
    merged: list[MergedQuery] = field(default_factory=list)


def _merge_item(
    merge: _Merge, item: ReviewItem, grades: Mapping[str, int], question: str | None, into: str
) -> None:
    """Add ``item``'s query and grades to ``merge``; the grades go to query ``into``, which is
    the item's own query unless the goldset asks its question already (``_publish_targets``),
    whose text then stays as it is."""
    query = item.query
    if into == query.id:
        text = question or query.text
        position = merge.positions.get(query.id)
        if position is None:
            merge.positions[query.id] = len(merge.queries)
            merge.queries.append(replace(query, text=text))
            merge.queries_added += 1
        elif merge.queries[position].text != text:
            merge.queries[position] = replace(merge.queries[position], text=text)
            merge.queries_edited += 1
    spans = {document.doc_id: document.span for document in item.documents}
    replaced: list[tuple[str, int, int]] = []
    for doc_id, grade in grades.items():
        key = (into, doc_id)
        before = merge.judgments.get(key)
        span = spans.get(doc_id) or (before.span if before is not None else None)
        judgment = Judgment(into, doc_id, grade, span)
        if before is None:
            merge.judgments_added += 1
        elif before != judgment:
            merge.judgments_changed += 1
            if before.relevance != grade:
                replaced.append((doc_id, before.relevance, grade))
        merge.judgments[key] = judgment
    if into != query.id:
        merge.merged.append(MergedQuery(item.item_id, query.id, into, tuple(replaced)))


def publish_goldset(
    access: WriterAccess, name: str, request: PublishRequest = PUBLISH_DEFAULTS
) -> PublishOutcome:
    """Publish the accepted items of goldset ``name`` as a new content-hashed version merged with
    the current one, in one transaction (docs/goldsets.md, "Review queue"); an accepted item
    with no graded document stays queued.
    """
    if request.min_reviews < 1:
        raise ConfigError(f"`min_reviews` must be at least 1, got {request.min_reviews}")
    with access.writer("goldset publish") as store:
        accepted = list_items(store, goldset=name, status="accepted", needed_reviews=0)
        if not accepted and not list_items(store, goldset=name, limit=1):
            raise NotFoundError(
                f"the review queue holds no item of goldset {name!r}; queue drafts with "
                "`evalkit review add DIR --goldset NAME`"
            )
        reviews = item_reviews(store, item_ids=[queued.item.item_id for queued in accepted])
        current = current_goldset(store, name)
        ready: list[tuple[ReviewItem, int, Mapping[str, int], str | None]] = []
        waiting: list[str] = []
        ungraded: list[str] = []
        for queued in accepted:
            combined = combine_reviews(reviews.get(queued.item.item_id, ()))
            if combined.verdict is not Verdict.accept:
                continue
            if not combined.grades:
                ungraded.append(queued.item.item_id)
                continue
            if combined.n_reviewers < request.min_reviews:
                waiting.append(queued.item.item_id)
                continue
            ready.append((queued.item, combined.n_reviewers, combined.grades, combined.question))
        if not ready:
            return PublishOutcome(name, None, False, tuple(waiting), tuple(ungraded))
        _check_conflicts(current, [item for item, _, _, _ in ready])
        targets = _publish_targets(current, [(item, g, q) for item, _, g, q in ready])
        merge = _Merge(
            queries=list(current.queries) if current else [],
            positions={query.id: i for i, query in enumerate(current.queries)} if current else {},
            judgments={(j.query_id, j.doc_id): j for j in current.judgments} if current else {},
        )
        for item, _, grades, question in ready:
            _merge_item(merge, item, grades, question, targets[item.item_id])
        published = Goldset.build(
            name,
            merge.queries,
            sorted(merge.judgments.values(), key=lambda j: (j.query_id, j.doc_id)),
            source=f"review queue ({len(ready)} items)",
        )
        stored_versions = {info.version for info in list_goldsets(store, name)}
        if (
            current is not None
            and published.version != current.version
            and published.version in stored_versions
        ):
            raise ConfigError(
                f"the reviewed goldset {name!r} has the content of its older version "
                f"{published.version}; import that version again to make it current"
            )
        publication = Publication(
            goldset=name,
            goldset_version=published.version,
            previous_version=None if current is None else current.version,
            published_at=utc_now(),
            min_reviews=request.min_reviews,
            n_items=len(ready),
            n_queries_added=merge.queries_added,
            n_queries_edited=merge.queries_edited,
            n_judgments_added=merge.judgments_added,
            n_judgments_changed=merge.judgments_changed,
        )
        created = publish_version(
            store, published, publication, {item.item_id: n for item, n, _, _ in ready}
        )
    return PublishOutcome(
        name, publication, created, tuple(waiting), tuple(ungraded), tuple(merge.merged)
    )


def _check_conflicts(current: Goldset | None, items: Sequence[ReviewItem]) -> None:
    """Refuse items whose query id the goldset (or an item before them) asks with another
    text, or for another tenant: their grades would judge another question."""
    asked = {query.id: query for query in current.queries} if current else {}
    problems: list[InputError] = []
    for item in items:
        query = item.query
        known = asked.setdefault(query.id, query)
        if known.tenant != query.tenant:
            other = f"for {tenant_phrase(known.tenant)}, not {tenant_phrase(query.tenant)}"
        elif known.text != query.text:
            other = f"as {known.text!r}"
        else:
            continue
        problems.append(
            InputError(
                f"item {item.item_id} asks {query.text!r} as query '{query.id}', which the "
                f"goldset (or another item) asks {other}; reject one of them "
                "(`evalkit review grade ITEM --reject`)",
                field="query_id",
            )
        )
    _refuse(problems)


def _publish_targets(
    current: Goldset | None, ready: Sequence[tuple[ReviewItem, Mapping[str, int], str | None]]
) -> dict[str, str]:
    """The query each item publishes into (item id -> query id): its own, unless a goldset query
    or an earlier item asks the same (``asked_as``), so no question counts twice. Raises
    GoldsetError naming every ambiguous, reworded or conflicting-grade item.
    """
    queries = current.queries if current is not None else ()
    stored = {query.id for query in queries}
    asked: dict[tuple[str | None, str], list[str]] = {}
    for query in queries:
        asked.setdefault(asked_as(query), []).append(query.id)
    targets: dict[str, str] = {}
    graded: dict[tuple[str, str], tuple[int, ReviewItem]] = {}
    problems: list[InputError] = []
    # The goldset's own queries first, so that a new query asking what one of them is
    # reworded into is a copy of it, whatever the order of the items.
    for item, grades, question in sorted(ready, key=lambda entry: entry[0].query.id not in stored):
        query = item.query
        if query.id in stored:
            owners = [query.id]
            reworded = asked_as(query, question)
            if reworded != asked_as(query) and reworded in asked:
                problems.append(
                    InputError(
                        f"item {item.item_id} rewords query '{query.id}' as {question!r}, "
                        f"which query '{asked[reworded][0]}' asks already; review it again "
                        "with another question, or reject it",
                        field="question",
                    )
                )
            # A later item asking the reworded question is a copy of this query.
            asked.setdefault(reworded, owners)
        else:
            owners = asked.setdefault(asked_as(query, question), [query.id])
        if len(owners) > 1:
            problems.append(
                InputError(
                    f"item {item.item_id} (query '{query.id}': {question or query.text!r}) "
                    "asks what queries "
                    f"{', '.join(repr(owner) for owner in owners)} of the goldset ask already; "
                    "reject it (`evalkit review grade ITEM --reject`) and grade those "
                    "queries' documents in an imported version",
                    field="query_id",
                )
            )
            continue
        into = targets[item.item_id] = owners[0]
        for doc_id, grade in sorted(grades.items()):
            first = graded.setdefault((into, doc_id), (grade, item))
            if first[0] != grade:
                other = first[1]
                problems.append(
                    InputError(
                        f"items {other.item_id} (query '{other.query.id}') and {item.item_id} "
                        f"(query '{query.id}') both publish into query '{into}' and grade "
                        f"document '{doc_id}' {first[0]} and {grade}; review one of them again "
                        "with the other's grade, or reject one",
                        field="grade",
                    )
                )
    _refuse(problems)
    return targets


def _refuse(problems: list[InputError]) -> None:
    """Raise a ``GoldsetError`` naming the first ``problems`` (if any)."""
    if problems:
        lines = [f"cannot publish, {len(problems)} conflict(s):", *(f"  {p}" for p in problems[:3])]
        raise GoldsetError("\n".join(lines), problems=problems)
