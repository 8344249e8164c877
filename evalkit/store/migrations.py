"""Named, numbered schema migrations, applied in order and recorded in ``schema_migrations``.

A released migration's SQL is a literal, exactly as it ran, and is never edited
(``tests/test_migrations_frozen.py`` holds a hash of each): a schema change is a new entry
at the end of ``MIGRATIONS``. Each area keeps its queries in its own module of
``evalkit.store``; its tables are created here. Large per-query tables carry no primary-key
index on purpose: DuckDB's ART indexes cost memory per row and slow bulk inserts, and the
Store inserts each (run, query) once inside one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIGRATIONS", "Migration"]


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: its number, a name for people, and the SQL it runs."""

    number: int
    name: str
    sql: str


_M01_GOLDSETS_RUNS_METRICS = """
        CREATE TABLE goldsets (
            name VARCHAR NOT NULL,
            version VARCHAR NOT NULL,
            source VARCHAR,
            imported_at TIMESTAMP NOT NULL,
            n_queries INTEGER NOT NULL,
            n_judgments INTEGER NOT NULL,
            PRIMARY KEY (name, version)
        );
        CREATE TABLE goldset_queries (
            goldset_version VARCHAR NOT NULL,
            ordinal INTEGER NOT NULL,
            query_id VARCHAR NOT NULL,
            text VARCHAR NOT NULL,
            tenant VARCHAR,
            tags VARCHAR[],
            reference_answer VARCHAR,
            reference_context_ids VARCHAR[],
            PRIMARY KEY (goldset_version, query_id)
        );
        CREATE TABLE judgments (
            goldset_version VARCHAR NOT NULL,
            query_id VARCHAR NOT NULL,
            doc_id VARCHAR NOT NULL,
            relevance INTEGER NOT NULL,
            PRIMARY KEY (goldset_version, query_id, doc_id)
        );
        CREATE TABLE runs (
            run_id VARCHAR PRIMARY KEY,
            status VARCHAR NOT NULL
                CHECK (status IN ('running', 'complete', 'partial', 'failed')),
            kind VARCHAR NOT NULL,
            label VARCHAR,
            goldset_name VARCHAR,
            goldset_version VARCHAR,
            retriever_kind VARCHAR NOT NULL,
            retriever_config JSON,
            collection VARCHAR,
            model_name VARCHAR,
            model_dimension INTEGER,
            model_fingerprint VARCHAR,
            index_fingerprint VARCHAR,
            evalkit_version VARCHAR NOT NULL,
            k INTEGER NOT NULL,
            relevance_threshold INTEGER NOT NULL,
            measures VARCHAR[] NOT NULL,
            seed BIGINT,
            started_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP,
            n_queries INTEGER NOT NULL,
            n_failed INTEGER,
            n_evaluated INTEGER,
            error VARCHAR
        );
        CREATE TABLE run_queries (
            run_id VARCHAR NOT NULL,
            query_id VARCHAR NOT NULL,
            latency_ms DOUBLE,
            error VARCHAR,
            n_results INTEGER NOT NULL
        );
        CREATE TABLE run_results (
            run_id VARCHAR NOT NULL,
            query_id VARCHAR NOT NULL,
            rank INTEGER NOT NULL,
            doc_id VARCHAR NOT NULL,
            score DOUBLE NOT NULL
        );
        CREATE TABLE query_metrics (
            run_id VARCHAR NOT NULL,
            query_id VARCHAR NOT NULL,
            measure VARCHAR NOT NULL,
            value DOUBLE NOT NULL
        );
        CREATE TABLE run_aggregates (
            run_id VARCHAR NOT NULL,
            measure VARCHAR NOT NULL,
            value DOUBLE,
            n_evaluated INTEGER NOT NULL,
            n_total INTEGER NOT NULL,
            PRIMARY KEY (run_id, measure)
        );
        """

_M02_DRIFT_CHECKS = """
CREATE TABLE drift_checks (
    check_id VARCHAR PRIMARY KEY,
    created_at TIMESTAMP NOT NULL,
    stream VARCHAR NOT NULL,
    subject VARCHAR,
    finding VARCHAR NOT NULL,
    method VARCHAR NOT NULL,
    reference VARCHAR,
    current VARCHAR,
    n_reference INTEGER,
    n_current INTEGER,
    statistic DOUBLE,
    p_value DOUBLE,
    threshold DOUBLE,
    effect_size DOUBLE,
    is_drift BOOLEAN NOT NULL,
    seed BIGINT,
    details JSON,
    report_path VARCHAR
);
"""

