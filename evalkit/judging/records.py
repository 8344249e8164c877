"""What the relevance assessor takes and gives: a (query, document text) pair and its grade.

A pair is identified by the SHA-256 of the query text and of the document's content, never
by the document id alone: a document whose content changed is a new pair and is judged
again, and the same text returned under two ids is judged once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "GRADES",
    "Assessment",
    "JudgePair",
    "Unjudged",
    "text_hash",
]

GRADES: dict[int, str] = {
    0: "unrelated",
    1: "related",
    2: "highly relevant",
    3: "perfectly relevant",
}
"""The four grades of the assessor's scale (UMBRELA-style), lowest first."""


def text_hash(text: str) -> str:
    """SHA-256 (hex) of ``text`` as UTF-8: the identity of a query or a document's content."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Unjudged(StrEnum):
    """Why a pair has no grade (it is stored so, and judged again by the next pass)."""

    malformed_reply = "malformed_reply"
    """The reply was not a JSON object with an integer ``grade`` from 0 to 3, twice."""
    judge_error = "judge_error"
    """The endpoint answered an error (after the configured retries)."""
    judge_timeout = "judge_timeout"
    """The endpoint did not answer in time (after the configured retries)."""


@dataclass(frozen=True, slots=True)
class JudgePair:
    """One judgment to make: how relevant the document ``doc_id`` (its ``text``) is to the
    query ``query``. ``query_id`` says where the query came from (a goldset or traffic
    query id); it takes no part in the pair's identity."""

    query: str
    doc_id: str
    text: str
    query_id: str | None = None

    @property
    def query_hash(self) -> str:
        """SHA-256 of the query text."""
        return text_hash(self.query)

    @property
    def content_hash(self) -> str:
        """SHA-256 of the document's text."""
        return text_hash(self.text)

    @property
    def key(self) -> tuple[str, str]:
        """(query hash, content hash): one judgment per key and assessor."""
        return (self.query_hash, self.content_hash)


@dataclass(frozen=True, slots=True)
class Assessment:
    """The assessor's verdict on one pair: a ``grade`` 0-3 with its optional ``reason``, or
    none, with why (``unjudged``) and what the endpoint said (``detail``: the reply's first
    200 characters, or the error, secrets masked). ``flags`` name what the pair's text holds
    that reads as written to steer the assessor (``evalkit.judging.assessor.prompt_flags``)."""

    pair: JudgePair
    assessor: str
    grade: int | None
    reason: str | None = None
    unjudged: Unjudged | None = None
    detail: str | None = None
    flags: tuple[str, ...] = ()

    @property
    def judged(self) -> bool:
        """True when the pair got a grade."""
        return self.grade is not None
