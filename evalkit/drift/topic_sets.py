"""A reference topic set as stored: the set, the window it was fitted on, and how it maps to
the set it replaced (``evalkit.store.slices`` keeps it as plain columns)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from evalkit.drift.topics import TopicMatch, TopicSet

__all__ = ["StoredTopicSet"]


@dataclass(frozen=True, slots=True)
class StoredTopicSet:
    """A stored reference topic set: the set, the window it was fitted on, when, and how it
    maps to the set it replaced (None for the first)."""

    topics: TopicSet
    fitted_at: datetime
    reference_run_id: str
    reference_window: str
    n_queries: int
    previous_version: str | None
    matched: TopicMatch | None

    @property
    def version(self) -> str:
        """The set's version."""
        return str(self.topics.version)

    def to_dict(self) -> dict[str, Any]:
        """What ``save_topic_set`` stores of it (``centroids`` included)."""
        described = self.topics.to_dict()
        return {
            "version": self.version,
            "fitted_at": self.fitted_at,
            "model_fingerprint": self.topics.model_fingerprint,
            "reference_run_id": self.reference_run_id,
            "reference_window": self.reference_window,
            "n_queries": self.n_queries,
            "seed": self.topics.seed,
            "centroids": described["centroids"],
            "topics": described["topics"],
            "previous_version": self.previous_version,
            "matched": None
            if self.matched is None
            else {
                "same": {str(new): old for new, old in self.matched.same.items()},
                "new": list(self.matched.new),
                "gone": list(self.matched.gone),
            },
        }

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> StoredTopicSet:
        """The set ``to_dict`` described."""
        match = stored["matched"]
        return cls(
            topics=TopicSet.from_dict(stored),
            fitted_at=stored["fitted_at"],
            reference_run_id=stored["reference_run_id"],
            reference_window=stored["reference_window"],
            n_queries=int(stored["n_queries"]),
            previous_version=stored["previous_version"],
            matched=None
            if match is None
            else TopicMatch(
                same={int(new): int(old) for new, old in match["same"].items()},
                new=tuple(match["new"]),
                gone=tuple(match["gone"]),
            ),
        )
