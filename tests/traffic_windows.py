"""A replayed traffic window's summary for tests that only need a few of its figures."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from evalkit.store.traffic import StoredWindowSummary


def day_window_summary(run_id: str, day: str, **figures: Any) -> StoredWindowSummary:
    """The summary of a one-day window starting ``day`` (ISO date), replay ``run_id``.

    ``figures`` override or add fields (``volume``, ``n_replayed``, embedding fields...).
    """
    start = datetime.fromisoformat(day)
    fields: dict[str, Any] = {
        "run_id": run_id,
        "sample_id": f"s-{run_id}",
        "window_label": day,
        "window_start": start,
        "window_end": start + timedelta(days=1),
        "computed_at": start + timedelta(days=1),
        "k": 10,
        "compare_k": 10,
        "rbo_p": 0.9,
        "volume": 100,
        "n_distinct": 100,
        "n_replayed": 100,
        "n_failed": 0,
    }
    return StoredWindowSummary(**{**fields, **figures})
