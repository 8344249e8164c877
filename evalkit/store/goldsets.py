"""Stored goldsets: each version's queries and judgments, saved once and loaded back.

Tables ``goldsets``, ``goldset_queries`` and ``judgments`` (migration 1; the judgments' span
columns, migration 14).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import duckdb

from evalkit.clock import utc_now
from evalkit.errors import NotFoundError, StoreError
from evalkit.goldset.model import Goldset, check_goldset_name
from evalkit.records import Judgment, Query, Span

if TYPE_CHECKING:
    import pandas as pd

    from evalkit.store.store import Store

__all__ = [
    "GoldsetInfo",
    "current_goldset",
    "insert_goldset",
    "judgments_frame",
    "list_goldsets",
    "load_stored_goldset",
    "save_goldset",
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


def save_goldset(store: Store, goldset: Goldset) -> bool:
    """Store a goldset version; returns False when that name and version were stored already."""
    store.require_writable()
    try:
        with store.transaction() as con:
            return insert_goldset(store, con, goldset)
    except duckdb.Error as error:
        raise StoreError(f"cannot store goldset {goldset.name}: {error}") from error


def insert_goldset(store: Store, con: duckdb.DuckDBPyConnection, goldset: Goldset) -> bool:
    """Insert a goldset version through ``con`` inside the caller's transaction
    (``save_goldset`` opens its own); returns False when that name and version were stored
    already.

    A version's content is stored once, however many names share it. A name the goldset
    could not be run by again (``check_goldset_name``) raises ConfigError.
    """
    import pandas as pd

    check_goldset_name(goldset.name)
    exists = store.fetch(
        "SELECT 1 FROM goldsets WHERE name = ? AND version = ?",
        [goldset.name, goldset.version],
    )
    if exists:
        return False
    content_stored = store.fetch(
        "SELECT 1 FROM goldset_queries WHERE goldset_version = ? LIMIT 1", [goldset.version]
    )
    con.execute(
        "INSERT INTO goldsets VALUES (?, ?, ?, ?, ?, ?)",
        [
            goldset.name,
            goldset.version,
            goldset.source,
            utc_now(),
            len(goldset.queries),
            len(goldset.judgments),
        ],
    )
    if content_stored:
        return True
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
    return True


def list_goldsets(store: Store, name: str | None = None) -> list[GoldsetInfo]:
    """Stored goldset versions, newest first (optionally of one name)."""
    rows = store.fetch(
        "SELECT name, version, source, imported_at, n_queries, n_judgments FROM goldsets "
        "WHERE ? IS NULL OR name = ? ORDER BY name, imported_at DESC",
        [name, name],
    )
    return [GoldsetInfo(*row) for row in rows]


_NAMES_LISTED = 20
"""Stored goldset names an error lists before it points to ``evalkit goldset list``."""


def load_stored_goldset(store: Store, name: str, version: str | None = None) -> Goldset:
    """The goldset ``name`` at ``version`` (default: the newest imported version)."""
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


def current_goldset(store: Store, name: str) -> Goldset | None:
    """The newest stored version of goldset ``name``, or None when none is stored."""
    if not list_goldsets(store, name):
        return None
    return load_stored_goldset(store, name)


def judgments_frame(store: Store, goldset_version: str) -> pd.DataFrame:
    """Judgments of a goldset version as a DataFrame (query_id, doc_id, relevance)."""
    return store.fetch_frame(
        "SELECT query_id, doc_id, relevance FROM judgments WHERE goldset_version = ?",
        [goldset_version],
    )
