"""Probable causes of a regression: the evidence the store already holds, joined and ranked.

``explain_runs`` compares a candidate with its baseline as the gate does, and
``explain_comparison`` joins the comparison with what else the store knows about the two
runs. Every cause is scored by the share of the primary measure's loss it can account for,
an upper bound on what it explains, not a proof. Each kind, its evidence and its score:
docs/cli.md, "Probable causes: `evalkit explain`".
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

import pandas as pd

from evalkit.causes.duplicates import (
    DUPLICATE_FINDINGS,
    DuplicateCluster,
    DuplicateClusters,
    duplicates_cause,
)
from evalkit.causes.evidence import (
    MISSING_FINDINGS,
    STALE_FINDINGS,
    evidence_read,
    index_evidence,
)
from evalkit.causes.loss import Found, Loss, cause_link, loss_of
from evalkit.causes.records import CAUSE_KINDS, EVIDENCE_ROWS, Cause, CauseLink, Explanation
from evalkit.embedding.fingerprint import SAME_MODEL_MIN_COSINE
from evalkit.errors import ConfigError, InputError
from evalkit.records.requests import PAIRED_TEST_DEFAULTS, PairedTestSettings, measure_names
from evalkit.stats import compare_stored_runs
from evalkit.store.audit import StoredAudit, audit_findings
from evalkit.store.drift import StoredDriftCheck, list_drift_checks
from evalkit.store.freshness import unreflected_changes
from evalkit.store.goldsets import judgments_frame
from evalkit.store.runs import (
    INDEXED_FINGERPRINT,
    RunRecord,
    RunSpec,
    get_run,
    index_changed,
    list_runs,
)

if TYPE_CHECKING:
    from evalkit.stats import ComparisonReport
    from evalkit.store import Store

__all__ = [
    "explain_comparison",
    "explain_runs",
    "previous_run",
]

_KIND_ORDER = {name: index for index, name in enumerate(CAUSE_KINDS)}
_MODEL_FINDINGS: Final = ("model_fingerprint_mismatch", "vectors_from_another_model")
_DRIFT_STREAMS: Final = {"documents": "document_drift", "queries": "query_drift"}
_NOT_RETRIEVER_FACTS: Final = frozenset({"count", INDEXED_FINGERPRINT, "model", "model_check"})
"""Description fields other causes report: the index's document count and stored fingerprint
(``index_changed``) and the query model (``query_model_changed``); and the outcome of the check
that the store's vectors were made by the query model (``model_check``: its cosines move with
the sampled documents, and a model that failed it would have stopped the run)."""
_INDEX_FACTS: Final[Mapping[str, frozenset[str]]] = {
    "bm25": frozenset({"documents", "terms", "built_at"}),
    "pgvector": frozenset({"estimated_rows"}),
}
"""Description fields of a kind that are facts of its index (``index_changed``), not of the
retriever: a BM25 index's document and term counts and build time (rebuilt from a changed
corpus, it is the same retriever over another index), the planner's row estimate of a
pgvector table (it moves as rows are written, and after ``ANALYZE``). Only between two runs
of that kind: a plug-in's own fields may share the names."""
_RECORDED_LATER: Final = frozenset({"ef_search", "latency_timing", "ann_index_options"})
"""Description fields evalkit began recording after runs were already stored (Chroma's
``ef_search``, how a vector store timed its queries, a pgvector ANN index's build options):
a run recorded before lacks the field, which says nothing of its value, so the field is
compared only between runs that both have it."""
_RETRIEVER_FACTS: Final = {
    name: order
    for order, name in enumerate(
        ("kind", "plugin", "factory", "options", "distribution", "class", "adapter")
    )
}
"""The order a changed retriever's differences are told in: what names it first."""


# -- the join ------------------------------------------------------------------------------


def _series_key(run: RunRecord) -> tuple[str | None, str]:
    return run.spec.goldset_name, run.retriever_id


def previous_run(store: Store, run: RunRecord, *, limit: int = 500) -> RunRecord:
    """The baseline ``explain`` uses by default: the newest finished run (complete
    preferred) of the same goldset and ``RunRecord.retriever_id`` that started before ``run``,
    imported runs left out (they ran on another index). Raises ``ConfigError`` when there is
    none: then name a baseline.
    """
    key = _series_key(run)
    older = [
        other
        for other in list_runs(store, goldset=run.spec.goldset_name, limit=limit)
        if other.run_id != run.run_id
        and other.started_at <= run.started_at
        and other.status in ("complete", "partial")
        and other.imported_from is None
        and _series_key(other) == key
    ]
    for pool in ([o for o in older if o.status == "complete"], older):
        if pool:
            return pool[0]
    raise ConfigError(
        f"run {run.run_id} has no earlier finished run of the same goldset and retriever: "
        "name the baseline (`baseline`)"
    )


