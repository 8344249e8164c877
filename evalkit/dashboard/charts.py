"""Plotly figures of the dashboard, built from the loaders' frames (no data access here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

__all__ = [
    "EVENT_COLOURS",
    "answers_chart",
    "dimensions_chart",
    "drift_chart",
    "lines_chart",
    "projection_chart",
    "quality_chart",
]

EVENT_COLOURS: Mapping[str, str] = {
    "goldset version": "#8c564b",
    "model": "#d62728",
    "index": "#9467bd",
    "alert": "#ff7f0e",
}
_PALETTE = ("#1f77b4", "#2ca02c", "#17becf", "#bcbd22", "#7f7f7f", "#e377c2", "#8c564b")


def _layout(figure: go.Figure, *, title: str, y_title: str, height: int = 420) -> go.Figure:
    figure.update_layout(
        title=title,
        height=height,
        margin={"l": 40, "r": 20, "t": 50, "b": 40},
        yaxis_title=y_title,
        legend={"orientation": "h", "y": -0.2},
        hovermode="closest",
    )
    return figure


def _rgba(colour: str, alpha: float) -> str:
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def quality_chart(
    points: pd.DataFrame,
    events: pd.DataFrame,
    baselines: Mapping[str, str],
    *,
    measure: str,
) -> go.Figure:
    """The measure per run over time, one line per retriever with its 95 % band, the
    baselines starred and events drawn as vertical lines with hover text."""
    figure = go.Figure()
    for index, (retriever, unsorted) in enumerate(points.groupby("retriever", sort=True)):
        colour = _PALETTE[index % len(_PALETTE)]
        group = unsorted.sort_values("started_at")
        band_x = [*group["started_at"], *group["started_at"][::-1]]
        band_y = [*group["ci_high"], *group["ci_low"][::-1]]
        figure.add_trace(
            go.Scatter(
                x=band_x,
                y=band_y,
                fill="toself",
                fillcolor=_rgba(colour, 0.15),
                line={"width": 0},
                hoverinfo="skip",
                name=f"{retriever} 95% CI",
                showlegend=False,
            )
        )
        figure.add_trace(
            go.Scatter(
                x=group["started_at"],
                y=group["value"],
                mode="lines+markers",
                name=str(retriever),
                line={"color": colour},
                customdata=group[["run_id", "status", "n"]].to_numpy(),
                hovertemplate="%{customdata[0]}<br>%{y:.4f} (%{customdata[1]}, n=%{customdata[2]})"
                "<extra></extra>",
            )
        )
        base = group[group["run_id"] == baselines.get(str(retriever))]
        if not base.empty:
            figure.add_trace(
                go.Scatter(
                    x=base["started_at"],
                    y=base["value"],
                    mode="markers",
                    marker={"symbol": "star", "size": 16, "color": colour},
                    name=f"baseline {retriever}",
                    hovertemplate="baseline %{y:.4f}<extra></extra>",
                )
            )
    for kind, group in events.groupby("kind", sort=True):
        colour = EVENT_COLOURS.get(str(kind), "#333333")
        for time in group["time"]:
            figure.add_shape(
                type="line",
                x0=time,
                x1=time,
                y0=0,
                y1=1,
                yref="paper",
                line={"color": colour, "width": 1, "dash": "dot"},
            )
        figure.add_trace(
            go.Scatter(
                x=group["time"],
                y=[1.02] * len(group),
                yaxis="y2",
                mode="markers",
                marker={"symbol": "triangle-down", "size": 11, "color": colour},
                name=f"event: {kind}",
                text=group["description"],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    figure.update_layout(
        yaxis2={"overlaying": "y", "range": [0, 1.05], "visible": False, "fixedrange": True}
    )
    return _layout(figure, title=f"{measure} per run", y_title=measure)


def drift_chart(checks: pd.DataFrame, *, value: str) -> go.Figure:
    """``value`` (statistic or p_value) of every check over time, one line per stream and
    subject; drifting checks drawn as red crosses."""
    figure = go.Figure()
    for index, ((stream, subject), group) in enumerate(
        checks.groupby(["stream", checks["subject"].fillna("-")], sort=True)
    ):
        colour = _PALETTE[index % len(_PALETTE)]
        figure.add_trace(
            go.Scatter(
                x=group["created_at"],
                y=group[value],
                mode="lines+markers",
                name=f"{stream} / {subject}",
                line={"color": colour},
                text=group["method"] + ": " + group["finding"],
                hovertemplate="%{text}<br>%{y:.4g}<extra></extra>",
            )
        )
        drifted = group[group["is_drift"].astype(bool)]
        if not drifted.empty:
            figure.add_trace(
                go.Scatter(
                    x=drifted["created_at"],
                    y=drifted[value],
                    mode="markers",
                    marker={"symbol": "x", "size": 12, "color": "#d62728"},
                    name=f"drift {stream} / {subject}",
                    showlegend=False,
                    hoverinfo="skip",
                )
            )
    if value == "p_value":
        figure.update_yaxes(type="log")
    return _layout(figure, title=f"{value.replace('_', '-')} per check", y_title=value)


def projection_chart(points: pd.DataFrame, *, method: str) -> go.Figure:
    """Reference and current embeddings in two dimensions, coloured by window."""
    figure = go.Figure()
    for index, (window, group) in enumerate(points.groupby("window", sort=False)):
        figure.add_trace(
            go.Scattergl(
                x=group["x"],
                y=group["y"],
                mode="markers",
                name=str(window),
                marker={"size": 5, "opacity": 0.6, "color": _PALETTE[index % len(_PALETTE)]},
                text=group["query_id"],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    figure.update_xaxes(title=f"{method} 1")
    return _layout(figure, title=f"Query embeddings ({method})", y_title=f"{method} 2")


def dimensions_chart(dimensions: pd.DataFrame, *, top: int = 20) -> go.Figure:
    """The ``top`` dimensions that moved most: KS statistic, hover with the shift."""
    shown = dimensions.head(top)
    top = len(shown)
    figure = go.Figure(
        go.Bar(
            x=[f"dim {d}" for d in shown["dimension"]],
            y=shown["ks_statistic"],
            customdata=shown[["p_adjusted", "mean_shift_sd"]].to_numpy(),
            hovertemplate="KS %{y:.3f}<br>BH p %{customdata[0]:.3g}"
            "<br>mean shift %{customdata[1]:.2f} sd<extra></extra>",
        )
    )
    return _layout(figure, title=f"{top} dimensions that moved most", y_title="KS statistic")


def lines_chart(
    frame: pd.DataFrame,
    *,
    x: str,
    columns: Sequence[str],
    title: str,
    y_title: str,
    by: str | None = None,
    bars: bool = False,
) -> go.Figure:
    """One line (or bar series) per column, or per value of ``by`` for one column."""
    figure = go.Figure()
    if by is not None:
        groups = [(str(name), group, columns[0]) for name, group in frame.groupby(by, sort=True)]
    else:
        groups = [(column, frame, column) for column in columns]
    for name, group, column in groups:
        trace = (
            go.Bar(x=group[x], y=group[column], name=name)
            if bars
            else go.Scatter(x=group[x], y=group[column], mode="lines+markers", name=name)
        )
        figure.add_trace(trace)
    return _layout(figure, title=title, y_title=y_title, height=360)


def answers_chart(series: pd.DataFrame, *, metric: str) -> go.Figure:
    """One metric's mean per scoring over time, one line per method and judge."""
    shown = series[series["metric"] == metric].copy()
    shown["how"] = shown["method"] + " / " + shown["judge_model"]
    return lines_chart(
        shown,
        x="started_at",
        columns=["mean"],
        by="how",
        title=f"{metric} over time, by method and judge",
        y_title=metric,
    )
