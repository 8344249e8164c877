"""The traffic tables: ingested records and how far each log file was read, ingest problems,
samples, per-query replay comparisons, window summaries and window embeddings."""

__all__ = ["SCHEMA_SQL", "SPANS_SCHEMA_SQL"]

SCHEMA_SQL = """
CREATE TABLE traffic_records (
    query_id VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    text VARCHAR NOT NULL,
    tenant VARCHAR,
    tags JSON,
    logged_doc_ids VARCHAR[],
    logged_scores DOUBLE[],
    answer VARCHAR,
    contexts VARCHAR[],
    latency_ms DOUBLE,
    query_key UBIGINT NOT NULL,
    source VARCHAR NOT NULL,
    line BIGINT NOT NULL,
    ingested_at TIMESTAMP NOT NULL
);
CREATE TABLE traffic_sources (
    device UBIGINT NOT NULL,
    inode UBIGINT NOT NULL,
    path VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    head_hash VARCHAR NOT NULL,
    head_length INTEGER NOT NULL,
    byte_offset BIGINT NOT NULL,
    lines_read BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (device, inode)
);
CREATE TABLE traffic_ingest_problems (
    ingested_at TIMESTAMP NOT NULL,
    source VARCHAR NOT NULL,
    line BIGINT,
    message VARCHAR NOT NULL
);
CREATE TABLE traffic_samples (
    sample_id VARCHAR PRIMARY KEY,
    window_label VARCHAR NOT NULL,
    window_start TIMESTAMP NOT NULL,
    window_end TIMESTAMP NOT NULL,
    stratify_by VARCHAR,
    n_requested INTEGER NOT NULL,
    min_per_stratum INTEGER NOT NULL,
    dedup BOOLEAN NOT NULL,
    seed BIGINT NOT NULL,
    n_records BIGINT NOT NULL,
    n_distinct BIGINT NOT NULL,
    n_sampled INTEGER NOT NULL,
    quotas JSON NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE traffic_sample_queries (
    sample_id VARCHAR NOT NULL,
    ordinal INTEGER NOT NULL,
    query_id VARCHAR NOT NULL,
    text VARCHAR NOT NULL,
    tenant VARCHAR,
    stratum VARCHAR,
    n_duplicates INTEGER NOT NULL
);
CREATE TABLE traffic_replay_queries (
    run_id VARCHAR NOT NULL,
    query_id VARCHAR NOT NULL,
    tenant VARCHAR,
    stratum VARCHAR,
    failed BOOLEAN NOT NULL,
    n_results INTEGER NOT NULL,
    top1_score DOUBLE,
    n_logged INTEGER,
    overlap_at_k DOUBLE,
    rbo DOUBLE
);
CREATE TABLE traffic_window_summaries (
    run_id VARCHAR PRIMARY KEY,
    sample_id VARCHAR NOT NULL,
    window_label VARCHAR NOT NULL,
    window_start TIMESTAMP NOT NULL,
    window_end TIMESTAMP NOT NULL,
    computed_at TIMESTAMP NOT NULL,
    k INTEGER NOT NULL,
    compare_k INTEGER NOT NULL,
    rbo_p DOUBLE NOT NULL,
    volume BIGINT NOT NULL,
    n_distinct BIGINT NOT NULL,
    n_replayed INTEGER NOT NULL,
    n_failed INTEGER NOT NULL,
    latency_p50 DOUBLE,
    latency_p95 DOUBLE,
    latency_p99 DOUBLE,
    logged_latency_p50 DOUBLE,
    logged_latency_p95 DOUBLE,
    logged_latency_p99 DOUBLE,
    top1_mean DOUBLE,
    top1_std DOUBLE,
    top1_p05 DOUBLE,
    top1_p25 DOUBLE,
    top1_p50 DOUBLE,
    top1_p75 DOUBLE,
    top1_p95 DOUBLE,
    low_confidence_threshold DOUBLE NOT NULL,
    low_confidence_share DOUBLE,
    empty_share DOUBLE,
    n_compared INTEGER NOT NULL,
    overlap_mean DOUBLE,
    rbo_mean DOUBLE,
    churn DOUBLE,
    embedding_model VARCHAR,
    embedding_dimension INTEGER,
    embedding_fingerprint VARCHAR,
    embedding_seed BIGINT,
    n_embeddings INTEGER NOT NULL
);
CREATE TABLE traffic_window_embeddings (
    run_id VARCHAR NOT NULL,
    window_label VARCHAR NOT NULL,
    ordinal INTEGER NOT NULL,
    query_id VARCHAR NOT NULL,
    embedding FLOAT[] NOT NULL
);
"""


SPANS_SCHEMA_SQL = """
ALTER TABLE traffic_records ALTER COLUMN text DROP NOT NULL;
ALTER TABLE traffic_records ADD COLUMN trace_id VARCHAR;
ALTER TABLE traffic_records ADD COLUMN span_id VARCHAR;
CREATE TABLE traffic_generations (
    trace_id VARCHAR NOT NULL,
    span_id VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL,
    answer VARCHAR NOT NULL,
    contexts VARCHAR[],
    source VARCHAR NOT NULL,
    ingested_at TIMESTAMP NOT NULL
);
"""
"""Traffic from OpenTelemetry spans: a record's text may be missing (a retrieval span that
did not record its query: stored for the logged results and latency, never sampled), the
trace and span it came from, and the answers of generation spans, kept so that one arriving
after (or before) its trace's retrieval span still finds it."""
