"""Running one job: never two copies at once, always recorded, stoppable.

``JobRunner.run(name)`` commits a ``running`` job run before the work, runs the kind
(``JobKind.holds_store`` says in which session), records how it ended and calls
``after_job`` in the same session; a second call while the job runs returns at once. A job
that cannot get the store has its failure written with the next session. Once ``closing``
is set no job starts, and one not started is only logged (docs/scheduler.md, "Crashes and
shutdown").
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from evalkit.clock import utc_now
from evalkit.errors import DUCKDB_INTERRUPTED, EvalkitError, StoreError
from evalkit.redaction import redact_known
from evalkit.scheduler.config import JobDefinition, ServiceConfig
from evalkit.scheduler.jobs import JOB_KINDS, JobCancelledError, JobContext, JobOutcome
from evalkit.store.access import StoreAccess, StoreWaitStoppedError
from evalkit.store.jobs import (
    StoredJobRun,
    finish_job_run,
    interrupt_stopped_job_runs,
    new_job_run_id,
    record_job_run,
    start_job_run,
)

if TYPE_CHECKING:
    from evalkit.alerts.outbox import StoreSession
    from evalkit.config import Settings
    from evalkit.store.store import Store

__all__ = ["JobListener", "JobRunner", "NotStarted", "log_interrupted"]

_log = logging.getLogger("evalkit.scheduler")


def log_interrupted(job_runs: list[StoredJobRun]) -> None:
    """Log each job run found ``running`` after its process stopped (``kill -9``, a power
    loss), now marked interrupted: which job, which process, since when."""
    for run in job_runs:
        _log.warning(
            "job run %s of job %s (pid %s on %s, started %s UTC) was left running by a "
            "process that stopped before it finished: marked interrupted",
            run.job_run_id,
            run.job,
            run.pid,
            run.host,
            f"{run.started_at:%Y-%m-%d %H:%M:%S}",
        )


class JobListener:
    """Hears what the runner does (the service keeps its health figures with it)."""

    def started(self, job: str, run: StoredJobRun) -> None:
        """A job run started."""

    def finished(self, job: str, run: StoredJobRun) -> None:
        """A job run ended (whatever its status)."""

    def overlapped(self, job: str) -> None:
        """A run was skipped because the job was still running."""

    def store_unavailable(self, error: str) -> None:
        """A job could not get the store (``error`` says who held it)."""


@dataclass(frozen=True, slots=True)
class NotStarted:
    """Why a job run did not start: ``running`` (the job's previous run is still going),
    ``stopping`` (the service is stopping) or ``store`` (it could not get the store; the
    message says who held it)."""

    reason: Literal["running", "stopping", "store"]
    message: str


class _JobRunAccess:
    """The store of a job run whose kind does not hold it (a ``WriterAccess``): its first
    block continues the session that recorded the job run's start (``handed``: that
    session's open store and what closes it), and every later block opens the store through
    the runner's session, waiting as recording a job's result does, the lock naming the job.
    A run recorded through it is listed by the job run in the transaction that writes the
    run's row (``Store.working_for``)."""

    keeps_open = False

    def __init__(
        self,
        session: StoreSession,
        job: str,
        job_run_id: str,
        handed: tuple[Store, ExitStack],
    ) -> None:
        self.session = session
        self.job = job
        self.job_run_id = job_run_id
        self._handed: tuple[Store, ExitStack] | None = handed

    @contextmanager
    def writer(self, purpose: str) -> Iterator[Store]:
        """The store, open for the block, working for the job run."""
        handed, self._handed = self._handed, None
        if handed is not None:
            store, closing = handed
            with closing, store.working_for(self.job_run_id) as working:
                yield working
            return
        with (
            self.session(f"job {self.job}: {purpose}") as store,
            store.working_for(self.job_run_id) as working,
        ):
            yield working

    def release(self) -> None:
        """Close the session of the job run's start if no block has taken it over."""
        handed, self._handed = self._handed, None
        if handed is not None:
            handed[1].close()


class JobRunner:
    """Runs configured jobs by name; see the module docstring."""

    def __init__(
        self,
        config: ServiceConfig,
        *,
        settings: Settings,
        session: StoreSession,
        cancel: threading.Event | None = None,
        after_job: Callable[[Store, StoredJobRun], None] | None = None,
        listener: JobListener | None = None,
    ) -> None:
        self._config = config
        self._settings = settings
        self._session = session
        self.cancel = cancel or threading.Event()
        self.closing = threading.Event()
        self._after_job = after_job
        self._listener = listener or JobListener()
        self._locks = {job.name: threading.Lock() for job in config.jobs}
        self._running: dict[str, datetime] = {}
        self._guard = threading.Lock()
        # Job runs that failed for want of the store, as told to the listener: recorded
        # under the same ids with the next session.
        self._unrecorded: list[StoredJobRun] = []
        self._pid = os.getpid()
        self._host = socket.gethostname()

    def running(self) -> dict[str, datetime]:
        """Jobs running now, with when they started (naive UTC)."""
        with self._guard:
            return dict(self._running)

    def is_running(self, name: str) -> bool:
        """Whether job ``name`` is running now."""
        with self._guard:
            return name in self._running

    def run(
        self, name: str, *, trigger: str = "schedule", scheduled_for: datetime | None = None
    ) -> StoredJobRun | None:
        """Run job ``name`` now unless it is running already (then return None).

        ``scheduled_for`` (naive UTC) is when a scheduled run was due; it is recorded with
        the run.
        """
        result = self.attempt(name, trigger=trigger, scheduled_for=scheduled_for)
        return result if isinstance(result, StoredJobRun) else None

    def attempt(
        self, name: str, *, trigger: str = "schedule", scheduled_for: datetime | None = None
    ) -> StoredJobRun | NotStarted:
        """Run job ``name`` now, as ``run`` does; when it does not start, say why."""
        job = self._config.job(name)
        if self.closing.is_set():
            _log.info("job %s not started (%s): stopping", name, trigger)
            return NotStarted("stopping", f"job {name} not started: stopping")
        lock = self._locks[name]
        if not lock.acquire(blocking=False):
            _log.warning("job %s is still running: this %s run is skipped", name, trigger)
            self._listener.overlapped(name)
            return NotStarted("running", f"job {name} is already running")
        try:
            with self._guard:
                self._running[name] = utc_now()
            return self._run(job, trigger, scheduled_for)
        finally:
            with self._guard:
                self._running.pop(name, None)
            lock.release()

    def flush_unrecorded(self, store: Store) -> None:
        """Write job runs that ended without reaching the store (call inside a session);
        the listener heard of each when it ended."""
        with self._guard:
            pending, self._unrecorded = self._unrecorded, []
        for entry in pending:
            assert entry.finished_at is not None  # a run not started has ended
            record_job_run(
                store,
                job=entry.job,
                kind=entry.kind,
                trigger=entry.trigger,
                status=entry.status,
                started_at=entry.started_at,
                finished_at=entry.finished_at,
                pid=self._pid,
                host=self._host,
                error=entry.error,
                scheduled_for=entry.scheduled_for,
                job_run_id=entry.job_run_id,
            )

    def _run(
        self, job: JobDefinition, trigger: str, scheduled_for: datetime | None
    ) -> StoredJobRun | NotStarted:
        kind = JOB_KINDS[job.kind]
        began = utc_now()
        context = JobContext(
            job=job.name,
            settings=self._settings,
            cancel=self.cancel,
            pinned_runs=self._config.pinned_runs(),
        )
        started: StoredJobRun | None = None
        outcome: JobOutcome | None = None
        interrupted: BaseException | None = None
        access: _JobRunAccess | None = None
        try:
            with ExitStack() as session:
                store = session.enter_context(self._starting(f"job {job.name}"))
                if self.closing.is_set():
                    _log.info("job %s not started (%s): stopping", job.name, trigger)
                    return NotStarted("stopping", f"job {job.name} not started: stopping")
                self.flush_unrecorded(store)
                # A job run whose process was killed (`jobs run --local` under kill -9) stays
                # running until someone who can tell says otherwise: the next job does.
                log_interrupted(
                    interrupt_stopped_job_runs(
                        store,
                        note="the process running it stopped before it finished (found by "
                        f"job {job.name})",
                    )
                )
                started = start_job_run(
                    store,
                    job=job.name,
                    kind=job.kind,
                    trigger=trigger,
                    scheduled_for=scheduled_for,
                    pid=self._pid,
                    host=self._host,
                )
                self._listener.started(job.name, started)
                _log.info("job %s started (%s, %s)", job.name, job.kind, trigger)
                if kind.uses_store and kind.holds_store:
                    with store.working_for(started.job_run_id) as working:
                        outcome, interrupted = self._work(job, replace(context, store=working))
                elif kind.uses_store:
                    # Its first piece of work continues this session, so that "started"
                    # still means "its work began": no second wait for the store between.
                    access = _JobRunAccess(
                        self._session, job.name, started.job_run_id, (store, session.pop_all())
                    )
                    context = replace(context, access=access)
        except StoreWaitStoppedError:
            _log.info("job %s not started (%s): stopping", job.name, trigger)
            return NotStarted("stopping", f"job {job.name} not started: stopping")
        except StoreError as error:
            if started is not None:
                outcome = JobOutcome(status="failed", error=str(error))
                return self._finish(job, started, outcome)
            _log.error("job %s could not start: %s", job.name, redact_known(str(error)))
            failed = StoredJobRun(
                job_run_id=new_job_run_id(began),
                job=job.name,
                kind=job.kind,
                trigger=trigger,
                status="failed",
                scheduled_for=scheduled_for,
                started_at=began,
                finished_at=utc_now(),
                pid=self._pid,
                host=self._host,
                run_ids=(),
                summary={},
                error=redact_known(str(error)),
            )
            with self._guard:
                self._unrecorded.append(failed)
            # Told now, not when the store is free again: a store held for hours must show
            # in the health endpoint and in the job's failure metrics meanwhile.
            self._listener.store_unavailable(failed.error or "")
            self._listener.finished(job.name, failed)
            return NotStarted("store", f"job {job.name} could not start: {error}")
        assert started is not None  # every path that did not start has returned
        if outcome is None:
            try:
                outcome, interrupted = self._work(job, context)
            finally:
                if access is not None:
                    access.release()
        finished = self._finish(job, started, outcome)
        if interrupted is not None:
            raise interrupted
        return finished

    def _starting(self, purpose: str) -> AbstractContextManager[Store]:
        # The wait for the store is given up when the service starts stopping.
        if isinstance(self._session, StoreAccess):
            return self._session.writer(purpose, stop=self.closing)
        return self._session(purpose)

    def _work(
        self, job: JobDefinition, context: JobContext
    ) -> tuple[JobOutcome, BaseException | None]:
        kind = JOB_KINDS[job.kind]
        try:
            return kind.run(context, job.params), None
        except JobCancelledError as error:
            # The run it was recording is stored (failed): the job run lists it.
            outcome = JobOutcome(
                status="interrupted", error=str(error), run_ids=tuple(error.run_ids)
            )
            return outcome, None
        except KeyboardInterrupt as error:
            outcome = JobOutcome(status="interrupted", error="interrupted by the user (Ctrl-C)")
            return outcome, error
        except EvalkitError as error:
            return JobOutcome(status="failed", error=str(error)), None
        except Exception as error:
            if isinstance(error, RuntimeError) and str(error) == DUCKDB_INTERRUPTED:
                # Ctrl-C or SIGTERM while the job's query ran: the process is being stopped.
                outcome = JobOutcome(status="interrupted", error="interrupted (Ctrl-C or SIGTERM)")
                return outcome, error
            _log.exception("job %s failed unexpectedly", job.name)
            return JobOutcome(status="failed", error=f"{type(error).__name__}: {error}"), None
        except BaseException as error:
            # SIGTERM (the command line raises it in the main thread), SystemExit: the job
            # run is recorded interrupted before the process goes on stopping.
            reason = "SIGTERM" if type(error).__name__ == "Terminated" else type(error).__name__
            return JobOutcome(status="interrupted", error=f"interrupted: {reason}"), error

    def _finish(
        self, job: JobDefinition, started: StoredJobRun, outcome: JobOutcome
    ) -> StoredJobRun:
        try:
            with self._session(f"job {job.name}: recording its result") as store:
                finished = finish_job_run(
                    store,
                    started.job_run_id,
                    status=outcome.status,
                    run_ids=outcome.run_ids,
                    summary=outcome.summary,
                    error=outcome.error,
                )
                if self._after_job is not None:
                    try:
                        self._after_job(store, finished)
                    except Exception:
                        _log.exception("after job %s: alert evaluation failed", job.name)
        except StoreError as error:
            self._listener.store_unavailable(redact_known(str(error)))
            _log.error(
                "job %s ended %s but its result could not be recorded (%s); it will be marked "
                "interrupted when the service next starts",
                job.name,
                outcome.status,
                error,
            )
            finished = replace(started, status=outcome.status, error=outcome.error)
        log = _log.info if outcome.status == "succeeded" else _log.warning
        log(
            "job %s %s%s",
            job.name,
            outcome.status,
            # A command's stderr may repeat a secret; a CLI's log has no redacting handler.
            f": {redact_known(outcome.error)}" if outcome.error else "",
        )
        self._listener.finished(job.name, finished)
        return finished
