"""Time windows of traffic: an hour, a day, an ISO week, a month, or any interval.

A window is half-open, ``[start, end)``, in naive UTC like every stored timestamp, and has a
canonical label that round-trips through ``parse_window``. Labels: docs/traffic.md,
"Windows".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from evalkit.clock import naive_utc, utc_now
from evalkit.errors import ConfigError
from evalkit.records.jsonready import json_ready
from evalkit.registry import lookup_named

__all__ = [
    "GRANULARITIES",
    "RELATIVE_WINDOWS",
    "Granularity",
    "Window",
    "parse_window",
    "window_containing",
]


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open span of time ``[start, end)`` in naive UTC, with its canonical label."""

    label: str
    start: datetime
    end: datetime

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form (ISO 8601, ``Z`` for UTC)."""
        return json_ready(self)


@dataclass(frozen=True, slots=True)
class Granularity:
    """A calendar unit of windows: how to find the one holding a time, and its label."""

    name: str
    pattern: re.Pattern[str]
    start_of: Callable[[datetime], datetime]
    after: Callable[[datetime], datetime]
    label: Callable[[datetime], str]
    parse: Callable[[re.Match[str]], datetime]

    def window(self, start: datetime) -> Window:
        """The window of this unit that starts at ``start`` (already aligned)."""
        return Window(self.label(start), start, self.after(start))


def _hour_start(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _day_start(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _week_start(moment: datetime) -> datetime:
    return _day_start(moment) - timedelta(days=moment.weekday())


def _month_start(moment: datetime) -> datetime:
    return _day_start(moment).replace(day=1)


def _next_month(start: datetime) -> datetime:
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


def _week_label(start: datetime) -> str:
    year, week, _ = start.isocalendar()
    return f"{year}-W{week:02d}"


def _parse_week(match: re.Match[str]) -> datetime:
    day = date.fromisocalendar(int(match["year"]), int(match["week"]), 1)
    return datetime(day.year, day.month, day.day)


GRANULARITIES: Mapping[str, Granularity] = {
    unit.name: unit
    for unit in (
        Granularity(
            "hour",
            re.compile(r"(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})T(?P<h>\d{2})"),
            _hour_start,
            lambda start: start + timedelta(hours=1),
            lambda start: f"{start:%Y-%m-%dT%H}",
            lambda m: datetime(int(m["y"]), int(m["m"]), int(m["d"]), int(m["h"])),
        ),
        Granularity(
            "day",
            re.compile(r"(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})"),
            _day_start,
            lambda start: start + timedelta(days=1),
            lambda start: f"{start:%Y-%m-%d}",
            lambda m: datetime(int(m["y"]), int(m["m"]), int(m["d"])),
        ),
        Granularity(
            "week",
            re.compile(r"(?P<year>\d{4})-W(?P<week>\d{2})"),
            _week_start,
            lambda start: start + timedelta(days=7),
            _week_label,
            _parse_week,
        ),
        Granularity(
            "month",
            re.compile(r"(?P<y>\d{4})-(?P<m>\d{2})"),
            _month_start,
            _next_month,
            lambda start: f"{start:%Y-%m}",
            lambda m: datetime(int(m["y"]), int(m["m"]), 1),
        ),
    )
}
"""Calendar units of windows by name."""

_RELATIVE_DAYS = {"today": 0, "yesterday": 1}
RELATIVE_WINDOWS = tuple(_RELATIVE_DAYS)
"""Names ``parse_window`` reads as a day counted back from now, so no fixed window's label."""


def window_containing(moment: datetime, granularity: str = "day") -> Window:
    """The ``granularity`` window (hour, day, week, month) that holds ``moment``."""
    unit = _granularity(granularity)
    return unit.window(unit.start_of(naive_utc(moment)))


def parse_window(text: str, *, now: datetime | None = None) -> Window:
    """Parse a window label (see the module docstring); raises ConfigError saying what works."""
    value = text.strip()
    if value in _RELATIVE_DAYS:
        today = _day_start(naive_utc(now) if now else utc_now())
        return GRANULARITIES["day"].window(today - timedelta(days=_RELATIVE_DAYS[value]))
    if "/" in value:
        return _parse_interval(value)
    for unit in GRANULARITIES.values():
        match = unit.pattern.fullmatch(value)
        if match is None:
            continue
        try:
            start = unit.parse(match)
        except ValueError as error:
            raise ConfigError(f"window '{text}' is not a real {unit.name}: {error}") from error
        try:
            return unit.window(start)
        except (OverflowError, ValueError):
            raise ConfigError(
                f"window '{text}' ends after the year 9999, the last a date can have"
            ) from None
    raise ConfigError(
        f"window '{text}' is not understood; give a day (2026-11-21), an hour (2026-11-21T13), "
        "an ISO week (2026-W47), a month (2026-11), an interval (START/END in ISO 8601), "
        "today or yesterday"
    )


def _parse_interval(value: str) -> Window:
    first, _, second = value.partition("/")
    try:
        start = naive_utc(datetime.fromisoformat(first.strip()))
        end = naive_utc(datetime.fromisoformat(second.strip()))
    except ValueError as error:
        raise ConfigError(
            f"window interval '{value}' must be two ISO 8601 times, START/END: {error}"
        ) from error
    if end <= start:
        raise ConfigError(
            f"window interval '{value}' "
            + ("is empty: it ends when it starts" if end == start else "ends before it starts")
        )
    return Window(f"{start.isoformat()}/{end.isoformat()}", start, end)


def _granularity(name: str) -> Granularity:
    return lookup_named(GRANULARITIES, name, what="window granularity")
