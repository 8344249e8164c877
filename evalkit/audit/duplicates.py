"""Duplicate documents: the same content under several ids, and near-identical vectors.

Exact duplicates share a content hash. Near duplicates come from a blocked exact cosine
search (memory O(block_size² + pairs), independent of the ANN index), merged into clusters
by union-find.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from evalkit.audit.context import AuditContext
from evalkit.errors import ConfigError
from evalkit.records.audit import CheckOutcome, Finding

__all__ = [
    "NearDuplicatePairs",
    "check_duplicates",
    "cluster_pairs",
    "exact_duplicate_groups",
    "near_duplicate_pairs",
    "unit_rows",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class NearDuplicatePairs:
    """Row pairs ``first[i] < second[i]`` whose cosine ``similarity[i]`` reached the threshold."""

    first: IntArray
    second: IntArray
    similarity: FloatArray

    def __len__(self) -> int:
        return len(self.first)


def unit_rows(vectors: npt.ArrayLike) -> FloatArray:
    """``vectors`` as float32 rows of length 1 (all-zero rows stay zero)."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2:
        raise ConfigError(f"expected a 2-D array of vectors, got shape {matrix.shape}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: FloatArray = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    return unit


def exact_duplicate_groups(hashes: Sequence[str]) -> list[IntArray]:
    """Rows sharing a non-empty content hash, one ascending array per hash held by 2+ rows."""
    codes = _hash_codes(hashes)
    rows = np.flatnonzero(codes >= 0)
    if rows.size == 0:
        return []
    counts = np.bincount(codes[rows])
    repeated = rows[counts[codes[rows]] > 1]
    return _groups(repeated, codes[repeated])


def near_duplicate_pairs(
    vectors: npt.ArrayLike,
    *,
    threshold: float,
    block_size: int = 2048,
    max_pairs: int = 5_000_000,
) -> NearDuplicatePairs:
    """Every pair of rows whose cosine similarity is at least ``threshold``.

    Exact (no approximate index), O(n² d / 2) arithmetic in tiles of ``block_size`` rows by
    ``block_size`` columns. Raises ``ConfigError`` when more than ``max_pairs`` pairs qualify:
    the threshold is then too low to mean "duplicate".
    """
    if block_size < 1:
        raise ConfigError(f"block_size must be at least 1, got {block_size}")
    unit = unit_rows(vectors)
    n = len(unit)
    firsts: list[IntArray] = []
    seconds: list[IntArray] = []
    similarities: list[FloatArray] = []
    found = 0
    for row_start in range(0, n, block_size):
        rows = unit[row_start : row_start + block_size]
        for column_start in range(row_start, n, block_size):
            tile = rows @ unit[column_start : column_start + block_size].T
            local_rows, local_columns = np.nonzero(tile >= threshold)
            first = local_rows.astype(np.int64) + row_start
            second = local_columns.astype(np.int64) + column_start
            above_diagonal = second > first
            if not above_diagonal.any():
                continue
            firsts.append(first[above_diagonal])
            seconds.append(second[above_diagonal])
            similarities.append(tile[local_rows[above_diagonal], local_columns[above_diagonal]])
            found += int(above_diagonal.sum())
            if found > max_pairs:
                raise ConfigError(
                    f"more than {max_pairs} vector pairs have cosine >= {threshold}: that is "
                    "not duplication; raise the near-duplicate threshold"
                )
    if not firsts:
        empty = np.zeros(0, dtype=np.int64)
        return NearDuplicatePairs(empty, empty.copy(), np.zeros(0, dtype=np.float32))
    return NearDuplicatePairs(
        np.concatenate(firsts), np.concatenate(seconds), np.concatenate(similarities)
    )


def cluster_pairs(n: int, first: npt.ArrayLike, second: npt.ArrayLike) -> list[IntArray]:
    """Connected components of the pair graph over ``n`` rows: clusters of 2+ rows.

    Each cluster is an ascending array of rows; clusters are ordered by their first row.
    """
    first_rows = np.asarray(first, dtype=np.int64)
    second_rows = np.asarray(second, dtype=np.int64)
    if first_rows.size == 0:
        return []
    graph = coo_matrix(
        (np.ones(first_rows.size, dtype=np.int8), (first_rows, second_rows)), shape=(n, n)
    )
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels)
    members = np.flatnonzero(sizes[labels] > 1)
    return _groups(members, labels[members])


