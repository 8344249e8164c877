"""Deduplication, cooldown, escalation and resolution; configuration of rules and sinks."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from evalkit.alerts import (
    AlertStatus,
    Evaluation,
    Signal,
    alerts_config,
    build_sinks,
    evaluate_rules,
    transition,
)
from evalkit.alerts.engine import route
from evalkit.alerts.sinks import LogSink
from evalkit.config import load_settings, parse_duration, parse_settings
from evalkit.errors import ConfigError
from evalkit.records import AlertSeverity
from evalkit.scheduler import SchedulerService, service_config
from evalkit.store import Store
from evalkit.store.alerts import StoredAlertState, load_alert_states
from evalkit.store.jobs import record_job_run

T0 = datetime(2026, 11, 21, 2, 0, 0)
HOUR = 3600.0


def step(
    previous: StoredAlertState | None,
    active: bool,
    at: datetime,
    *,
    severity: AlertSeverity | None = None,
    cooldown: float = HOUR,
    repeat: float | None = None,
) -> tuple[StoredAlertState, AlertStatus | None]:
    result = transition(
        previous,
        Signal(subject="demo", active=active, severity=severity),
        rule="drop",
        default_severity=AlertSeverity.critical,
        cooldown=cooldown,
        repeat_interval=repeat,
        now=at,
    )
    return result.state, result.notify


def test_a_condition_fires_once_then_resolves_once() -> None:
    timeline = [False, True, True, True, False, False]
    state: StoredAlertState | None = None
    told = []
    for minute, active in enumerate(timeline):
        state, notify = step(state, active, T0 + timedelta(minutes=minute))
        told.append(notify)
    assert told == [None, AlertStatus.firing, None, None, AlertStatus.resolved, None]
    assert state is not None
    assert state.dedup_key == "drop:demo"
    assert state.notified_status == "resolved"
    assert not state.active


def test_cooldown_delays_a_refire_but_never_drops_it() -> None:
    state, notify = step(None, True, T0)
    assert notify is AlertStatus.firing
    state, notify = step(state, False, T0 + timedelta(minutes=5))
    assert notify is AlertStatus.resolved
    state, notify = step(state, True, T0 + timedelta(minutes=10))
    assert notify is None, "within the cooldown of the first firing"
    assert state.active
    assert state.notified_status == "resolved"
    state, notify = step(state, True, T0 + timedelta(minutes=59))
    assert notify is None
    state, notify = step(state, True, T0 + timedelta(minutes=61))
    assert notify is AlertStatus.firing, "still holding once the cooldown has passed"
    assert state.since == T0 + timedelta(minutes=10)


def test_a_blip_inside_the_cooldown_is_never_told() -> None:
    state, _ = step(None, True, T0)
    state, _ = step(state, False, T0 + timedelta(minutes=1))
    state, notify = step(state, True, T0 + timedelta(minutes=2))
    assert notify is None
    state, notify = step(state, False, T0 + timedelta(minutes=3))
    assert notify is None, "receivers were told 'resolved' already"


def test_escalation_is_told_at_once_and_reminders_follow_repeat_interval() -> None:
    state, notify = step(None, True, T0, severity=AlertSeverity.warning, repeat=2 * HOUR)
    assert notify is AlertStatus.firing
    state, notify = step(
        state, True, T0 + timedelta(minutes=1), severity=AlertSeverity.critical, repeat=2 * HOUR
    )
    assert notify is AlertStatus.firing
    assert state.notified_severity == "critical"
    state, notify = step(state, True, T0 + timedelta(minutes=90), repeat=2 * HOUR)
    assert notify is None
    state, notify = step(state, True, T0 + timedelta(minutes=122), repeat=2 * HOUR)
    assert notify is AlertStatus.firing
    state, notify = step(state, False, T0 + timedelta(minutes=130))
    assert notify is AlertStatus.resolved


def test_without_repeat_interval_a_long_condition_is_told_once() -> None:
    state, notify = step(None, True, T0)
    assert notify is AlertStatus.firing
    for day in range(1, 8):
        state, notify = step(state, True, T0 + timedelta(days=day))
        assert notify is None


def test_routing_respects_rule_sinks_and_min_severity() -> None:
    config = alerts_config(
        parse_settings(
            {
                "alerts": {
                    "sinks": [
                        {"name": "pager", "kind": "log", "min_severity": "critical"},
                        {"name": "chat", "kind": "log"},
                    ],
                    "rules": [
                        {"name": "all", "kind": "job_failure"},
                        {"name": "chat-only", "kind": "job_failure", "sinks": ["chat"]},
                    ],
                }
            },
            Path("evalkit.toml"),
        )
    )
    sinks = {
        "pager": LogSink(name="pager", min_severity=AlertSeverity.critical),
        "chat": LogSink(name="chat"),
    }
    everything, chat_only = config.rules
    assert route(sinks, everything, AlertSeverity.critical) == ["pager", "chat"]
    assert route(sinks, everything, AlertSeverity.warning) == ["chat"]
    assert route(sinks, chat_only, AlertSeverity.critical) == ["chat"]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(90, 90.0), ("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("2h", 7200.0), ("1.5d", 129600.0)],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["soon", "-5m", True, "5 minutes"])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("nan"), "must be a number of seconds"),
        (float("inf"), "at most 100 years"),
        (1e12, "at most 100 years"),
        ("36501d", "at most 100 years"),
        ("-5s", "cannot be negative, got '-5s'"),
        (-5, "cannot be negative"),
    ],
)
def test_durations_a_scheduler_cannot_count_are_refused_saying_why(
    value: object, message: str
) -> None:
    """APScheduler turned nan into a traceback and 1e12 s into a date past year 9999."""
    with pytest.raises(ValueError, match=message):
        parse_duration(value)
    assert parse_duration("36500d") == 100 * 365 * 86400


@pytest.mark.parametrize(
    ("alerts", "where"),
    [
        ({"rules": [{"name": "x", "kind": "nope"}]}, "[[alerts.rules]] #1 'x': field 'kind'"),
        (
            {"rules": [{"name": "x", "kind": "job_failure", "cooldown": "soon"}]},
            "[[alerts.rules]] #1 'x': field 'cooldown'",
        ),
        (
            {"rules": [{"name": "x", "kind": "job_failure", "consecutiv": 2}]},
            "field 'consecutiv'",
        ),
        (
            {"rules": [{"name": "p", "kind": "precision_regression", "goldset": "gs"}]},
            "baseline_run",
        ),
        (
            {
                "rules": [
                    {
                        "name": "p",
                        "kind": "precision_regression",
                        "goldset": "gs",
                        "baseline_run": "r",
                        "measures": ["precision@ten"],
                    }
                ]
            },
            "field 'measures'",
        ),
        ({"sinks": [{"name": "w", "kind": "webhook"}]}, "exactly one of url or url_env"),
        (
            {"sinks": [{"name": "w", "kind": "webhook", "url": "ftp://x"}]},
            "http:// or https://",
        ),
        (
            {"sinks": [{"name": "w", "kind": "webhook", "url": "http://"}]},
            "http:// or https:// URL with a host",
        ),
        (
            {"rules": [{"name": "x", "kind": "job_failure", "sinks": ["missing"]}]},
            "field 'sinks': no sink named 'missing'",
        ),
        (
            {"rules": [{"name": "x", "kind": "job_failure"}, {"name": "x", "kind": "job_failure"}]},
            "used twice",
        ),
        ({"retry_initial": "10m", "retry_max": "1m"}, "retry_max"),
        # Both at 0 made evalkit serve evaluate the rules without pause, holding the store
        # from every job.
        ({"deliver_interval": 0}, "field 'deliver_interval': Input should be greater than 0"),
        ({"evaluate_interval": "0s"}, "field 'evaluate_interval': Input should be greater"),
        ({"colour": "red"}, "[alerts]: field 'colour'"),
    ],
)
def test_configuration_errors_name_the_file_and_the_field(
    alerts: dict[str, object], where: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        alerts_config(parse_settings({"alerts": alerts}, Path("/etc/evalkit.toml")))
    assert str(raised.value).startswith("/etc/evalkit.toml: ")
    assert where in str(raised.value)


def test_missing_secret_environment_variable_is_named_not_echoed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from evalkit.alerts import build_sinks

    monkeypatch.delenv("HOOK_SECRET", raising=False)
    config = alerts_config(
        parse_settings(
            {
                "alerts": {
                    "sinks": [
                        {
                            "name": "w",
                            "kind": "webhook",
                            "url": "http://127.0.0.1:9/hook",
                            "secret_env": "HOOK_SECRET",
                        }
                    ]
                }
            },
            Path("evalkit.toml"),
        )
    )
    with pytest.raises(ConfigError, match="HOOK_SECRET is not set"):
        build_sinks(config)


def test_no_sinks_means_a_log_sink_and_defaults_are_documented() -> None:
    from evalkit.alerts import build_sinks
    from evalkit.config import AlertsSettings, RuleConfig

    config = alerts_config(parse_settings({}, Path("evalkit.toml")))
    assert list(build_sinks(config)) == ["log"]
    for model in (AlertsSettings, RuleConfig):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no help text"


def test_with_no_sinks_a_rule_may_name_the_default_log_sink() -> None:
    rules = [{"name": "jobs", "kind": "job_failure", "sinks": ["log"]}]
    config = alerts_config(parse_settings({"alerts": {"rules": rules}}, Path("evalkit.toml")))
    assert config.rules[0].config.sinks == ("log",)
    assert route(build_sinks(config), config.rules[0], AlertSeverity.critical) == ["log"]
    misspelt = [{"name": "jobs", "kind": "job_failure", "sinks": ["logs"]}]
    with pytest.raises(ConfigError) as refused:
        alerts_config(parse_settings({"alerts": {"rules": misspelt}}, Path("evalkit.toml")))
    assert str(refused.value) == (
        "evalkit.toml: [[alerts.rules]] #1 'jobs' (kind job_failure): field 'sinks': no sink "
        "named 'logs'; did you mean 'log'? (configured: log)"
    )


def nightly(store: Store, status: str, at: datetime) -> None:
    record_job_run(
        store,
        job="nightly",
        kind="command",
        trigger="schedule",
        status=status,
        started_at=at,
        finished_at=at,
        pid=1,
        host="h",
        error=None,
    )


def test_serve_neither_closes_a_rule_added_since_it_started_nor_raises_one_removed(
    evalkit_home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """evalkit serve reads evalkit.toml once. A rule added to the file and evaluated by
    `evalkit alerts evaluate` is not closed by the running service as unconfigured, and a
    rule removed from it (and closed by the CLI) is not raised again by the service: both
    were false notices to every sink. The service says once that it must be restarted."""
    path = evalkit_home.parent / "evalkit.toml"
    monkeypatch.setenv("EVALKIT_CONFIG", str(path))
    sink = (
        f'[[alerts.sinks]]\nname = "pager"\nkind = "log"\npath = "{evalkit_home.parent}/p.jsonl"\n'
    )

    def rule(name: str) -> str:
        return f'[[alerts.rules]]\nname = "{name}"\nkind = "job_failure"\ncooldown = 0\n'

    path.write_text(sink + rule("kept") + rule("removed"), encoding="utf-8")
    started = load_settings()
    service = SchedulerService(service_config(started), started)
    with Store.open(started.resolved_store_path) as store:
        nightly(store, "failed", T0)

        def told(evaluation: Evaluation) -> list[tuple[str, str]]:
            return sorted((a.rule, a.status.value) for a in evaluation.alerts)

        assert told(service.evaluate_alerts(store)) == [("kept", "firing"), ("removed", "firing")]
        path.write_text(sink + rule("kept") + rule("added"), encoding="utf-8")
        current = alerts_config(load_settings())
        assert told(evaluate_rules(store, current, build_sinks(current))) == [
            ("added", "firing"),
            ("removed", "resolved"),
        ]
        with caplog.at_level(logging.WARNING, logger="evalkit.scheduler"):
            assert told(service.evaluate_alerts(store)) == []
            assert told(service.evaluate_alerts(store)) == []
        assert [r.getMessage() for r in caplog.records] == [
            f"{path} changed since evalkit serve started; the running service keeps the "
            "configuration it started with: restart it to apply the change. Until then it "
            "closes no alert of a rule it does not know and does not evaluate the rules "
            "changed or removed since: removed"
        ]
        states = load_alert_states(store)
        assert states["added:nightly"].active
        assert not states["removed:nightly"].active
        nightly(store, "succeeded", T0 + timedelta(minutes=1))
        assert told(service.evaluate_alerts(store)) == [("kept", "resolved")]
