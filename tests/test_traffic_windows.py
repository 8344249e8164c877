"""Traffic windows: labels, boundaries and round trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evalkit.errors import ConfigError
from evalkit.traffic.windows import GRANULARITIES, Window, parse_window, window_containing


@pytest.mark.parametrize(
    ("label", "start", "end"),
    [
        ("2026-11-21", datetime(2026, 11, 21), datetime(2026, 11, 22)),
        ("2026-11-21T13", datetime(2026, 11, 21, 13), datetime(2026, 11, 21, 14)),
        # ISO week 47 of 2026 starts on Monday 16 November.
        ("2026-W47", datetime(2026, 11, 16), datetime(2026, 11, 23)),
        # ISO week 1 of 2026 starts in 2025 (29 December).
        ("2026-W01", datetime(2025, 12, 29), datetime(2026, 1, 5)),
        ("2026-12", datetime(2026, 12, 1), datetime(2027, 1, 1)),
        ("2024-02", datetime(2024, 2, 1), datetime(2024, 3, 1)),
        ("2026-12-31T23", datetime(2026, 12, 31, 23), datetime(2027, 1, 1)),
    ],
)
def test_labels_parse_to_half_open_spans(label: str, start: datetime, end: datetime) -> None:
    window = parse_window(label)
    assert window == Window(label, start, end)
    assert parse_window(window.label) == window


def test_interval_is_converted_to_naive_utc() -> None:
    window = parse_window("2026-11-21T06:00+02:00/2026-11-21T18:00Z")
    assert window.start == datetime(2026, 11, 21, 4)
    assert window.end == datetime(2026, 11, 21, 18)
    assert parse_window(window.label) == window


def test_relative_days_follow_the_given_clock() -> None:
    now = datetime(2026, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    # 00:30 at +02:00 is still 31 December in UTC.
    assert parse_window("today", now=now).label == "2025-12-31"
    assert parse_window("yesterday", now=now).label == "2025-12-30"


@pytest.mark.parametrize(
    "text", ["2026-13-01", "2026-11-31", "2026-W54", "21/11/2026", "week", "2026-11-21T25", ""]
)
def test_bad_labels_say_what_works(text: str) -> None:
    with pytest.raises(ConfigError, match="2026"):
        parse_window(text)


def test_interval_ending_before_it_starts_is_refused() -> None:
    with pytest.raises(ConfigError, match="ends before it starts"):
        parse_window("2026-11-22/2026-11-21")
    with pytest.raises(ConfigError, match="is empty: it ends when it starts"):
        parse_window("2026-11-21/2026-11-21")


@pytest.mark.parametrize("text", ["9999-12-31", "9999-12", "9999-12-31T23", "9999-W52"])
def test_a_window_ending_after_the_year_9999_is_refused_not_a_traceback(text: str) -> None:
    with pytest.raises(ConfigError, match="ends after the year 9999"):
        parse_window(text)


@given(
    moment=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
    unit=st.sampled_from(sorted(GRANULARITIES)),
)
def test_window_containing_holds_the_moment_and_round_trips(moment: datetime, unit: str) -> None:
    window = window_containing(moment, unit)
    assert window.start <= moment < window.end
    assert parse_window(window.label) == window
    following = window_containing(window.end, unit)
    assert following.start == window.end


def test_aware_moments_are_placed_in_utc() -> None:
    moment = datetime(2026, 11, 21, 23, 30, tzinfo=UTC) + timedelta(hours=1)
    assert window_containing(moment, "day").label == "2026-11-22"
    with pytest.raises(ConfigError, match="granularity"):
        window_containing(moment, "fortnight")
