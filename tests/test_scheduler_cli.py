"""``evalkit serve|jobs|alerts`` commands in process (no service running)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from test_scheduler_support import (  # noqa: F401  (fixtures)
    SECRET,
    Receiver,
    receiver_fixture,
)

from evalkit.alerts import SINK_KINDS, Alert, DeliveryResult, SinkKind, register_sink_kind
from evalkit.cli import invoke
from evalkit.config import load_settings
from evalkit.records import AlertSeverity
from evalkit.store import Store


@pytest.fixture
def configured(
    evalkit_home: Path,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    config = evalkit_home.parent / "evalkit.toml"
    python = json.dumps(sys.executable)
    config.write_text(
        f"""
[scheduler]
lock_wait = "30s"

[[jobs]]
name = "ok"
kind = "command"
command = [{python}, "-c", "pass"]
cron = "30 2 * * *"

[[jobs]]
name = "broken"
kind = "command"
command = [{python}, "-c", "import sys; sys.exit('disk full')"]

[alerts]
retry_initial = 0
retry_max = 0

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
    monkeypatch.setenv("EVALKIT_CONFIG", str(config))
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    Store.open(load_settings().resolved_store_path).close()
    return config


class RaisingParams(BaseModel):
    """No parameters."""


@dataclass
class RaisingSink:
    """A plug-in sink whose client library breaks: ``send`` raises."""

    name: str
    min_severity: AlertSeverity = AlertSeverity.warning

    def send(self, alert: Alert) -> DeliveryResult:
        raise RuntimeError("boom")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "test_raising"}


if "test_raising" not in SINK_KINDS:
    register_sink_kind(
        SinkKind("test_raising", RaisingParams, lambda c, p: RaisingSink(c.name), "raises")
    )


def add_command_job(config: Path, name: str, code: str, *args: str) -> None:
    """Append a ``command`` job running ``python -c CODE ARGS`` to ``config``."""
    argv = json.dumps([sys.executable, "-c", code, *args])
    config.write_text(
        config.read_text(encoding="utf-8")
        + f'\n[[jobs]]\nname = "{name}"\nkind = "command"\ncommand = {argv}\n',
        encoding="utf-8",
    )


def nothing_sent(**summary: object) -> dict[str, object]:
    """The summary of `evalkit alerts deliver --format json` of a pass that sent nothing,
    with ``summary``'s fields instead."""
    return {"delivered": 0, "failed": 0, "abandoned": 0, "waiting": {}, "errors": {}, **summary}


