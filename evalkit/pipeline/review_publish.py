"""Publishing the review queue: how far reviewers agree, and the accepted items of a goldset
made into a new content-hashed goldset version, in one transaction.

``evalkit review agreement`` and ``evalkit goldset publish`` call these, as the dashboard's
review page does; how the reviews of one item combine is ``evalkit.goldset.review``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from evalkit.clock import utc_now
from evalkit.errors import ConfigError, GoldsetError, InputError, NotFoundError
from evalkit.goldset.model import Goldset
from evalkit.goldset.review import combine_reviews, latest_per_reviewer
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
class PublishOutcome:
    """What ``publish_goldset`` did: the publication (None: nothing was ready to publish),
    whether its content was new, the accepted items left waiting for more reviews, and the
    accepted items no accepting reviewer graded a document of (``ungraded``: left in the
    queue, they would add a query with no judgment)."""

    goldset: str
    publication: Publication | None
    created: bool
    waiting: tuple[str, ...]
    ungraded: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "goldset": self.goldset,
            "published": self.publication is not None,
            "publication": None if self.publication is None else self.publication.to_dict(),
            "new_version": self.created,
            "waiting_for_reviews": list(self.waiting),
            "ungraded": list(self.ungraded),
        }


@dataclass(slots=True)
class _Merge:
    queries: list[Query]
    positions: dict[str, int]
    judgments: dict[tuple[str, str], Judgment]
    queries_added: int = 0
    queries_edited: int = 0
    judgments_added: int = 0
    judgments_changed: int = 0


def _merge_item(
    merge: _Merge, item: ReviewItem, grades: Mapping[str, int], question: str | None
) -> None:
    query = item.query
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
    for doc_id, grade in grades.items():
        key = (query.id, doc_id)
        before = merge.judgments.get(key)
        span = spans.get(doc_id) or (before.span if before is not None else None)
        judgment = Judgment(query.id, doc_id, grade, span)
        if before is None:
            merge.judgments_added += 1
        elif before != judgment:
            merge.judgments_changed += 1
        merge.judgments[key] = judgment


def publish_goldset(
    access: WriterAccess, name: str, request: PublishRequest = PUBLISH_DEFAULTS
) -> PublishOutcome:
    """Publish the accepted items of goldset ``name`` (combined verdict accept, at least
    ``request.min_reviews`` reviewers; ``evalkit.goldset.review``) as a new content-hashed
    version merged with the current one: new queries are added, an edited question replaces
    its query's text, graded documents replace the judgments of the same query and document
    (keeping the item's span, else the judgment's) and other judgments stay. Everything is
    written in one transaction (``evalkit.store.review.publish_version``), so a publish
    killed at any point leaves the previous version current. An accepted item with no
    graded document (accepted before reviews needed one) is left in the queue, never
    published as a query without judgments."""
    if request.min_reviews < 1:
        raise ConfigError(f"--min-reviews must be at least 1, got {request.min_reviews}")
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
        merge = _Merge(
            queries=list(current.queries) if current else [],
            positions={query.id: i for i, query in enumerate(current.queries)} if current else {},
            judgments={(j.query_id, j.doc_id): j for j in current.judgments} if current else {},
        )
        for item, _, grades, question in ready:
            _merge_item(merge, item, grades, question)
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
    return PublishOutcome(name, publication, created, tuple(waiting), tuple(ungraded))


def _check_conflicts(current: Goldset | None, items: Sequence[ReviewItem]) -> None:
    texts = {query.id: query.text for query in current.queries} if current else {}
    problems: list[InputError] = []
    for item in items:
        known = texts.setdefault(item.query.id, item.query.text)
        if known != item.query.text:
            problems.append(
                InputError(
                    f"item {item.item_id} asks {item.query.text!r} as query "
                    f"'{item.query.id}', which the goldset (or another item) asks as "
                    f"{known!r}; reject one of them (`evalkit review grade ITEM --reject`)",
                    field="query_id",
                )
            )
    if problems:
        lines = [f"cannot publish, {len(problems)} conflict(s):", *(f"  {p}" for p in problems[:3])]
        raise GoldsetError("\n".join(lines), problems=problems)