_M03_TRAFFIC = """
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

_M04_ANSWER_SCORES = """
CREATE TABLE answer_scorings (
    scoring_id VARCHAR PRIMARY KEY,
    run_id VARCHAR,
    source VARCHAR,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    n_records INTEGER NOT NULL,
    judge_calls INTEGER NOT NULL,
    cache_hits INTEGER NOT NULL,
    settings JSON
);
CREATE TABLE answer_scores (
    scoring_id VARCHAR NOT NULL,
    run_id VARCHAR,
    source VARCHAR,
    item_id VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,
    method VARCHAR NOT NULL,
    judge_model VARCHAR,
    prompt_version VARCHAR,
    value DOUBLE,
    unmeasured_reason VARCHAR,
    detail VARCHAR,
    n_repeats INTEGER NOT NULL,
    spread DOUBLE,
    n_claims INTEGER,
    n_supported INTEGER,
    CHECK ((value IS NULL) <> (unmeasured_reason IS NULL))
);
CREATE TABLE judge_cache (
    cache_key VARCHAR PRIMARY KEY,
    metric VARCHAR NOT NULL,
    judge_model VARCHAR NOT NULL,
    prompt_version VARCHAR NOT NULL,
    value DOUBLE,
    unmeasured_reason VARCHAR,
    n_claims INTEGER,
    n_supported INTEGER,
    detail VARCHAR,
    created_at TIMESTAMP NOT NULL
);
"""

_M05_AUDIT = """
CREATE TABLE audits (
    audit_id VARCHAR PRIMARY KEY,
    collection VARCHAR NOT NULL,
    location VARCHAR,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    n_documents BIGINT NOT NULL,
    model_name VARCHAR,
    model_fingerprint VARCHAR,
    stored_model_fingerprint VARCHAR,
    index_fingerprint VARCHAR,
    goldset_name VARCHAR,
    goldset_version VARCHAR,
    source VARCHAR,
    seed BIGINT,
    config JSON,
    checks JSON,
    max_severity VARCHAR,
    n_findings INTEGER NOT NULL,
    evalkit_version VARCHAR NOT NULL
);
CREATE TABLE audit_findings (
    audit_id VARCHAR NOT NULL,
    ordinal INTEGER NOT NULL,
    collection VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    kind VARCHAR NOT NULL,
    check_name VARCHAR NOT NULL,
    severity VARCHAR NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    severity_rank INTEGER NOT NULL,
    message VARCHAR NOT NULL,
    n_affected BIGINT NOT NULL,
    doc_ids VARCHAR[] NOT NULL,
    clusters VARCHAR[][] NOT NULL,
    query_ids VARCHAR[] NOT NULL,
    value DOUBLE,
    threshold DOUBLE,
    details JSON
);
CREATE TABLE audit_measurements (
    audit_id VARCHAR NOT NULL,
    collection VARCHAR NOT NULL,
    goldset_version VARCHAR,
    measured_at TIMESTAMP NOT NULL,
    check_name VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    value DOUBLE NOT NULL
);
"""

_M06_ALERTS_OUTBOX_JOB_RUNS = """
CREATE SEQUENCE alert_sequence START 1;
CREATE TABLE alerts (
    alert_id VARCHAR PRIMARY KEY,
    -- Raising order: alerts raised in the same instant keep it for delivery.
    sequence BIGINT NOT NULL DEFAULT nextval('alert_sequence'),
    rule VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    dedup_key VARCHAR NOT NULL,
    subject VARCHAR NOT NULL,
    status VARCHAR NOT NULL CHECK (status IN ('firing', 'resolved')),
    severity VARCHAR NOT NULL CHECK (severity IN ('warning', 'critical')),
    title VARCHAR NOT NULL,
    summary VARCHAR NOT NULL,
    evidence JSON NOT NULL,
    links JSON NOT NULL,
    fired_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    n_sinks INTEGER NOT NULL
);
CREATE TABLE alert_state (
    dedup_key VARCHAR PRIMARY KEY,
    rule VARCHAR NOT NULL,
    subject VARCHAR NOT NULL,
    active BOOLEAN NOT NULL,
    severity VARCHAR,
    since TIMESTAMP,
    last_evaluated_at TIMESTAMP NOT NULL,
    notified_status VARCHAR,
    notified_severity VARCHAR,
    last_notified_at TIMESTAMP,
    last_fired_notice_at TIMESTAMP,
    last_alert_id VARCHAR,
    evidence JSON,
    title VARCHAR,
    summary VARCHAR,
    links JSON
);
CREATE TABLE alert_outbox (
    alert_id VARCHAR NOT NULL,
    sink VARCHAR NOT NULL,
    state VARCHAR NOT NULL CHECK (state IN ('pending', 'delivered', 'abandoned')),
    attempts INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    last_attempt_at TIMESTAMP,
    delivered_at TIMESTAMP,
    last_error VARCHAR,
    PRIMARY KEY (alert_id, sink)
);
CREATE TABLE alert_delivery_attempts (
    alert_id VARCHAR NOT NULL,
    sink VARCHAR NOT NULL,
    attempt INTEGER NOT NULL,
    attempted_at TIMESTAMP NOT NULL,
    duration_ms DOUBLE NOT NULL,
    ok BOOLEAN NOT NULL,
    status_code INTEGER,
    error VARCHAR
);
CREATE TABLE job_runs (
    job_run_id VARCHAR PRIMARY KEY,
    job VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    trigger VARCHAR NOT NULL,
    status VARCHAR NOT NULL
        CHECK (status IN ('running', 'succeeded', 'partial', 'failed', 'interrupted')),
    scheduled_for TIMESTAMP,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    pid INTEGER,
    host VARCHAR,
    run_ids VARCHAR[] NOT NULL,
    summary JSON,
    error VARCHAR
);
CREATE TABLE pruned_runs (
    run_id VARCHAR PRIMARY KEY,
    pruned_at TIMESTAMP NOT NULL,
    rows_deleted BIGINT NOT NULL
);
"""

_M07_RUN_QUERY_DUPLICATES = "ALTER TABLE run_queries ADD COLUMN n_duplicates INTEGER DEFAULT 0;"

# What was scored, so a low score can be read beside its answer and contexts.
_M08_ANSWER_ITEMS = """
CREATE TABLE answer_items (
    scoring_id VARCHAR NOT NULL,
    run_id VARCHAR,
    item_id VARCHAR NOT NULL,
    question VARCHAR NOT NULL,
    answer VARCHAR NOT NULL,
    contexts VARCHAR[] NOT NULL,
    context_ids VARCHAR[] NOT NULL,
    reference VARCHAR,
    PRIMARY KEY (scoring_id, item_id)
);
"""

# Sentence vectors of contexts, float32 rows of one context in one blob.
_M09_CONTEXT_EMBEDDINGS = """
CREATE TABLE context_embeddings (
    cache_key VARCHAR PRIMARY KEY,
    n_sentences INTEGER NOT NULL,
    dimension INTEGER NOT NULL,
    vectors BLOB NOT NULL,
    created_at TIMESTAMP NOT NULL
);
"""

_M10_TRAFFIC_SPANS = """
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

