"""Stored alerts, their durable outbox, and the scheduler's job runs.

Tables:

- ``alerts``: one row per notification (a condition starting to fire, escalating, or
  resolving), with the evidence it carries. Written *before* any delivery is attempted.
- ``alert_state``: one row per deduplication key: whether its condition holds now, since
  when, and what receivers were last told. Rule evaluation reads and writes it.
- ``alert_outbox``: one row per (alert, sink), written in the same transaction as the
  alert: ``pending`` until a sink accepts it (``delivered``), or ``abandoned`` after the
  configured give-up time. Undelivered rows are retried after a restart.
- ``alert_delivery_attempts``: every attempt, with its status code or error (secrets
  redacted before they get here).
- ``job_runs``: every run of a scheduled or manual job: ``running`` first, then
  ``succeeded``, ``partial``, ``failed`` or ``interrupted``.
- ``pruned_runs``: runs whose per-query rows were removed by retention (aggregates stay).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb

from evalkit.clock import utc_now
from evalkit.errors import StoreError
from evalkit.redaction import redact_known

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = [
    "ALERT_STATUSES",
    "DELIVERY_STATES",
    "JOB_STATUSES",
    "SCHEMA_SQL",
    "AlertCount",
    "DueDelivery",
    "LatestAggregate",
    "StoredAlert",
    "StoredAlertState",
    "StoredDelivery",
    "StoredJobRun",
    "alert_counts",
    "alert_deliveries",
    "due_deliveries",
    "finish_job_run",
    "get_alert",
    "get_job_run",
    "has_tables",
    "interrupt_job_runs",
    "latest_aggregates",
    "latest_job_runs",
    "list_alerts",
    "list_job_runs",
    "load_alert_states",
    "outbox_counts",
    "prune_run_details",
    "record_delivery_attempt",
    "record_job_run",
    "retention_candidates",
    "running_job_runs",
    "save_alert",
    "save_alert_states",
    "start_job_run",
]

ALERT_STATUSES = ("firing", "resolved")
DELIVERY_STATES = ("pending", "delivered", "abandoned")
JOB_STATUSES = ("running", "succeeded", "partial", "failed", "interrupted")

SCHEMA_SQL = """
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


def _new_id(moment: datetime) -> str:
    return f"{moment:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _loads(value: object) -> Any:
    return json.loads(value) if isinstance(value, str) and value else {}


def has_tables(store: Store, *names: str) -> bool:
    """Whether every named table exists in the store (areas whose migration ran)."""
    rows = store.fetch(
        "SELECT count(DISTINCT table_name) FROM duckdb_tables()"
        " WHERE table_name IN (SELECT unnest(?::VARCHAR[]))",
        [list(names)],
    )
    return int(rows[0][0]) == len(set(names))


# -- alerts and their state --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredAlertState:
    """What evaluation knows about one deduplication key.

    ``active`` is whether the rule's condition held at the last evaluation; ``since`` when
    it started holding. ``notified_status`` is what receivers were last told (``firing``,
    ``resolved`` or None for never) and ``last_fired_notice_at`` when the last *firing*
    notification was created: the cooldown is counted from there.
    """

    dedup_key: str
    rule: str
    subject: str
    active: bool
    severity: str | None
    since: datetime | None
    last_evaluated_at: datetime
    notified_status: str | None = None
    notified_severity: str | None = None
    last_notified_at: datetime | None = None
    last_fired_notice_at: datetime | None = None
    last_alert_id: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    title: str = ""
    summary: str = ""
    links: Mapping[str, str] = field(default_factory=dict)


_STATE_COLUMNS = (
    "dedup_key, rule, subject, active, severity, since, last_evaluated_at, notified_status,"
    " notified_severity, last_notified_at, last_fired_notice_at, last_alert_id, evidence,"
    " title, summary, links"
)


def _state_row(state: StoredAlertState) -> list[object]:
    return [
        state.dedup_key,
        state.rule,
        state.subject,
        state.active,
        state.severity,
        state.since,
        state.last_evaluated_at,
        state.notified_status,
        state.notified_severity,
        state.last_notified_at,
        state.last_fired_notice_at,
        state.last_alert_id,
        _json(dict(state.evidence)),
        state.title,
        state.summary,
        _json(dict(state.links)),
    ]