def _hash_codes(hashes: Sequence[str]) -> IntArray:
    """An integer per distinct non-empty hash, -1 for an empty one."""
    values = np.asarray(hashes, dtype=object)
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    codes = pd.factorize(values)[0].astype(np.int64)
    codes[values == ""] = -1
    return codes


def _groups(rows: IntArray, labels: npt.NDArray[np.integer]) -> list[IntArray]:
    """Split ``rows`` by label into ascending groups ordered by their smallest row."""
    if rows.size == 0:
        return []
    order = np.lexsort((rows, labels))
    sorted_rows, sorted_labels = rows[order], labels[order]
    boundaries = np.flatnonzero(np.diff(sorted_labels)) + 1
    groups = np.split(sorted_rows, boundaries)
    return sorted(groups, key=lambda group: int(group[0]))


def _cluster_finding(
    context: AuditContext,
    ids: npt.NDArray[np.object_],
    groups: Sequence[IntArray],
    kind: str,
    message: str,
    **fields: object,
) -> Finding:
    """The finding ``kind`` on the documents of ``groups``, listed by group."""
    clusters = tuple(tuple(str(doc_id) for doc_id in ids[group]) for group in groups)
    doc_ids = tuple(doc_id for cluster in clusters for doc_id in cluster)
    return context.config.finding(
        kind, message, len(doc_ids), doc_ids=doc_ids, clusters=clusters, **fields
    )


def check_duplicates(context: AuditContext) -> CheckOutcome:
    """Report exact-duplicate groups and near-duplicate clusters, with their ids."""
    snapshot, config = context.snapshot, context.config
    ids = np.asarray(snapshot.ids, dtype=object)
    exact = exact_duplicate_groups(snapshot.hashes)
    pairs = near_duplicate_pairs(
        snapshot.vectors,
        threshold=config.near_duplicate_threshold,
        block_size=config.block_size,
        max_pairs=config.max_near_duplicate_pairs,
    )
    codes = _hash_codes(snapshot.hashes)
    # Pairs that are exact duplicates are reported once, as exact duplicates.
    distinct = (codes[pairs.first] != codes[pairs.second]) | (codes[pairs.first] < 0)
    near = NearDuplicatePairs(
        pairs.first[distinct], pairs.second[distinct], pairs.similarity[distinct]
    )
    near_clusters = cluster_pairs(len(snapshot), near.first, near.second)

    findings: list[Finding] = []
    exact_documents = sum(len(group) for group in exact)
    near_documents = sum(len(group) for group in near_clusters)
    if exact:
        findings.append(
            _cluster_finding(
                context,
                ids,
                exact,
                "exact_duplicates",
                f"{exact_documents} documents are exact duplicates in {len(exact)} groups "
                "(same content under different ids); delete the extra ids and make "
                "ingestion idempotent (stable ids)",
                details={"groups": len(exact), "redundant_documents": exact_documents - len(exact)},
            )
        )
    if near_clusters:
        findings.append(
            _cluster_finding(
                context,
                ids,
                near_clusters,
                "near_duplicates",
                f"{near_documents} documents form {len(near_clusters)} near-duplicate clusters "
                f"(cosine >= {config.near_duplicate_threshold}); keep one version of each",
                value=float(near.similarity.min()),
                threshold=config.near_duplicate_threshold,
                details={
                    "pairs": [
                        [str(ids[a]), str(ids[b]), round(float(s), 6)]
                        for a, b, s in zip(near.first, near.second, near.similarity, strict=True)
                    ][: config.max_listed],
                    "n_pairs": len(near),
                },
            )
        )
    measurements = {
        "documents": float(len(snapshot)),
        "exact_duplicate_groups": float(len(exact)),
        "exact_duplicate_documents": float(exact_documents),
        "near_duplicate_clusters": float(len(near_clusters)),
        "near_duplicate_documents": float(near_documents),
        "near_duplicate_pairs": float(len(near)),
    }
    return CheckOutcome("duplicates", True, measurements, tuple(findings))