_M11_RUN_SHARDS = """
CREATE TABLE run_shards (
    run_id VARCHAR NOT NULL,
    shard VARCHAR NOT NULL,
    n_queries INTEGER NOT NULL,
    loaded_at TIMESTAMP NOT NULL,
    PRIMARY KEY (run_id, shard)
);
"""

_M12_RUN_IMPORTS = (
    "ALTER TABLE runs ADD COLUMN imported_from VARCHAR;"
    " ALTER TABLE runs ADD COLUMN imported_at TIMESTAMP;"
)

_M13_JUDGING = """
CREATE TABLE judged_pool (
    query_hash VARCHAR NOT NULL,
    content_hash VARCHAR NOT NULL,
    assessor VARCHAR NOT NULL,
    model VARCHAR NOT NULL,
    prompt_version VARCHAR NOT NULL,
    query_text VARCHAR NOT NULL,
    doc_id VARCHAR NOT NULL,
    grade INTEGER,
    reason VARCHAR,
    unjudged_reason VARCHAR,
    detail VARCHAR,
    judged_at TIMESTAMP NOT NULL,
    PRIMARY KEY (query_hash, content_hash, assessor)
);
CREATE TABLE judge_agreements (
    agreement_id VARCHAR PRIMARY KEY,
    assessor VARCHAR NOT NULL,
    goldset_name VARCHAR NOT NULL,
    goldset_version VARCHAR NOT NULL,
    measured_at TIMESTAMP NOT NULL,
    n_pairs INTEGER NOT NULL,
    n_unjudged INTEGER NOT NULL,
    kappa DOUBLE,
    kappa_low DOUBLE,
    kappa_high DOUBLE,
    kappa_scale VARCHAR NOT NULL,
    confusion JSON NOT NULL,
    tau DOUBLE,
    tau_p_value DOUBLE,
    tau_measure VARCHAR,
    n_runs INTEGER NOT NULL,
    seed BIGINT NOT NULL,
    details JSON NOT NULL
);
CREATE TABLE judged_run_figures (
    run_id VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    labeller VARCHAR NOT NULL,
    measure VARCHAR NOT NULL,
    value DOUBLE,
    low DOUBLE,
    high DOUBLE,
    n_queries INTEGER NOT NULL,
    judged_share DOUBLE,
    status VARCHAR NOT NULL,
    agreement_id VARCHAR,
    computed_at TIMESTAMP NOT NULL,
    details JSON NOT NULL,
    PRIMARY KEY (run_id, source, labeller, measure)
);
"""

