"""Which evidence describes the index a candidate run searched: the audits and model canary
checks nearest the run, not the newest.

A post-mortem is often made after the fix, and an audit of the restored index would clear the
documents the incident lost. So each audit check is read from the audit nearest the candidate
that ran it, and evidence made once the index had changed after the candidate
(``index_evidence``) is left out, with a note saying so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

from evalkit.causes.records import Cause
from evalkit.store.audit import StoredAudit, list_audits
from evalkit.store.drift import StoredDriftCheck, list_drift_checks
from evalkit.store.runs import INDEXED_FINGERPRINT, RunRecord, index_changed, list_runs

if TYPE_CHECKING:
    from evalkit.store import Store

__all__ = [
    "MISSING_FINDINGS",
    "STALE_FINDINGS",
    "IndexEvidence",
    "evidence_read",
    "index_evidence",
]

MISSING_FINDINGS: Final = ("orphaned_judgments", "missing_from_index")
"""Audit findings of documents the index does not hold."""
STALE_FINDINGS: Final = ("changed_at_source", "changed_in_index", "content_replaced")
"""Audit findings of documents whose indexed text is not their source's: the source
changed since they were indexed, or the index replaced their stored text since (listed in
full by the staleness check against a source, among the re-embedded sample by the model
check otherwise)."""

_Dated = TypeVar("_Dated", StoredAudit, StoredDriftCheck)
_READ = 50
"""Audits read on each side of the candidate."""


@dataclass(frozen=True, slots=True)
class IndexEvidence:
    """The audits and model canary checks of the index the candidate searched, nearest the
    candidate first; ``until``, when later evidence first showed that index had changed
    (what was made from then on describes another index), ``why`` what showed it, and
    ``left_out`` how many audits and canary checks were left out for it."""

    audits: list[StoredAudit]
    canaries: list[StoredDriftCheck]
    until: datetime | None = None
    why: str | None = None
    left_out: int = 0

    def checks_read(self) -> list[tuple[StoredAudit, frozenset[str]]]:
        """Each audit with the checks read from it: a check of a collection is read from
        the first audit (nearest the candidate first) in which it ran, so a document
        re-indexed before the candidate ran is no longer blamed, and one an audit of the
        incident found missing is still blamed after the index was repaired."""
        settled: set[tuple[str, str]] = set()
        read = []
        for audit in self.audits:
            ran = frozenset(n for n in audit.checks_run if (audit.collection, n) not in settled)
            settled.update((audit.collection, name) for name in ran)
            if ran:
                read.append((audit, ran))
        return read

    @property
    def left_out_note(self) -> str | None:
        """What was left out and why, for the explanation's notes; None when nothing was."""
        if not self.left_out or self.until is None:
            return None
        many = self.left_out != 1
        return (
            f"{self.left_out} audit{'s' if many else ''} or canary check{'s' if many else ''} "
            f"made from {self.until:%Y-%m-%d %H:%M} UTC on {'were' if many else 'was'} left "
            f"out: {self.why}, so the index changed after the candidate ran (restored, "
            "re-indexed or edited) and they describe it since"
        )


def _made(item: StoredAudit | StoredDriftCheck) -> datetime:
    return item.started_at if isinstance(item, StoredAudit) else item.created_at


def _nearest_first(items: Sequence[_Dated], at: datetime) -> list[_Dated]:
    """``items`` nearest ``at`` first: those made since ``at``, oldest first (the index as
    the run left it), then the earlier ones, newest first."""
    since: list[_Dated] = sorted((item for item in items if _made(item) >= at), key=_made)
    earlier: list[_Dated] = sorted(
        (item for item in items if _made(item) < at), key=_made, reverse=True
    )
    return since + earlier


