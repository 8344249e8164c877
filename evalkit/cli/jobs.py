"""``evalkit jobs list|run|history``: the configured jobs, run one now, past runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from evalkit.cli._options import Format, command_group
from evalkit.cli._output import (
    OutputFormat,
    console,
    emit_json,
    key_values,
    print_listing,
    say,
    settings,
    table,
)
from evalkit.cli._service import (
    JOB_NOT_SUCCEEDED,
    deliver_outbox,
    service_store,
    store_access,
)
from evalkit.clock import naive_utc
from evalkit.errors import ConfigError, InputError, StoreError

if TYPE_CHECKING:
    from evalkit.config import Settings
    from evalkit.scheduler import ServiceConfig
    from evalkit.store.jobs import StoredJobRun

__all__ = ["jobs_app"]

jobs_app = command_group(
    "jobs",
    "List the configured jobs and run one now.",
)


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


def _tell_config_changed(config: ServiceConfig, pid: int, body: dict[str, Any]) -> None:
    """Say when evalkit serve runs another configuration than the file holds now."""
    if body.get("config_changed"):
        say(
            f"{config.path} changed since evalkit serve (pid {pid}) started: it runs the jobs "
            "as the file was then; restart it to apply the change"
        )


def _offline_views(current: Settings, config: ServiceConfig) -> list[dict[str, Any]]:
    from datetime import UTC, datetime

    from evalkit.store.alerts import has_tables
    from evalkit.store.jobs import latest_job_runs

    path = current.resolved_store_path
    last: dict[str, StoredJobRun] = {}
    if path.exists():
        with store_access(current, "evalkit jobs list").reader() as store:
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
                **job.described(),
                "running": False,
                "next_run": (
                    f"{naive_utc(upcoming).isoformat(timespec='seconds')}Z" if upcoming else None
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

    from evalkit.scheduler import find_service, service_config

    current = settings()
    config = service_config(current)
    service = find_service(current.resolved_store_path)
    views: list[dict[str, Any]] | None = None
    if service is not None:
        try:
            served = httpx.get(f"{service.url}/jobs", timeout=10.0).json()
            views = served["jobs"]
        except (httpx.HTTPError, ValueError, KeyError):
            say(f"evalkit serve (pid {service.pid}) did not answer; reading the store")
        else:
            _tell_config_changed(config, service.pid, served)
    if views is None:
        views = _offline_views(current, config)
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


def _run_locally(current: Settings, config: ServiceConfig, name: str) -> StoredJobRun:
    from evalkit.alerts import build_sinks, evaluate_rules
    from evalkit.scheduler import JobRunner, NotStarted
    from evalkit.store.store import Store

    sinks = build_sinks(config.alerts)
    access = store_access(current, f"evalkit jobs run {name}")

    def after(store: Store, run: StoredJobRun) -> None:
        if config.alerts.rules:
            evaluate_rules(store, config.alerts, sinks)

    runner = JobRunner(config, settings=current, session=access, after_job=after)
    run = runner.attempt(name, trigger="manual")
    deliver_outbox(config, sinks, access, quiet=True)
    if isinstance(run, NotStarted):
        raise StoreError(run.message)
    return run


def _trigger_wait(seconds: float) -> float:
    from evalkit.scheduler import trigger_wait

    try:
        return trigger_wait(seconds)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


@jobs_app.command("run")
def run_job(
    name: Annotated[str, typer.Argument(help="Job name (see `evalkit jobs list`).")],
    wait: Annotated[
        bool, typer.Option(help="Wait for the job to end (when handed to evalkit serve).")
    ] = True,
    timeout: Annotated[
        float,
        typer.Option(
            help="Seconds to wait for a job handed to evalkit serve (at most a week).",
            callback=_trigger_wait,
        ),
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

    from evalkit.scheduler import find_service, service_config

    current = settings()
    config = service_config(current)
    config.job(name)
    service = None if local else find_service(current.resolved_store_path)
    data: dict[str, Any] | None
    if service is not None:
        if not service.loopback:
            raise ConfigError(
                f"evalkit serve (pid {service.pid}) does not listen on loopback and refuses "
                "jobs over HTTP; run with --local (it then waits for the store)"
            )
        say(f"handing job {name} to evalkit serve (pid {service.pid}, {service.url})")
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
        _tell_config_changed(config, service.pid, body)
        if response.status_code == 404:
            raise ConfigError(f"evalkit serve: {body.get('error')} (restart it to reload)")
        if response.status_code == 503 and body.get("reason") == "store":
            raise StoreError(f"evalkit serve: {body.get('error')}")
        if response.status_code in (409, 503):
            message = f"evalkit serve: {body.get('error')}"
            say(message)
            if output is OutputFormat.json:
                kind = "JobRunning" if response.status_code == 409 else "ServiceStopping"
                emit_json(
                    {"error": {"type": kind, "message": message, "exit_code": JOB_NOT_SUCCEEDED}}
                )
            raise typer.Exit(JOB_NOT_SUCCEEDED)
        data = body.get("job_run")
        if data is None:
            waited = f"did not end within --timeout {timeout:g}s; it" if wait else "is handed over:"
            say(f"job {name} {waited} goes on in evalkit serve; follow it with `evalkit jobs list`")
            if output is OutputFormat.json:
                emit_json({"job": name, "finished": False, "service": service.url})
            if wait:
                # Not known to have succeeded: a CI step waiting on the job must not pass.
                raise typer.Exit(JOB_NOT_SUCCEEDED)
            return
    else:
        data = _run_locally(current, config, name).to_dict()
    if output is OutputFormat.json:
        emit_json(data)
    else:
        _print_job_run(data)
    if data["status"] != "succeeded":
        raise typer.Exit(JOB_NOT_SUCCEEDED)


@jobs_app.command("history")
def job_history(
    name: Annotated[str | None, typer.Argument(help="Only this job.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many runs.")] = 20,
    output: Format = OutputFormat.table,
) -> None:
    """Past job runs, newest first.

    Example: evalkit jobs history nightly-demo --limit 5
    """
    from evalkit.store.jobs import list_job_runs

    with service_store("evalkit jobs history") as store:
        runs = list_job_runs(store, job=name, limit=limit)
    if name is not None and not runs:
        configured = [job.name for job in settings().jobs]
        if name not in configured:
            # A job removed from evalkit.toml keeps its history; a name never seen is a typo.
            raise InputError(
                f"no job named {name!r} has run or is configured (configured: "
                f"{', '.join(configured) or 'none'})",
                field="name",
            )
    print_listing(
        runs,
        output,
        title="job runs",
        columns=["job run", "job", "trigger", "status", "started (UTC)", "seconds", "error"],
        row=lambda run: [
            run.job_run_id,
            run.job,
            run.trigger,
            run.status,
            f"{run.started_at:%Y-%m-%d %H:%M:%S}",
            run.seconds,
            (run.error or "")[:80],
        ],
    )
