"""The service's figures and its small HTTP endpoint: ``/healthz``, ``/metrics``, ``/jobs``.

``ServiceState`` keeps the figures in memory (refreshed after every job and outbox pass), so
a scrape never waits for the store. What each path answers and the metrics:
docs/scheduler.md, "Health endpoint".
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from evalkit.clock import naive_utc, utc_now
from evalkit.net import ServiceHTTPServer, http_url, is_loopback, listening
from evalkit.scheduler.config import ServiceConfig
from evalkit.scheduler.lock import MAX_TRIGGER_WAIT, trigger_wait
from evalkit.scheduler.runner import JobListener
from evalkit.store.alerts import AlertCount, alert_counts, outbox_counts
from evalkit.store.jobs import StoredJobRun, latest_job_runs
from evalkit.store.runs import LatestAggregate, latest_aggregates

if TYPE_CHECKING:
    from evalkit.alerts.outbox import DeliveryReport
    from evalkit.store.store import Store

__all__ = [
    "HealthServer",
    "ServiceHandle",
    "ServiceState",
    "metric_families",
]

_log = logging.getLogger("evalkit.scheduler")
_JOB_STATUSES = ("succeeded", "partial", "failed", "interrupted")


def _epoch(moment: datetime) -> float:
    return moment.replace(tzinfo=UTC).timestamp() if moment.tzinfo is None else moment.timestamp()


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return f"{naive_utc(moment).isoformat(timespec='seconds')}Z"


class ServiceState(JobListener):
    """What the service knows about itself, for /healthz, /metrics and /jobs."""

    def __init__(
        self,
        config: ServiceConfig,
        *,
        next_run: Callable[[str], datetime | None] = lambda name: None,
        config_changed: Callable[[], bool] = lambda: False,
    ) -> None:
        self._config = config
        self._next_run = next_run
        # Whether the configuration file differs from what the service runs (ConfigFileWatch).
        self.config_changed = config_changed
        self._lock = threading.Lock()
        self.started_at = utc_now()
        self.stopping = False
        self._last: dict[str, StoredJobRun] = {}
        # The newest run that ended, for the metrics: a run still going would read as a
        # failure in evalkit_job_last_run_success (evalkit_job_running tells it runs).
        self._ended: dict[str, StoredJobRun] = {}
        self._running: dict[str, datetime] = {}
        self._runs_total: Counter[tuple[str, str]] = Counter()
        self._overlaps: Counter[str] = Counter()
        self._misfires: Counter[str] = Counter()
        self._aggregates: list[LatestAggregate] = []
        self._alerts: list[AlertCount] = []
        self._firing: dict[tuple[str, str], int] = {}
        self._outbox: dict[tuple[str, str], int] = {}
        self._deliveries: Counter[tuple[str, str]] = Counter()
        self.rule_errors: dict[str, str] = {}
        self.store_error: str | None = None
        # The OTLP receiver's spool and committer, when it runs (``OtlpReceiver.status``).
        self.otlp_status: Callable[[], dict[str, Any]] | None = None
        # One registry per service: the figures plus this process's own (CPU, memory, fds).
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_StateCollector(self))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def started(self, job: str, run: StoredJobRun) -> None:
        """A job run started."""
        with self._lock:
            self._running[job] = run.started_at

    def finished(self, job: str, run: StoredJobRun) -> None:
        """A job run ended."""
        with self._lock:
            self._running.pop(job, None)
            self._last[job] = run
            if run.status != "running":
                self._ended[job] = run
            self._runs_total[(job, run.status)] += 1

    def overlapped(self, job: str) -> None:
        """A run was skipped because the job was still running."""
        with self._lock:
            self._overlaps[job] += 1

    def store_unavailable(self, error: str) -> None:
        """A job could not get the store: /healthz says why until a session gets it."""
        with self._lock:
            self.store_error = error

    def missed(self, job: str) -> None:
        """A run was skipped because it could not start within the misfire grace time."""
        with self._lock:
            self._misfires[job] += 1

    def delivered(self, report: DeliveryReport) -> None:
        """Count the attempts of one outbox pass."""
        with self._lock:
            self._deliveries[("all", "delivered")] += report.delivered
            self._deliveries[("all", "failed")] += report.failed
            self._deliveries[("all", "abandoned")] += report.abandoned

    def refresh(self, store: Store) -> None:
        """Re-read the stored figures (inside a store session)."""
        last = latest_job_runs(store)
        ended = latest_job_runs(store, ended=True)
        aggregates = latest_aggregates(store)
        totals, firing = alert_counts(store)
        outbox = outbox_counts(store)
        with self._lock:
            for newest, runs in ((self._last, last), (self._ended, ended)):
                for job, run in runs.items():
                    known = newest.get(job)
                    if known is None or known.started_at <= run.started_at:
                        newest[job] = run
            self._aggregates = aggregates
            self._alerts = totals
            self._firing = firing
            self._outbox = outbox
            self.store_error = None

    def jobs(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Every configured job with its schedule, last run, next run and counters."""
        moment = now or utc_now()
        with self._lock:
            views = []
            for job in self._config.jobs:
                last = self._last.get(job.name)
                running = self._running.get(job.name)
                views.append(
                    {
                        **job.described(),
                        "running": running is not None,
                        "running_since": _iso(running),
                        "next_run": _iso(self._next_run(job.name)),
                        "last_run": last.to_dict() if last else None,
                        "last_run_age_seconds": (
                            (moment - last.started_at).total_seconds() if last else None
                        ),
                        "overlaps_skipped": self._overlaps[job.name],
                        "misfires": self._misfires[job.name],
                    }
                )
            return views

    def health(self) -> dict[str, Any]:
        """The /healthz body."""
        changed = self.config_changed()
        with self._lock:
            pending = sum(n for (_, state), n in self._outbox.items() if state == "pending")
            abandoned = sum(n for (_, state), n in self._outbox.items() if state == "abandoned")
            return {
                "status": "stopping" if self.stopping else "ok",
                "started_at": _iso(self.started_at),
                "jobs": len(self._config.jobs),
                "running": sorted(self._running),
                "outbox_pending": pending,
                "outbox_abandoned": abandoned,
                "rule_errors": dict(self.rule_errors),
                "store_error": self.store_error,
                "config_changed": changed,
                "otlp": self.otlp_status() if self.otlp_status is not None else None,
            }

    def metric_families(self, now: datetime | None = None) -> list[Metric]:
        """The service's own figures as Prometheus metric families."""
        moment = now or utc_now()
        with self._lock:
            return metric_families(
                jobs=[job.name for job in self._config.jobs],
                last=dict(self._ended),
                running=dict(self._running),
                next_runs={job.name: self._next_run(job.name) for job in self._config.jobs},
                runs_total=Counter(self._runs_total),
                overlaps=Counter(self._overlaps),
                misfires=Counter(self._misfires),
                aggregates=list(self._aggregates),
                alerts=list(self._alerts),
                firing=dict(self._firing),
                outbox=dict(self._outbox),
                deliveries=Counter(self._deliveries),
                rule_errors=dict(self.rule_errors),
                up=not self.stopping,
                now=moment,
            )


