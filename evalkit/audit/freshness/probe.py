"""Probing any retriever for changed documents: each document's passage is replayed as a
query, a round at a time, until the document comes back in the top k or time runs out.

Only the retriever protocol is used; a failed query is retried next round, and a round in
which every query fails stops the probe with a ``RetrieverError``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from evalkit.clock import utc_now
from evalkit.errors import ConfigError, RetrieverError
from evalkit.records import Query
from evalkit.retrievers.base import SupportsRetrieve

__all__ = ["ProbeReport", "ProbeTarget", "probe_until_found"]

_SHOWN_ERRORS = 5


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """A changed document to look for: its id, its probe passage, and since when it is
    known not to be reflected (the change, or the last check that did not find it)."""

    doc_id: str
    text: str
    since: datetime


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """What probing found: per document found, when its round came back and when the last
    round that missed it was sent; the rounds and queries made, the seconds spent waiting
    for the retriever, and the queries that failed (with the first errors)."""

    found: dict[str, tuple[datetime, datetime]]
    rounds: int
    queries: int
    seconds: float
    failed: int
    errors: tuple[str, ...]


def probe_until_found(
    retriever: SupportsRetrieve,
    targets: Sequence[ProbeTarget],
    *,
    k: int,
    timeout: float,
    interval: float,
    clock: Callable[[], datetime] = utc_now,
    sleep: Callable[[float], None] = time.sleep,
    stop: Callable[[], None] | None = None,
) -> ProbeReport:
    """Replay each target's passage until its document is in the top ``k``: one round, then
    more every ``interval`` seconds until every document is found or ``timeout`` seconds
    have passed (0: one round). ``stop`` is called between rounds; it raises to end the
    probe (a job being stopped)."""
    if interval <= 0 and timeout > 0:
        raise ConfigError("probing for longer than one round needs a probe interval above 0")
    remaining = {target.doc_id: target for target in targets}
    missed = {target.doc_id: target.since for target in targets}
    found: dict[str, tuple[datetime, datetime]] = {}
    errors: list[str] = []
    rounds = queries = failed = 0
    seconds = 0.0
    deadline = time.monotonic() + timeout
    while remaining:
        batch = [Query(id=doc_id, text=target.text) for doc_id, target in remaining.items()]
        sent = clock()
        started = time.perf_counter()
        results = retriever.retrieve(batch, k)
        seconds += time.perf_counter() - started
        answered = clock()
        rounds += 1
        queries += len(batch)
        round_failed = 0
        for result in results:
            if result.error is not None:
                round_failed += 1
                if len(errors) < _SHOWN_ERRORS:
                    errors.append(f"{result.query_id}: {result.error}")
                continue
            if any(doc.doc_id == result.query_id for doc in result.docs[:k]):
                found[result.query_id] = (answered, missed[result.query_id])
                remaining.pop(result.query_id, None)
            else:
                missed[result.query_id] = sent
        failed += round_failed
        if batch and round_failed == len(batch):
            raise RetrieverError(
                f"the retriever failed every probe query of a round ({len(batch)}): "
                + "; ".join(errors[:_SHOWN_ERRORS])
            )
        left = deadline - time.monotonic()
        if not remaining or left <= 0:
            break
        if stop is not None:
            stop()
        sleep(min(interval, left))
    return ProbeReport(found, rounds, queries, seconds, failed, tuple(errors))