def run_json(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> object:
    assert invoke([*argv, "--format", "json"]) == code
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_jobs_run_locally_then_alerts_flow(
    configured: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    ok = run_json(capsys, "jobs", "run", "ok")
    assert isinstance(ok, dict)
    assert (ok["job"], ok["status"], ok["trigger"]) == ("ok", "succeeded", "manual")
    broken = run_json(capsys, "jobs", "run", "broken", code=1)
    assert isinstance(broken, dict)
    assert broken["status"] == "failed"
    assert "disk full" in broken["error"]
    (firing,) = receiver.accepted()
    assert firing.signature_valid
    assert firing.payload["dedup_key"] == "jobs:broken"
    assert firing.payload["evidence"]["error"] == broken["error"]

    listed = run_json(capsys, "alerts", "list")
    assert isinstance(listed, list)
    assert run_json(capsys, "alerts", "list", "--status", "bogus", code=2) == {
        "error": {
            "type": "ConfigError",
            "message": "--status 'bogus': give firing or resolved",
            "exit_code": 2,
        }
    }
    assert [(a["dedup_key"], a["status"], a["deliveries"]) for a in listed] == [
        ("jobs:broken", "firing", {"hook": "delivered"})
    ]
    shown = run_json(capsys, "alerts", "show", listed[0]["alert_id"])
    assert isinstance(shown, dict)
    assert [(a["sink"], a["ok"], a["status_code"]) for a in shown["attempts"]] == [
        ("hook", True, 200)
    ]
    history = run_json(capsys, "jobs", "history")
    assert isinstance(history, list)
    assert [(r["job"], r["status"]) for r in history] == [("broken", "failed"), ("ok", "succeeded")]
    assert [r["job"] for r in run_json(capsys, "jobs", "history", "ok")] == ["ok"]  # type: ignore[union-attr, index]
    typo = run_json(capsys, "jobs", "history", "okk", code=2)
    assert "no job named 'okk' has run or is configured (configured: " in str(typo)

    evaluated = run_json(capsys, "alerts", "evaluate")
    assert isinstance(evaluated, dict)
    assert (evaluated["evaluated"], evaluated["alerts"]) == (["jobs"], [])
    delivered = run_json(capsys, "alerts", "deliver")
    assert delivered == nothing_sent()


@pytest.mark.slow
def test_alerts_list_status_firing_leaves_out_a_condition_that_resolved(
    configured: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    flag = configured.parent / "traffic-fails"
    add_command_job(
        configured,
        "traffic",
        "import os, sys; sys.exit(os.path.exists(sys.argv[1]))",
        str(flag),
    )
    flag.touch()
    run_json(capsys, "jobs", "run", "traffic", code=1)
    run_json(capsys, "jobs", "run", "broken", code=1)
    flag.unlink()
    run_json(capsys, "jobs", "run", "traffic")
    assert [p.payload["status"] for p in receiver.accepted()] == ["firing", "firing", "resolved"]

    firing = run_json(capsys, "alerts", "list", "--status", "firing")
    assert isinstance(firing, list)
    assert [(a["dedup_key"], a["status"]) for a in firing] == [("jobs:broken", "firing")]
    everything = run_json(capsys, "alerts", "list")
    assert isinstance(everything, list)
    assert [(a["dedup_key"], a["status"]) for a in everything] == [
        ("jobs:traffic", "resolved"),
        ("jobs:broken", "firing"),
        ("jobs:traffic", "firing"),
    ]
    resolution, open_one, closed = everything
    shown = run_json(capsys, "alerts", "show", closed["alert_id"])
    assert isinstance(shown, dict)
    assert shown["resolved_by"] == {
        "alert_id": resolution["alert_id"],
        "created_at": resolution["created_at"],
    }
    shown = run_json(capsys, "alerts", "show", open_one["alert_id"])
    assert isinstance(shown, dict)
    assert shown["resolved_by"] is None
    assert invoke(["alerts", "show", closed["alert_id"]]) == 0
    assert f"by {resolution['alert_id']}" in capsys.readouterr().out


def test_an_alert_the_receiver_refuses_for_good_does_not_hold_up_the_next(
    configured: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """A receiver answering 400 to one payload would answer it so for ever: that delivery
    is abandoned with the receiver's reason, shown where alerts are listed, and the next
    alert to the same sink goes out."""
    add_command_job(configured, "also", "import sys; sys.exit('also broken')")
    receiver.refuse = {"broken": 400}
    run_json(capsys, "jobs", "run", "broken", code=1)
    run_json(capsys, "jobs", "run", "also", code=1)
    assert [(r.payload["subject"], r.status) for r in receiver.requests] == [
        ("broken", 400),
        ("also", 200),
    ]
    delivered = run_json(capsys, "alerts", "deliver")
    assert delivered == nothing_sent()
    reason = (
        f'HTTP 400 from http://127.0.0.1:{receiver.port}: {{"error": "no alerts about broken"}}'
    )
    listed = run_json(capsys, "alerts", "list")
    assert isinstance(listed, list)
    assert [(a["subject"], a["deliveries"], a["delivery_errors"]) for a in listed] == [
        ("also", {"hook": "delivered"}, {}),
        ("broken", {"hook": "abandoned"}, {"hook": reason}),
    ]
    assert invoke(["alerts", "show", listed[1]["alert_id"]]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "delivery hook │ abandoned (HTTP 400 from" in shown
    assert "no alerts about broken" in shown


def test_alerts_deliver_exits_3_naming_a_sink_that_failed_unexpectedly(
    configured: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plug-in sink that raised left its alert waiting, yet `evalkit alerts deliver`
    said 0 failed and exited 0."""
    configured.write_text(
        configured.read_text(encoding="utf-8")
        + '\n[[alerts.sinks]]\nname = "plug"\nkind = "test_raising"\n',
        encoding="utf-8",
    )
    run_json(capsys, "jobs", "run", "broken", code=1)
    assert invoke(["alerts", "deliver", "--format", "json"]) == 3
    captured = capsys.readouterr()
    assert json.loads(captured.out) == nothing_sent(
        waiting={"plug": 1}, errors={"plug": "RuntimeError: boom"}
    )
    assert (
        "outbox: 0 delivered, 0 failed (retried later), 0 abandoned, 1 waiting; "
        "sink plug: RuntimeError: boom"
    ) in captured.err
    assert len(receiver.accepted()) == 1


def test_alerts_deliver_counts_the_deliveries_not_due_yet_as_waiting(
    configured: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.fail_with, receiver.retry_after = 429, "600"
    run_json(capsys, "jobs", "run", "broken", code=1)
    assert [r.status for r in receiver.requests] == [429]
    delivered = run_json(capsys, "alerts", "deliver")
    assert delivered == nothing_sent(waiting={"hook": 1})
    assert len(receiver.requests) == 1, "the receiver asked for 600 s"


def test_jobs_list_without_a_service_reads_the_store(
    configured: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_json(capsys, "jobs", "run", "ok")
    listing = run_json(capsys, "jobs", "list")
    assert isinstance(listing, dict)
    assert listing["service"] is None
    ok, broken = listing["jobs"]
    assert (ok["schedule"], ok["last_run"]["status"]) == ("cron 30 2 * * *", "succeeded")
    assert ok["next_run"].endswith("T02:30:00Z")
    assert (broken["schedule"], broken["last_run"], broken["next_run"]) == (
        "on demand",
        None,
        None,
    )
    assert invoke(["jobs", "list"]) == 0
    assert "evalkit serve not running" in capsys.readouterr().out


def test_alerts_test_reports_each_sink(
    configured: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    results = run_json(capsys, "alerts", "test")
    assert isinstance(results, list)
    assert [(r["name"], r["ok"], r["signed"]) for r in results] == [("hook", True, True)]
    assert receiver.accepted()[0].payload["rule"] == "evalkit-probe"
    receiver.fail_with = 500
    failed = run_json(capsys, "alerts", "test", "--sink", "hook", code=3)
    assert isinstance(failed, list)
    assert failed[0]["error"] == f"HTTP 500 from http://127.0.0.1:{receiver.port}: ok"
    assert invoke(["alerts", "test", "--sink", "nope"]) == 2
    assert "no sink named nope" in capsys.readouterr().err


def test_configuration_errors_exit_2_naming_file_and_field(
    configured: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = configured.read_text().replace('cron = "30 2 * * *"', 'cron = "whenever"')
    configured.write_text(text)
    assert invoke(["jobs", "list"]) == 2
    err = capsys.readouterr().err
    assert str(configured) in err.replace("\n", "")
    assert "[[jobs]] #1 'ok'" in err
    assert "field 'cron'" in err.replace("\n", "")
    assert invoke(["jobs", "run", "missing"]) == 2


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ('kind = "drift_check"\nmethod = "mmdd"', "method"),
        ('kind = "audit"\ncollection = "support"\nchecks = ["nope"]', "checks"),
        ('kind = "goldset_replay"\ngoldset = "demo"\ncollection = "demo"\nk = 3000000000', "k"),
        (
            'kind = "drift_check"\nstream = "metric"\ngoldset = "demo"\nmeasure = "ndcg@1O"',
            "measure",
        ),
        (
            'kind = "drift_check"\nstream = "metric"\ngoldset = "demo"\noptions = { dleta = 1 }',
            "options",
        ),
        ('kind = "drift_check"\nmethod = "ks"\noptions = { alhpa = 0.1 }', "options"),
        ('kind = "drift_check"\nreference_window = "last week"', "reference_window"),
        ('kind = "drift_check"\nreference_window = "yesterday"', "reference_window"),
        ('kind = "traffic"\ncollection = "demo"\nwindow = "2026-13-01"', "window"),
        ('kind = "traffic"\ncollection = "demo"\nstratify_by = "tenants"', "stratify_by"),
        ('kind = "traffic"\ncollection = "demo"\nn = 3000000000', "n"),
        ('kind = "traffic"\ncollection = "demo"\nlow_confidence = nan', "low_confidence"),
        ('kind = "freshness"\ncollection = "demo"', "corpus"),
        ('kind = "freshness"\ncollection = "demo"\ncorpus = "c.jsonl"\nchanges = ["d"]', "corpus"),
    ],
)
def test_a_job_value_that_would_fail_only_when_run_is_refused_at_load(
    configured: Path, capsys: pytest.CaptureFixture[str], entry: str, field: str
) -> None:
    """Before, these were accepted by serve and failed at the job's first run."""
    with configured.open("a", encoding="utf-8") as file:
        file.write(f'\n[[jobs]]\nname = "late"\n{entry}\n')
    assert invoke(["jobs", "list"]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert str(configured) in err
    assert "[[jobs]] #3 'late'" in err
    assert f"field '{field}'" in err


def test_a_replay_job_s_misspelt_measure_is_refused_at_load_naming_its_line(
    configured: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, jobs list and serve accepted it and every run failed after the replay, with
    a message naming no file, job or field."""
    text = configured.read_text(encoding="utf-8")
    text += '\n[[jobs]]\nname = "late"\nkind = "goldset_replay"\ngoldset = "demo"\n'
    text += 'collection = "demo"\nmeasures = ["ndcg@10", "ndcg@1O"]\n'
    configured.write_text(text, encoding="utf-8")
    line = len(text.splitlines())
    assert run_json(capsys, "jobs", "list", code=2) == {
        "error": {
            "type": "ConfigError",
            "message": f"{configured}: [[jobs]] #3 'late' (kind goldset_replay): line {line}, "
            "field 'measures': Value error, the cutoff in 'ndcg@1O' must be a positive "
            "integer, got '1o'",
            "exit_code": 2,
        }
    }


@pytest.mark.parametrize(
    "command",
    [
        ["serve"],
        ["jobs", "list"],
        ["jobs", "run"],
        ["jobs", "history"],
        ["alerts", "list"],
        ["alerts", "show"],
        ["alerts", "evaluate"],
        ["alerts", "deliver"],
        ["alerts", "test"],
    ],
)
def test_every_command_has_help_with_an_example(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert invoke([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Example:" in out
    assert "--format" in out


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--port", "70000"], "Invalid value for '--port': Input should be less than or equal"),
        (["--otlp-port", "-1"], "Invalid value for '--otlp-port': Input should be greater than"),
    ],
)
def test_serve_refuses_a_port_no_socket_has(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str], option: list[str], message: str
) -> None:
    """`evalkit serve --port 70000` was an OverflowError traceback from bind(), exit 1."""
    assert invoke(["serve", *option]) == 2
    assert message in capsys.readouterr().err
