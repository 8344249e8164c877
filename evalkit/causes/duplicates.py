"""The ``crowded_by_duplicates`` cause: a query's top k filled with copies of documents the
index holds several times, pushing relevant documents down or out (``duplicates_cause``;
docs/cli.md, "Probable causes: `evalkit explain`").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from evalkit.causes.loss import Found, Loss, cause_link, top_documents
from evalkit.causes.records import EVIDENCE_ROWS, Cause
from evalkit.metrics import Evaluator
from evalkit.stats.compare import document_depth

if TYPE_CHECKING:
    from evalkit.stats import ComparisonReport
    from evalkit.stats.compare import ScoredRun

__all__ = ["DUPLICATE_FINDINGS", "DuplicateCluster", "DuplicateClusters", "duplicates_cause"]

DUPLICATE_FINDINGS = ("exact_duplicates", "near_duplicates", "duplicates_of_source")
"""The audit findings whose clusters are copies of one another."""

REINGESTED = "duplicates_of_source"
"""The finding whose clusters hold a source document and its copies under ids the source
does not have: the mark of a corpus ingested again under new ids without deduplication."""


@dataclass(frozen=True, slots=True)
class DuplicateCluster:
    """Documents an audit found to be copies of one another, and where it found them."""

    audit_id: str
    collection: str
    finding: str
    documents: tuple[str, ...]


@dataclass
class DuplicateClusters:
    """The duplicate clusters of the audits read, by document (a document's first cluster
    read counts: audits are read newest first), and the copies a staleness check found
    under ids the source does not have (``reingested``, by copy)."""

    of: dict[str, DuplicateCluster] = field(default_factory=dict)
    reingested: dict[str, DuplicateCluster] = field(default_factory=dict)

    def add(self, cluster: DuplicateCluster) -> None:
        """Add ``cluster``; its documents already in a cluster read before keep that one."""
        if cluster.finding == REINGESTED:
            for doc in cluster.documents[1:]:
                self.reingested.setdefault(doc, cluster)
        for doc in cluster.documents:
            self.of.setdefault(doc, cluster)

    def collapse(
        self, ranking: Sequence[str], grades: Mapping[str, int] | None = None
    ) -> tuple[list[str], list[str]]:
        """``ranking`` (best first) with each duplicate cluster in one place, its first
        member's, held by its best-judged member in the ranking (by ``grades``; the higher
        ranked on a tie), and the extra copies taken out."""
        grades = grades or {}
        members: dict[DuplicateCluster, list[str]] = {}
        for doc in ranking:
            cluster = self.of.get(doc)
            if cluster is not None:
                members.setdefault(cluster, []).append(doc)
        kept: list[str] = []
        for doc in ranking:
            cluster = self.of.get(doc)
            if cluster is None:
                kept.append(doc)
            elif doc == members[cluster][0]:
                group = members[cluster]
                kept.append(max(group, key=lambda d: (grades.get(d, -1), -group.index(d))))
        taken = set(kept)
        return kept, [doc for doc in ranking if doc not in taken]

    def reingested_copies(self, docs: Sequence[str]) -> list[DuplicateCluster]:
        """For each of ``docs`` (extra copies) whose cluster holds a copy of a source
        document under an id the source does not have, that copy's cluster."""
        found = []
        for doc in docs:
            members = self.of[doc].documents
            copy = next((member for member in members if member in self.reingested), None)
            if copy is not None:
                found.append(self.reingested[copy])
        return found


def _then(ranking: Sequence[str], more: Sequence[str]) -> list[str]:
    """``ranking`` with the documents of ``more`` it lacks after it."""
    return [*ranking, *(doc for doc in more if doc not in ranking)]


def _ordered(ranking: Sequence[str]) -> dict[str, float]:
    """``ranking`` (best first) as scores an ``Evaluator`` ranks in that order."""
    return {doc: float(len(ranking) - rank) for rank, doc in enumerate(ranking)}


def _scores(
    run: ScoredRun, rankings: Sequence[Mapping[str, Mapping[str, float]]], measure: str
) -> list[dict[str, float]]:
    """``measure`` of each query of each of ``rankings`` on ``run``'s judgments (indexed
    once for them all)."""
    evaluator = Evaluator(run.judgments, [measure], relevance_threshold=run.relevance_threshold)
    scored = []
    for ranking in rankings:
        frame = evaluator.evaluate(dict(ranking), complete=True, query_ids=list(ranking))
        scored.append(
            {str(query): float(value) for query, value in frame.per_query[measure].items()}
        )
    return scored


def _grades(run: ScoredRun, queries: Collection[str]) -> dict[str, dict[str, int]]:
    """The judged grades of each of ``queries`` on ``run``'s judgments, by document."""
    judged = run.judgments[run.judgments["query_id"].astype(str).isin(queries)]
    grades: dict[str, dict[str, int]] = {}
    for query, doc, grade in zip(
        judged["query_id"].astype(str),
        judged["doc_id"].astype(str),
        judged["relevance"],
        strict=True,
    ):
        grades.setdefault(query, {})[doc] = int(grade)
    return grades


