"""Replayed traffic windows: each replay's per-query comparison, its window summary and the
embeddings of its queries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from evalkit.embedding.fingerprint import ModelFingerprint
from evalkit.errors import NotFoundError, StoreError
from evalkit.records.jsonready import json_ready
from evalkit.store.columns import column_names, placeholders, values_of
from evalkit.store.views import registered

if TYPE_CHECKING:
    import pandas as pd

    from evalkit.store.store import Store

__all__ = [
    "StoredWindowSummary",
    "latest_window_summary",
    "list_window_summaries",
    "promotion_candidates",
    "replay_top_results",
    "save_traffic_replay",
    "window_embeddings",
    "window_summary_of_run",
]


@dataclass(frozen=True, slots=True)
class StoredWindowSummary:
    """The label-free figures of one replayed traffic window (see docs/traffic.md)."""

    run_id: str
    sample_id: str
    window_label: str
    window_start: datetime
    window_end: datetime
    computed_at: datetime
    k: int
    compare_k: int
    rbo_p: float
    volume: int
    n_distinct: int
    n_replayed: int
    n_failed: int
    latency_p50: float | None = None
    latency_p95: float | None = None
    latency_p99: float | None = None
    logged_latency_p50: float | None = None
    logged_latency_p95: float | None = None
    logged_latency_p99: float | None = None
    top1_mean: float | None = None
    top1_std: float | None = None
    top1_p05: float | None = None
    top1_p25: float | None = None
    top1_p50: float | None = None
    top1_p75: float | None = None
    top1_p95: float | None = None
    low_confidence_threshold: float = 0.0
    low_confidence_share: float | None = None
    empty_share: float | None = None
    n_compared: int = 0
    overlap_mean: float | None = None
    rbo_mean: float | None = None
    churn: float | None = None
    embedding_model: str | None = None
    embedding_dimension: int | None = None
    embedding_fingerprint: str | None = None
    embedding_seed: int | None = None
    n_embeddings: int = 0
    embedding_canaries: bytes | None = None
    """The embedding model's canary embeddings (``ModelFingerprint.canary_vectors``); None
    for a window replayed before windows kept them."""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def embedded_with(self) -> ModelFingerprint | None:
        """The fingerprint of the model that embedded the window's queries; None when none
        were embedded."""
        return ModelFingerprint.stored(
            self.embedding_model,
            self.embedding_dimension,
            self.embedding_fingerprint,
            self.embedding_canaries,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the model's fingerprint without its canary embeddings)."""
        return json_ready(self, omit=("extra", "embedding_canaries"))


_SUMMARY_COLUMNS = ", ".join(name for name in StoredWindowSummary.__slots__ if name != "extra")


def save_traffic_replay(
    store: Store,
    *,
    summary: StoredWindowSummary,
    per_query: pd.DataFrame,
    embedding_ids: Sequence[str] = (),
    embeddings: npt.NDArray[np.float32] | None = None,
) -> None:
    """Store a replay's per-query comparison, its window summary and query embeddings.

    ``per_query`` has the columns of ``traffic_replay_queries`` but run_id.
    """
    frame = per_query.copy()
    frame.insert(0, "run_id", summary.run_id)
    vectors = np.asarray(
        embeddings if embeddings is not None else np.zeros((0, 0)), dtype=np.float32
    )
    if len(vectors) != len(embedding_ids):
        raise StoreError(
            f"got {len(embedding_ids)} query ids for {len(vectors)} embeddings of window "
            f"{summary.window_label}; pass one id per embedding"
        )
    width = vectors.shape[1] if vectors.ndim == 2 else 0
    offsets = np.arange(len(vectors) + 1, dtype=np.int32) * width
    embedding_table = pa.table(
        {
            "ordinal": pa.array(np.arange(len(embedding_ids), dtype=np.int32)),
            "query_id": pa.array(list(embedding_ids), pa.string()),
            "embedding": pa.ListArray.from_arrays(
                pa.array(offsets), pa.array(vectors.ravel(), pa.float32())
            ),
        }
    )
    with store.writing(
        f"cannot store the traffic replay {summary.run_id} of {summary.window_label}"
    ) as con:
        store.insert_frame("traffic_replay_queries", frame)
        con.execute(
            f"INSERT INTO traffic_window_summaries ({_SUMMARY_COLUMNS})"
            f" VALUES ({placeholders(len(column_names(_SUMMARY_COLUMNS)))})",
            values_of(summary, _SUMMARY_COLUMNS),
        )
        if embedding_table.num_rows:
            with registered(con, "_traffic_embeddings", embedding_table):
                con.execute(
                    "INSERT INTO traffic_window_embeddings SELECT ?, ?, ordinal, query_id,"
                    " embedding FROM _traffic_embeddings",
                    [summary.run_id, summary.window_label],
                )


