"""ANN recall: does the collection's HNSW index return what exact search would?

Sample queries are run against the index and against exact search over the vectors the
collection stores, in its distance space. A returned document whose exact score ties the
k-th best counts as found, so identical vectors (duplicates) never look like misses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from evalkit.audit.context import AuditContext, RetrievedLists
from evalkit.audit.duplicates import unit_rows
from evalkit.audit.model import sample_rows
from evalkit.audit.view import IndexView
from evalkit.errors import ConfigError
from evalkit.records.audit import CheckOutcome, Finding, Severity

__all__ = ["EXACT_SCORES", "AnnRecall", "ann_recall", "check_ann_recall", "exact_scores"]

FloatMatrix = npt.NDArray[np.float64]

# Scores agreeing to this much are ties: float32 rounding inside the index differs from ours.
TIE_TOLERANCE = 1e-4
# Cells of one (queries x documents) block of exact scores held at once.
_BLOCK_CELLS = 1 << 24


def _cosine_scores(queries: FloatMatrix, documents: FloatMatrix) -> FloatMatrix:
    return np.asarray(unit_rows(queries) @ unit_rows(documents).T, dtype=np.float64)


def _inner_product_scores(queries: FloatMatrix, documents: FloatMatrix) -> FloatMatrix:
    return np.asarray(queries @ documents.T, dtype=np.float64)


def _negative_l2_scores(queries: FloatMatrix, documents: FloatMatrix) -> FloatMatrix:
    # -||q - x||² up to the per-query constant ||q||², which does not change the ranking.
    squared_norms = np.einsum("ij,ij->i", documents, documents)
    return np.asarray(2.0 * (queries @ documents.T) - squared_norms[None, :], dtype=np.float64)


EXACT_SCORES: Mapping[str, Callable[[FloatMatrix, FloatMatrix], FloatMatrix]] = {
    "cosine": _cosine_scores,
    "ip": _inner_product_scores,
    "l2": _negative_l2_scores,
}
"""Exact scores (higher is nearer) of queries x documents, per Chroma distance space."""


def exact_scores(queries: npt.ArrayLike, documents: npt.ArrayLike, *, space: str) -> FloatMatrix:
    """Exact scores of every query against every document in ``space`` (higher is nearer)."""
    scorer = EXACT_SCORES.get(space)
    if scorer is None:
        raise ConfigError(f"unknown distance space '{space}'; use one of {sorted(EXACT_SCORES)}")
    return scorer(np.asarray(queries, dtype=np.float64), np.asarray(documents, dtype=np.float64))


@dataclass(frozen=True, slots=True)
class AnnRecall:
    """Per query: recall@k of the ANN lists and the exact top-k rows they missed."""

    recall: npt.NDArray[np.float64]
    missed: tuple[npt.NDArray[np.int64], ...]


def ann_recall(
    queries: npt.ArrayLike,
    documents: npt.ArrayLike,
    ann_rows: npt.ArrayLike,
    *,
    k: int,
    space: str = "cosine",
    tolerance: float = TIE_TOLERANCE,
) -> AnnRecall:
    """recall@k of ANN results (``ann_rows[q]``: document rows, -1 padding) vs exact search.

    ``k`` is capped at the number of documents. A returned row counts as found when its exact
    score is at least the k-th best exact score minus ``tolerance``. Exact scores are
    computed in blocks of queries so memory stays bounded whatever the collection size.
    """
    query_matrix = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    document_matrix = np.asarray(documents, dtype=np.float32)
    returned = np.atleast_2d(np.asarray(ann_rows, dtype=np.int64))
    n_queries, n_documents = len(query_matrix), len(document_matrix)
    depth = min(k, n_documents)
    if n_queries == 0 or depth == 0:
        return AnnRecall(np.ones(n_queries), tuple(np.zeros(0, np.int64) for _ in range(n_queries)))
    returned = returned[:, :depth]
    block = max(1, _BLOCK_CELLS // n_documents)
    recall = np.empty(n_queries, dtype=np.float64)
    missed: list[npt.NDArray[np.int64]] = []
    for start in range(0, n_queries, block):
        scores = exact_scores(query_matrix[start : start + block], document_matrix, space=space)
        top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
        kth = np.take_along_axis(scores, top, axis=1).min(axis=1)
        rows = returned[start : start + block]
        valid = rows >= 0
        gathered = np.take_along_axis(scores, np.where(valid, rows, 0), axis=1)
        found = valid & (gathered >= kth[:, None] - tolerance)
        n_found = found.sum(axis=1)
        recall[start : start + len(rows)] = n_found / depth
        for query in range(len(rows)):
            n_missed = depth - int(n_found[query])
            candidates = top[query][~np.isin(top[query], rows[query])]
            nearest_first = np.argsort(-scores[query, candidates], kind="stable")
            missed.append(candidates[nearest_first][:n_missed].astype(np.int64))
    return AnnRecall(recall, tuple(missed))


def _stored_vector_queries(context: AuditContext) -> RetrievedLists:
    rows = sample_rows(len(context.snapshot), context.config.ann_max_queries, context.rng)
    vectors = context.snapshot.vectors[rows]
    return RetrievedLists(
        query_ids=tuple(f"doc:{context.snapshot.ids[row]}" for row in rows),
        vectors=vectors,
        doc_ids=context.query_index(vectors),
    )


def _query_lists(context: AuditContext) -> tuple[RetrievedLists, str]:
    config = context.config
    # Queries embedded in another space than the documents' fall where HNSW has no
    # neighbourhoods to follow: their misses would blame the index for the model mismatch.
    other = context.other_model
    if other is None and context.embedder_problem is None and context.queries:
        chosen = sample_rows(len(context.queries), config.ann_max_queries, context.rng)
        lists = context.retrieve([context.queries[row] for row in chosen])
        return lists, f"{len(chosen)} given queries"
    golden = context.golden_results if other is None else None
    if golden is not None and golden.query_ids:
        chosen = sample_rows(len(golden.query_ids), config.ann_max_queries, context.rng)
        lists = RetrievedLists(
            query_ids=tuple(golden.query_ids[row] for row in chosen),
            vectors=golden.vectors[chosen],
            doc_ids=tuple(golden.doc_ids[row] for row in chosen),
        )
        return lists, f"{len(chosen)} golden queries"
    lists = _stored_vector_queries(context)
    described = f"{len(lists.query_ids)} stored vectors used as queries"
    if other is not None and (context.queries or context.goldset is not None):
        given = "given" if context.queries else "golden"
        described += f", not the {given} queries: {other}"
    return lists, described


def _rows(context: AuditContext, doc_ids: Sequence[tuple[str, ...]], depth: int) -> np.ndarray:
    positions = context.snapshot.positions
    table = np.full((len(doc_ids), depth), -1, dtype=np.int64)
    for query, ids in enumerate(doc_ids):
        found = [positions.get(doc_id, -1) for doc_id in ids[:depth]]
        table[query, : len(found)] = found
    return table


def check_ann_recall(context: AuditContext) -> CheckOutcome:
    """Measure recall@k of the ANN index against exact search over its own vectors."""
    snapshot, config = context.snapshot, context.config
    if len(snapshot) == 0:
        return CheckOutcome("ann_recall", False, note="the collection is empty")
    several = (
        context.collection.stored_as_several if isinstance(context.collection, IndexView) else None
    )
    if several is not None:
        return CheckOutcome("ann_recall", False, note=several)
    lists, described = _query_lists(context)
    depth = min(config.k, len(snapshot))
    measure = f"recall@{config.k}"
    result = ann_recall(
        lists.vectors,
        snapshot.vectors,
        _rows(context, lists.doc_ids, depth),
        k=depth,
        space=snapshot.space,
    )
    mean_recall = float(result.recall.mean()) if len(result.recall) else 1.0
    missing = np.flatnonzero(result.recall < 1.0)
    measurements = {
        "ann_queries": float(len(lists.query_ids)),
        measure: mean_recall,
        "ann_queries_with_misses": float(missing.size),
    }
    findings: list[Finding] = []
    if mean_recall < config.ann_min_recall:
        severity = (
            Severity.critical
            if mean_recall < config.ann_critical_recall
            else config.severity("low_ann_recall")
        )
        worst = missing[np.argsort(result.recall[missing], kind="stable")]
        findings.append(
            config.finding(
                "low_ann_recall",
                f"the ANN index's {measure} is {mean_recall:.3f} (< {config.ann_min_recall}) "
                f"over {described}; {missing.size} queries miss documents exact search finds. "
                "Raise the HNSW ef_search / ef_construction / max_neighbors of the collection, "
                "or rebuild it.",
                int(missing.size),
                query_ids=tuple(lists.query_ids[row] for row in worst),
                value=mean_recall,
                threshold=config.ann_min_recall,
                severity=severity,
                details={
                    "k": depth,
                    "queries": described,
                    "misses": {
                        lists.query_ids[row]: {
                            "recall": float(result.recall[row]),
                            "missed": [snapshot.ids[doc] for doc in result.missed[row]],
                        }
                        for row in worst[: config.max_listed]
                    },
                },
            )
        )
    return CheckOutcome("ann_recall", True, measurements, tuple(findings), note=described)
