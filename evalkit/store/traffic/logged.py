"""What production logged, read back from the ingested records: results, answers, latency,
top-1 scores and volume."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from evalkit.errors import ConfigError

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = [
    "LoggedAnswer",
    "logged_answers",
    "logged_latencies",
    "logged_latency_quantiles",
    "logged_results",
    "logged_top1_scores",
    "recent_queries",
    "record_count",
    "traffic_volume",
]


def record_count(store: Store) -> int:
    """How many traffic records the store holds."""
    return int(store.fetch("SELECT count(*) FROM traffic_records")[0][0])


def recent_queries(store: Store, limit: int) -> list[tuple[str, str | None]]:
    """The ``limit`` most recently asked logged queries: (text, tenant)."""
    rows = store.fetch(
        "SELECT text, tenant FROM traffic_records ORDER BY ts DESC, query_id LIMIT ?", [limit]
    )
    return [(str(text), None if tenant is None else str(tenant)) for text, tenant in rows]


def logged_results(store: Store, query_ids: Sequence[str]) -> dict[str, list[str] | None]:
    """The ranked document ids production logged for each of these queries (None: none)."""
    rows = store.fetch(
        "SELECT query_id, logged_doc_ids FROM traffic_records"
        " WHERE query_id IN (SELECT unnest(?::VARCHAR[]))",
        [list(query_ids)],
    )
    return {str(query_id): None if doc_ids is None else list(doc_ids) for query_id, doc_ids in rows}


@dataclass(frozen=True, slots=True)
class LoggedAnswer:
    """The answer production generated for one logged query, and the contexts it was given."""

    query_id: str
    text: str
    answer: str
    contexts: tuple[str, ...]


def logged_answers(store: Store, query_ids: Sequence[str]) -> list[LoggedAnswer]:
    """The logged answers of these queries, in the order given (queries without one are
    left out; a logged answer without contexts has empty ``contexts``)."""
    rows = store.fetch(
        "SELECT query_id, text, answer, contexts FROM traffic_records"
        " WHERE answer IS NOT NULL AND query_id IN (SELECT unnest(?::VARCHAR[]))",
        [list(query_ids)],
    )
    found = {
        str(query_id): LoggedAnswer(str(query_id), str(text), str(answer), tuple(contexts or ()))
        for query_id, text, answer, contexts in rows
    }
    return [found[query_id] for query_id in dict.fromkeys(query_ids) if query_id in found]


def logged_latency_quantiles(
    store: Store, *, start: datetime, end: datetime
) -> tuple[float | None, float | None, float | None]:
    """p50, p95 and p99 of the production latency logged in ``[start, end)``."""
    row = store.fetch(
        "SELECT quantile_cont(latency_ms, [0.5, 0.95, 0.99]) FROM traffic_records"
        " WHERE ts >= ? AND ts < ? AND latency_ms IS NOT NULL",
        [start, end],
    )[0][0]
    if row is None:
        return None, None, None
    return float(row[0]), float(row[1]), float(row[2])


def logged_latencies(store: Store, *, start: datetime, end: datetime) -> list[float]:
    """Every production latency (milliseconds) logged in ``[start, end)``, in time order."""
    rows = store.fetch(
        "SELECT latency_ms FROM traffic_records WHERE ts >= ? AND ts < ?"
        " AND latency_ms IS NOT NULL ORDER BY ts, query_id",
        [start, end],
    )
    return [float(row[0]) for row in rows]


def logged_top1_scores(store: Store, *, start: datetime, end: datetime) -> list[float]:
    """The top-1 score production logged for each record of ``[start, end)`` that logged
    one, with or without query text (the input of a logged-score drift test)."""
    rows = store.fetch(
        "SELECT logged_scores[1] FROM traffic_records WHERE ts >= ? AND ts < ?"
        " AND len(logged_scores) > 0 AND logged_scores[1] IS NOT NULL ORDER BY ts, query_id",
        [start, end],
    )
    return [float(row[0]) for row in rows]


def traffic_volume(
    store: Store, *, granularity: str, limit: int = 30
) -> list[tuple[datetime, int, int, int, int]]:
    """``(window start, records, tenants, records with logged results, records without
    query text)`` per window, newest first; ``granularity`` is hour, day, week or month."""
    if granularity not in {"hour", "day", "week", "month"}:
        raise ConfigError(f"unknown granularity '{granularity}'; use hour, day, week or month")
    rows = store.fetch(
        "SELECT date_trunc(?, ts) AS start, count(*), count(DISTINCT tenant),"
        " count(logged_doc_ids), count(*) - count(text) FROM traffic_records"
        " GROUP BY start ORDER BY start DESC LIMIT ?",
        [granularity, limit],
    )
    return [(row[0], int(row[1]), int(row[2]), int(row[3]), int(row[4])) for row in rows]
