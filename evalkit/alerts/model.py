"""Records of the alerting stage: what a rule found, alerts, delivery results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from evalkit.records import AlertSeverity
from evalkit.store.alerts import StoredAlert

__all__ = ["Alert", "AlertStatus", "DeliveryResult", "Signal"]


class AlertStatus(StrEnum):
    """What a notification says about its condition."""

    firing = "firing"
    resolved = "resolved"


@dataclass(frozen=True, slots=True)
class Signal:
    """What one rule found about one subject at one evaluation.

    ``subject`` names what is watched (a goldset, a job, a collection and finding kind);
    with the rule's name it makes the deduplication key. ``active`` says whether the
    condition holds now. ``severity`` overrides the rule's own (audit findings carry theirs).
    ``evidence`` is the JSON-able proof sent with the alert; ``links`` point at the stored
    runs, checks or audits it is about.
    """

    subject: str
    active: bool
    title: str = ""
    summary: str = ""
    severity: AlertSeverity | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)


# The fields an Alert and its StoredAlert row hold alike; status, severity, evidence and
# links change type between the two.
_COPIED_FIELDS = (
    "alert_id",
    "rule",
    "kind",
    "dedup_key",
    "subject",
    "title",
    "summary",
    "fired_at",
    "created_at",
)


@dataclass(frozen=True, slots=True)
class Alert:
    """One notification: a condition that started firing (or escalated) or resolved.

    ``fired_at`` is when the condition started holding; ``created_at`` when this
    notification was raised. ``alert_id`` is unique and sent to receivers as an
    idempotency key.
    """

    alert_id: str
    rule: str
    kind: str
    dedup_key: str
    subject: str
    status: AlertStatus
    severity: AlertSeverity
    title: str
    summary: str
    evidence: Mapping[str, Any]
    links: Mapping[str, str]
    fired_at: datetime
    created_at: datetime

    @classmethod
    def from_stored(cls, stored: StoredAlert) -> Alert:
        """The alert a stored row holds."""
        return cls(
            **{name: getattr(stored, name) for name in _COPIED_FIELDS},
            status=AlertStatus(stored.status),
            severity=AlertSeverity(stored.severity),
            evidence=dict(stored.evidence),
            links={str(key): str(value) for key, value in stored.links.items()},
        )

    def to_stored(self, *, n_sinks: int) -> StoredAlert:
        """The row that stores this alert."""
        return StoredAlert(
            **{name: getattr(self, name) for name in _COPIED_FIELDS},
            status=self.status.value,
            severity=self.severity.value,
            evidence=dict(self.evidence),
            links=dict(self.links),
            n_sinks=n_sinks,
        )


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """How one delivery attempt went. ``error`` never holds a secret; ``retry_after`` is
    the seconds the receiver asked to wait before the next attempt (HTTP ``Retry-After``).
    ``permanent`` says the sink refused this alert for good (a webhook's redirect or 4xx
    other than 408, 425 and 429, a command's exit status 65): trying again would get the
    same answer, so the outbox abandons it at once rather than hold the sink's later alerts
    behind it."""

    ok: bool
    duration_ms: float
    status_code: int | None = None
    error: str | None = None
    tries: int = 1
    retry_after: float | None = None
    permanent: bool = False
