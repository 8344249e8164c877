"""Plotly figures of the dashboard, built from the loaders' frames (no data access here).

Readable at many series: 24 distinguishable colours (Plotly's Dark24) with a marker symbol
per colour cycle, figures the page restricts to the series the user picked, events drawn
as one marker per day and kind (the details on hover) on a strip of their own, and one
axis per unit (figures of different units go to separate subplots). A point that stands
for a run carries its run id as the first ``customdata`` value, so a click can open it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

__all__ = [
    "EVENT_COLOURS",
    "EVENT_KINDS",
    "PALETTE",
    "answers_chart",
    "colour",
    "daily_events",
    "dimensions_chart",
    "drift_chart",
    "judged_chart",
    "lines_chart",
    "measurement_unit",
    "measurements_chart",
    "projection_chart",
    "quality_chart",
    "query_history_chart",
    "relevant_ranks_chart",
]

EVENT_KINDS = ("goldset version", "model", "index", "alert")
EVENT_COLOURS: Mapping[str, str] = {
    "goldset version": "#8c564b",
    "model": "#d62728",
    "index": "#9467bd",
    "alert": "#ff7f0e",
}
PALETTE: tuple[str, ...] = tuple(qualitative.Dark24)
"""24 qualitative colours that stay apart on a white background."""
_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross")
_HOVER_LINES = 8
_MARKED_POINTS = 60
"""Above this many points a line is drawn without markers (fewer SVG nodes to draw)."""
_COUNT_NAMES = ("documents", "findings", "clusters", "queries", "n_", "count")


def colour(index: int) -> str:
    """The ``index``-th series colour (cycles after 24)."""
    return PALETTE[index % len(PALETTE)]


def _symbol(index: int) -> str:
    return _SYMBOLS[(index // len(PALETTE)) % len(_SYMBOLS)]


def _layout(figure: go.Figure, *, title: str, y_title: str, height: int = 420) -> go.Figure:
    figure.update_layout(
        title=title,
        height=height,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.15},
        hovermode="closest",
    )
    if y_title:
        figure.update_layout(yaxis_title=y_title)
    return figure


def _rgba(colour_hex: str, alpha: float) -> str:
    red, green, blue = (int(colour_hex[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def daily_events(events: pd.DataFrame) -> pd.DataFrame:
    """Events grouped per day and kind: day, kind, n and the hover text listing them.

    ``events`` has time, retriever, kind and description columns (``QualityData.events``).
    """
    columns = ["day", "kind", "n", "details"]
    if events.empty:
        return pd.DataFrame(columns=columns)
    days = pd.to_datetime(events["time"]).dt.floor("D")
    rows = []
    for (day, kind), group in events.assign(day=days).groupby(["day", "kind"], sort=True):
        lines = list(group["description"].astype(str))
        shown = lines[:_HOVER_LINES]
        if len(lines) > _HOVER_LINES:
            shown.append(f"... and {len(lines) - _HOVER_LINES} more")
        rows.append((day, kind, len(lines), "<br>".join(shown)))
    return pd.DataFrame(rows, columns=columns)


def quality_chart(
    points: pd.DataFrame,
    events: pd.DataFrame,
    baselines: Mapping[str, str],
    *,
    measure: str,
) -> go.Figure:
    """The measure per run over time, one line per retriever with its 95 % band and its
    baseline starred; below it, a strip with one marker per day and kind of event (goldset
    version, model or index changed, alert fired), their details on hover.

    Every run point carries customdata (run_id, retriever, status, n).
    """
    figure = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.84, 0.16], vertical_spacing=0.03
    )
    # Overlapping bands of many series would hide the lines: the more series, the fainter.
    band_alpha = 0.15 if points["retriever"].nunique() <= 2 else 0.06
    for index, (retriever, unsorted) in enumerate(points.groupby("retriever", sort=True)):
        line = colour(index)
        group = unsorted.sort_values("started_at")
        band_x = [*group["started_at"], *group["started_at"][::-1]]
        band_y = [*group["ci_high"], *group["ci_low"][::-1]]
        figure.add_trace(
            go.Scatter(
                x=band_x,
                y=band_y,
                fill="toself",
                fillcolor=_rgba(line, band_alpha),
                mode="lines",
                line={"width": 0},
                hoverinfo="skip",
                name=f"{retriever} 95% CI",
                legendgroup=str(retriever),
                showlegend=False,
            ),
            row=1,
            col=1,
        )
        figure.add_trace(
            go.Scatter(
                x=group["started_at"],
                y=group["value"],
                mode="lines+markers",
                name=str(retriever),
                legendgroup=str(retriever),
                line={"color": line, "width": 1.5},
                marker={"size": 5, "symbol": _symbol(index)},
                customdata=group[["run_id", "retriever", "status", "n"]].to_numpy(),
                hovertemplate="%{customdata[1]}<br>run %{customdata[0]}<br>%{y:.4f} "
                "(%{customdata[2]}, n=%{customdata[3]})<br>click: compare with baseline"
                "<extra></extra>",
            ),
            row=1,
            col=1,
        )
        base = group[group["run_id"] == baselines.get(str(retriever))]
        if not base.empty:
            figure.add_trace(
                go.Scatter(
                    x=base["started_at"],
                    y=base["value"],
                    mode="markers",
                    marker={"symbol": "star", "size": 15, "color": line},
                    name=f"baseline {retriever}",
                    legendgroup=str(retriever),
                    showlegend=False,
                    hovertemplate=f"baseline of {retriever}<br>%{{y:.4f}}<extra></extra>",
                ),
                row=1,
                col=1,
            )
    per_day = daily_events(events)
    for kind, group in per_day.groupby("kind", sort=False):
        figure.add_trace(
            go.Scatter(
                x=group["day"],
                y=[str(kind)] * len(group),
                mode="markers",
                marker={
                    "symbol": "triangle-down",
                    "size": [min(8 + 2 * n, 18) for n in group["n"]],
                    "color": EVENT_COLOURS.get(str(kind), "#333333"),
                },
                name=f"event: {kind}",
                customdata=group[["n"]].to_numpy(),
                text=group["details"],
                hovertemplate="%{x|%Y-%m-%d}: %{customdata[0]} "
                + str(kind)
                + " event(s)<br>%{text}<extra></extra>",
            ),
            row=2,
            col=1,
        )
    figure.update_yaxes(title_text=measure, row=1, col=1)
    figure.update_yaxes(
        categoryorder="array",
        categoryarray=list(EVENT_KINDS),
        fixedrange=True,
        tickfont={"size": 10},
        row=2,
        col=1,
    )
    return _layout(figure, title=f"{measure} per run", y_title="", height=520)


def drift_chart(checks: pd.DataFrame, *, value: str) -> go.Figure:
    """``value`` (statistic or p_value) of every check over time, one line per stream and
    subject, drifting checks as red crosses, faceted: one subplot per stream, and per
    method within a stream for statistics (methods' statistics have different units:
    Page-Hinkley's cumulative sum is not an MMD), each with its own axis; p-values are
    probabilities and are drawn on log axes."""
    subjects = checks["subject"].fillna("-")
    frame = checks.assign(subject=subjects)
    if value == "statistic":
        facets = sorted(set(zip(frame["stream"], frame["method"], strict=True)))
        facet_of = list(zip(frame["stream"], frame["method"], strict=True))
        titles = [f"{stream}: {method} statistic" for stream, method in facets]
    else:
        facets = [(stream, "") for stream in sorted(frame["stream"].unique())]
        facet_of = [(stream, "") for stream in frame["stream"]]
        titles = [f"{stream}: p-value" for stream, _ in facets]
    frame = frame.assign(facet=facet_of)
    figure = make_subplots(
        rows=max(1, len(facets)),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=min(0.08, 0.3 / max(1, len(facets))),
        subplot_titles=titles,
    )
    keys = sorted(set(zip(frame["stream"], frame["subject"], strict=True)))
    index_of = {key: index for index, key in enumerate(keys)}
    for (stream, subject, facet), unsorted in frame.groupby(
        ["stream", "subject", "facet"], sort=True
    ):
        row = facets.index(facet) + 1
        key = (str(stream), str(subject))
        index = index_of[key]
        group = unsorted.sort_values("created_at")
        figure.add_trace(
            go.Scatter(
                x=group["created_at"],
                y=group[value],
                mode="lines+markers" if len(group) <= _MARKED_POINTS else "lines",
                name=f"{stream} / {subject}",
                legendgroup=f"{stream} / {subject}",
                line={"color": colour(index), "width": 1.2},
                marker={"size": 4, "symbol": _symbol(index)},
                customdata=group[["check_id"]].to_numpy(),
                text=group["method"] + ": " + group["finding"],
                hovertemplate=f"{stream} / {subject}<br>%{{text}}<br>%{{y:.4g}}"
                "<br>check %{customdata[0]}<extra></extra>",
            ),
            row=row,
            col=1,
        )
        drifted = group[group["is_drift"].astype(bool)]
        if not drifted.empty:
            figure.add_trace(
                go.Scatter(
                    x=drifted["created_at"],
                    y=drifted[value],
                    mode="markers",
                    marker={"symbol": "x", "size": 9, "color": "#d62728"},
                    name=f"drift {stream} / {subject}",
                    legendgroup=f"{stream} / {subject}",
                    showlegend=False,
                    hoverinfo="skip",
                ),
                row=row,
                col=1,
            )
    if value == "p_value":
        figure.update_yaxes(type="log", dtick=1)
    figure.update_annotations(font_size=12)
    height = 190 * max(1, len(facets)) + 110
    return _layout(figure, title=f"{value.replace('_', '-')} per check", y_title="", height=height)


def projection_chart(points: pd.DataFrame, *, method: str) -> go.Figure:
    """Reference and current embeddings in two dimensions, coloured by window."""
    figure = go.Figure()
    for index, (window, group) in enumerate(points.groupby("window", sort=False)):
        figure.add_trace(
            go.Scatter(
                x=group["x"],
                y=group["y"],
                mode="markers",
                name=str(window),
                marker={"size": 5, "opacity": 0.6, "color": colour(index)},
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
    """One line (or bar series) per column, or per value of ``by`` for one column; every
    series is of the unit ``y_title`` names."""
    figure = go.Figure()
    if by is not None:
        groups = [(str(name), group, columns[0]) for name, group in frame.groupby(by, sort=True)]
    else:
        groups = [(column, frame, column) for column in columns]
    for index, (name, group, column) in enumerate(groups):
        trace = (
            go.Bar(x=group[x], y=group[column], name=name, marker={"color": colour(index)})
            if bars
            else go.Scatter(
                x=group[x],
                y=group[column],
                mode="lines+markers",
                name=name,
                line={"color": colour(index)},
                marker={"size": 5, "symbol": _symbol(index)},
            )
        )
        figure.add_trace(trace)
    return _layout(figure, title=title, y_title=y_title, height=360)


JUDGED_SOURCE_LINES: Mapping[str, tuple[str, str]] = {
    "assessor": ("replayed", "solid"),
    "assessor_logged": ("logged by production", "dash"),
}
"""How each source of a judged figure is named and drawn (``judged_chart``)."""


def judged_chart(points: pd.DataFrame, *, measure: str) -> go.Figure:
    """A measure computed from an LLM assessor's labels per traffic window, with its 95 %
    band: one colour per assessor (and retriever, where windows were replayed on more than
    one), the replayed top-k solid and the top-k production logged dashed beside it; a
    series of one window shows its interval as an error bar.

    ``points`` has the columns of ``traffic_judged_frame``; every point carries customdata
    (run_id, retriever, window_label, low, high, judged_share, status, n_queries).
    """
    figure = go.Figure()
    several_retrievers = points["retriever"].nunique() > 1
    keys = ["labeller", "retriever"] if several_retrievers else ["labeller"]
    band_alpha = 0.15 if points.groupby(keys).ngroups <= 2 else 0.06
    for index, (key, series) in enumerate(points.groupby(keys, sort=True)):
        parts = key if isinstance(key, tuple) else (key,)
        name = " / ".join(str(part) for part in parts)
        line = colour(index)
        for source, unsorted in series.groupby("source", sort=False):
            label, dash = JUDGED_SOURCE_LINES.get(str(source), (str(source), "dot"))
            group = unsorted.sort_values("window_start")
            banded = group.dropna(subset=["low", "high"])
            if len(banded) > 1:
                figure.add_trace(
                    go.Scatter(
                        x=[*banded["window_start"], *banded["window_start"][::-1]],
                        y=[*banded["high"], *banded["low"][::-1]],
                        fill="toself",
                        fillcolor=_rgba(line, band_alpha),
                        mode="lines",
                        line={"width": 0},
                        hoverinfo="skip",
                        name=f"{name} {label} 95% CI",
                        legendgroup=name,
                        showlegend=False,
                    )
                )
            figure.add_trace(
                go.Scatter(
                    x=group["window_start"],
                    y=group["value"],
                    mode="lines+markers",
                    name=f"{name} ({label})",
                    legendgroup=name,
                    line={"color": line, "width": 1.5, "dash": dash},
                    marker={"size": 6, "symbol": _symbol(index)},
                    error_y=_lone_interval(group, line),
                    customdata=group[
                        [
                            "run_id",
                            "retriever",
                            "window_label",
                            "low",
                            "high",
                            "judged_share",
                            "status",
                            "n_queries",
                        ]
                    ].to_numpy(),
                    hovertemplate=f"{name}, {label}<br>window %{{customdata[2]}}: %{{y:.3f}}"
                    " [%{customdata[3]:.3f}, %{customdata[4]:.3f}]<br>judged"
                    " %{customdata[5]:.1%} (%{customdata[6]}, %{customdata[7]} queries)"
                    "<br>run %{customdata[0]}<extra></extra>",
                )
            )
    return _layout(
        figure,
        title=f"Judged {measure} over time (assessor labels)",
        y_title=f"{measure} (assessor labels)",
        height=400,
    )


def _lone_interval(group: pd.DataFrame, line: str) -> dict[str, object] | None:
    """The interval of a series of one window as an error bar (a band needs two windows)."""
    if len(group) != 1 or group[["low", "high"]].isna().any(axis=None):
        return None
    return {
        "type": "data",
        "array": list(group["high"] - group["value"]),
        "arrayminus": list(group["value"] - group["low"]),
        "color": line,
        "thickness": 1,
    }


def measurement_unit(name: str, values: pd.Series) -> str:
    """``count`` for an audit measurement that counts (documents, findings, ...) or exceeds
    1, else ``share`` (recalls, coverages, similarities: 0 to 1)."""
    lowered = name.lower()
    if any(part in lowered for part in _COUNT_NAMES) or bool((values.abs() > 1).any()):
        return "count"
    return "share"


def measurements_chart(history: pd.DataFrame, *, title: str) -> go.Figure:
    """Audit measurements over time (measured_at, name, value): shares and counts on
    separate subplots, one line per measurement."""
    units = {
        str(name): measurement_unit(str(name), group["value"])
        for name, group in history.groupby("name", sort=True)
    }
    rows = [unit for unit in ("share", "count") if unit in units.values()] or ["share"]
    figure = make_subplots(
        rows=len(rows),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.1,
        subplot_titles=[f"{unit}s" for unit in rows] if len(rows) > 1 else None,
    )
    for index, (name, unsorted) in enumerate(history.groupby("name", sort=True)):
        group = unsorted.sort_values("measured_at")
        figure.add_trace(
            go.Scatter(
                x=group["measured_at"],
                y=group["value"],
                mode="lines+markers",
                name=str(name),
                line={"color": colour(index)},
                marker={"size": 5, "symbol": _symbol(index)},
            ),
            row=rows.index(units[str(name)]) + 1,
            col=1,
        )
    for position, unit in enumerate(rows, start=1):
        figure.update_yaxes(title_text=unit, row=position, col=1)
    return _layout(figure, title=title, y_title="", height=260 * len(rows) + 100)


def query_history_chart(values: pd.DataFrame, *, measures: Sequence[str]) -> go.Figure:
    """One query's value per run over time (``values``: run_id, started_at, retriever,
    measure, value): a small chart per measure, one line per retriever. Every point
    carries customdata (run_id, retriever)."""
    shown = [m for m in measures if m in set(values["measure"])] or sorted(
        values["measure"].unique()
    )
    figure = make_subplots(
        rows=max(1, len(shown)),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.04,
        subplot_titles=list(shown),
    )
    retrievers = sorted(values["retriever"].unique())
    for row, measure in enumerate(shown, start=1):
        of_measure = values[values["measure"] == measure]
        for index, retriever in enumerate(retrievers):
            group = of_measure[of_measure["retriever"] == retriever].sort_values("started_at")
            if group.empty:
                continue
            figure.add_trace(
                go.Scatter(
                    x=group["started_at"],
                    y=group["value"],
                    mode="lines+markers" if len(group) <= _MARKED_POINTS else "lines",
                    name=str(retriever),
                    legendgroup=str(retriever),
                    showlegend=row == 1,
                    line={"color": colour(index), "width": 1.2},
                    marker={"size": 5, "symbol": _symbol(index)},
                    customdata=group[["run_id", "retriever"]].to_numpy(),
                    hovertemplate=f"{measure} %{{y:.4f}}<br>run %{{customdata[0]}}"
                    "<br>%{customdata[1]}<br>click: compare with baseline<extra></extra>",
                ),
                row=row,
                col=1,
            )
        figure.update_yaxes(range=[-0.05, 1.05], row=row, col=1)
    return _layout(
        figure,
        title="This query's values per run",
        y_title="",
        height=170 * max(1, len(shown)) + 120,
    )


def relevant_ranks_chart(ranks: pd.DataFrame, *, k: int) -> go.Figure:
    """Where each relevant document of a query landed per run (``ranks``: run_id,
    started_at, retriever, doc_id, relevance, rank; rank missing: not retrieved, drawn
    below rank ``k``)."""
    figure = go.Figure()
    missing = k + 1
    for index, (doc_id, unsorted) in enumerate(ranks.groupby("doc_id", sort=True)):
        group = unsorted.sort_values("started_at")
        figure.add_trace(
            go.Scatter(
                x=group["started_at"],
                y=group["rank"].fillna(missing),
                mode="markers",
                name=f"{doc_id} (grade {int(group['relevance'].max())})",
                marker={"size": 6, "color": colour(index), "symbol": _symbol(index)},
                customdata=group[["run_id", "retriever"]].to_numpy(),
                hovertemplate=f"{doc_id}<br>rank %{{y}}<br>run %{{customdata[0]}}"
                "<br>%{customdata[1]}<extra></extra>",
            )
        )
    figure.update_yaxes(
        autorange="reversed",
        tickvals=[1, *range(5, k + 1, 5), missing],
        ticktext=["1", *(str(v) for v in range(5, k + 1, 5)), "not retrieved"],
    )
    return _layout(figure, title="Rank of each relevant document per run", y_title="rank")


def answers_chart(series: pd.DataFrame, *, metric: str) -> go.Figure:
    """One metric's mean per scoring over time, one line per method, method version and
    judge (versions read on different scales, so each has its own line)."""
    shown = series[series["metric"] == metric].copy()
    version = shown.get("method_version", "-")
    shown["how"] = shown["method"] + " " + version + " / " + shown["judge_model"]
    return lines_chart(
        shown,
        x="started_at",
        columns=["mean"],
        by="how",
        title=f"{metric} over time, by method and judge",
        y_title=metric,
    )
