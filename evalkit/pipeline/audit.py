"""The audit workflow: the health of a Chroma collection, a Qdrant collection or a pgvector
table, stored."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.audit.runner import run_audit
from evalkit.audit.view import IndexView
from evalkit.errors import ConfigError, StoreError
from evalkit.pipeline.runs import closing_retriever
from evalkit.retrievers.contents import ReadableIndex
from evalkit.retrievers.factory import RetrieverOptions, build_retriever
from evalkit.store.access import WriterAccess
from evalkit.store.audit import StoredAudit, latest_measurements, save_audit
from evalkit.store.goldsets import load_stored_goldset

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

    from evalkit.audit import AuditConfig, AuditReport
    from evalkit.audit.snapshot import AuditedCollection
    from evalkit.config import Settings
    from evalkit.embedding import TextEmbedder


@dataclass(frozen=True, slots=True)
class AuditOutcome:
    """An audit's report, and the audit as stored (None when it was not stored)."""

    report: AuditReport
    stored: StoredAudit | None

    @property
    def audit_id(self) -> str | None:
        """The stored audit's id (None when it was not stored)."""
        return self.stored.audit_id if self.stored is not None else None


def audit_collection(
    store: WriterAccess | None,
    collection: str | None,
    *,
    settings: Settings,
    config: AuditConfig,
    embedder: TextEmbedder | None,
    chroma_url: str | None = None,
    source: Path | None = None,
    goldset: str | None = None,
    save: bool = True,
    retriever: str | None = None,
) -> AuditOutcome:
    """Audit the health of a Chroma collection and store the report (``save``; docs/audit.md).

    ``retriever`` ``qdrant`` or ``pgvector`` audits that engine's index instead, read as its
    retriever reads it (``collection`` None: the one ``[retriever.<kind>]`` names).
    ``goldset`` probes ANN recall and coverage; ``store`` may be None when neither needs it and
    is not held while the checks run.
    """
    if store is None and (save or goldset):
        raise StoreError("audit_collection: saving an audit or reading a goldset needs a store")
    gold = None
    if store is not None and goldset:  # a goldset that is not there fails before any index work
        with store.writer("audit") as opened:
            gold = load_stored_goldset(opened, goldset)
    audited: AuditedCollection
    with contextlib.ExitStack() as stack:
        if retriever in (None, "chroma"):
            if not collection:
                raise ConfigError("an audit of a Chroma collection needs its name (collection)")
            audited, location = _chroma_collection(settings, collection, chroma_url, stack)
        else:
            index = _readable_index(settings, retriever, collection, embedder)
            stack.enter_context(closing_retriever(index))
            audited = IndexView(index)
            location = _location(index.describe())
        previous: dict[str, float] = {}
        if store is not None:
            with store.writer("audit") as opened:
                previous = latest_measurements(
                    opened,
                    collection=audited.name,
                    goldset_version=gold.version if gold is not None else None,
                )
        report = run_audit(
            audited,
            embedder=embedder,
            config=config,
            source=source,
            goldset=gold,
            previous=previous,
            location=location,
        )
    stored = None
    if save and store is not None:
        with store.writer("audit") as opened:
            stored = save_audit(opened, report)
    return AuditOutcome(report=report, stored=stored)


def _chroma_collection(
    settings: Settings, collection: str, chroma_url: str | None, stack: contextlib.ExitStack
) -> tuple[Collection, str]:
    """The Chroma collection, its client closed when ``stack`` ends; and where it is."""
    # Chroma is a heavy optional dependency: loaded only when an audit runs.
    from evalkit.retrievers.chroma import restore_interrupted_ef_search
    from evalkit.retrievers.chroma_client import close_client, get_collection, open_chroma_client

    url = chroma_url or settings.chroma_url
    if not url:  # an audit measures the collection as it is searched, not at a sweep's value
        restore_interrupted_ef_search(settings.resolved_chroma_path, collection)
    client = open_chroma_client(path=None if url else settings.resolved_chroma_path, url=url)
    stack.callback(close_client, client)
    return get_collection(client, collection), url or str(settings.resolved_chroma_path)


def _readable_index(
    settings: Settings, kind: str, collection: str | None, embedder: TextEmbedder | None
) -> ReadableIndex:
    """The retriever of ``kind``, its index readable (``ReadableIndex``); its model is the
    audit's to check, so it is not refused for another."""
    options = RetrieverOptions(
        kind=kind,
        collection=collection,
        allow_model_mismatch=True,
        defer_model_check=True,
        query_embedder=embedder,
    )
    built = build_retriever(options, settings)
    if not isinstance(built, ReadableIndex):
        with closing_retriever(built):
            pass
        raise ConfigError(
            f"an audit reads Chroma, Qdrant and pgvector indexes; a {kind} retriever's index "
            "cannot be read back"
        )
    return built


def _location(described: Mapping[str, Any]) -> str:
    """Where a retriever's index is, from its ``describe()``: a URL, a folder or a server."""
    if described.get("url") or described.get("path"):
        return f"{described['kind']}:{described.get('url') or described.get('path')}"
    return f"{described['kind']}://{described.get('host')}:{described.get('port')}/{described.get('dbname')}"
