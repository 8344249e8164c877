"""Runs whose results arrive as Parquet shards (the Ray engine): summarised, completed with
the queries no shard holds, and loaded into the run tables together with the run's final
status in one transaction.

DuckDB reads the shards itself within the store's ``memory_limit``, and which queries they
hold is told with one byte per query, so the writer's memory stays flat in the number of
queries. Loaded shards are recorded in ``run_shards``: a shard is never loaded twice and a
run is either finished with all its shards or holds none of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa

from evalkit.answers.context import CONTEXT_METRICS
from evalkit.clock import utc_now
from evalkit.engines import COUNTS_KEY, JUDGED_SCHEMA, POSITION, SHARD_SUFFIX, answer_shard
from evalkit.errors import StoreError
from evalkit.redaction import redact_known
from evalkit.store.columns import json_text
from evalkit.store.runs import RunRecorder, mark_finished

if TYPE_CHECKING:
    from evalkit.engines import EngineReport
    from evalkit.store.store import Store

__all__ = [
    "ShardAnswers",
    "ShardSummary",
    "load_engine_report",
    "load_run_shards",
    "loaded_shards",
    "summarize_shards",
    "write_judge_cache_snapshot",
    "write_lost_shard",
]


@dataclass(frozen=True, slots=True)
class ShardSummary:
    """What a set of shards holds: distinct queries, failed and scored ones, the first
    error, and whether two shards hold the same query (a batch written twice)."""

    n_queries: int
    n_failed: int
    n_evaluated: int
    first_error: str | None
    overlapping: bool


@dataclass(frozen=True, slots=True)
class ShardAnswers:
    """The answer scoring a run's answer shards are loaded as: its id, when scoring started,
    the judge settings stored with it, and whether the judge outputs the actors obtained go
    to the store's ``judge_cache`` table (False: the judge's cache is a file of its own)."""

    scoring_id: str
    started_at: datetime
    settings: Mapping[str, Any]
    cache_in_store: bool = True


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
    answers: ShardAnswers | None = None,
) -> int:
    """Load ``shards`` into run ``run_id`` (still ``running``) and finish it with ``status``,
    in one transaction; the number of queries loaded. Aggregates are means over the scored
    queries, ``n_total`` the number of judged queries, ``summary`` ``summarize_shards``'s when
    the caller has it; ``answers`` loads the existing answer shards as one scoring. Raises
    StoreError, writing nothing, when the run is not ``running`` or a shard was loaded before."""
    summary = summary or summarize_shards(store, shards, measures)
    rows = _rows_sql(summary.overlapping)
    files = _files(shards)
    with store.writing(f"cannot load the shards of run {run_id}") as con:
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
        if answers is not None:
            _insert_answers(con, run_id, shards, answers)
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
    return summary.n_queries


def load_engine_report(
    recording: RunRecorder,
    report: EngineReport,
    *,
    measures: Sequence[str],
    n_total: int,
    answers: ShardAnswers | None = None,
) -> None:
    """Finish the run ``recording`` records from the shards an engine left
    (``report.shard_dir``), loaded with its final row in one transaction
    (``load_run_shards``); the queries of ``report.query_table`` no shard holds are stored
    failed with the reason (the engine stopped, or lost their batch)."""
    if report.shard_dir is None or report.query_table is None:
        raise StoreError(f"the {report.engine} engine left no shards to load")
    reason = (
        f"lost: the Ray engine stopped before this query's batch was stored ({report.stopped})"
        if report.stopped is not None
        else "lost: no shard of the Ray engine holds this query"
    )
    store = recording.store
    shards = sorted(report.shard_dir.glob(f"*{SHARD_SUFFIX}"))
    lost = report.shard_dir / f"lost{SHARD_SUFFIX}"
    if write_lost_shard(store, report.query_table, shards, lost, error=reason, measures=measures):
        shards.append(lost)
    summary = summarize_shards(store, shards, measures)
    recording.finish_loaded(
        lambda status, note: load_run_shards(
            store,
            recording.run_id,
            shards,
            measures=measures,
            status=status,
            n_total=n_total,
            error=note,
            summary=summary,
            answers=answers,
        ),
        n_failed=summary.n_failed,
        n_results=summary.n_queries,
        first_error=summary.first_error,
    )


def write_judge_cache_snapshot(source: Store, model: str | None, path: Path) -> Path:
    """The judge cache's outputs of ``model`` in ``source`` written to the Parquet file
    ``path`` (``evalkit.engines.JUDGED_SCHEMA``) for the Ray engine's actors, which cannot
    open the store: it has one writer."""
    import pyarrow.parquet as pq

    columns = ", ".join(JUDGED_SCHEMA.names)
    path.parent.mkdir(parents=True, exist_ok=True)
    source.copy_query(
        f"SELECT {columns} FROM judge_cache WHERE judge_model = ?",
        [model],
        path,
        options="FORMAT parquet",
    )
    # DuckDB's types as the actors' reader expects them, whatever the table's.
    pq.write_table(pq.read_table(path).cast(JUDGED_SCHEMA), path)
    return path


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


def _insert_answers(
    con: duckdb.DuckDBPyConnection, run_id: str, shards: Sequence[Path], answers: ShardAnswers
) -> None:
    """Load the answer shards of ``shards`` as the scoring ``answers`` of run ``run_id``."""
    import pyarrow.parquet as pq

    present = [shard for shard in shards if answer_shard(shard, "items").exists()]
    if not present:
        return
    items = [str(answer_shard(shard, "items")) for shard in present]
    scores = [str(answer_shard(shard, "scores")) for shard in present]
    judged = [str(answer_shard(shard, "judged")) for shard in present]
    judge_calls = cache_hits = 0
    for path in scores:
        try:
            metadata = pq.read_schema(path).metadata or {}
        except (OSError, pa.ArrowException) as error:
            raise StoreError(f"cannot read the answer shard {path}: {error}") from error
        calls, hits = metadata.get(COUNTS_KEY, b"0 0").split()
        judge_calls += int(calls)
        cache_hits += int(hits)
    # One row per item (and per item's metric): a query two shards hold was scored twice.
    item_rows = (
        "(SELECT * FROM read_parquet(?, filename = true)"
        " QUALIFY row_number() OVER (PARTITION BY item_id ORDER BY filename) = 1)"
    )
    score_rows = (
        "(SELECT * FROM read_parquet(?, filename = true)"
        " QUALIFY row_number() OVER (PARTITION BY item_id, metric, method ORDER BY filename) = 1)"
    )
    # A context metric is scored when some answer of the run has a reference for it, as a
    # local run decides over all its answers; each batch scored every one.
    unused = [
        str(row[0])
        for row in con.execute(
            f"SELECT metric FROM {score_rows} WHERE list_contains(?, metric) GROUP BY metric"
            " HAVING bool_and(coalesce(unmeasured_reason = 'no_reference', false))",
            [scores, list(CONTEXT_METRICS)],
        ).fetchall()
    ]
    n_records = int(con.execute(f"SELECT count(*) FROM {item_rows}", [items]).fetchall()[0][0])
    con.execute(
        "INSERT INTO answer_scorings VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?)",
        [
            answers.scoring_id,
            run_id,
            answers.started_at,
            utc_now(),
            n_records,
            judge_calls,
            cache_hits,
            json_text(dict(answers.settings)),
        ],
    )
    con.execute(
        "INSERT INTO answer_scores (scoring_id, run_id, source, item_id, metric, method,"
        " judge_model, prompt_version, value, unmeasured_reason, detail, n_repeats, spread,"
        " n_claims, n_supported) SELECT ?, ?, NULL, item_id, metric, method, judge_model,"
        " prompt_version, value, unmeasured_reason, detail, n_repeats, spread, n_claims,"
        f" n_supported FROM {score_rows} WHERE NOT list_contains(?, metric)",
        [answers.scoring_id, run_id, scores, unused],
    )
    con.execute(
        "INSERT INTO answer_items (scoring_id, run_id, item_id, question, answer, contexts,"
        " context_ids, reference) SELECT ?, ?, item_id, question, answer, contexts,"
        f" context_ids, reference FROM {item_rows}",
        [answers.scoring_id, run_id, items],
    )
    if answers.cache_in_store:
        con.execute(
            "INSERT OR IGNORE INTO judge_cache (cache_key, metric, judge_model, prompt_version,"
            " value, unmeasured_reason, n_claims, n_supported, detail, created_at)"
            " SELECT cache_key, metric, judge_model, prompt_version, value,"
            " unmeasured_reason, n_claims, n_supported, detail, ? FROM read_parquet(?)"
            " QUALIFY row_number() OVER (PARTITION BY cache_key) = 1",
            [utc_now(), judged],
        )
