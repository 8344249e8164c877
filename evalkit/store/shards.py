"""Runs whose results arrive as Parquet shards (the Ray engine): summarised, completed with
the queries no shard holds, and loaded into the run tables together with the run's final
status in one transaction.

DuckDB reads the shards itself (``read_parquet``), within the store's ``memory_limit``;
which queries the shards hold is told from their ``position`` column (their row in the
numbered query table) with one byte per query, never a table of query ids, so the writer's
memory stays flat in the number of queries. Every loaded shard is recorded in
``run_shards`` (migration 11);
a shard is never loaded twice, and a run that is no longer ``running`` is never loaded
into: a run is either finished with all its shards or holds none of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa

from evalkit.clock import utc_now
from evalkit.engines import POSITION
from evalkit.errors import StoreError
from evalkit.redaction import redact_known
from evalkit.store.runs import mark_finished

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = [
    "SCHEMA_SQL",
    "ShardSummary",
    "load_run_shards",
    "loaded_shards",
    "summarize_shards",
    "write_lost_shard",
]

SCHEMA_SQL = """
CREATE TABLE run_shards (
    run_id VARCHAR NOT NULL,
    shard VARCHAR NOT NULL,
    n_queries INTEGER NOT NULL,
    loaded_at TIMESTAMP NOT NULL,
    PRIMARY KEY (run_id, shard)
);
"""


@dataclass(frozen=True, slots=True)
class ShardSummary:
    """What a set of shards holds: distinct queries, failed and scored ones, the first
    error, and whether two shards hold the same query (a batch written twice)."""

    n_queries: int
    n_failed: int
    n_evaluated: int
    first_error: str | None
    overlapping: bool


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _files(shards: Sequence[Path]) -> list[str]:
    return [str(path) for path in shards]


def _rows_sql(overlapping: bool) -> str:
    """The shards' rows, one per query (the first shard's, by file name, when two hold it)."""
    scan = "read_parquet(?, filename = true)"
    if not overlapping:
        return scan
    return (
        f"(SELECT * FROM {scan}"
        f" QUALIFY row_number() OVER (PARTITION BY {POSITION} ORDER BY filename) = 1)"
    )


def _coverage(shards: Sequence[Path], n_queries: int = 0) -> tuple[np.ndarray[Any, Any], bool]:
    """Which positions of the query table the shards hold (one byte per query),
    and whether two shards hold the same query (a batch written twice)."""
    # Parquet's reader only on the engine's path: `evalkit run` imports this module.
    import pyarrow.parquet as pq

    held = np.zeros(n_queries, dtype=bool)
    overlapping = False
    for shard in shards:
        try:
            positions = pq.read_table(shard, columns=[POSITION]).column(0).to_numpy()
        except (OSError, pa.ArrowException) as error:
            raise StoreError(f"cannot read the shard {shard}: {error}") from error
        if not positions.size:
            continue
        if int(positions.max()) >= held.size:
            grown = np.zeros(max(int(positions.max()) + 1, 2 * held.size), dtype=bool)
            grown[: held.size] = held
            held = grown
        overlapping = overlapping or bool(held[positions].any())
        held[positions] = True
    return held, overlapping


def summarize_shards(store: Store, shards: Sequence[Path], measures: Sequence[str]) -> ShardSummary:
    """Count what ``shards`` hold, read straight from the files."""
    if not shards:
        return ShardSummary(0, 0, 0, None, overlapping=False)
    files = _files(shards)
    held, overlapping = _coverage(shards)
    scored = f"count({_quoted(measures[0])})" if measures else "0"
    n_failed, n_evaluated, first_error = store.fetch(
        f"SELECT count(error), {scored}, min(error) FROM {_rows_sql(overlapping)}", [files]
    )[0]
    return ShardSummary(
        n_queries=int(np.count_nonzero(held)),
        n_failed=int(n_failed),
        n_evaluated=int(n_evaluated),
        first_error=first_error,
        overlapping=overlapping,
    )


def write_lost_shard(
    store: Store,
    query_table: Path,
    shards: Sequence[Path],
    path: Path,
    *,
    error: str,
    measures: Sequence[str],
) -> int:
    """Write a shard to ``path`` recording every query of the numbered ``query_table``
    (``evalkit.engines.number_query_table``) that no shard of ``shards`` holds as failed with
    ``error``; how many there were (0: no file written)."""
    import pyarrow.parquet as pq

    held, _ = _coverage(shards, pq.ParquetFile(query_table).metadata.num_rows)
    lost = np.flatnonzero(~held)
    if not lost.size:
        return 0
    # The lost positions go to DuckDB as a file, however many there are.
    positions = path.with_name(path.name + ".positions")
    pq.write_table(pa.table({POSITION: pa.array(lost, pa.int64())}), positions)
    missing_sql = (
        f"SELECT * FROM read_parquet(?) WHERE {POSITION} IN"
        f" (SELECT {POSITION} FROM read_parquet(?))"
    )
    parameters: list[object] = [str(query_table), str(positions)]
    try:
        store.copy_query(
            f"SELECT {POSITION}, query_id, CAST(NULL AS DOUBLE) AS latency_ms, ? AS error,"
            " CAST(0 AS INTEGER) AS n_results, CAST(0 AS INTEGER) AS n_duplicates,"
            " CAST([] AS INTEGER[]) AS ranks, CAST([] AS VARCHAR[]) AS doc_ids,"
            " CAST([] AS DOUBLE[]) AS scores"
            + "".join(f", CAST(NULL AS DOUBLE) AS {_quoted(measure)}" for measure in measures)
            + f" FROM ({missing_sql})",
            [redact_known(error), *parameters],
            path,
            options="FORMAT parquet",
        )
    finally:
        positions.unlink(missing_ok=True)
    return int(lost.size)


def loaded_shards(store: Store, run_id: str) -> list[str]:
    """The file names of the shards loaded into run ``run_id``."""
    rows = store.fetch("SELECT shard FROM run_shards WHERE run_id = ? ORDER BY shard", [run_id])
    return [str(row[0]) for row in rows]


def load_run_shards(
    store: Store,
    run_id: str,
    shards: Sequence[Path],
    *,
    measures: Sequence[str],
    status: str,
    n_total: int,
    error: str | None = None,
    summary: ShardSummary | None = None,
) -> int:
    """Load ``shards`` into run ``run_id`` (still ``running``) and finish it with
    ``status``, all in one transaction; the number of queries loaded. ``summary``: what
    ``summarize_shards`` says of ``shards``, when the caller has it already.

    The run's aggregates are the means of its loaded per-query values, over the queries
    that were scored; ``n_total`` is the number of judged queries. Raises StoreError when
    the run is not ``running`` (finished, or marked failed by another writer meanwhile)
    or a shard was loaded into it before; nothing is written then.
    """
    summary = summary or summarize_shards(store, shards, measures)
    rows = _rows_sql(summary.overlapping)
    files = _files(shards)
    try:
        with store.transaction() as con:
            found = con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchall()
            if not found or found[0][0] != "running":
                state = found[0][0] if found else "absent"
                raise StoreError(f"run {run_id} is {state}, not running: its shards are not loaded")
            names = [path.name for path in shards]
            again = con.execute(
                "SELECT shard FROM run_shards WHERE run_id = ? AND list_contains(?, shard)",
                [run_id, names],
            ).fetchall()
            if again:
                raise StoreError(f"run {run_id}: shard {again[0][0]} was loaded before")
            if files:
                _insert_rows(con, run_id, rows, files, measures)
                con.execute(
                    "INSERT INTO run_shards (run_id, shard, n_queries, loaded_at)"
                    " SELECT ?, parse_filename(filename), count(*), ?"
                    " FROM read_parquet(?, filename = true)"
                    " GROUP BY filename",
                    [run_id, utc_now(), files],
                )
            if summary.n_evaluated:
                for measure in measures:
                    con.execute(
                        "INSERT INTO run_aggregates (run_id, measure, value, n_evaluated,"
                        " n_total) VALUES (?, ?, ?, ?, ?)",
                        [
                            run_id,
                            measure,
                            _mean(con, run_id, measure),
                            summary.n_evaluated,
                            n_total,
                        ],
                    )
            mark_finished(
                con,
                run_id,
                status=status,
                n_failed=summary.n_failed,
                n_evaluated=summary.n_evaluated,
                error=error,
            )
    except duckdb.Error as failure:
        raise StoreError(f"cannot load the shards of run {run_id}: {failure}") from failure
    return summary.n_queries


def _mean(con: duckdb.DuckDBPyConnection, run_id: str, measure: str) -> float | None:
    """The mean of one measure over the run's scored queries, summed in query-id order as
    NumPy sums a local run's values (pairwise), so both store the same bits."""
    values = con.execute(
        "SELECT value FROM query_metrics WHERE run_id = ? AND measure = ? ORDER BY query_id",
        [run_id, measure],
    ).fetchnumpy()["value"]
    return float(np.asarray(values, dtype=np.float64).mean()) if len(values) else None


def _insert_rows(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    rows: str,
    files: list[str],
    measures: Sequence[str],
) -> None:
    con.execute(
        "INSERT INTO run_queries (run_id, query_id, latency_ms, error, n_results, n_duplicates)"
        f" SELECT ?, query_id, latency_ms, error, n_results, n_duplicates FROM {rows}",
        [run_id, files],
    )
    con.execute(
        "INSERT INTO run_results (run_id, query_id, rank, doc_id, score)"
        " SELECT ?, query_id, unnest(ranks), unnest(doc_ids), unnest(scores)"
        f" FROM {rows}",
        [run_id, files],
    )
    if measures:
        columns = ", ".join(_quoted(measure) for measure in measures)
        con.execute(
            "INSERT INTO query_metrics (run_id, query_id, measure, value)"
            f" SELECT ?, query_id, measure, value FROM (UNPIVOT (SELECT query_id, {columns}"
            f" FROM {rows}) ON {columns} INTO NAME measure VALUE value)",
            [run_id, files],
        )