# DuckDB 2.x adds columns to a table with a primary key in place (checked when this was
# written), so the judgments table is not rebuilt.
_M14_GOLDSET_SPANS = """
ALTER TABLE judgments ADD COLUMN source_id VARCHAR;
ALTER TABLE judgments ADD COLUMN span_start BIGINT;
ALTER TABLE judgments ADD COLUMN span_end BIGINT;
ALTER TABLE judgments ADD COLUMN span_text VARCHAR;
CREATE TABLE goldset_remaps (
    goldset_version VARCHAR NOT NULL,
    old_goldset_version VARCHAR NOT NULL,
    ordinal INTEGER NOT NULL,
    query_id VARCHAR NOT NULL,
    old_doc_id VARCHAR NOT NULL,
    new_doc_id VARCHAR,
    overlap DOUBLE,
    status VARCHAR NOT NULL CHECK (status IN ('mapped', 'stale', 'unmapped')),
    reason VARCHAR,
    PRIMARY KEY (goldset_version, old_goldset_version, ordinal)
);
CREATE TABLE goldset_remap_runs (
    goldset_version VARCHAR NOT NULL,
    old_goldset_version VARCHAR NOT NULL,
    goldset_name VARCHAR NOT NULL,
    old_goldset_name VARCHAR NOT NULL,
    corpus VARCHAR NOT NULL,
    old_corpus VARCHAR,
    min_overlap DOUBLE NOT NULL,
    remapped_at TIMESTAMP NOT NULL,
    n_mapped INTEGER NOT NULL,
    n_stale INTEGER NOT NULL,
    n_unmapped INTEGER NOT NULL,
    PRIMARY KEY (goldset_version, old_goldset_version)
);
"""

# Reviews are append-only and keyed by a random id, so two reviewers saving one item at once
# both keep their review; an item's status is derived from its reviews when one is added.
_M15_REVIEW_QUEUE = """
CREATE TABLE review_items (
    item_id VARCHAR PRIMARY KEY,
    goldset VARCHAR NOT NULL,
    origin VARCHAR NOT NULL CHECK (origin IN ('traffic', 'generated', 'disagreement')),
    query_id VARCHAR NOT NULL,
    query_text VARCHAR NOT NULL,
    tenant VARCHAR,
    tags VARCHAR[],
    reference_answer VARCHAR,
    reference_context_ids VARCHAR[],
    documents JSON NOT NULL,
    priority DOUBLE NOT NULL,
    reason VARCHAR NOT NULL,
    provenance JSON NOT NULL,
    status VARCHAR NOT NULL CHECK (status IN ('open', 'accepted', 'rejected', 'published')),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE reviews (
    review_id VARCHAR PRIMARY KEY,
    item_id VARCHAR NOT NULL,
    reviewer VARCHAR NOT NULL,
    reviewed_at TIMESTAMP NOT NULL,
    verdict VARCHAR NOT NULL CHECK (verdict IN ('accept', 'reject')),
    grades JSON NOT NULL,
    question VARCHAR,
    note VARCHAR NOT NULL
);
CREATE TABLE review_publications (
    goldset VARCHAR NOT NULL,
    goldset_version VARCHAR NOT NULL,
    previous_version VARCHAR,
    published_at TIMESTAMP NOT NULL,
    min_reviews INTEGER NOT NULL,
    n_items INTEGER NOT NULL,
    n_queries_added INTEGER NOT NULL,
    n_queries_edited INTEGER NOT NULL,
    n_judgments_added INTEGER NOT NULL,
    n_judgments_changed INTEGER NOT NULL,
    PRIMARY KEY (goldset, goldset_version, published_at)
);
CREATE TABLE review_published_items (
    item_id VARCHAR NOT NULL,
    goldset VARCHAR NOT NULL,
    goldset_version VARCHAR NOT NULL,
    published_at TIMESTAMP NOT NULL,
    verdict_reviews INTEGER NOT NULL,
    PRIMARY KEY (item_id, goldset_version)
);
"""

