"""The one clock: naive UTC timestamps, as every store table keeps them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["CLOCK_SKEW", "MAX_EPOCH_SECONDS", "naive_utc", "utc_now"]

MAX_EPOCH_SECONDS = 1e11
"""Times are taken from 1970 up to this many epoch seconds (year 5138): a number above it
is far more likely milliseconds than seconds, and a date near year 9999 leaves no room for
the windows around it."""

CLOCK_SKEW = timedelta(minutes=5)
"""How far past this machine's clock a time read from elsewhere (a source's change, a
review from another tool) may be dated, since that clock may run ahead; a later time is
refused, since it would be taken as the latest of everything dated until then."""


def utc_now() -> datetime:
    """The current time in UTC, without tzinfo (as stored)."""
    return datetime.now(UTC).replace(tzinfo=None)


def naive_utc(moment: datetime) -> datetime:
    """``moment`` in UTC without tzinfo (as stored); a naive ``moment`` is UTC already."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)