def explain_runs(
    store: Store,
    candidate: str,
    *,
    baseline: str | None = None,
    measures: Sequence[str] | None = None,
    test: PairedTestSettings = PAIRED_TEST_DEFAULTS,
) -> Explanation:
    """Compare ``candidate`` with ``baseline`` (default ``previous_run``) as the gate does,
    with the paired ``test``, a failed query counting as 0, and join the probable causes
    (``explain_comparison``).

    ``measures`` default to ndcg@10 when both runs stored it, else their first shared one.
    """
    cand = get_run(store, candidate)
    base = get_run(store, baseline) if baseline is not None else previous_run(store, cand)
    shared = [m for m in base.spec.measures if m in set(cand.spec.measures)]
    chosen = (
        list(measure_names(measures))
        if measures
        else (["ndcg@10"] if "ndcg@10" in shared else shared[:1])
    )
    if not chosen:
        raise InputError(
            f"runs {base.run_id} and {cand.run_id} share no stored measure: name one (`measures`)"
        )
    report = compare_stored_runs(
        store, base.run_id, cand.run_id, chosen, test, worst=0, failed_as_zero=True
    )
    return explain_comparison(store, report)


def _query_link(kind: str, label: str, cand: RunRecord, query: str) -> CauseLink:
    """A link to the query drill-down of ``query`` in the candidate run."""
    return cause_link(
        kind,
        f"Query drill-down: {label}",
        goldset=cand.spec.goldset_name,
        run=cand.run_id,
        query=query,
    )


def _series_link(kind: str, label: str, cand: RunRecord, measure: str) -> CauseLink:
    """A link to the quality-over-time page of ``measure`` on the candidate's goldset."""
    return cause_link(
        kind, f"Quality over time: {label}", goldset=cand.spec.goldset_name, measure=measure
    )


def _audit_causes(
    store: Store,
    read: Sequence[tuple[StoredAudit, frozenset[str]]],
    loss: Loss,
    found: Found,
    duplicates: DuplicateClusters,
) -> tuple[list[tuple[str, str, str]], set[str]]:
    """Lost relevant documents that the audits ``read`` (``IndexEvidence.checks_read``)
    report missing or stale; returns the model findings of those audits as (audit id,
    collection, message), and the lost documents the audits flagged. The audits' duplicate
    clusters go into ``duplicates``."""
    lost_docs = loss.documents
    flagged: dict[str, dict[str, tuple[str, str, str]]] = {
        "missing_from_index": {},
        "stale_documents": {},
    }
    models: list[tuple[str, str, str]] = []
    for audit, ran in read:
        for finding in audit_findings(store, audit.audit_id):
            if finding.check not in ran:
                continue
            if finding.kind in _MODEL_FINDINGS:
                models.append((audit.audit_id, audit.collection, finding.message))
            if finding.kind in DUPLICATE_FINDINGS:
                for cluster in finding.clusters:
                    duplicates.add(
                        DuplicateCluster(audit.audit_id, audit.collection, finding.kind, cluster)
                    )
            kind = (
                "missing_from_index"
                if finding.kind in MISSING_FINDINGS
                else "stale_documents"
                if finding.kind in STALE_FINDINGS
                else None
            )
            if kind is None:
                continue
            for doc in finding.doc_ids:
                if doc in lost_docs:
                    flagged[kind].setdefault(doc, (audit.audit_id, audit.collection, finding.kind))
    for kind, by_doc in flagged.items():
        if not by_doc:
            continue
        pairs = loss.lost_pairs_of(by_doc)
        fractions = loss.document_fractions(pairs)
        share = loss.share(fractions)
        counts = Counter(by_doc.values())
        audit_id, collection, finding_kind = max(counts, key=lambda s: (counts[s], s[0]))
        what = (
            "are missing from the index"
            if kind == "missing_from_index"
            else "no longer store their source's text in the index"
            if finding_kind == "changed_in_index"
            else "hold another text and vector in the index than they were indexed with"
            if finding_kind == "content_replaced"
            else "changed at the source since they were indexed"
        )
        queries = {q for q, _ in pairs}
        found.measured(
            Cause(
                kind=kind,
                score=share,
                statement=(
                    f"{len(by_doc)} of the {len(lost_docs)} relevant documents lost by the "
                    f"{len(loss.lost)} queries that dropped {what} of collection "
                    f"{collection} (audit {audit_id}, {finding_kind}); they account for "
                    f"{share:.0%} of the {loss.measure} loss, over {len(queries)} queries"
                ),
                link=cause_link(
                    kind,
                    "Index health: the audit's findings",
                    collection=collection,
                    audit=audit_id,
                    finding=finding_kind,
                ),
                evidence=tuple(
                    {
                        "query_id": q,
                        "doc_id": doc,
                        "baseline_rank": loss.baseline_ranks.get((q, doc)),
                        "audit_id": source[0],
                        "finding": source[2],
                    }
                    for (q, doc), source in sorted(pairs.items())[:EVIDENCE_ROWS]
                ),
            ),
            fractions,
        )
    return models, {doc for by_doc in flagged.values() for doc in by_doc}


