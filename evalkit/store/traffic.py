"""Stored production traffic: ingested records, ingest state, samples, replays and windows.

Ingest is incremental and idempotent: each log file's identity (device, inode and a hash of
its first bytes) and the byte offset just past its last complete line are written in the
same transaction as the records they cover, so a crash neither loses nor repeats a line; a
query id already stored is never stored again.

Samples are drawn in SQL: every distinct query of a window (``query_key``: the upper 64
bits of the MD5 of its tenant and normalised text, computed once at ingest) gets the
priority ``md5(seed:key)``, and each stratum keeps its ``quota`` lowest priorities. That is a
uniform random sample without replacement (a bottom-k sample, the order-free form of a
reservoir), reproducible from the seed whatever order the records were ingested in.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from evalkit.clock import utc_now
from evalkit.errors import ConfigError, NotFoundError, StoreError
from evalkit.store.views import registered

if TYPE_CHECKING:
    import pandas as pd

    from evalkit.store.store import Store

__all__ = [
    "SCHEMA_SQL",
    "SPANS_SCHEMA_SQL",
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
]

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

_GENERATION_WINDOW = timedelta(days=1)
"""How long after a retrieval span its trace's generation span may start and still be
attached to it (bounds the records an attachment looks at)."""


@dataclass(frozen=True, slots=True)
class SourceState:
    """How far ingest has read one log file.

    The file is the one with this ``device`` and ``inode`` whose first ``head_length``
    bytes hash to ``head_hash``; ``byte_offset`` is just past the last line ingested (for
    Parquet, the file's size) and ``lines_read`` the lines (rows) consumed up to there.
    """

    device: int
    inode: int
    path: str
    kind: str
    head_hash: str
    head_length: int
    byte_offset: int
    lines_read: int


@dataclass(frozen=True, slots=True)
class Stratification:
    """What a sample is stratified by: nothing, the tenant, or one tag (``tag:KEY``)."""

    kind: str = "none"
    key: str | None = None

    def __str__(self) -> str:
        return f"tag:{self.key}" if self.kind == "tag" else self.kind


def _stratum_none(_: Stratification) -> tuple[str, list[object]]:
    return "CAST(NULL AS VARCHAR)", []


def _stratum_tenant(_: Stratification) -> tuple[str, list[object]]:
    return "tenant", []


def _stratum_tag(stratification: Stratification) -> tuple[str, list[object]]:
    key = (stratification.key or "").replace('"', '\\"')
    return "json_extract_string(tags, ?)", [f'$."{key}"']


STRATUM_KINDS = {"none": _stratum_none, "tenant": _stratum_tenant, "tag": _stratum_tag}
"""SQL expression (and its parameters) giving each record's stratum, per stratification kind."""


@dataclass(frozen=True, slots=True)
class StoredSample:
    """A stored traffic sample: how it was drawn (window, strata, seed) and what it holds."""

    sample_id: str
    window_label: str
    window_start: datetime
    window_end: datetime
    stratify_by: str | None
    n_requested: int
    min_per_stratum: int
    dedup: bool
    seed: int
    n_records: int
    n_distinct: int
    n_sampled: int
    quotas: Mapping[str, int]
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = {name: getattr(self, name) for name in self.__slots__}
        for name in ("window_start", "window_end", "created_at"):
            data[name] = data[name].isoformat() + "Z"
        data["quotas"] = dict(self.quotas)
        return data


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
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = {name: getattr(self, name) for name in self.__slots__ if name != "extra"}
        for name in ("window_start", "window_end", "computed_at"):
            data[name] = data[name].isoformat() + "Z"
        return data


_SUMMARY_COLUMNS = tuple(name for name in StoredWindowSummary.__slots__ if name != "extra")


# -- ingest -------------------------------------------------------------------------------


@contextmanager
def ingest_settings(store: Store, *, busy_threads: int) -> Iterator[None]:
    """The store set up for a pass of bulk ingest, and set back afterwards.

    DuckDB works on the cores that the caller's ``busy_threads`` (decoding the next records
    while DuckDB stores the last) leave it, at least one: on two cores, its worker threads
    only took time from decoding. Strings are compressed with ZSTD instead of DuckDB's
    default, DICT_FSST, whose analysis of each row group (122,880 query ids and texts, and
    about five times as many logged document ids) cost more CPU than all of DuckDB's own
    JSON import of the same lines; logged ids then take more space without a dictionary
    (docs/traffic.md, "Speed and memory").
    """
    (cores,) = store.fetch("SELECT current_setting('threads')")[0]
    with store.configured(threads=max(1, int(cores) - busy_threads), force_compression="zstd"):
        yield


def find_source_state(store: Store, *, device: int, inode: int) -> SourceState | None:
    """The ingest state of the file with this device and inode, if it was read before."""
    rows = store.fetch(
        "SELECT device, inode, path, kind, head_hash, head_length, byte_offset, lines_read"
        " FROM traffic_sources WHERE device = ? AND inode = ?",
        [device, inode],
    )
    return SourceState(*rows[0]) if rows else None


def _md5_upper(text: str) -> str:
    """SQL for ``md5_number_upper(text)``, the same value at a fifth of the cost: DuckDB's
    macro takes the low 64 bits of ``md5_number`` through a string of 128 bits."""
    return f"CAST(md5_number({text}) & 18446744073709551615::UHUGEINT AS UBIGINT)"


# A record without text gets a key of its own (its query id): it is never one of a group of
# identical queries, and never sampled.
_QUERY_KEY_SQL = (
    f"CASE WHEN dedup_text IS NULL THEN {_md5_upper('chr(30) || query_id')}"
    " ELSE " + _md5_upper("coalesce(tenant, '') || chr(31) || dedup_text") + " END"
)


class IngestTransaction:
    """One batch of ingested records stored atomically, its records added in parts.

    ``with IngestTransaction(store, source=...) as batch:`` opens a transaction;
    ``add_records`` stores parts one after another (a record whose query id is already
    stored, by an earlier part too, or repeated earlier in the part is skipped), ``finish``
    adds the batch's problems and the file's new state, and leaving the block commits, or
    rolls back everything when it is left by an exception. A batch read from a file can so
    be written a part at a time while the next part is read, and still be committed whole.
    Failures of the store are raised as StoreError.
    """

    def __init__(self, store: Store, *, source: str) -> None:
        self.store = store
        self.source = source
        self.inserted = 0
        self.now = utc_now()
        self._stack = ExitStack()
        self._con: duckdb.DuckDBPyConnection | None = None
        # Once known, no stored query id (this transaction's included) sorts above it.
        self._ceiling: str | None = None
        self._ceiling_sought = False

    def __enter__(self) -> IngestTransaction:
        try:
            self._con = self._stack.enter_context(self.store.transaction())
        except duckdb.Error as error:
            raise self._failure(error) from error
        return self

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        try:
            self._stack.__exit__(kind, error, trace)
        except duckdb.Error as failure:
            raise self._failure(failure) from failure

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The open transaction's connection."""
        if self._con is None:
            raise RuntimeError("the ingest transaction is not open")
        return self._con

    def _failure(self, error: duckdb.Error) -> StoreError:
        return StoreError(
            f"cannot store traffic read from {self.source}: {error}; nothing of this batch "
            "was kept, so the next ingest reads it again"
        )

    def add_records(self, records: pa.Table) -> int:
        """Store the records whose query id is not stored yet; returns how many."""
        if not records.num_rows:
            return 0
        con = self.connection
        names = records.schema.names
        span_columns = ", ".join(
            f"b.{name}" if name in names else f"CAST(NULL AS VARCHAR) AS {name}"
            for name in ("trace_id", "span_id")
        )
        lowest, highest = (
            value.as_py() for value in pc.min_max(records.column("query_id")).values()
        )
        try:
            unseen = self._above_every_stored_id(con, lowest)
            row = self._insert(
                con,
                records,
                span_columns,
                lowest,
                highest,
                check_stored=not unseen,
                check_repeats=len(pc.unique(records.column("query_id"))) < records.num_rows,
            )
        except duckdb.Error as error:
            raise self._failure(error) from error
        if self._ceiling is not None and highest is not None:
            self._ceiling = max(self._ceiling, highest)
        inserted = int(row[0]) if row else 0
        self.inserted += inserted
        return inserted

    def _above_every_stored_id(self, con: duckdb.DuckDBPyConnection, lowest: str | None) -> bool:
        """Whether every stored query id sorts below ``lowest``: then none of the part's
        ids is stored, and the part need not be checked against the stored ids.

        Ids that grow through a file (the usual case) are checked once per batch, by a
        query the row groups' statistics answer without reading most of them; the parts
        after it compare with the highest id stored so far.
        """
        if lowest is None:
            return False
        if self._ceiling is not None:
            return lowest > self._ceiling
        if self._ceiling_sought:
            return False
        self._ceiling_sought = True
        (top,) = con.execute(
            "SELECT max(query_id) FROM traffic_records WHERE query_id >= ?", [lowest]
        ).fetchall()[0]
        if top is not None:
            return False
        # Every stored id is below ``lowest``: after this part, none is above its highest.
        self._ceiling = lowest
        return True

    def _insert(
        self,
        con: duckdb.DuckDBPyConnection,
        records: pa.Table,
        span_columns: str,
        lowest: str | None,
        highest: str | None,
        *,
        check_stored: bool,
        check_repeats: bool,
    ) -> tuple[Any, ...] | None:
        conditions = ["TRUE"]
        if check_repeats:
            # The first line of a query id repeated within the part; grouping every part
            # costs about a tenth of the insert, so only parts with repeats pay for it.
            conditions.append("b.line IN (SELECT min(line) FROM _traffic_batch GROUP BY query_id)")
        if check_stored:
            # Stored ids outside the part's range cannot match: with ids that grow through a
            # file, most row groups are skipped unread.
            conditions.append(
                "b.query_id NOT IN (SELECT r.query_id FROM traffic_records r"
                " WHERE r.query_id BETWEEN ? AND ?"
                " AND r.query_id IN (SELECT query_id FROM _traffic_batch))"
            )
        with registered(con, "_traffic_batch", records):
            return con.execute(
                "INSERT INTO traffic_records SELECT query_id, ts, text, tenant, tags,"
                " logged_doc_ids, logged_scores, answer, contexts, latency_ms,"
                f" {_QUERY_KEY_SQL},"
                f" ? AS source, line, ? AS ingested_at, {span_columns}"
                f" FROM _traffic_batch b WHERE {' AND '.join(conditions)}",
                [self.source, self.now, *((lowest, highest) if check_stored else ())],
            ).fetchone()

    def finish(
        self,
        *,
        problems: Sequence[tuple[int | None, str]],
        state: SourceState | None,
        records: pa.Table | None = None,
        generations: pa.Table | None = None,
    ) -> None:
        """Add the batch's problems and the file's state after it (and the answers of
        ``generations`` for ``records``, as ``commit_ingest_batch`` says)."""
        con, now, source = self.connection, self.now, self.source
        try:
            if (
                generations is not None
                and records is not None
                and (generations.num_rows or records.num_rows)
            ):
                _attach_generations(con, records, generations, source=source, now=now)
            if problems:
                frame = pa.table(
                    {
                        "line": pa.array([line for line, _ in problems], pa.int64()),
                        "message": pa.array([message for _, message in problems], pa.string()),
                    }
                )
                # A batch from no file is made idempotent by its ids, and its problems by
                # their messages, which name the request: committed again, it adds nothing.
                known = (
                    ""
                    if state is not None
                    else " b WHERE NOT EXISTS (SELECT 1 FROM traffic_ingest_problems p"
                    " WHERE p.source = ? AND p.message = b.message"
                    " AND p.line IS NOT DISTINCT FROM b.line)"
                )
                with registered(con, "_traffic_problems", frame):
                    con.execute(
                        "INSERT INTO traffic_ingest_problems SELECT ?, ?, line, message"
                        f" FROM _traffic_problems{known}",
                        [now, source] if state is not None else [now, source, source],
                    )
            if state is not None:
                con.execute(
                    "INSERT OR REPLACE INTO traffic_sources VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        state.device,
                        state.inode,
                        state.path,
                        state.kind,
                        state.head_hash,
                        state.head_length,
                        state.byte_offset,
                        state.lines_read,
                        now,
                    ],
                )
        except duckdb.Error as error:
            raise self._failure(error) from error


