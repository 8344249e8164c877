"""Seeded simulated pairs of runs, for calibrating and testing the gate.

Both models draw a baseline and a candidate from the *same* retriever behaviour, so any
difference is per-query noise, which the gate must not fail on: ``beta_noise_pair`` gives
continuous values, ``ranked_ndcg_pair`` discrete nDCG@10 / recall@10 computed by the
``evalkit.metrics`` kernels from simulated ranks, as a goldset run's are. ``break_queries``
turns a candidate into a genuine regression.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from evalkit.metrics import kernels
from evalkit.metrics.kernels import RankedGrades

__all__ = ["beta_noise_pair", "break_queries", "ranked_ndcg_pair"]

_CUTOFF: Final = 10
_MAX_RELEVANT: Final = 5


def _query_ids(n_queries: int) -> pd.Index:
    return pd.Index([f"q{i:05d}" for i in range(n_queries)], name="query_id")


def beta_noise_pair(
    n_queries: int,
    *,
    rng: np.random.Generator,
    noise_sd: float = 0.1,
    a: float = 2.0,
    b: float = 2.0,
    measure: str = "ndcg@10",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Baseline and candidate per-query values: shared true quality plus independent noise."""
    quality = rng.beta(a, b, size=n_queries)
    runs = np.clip(quality + rng.normal(0.0, noise_sd, size=(2, n_queries)), 0.0, 1.0)
    ids = _query_ids(n_queries)
    return (
        pd.DataFrame({measure: runs[0]}, index=ids),
        pd.DataFrame({measure: runs[1]}, index=ids),
    )


def _ranked_measures(
    relevant_count: npt.NDArray[np.int64],
    success: npt.NDArray[np.float64],
    rng: np.random.Generator,
) -> dict[str, npt.NDArray[np.float64]]:
    n_queries = relevant_count.size
    slots = np.arange(_MAX_RELEVANT)
    is_relevant = slots[np.newaxis, :] < relevant_count[:, np.newaxis]
    gaps = rng.geometric(success[:, np.newaxis], size=(n_queries, _MAX_RELEVANT))
    # Relevant documents occupy distinct ranks: sorted draws, each pushed past the previous.
    ranks = np.sort(np.where(is_relevant, gaps, np.iinfo(np.int64).max // 4), axis=1)
    ranks = ranks + slots[np.newaxis, :]
    rows, slot = np.nonzero(is_relevant)
    # Every relevant document is judged 1 and retrieved at its drawn rank, however deep:
    # the kernels keep the top 10 and take the ideal from all of them, as trec_eval does.
    ranked = RankedGrades(
        rows.astype(np.int64),
        ranks[rows, slot] - 1,
        np.ones(rows.size, dtype=np.int32),
        relevant_count.astype(np.int64),
        np.ones(rows.size, dtype=np.float64),
        np.concatenate(([0], np.cumsum(relevant_count))).astype(np.int64),
    )
    return {
        "ndcg@10": kernels.ndcg(ranked, k=_CUTOFF),
        "recall@10": kernels.recall(ranked, k=_CUTOFF),
    }


def ranked_ndcg_pair(
    n_queries: int,
    *,
    rng: np.random.Generator,
    mean_rank_shape: tuple[float, float] = (0.7, 1.0),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Baseline and candidate nDCG@10 and recall@10 from one ranked-retrieval behaviour.

    Per query: ``1 + Poisson(0.5)`` relevant documents (capped at 5; BEIR SciFact has 1.1
    on average) and a success probability ``p ~ Beta(*mean_rank_shape)``; each relevant
    document lands ``Geometric(p)`` places after the previous one, independently in each
    run. The defaults give a mean nDCG@10 near 0.6, like BM25 on SciFact.
    """
    relevant_count = np.minimum(1 + rng.poisson(0.5, size=n_queries), _MAX_RELEVANT)
    success = rng.beta(*mean_rank_shape, size=n_queries)
    success = np.clip(success, 1e-3, 1.0)
    ids = _query_ids(n_queries)
    baseline = pd.DataFrame(_ranked_measures(relevant_count, success, rng), index=ids)
    candidate = pd.DataFrame(_ranked_measures(relevant_count, success, rng), index=ids)
    return baseline, candidate


def break_queries(
    candidate: pd.DataFrame, *, share: float, rng: np.random.Generator
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """A copy of ``candidate`` where a random ``share`` of the queries lost every relevant doc.

    Returns the broken run and the ids of the broken queries.
    """
    count = round(share * len(candidate))
    broken = tuple(sorted(rng.choice(candidate.index.to_numpy(), size=count, replace=False)))
    damaged = candidate.copy()
    damaged.loc[list(broken), :] = 0.0
    return damaged, broken
