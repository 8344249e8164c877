"""Alert rules over stored findings, and sinks that deliver them through a durable outbox.

The flow::

    rules (RULE_KINDS)  --evaluate_rules-->  alerts + alert_outbox (store)
        --deliver_due-->  sinks (SINK_KINDS: webhook, command, log)

- ``config``: the rules and sinks of the ``[alerts]`` settings resolved to their kinds;
- ``rules``: rule kinds, each an evaluator over what other stages stored (runs, drift
  checks, audits, traffic windows, job runs) that yields one ``Signal`` per subject;
- ``engine``: deduplication keys, cooldown, escalation and *resolved* notifications;
- ``outbox``: delivery with retries that survive restarts, in order per sink;
- ``sinks`` and ``payload``: what is sent, signed with HMAC-SHA256, and where.

``docs/alerts.md`` documents every rule kind, sink kind and setting.
"""

from evalkit.alerts.config import AlertsConfig, ConfiguredRule, ConfiguredSink, alerts_config
from evalkit.alerts.engine import Evaluation, Transition, dedup_key, evaluate_rules, transition
from evalkit.alerts.model import Alert, AlertStatus, DeliveryResult, Signal
from evalkit.alerts.outbox import DeliveryReport, RetryPolicy, StoreSession, deliver_due
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
    "RetryPolicy",
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