def commit_ingest_batch(
    store: Store,
    *,
    records: pa.Table,
    source: str,
    problems: Sequence[tuple[int | None, str]],
    state: SourceState | None,
    generations: pa.Table | None = None,
) -> int:
    """Store one batch atomically: new records, its problems and the file's new state.

    Records whose query id is already stored (or repeated earlier in the batch) are skipped.
    ``state`` is None for a batch that comes from no file (spans received over HTTP): its
    problems already stored with the same line and message are then skipped too, so a batch
    committed twice (a crash between its commit and the removal of its spool file) adds
    nothing.
    ``records`` may carry ``trace_id`` and ``span_id`` columns, and ``generations`` (columns
    trace_id, span_id, started_at, answer, contexts) the answers of generation spans: each
    record without an answer gets the one of the first generation span of its trace that
    started at or after it (within a day), whichever of the two was stored first.
    Returns how many records were stored.
    """
    with IngestTransaction(store, source=source) as batch:
        batch.add_records(records)
        batch.finish(problems=problems, state=state, records=records, generations=generations)
    return batch.inserted


def _attach_generations(
    con: duckdb.DuckDBPyConnection,
    records: pa.Table,
    generations: pa.Table,
    *,
    source: str,
    now: datetime,
) -> None:
    """Store the new generation spans and give their answers to the records of their traces."""
    moments = [
        *records.column("ts").to_pylist(),
        *generations.column("started_at").to_pylist(),
    ]
    traces = pa.table(
        {
            "trace_id": pa.concat_arrays(
                [
                    records.column("trace_id").combine_chunks().cast(pa.string()),
                    generations.column("trace_id").combine_chunks().cast(pa.string()),
                ]
            )
        }
    )
    with (
        registered(con, "_traffic_generations", generations),
        registered(con, "_traffic_traces", traces),
    ):
        con.execute(
            "INSERT INTO traffic_generations SELECT g.trace_id, g.span_id, g.started_at,"
            " g.answer, g.contexts, ?, ? FROM _traffic_generations g"
            " WHERE g.answer IS NOT NULL"
            " AND (g.trace_id, g.span_id) NOT IN"
            "  (SELECT (s.trace_id, s.span_id) FROM traffic_generations s"
            "   WHERE s.trace_id IN (SELECT trace_id FROM _traffic_generations))"
            " QUALIFY row_number() OVER (PARTITION BY g.trace_id, g.span_id) = 1",
            [source, now],
        )
        low, high = min(moments) - _GENERATION_WINDOW, max(moments)
        con.execute(
            "UPDATE traffic_records r SET answer = c.answer,"
            " contexts = coalesce(c.contexts, r.contexts)"
            " FROM (SELECT query_id, chosen.answer AS answer, chosen.contexts AS contexts FROM ("
            "  SELECT r2.query_id,"
            "   arg_min({'answer': g.answer, 'contexts': g.contexts}, g.started_at) AS chosen"
            "  FROM traffic_records r2 JOIN traffic_generations g ON g.trace_id = r2.trace_id"
            "   AND g.started_at >= r2.ts AND g.started_at < r2.ts + ?"
            "  WHERE r2.answer IS NULL AND r2.ts >= ? AND r2.ts <= ?"
            "   AND r2.trace_id IN (SELECT trace_id FROM _traffic_traces)"
            "  GROUP BY r2.query_id)) c"
            " WHERE r.query_id = c.query_id AND r.ts >= ? AND r.ts <= ?",
            [_GENERATION_WINDOW, low, high, low, high],
        )


