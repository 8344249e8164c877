"""Stored goldset remaps: the version a re-chunked corpus gave, with the mapping that made it.

Tables ``goldset_remaps`` (one row per mapping of an old judgment) and
``goldset_remap_runs`` (one row per remap), migration 14.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from evalkit.clock import utc_now
from evalkit.goldset.model import Goldset
from evalkit.goldset.remap import RemapStatus, SpanMapping
from evalkit.store.goldsets import StoredVersion, insert_goldset_version

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = [
    "RemapInfo",
    "VersionOrigin",
    "list_remaps",
    "remap_mappings",
    "save_remap",
    "version_origin",
]


@dataclass(frozen=True, slots=True)
class RemapInfo:
    """One stored remap: the version it wrote from which, with what, and its counts."""

    goldset_version: str
    old_goldset_version: str
    goldset_name: str
    old_goldset_name: str
    corpus: str
    old_corpus: str | None
    min_overlap: float
    remapped_at: datetime
    n_mapped: int
    n_stale: int
    n_unmapped: int


def save_remap(
    store: Store,
    goldset: Goldset,
    *,
    old: Goldset,
    mappings: Sequence[SpanMapping],
    counts: dict[str, int],
    corpus: str,
    old_corpus: str | None,
    min_overlap: float,
) -> StoredVersion:
    """Store the remapped ``goldset`` under its name, made current, and its mapping from
    ``old``, in one transaction. The mapping is stored once per (new, old) version: a remap
    that gave this version before, under any name, keeps its rows. Returns what storing the
    version under its name did."""
    import pandas as pd

    store.require_writable()
    frame = pd.DataFrame(
        {
            "goldset_version": goldset.version,
            "old_goldset_version": old.version,
            "ordinal": np.arange(len(mappings), dtype=np.int32),
            "query_id": [row.query_id for row in mappings],
            "old_doc_id": [row.old_doc_id for row in mappings],
            "new_doc_id": pd.array([row.new_doc_id for row in mappings], dtype="string"),
            "overlap": pd.array([row.overlap for row in mappings], dtype="Float64"),
            "status": [row.status.value for row in mappings],
            "reason": pd.array([row.reason for row in mappings], dtype="string"),
        }
    )
    with store.writing(f"cannot store the remap of goldset {old.name}") as con:
        done = con.execute(
            "SELECT 1 FROM goldset_remap_runs WHERE goldset_version = ? "
            "AND old_goldset_version = ?",
            [goldset.version, old.version],
        ).fetchall()
        stored = insert_goldset_version(store, con, goldset)
        if done:
            return stored
        con.execute(
            "INSERT INTO goldset_remap_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                goldset.version,
                old.version,
                goldset.name,
                old.name,
                corpus,
                old_corpus,
                min_overlap,
                utc_now(),
                counts[RemapStatus.mapped.value],
                counts[RemapStatus.stale.value],
                counts[RemapStatus.unmapped.value],
            ],
        )
        store.insert_frame("goldset_remaps", frame)
    return stored


@dataclass(frozen=True, slots=True)
class VersionOrigin:
    """Where a stored goldset version came from, for finding the corpus its doc ids name: its
    ``goldsets.source``, the ``remap_corpus`` of the remap that wrote it, or the version a
    review-queue publish made it from (``published_from``)."""

    source: str | None
    remap_corpus: str | None
    published_from: str | None


def version_origin(store: Store, name: str, version: str) -> VersionOrigin:
    """Where version ``version`` of goldset ``name`` came from (``VersionOrigin``)."""
    source = store.fetch(
        "SELECT source FROM goldsets WHERE name = ? AND version = ?", [name, version]
    )
    remap = store.fetch(
        "SELECT corpus FROM goldset_remap_runs WHERE goldset_version = ?"
        " ORDER BY goldset_name = ? DESC, remapped_at DESC LIMIT 1",
        [version, name],
    )
    published = store.fetch(
        "SELECT previous_version FROM review_publications WHERE goldset = ?"
        " AND goldset_version = ? AND previous_version IS NOT NULL"
        " ORDER BY published_at LIMIT 1",
        [name, version],
    )
    return VersionOrigin(
        source=source[0][0] if source else None,
        remap_corpus=remap[0][0] if remap else None,
        published_from=published[0][0] if published else None,
    )


def list_remaps(store: Store, goldset_version: str | None = None) -> list[RemapInfo]:
    """Stored remaps, newest first (optionally those that wrote ``goldset_version``)."""
    rows = store.fetch(
        "SELECT goldset_version, old_goldset_version, goldset_name, old_goldset_name, corpus, "
        "old_corpus, min_overlap, remapped_at, n_mapped, n_stale, n_unmapped "
        "FROM goldset_remap_runs WHERE ? IS NULL OR goldset_version = ? "
        "ORDER BY remapped_at DESC",
        [goldset_version, goldset_version],
    )
    return [RemapInfo(*row) for row in rows]


def remap_mappings(
    store: Store, goldset_version: str, old_goldset_version: str
) -> list[SpanMapping]:
    """The mapping rows of one stored remap, in the order they were made."""
    rows = store.fetch(
        "SELECT query_id, old_doc_id, status, new_doc_id, overlap, reason FROM goldset_remaps "
        "WHERE goldset_version = ? AND old_goldset_version = ? ORDER BY ordinal",
        [goldset_version, old_goldset_version],
    )
    return [
        SpanMapping(query_id, old_doc_id, RemapStatus(status), new_doc_id, overlap, reason)
        for query_id, old_doc_id, status, new_doc_id, overlap, reason in rows
    ]
