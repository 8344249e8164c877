"""The Review queue page's data: the goldsets with queued items, one goldset's queue in
review order with every review, how far its reviewers agree, and its publishes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from evalkit.pipeline.review_publish import ReviewerAgreement, reviewer_agreement
from evalkit.records.review import ReviewRecord
from evalkit.store import Store
from evalkit.store.dashboard.review import review_status_frame
from evalkit.store.review import (
    Publication,
    QueuedItem,
    item_reviews,
    list_items,
    list_publications,
)

__all__ = ["ReviewQueueData", "review_goldsets", "review_queue"]


@dataclass(frozen=True, slots=True)
class ReviewQueueData:
    """One goldset's queue: its items in review order (items fewer than ``needed_reviews``
    reviewers reviewed first, then by priority), every review by item id (oldest first), the
    agreement of each pair of reviewers, and its publishes (newest first)."""

    goldset: str
    items: tuple[QueuedItem, ...]
    reviews: Mapping[str, tuple[ReviewRecord, ...]]
    agreement: tuple[ReviewerAgreement, ...]
    publications: tuple[Publication, ...]


def review_goldsets(store: Store) -> pd.DataFrame:
    """The goldsets with queued items and their items' statuses (``review_status_frame``)."""
    return review_status_frame(store)


def review_queue(store: Store, *, goldset: str, needed_reviews: int = 1) -> ReviewQueueData:
    """The queue of ``goldset`` with its reviews, reviewer agreement and publishes."""
    items = list_items(store, goldset=goldset, needed_reviews=needed_reviews)
    reviews = item_reviews(store, goldset=goldset)
    return ReviewQueueData(
        goldset=goldset,
        items=tuple(items),
        reviews={item_id: tuple(records) for item_id, records in reviews.items()},
        agreement=tuple(reviewer_agreement(store, goldset)),
        publications=tuple(list_publications(store, goldset)),
    )