def record_count(store: Store) -> int:
    """How many traffic records the store holds."""
    return int(store.fetch("SELECT count(*) FROM traffic_records")[0][0])


# -- windows and sampling -----------------------------------------------------------------


def _distinct_queries_sql(
    start: datetime, end: datetime, stratification: Stratification, dedup: bool
) -> tuple[str, list[object]]:
    """``distinct_queries(dedup_key, n_duplicates, first)`` of ``[start, end)``; ``first``
    is the earliest record of each group (a struct of its query_id and stratum)."""
    builder = STRATUM_KINDS.get(stratification.kind)
    if builder is None:
        raise ConfigError(
            f"unknown stratification '{stratification.kind}'; use one of: "
            f"{', '.join(STRATUM_KINDS)}"
        )
    stratum_sql, stratum_params = builder(stratification)
    key_sql = "query_key" if dedup else "md5_number_upper(query_id)"
    sql = (
        "WITH windowed AS ("
        f" SELECT query_id, ts, {stratum_sql} AS stratum, {key_sql} AS dedup_key"
        " FROM traffic_records WHERE ts >= ? AND ts < ? AND text IS NOT NULL"
        "), distinct_queries AS ("
        " SELECT dedup_key, count(*) AS n_duplicates,"
        "  arg_min({'query_id': query_id, 'stratum': stratum},"
        "   {'ts': ts, 'query_id': query_id}) AS first"
        " FROM windowed GROUP BY dedup_key"
        ")"
    )
    return sql, [*stratum_params, start, end]


