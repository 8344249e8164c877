"""``evalkit serve`` as a real process: kill -9 mid-job and restart, overlapping runs,
SIGTERM, the health endpoint, and the one-writer design with concurrent processes."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from test_answers_judge import (  # noqa: F401  (fixture)
    FakeJudge,
    _answers_file,
    _judge_environment,
    fake_judge,
)
from test_scheduler_support import (  # noqa: F401  (fixtures)
    SECRET,
    FakeRetriever,
    Receiver,
    evalkit_command,
    make_goldset,
    popen_serve,
    receiver_fixture,
    retriever_fixture,
    serves_fixture,
    wait_until,
)

from evalkit.store import Store
from evalkit.store.alerts import list_alerts, outbox_counts
from evalkit.store.goldsets import list_goldsets, save_goldset
from evalkit.store.jobs import list_job_runs
from evalkit.store.runs import list_runs

pytestmark = pytest.mark.slow

STARTUP = 120.0


@dataclass
class Home:
    """A store, its configuration file and the environment of child processes."""

    root: Path
    config: Path
    env: dict[str, str]

    @property
    def store(self) -> Path:
        return self.root / "home" / "evalkit.duckdb"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    env = {
        **os.environ,
        "EVALKIT_HOME": str(tmp_path / "home"),
        "EVALKIT_CONFIG": str(tmp_path / "evalkit.toml"),
        "HOOK_SECRET": SECRET,
        "EVALKIT_HTTP_RETRIES": "0",
        "EVALKIT_HTTP_TIMEOUT": "300",
    }
    env.pop("EVALKIT_STORE_PATH", None)
    return Home(root=tmp_path, config=tmp_path / "evalkit.toml", env=env)


@dataclass
class Serve:
    """A running ``evalkit serve`` child process."""

    process: subprocess.Popen[bytes]
    log: Path
    url: str

    def post(self, job: str, wait: float = 0.0) -> httpx.Response:
        return httpx.post(f"{self.url}/jobs/{job}/run", params={"wait": wait}, timeout=wait + 30)

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=10).text

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=90)


def start_serve(home: Home, name: str) -> Serve:
    log = home.root / f"{name}.log"
    process = popen_serve(log, home.env, home.root)
    info = home.store.with_name(home.store.name + ".serve.json")

    def ready() -> bool:
        if process.poll() is not None:
            pytest.fail(f"evalkit serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            return bool(json.loads(info.read_text())["pid"] == process.pid)
        except (OSError, ValueError, KeyError):
            return False

    wait_until(ready, timeout=STARTUP, what="evalkit serve to start")
    url = json.loads(info.read_text())["url"]
    assert httpx.get(f"{url}/healthz", timeout=10).json()["status"] == "ok"
    return Serve(process=process, log=log, url=url)


def finished(home: Home, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``evalkit ARGS`` run to its end over ``home`` (with the variables ``env`` set):
    exit code, stdout and stderr."""
    return subprocess.run(
        evalkit_command(*args),
        env={**home.env, **env},
        cwd=home.root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def toml_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(value) for value in values) + "]"


QUICK_JOB = f"""[[jobs]]
name = "quick"
kind = "command"
command = {toml_list([sys.executable, "-c", "pass"])}
"""
"""A job that succeeds at once, run on demand."""


def waiting_for(gate: Path) -> list[str]:
    """A command that runs until the file ``gate`` exists."""
    wait = f"import pathlib, time\nwhile not pathlib.Path({str(gate)!r}).exists(): time.sleep(0.05)"
    return [sys.executable, "-c", wait]


