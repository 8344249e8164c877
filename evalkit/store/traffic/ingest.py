"""Storing ingested production traffic: records, ingest problems and each file's ingest state.

Each file's identity and offset are written in the same transaction as the records they
cover, so a crash neither loses nor repeats a line, and a stored query id is never stored
again. A span sent again is looked for only among the records of its batch's time range (row
group statistics skip the rest), so the check costs the same in a store of any size. Each
record gets its ``query_key`` here, which sampling groups by.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from evalkit.clock import utc_now
from evalkit.errors import StoreError
from evalkit.store.views import registered

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = [
    "IngestTransaction",
    "SourceState",
    "commit_ingest_batch",
    "find_source_state",
    "ingest_settings",
    "query_key_sql",
]

_GENERATION_WINDOW = timedelta(days=1)
"""How long after a retrieval span its trace's generation span may start and still be
attached to it (bounds the records an attachment looks at)."""


@dataclass(frozen=True, slots=True)
class SourceState:
    """How far ingest has read one log file: the file with this ``device`` and ``inode`` whose
    first ``head_length`` bytes hash to ``head_hash``, read up to ``byte_offset`` (Parquet:
    its size), ``lines_read`` lines (rows) consumed."""

    device: int
    inode: int
    path: str
    kind: str
    head_hash: str
    head_length: int
    byte_offset: int
    lines_read: int


@contextmanager
def ingest_settings(store: Store, *, busy_threads: int) -> Iterator[None]:
    """The store set up for a pass of bulk ingest, and set back afterwards: DuckDB gets the
    cores ``busy_threads`` leave it (at least one) and compresses strings with ZSTD, cheaper
    than DICT_FSST's analysis (docs/traffic.md, "Speed and memory")."""
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


def query_key_sql(tenant: str, dedup_text: str) -> str:
    """SQL for the ``query_key`` of a query with text: the upper 64 bits of the MD5 of its
    tenant (``tenant``, an SQL expression, NULL for none) and its ``dedup_text`` (an SQL
    expression), the key identical queries share in ``traffic_records``."""
    return _md5_upper(f"coalesce({tenant}, '') || chr(31) || {dedup_text}")


# A record without text gets a key of its own (its query id): it is never one of a group of
# identical queries, and never sampled.
_QUERY_KEY_SQL = (
    f"CASE WHEN dedup_text IS NULL THEN {_md5_upper('chr(30) || query_id')}"
    f" ELSE {query_key_sql('tenant', 'dedup_text')} END"
)


