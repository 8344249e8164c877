"""The Freshness panel's data: subjects, one subject's series of checks and its changes still
waiting."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from evalkit.store import Store
from evalkit.store.dashboard import freshness as sql

__all__ = ["FreshnessData", "freshness"]


@dataclass(frozen=True, slots=True)
class FreshnessData:
    """Every checked subject, and for one of them (default: the most recently checked) its
    checks, oldest first, and its oldest changes not yet reflected."""

    subjects: tuple[str, ...]
    subject: str | None
    checks: pd.DataFrame
    waiting: pd.DataFrame


def freshness(store: Store, *, subject: str | None = None) -> FreshnessData:
    """Freshness checks of the store; the series and waiting changes of one subject."""
    subjects = tuple(sql.freshness_subjects(store))
    chosen = subject if subject in subjects else (subjects[0] if subjects else None)
    if chosen is None:
        return FreshnessData(subjects, None, pd.DataFrame(), pd.DataFrame())
    return FreshnessData(
        subjects=subjects,
        subject=chosen,
        checks=sql.freshness_checks_frame(store, subject=chosen),
        waiting=sql.unreflected_frame(store, subject=chosen),
    )
