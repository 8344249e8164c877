"""``run_audit``: read a collection once and run every configured check over it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from evalkit.audit.ann import check_ann_recall
from evalkit.audit.context import AuditContext
from evalkit.audit.coverage import check_coverage, check_orphans
from evalkit.audit.duplicates import check_duplicates
from evalkit.audit.model import check_model
from evalkit.audit.snapshot import read_snapshot
from evalkit.audit.spans import check_spans, span_sources
from evalkit.audit.staleness import check_staleness, hash_source
from evalkit.clock import utc_now
from evalkit.embedding import TextEmbedder
from evalkit.goldset.corpus import iter_corpus
from evalkit.goldset.model import Goldset
from evalkit.records import Document, Query
from evalkit.records.audit import AuditConfig, AuditReport, CheckOutcome

if TYPE_CHECKING:
    from evalkit.audit.snapshot import AuditedCollection

__all__ = ["CHECKS", "Check", "run_audit"]

Check = Callable[[AuditContext], CheckOutcome]
"""One audit check: reads the context, returns what it measured and found."""

CHECKS: Mapping[str, Check] = {
    "duplicates": check_duplicates,
    "staleness": check_staleness,
    "model": check_model,
    "ann_recall": check_ann_recall,
    "coverage": check_coverage,
    "orphans": check_orphans,
    "spans": check_spans,
}
"""Every check by name, in the order an audit runs them."""


def run_audit(
    collection: AuditedCollection,
    *,
    embedder: TextEmbedder | None = None,
    config: AuditConfig | None = None,
    source: Path | str | Iterable[Document] | None = None,
    goldset: Goldset | None = None,
    queries: Sequence[Query] | None = None,
    previous: Mapping[str, float] | None = None,
    location: str = "chroma",
) -> AuditReport:
    """Audit a Chroma collection: duplicates, staleness, model, ANN recall, coverage, orphans
    and span judgments.

    ``embedder`` is the query model, ``source`` the corpus the index should mirror (a path or
    documents), ``queries`` replace the golden queries for ANN recall, ``previous`` the last
    comparable audit's measurements. A check whose inputs are missing is listed as not run,
    with the reason.
    """
    settings = config or AuditConfig()
    started_at = utc_now()
    snapshot = read_snapshot(collection, page_size=settings.page_size)
    source_label = None
    hashes = None
    texts = None
    if source is not None:
        if isinstance(source, str | Path):
            source_label = str(source)
            hashes = hash_source(iter_corpus(source))
            if "spans" in settings.checks:
                texts = span_sources(iter_corpus(source), goldset)
        else:
            source_label = "documents"
            documents = list(source)
            hashes = hash_source(documents)
            texts = span_sources(documents, goldset)
    context = AuditContext(
        collection=collection,
        snapshot=snapshot,
        config=settings,
        embedder=embedder,
        source_hashes=hashes,
        span_sources=texts,
        goldset=goldset,
        queries=queries,
        previous=dict(previous or {}),
    )
    outcomes = []
    for name, check in CHECKS.items():
        if name not in settings.checks:
            continue
        clock = time.perf_counter()
        outcome = replace(check(context), seconds=time.perf_counter() - clock)
        context.outcomes[name] = outcome
        outcomes.append(outcome)
    stored_model = snapshot.stored_model
    current_model = embedder.fingerprint if embedder is not None else None
    return AuditReport(
        collection=snapshot.name,
        location=location,
        started_at=started_at,
        finished_at=utc_now(),
        n_documents=len(snapshot),
        checks=tuple(outcomes),
        config=settings.to_dict(),
        seed=settings.seed,
        model_name=current_model.name if current_model else None,
        model_fingerprint=current_model.canary_hash if current_model else None,
        stored_model_fingerprint=stored_model.canary_hash if stored_model else None,
        index_fingerprint=snapshot.index_fingerprint,
        goldset_name=goldset.name if goldset else None,
        goldset_version=goldset.version if goldset else None,
        source=source_label,
    )
