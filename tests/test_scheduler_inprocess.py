"""``evalkit serve``'s service in this process: its HTTP endpoint and what it does at
start-up, without the cost of a child process."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from test_scheduler_support import Receiver
from waiting import wait_until

from evalkit.cli import invoke
from evalkit.config import Settings, load_settings
from evalkit.scheduler import SchedulerService, service_config
from evalkit.store import RunSpec, Store
from evalkit.store.access import FileLock, store_sibling
from evalkit.store.jobs import StoredJobRun, list_job_runs, record_job_run, start_job_run
from evalkit.store.runs import create_run, get_run

PASS = f'command = [{json.dumps(sys.executable)}, "-c", "pass"]'


@pytest.fixture
def configure(evalkit_home: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Settings]:
    """Writes evalkit.toml (read by the service and the CLI alike) and loads it."""
    path = evalkit_home.parent / "evalkit.toml"
    monkeypatch.setenv("EVALKIT_CONFIG", str(path))

    def write(text: str) -> Settings:
        path.write_text(text, encoding="utf-8")
        loaded = load_settings()
        Store.open(loaded.resolved_store_path).close()
        return loaded

    return write


@pytest.fixture
def services() -> Iterator[list[SchedulerService]]:
    started: list[SchedulerService] = []
    yield started
    for service in started:
        service.stop()


def start(services: list[SchedulerService], settings: Settings) -> SchedulerService:
    service = SchedulerService(service_config(settings), settings, host="127.0.0.1", port=0)
    services.append(service)
    service.start()
    return service


@pytest.mark.parametrize("wait", ["inf", "nan", "1e300", "1e12", "-5", "abc"])
def test_a_wait_that_is_no_number_of_seconds_is_refused_with_400(
    configure: Callable[[str], Settings], services: list[SchedulerService], wait: str
) -> None:
    """inf or 1e300 overflowed threading's wait: a traceback in serve, the connection dropped."""
    service = start(services, configure(f'[[jobs]]\nname = "ok"\nkind = "command"\n{PASS}\n'))
    response = httpx.post(f"{service.url}/jobs/ok/run", params={"wait": wait}, timeout=30)
    assert response.status_code == 400
    assert "wait must be a number of seconds from 0 to 604800" in response.json()["error"]
    assert httpx.get(f"{service.url}/healthz", timeout=30).status_code == 200
    assert not service.runner.running()


@pytest.mark.parametrize("timeout", ["inf", "nan", "1e12", "-5", "-inf"])
def test_jobs_run_refuses_a_timeout_that_is_no_number_of_seconds(
    configure: Callable[[str], Settings], capsys: pytest.CaptureFixture[str], timeout: str
) -> None:
    """Before, inf, nan and 1e12 ended in an OverflowError traceback; -5 was accepted."""
    configure(f'[[jobs]]\nname = "ok"\nkind = "command"\n{PASS}\n')
    assert invoke(["jobs", "run", "ok", "--timeout", timeout]) == 2
    err = capsys.readouterr().err
    assert "--timeout" in err
    assert "is not a wait in seconds from 0 to 604800" in err


def held_job(flag: Path) -> str:
    """A job that runs until ``flag`` exists (at most a minute)."""
    code = f"import os, time\nwhile not os.path.exists({str(flag)!r}): time.sleep(0.05)"
    argv = json.dumps([sys.executable, "-c", code])
    return f'[[jobs]]\nname = "held"\nkind = "command"\ncommand = {argv}\ntimeout = 60\n'


