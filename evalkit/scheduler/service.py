"""``evalkit serve``: the long-running scheduler, its outbox deliverer and health endpoint.

``SchedulerService.start`` takes the service lock, starts the OTLP receiver when ``[otlp]
receiver`` is on, recovers what a stopped process left, evaluates the alert rules, schedules
the jobs (APScheduler), serves ``/healthz`` and ``/metrics`` and starts the outbox
deliverer. The store is opened only for short pieces of work (``StoreAccess``). Shutdown
and recovery: docs/scheduler.md, "Crashes and shutdown".
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

from apscheduler.triggers.base import BaseTrigger

from evalkit.alerts.engine import Evaluation, evaluate_rules
from evalkit.alerts.outbox import RedeliverySchedule, deliver_due
from evalkit.alerts.sinks import build_sinks
from evalkit.clock import naive_utc
from evalkit.errors import EvalkitError
from evalkit.net import is_loopback
from evalkit.scheduler.config import ConfigFileWatch, ServiceConfig
from evalkit.scheduler.health import HealthServer, ServiceState
from evalkit.scheduler.lock import ServiceInfo, ServiceLock
from evalkit.scheduler.runner import JobRunner, NotStarted, log_interrupted
from evalkit.store.access import StoreAccess, outbox_lock
from evalkit.store.jobs import StoredJobRun, interrupt_stopped_job_runs, last_scheduled_times
from evalkit.store.runs import fail_running_runs
from evalkit.traffic.receiver import OtlpReceiver

if TYPE_CHECKING:
    from evalkit.config import Settings
    from evalkit.store.store import Store

__all__ = ["SchedulerService"]

_log = logging.getLogger("evalkit.scheduler")
_CANCEL_WAIT = 15.0
_PUMP_JOIN = 5.0
_RECEIVER_GRACE = 10.0


class SchedulerService:
    """The service behind ``evalkit serve`` (see the module docstring)."""

    def __init__(
        self,
        config: ServiceConfig,
        settings: Settings,
        *,
        host: str | None = None,
        port: int | None = None,
        otlp_port: int | None = None,
    ) -> None:
        scheduling = config.scheduler
        self.config = config
        self.settings = settings
        self.store_path = settings.resolved_store_path
        self.host = host or scheduling.health_host
        self.port = scheduling.health_port if port is None else port
        self.access = StoreAccess.from_settings(
            settings, program="evalkit serve", wait_as="job", on_wait=_log.info
        )
        self.sinks = build_sinks(config.alerts)
        self.config_watch = ConfigFileWatch(config.path, config.alerts.rules)
        self.policy = RedeliverySchedule.from_settings(config.alerts.settings)
        self.state = ServiceState(
            config, next_run=self._next_run, config_changed=self.config_watch.changed
        )
        self.stopping = threading.Event()
        self._stop_requested = threading.Event()
        self._wake = threading.Event()
        self._told_unconfigured: set[tuple[str, str]] = set()
        self.runner = JobRunner(
            config,
            settings=settings,
            session=self.access,
            after_job=self._after_job,
            listener=self.state,
        )
        self._service_lock = ServiceLock(self.store_path)
        self._outbox_lock = outbox_lock(self.store_path, program="evalkit serve")
        self._scheduler: Any = None
        self._triggers: dict[str, _RememberingTrigger] = {}
        self._last_scheduled: dict[str, datetime] = {}
        self._http: HealthServer | None = None
        self._otlp_port = otlp_port
        self.receiver: OtlpReceiver | None = None
        self._pump: threading.Thread | None = None
        self._locked = False

    @property
    def url(self) -> str | None:
        """Where ``/healthz`` and ``/metrics`` are served, once started."""
        return self._http.url if self._http is not None else None

    # -- start ------------------------------------------------------------------------

    def start(self) -> None:
        """Recover, schedule, serve and deliver (returns once everything runs)."""
        self._service_lock.acquire()
        self._locked = True
        try:
            if self.settings.otlp.receiver or self._otlp_port is not None:
                # Before recovery, which may wait for the store: spans are spooled meanwhile.
                self.receiver = OtlpReceiver(self.settings, port=self._otlp_port)
                self.state.registry.register(self.receiver.counters)
                self.state.otlp_status = self.receiver.status
                self.receiver.start()
            self._recover()
            self._start_scheduler()
            self._http = HealthServer(self, host=self.host, port=self.port)
            self._http.start()
            self._service_lock.publish(
                ServiceInfo(
                    pid=os.getpid(),
                    url=self._http.url,
                    started_at=f"{self.state.started_at.isoformat(timespec='seconds')}Z",
                    loopback=is_loopback(self.host),
                    otlp_url=self.receiver.url if self.receiver is not None else None,
                )
            )
            self._pump = threading.Thread(
                target=self._pump_loop, name="evalkit-outbox", daemon=True
            )
            self._pump.start()
        except BaseException:
            self._shutdown_parts()
            raise
        scheduled = [job.name for job in self.config.jobs if job.trigger(self._zone) is not None]
        _log.info(
            "evalkit serve: %d jobs (%d scheduled), %d alert rules, sinks %s; store %s; "
            "health at %s; OTLP traces at %s",
            len(self.config.jobs),
            len(scheduled),
            len(self.config.alerts.rules),
            ", ".join(sorted(self.sinks)),
            self.store_path,
            self.url,
            self.receiver.url if self.receiver is not None else "- (off: [otlp] receiver)",
        )
        if not is_loopback(self.host):
            _log.warning(
                "the health endpoint listens on %s, not on loopback: jobs cannot be "
                "triggered over HTTP",
                self.host,
            )

    @property
    def _zone(self) -> str:
        return self.config.scheduler.timezone

    def _recover(self) -> None:
        with self.access("serve: recovering work a stopped process left unfinished") as store:
            note = "the process running it stopped before it finished (found at service start)"
            log_interrupted(interrupt_stopped_job_runs(store, note=note, this_pid_stale=True))
            failed = fail_running_runs(store, note=note)
            for run_id in failed:
                _log.warning("run %s was left running: marked failed", run_id)
            self._last_scheduled = last_scheduled_times(store)
            self.evaluate_alerts(store)
            self.state.refresh(store)

    def _missed_time(self, name: str, grace: float) -> datetime | None:
        last = self._last_scheduled.get(name)
        if last is None:  # never run on schedule: nothing tells that the service was down
            return None
        job = self.config.job(name)
        since, now = last.replace(tzinfo=UTC), datetime.now(UTC)
        missed = job.missed_time(self._zone, last=since, now=now, grace=grace)
        if missed is None:
            # Due longer ago than the grace: skipped, which is said and counted as a run
            # too late to start while the service runs is (evalkit_job_misfires_total).
            late = job.missed_time(
                self._zone, last=since, now=now, grace=(now - since).total_seconds()
            )
            if late is not None:
                self.state.missed(name)
                _log.warning(
                    "job %s was due at %s while evalkit serve was down, more than its "
                    "misfire_grace_time (%d s) ago: that run is skipped",
                    name,
                    late.astimezone(UTC).isoformat(timespec="seconds"),
                    grace,
                )
        return missed

    def _start_scheduler(self) -> None:
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        settings = self.config.scheduler
        scheduler = BackgroundScheduler(
            timezone=settings.timezone,
            executors={"default": ThreadPoolExecutor(settings.max_workers)},
            job_defaults={
                "coalesce": settings.coalesce,
                "max_instances": 1,
                "misfire_grace_time": max(1, round(settings.misfire_grace_time)),
            },
        )
        for job in self.config.jobs:
            trigger = job.trigger(settings.timezone)
            if trigger is None or not job.config.enabled:
                continue
            grace = job.config.misfire_grace_time
            misfire_grace_time = max(
                1, round(grace if grace is not None else settings.misfire_grace_time)
            )
            # A time the job was due while the service was down runs now, once; APScheduler
            # alone would only look ahead.
            missed = self._missed_time(job.name, misfire_grace_time)
            remembering = self._triggers[job.name] = _RememberingTrigger(trigger, missed)
            if missed is not None:
                _log.info(
                    "job %s was due at %s while evalkit serve was down: running it now",
                    job.name,
                    missed.astimezone(UTC).isoformat(timespec="seconds"),
                )
            scheduler.add_job(
                self._run_scheduled,
                remembering,
                args=[job.name],
                id=job.name,
                name=job.name,
                misfire_grace_time=misfire_grace_time,
                **({"next_run_time": missed} if missed is not None else {}),
            )
        scheduler.add_listener(self._on_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        scheduler.start()
        self._scheduler = scheduler

    def _run_scheduled(self, name: str) -> None:
        due = self._triggers[name].due(datetime.now(UTC))
        self.runner.run(
            name,
            trigger="schedule",
            scheduled_for=naive_utc(due) if due else None,
        )

    def _on_event(self, event: Any) -> None:
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES

        if event.code == EVENT_JOB_MAX_INSTANCES:
            self.state.overlapped(event.job_id)
            _log.warning(
                "job %s is still running: the scheduled run is skipped (no overlap)",
                event.job_id,
            )
        else:
            self.state.missed(event.job_id)
            due = getattr(event, "scheduled_run_time", None)
            _log.warning(
                "job %s missed its run time%s by more than the misfire grace time: skipped",
                event.job_id,
                f" ({due.astimezone(UTC).isoformat(timespec='seconds')})" if due else "",
            )

    def _next_run(self, name: str) -> datetime | None:
        if self._scheduler is None:
            return None
        job = self._scheduler.get_job(name)
        moment: datetime | None = getattr(job, "next_run_time", None) if job else None
        if moment is None:
            return None
        return naive_utc(moment)

    # -- work -------------------------------------------------------------------------

    def evaluate_alerts(self, store: Store) -> Evaluation:
        """Evaluate the alert rules this service was started with and store what they raise
        (after every job and every ``evaluate_interval``); while the configuration file
        differs from what the service read, only the rules it still holds unchanged, and no
        rule is retired (``ConfigFileWatch``)."""
        if not self.config.alerts.rules:
            return Evaluation()
        only = self.config_watch.rules_to_evaluate()
        evaluation = evaluate_rules(store, self.config.alerts, self.sinks, only=only)
        self.state.rule_errors = dict(evaluation.errors)
        if evaluation.alerts:
            self._wake.set()
        return evaluation

    def _after_job(self, store: Store, run: StoredJobRun) -> None:
        self.evaluate_alerts(store)
        self.state.refresh(store)
        self._wake.set()

    def _pump_loop(self) -> None:
        alerts = self.config.alerts.settings
        next_evaluation = time.monotonic() + alerts.evaluate_interval
        woken = True
        while not self.stopping.is_set():
            try:
                # Says so once when the file changes, alert rules or not.
                self.config_watch.changed()
                if time.monotonic() >= next_evaluation:
                    with self.access("alerts: evaluating rules") as store:
                        self.evaluate_alerts(store)
                        self.state.refresh(store)
                    next_evaluation = time.monotonic() + alerts.evaluate_interval
                    woken = True
                if woken or self.state.health()["outbox_pending"]:
                    self._deliver()
            except EvalkitError as error:
                self.state.store_error = str(error)
                _log.error("outbox: %s", error)
            except Exception:
                _log.exception("outbox: unexpected failure; retrying later")
            woken = self._wake.wait(timeout=alerts.deliver_interval)
            self._wake.clear()

    def _deliver(self) -> None:
        with self._outbox_lock.hold(
            purpose="delivering alerts", wait=self.config.scheduler.lock_wait
        ):
            # The outbox's sessions are short: they go before jobs waiting for the store,
            # so a queue of jobs cannot hold alerts back for many lock_waits.
            report = deliver_due(
                self.access.first,
                self.sinks,
                self.policy,
                stop=self.stopping,
                told_unconfigured=self._told_unconfigured,
            )
        self.state.delivered(report)
        if report.delivered or report.failed or report.abandoned:
            with self.access("alerts: refreshing figures") as store:
                self.state.refresh(store)

    def trigger(self, name: str, *, wait: float) -> tuple[int, dict[str, Any]]:
        """Run job ``name`` now: the HTTP status and body of ``POST /jobs/NAME/run``, as
        docs/scheduler.md's "Health endpoint" table lists them.
        """
        changed = self.config_watch.changed()
        if name not in {job.name for job in self.config.jobs}:
            known = ", ".join(job.name for job in self.config.jobs) or "none"
            return 404, {
                "error": f"no job named {name!r} (configured: {known})",
                "config_changed": changed,
            }
        if self.stopping.is_set():
            return 503, {"error": "evalkit serve is stopping", "reason": "stopping"}
        since = self.runner.running().get(name)
        if since is not None:
            return 409, {
                "error": f"job {name} is already running (since {since.isoformat()}Z)",
                "running": True,
                "reason": "running",
            }
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def work() -> None:
            try:
                outcome["run"] = self.runner.attempt(name, trigger="manual")
            finally:
                done.set()

        threading.Thread(target=work, name=f"evalkit-job-{name}", daemon=True).start()
        if wait <= 0 or not done.wait(wait):
            return 202, {
                "accepted": True,
                "job": name,
                "finished": False,
                "config_changed": changed,
            }
        run = outcome.get("run")
        if isinstance(run, NotStarted):
            if run.reason == "running":
                return 409, {"error": run.message, "running": True, "reason": run.reason}
            return 503, {"error": run.message, "reason": run.reason}
        if run is None:  # the job's thread failed unexpectedly (it logged why)
            return 500, {"error": f"job {name} did not run; see evalkit serve's log"}
        return 200, {
            "accepted": True,
            "job": name,
            "finished": True,
            "job_run": run.to_dict(),
            "config_changed": changed,
        }

    # -- stop -------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the service to stop (what SIGTERM and SIGINT do); a second call interrupts
        running jobs at once."""
        self.runner.closing.set()
        if self._stop_requested.is_set():
            self.runner.cancel.set()
        self._stop_requested.set()

    def stop(self) -> bool:
        """Stop; returns False when a job could not be stopped (it is left to recovery)."""
        if self.stopping.is_set():
            return True
        self.runner.closing.set()
        self.stopping.set()
        self.state.stopping = True
        self._wake.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        grace = self.config.scheduler.shutdown_grace
        running = self.runner.running()
        if running:
            _log.info(
                "stopping: %s may run for %g s more before being interrupted",
                ", ".join(sorted(running)),
                grace,
            )
        deadline = time.monotonic() + grace
        while self.runner.running() and time.monotonic() < deadline:
            if self.runner.cancel.is_set():
                break
            time.sleep(0.1)
        if self.runner.running():
            self.runner.cancel.set()
            _log.warning("interrupting %s", ", ".join(sorted(self.runner.running())))
            deadline = time.monotonic() + _CANCEL_WAIT
            while self.runner.running() and time.monotonic() < deadline:
                time.sleep(0.1)
        left = sorted(self.runner.running())
        self._shutdown_parts()
        if left:
            _log.error("%s did not stop; the next start marks it interrupted", ", ".join(left))
            return False
        _log.info("evalkit serve stopped")
        return True

    def _shutdown_parts(self) -> None:
        self.stopping.set()
        self._wake.set()
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        if self.receiver is not None:
            # Before the store lock goes: requests in flight finish their commits.
            self.receiver.stop(grace=_RECEIVER_GRACE)
        if self._pump is not None:
            self._pump.join(timeout=_PUMP_JOIN)
        if self._http is not None:
            self._http.stop()
        if self._locked:
            self._service_lock.release()
            self._locked = False

    def run_forever(self, *, install_signals: bool = True) -> bool:
        """Start, wait for SIGTERM/SIGINT (or ``request_stop``), stop. True if clean.

        The handlers are installed before start-up, so a signal that arrives while the
        service starts (waiting for the store, say) stops it cleanly instead of killing it
        with locks and a half-started receiver behind.
        """
        started = threading.Event()

        def handle(signum: int, frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            _log.info("received %s", name)
            self.request_stop()
            if not started.is_set():
                raise _StoppedWhileStarting(name)

        try:
            if install_signals:
                signal.signal(signal.SIGTERM, handle)
                signal.signal(signal.SIGINT, handle)
            self.start()
            started.set()
        except _StoppedWhileStarting as stopped:
            _log.info("stopping during start-up (%s)", stopped)
            return self.stop()
        try:
            while not self._stop_requested.wait(0.5):
                pass
        finally:
            clean = self.stop()
        return clean


class _RememberingTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler 3 is untyped
    """A job's trigger that remembers the times it made the job due: APScheduler 3 does not
    tell the job which time it runs for, and ``job_runs.scheduled_for`` records it."""

    _KEPT = 8

    def __init__(self, trigger: Any, due: datetime | None = None) -> None:
        self.trigger = trigger
        self._times: list[datetime] = [due] if due is not None else []
        self._guard = threading.Lock()

    def get_next_fire_time(self, previous_fire_time: Any, now: Any) -> Any:
        """The wrapped trigger's next fire time, remembered."""
        fire = self.trigger.get_next_fire_time(previous_fire_time, now)
        if fire is not None:
            with self._guard:
                self._times = [*self._times[-self._KEPT :], fire]
        return fire

    def due(self, now: datetime) -> datetime | None:
        """The latest time at or before ``now`` (aware) the job was due."""
        with self._guard:
            past = [moment for moment in self._times if moment <= now]
        return max(past) if past else None

    def __str__(self) -> str:
        return str(self.trigger)


class _StoppedWhileStarting(BaseException):
    """Raised by the signal handler to unwind a start-up still under way (a ``BaseException``
    so no ``except Exception`` on the way swallows it)."""
