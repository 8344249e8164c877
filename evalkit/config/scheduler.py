"""The ``[scheduler]`` table and the common fields of each ``[[jobs]]`` entry.

Each job has a ``kind``; the fields beside the common ones are that kind's own settings,
kept here as the entry's extra fields and validated by the kind in ``evalkit.scheduler``.
Examples: docs/scheduler.md, "Settings" and "Jobs".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from evalkit.config.types import NAME_PATTERN, Duration, KindEntry, SettingsTable

__all__ = ["JobConfig", "SchedulerSettings", "cron_trigger"]


class SchedulerSettings(SettingsTable, frozen=True):
    """How ``evalkit serve`` runs: its health endpoint, time zone, and patience."""

    health_host: str = Field(
        default="127.0.0.1",
        description="Address of the /healthz and /metrics endpoint (keep it on loopback; "
        "triggering jobs over HTTP is refused on any other address).",
    )
    health_port: int = Field(
        default=8765, ge=0, le=65535, description="Port of the endpoint (0: any free port)."
    )
    timezone: str = Field(default="UTC", description="Time zone of cron expressions.")
    misfire_grace_time: Duration = Field(
        default=300.0,
        description="A run that could not start on time still starts if it is late by at "
        "most this much (otherwise it is skipped).",
    )
    coalesce: bool = Field(
        default=True,
        description="Runs missed while the service was down are run once, not "
        "once per missed time.",
    )
    max_workers: int = Field(default=4, ge=1, description="Jobs that may run at the same time.")
    lock_wait: Duration = Field(
        default=600.0,
        description="How long a job waits for the store while another process writes it.",
    )
    shutdown_grace: Duration = Field(
        default=30.0,
        description="On SIGTERM or SIGINT, running jobs get this long to finish before they "
        "are interrupted (their runs are then marked failed).",
    )
    plugins: list[str] = Field(
        default_factory=list,
        description="Python modules imported at start; they may register job, rule and sink kinds.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {zone!r} (use an IANA name)") from error
        return zone


class JobConfig(KindEntry):
    """The fields every job has; the rest of its table (``model_extra``) belongs to its kind."""

    name: str = Field(pattern=NAME_PATTERN, description="Unique name (`evalkit jobs run NAME`).")
    kind: str = Field(description="What the job does (see docs/scheduler.md for the kinds).")
    cron: str | None = Field(
        default=None, description="Crontab schedule, e.g. '0 2 * * *' (02:00 every day)."
    )
    interval: Duration | None = Field(default=None, description="Run every this long, e.g. '15m'.")
    enabled: bool = Field(default=True, description="Schedule this job.")
    misfire_grace_time: Duration | None = Field(
        default=None, description="Overrides [scheduler] misfire_grace_time for this job."
    )
    description: str = Field(default="", description="Free text shown by `evalkit jobs list`.")

    @field_validator("cron")
    @classmethod
    def _cron_parses(cls, cron: str | None) -> str | None:
        if cron is not None:
            try:
                trigger = cron_trigger(cron, "UTC")
            except ValueError as error:
                raise ValueError(f"cron {cron!r} does not parse: {error}") from error
            # Crontab takes `0 2 30 2 *` (February 30th) too, and never runs it: a job that
            # would stay scheduled and never run.
            if trigger.get_next_fire_time(None, datetime.now(UTC)) is None:
                raise ValueError(
                    f"cron {cron!r} never fires: no date has that day of the month in that "
                    "month (and day of the week)"
                )
        return cron

    @field_validator("interval")
    @classmethod
    def _interval_long_enough(cls, interval: float | None) -> float | None:
        if interval is not None and interval < 1:
            # Shorter, a job is due again before it can have run: every due run is skipped
            # and logged, thousands a second.
            raise ValueError("interval must be at least 1s")
        return interval

    @model_validator(mode="after")
    def _one_trigger(self) -> JobConfig:
        if self.cron is not None and self.interval is not None:
            raise ValueError("give cron or interval, not both")
        return self


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _weekday(text: str, *, range_end: bool = False) -> int:
    """A crontab day of week, 0 (Sunday) to 7 (Sunday again); ``sun`` ending a range is 7."""
    name = text.lower()
    if name in _WEEKDAYS:
        day = _WEEKDAYS.index(name)
        return 7 if range_end and day == 0 else day
    if not text.isdigit() or int(text) > 7:
        raise ValueError(f"day of week {text!r} is not 0-7 or a name (sun, mon, ... sat)")
    return int(text)


def _crontab_weekdays(field: str) -> str:
    """Crontab's day-of-week field as APScheduler's: explicit day names, or ``*``.

    APScheduler 3 numbers days from 0 = Monday; crontab from 0 = Sunday, with 7 Sunday too.
    """
    if field == "*":
        return field
    days: set[int] = set()
    for item in field.split(","):
        span, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"day of week {item!r}: the step must be a positive number")
            step = int(step_text)
        if span == "*":
            first, last = 0, 7
        elif "-" in span:
            start, _, end = span.partition("-")
            first, last = _weekday(start), _weekday(end, range_end=True)
            if first > last:
                raise ValueError(f"day of week {item!r}: the range runs backwards")
        else:
            first = _weekday(span)
            # As cronie reads it: `1/2` is `1-7/2`.
            last = 7 if step_text else first
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(_WEEKDAYS[day] for day in sorted(days))


def cron_trigger(expression: str, timezone: str) -> Any:
    """The APScheduler trigger of a crontab expression, read as crontab reads it.

    ``minute hour day-of-month month day-of-week``; the day of week is 0 or 7 for Sunday,
    1-5 for Monday to Friday, or names. When clocks go back, a job at a fixed time runs
    once, a job with a wildcard minute or hour in both passes of the repeated hour. Raises
    ValueError for an expression that does not parse.
    """
    # Every command reads the settings, and `evalkit --help` stays fast: deferred, since
    # _crontab imports apscheduler.
    from evalkit.config._crontab import CrontabTrigger

    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"wrong number of fields: {len(fields)}, expected 5")
    minute, hour, day, month, weekdays = fields
    return CrontabTrigger(
        # As cron: a job at a fixed time runs once when clocks go back, a wildcard job in
        # both passes of the repeated hour.
        once_in_repeated_hour=not (minute.startswith("*") or hour.startswith("*")),
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_crontab_weekdays(weekdays),
        timezone=timezone,
    )
