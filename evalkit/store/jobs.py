"""The scheduler's job runs: every run of a scheduled or manual job, stored ``running``
first, then ``succeeded``, ``partial``, ``failed`` or ``interrupted``.

Table ``job_runs`` (created by migration 6 together with the alert tables).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb

from evalkit.clock import utc_now
from evalkit.errors import StoreError
from evalkit.records.jsonready import json_ready
from evalkit.store.access import process_alive
from evalkit.store.columns import json_text, json_value, masked, record_of

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = [
    "JOB_STATUSES",
    "StoredJobRun",
    "add_job_run_run",
    "finish_job_run",
    "get_job_run",
    "interrupt_job_runs",
    "interrupt_stopped_job_runs",
    "last_scheduled_times",
    "latest_job_runs",
    "list_job_runs",
    "new_job_run_id",
    "record_job_run",
    "running_job_runs",
    "start_job_run",
]

JOB_STATUSES = ("running", "succeeded", "partial", "failed", "interrupted")


def new_job_run_id(started_at: datetime) -> str:
    """A new job run id, for a run that is shown before it is recorded."""
    return f"{started_at:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class StoredJobRun:
    """One run of a job: when, why (``trigger``), how it ended, and the runs it recorded
    (``run_ids``: each from the moment its row was written, whatever became of it)."""

    job_run_id: str
    job: str
    kind: str
    trigger: str
    status: str
    scheduled_for: datetime | None
    started_at: datetime
    finished_at: datetime | None
    pid: int | None
    host: str | None
    run_ids: tuple[str, ...]
    summary: Mapping[str, Any]
    error: str | None

    @property
    def seconds(self) -> float | None:
        """How long it ran, when it has finished."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**json_ready(self), "seconds": self.seconds}


_JOB_COLUMNS = (
    "job_run_id, job, kind, trigger, status, scheduled_for, started_at, finished_at, pid,"
    " host, run_ids, summary, error"
)


def _job_run(row: Sequence[Any]) -> StoredJobRun:
    return record_of(
        StoredJobRun, _JOB_COLUMNS, row, run_ids=lambda ids: tuple(ids or ()), summary=json_value
    )


def start_job_run(
    store: Store,
    *,
    job: str,
    kind: str,
    trigger: str,
    scheduled_for: datetime | None,
    pid: int,
    host: str,
) -> StoredJobRun:
    """Record a job run as ``running`` (committed before the job's work starts)."""
    started = utc_now()
    job_run_id = new_job_run_id(started)
    store.execute(
        f"INSERT INTO job_runs ({_JOB_COLUMNS}) VALUES (?, ?, ?, ?, 'running', ?, ?, NULL, ?,"
        " ?, [], NULL, NULL)",
        [job_run_id, job, kind, trigger, scheduled_for, started, pid, host],
    )
    return get_job_run(store, job_run_id)


def add_job_run_run(con: duckdb.DuckDBPyConnection, job_run_id: str, run_id: str) -> None:
    """Add run ``run_id`` to the runs of job run ``job_run_id``, on ``con`` (in the
    transaction that writes the run's row, ``evalkit.store.runs.create_run``)."""
    con.execute(
        "UPDATE job_runs SET run_ids = list_append(run_ids, ?)"
        " WHERE job_run_id = ? AND NOT list_contains(run_ids, ?)",
        [run_id, job_run_id, run_id],
    )


