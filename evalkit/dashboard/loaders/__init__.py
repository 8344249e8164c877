"""Everything a dashboard page shows, loaded from an open (read-only) store.

One module per page. Every loader is registered in ``LOADERS`` by name: the Streamlit side
calls them through its cache (``evalkit.dashboard.access``), the benchmark and the tests
directly. Statistics come from ``evalkit.stats``, exactly as the CLI computes them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from evalkit.dashboard.loaders import (
    alerts,
    answers,
    causes,
    compare,
    drift,
    freshness,
    goldsets,
    index_health,
    leaderboard,
    overview,
    quality,
    query,
    review,
    shared,
    slices,
    story,
    traffic,
)

__all__ = ["LOADERS"]

LOADERS: Mapping[str, Callable[..., Any]] = {
    "facts": shared.store_facts,
    "measures": shared.measures,
    "runs": shared.runs,
    "failed_runs": shared.failed_runs,
    "overview": overview.overview,
    "quality": quality.quality,
    "compare": compare.compare,
    "leaderboard": leaderboard.leaderboard,
    "run_tags": leaderboard.run_tags,
    "run_facts": compare.run_facts,
    "story": story.story,
    "regression": story.regression,
    "explain_baseline": story.explain_baseline,
    "query_list": query.query_list,
    "query_detail": query.query_detail,
    "query_diff": query.query_diff,
    "goldsets": goldsets.goldsets,
    "drift": drift.drift,
    "projection": drift.projection,
    "traffic": traffic.traffic,
    "slices": slices.slices,
    "answers": answers.answers,
    "answer_items": answers.answer_items,
    "index_health": index_health.index_health,
    "index_latency": index_health.index_latency,
    "freshness": freshness.freshness,
    "alerts": alerts.alerts,
    "alert": alerts.alert,
    "alert_deliveries": alerts.alert_deliveries,
    "causes": causes.causes,
    "review_goldsets": review.review_goldsets,
    "review_queue": review.review_queue,
}
"""Loaders by name: what the dashboard's cache calls (``evalkit.dashboard.access.load``)."""
