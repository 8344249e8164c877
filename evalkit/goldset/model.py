"""The Goldset record and its content-hash version."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from evalkit.errors import ConfigError
from evalkit.records import Judgment, Query

__all__ = [
    "MAX_GOLDSET_NAME_LENGTH",
    "Goldset",
    "check_goldset_name",
    "goldset_version",
    "unknown_documents",
]

MAX_GOLDSET_NAME_LENGTH = 200
"""The longest name a goldset is stored under."""


def unknown_documents(unknown: Iterable[str], known: Iterable[str]) -> str:
    """``'x', 'y'; its documents: a, b`` for a message about document ids ``unknown`` that
    are not among ``known``; an id that matches a known one but for its Unicode form (NFC
    against NFD, as two keyboards or systems may type ``café``) is said to, since the two
    read the same on screen."""
    known = list(known)
    normal = {unicodedata.normalize("NFC", doc_id): doc_id for doc_id in known}
    named = []
    for doc_id in unknown:
        twin = normal.get(unicodedata.normalize("NFC", doc_id))
        if twin is None:
            named.append(repr(doc_id))
        else:
            named.append(
                f"{doc_id!r} (written {doc_id!a}: the same letters as its document "
                f"{twin!a} in another Unicode form; ids are compared as written)"
            )
    return f"{', '.join(named)}; its documents: {', '.join(known)}"


def check_goldset_name(name: str, *, option: str = "`name`", advice: str | None = None) -> str:
    """Return ``name`` when a goldset can be stored under it and named again by it
    (the ``goldset`` setting); raise ``ConfigError`` saying what is wrong if not, and that
    ``option`` (a setting, or the flag a command names it by) gives another (or, given,
    ``advice`` on what to do instead)."""
    problem = None
    if not name.strip():
        problem = "is empty"
    elif name != name.strip():
        problem = "starts or ends with white space"
    elif "/" in name or "\\" in name or name in (".", ".."):
        problem = "is spelt as a path, so `goldset` would read it as one"
    elif any(unicodedata.category(character) in ("Cc", "Cs") for character in name):
        problem = "holds a control character"
    elif len(name) > MAX_GOLDSET_NAME_LENGTH:
        problem = f"is longer than {MAX_GOLDSET_NAME_LENGTH} characters"
    if problem is not None:
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise ConfigError(
            f"goldset name {shown!r} {problem}; "
            + (advice or f"give a name such as 'support-faq' ({option})")
        )
    return name


def goldset_version(queries: Iterable[Query], judgments: Iterable[Judgment]) -> str:
    """Content hash of a goldset: the same queries and judgments give the same version.

    The hash is over a canonical form (records sorted by id, fixed key order, no
    whitespace), so it does not change with key order, whitespace or line order in the
    source files. Twelve hex digits are shown to people; the full digest is not needed to
    tell versions of one goldset apart. A span-anchored judgment adds its span (source id,
    offsets, text) to its entry; a judgment without a span is hashed as it always was, so
    goldsets without spans keep their versions.
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
        (_canonical_judgment(judgment) for judgment in judgments), key=_judgment_order
    )
    payload = json.dumps(
        {"queries": canonical_queries, "judgments": canonical_judgments},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


def _canonical_judgment(judgment: Judgment) -> tuple[object, ...]:
    span = judgment.span
    if span is None:
        return (judgment.query_id, judgment.doc_id, judgment.relevance)
    return (
        judgment.query_id,
        judgment.doc_id,
        judgment.relevance,
        {"source_id": span.source_id, "start": span.start, "end": span.end, "text": span.text},
    )


def _judgment_order(entry: tuple[object, ...]) -> tuple[str, str, int]:
    # The order of spanless entries before spans existed; (query_id, doc_id) is unique in a
    # goldset, so the span never has to break a tie.
    query_id, doc_id, relevance = entry[:3]
    return (str(query_id), str(doc_id), int(str(relevance)))


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