class IngestTransaction:
    """One batch of ingested records stored atomically, added in parts (so a file is written
    while its next part is read, and still committed whole). ``add_records`` skips query ids
    stored already or repeated; ``finish`` adds the batch's problems and the file's new state;
    leaving commits, or rolls back on an exception. Store failures raise StoreError."""

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
        lowest, highest = (
            value.as_py() for value in pc.min_max(records.column("query_id")).values()
        )
        times = _span_times(records)
        try:
            # Span ids are random: they never all sort above the stored ones, and asking
            # would read every stored id.
            unseen = not times and self._above_every_stored_id(con, lowest)
            row = self._insert(
                con,
                records,
                _span_columns(records.schema.names),
                (lowest, highest, *times),
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
        """Whether every stored query id sorts below ``lowest``, so the part need not be checked
        against stored ids: ids that grow through a file are checked once per batch, by a query
        the row-group statistics answer; later parts compare with the highest id stored so far."""
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
        bounds: tuple[Any, ...],
        *,
        check_stored: bool,
        check_repeats: bool,
    ) -> tuple[Any, ...] | None:
        """Insert the part's new records; ``bounds`` are its lowest and highest query id,
        and for spans its earliest and latest time (``_span_times``)."""
        conditions = ["TRUE"]
        if check_repeats:
            # The first line of a query id repeated within the part; grouping every part
            # costs about a tenth of the insert, so only parts with repeats pay for it.
            conditions.append("b.line IN (SELECT min(line) FROM _traffic_batch GROUP BY query_id)")
        if check_stored:
            # Stored ids outside the part's range cannot match: with ids that grow through a
            # file, most row groups are skipped unread; so are, for spans, the row groups of
            # other times (a span sent again has its own time).
            during = " AND r.ts BETWEEN ? AND ?" if len(bounds) == 4 else ""
            conditions.append(
                "b.query_id NOT IN (SELECT r.query_id FROM traffic_records r"
                f" WHERE r.query_id BETWEEN ? AND ?{during}"
                " AND r.query_id IN (SELECT query_id FROM _traffic_batch))"
            )
        with registered(con, "_traffic_batch", records):
            return con.execute(
                "INSERT INTO traffic_records SELECT query_id, ts, text, tenant, tags,"
                " logged_doc_ids, logged_scores, answer, contexts, latency_ms,"
                f" {_QUERY_KEY_SQL},"
                f" ? AS source, line, ? AS ingested_at, {span_columns}"
                f" FROM _traffic_batch b WHERE {' AND '.join(conditions)}",
                [self.source, self.now, *(bounds if check_stored else ())],
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
                _add_problems(con, problems, source=source, now=now, from_file=state is not None)
            if state is not None:
                _save_source_state(con, state, now=now)
        except duckdb.Error as error:
            raise self._failure(error) from error


def _span_times(records: pa.Table) -> tuple[datetime, datetime] | tuple[()]:
    """The earliest and latest time of a part of spans (records with span ids); nothing for
    log records, whose query id says nothing of their time."""
    if "span_id" not in records.schema.names:
        return ()
    earliest, latest = (value.as_py() for value in pc.min_max(records.column("ts")).values())
    return () if earliest is None else (earliest, latest)


def _span_columns(names: Sequence[str]) -> str:
    """The trace and span id columns of a part, NULL where the part has none (log files)."""
    return ", ".join(
        f"b.{name}" if name in names else f"CAST(NULL AS VARCHAR) AS {name}"
        for name in ("trace_id", "span_id")
    )


def _add_problems(
    con: duckdb.DuckDBPyConnection,
    problems: Sequence[tuple[int | None, str]],
    *,
    source: str,
    now: datetime,
    from_file: bool,
) -> None:
    """Store a batch's ``(line, message)`` problems; a batch from no file skips the ones
    already stored with the same source, line and message."""
    frame = pa.table(
        {
            "line": pa.array([line for line, _ in problems], pa.int64()),
            "message": pa.array([message for _, message in problems], pa.string()),
        }
    )
    # A batch from no file is made idempotent by its ids, and its problems by their
    # messages, which name the request: committed again, it adds nothing.
    known = (
        ""
        if from_file
        else " b WHERE NOT EXISTS (SELECT 1 FROM traffic_ingest_problems p"
        " WHERE p.source = ? AND p.message = b.message"
        " AND p.line IS NOT DISTINCT FROM b.line)"
    )
    with registered(con, "_traffic_problems", frame):
        con.execute(
            "INSERT INTO traffic_ingest_problems SELECT ?, ?, line, message"
            f" FROM _traffic_problems{known}",
            [now, source] if from_file else [now, source, source],
        )


def _save_source_state(
    con: duckdb.DuckDBPyConnection, state: SourceState, *, now: datetime
) -> None:
    """Record how far ingest has read the file ``state`` describes."""
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


def commit_ingest_batch(
    store: Store,
    *,
    records: pa.Table,
    source: str,
    problems: Sequence[tuple[int | None, str]],
    state: SourceState | None,
    generations: pa.Table | None = None,
) -> int:
    """Store one batch atomically: new records, its problems and the file's new state; returns
    how many records were stored. Query ids stored already or repeated are skipped; with
    ``state`` None (spans over HTTP) so are problems stored already, so a batch committed
    twice adds nothing. ``generations`` (trace_id, span_id, started_at, answer, contexts) give
    each record without an answer that of its trace's first generation span at or after it
    (within a day)."""
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
