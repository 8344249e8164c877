"""A stored goldset's history: each version with its counts, how it was made and what it
changed (``evalkit goldset show``), read from the goldset tables and from the remap and
publish records that made a version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from evalkit.store.goldsets import GoldsetInfo, require_goldset

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = ["Provenance", "VersionChanges", "VersionHistory", "goldset_history"]

RELEVANT_GRADE = 1
"""The grade from which ``VersionHistory.n_relevant`` counts a judgment relevant (trec_eval's
default threshold)."""


@dataclass(frozen=True, slots=True)
class Provenance:
    """How a version was made: ``kind`` is ``import``, ``remap`` or ``publish``; ``at`` when;
    ``made_from`` the version a remap or publish started from; ``detail`` what the store
    records of it (the import's source; the remap's corpora and counts; the publish's
    counts and the origins of its review items)."""

    kind: str
    at: datetime
    made_from: str | None = None
    detail: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VersionChanges:
    """What a version changed against an earlier one (``against``): queries added, removed
    and edited (same id, another text, tenant, tags or reference), judgments added, removed
    and changed (same query and document, another grade or span)."""

    against: str
    queries_added: int
    queries_removed: int
    queries_edited: int
    judgments_added: int
    judgments_removed: int
    judgments_changed: int


@dataclass(frozen=True, slots=True)
class VersionHistory:
    """One stored version of a goldset, as ``evalkit goldset show`` tells it."""

    info: GoldsetInfo
    n_relevant: int
    tags: Mapping[str, int]
    """Query tags and how many of the version's queries carry each."""
    provenance: Provenance
    changes: VersionChanges | None
    """Against the version it was made from, else the one stored before it under its name;
    None for the first."""

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form."""
        info = self.info
        return {
            "version": info.version,
            "current": info.current,
            "stored_at": info.imported_at,
            "current_since": info.current_since,
            "queries": info.n_queries,
            "judgments": info.n_judgments,
            "relevant": self.n_relevant,
            "tags": dict(self.tags),
            "provenance": {
                "kind": self.provenance.kind,
                "at": self.provenance.at,
                "made_from": self.provenance.made_from,
                **self.provenance.detail,
            },
            "changes": asdict(self.changes) if self.changes is not None else None,
        }


def goldset_history(store: Store, name: str) -> list[VersionHistory]:
    """Every stored version of goldset ``name``, the newest first; ``NotFoundError`` naming
    the stored goldsets when there is none."""
    versions = sorted(require_goldset(store, name), key=lambda i: i.imported_at, reverse=True)
    history = []
    for index, info in enumerate(versions):
        provenance = _provenance(store, info)
        earlier = versions[index + 1].version if index + 1 < len(versions) else None
        against = provenance.made_from or earlier
        (relevant,) = store.fetch(
            "SELECT count(*) FROM judgments WHERE goldset_version = ? AND relevance >= ?",
            [info.version, RELEVANT_GRADE],
        )[0]
        tags = store.fetch(
            "SELECT tag, count(*) FROM (SELECT unnest(tags) AS tag FROM goldset_queries"
            " WHERE goldset_version = ?) GROUP BY tag ORDER BY count(*) DESC, tag",
            [info.version],
        )
        history.append(
            VersionHistory(
                info=info,
                n_relevant=int(relevant),
                tags={str(tag): int(count) for tag, count in tags},
                provenance=provenance,
                changes=_changes(store, info.version, against) if against else None,
            )
        )
    return history


def _provenance(store: Store, info: GoldsetInfo) -> Provenance:
    remap = store.fetch(
        "SELECT old_goldset_version, remapped_at, old_goldset_name, corpus, old_corpus,"
        " min_overlap, n_mapped, n_stale, n_unmapped FROM goldset_remap_runs"
        " WHERE goldset_version = ? ORDER BY goldset_name = ? DESC, remapped_at LIMIT 1",
        [info.version, info.name],
    )
    if remap:
        old, at, old_name, corpus, old_corpus, share, mapped, stale, unmapped = remap[0]
        return Provenance(
            "remap",
            at,
            old,
            {
                "from_goldset": old_name,
                "corpus": corpus,
                "old_corpus": old_corpus,
                "min_overlap": share,
                "mapped": mapped,
                "stale": stale,
                "unmapped": unmapped,
            },
        )
    publication = store.fetch(
        "SELECT previous_version, published_at, n_items, min_reviews, n_queries_added,"
        " n_queries_edited, n_judgments_added, n_judgments_changed FROM review_publications"
        " WHERE goldset = ? AND goldset_version = ? ORDER BY published_at LIMIT 1",
        [info.name, info.version],
    )
    if publication:
        previous, at, items, reviews, added, edited, judged, changed = publication[0]
        origins = store.fetch(
            "SELECT i.origin, count(*) FROM review_published_items p"
            " JOIN review_items i ON i.item_id = p.item_id"
            " WHERE p.goldset = ? AND p.goldset_version = ? AND p.published_at = ?"
            " GROUP BY i.origin ORDER BY i.origin",
            [info.name, info.version, at],
        )
        return Provenance(
            "publish",
            at,
            previous,
            {
                "items": items,
                "item_origins": {str(origin): int(count) for origin, count in origins},
                "min_reviews": reviews,
                "queries_added": added,
                "queries_edited": edited,
                "judgments_added": judged,
                "judgments_changed": changed,
            },
        )
    return Provenance("import", info.imported_at, None, {"source": info.source})


_QUERY_FIELDS = ("text", "tenant", "tags", "reference_answer", "reference_context_ids")
_JUDGMENT_FIELDS = ("relevance", "source_id", "span_start", "span_end", "span_text")


def _changes(store: Store, version: str, against: str) -> VersionChanges:
    def missing(table: str, keys: tuple[str, ...]) -> str:
        joined = " AND ".join(f"b.{key} = a.{key}" for key in keys)
        return (
            f"(SELECT count(*) FROM {table} a WHERE a.goldset_version = ? AND NOT EXISTS"
            f" (SELECT 1 FROM {table} b WHERE b.goldset_version = ? AND {joined}))"
        )

    def edited(table: str, keys: tuple[str, ...], fields: tuple[str, ...]) -> str:
        joined = " AND ".join(f"b.{key} = a.{key}" for key in keys)
        differ = " OR ".join(f"a.{name} IS DISTINCT FROM b.{name}" for name in fields)
        return (
            f"(SELECT count(*) FROM {table} a JOIN {table} b ON {joined}"
            f" WHERE a.goldset_version = ? AND b.goldset_version = ? AND ({differ}))"
        )

    query_key, judgment_key = ("query_id",), ("query_id", "doc_id")
    ((*counts,),) = store.fetch(
        "SELECT "
        + ", ".join(
            (
                missing("goldset_queries", query_key),
                missing("goldset_queries", query_key),
                edited("goldset_queries", query_key, _QUERY_FIELDS),
                missing("judgments", judgment_key),
                missing("judgments", judgment_key),
                edited("judgments", judgment_key, _JUDGMENT_FIELDS),
            )
        ),
        [version, against, against, version, version, against] * 2,
    )
    return VersionChanges(against, *(int(count) for count in counts))
