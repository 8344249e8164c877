"""Records of the review queue: draft goldset items waiting for people, and their reviews."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final

from evalkit.records import Query, Span

__all__ = [
    "DISAGREEMENT_DEFAULTS",
    "MAX_REVIEWER_CHARS",
    "PUBLISH_DEFAULTS",
    "REVIEW_GRADES",
    "DisagreementRequest",
    "PublishRequest",
    "ReviewDocument",
    "ReviewItem",
    "ReviewOrigin",
    "ReviewRecord",
    "ReviewSource",
    "Verdict",
    "reviewer_problem",
]

REVIEW_GRADES = (0, 1, 2, 3)
"""The grades a reviewer gives: 0 not relevant, 1 related, 2 relevant, 3 highly relevant."""


MAX_REVIEWER_CHARS = 200
"""The longest name a review may be signed with."""

# Control characters (C0 with tab and newline, DEL, C1), line and paragraph separators, and
# the bidirectional embeddings, overrides and isolates: a name is printed on one line of
# a terminal and drawn on pages, where these would move the cursor, ring, recolour, break
# the line or reorder the text around the name.
_UNFIT_IN_NAMES = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def reviewer_problem(name: str) -> str | None:
    """What keeps ``name`` from signing a review, or None when nothing does: a control
    character (C0 or C1: ESC, BEL, a newline...), a line separator, a bidirectional
    override or isolate (U+202A-U+202E, U+2066-U+2069), or more than
    ``MAX_REVIEWER_CHARS`` characters."""
    if len(name) > MAX_REVIEWER_CHARS:
        return f"a name of {len(name):,} characters; at most {MAX_REVIEWER_CHARS} are taken"
    found = _UNFIT_IN_NAMES.search(name)
    if found is not None:
        return (
            f"the name holds {ascii(found.group())[1:-1]} at character {found.start() + 1}: a "
            "name may hold no control character (ESC, BEL, a newline...) and no "
            "bidirectional override (U+202A-U+202E, U+2066-U+2069), as it is printed on "
            "terminals and drawn on pages"
        )
    return None


class ReviewOrigin(StrEnum):
    """Where a draft item came from."""

    traffic = "traffic"
    """Promoted production traffic (``evalkit traffic promote``)."""
    generated = "generated"
    """A question generated from the corpus (``evalkit goldset generate``)."""
    disagreement = "disagreement"
    """A goldset judgment an LLM assessor graded differently."""


class Verdict(StrEnum):
    """A reviewer's decision on an item."""

    accept = "accept"
    reject = "reject"


@dataclass(frozen=True, slots=True)
class ReviewDocument:
    """One document a reviewer grades for an item: its id, what to read, and the grade
    suggested so far (by the generator, an assessor or a human judgment) with who suggested
    it."""

    doc_id: str
    text: str = ""
    suggested_grade: int | None = None
    suggested_by: str | None = None
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """A draft goldset item: a query for goldset ``goldset`` and the documents to grade.

    ``priority`` orders the queue (highest first: what a review would change most);
    ``reason`` says why in words; ``provenance`` keeps where it came from (generator model and
    prompt version, traffic window, assessor).
    """

    item_id: str
    goldset: str
    origin: ReviewOrigin
    query: Query
    documents: tuple[ReviewDocument, ...]
    priority: float = 0.0
    reason: str = ""
    provenance: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReviewSource:
    """Where an imported review came from: the annotation tool (``label-studio``), that
    tool's own id of the annotation, and its annotator's user id and email (each ``None``
    when the export does not give it: Label Studio's JSON export names a user by id, its
    JSON-MIN export by email). Two imports of one annotation carry the same ids whatever
    name it is signed with."""

    tool: str
    annotation_id: str | None = None
    user_id: str | None = None
    user_email: str | None = None


@dataclass(frozen=True, slots=True)
class ReviewRecord:
    """One reviewer's review of one item: a verdict, a grade per document (0-3), and the
    question as edited (``None`` when kept as it was). Reviews are never overwritten: a
    reviewer who reviews again adds a newer record."""

    item_id: str
    reviewer: str
    verdict: Verdict
    grades: Mapping[str, int]
    reviewed_at: datetime
    question: str | None = None
    note: str = ""
    source: ReviewSource | None = None
    """The annotation tool's annotation this review was imported from; ``None`` for a review
    given in evalkit."""


@dataclass(frozen=True, slots=True)
class DisagreementRequest:
    """Which goldset judgments an LLM assessor disagrees with enough to queue for review: at
    least ``min_gap`` grades apart on a graded goldset, or on a binary one the assessor's grade
    made binary at ``assessor_threshold`` differing (docs/goldsets.md). Empty ``assessors``:
    every assessor in the pool."""

    assessors: tuple[str, ...] = ()
    min_gap: int = 1
    assessor_threshold: int = 2


DISAGREEMENT_DEFAULTS: Final = DisagreementRequest()
"""``evalkit review disagreements``."""


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """How reviewed items become a goldset version: items whose combined verdict is accept
    and that at least ``min_reviews`` distinct reviewers reviewed."""

    min_reviews: int = 1


PUBLISH_DEFAULTS: Final = PublishRequest()
"""``evalkit goldset publish``."""
