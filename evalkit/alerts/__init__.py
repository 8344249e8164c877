"""Alert rules over stored findings, and sinks that deliver them through a durable outbox.

The flow::

    rules (RULE_KINDS)  --evaluate_rules-->  alerts + alert_outbox (store)
        --deliver_due-->  sinks (SINK_KINDS: webhook, command, log)

- ``configured``: the rules and sinks of the ``[alerts]`` settings resolved to their kinds
  (the settings tables themselves are ``evalkit.config.alerts``);
- ``rules``: rule kinds, each an evaluator over what other stages stored (runs, drift
  checks, audits, traffic windows, job runs) that yields one ``Signal`` per subject;
- ``engine``: deduplication keys, cooldown, escalation and *resolved* notifications;
- ``outbox``: delivery with retries that survive restarts, in order per sink;
- ``sinks`` and ``payload``: what is sent, signed with HMAC-SHA256, and where.

``docs/alerts.md`` documents every rule kind, sink kind and setting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalkit.lazy import lazy_attributes

if TYPE_CHECKING:
    from evalkit.alerts.configured import (
        AlertsConfig,
        ConfiguredRule,
        ConfiguredSink,
        alerts_config,
    )
    from evalkit.alerts.engine import Evaluation, Transition, dedup_key, evaluate_rules, transition
    from evalkit.alerts.model import Alert, AlertStatus, DeliveryResult, Signal
    from evalkit.alerts.outbox import DeliveryReport, RedeliverySchedule, StoreSession, deliver_due
    from evalkit.alerts.payload import (
        PAYLOAD_SCHEMA,
        SIGNATURE_HEADER,
        TIMESTAMP_HEADER,
        alert_payload,
        sign,
        slack_body,
        verify_signature,
    )
    from evalkit.alerts.rules import RULE_KINDS, RuleContext, RuleKind, register_rule_kind
    from evalkit.alerts.sinks import (
        SINK_KINDS,
        CommandSink,
        LogSink,
        Redactor,
        Sink,
        SinkKind,
        WebhookSink,
        build_sinks,
        probe_alert,
        register_sink_kind,
    )


__all__ = [
    "PAYLOAD_SCHEMA",
    "RULE_KINDS",
    "SIGNATURE_HEADER",
    "SINK_KINDS",
    "TIMESTAMP_HEADER",
    "Alert",
    "AlertStatus",
    "AlertsConfig",
    "CommandSink",
    "ConfiguredRule",
    "ConfiguredSink",
    "DeliveryReport",
    "DeliveryResult",
    "Evaluation",
    "LogSink",
    "Redactor",
    "RedeliverySchedule",
    "RuleContext",
    "RuleKind",
    "Signal",
    "Sink",
    "SinkKind",
    "StoreSession",
    "Transition",
    "WebhookSink",
    "alert_payload",
    "alerts_config",
    "build_sinks",
    "dedup_key",
    "deliver_due",
    "evaluate_rules",
    "probe_alert",
    "register_rule_kind",
    "register_sink_kind",
    "sign",
    "slack_body",
    "transition",
    "verify_signature",
]

# Importing the package loads none of its modules; each name loads its own on first use.
__getattr__ = lazy_attributes(
    __name__,
    {
        "Alert": "evalkit.alerts.model",
        "AlertStatus": "evalkit.alerts.model",
        "AlertsConfig": "evalkit.alerts.configured",
        "CommandSink": "evalkit.alerts.sinks",
        "ConfiguredRule": "evalkit.alerts.configured",
        "ConfiguredSink": "evalkit.alerts.configured",
        "DeliveryReport": "evalkit.alerts.outbox",
        "DeliveryResult": "evalkit.alerts.model",
        "Evaluation": "evalkit.alerts.engine",
        "LogSink": "evalkit.alerts.sinks",
        "PAYLOAD_SCHEMA": "evalkit.alerts.payload",
        "RULE_KINDS": "evalkit.alerts.rules",
        "Redactor": "evalkit.alerts.sinks",
        "RedeliverySchedule": "evalkit.alerts.outbox",
        "RuleContext": "evalkit.alerts.rules",
        "RuleKind": "evalkit.alerts.rules",
        "SIGNATURE_HEADER": "evalkit.alerts.payload",
        "SINK_KINDS": "evalkit.alerts.sinks",
        "Signal": "evalkit.alerts.model",
        "Sink": "evalkit.alerts.sinks",
        "SinkKind": "evalkit.alerts.sinks",
        "StoreSession": "evalkit.alerts.outbox",
        "TIMESTAMP_HEADER": "evalkit.alerts.payload",
        "Transition": "evalkit.alerts.engine",
        "WebhookSink": "evalkit.alerts.sinks",
        "alert_payload": "evalkit.alerts.payload",
        "alerts_config": "evalkit.alerts.configured",
        "build_sinks": "evalkit.alerts.sinks",
        "dedup_key": "evalkit.alerts.engine",
        "deliver_due": "evalkit.alerts.outbox",
        "evaluate_rules": "evalkit.alerts.engine",
        "probe_alert": "evalkit.alerts.sinks",
        "register_rule_kind": "evalkit.alerts.rules",
        "register_sink_kind": "evalkit.alerts.sinks",
        "sign": "evalkit.alerts.payload",
        "slack_body": "evalkit.alerts.payload",
        "transition": "evalkit.alerts.engine",
        "verify_signature": "evalkit.alerts.payload",
    },
)
