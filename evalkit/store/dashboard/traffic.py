"""Queries behind the Traffic page: replayed windows, per tenant, beside the logged volume,
and the figures an LLM assessor's labels gave them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd

from evalkit.store.dashboard.shared import RETRIEVER_SQL, read_frame
from evalkit.store.judging import ASSESSOR_SOURCES
from evalkit.store.traffic.logged import record_count as traffic_record_count

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = [
    "traffic_judged_frame",
    "traffic_record_count",
    "traffic_tenants_frame",
    "traffic_volume_frame",
    "traffic_window_count",
    "traffic_windows_frame",
]


def traffic_window_count(store: Store) -> int:
    """How many distinct traffic windows have been replayed."""
    return int(
        store.fetch("SELECT count(DISTINCT window_label) FROM traffic_window_summaries")[0][0]
    )


def traffic_windows_frame(store: Store, *, limit: int = 200) -> pd.DataFrame:
    """The newest replay of each traffic window (newest ``limit`` windows, oldest first)."""
    return read_frame(
        store,
        "SELECT * FROM (SELECT run_id, sample_id, window_label, window_start, window_end,"
        " computed_at, k, volume, n_distinct, n_replayed, n_failed, latency_p50, latency_p95,"
        " latency_p99, logged_latency_p50, logged_latency_p95, logged_latency_p99, top1_mean,"
        " top1_p50, low_confidence_threshold, low_confidence_share, empty_share, n_compared,"
        " overlap_mean, rbo_mean, churn, embedding_model, embedding_fingerprint, n_embeddings"
        " FROM traffic_window_summaries"
        " QUALIFY row_number() OVER (PARTITION BY window_label"
        "  ORDER BY computed_at DESC, run_id DESC) = 1"
        " ORDER BY window_start DESC LIMIT ?) ORDER BY window_start",
        [limit],
    )


def traffic_tenants_frame(store: Store, *, run_ids: Sequence[str]) -> pd.DataFrame:
    """Per replayed window and tenant: replayed and failed queries, low-confidence share (top-1
    below the window's threshold, or nothing returned, among answered queries), churn
    (1 - mean overlap@k with the logged results) and mean top-1 score. Columns: run_id,
    window_label, tenant, n_replayed, n_failed, low_confidence_share, churn, top1_mean,
    n_compared."""
    return read_frame(
        store,
        "SELECT q.run_id, w.window_label, coalesce(q.tenant, '(none)') AS tenant,"
        " count(*) AS n_replayed, count(*) FILTER (WHERE q.failed) AS n_failed,"
        " avg(CASE WHEN q.n_results = 0 OR q.top1_score < w.low_confidence_threshold"
        "  THEN 1.0 ELSE 0.0 END) FILTER (WHERE NOT q.failed) AS low_confidence_share,"
        " 1 - avg(q.overlap_at_k) AS churn, avg(q.top1_score) AS top1_mean,"
        " count(q.overlap_at_k) AS n_compared"
        " FROM traffic_replay_queries q JOIN traffic_window_summaries w ON w.run_id = q.run_id"
        " WHERE q.run_id IN (SELECT unnest(?::VARCHAR[]))"
        " GROUP BY ALL ORDER BY w.window_label, tenant",
        [list(run_ids)],
    )


_VOLUME_COLUMNS = ("window_label", "tenant", "records", "latency_p50", "latency_p95", "latency_p99")


def traffic_volume_frame(
    store: Store, *, windows: Sequence[tuple[str, datetime, datetime]]
) -> pd.DataFrame:
    """Logged records and latency percentiles per window and tenant.

    ``windows`` are (label, start, end) with ``end`` exclusive. Columns: window_label,
    tenant, records, latency_p50, latency_p95, latency_p99.
    """
    if not windows:
        return pd.DataFrame(columns=[*_VOLUME_COLUMNS])
    return read_frame(
        store,
        "WITH w AS (SELECT unnest(?::VARCHAR[]) AS window_label,"
        "  unnest(?::TIMESTAMP[]) AS window_start, unnest(?::TIMESTAMP[]) AS window_end)"
        " SELECT w.window_label, coalesce(t.tenant, '(none)') AS tenant, count(*) AS records,"
        " quantile_cont(t.latency_ms, 0.5) AS latency_p50,"
        " quantile_cont(t.latency_ms, 0.95) AS latency_p95,"
        " quantile_cont(t.latency_ms, 0.99) AS latency_p99"
        " FROM w JOIN traffic_records t ON t.ts >= w.window_start AND t.ts < w.window_end"
        " GROUP BY ALL ORDER BY w.window_label, tenant",
        [
            [label for label, _, _ in windows],
            [start for _, start, _ in windows],
            [end for _, _, end in windows],
        ],
    )


def traffic_judged_frame(
    store: Store, *, window_labels: Sequence[str], measure_prefix: str = "precision@"
) -> pd.DataFrame:
    """The newest judged replay's figures of the traffic windows ``window_labels`` on the
    measures starting ``measure_prefix``, oldest window first, a row per window, assessor,
    retriever, source and measure (never merged), as ``traffic_figure_series`` selects them.
    Columns: window_label, window_start, run_id, started_at, retriever, source, labeller,
    measure, value, low, high, n_queries, judged_share, status, agreement_id."""
    return read_frame(
        store,
        "SELECT s.window_label, s.window_start, f.run_id, r.started_at, r.retriever, f.source,"
        " f.labeller, f.measure, f.value, f.low, f.high, f.n_queries, f.judged_share,"
        " f.status, f.agreement_id"
        " FROM judged_run_figures f JOIN traffic_window_summaries s ON s.run_id = f.run_id"
        f" JOIN (SELECT run_id, started_at, {RETRIEVER_SQL} AS retriever FROM runs) r"
        "  ON r.run_id = f.run_id"
        " WHERE f.source IN (SELECT unnest(?::VARCHAR[])) AND starts_with(f.measure, ?)"
        " AND s.window_label IN (SELECT unnest(?::VARCHAR[]))"
        " QUALIFY row_number() OVER (PARTITION BY s.window_label, f.labeller, r.retriever,"
        "  f.source, f.measure ORDER BY r.started_at DESC, r.run_id DESC) = 1"
        " ORDER BY s.window_start, f.labeller, r.retriever, f.source, f.measure",
        [list(ASSESSOR_SOURCES), measure_prefix, list(window_labels)],
    )
