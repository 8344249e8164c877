"""The one clock: naive UTC timestamps, as every store table keeps them."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["MAX_EPOCH_SECONDS", "utc_now"]

MAX_EPOCH_SECONDS = 1e11
"""Times are taken from 1970 up to this many epoch seconds (year 5138): a number above it
is far more likely milliseconds than seconds, and a date near year 9999 leaves no room for
the windows around it."""


def utc_now() -> datetime:
    """The current time in UTC, without tzinfo (as stored)."""
    return datetime.now(UTC).replace(tzinfo=None)
