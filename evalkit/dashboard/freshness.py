"""The Freshness panel of the Index health page: how long changes at the source take to become
retrievable, check after check, against the objective, and the oldest changes still waiting
(``evalkit freshness``, docs/freshness.md)."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from evalkit.dashboard import charts, ui
from evalkit.dashboard.loaders.freshness import FreshnessData
from evalkit.records.freshness import human_seconds

__all__ = ["panel"]

HINT = (
    "`evalkit freshness --changes changes.jsonl --collection C` (or a `freshness` job of "
    "`evalkit serve`) stores freshness checks."
)
_LINES = (
    ("lag_p50_seconds", "p50 lag"),
    ("lag_p95_seconds", "p95 lag"),
    ("lag_max_seconds", "max lag"),
    ("oldest_unreflected_seconds", "oldest unreflected"),
)


def panel(page: ui.PageContext) -> None:
    """Draw the freshness of one subject (the URL's ``freshness`` parameter, else the most
    recently checked): its newest figures, its lags over time and the documents waiting."""
    st.subheader("Freshness")
    if "freshness_checks" not in page.facts.tables:
        st.caption(HINT)
        return
    everything: FreshnessData = page.load("freshness")
    if not everything.subjects:
        st.caption(HINT)
        return
    subject = ui.choose(
        "Freshness of",
        list(everything.subjects),
        param="freshness",
        help="The index whose freshness checks are shown (`evalkit freshness --subject`).",
    )
    data: FreshnessData = page.load("freshness", subject=subject)
    checks = data.checks
    newest = checks.iloc[-1]
    cards = st.columns(4)
    cards[0].metric("p95 lag", _duration(newest["lag_p95_seconds"]))
    cards[1].metric("oldest unreflected", _duration(newest["oldest_unreflected_seconds"]))
    share = newest["unreflected_share"]
    cards[2].metric("unreflected", "-" if _missing(share) else f"{float(share):.1%}")
    cards[3].metric("objective", "breached" if bool(newest["breached"]) else "met")
    ui.plot(charts.escaped(_lag_chart(checks, subject)))
    st.markdown("**Oldest documents not yet retrievable**")
    if data.waiting.empty:
        st.success("Every change read so far is reflected.")
    else:
        ui.table(data.waiting, digits=1)


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _duration(value: object) -> str:
    return "-" if _missing(value) else human_seconds(float(str(value)))


def _lag_chart(checks: pd.DataFrame, subject: str) -> go.Figure:
    """Lag percentiles and the oldest unreflected change's age per check, in minutes, with
    the objective's two limits as dashed lines."""
    chart = go.Figure()
    for column, name in _LINES:
        chart.add_trace(
            go.Scatter(
                x=checks["checked_at"],
                y=checks[column] / 60.0,
                mode="lines+markers",
                name=name,
                connectgaps=False,
            )
        )
    newest = checks.iloc[-1]
    for column, name in (
        ("slo_p95_lag_seconds", "p95 objective"),
        ("max_unreflected_age_seconds", "waiting limit"),
    ):
        chart.add_hline(
            y=float(newest[column]) / 60.0,
            line_dash="dash",
            annotation_text=name,
            annotation_position="top left",
        )
    chart.update_layout(
        title=f"Freshness of {subject}: lag per check",
        xaxis_title="check",
        yaxis_title="minutes",
        legend_title_text="",
    )
    return chart
