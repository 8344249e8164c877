"""Retention: which finished runs may lose their per-query rows, and pruning them; and
deleting production traffic older than a cutoff.

Aggregates and run rows stay; table ``pruned_runs`` records every pruned run (created by
migration 6 together with the alert tables). Traffic pruning deletes the logged queries
themselves (their texts, answers and contexts), the copies samples took of them and the
generation spans waiting for them; window summaries and samples' own rows stay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import duckdb

from evalkit.clock import utc_now
from evalkit.errors import ConfigError, StoreError
from evalkit.store.runs import RETRIEVER_ID_SQL

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = [
    "TrafficPruned",
    "oldest_kept_run",
    "prune_run_details",
    "prune_traffic",
    "pruned_at",
    "require_per_query_rows",
    "retention_candidates",
]

_PER_QUERY_TABLES = (
    "run_results",
    "run_queries",
    "query_metrics",
    "traffic_replay_queries",
    "traffic_window_embeddings",
    "answer_items",  # the texts of the run's scored answers; their scores stay
    "judged_query_values",  # each query's labelled figures; the window's figures stay
)


def retention_candidates(
    store: Store, *, older_than: datetime, keep_latest: int, keep: Sequence[str] = ()
) -> list[str]:
    """Finished runs started before ``older_than`` whose per-query rows may go: never runs
    still ``running``, the ``keep_latest`` newest of each (kind, goldset, label), a retriever's
    first complete run on a goldset (the drift baseline), runs in ``keep``, or runs pruned
    already."""
    rows = store.fetch(
        "SELECT run_id FROM runs WHERE status <> 'running'"
        " QUALIFY started_at < ?"
        " AND row_number() OVER (PARTITION BY kind, goldset_name, coalesce(label, '')"
        "   ORDER BY started_at DESC, run_id DESC) > ?"
        " AND NOT (status = 'complete' AND goldset_name IS NOT NULL AND row_number() OVER"
        f"   (PARTITION BY goldset_name, status, {RETRIEVER_ID_SQL}"
        "    ORDER BY started_at, run_id) = 1)"
        " AND run_id NOT IN (SELECT unnest(?::VARCHAR[]))"
        " AND run_id NOT IN (SELECT run_id FROM pruned_runs)"
        " ORDER BY run_id",
        [older_than, keep_latest, list(keep)],
    )
    return [str(row[0]) for row in rows]


_PRUNED_PER_TRANSACTION = 100
"""Runs pruned in one transaction: each DELETE scans its table once for the whole batch,
instead of once per run, and a crash loses at most one batch's work, never half a run's."""


def prune_run_details(store: Store, run_ids: Sequence[str]) -> int:
    """Delete the per-query rows of ``run_ids`` (aggregates and run rows stay), a batch of
    runs per transaction. Returns the rows deleted."""
    existing = store.table_names()
    tables = [name for name in _PER_QUERY_TABLES if name in existing]
    total = 0
    for start in range(0, len(run_ids), _PRUNED_PER_TRANSACTION):
        batch = list(run_ids[start : start + _PRUNED_PER_TRANSACTION])
        deleted = dict.fromkeys(batch, 0)
        try:
            with store.transaction() as con:
                for table in tables:
                    counted = con.execute(
                        f"SELECT run_id, count(*) FROM {table}"
                        " WHERE run_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY run_id",
                        [batch],
                    ).fetchall()
                    for run_id, rows in counted:
                        deleted[str(run_id)] += int(rows)
                    con.execute(
                        f"DELETE FROM {table} WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
                        [batch],
                    )
                con.execute(
                    "INSERT INTO pruned_runs SELECT unnest(?::VARCHAR[]), ?,"
                    " unnest(?::BIGINT[]) ON CONFLICT DO NOTHING",
                    [batch, utc_now(), [deleted[run_id] for run_id in batch]],
                )
        except duckdb.Error as error:
            runs = batch[0] if len(batch) == 1 else f"{batch[0]} .. {batch[-1]}"
            raise StoreError(f"cannot prune run {runs} in {store.path}: {error}") from error
        total += sum(deleted.values())
    return total


def pruned_at(store: Store, run_ids: Sequence[str]) -> dict[str, datetime]:
    """When retention deleted the per-query rows of those of ``run_ids`` it pruned."""
    if not run_ids:
        return {}
    rows = store.fetch(
        "SELECT run_id, pruned_at FROM pruned_runs WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
        [list(run_ids)],
    )
    return {str(run_id): when for run_id, when in rows}


def require_per_query_rows(store: Store, run_id: str, *, needed: str) -> None:
    """Raise ConfigError when retention deleted ``run_id``'s per-query rows, saying when,
    that its aggregates stay, and ``needed``: why the caller needs them and what to do."""
    pruned = pruned_at(store, [run_id]).get(run_id)
    if pruned is not None:
        raise ConfigError(
            f"run {run_id} has no per-query results any more: retention deleted them at "
            f"{pruned:%Y-%m-%d %H:%M} UTC (its aggregates stay, `evalkit runs show`){needed}"
        )


def oldest_kept_run(store: Store, *, goldset: str, retriever_id: str, measure: str) -> str | None:
    """The oldest complete run of ``retriever_id`` (``RETRIEVER_ID_SQL``) on ``goldset`` that
    stored ``measure`` and still has its per-query results: the baseline a series is
    compared with by default, however many runs came after it."""
    rows = store.fetch(
        "SELECT run_id FROM runs WHERE goldset_name = ? AND status = 'complete'"
        f" AND {RETRIEVER_ID_SQL} = ?"
        " AND run_id IN (SELECT run_id FROM run_aggregates WHERE measure = ?)"
        " AND run_id NOT IN (SELECT run_id FROM pruned_runs)"
        " ORDER BY started_at, run_id LIMIT 1",
        [goldset, retriever_id, measure],
    )
    return str(rows[0][0]) if rows else None


@dataclass(frozen=True, slots=True)
class TrafficPruned:
    """What ``prune_traffic`` deleted: logged queries, sampled copies, generation spans."""

    records: int
    sample_queries: int
    generations: int


def prune_traffic(store: Store, *, older_than: datetime) -> TrafficPruned:
    """Delete the production traffic logged before ``older_than``, in one transaction: the
    records asked before it, the query copies of samples whose window ended by then and the
    generation spans started before it. Samples' rows, window summaries and runs stay."""
    statements = (
        ("records", "traffic_records WHERE ts < ?"),
        (
            "sample_queries",
            "traffic_sample_queries WHERE sample_id IN"
            " (SELECT sample_id FROM traffic_samples WHERE window_end <= ?)",
        ),
        ("generations", "traffic_generations WHERE started_at < ?"),
    )
    counts: dict[str, int] = {}
    with store.writing(f"cannot prune traffic in {store.path}") as con:
        for name, where in statements:
            counts[name] = int(
                con.execute(f"SELECT count(*) FROM {where}", [older_than]).fetchall()[0][0]
            )
            con.execute(f"DELETE FROM {where}", [older_than])
    return TrafficPruned(**counts)
