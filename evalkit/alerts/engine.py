"""Turning what rules find into notifications: deduplication, cooldown, resolution.

``transition`` decides, purely, per ``rule name:subject`` key. A notification is stored with
its state and one outbox row per sink in one transaction; sending happens later, from the
outbox. The rules: docs/alerts.md, "Deduplication, cooldown, resolution".
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from evalkit.alerts.configured import AlertsConfig, ConfiguredRule
from evalkit.alerts.model import Alert, AlertStatus, Signal
from evalkit.alerts.rules import RULE_KINDS, RuleContext
from evalkit.clock import utc_now
from evalkit.errors import EvalkitError
from evalkit.records import AlertSeverity
from evalkit.store.alerts import (
    StoredAlertState,
    get_alert,
    load_alert_states,
    save_alert,
    save_alert_states,
    told_of_firing,
)

if TYPE_CHECKING:
    from evalkit.alerts.sinks import Sink
    from evalkit.store.store import Store

__all__ = ["Evaluation", "Transition", "dedup_key", "evaluate_rules", "route", "transition"]

_log = logging.getLogger("evalkit.alerts")


def dedup_key(rule: str, subject: str) -> str:
    """The deduplication key of a rule's subject: ``rule:subject``."""
    return f"{rule}:{subject}"


@dataclass(frozen=True, slots=True)
class Transition:
    """The new state of a key and, when receivers must hear of it, what to tell them."""

    state: StoredAlertState
    notify: AlertStatus | None
    severity: AlertSeverity
    episode_start: datetime


def transition(
    previous: StoredAlertState | None,
    signal: Signal,
    *,
    rule: str,
    default_severity: AlertSeverity,
    cooldown: float,
    repeat_interval: float | None,
    now: datetime,
) -> Transition:
    """Decide what a signal means for its key (see the module docstring)."""
    key = dedup_key(rule, signal.subject)
    severity = signal.severity or default_severity
    told = previous.notified_status if previous else None
    told_severity = (
        AlertSeverity(previous.notified_severity)
        if previous is not None and previous.notified_severity
        else None
    )
    state = StoredAlertState(
        dedup_key=key,
        rule=rule,
        subject=signal.subject,
        active=signal.active,
        severity=severity.value if signal.active else None,
        since=(previous.since if previous and previous.active else now) if signal.active else None,
        last_evaluated_at=now,
        notified_status=told,
        notified_severity=previous.notified_severity if previous else None,
        last_notified_at=previous.last_notified_at if previous else None,
        last_fired_notice_at=previous.last_fired_notice_at if previous else None,
        last_alert_id=previous.last_alert_id if previous else None,
        evidence=dict(signal.evidence),
        title=signal.title,
        summary=signal.summary,
        links=dict(signal.links),
    )
    notify: AlertStatus | None = None
    if signal.active:
        last_fired = previous.last_fired_notice_at if previous else None
        cooling = last_fired is not None and now - last_fired < timedelta(seconds=cooldown)
        escalated = told_severity is not None and severity.rank > told_severity.rank
        reminder_due = (
            repeat_interval is not None
            and previous is not None
            and previous.last_notified_at is not None
            and now - previous.last_notified_at >= timedelta(seconds=repeat_interval)
        )
        if told != AlertStatus.firing.value:
            notify = None if cooling else AlertStatus.firing
        elif escalated or reminder_due:
            notify = AlertStatus.firing
    elif told == AlertStatus.firing.value:
        notify = AlertStatus.resolved
        severity = told_severity or default_severity
    if notify is not None:
        state = replace(
            state,
            notified_status=notify.value,
            notified_severity=severity.value,
            last_notified_at=now,
            last_fired_notice_at=(
                now if notify is AlertStatus.firing else state.last_fired_notice_at
            ),
        )
    started = state.since or (previous.since if previous and previous.since else now)
    return Transition(state=state, notify=notify, severity=severity, episode_start=started)