def _unreflected_cause(
    store: Store, base: RunRecord, cand: RunRecord, loss: Loss, found: Found
) -> set[str]:
    """Lost relevant documents that changed at the source after the baseline started and
    that the index had not reflected when the candidate started, as freshness checks
    recorded them; returns those documents."""
    changes = unreflected_changes(
        store, sorted(loss.documents), after=base.started_at, at=cand.started_at
    )
    if not changes:
        return set()
    by_doc = {str(row["doc_id"]): row for row in changes}
    pairs = loss.lost_pairs_of(by_doc)
    fractions = loss.document_fractions(pairs)
    share = loss.share(fractions)
    subjects = Counter(str(row["subject"]) for row in by_doc.values())
    subject = max(subjects, key=lambda name: (subjects[name], name))
    waiting = sum(row["status"] == "pending" for row in by_doc.values())
    found.measured(
        Cause(
            kind="unreflected_changes",
            score=share,
            statement=(
                f"{len(by_doc)} of the {len(loss.documents)} relevant documents lost by the "
                f"{len(loss.lost)} queries that dropped changed at the source after the "
                f"baseline ran and were not yet reflected by the index {subject} when the "
                f"candidate ran ({waiting} still waiting at the last freshness check); they "
                f"account for {share:.0%} of the {loss.measure} loss"
            ),
            link=cause_link("unreflected_changes", "Index health: freshness", freshness=subject),
            evidence=tuple(
                {
                    "query_id": q,
                    "doc_id": doc,
                    "baseline_rank": loss.baseline_ranks.get((q, doc)),
                    "subject": row["subject"],
                    "updated_at": row["updated_at"].isoformat() + "Z",
                    "reflected_at": (
                        row["reflected_at"].isoformat() + "Z" if row["reflected_at"] else None
                    ),
                    "freshness_check": row["check_id"],
                }
                for (q, doc), row in sorted(pairs.items())[:EVIDENCE_ROWS]
            ),
        ),
        fractions,
    )
    return set(by_doc)


def _judged_documents_audit(audits: Sequence[StoredAudit], cand: RunRecord) -> str | None:
    """The audit nearest the candidate (``audits`` come nearest first) whose orphans check
    looked for every judged document of the candidate's goldset version in the index the
    candidate searched, or None. Only an audit made since the candidate started saw that
    index: an earlier one (since the baseline) may have seen the documents the index lost
    before the candidate."""
    for audit in audits:
        if audit.started_at < cand.started_at:
            return None
        ran = {str(check.get("name")) for check in audit.checks if check.get("ran")}
        if "orphans" in ran and audit.goldset_version == cand.spec.goldset_version:
            return audit.audit_id
        if "orphans" in ran:
            return None
    return None


