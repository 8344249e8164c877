"""The Goldset record and its content-hash version."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from evalkit.records import Judgment, Query

__all__ = ["Goldset", "goldset_version"]


def goldset_version(queries: Iterable[Query], judgments: Iterable[Judgment]) -> str:
    """Content hash of a goldset: the same queries and judgments give the same version.

    The hash is over a canonical form (records sorted by id, fixed key order, no
    whitespace), so it does not change with key order, whitespace or line order in the
    source files. Twelve hex digits are shown to people; the full digest is not needed to
    tell versions of one goldset apart.
    """
    canonical_queries = sorted(
        (
            {
                "id": query.id,
                "text": query.text,
                "tenant": query.tenant,
                "tags": sorted(query.tags),
                "reference_answer": query.reference_answer,
                "reference_context_ids": list(query.reference_context_ids),
            }
            for query in queries
        ),
        key=lambda record: str(record["id"]),
    )
    canonical_judgments = sorted(
        (judgment.query_id, judgment.doc_id, judgment.relevance) for judgment in judgments
    )
    payload = json.dumps(
        {"queries": canonical_queries, "judgments": canonical_judgments},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Goldset:
    """A named, versioned golden set: queries and their graded judgments.

    ``version`` is the content hash of the queries and judgments (see ``goldset_version``);
    ``source`` says where it was loaded from, for people.
    """

    name: str
    queries: tuple[Query, ...]
    judgments: tuple[Judgment, ...]
    version: str
    source: str = ""

    @classmethod
    def build(
        cls,
        name: str,
        queries: Iterable[Query],
        judgments: Iterable[Judgment],
        source: str = "",
    ) -> Goldset:
        """Make a goldset and compute its version from its content."""
        query_tuple = tuple(queries)
        judgment_tuple = tuple(judgments)
        return cls(
            name=name,
            queries=query_tuple,
            judgments=judgment_tuple,
            version=goldset_version(query_tuple, judgment_tuple),
            source=source,
        )

    @property
    def query_ids(self) -> tuple[str, ...]:
        """Query ids in file order."""
        return tuple(query.id for query in self.queries)
