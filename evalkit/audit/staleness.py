"""Staleness: how the index differs from its source corpus, by content hash and stored text.

Each source document's ``content_hash`` and ``embedded_text_hash`` are compared with the hash
the index recorded and the hash of the text it stores now: changed at the source, changed in
the index, not in the source (or a copy of a source document) or missing. docs/audit.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from evalkit.audit.context import AuditContext, SourceHashes
from evalkit.audit.snapshot import embedded_text_hash
from evalkit.audit.view import IndexView, advice
from evalkit.errors import InputError
from evalkit.goldset.corpus import content_hash
from evalkit.records import Document
from evalkit.records.audit import CheckOutcome, Finding

__all__ = [
    "StalenessDiff",
    "check_staleness",
    "compare_hashes",
    "hash_source",
    "source_hashes",
]


@dataclass(frozen=True, slots=True)
class StalenessDiff:
    """Ids (sorted) changed at the source, deleted from it (or never in it), and missing from
    the index; ``rewritten``: ids whose stored text differs from the source although their
    recorded hash matches it; ``copies``: each id not in the source that stores the text of
    a source document, with that document's id (these are not in ``deleted``)."""

    changed: tuple[str, ...]
    deleted: tuple[str, ...]
    missing: tuple[str, ...]
    rewritten: tuple[str, ...] = ()
    copies: Mapping[str, str] = field(default_factory=dict)


def hash_source(documents: Iterable[Document]) -> SourceHashes:
    """Both hashes of every source document, in one pass; raises ``InputError`` on a
    repeated id."""
    hashes: dict[str, str] = {}
    texts: dict[str, str] = {}
    for document in documents:
        if document.id in hashes:
            raise InputError(
                f"document id '{document.id}' appears more than once in the source; "
                "ids must be unique"
            )
        hashes[document.id] = content_hash(document)
        texts[document.id] = embedded_text_hash(document)
    return SourceHashes(hashes, texts)


def source_hashes(documents: Iterable[Document]) -> dict[str, str]:
    """Content hash of every source document, by id; raises ``InputError`` on a repeated id."""
    return dict(hash_source(documents).content)


def compare_hashes(
    indexed_ids: Sequence[str],
    indexed_hashes: Sequence[str],
    source: Mapping[str, str],
    *,
    indexed_texts: Sequence[str] | None = None,
    source_texts: Mapping[str, str] | None = None,
) -> StalenessDiff:
    """Compare the index (``indexed_ids[i]`` has ``indexed_hashes[i]``) with the source.

    With both sides' text hashes, a matching hash over a different text is ``rewritten``,
    and an id not in the source with a source document's text is a ``copies`` of the first
    such id in sorted order.
    """
    indexed = pd.Series(list(indexed_hashes), index=list(indexed_ids), dtype=object)
    current = pd.Series(list(source.values()), index=list(source.keys()), dtype=object)
    common = indexed.index.intersection(current.index)
    differs = indexed.loc[common].to_numpy() != current.loc[common].to_numpy()
    extra = indexed.index.difference(current.index)
    rewritten: tuple[str, ...] = ()
    copies: dict[str, str] = {}
    if indexed_texts is not None and source_texts is not None:
        stored = pd.Series(list(indexed_texts), index=list(indexed_ids), dtype=object)
        wanted = pd.Series(
            [source_texts.get(doc_id, "") for doc_id in common], index=common, dtype=object
        )
        held = stored.loc[common]
        text_differs = (held.to_numpy() != wanted.to_numpy()) & (held.to_numpy() != "")
        rewritten = tuple(sorted(common[~differs & text_differs]))
        holder: dict[str, str] = {}
        for doc_id in sorted(source_texts):
            holder.setdefault(source_texts[doc_id], doc_id)
        holder.pop("", None)
        matched = stored.loc[extra].map(holder).dropna()
        copies = {str(doc_id): str(original) for doc_id, original in matched.items()}
    return StalenessDiff(
        changed=tuple(sorted(common[differs])),
        deleted=tuple(sorted(doc_id for doc_id in extra if doc_id not in copies)),
        missing=tuple(sorted(current.index.difference(indexed.index))),
        rewritten=rewritten,
        copies=dict(sorted(copies.items())),
    )