def stratum_sizes(
    store: Store,
    *,
    start: datetime,
    end: datetime,
    stratification: Stratification,
    dedup: bool = True,
) -> list[tuple[str | None, int, int]]:
    """``(stratum, distinct queries, records)`` of every stratum in ``[start, end)``."""
    cte, params = _distinct_queries_sql(start, end, stratification, dedup)
    rows = store.fetch(
        f"{cte} SELECT first.stratum AS stratum, count(*), sum(n_duplicates)"
        " FROM distinct_queries GROUP BY stratum ORDER BY stratum NULLS FIRST",
        params,
    )
    return [(row[0], int(row[1]), int(row[2])) for row in rows]


def _draw_sql(
    *,
    start: datetime,
    end: datetime,
    stratification: Stratification,
    dedup: bool,
    seed: int,
    quotas: Mapping[str | None, int],
) -> tuple[str, list[object]]:
    # Each stratum keeps its ``quota`` lowest priorities with a top-n aggregate (a heap per
    # stratum) rather than ranking every distinct query; only the chosen few are joined back
    # for their text.
    cte, params = _distinct_queries_sql(start, end, stratification, dedup)
    strata = list(quotas)
    sql = (
        f"{cte}, quotas AS ("
        " SELECT unnest(?::VARCHAR[]) AS stratum, unnest(?::INTEGER[]) AS quota"
        "), ranked AS ("
        " SELECT first.query_id AS query_id, first.stratum AS stratum, n_duplicates,"
        "  md5_number(? || ':' || CAST(dedup_key AS VARCHAR)) AS priority"
        " FROM distinct_queries"
        "), lowest AS ("
        " SELECT stratum, min_by({'query_id': query_id, 'n_duplicates': n_duplicates,"
        "  'priority': priority}, priority, ?) AS picks"
        " FROM ranked GROUP BY stratum"
        "), picked AS ("
        " SELECT l.stratum, unnest(list_slice(l.picks, 1, q.quota)) AS pick"
        " FROM lowest l JOIN quotas q ON l.stratum IS NOT DISTINCT FROM q.stratum"
        ") SELECT p.pick.query_id AS query_id, r.text, r.tenant, p.stratum,"
        " p.pick.n_duplicates AS n_duplicates, p.pick.priority AS priority"
        " FROM picked p JOIN traffic_records r ON r.query_id = p.pick.query_id"
    )
    most = max([1, *quotas.values()])
    return sql, [*params, strata, [quotas[s] for s in strata], str(seed), most]


