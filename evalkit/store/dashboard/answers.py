"""Queries behind the Answers page: answer scorings over time and their lowest-scored items."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from evalkit.store.dashboard.shared import read_frame

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = ["answer_items_frame", "answer_series_frame", "scoring_source", "unmeasured_frame"]


def answer_series_frame(store: Store, *, with_traffic: bool = False) -> pd.DataFrame:
    """Per scoring, metric, method, method version and judge: when, the mean over measured rows
    (NULL when none was) and the measured / unmeasured counts. ``method_version`` is the prompt
    version without its threshold: versions read on different scales, never one series.
    ``answered_on`` is, with ``with_traffic``, the start of the replayed traffic window or else
    the earliest traffic record's day an item names; else the scoring's day (``answered_from``).

    Columns: scoring_id, run_id, source, started_at, answered_on, answered_from, metric,
    method, method_version, judge_model, mean, n_measured, n_unmeasured."""
    if with_traffic:
        days = (
            " LEFT JOIN (SELECT run_id, min(window_start) AS window_start"
            "  FROM traffic_window_summaries GROUP BY run_id) w ON w.run_id = s.run_id"
            " LEFT JOIN (SELECT a2.scoring_id, min(t.ts) AS first_record FROM answer_scores a2"
            "  JOIN traffic_records t ON t.query_id = a2.item_id GROUP BY a2.scoring_id) d"
            "  ON d.scoring_id = s.scoring_id"
        )
        day = "coalesce(w.window_start, d.first_record, s.started_at)"
        source = (
            "CASE WHEN w.window_start IS NOT NULL THEN 'traffic window'"
            " WHEN d.first_record IS NOT NULL THEN 'traffic records' ELSE 'scored' END"
        )
    else:
        days, day, source = "", "s.started_at", "'scored'"
    return read_frame(
        store,
        "SELECT s.scoring_id, s.run_id, s.source, s.started_at,"
        f" date_trunc('day', {day}) AS answered_on, {source} AS answered_from,"
        " a.metric, a.method,"
        " coalesce(split_part(a.prompt_version, '/threshold=', 1), '-') AS method_version,"
        " coalesce(a.judge_model, '-') AS judge_model, avg(a.value) AS mean,"
        " count(a.value) AS n_measured, count(*) - count(a.value) AS n_unmeasured"
        f" FROM answer_scores a JOIN answer_scorings s USING (scoring_id){days}"
        " GROUP BY ALL ORDER BY s.started_at, s.scoring_id, a.metric, a.method",
    )


def scoring_source(store: Store, *, scoring_id: str) -> str | None:
    """The file a scoring read its answers from (None for a run's answers or no scoring)."""
    rows = store.fetch("SELECT source FROM answer_scorings WHERE scoring_id = ?", [scoring_id])
    return str(rows[0][0]) if rows and rows[0][0] is not None else None


def unmeasured_frame(store: Store, *, scoring_id: str) -> pd.DataFrame:
    """Unmeasured rows of a scoring by metric, method and reason: metric, method, reason, n."""
    return read_frame(
        store,
        "SELECT metric, method, unmeasured_reason AS reason, count(*) AS n FROM answer_scores"
        " WHERE scoring_id = ? AND value IS NULL GROUP BY ALL ORDER BY metric, method, reason",
        [scoring_id],
    )


def answer_items_frame(
    store: Store,
    *,
    scoring_id: str,
    metric: str,
    limit: int = 20,
    with_traffic: bool = False,
) -> pd.DataFrame:
    """The lowest-scored measured items of a scoring on ``metric``, lowest first. Columns:
    item_id, method, judge_model, value, n_claims, n_supported, detail, question, answer,
    contexts; the last three as stored with the scoring, else from the item's traffic record
    (``with_traffic``), else the question from the run's goldset, else None."""
    traffic_join = " LEFT JOIN traffic_records t ON t.query_id = a.item_id" if with_traffic else ""
    traffic_columns = (
        "coalesce(i.question, t.text, q.text) AS question, coalesce(i.answer, t.answer) AS answer,"
        " coalesce(i.contexts, t.contexts) AS contexts"
        if with_traffic
        else "coalesce(i.question, q.text) AS question, i.answer, i.contexts"
    )
    return read_frame(
        store,
        "SELECT a.item_id, a.method, a.judge_model, a.value, a.n_claims, a.n_supported,"
        f" a.detail, {traffic_columns}"
        " FROM answer_scores a"
        " LEFT JOIN answer_items i ON i.scoring_id = a.scoring_id AND i.item_id = a.item_id"
        " LEFT JOIN runs r ON r.run_id = a.run_id"
        " LEFT JOIN goldset_queries q ON q.goldset_version = r.goldset_version"
        "  AND q.query_id = a.item_id"
        f"{traffic_join}"
        " WHERE a.scoring_id = ? AND a.metric = ? AND a.value IS NOT NULL"
        " ORDER BY a.value, a.item_id LIMIT ?",
        [scoring_id, metric, limit],
    )
