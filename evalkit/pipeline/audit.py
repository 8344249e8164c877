"""The audit workflow: the health of a Chroma collection, stored."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evalkit.errors import StoreError
from evalkit.store.access import WriterAccess
from evalkit.store.audit import StoredAudit, latest_measurements, save_audit
from evalkit.store.goldsets import load_stored_goldset

if TYPE_CHECKING:
    from evalkit.audit import AuditConfig, AuditReport
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
    collection: str,
    *,
    settings: Settings,
    config: AuditConfig,
    embedder: TextEmbedder | None,
    chroma_url: str | None = None,
    source: Path | None = None,
    goldset: str | None = None,
    save: bool = True,
) -> AuditOutcome:
    """Audit the health of a Chroma collection and store the report (``save``; docs/audit.md).

    ``goldset`` probes ANN recall and coverage; ``store`` may be None when neither needs it and
    is not held while the checks run.
    """
    # Chroma is a heavy optional dependency: loaded only when an audit runs.
    from evalkit.audit import run_audit
    from evalkit.retrievers.chroma import restore_interrupted_ef_search
    from evalkit.retrievers.chroma_client import get_collection, open_chroma_client

    if store is None and (save or goldset):
        raise StoreError("audit_collection: saving an audit or reading a goldset needs a store")
    url = chroma_url or settings.chroma_url
    if not url:  # an audit measures the collection as it is searched, not at a sweep's value
        restore_interrupted_ef_search(settings.resolved_chroma_path, collection)
    client = open_chroma_client(path=None if url else settings.resolved_chroma_path, url=url)
    gold = None
    previous: dict[str, float] = {}
    if store is not None:
        with store.writer("audit") as opened:
            gold = load_stored_goldset(opened, goldset) if goldset else None
            previous = latest_measurements(
                opened,
                collection=collection,
                goldset_version=gold.version if gold is not None else None,
            )
    report = run_audit(
        get_collection(client, collection),
        embedder=embedder,
        config=config,
        source=source,
        goldset=gold,
        previous=previous,
        location=url or str(settings.resolved_chroma_path),
    )
    stored = None
    if save and store is not None:
        with store.writer("audit") as opened:
            stored = save_audit(opened, report)
    return AuditOutcome(report=report, stored=stored)