def _absent_cause(
    report: ComparisonReport,
    cand: RunRecord,
    loss: Loss,
    found: Found,
    audited: set[str],
    *,
    present_by: str | None,
) -> None:
    """Lost relevant documents the candidate returned for no query at all, among those no
    audit has already accounted for, that a smaller k does not cut off, of queries that did
    not fail. ``present_by`` names an audit that found every judged document in the index:
    then they are there, ranked out of every query's top k, not missing."""
    returned = set(report.candidate_run.results["doc_id"].astype(str))
    failed = set(report.failed_in_candidate)
    pairs = {
        (q, doc): True
        for q, docs in loss.lost.items()
        if q not in failed
        for doc in docs
        if doc not in returned
        and doc not in audited
        and loss.baseline_ranks.get((q, doc), 0) <= cand.spec.k
    }
    absent = {doc for _, doc in pairs}
    if not absent:
        return
    fractions = loss.document_fractions(pairs)
    share = loss.share(fractions)
    worst = max(loss.drops, key=lambda q: (fractions.get(q, 0.0) * loss.drops[q], q))
    found.measured(
        Cause(
            kind="absent_from_results",
            score=share,
            statement=(
                (
                    "probably missing from the index"
                    if present_by is None
                    else f"in the index (audit {present_by}) but ranked out of every query's "
                    "top k, so its vectors or ranking changed"
                )
                + f": {len(absent)} of the {len(loss.documents)} relevant documents lost by "
                f"the {len(loss.lost)} queries that dropped were returned by the candidate "
                f"for no query at all (top {cand.spec.k} of every query); they account for "
                f"{share:.0%} of the {loss.measure} loss"
            ),
            link=_query_link("absent_from_results", f"query {worst} in the candidate", cand, worst),
            evidence=tuple(
                {"query_id": q, "doc_id": doc, "baseline_rank": loss.baseline_ranks.get((q, doc))}
                for q, doc in sorted(pairs)[:EVIDENCE_ROWS]
            ),
        ),
        fractions,
        established=False,
    )


def _failed_cause(report: ComparisonReport, cand: RunRecord, loss: Loss, found: Found) -> None:
    failed = sorted(set(report.failed_in_candidate) - set(report.failed_in_baseline))
    if not failed:
        return
    fractions = dict.fromkeys(failed, 1.0)
    share = loss.share(fractions)
    found.measured(
        Cause(
            kind="failed_queries",
            score=share,
            statement=(
                f"the candidate run is {cand.status}: {len(failed)} queries failed "
                f"({cand.error or 'see the run'}) and count as 0, {share:.0%} of the "
                f"{loss.measure} loss"
            ),
            link=_query_link("failed_queries", f"failed query {failed[0]}", cand, failed[0]),
            evidence=tuple({"query_id": q} for q in failed[:EVIDENCE_ROWS]),
        ),
        fractions,
    )


def _judged(frame: pd.DataFrame) -> dict[str, frozenset[tuple[str, int]]]:
    grouped: dict[str, set[tuple[str, int]]] = {}
    for q, d, r in zip(frame["query_id"], frame["doc_id"], frame["relevance"], strict=True):
        grouped.setdefault(str(q), set()).add((str(d), int(r)))
    return {q: frozenset(pairs) for q, pairs in grouped.items()}


def _goldset_cause(
    store: Store,
    report: ComparisonReport,
    base: RunRecord,
    cand: RunRecord,
    *,
    loss: Loss,
    found: Found,
) -> None:
    """The goldset versions the two runs replayed, when they differ: the queries whose
    judgments changed take their whole loss, unless both runs were scored on the same
    judgments (``--goldset``, ``--qrels``), which a change of judgments cannot explain."""
    before, after = base.spec.goldset_version, cand.spec.goldset_version
    if before is None or after is None or before == after:
        return
    old = _judged(judgments_frame(store, before))
    new = _judged(judgments_frame(store, after))
    changed = sorted(q for q in set(old) & set(new) if old[q] != new[q])
    added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
    scored = report.baseline_run.judgments, report.candidate_run.judgments
    same_judgments = scored[0] is scored[1] or _judged(scored[0]) == _judged(scored[1])
    fractions = {} if same_judgments else dict.fromkeys(changed, 1.0)
    share = loss.share(fractions)
    rows = [{"query_id": q, "change": "judgments"} for q in changed]
    rows += [{"query_id": q, "change": "added"} for q in added]
    rows += [{"query_id": q, "change": "removed"} for q in removed]
    if not changed:
        differ = f"no query both versions hold is judged otherwise (0% of the {loss.measure} loss)"
    elif same_judgments:
        differ = (
            f"the judgments of {len(changed)} queries differ between the versions, but both "
            f"runs were scored on the same judgments, so the change accounts for none of the "
            f"{loss.measure} loss"
        )
    else:
        differ = (
            f"the judgments of {len(changed)} compared queries differ ({share:.0%} of the "
            f"{loss.measure} loss)"
        )
    found.measured(
        Cause(
            kind="goldset_changed",
            score=share,
            statement=(
                f"{_goldset_change(base.spec, cand.spec)}: {differ}; {len(added)} queries "
                f"added and {len(removed)} removed are not compared"
            ),
            link=_series_link(
                "goldset_changed", "goldset versions in the series", cand, loss.measure
            ),
            evidence=tuple(rows[:EVIDENCE_ROWS]),
        ),
        fractions,
    )


