"""Stored goldsets: each version's queries and judgments, saved once and loaded back.

A name's current version (read when no version is named) is the one stored, or stored again,
under that name most recently: re-importing an older content makes it current again.
docs/goldsets.md, "The current version".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import duckdb

from evalkit.clock import utc_now
from evalkit.errors import NotFoundError
from evalkit.goldset.model import Goldset, check_goldset_name
from evalkit.records import Judgment, Query, Span

if TYPE_CHECKING:
    import pandas as pd

    from evalkit.store.store import Store

__all__ = [
    "GoldsetInfo",
    "StoredVersion",
    "current_goldset",
    "ensure_goldset",
    "insert_goldset_version",
    "judgments_frame",
    "list_goldsets",
    "load_stored_goldset",
    "require_goldset",
    "save_goldset",
    "save_goldset_version",
    "version_query_ids",
]


@dataclass(frozen=True, slots=True)
class GoldsetInfo:
    """One stored goldset version."""

    name: str
    version: str
    source: str | None
    imported_at: datetime
    n_queries: int
    n_judgments: int
    current_since: datetime
    """When this version last became its name's current one (stored, or stored again)."""
    current: bool
    """True for the name's current version."""


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """What storing a goldset version under its name did: ``created`` False when the name held
    this version already; ``was_current`` the version current before (None: none, or this one),
    so ``created`` False with ``was_current`` set means an older version was made current again."""

    created: bool
    was_current: str | None

    @property
    def current_again(self) -> bool:
        """True when a version stored before under this name became current again."""
        return not self.created and self.was_current is not None


def save_goldset(store: Store, goldset: Goldset) -> bool:
    """Store a goldset version and make it its name's current one; returns False when that
    name and version were stored already (``save_goldset_version`` says more)."""
    return save_goldset_version(store, goldset).created


def ensure_goldset(store: Store, goldset: Goldset) -> bool:
    """Store a goldset version its name does not hold yet (which makes it current, as any new
    version); a version the name holds already is left as it is, current or not. Returns
    whether the version was new to its name."""
    held = store.fetch(
        "SELECT 1 FROM goldsets WHERE name = ? AND version = ?", [goldset.name, goldset.version]
    )
    return False if held else save_goldset(store, goldset)


def save_goldset_version(store: Store, goldset: Goldset) -> StoredVersion:
    """Store a goldset version and make it its name's current one, in one transaction."""
    store.require_writable()
    with store.writing(f"cannot store goldset {goldset.name}") as con:
        return insert_goldset_version(store, con, goldset)


def insert_goldset_version(
    store: Store, con: duckdb.DuckDBPyConnection, goldset: Goldset
) -> StoredVersion:
    """Insert a goldset version through ``con`` in the caller's transaction and make it its
    name's current version (a version held already keeps its row; content is stored once
    however many names share it). Raises ConfigError for a name the goldset could not be run
    by again (``check_goldset_name``)."""
    import pandas as pd

    check_goldset_name(goldset.name)
    newest = store.fetch(
        "SELECT version, current_since FROM goldsets WHERE name = ? "
        "ORDER BY current_since DESC, version LIMIT 1",
        [goldset.name],
    )
    was_current = newest[0][0] if newest and newest[0][0] != goldset.version else None
    now = utc_now()
    if newest and now <= newest[0][1]:
        # Strictly later than the name's current version, or the two tie on a coarse clock.
        now = newest[0][1] + timedelta(microseconds=1)
    exists = store.fetch(
        "SELECT 1 FROM goldsets WHERE name = ? AND version = ?",
        [goldset.name, goldset.version],
    )
    if exists:
        if was_current is not None:
            con.execute(
                "UPDATE goldsets SET current_since = ? WHERE name = ? AND version = ?",
                [now, goldset.name, goldset.version],
            )
        return StoredVersion(created=False, was_current=was_current)
    content_stored = store.fetch(
        "SELECT 1 FROM goldset_queries WHERE goldset_version = ? LIMIT 1", [goldset.version]
    )
    con.execute(
        "INSERT INTO goldsets (name, version, source, imported_at, n_queries, n_judgments,"
        " current_since) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            goldset.name,
            goldset.version,
            goldset.source,
            now,
            len(goldset.queries),
            len(goldset.judgments),
            now,
        ],
    )
    stored = StoredVersion(created=True, was_current=was_current)
    if content_stored:
        return stored
    queries = pd.DataFrame(
        {
            "goldset_version": goldset.version,
            "ordinal": range(len(goldset.queries)),
            "query_id": [q.id for q in goldset.queries],
            "text": [q.text for q in goldset.queries],
            "tenant": [q.tenant for q in goldset.queries],
            "tags": [list(q.tags) for q in goldset.queries],
            "reference_answer": [q.reference_answer for q in goldset.queries],
            "reference_context_ids": [list(q.reference_context_ids) for q in goldset.queries],
        }
    )
    spans = [j.span for j in goldset.judgments]
    judgments = pd.DataFrame(
        {
            "goldset_version": goldset.version,
            "query_id": [j.query_id for j in goldset.judgments],
            "doc_id": [j.doc_id for j in goldset.judgments],
            "relevance": pd.array([j.relevance for j in goldset.judgments], dtype="int32"),
            "source_id": pd.array(
                [span.source_id if span else None for span in spans], dtype="string"
            ),
            "span_start": pd.array([span.start if span else None for span in spans], "Int64"),
            "span_end": pd.array([span.end if span else None for span in spans], "Int64"),
            "span_text": pd.array([span.text if span else None for span in spans], dtype="string"),
        }
    )
    store.insert_frame("goldset_queries", queries)
    store.insert_frame("judgments", judgments)
    return stored


