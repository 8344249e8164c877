"""Delivering the durable outbox: every stored alert reaches every sink it was routed to.

A delivery is recorded in its own transaction right after the sink accepted it, so only a
crash in between can resend, with the same ``X-Evalkit-Alert-Id``. One deliverer per store:
callers hold the outbox lock of ``evalkit.store.access``. Order, retries and abandoning:
docs/alerts.md, "The durable outbox".
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from evalkit.alerts.model import Alert
from evalkit.clock import utc_now
from evalkit.config import AlertsSettings
from evalkit.errors import StoreError
from evalkit.store.access import StoreBusyError, is_store_fault
from evalkit.store.alerts import DueDelivery, due_deliveries, record_delivery_attempt

if TYPE_CHECKING:
    from evalkit.alerts.sinks import Sink
    from evalkit.store.store import Store

__all__ = ["DeliveryReport", "RedeliverySchedule", "StoreSession", "deliver_due"]

_log = logging.getLogger("evalkit.alerts")

_RECORD_PAUSE = 5.0
"""Seconds between tries to record an attempt while the store fails (not merely busy)."""

LONGEST_RETRY_AFTER = 86400.0
"""The longest wait a receiver's ``Retry-After`` gets (a day): a larger one (``1e12``,
``inf``) would put the next attempt past any date there is."""

StoreSession = Callable[[str], AbstractContextManager["Store"]]
"""Opens the store for writing for one short piece of work: ``session(purpose)``."""


@dataclass(frozen=True, slots=True)
class RedeliverySchedule:
    """When a failed delivery is tried again.

    The n-th failure waits ``initial * 2**(n-1)`` seconds, capped at ``maximum``, with
    jitter; after ``give_up_after`` seconds from the alert's creation a failing row is
    abandoned (never, by default). Redeliveries span passes and restarts, unlike
    ``evalkit.retry.RetryPolicy``'s retries of one call.
    """

    initial: float = 10.0
    maximum: float = 300.0
    give_up_after: float | None = None

    @classmethod
    def from_settings(cls, settings: AlertsSettings) -> RedeliverySchedule:
        """The policy of the ``[alerts]`` table."""
        return cls(
            initial=settings.retry_initial,
            maximum=settings.retry_max,
            give_up_after=settings.give_up_after,
        )

    def next_attempt(
        self, *, failures: int, created_at: datetime, now: datetime, rng: random.Random
    ) -> datetime | None:
        """When to try again after ``failures`` failed attempts; None to give up."""
        if self.give_up_after is not None and (now - created_at).total_seconds() >= (
            self.give_up_after
        ):
            return None
        base = min(self.maximum, self.initial * 2 ** max(0, failures - 1))
        return now + timedelta(seconds=base * rng.uniform(0.5, 1.0))


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one pass over the outbox did."""

    delivered: int = 0
    failed: int = 0
    abandoned: int = 0
    waiting: Mapping[str, int] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)


