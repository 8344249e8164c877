"""Stored production traffic, one module per concern (``ingest``, ``logged``, ``samples``,
``windows``), re-exported so ``from evalkit.store.traffic import ...`` works for every
public name.
"""

from evalkit.store.traffic.ingest import (
    IngestTransaction,
    SourceState,
    commit_ingest_batch,
    find_source_state,
    ingest_settings,
)
from evalkit.store.traffic.logged import (
    LoggedAnswer,
    logged_answers,
    logged_latencies,
    logged_latency_quantiles,
    logged_results,
    logged_top1_scores,
    record_count,
    traffic_volume,
)
from evalkit.store.traffic.samples import (
    STRATUM_KINDS,
    StoredSample,
    Stratification,
    draw_window_queries,
    list_samples,
    load_sample,
    load_sample_queries,
    save_sample,
    stratum_sizes,
)
from evalkit.store.traffic.windows import (
    StoredWindowSummary,
    latest_window_summary,
    list_window_summaries,
    promotion_candidates,
    replay_top_results,
    save_traffic_replay,
    window_embeddings,
    window_summary_of_run,
)

__all__ = [
    "STRATUM_KINDS",
    "IngestTransaction",
    "LoggedAnswer",
    "SourceState",
    "StoredSample",
    "StoredWindowSummary",
    "Stratification",
    "commit_ingest_batch",
    "draw_window_queries",
    "find_source_state",
    "ingest_settings",
    "latest_window_summary",
    "list_samples",
    "list_window_summaries",
    "load_sample",
    "load_sample_queries",
    "logged_answers",
    "logged_latencies",
    "logged_latency_quantiles",
    "logged_results",
    "logged_top1_scores",
    "promotion_candidates",
    "record_count",
    "replay_top_results",
    "save_sample",
    "save_traffic_replay",
    "stratum_sizes",
    "traffic_volume",
    "window_embeddings",
    "window_summary_of_run",
]
