"""The ``[alerts]`` table and the common fields of ``[[alerts.rules]]`` and ``[[alerts.sinks]]``.

A rule's or sink's fields beside the common ones are its kind's own, validated by the kind in
``evalkit.alerts.configured``. Secrets are never values here: ``secret_env`` and ``url_env``
name environment variables. Examples: docs/alerts.md.
"""

from __future__ import annotations

from pydantic import Field

from evalkit.config.types import NAME_PATTERN, Duration, KindEntry, SettingsTable, WebUrl
from evalkit.records import AlertSeverity

__all__ = ["AlertsSettings", "RuleConfig", "SinkConfig"]


class RuleConfig(KindEntry):
    """The fields every alert rule has; the rest of its table belongs to its kind."""

    name: str = Field(
        pattern=NAME_PATTERN, description="Unique name; the first part of every dedup key."
    )
    kind: str = Field(description="What the rule watches (see docs/alerts.md for the kinds).")
    severity: AlertSeverity = Field(
        default=AlertSeverity.critical,
        description="AlertSeverity of the alerts it raises (some kinds raise the finding's own).",
    )
    cooldown: Duration = Field(
        default=3600.0,
        description="After a firing notification, a new one for the same key waits this long "
        "(a condition that clears and returns within it is reported once it has passed).",
    )
    repeat_interval: Duration | None = Field(
        default=None,
        description="Remind receivers of a condition still firing this often (default: never).",
    )
    sinks: tuple[str, ...] | None = Field(
        default=None, description="Sinks this rule notifies (default: every sink)."
    )
    enabled: bool = Field(default=True, description="Evaluate this rule.")


class SinkConfig(KindEntry):
    """The fields every sink has; the rest of its table belongs to its kind."""

    name: str = Field(pattern=NAME_PATTERN, description="Unique name, stored with deliveries.")
    kind: str = Field(description="webhook, command or log.")
    min_severity: AlertSeverity = Field(
        default=AlertSeverity.warning, description="Only alerts at least this severe are sent here."
    )


class AlertsSettings(SettingsTable, frozen=True):
    """The ``[alerts]`` table, with the common fields of its rules and sinks."""

    dashboard_url: WebUrl = Field(
        default=None,
        description="Base URL of the evalkit dashboard; alerts then link to the runs they "
        "are about.",
    )
    retry_initial: Duration = Field(
        default=10.0, description="Wait before the first retry of a failed delivery."
    )
    retry_max: Duration = Field(
        default=300.0, description="Longest wait between retries (the wait doubles up to it)."
    )
    give_up_after: Duration | None = Field(
        default=None,
        description="Abandon a delivery still failing this long after the alert was raised "
        "(default: never; it stays pending and is retried, also across restarts).",
    )
    # Zero would be a loop that never waits: evaluating the rules over and over holds the
    # store, and the jobs waiting for it never start.
    deliver_interval: Duration = Field(
        default=5.0,
        gt=0,
        description="How often `evalkit serve` looks for deliveries that are due.",
    )
    evaluate_interval: Duration = Field(
        default=300.0,
        gt=0,
        description="How often `evalkit serve` evaluates the rules between jobs (they are "
        "also evaluated after every job).",
    )
    rules: list[RuleConfig] = Field(default_factory=list, description="[[alerts.rules]] entries.")
    sinks: list[SinkConfig] = Field(default_factory=list, description="[[alerts.sinks]] entries.")
