"""Named, numbered schema migrations, applied in order and recorded in ``schema_migrations``.

The core tables are defined here; each later area of evalkit (drift, traffic, answers,
audit, alerts, jobs, retention) keeps its tables and queries in its own module of
``evalkit.store`` with a ``SCHEMA_SQL`` of its own, collected into ``MIGRATIONS`` below in
number order.

A migration is never edited once released: a schema change is a new, higher-numbered entry.
Timestamps are UTC. Large per-query tables carry no primary-key index on purpose: DuckDB's
ART indexes cost memory per row and slow bulk inserts, and every writer of those tables
(the Store) inserts each (run, query) once inside one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from evalkit.store import alerts as _alerts
from evalkit.store import answers as _answers
from evalkit.store import audit as _audit
from evalkit.store import drift as _drift
from evalkit.store import jobs as _jobs
from evalkit.store import retention as _retention
from evalkit.store import shards as _shards
from evalkit.store import traffic as _traffic

__all__ = ["MIGRATIONS", "Migration"]


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: its number, a name for people, and the SQL it runs."""

    number: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "goldsets_runs_metrics",
        """
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
        """,
    ),
    Migration(2, "drift_checks", _drift.SCHEMA_SQL),
    Migration(3, "traffic", _traffic.SCHEMA_SQL),
    Migration(4, "answer_scores", _answers.SCHEMA_SQL),
    Migration(5, "audit", _audit.SCHEMA_SQL),
    Migration(
        6,
        "alerts_outbox_job_runs",
        _alerts.SCHEMA_SQL + _jobs.SCHEMA_SQL + _retention.SCHEMA_SQL,
    ),
    Migration(
        7,
        "run_query_duplicates",
        "ALTER TABLE run_queries ADD COLUMN n_duplicates INTEGER DEFAULT 0;",
    ),
    Migration(8, "answer_items", _answers.ITEMS_SCHEMA_SQL),
    Migration(9, "context_embeddings", _answers.CONTEXT_EMBEDDINGS_SQL),
    Migration(10, "traffic_spans", _traffic.SPANS_SCHEMA_SQL),
    Migration(11, "run_shards", _shards.SCHEMA_SQL),
    Migration(
        12,
        "run_imports",
        "ALTER TABLE runs ADD COLUMN imported_from VARCHAR;"
        " ALTER TABLE runs ADD COLUMN imported_at TIMESTAMP;",
    ),
)
