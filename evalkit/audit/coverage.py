"""Judgment coverage and orphaned judgments: does the goldset still describe the index?

When judged@k (trec_eval's ``judged_k``) falls, the goldset's measures are computed over
documents nobody judged. A relevant orphan (a judged document gone from the index) can never
be retrieved, so more than ``orphaned_relevant_critical_share`` of them is critical.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from evalkit.audit.context import AuditContext
from evalkit.goldset.model import Goldset
from evalkit.records.audit import CheckOutcome, Finding, Severity

__all__ = ["check_coverage", "check_orphans", "judged_at_k", "judgments_frame"]


def judgments_frame(goldset: Goldset) -> pd.DataFrame:
    """A goldset's judgments as a frame: query_id, doc_id, relevance."""
    return pd.DataFrame(
        {
            "query_id": pd.Series([j.query_id for j in goldset.judgments], dtype=object),
            "doc_id": pd.Series([j.doc_id for j in goldset.judgments], dtype=object),
            "relevance": pd.Series([j.relevance for j in goldset.judgments], dtype="int64"),
        }
    )


def judged_at_k(
    query_ids: Sequence[str],
    ranked_doc_ids: Sequence[Sequence[str]],
    judgments: pd.DataFrame,
    *,
    k: int,
) -> pd.Series:
    """judged@k per query: judged documents among the first ``k`` returned, divided by ``k``.

    ``ranked_doc_ids[i]`` is what the index returned for ``query_ids[i]``; ``judgments``
    has columns query_id and doc_id (any relevance counts as judged). A query that returned
    nothing scores 0. Returns a float Series indexed by query id, in the order given.
    """
    lengths = [min(len(ids), k) for ids in ranked_doc_ids]
    returned = pd.DataFrame(
        {
            "query_id": pd.Series(
                [qid for qid, n in zip(query_ids, lengths, strict=True) for _ in range(n)],
                dtype=object,
            ),
            "doc_id": pd.Series(
                [doc for ids in ranked_doc_ids for doc in list(ids)[:k]], dtype=object
            ),
        }
    )
    judged = judgments[["query_id", "doc_id"]].drop_duplicates().assign(judged=1)
    marked = returned.merge(judged, on=["query_id", "doc_id"], how="left")
    counts = marked.groupby("query_id", sort=False)["judged"].sum()
    index = pd.Index(list(query_ids), dtype=object, name="query_id")
    return (counts.reindex(index).fillna(0.0) / k).astype(float).rename(f"judged@{k}")


def check_coverage(context: AuditContext) -> CheckOutcome:
    """Report low judged@k of the golden queries, or a drop since the previous audit."""
    config = context.config
    if context.goldset is None:
        return CheckOutcome("coverage", False, note="no goldset given (--goldset)")
    other = context.other_model
    if other is not None and context.embedder_problem is None:
        return CheckOutcome(
            "coverage",
            False,
            note=f"not measured: {other}; what the index returns for queries embedded by "
            "another model than its documents' says nothing of the judgments",
        )
    results = context.golden_results
    if results is None:
        return CheckOutcome("coverage", False, note=f"cannot query: {context.embedder_problem}")
    measure = f"judged@{config.k}"
    per_query = judged_at_k(
        results.query_ids, results.doc_ids, judgments_frame(context.goldset), k=config.k
    )
    mean = float(per_query.mean()) if len(per_query) else 0.0
    uncovered = tuple(str(qid) for qid in per_query.index[per_query.to_numpy() == 0.0])
    measurements = {
        "coverage_queries": float(len(per_query)),
        measure: mean,
        "queries_without_judged": float(len(uncovered)),
    }
    previous = context.previous.get(measure)
    floor = previous * (1 - config.max_judged_drop) if previous else None
    dropped = floor is not None and mean < floor
    findings: list[Finding] = []
    if len(per_query) and (mean < config.min_judged_at_k or dropped):
        reason = (
            f"below {config.min_judged_at_k}"
            if mean < config.min_judged_at_k
            else f"down from {previous:.3f} at the previous audit"
        )
        findings.append(
            config.finding(
                "low_judgment_coverage",
                f"{measure} of goldset '{context.goldset.name}' is {mean:.3f} ({reason}); "
                f"{len(uncovered)} of {len(per_query)} queries have no judged document in "
                f"their top {config.k}. Judge what the index returns now.",
                len(uncovered),
                query_ids=uncovered,
                value=mean,
                threshold=config.min_judged_at_k,
                details={"previous": previous, "max_relative_drop": config.max_judged_drop},
            )
        )
    return CheckOutcome("coverage", True, measurements, tuple(findings))


def check_orphans(context: AuditContext) -> CheckOutcome:
    """Report judged documents that are not in the index: critical when more than
    ``orphaned_relevant_critical_share`` of the goldset's relevant documents are among them,
    else of the kind's (configured) severity."""
    config = context.config
    if context.goldset is None:
        return CheckOutcome("orphans", False, note="no goldset given (--goldset)")
    judgments = judgments_frame(context.goldset)
    indexed = pd.Index(context.snapshot.ids, dtype=object)
    orphaned = judgments[~judgments["doc_id"].isin(indexed)]
    orphan_ids = tuple(sorted(orphaned["doc_id"].unique()))
    relevant = orphaned[orphaned["relevance"] >= config.relevance_threshold]
    relevant_ids = sorted(relevant["doc_id"].unique())
    n_relevant = judgments.loc[
        judgments["relevance"] >= config.relevance_threshold, "doc_id"
    ].nunique()
    share = len(relevant_ids) / n_relevant if n_relevant else 0.0
    limit = config.orphaned_relevant_critical_share
    measurements = {
        "judged_documents": float(judgments["doc_id"].nunique()),
        "orphaned_documents": float(len(orphan_ids)),
        "orphaned_relevant_documents": float(len(relevant_ids)),
        "orphaned_relevant_share": share,
    }
    findings: list[Finding] = []
    if orphan_ids:
        findings.append(
            config.finding(
                "orphaned_judgments",
                f"{len(orphan_ids)} documents judged in goldset '{context.goldset.name}' are "
                f"not in the index ({len(relevant_ids)} of them relevant, which no retriever "
                f"can now find: {share:.1%} of its {n_relevant} relevant documents, "
                + ("more" if share > limit else "no more")
                + f" than the {limit:.1%} allowed by orphaned_relevant_critical_share); "
                "re-index them or update the judgments",
                len(orphan_ids),
                severity=Severity.critical if share > limit else None,
                doc_ids=orphan_ids,
                query_ids=tuple(sorted(orphaned["query_id"].unique())),
                value=share,
                threshold=limit,
                details={
                    "relevant_doc_ids": relevant_ids,
                    "judgments": len(orphaned),
                    "relevant_judgments": len(relevant),
                    "relevant_documents": n_relevant,
                    "orphaned_relevant_share": share,
                    "orphaned_relevant_critical_share": limit,
                },
            )
        )
    return CheckOutcome("orphans", True, measurements, tuple(findings))