def _goldset_change(base: RunSpec, cand: RunSpec) -> str:
    """Which goldset each run replayed, each version with its own goldset's name."""
    before, after = str(base.goldset_version)[:12], str(cand.goldset_version)[:12]
    if base.goldset_name == cand.goldset_name:
        return (
            f"goldset {cand.goldset_name} changed from version {before} (baseline) to "
            f"{after} (candidate)"
        )
    return (
        f"the goldset changed from {base.goldset_name} version {before} (baseline) to "
        f"{cand.goldset_name} version {after} (candidate)"
    )


def _k_cause(base: RunRecord, cand: RunRecord, loss: Loss, found: Found) -> None:
    # Only a shallower candidate can lose what the baseline ranked below its k.
    if cand.spec.k >= base.spec.k:
        return
    k = cand.spec.k
    deep = {
        (q, doc): loss.baseline_ranks.get((q, doc), 0)
        for q, docs in loss.lost.items()
        for doc in docs
        if loss.baseline_ranks.get((q, doc), 0) > k
    }
    fractions = loss.document_fractions(deep)
    share = loss.share(fractions)
    found.measured(
        Cause(
            kind="k_changed",
            score=share,
            statement=(
                f"k changed from {base.spec.k} to {k}: {len(deep)} lost relevant documents "
                f"were ranked deeper than {k} by the baseline ({share:.0%} of the "
                f"{loss.measure} loss)"
            ),
            link=_series_link("k_changed", "the series", cand, loss.measure),
            evidence=tuple(
                {"query_id": q, "doc_id": d, "baseline_rank": rank}
                for (q, d), rank in sorted(deep.items())[:EVIDENCE_ROWS]
            ),
        ),
        fractions,
    )


def _residual(
    kind: str, statement: str, link: CauseLink, evidence: Sequence[Mapping[str, Any]]
) -> Cause:
    return Cause(
        kind=kind,
        score=0.0,
        statement=statement,
        link=link,
        evidence=tuple(evidence),
    )


def _of_its_index(check: StoredDriftCheck, cand: RunRecord) -> bool:
    """Whether a check of a collection (model canary, documents) is about the index the
    candidate searched: a check naming no collection, or naming the candidate's. A run
    that names no collection (an HTTP endpoint, a factory) is told no other collection's."""
    return check.subject is None or check.subject == cand.spec.collection


