"""What ``evalkit serve``, ``evalkit jobs`` and ``evalkit alerts`` share: store access with
the scheduler's patience, and delivering the alert outbox."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from evalkit.cli._output import say, settings
from evalkit.errors import StoreError

if TYPE_CHECKING:
    from evalkit.alerts import Sink
    from evalkit.config import Settings
    from evalkit.scheduler import ServiceConfig
    from evalkit.store.access import StoreAccess
    from evalkit.store.store import Store

__all__ = [
    "DELIVERY_FAILED",
    "JOB_NOT_SUCCEEDED",
    "deliver_outbox",
    "require_tables",
    "service_store",
    "store_access",
]

JOB_NOT_SUCCEEDED = 1
DELIVERY_FAILED = 3


def store_access(settings: Settings, program: str) -> StoreAccess:
    """Access to the store of ``settings`` that waits [scheduler] lock_wait for a writer."""
    from evalkit.store.access import StoreAccess

    return StoreAccess.from_settings(settings, program=program, wait_as="job", on_wait=say)


def require_tables(store: Any) -> None:
    """Raise StoreError when the store has no alert or job tables yet."""
    from evalkit.store.alerts import has_tables

    if not has_tables(store, "alerts", "alert_outbox", "job_runs"):
        raise StoreError(
            f"the store {store.path} has no alert or job tables yet; start `evalkit serve` "
            "or run `evalkit store migrate` once to create them"
        )


@contextmanager
def service_store(program: str) -> Iterator[Store]:
    """The store as the service's commands read it: the configuration checked first (a
    broken one fails every command of the service), then the store read with the
    scheduler's patience, its alert and job tables required."""
    from evalkit.scheduler import service_config

    current = settings()
    service_config(current)
    with store_access(current, program).reader() as store:
        require_tables(store)
        yield store


def deliver_outbox(
    config: ServiceConfig,
    sinks: dict[str, Sink],
    access: StoreAccess,
    *,
    quiet: bool = False,
) -> dict[str, Any]:
    """Send the outbox deliveries that are due; say how it went unless ``quiet`` and all went well.

    ``waiting`` counts, per sink, every delivery still pending after the pass: those behind
    a failure in it, and those not due yet (a retry later, a ``Retry-After``). ``errors``
    names each sink whose part of the pass ended unexpectedly (a plug-in sink that raised):
    its deliveries were not attempted, or not recorded, and wait for the next pass.
    """
    from evalkit.alerts import RedeliverySchedule, deliver_due
    from evalkit.store.access import outbox_lock
    from evalkit.store.alerts import outbox_counts

    with outbox_lock(access.store_path, program=access.program).hold(
        purpose="delivering alerts", wait=config.scheduler.lock_wait
    ):
        report = deliver_due(
            access, sinks, RedeliverySchedule.from_settings(config.alerts.settings)
        )
        with access.reader() as store:
            counts = outbox_counts(store)
    waiting = {sink: n for (sink, state), n in sorted(counts.items()) if state == "pending"}
    summary = {
        "delivered": report.delivered,
        "failed": report.failed,
        "abandoned": report.abandoned,
        "waiting": waiting,
        "errors": dict(report.errors),
    }
    if not quiet or report.failed or report.abandoned or report.errors:
        say(
            f"outbox: {report.delivered} delivered, {report.failed} failed (retried later), "
            f"{report.abandoned} abandoned, {sum(waiting.values())} waiting"
            + "".join(f"; sink {sink}: {error}" for sink, error in report.errors.items())
        )
    return summary