def test_kill_9_mid_job_then_restart_leaves_a_consistent_store_and_sends_nothing_twice(
    home: Home, receiver: Receiver, retriever: FakeRetriever, serves: list[Serve]
) -> None:
    from evalkit.pipeline import evaluate_goldset
    from evalkit.records.requests import GoldsetRunRequest
    from evalkit.retrievers.http import HttpRetriever

    store = Store.open(home.store)
    with HttpRetriever(retriever.url) as http:
        baseline = evaluate_goldset(
            store, make_goldset(), http, GoldsetRunRequest(k=10, label="baseline")
        ).run
    store.close()
    home.config.write_text(
        f"""
[scheduler]
health_port = 0
shutdown_grace = "2s"

[[jobs]]
name = "replay"
kind = "goldset_replay"
goldset = "gs"
http_retriever = "{retriever.url}"
k = 10

[alerts]
retry_initial = 0.2
retry_max = 0.5
deliver_interval = 0.2

[[alerts.sinks]]
name = "hook"
kind = "webhook"
url = "{receiver.url}"
secret_env = "HOOK_SECRET"
retries = 0

[[alerts.rules]]
name = "precision-drop"
kind = "precision_regression"
goldset = "gs"
label = "replay"
baseline_run = "{baseline.run_id}"
measures = ["precision@10"]
min_effect = 0.02
resamples = 500

[[alerts.rules]]
name = "jobs"
kind = "job_failure"
cooldown = 0
""",
        encoding="utf-8",
    )
    first = start_serve(home, "serve-1")
    serves.append(first)

    retriever.mode = "bad"
    handed = first.post("replay", wait=300)
    assert handed.status_code == 200
    assert handed.json()["job_run"]["status"] == "succeeded"
    wait_until(lambda: len(receiver.accepted()) == 1, what="the regression alert")

    receiver.fail_with = 503
    retriever.mode = "good"
    assert first.post("replay", wait=120).status_code == 200
    wait_until(
        lambda: any(r.payload["status"] == "resolved" for r in receiver.all()),
        what="a failed attempt to deliver the resolution",
    )

    retriever.mode = "hold"
    hits = retriever.hits
    assert first.post("replay").status_code == 202
    wait_until(lambda: retriever.hits > hits, what="the job to be mid-run")
    first.process.kill()
    assert first.process.wait(timeout=30) == -signal.SIGKILL

    receiver.fail_with = None
    retriever.mode = "good"
    retriever.release.set()
    second = start_serve(home, "serve-2")
    serves.append(second)
    wait_until(lambda: len(receiver.accepted()) == 3, what="the outbox after restart")
    assert second.stop() == 0

    accepted = receiver.accepted()
    told = [(r.payload["rule"], r.payload["status"]) for r in accepted]
    assert told == [
        ("precision-drop", "firing"),
        ("precision-drop", "resolved"),
        ("jobs", "firing"),
    ]
    assert all(r.signature_valid for r in receiver.all())
    ids = [r.payload["alert_id"] for r in accepted]
    assert len(set(ids)) == 3, "no alert was accepted twice"
    assert accepted[2].payload["evidence"]["status"] == "interrupted"
    with Store.open(home.store, read_only=True) as store:
        runs = list_runs(store, goldset="gs")
        job_runs = list_job_runs(store, job="replay")
        alerts = list_alerts(store)
        outbox = outbox_counts(store)
    # Killed mid-replay, the job had recorded nothing of its run (as `evalkit run`).
    assert [run.status for run in runs] == ["complete", "complete", "complete"]
    assert [run.status for run in job_runs] == ["interrupted", "succeeded", "succeeded"]
    assert "stopped before it finished" in str(job_runs[0].error)
    assert job_runs[0].run_ids == ()
    assert sorted(alert.alert_id for alert in alerts) == sorted(ids)
    assert outbox == {("hook", "delivered"): 3}
    log = second.log.read_text()
    assert "marked interrupted" in log
    assert SECRET not in log + first.log.read_text()


def test_a_job_killed_mid_replay_leaves_no_run_and_its_job_run_interrupted(
    home: Home, receiver: Receiver, retriever: FakeRetriever, serves: list[Serve]
) -> None:
    """kill -9 mid-replay: the job replays without the store, as `evalkit run` does, so it
    leaves no run behind (none `running` for a writing command to mark failed); at
    restart its job run is marked interrupted, listing no run, and the job-failure rule
    alerts on it."""
    with Store.open(home.store) as store:
        save_goldset(store, make_goldset())
    home.config.write_text(
        f"""
[scheduler]
health_port = 0

[[jobs]]
name = "replay"
kind = "goldset_replay"
goldset = "gs"
http_retriever = "{retriever.url}"
k = 10
label = "nightly"

[alerts]
deliver_interval = 0.2

[[alerts.sinks]]
name = "hook"
kind = "webhook"
url = "{receiver.url}"
secret_env = "HOOK_SECRET"
retries = 0

[[alerts.rules]]
name = "jobs"
kind = "job_failure"
""",
        encoding="utf-8",
    )
    first = start_serve(home, "serve-1")
    serves.append(first)
    retriever.mode = "hold"
    assert first.post("replay").status_code == 202
    wait_until(lambda: retriever.hits > 0, what="the job to be mid-run")
    first.process.kill()
    assert first.process.wait(timeout=30) == -signal.SIGKILL
    retriever.mode = "good"
    retriever.release.set()
    with Store.open(home.store, read_only=True) as store:
        assert list_runs(store) == []

    command = finished(
        home, "run", "--goldset", "gs", "--http-retriever", retriever.url, "--label", "cli"
    )
    assert command.returncode == 0, command.stderr
    assert "was left running by a process that stopped" not in command.stderr
    second = start_serve(home, "serve-2")
    serves.append(second)
    wait_until(lambda: len(receiver.accepted()) == 1, what="the job failure alert")
    assert second.stop() == 0

    with Store.open(home.store, read_only=True) as store:
        (job_run,) = list_job_runs(store, job="replay")
        assert list_runs(store, label="nightly") == []
    assert (job_run.status, job_run.run_ids) == ("interrupted", ())
    evidence = receiver.accepted()[0].payload["evidence"]
    assert (evidence["status"], evidence["run_ids"]) == ("interrupted", [])
    history = finished(home, "jobs", "history", "replay", "--format", "json")
    assert history.returncode == 0, history.stderr
    assert json.loads(history.stdout)[0]["run_ids"] == []