def index_evidence(store: Store, base: RunRecord, cand: RunRecord) -> IndexEvidence:
    """The audits since the baseline of the index the candidate searched (its collection's,
    or, when neither run names one, an HTTP endpoint, those of the goldset) and the model
    canary checks since the baseline, nearest the candidate first, without those made once
    the index had changed after the candidate (``_index_left``). A candidate without a
    collection after a baseline with one searched another index, which no audit names."""
    collection = cand.spec.collection
    canaries = list_drift_checks(store, stream="model", since=base.started_at, limit=500)
    audits: list[StoredAudit] = []
    if collection is not None or base.spec.collection is None:
        # Read from both sides of the candidate, so that newer audits never crowd out its own.
        before = list_audits(
            store, collection=collection, since=base.started_at, until=cand.started_at, limit=_READ
        )
        after = list_audits(
            store, collection=collection, since=cand.started_at, oldest_first=True, limit=_READ
        )
        known = {audit.audit_id for audit in before}
        audits = [
            audit
            for audit in [*before, *(audit for audit in after if audit.audit_id not in known)]
            if collection is not None
            or (audit.goldset_name is not None and audit.goldset_name == cand.spec.goldset_name)
        ]
    left = _index_left(store, cand, [a for a in audits if a.started_at >= cand.started_at])
    until, why = left if left is not None else (None, None)
    kept_audits = [audit for audit in audits if until is None or audit.started_at < until]
    kept_canaries = [check for check in canaries if until is None or check.created_at < until]
    return IndexEvidence(
        audits=_nearest_first(kept_audits, cand.started_at),
        canaries=_nearest_first(kept_canaries, cand.started_at),
        until=until,
        why=why,
        left_out=len(audits) + len(canaries) - len(kept_audits) - len(kept_canaries),
    )


def _index_left(
    store: Store, cand: RunRecord, later: Sequence[StoredAudit]
) -> tuple[datetime, str] | None:
    """When evidence first showed that the index the candidate searched had changed since
    it ran, and what showed it: an audit made since that counted another number of
    documents, or found another fingerprint stored by ``evalkit index``, than the candidate
    recorded; or a later run of the same retriever that searched another index
    (``index_changed``). None when nothing did."""
    signs: list[tuple[datetime, str]] = []
    recorded = cand.spec.retriever_config
    count, stored = recorded.get("count"), recorded.get(INDEXED_FINGERPRINT)
    for audit in sorted(later, key=_made):
        if isinstance(count, int) and audit.n_documents != count:
            seen = f"counted {audit.n_documents:,} documents where the candidate searched {count:,}"
        elif stored is not None and audit.index_fingerprint not in (None, stored):
            seen = "found the collection indexed again since the candidate ran"
        else:
            continue
        signs.append((audit.started_at, f"audit {audit.audit_id} {seen}"))
        break
    runs = list_runs(store, retriever=cand.retriever_id, limit=1000)
    for run in sorted(runs, key=lambda other: (other.started_at, other.run_id)):
        if (
            run.started_at > cand.started_at
            and run.status in ("complete", "partial")
            and run.imported_from is None
            and index_changed(cand.spec, run.spec)
        ):
            signs.append(
                (
                    run.started_at,
                    f"run {run.run_id} searched another index (fingerprint "
                    f"{cand.spec.index_fingerprint} -> {run.spec.index_fingerprint})",
                )
            )
            break
    return min(signs) if signs else None


def evidence_read(
    read: Sequence[tuple[StoredAudit, frozenset[str]]],
    checks: Sequence[StoredDriftCheck],
    causes: Sequence[Cause],
) -> tuple[Mapping[str, Any], ...]:
    """What an explanation read, for people to check it (``Explanation.evidence``): each
    audit with the checks read from it, and each drift or canary check a cause cites, with
    when it was made."""
    cited = {
        str(row["check_id"]) for cause in causes for row in cause.evidence if "check_id" in row
    }
    rows: list[Mapping[str, Any]] = [
        {
            "kind": "audit",
            "id": audit.audit_id,
            "collection": audit.collection,
            "at": audit.started_at.isoformat() + "Z",
            "checks": sorted(ran),
        }
        for audit, ran in read
    ]
    seen: set[str] = set()
    for check in checks:
        if check.check_id in cited and check.check_id not in seen:
            seen.add(check.check_id)
            rows.append(
                {
                    "kind": "drift_check",
                    "id": check.check_id,
                    "stream": check.stream,
                    "at": check.created_at.isoformat() + "Z",
                }
            )
    return tuple(rows)