def draw_window_queries(
    store: Store, *, start: datetime, end: datetime, seed: int, limit: int, dedup: bool = True
) -> pd.DataFrame:
    """A seeded uniform sample of up to ``limit`` distinct queries of ``[start, end)``.

    Columns: query_id, text, tenant, stratum, n_duplicates; in priority order.
    """
    sql, params = _draw_sql(
        start=start,
        end=end,
        stratification=Stratification(),
        dedup=dedup,
        seed=seed,
        quotas={None: limit},
    )
    return store.fetch_frame(
        f"SELECT query_id, text, tenant, stratum, n_duplicates FROM ({sql}) ORDER BY priority",
        params,
    )


def save_sample(
    store: Store,
    *,
    window_label: str,
    start: datetime,
    end: datetime,
    stratification: Stratification,
    n_requested: int,
    min_per_stratum: int,
    dedup: bool,
    seed: int,
    n_records: int,
    n_distinct: int,
    quotas: Mapping[str | None, int],
) -> StoredSample:
    """Draw the sample with these ``quotas`` per stratum and store it with how it was drawn."""
    created_at = utc_now()
    sample_id = f"{created_at:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
    draw, params = _draw_sql(
        start=start,
        end=end,
        stratification=stratification,
        dedup=dedup,
        seed=seed,
        quotas=quotas,
    )
    stratify_by = None if stratification.kind == "none" else str(stratification)
    quota_json = json.dumps({("" if s is None else s): q for s, q in quotas.items()})
    try:
        with store.transaction() as con:
            con.execute(
                "INSERT INTO traffic_sample_queries SELECT ?,"
                " row_number() OVER (ORDER BY priority) - 1,"
                f" query_id, text, tenant, stratum, n_duplicates FROM ({draw})",
                [sample_id, *params],
            )
            sampled = con.execute(
                "SELECT count(*) FROM traffic_sample_queries WHERE sample_id = ?", [sample_id]
            ).fetchall()[0][0]
            con.execute(
                "INSERT INTO traffic_samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    sample_id,
                    window_label,
                    start,
                    end,
                    stratify_by,
                    n_requested,
                    min_per_stratum,
                    dedup,
                    seed,
                    n_records,
                    n_distinct,
                    sampled,
                    quota_json,
                    created_at,
                ],
            )
    except duckdb.Error as error:
        raise StoreError(f"cannot store the traffic sample of {window_label}: {error}") from error
    return load_sample(store, sample_id)