# A run's tags (a sweep's name and settings, a user's `--tag`) are a table of their own, so
# that runs are found by tag with an index and a run row keeps its released columns.
_M16_RUN_TAGS = """
CREATE TABLE run_tags (
    run_id VARCHAR NOT NULL,
    tag VARCHAR NOT NULL,
    PRIMARY KEY (run_id, tag)
);
CREATE INDEX run_tags_by_tag ON run_tags (tag);
"""

# Freshness: the changes read from a source, each until the index reflects it, the checks
# that measured them and each source's read position. Changes are many (a corpus's first
# read holds every document) and are written once and updated by set, so, like the runs'
# per-query rows, they carry no primary-key index.
_M18_FRESHNESS = """
CREATE TABLE freshness_checks (
    check_id VARCHAR PRIMARY KEY,
    subject VARCHAR NOT NULL,
    checked_at TIMESTAMP NOT NULL,
    method VARCHAR NOT NULL CHECK (method IN ('index', 'probe')),
    index_kind VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    n_read INTEGER NOT NULL,
    n_reflected INTEGER NOT NULL,
    n_pending INTEGER NOT NULL,
    n_superseded INTEGER NOT NULL,
    lag_p50_seconds DOUBLE,
    lag_p95_seconds DOUBLE,
    lag_max_seconds DOUBLE,
    unreflected_share DOUBLE,
    oldest_unreflected_seconds DOUBLE,
    slo_p95_lag_seconds DOUBLE NOT NULL,
    max_unreflected_age_seconds DOUBLE NOT NULL,
    breached BOOLEAN NOT NULL,
    n_probes INTEGER NOT NULL,
    probe_seconds DOUBLE NOT NULL,
    evalkit_seconds DOUBLE NOT NULL,
    evalkit_version VARCHAR NOT NULL,
    details JSON NOT NULL
);
CREATE TABLE freshness_changes (
    subject VARCHAR NOT NULL,
    doc_id VARCHAR NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    origin VARCHAR NOT NULL,
    content_hash VARCHAR,
    text_hash VARCHAR,
    probe_text VARCHAR,
    read_at TIMESTAMP NOT NULL,
    read_check_id VARCHAR NOT NULL,
    status VARCHAR NOT NULL CHECK (status IN ('pending', 'reflected', 'superseded')),
    state VARCHAR CHECK (state IN ('stale', 'missing', 'not_found')),
    last_checked_at TIMESTAMP,
    reflected_at TIMESTAMP,
    reflected_after TIMESTAMP,
    reflected_by VARCHAR CHECK (reflected_by IN ('index_time', 'check', 'probe')),
    lag_seconds DOUBLE,
    check_id VARCHAR
);
CREATE TABLE freshness_sources (
    subject VARCHAR NOT NULL,
    part VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    head_hash VARCHAR,
    head_length INTEGER,
    byte_offset BIGINT,
    rows_read BIGINT,
    watermark TIMESTAMP,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (subject, part)
);
"""

# How large the index was when a run replayed it, as its store counted it (NULL where the
# retriever cannot say), so latency can be read against index size and a latency rise
# explained by an index that grew.
_M17_RUN_INDEX_SIZE = """
ALTER TABLE runs ADD COLUMN index_documents BIGINT;
ALTER TABLE runs ADD COLUMN index_vectors BIGINT;
"""

# Stores written between two edits of migrations 6 and 8 (before released migrations were
# frozen as literals) lack what those migrations hold today: alerts.sequence, and
# answer_items.run_id. On every other store this changes nothing.
_M19_REPAIR_EDITED_MIGRATIONS = """
CREATE SEQUENCE IF NOT EXISTS alert_sequence START 1;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS sequence BIGINT DEFAULT nextval('alert_sequence');
ALTER TABLE alerts ALTER COLUMN sequence SET NOT NULL;
ALTER TABLE answer_items ADD COLUMN IF NOT EXISTS run_id VARCHAR;
UPDATE answer_items AS i SET run_id = s.run_id FROM answer_scorings AS s
WHERE i.run_id IS NULL AND s.scoring_id = i.scoring_id AND s.run_id IS NOT NULL;
"""

