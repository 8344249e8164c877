"""Queries behind the Review queue page: the goldsets with queued items and their statuses."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from evalkit.store.dashboard.shared import read_frame

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = ["review_status_frame"]


def review_status_frame(store: Store) -> pd.DataFrame:
    """Per goldset with queued items: how many are open, accepted, rejected and published,
    and how many reviews and reviewers they had.

    Columns: goldset, open, accepted, rejected, published, reviews, reviewers; goldsets by
    name.
    """
    return read_frame(
        store,
        "SELECT i.goldset,"
        " count(*) FILTER (WHERE i.status = 'open') AS open,"
        " count(*) FILTER (WHERE i.status = 'accepted') AS accepted,"
        " count(*) FILTER (WHERE i.status = 'rejected') AS rejected,"
        " count(*) FILTER (WHERE i.status = 'published') AS published,"
        " coalesce(sum(r.n_reviews), 0) AS reviews,"
        " (SELECT count(DISTINCT reviewer) FROM reviews v JOIN review_items w"
        "  ON w.item_id = v.item_id WHERE w.goldset = i.goldset) AS reviewers"
        " FROM review_items i LEFT JOIN (SELECT item_id, count(*) AS n_reviews FROM reviews"
        "  GROUP BY item_id) r ON r.item_id = i.item_id"
        " GROUP BY i.goldset ORDER BY i.goldset",
    )