def test_an_overrunning_job_never_runs_twice_and_sigterm_interrupts_it(
    home: Home,
    serves: list[Serve],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Store.open(home.store).close()
    sleeper = [sys.executable, "-c", "import time; time.sleep(2.5)"]
    home.config.write_text(
        f"""
[scheduler]
health_port = 0
shutdown_grace = "0.5s"

[[jobs]]
name = "sleepy"
kind = "command"
command = {toml_list(sleeper)}
interval = "1s"
description = "sleeps longer than its interval"

{QUICK_JOB}
[[jobs]]
name = "long"
kind = "command"
command = {toml_list([sys.executable, "-c", "import time; time.sleep(120)"])}
""",
        encoding="utf-8",
    )
    serve = start_serve(home, "serve")
    serves.append(serve)

    def overlapped_after_a_run() -> bool:
        text = serve.metrics()
        return (
            'evalkit_job_runs_total{job="sleepy",status="succeeded"} 1' in text
            and 'evalkit_job_overlaps_skipped_total{job="sleepy"} 0' not in text
        )

    wait_until(overlapped_after_a_run, timeout=60, what="a run and a skipped overlap")
    # Said once, in evalkit's words: APScheduler's own warning of it is left out.
    said = serve.log.read_text()
    assert "job sleepy is still running: the scheduled run is skipped (no overlap)" in said
    assert "maximum number of running instances" not in said
    metrics = serve.metrics()
    assert "evalkit_up 1" in metrics
    assert 'evalkit_job_last_run_success{job="sleepy"} 1' in metrics
    assert "# TYPE evalkit_job_last_run_age_seconds gauge" in metrics
    assert 'evalkit_job_next_run_timestamp_seconds{job="sleepy"}' in metrics
    health = httpx.get(f"{serve.url}/healthz", timeout=10).json()
    assert health["status"] == "ok"
    assert health["jobs"] == 3

    from evalkit.cli import invoke

    for name in ("EVALKIT_HOME", "EVALKIT_CONFIG"):
        monkeypatch.setenv(name, home.env[name])
    assert invoke(["jobs", "list", "--format", "json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["service"] == serve.url
    job, quick, _ = listing["jobs"]
    assert (job["name"], job["schedule"], job["enabled"]) == ("sleepy", "every 1s", True)
    assert job["next_run"] is not None
    assert job["overlaps_skipped"] >= 1
    assert (quick["schedule"], quick["next_run"]) == ("on demand", None)
    assert invoke(["jobs", "run", "quick", "--format", "json"]) == 0
    handed = capsys.readouterr()
    assert "handing job quick to evalkit serve" in handed.err
    ran = json.loads(handed.out)
    assert (ran["job"], ran["status"], ran["trigger"], ran["pid"]) == (
        "quick",
        "succeeded",
        "manual",
        serve.process.pid,
    )

    # Two runs of the job that overruns its interval, one after the other, before stopping:
    # the commands above can take less time than the first run's remainder.
    wait_until(
        lambda: 'evalkit_job_runs_total{job="sleepy",status="succeeded"} 2' in serve.metrics(),
        timeout=60,
        what="a second run of the overrunning job",
    )
    assert serve.post("long").status_code == 202
    wait_until(lambda: 'evalkit_job_running{job="long"} 1' in serve.metrics(), timeout=60)
    assert serve.stop() == 0
    with Store.open(home.store, read_only=True) as store:
        runs = sorted(list_job_runs(store, job="sleepy"), key=lambda run: run.started_at)
        (long_run,) = list_job_runs(store, job="long")
    assert len(runs) >= 2
    assert all(run.finished_at is not None for run in runs)
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished_at is not None
        assert earlier.finished_at <= later.started_at, "two copies overlapped"
    assert {run.status for run in runs} <= {"succeeded", "interrupted"}
    assert long_run.status == "interrupted"
    assert long_run.error == "evalkit serve is stopping"
    assert "job long interrupted: evalkit serve is stopping\n" in serve.log.read_text()


def _spawn(
    home: Home, argv: list[str], name: str, **env: str
) -> tuple[subprocess.Popen[bytes], Path]:
    out = home.root / f"{name}.out"
    with out.open("wb") as sink:
        process = subprocess.Popen(
            argv, env={**home.env, **env}, cwd=home.root, stdout=sink, stderr=subprocess.STDOUT
        )
    return process, out


READER = (
    "import sys\n"
    "from pathlib import Path\n"
    "from evalkit.store.access import StoreAccess\n"
    "from evalkit.store.runs import list_runs\n"
    "access = StoreAccess(Path(sys.argv[1]), wait=120, program='dashboard',"
    " on_wait=lambda m: print(m, flush=True))\n"
    "with access.reader() as store:\n"
    "    print('runs:', len(list_runs(store)), flush=True)\n"
)
NAIVE_READER = (
    "import sys\nfrom evalkit.store import Store\nStore.open(sys.argv[1], read_only=True)\n"
)


HOLDING_KIND = """
import httpx
from pydantic import BaseModel

from evalkit.scheduler.jobs import JobKind, JobOutcome, register_job_kind


class Params(BaseModel):
    url: str


def hold(ctx, params):
    ctx.require_store()
    httpx.post(params.url, json={"query_id": "held", "query": "q", "k": 10}, timeout=300)
    return JobOutcome()


register_job_kind(JobKind("hold_store", Params, hold, "hold the store through a slow call"))
"""
"""A plug-in job kind that holds the store (the default) through a call to ``url``."""


def test_one_writer_serve_cli_and_a_reader_share_the_store(
    home: Home,
    retriever: FakeRetriever,
    serves: list[Serve],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = Store.open(home.store)
    save_goldset(store, make_goldset())
    store.close()
    # A job that holds the store for its duration: a plug-in kind (every built-in kind
    # that waits on a retriever or a judge gives the store back meanwhile).
    (home.root / "holding_kind.py").write_text(HOLDING_KIND, encoding="utf-8")
    home.config.write_text(
        f"""
[scheduler]
health_port = 0
lock_wait = "120s"
plugins = ["holding_kind"]

[[jobs]]
name = "replay"
kind = "hold_store"
url = "{retriever.url}"

[[jobs]]
name = "note"
kind = "retention"
""",
        encoding="utf-8",
    )
    serve = start_serve(home, "serve")
    serves.append(serve)
    retriever.mode = "hold"
    assert serve.post("replay").status_code == 202
    wait_until(lambda: retriever.hits > 0, what="the job to hold the store")

    naive, naive_out = _spawn(home, [sys.executable, "-c", NAIVE_READER, str(home.store)], "naive")
    reader, reader_out = _spawn(home, [sys.executable, "-c", READER, str(home.store)], "reader")
    writer, writer_out = _spawn(
        home, evalkit_command("jobs", "run", "note", "--local", "--format", "json"), "writer"
    )
    # Ad-hoc commands: a writer that waits its turn, one that gives up, and a reader.
    demo = str(Path(__file__).resolve().parents[1] / "goldsets" / "demo")
    importing = ("goldset", "import", "--format", "jsonl", demo, "--name")
    importer, importer_out = _spawn(home, evalkit_command(*importing, "demo"), "importer")
    impatient, impatient_out = _spawn(
        home, evalkit_command(*importing, "never"), "impatient", EVALKIT_STORE_WAIT="1"
    )
    lister, lister_out = _spawn(home, evalkit_command("runs", "list", "--format", "json"), "ls")
    from evalkit.cli import invoke

    for name in ("EVALKIT_HOME", "EVALKIT_CONFIG"):
        monkeypatch.setenv(name, home.env[name])
    assert invoke(["jobs", "run", "replay"]) == 1
    assert "job replay is already running" in capsys.readouterr().err
    assert naive.wait(timeout=180) != 0
    assert "held by another writing process" in naive_out.read_text()
    wait_until(
        lambda: "waiting to read the store" in reader_out.read_text(), timeout=180, what="reader"
    )
    wait_until(
        lambda: "waiting for the store" in writer_out.read_text(), timeout=180, what="writer"
    )
    assert "(evalkit serve: job replay)" in writer_out.read_text()
    assert impatient.wait(timeout=180) == 3
    assert "held by pid" in impatient_out.read_text()
    assert "(evalkit serve: job replay) since" in impatient_out.read_text()
    assert "waited 1 s for the store" in impatient_out.read_text()
    wait_until(
        lambda: "waiting for the store" in importer_out.read_text(), timeout=180, what="import"
    )
    wait_until(
        lambda: "waiting to read the store" in lister_out.read_text(), timeout=180, what="ls"
    )

    retriever.release.set()
    assert reader.wait(timeout=120) == 0
    assert writer.wait(timeout=120) == 0
    assert "runs: 0" in reader_out.read_text()
    assert importer.wait(timeout=120) == 0, importer_out.read_text()
    assert lister.wait(timeout=120) == 0, lister_out.read_text()
    written = json.loads(writer_out.read_text()[writer_out.read_text().index("{") :])
    assert (written["job"], written["status"], written["trigger"]) == (
        "note",
        "succeeded",
        "manual",
    )
    assert written["pid"] == writer.pid
    assert serve.stop() == 0
    with Store.open(home.store, read_only=True) as store:
        statuses = {run.job: run.status for run in list_job_runs(store)}
    assert statuses == {"replay": "succeeded", "note": "succeeded"}
    with Store.open(home.store, read_only=True) as store:
        assert {info.name for info in list_goldsets(store)} == {"gs", "demo"}


def _traffic_logs(root: Path) -> Path:
    """A folder of traffic logs: three queries on 2026-11-21."""
    logs = root / "logs"
    logs.mkdir()
    (logs / "queries.jsonl").write_text(
        "".join(
            json.dumps(
                {"query_id": f"t{i}", "timestamp": f"2026-11-21T0{i}:00:00Z", "text": f"q {i}"}
            )
            + "\n"
            for i in range(3)
        ),
        encoding="utf-8",
    )
    return logs


def _long_job(kind: str, home: Home, url: str) -> str:
    """The ``[[jobs]]`` table of job ``long`` of ``kind``, its slow part against ``url``
    (a retriever's for a replay, the judge's for answers)."""
    if kind == "traffic":
        return f"""
paths = [{json.dumps(str(_traffic_logs(home.root)))}]
window = "2026-11-21"
n = 3
http_retriever = "{url}"
k = 10
embed_sample = 0
answers = false
"""
    if kind == "sweep":
        sweep = home.root / "sweep.toml"
        sweep.write_text(
            f"""name = "ks"
goldset = "gs"
measures = ["precision@10"]

[retriever]
http_url = "{url}"

[grid]
k = [10]
""",
            encoding="utf-8",
        )
        return f"file = {json.dumps(str(sweep))}\n"
    if kind == "freshness":
        changes = home.root / "changes.jsonl"
        change = {"doc_id": "new-doc", "updated_at": "2026-11-21T00:00:00Z", "content": "fresh"}
        changes.write_text(json.dumps(change) + "\n", encoding="utf-8")
        return f"""
changes = [{json.dumps(str(changes))}]
http_retriever = "{url}"
probe_timeout = "1s"
probe_interval = "0.25s"
"""
    return f"path = {json.dumps(str(_answers_file(home.root / 'answers.jsonl')))}\n"


@pytest.mark.parametrize("kind", ["traffic", "sweep", "answers", "freshness"])
def test_a_long_job_leaves_the_store_to_other_processes_while_it_waits(
    kind: str,
    home: Home,
    retriever: FakeRetriever,
    fake_judge: FakeJudge,  # noqa: F811 (the fixture of test_answers_judge)
    serves: list[Serve],
) -> None:
    """A traffic replay, a sweep, an answer scoring and a freshness probe held the store
    for their whole run, as only a goldset replay did not: while the retriever or the judge
    took its time, `evalkit runs list` and every writer waited (and gave up past their
    wait), the dashboard showed cached figures and the service's own alerts waited. They
    now take the store only for short stretches, as `evalkit traffic replay`, `sweep`,
    `answers score` and `freshness` do, and their job run still lists what they stored."""
    with Store.open(home.store) as store:
        save_goldset(store, make_goldset())
    if kind == "answers":
        home.env.update(_judge_environment(fake_judge, home.root / "home"))
        fake_judge.hang_after = 0
        stalled = lambda: fake_judge.calls > 0  # noqa: E731
    else:
        retriever.mode = "hold"
        stalled = lambda: retriever.hits > 0  # noqa: E731
    slow = fake_judge.url if kind == "answers" else retriever.url
    home.config.write_text(
        f"""
[scheduler]
health_port = 0
lock_wait = "120s"

[[jobs]]
name = "long"
kind = "{kind}"
{_long_job(kind, home, slow)}
""",
        encoding="utf-8",
    )
    serve = start_serve(home, "serve")
    serves.append(serve)
    assert serve.post("long").status_code == 202
    try:
        wait_until(
            lambda: stalled() or 'job="long",status="failed"} 1' in serve.metrics(),
            timeout=180,
            what=f"the {kind} job to wait on its endpoint",
        )
        assert stalled(), serve.log.read_text()
        listed = finished(home, "runs", "list", "--format", "json", EVALKIT_STORE_WAIT="2")
        demo = str(Path(__file__).resolve().parents[1] / "goldsets" / "demo")
        imported = finished(
            home,
            "goldset",
            "import",
            "--format",
            "jsonl",
            demo,
            "--name",
            "demo",
            EVALKIT_STORE_WAIT="2",
        )
        assert 'evalkit_job_running{job="long"} 1' in serve.metrics()
    finally:
        retriever.release.set()
        fake_judge.released.set()
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    assert imported.returncode == 0, imported.stderr
    wait_until(
        lambda: 'evalkit_job_runs_total{job="long",status="succeeded"} 1' in serve.metrics(),
        timeout=180,
        what=f"the {kind} job to succeed",
    )
    assert serve.stop() == 0
    with Store.open(home.store, read_only=True) as store:
        (job_run,) = list_job_runs(store, job="long")
        runs = list_runs(store)
        scorings = store.fetch("SELECT scoring_id FROM answer_scorings")
        assert {info.name for info in list_goldsets(store)} == {"gs", "demo"}
    assert job_run.status == "succeeded"
    if kind == "answers":
        assert (runs, job_run.run_ids) == ([], ())
        assert [row[0] for row in scorings] == [job_run.summary["scoring_id"]]
    elif kind == "freshness":
        assert (runs, job_run.summary["n_read"], job_run.summary["n_pending"]) == ([], 1, 1)
    else:
        (run,) = runs
        assert (run.status, run.spec.kind) == (
            "complete",
            "traffic" if kind == "traffic" else "goldset",
        )
        assert job_run.run_ids == (run.run_id,)


HOLDER = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from evalkit.store.access import FileLock\n"
    "lock = FileLock(Path(sys.argv[1]), program='holder')\n"
    "assert lock.acquire(purpose='holding the store', wait=60)\n"
    "print('holding', flush=True)\n"
    "time.sleep(600)\n"
)


def test_sigterm_while_jobs_wait_for_the_store_starts_nothing_and_raises_no_alert(
    home: Home, retriever: FakeRetriever, serves: list[Serve]
) -> None:
    store = Store.open(home.store)
    save_goldset(store, make_goldset())
    store.close()
    jobs = "".join(
        f"""
[[jobs]]
name = "{name}"
kind = "goldset_replay"
goldset = "gs"
http_retriever = "{retriever.url}"
k = 10
interval = "1s"
"""
        for name in ("replay-a", "replay-b")
    )
    home.config.write_text(
        f"""
[scheduler]
health_port = 0
lock_wait = "120s"
shutdown_grace = "2s"
{jobs}
[[alerts.rules]]
name = "jobs"
kind = "job_failure"
cooldown = 0
""",
        encoding="utf-8",
    )
    lock_path = home.store.with_name(home.store.name + ".writer.lock")
    for round_ in range(4):
        serve = start_serve(home, f"serve-{round_}")
        serves.append(serve)
        _sigterm_while_waiting(home, serve, retriever, lock_path, f"holder-{round_}")
        with Store.open(home.store, read_only=True) as store:
            job_runs = list_job_runs(store)
            runs = list_runs(store, goldset="gs")
            alerts = list_alerts(store)
        assert {run.status for run in job_runs} == {"succeeded"}, serve.log.read_text()
        assert {run.status for run in runs} == {"complete"}
        assert alerts == []


def _sigterm_while_waiting(
    home: Home, serve: Serve, retriever: FakeRetriever, lock_path: Path, name: str
) -> None:
    """Both jobs of ``serve`` wait for a store another process holds; SIGTERM; release.

    The retriever then holds requests past the shutdown grace, so a job that started
    after the signal would be interrupted (a failed run and a job_failure alert).
    """

    def log() -> str:
        return serve.log.read_text()

    wait_until(
        lambda: "job replay-a succeeded" in log() and "job replay-b succeeded" in log(),
        timeout=120,
        what="both jobs to run once",
    )
    holder, holder_out = _spawn(home, [sys.executable, "-c", HOLDER, str(lock_path)], name)
    signalled = False
    try:
        wait_until(lambda: "holding" in holder_out.read_text(), timeout=60, what="holder")
        retriever.release.clear()
        waited = log().count("waiting for the store")
        since_held = len(log())

        quiet_since = {"hits": retriever.hits, "at": time.monotonic()}

        def retriever_quiet() -> bool:
            """No query reached the retriever for 2 s: no job is replaying."""
            if retriever.hits != quiet_since["hits"]:
                quiet_since.update(hits=retriever.hits, at=time.monotonic())
            return time.monotonic() - quiet_since["at"] >= 2.0

        def both_jobs_wait() -> bool:
            if log().count("waiting for the store") >= waited + 2:
                return True
            # A job the holder caught between its run and its bookkeeping is told it waits
            # once every 30 s; the scheduler skipping its next run shows it is still running,
            # and a quiet retriever that it is waiting rather than replaying (a replay on a
            # loaded machine can outlast the skip notice).
            skipped = log()[since_held:]
            running = all(
                f"job {job} is still running" in skipped for job in ("replay-a", "replay-b")
            )
            return retriever_quiet() and running

        wait_until(both_jobs_wait, timeout=60, what="both jobs to wait for the store")
        # Only now: a goldset replay does not hold the store, so the holder may have taken it
        # while a job replayed, which then waits to record its run, once its queries are
        # answered.
        retriever.mode = "hold"
        # Seen skipping, a job may be told who holds the store only at its next 30 s notice.
        wait_until(
            lambda: f"held by pid {holder.pid} (holder: holding the store)" in log(),
            timeout=60,
            what="the waiting job to name the holder",
        )
        assert f"held by pid {serve.process.pid} " not in log()
        serve.process.send_signal(signal.SIGTERM)
        wait_until(lambda: "received SIGTERM" in log(), what="SIGTERM")
        signalled = True
    finally:
        holder.kill()
        holder.wait(timeout=30)
        # Wait for serve to exit, not for a pause: a job started after the signal would
        # hold on the retriever past the 2 s grace and be interrupted before serve exits.
        if signalled:
            wait_until(lambda: serve.process.poll() is not None, timeout=90, what="serve to exit")
        retriever.mode = "good"
        retriever.release.set()
    assert serve.process.wait(timeout=90) == 0, log()
    assert "evalkit serve stopped" in log()


def test_metrics_negotiate_openmetrics_and_include_the_process_figures(
    home: Home, serves: list[Serve]
) -> None:
    Store.open(home.store).close()
    home.config.write_text(
        f"""
[scheduler]
health_port = 0

{QUICK_JOB}""",
        encoding="utf-8",
    )
    serve = start_serve(home, "serve")
    serves.append(serve)

    plain = httpx.get(f"{serve.url}/metrics", timeout=10)
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "evalkit_up 1" in plain.text
    assert 'evalkit_job_running{job="quick"} 0' in plain.text
    assert "process_resident_memory_bytes" in plain.text
    assert "python_info{" in plain.text
    assert "# EOF" not in plain.text

    open_metrics = httpx.get(
        f"{serve.url}/metrics",
        headers={"Accept": "application/openmetrics-text; version=1.0.0; charset=utf-8"},
        timeout=10,
    )
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
    assert open_metrics.text.endswith("# EOF\n")
    assert "# TYPE evalkit_job_runs counter" in open_metrics.text
    assert 'evalkit_job_runs_total{job="quick",status="succeeded"} 0' in open_metrics.text
    assert "process_cpu_seconds_total " in open_metrics.text
    assert serve.stop() == 0


def test_sigterm_while_serve_waits_for_the_store_at_start_up_stops_it_cleanly(
    home: Home, serves: list[Serve]
) -> None:
    """A signal during start-up (here: recovery waiting for a store another process holds)
    ends ``serve`` with exit 0 and its locks released, not killed half-started."""
    Store.open(home.store).close()
    home.config.write_text('[scheduler]\nhealth_port = 0\nlock_wait = "10m"\n', encoding="utf-8")
    lock_path = home.store.with_name(home.store.name + ".writer.lock")
    holder, holder_out = _spawn(home, [sys.executable, "-c", HOLDER, str(lock_path)], "holder")
    try:
        wait_until(lambda: "holding" in holder_out.read_text(), timeout=60, what="holder")
        log = home.root / "starting.log"
        process = popen_serve(log, home.env, home.root)
        serves.append(Serve(process=process, log=log, url=""))
        wait_until(
            lambda: "waiting for the store" in log.read_text(),
            timeout=STARTUP,
            what="serve to wait for the store",
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()
        assert "stopping during start-up (SIGTERM)" in log.read_text()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    # Nothing is left held: the next start takes the service lock and the store.
    serve = start_serve(home, "serve")
    serves.append(serve)
    assert serve.stop() == 0


def test_jobs_run_handed_to_serve_exits_1_when_the_job_outlives_its_timeout(
    home: Home, serves: list[Serve]
) -> None:
    """A CI step waiting on a job must not read "still running" as success."""
    gate = home.root / "release"
    home.config.write_text(
        f"""
[scheduler]
health_port = 0

[[jobs]]
name = "slow"
kind = "command"
command = {toml_list(waiting_for(gate))}
""",
        encoding="utf-8",
    )
    serve = start_serve(home, "serve")
    serves.append(serve)
    waited = finished(home, "jobs", "run", "slow", "--timeout", "1")
    assert waited.returncode == 1, waited.stderr
    assert "job slow did not end within --timeout 1s; it goes on in evalkit serve" in waited.stderr
    handed = finished(home, "jobs", "run", "slow", "--no-wait")
    # Already running: serve refuses a second run of it.
    assert handed.returncode == 1, handed.stderr
    gate.touch()
    assert serve.stop() == 0


def test_serve_on_a_port_in_use_names_the_port_and_the_setting(home: Home) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        home.config.write_text(f"[scheduler]\nhealth_port = {port}\n", encoding="utf-8")
        done = finished(home, "serve")
    assert done.returncode == 3, done.stderr
    assert f"evalkit serve cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "[scheduler] health_port" in done.stderr
    assert "[Errno" not in done.stderr


def test_serve_on_an_address_of_no_machine_names_the_setting(home: Home) -> None:
    """A misspelt health_host or [otlp] host was "[Errno -2] Name or service not known",
    exit 3, the OTLP receiver's naming neither the address nor the setting."""
    home.config.write_text('[scheduler]\nhealth_host = "nosuchhost.invalid"\n', encoding="utf-8")
    done = finished(home, "serve")
    assert done.returncode == 2, done.stderr
    assert (
        "error: evalkit serve cannot listen on nosuchhost.invalid:8765: 'nosuchhost.invalid' "
        "is no address of this machine"
    ) in done.stderr
    assert "set [scheduler] health_host (127.0.0.1 for loopback)" in done.stderr
    home.config.write_text(
        "[scheduler]\nhealth_port = 0\n[otlp]\nreceiver = true\nport = 0\n"
        'host = "nosuchhost.invalid"\n',
        encoding="utf-8",
    )
    done = finished(home, "serve")
    assert done.returncode == 2, done.stderr
    assert "error: the OTLP receiver cannot listen on nosuchhost.invalid:0: " in done.stderr
    assert "set [otlp] host (127.0.0.1 for loopback)" in done.stderr


def test_a_job_s_last_run_figures_stay_those_of_its_last_ended_run_while_it_runs(
    home: Home, serves: list[Serve]
) -> None:
    """A long nightly replay must not read as a failed one: the alerting rule on
    ``evalkit_job_last_run_success == 0`` would fire through every run."""
    gate = home.root / "release"
    gate.touch()
    home.config.write_text(
        f"""
[scheduler]
health_port = 0

[[jobs]]
name = "nightly"
kind = "command"
command = {toml_list(waiting_for(gate))}

{QUICK_JOB}""",
        encoding="utf-8",
    )
    serve = start_serve(home, "serve")
    serves.append(serve)
    assert serve.post("nightly", wait=60).json()["job_run"]["status"] == "succeeded"
    gate.unlink()
    assert serve.post("nightly").status_code == 202
    wait_until(lambda: 'evalkit_job_running{job="nightly"} 1' in serve.metrics(), timeout=60)
    # Another job's end re-reads the store, where the nightly's new run is `running`.
    assert serve.post("quick", wait=60).json()["job_run"]["status"] == "succeeded"
    metrics = serve.metrics()
    assert 'evalkit_job_running{job="nightly"} 1' in metrics
    assert 'evalkit_job_last_run_success{job="nightly"} 1.0' in metrics
    assert 'evalkit_job_last_run_status{job="nightly",status="succeeded"} 1.0' in metrics
    assert 'evalkit_job_last_run_duration_seconds{job="nightly"}' in metrics
    listing = httpx.get(f"{serve.url}/jobs", timeout=10).json()["jobs"]
    assert listing[0]["running"] is True
    gate.touch()
    wait_until(
        lambda: 'evalkit_job_runs_total{job="nightly",status="succeeded"} 2' in serve.metrics(),
        timeout=60,
        what="the second run to end",
    )
    assert serve.stop() == 0


def test_a_job_that_cannot_get_the_store_shows_in_healthz_and_metrics_at_once(
    home: Home, serves: list[Serve]
) -> None:
    """A store held for hours must not leave monitoring saying all is well until it is
    free again: the failure is told when it happens, and recorded later under its id."""
    Store.open(home.store).close()
    home.config.write_text(
        f"""
[scheduler]
health_port = 0
lock_wait = "1s"

{QUICK_JOB}""",
        encoding="utf-8",
    )
    serve = start_serve(home, "serve")
    serves.append(serve)
    assert serve.post("quick", wait=60).json()["job_run"]["status"] == "succeeded"
    lock_path = home.store.with_name(home.store.name + ".writer.lock")
    holder, holder_out = _spawn(home, [sys.executable, "-c", HOLDER, str(lock_path)], "holder")
    try:
        wait_until(lambda: "holding" in holder_out.read_text(), timeout=60, what="holder")
        refused = serve.post("quick", wait=60)
        assert refused.status_code == 503, refused.text
        health = httpx.get(f"{serve.url}/healthz", timeout=10).json()
        assert "holding the store" in str(health["store_error"]), health
        metrics = serve.metrics()
        assert 'evalkit_job_last_run_success{job="quick"} 0.0' in metrics
        assert 'evalkit_job_runs_total{job="quick",status="failed"} 1.0' in metrics
        (listed,) = httpx.get(f"{serve.url}/jobs", timeout=10).json()["jobs"]
        shown = listed["last_run"]
        assert shown["status"] == "failed"
        assert "holding the store" in shown["error"]
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert serve.post("quick", wait=60).json()["job_run"]["status"] == "succeeded"
    assert httpx.get(f"{serve.url}/healthz", timeout=10).json()["store_error"] is None
    metrics = serve.metrics()
    assert 'evalkit_job_runs_total{job="quick",status="failed"} 1.0' in metrics
    assert 'evalkit_job_runs_total{job="quick",status="succeeded"} 2.0' in metrics
    assert serve.stop() == 0
    with Store.open(home.store, read_only=True) as store:
        runs = list_job_runs(store, job="quick")
    assert [run.status for run in runs] == ["succeeded", "failed", "succeeded"]
    assert runs[1].job_run_id == shown["job_run_id"]


def test_editing_the_jobs_file_under_serve_is_said_by_its_log_health_and_jobs_commands(
    home: Home,
    serves: list[Serve],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The service keeps the jobs it started with; with no alert rule configured it said
    nothing of an edited file, and `jobs run` ran the old command without a word."""
    Store.open(home.store).close()
    configuration = f"[scheduler]\nhealth_port = 0\n\n{QUICK_JOB}"
    home.config.write_text(configuration, encoding="utf-8")
    serve = start_serve(home, "serve")
    serves.append(serve)
    assert httpx.get(f"{serve.url}/healthz", timeout=10).json()["config_changed"] is False
    home.config.write_text(
        configuration.replace('"pass"', '"raise SystemExit(1)"'), encoding="utf-8"
    )
    wait_until(
        lambda: f"{home.config} changed since evalkit serve started" in serve.log.read_text(),
        timeout=60,
        what="serve to say the file changed",
    )
    said = serve.log.read_text()
    assert "restart it to apply the change." in said
    assert "closes no alert" not in said
    assert httpx.get(f"{serve.url}/healthz", timeout=10).json()["config_changed"] is True
    assert httpx.get(f"{serve.url}/jobs", timeout=10).json()["config_changed"] is True

    from evalkit.cli import invoke

    for name in ("EVALKIT_HOME", "EVALKIT_CONFIG"):
        monkeypatch.setenv(name, home.env[name])
    note = (
        f"{home.config} changed since evalkit serve (pid {serve.process.pid}) started: it "
        "runs the jobs as the file was then; restart it to apply the change"
    )
    assert invoke(["jobs", "run", "quick"]) == 0  # the command the service started with
    assert note in capsys.readouterr().err
    assert invoke(["jobs", "list"]) == 0
    assert note in capsys.readouterr().err
    assert serve.stop() == 0


def test_serve_s_json_log_lines_give_their_time_in_utc_with_its_zone(home: Home) -> None:
    """The text lines end their time with Z; the JSON lines gave a bare time, which a log
    shipper reads as its own local time."""
    home.config.write_text("[scheduler]\nhealth_port = 0\n", encoding="utf-8")
    log = home.root / "json.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            evalkit_command("serve", "--format", "json"),
            env=home.env,
            cwd=home.root,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "health at" in log.read_text(), timeout=STARTUP, what="serve")
        before = time.time()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=90) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["message"] for line in lines[-2:]] == ["received SIGTERM", "evalkit serve stopped"]
    stamp = lines[-2]["ts"]
    assert stamp.endswith("Z")
    moment = datetime.fromisoformat(stamp).timestamp()
    assert before - 1 <= moment <= time.time() + 1
