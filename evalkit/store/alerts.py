"""Stored alerts, their deduplication state and their durable outbox.

``alerts`` (one row per notification, written before any delivery is tried), ``alert_state``
(per deduplication key), ``alert_outbox`` (per alert and sink, written in the alert's
transaction; ``pending`` until ``delivered`` or ``abandoned``) and
``alert_delivery_attempts`` (every attempt, secrets redacted). Columns: docs/store.md; the
flow: docs/alerts.md, "The durable outbox".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb

from evalkit.records.jsonready import JsonReady
from evalkit.store.columns import (
    column_names,
    json_text,
    json_value,
    masked,
    placeholders,
    qualified,
    record_of,
    values_of,
)

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = [
    "ALERT_STATUSES",
    "DELIVERY_STATES",
    "AlertCount",
    "DueDelivery",
    "StoredAlert",
    "StoredAlertState",
    "StoredDelivery",
    "alert_counts",
    "alert_deliveries",
    "alert_status_condition",
    "due_deliveries",
    "get_alert",
    "has_tables",
    "list_alerts",
    "load_alert_states",
    "outbox_counts",
    "record_delivery_attempt",
    "resolution_of",
    "save_alert",
    "save_alert_states",
    "told_of_firing",
]

ALERT_STATUSES = ("firing", "resolved")
DELIVERY_STATES = ("pending", "delivered", "abandoned")


def has_tables(store: Store, *names: str) -> bool:
    """Whether every named table exists in the store (areas whose migration ran)."""
    return set(names) <= store.table_names()


# -- alerts and their state --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredAlertState:
    """What evaluation knows about one deduplication key: whether the condition held at the
    last evaluation (since ``since``), what receivers were last told (``notified_status``,
    None: never) and when the last *firing* notice was created, which the cooldown counts from."""

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


def _upsert_state(con: duckdb.DuckDBPyConnection, state: StoredAlertState) -> None:
    updates = ", ".join(f"{name} = excluded.{name}" for name in column_names(_STATE_COLUMNS)[1:])
    con.execute(
        f"INSERT INTO alert_state ({_STATE_COLUMNS}) VALUES ({placeholders(16)})"
        f" ON CONFLICT (dedup_key) DO UPDATE SET {updates}",
        values_of(state, _STATE_COLUMNS, **_json_maps(state)),
    )


def _json_maps(record: StoredAlertState | StoredAlert) -> dict[str, str]:
    """The evidence and links of an alert or a key's state, as their JSON columns hold them."""
    return {"evidence": json_text(dict(record.evidence)), "links": json_text(dict(record.links))}


def load_alert_states(store: Store, *, rule: str | None = None) -> dict[str, StoredAlertState]:
    """The state of every deduplication key (of one rule, if given), by key."""
    rows = store.fetch(
        f"SELECT {_STATE_COLUMNS} FROM alert_state WHERE ? IS NULL OR rule = ?", [rule, rule]
    )
    return {
        str(row[0]): record_of(
            StoredAlertState,
            _STATE_COLUMNS,
            row,
            evidence=json_value,
            title=lambda text: text or "",
            summary=lambda text: text or "",
            links=lambda text: {str(k): str(v) for k, v in json_value(text).items()},
        )
        for row in rows
    }


def save_alert_states(store: Store, states: Sequence[StoredAlertState]) -> None:
    """Write evaluation results that notify nobody (condition unchanged or still cooling)."""
    if not states:
        return
    with store.writing(f"cannot store alert states in {store.path}") as con:
        for state in states:
            _upsert_state(con, state)


@dataclass(frozen=True, slots=True)
class StoredAlert(JsonReady):
    """One stored notification and how its deliveries stand: each sink's state
    (``deliveries``: ``pending``, ``delivered``, ``abandoned``) and, for a sink not delivered to,
    the error of its last attempt or why it was abandoned (``delivery_errors``)."""

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
    delivery_errors: Mapping[str, str] = field(default_factory=dict)


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
    with store.writing(
        f"cannot store alert {alert.alert_id} ({alert.dedup_key}) in {store.path}"
    ) as con:
        con.execute(
            f"INSERT INTO alerts ({_ALERT_COLUMNS}) VALUES ({placeholders(14)})",
            values_of(alert, _ALERT_COLUMNS, **_json_maps(alert), n_sinks=len(sinks)),
        )
        _upsert_state(con, state)
        for sink in sinks:
            con.execute(
                "INSERT INTO alert_outbox (alert_id, sink, state, attempts, created_at,"
                " next_attempt_at) VALUES (?, ?, 'pending', 0, ?, ?)",
                [alert.alert_id, sink, created, created],
            )


