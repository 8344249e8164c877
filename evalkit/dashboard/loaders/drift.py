"""The Drift page's data: stored drift checks, replayed windows with embeddings, and two
windows' embeddings projected to 2-D with per-dimension diagnostics."""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evalkit.dashboard.loaders.shared import SEED, has_area
from evalkit.drift.ks import benjamini_hochberg, ks_statistics
from evalkit.errors import InputError
from evalkit.store import Store
from evalkit.store.dashboard import drift as sql
from evalkit.store.dashboard.shared import existing_tables
from evalkit.store.dashboard.traffic import traffic_windows_frame

__all__ = ["DriftData", "ProjectionData", "drift", "projection"]


@dataclass(frozen=True, slots=True)
class DriftData:
    """Stored drift checks (``details`` parsed) and the replayed windows with embeddings."""

    checks: pd.DataFrame
    windows: pd.DataFrame


def drift(store: Store) -> DriftData:
    """Every stored drift check, and the traffic windows whose embeddings are stored."""
    tables = existing_tables(store)
    checks = sql.drift_checks_frame(store) if has_area(tables, "drift") else pd.DataFrame()
    if not checks.empty:
        checks = checks.assign(
            details=[
                json.loads(text) if isinstance(text, str) else {} for text in checks["details"]
            ]
        )
    windows = (
        traffic_windows_frame(store)
        if has_area(tables, "traffic") and has_area(tables, "embeddings")
        else pd.DataFrame()
    )
    if not windows.empty:
        windows = windows[windows["n_embeddings"] > 0].reset_index(drop=True)
    return DriftData(checks=checks, windows=windows)


@dataclass(frozen=True, slots=True)
class ProjectionData:
    """Reference and current embeddings projected to 2-D, and per-dimension diagnostics.

    ``points``: x, y, window (the window label), query_id. ``dimensions``: per embedding
    dimension its two-sample KS statistic, Benjamini-Hochberg adjusted asymptotic p-value
    and standardised mean shift, strongest first. ``method``: ``PCA`` (fitted on both
    windows, so that a shift between them shows) or ``UMAP``.
    """

    reference: str
    current: str
    method: str
    points: pd.DataFrame
    dimensions: pd.DataFrame
    explained: tuple[float, ...]


def projection(
    store: Store, *, reference_run: str, current_run: str, limit: int = 2000
) -> ProjectionData:
    """Project two replayed windows' query embeddings and diagnose each dimension."""
    from scipy import stats
    from threadpoolctl import threadpool_limits

    frames = {}
    for run_id in (reference_run, current_run):
        frame = sql.window_embeddings_frame(store, run_id=run_id, limit=limit)
        frames[run_id] = frame
    labels = sql.window_labels_frame(store, run_ids=[reference_run, current_run])
    label_of = dict(zip(labels["run_id"], labels["window_label"], strict=True))
    vectors = {
        run_id: (
            np.vstack([np.asarray(v, dtype=np.float64) for v in frame["embedding"]])
            if not frame.empty
            else np.zeros((0, 0))
        )
        for run_id, frame in frames.items()
    }
    reference, current = vectors[reference_run], vectors[current_run]
    if len(reference) < 2 or len(current) < 2 or reference.shape[1] != current.shape[1]:
        raise InputError(
            "both windows need at least two stored embeddings of the same dimension "
            f"(reference {reference.shape}, current {current.shape})"
        )
    method = "UMAP" if importlib.util.find_spec("umap") is not None else "PCA"
    pooled = np.vstack([reference, current])
    explained: tuple[float, ...] = ()
    # One BLAS thread: on a shared machine, thread oversubscription makes these small
    # decompositions ten times slower, not faster.
    with threadpool_limits(limits=1):
        if method == "UMAP":
            import umap

            coordinates = umap.UMAP(n_components=2, random_state=SEED).fit_transform(pooled)
        else:
            centre = pooled.mean(axis=0)
            centred = pooled - centre
            variances, axes = np.linalg.eigh(centred.T @ centred)
            top = axes[:, ::-1][:, :2]
            coordinates = (pooled - centre) @ top
            total = float(variances.sum())
            explained = tuple(float(v) / total for v in variances[::-1][:2]) if total else ()
    names = [
        str(label_of.get(reference_run, reference_run)),
        str(label_of.get(current_run, current_run)),
    ]
    if names[0] == names[1]:
        names = [f"{names[0]} (reference)", f"{names[1]} (current)"]
    points = pd.DataFrame(
        {
            "x": coordinates[:, 0],
            "y": coordinates[:, 1],
            "window": [names[0]] * len(reference) + [names[1]] * len(current),
            "query_id": [*frames[reference_run]["query_id"], *frames[current_run]["query_id"]],
        }
    )
    statistics = ks_statistics(reference, current)
    m, n = len(reference), len(current)
    # The asymptotic (Kolmogorov) p-value: the exact one costs seconds for a few hundred
    # dimensions of large windows, and a diagnostic needs the ranking, not the last digit.
    p_values = np.clip(stats.kstwobign.sf(statistics * math.sqrt(m * n / (m + n))), 0.0, 1.0)
    adjusted = benjamini_hochberg(p_values)
    spread = np.sqrt((reference.var(axis=0, ddof=1) + current.var(axis=0, ddof=1)) / 2.0)
    shift = np.divide(
        current.mean(axis=0) - reference.mean(axis=0),
        spread,
        out=np.zeros(reference.shape[1]),
        where=spread > 0,
    )
    dimensions = (
        pd.DataFrame(
            {
                "dimension": np.arange(reference.shape[1]),
                "ks_statistic": statistics,
                "p_adjusted": adjusted,
                "mean_shift_sd": shift,
            }
        )
        .sort_values(["p_adjusted", "ks_statistic"], ascending=[True, False], kind="stable")
        .reset_index(drop=True)
    )
    return ProjectionData(
        reference=names[0],
        current=names[1],
        method=method,
        points=points,
        dimensions=dimensions,
        explained=explained,
    )