def _model_causes(
    base: RunRecord,
    cand: RunRecord,
    audit_models: Sequence[tuple[str, str, str]],
    checks: Sequence[StoredDriftCheck],
    measure: str,
) -> list[Cause]:
    causes = []
    mismatches = [
        check
        for check in checks
        if check.stream == "model"
        and check.finding == "model_mismatch"
        and _of_its_index(check, cand)
    ]
    if mismatches or audit_models:
        rows: list[Mapping[str, Any]] = [
            {
                "check_id": c.check_id,
                "subject": c.subject,
                "canary_similarity": c.statistic,
                "evidence": c.details.get("evidence") or [c.method],
                "reembedded_sample": c.details.get("reembedding"),
            }
            for c in mismatches
        ]
        rows += [{"audit_id": a, "collection": c, "message": m} for a, c, m in audit_models]
        if mismatches:
            nearest = mismatches[0]
            statement = (
                f"the model check {nearest.check_id} found the index {nearest.subject} "
                f"built with another embedding model than the query model: "
                f"{_model_check_evidence(nearest)}"
            )
            link = cause_link(
                "index_model_mismatch", "Drift: the model check", check=nearest.check_id
            )
        else:
            audit_id, collection, message = audit_models[0]
            statement = f"audit {audit_id} of {collection}: {message}"
            link = CauseLink(
                "index_health",
                {"collection": collection, "audit": audit_id},
                "Index health: the audit's findings",
            )
        causes.append(_residual("index_model_mismatch", statement, link, rows[:EVIDENCE_ROWS]))
    before, after = base.spec, cand.spec
    same = before.same_query_model(after)
    if same is not True:
        old, new = before.query_model, after.query_model
        cosine = old.canary_similarity(new) if old and new else None
        if same is None:
            statement = (
                f"the query embedding model may have changed: {_model_words(before)} in the "
                f"baseline, {_model_words(after)} in the candidate; a run stored without its "
                "canary embeddings cannot tell another model from the same model on another "
                "backend (ONNX Runtime, torch) or CPU"
            )
        else:
            closeness = f", lowest canary cosine {cosine:.4f}" if cosine is not None else ""
            statement = (
                f"the query embedding model changed: {_model_words(before)} in the "
                f"baseline, {_model_words(after)} in the candidate{closeness}"
            )
        causes.append(
            _residual(
                "query_model_changed",
                statement,
                _series_link("query_model_changed", "model changes in the series", cand, measure),
                [
                    {
                        "run_id": run.run_id,
                        "model": run.spec.model_name,
                        "dimension": run.spec.model_dimension,
                        "fingerprint": run.spec.model_fingerprint,
                        "canary_cosine": cosine,
                    }
                    for run in (base, cand)
                ],
            )
        )
    if index_changed(before, after):
        causes.append(
            _residual(
                "index_changed",
                f"the index changed between the runs: fingerprint {before.index_fingerprint} "
                f"in the baseline, {after.index_fingerprint} in the candidate (rebuilt, "
                "documents added or removed)",
                _series_link("index_changed", "index changes in the series", cand, measure),
                [
                    {"run_id": run.run_id, "index_fingerprint": run.spec.index_fingerprint}
                    for run in (base, cand)
                ],
            )
        )
    return causes


def _model_check_evidence(check: StoredDriftCheck) -> str:
    """What a model check's mismatch rests on, named: the stored documents it re-embedded
    from their text (``reembedded_sample``), the stored vectors' dimension
    (``vector_dimension``), or the canary embeddings of the fingerprint the collection
    records (``canary_fingerprint``). A fingerprint that matched (canary cosine 1.000)
    while the re-embedded sample did not is no evidence of the mismatch, and is told so."""
    names = check.details.get("evidence") or [check.method]
    canary_differs = check.statistic is not None and check.statistic < SAME_MODEL_MIN_COSINE
    canary = (
        f"lowest canary cosine {check.statistic:.3f} (canary_fingerprint)"
        if check.statistic is not None
        else None
    )
    sample = check.details.get("reembedding")
    if "reembedded_sample" in names and isinstance(sample, Mapping) and sample.get("other_model"):
        told = (
            f"{sample['other_model']} of {sample['sampled']} stored documents re-embedded "
            f"from their text ({sample['other_model'] / sample['sampled']:.0%}) do not "
            f"reproduce their stored vectors, lowest cosine {sample['lowest_cosine']:.3f} "
            f"< {sample['min_cosine']} (reembedded_sample)"
        )
        if canary is None:
            return told
        return f"{told}; {canary}" + (
            ""
            if canary_differs
            else ": the model the collection records is not the one that made its vectors"
        )
    if "vector_dimension" in names and not canary_differs:
        query = check.details.get("query_model") or {}
        return (
            f"its stored vectors are not of the query model's {query.get('dimension', '?')} "
            "dimensions (vector_dimension)"
        )
    return canary or f"evidence {', '.join(map(str, names))}"


