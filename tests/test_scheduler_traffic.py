"""The ``traffic_ingest`` job kind through the scheduler's own paths: ``evalkit jobs run``
on an ``evalkit.toml``, the job runner (cancellation, strict mode, bounded problem lists),
the configuration checks, and a real ``evalkit serve`` watching a log directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_scheduler_support import evalkit_command
from waiting import wait_until

from evalkit.cli import invoke
from evalkit.config import Settings, load_settings, parse_settings
from evalkit.errors import ConfigError
from evalkit.scheduler import JobRunner, service_config
from evalkit.store import Store
from evalkit.store.access import StoreAccess
from evalkit.store.jobs import list_job_runs

TORN_HEAD = '{"query_id": "a6", "timestamp": "2026-11-21T10:00:00Z", "te'
TORN_TAIL = 'xt": "how do I export my invoices", "tenant": "acme"}\n'


def record(query_id: str, text: str, *, tenant: str = "acme", hour: int = 9) -> str:
    """One log line (with its newline)."""
    line = {
        "query_id": query_id,
        "timestamp": f"2026-11-21T{hour:02d}:00:00Z",
        "text": text,
        "tenant": tenant,
    }
    return json.dumps(line) + "\n"


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


def stored_records(store_path: Path) -> dict[str, tuple[str, str, int]]:
    """query id -> (text, source file, line) of every stored record."""
    with Store.open(store_path, read_only=True) as store:
        rows = store.fetch("SELECT query_id, text, source, line FROM traffic_records")
    return {query_id: (text, source, line) for query_id, text, source, line in rows}


def stored_problems(store_path: Path) -> list[tuple[str, int | None]]:
    with Store.open(store_path, read_only=True) as store:
        rows = store.fetch("SELECT source, line FROM traffic_ingest_problems ORDER BY source, line")
    return [(source, line) for source, line in rows]


@pytest.fixture
def logs(evalkit_home: Path) -> Path:
    """A log directory: two traffic files with one malformed line each, and a file that is
    not traffic (its suffix says so) and must not be read."""
    directory = evalkit_home.parent / "logs"
    directory.mkdir()
    first = directory / "a.jsonl"
    first.write_text(
        record("a1", "how do I reset my password")
        + "this is not json\n"
        + record("a2", "write to jane.doe@example.com about refunds")
        + record("a3", "when is my invoice due"),
        encoding="utf-8",
    )
    second = directory / "b.log"
    second.write_text(
        record("b1", "track my parcel", tenant="globex")
        + record("b2", "shipping times", tenant="globex")
        + json.dumps({"query_id": "b3", "timestamp": "2026-11-21T09:00:00Z", "text": "  "})
        + "\n"
        + record("b4", "return a parcel", tenant="globex"),
        encoding="utf-8",
    )
    (directory / "README.txt").write_text("rotated logs live here\n", encoding="utf-8")
    # The directory is read oldest file first: a.jsonl, then b.log.
    os.utime(first, (1_700_000_000, 1_700_000_000))
    os.utime(second, (1_700_000_100, 1_700_000_100))
    return directory


@pytest.fixture
def configured(evalkit_home: Path, logs: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An evalkit.toml with a minute-by-minute ingest job over ``logs``; returns the store."""
    config = evalkit_home.parent / "evalkit.toml"
    config.write_text(
        f"""
[scheduler]
lock_wait = "30s"

[[jobs]]
name = "watch-logs"
kind = "traffic_ingest"
interval = "1m"
paths = [{json.dumps(str(logs))}]
redact = ["email"]
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("EVALKIT_CONFIG", str(config))
    store_path = load_settings().resolved_store_path
    Store.open(store_path).close()
    return store_path


def run_job(capsys: pytest.CaptureFixture[str], name: str, *, code: int = 0) -> dict[str, Any]:
    capsys.readouterr()
    assert invoke(["jobs", "run", name, "--local", "--format", "json"]) == code
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, dict)
    return data


@pytest.mark.slow
def test_the_ingest_job_follows_a_growing_log_directory(
    configured: Path, logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = str(logs / "a.jsonl"), str(logs / "b.log")

    first = run_job(capsys, "watch-logs")
    assert (first["status"], first["kind"], first["trigger"]) == (
        "succeeded",
        "traffic_ingest",
        "manual",
    )
    summary = first["summary"]
    assert (summary["records_added"], summary["malformed"], summary["n_problems"]) == (6, 2, 2)
    assert (summary["files_read"], summary["files"]) == (2, {"new": 2})
    assert summary["lines_read"] == 8
    problems = summary["problems"]
    assert len(problems) == 2
    assert problems[0].startswith(f"{a}:2: ")
    assert "JSON" in problems[0]
    assert problems[1].startswith(f"{b}:3: ")
    assert "text" in problems[1]
    records = stored_records(configured)
    assert sorted(records) == ["a1", "a2", "a3", "b1", "b2", "b4"]
    assert records["a3"][1:] == (a, 4)
    assert records["b4"][1:] == (b, 4)
    assert "jane.doe" not in records["a2"][0]
    assert "<email>" in records["a2"][0]
    assert stored_problems(configured) == [(a, 2), (b, 3)]

    # Two whole lines and a line still being written (no newline, not yet a JSON object).
    append(logs / "a.jsonl", record("a4", "cancel my plan") + record("a5", "change my plan"))
    append(logs / "a.jsonl", TORN_HEAD)
    second = run_job(capsys, "watch-logs")["summary"]
    assert (second["records_added"], second["malformed"], second["problems"]) == (2, 0, [])
    assert second["files"] == {"resumed": 1, "unchanged": 1}
    assert second["files_read"] == 1
    assert second["notes"] == [f"{a}: an unfinished last line was left for the next pass"]
    records = stored_records(configured)
    assert len(records) == 8
    assert "a6" not in records
    assert records["a5"][1:] == (a, 6)

    # The writer finishes the line: it is read whole, with its true line number.
    append(logs / "a.jsonl", TORN_TAIL)
    third = run_job(capsys, "watch-logs")["summary"]
    assert (third["records_added"], third["lines_read"], third["malformed"]) == (1, 1, 0)
    assert third["notes"] == []
    records = stored_records(configured)
    assert len(records) == 9
    assert records["a6"] == ("how do I export my invoices", a, 7)

    # Nothing new: nothing read, nothing stored twice.
    fourth = run_job(capsys, "watch-logs")["summary"]
    assert (fourth["records_added"], fourth["lines_read"], fourth["files_read"]) == (0, 0, 0)
    assert fourth["files"] == {"unchanged": 2}
    assert len(stored_records(configured)) == 9
    assert stored_problems(configured) == [(a, 2), (b, 3)]

    with Store.open(configured, read_only=True) as store:
        runs = list_job_runs(store, job="watch-logs")
    assert [run.status for run in runs] == ["succeeded"] * 4
    assert [run.summary["records_added"] for run in runs] == [0, 1, 2, 6]


def runner_for(jobs: list[dict[str, Any]], settings: Settings) -> JobRunner:
    config = service_config(parse_settings({"jobs": jobs}, Path("evalkit.toml")))
    access = StoreAccess(settings.resolved_store_path, wait=10, program="test")
    return JobRunner(config, settings=settings, session=access)


@pytest.fixture
def settings(evalkit_home: Path) -> Settings:
    loaded = load_settings()
    Store.open(loaded.resolved_store_path).close()
    return loaded


def test_strict_mode_ends_partial_and_the_summary_lists_a_bounded_number_of_problems(
    settings: Settings, tmp_path: Path
) -> None:
    log = tmp_path / "app.jsonl"
    log.write_text(
        "".join(f"broken line {n}\n" for n in range(1, 6)) + record("ok1", "a good question"),
        encoding="utf-8",
    )
    runner = runner_for(
        [
            {
                "name": "strict",
                "kind": "traffic_ingest",
                "paths": [str(log)],
                "strict": True,
                "report_problems": 3,
            }
        ],
        settings,
    )
    run = runner.run("strict")
    assert run is not None
    assert run.status == "partial"
    assert run.error is not None
    assert run.error.startswith("5 malformed line(s)")
    assert f"first: {log}:1: " in run.error
    assert run.summary["records_added"] == 1
    assert (run.summary["malformed"], run.summary["n_problems"]) == (5, 5)
    assert [problem.split(": ")[0] for problem in run.summary["problems"]] == [
        f"{log}:1",
        f"{log}:2",
        f"{log}:3",
    ]
    assert len(stored_problems(settings.resolved_store_path)) == 5

    # The next pass meets no new malformed line: strict or not, it succeeds.
    again = runner.run("strict")
    assert again is not None
    assert (again.status, again.error, again.summary["n_problems"]) == ("succeeded", None, 0)


def test_a_stopped_ingest_keeps_what_it_committed_and_the_next_run_resumes(
    settings: Settings, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    older, newer = logs / "1.jsonl", logs / "2.jsonl"
    older.write_text(record("o1", "first file") + record("o2", "first file too"), "utf-8")
    newer.write_text(record("n1", "second file"), "utf-8")
    os.utime(older, (1_700_000_000, 1_700_000_000))
    runner = runner_for(
        [{"name": "ingest", "kind": "traffic_ingest", "paths": [str(logs)]}], settings
    )
    # A shutdown already asked for: the pass stops after its first committed batch.
    runner.cancel.set()
    stopped = runner.run("ingest")
    assert stopped is not None
    assert stopped.status == "interrupted"
    assert "evalkit serve is stopping" in str(stopped.error)
    assert sorted(stored_records(settings.resolved_store_path)) == ["o1", "o2"]

    runner.cancel.clear()
    resumed = runner.run("ingest")
    assert resumed is not None
    assert resumed.status == "succeeded"
    assert resumed.summary["records_added"] == 1
    assert resumed.summary["files"] == {"new": 1, "unchanged": 1}
    assert sorted(stored_records(settings.resolved_store_path)) == ["n1", "o1", "o2"]


def test_a_missing_directory_fails_the_run_naming_it(settings: Settings, tmp_path: Path) -> None:
    missing = tmp_path / "not-there"
    runner = runner_for(
        [{"name": "ingest", "kind": "traffic_ingest", "paths": [str(missing)]}], settings
    )
    run = runner.run("ingest")
    assert run is not None
    assert run.status == "failed"
    assert str(missing) in str(run.error)
    assert "no such file or directory" in str(run.error)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "field 'paths': Field required"),
        ({"paths": []}, "field 'paths'"),
        ({"paths": ["logs"], "redact": ["emails"]}, "field 'redact'"),
        ({"paths": ["logs"], "redact_pattern": ["(unclosed"]}, "field 'redact_pattern'"),
        ({"paths": ["logs"], "drop": ["tenant"]}, "field 'drop'"),
        ({"paths": ["logs"], "report_problems": -1}, "field 'report_problems'"),
        ({"paths": ["logs"], "window": "today"}, "field 'window'"),
    ],
)
def test_the_ingest_job_configuration_is_checked_when_read(
    fields: dict[str, Any], message: str
) -> None:
    entry = {"name": "ingest", "kind": "traffic_ingest", "interval": "1m", **fields}
    with pytest.raises(ConfigError) as caught:
        service_config(parse_settings({"jobs": [entry]}, Path("evalkit.toml")))
    text = str(caught.value)
    assert "evalkit.toml: [[jobs]] #1 'ingest' (kind traffic_ingest)" in text
    assert message in text


def test_the_traffic_kind_checks_its_redaction_fields_too() -> None:
    entry = {
        "name": "traffic",
        "kind": "traffic",
        "paths": ["logs"],
        "redact": ["nope"],
        "replay": False,
    }
    with pytest.raises(ConfigError, match=r"kind traffic\): field 'redact'"):
        service_config(parse_settings({"jobs": [entry]}, Path("evalkit.toml")))


@pytest.mark.slow
def test_evalkit_serve_watches_the_directory_on_an_interval(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.jsonl"
    log.write_text(record("q1", "first question") + record("q2", "second question"), "utf-8")
    config = tmp_path / "evalkit.toml"
    config.write_text(
        f"""
[scheduler]
health_port = 0
shutdown_grace = "5s"

[[jobs]]
name = "watch-logs"
kind = "traffic_ingest"
interval = "1s"
paths = [{json.dumps(str(logs))}]
""",
        encoding="utf-8",
    )
    env = {**os.environ, "EVALKIT_HOME": str(tmp_path / "home"), "EVALKIT_CONFIG": str(config)}
    env.pop("EVALKIT_STORE_PATH", None)
    store_path = tmp_path / "home" / "evalkit.duckdb"
    access = StoreAccess(store_path, wait=60, program="test")

    def stored() -> set[str]:
        if not store_path.exists():
            return set()
        with access.reader() as store:
            tables = {row[0] for row in store.fetch("SHOW TABLES")}
            if "traffic_records" not in tables:
                return set()
            return {row[0] for row in store.fetch("SELECT query_id FROM traffic_records")}

    server_log = tmp_path / "serve.log"
    with server_log.open("ab") as sink:
        process = subprocess.Popen(
            evalkit_command("serve", "--log-level", "info"),
            env=env,
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: stored() == {"q1", "q2"}, timeout=180, what="the first ingest")
        append(log, record("q3", "third question"))
        wait_until(lambda: stored() == {"q1", "q2", "q3"}, timeout=60, what="the new line")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=90) == 0, server_log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    with Store.open(store_path, read_only=True) as store:
        (count,) = store.fetch("SELECT count(*) FROM traffic_records")[0]
        runs = list_job_runs(store, job="watch-logs", limit=1000)
    assert count == 3
    finished = [run for run in runs if run.status != "running"]
    assert len(finished) >= 2
    assert {run.status for run in finished} == {"succeeded"}
    assert sum(run.summary["records_added"] for run in finished) == 3
