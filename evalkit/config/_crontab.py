"""A cron trigger that runs a job at a fixed time of day once on the day clocks go back.

When a time zone leaves summer time, an hour of wall-clock time (half an hour on Lord Howe
Island) happens twice. APScheduler's ``CronTrigger`` fires a job at 01:30 in both; crontab
(Vixie cron, cronie) runs a job whose minute and hour are fixed once, in the first pass,
and a job whose minute or hour is a wildcard (``*``, ``*/15``) by real time, in both.
Kept apart from ``evalkit.config.scheduler`` so that reading the settings does not import
APScheduler.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from apscheduler.triggers.cron import CronTrigger

__all__ = ["CrontabTrigger", "repeats_earlier_wall_time"]


def repeats_earlier_wall_time(moment: datetime, zone: Any) -> bool:
    """True when ``moment`` (aware) reads, in ``zone``, as a wall-clock time the zone
    already passed through earlier the same night (the second pass after clocks go back)."""
    local = moment.astimezone(zone).replace(tzinfo=None)
    first_pass = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    return first_pass < moment.astimezone(UTC)


class CrontabTrigger(CronTrigger):  # type: ignore[misc]  # APScheduler 3 is untyped
    """``CronTrigger`` with crontab's rule for the repeated hour (see the module doc)."""

    def __init__(self, *, once_in_repeated_hour: bool, **fields: Any) -> None:
        super().__init__(**fields)
        self.once_in_repeated_hour = once_in_repeated_hour

    def get_next_fire_time(self, previous_fire_time: Any, now: Any) -> Any:
        """The next fire time, passing over the second pass of a repeated wall-clock time
        when the job's minute and hour are fixed."""
        fire = super().get_next_fire_time(previous_fire_time, now)
        while (
            fire is not None
            and self.once_in_repeated_hour
            and repeats_earlier_wall_time(fire, self.timezone)
        ):
            fire = super().get_next_fire_time(fire, fire)
        return fire
