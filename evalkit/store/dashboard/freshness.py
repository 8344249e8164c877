"""Queries behind the Freshness panel of the Index health page: the series of freshness
checks of a subject, and its changes still waiting to be reflected."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from evalkit.store.dashboard.shared import read_frame

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = ["freshness_checks_frame", "freshness_subjects", "unreflected_frame"]


def freshness_subjects(store: Store) -> list[str]:
    """Subjects with a stored freshness check, the most recently checked first."""
    rows = store.fetch(
        "SELECT subject FROM freshness_checks GROUP BY subject ORDER BY max(checked_at) DESC"
    )
    return [str(row[0]) for row in rows]


def freshness_checks_frame(store: Store, *, subject: str, limit: int = 2000) -> pd.DataFrame:
    """The newest ``limit`` checks of ``subject``, oldest first: check_id, checked_at,
    method, n_read, n_reflected, n_pending, lag_p50_seconds, lag_p95_seconds,
    lag_max_seconds, unreflected_share, oldest_unreflected_seconds, slo_p95_lag_seconds,
    max_unreflected_age_seconds, breached."""
    return read_frame(
        store,
        "SELECT * FROM (SELECT check_id, checked_at, method, n_read, n_reflected, n_pending,"
        " lag_p50_seconds, lag_p95_seconds, lag_max_seconds, unreflected_share,"
        " oldest_unreflected_seconds, slo_p95_lag_seconds, max_unreflected_age_seconds,"
        " breached FROM freshness_checks WHERE subject = ?"
        " ORDER BY checked_at DESC, check_id DESC LIMIT ?) ORDER BY checked_at, check_id",
        [subject, limit],
    )


def unreflected_frame(store: Store, *, subject: str, limit: int = 200) -> pd.DataFrame:
    """The oldest changes of ``subject`` not reflected yet: doc_id, updated_at,
    waiting_seconds (until the subject's newest check), state, origin, last_checked_at."""
    return read_frame(
        store,
        "SELECT c.doc_id, c.updated_at,"
        " date_diff('millisecond', c.updated_at, l.checked_at) / 1000.0 AS waiting_seconds,"
        " c.state, c.origin, c.last_checked_at FROM freshness_changes c,"
        " (SELECT max(checked_at) AS checked_at FROM freshness_checks WHERE subject = ?) l"
        " WHERE c.subject = ? AND c.status = 'pending'"
        " ORDER BY c.updated_at, c.doc_id LIMIT ?",
        [subject, subject, limit],
    )