def finish_job_run(
    store: Store,
    job_run_id: str,
    *,
    status: str,
    run_ids: Sequence[str] = (),
    summary: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> StoredJobRun:
    """Give a running job run its final status, the runs it stored and a summary.

    ``run_ids`` are added to the runs the job run already lists (each run it recorded, as
    its row was written), which it keeps: a run that failed the job stays listed."""
    if status not in JOB_STATUSES or status == "running":
        raise StoreError(f"cannot finish job run {job_run_id} with status {status!r}")
    recorded = get_job_run(store, job_run_id).run_ids
    run_ids = [*recorded, *(run_id for run_id in run_ids if run_id not in recorded)]
    store.execute(
        "UPDATE job_runs SET status = ?, finished_at = ?, run_ids = ?, summary = ?, error = ?"
        " WHERE job_run_id = ?",
        [
            status,
            utc_now(),
            list(run_ids),
            json_text(dict(summary or {})),
            masked(error),
            job_run_id,
        ],
    )
    return get_job_run(store, job_run_id)


def record_job_run(
    store: Store,
    *,
    job: str,
    kind: str,
    trigger: str,
    status: str,
    started_at: datetime,
    finished_at: datetime,
    pid: int,
    host: str,
    error: str | None,
    scheduled_for: datetime | None = None,
    job_run_id: str | None = None,
) -> StoredJobRun:
    """Record a job run that already ended without reaching the store (e.g. it was busy),
    under ``job_run_id`` when it was already given one (``new_job_run_id``)."""
    job_run_id = job_run_id or new_job_run_id(started_at)
    store.execute(
        f"INSERT INTO job_runs ({_JOB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, [], NULL, ?)",
        [
            job_run_id,
            job,
            kind,
            trigger,
            status,
            scheduled_for,
            started_at,
            finished_at,
            pid,
            host,
            masked(error),
        ],
    )
    return get_job_run(store, job_run_id)


def get_job_run(store: Store, job_run_id: str) -> StoredJobRun:
    """One job run (StoreError when there is none)."""
    rows = store.fetch(f"SELECT {_JOB_COLUMNS} FROM job_runs WHERE job_run_id = ?", [job_run_id])
    if not rows:
        raise StoreError(f"no job run {job_run_id!r} in {store.path}")
    return _job_run(rows[0])


def list_job_runs(
    store: Store, *, job: str | None = None, status: str | None = None, limit: int = 50
) -> list[StoredJobRun]:
    """Job runs, newest first."""
    rows = store.fetch(
        f"SELECT {_JOB_COLUMNS} FROM job_runs WHERE (? IS NULL OR job = ?)"
        " AND (? IS NULL OR status = ?) ORDER BY started_at DESC, job_run_id DESC LIMIT ?",
        [job, job, status, status, limit],
    )
    return [_job_run(row) for row in rows]


def latest_job_runs(store: Store, *, ended: bool = False) -> dict[str, StoredJobRun]:
    """The newest run of every job that ever ran, by job name; with ``ended``, the newest
    that is no longer ``running``."""
    rows = store.fetch(
        f"SELECT {_JOB_COLUMNS} FROM job_runs"
        + (" WHERE status <> 'running'" if ended else "")
        + " QUALIFY row_number() OVER (PARTITION BY job ORDER BY started_at DESC, job_run_id DESC)"
        " = 1"
    )
    return {str(row[1]): _job_run(row) for row in rows}


def last_scheduled_times(store: Store) -> dict[str, datetime]:
    """When each job's newest scheduled run was due (naive UTC), by job name; a run
    recorded without ``scheduled_for`` (before it was recorded) counts by its start."""
    rows = store.fetch(
        "SELECT job, max(coalesce(scheduled_for, started_at)) FROM job_runs"
        " WHERE trigger = 'schedule' GROUP BY job"
    )
    return {str(row[0]): row[1] for row in rows if row[1] is not None}


def running_job_runs(store: Store) -> list[StoredJobRun]:
    """Job runs still marked ``running``, oldest first."""
    rows = store.fetch(
        f"SELECT {_JOB_COLUMNS} FROM job_runs WHERE status = 'running' ORDER BY started_at"
    )
    return [_job_run(row) for row in rows]


def interrupt_job_runs(store: Store, job_run_ids: Sequence[str], *, note: str) -> None:
    """Mark job runs whose process stopped before finishing them ``interrupted``; each
    keeps the runs it lists (every run it recorded, whether still ``running``, failed
    since by another writer, or finished)."""
    if not job_run_ids:
        return
    store.execute(
        "UPDATE job_runs SET status = 'interrupted', finished_at = ?, error = ?"
        " WHERE status = 'running' AND job_run_id IN (SELECT unnest(?::VARCHAR[]))",
        [utc_now(), note, list(job_run_ids)],
    )


def interrupt_stopped_job_runs(
    store: Store, *, note: str, this_pid_stale: bool = False
) -> list[StoredJobRun]:
    """Mark ``interrupted`` (with ``note``; each keeps the runs it recorded) the job runs
    still ``running`` whose process on this host has stopped; returns them as they were
    found. With ``this_pid_stale`` (a service starting) those of this process's pid are
    taken as left by an earlier process that had it."""
    orphans = [
        run
        for run in running_job_runs(store)
        if not process_alive(run.pid, run.host) or (this_pid_stale and run.pid == os.getpid())
    ]
    interrupt_job_runs(store, [run.job_run_id for run in orphans], note=note)
    return orphans