_SAMPLE_COLUMNS = (
    "sample_id, window_label, window_start, window_end, stratify_by, n_requested,"
    " min_per_stratum, dedup, seed, n_records, n_distinct, n_sampled, quotas, created_at"
)


def _sample(row: tuple[Any, ...]) -> StoredSample:
    values = list(row)
    values[12] = json.loads(values[12])
    return StoredSample(*values)


def load_sample(store: Store, sample_id: str) -> StoredSample:
    """The stored sample ``sample_id`` (a unique prefix is enough)."""
    rows = store.fetch(
        f"SELECT {_SAMPLE_COLUMNS} FROM traffic_samples WHERE starts_with(sample_id, ?)"
        " ORDER BY sample_id",
        [sample_id],
    )
    exact = [row for row in rows if row[0] == sample_id]
    if not rows or (len(rows) > 1 and not exact):
        problem = "no traffic sample" if not rows else "an ambiguous traffic sample prefix"
        raise NotFoundError(
            f"{problem} {sample_id!r} in {store.path}; list samples with "
            "`evalkit traffic windows` or draw one with `evalkit traffic sample --window ...`"
        )
    return _sample(exact[0] if exact else rows[0])


def list_samples(
    store: Store, *, window_label: str | None = None, limit: int = 50
) -> list[StoredSample]:
    """Stored samples, newest first (optionally of one window)."""
    rows = store.fetch(
        f"SELECT {_SAMPLE_COLUMNS} FROM traffic_samples WHERE ? IS NULL OR window_label = ?"
        " ORDER BY created_at DESC, sample_id DESC LIMIT ?",
        [window_label, window_label, limit],
    )
    return [_sample(row) for row in rows]


def load_sample_queries(store: Store, sample_id: str) -> pd.DataFrame:
    """The queries of a sample, in sample order: query_id, text, tenant, stratum, n_duplicates."""
    return store.fetch_frame(
        "SELECT query_id, text, tenant, stratum, n_duplicates FROM traffic_sample_queries"
        " WHERE sample_id = ? ORDER BY ordinal",
        [sample_id],
    )


def logged_results(store: Store, query_ids: Sequence[str]) -> dict[str, list[str] | None]:
    """The ranked document ids production logged for each of these queries (None: none)."""
    rows = store.fetch(
        "SELECT query_id, logged_doc_ids FROM traffic_records"
        " WHERE query_id IN (SELECT unnest(?::VARCHAR[]))",
        [list(query_ids)],
    )
    return {str(query_id): None if doc_ids is None else list(doc_ids) for query_id, doc_ids in rows}


