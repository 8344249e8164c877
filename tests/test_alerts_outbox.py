"""The durable outbox and the precision rule end to end, against real loopback servers.

The scenarios of the issue: a precision drop produces exactly one webhook with the evidence
and a resolved message when it recovers; a receiver that is down for an hour gets every
alert once it is back, each exactly once and in order.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from loopback import JSONHandler, serving
from pydantic import BaseModel
from test_scheduler_support import (  # noqa: F401  (fixtures)
    SECRET,
    FakeRetriever,
    Receiver,
    make_goldset,
    receiver_fixture,
    retriever_fixture,
)

from evalkit.alerts import (
    RULE_KINDS,
    AlertsConfig,
    RedeliverySchedule,
    RuleContext,
    RuleKind,
    Signal,
    alerts_config,
    build_sinks,
    deliver_due,
    evaluate_rules,
    register_rule_kind,
)
from evalkit.alerts.sinks import Sink, public_url
from evalkit.config import load_settings, parse_settings
from evalkit.pipeline import evaluate_goldset
from evalkit.records.requests import GoldsetRunRequest
from evalkit.retrievers.http import HttpRetriever
from evalkit.scheduler import JobRunner, service_config
from evalkit.store import Store
from evalkit.store.access import FileLock, StoreAccess
from evalkit.store.alerts import alert_deliveries, list_alerts, outbox_counts

T0 = datetime(2026, 11, 21, 2, 0, 0)

FLAGS: dict[str, bool] = {}


class FlagParams(BaseModel):
    """No parameters."""


def _flags(ctx: RuleContext, params: FlagParams) -> list[Signal]:
    return [
        Signal(subject=name, active=on, title=f"flag {name}", evidence={"flag": name})
        for name, on in sorted(FLAGS.items())
    ]


if "test_flag" not in RULE_KINDS:
    register_rule_kind(RuleKind("test_flag", FlagParams, _flags, "test flags"))


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store_path(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "evalkit.duckdb"
    Store.open(path).close()
    FLAGS.clear()
    yield path
    FLAGS.clear()


def flag_config(receiver: Receiver, **alerts: Any) -> AlertsConfig:
    return alerts_config(
        parse_settings(
            {
                "alerts": {
                    **alerts,
                    "sinks": [
                        {"name": "hook", "kind": "webhook", "url": receiver.url, "retries": 0}
                    ],
                    "rules": [{"name": "flags", "kind": "test_flag", "cooldown": 0}],
                }
            },
            Path("evalkit.toml"),
        )
    )


def webhook_and_file_config(receiver: Receiver, path: Path, *, webhook: str) -> AlertsConfig:
    """The flags rule, routed to a webhook named ``webhook`` and a log sink ``file`` at
    ``path``."""
    return alerts_config(
        parse_settings(
            {
                "alerts": {
                    "sinks": [
                        {"name": webhook, "kind": "webhook", "url": receiver.url, "retries": 0},
                        {"name": "file", "kind": "log", "path": str(path)},
                    ],
                    "rules": [{"name": "flags", "kind": "test_flag", "cooldown": 0}],
                }
            },
            Path("evalkit.toml"),
        )
    )


@pytest.mark.slow
def test_receiver_down_for_an_hour_gets_every_alert_once_in_order(
    store_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = flag_config(receiver, retry_initial="10s", retry_max="5m")
    sinks = build_sinks(config)
    access = StoreAccess(store_path, wait=10, program="test")
    clock = Clock()
    policy = RedeliverySchedule.from_settings(config.settings)
    receiver.stop()

    def evaluate() -> None:
        with access("evaluate") as store:
            evaluate_rules(store, config, sinks, now=clock.now)

    FLAGS.update(a=True, b=True)
    evaluate()
    attempts_while_down = 0
    while clock.now < T0 + timedelta(hours=1):
        report = deliver_due(access, sinks, policy, clock=clock)
        assert report.delivered == 0
        attempts_while_down += report.failed
        if clock.now >= T0 + timedelta(minutes=20) and FLAGS["a"]:
            FLAGS["a"] = False
            evaluate()
        clock.now += timedelta(minutes=4)
    assert 6 <= attempts_while_down <= 15, "back-off doubles up to 5 minutes over the hour"
    with access("check") as store:
        assert outbox_counts(store) == {("hook", "pending"): 3}

    receiver.start()
    for _ in range(3):
        clock.now += timedelta(minutes=5)
        deliver_due(access, sinks, policy, clock=clock)
    got = [(r.payload["subject"], r.payload["status"]) for r in receiver.accepted()]
    assert got == [("a", "firing"), ("b", "firing"), ("a", "resolved")]
    ids = [r.payload["alert_id"] for r in receiver.accepted()]
    assert len(set(ids)) == 3
    with access("check") as store:
        assert outbox_counts(store) == {("hook", "delivered"): 3}
        stored = {alert.alert_id: alert for alert in list_alerts(store)}
    assert set(stored) == set(ids)
    assert all(alert.deliveries == {"hook": "delivered"} for alert in stored.values())


def test_a_failing_row_blocks_later_rows_of_its_sink_only(
    store_path: Path, receiver: Receiver, tmp_path: Path
) -> None:
    config = webhook_and_file_config(receiver, tmp_path / "alerts.jsonl", webhook="hook")
    sinks = build_sinks(config)
    access = StoreAccess(store_path, wait=10, program="test")
    FLAGS.update(a=True, b=True)
    with access("evaluate") as store:
        evaluate_rules(store, config, sinks, now=T0)
    receiver.fail_with = 503
    report = deliver_due(
        access, sinks, RedeliverySchedule(initial=0.0, maximum=0.0), clock=lambda: T0
    )
    assert report.delivered == 2, "the file sink is not held up by the webhook"
    assert report.failed == 1
    assert report.waiting == {"hook": 2}
    assert len(receiver.all()) == 1, "b is not sent before a"


def test_a_long_queue_of_one_sink_does_not_keep_the_others_out_of_the_pass(
    store_path: Path, receiver: Receiver, tmp_path: Path
) -> None:
    """A pass reads at most ``limit`` rows: of all sinks together, they were all the first
    sink's (by name) once it had that many pending, and the other sinks got nothing."""
    # The webhook is named first: its rows came first in the pass's read.
    config = webhook_and_file_config(receiver, tmp_path / "pager.jsonl", webhook="archive")
    sinks = build_sinks(config)
    access = StoreAccess(store_path, wait=10, program="test")
    receiver.stop()
    FLAGS.update(a=True, b=True, c=True)
    with access("evaluate") as store:
        evaluate_rules(store, config, sinks, now=T0)
    report = deliver_due(access, sinks, RedeliverySchedule(), clock=lambda: T0, limit=3)
    assert (report.delivered, report.failed) == (3, 1)
    assert report.waiting == {"archive": 3}
    assert len((tmp_path / "pager.jsonl").read_text().splitlines()) == 3


