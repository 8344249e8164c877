"""Alert rules over stored findings, and sinks that deliver them through a durable outbox.

Rules (``RULE_KINDS``) yield signals, ``evaluate_rules`` stores alerts and outbox rows, and
``deliver_due`` sends them to sinks (``SINK_KINDS``). ``docs/alerts.md`` documents every rule
kind, sink kind and setting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalkit.lazy import lazy_attributes

if TYPE_CHECKING:
    from evalkit.alerts.configured import AlertsConfig as AlertsConfig
    from evalkit.alerts.configured import ConfiguredRule as ConfiguredRule
    from evalkit.alerts.configured import ConfiguredSink as ConfiguredSink
    from evalkit.alerts.configured import alerts_config as alerts_config
    from evalkit.alerts.engine import Evaluation as Evaluation
    from evalkit.alerts.engine import Transition as Transition
    from evalkit.alerts.engine import dedup_key as dedup_key
    from evalkit.alerts.engine import evaluate_rules as evaluate_rules
    from evalkit.alerts.engine import transition as transition
    from evalkit.alerts.model import Alert as Alert
    from evalkit.alerts.model import AlertStatus as AlertStatus
    from evalkit.alerts.model import DeliveryResult as DeliveryResult
    from evalkit.alerts.model import Signal as Signal
    from evalkit.alerts.outbox import DeliveryReport as DeliveryReport
    from evalkit.alerts.outbox import RedeliverySchedule as RedeliverySchedule
    from evalkit.alerts.outbox import StoreSession as StoreSession
    from evalkit.alerts.outbox import deliver_due as deliver_due
    from evalkit.alerts.payload import PAYLOAD_SCHEMA as PAYLOAD_SCHEMA
    from evalkit.alerts.payload import SIGNATURE_HEADER as SIGNATURE_HEADER
    from evalkit.alerts.payload import TIMESTAMP_HEADER as TIMESTAMP_HEADER
    from evalkit.alerts.payload import alert_payload as alert_payload
    from evalkit.alerts.payload import sign as sign
    from evalkit.alerts.payload import slack_body as slack_body
    from evalkit.alerts.payload import verify_signature as verify_signature
    from evalkit.alerts.rules import RULE_KINDS as RULE_KINDS
    from evalkit.alerts.rules import RuleContext as RuleContext
    from evalkit.alerts.rules import RuleKind as RuleKind
    from evalkit.alerts.rules import register_rule_kind as register_rule_kind
    from evalkit.alerts.sinks import SINK_KINDS as SINK_KINDS
    from evalkit.alerts.sinks import CommandSink as CommandSink
    from evalkit.alerts.sinks import LogSink as LogSink
    from evalkit.alerts.sinks import Redactor as Redactor
    from evalkit.alerts.sinks import Sink as Sink
    from evalkit.alerts.sinks import SinkKind as SinkKind
    from evalkit.alerts.sinks import WebhookSink as WebhookSink
    from evalkit.alerts.sinks import build_sinks as build_sinks
    from evalkit.alerts.sinks import probe_alert as probe_alert
    from evalkit.alerts.sinks import register_sink_kind as register_sink_kind
else:
    # Importing the package loads none of its modules; each name loads its own on first use.
    __getattr__ = lazy_attributes(__name__)