def deliver_due(
    session: StoreSession,
    sinks: Mapping[str, Sink],
    policy: RedeliverySchedule,
    *,
    stop: threading.Event | None = None,
    clock: Callable[[], datetime] = utc_now,
    rng: random.Random | None = None,
    limit: int = 500,
    told_unconfigured: set[tuple[str, str]] | None = None,
) -> DeliveryReport:
    """One pass: send every due outbox row, oldest first per sink, recording each attempt.

    ``session`` opens the store briefly (to read the due rows, then once per attempt), so
    the store is free while requests are in flight. ``stop`` ends the pass early; ``limit``
    caps the rows of each sink a pass reads. A row whose sink is no longer configured is
    kept, and logged once per pass, or once for good when the caller passes the same
    ``told_unconfigured`` set (of (sink, alert id)) to every pass, as ``evalkit serve``
    does.
    """
    chance = rng or random.Random()
    with session("alerts: reading the outbox") as store:
        due = due_deliveries(store, now=clock(), limit=limit)
    rows: dict[str, list[DueDelivery]] = {}
    for row in due:
        rows.setdefault(row.sink, []).append(row)
    # Each sink is served by its own thread, so a receiver that hangs until its timeout
    # holds up only its own rows; store sessions are taken one at a time.
    recording = threading.Lock()
    tallies: dict[str, _Tally] = {name: _Tally() for name in rows}

    def serve_sink(name: str) -> None:
        tally = tallies[name]
        sink = sinks.get(name)
        if sink is None:
            tally.waiting = len(rows[name])
            tally.error = "this sink is no longer configured; its alerts wait for it"
            for row in rows[name]:
                if told_unconfigured is not None:
                    if (name, row.alert.alert_id) in told_unconfigured:
                        continue
                    told_unconfigured.add((name, row.alert.alert_id))
                _log.warning(
                    "outbox: alert %s waits for sink %r, which is no longer configured",
                    row.alert.alert_id,
                    name,
                )
            return
        skipped: set[str] = set()
        for index, row in enumerate(rows[name]):
            if stop is not None and stop.is_set():
                return
            if row.alert.alert_id in skipped:
                continue
            try:
                outcome = _attempt(
                    session,
                    sink,
                    row,
                    policy=policy,
                    clock=clock,
                    rng=chance,
                    recording=recording,
                    stop=stop,
                )
            except Exception as error:
                # A thread's exception would only reach stderr, and the pass would report
                # nothing wrong: the pass says it, and the row waits for the next one.
                _log.exception("outbox: delivering alert %s to %s failed", row.alert.alert_id, name)
                tally.error = f"{type(error).__name__}: {error}"
                tally.waiting += len(rows[name]) - index
                return
            if outcome == "delivered":
                tally.delivered += 1
                continue
            if outcome == "unrecorded":
                tally.error = "stopped before the last attempt could be recorded"
                tally.waiting += len(rows[name]) - index
                return
            if isinstance(outcome, list):
                # An abandoned row holds nothing up: the sink's later rows go on, but for
                # the resolutions abandoned with it.
                tally.abandoned += 1 + len(outcome)
                skipped.update(outcome)
                continue
            tally.failed += 1
            tally.waiting += len(rows[name]) - index
            return

    threads = [
        threading.Thread(target=serve_sink, args=(name,), name=f"evalkit-deliver-{name}")
        for name in rows
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    waiting = {name: tally.waiting for name, tally in tallies.items() if tally.waiting}
    errors = {name: tally.error for name, tally in tallies.items() if tally.error}
    return DeliveryReport(
        delivered=sum(tally.delivered for tally in tallies.values()),
        failed=sum(tally.failed for tally in tallies.values()),
        abandoned=sum(tally.abandoned for tally in tallies.values()),
        waiting=waiting,
        errors=errors,
    )


@dataclass(slots=True)
class _Tally:
    delivered: int = 0
    failed: int = 0
    abandoned: int = 0
    waiting: int = 0
    error: str | None = None


def _attempt(
    session: StoreSession,
    sink: Sink,
    row: DueDelivery,
    *,
    policy: RedeliverySchedule,
    clock: Callable[[], datetime],
    rng: random.Random,
    recording: threading.Lock,
    stop: threading.Event | None,
) -> str | list[str]:
    """Send one row and record the attempt: ``"delivered"``, ``"failed"`` (retried later),
    ``"unrecorded"``, or, for an abandoned row, the ids of the resolutions abandoned with
    it."""
    alert = Alert.from_stored(row.alert)
    attempted_at = clock()
    result = sink.send(alert)
    attempt = row.attempts + 1
    next_at = None
    if not result.ok and not result.permanent:
        with recording:  # the random generator is shared between the sinks' threads
            failed_at = clock()
            next_at = policy.next_attempt(
                failures=attempt, created_at=row.created_at, now=failed_at, rng=rng
            )
        if next_at is not None and result.retry_after is not None:
            asked = min(result.retry_after, LONGEST_RETRY_AFTER)
            next_at = max(next_at, failed_at + timedelta(seconds=asked))

    untold: list[str] = []

    def record() -> None:
        with (
            recording,
            session(f"alerts: recording delivery of {alert.alert_id} to {sink.name}") as store,
        ):
            untold[:] = record_delivery_attempt(
                store,
                alert_id=alert.alert_id,
                sink=sink.name,
                attempt=attempt,
                attempted_at=attempted_at,
                duration_ms=result.duration_ms,
                ok=result.ok,
                status_code=result.status_code,
                error=result.error,
                next_attempt_at=next_at,
            )

    if not _record_until_stored(record, alert_id=alert.alert_id, sink=sink.name, stop=stop):
        return "unrecorded"
    if result.ok:
        _log.info("alert %s delivered to %s", alert.alert_id, sink.name)
        return "delivered"
    if result.permanent:
        _log.error(
            "alert %s refused for good by sink %s (%s): abandoned, not retried; the sink's "
            "later alerts go on",
            alert.alert_id,
            sink.name,
            result.error,
        )
    elif next_at is None:
        _log.error(
            "alert %s abandoned for sink %s after %d attempts: %s",
            alert.alert_id,
            sink.name,
            attempt,
            result.error,
        )
    if next_at is None:
        for resolution in untold:
            _log.warning(
                "alert %s (resolved) abandoned for sink %s: it was never told of the firing %s",
                resolution,
                sink.name,
                alert.alert_id,
            )
        return untold
    _log.warning(
        "alert %s not delivered to %s (attempt %d: %s); next try at %s UTC",
        alert.alert_id,
        sink.name,
        attempt,
        result.error,
        f"{next_at:%H:%M:%S}",
    )
    return "failed"


def _record_until_stored(
    record: Callable[[], None], *, alert_id: str, sink: str, stop: threading.Event | None
) -> bool:
    """Record an attempt that has happened, retrying while the store is busy or failing;
    False only when ``stop`` was set before it could be recorded.

    The attempt is kept (here, in memory) until it is stored, and the sink's next row waits
    for it: a row left ``pending`` after its sink accepted it would be sent again.
    """
    while True:
        try:
            record()
            return True
        except StoreError as error:
            if not (isinstance(error, StoreBusyError) or is_store_fault(error)):
                raise
            if stop is not None and stop.is_set():
                _log.error(
                    "outbox: the attempt to deliver alert %s to %s could not be recorded "
                    "before stopping (%s); the next pass sends it again, with the same id",
                    alert_id,
                    sink,
                    error,
                )
                return False
            _log.warning(
                "outbox: the attempt to deliver alert %s to %s is not recorded yet (%s); "
                "recording it again before anything else is sent to %s",
                alert_id,
                sink,
                error,
                sink,
            )
            if not isinstance(error, StoreBusyError):
                # A busy store was waited for already; a failing one is given a moment.
                if stop is not None:
                    stop.wait(_RECORD_PAUSE)
                else:
                    time.sleep(_RECORD_PAUSE)
