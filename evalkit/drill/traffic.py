"""The production traffic a drill's traffic jobs replay: one simulated day a cycle.

A traffic job samples a window of logged queries; in a drill of minutes every cycle would
sample the same day. So a drill logs each cycle's traffic itself, into a log of its own that
its traffic jobs read instead of yours, dated a day after the last (days in the past, so
every timestamp is one evalkit takes), and pins each traffic job to that day's window. A day's
traffic is the same queries every day (your most recent logged queries, else the goldsets'):
quiet cycles see no drift by construction. Query drift replaces a share of a day's queries
with queries from another domain (``FOREIGN_QUERIES``, or yours).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

__all__ = ["FOREIGN_QUERIES", "DrillTraffic", "TrafficQuery"]

_SUBJECTS = (
    "a sourdough starter",
    "a marathon",
    "a vegetable garden",
    "a road trip across Portugal",
    "a used car",
    "a wedding toast",
    "a new puppy",
    "a mortgage refinance",
    "a chess opening",
    "a ski holiday",
    "a birthday cake",
    "houseplants",
    "a job interview",
    "a camping trip",
    "a home espresso machine",
    "a second-hand guitar",
    "a family budget",
    "a kitchen renovation",
    "a trip to Kyoto",
    "a balcony barbecue",
)
_ASKS = (
    "how do I get started with {}",
    "what should I know before buying {}",
    "tips for planning {}",
    "best way to look after {}",
    "how much does {} usually cost",
    "common mistakes with {}",
    "a checklist for {}",
    "is {} worth it",
)
FOREIGN_QUERIES: tuple[str, ...] = tuple(
    ask.format(subject) for subject, ask in itertools.product(_SUBJECTS, _ASKS)
)
"""The default other domain: 160 everyday questions (cooking, travel, money, hobbies),
foreign to the knowledge base of a product's documentation, science or law. A corpus about
such things needs its own (``--foreign-queries``)."""


@dataclass(frozen=True, slots=True)
class TrafficQuery:
    """A query of a simulated day: its text and tenant."""

    text: str
    tenant: str | None = None


class DrillTraffic:
    """Writes each simulated day's traffic into ``log``, from ``first_day`` on: the
    ``queries`` of every day, ``share`` of them replaced by ``foreign`` ones."""

    def __init__(
        self,
        log: Path,
        queries: Sequence[TrafficQuery],
        first_day: date,
        *,
        foreign: Sequence[str] = FOREIGN_QUERIES,
        seed: int = 0,
    ) -> None:
        self._log = log
        self._queries = list(queries)
        self._day = first_day
        self._foreign = list(foreign)
        self._rng = np.random.default_rng(seed)
        self.share = 0.0
        """The share of each day's queries replaced by foreign ones (query drift)."""
        log.touch()

    def next_day(self) -> str:
        """Log the next day's traffic; its window label (``YYYY-MM-DD``)."""
        day, self._day = self._day, self._day + timedelta(days=1)
        texts = [(query.text, query.tenant) for query in self._queries]
        replaced = round(self.share * len(texts))
        if replaced:
            chosen = self._rng.choice(len(texts), size=replaced, replace=False)
            picks = self._rng.integers(0, len(self._foreign), size=replaced)
            for position, pick in zip(chosen.tolist(), picks.tolist(), strict=True):
                texts[position] = (self._foreign[pick], texts[position][1])
        start = datetime(day.year, day.month, day.day)
        with self._log.open("a", encoding="utf-8") as log:
            for n, (text, tenant) in enumerate(texts):
                asked = start + timedelta(seconds=n * 86_000 / max(1, len(texts)))
                line = {
                    "query_id": f"drill-{day.isoformat()}-{n}",
                    "timestamp": asked.isoformat(timespec="seconds") + "Z",
                    "text": text,
                    "tenant": tenant,
                }
                log.write(json.dumps(line) + "\n")
        return day.isoformat()