def _copies_finding(context: AuditContext, copies: Mapping[str, str]) -> Finding:
    """The ids not in the source that copy a source document, clustered with it."""
    config = context.config
    clusters: dict[str, list[str]] = {}
    for copy, original in copies.items():
        clusters.setdefault(original, [original]).append(copy)
    example = ", ".join(f"{copy} holds {original}'s" for copy, original in list(copies.items())[:3])
    return config.finding(
        "duplicates_of_source",
        f"{len(copies)} indexed documents are not in the source but store the text of a "
        f"source document under another id ({example}{', ...' if len(copies) > 3 else ''}): "
        "the likely cause is documents ingested again under new ids without deduplication. "
        + advice(
            context.collection,
            "Delete these ids from the collection (Chroma's `collection.delete(ids=...)`) and "
            "make ingestion idempotent (stable ids, e.g. `evalkit index`, which keys "
            "documents by their source id)",
            "Delete these ids from the {engine} index and make ingestion idempotent (stable "
            "ids: the source's)",
        ),
        len(copies),
        doc_ids=tuple(copies),
        clusters=tuple(tuple(cluster) for _, cluster in sorted(clusters.items())),
        details={
            "copies": dict(list(copies.items())[: config.max_listed]),
            "source_documents": len(clusters),
        },
    )


def check_staleness(context: AuditContext) -> CheckOutcome:
    """Report documents changed at the source or in the index, not in the source (and the
    copies of source documents among them), and new in the source, since indexing."""
    if context.source_hashes is None:
        return CheckOutcome("staleness", False, note="no source corpus given (--source)")
    snapshot, config, source = context.snapshot, context.config, context.source_hashes
    # Another engine records no content hash, and its payload or row is not evalkit's
    # metadata: what it stores is compared with the source by the text that is embedded.
    by_text = isinstance(context.collection, IndexView)
    if by_text and not any(snapshot.text_hashes):
        return CheckOutcome("staleness", False, note="the index stores no document text to compare")
    diff = compare_hashes(
        snapshot.ids,
        snapshot.text_hashes if by_text else snapshot.hashes,
        source.text if by_text else source.content,
        indexed_texts=snapshot.text_hashes,
        source_texts=source.text,
    )
    where = context.collection
    findings = [
        config.finding(code, f"{len(doc_ids)} {message}", len(doc_ids), doc_ids=doc_ids)
        for code, doc_ids, message in (
            (
                "changed_at_source",
                diff.changed,
                "indexed documents changed at the source since they were indexed; "
                + advice(
                    where,
                    "re-index them (`evalkit index` re-embeds only those)",
                    "embed them again and write them to the {engine} index",
                ),
            ),
            (
                "changed_in_index",
                diff.rewritten,
                "indexed documents store another text than their source, which has not "
                "changed since they were indexed: the collection was written to after "
                "indexing (e.g. `collection.update(documents=...)`), and what they return is "
                "not the source's content. Their recorded content hash still matches the "
                "source, so `evalkit index` skips them: delete them from the collection "
                "(`collection.delete(ids=...)`) and index again, or rebuild it "
                f"(`evalkit index --corpus CORPUS --collection {snapshot.name} --rebuild`)",
            ),
            (
                "not_in_source",
                diff.deleted,
                "indexed documents are not in the source (deleted from it, or never in it) "
                "and can still be retrieved; delete them from the collection if the source "
                "is complete",
            ),
        )
        if doc_ids
    ]
    if diff.copies:
        findings.append(_copies_finding(context, diff.copies))
    if diff.missing:
        findings.append(
            config.finding(
                "missing_from_index",
                f"{len(diff.missing)} source documents are not indexed; index them",
                len(diff.missing),
                doc_ids=diff.missing,
            )
        )
    measurements = {
        "source_documents": float(len(source)),
        "changed_at_source": float(len(diff.changed)),
        "changed_in_index": float(len(diff.rewritten)),
        "not_in_source": float(len(diff.deleted)),
        "duplicates_of_source": float(len(diff.copies)),
        "missing_from_index": float(len(diff.missing)),
    }
    return CheckOutcome("staleness", True, measurements, tuple(findings))