# An imported review keeps the annotation tool's own ids of its annotation and annotator, so
# that one annotation is never saved twice under two names (another export format, another
# --annotator) and one annotator keeps one name across imports.
_M20_REVIEW_SOURCES = """
ALTER TABLE reviews ADD COLUMN source_tool VARCHAR;
ALTER TABLE reviews ADD COLUMN source_annotation_id VARCHAR;
ALTER TABLE reviews ADD COLUMN source_user_id VARCHAR;
"""

# The outputs of single judge calls of judgments not finished yet (ragas' faithfulness asks
# for statements, then for verdicts), kept as each arrives so that a scoring stopped between
# two calls pays on its rerun only for the calls not answered; a judgment's calls are
# deleted once the judgment is in judge_cache.
_M21_JUDGE_CALLS = """
CREATE TABLE judge_calls (
    cache_key VARCHAR PRIMARY KEY,
    judgment_key VARCHAR NOT NULL,
    judge_model VARCHAR NOT NULL,
    output VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL
);
"""

# A goldset name's current version is the one stored, or stored again, most recently:
# re-importing an older version's content makes it current again without rewriting when it
# was first imported. The column stays nullable: DuckDB cannot add the NOT NULL constraint
# in the transaction that filled it on a table with a primary key; every writer sets it.
_M22_GOLDSET_CURRENT_SINCE = """
ALTER TABLE goldsets ADD COLUMN current_since TIMESTAMP;
UPDATE goldsets SET current_since = imported_at;
"""

# Reviews imported from Label Studio before migration 20 carry no source: one annotator's
# reviews, signed label-studio-user-<id> from the user id the export gave, get that id back so
# that a later import under another name (--annotator) is refused rather than counting them
# as a second reviewer.
_M23_REVIEW_SOURCES_BACKFILL = """
UPDATE reviews
SET source_tool = 'label-studio',
    source_user_id = regexp_extract(reviewer, '^label-studio-user-([0-9]+)$', 1)
WHERE source_tool IS NULL AND regexp_full_match(reviewer, 'label-studio-user-[0-9]+');
"""
# A run and a replayed traffic window keep the canary embeddings of their query model, not
# only their hash, so that two runs are compared by canary cosine: the hash of one model
# differs between ONNX Runtime and torch. Rows stored before have NULL (hash only).
_M24_MODEL_CANARIES = """
ALTER TABLE runs ADD COLUMN model_canaries BLOB;
ALTER TABLE traffic_window_summaries ADD COLUMN embedding_canaries BLOB;
"""
# Label Studio's JSON export names an annotator by user id, its JSON-MIN export by email:
# a review keeps the email too, so that either names the same reviewer. Reviews imported
# before under an email (JSON-MIN, or a user object) get it back.
_M25_REVIEW_SOURCE_EMAILS = """
ALTER TABLE reviews ADD COLUMN source_user_email VARCHAR;
UPDATE reviews
SET source_user_email = reviewer
WHERE source_tool = 'label-studio' AND regexp_full_match(reviewer, '[^@\\s]+@[^@\\s]+');
"""

# A judged pair whose text reads as written to steer the assessor (instructions, its reply
# format, its prompt's structure) keeps what it was flagged for; pairs judged before have NULL.
_M26_JUDGED_POOL_FLAGS = """
ALTER TABLE judged_pool ADD COLUMN flags VARCHAR;
"""

# A traffic window's nDCG takes its ideal from the window's judged top k, a goldset run's
# from all its judgments: two measures, so a window's is ndcg_judged@k, never ndcg@k. Window
# figures stored before under ndcg@k are renamed; a goldset run's figures keep their names.
_M27_WINDOW_NDCG_JUDGED = """
UPDATE judged_run_figures
SET measure = 'ndcg_judged@' || substr(measure, length('ndcg@') + 1)
WHERE source IN ('assessor', 'assessor_logged')
  AND regexp_full_match(measure, 'ndcg@[0-9]+')
  AND run_id IN (SELECT run_id FROM traffic_window_summaries);
"""