def test_jobs_run_as_json_prints_json_when_serve_is_busy_or_stopping(
    configure: Callable[[str], Settings],
    services: list[SchedulerService],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """docs/cli.md: a command asked for JSON prints one JSON object whether it succeeded or
    not; on 409 and 503 it printed nothing."""
    flag = tmp_path / "go"
    service = start(services, configure(held_job(flag)))
    try:
        assert httpx.post(f"{service.url}/jobs/held/run", timeout=30).status_code == 202
        wait_until(lambda: service.runner.is_running("held"), timeout=30)
        assert invoke(["jobs", "run", "held", "--format", "json"]) == 1
        out = json.loads(capsys.readouterr().out)
        assert out["error"]["type"] == "JobRunning"
        assert out["error"]["exit_code"] == 1
        assert "job held is already running" in out["error"]["message"]
        service.stopping.set()
        try:
            assert invoke(["jobs", "run", "held", "--format", "json"]) == 1
        finally:
            service.stopping.clear()
        out = json.loads(capsys.readouterr().out)
        assert out["error"] == {
            "type": "ServiceStopping",
            "message": "evalkit serve: evalkit serve is stopping",
            "exit_code": 1,
        }
    finally:
        flag.touch()


@pytest.mark.slow
def test_jobs_run_handed_to_serve_says_who_holds_the_store_and_exits_3(
    configure: Callable[[str], Settings],
    services: list[SchedulerService],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A job that could not get the store was reported as 'already running' with exit 1;
    docs/cli.md gives a store failure exit 3."""
    settings = configure(
        f'[scheduler]\nlock_wait = "1s"\n\n[[jobs]]\nname = "ok"\nkind = "command"\n{PASS}\n'
    )
    service = start(services, settings)
    holder = FileLock(
        store_sibling(settings.resolved_store_path, ".writer.lock"), program="a migration"
    )
    assert holder.acquire(purpose="holding the store", wait=10)
    try:
        assert invoke(["jobs", "run", "ok", "--format", "json"]) == 3
    finally:
        holder.release()
    captured = capsys.readouterr()
    error = json.loads(captured.out)["error"]
    assert (error["type"], error["exit_code"]) == ("StoreError", 3)
    assert "job ok could not start" in error["message"]
    # The lock is held in this very process, the service's: named by its work, not its pid.
    assert "held now by this process's 'holding the store' (a migration)" in error["message"]
    assert "waited 1 s for the store" in error["message"]
    assert "already running" not in captured.err
    # A job that really is running still answers 409 (exit 1): see the JSON test above.
    assert not service.runner.running()


@pytest.mark.slow
def test_a_scheduled_run_records_the_time_it_was_due(
    configure: Callable[[str], Settings], services: list[SchedulerService]
) -> None:
    """docs/store.md: job_runs.scheduled_for is the time a scheduled run was due (it was
    always NULL); a manual run has none."""
    settings = configure(
        f'[[jobs]]\nname = "often"\nkind = "command"\ninterval = "1s"\n{PASS}\n'
        f'\n[[jobs]]\nname = "ok"\nkind = "command"\n{PASS}\n'
    )
    service = start(services, settings)
    assert httpx.post(f"{service.url}/jobs/ok/run?wait=60", timeout=90).status_code == 200

    def scheduled() -> list[StoredJobRun]:
        runs = service.runner.running()
        with service.access("test: reading the job runs") as store:
            done = list_job_runs(store, job="often")
        return [run for run in done if run.status == "succeeded" and "often" not in runs]

    wait_until(lambda: len(scheduled()) >= 2, timeout=60, what="two scheduled runs")
    service.stop()
    with Store.open(settings.resolved_store_path, read_only=True) as store:
        often = list_job_runs(store, job="often")
        (manual,) = list_job_runs(store, job="ok")
    assert manual.scheduled_for is None
    times = sorted(run.scheduled_for for run in often if run.scheduled_for is not None)
    assert len(times) == len(often) >= 2
    for run in often:
        assert run.scheduled_for is not None
        assert run.trigger == "schedule"
        late = (run.started_at - run.scheduled_for).total_seconds()
        assert 0 <= late < 5, (run.started_at, run.scheduled_for)
    # Each run was due at its own tick of the 1 s interval.
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(times)]
    assert all(gap >= 1 and abs(gap - round(gap)) < 1e-3 for gap in gaps), gaps


def ran_on_schedule(store: Store, job: str, due: datetime) -> None:
    """Record that command job ``job`` ran on schedule, due at ``due`` (by another process)."""
    record_job_run(
        store,
        job=job,
        kind="command",
        trigger="schedule",
        status="succeeded",
        started_at=due,
        finished_at=due + timedelta(seconds=1),
        pid=1,
        host="elsewhere",
        error=None,
        scheduled_for=due,
    )


def test_a_run_missed_while_serve_was_down_runs_once_at_start_up(
    configure: Callable[[str], Settings], services: list[SchedulerService]
) -> None:
    """docs/scheduler.md: runs missed while the service was down are coalesced into one run
    at start-up if within misfire_grace_time. APScheduler alone only looked ahead."""
    now = datetime.now(UTC).replace(tzinfo=None)
    # Due hourly at a minute two to three minutes ago: the next regular time is ~57 min off.
    missed = now.replace(second=0, microsecond=0) - timedelta(minutes=2)
    hourly = f'cron = "{missed.minute} * * * *"'
    jobs = {
        "missed": ("300s", missed - timedelta(hours=3)),  # down for hours: runs once
        "done": ("300s", missed),  # this time was run already
        "late": ("60s", missed - timedelta(hours=1)),  # missed by more than its grace
        "new": ("300s", None),  # never ran on schedule: nothing says serve was down
    }
    text = "".join(
        f'[[jobs]]\nname = "{name}"\nkind = "command"\n{PASS}\n{hourly}\n'
        f'misfire_grace_time = "{grace}"\n\n'
        for name, (grace, _) in jobs.items()
    )
    settings = configure(text)
    with Store.open(settings.resolved_store_path) as store:
        for name, (_, last) in jobs.items():
            if last is not None:
                ran_on_schedule(store, name, last)
    service = start(services, settings)

    def runs(name: str) -> list[StoredJobRun]:
        with service.access("test: reading the job runs") as store:
            return list_job_runs(store, job=name)

    wait_until(
        lambda: [run.status for run in runs("missed")] == ["succeeded", "succeeded"],
        timeout=60,
        what="the missed run",
    )
    wait_until(lambda: not service.runner.running(), timeout=60, what="the jobs to end")
    service.stop()
    with Store.open(settings.resolved_store_path, read_only=True) as store:
        newest, _ = list_job_runs(store, job="missed")
        assert newest.trigger == "schedule"
        assert newest.scheduled_for == missed
        assert len(list_job_runs(store, job="done")) == 1
        assert len(list_job_runs(store, job="late")) == 1
        assert list_job_runs(store, job="new") == []


def test_a_run_missed_while_serve_was_down_beyond_its_grace_is_said_and_counted(
    configure: Callable[[str], Settings],
    services: list[SchedulerService],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """docs/scheduler.md: a run too late to start is skipped and counted; a nightly the
    service was down for was skipped without a word or a misfire."""
    now = datetime.now(UTC).replace(tzinfo=None)
    missed = now.replace(second=0, microsecond=0) - timedelta(minutes=2)
    settings = configure(
        f'[[jobs]]\nname = "late"\nkind = "command"\n{PASS}\n'
        f'cron = "{missed.minute} * * * *"\nmisfire_grace_time = "60s"\n'
    )
    last = missed - timedelta(hours=1)
    with Store.open(settings.resolved_store_path) as store:
        ran_on_schedule(store, "late", last)
    with caplog.at_level("WARNING", logger="evalkit.scheduler"):
        service = start(services, settings)
    (job,) = service.state.jobs()
    assert job["misfires"] == 1
    assert (
        'evalkit_job_misfires_total{job="late"} 1.0'
        in httpx.get(f"{service.url}/metrics", timeout=10).text
    )
    assert (
        f"job late was due at {missed.isoformat(timespec='seconds')}+00:00 while evalkit serve "
        "was down, more than its misfire_grace_time (60 s) ago: that run is skipped"
    ) in caplog.text
    service.stop()
    with Store.open(settings.resolved_store_path, read_only=True) as store:
        assert len(list_job_runs(store, job="late")) == 1


def test_a_job_run_left_by_a_killed_serve_lists_the_run_it_left(
    configure: Callable[[str], Settings],
    services: list[SchedulerService],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """docs/scheduler.md: job runs record the runs they stored; the recovery after kill -9
    marked the job run interrupted with run_ids [], and said only "job run ID was
    interrupted", naming neither the job nor the process."""
    settings = configure(f'[[jobs]]\nname = "nightly"\nkind = "command"\n{PASS}\n')
    dead = subprocess.Popen([sys.executable, "-c", "pass"])  # the killed serve's pid
    dead.wait()
    began = datetime.now(UTC).replace(tzinfo=None)
    spec = RunSpec(
        kind="goldset",
        retriever_kind="http",
        k=10,
        measures=("ndcg@10",),
        evalkit_version="test",
        goldset_name="gs",
        n_queries=10,
        label="nightly",
    )
    with Store.open(settings.resolved_store_path) as store:
        earlier = create_run(store, spec, started_at=began - timedelta(minutes=5))
        orphan = start_job_run(
            store,
            job="nightly",
            kind="goldset_replay",
            trigger="schedule",
            scheduled_for=began,
            pid=dead.pid,
            host=socket.gethostname(),
        )
        with store.working_for(orphan.job_run_id) as working:
            left = create_run(working, spec, started_at=orphan.started_at + timedelta(seconds=1))
        other = create_run(
            store,
            replace(spec, label="by hand"),
            started_at=orphan.started_at + timedelta(seconds=2),
        )
    with caplog.at_level("WARNING", logger="evalkit.scheduler"):
        service = start(services, settings)
    service.stop()
    assert (
        f"job run {orphan.job_run_id} of job nightly (pid {dead.pid} on {socket.gethostname()}, "
        f"started {orphan.started_at:%Y-%m-%d %H:%M:%S} UTC) was left running by a process "
        "that stopped before it finished: marked interrupted"
    ) in caplog.text
    with Store.open(settings.resolved_store_path, read_only=True) as store:
        (job_run,) = list_job_runs(store, job="nightly")
        runs = {run_id: get_run(store, run_id) for run_id in (earlier, left, other)}
    assert job_run.status == "interrupted"
    assert job_run.run_ids == (left,)
    assert {run.status for run in runs.values()} == {"failed"}
    assert str(runs[left].error).startswith("interrupted: ")


@pytest.mark.slow
def test_serve_abandons_an_alert_its_receiver_refuses_and_delivers_the_next(
    configure: Callable[[str], Settings], services: list[SchedulerService]
) -> None:
    """A 400 for one alert held every later alert of the sink behind it for ever; now the
    refused one is abandoned at once, /healthz counts it, and the next alert goes out."""
    receiver = Receiver(secret=None).start()
    try:
        jobs = "".join(
            f'[[jobs]]\nname = "{name}"\nkind = "command"\n'
            f'command = [{json.dumps(sys.executable)}, "-c", "import sys; sys.exit(1)"]\n'
            for name in ("first", "second")
        )
        service = start(
            services,
            configure(
                f"{jobs}[alerts]\ndeliver_interval = 0.1\n"
                f'[[alerts.sinks]]\nname = "hook"\nkind = "webhook"\nurl = "{receiver.url}"\n'
                'retries = 0\n[[alerts.rules]]\nname = "jobs"\nkind = "job_failure"\n'
            ),
        )
        receiver.refuse = {"first": 400}
        for name in ("first", "second"):
            ran = httpx.post(f"{service.url}/jobs/{name}/run", params={"wait": 30}, timeout=60)
            assert ran.json()["job_run"]["status"] == "failed"

        def settled() -> bool:
            health = httpx.get(f"{service.url}/healthz", timeout=30).json()
            return (health["outbox_pending"], health["outbox_abandoned"]) == (0, 1)

        wait_until(settled, timeout=30, what="the refused alert abandoned, the next delivered")
    finally:
        receiver.stop()
    assert [(r.payload["subject"], r.status) for r in receiver.all()] == [
        ("first", 400),
        ("second", 200),
    ]