def _upsert_state(con: duckdb.DuckDBPyConnection, state: StoredAlertState) -> None:
    updates = ", ".join(f"{name} = excluded.{name}" for name in _STATE_COLUMNS.split(", ")[1:])
    con.execute(
        f"INSERT INTO alert_state ({_STATE_COLUMNS}) VALUES ({', '.join('?' * 16)})"
        f" ON CONFLICT (dedup_key) DO UPDATE SET {updates}",
        _state_row(state),
    )


def load_alert_states(store: Store, *, rule: str | None = None) -> dict[str, StoredAlertState]:
    """The state of every deduplication key (of one rule, if given), by key."""
    rows = store.fetch(
        f"SELECT {_STATE_COLUMNS} FROM alert_state WHERE ? IS NULL OR rule = ?", [rule, rule]
    )
    states = {}
    for row in rows:
        values = list(row)
        values[12] = _loads(values[12])
        values[13] = values[13] or ""
        values[14] = values[14] or ""
        values[15] = {str(k): str(v) for k, v in _loads(values[15]).items()}
        states[str(row[0])] = StoredAlertState(*values)
    return states


def save_alert_states(store: Store, states: Sequence[StoredAlertState]) -> None:
    """Write evaluation results that notify nobody (condition unchanged or still cooling)."""
    if not states:
        return
    try:
        with store.transaction() as con:
            for state in states:
                _upsert_state(con, state)
    except duckdb.Error as error:
        raise StoreError(f"cannot store alert states in {store.path}: {error}") from error


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """One stored notification and how its deliveries stand.

    ``deliveries`` maps each sink to its state (``pending``, ``delivered``, ``abandoned``).
    """

    alert_id: str
    rule: str
    kind: str
    dedup_key: str
    subject: str
    status: str
    severity: str
    title: str
    summary: str
    evidence: Mapping[str, Any]
    links: Mapping[str, Any]
    fired_at: datetime
    created_at: datetime
    n_sinks: int
    deliveries: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = {name: getattr(self, name) for name in self.__slots__}
        data["fired_at"] = self.fired_at.isoformat() + "Z"
        data["created_at"] = self.created_at.isoformat() + "Z"
        data["evidence"] = dict(self.evidence)
        data["links"] = dict(self.links)
        data["deliveries"] = dict(self.deliveries)
        return data


_ALERT_COLUMNS = (
    "alert_id, rule, kind, dedup_key, subject, status, severity, title, summary, evidence,"
    " links, fired_at, created_at, n_sinks"
)


def save_alert(
    store: Store,
    alert: StoredAlert,
    *,
    state: StoredAlertState,
    sinks: Sequence[str],
) -> None:
    """Store a notification, its key's new state and one outbox row per sink, atomically.

    Nothing is sent from here: the outbox is delivered afterwards, so a crash between the
    two leaves a pending row that is retried, never a sent alert that was not recorded.
    """
    created = alert.created_at
    try:
        with store.transaction() as con:
            con.execute(
                f"INSERT INTO alerts ({_ALERT_COLUMNS}) VALUES ({', '.join('?' * 14)})",
                [
                    alert.alert_id,
                    alert.rule,
                    alert.kind,
                    alert.dedup_key,
                    alert.subject,
                    alert.status,
                    alert.severity,
                    alert.title,
                    alert.summary,
                    _json(dict(alert.evidence)),
                    _json(dict(alert.links)),
                    alert.fired_at,
                    created,
                    len(sinks),
                ],
            )
            _upsert_state(con, state)
            for sink in sinks:
                con.execute(
                    "INSERT INTO alert_outbox (alert_id, sink, state, attempts, created_at,"
                    " next_attempt_at) VALUES (?, ?, 'pending', 0, ?, ?)",
                    [alert.alert_id, sink, created, created],
                )
    except duckdb.Error as error:
        raise StoreError(
            f"cannot store alert {alert.alert_id} ({alert.dedup_key}) in {store.path}: {error}"
        ) from error


def _alert(row: Sequence[Any], deliveries: Mapping[str, str]) -> StoredAlert:
    names = _ALERT_COLUMNS.split(", ")
    values: dict[str, Any] = dict(zip(names, row, strict=True))
    values["evidence"] = _loads(values["evidence"])
    values["links"] = _loads(values["links"])
    return StoredAlert(**values, deliveries=dict(deliveries))