def test_give_up_after_abandons_and_says_so(store_path: Path, receiver: Receiver) -> None:
    config = flag_config(receiver, retry_initial=1, retry_max=1, give_up_after="10m")
    sinks = build_sinks(config)
    access = StoreAccess(store_path, wait=10, program="test")
    FLAGS.update(a=True)
    with access("evaluate") as store:
        evaluate_rules(store, config, sinks, now=T0)
    receiver.fail_with = 500
    clock = Clock()
    policy = RedeliverySchedule.from_settings(config.settings)
    first = deliver_due(access, sinks, policy, clock=clock)
    clock.now += timedelta(minutes=11)
    last = deliver_due(access, sinks, policy, clock=clock)
    assert (first.failed, last.abandoned) == (1, 1)
    with access("check") as store:
        assert outbox_counts(store) == {("hook", "abandoned"): 1}
    assert deliver_due(access, sinks, policy, clock=clock).failed == 0


@pytest.mark.parametrize("status", [400, 404, 413, 422])
def test_a_payload_refused_for_good_is_abandoned_at_once_and_later_alerts_flow(
    store_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    """A receiver that refuses one payload with a permanent 4xx would refuse it for ever:
    it is abandoned at its first attempt, with the status and the receiver's reason, and
    the sink's later alerts are not held behind it."""
    config = flag_config(receiver, retry_initial=1, retry_max=1)
    sinks = build_sinks(config)
    access = StoreAccess(store_path, wait=10, program="test")
    policy = RedeliverySchedule.from_settings(config.settings)
    clock = Clock()
    receiver.refuse = {"a": status}
    FLAGS.update(a=True, b=True, c=True)
    with access("evaluate") as store:
        evaluate_rules(store, config, sinks, now=T0)
    with caplog.at_level(logging.ERROR, logger="evalkit.alerts"):
        report = deliver_due(access, sinks, policy, clock=clock)
    assert (report.delivered, report.failed, report.abandoned) == (2, 0, 1)
    assert report.waiting == {}
    reason = f'HTTP {status} from {public_url(receiver.url)}: {{"error": "no alerts about a"}}'
    with access("check") as store:
        assert outbox_counts(store) == {("hook", "delivered"): 2, ("hook", "abandoned"): 1}
        refused = next(alert for alert in list_alerts(store) if alert.subject == "a")
        (attempt,) = alert_deliveries(store, refused.alert_id)
    assert refused.deliveries == {"hook": "abandoned"}
    assert refused.delivery_errors == {"hook": reason}
    assert (attempt.status_code, attempt.error) == (status, reason)
    assert [r.getMessage() for r in caplog.records] == [
        f"alert {refused.alert_id} refused for good by sink hook ({reason}): abandoned, not "
        "retried; the sink's later alerts go on"
    ]
    clock.now += timedelta(hours=1)
    FLAGS.update(a=False)
    with access("evaluate") as store:
        evaluate_rules(store, config, sinks, now=clock.now)
    assert deliver_due(access, sinks, policy, clock=clock).delivered == 0
    assert [(r.payload["subject"], r.status) for r in receiver.all()] == [
        ("a", status),
        ("b", 200),
        ("c", 200),
    ], "never retried, and never a resolution of the firing the receiver refused"


@pytest.mark.parametrize("status", [408, 425, 429])
def test_a_transient_client_error_is_retried(
    store_path: Path, receiver: Receiver, status: int
) -> None:
    config = flag_config(receiver, retry_initial=1, retry_max=1)
    sinks = build_sinks(config)
    access = StoreAccess(store_path, wait=10, program="test")
    policy = RedeliverySchedule.from_settings(config.settings)
    clock = Clock()
    FLAGS.update(a=True, b=True)
    with access("evaluate") as store:
        evaluate_rules(store, config, sinks, now=T0)
    receiver.refuse = {"a": status}
    report = deliver_due(access, sinks, policy, clock=clock)
    assert (report.delivered, report.failed, report.abandoned) == (0, 1, 0)
    assert report.waiting == {"hook": 2}
    receiver.refuse = {}
    clock.now += timedelta(seconds=1)
    assert deliver_due(access, sinks, policy, clock=clock).delivered == 2


def test_a_resolution_queued_behind_a_refused_firing_is_not_sent(
    store_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A receiver down while a condition fires and clears has both notifications queued;
    once back, it refuses the firing for good: the resolution of it is abandoned too, never
    sent, and the sink's next alert goes out."""
    config = flag_config(receiver, retry_initial=1, retry_max=1)
    sinks = build_sinks(config)
    access = StoreAccess(store_path, wait=10, program="test")
    policy = RedeliverySchedule.from_settings(config.settings)
    clock = Clock()
    receiver.stop()
    FLAGS.update(a=True)
    with access("evaluate") as store:
        evaluate_rules(store, config, sinks, now=T0)
    assert deliver_due(access, sinks, policy, clock=clock).failed == 1
    clock.now += timedelta(minutes=5)
    FLAGS.update(a=False, b=True)
    with access("evaluate") as store:
        evaluate_rules(store, config, sinks, now=clock.now)
        firing, resolved = sorted(
            (alert for alert in list_alerts(store) if alert.subject == "a"),
            key=lambda alert: alert.status,
        )
    assert resolved.deliveries == {"hook": "pending"}, "the firing may still reach the sink"
    receiver.refuse = {"a": 422}
    receiver.start()
    with caplog.at_level(logging.WARNING, logger="evalkit.alerts"):
        report = deliver_due(access, sinks, policy, clock=clock)
    assert (report.delivered, report.abandoned) == (1, 2)
    assert [(r.payload["subject"], r.payload["status"]) for r in receiver.all()] == [
        ("a", "firing"),
        ("b", "firing"),
    ]
    with access("check") as store:
        resolved_now = next(a for a in list_alerts(store) if a.alert_id == resolved.alert_id)
        assert alert_deliveries(store, resolved.alert_id) == []
    assert resolved_now.deliveries == {"hook": "abandoned"}
    assert resolved_now.delivery_errors == {
        "hook": f"not sent: its firing {firing.alert_id} was abandoned"
    }
    assert (
        f"alert {resolved.alert_id} (resolved) abandoned for sink hook: it was never told of "
        f"the firing {firing.alert_id}"
    ) in [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize(
    ("asked", "waited"),
    [("600", timedelta(seconds=600)), ("1e12", timedelta(days=1)), ("inf", timedelta(days=1))],
)
def test_the_outbox_redelivers_no_sooner_than_retry_after_asks(
    store_path: Path, receiver: Receiver, asked: str, waited: timedelta
) -> None:
    """A day at most: Retry-After: 1e12 overflowed the date of the next attempt, the pass
    logged a traceback, the attempt was not recorded and the alert was sent at every pass."""
    config = flag_config(receiver, retry_initial=10, retry_max=60)
    sinks = build_sinks(config)
    access = StoreAccess(store_path, wait=10, program="test")
    FLAGS.update(a=True)
    with access("evaluate") as store:
        evaluate_rules(store, config, sinks, now=T0)
    receiver.fail_with = 503
    receiver.retry_after = asked
    clock = Clock()
    policy = RedeliverySchedule.from_settings(config.settings)
    report = deliver_due(access, sinks, policy, clock=clock)
    assert (report.failed, report.errors) == (1, {})
    receiver.fail_with = None
    clock.now = T0 + waited - timedelta(seconds=1)
    assert deliver_due(access, sinks, policy, clock=clock).delivered == 0
    assert len(receiver.all()) == 1
    clock.now = T0 + waited
    assert deliver_due(access, sinks, policy, clock=clock).delivered == 1
    assert [r.status for r in receiver.all()] == [503, 200]


def test_a_sink_removed_from_the_configuration_keeps_its_rows(
    store_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Its rows wait for it, and a deliverer that keeps what it told (evalkit serve, every
    few seconds) says so once per row, not on every pass."""
    config = flag_config(receiver)
    access = StoreAccess(store_path, wait=10, program="test")
    FLAGS.update(a=True)
    with access("evaluate") as store:
        evaluate_rules(store, config, build_sinks(config), now=T0)
    told: set[tuple[str, str]] = set()
    with caplog.at_level(logging.WARNING, logger="evalkit.alerts"):
        for _ in range(3):
            report = deliver_due(
                access, {}, RedeliverySchedule(), clock=lambda: T0, told_unconfigured=told
            )
            assert report.waiting == {"hook": 1}
            assert "no longer configured" in report.errors["hook"]
    with access("check") as store:
        assert outbox_counts(store) == {("hook", "pending"): 1}
        (alert,) = list_alerts(store)
    assert [r.getMessage() for r in caplog.records] == [
        f"outbox: alert {alert.alert_id} waits for sink 'hook', which is no longer configured"
    ]


# -- the precision rule, end to end ---------------------------------------------------------


@pytest.mark.slow
def test_precision_drop_sends_one_webhook_with_evidence_then_one_resolved(
    evalkit_home: Path,
    receiver: Receiver,
    retriever: FakeRetriever,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_settings()
    path = settings.resolved_store_path
    store = Store.open(path)
    goldset = make_goldset()
    with HttpRetriever(retriever.url) as http:
        baseline = evaluate_goldset(
            store, goldset, http, GoldsetRunRequest(k=10, label="baseline")
        ).run
    store.close()
    assert baseline.aggregates["precision@10"] == pytest.approx(0.3)
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    config = service_config(
        parse_settings(
            {
                "jobs": [
                    {
                        "name": "replay",
                        "kind": "goldset_replay",
                        "goldset": "gs",
                        "http_retriever": retriever.url,
                        "k": 10,
                    }
                ],
                "alerts": {
                    "dashboard_url": "http://127.0.0.1:8501",
                    "sinks": [
                        {
                            "name": "hook",
                            "kind": "webhook",
                            "url": receiver.url,
                            "secret_env": "HOOK_SECRET",
                        }
                    ],
                    "rules": [
                        {
                            "name": "precision-drop",
                            "kind": "precision_regression",
                            "goldset": "gs",
                            "label": "replay",
                            "baseline_run": baseline.run_id,
                            "measures": ["precision@10"],
                            "min_effect": 0.02,
                            "resamples": 500,
                            "worst": 3,
                        }
                    ],
                },
            },
            Path("evalkit.toml"),
        )
    )
    sinks: dict[str, Sink] = build_sinks(config.alerts)
    access = StoreAccess(path, wait=10, program="test")

    def after(store: Store, run: Any) -> None:
        evaluate_rules(store, config.alerts, sinks)

    runner = JobRunner(config, settings=settings, session=access, after_job=after)
    policy = RedeliverySchedule.from_settings(config.alerts.settings)

    def replay(mode: str) -> None:
        retriever.mode = mode
        run = runner.run("replay", trigger="manual")
        assert run is not None
        assert run.status == "succeeded"
        deliver_due(access, sinks, policy)

    replay("good")
    assert receiver.all() == []
    replay("bad")
    replay("bad")
    assert len(receiver.all()) == 1, "a drop that persists is notified once"
    (firing,) = receiver.all()
    assert firing.signature_valid
    payload = firing.payload
    evidence = payload["evidence"]
    assert payload["status"] == "firing"
    assert payload["title"] == "precision@10 dropped by 0.2000 on goldset gs"
    assert payload["severity"] == "critical"
    assert payload["dedup_key"] == "precision-drop:gs/replay"
    assert evidence["metric"] == "precision@10"
    assert evidence["baseline"] == pytest.approx(0.3)
    assert evidence["candidate"] == pytest.approx(0.1)
    assert evidence["delta"] == pytest.approx(-0.2)
    assert evidence["ci_low"] == pytest.approx(-0.2)
    assert evidence["ci_high"] == pytest.approx(-0.2)
    assert evidence["p_value"] < 0.05
    assert evidence["n_queries"] == 30
    assert evidence["baseline_run"] == baseline.run_id
    assert [q["delta"] for q in evidence["worst_queries"]] == pytest.approx([-0.2] * 3)
    assert [q["query_id"] for q in evidence["worst_queries"]] == ["q00", "q01", "q02"]
    candidate = evidence["candidate_run"]
    assert payload["links"]["candidate_run"] == f"evalkit runs show {candidate}"
    # It opens Compare on the measure that dropped, not on the page's default ndcg@10.
    assert payload["links"]["dashboard"] == (
        f"http://127.0.0.1:8501/compare?baseline={baseline.run_id}&candidate={candidate}"
        "&measure=precision%4010"
    )
    replay("good")
    assert len(receiver.all()) == 2
    resolved = receiver.all()[1].payload
    assert resolved["status"] == "resolved"
    assert resolved["dedup_key"] == payload["dedup_key"]
    assert resolved["fired_at"] == payload["created_at"]
    assert resolved["evidence"]["decision"] == "pass"
    replay("good")
    assert len(receiver.all()) == 2
    with access("check") as store:
        assert [a.status for a in list_alerts(store)] == ["resolved", "firing"]
        assert outbox_counts(store) == {("hook", "delivered"): 2}


def test_secrets_stay_out_of_the_store_and_the_log(
    store_path: Path,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from test_scheduler_support import store_text

    token = "xoxb-url-token-5f4e3d2c"
    header = "Bearer header-token-9a8b7c6d"
    monkeypatch.setenv("HOOK_URL", f"{receiver.url}/{token}?key={token}")
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    monkeypatch.setenv("HOOK_AUTH", header)
    config = alerts_config(
        parse_settings(
            {
                "alerts": {
                    "retry_initial": 0,
                    "retry_max": 0,
                    "sinks": [
                        {
                            "name": "hook",
                            "kind": "webhook",
                            "url_env": "HOOK_URL",
                            "secret_env": "HOOK_SECRET",
                            "headers_env": {"Authorization": "HOOK_AUTH"},
                            "retries": 0,
                        }
                    ],
                    "rules": [{"name": "flags", "kind": "test_flag", "cooldown": 0}],
                }
            },
            Path("evalkit.toml"),
        )
    )
    sinks = build_sinks(config)
    access = StoreAccess(store_path, wait=10, program="test")
    caplog.set_level(logging.DEBUG)
    FLAGS.update(a=True)
    with access("evaluate") as store:
        evaluate_rules(store, config, sinks, now=T0)
    policy = RedeliverySchedule.from_settings(config.settings)
    receiver.fail_with = 500
    assert deliver_due(access, sinks, policy).failed == 1
    receiver.stop()
    assert deliver_due(access, sinks, policy).failed == 1
    receiver.start()
    receiver.fail_with = None
    assert deliver_due(access, sinks, policy).delivered == 1
    assert receiver.accepted()[0].headers["authorization"] == header
    stored = store_text(store_path)
    assert "HTTP 500" in stored
    assert "ConnectError" in stored
    for secret in (token, SECRET, header, "header-token"):
        assert secret not in stored
        assert secret not in caplog.text


@pytest.fixture
def hung_receiver() -> Iterator[str]:
    """A receiver on 127.0.0.1 that accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    done.set()
    thread.join(timeout=5)
    for connection in held:
        connection.close()
    server.close()


@pytest.mark.slow
def test_a_hung_webhook_does_not_delay_the_other_sinks(
    store_path: Path, hung_receiver: str, tmp_path: Path
) -> None:
    timeout = 6.0
    lines = tmp_path / "alerts.jsonl"
    config = alerts_config(
        parse_settings(
            {
                "alerts": {
                    "sinks": [
                        {
                            "name": "a-hook",
                            "kind": "webhook",
                            "url": hung_receiver,
                            "retries": 0,
                            "timeout": timeout,
                        },
                        {"name": "z-file", "kind": "log", "path": str(lines)},
                    ],
                    "rules": [{"name": "flags", "kind": "test_flag", "cooldown": 0}],
                }
            },
            Path("evalkit.toml"),
        )
    )
    sinks = build_sinks(config)
    access = StoreAccess(store_path, wait=30, program="test")
    FLAGS.update(a=True)
    with access("evaluate") as store:
        evaluate_rules(store, config, sinks, now=T0)
    reports: list[Any] = []
    began = time.monotonic()
    delivering = threading.Thread(
        target=lambda: reports.append(
            deliver_due(access, sinks, RedeliverySchedule(), clock=lambda: T0)
        )
    )
    delivering.start()
    while not (lines.exists() and lines.read_text()) and time.monotonic() - began < 3 * timeout:
        time.sleep(0.05)
    written_after = time.monotonic() - began
    delivering.join(timeout=6 * timeout)
    assert written_after < timeout / 2, f"the log sink waited {written_after:.1f} s"
    (report,) = reports
    assert (report.delivered, report.failed) == (1, 1)
    with access("check") as store:
        assert outbox_counts(store) == {("z-file", "delivered"): 1, ("a-hook", "pending"): 1}


class _Told(logging.Handler):
    """Sets ``event`` when a record whose message contains ``text`` is logged."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


def test_a_delivery_whose_recording_waits_for_the_store_is_not_sent_again(
    store_path: Path,
) -> None:
    """A job holds the store while the webhook accepts an alert: the attempt is recorded
    once the store is free, and neither this pass nor the next sends the alert again."""
    received: list[str] = []

    class Hook(JSONHandler):
        def do_POST(self) -> None:
            received.append(self.read_json()["alert_id"])
            self.send_json({"ok": True})

    access = StoreAccess(store_path, wait=0.2, program="test")
    job = FileLock(access.lock_path, program="evalkit serve")
    told = _Told("is not recorded yet")
    logger = logging.getLogger("evalkit.alerts")
    logger.addHandler(told)
    with serving(Hook) as url:
        config = alerts_config(
            parse_settings(
                {
                    "alerts": {
                        "sinks": [{"name": "hook", "kind": "webhook", "url": url, "retries": 0}],
                        "rules": [{"name": "flags", "kind": "test_flag", "cooldown": 0}],
                    }
                },
                Path("evalkit.toml"),
            )
        )
        sinks = build_sinks(config)
        FLAGS.update(a=True)
        with access("evaluate") as store:
            evaluate_rules(store, config, sinks, now=T0)
        reports: list[Any] = []

        def read_then_hold(purpose: str) -> contextlib.AbstractContextManager[Store]:
            # The pass reads the outbox; a job then takes the store before the send ends.
            if purpose == "alerts: reading the outbox":
                return _then(access(purpose), lambda: job.acquire(purpose="job nightly", wait=5))
            return access(purpose)

        delivering = threading.Thread(
            target=lambda: reports.append(
                deliver_due(read_then_hold, sinks, RedeliverySchedule(), clock=lambda: T0)
            )
        )
        try:
            delivering.start()
            while not told.event.wait(0.05) and delivering.is_alive():
                pass
            assert received, "the alert was sent while the job held the store"
        finally:
            job.release()
            delivering.join(timeout=60)
            logger.removeHandler(told)
        again = deliver_due(access, sinks, RedeliverySchedule(), clock=lambda: T0)
    with access("check") as store:
        (alert,) = list_alerts(store)
        counts = outbox_counts(store)
    assert received == [alert.alert_id], "the receiver got the alert exactly once"
    assert counts == {("hook", "delivered"): 1}
    assert told.event.is_set(), "the attempt waited for the store"
    (report,) = reports
    assert (report.delivered, report.failed, dict(report.errors)) == (1, 0, {})
    assert again.delivered == 0


@contextlib.contextmanager
def _then(block: contextlib.AbstractContextManager[Store], after: Any) -> Iterator[Store]:
    """``block``, then ``after()`` once it is left."""
    with block as store:
        yield store
    after()


def test_a_sink_that_raises_is_reported_and_its_row_waits(
    store_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected error in a sink's thread ends that sink's pass with an error in the
    report and the log, not a dead thread and a pass that says all went well."""
    config = flag_config(receiver)
    access = StoreAccess(store_path, wait=10, program="test")
    FLAGS.update(a=True)
    with access("evaluate") as store:
        evaluate_rules(store, config, build_sinks(config), now=T0)

    @dataclass
    class Broken:
        name: str = "hook"
        min_severity: Any = None

        def send(self, alert: Any) -> Any:
            raise RuntimeError("boom")

        def describe(self) -> dict[str, Any]:
            return {}

    with caplog.at_level(logging.ERROR, logger="evalkit.alerts"):
        report = deliver_due(access, {"hook": Broken()}, RedeliverySchedule(), clock=lambda: T0)
    assert (report.delivered, report.failed) == (0, 0)
    assert dict(report.errors) == {"hook": "RuntimeError: boom"}
    assert dict(report.waiting) == {"hook": 1}
    with access("check") as store:
        (alert,) = list_alerts(store)
        assert outbox_counts(store) == {("hook", "pending"): 1}
    assert [r.getMessage() for r in caplog.records] == [
        f"outbox: delivering alert {alert.alert_id} to hook failed"
    ]
