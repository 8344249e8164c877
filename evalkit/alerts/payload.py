"""What receivers get: the JSON payload, a Slack-compatible body, and the HMAC signature.

The payload (``schema: "evalkit.alert.v1"``) carries the alert and its evidence;
``X-Evalkit-Signature`` is the HMAC-SHA256 of ``<X-Evalkit-Timestamp>.<raw body>`` keyed
with the sink's secret (``verify_signature``), and ``X-Evalkit-Alert-Id`` an idempotency key.
Fields and verification: docs/alerts.md, "Payload" and "Signatures".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, TypedDict

import msgspec

from evalkit import __version__
from evalkit.alerts.model import Alert, AlertStatus
from evalkit.jsonsafe import finite_or_null
from evalkit.records import AlertSeverity

__all__ = [
    "ALERT_ID_HEADER",
    "EVENT_HEADER",
    "PAYLOAD_SCHEMA",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "AlertPayload",
    "alert_payload",
    "encode",
    "payload_json_schema",
    "sign",
    "signed_headers",
    "slack_body",
    "verify_signature",
]

PAYLOAD_SCHEMA: Final = "evalkit.alert.v1"
SIGNATURE_HEADER = "X-Evalkit-Signature"
TIMESTAMP_HEADER = "X-Evalkit-Timestamp"
ALERT_ID_HEADER = "X-Evalkit-Alert-Id"
EVENT_HEADER = "X-Evalkit-Event"
_SLACK_FIELDS = (
    "metric",
    "baseline",
    "candidate",
    "delta",
    "ci_low",
    "ci_high",
    "p_value",
    "statistic",
    "effect_size",
    "share",
    "threshold",
    "status",
)
# Block Kit's limits (https://api.slack.com/reference/block-kit/blocks): Slack rejects the
# whole message with invalid_blocks when one is exceeded, so the alert would never arrive.
SLACK_SECTION_TEXT_LIMIT = 3000
SLACK_FIELD_TEXT_LIMIT = 2000
SLACK_MAX_FIELDS = 10
SLACK_CONTEXT_TEXT_LIMIT = 3000
_ELLIPSIS = "…"


def _time(moment: Any) -> str:
    return f"{moment.isoformat()}Z"


def _one_of(values: type[AlertStatus] | type[AlertSeverity], description: str) -> msgspec.Meta:
    return msgspec.Meta(
        description=description, extra_json_schema={"enum": [item.value for item in values]}
    )


_UTC_TIME = msgspec.Meta(
    extra_json_schema={
        "format": "date-time",
        "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$",
    }
)


class AlertPayload(TypedDict):
    """The JSON body a webhook receives (and a command reads on stdin) for one alert."""

    schema: Annotated[
        Literal["evalkit.alert.v1"],
        msgspec.Meta(description="the payload's format and version"),
    ]
    alert_id: Annotated[str, msgspec.Meta(description="unique; an idempotency key")]
    status: Annotated[str, _one_of(AlertStatus, "what the notification says")]
    severity: Annotated[str, _one_of(AlertSeverity, "how urgent")]
    rule: Annotated[str, msgspec.Meta(description="the name of the rule that fired")]
    kind: Annotated[str, msgspec.Meta(description="the rule's kind, e.g. precision_regression")]
    dedup_key: Annotated[str, msgspec.Meta(description="rule and subject: one condition")]
    subject: Annotated[str, msgspec.Meta(description="what is watched: a goldset, a job...")]
    title: str
    summary: str
    fired_at: Annotated[
        str, _UTC_TIME, msgspec.Meta(description="when the condition started holding (UTC)")
    ]
    created_at: Annotated[
        str, _UTC_TIME, msgspec.Meta(description="when this notification was raised (UTC)")
    ]
    evidence: Annotated[
        dict[str, Any], msgspec.Meta(description="the figures behind it; fields vary by kind")
    ]
    links: Annotated[dict[str, str], msgspec.Meta(description="commands and URLs to look further")]
    evalkit_version: str


def payload_json_schema() -> dict[str, Any]:
    """JSON Schema of the alert payload, generated from ``AlertPayload``."""
    return msgspec.json.schema(AlertPayload)


def alert_payload(alert: Alert) -> AlertPayload:
    """The JSON payload of an alert (see the module docstring)."""
    return {
        "schema": PAYLOAD_SCHEMA,
        "alert_id": alert.alert_id,
        "status": alert.status.value,
        "severity": alert.severity.value,
        "rule": alert.rule,
        "kind": alert.kind,
        "dedup_key": alert.dedup_key,
        "subject": alert.subject,
        "title": alert.title,
        "summary": alert.summary,
        "fired_at": _time(alert.fired_at),
        "created_at": _time(alert.created_at),
        "evidence": dict(alert.evidence),
        "links": dict(alert.links),
        "evalkit_version": __version__,
    }


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:+.4f}" if value < 0 else f"{value:.4f}"
    return str(value)


def _clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - len(_ELLIPSIS)] + _ELLIPSIS


def _mrkdwn(text: str, limit: int) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _clip(text, limit)}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text, SLACK_SECTION_TEXT_LIMIT)}


def slack_body(alert: Alert) -> dict[str, Any]:
    """A Slack incoming-webhook body (``text`` plus Block Kit ``blocks``) for an alert.

    Every text stays within Block Kit's limits (section text 3,000 characters, at most 10
    fields of 2,000 each, context text 3,000); longer texts are cut and end in an ellipsis.
    The full summary is still in ``text``, which Slack shows in notifications.
    """
    mark = {
        (AlertStatus.firing, AlertSeverity.critical): ":red_circle:",
        (AlertStatus.firing, AlertSeverity.warning): ":large_orange_circle:",
    }.get((alert.status, alert.severity), ":white_check_mark:")
    headline = f"{mark} [{alert.status.value.upper()}] {alert.title}"
    fields = [
        _mrkdwn(f"*{name}*\n{_cell(alert.evidence[name])}", SLACK_FIELD_TEXT_LIMIT)
        for name in _SLACK_FIELDS
        if alert.evidence.get(name) is not None
    ][:SLACK_MAX_FIELDS]
    blocks: list[dict[str, Any]] = [_section(f"*{headline}*\n{alert.summary}")]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    worst = alert.evidence.get("worst_queries")
    if isinstance(worst, list) and worst:
        lines = [
            f"`{row.get('query_id')}` {_cell(row.get('baseline'))} -> {_cell(row.get('candidate'))}"
            for row in worst[:5]
            if isinstance(row, dict)
        ]
        blocks.append(_section("*worst queries*\n" + "\n".join(lines)))
    causes = alert.evidence.get("probable_causes")
    listed = causes.get("causes") if isinstance(causes, dict) else None
    if isinstance(listed, list) and listed:
        lines = [
            f"{index}. `{cause.get('kind')}` ({float(cause.get('score') or 0):.0%}) "
            f"{cause.get('statement')}"
            for index, cause in enumerate(listed[:3], start=1)
            if isinstance(cause, dict)
        ]
        blocks.append(_section("*probable causes*\n" + "\n".join(lines)))
    context = [f"rule `{alert.rule}`", f"severity {alert.severity.value}", alert.dedup_key]
    context += [f"{name}: {target}" for name, target in alert.links.items()]
    blocks.append(
        {
            "type": "context",
            "elements": [_mrkdwn(" | ".join(context), SLACK_CONTEXT_TEXT_LIMIT)],
        }
    )
    return {"text": f"{headline}: {alert.summary}", "blocks": blocks}


def encode(body: Mapping[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact JSON, UTF-8, NaN as null."""
    return json.dumps(
        finite_or_null(body), separators=(",", ":"), sort_keys=True, default=str
    ).encode()


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``<timestamp>.<body>`` keyed with ``secret``."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(
    body: bytes, *, alert: Alert, secret: str | None, timestamp: int | None = None
) -> dict[str, str]:
    """Headers of one delivery: content type, alert id, event, and the signature if keyed."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"evalkit/{__version__}",
        ALERT_ID_HEADER: alert.alert_id,
        EVENT_HEADER: alert.status.value,
    }
    if secret:
        moment = int(time.time()) if timestamp is None else timestamp
        headers[TIMESTAMP_HEADER] = str(moment)
        headers[SIGNATURE_HEADER] = sign(body, secret, moment)
    return headers


def verify_signature(
    body: bytes,
    *,
    secret: str,
    timestamp: str | None,
    signature: str | None,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """Whether a received body carries a valid, fresh signature (for receivers).

    ``timestamp`` and ``signature`` are the header values as received; a timestamp more
    than ``tolerance`` seconds away from ``now`` fails, so a captured request cannot be
    replayed later.
    """
    if not timestamp or not signature:
        return False
    try:
        moment = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - moment) > tolerance:
        return False
    return hmac.compare_digest(sign(body, secret, moment), signature)