def list_goldsets(store: Store, name: str | None = None) -> list[GoldsetInfo]:
    """Stored goldset versions by name (optionally of one name), each name's current version
    first, then the others from the one current most recently."""
    rows = store.fetch(
        "SELECT name, version, source, imported_at, n_queries, n_judgments, current_since,"
        " row_number() OVER (PARTITION BY name ORDER BY current_since DESC, version) = 1"
        " FROM goldsets WHERE ? IS NULL OR name = ?"
        " ORDER BY name, current_since DESC, version",
        [name, name],
    )
    return [GoldsetInfo(*row) for row in rows]


_NAMES_LISTED = 20
"""Stored goldset names an error lists before it points to ``evalkit goldset list``."""


def require_goldset(store: Store, name: str) -> list[GoldsetInfo]:
    """The stored versions of goldset ``name``, newest first; ``NotFoundError`` naming the
    stored goldsets when there is none."""
    versions = list_goldsets(store, name)
    if not versions:
        known = sorted({info.name for info in list_goldsets(store)})
        shown = ", ".join(known[:_NAMES_LISTED]) or "none"
        if len(known) > _NAMES_LISTED:
            shown += f" and {len(known) - _NAMES_LISTED} more: `evalkit goldset list`"
        raise NotFoundError(
            f"no goldset named {name!r} in {store.path} (stored: {shown}); "
            "import it with `evalkit goldset import PATH --name NAME`"
        )
    return versions


def load_stored_goldset(store: Store, name: str, version: str | None = None) -> Goldset:
    """The goldset ``name`` at ``version`` (default: its current version, the one stored or
    stored again most recently)."""
    versions = require_goldset(store, name)
    chosen = versions[0]
    if version is not None:
        matching = [info for info in versions if info.version.startswith(version)]
        if not matching:
            raise NotFoundError(
                f"goldset {name!r} has no version {version!r}; stored versions: "
                + ", ".join(info.version for info in versions)
            )
        chosen = matching[0]
    query_rows = store.fetch(
        "SELECT query_id, text, tenant, tags, reference_answer, reference_context_ids "
        "FROM goldset_queries WHERE goldset_version = ? ORDER BY ordinal",
        [chosen.version],
    )
    queries = [
        Query(
            id=row[0],
            text=row[1],
            tenant=row[2],
            tags=tuple(row[3] or ()),
            reference_answer=row[4],
            reference_context_ids=tuple(row[5] or ()),
        )
        for row in query_rows
    ]
    judgment_rows = store.fetch(
        "SELECT query_id, doc_id, relevance, source_id, span_start, span_end, span_text "
        "FROM judgments WHERE goldset_version = ? ORDER BY query_id, doc_id",
        [chosen.version],
    )
    judgments = [
        Judgment(
            query_id,
            doc_id,
            relevance,
            None if source_id is None else Span(source_id, start, end, text),
        )
        for query_id, doc_id, relevance, source_id, start, end, text in judgment_rows
    ]
    return Goldset(
        name=chosen.name,
        queries=tuple(queries),
        judgments=tuple(judgments),
        version=chosen.version,
        source=chosen.source or "",
    )


def version_query_ids(store: Store, version: str) -> list[str]:
    """The query ids of goldset version ``version``, in its order (empty when not stored)."""
    rows = store.fetch(
        "SELECT query_id FROM goldset_queries WHERE goldset_version = ? ORDER BY ordinal",
        [version],
    )
    return [str(row[0]) for row in rows]


def current_goldset(store: Store, name: str) -> Goldset | None:
    """The current version of goldset ``name`` (``load_stored_goldset``), or None when none
    is stored."""
    if not list_goldsets(store, name):
        return None
    return load_stored_goldset(store, name)


def judgments_frame(store: Store, goldset_version: str) -> pd.DataFrame:
    """Judgments of a goldset version as a DataFrame (query_id, doc_id, relevance)."""
    return store.fetch_frame(
        "SELECT query_id, doc_id, relevance FROM judgments WHERE goldset_version = ?",
        [goldset_version],
    )
