"""How much two rankings of the same query overlap, with no judgments needed.

``jaccard_at_k`` (top-k sets, order ignored) and ``rank_biased_overlap`` (RBO_ext of Webber,
Moffat & Zobel 2010, eq. 32, top-weighted by ``p``); the ``*_many`` forms are vectorised over
all queries. A document listed twice counts at its first rank. Used by drift's churn signals
and by the traffic replay's comparison with logged rankings.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import numpy.typing as npt

from evalkit.errors import ConfigError, InputError

__all__ = ["jaccard_at_k", "jaccard_at_k_many", "rank_biased_overlap", "rank_biased_overlap_many"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Ranking = Sequence[Hashable]

_MISSING = -1


def _encode(
    first: Sequence[Ranking], second: Sequence[Ranking], depth: int | None
) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """Integer codes (padded with -1) and lengths of two aligned lists of rankings."""
    if len(first) != len(second):
        raise InputError(
            f"got {len(first)} rankings for the first run and {len(second)} for the second; "
            "pass one ranking per query for both, in the same query order"
        )
    codes: dict[Hashable, int] = {}

    def encode_side(rankings: Sequence[Ranking]) -> tuple[IntArray, IntArray]:
        rows: list[list[int]] = []
        for ranking in rankings:
            if isinstance(ranking, str | bytes):
                raise InputError("a ranking must be a sequence of document ids, not one string")
            seen: set[int] = set()
            row: list[int] = []
            for doc_id in ranking:
                code = codes.setdefault(doc_id, len(codes))
                if code not in seen:
                    seen.add(code)
                    row.append(code)
            rows.append(row if depth is None else row[:depth])
        width = max((len(row) for row in rows), default=0)
        matrix = np.full((len(rows), width), _MISSING, dtype=np.int64)
        lengths = np.array([len(row) for row in rows], dtype=np.int64)
        for index, row in enumerate(rows):
            matrix[index, : len(row)] = row
        return matrix, lengths

    first_codes, first_lengths = encode_side(first)
    second_codes, second_lengths = encode_side(second)
    return first_codes, first_lengths, second_codes, second_lengths


def _overlap_depths(first: IntArray, second: IntArray) -> IntArray:
    """For each entry of ``first``: the depth (1-based) at which it enters the overlap.

    A document at 0-based rank i of ``first`` and rank j of ``second`` is in both top-d
    prefixes from depth ``max(i, j) + 1``; entries absent from ``second`` (or padding) get 0.
    """
    n_rows = first.shape[0]
    depths = np.zeros(first.shape, dtype=np.int64)
    if first.size == 0 or second.size == 0:
        return depths
    # Offsetting codes by row makes every (query, document) pair a unique integer, so one
    # sorted search finds each document's rank in the other list for all queries at once.
    stride = int(max(first.max(), second.max())) + 2
    row_offsets = np.arange(n_rows, dtype=np.int64)[:, None] * stride
    second_keys = np.where(second >= 0, second + row_offsets, -1).ravel()
    second_ranks = np.broadcast_to(np.arange(second.shape[1]), second.shape).ravel()
    order = np.argsort(second_keys, kind="stable")
    sorted_keys = second_keys[order]
    first_keys = first + row_offsets
    positions = np.searchsorted(sorted_keys, first_keys)
    positions = np.minimum(positions, sorted_keys.size - 1)
    found = (sorted_keys[positions] == first_keys) & (first >= 0)
    rank_in_second = second_ranks[order][positions]
    rank_in_first = np.broadcast_to(np.arange(first.shape[1]), first.shape)
    depths[found] = np.maximum(rank_in_first, rank_in_second)[found] + 1
    return depths


def jaccard_at_k_many(first: Sequence[Ranking], second: Sequence[Ranking], k: int) -> FloatArray:
    """Jaccard similarity of the top-``k`` sets of each pair of rankings (one per query).

    1.0 when both top-k sets are empty (nothing changed), 0.0 when exactly one is.
    """
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    first_codes, first_lengths, second_codes, second_lengths = _encode(first, second, k)
    shared = (_overlap_depths(first_codes, second_codes) > 0).sum(axis=1)
    union = first_lengths + second_lengths - shared
    result: FloatArray = np.divide(
        shared, union, out=np.ones(union.shape, dtype=np.float64), where=union > 0
    )
    return result


def jaccard_at_k(first: Ranking, second: Ranking, k: int) -> float:
    """Jaccard similarity of the top-``k`` document sets of two rankings (order ignored)."""
    return float(jaccard_at_k_many([first], [second], k)[0])


def rank_biased_overlap_many(
    first: Sequence[Ranking],
    second: Sequence[Ranking],
    *,
    p: float = 0.9,
    depth: int | None = None,
) -> FloatArray:
    """RBO_ext (Webber et al. 2010, eq. 32) of each pair of rankings, one value per query.

    ``depth`` truncates both rankings first. Identical rankings give 1, disjoint ones 0;
    two empty rankings give 1 and exactly one empty ranking gives 0.
    """
    if not 0.0 < p < 1.0:
        raise ConfigError(f"p must be in (0, 1), got {p}")
    if depth is not None and depth < 1:
        raise ConfigError(f"depth must be at least 1, got {depth}")
    first_codes, first_lengths, second_codes, second_lengths = _encode(first, second, depth)
    short = np.minimum(first_lengths, second_lengths)
    long = np.maximum(first_lengths, second_lengths)
    width = int(long.max(initial=0))
    result = np.where(long == 0, 1.0, 0.0)
    if width == 0:
        return result
    entry_depths = _overlap_depths(first_codes, second_codes)
    entries = np.zeros((first_codes.shape[0], width + 1), dtype=np.int64)
    rows = np.broadcast_to(np.arange(first_codes.shape[0])[:, None], entry_depths.shape)
    np.add.at(entries, (rows, entry_depths), 1)
    entries[:, 0] = 0
    overlap = np.cumsum(entries, axis=1)[:, 1:].astype(np.float64)  # X_d for d = 1..width
    d = np.arange(1, width + 1, dtype=np.float64)
    weights = p**d
    valid = short > 0
    rows_valid = np.flatnonzero(valid)
    s = short[valid].astype(np.float64)[:, None]
    ell = long[valid].astype(np.float64)[:, None]
    x = overlap[valid]
    x_short = np.take_along_axis(x, short[valid][:, None] - 1, axis=1)
    x_long = np.take_along_axis(x, long[valid][:, None] - 1, axis=1)
    up_to_long = d[None, :] <= ell
    beyond_short = up_to_long & (d[None, :] > s)
    agreement = np.where(up_to_long, x / d, 0.0)
    extension = np.where(beyond_short, x_short * (d - s) / (s * d), 0.0)
    summed = ((agreement + extension) * weights).sum(axis=1)
    tail = ((x_long - x_short) / ell + x_short / s)[:, 0] * p ** ell[:, 0]
    result[rows_valid] = (1.0 - p) / p * summed + tail
    clipped: FloatArray = np.clip(result, 0.0, 1.0)
    return clipped


def rank_biased_overlap(
    first: Ranking, second: Ranking, *, p: float = 0.9, depth: int | None = None
) -> float:
    """Extrapolated rank-biased overlap RBO_ext of two rankings (1 = identical, 0 = disjoint)."""
    return float(rank_biased_overlap_many([first], [second], p=p, depth=depth)[0])