_NO_DELIVERIES: tuple[dict[str, str], dict[str, str]] = ({}, {})


def _alert(
    row: Sequence[Any], deliveries: tuple[dict[str, str], dict[str, str]] = _NO_DELIVERIES
) -> StoredAlert:
    values: dict[str, Any] = dict(zip(column_names(_ALERT_COLUMNS), row, strict=True))
    values["evidence"] = json_value(values["evidence"])
    values["links"] = json_value(values["links"])
    states, errors = deliveries
    return StoredAlert(**values, deliveries=dict(states), delivery_errors=dict(errors))


def _deliveries_of(
    store: Store, alert_ids: Sequence[str]
) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
    """Per alert: each sink's delivery state, and the last error of each not delivered."""
    if not alert_ids:
        return {}
    rows = store.fetch(
        "SELECT alert_id, sink, state, last_error FROM alert_outbox"
        " WHERE alert_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY sink",
        [list(alert_ids)],
    )
    found: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
    for alert_id, sink, state, error in rows:
        states, errors = found.setdefault(str(alert_id), ({}, {}))
        states[str(sink)] = str(state)
        if error is not None and state != "delivered":
            errors[str(sink)] = str(error)
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
    """Stored notifications, newest first, with their delivery states. ``status="firing"``
    leaves out those a later *resolved* notification of their key closed (an open condition's
    escalations and reminders stay): what is listed still needs someone."""
    condition, parameters = alert_status_condition(status)
    rows = store.fetch(
        f"SELECT {_ALERT_COLUMNS} FROM alerts a WHERE (? IS NULL OR rule = ?)"
        f" AND {condition} AND (? IS NULL OR dedup_key = ?)"
        " AND (? IS NULL OR created_at >= ?)"
        " ORDER BY created_at DESC, sequence DESC LIMIT ?",
        [rule, rule, *parameters, dedup_key, dedup_key, since, since, limit],
    )
    deliveries = _deliveries_of(store, [str(row[0]) for row in rows])
    return [_alert(row, deliveries.get(str(row[0]), _NO_DELIVERIES)) for row in rows]


def alert_status_condition(status: str | None) -> tuple[str, list[str | None]]:
    """The SQL condition over ``alerts a``, and its parameters, that keeps the notifications
    of ``status`` (every one when None) as ``list_alerts`` means it: ``"firing"`` keeps only
    the firing notifications of conditions still open, leaving out one that a later
    *resolved* notification of its key closed."""
    return (
        "(? IS NULL OR a.status = ?)"
        " AND (? IS DISTINCT FROM 'firing' OR NOT EXISTS (SELECT 1 FROM alerts r"
        "  WHERE r.dedup_key = a.dedup_key AND r.status = 'resolved'"
        "  AND r.sequence > a.sequence))",
        [status, status, status],
    )


