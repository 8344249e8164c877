"""Queries behind the Drift page: stored drift checks and replayed windows' embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from evalkit.store.dashboard.shared import read_frame

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = ["drift_checks_frame", "window_embeddings_frame", "window_labels_frame"]


def drift_checks_frame(
    store: Store, *, stream: str | None = None, limit: int = 5000
) -> pd.DataFrame:
    """Stored drift checks (optionally of one stream), oldest first, newest ``limit``."""
    return read_frame(
        store,
        "SELECT * FROM (SELECT check_id, created_at, stream, subject, finding, method,"
        " reference, current, n_reference, n_current, statistic, p_value, threshold,"
        " effect_size, is_drift, seed, details, report_path FROM drift_checks"
        " WHERE ? IS NULL OR stream = ? ORDER BY created_at DESC, check_id DESC LIMIT ?)"
        " ORDER BY created_at, check_id",
        [stream, stream, limit],
    )


def window_embeddings_frame(store: Store, *, run_id: str, limit: int = 2000) -> pd.DataFrame:
    """The first ``limit`` stored query embeddings of a traffic replay: query_id, embedding."""
    return read_frame(
        store,
        "SELECT query_id, embedding FROM traffic_window_embeddings WHERE run_id = ?"
        " ORDER BY ordinal LIMIT ?",
        [run_id, limit],
    )


def window_labels_frame(store: Store, *, run_ids: Sequence[str]) -> pd.DataFrame:
    """The window label of each traffic replay run: run_id, window_label."""
    return read_frame(
        store,
        "SELECT run_id, window_label FROM traffic_window_summaries"
        " WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
        [list(run_ids)],
    )