def _drift_causes(cand: RunRecord, checks: Sequence[StoredDriftCheck], found: Found) -> list[Cause]:
    causes = []
    for stream, kind in _DRIFT_STREAMS.items():
        drifted = [c for c in checks if c.stream == stream and c.is_drift]
        if stream == "documents":
            drifted = [c for c in drifted if _of_its_index(c, cand)]
        if not drifted:
            continue
        newest = drifted[0]
        p_value = f", p = {newest.p_value:.3g}" if newest.p_value is not None else ""
        found_drift = (
            f"{len(drifted)} drift check{'s' if len(drifted) != 1 else ''} of the {stream} "
            "between the runs found drift; "
            f"newest {newest.check_id} ({newest.method} on {newest.subject or stream}, "
            f"{newest.reference} -> {newest.current}{p_value})"
        )
        if stream == "queries" and cand.spec.goldset_name is not None:
            # A goldset replays the same queries whatever production asks, so drifted
            # queries cannot account for its loss; they say the goldset may have aged.
            found.notes.append(
                f"{found_drift}: a goldset asks the same queries whatever production asks, "
                "so this does not explain the loss; it may mean the goldset represents "
                "today's queries less well (`evalkit traffic promote` drafts a window's "
                "queries to judge and add to it)"
            )
            continue
        causes.append(
            _residual(
                kind,
                found_drift,
                cause_link(kind, f"Drift: check {newest.check_id}", check=newest.check_id),
                [
                    {
                        "check_id": c.check_id,
                        "subject": c.subject,
                        "method": c.method,
                        "p_value": c.p_value,
                        "created_at": c.created_at.isoformat() + "Z",
                    }
                    for c in drifted[:EVIDENCE_ROWS]
                ],
            )
        )
    return causes


def _settings_cause(base: RunRecord, cand: RunRecord, measure: str) -> Cause | None:
    before, after = base.spec, cand.spec
    changes = []
    if before.relevance_threshold != after.relevance_threshold:
        changes.append(
            f"relevance threshold {before.relevance_threshold} -> {after.relevance_threshold}"
        )
    if set(before.measures) != set(after.measures):
        gone = sorted(set(before.measures) - set(after.measures))
        new = sorted(set(after.measures) - set(before.measures))
        changes.append(
            "stored measures changed"
            + (f" (no longer stored: {', '.join(gone)})" if gone else "")
            + (f" (newly stored: {', '.join(new)})" if new else "")
        )
    if not changes:
        return None
    return _residual(
        "settings_changed",
        "the runs' settings differ: " + "; ".join(changes),
        cause_link(
            "settings_changed",
            "Compare runs: the two runs",
            goldset=after.goldset_name,
            baseline=base.run_id,
            candidate=cand.run_id,
            measure=measure,
        ),
        [
            {
                "run_id": run.run_id,
                "relevance_threshold": run.spec.relevance_threshold,
                "measures": list(run.spec.measures),
            }
            for run in (base, cand)
        ],
    )