# Slices of traffic (docs/slices.md): the reference topics a window's queries are assigned to,
# each query's figures from the assessor or the estimate (a slice's figure is their mean over
# its queries), and each window's figures per slice.
_M28_SLICES = """
CREATE TABLE topic_sets (
    version VARCHAR PRIMARY KEY,
    fitted_at TIMESTAMP NOT NULL,
    model_fingerprint VARCHAR NOT NULL,
    reference_run_id VARCHAR NOT NULL,
    reference_window VARCHAR NOT NULL,
    n_queries INTEGER NOT NULL,
    seed BIGINT NOT NULL,
    centroids JSON NOT NULL,
    topics JSON NOT NULL,
    previous_version VARCHAR,
    matched JSON
);
CREATE TABLE judged_query_values (
    run_id VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    labeller VARCHAR NOT NULL,
    measure VARCHAR NOT NULL,
    query_id VARCHAR NOT NULL,
    value DOUBLE NOT NULL,
    PRIMARY KEY (run_id, source, labeller, measure, query_id)
);
CREATE TABLE traffic_slice_figures (
    run_id VARCHAR NOT NULL,
    window_label VARCHAR NOT NULL,
    topic_version VARCHAR,
    slice VARCHAR NOT NULL,
    n_queries INTEGER NOT NULL,
    n_family INTEGER NOT NULL,
    share DOUBLE NOT NULL,
    share_low DOUBLE NOT NULL,
    share_high DOUBLE NOT NULL,
    n_out_of_scope INTEGER,
    out_of_scope_share DOUBLE,
    out_of_scope_low DOUBLE,
    out_of_scope_high DOUBLE,
    low_confidence_share DOUBLE,
    churn DOUBLE,
    precision_source VARCHAR,
    precision_labeller VARCHAR,
    precision_measure VARCHAR,
    precision DOUBLE,
    precision_low DOUBLE,
    precision_high DOUBLE,
    n_precision INTEGER NOT NULL,
    computed_at TIMESTAMP NOT NULL,
    details JSON NOT NULL,
    PRIMARY KEY (run_id, slice)
);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "goldsets_runs_metrics", _M01_GOLDSETS_RUNS_METRICS),
    Migration(2, "drift_checks", _M02_DRIFT_CHECKS),
    Migration(3, "traffic", _M03_TRAFFIC),
    Migration(4, "answer_scores", _M04_ANSWER_SCORES),
    Migration(5, "audit", _M05_AUDIT),
    Migration(6, "alerts_outbox_job_runs", _M06_ALERTS_OUTBOX_JOB_RUNS),
    Migration(7, "run_query_duplicates", _M07_RUN_QUERY_DUPLICATES),
    Migration(8, "answer_items", _M08_ANSWER_ITEMS),
    Migration(9, "context_embeddings", _M09_CONTEXT_EMBEDDINGS),
    Migration(10, "traffic_spans", _M10_TRAFFIC_SPANS),
    Migration(11, "run_shards", _M11_RUN_SHARDS),
    Migration(12, "run_imports", _M12_RUN_IMPORTS),
    Migration(13, "judging", _M13_JUDGING),
    Migration(14, "goldset_spans", _M14_GOLDSET_SPANS),
    Migration(15, "review_queue", _M15_REVIEW_QUEUE),
    Migration(16, "run_tags", _M16_RUN_TAGS),
    Migration(17, "run_index_size", _M17_RUN_INDEX_SIZE),
    Migration(18, "freshness", _M18_FRESHNESS),
    Migration(19, "repair_edited_migrations", _M19_REPAIR_EDITED_MIGRATIONS),
    Migration(20, "review_sources", _M20_REVIEW_SOURCES),
    Migration(21, "judge_calls", _M21_JUDGE_CALLS),
    Migration(22, "goldset_current_since", _M22_GOLDSET_CURRENT_SINCE),
    Migration(23, "review_sources_backfill", _M23_REVIEW_SOURCES_BACKFILL),
    Migration(24, "model_canaries", _M24_MODEL_CANARIES),
    Migration(25, "review_source_emails", _M25_REVIEW_SOURCE_EMAILS),
    Migration(26, "judged_pool_flags", _M26_JUDGED_POOL_FLAGS),
    Migration(27, "window_ndcg_judged", _M27_WINDOW_NDCG_JUDGED),
    Migration(28, "slices", _M28_SLICES),
)
