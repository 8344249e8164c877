"""Sinks against real processes: a loopback webhook receiver, a command, the log."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from datetime import datetime
from pathlib import Path

import pytest
from loopback import JSONHandler, serving
from test_scheduler_support import SECRET, Receiver, receiver_fixture  # noqa: F401  (fixture)
from waiting import wait_until

from evalkit.alerts import (
    Alert,
    AlertStatus,
    CommandSink,
    LogSink,
    WebhookSink,
    alert_payload,
    alerts_config,
    build_sinks,
    slack_body,
)
from evalkit.config import parse_settings
from evalkit.records import AlertSeverity
from evalkit.redaction import register_secrets

EVIDENCE = {
    "metric": "precision@10",
    "baseline": 0.3,
    "candidate": 0.1,
    "delta": -0.2,
    "ci_low": -0.21,
    "ci_high": -0.19,
    "p_value": 0.0004,
    "worst_queries": [{"query_id": "q07", "baseline": 0.3, "candidate": 0.1, "delta": -0.2}],
    "candidate_run": "20261121T020000-abcdef",
}


def make_alert(status: AlertStatus = AlertStatus.firing, alert_id: str = "a-1") -> Alert:
    moment = datetime(2026, 11, 21, 2, 0, 0)
    return Alert(
        alert_id=alert_id,
        rule="precision-drop",
        kind="precision_regression",
        dedup_key="precision-drop:gs",
        subject="gs",
        status=status,
        severity=AlertSeverity.critical,
        title="precision@10 dropped by 0.2000 on goldset gs",
        summary="precision@10 0.3000 -> 0.1000",
        evidence=EVIDENCE,
        links={"candidate_run": "evalkit runs show 20261121T020000-abcdef"},
        fired_at=moment,
        created_at=moment,
    )


def no_sleep(seconds: float) -> None:
    """Back-off without waiting (the waits themselves are checked separately)."""


def test_webhook_body_is_signed_and_carries_the_evidence(receiver: Receiver) -> None:
    sink = WebhookSink(name="hook", url=receiver.url, secret=SECRET, sleep=no_sleep)
    result = sink.send(make_alert())
    assert result.ok
    assert result.status_code == 200
    (request,) = receiver.all()
    assert request.signature_valid
    assert request.headers["x-evalkit-alert-id"] == "a-1"
    assert request.headers["x-evalkit-event"] == "firing"
    payload = request.payload
    assert payload["schema"] == "evalkit.alert.v1"
    assert payload["status"] == "firing"
    assert payload["dedup_key"] == "precision-drop:gs"
    assert payload["evidence"] == EVIDENCE
    assert payload["links"]["candidate_run"].endswith("20261121T020000-abcdef")
    assert payload == json.loads(json.dumps(alert_payload(make_alert()), default=str))


def test_unsigned_sink_sends_no_signature(receiver: Receiver) -> None:
    WebhookSink(name="hook", url=receiver.url, sleep=no_sleep).send(make_alert())
    (request,) = receiver.all()
    assert "x-evalkit-signature" not in request.headers
    assert not request.signature_valid


def test_slack_body(receiver: Receiver) -> None:
    sink = WebhookSink(
        name="chat", url=receiver.url, secret=SECRET, body_format="slack", sleep=no_sleep
    )
    assert sink.send(make_alert()).ok
    assert sink.send(make_alert(AlertStatus.resolved, "a-2")).ok
    firing, resolved = (request.payload for request in receiver.all())
    assert firing.keys() == {"text", "blocks"}
    assert firing["text"].startswith(":red_circle: [FIRING] precision@10 dropped")
    assert resolved["text"].startswith(":white_check_mark: [RESOLVED]")
    kinds = [block["type"] for block in firing["blocks"]]
    assert kinds == ["section", "section", "section", "context"]
    fields = {field["text"] for field in firing["blocks"][1]["fields"]}
    assert "*delta*\n-0.2000" in fields
    assert "*p_value*\n0.0004" in fields
    assert "`q07` 0.3000 -> 0.1000" in firing["blocks"][2]["text"]["text"]
    assert slack_body(make_alert()) == firing


def test_slack_body_keeps_within_block_kit_limits(receiver: Receiver) -> None:
    long_summary = "recall@10 fell on " + ", ".join(f"query-{n:05d}" for n in range(600))
    alert = dataclasses.replace(
        make_alert(),
        summary=long_summary,
        evidence={
            **EVIDENCE,
            "status": "s" * 2500,
            "worst_queries": [
                {"query_id": "q" * 900, "baseline": 0.3, "candidate": 0.1} for _ in range(5)
            ],
        },
        links={f"link{n}": "evalkit runs show " + "r" * 400 for n in range(10)},
    )
    sink = WebhookSink(name="chat", url=receiver.url, body_format="slack", sleep=no_sleep)
    assert sink.send(alert).ok
    (request,) = receiver.all()
    body = request.payload
    assert len(long_summary) > 3000
    headline, fields, worst, context = body["blocks"]
    assert len(headline["text"]["text"]) <= 3000
    assert headline["text"]["text"].endswith("…")
    assert headline["text"]["text"].startswith("*:red_circle: [FIRING] precision@10 dropped")
    assert len(fields["fields"]) <= 10
    assert all(len(field["text"]) <= 2000 for field in fields["fields"])
    assert "*status*\n" + "s" * 100 in {field["text"][:109] for field in fields["fields"]}
    assert len(worst["text"]["text"]) <= 3000
    assert all(len(element["text"]) <= 3000 for element in context["elements"])
    assert long_summary in body["text"]


def test_webhook_retries_5xx_with_growing_jittered_waits(receiver: Receiver) -> None:
    waits: list[float] = []
    receiver.fail_with = 503
    sink = WebhookSink(
        name="hook", url=receiver.url, retries=3, backoff=0.5, max_backoff=30, sleep=waits.append
    )
    result = sink.send(make_alert())
    assert not result.ok
    assert result.tries == 4
    assert result.status_code == 503
    assert result.error == f"HTTP 503 from http://127.0.0.1:{receiver.port}: ok"
    assert not result.permanent
    assert len(receiver.all()) == 4
    for retry, wait in enumerate(waits):
        assert 0.5 * 2**retry <= wait <= 2 * 0.5 * 2**retry


def test_webhook_recovers_within_its_retries(receiver: Receiver) -> None:
    waits: list[float] = []

    def sleep_then_heal(seconds: float) -> None:
        waits.append(seconds)
        receiver.fail_with = None

    receiver.fail_with = 502
    sink = WebhookSink(name="hook", url=receiver.url, secret=SECRET, sleep=sleep_then_heal)
    result = sink.send(make_alert())
    assert result.ok
    assert result.tries == 2
    assert [r.status for r in receiver.all()] == [502, 200]
    assert all(r.signature_valid for r in receiver.all())


@pytest.mark.parametrize("status", [429, 503])
def test_webhook_waits_what_retry_after_asks_for(receiver: Receiver, status: int) -> None:
    waits: list[float] = []

    def sleep_then_heal(seconds: float) -> None:
        waits.append(seconds)
        receiver.fail_with = None

    receiver.fail_with = status
    receiver.retry_after = "7"
    sink = WebhookSink(name="hook", url=receiver.url, backoff=0.5, sleep=sleep_then_heal)
    result = sink.send(make_alert())
    assert result.ok
    assert waits == [7.0]
    assert [r.status for r in receiver.all()] == [status, 200]


def test_webhook_leaves_a_longer_retry_after_to_the_outbox(receiver: Receiver) -> None:
    """A wait longer than max_backoff is not cut short by retrying sooner: the attempt ends
    and says how long the receiver asked to wait."""
    waits: list[float] = []
    receiver.fail_with = 429
    receiver.retry_after = "120"
    sink = WebhookSink(name="hook", url=receiver.url, max_backoff=30, sleep=waits.append)
    result = sink.send(make_alert())
    assert (result.ok, result.tries, result.status_code, result.retry_after) == (
        False,
        1,
        429,
        120.0,
    )
    assert waits == []
    assert len(receiver.all()) == 1


def test_webhook_does_not_retry_a_client_error(receiver: Receiver) -> None:
    receiver.fail_with = 400
    result = WebhookSink(name="hook", url=receiver.url, retries=3, sleep=no_sleep).send(
        make_alert()
    )
    assert not result.ok
    assert result.tries == 1
    assert len(receiver.all()) == 1


@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        *[(status, True) for status in (400, 401, 404, 410, 413, 422)],
        *[(status, False) for status in (408, 425, 429, 500, 503)],
    ],
)
def test_a_permanent_client_error_says_so_with_the_receivers_reason(
    receiver: Receiver, status: int, permanent: bool
) -> None:
    receiver.refuse = {"gs": status}
    result = WebhookSink(name="hook", url=receiver.url, retries=0).send(make_alert())
    assert (result.ok, result.status_code, result.permanent) == (False, status, permanent)
    assert result.error == (
        f'HTTP {status} from http://127.0.0.1:{receiver.port}: {{"error": "no alerts about gs"}}'
    )


class _SlackLike(JSONHandler):
    """Answers as Slack's incoming webhooks do: a plain-text reason, or an HTML page."""

    def do_POST(self) -> None:
        self.read_json()
        if self.path.endswith("/html"):
            self.send_body(
                b"<html><body><h1>404 Not Found</h1></body></html>", 404, content_type="text/html"
            )
        else:
            self.send_body(
                b"invalid_payload  \n  " + self.path.encode(), 400, content_type="text/plain"
            )


