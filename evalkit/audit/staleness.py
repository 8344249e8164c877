"""Staleness: how the index differs from its source corpus, by content hash.

The source is read with ``evalkit.goldset.iter_corpus`` (JSONL, BEIR folder, TREC file) and
hashed with ``content_hash``, the same hash indexing stores per document
(``evalkit_content_hash``; for a document written without one, the hash of its stored
text). A document is *changed* when both hold it with different hashes, *deleted* when only
the index holds it, *missing* when only the source does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from evalkit.audit.context import AuditContext
from evalkit.errors import InputError
from evalkit.goldset.corpus import content_hash
from evalkit.records import Document
from evalkit.records.audit import CheckOutcome

__all__ = ["StalenessDiff", "check_staleness", "compare_hashes", "source_hashes"]


@dataclass(frozen=True, slots=True)
class StalenessDiff:
    """Ids (sorted) changed at the source, deleted from it, and missing from the index."""

    changed: tuple[str, ...]
    deleted: tuple[str, ...]
    missing: tuple[str, ...]


def source_hashes(documents: Iterable[Document]) -> dict[str, str]:
    """Content hash of every source document, by id; raises ``InputError`` on a repeated id."""
    hashes: dict[str, str] = {}
    for document in documents:
        if document.id in hashes:
            raise InputError(
                f"document id '{document.id}' appears more than once in the source; "
                "ids must be unique"
            )
        hashes[document.id] = content_hash(document)
    return hashes


def compare_hashes(
    indexed_ids: Sequence[str], indexed_hashes: Sequence[str], source: Mapping[str, str]
) -> StalenessDiff:
    """Compare the index (``indexed_ids[i]`` has ``indexed_hashes[i]``) with the source."""
    indexed = pd.Series(list(indexed_hashes), index=list(indexed_ids), dtype=object)
    current = pd.Series(list(source.values()), index=list(source.keys()), dtype=object)
    common = indexed.index.intersection(current.index)
    differs = indexed.loc[common].to_numpy() != current.loc[common].to_numpy()
    return StalenessDiff(
        changed=tuple(sorted(common[differs])),
        deleted=tuple(sorted(indexed.index.difference(current.index))),
        missing=tuple(sorted(current.index.difference(indexed.index))),
    )


def check_staleness(context: AuditContext) -> CheckOutcome:
    """Report documents changed at, deleted from, and new in the source since indexing."""
    if context.source_hashes is None:
        return CheckOutcome("staleness", False, note="no source corpus given (--source)")
    snapshot, config = context.snapshot, context.config
    diff = compare_hashes(snapshot.ids, snapshot.hashes, context.source_hashes)
    findings = [
        config.finding(code, f"{len(doc_ids)} {message}", len(doc_ids), doc_ids=doc_ids)
        for code, doc_ids, message in (
            (
                "changed_at_source",
                diff.changed,
                "indexed documents changed at the source since they were indexed; re-index "
                "them (`evalkit index` re-embeds only those)",
            ),
            (
                "deleted_at_source",
                diff.deleted,
                "documents were deleted at the source but are still indexed and can still be "
                "retrieved; delete them from the collection",
            ),
            ("missing_from_index", diff.missing, "source documents are not indexed; index them"),
        )
        if doc_ids
    ]
    measurements = {
        "source_documents": float(len(context.source_hashes)),
        "changed_at_source": float(len(diff.changed)),
        "deleted_at_source": float(len(diff.deleted)),
        "missing_from_index": float(len(diff.missing)),
    }
    return CheckOutcome("staleness", True, measurements, tuple(findings))
