"""Label-free figures of a replayed window: latency, top-1 scores, confidence, churn.

Pure NumPy over one value per replayed query; ``evalkit.traffic.replay`` feeds it and
stores the result. Every figure is None when no query supports it (nothing answered, no
logged results to compare with), never a misleading zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from evalkit.records.requests import DEFAULT_LOW_CONFIDENCE

__all__ = ["DEFAULT_LOW_CONFIDENCE", "ReplayFigures", "replay_figures"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


_TOP1_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_LATENCY_QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True, slots=True)
class ReplayFigures:
    """Summary figures of one replay (see ``replay_figures``)."""

    n_replayed: int
    n_failed: int
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    top1_mean: float | None
    top1_std: float | None
    top1_p05: float | None
    top1_p25: float | None
    top1_p50: float | None
    top1_p75: float | None
    top1_p95: float | None
    low_confidence_share: float | None
    empty_share: float | None
    n_compared: int
    overlap_mean: float | None
    rbo_mean: float | None
    churn: float | None


def _quantiles(values: FloatArray, levels: tuple[float, ...]) -> list[float | None]:
    if values.size == 0:
        return [None] * len(levels)
    return [float(v) for v in np.quantile(values, levels)]


def _mean(values: FloatArray) -> float | None:
    return float(values.mean()) if values.size else None


def replay_figures(
    *,
    latency_ms: FloatArray,
    failed: BoolArray,
    top1_score: FloatArray,
    overlap_at_k: FloatArray,
    rbo: FloatArray,
    low_confidence_threshold: float = DEFAULT_LOW_CONFIDENCE,
) -> ReplayFigures:
    """Figures over the replayed queries of one window.

    Arrays hold one value per query. ``top1_score`` is NaN for a query that returned
    nothing; ``overlap_at_k`` and ``rbo`` are NaN where no logged results were compared.
    Latency percentiles cover answered queries. Among answered queries, ``empty_share`` is
    the share that returned nothing and ``low_confidence_share`` the share that returned
    nothing or a top-1 score below the threshold. ``churn`` is 1 - mean overlap@k.
    """
    failed = np.asarray(failed, dtype=bool)
    answered = ~failed
    latency = np.asarray(latency_ms, dtype=np.float64)[answered]
    top1 = np.asarray(top1_score, dtype=np.float64)[answered]
    empty = np.isnan(top1)
    scored = top1[~empty]
    low = empty | (np.where(empty, np.inf, top1) < low_confidence_threshold)
    overlap = np.asarray(overlap_at_k, dtype=np.float64)[answered]
    overlaps = overlap[~np.isnan(overlap)]
    rbos = np.asarray(rbo, dtype=np.float64)[answered]
    rbos = rbos[~np.isnan(rbos)]
    latency_p50, latency_p95, latency_p99 = _quantiles(latency, _LATENCY_QUANTILES)
    p05, p25, p50, p75, p95 = _quantiles(scored, _TOP1_QUANTILES)
    overlap_mean = _mean(overlaps)
    return ReplayFigures(
        n_replayed=int(failed.size),
        n_failed=int(failed.sum()),
        latency_p50=latency_p50,
        latency_p95=latency_p95,
        latency_p99=latency_p99,
        top1_mean=_mean(scored),
        top1_std=float(scored.std(ddof=1)) if scored.size > 1 else None,
        top1_p05=p05,
        top1_p25=p25,
        top1_p50=p50,
        top1_p75=p75,
        top1_p95=p95,
        low_confidence_share=_mean(low.astype(np.float64)),
        empty_share=_mean(empty.astype(np.float64)),
        n_compared=int(overlaps.size),
        overlap_mean=overlap_mean,
        rbo_mean=_mean(rbos),
        churn=None if overlap_mean is None else 1.0 - overlap_mean,
    )