@dataclass(frozen=True, slots=True)
class LoggedAnswer:
    """The answer production generated for one logged query, and the contexts it was given."""

    query_id: str
    text: str
    answer: str
    contexts: tuple[str, ...]


def logged_answers(store: Store, query_ids: Sequence[str]) -> list[LoggedAnswer]:
    """The logged answers of these queries, in the order given (queries without one are
    left out; a logged answer without contexts has empty ``contexts``)."""
    rows = store.fetch(
        "SELECT query_id, text, answer, contexts FROM traffic_records"
        " WHERE answer IS NOT NULL AND query_id IN (SELECT unnest(?::VARCHAR[]))",
        [list(query_ids)],
    )
    found = {
        str(query_id): LoggedAnswer(str(query_id), str(text), str(answer), tuple(contexts or ()))
        for query_id, text, answer, contexts in rows
    }
    return [found[query_id] for query_id in dict.fromkeys(query_ids) if query_id in found]


def logged_latency_quantiles(
    store: Store, *, start: datetime, end: datetime
) -> tuple[float | None, float | None, float | None]:
    """p50, p95 and p99 of the production latency logged in ``[start, end)``."""
    row = store.fetch(
        "SELECT quantile_cont(latency_ms, [0.5, 0.95, 0.99]) FROM traffic_records"
        " WHERE ts >= ? AND ts < ? AND latency_ms IS NOT NULL",
        [start, end],
    )[0][0]
    if row is None:
        return None, None, None
    return float(row[0]), float(row[1]), float(row[2])


def logged_top1_scores(store: Store, *, start: datetime, end: datetime) -> list[float]:
    """The top-1 score production logged for each record of ``[start, end)`` that logged
    one, with or without query text (the input of a logged-score drift test)."""
    rows = store.fetch(
        "SELECT logged_scores[1] FROM traffic_records WHERE ts >= ? AND ts < ?"
        " AND len(logged_scores) > 0 AND logged_scores[1] IS NOT NULL ORDER BY ts, query_id",
        [start, end],
    )
    return [float(row[0]) for row in rows]


def traffic_volume(
    store: Store, *, granularity: str, limit: int = 30
) -> list[tuple[datetime, int, int, int, int]]:
    """``(window start, records, tenants, records with logged results, records without
    query text)`` per window, newest first; ``granularity`` is hour, day, week or month."""
    if granularity not in {"hour", "day", "week", "month"}:
        raise ConfigError(f"unknown granularity '{granularity}'; use hour, day, week or month")
    rows = store.fetch(
        "SELECT date_trunc(?, ts) AS start, count(*), count(DISTINCT tenant),"
        " count(logged_doc_ids), count(*) - count(text) FROM traffic_records"
        " GROUP BY start ORDER BY start DESC LIMIT ?",
        [granularity, limit],
    )
    return [(row[0], int(row[1]), int(row[2]), int(row[3]), int(row[4])) for row in rows]


# -- replays and window summaries ---------------------------------------------------------


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
    placeholders = ", ".join("?" for _ in _SUMMARY_COLUMNS)
    try:
        with store.transaction() as con:
            store.insert_frame("traffic_replay_queries", frame)
            con.execute(
                f"INSERT INTO traffic_window_summaries ({', '.join(_SUMMARY_COLUMNS)})"
                f" VALUES ({placeholders})",
                [getattr(summary, name) for name in _SUMMARY_COLUMNS],
            )
            if embedding_table.num_rows:
                with registered(con, "_traffic_embeddings", embedding_table):
                    con.execute(
                        "INSERT INTO traffic_window_embeddings SELECT ?, ?, ordinal, query_id,"
                        " embedding FROM _traffic_embeddings",
                        [summary.run_id, summary.window_label],
                    )
    except duckdb.Error as error:
        raise StoreError(
            f"cannot store the traffic replay {summary.run_id} of {summary.window_label}: {error}"
        ) from error


def _summaries(store: Store, where: str, params: Sequence[object]) -> list[StoredWindowSummary]:
    rows = store.fetch(
        f"SELECT {', '.join(_SUMMARY_COLUMNS)} FROM traffic_window_summaries {where}", params
    )
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
