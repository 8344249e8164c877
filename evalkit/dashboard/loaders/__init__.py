"""Everything a dashboard page shows, loaded from an open (read-only) store.

One module per page, as ``evalkit.dashboard.views`` is split (``overview``, ``quality``,
``compare``, ``query``, ``goldsets``, ``drift``, ``traffic``, ``answers``, ``index_health``,
``alerts``, ``review``), ``causes`` for the probable-causes panel several pages show, and
``shared`` for what several pages load (the store's facts, measure and run pickers). Every loader is
registered in ``LOADERS`` by name: the Streamlit side calls them through its cache
(``evalkit.dashboard.access``), the benchmark and the tests call them directly from their
page's module. Loaders take the store and keyword-only parameters and return frozen records
of DataFrames; all aggregation happens in SQL (``evalkit.store.dashboard``, split the same
way), the statistics and run comparisons in ``evalkit.stats``, exactly as the CLI computes
them.
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
    goldsets,
    index_health,
    overview,
    quality,
    query,
    review,
    shared,
    traffic,
)

__all__ = ["LOADERS"]

LOADERS: Mapping[str, Callable[..., Any]] = {
    "facts": shared.store_facts,
    "measures": shared.measures,
    "runs": shared.runs,
    "overview": overview.overview,
    "quality": quality.quality,
    "compare": compare.compare,
    "query_list": query.query_list,
    "query_detail": query.query_detail,
    "goldsets": goldsets.goldsets,
    "drift": drift.drift,
    "projection": drift.projection,
    "traffic": traffic.traffic,
    "answers": answers.answers,
    "answer_items": answers.answer_items,
    "index_health": index_health.index_health,
    "alerts": alerts.alerts,
    "alert": alerts.alert,
    "alert_deliveries": alerts.alert_deliveries,
    "causes": causes.causes,
    "review_goldsets": review.review_goldsets,
    "review_queue": review.review_queue,
}
"""Loaders by name: what the dashboard's cache calls (``evalkit.dashboard.access.load``)."""
