"""``evalkit serve``, ``evalkit jobs list|run|history``, ``evalkit alerts list|show|evaluate|
deliver|test``."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from evalkit.cli._output import (
    OutputFormat,
    console,
    emit_json,
    err_console,
    key_values,
    settings,
    table,
)
from evalkit.cli.app import CONTEXT, app
from evalkit.errors import ConfigError, StoreError
from evalkit.redaction import SecretLogFilter

if TYPE_CHECKING:
    from evalkit.alerts import AlertsConfig, Sink
    from evalkit.scheduler import ServiceConfig, StoreAccess
    from evalkit.store.jobs import StoredJobRun

__all__ = ["alerts_app", "jobs_app"]

JOB_NOT_SUCCEEDED = 1
DELIVERY_FAILED = 3

jobs_app = typer.Typer(
    help="List the configured jobs and run one now.", no_args_is_help=True, context_settings=CONTEXT
)
alerts_app = typer.Typer(
    help="Stored alerts, rule evaluation and delivery, and sink checks.",
    no_args_is_help=True,
    context_settings=CONTEXT,
)
app.add_typer(jobs_app, name="jobs")
app.add_typer(alerts_app, name="alerts")

Format = Annotated[OutputFormat, typer.Option("--format", help="table or json")]


def _say(message: str) -> None:
    err_console.print(message, markup=False, highlight=False)


def _access(config: ServiceConfig, program: str) -> StoreAccess:
    from evalkit.scheduler import StoreAccess

    return StoreAccess(
        settings().resolved_store_path,
        wait=config.scheduler.lock_wait,
        program=program,
        on_wait=_say,
    )


def _require_tables(store: Any) -> None:
    from evalkit.store.alerts import has_tables

    if not has_tables(store, "alerts", "alert_outbox", "job_runs"):
        raise StoreError(
            f"the store {store.path} has no alert or job tables yet; start `evalkit serve` "
            "or run any writing evalkit command once to create them"
        )


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _configure_logging(level: str, output: OutputFormat) -> None:
    import time

    handler = logging.StreamHandler(sys.stderr)
    if output is OutputFormat.json:
        formatter: logging.Formatter = _JsonLines()
    else:
        formatter = logging.Formatter("%(asctime)sZ %(levelname)s %(name)s: %(message)s")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(SecretLogFilter())
    root = logging.getLogger("evalkit")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").addHandler(handler)


@app.command("serve")
def serve(
    host: Annotated[
        str | None, typer.Option(help="Health endpoint address (default: [scheduler] health_host).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="Health endpoint port, 0 for any free one (default: health_port)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    output: Annotated[
        OutputFormat,
        typer.Option("--format", help="Log lines as text (table) or JSON lines (json)."),
    ] = OutputFormat.table,
) -> None:
    """Run the jobs of evalkit.toml on their schedules, evaluate alert rules, deliver alerts.

    Serves /healthz, /metrics (Prometheus) and /jobs on loopback. Stops cleanly on SIGTERM
    or SIGINT: running jobs get [scheduler] shutdown_grace seconds, then are interrupted
    and their runs marked failed. See docs/scheduler.md.

    Example: EVALKIT_CONFIG=evalkit.toml evalkit serve --port 8765 --format json
    """
    from evalkit.scheduler import SchedulerService, load_service_config

    if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"--log-level {log_level!r}: use debug, info, warning or error")
    _configure_logging(log_level, output)
    config = load_service_config()
    service = SchedulerService(config, settings(), host=host, port=port)
    clean = service.run_forever()
    if not clean:
        logging.shutdown()
        # A job thread that would not stop must not keep the process alive; its rows are
        # marked interrupted by the next start.
        os._exit(JOB_NOT_SUCCEEDED)


# -- jobs -----------------------------------------------------------------------------------


def _job_rows(views: list[dict[str, Any]]) -> list[list[object]]:
    rows = []
    for view in views:
        last = view.get("last_run") or {}
        rows.append(
            [
                view["name"],
                view["kind"],
                view["schedule"],
                "yes" if view["enabled"] else "no",
                "running" if view.get("running") else last.get("status"),
                (last.get("started_at") or "-").replace("T", " ").rstrip("Z")[:19],
                last.get("seconds"),
                (view.get("next_run") or "-").replace("T", " ").rstrip("Z")[:19],
            ]
        )
    return rows


def _offline_views(config: ServiceConfig) -> list[dict[str, Any]]:
    from datetime import UTC, datetime

    from evalkit.store.alerts import has_tables
    from evalkit.store.jobs import latest_job_runs

    path = settings().resolved_store_path
    last: dict[str, StoredJobRun] = {}
    if path.exists():
        with _access(config, "evalkit jobs list").reader() as store:
            if has_tables(store, "job_runs"):
                last = latest_job_runs(store)
    now = datetime.now(UTC)
    views = []
    for job in config.jobs:
        run = last.get(job.name)
        upcoming = (
            job.next_cron_time(config.scheduler.timezone, now) if job.config.enabled else None
        )
        views.append(
            {
                "name": job.name,
                "kind": job.kind,
                "schedule": job.schedule,
                "enabled": job.config.enabled,
                "description": job.config.description,
                "running": False,
                "next_run": (
                    f"{upcoming.astimezone(UTC).replace(tzinfo=None).isoformat(timespec='seconds')}Z"
                    if upcoming
                    else None
                ),
                "last_run": run.to_dict() if run else None,
            }
        )
    return views


@jobs_app.command("list")
def list_jobs(output: Format = OutputFormat.table) -> None:
    """The jobs of evalkit.toml with their schedule, last run and next run.

    Asks the running `evalkit serve` when there is one (live next-run times), otherwise
    reads the store. Example: evalkit jobs list --format json
    """
    import httpx

    from evalkit.scheduler import find_service, load_service_config

    config = load_service_config()
    service = find_service(settings().resolved_store_path)
    views: list[dict[str, Any]] | None = None
    if service is not None:
        try:
            views = httpx.get(f"{service.url}/jobs", timeout=10.0).json()["jobs"]
        except (httpx.HTTPError, ValueError, KeyError):
            _say(f"evalkit serve (pid {service.pid}) did not answer; reading the store")
    if views is None:
        views = _offline_views(config)
    if output is OutputFormat.json:
        emit_json({"service": service.url if service else None, "jobs": views})
        return
    columns = ["job", "kind", "schedule", "enabled", "last", "started (UTC)", "seconds", "next"]
    title = f"jobs (served by pid {service.pid})" if service else "jobs (evalkit serve not running)"
    console.print(table(title, columns, _job_rows(views)))


def _print_job_run(data: dict[str, Any]) -> None:
    console.print(
        key_values(
            f"job run {data['job_run_id']}",
            {
                "job": data["job"],
                "status": data["status"],
                "trigger": data["trigger"],
                "started": data["started_at"],
                "seconds": data.get("seconds"),
                "runs": ", ".join(data.get("run_ids") or []) or "-",
                "error": data.get("error") or "-",
            },
        )
    )


def _run_locally(config: ServiceConfig, name: str) -> StoredJobRun | None:
    from evalkit.alerts import build_sinks, evaluate_rules
    from evalkit.scheduler import JobRunner
    from evalkit.store.store import Store

    sinks = build_sinks(config.alerts)
    access = _access(config, f"evalkit jobs run {name}")

    def after(store: Store, run: StoredJobRun) -> None:
        if config.alerts.rules:
            evaluate_rules(store, config.alerts, sinks)

    runner = JobRunner(config, settings=settings(), session=access, after_job=after)
    run = runner.run(name, trigger="manual")
    _deliver(config, sinks, access, quiet=True)
    return run


@jobs_app.command("run")
def run_job(
    name: Annotated[str, typer.Argument(help="Job name (see `evalkit jobs list`).")],
    wait: Annotated[
        bool, typer.Option(help="Wait for the job to end (when handed to evalkit serve).")
    ] = True,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for a job handed to evalkit serve.")
    ] = 3600.0,
    local: Annotated[
        bool,
        typer.Option(
            help="Run in this process even when evalkit serve is running (it then waits for "
            "the store)."
        ),
    ] = False,
    output: Format = OutputFormat.table,
) -> None:
    """Run one job now. Exit 0 when it succeeded, 1 when it did not.

    With `evalkit serve` running on the same store the job is handed to it (it owns the
    store); otherwise it runs here, then alert rules are evaluated and alerts delivered.

    Example: evalkit jobs run nightly-demo --format json
    """
    import httpx

    from evalkit.scheduler import find_service, load_service_config

    config = load_service_config()
    config.job(name)
    service = None if local else find_service(settings().resolved_store_path)
    data: dict[str, Any] | None
    if service is not None:
        if not service.loopback:
            raise ConfigError(
                f"evalkit serve (pid {service.pid}) does not listen on loopback and refuses "
                "jobs over HTTP; run with --local (it then waits for the store)"
            )
        _say(f"handing job {name} to evalkit serve (pid {service.pid}, {service.url})")
        try:
            response = httpx.post(
                f"{service.url}/jobs/{name}/run",
                params={"wait": timeout if wait else 0},
                timeout=(timeout if wait else 0) + 30.0,
            )
        except httpx.HTTPError as error:
            raise StoreError(
                f"evalkit serve (pid {service.pid}) did not answer at {service.url}: {error}"
            ) from error
        body = response.json()
        if response.status_code == 404:
            raise ConfigError(f"evalkit serve: {body.get('error')} (restart it to reload)")
        if response.status_code in (409, 503):
            _say(f"evalkit serve: {body.get('error')}")
            raise typer.Exit(JOB_NOT_SUCCEEDED)
        data = body.get("job_run")
        if data is None:
            _say(f"job {name} is running in evalkit serve; follow it with `evalkit jobs list`")
            if output is OutputFormat.json:
                emit_json({"job": name, "finished": False, "service": service.url})
            return
    else:
        run = _run_locally(config, name)
        data = run.to_dict() if run is not None else None
        if data is None:
            raise StoreError(f"job {name} did not run (see the messages above)")
    if output is OutputFormat.json:
        emit_json(data)
    else:
        _print_job_run(data)
    if data["status"] != "succeeded":
        raise typer.Exit(JOB_NOT_SUCCEEDED)


@jobs_app.command("history")
def job_history(
    name: Annotated[str | None, typer.Argument(help="Only this job.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs.")] = 20,
    output: Format = OutputFormat.table,
) -> None:
    """Past job runs, newest first.

    Example: evalkit jobs history nightly-demo --limit 5
    """
    from evalkit.scheduler import load_service_config
    from evalkit.store.jobs import list_job_runs

    with _access(load_service_config(), "evalkit jobs history").reader() as store:
        _require_tables(store)
        runs = list_job_runs(store, job=name, limit=limit)
    if output is OutputFormat.json:
        emit_json([run.to_dict() for run in runs])
        return
    rows = [
        [
            run.job_run_id,
            run.job,
            run.trigger,
            run.status,
            f"{run.started_at:%Y-%m-%d %H:%M:%S}",
            run.seconds,
            (run.error or "")[:80],
        ]
        for run in runs
    ]
    columns = ["job run", "job", "trigger", "status", "started (UTC)", "seconds", "error"]
    console.print(table("job runs", columns, rows))


# -- alerts ---------------------------------------------------------------------------------


@alerts_app.command("list")
def list_alerts(
    rule: Annotated[str | None, typer.Option(help="Only alerts of this rule.")] = None,
    status: Annotated[str | None, typer.Option(help="firing or resolved.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many alerts.")] = 50,
    output: Format = OutputFormat.table,
) -> None:
    """Stored alerts, newest first, with how their deliveries stand.

    Example: evalkit alerts list --status firing --format json
    """
    from evalkit.scheduler import load_service_config
    from evalkit.store.alerts import list_alerts as stored_alerts

    with _access(load_service_config(), "evalkit alerts list").reader() as store:
        _require_tables(store)
        alerts = stored_alerts(store, rule=rule, status=status, limit=limit)
    if output is OutputFormat.json:
        emit_json([alert.to_dict() for alert in alerts])
        return
    rows = [
        [
            alert.alert_id,
            f"{alert.created_at:%Y-%m-%d %H:%M:%S}",
            alert.status,
            alert.severity,
            alert.dedup_key,
            alert.title[:70],
            ", ".join(f"{sink}: {state}" for sink, state in alert.deliveries.items()) or "-",
        ]
        for alert in alerts
    ]
    columns = ["alert", "raised (UTC)", "status", "severity", "key", "title", "deliveries"]
    console.print(table("alerts", columns, rows))


@alerts_app.command("show")
def show_alert(
    alert_id: Annotated[str, typer.Argument(help="Alert id (see `evalkit alerts list`).")],
    output: Format = OutputFormat.table,
) -> None:
    """One alert: its evidence, links and every delivery attempt.

    Example: evalkit alerts show 20261121T020512-4f1c2a9e0b11 --format json
    """
    from evalkit.errors import NotFoundError
    from evalkit.scheduler import load_service_config
    from evalkit.store.alerts import alert_deliveries, get_alert

    with _access(load_service_config(), "evalkit alerts show").reader() as store:
        _require_tables(store)
        alert = get_alert(store, alert_id)
        if alert is None:
            raise NotFoundError(f"no alert {alert_id!r}; list them with `evalkit alerts list`")
        attempts = alert_deliveries(store, alert_id)
    data = {**alert.to_dict(), "attempts": [attempt.to_dict() for attempt in attempts]}
    if output is OutputFormat.json:
        emit_json(data)
        return
    console.print(
        key_values(
            f"alert {alert.alert_id}",
            {
                "status": alert.status,
                "severity": alert.severity,
                "key": alert.dedup_key,
                "title": alert.title,
                "summary": alert.summary,
                "fired at": f"{alert.fired_at:%Y-%m-%d %H:%M:%S} UTC",
                **{f"link {name}": target for name, target in alert.links.items()},
            },
        )
    )
    console.print_json(json.dumps(dict(alert.evidence), default=str))
    rows = [
        [a.sink, a.attempt, f"{a.attempted_at:%H:%M:%S}", a.ok, a.status_code, a.error or ""]
        for a in attempts
    ]
    console.print(
        table("delivery attempts", ["sink", "#", "at (UTC)", "ok", "status", "error"], rows)
    )


def _deliver(
    config: ServiceConfig,
    sinks: dict[str, Sink],
    access: StoreAccess,
    *,
    quiet: bool = False,
) -> dict[str, Any]:
    from evalkit.alerts import RetryPolicy, deliver_due
    from evalkit.scheduler import outbox_lock

    with outbox_lock(access.store_path, program=access.program).hold(
        purpose="delivering alerts", wait=config.scheduler.lock_wait
    ):
        report = deliver_due(access, sinks, RetryPolicy.from_settings(config.alerts.settings))
    summary = {
        "delivered": report.delivered,
        "failed": report.failed,
        "abandoned": report.abandoned,
        "waiting": dict(report.waiting),
    }
    if not quiet or report.failed or report.abandoned:
        _say(
            f"outbox: {report.delivered} delivered, {report.failed} failed (retried later), "
            f"{report.abandoned} abandoned"
        )
    return summary


@alerts_app.command("evaluate")
def evaluate(
    rule: Annotated[
        list[str] | None, typer.Option(help="Only this rule (repeatable; default: all enabled).")
    ] = None,
    deliver: Annotated[bool, typer.Option(help="Deliver the outbox afterwards.")] = True,
    output: Format = OutputFormat.table,
) -> None:
    """Evaluate the alert rules now and store (and by default deliver) what they raise.

    Example: evalkit alerts evaluate --rule precision-drop --format json
    """
    from evalkit.alerts import alert_payload, build_sinks, evaluate_rules
    from evalkit.scheduler import load_service_config

    config = load_service_config()
    for name in rule or ():
        config.alerts.rule(name)
    sinks = build_sinks(config.alerts)
    access = _access(config, "evalkit alerts evaluate")
    with access("alerts: evaluating rules") as store:
        evaluation = evaluate_rules(store, config.alerts, sinks, only=rule)
    delivery = _deliver(config, sinks, access, quiet=True) if deliver else None
    if output is OutputFormat.json:
        emit_json(
            {
                "evaluated": list(evaluation.evaluated),
                "errors": dict(evaluation.errors),
                "alerts": [alert_payload(alert) for alert in evaluation.alerts],
                "delivery": delivery,
            }
        )
    else:
        rows = [
            [a.alert_id, a.status.value, a.severity.value, a.dedup_key, a.title[:80]]
            for a in evaluation.alerts
        ]
        console.print(table("raised", ["alert", "status", "severity", "key", "title"], rows))
        for name, error in evaluation.errors.items():
            _say(f"rule {name} failed: {error}")
    if evaluation.errors:
        raise typer.Exit(DELIVERY_FAILED)


@alerts_app.command("deliver")
def deliver(output: Format = OutputFormat.table) -> None:
    """Send every outbox delivery that is due now (evalkit serve does this on its own).

    Example: evalkit alerts deliver --format json
    """
    from evalkit.alerts import build_sinks
    from evalkit.scheduler import load_service_config

    config = load_service_config()
    sinks = build_sinks(config.alerts)
    summary = _deliver(config, sinks, _access(config, "evalkit alerts deliver"), quiet=True)
    if output is OutputFormat.json:
        emit_json(summary)
    else:
        console.print(key_values("outbox", summary))
    if summary["failed"] or summary["abandoned"]:
        raise typer.Exit(DELIVERY_FAILED)


@alerts_app.command("test")
def check_sinks(
    sink: Annotated[
        list[str] | None, typer.Option(help="Only this sink (repeatable; default: all).")
    ] = None,
    severity: Annotated[str, typer.Option(help="warning or critical.")] = "warning",
    output: Format = OutputFormat.table,
) -> None:
    """Send a test alert to the sinks (not stored); exit 3 when one fails.

    Example: evalkit alerts test --sink oncall
    """
    from evalkit.alerts import Severity, build_sinks, load_alerts_config, probe_alert

    config: AlertsConfig = load_alerts_config()
    if severity not in ("warning", "critical"):
        raise ConfigError(f"--severity {severity!r}: use warning or critical")
    sinks = build_sinks(config)
    chosen = sink or sorted(sinks)
    unknown = [name for name in chosen if name not in sinks]
    if unknown:
        raise ConfigError(
            f"no sink named {', '.join(unknown)} (configured: {', '.join(sorted(sinks))})"
        )
    alert = probe_alert(Severity(severity))
    results = []
    for name in chosen:
        outcome = sinks[name].send(alert)
        results.append(
            {
                **sinks[name].describe(),
                "ok": outcome.ok,
                "status_code": outcome.status_code,
                "error": outcome.error,
                "ms": round(outcome.duration_ms, 1),
            }
        )
    if output is OutputFormat.json:
        emit_json(results)
    else:
        rows = [
            [r["name"], r["kind"], r["target"], r["ok"], r["status_code"], r["error"] or ""]
            for r in results
        ]
        console.print(table("sink test", ["sink", "kind", "target", "ok", "status", "error"], rows))
    if not all(result["ok"] for result in results):
        raise typer.Exit(DELIVERY_FAILED)