def duplicates_cause(
    report: ComparisonReport,
    loss: Loss,
    found: Found,
    clusters: DuplicateClusters,
    *,
    explained: set[str],
) -> set[str]:
    """Trace the dropped queries' losses to extra copies of duplicates in the candidate's
    top k, adding the cause to ``found``; returns the lost relevant documents the copies
    pushed out (other than the ``explained`` ones).

    A query's fraction is the share of its drop won back by collapsing each duplicate cluster
    into one place (``DuplicateClusters.collapse``) in both runs' top k, so copies both runs
    ranked explain nothing.
    """
    if not clusters.of or not loss.drops:
        return set()
    depth = document_depth(loss.measure)
    queries = list(loss.drops)
    before = top_documents(report.baseline_run.results, queries, depth)
    after = top_documents(report.candidate_run.results, queries, depth)
    base_grades = _grades(report.baseline_run, queries)
    cand_grades = _grades(report.candidate_run, queries)
    collapsed = {q: clusters.collapse(after.get(q, []), cand_grades.get(q)) for q in queries}
    crowded = {q: extra for q, (_, extra) in collapsed.items() if extra}
    if not crowded:
        return set()
    base_collapsed = {q: clusters.collapse(before.get(q, []), base_grades.get(q)) for q in crowded}
    pushed: dict[str, list[str]] = {}
    for query, extra in crowded.items():
        places = len(extra) - len(base_collapsed[query][1])
        open_docs = [doc for doc in loss.lost.get(query, ()) if doc not in explained]
        deepest_first = sorted(
            open_docs, key=lambda doc: (-loss.baseline_ranks.get((query, doc), 0), doc)
        )
        pushed[query] = sorted(
            deepest_first[: max(places, 0)],
            key=lambda doc: (loss.baseline_ranks.get((query, doc), 0), doc),
        )
    measure = loss.measure
    base_now, base_clean = _scores(
        report.baseline_run,
        [
            {q: _ordered(before.get(q, [])) for q in crowded},
            {q: _ordered(base_collapsed[q][0]) for q in crowded},
        ],
        measure,
    )
    cand_now, cand_clean = _scores(
        report.candidate_run,
        [
            {q: _ordered(after[q]) for q in crowded},
            {q: _ordered(_then(collapsed[q][0], pushed[q])) for q in crowded},
        ],
        measure,
    )
    fractions: dict[str, float] = {}
    for query in crowded:
        drop = base_now[query] - cand_now[query]
        if drop <= 0:
            continue
        won_back = (cand_clean[query] - cand_now[query]) - (base_clean[query] - base_now[query])
        fraction = min(max(won_back / drop, 0.0), 1.0)
        if fraction > 0:
            fractions[query] = fraction
    if not fractions:
        return set()
    share = loss.share(fractions)
    involved = {clusters.of[doc] for query in fractions for doc in crowded[query]}
    sources = Counter((c.audit_id, c.collection, c.finding) for c in involved)
    audit_id, collection, finding = max(sources, key=lambda s: (sources[s], s))
    copies = sum(len(crowded[query]) for query in fractions)
    reingested = clusters.reingested_copies([doc for q in fractions for doc in crowded[q]])
    likely = (
        f"; {len(reingested)} of these copies store a source document's text under an id "
        f"the source does not have (audit {reingested[0].audit_id}, {REINGESTED}): the "
        "likely cause is the corpus ingested again under new ids without deduplication"
        if reingested
        else ""
    )
    found.measured(
        Cause(
            kind="crowded_by_duplicates",
            score=share,
            statement=(
                f"{len(fractions)} of the {len(loss.drops)} queries that dropped rank extra "
                f"copies of duplicate documents in their top {depth} ({copies} in all, from "
                f"{len(involved)} duplicate clusters of collection {collection}, audit "
                f"{audit_id}, {finding}); with each cluster in one place and the relevant "
                f"documents the copies pushed out put back, they win back {share:.0%} of the "
                f"{measure} loss{likely}"
            ),
            link=cause_link(
                "crowded_by_duplicates",
                "Index health: the audit's duplicates",
                collection=collection,
                audit=audit_id,
                finding=finding,
            ),
            evidence=tuple(
                {
                    "query_id": query,
                    "baseline": round(base_now[query], 6),
                    "candidate": round(cand_now[query], 6),
                    "without_copies": round(cand_clean[query], 6),
                    "extra_copies": ", ".join(crowded[query]),
                    "pushed_out": ", ".join(pushed[query]),
                }
                for query in sorted(fractions)[:EVIDENCE_ROWS]
            ),
        ),
        fractions,
    )
    return {doc for query in fractions for doc in pushed[query]}