def _deliveries_of(store: Store, alert_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    if not alert_ids:
        return {}
    rows = store.fetch(
        "SELECT alert_id, sink, state FROM alert_outbox"
        " WHERE alert_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY sink",
        [list(alert_ids)],
    )
    found: dict[str, dict[str, str]] = {}
    for alert_id, sink, state in rows:
        found.setdefault(str(alert_id), {})[str(sink)] = str(state)
    return found


def list_alerts(
    store: Store,
    *,
    rule: str | None = None,
    status: str | None = None,
    dedup_key: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[StoredAlert]:
    """Stored notifications, newest first, with their delivery states."""
    rows = store.fetch(
        f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE (? IS NULL OR rule = ?)"
        " AND (? IS NULL OR status = ?) AND (? IS NULL OR dedup_key = ?)"
        " AND (? IS NULL OR created_at >= ?)"
        " ORDER BY created_at DESC, sequence DESC LIMIT ?",
        [rule, rule, status, status, dedup_key, dedup_key, since, since, limit],
    )
    deliveries = _deliveries_of(store, [str(row[0]) for row in rows])
    return [_alert(row, deliveries.get(str(row[0]), {})) for row in rows]


def get_alert(store: Store, alert_id: str) -> StoredAlert | None:
    """One stored notification, or None."""
    rows = store.fetch(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE alert_id = ?", [alert_id])
    if not rows:
        return None
    return _alert(rows[0], _deliveries_of(store, [alert_id]).get(alert_id, {}))


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    """One delivery attempt of one alert to one sink."""

    alert_id: str
    sink: str
    attempt: int
    attempted_at: datetime
    duration_ms: float
    ok: bool
    status_code: int | None
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = {name: getattr(self, name) for name in self.__slots__}
        data["attempted_at"] = self.attempted_at.isoformat() + "Z"
        return data


def alert_deliveries(store: Store, alert_id: str) -> list[StoredDelivery]:
    """Every delivery attempt of one alert, oldest first."""
    rows = store.fetch(
        "SELECT alert_id, sink, attempt, attempted_at, duration_ms, ok, status_code, error"
        " FROM alert_delivery_attempts WHERE alert_id = ? ORDER BY attempted_at, sink, attempt",
        [alert_id],
    )
    return [StoredDelivery(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """An outbox row whose next attempt is due, with the alert it carries."""

    alert: StoredAlert
    sink: str
    attempts: int
    created_at: datetime


def due_deliveries(store: Store, *, now: datetime, limit: int = 500) -> list[DueDelivery]:
    """Pending outbox rows, oldest alert first, whose sink is due at ``now``.

    Rows of a sink are returned in alert order even when later ones are not yet due, so a
    deliverer can keep each sink's notifications in order (a resolution never overtakes
    the firing it resolves).
    """
    rows = store.fetch(
        f"SELECT {', '.join('a.' + c for c in _ALERT_COLUMNS.split(', '))},"
        " o.sink, o.attempts, o.created_at, o.next_attempt_at"
        " FROM alert_outbox o JOIN alerts a USING (alert_id)"
        " WHERE o.state = 'pending'"
        " ORDER BY o.sink, a.created_at, a.sequence LIMIT ?",
        [limit],
    )
    due: list[DueDelivery] = []
    blocked: set[str] = set()
    for row in rows:
        sink = str(row[14])
        if sink in blocked:
            continue
        if row[17] > now:
            blocked.add(sink)
            continue
        due.append(
            DueDelivery(
                alert=_alert(row[:14], {}), sink=sink, attempts=int(row[15]), created_at=row[16]
            )
        )
    return due


def record_delivery_attempt(
    store: Store,
    *,
    alert_id: str,
    sink: str,
    attempt: int,
    attempted_at: datetime,
    duration_ms: float,
    ok: bool,
    status_code: int | None,
    error: str | None,
    next_attempt_at: datetime | None,
) -> None:
    """Record one attempt; ``ok`` marks the row delivered, ``next_attempt_at=None`` after a
    failure abandons it, otherwise it stays pending until ``next_attempt_at``."""
    if ok:
        state = "delivered"
    elif next_attempt_at is None:
        state = "abandoned"
    else:
        state = "pending"
    error = None if error is None else redact_known(error)
    try:
        with store.transaction() as con:
            con.execute(
                "INSERT INTO alert_delivery_attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [alert_id, sink, attempt, attempted_at, duration_ms, ok, status_code, error],
            )
            con.execute(
                "UPDATE alert_outbox SET state = ?, attempts = ?, last_attempt_at = ?,"
                " delivered_at = CASE WHEN ? THEN ? ELSE delivered_at END,"
                " next_attempt_at = coalesce(?, next_attempt_at), last_error = ?"
                " WHERE alert_id = ? AND sink = ? AND state = 'pending'",
                [
                    state,
                    attempt,
                    attempted_at,
                    ok,
                    attempted_at,
                    next_attempt_at,
                    error,
                    alert_id,
                    sink,
                ],
            )
    except duckdb.Error as err:
        raise StoreError(
            f"cannot record the delivery of alert {alert_id} to sink {sink!r}: {err}"
        ) from err


def outbox_counts(store: Store) -> dict[tuple[str, str], int]:
    """Outbox rows per (sink, state)."""
    rows = store.fetch("SELECT sink, state, count(*) FROM alert_outbox GROUP BY sink, state")
    return {(str(sink), str(state)): int(count) for sink, state, count in rows}


@dataclass(frozen=True, slots=True)
class AlertCount:
    """Stored notifications of one rule, severity and status; ``active`` keys firing now."""

    rule: str
    severity: str
    status: str
    count: int


def alert_counts(store: Store) -> tuple[list[AlertCount], dict[tuple[str, str], int]]:
    """Notifications per (rule, severity, status), and keys firing now per (rule, severity)."""
    rows = store.fetch(
        "SELECT rule, severity, status, count(*) FROM alerts GROUP BY ALL ORDER BY ALL"
    )
    active = store.fetch(
        "SELECT rule, severity, count(*) FROM alert_state WHERE active GROUP BY ALL"
    )
    return (
        [AlertCount(str(r), str(s), str(st), int(n)) for r, s, st, n in rows],
        {(str(r), str(s)): int(n) for r, s, n in active},
    )


# -- job runs ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredJobRun:
    """One run of a job: when, why (``trigger``), how it ended, and the runs it stored."""

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
        data = {name: getattr(self, name) for name in self.__slots__}
        for name in ("scheduled_for", "started_at", "finished_at"):
            data[name] = data[name].isoformat() + "Z" if data[name] is not None else None
        data["run_ids"] = list(self.run_ids)
        data["summary"] = dict(self.summary)
        data["seconds"] = self.seconds
        return data


_JOB_COLUMNS = (
    "job_run_id, job, kind, trigger, status, scheduled_for, started_at, finished_at, pid,"
    " host, run_ids, summary, error"
)


def _job_run(row: Sequence[Any]) -> StoredJobRun:
    values = list(row)
    values[10] = tuple(values[10] or ())
    values[11] = _loads(values[11])
    return StoredJobRun(*values)


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
    job_run_id = _new_id(started)
    store.execute(
        f"INSERT INTO job_runs ({_JOB_COLUMNS}) VALUES (?, ?, ?, ?, 'running', ?, ?, NULL, ?,"
        " ?, [], NULL, NULL)",
        [job_run_id, job, kind, trigger, scheduled_for, started, pid, host],
    )
    return get_job_run(store, job_run_id)


def finish_job_run(
    store: Store,
    job_run_id: str,
    *,
    status: str,
    run_ids: Sequence[str] = (),
    summary: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> StoredJobRun:
    """Give a running job run its final status, the runs it stored and a summary."""
    if status not in JOB_STATUSES or status == "running":
        raise StoreError(f"cannot finish job run {job_run_id} with status {status!r}")
    store.execute(
        "UPDATE job_runs SET status = ?, finished_at = ?, run_ids = ?, summary = ?, error = ?"
        " WHERE job_run_id = ?",
        [
            status,
            utc_now(),
            list(run_ids),
            _json(dict(summary or {})),
            None if error is None else redact_known(error),
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
) -> StoredJobRun:
    """Record a job run that already ended without reaching the store (e.g. it was busy)."""
    job_run_id = _new_id(started_at)
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
            None if error is None else redact_known(error),
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


def latest_job_runs(store: Store) -> dict[str, StoredJobRun]:
    """The newest run of every job that ever ran, by job name."""
    rows = store.fetch(
        f"SELECT {_JOB_COLUMNS} FROM job_runs"
        " QUALIFY row_number() OVER (PARTITION BY job ORDER BY started_at DESC, job_run_id DESC)"
        " = 1"
    )
    return {str(row[1]): _job_run(row) for row in rows}


def running_job_runs(store: Store) -> list[StoredJobRun]:
    """Job runs still marked ``running``, oldest first."""
    rows = store.fetch(
        f"SELECT {_JOB_COLUMNS} FROM job_runs WHERE status = 'running' ORDER BY started_at"
    )
    return [_job_run(row) for row in rows]


def interrupt_job_runs(store: Store, job_run_ids: Sequence[str], *, note: str) -> None:
    """Mark job runs whose process stopped before finishing them ``interrupted``."""
    if not job_run_ids:
        return
    store.execute(
        "UPDATE job_runs SET status = 'interrupted', finished_at = ?, error = ?"
        " WHERE status = 'running' AND job_run_id IN (SELECT unnest(?::VARCHAR[]))",
        [utc_now(), note, list(job_run_ids)],
    )


# -- aggregates for health metrics -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LatestAggregate:
    """One measure of the newest finished goldset run of a goldset and label."""

    goldset: str
    label: str
    run_id: str
    status: str
    started_at: datetime
    measure: str
    value: float | None


def latest_aggregates(store: Store) -> list[LatestAggregate]:
    """Aggregates of the newest complete or partial goldset run per (goldset, label)."""
    rows = store.fetch(
        "WITH latest AS (SELECT run_id, goldset_name, coalesce(label, '') AS label, status,"
        " started_at FROM runs WHERE kind = 'goldset' AND status IN ('complete', 'partial')"
        " QUALIFY row_number() OVER (PARTITION BY goldset_name, coalesce(label, '')"
        " ORDER BY started_at DESC, run_id DESC) = 1)"
        " SELECT l.goldset_name, l.label, l.run_id, l.status, l.started_at, a.measure, a.value"
        " FROM latest l JOIN run_aggregates a USING (run_id) ORDER BY ALL"
    )
    return [LatestAggregate(*row) for row in rows]


# -- retention ---------------------------------------------------------------------------

_PER_QUERY_TABLES = (
    "run_results",
    "run_queries",
    "query_metrics",
    "traffic_replay_queries",
    "traffic_window_embeddings",
    "answer_items",  # the texts of the run's scored answers; their scores stay
)


def retention_candidates(
    store: Store, *, older_than: datetime, keep_latest: int, keep: Sequence[str] = ()
) -> list[str]:
    """Finished runs started before ``older_than`` whose per-query rows may go.

    Never listed: runs still ``running``, the ``keep_latest`` newest runs of each (kind,
    goldset, label), runs named in ``keep`` (pinned baselines), runs pruned already.
    """
    rows = store.fetch(
        "SELECT run_id FROM runs WHERE status <> 'running'"
        " QUALIFY started_at < ?"
        " AND row_number() OVER (PARTITION BY kind, goldset_name, coalesce(label, '')"
        "   ORDER BY started_at DESC, run_id DESC) > ?"
        " AND run_id NOT IN (SELECT unnest(?::VARCHAR[]))"
        " AND run_id NOT IN (SELECT run_id FROM pruned_runs)"
        " ORDER BY run_id",
        [older_than, keep_latest, list(keep)],
    )
    return [str(row[0]) for row in rows]


def prune_run_details(store: Store, run_ids: Sequence[str]) -> int:
    """Delete the per-query rows of ``run_ids`` (aggregates and run rows stay); one
    transaction per run. Returns the rows deleted."""
    existing = {
        str(row[0])
        for row in store.fetch(
            "SELECT table_name FROM duckdb_tables() WHERE table_name IN"
            " (SELECT unnest(?::VARCHAR[]))",
            [list(_PER_QUERY_TABLES)],
        )
    }
    tables = [name for name in _PER_QUERY_TABLES if name in existing]
    total = 0
    for run_id in run_ids:
        deleted = 0
        try:
            with store.transaction() as con:
                for table in tables:
                    deleted += int(
                        con.execute(
                            f"SELECT count(*) FROM {table} WHERE run_id = ?", [run_id]
                        ).fetchall()[0][0]
                    )
                    con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
                con.execute(
                    "INSERT INTO pruned_runs VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    [run_id, utc_now(), deleted],
                )
        except duckdb.Error as error:
            raise StoreError(f"cannot prune run {run_id} in {store.path}: {error}") from error
        total += deleted
    return total
