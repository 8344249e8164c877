"""The Index health page's latency panel: each run's replay latency against the size of the
index it searched (``runs.index_documents``), one series per retriever, so latency that grows
with the index shows as a slope."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from evalkit.dashboard import charts, ui
from evalkit.dashboard.charts import colour

__all__ = ["panel"]

HINT = (
    "No run recorded its index size yet: runs of Chroma, pgvector and Qdrant (or a retriever "
    "with an `index_size()` method) count their index when they start."
)


def panel(page: ui.PageContext) -> None:
    """Draw replay latency (p50 and p95 of each run) against index size."""
    st.subheader("Replay latency against index size")
    runs: pd.DataFrame = page.load("index_latency")
    if runs.empty:
        st.caption(HINT)
        return
    ui.plot(charts.escaped(latency_size_chart(runs)))
    st.caption(
        "Each point is a run: its p50 (filled) and p95 (open) replay latency of answered "
        "queries, at the documents its index held when it started; a traffic window's "
        "replay is a series of its own, marked *(traffic)*. `evalkit gate --max-latency-increase "
        "20%` and the `latency_regression` alert rule test a rise."
    )


def latency_size_chart(runs: pd.DataFrame) -> go.Figure:
    """p50 and p95 replay latency per run against index documents, a series per retriever;
    a traffic window's replay (no goldset) is a series of its own beside the retriever's
    goldset runs, ``RETRIEVER (traffic)``."""
    figure = go.Figure()
    series = runs["retriever"].astype(str)
    if "goldset_name" in runs:
        # Other queries, often at another k: joined to the goldset runs by one line, their
        # latency would read as the index's doing.
        series = series.where(runs["goldset_name"].notna(), series + " (traffic)")
    for index, (retriever, group) in enumerate(
        runs.assign(series=series).groupby("series", sort=True)
    ):
        ordered = group.sort_values(["index_documents", "started_at"])
        hover = ordered[["run_id", "started_at", "n_latencies"]].astype(str).to_numpy()
        for column, label, symbol in (
            ("latency_p50", "p50", "circle"),
            ("latency_p95", "p95", "circle-open"),
        ):
            figure.add_trace(
                go.Scatter(
                    x=ordered["index_documents"],
                    y=ordered[column],
                    mode="lines+markers",
                    name=f"{retriever} {label}",
                    line={"color": colour(index), "dash": "solid" if label == "p50" else "dot"},
                    marker={"symbol": symbol, "size": 8},
                    customdata=hover,
                    hovertemplate=f"{label} %{{y:.1f}} ms at %{{x:,}} documents"
                    "<br>run %{customdata[0]}<br>%{customdata[1]}"
                    "<br>%{customdata[2]} queries<extra></extra>",
                )
            )
    sizes = runs["index_documents"]
    # Over a few documents Plotly's own ticks fall between whole documents ("329.5").
    whole_documents = {"dtick": 1} if sizes.max() - sizes.min() < 10 else {}
    figure.update_xaxes(title="documents in the index", tickformat=",d", **whole_documents)
    # Latencies on a log axis, as everywhere on the dashboard: a p95 ten times the p50
    # would otherwise flatten the p50's changes.
    figure.update_yaxes(**charts.log_axis(runs[["latency_p50", "latency_p95"]].stack()))
    figure.update_layout(
        title="Replay latency against index size",
        yaxis_title="latency (ms, log)",
        height=420,
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.2},
        hovermode="closest",
    )
    return figure