def _shown(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, Mapping | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _retriever_cause(base: RunRecord, cand: RunRecord, measure: str) -> Cause | None:
    """The retriever's own record differs: its kind, factory or plug-in, options, class,
    location or settings (what ``describe()`` gave), each difference an evidence row."""
    before = {**base.spec.retriever_config, "kind": base.spec.retriever_kind}
    after = {**cand.spec.retriever_config, "kind": cand.spec.retriever_kind}
    fields = sorted(
        (set(before) | set(after))
        - _NOT_RETRIEVER_FACTS
        - (
            _INDEX_FACTS.get(before["kind"], frozenset())
            if before["kind"] == after["kind"]
            else frozenset()
        ),
        key=lambda name: (_RETRIEVER_FACTS.get(name, len(_RETRIEVER_FACTS)), name),
    )
    changed = [
        name
        for name in fields
        if before.get(name) != after.get(name)
        and (name not in _RECORDED_LATER or (name in before and name in after))
    ]
    if not changed:
        return None
    return _residual(
        "retriever_changed",
        "the retriever changed: "
        + "; ".join(
            f"{name} {_shown(before.get(name))} -> {_shown(after.get(name))}" for name in changed
        ),
        cause_link(
            "retriever_changed",
            "Compare runs: the two runs",
            goldset=cand.spec.goldset_name,
            baseline=base.run_id,
            candidate=cand.run_id,
            measure=measure,
        ),
        [
            {"field": name, "baseline": before.get(name), "candidate": after.get(name)}
            for name in changed
        ],
    )


def _audit_note(base: RunRecord, cand: RunRecord) -> str | None:
    """The ``evalkit audit`` command that tells whether the lost documents are still
    indexed, with the arguments it needs; None unless the candidate searched an index an
    audit can read (a Chroma or Qdrant collection, a pgvector table)."""
    config = cand.spec.retriever_config
    kinds = (cand.spec.retriever_kind, config.get("kind"), config.get("adapter"))
    collection = cand.spec.collection
    gold = f" --goldset {cand.spec.goldset_name}" if cand.spec.goldset_name else ""
    if collection and any(str(kind or "").startswith("chroma") for kind in kinds):
        url = config.get("url")
        server = f" --chroma-url {url}" if url else ""
        command = f"evalkit audit --collection {collection}{server}{gold}"
    elif collection and cand.spec.retriever_kind == "qdrant":
        command = f"evalkit audit --retriever qdrant --collection {collection}{gold}"
    elif collection and cand.spec.retriever_kind == "pgvector":
        command = f"evalkit audit --retriever pgvector{gold}"
    else:
        return None
    return (
        f"no index audit since the baseline started ({base.started_at:%Y-%m-%d %H:%M} UTC): "
        f"`{command}` tells whether the lost documents are still indexed"
    )


def explain_comparison(store: Store, report: ComparisonReport) -> Explanation:
    """The probable causes of ``report``, a comparison of two stored runs, best first.

    Joins the two runs' records and results with the audits and canary checks since the
    baseline started (``causes.evidence`` chooses them) and the drift checks between the
    baseline's start and the candidate's end; ``Explanation.evidence`` lists what was read.
    """
    base_id, cand_id = report.baseline_run.run_id, report.candidate_run.run_id
    if base_id is None or cand_id is None:
        raise InputError("probable causes need two stored runs, not run files")
    base, cand = get_run(store, base_id), get_run(store, cand_id)
    metrics = report.metrics
    regressed = [m for m in metrics if m.decision.value == "regression"]
    primary = min(regressed or metrics, key=lambda metric: metric.delta)
    loss = loss_of(report, primary.measure)
    found = Found()
    index = index_evidence(store, base, cand)
    read = index.checks_read()
    audit_models: list[tuple[str, str, str]] = []
    audited: set[str] = set()
    duplicates = DuplicateClusters()
    if read:
        audit_models, audited = _audit_causes(store, read, loss, found, duplicates)
    elif loss.lost and not index.left_out:
        note = _audit_note(base, cand)
        if note is not None:
            found.notes.append(note)
    audited |= _unreflected_cause(store, base, cand, loss, found)
    audited |= duplicates_cause(report, loss, found, duplicates, explained=audited)
    present_by = _judged_documents_audit(index.audits, cand)
    _absent_cause(report, cand, loss, found, audited, present_by=present_by)
    _failed_cause(report, cand, loss, found)
    _goldset_cause(store, report, base, cand, loss=loss, found=found)
    _k_cause(base, cand, loss, found)
    # Drift checks describe a window, so only those made between the two runs count.
    window = list_drift_checks(
        store, since=base.started_at, until=cand.finished_at or cand.started_at, limit=500
    )
    if index.left_out_note is not None:
        found.notes.append(index.left_out_note)
    residual = (
        sum(drop * (1.0 - found.explained(q)) for q, drop in loss.drops.items()) / loss.total
        if loss.total > 0
        else 0.0
    )
    retriever = _retriever_cause(base, cand, primary.measure)
    unmeasured = [
        *([retriever] if retriever is not None else []),
        *_model_causes(base, cand, audit_models, index.canaries, primary.measure),
        *_drift_causes(cand, window, found),
    ]
    settings = _settings_cause(base, cand, primary.measure)
    if settings is not None:
        unmeasured.append(settings)
    causes = found.causes + [
        replace(
            cause,
            score=residual,
            statement=f"{cause.statement}; it can account for the {residual:.0%} of the "
            f"{primary.measure} loss that no traced cause explains",
        )
        for cause in unmeasured
    ]
    ranked = sorted(causes, key=lambda cause: (-round(cause.score, 9), _KIND_ORDER[cause.kind]))
    return Explanation(
        baseline=base.run_id,
        candidate=cand.run_id,
        goldset=cand.spec.goldset_name,
        measure=primary.measure,
        decision=report.decision.value,
        delta=primary.delta,
        loss=loss.total,
        lost_queries=len(loss.drops),
        lost_documents=len(loss.documents),
        lost_pairs=sum(len(docs) for docs in loss.lost.values()),
        causes=tuple(ranked),
        notes=tuple(found.notes),
        evidence=evidence_read(read, [*index.canaries, *window], ranked),
    )


def _model_words(spec: RunSpec) -> str:
    """A run's query embedding model in words; a retriever without one (a lexical index, a
    fusion) says so rather than printing its empty fields."""
    if spec.model_name is None and spec.model_fingerprint is None:
        return "no embedding model"
    return f"{spec.model_name} ({spec.model_dimension}d, canary {spec.model_fingerprint})"