def route(sinks: Mapping[str, Sink], rule: ConfiguredRule, severity: AlertSeverity) -> list[str]:
    """The sinks a rule's alert of ``severity`` goes to."""
    wanted = rule.config.sinks if rule.config.sinks is not None else tuple(sinks)
    return [
        name for name in wanted if name in sinks and severity.rank >= sinks[name].min_severity.rank
    ]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What one evaluation of the rules did: notifications raised, and rules that failed."""

    alerts: tuple[Alert, ...] = ()
    errors: Mapping[str, str] = field(default_factory=dict)
    evaluated: tuple[str, ...] = ()


def evaluate_rules(
    store: Store,
    config: AlertsConfig,
    sinks: Mapping[str, Sink],
    *,
    now: datetime | None = None,
    only: Sequence[str] | None = None,
) -> Evaluation:
    """Evaluate the enabled rules (or those named in ``only``) and store what they raise.

    A rule whose evaluation fails (a baseline run that is gone, a table not yet created)
    is reported in ``errors`` and leaves its keys as they were; the others go on.
    """
    moment = now or utc_now()
    raised: list[Alert] = []
    errors: dict[str, str] = {}
    evaluated: list[str] = []
    for rule in config.rules:
        wanted = rule.name in only if only is not None else rule.config.enabled
        if not wanted:
            continue
        try:
            raised += _evaluate_rule(store, config, rule, sinks, moment)
        except EvalkitError as error:
            errors[rule.name] = str(error)
            _log.error("alert rule %s could not be evaluated: %s", rule.name, error)
            continue
        evaluated.append(rule.name)
    if only is None:
        raised += _retire_unconfigured(store, config, sinks, moment)
    return Evaluation(alerts=tuple(raised), errors=errors, evaluated=tuple(evaluated))


def _evaluate_rule(
    store: Store,
    config: AlertsConfig,
    rule: ConfiguredRule,
    sinks: Mapping[str, Sink],
    now: datetime,
) -> list[Alert]:
    kind = RULE_KINDS[rule.config.kind]
    states = load_alert_states(store, rule=rule.name)
    by_subject = {state.subject: state for state in states.values()}
    context = RuleContext(
        store=store,
        now=now,
        rule=rule.name,
        previous=by_subject,
        dashboard_url=config.settings.dashboard_url,
        jobs=config.jobs,
    )
    signals = kind.evaluate(context, rule.params)
    quiet: list[StoredAlertState] = []
    raised: list[Alert] = []
    for signal in signals:
        step = transition(
            by_subject.get(signal.subject),
            signal,
            rule=rule.name,
            default_severity=rule.config.severity,
            cooldown=rule.config.cooldown,
            repeat_interval=rule.config.repeat_interval,
            now=now,
        )
        if step.notify is None:
            quiet.append(step.state)
            continue
        alert = _alert(rule, signal, step, now)
        targets = route(sinks, rule, step.severity)
        if step.notify is AlertStatus.resolved:
            targets = _told_of_firing(store, by_subject.get(signal.subject), targets)
        raised.append(_stored(store, alert, step, targets))
    save_alert_states(store, quiet)
    return raised


def _retire_unconfigured(
    store: Store, config: AlertsConfig, sinks: Mapping[str, Sink], now: datetime
) -> list[Alert]:
    """Close the active keys of rules that are no longer configured, or are disabled."""
    enabled = {rule.name for rule in config.rules if rule.config.enabled}
    retired = [
        state
        for state in load_alert_states(store).values()
        if state.rule not in enabled and (state.active or state.notified_status == "firing")
    ]
    quiet: list[StoredAlertState] = []
    raised: list[Alert] = []
    for previous in retired:
        fired = get_alert(store, previous.last_alert_id) if previous.last_alert_id else None
        why = f"rule {previous.rule} is no longer configured or enabled"
        signal = Signal(
            subject=previous.subject,
            active=False,
            title=f"{previous.title or previous.dedup_key} (closed: {why})",
            summary=f"Closed without evaluation: {why}.",
            evidence={"closed": why},
        )
        severity = AlertSeverity(previous.notified_severity or previous.severity or "warning")
        step = transition(
            previous,
            signal,
            rule=previous.rule,
            default_severity=severity,
            cooldown=0.0,
            repeat_interval=None,
            now=now,
        )
        if step.notify is None:
            quiet.append(step.state)
            continue
        alert = Alert(
            alert_id=_alert_id(now),
            rule=previous.rule,
            kind=fired.kind if fired is not None else "unknown",
            dedup_key=previous.dedup_key,
            subject=previous.subject,
            status=step.notify,
            severity=step.severity,
            title=signal.title,
            summary=signal.summary,
            evidence=dict(signal.evidence),
            links=dict(previous.links),
            fired_at=step.episode_start,
            created_at=now,
        )
        raised.append(_stored(store, alert, step, _told_of_firing(store, previous, list(sinks))))
    save_alert_states(store, quiet)
    return raised


def _stored(store: Store, alert: Alert, step: Transition, targets: list[str]) -> Alert:
    """``alert`` stored with its key's new state and one outbox row per sink in
    ``targets`` (``save_alert``), and logged; returned."""
    save_alert(
        store,
        alert.to_stored(n_sinks=len(targets)),
        state=replace(step.state, last_alert_id=alert.alert_id),
        sinks=targets,
    )
    _log.info(
        "alert %s %s [%s] raised for %s%s",
        alert.alert_id,
        alert.status.value,
        alert.severity.value,
        ", ".join(targets) or "no sink",
        f" ({alert.evidence['closed']})" if "closed" in alert.evidence else "",
    )
    return alert


def _alert_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%S}-{secrets.token_hex(6)}"


def _told_of_firing(
    store: Store, previous: StoredAlertState | None, targets: list[str]
) -> list[str]:
    """The ``targets`` that were sent the firing a resolution closes: a receiver never sees
    a resolution for a firing it was not told about (a sink added since, one it was not
    routed to then, one whose delivery of the firing was abandoned). Without the firing's
    record (an older store), every target."""
    fired = (
        get_alert(store, previous.last_alert_id) if previous and previous.last_alert_id else None
    )
    if previous is None or fired is None:
        return targets
    told = told_of_firing(store, previous.dedup_key)
    return [name for name in targets if name in told]


def _alert(rule: ConfiguredRule, signal: Signal, step: Transition, now: datetime) -> Alert:
    return Alert(
        alert_id=_alert_id(now),
        rule=rule.name,
        kind=rule.config.kind,
        dedup_key=step.state.dedup_key,
        subject=signal.subject,
        status=step.notify or AlertStatus.firing,
        severity=step.severity,
        title=signal.title or f"{rule.name}: {signal.subject}",
        summary=signal.summary or signal.title or rule.name,
        evidence=dict(signal.evidence),
        links=dict(signal.links),
        fired_at=step.episode_start,
        created_at=now,
    )