def _summaries(store: Store, where: str, params: Sequence[object]) -> list[StoredWindowSummary]:
    rows = store.fetch(f"SELECT {_SUMMARY_COLUMNS} FROM traffic_window_summaries {where}", params)
    return [StoredWindowSummary(*row) for row in rows]


def list_window_summaries(
    store: Store, *, window_label: str | None = None, limit: int = 50
) -> list[StoredWindowSummary]:
    """Stored window summaries, newest window first (and newest replay first within one)."""
    return _summaries(
        store,
        "WHERE ? IS NULL OR window_label = ? ORDER BY window_start DESC, computed_at DESC,"
        " run_id DESC LIMIT ?",
        [window_label, window_label, limit],
    )


def window_summary_of_run(store: Store, run_id: str) -> StoredWindowSummary | None:
    """The window summary a traffic replay run stored, or None (no summary, or not traffic)."""
    found = _summaries(store, "WHERE run_id = ?", [run_id])
    return found[0] if found else None


def latest_window_summary(store: Store, window_label: str) -> StoredWindowSummary:
    """The newest summary of ``window_label``; NotFoundError when it was never replayed."""
    found = list_window_summaries(store, window_label=window_label, limit=1)
    if not found:
        raise NotFoundError(
            f"traffic window {window_label} was never replayed in {store.path}; run "
            f"`evalkit traffic sample --window {window_label}` and `evalkit traffic replay "
            f"--window {window_label}` first"
        )
    return found[0]


def window_embeddings(store: Store, run_id: str) -> tuple[list[str], npt.NDArray[np.float32]]:
    """Query ids and the (n, dimension) float32 embeddings stored with a window's replay."""
    frame = store.fetch_frame(
        "SELECT query_id, embedding FROM traffic_window_embeddings WHERE run_id = ?"
        " ORDER BY ordinal",
        [run_id],
    )
    if frame.empty:
        return [], np.zeros((0, 0), dtype=np.float32)
    vectors = np.vstack([np.asarray(v, dtype=np.float32) for v in frame["embedding"]])
    return [str(q) for q in frame["query_id"]], vectors


def promotion_candidates(store: Store, run_id: str) -> pd.DataFrame:
    """Every replayed query of a traffic replay with its signals and text, in sample order.

    Columns: query_id, text, tenant, stratum, failed, n_results, top1_score, n_logged,
    overlap_at_k, rbo.
    """
    return store.fetch_frame(
        "SELECT q.query_id, s.text, q.tenant, q.stratum, q.failed, q.n_results, q.top1_score,"
        " q.n_logged, q.overlap_at_k, q.rbo"
        " FROM traffic_replay_queries q"
        " JOIN traffic_window_summaries w ON w.run_id = q.run_id"
        " JOIN traffic_sample_queries s ON s.sample_id = w.sample_id AND s.query_id = q.query_id"
        " WHERE q.run_id = ? ORDER BY s.ordinal",
        [run_id],
    )


def replay_top_results(store: Store, run_id: str, *, top: int) -> pd.DataFrame:
    """The first ``top`` results of every query of a run: query_id, rank, doc_id, score."""
    return store.fetch_frame(
        "SELECT query_id, rank, doc_id, score FROM run_results WHERE run_id = ? AND rank <= ?"
        " ORDER BY query_id, rank",
        [run_id, top],
    )