def get_alert(store: Store, alert_id: str) -> StoredAlert | None:
    """One stored notification, or None."""
    rows = store.fetch(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE alert_id = ?", [alert_id])
    if not rows:
        return None
    return _alert(rows[0], _deliveries_of(store, [alert_id]).get(alert_id, _NO_DELIVERIES))


def told_of_firing(store: Store, dedup_key: str) -> set[str]:
    """The sinks that were sent (or will be: still pending) a firing notification of the
    key's open episode, since its last resolution; an abandoned delivery told nobody."""
    rows = store.fetch(
        "SELECT DISTINCT o.sink FROM alert_outbox o JOIN alerts a USING (alert_id)"
        " WHERE a.dedup_key = ? AND a.status = 'firing' AND o.state <> 'abandoned'"
        " AND a.sequence > coalesce((SELECT max(sequence) FROM alerts"
        "  WHERE dedup_key = ? AND status = 'resolved'), -1)",
        [dedup_key, dedup_key],
    )
    return {str(row[0]) for row in rows}


def resolution_of(store: Store, alert_id: str) -> StoredAlert | None:
    """The resolved notification that closed the condition of the firing notification
    ``alert_id`` (the first of its key raised after it), or None while it is open."""
    rows = store.fetch(
        f"SELECT {qualified(_ALERT_COLUMNS, 'r')} FROM alerts r JOIN alerts f"
        " ON r.dedup_key = f.dedup_key AND r.sequence > f.sequence"
        " WHERE f.alert_id = ? AND f.status = 'firing' AND r.status = 'resolved'"
        " ORDER BY r.sequence LIMIT 1",
        [alert_id],
    )
    if not rows:
        return None
    resolved = str(rows[0][0])
    return _alert(rows[0], _deliveries_of(store, [resolved]).get(resolved, _NO_DELIVERIES))


@dataclass(frozen=True, slots=True)
class StoredDelivery(JsonReady):
    """One delivery attempt of one alert to one sink."""

    alert_id: str
    sink: str
    attempt: int
    attempted_at: datetime
    duration_ms: float
    ok: bool
    status_code: int | None
    error: str | None


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
    """Pending outbox rows, oldest alert first, whose sink is due at ``now``: at most ``limit``
    per sink, so one sink's long queue never keeps the others out. A sink's rows come in alert
    order even when later ones are not yet due, so a resolution never overtakes its firing."""
    rows = store.fetch(
        f"SELECT {qualified(_ALERT_COLUMNS, 'a')},"
        " o.sink, o.attempts, o.created_at, o.next_attempt_at"
        " FROM alert_outbox o JOIN alerts a USING (alert_id)"
        " WHERE o.state = 'pending'"
        " QUALIFY row_number() OVER (PARTITION BY o.sink ORDER BY a.created_at, a.sequence)"
        " <= ?"
        " ORDER BY o.sink, a.created_at, a.sequence",
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
                alert=_alert(row[:14]), sink=sink, attempts=int(row[15]), created_at=row[16]
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
) -> list[str]:
    """Record one attempt: ``ok`` marks the row delivered; after a failure it stays pending
    until ``next_attempt_at``, or with None is abandoned together with the sink's pending
    resolution of it (unless another firing told the sink of the episode). Returns the ids of
    the resolutions so abandoned."""
    if ok:
        state = "delivered"
    elif next_attempt_at is None:
        state = "abandoned"
    else:
        state = "pending"
    error = masked(error)
    with store.writing(f"cannot record the delivery of alert {alert_id} to sink {sink!r}") as con:
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
        if state != "abandoned":
            return []
        untold = [
            str(row[0])
            for row in con.execute(_UNTOLD_RESOLUTIONS, [alert_id, sink, sink]).fetchall()
        ]
        if untold:
            con.execute(
                "UPDATE alert_outbox SET state = 'abandoned', last_error = ?"
                " WHERE sink = ? AND state = 'pending'"
                " AND alert_id IN (SELECT unnest(?::VARCHAR[]))",
                [f"not sent: its firing {alert_id} was abandoned", sink, untold],
            )
        return untold


# The pending resolution (for one sink) that closes the firing f, when no other firing of
# f's episode (the notifications of its key between the resolutions around r) is still
# delivered or pending for that sink.
_UNTOLD_RESOLUTIONS = (
    "SELECT r.alert_id FROM alerts f JOIN alerts r ON r.dedup_key = f.dedup_key"
    " JOIN alert_outbox o ON o.alert_id = r.alert_id"
    " WHERE f.alert_id = ? AND f.status = 'firing' AND r.status = 'resolved'"
    " AND o.sink = ? AND o.state = 'pending'"
    " AND r.sequence = (SELECT min(sequence) FROM alerts WHERE dedup_key = f.dedup_key"
    "  AND status = 'resolved' AND sequence > f.sequence)"
    " AND NOT EXISTS (SELECT 1 FROM alerts e JOIN alert_outbox eo USING (alert_id)"
    "  WHERE e.dedup_key = f.dedup_key AND e.status = 'firing' AND eo.sink = ?"
    "  AND eo.state <> 'abandoned' AND e.sequence < r.sequence"
    "  AND e.sequence > coalesce((SELECT max(sequence) FROM alerts WHERE dedup_key ="
    "  f.dedup_key AND status = 'resolved' AND sequence < f.sequence), -1))"
)


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
