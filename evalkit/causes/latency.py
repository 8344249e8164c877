"""Probable causes of a latency rise between two runs, from the runs' own records.

A latency rise is not traced query by query: the cause the store can show is an index that
grew by at least ``INDEX_GROWTH`` between the runs (``RunSpec.index_documents``,
``index_vectors``), a probable cause, not a proof.
"""

from __future__ import annotations

from typing import Final

from evalkit.causes.records import Cause, CauseLink
from evalkit.store.runs import RunRecord

__all__ = ["INDEX_GROWTH", "index_growth"]

INDEX_GROWTH: Final = 0.05
"""The smallest growth of the index (a share of the baseline's size) named as a cause."""


def index_growth(baseline: RunRecord, candidate: RunRecord) -> Cause | None:
    """``index_grew`` when the candidate's index holds at least ``INDEX_GROWTH`` more
    documents (or vectors) than the baseline's as recorded, else None. Its score is 1, a
    residual: nothing traces a latency rise to a query.
    """
    grown = []
    for name in ("documents", "vectors"):
        before = getattr(baseline.spec, f"index_{name}")
        after = getattr(candidate.spec, f"index_{name}")
        if before and after is not None and after / before - 1.0 >= INDEX_GROWTH:
            grown.append((after / before - 1.0, name, before, after))
    if not grown:
        return None
    growth, name, before, after = max(grown, key=lambda found: found[0])
    collection = candidate.spec.collection
    return Cause(
        kind="index_grew",
        score=1.0,
        statement=(
            f"the index grew by {growth:.0%} between the runs: {before:,} {name} when "
            f"baseline {baseline.run_id} ran, {after:,} when candidate {candidate.run_id} ran"
        ),
        link=CauseLink(
            "index_health",
            {"collection": collection} if collection else {},
            "Index health: replay latency against index size",
        ),
        evidence=tuple(
            {
                "run_id": run.run_id,
                "index_documents": run.spec.index_documents,
                "index_vectors": run.spec.index_vectors,
                "started_at": run.started_at.isoformat() + "Z",
            }
            for run in (baseline, candidate)
        ),
    )