def metric_families(
    *,
    jobs: Sequence[str],
    last: Mapping[str, StoredJobRun],
    running: Mapping[str, datetime],
    next_runs: Mapping[str, datetime | None],
    runs_total: Counter[tuple[str, str]],
    overlaps: Counter[str],
    misfires: Counter[str],
    aggregates: Sequence[LatestAggregate],
    alerts: Sequence[AlertCount],
    firing: Mapping[tuple[str, str], int],
    outbox: Mapping[tuple[str, str], int],
    deliveries: Counter[tuple[str, str]],
    rule_errors: Mapping[str, str],
    up: bool,
    now: datetime,
) -> list[Metric]:
    """Every figure as a Prometheus metric family (see the module docstring)."""
    families: list[Metric] = []  # in the order they are made

    def _gauge(name: str, help_text: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
        families.append(made := GaugeMetricFamily(name, help_text, labels=list(labels)))
        return made

    def _counter(name: str, help_text: str, labels: Sequence[str] = ()) -> CounterMetricFamily:
        families.append(made := CounterMetricFamily(name, help_text, labels=list(labels)))
        return made

    up_family = _gauge("evalkit_up", "1 while evalkit serve runs.")
    up_family.add_metric([], 1.0 if up else 0.0)
    started = _gauge(
        "evalkit_job_last_run_timestamp_seconds", "Start of the job's last ended run.", ["job"]
    )
    age = _gauge(
        "evalkit_job_last_run_age_seconds", "Seconds since the last ended run began.", ["job"]
    )
    duration = _gauge(
        "evalkit_job_last_run_duration_seconds", "Duration of the job's last run.", ["job"]
    )
    success = _gauge("evalkit_job_last_run_success", "1 if the last ended run succeeded.", ["job"])
    status = _gauge(
        "evalkit_job_last_run_status", "1 for the last ended run's status.", ["job", "status"]
    )
    is_running = _gauge("evalkit_job_running", "1 while the job runs.", ["job"])
    upcoming = _gauge(
        "evalkit_job_next_run_timestamp_seconds", "Next scheduled start of the job.", ["job"]
    )
    total = _counter("evalkit_job_runs_total", "Job runs ended in this process.", ["job", "status"])
    skipped = _counter(
        "evalkit_job_overlaps_skipped_total",
        "Runs skipped because the job was still running.",
        ["job"],
    )
    missed = _counter(
        "evalkit_job_misfires_total", "Runs skipped because they were too late.", ["job"]
    )
    for job in jobs:
        run = last.get(job)
        if run is not None:
            started.add_metric([job], _epoch(run.started_at))
            age.add_metric([job], (now - run.started_at).total_seconds())
            if run.seconds is not None:
                duration.add_metric([job], run.seconds)
            success.add_metric([job], 1.0 if run.status == "succeeded" else 0.0)
            for name in _JOB_STATUSES:
                status.add_metric([job, name], 1.0 if run.status == name else 0.0)
        is_running.add_metric([job], 1.0 if job in running else 0.0)
        next_run = next_runs.get(job)
        if next_run is not None:
            upcoming.add_metric([job], _epoch(next_run))
        for name in _JOB_STATUSES:
            total.add_metric([job, name], float(runs_total[(job, name)]))
        skipped.add_metric([job], float(overlaps[job]))
        missed.add_metric([job], float(misfires[job]))
    value = _gauge(
        "evalkit_run_aggregate",
        "Newest goldset run's mean per measure (by label).",
        ["goldset", "label", "measure"],
    )
    when = _gauge(
        "evalkit_run_aggregate_timestamp_seconds", "Start of that newest run.", ["goldset", "label"]
    )
    seen: set[tuple[str, str]] = set()
    for row in aggregates:
        if row.value is not None:
            value.add_metric([row.goldset, row.label, row.measure], row.value)
        if (row.goldset, row.label) not in seen:
            seen.add((row.goldset, row.label))
            when.add_metric([row.goldset, row.label], _epoch(row.started_at))
    alert_total = _counter(
        "evalkit_alerts_total", "Stored alert notifications.", ["rule", "severity", "status"]
    )
    for count in alerts:
        alert_total.add_metric([count.rule, count.severity, count.status], float(count.count))
    active = _gauge("evalkit_alerts_firing", "Deduplication keys firing now.", ["rule", "severity"])
    for (rule, severity), keys in sorted(firing.items()):
        active.add_metric([rule, severity], float(keys))
    queued = _gauge(
        "evalkit_outbox_deliveries", "Outbox rows by sink and state.", ["sink", "state"]
    )
    for (sink, state), rows in sorted(outbox.items()):
        queued.add_metric([sink, state], float(rows))
    attempts = _counter(
        "evalkit_deliveries_total", "Delivery attempts made by this process.", ["result"]
    )
    for result in ("delivered", "failed", "abandoned"):
        attempts.add_metric([result], float(deliveries[("all", result)]))
    errors = _gauge("evalkit_rule_errors", "1 for a rule whose evaluation failed.", ["rule"])
    for rule in sorted(rule_errors):
        errors.add_metric([rule], 1.0)
    return families


class _StateCollector(Collector):
    """Yields the service's figures at each scrape, from the state kept in memory."""

    def __init__(self, state: ServiceState) -> None:
        self._state = state

    def describe(self) -> list[Metric]:
        """Nothing up front: the figures are read from the state at each scrape."""
        return []

    def collect(self) -> Iterable[Metric]:
        """The figures now."""
        return self._state.metric_families()


class ServiceHandle(Protocol):
    """What the HTTP endpoint asks of the service."""

    state: ServiceState

    def trigger(self, name: str, *, wait: float) -> tuple[int, dict[str, Any]]:
        """Run a job now; (HTTP status, JSON body)."""
        ...


class _Server(ServiceHTTPServer):
    service: ServiceHandle
    triggers_allowed: bool


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "evalkit"

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: object) -> None:
        self._send(status, json.dumps(data, default=str).encode(), "application/json")

    def do_GET(self) -> None:
        """/healthz, /metrics, /jobs."""
        path = urlsplit(self.path).path.rstrip("/") or "/"
        state = self.server.service.state
        if path == "/healthz":
            body = state.health()
            self._json(200 if body["status"] == "ok" else 503, body)
        elif path == "/metrics":
            # Prometheus text by default; OpenMetrics when the scraper's Accept asks for it.
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._send(200, encoder(state.registry), content_type)
        elif path == "/jobs":
            self._json(200, {"jobs": state.jobs(), "config_changed": state.config_changed()})
        else:
            self._json(404, {"error": "not found; try /healthz, /metrics or /jobs"})

    def do_POST(self) -> None:
        """/jobs/NAME/run[?wait=SECONDS]."""
        parts = urlsplit(self.path)
        segments = [segment for segment in parts.path.split("/") if segment]
        if len(segments) != 3 or segments[0] != "jobs" or segments[2] != "run":
            self._json(404, {"error": "not found; POST /jobs/NAME/run"})
            return
        if not self.server.triggers_allowed:
            self._json(403, {"error": "jobs are triggered over HTTP only on a loopback address"})
            return
        try:
            wait = trigger_wait(float(parse_qs(parts.query).get("wait", ["0"])[0]))
        except ValueError:
            self._json(
                400,
                {"error": f"wait must be a number of seconds from 0 to {MAX_TRIGGER_WAIT:g}"},
            )
            return
        status, body = self.server.service.trigger(segments[1], wait=wait)
        self._json(status, body)

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are logged at debug level only (scrapes would flood the log)."""
        _log.debug("http %s", format % args)


class HealthServer:
    """The HTTP endpoint, served from a background thread."""

    def __init__(self, service: ServiceHandle, *, host: str, port: int) -> None:
        self._server = listening(
            _Server,
            host,
            port,
            _Handler,
            what="evalkit serve",
            settings=("[scheduler] health_host", "[scheduler] health_port"),
        )
        self._server.service = service
        self._server.triggers_allowed = is_loopback(host)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="evalkit-health", daemon=True
        )
        self.host = host
        self.port = int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return http_url(self.host, self.port)

    def start(self) -> None:
        """Start serving."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