def test_a_slack_refusal_quotes_its_reason_with_the_secret_url_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = "T00000000/B00000000/SLACKREASONxyz"
    with serving(_SlackLike) as url:
        monkeypatch.setenv("SLACK_URL", f"{url}/services/{token}")
        config = alerts_config(
            parse_settings(
                {
                    "alerts": {
                        "sinks": [
                            {
                                "name": "slack",
                                "kind": "webhook",
                                "url_env": "SLACK_URL",
                                "format": "slack",
                                "retries": 0,
                            }
                        ]
                    }
                },
                Path("evalkit.toml"),
            )
        )
        result = build_sinks(config)["slack"].send(make_alert())
        page = WebhookSink(name="hook", url=f"{url}/html", retries=0).send(make_alert())
    assert result.permanent
    assert result.error is not None
    assert result.error.startswith(f"HTTP 400 from {url}: invalid_payload ")
    assert "SLACKREASON" not in result.error
    assert (page.permanent, page.error) == (True, f"HTTP 404 from {url}")


class _Moved(JSONHandler):
    """A receiver that moved: a redirect to https (absolute) or to another path (relative)."""

    def do_POST(self) -> None:
        self.read_json()
        relative = self.path.startswith("/old")
        self.send_response(308 if relative else 301)
        target = "/new/hook" if relative else f"https://alerts.example.com{self.path}"
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_a_redirect_is_refused_for_good_naming_where_it_points(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A redirect is never followed, so it would be answered the same for ever: before, it
    was retried for good, holding the sink's later alerts, and never said where it pointed."""
    with serving(_Moved) as url:
        moved = WebhookSink(name="hook", url=f"{url}/hook", retries=3, sleep=no_sleep)
        absolute = moved.send(make_alert())
        relative = WebhookSink(name="hook", url=f"{url}/old", retries=0).send(make_alert())
        monkeypatch.setenv("SECRET_URL", f"{url}/services/T0/B0/SECRETPATH")
        config = {"name": "s", "kind": "webhook", "url_env": "SECRET_URL", "retries": 0}
        hidden = build_sinks(
            alerts_config(parse_settings({"alerts": {"sinks": [config]}}, Path("evalkit.toml")))
        )["s"].send(make_alert())
    assert (absolute.permanent, absolute.tries, absolute.status_code) == (True, 1, 301)
    assert absolute.error == (
        f"HTTP 301 from {url}: redirects to https://alerts.example.com/hook, which is not "
        "followed: configure that URL"
    )
    assert relative.error == (
        f"HTTP 308 from {url}: redirects to {url}/new/hook, which is not followed: "
        "configure that URL"
    )
    assert hidden.error == (
        f"HTTP 301 from {url}: redirects to https://alerts.example.com, which is not "
        "followed: configure that URL"
    )


def test_secrets_never_reach_errors_or_logs(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    token = "T0KEN-in-the-url-9f8e7d"
    header_secret = "Bearer hdr-secret-1a2b3c4d"
    monkeypatch.setenv("HOOK_URL", f"{receiver.url}/{token}")
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    monkeypatch.setenv("HOOK_AUTH", header_secret)
    config = alerts_config(
        parse_settings(
            {
                "alerts": {
                    "sinks": [
                        {
                            "name": "hook",
                            "kind": "webhook",
                            "url_env": "HOOK_URL",
                            "secret_env": "HOOK_SECRET",
                            "headers_env": {"Authorization": "HOOK_AUTH"},
                            "retries": 1,
                            "backoff": 0,
                        }
                    ]
                }
            },
            Path("evalkit.toml"),
        )
    )
    sink = build_sinks(config)["hook"]
    caplog.set_level(logging.DEBUG)
    receiver.fail_with = 500
    failed = sink.send(make_alert())
    receiver.stop()
    refused = sink.send(make_alert())
    texts = [str(failed.error), str(refused.error), json.dumps(sink.describe()), caplog.text]
    assert not failed.ok
    assert not refused.ok
    assert "ConnectError" in str(refused.error)
    for text in texts:
        for secret in (token, SECRET, header_secret, "hdr-secret"):
            assert secret not in text
    assert sink.describe()["target"] == f"http://127.0.0.1:{receiver.port}"


def test_command_sink_gets_the_payload_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "received.json"
    script = (
        "import os, sys, pathlib\n"
        f"pathlib.Path({str(out)!r}).write_bytes(sys.stdin.buffer.read())\n"
        "print(os.environ['EVALKIT_ALERT_STATUS'], file=sys.stderr)\n"
    )
    sink = CommandSink(name="cmd", command=[sys.executable, "-c", script])
    assert sink.send(make_alert()).ok
    payload = json.loads(out.read_bytes())
    assert payload["alert_id"] == "a-1"
    assert payload["evidence"]["delta"] == -0.2


def test_command_sink_reports_failure_and_timeout(tmp_path: Path) -> None:
    failing = CommandSink(
        name="cmd",
        command=[sys.executable, "-c", "import sys; sys.stderr.write('pager down'); sys.exit(4)"],
    )
    result = failing.send(make_alert())
    assert not result.ok
    assert result.error is not None
    assert "exited with 4: pager down" in result.error
    slow = CommandSink(
        name="cmd", command=[sys.executable, "-c", "import time; time.sleep(10)"], timeout=0.5
    )
    assert "did not finish within 0.5 s" in str(slow.send(make_alert()).error)
    missing = CommandSink(name="cmd", command=[str(tmp_path / "no-such-program")])
    assert "cannot run" in str(missing.send(make_alert()).error)
    assert not any(sink.send(make_alert()).permanent for sink in (failing, slow, missing))


def test_a_command_sink_that_times_out_stops_what_it_started_too(tmp_path: Path) -> None:
    """Only the shell was killed: its `sleep` ran on, one more at every retry of a serve."""
    started = tmp_path / "started.pid"
    slow = CommandSink(
        name="cmd", command=["sh", "-c", f"sleep 30 & echo $! > {started}; wait"], timeout=1
    )
    assert "did not finish within 1 s" in str(slow.send(make_alert()).error)
    stat = Path(f"/proc/{int(started.read_text())}/stat")

    def ended() -> bool:
        # Killed, it is gone, or a zombie until whoever inherited it reaps it.
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except FileNotFoundError:
            return True

    wait_until(ended, timeout=5, what="the command's `sleep` to end")


def test_a_command_refuses_an_alert_for_good_with_exit_status_65() -> None:
    script = "import sys; sys.stderr.write('payload rejected'); sys.exit(65)"
    result = CommandSink(name="cmd", command=[sys.executable, "-c", script]).send(make_alert())
    assert (result.ok, result.permanent) == (False, True)
    assert (
        result.error
        == f"{Path(sys.executable).name} exited with 65 (refused for good): payload rejected"
    )


@pytest.mark.parametrize("left", [1, 6, 17])
def test_a_secret_where_the_kept_stderr_starts_is_masked_whole(left: int) -> None:
    secret = "xoxb-SINKTAIL-4Rm9"
    # The last 300 characters of stderr start ``left`` characters before the secret ends.
    script = f"import sys; sys.stderr.write('token {secret} ' + 'y' * {299 - left}); sys.exit(4)"
    sink = CommandSink(name="cmd", command=[sys.executable, "-c", script], secrets=[secret])
    error = str(sink.send(make_alert()).error)
    tail = error.split("exited with 4: ", 1)[1]
    assert tail.endswith("y" * 250)
    assert secret[-left:] not in tail, tail


def test_a_command_sink_masks_the_secrets_of_other_sinks_it_prints() -> None:
    other = "Bearer hook-OTHERSINK-6Yx4"
    register_secrets([other])
    script = f"import sys; sys.exit('posting with {other} failed')"
    error = str(
        CommandSink(name="cmd", command=[sys.executable, "-c", script]).send(make_alert()).error
    )
    assert "posting with *** failed" in error
    assert "OTHERSINK" not in error


def test_log_sink_to_file_and_to_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "alerts" / "alerts.jsonl"
    to_file = LogSink(name="file", path=path)
    assert to_file.send(make_alert()).ok
    assert to_file.send(make_alert(AlertStatus.resolved, "a-2")).ok
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["status"] for line in lines] == ["firing", "resolved"]
    caplog.set_level(logging.INFO, logger="evalkit.alerts")
    assert LogSink(name="log").send(make_alert()).ok
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert "precision-drop:gs" in record.getMessage()
