"""Plotly figures of the dashboard, built from the loaders' frames (no data access here).

One visual language on every page: docs/dashboard.md, "One visual language". A point that
stands for a run has its run id first in ``customdata``, so a click can open it.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from evalkit.redaction import visible

__all__ = [
    "BAD",
    "EVENT_COLOURS",
    "EVENT_KINDS",
    "GOOD",
    "MARKER_SIZE",
    "NEUTRAL",
    "PALETTE",
    "STATUS_COLOURS",
    "WARNING",
    "X_AXES",
    "answers_chart",
    "colour",
    "dimensions_chart",
    "drift_chart",
    "escaped",
    "event_marks",
    "judged_chart",
    "lines_chart",
    "log_axis",
    "measurement_unit",
    "measurements_chart",
    "plot_text",
    "projection_chart",
    "quality_chart",
    "query_history_chart",
    "relevant_ranks_chart",
    "series_colours",
    "sparkline_svg",
    "sparkline_url",
]

BAD = "#d62728"
"""Red: only for what is bad (a drift, a regression, a threshold crossed)."""
WARNING = "#ff7f0e"
"""Orange: only for what needs a look (drift status, a warning)."""
GOOD = "#2ca02c"
NEUTRAL = "#8c8c8c"
STATUS_COLOURS: Mapping[str, str] = {
    "failed": BAD,
    "regression": BAD,
    "drift": WARNING,
    "stale": NEUTRAL,
    "new": NEUTRAL,
    "pass": GOOD,
    "no data": NEUTRAL,
}
"""The colour of each Overview status (its sparklines): red only for a regression or a
failed newest run."""

PALETTE: tuple[str, ...] = (
    "#1f77b4",
    "#2ca02c",
    "#9467bd",
    "#17becf",
    "#8c564b",
    "#bcbd22",
    "#0d2a63",
    "#e377c2",
    "#00a08b",
    "#7f7f7f",
    "#511cfb",
    "#b68100",
    "#750d86",
    "#6c7c32",
    "#778aae",
    "#a777f1",
    "#1616a7",
    "#6c4516",
    "#2e91e5",
    "#222a2a",
)
"""Series colours that stay apart on a white background: no red and no orange, which
mean "bad" and "warning"."""

EVENT_KINDS = ("goldset version", "model", "index", "k", "alert")
EVENT_COLOURS: Mapping[str, str] = {
    "goldset version": "#5f4b8b",
    "model": "#3b6e8f",
    "index": "#4d4d4d",
    "k": "#7a6a4f",
    "alert": BAD,
}
"""An alert is bad news (red); the changes between runs are facts (dark, muted)."""

MARKER_SIZE = 9
"""Pixels of a point that can be clicked (a run): large enough to hit."""
X_AXES = ("time", "run index")
"""What Quality over time can put on its x axis: start times, or runs in order."""
_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross")
_HOVER_LINES = 8
_MARKED_POINTS = 60
"""Above this many points a line is drawn without markers (fewer SVG nodes to draw)."""
_COUNT_NAMES = ("documents", "findings", "clusters", "queries", "n_", "count")


def plot_text(value: str) -> str:
    """``value`` as Plotly must be given text it should show as it is: Plotly reads a
    subset of HTML in names, labels and hover text (``<a href>`` is a working link), so
    ``< > &`` become entities, and control and bidirectional characters escapes. ``<br>``
    alone stays a line break (hover texts join their lines with it)."""
    return "<br>".join(html.escape(visible(part), quote=False) for part in value.split("<br>"))


def _escaped_values(values: Any) -> Any:
    if isinstance(values, str):
        return plot_text(values)
    if isinstance(values, np.ndarray) and values.dtype == object:
        return np.vectorize(lambda v: plot_text(v) if isinstance(v, str) else v, otypes=[object])(
            values
        )
    if isinstance(values, tuple | list) and any(isinstance(v, str) for v in values):
        return [_escaped_values(v) if isinstance(v, str | tuple | list) else v for v in values]
    return values


_SHOWN_TRACE_TEXT = ("name", "text", "hovertext", "x", "y", "customdata")


def escaped(figure: go.Figure) -> go.Figure:
    """``figure`` with the text of its traces (names, labels, categories, hover data) and of
    its axes' categories and annotations made safe to show (``plot_text``): ids, tenants and
    retriever names come from users' data. Every dashboard figure goes through it once,
    where it is built. A click's customdata comes back escaped (``html.unescape`` it)."""
    for trace in figure.data:
        for attribute in _SHOWN_TRACE_TEXT:
            value = getattr(trace, attribute, None)
            if value is not None:
                trace[attribute] = _escaped_values(value)
    for axis in ("xaxis", "yaxis"):
        for name in figure.layout:
            if name.startswith(axis) and figure.layout[name].categoryarray is not None:
                figure.layout[name].categoryarray = _escaped_values(
                    list(figure.layout[name].categoryarray)
                )
    for annotation in figure.layout.annotations:
        if annotation.text is not None:
            annotation.text = plot_text(annotation.text)
    return figure


def colour(index: int) -> str:
    """The ``index``-th series colour (cycles after the palette's end)."""
    return PALETTE[index % len(PALETTE)]


def _symbol(index: int) -> str:
    return _SYMBOLS[(index // len(PALETTE)) % len(_SYMBOLS)]


def series_colours(names: Iterable[object]) -> dict[str, str]:
    """One colour per series name, in sorted order: the mapping a page hands to each of
    its figures, so that a series has the same colour in all of them."""
    return {name: colour(index) for index, name in enumerate(sorted({str(n) for n in names}))}


def _colours_for(names: Iterable[object], colours: Mapping[str, str] | None) -> dict[str, str]:
    """``colours`` where it names a series, else a colour of this figure's own mapping."""
    own = series_colours(names)
    return {name: (colours or {}).get(name, own[name]) for name in own}


def _symbol_of(name: str, colours: Mapping[str, str]) -> str:
    ordered = sorted(colours)
    return _symbol(ordered.index(name)) if name in colours else _SYMBOLS[0]


def _layout(figure: go.Figure, *, title: str, y_title: str, height: int = 420) -> go.Figure:
    figure.update_layout(
        title=title,
        height=height,
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.15},
        hovermode="closest",
    )
    if y_title:
        figure.update_layout(yaxis_title=y_title)
    return figure


def _rgba(colour_hex: str, alpha: float) -> str:
    red, green, blue = (int(colour_hex[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def _band_alpha(n_series: int) -> float:
    # Overlapping bands of many series would hide the lines: the more series, the fainter.
    return 0.15 if n_series <= 2 else 0.06


def _interval_band(
    x: pd.Series, low: pd.Series, high: pd.Series, *, line: str, alpha: float, name: str, group: str
) -> go.Scatter:
    """A series' 95% interval as a filled band in its line's colour, out along ``high`` and
    back along ``low``; not in the legend, and not hovered (the points carry the interval)."""
    return go.Scatter(
        x=[*x, *x[::-1]],
        y=[*high, *low[::-1]],
        fill="toself",
        fillcolor=_rgba(line, alpha),
        mode="lines",
        line={"width": 0},
        hoverinfo="skip",
        name=f"{name} 95% CI",
        legendgroup=group,
        showlegend=False,
    )


def event_marks(events: pd.DataFrame) -> pd.DataFrame:
    """Events grouped per exact moment and kind: time, kind, n and the hover text listing
    them (events at the same timestamp, such as the changes one run brought, are one mark).

    ``events`` has time, retriever, kind and description columns (``QualityData.events``).
    """
    columns = ["time", "kind", "n", "details"]
    if events.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    timed = events.assign(time=pd.to_datetime(events["time"]))
    for (moment, kind), group in timed.groupby(["time", "kind"], sort=True):
        lines = list(group["description"].astype(str))
        shown = lines[:_HOVER_LINES]
        if len(lines) > _HOVER_LINES:
            shown.append(f"... and {len(lines) - _HOVER_LINES} more")
        rows.append((moment, kind, len(lines), "<br>".join(shown)))
    return pd.DataFrame(rows, columns=columns)


def _run_positions(points: pd.DataFrame) -> pd.Series:
    """Each run's position on a run-index axis: 1, 2, ... in start order over all series."""
    ordered = points.sort_values(["started_at", "run_id"], kind="stable")
    index = pd.Series(np.arange(1, len(ordered) + 1, dtype=float), index=ordered.index)
    return index.reindex(points.index)


def _event_positions(times: pd.Series, points: pd.DataFrame) -> list[float]:
    """Where events fall on a run-index axis: on a run that started at that moment, else
    halfway between the runs before and after it."""
    starts = np.sort(pd.to_datetime(points["started_at"]).to_numpy())
    positions = []
    for moment in pd.to_datetime(times).to_numpy():
        before = int(np.searchsorted(starts, moment, side="right"))
        exact = before > 0 and starts[before - 1] == moment
        positions.append(float(before) if exact else before + 0.5)
    return positions


def quality_chart(
    points: pd.DataFrame,
    events: pd.DataFrame,
    baselines: Mapping[str, str],
    *,
    measure: str,
    x_axis: str = "time",
    colours: Mapping[str, str] | None = None,
) -> go.Figure:
    """The measure per run, one line per retriever with its 95 % band and its baseline
    starred; events as vertical lines at their exact moment, with a strip below holding
    one marker per moment and kind (goldset version, model or index changed, alert fired),
    the details on hover.

    ``x_axis``: ``time`` (start times) or ``run index`` (the goldset's runs in start order,
    evenly spaced; an event between two runs falls halfway). ``colours``: the page's colour
    per retriever. Every run point carries customdata (run_id, retriever, status, n,
    started_at).
    """
    figure = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.86, 0.14], vertical_spacing=0.03
    )
    by_index = x_axis == "run index"
    placed = points.assign(
        x=_run_positions(points) if by_index else points["started_at"],
        started=pd.to_datetime(points["started_at"]).dt.strftime("%Y-%m-%d %H:%M:%S"),
    )
    palette = _colours_for(placed["retriever"], colours)
    band_alpha = _band_alpha(placed["retriever"].nunique())
    for retriever, unsorted in placed.groupby("retriever", sort=True):
        name = str(retriever)
        line = palette[name]
        group = unsorted.sort_values(["started_at", "run_id"])
        figure.add_trace(
            _interval_band(
                group["x"],
                group["ci_low"],
                group["ci_high"],
                line=line,
                alpha=band_alpha,
                name=name,
                group=name,
            ),
            row=1,
            col=1,
        )
        figure.add_trace(
            go.Scatter(
                x=group["x"],
                y=group["value"],
                mode="lines+markers",
                name=name,
                legendgroup=name,
                line={"color": line, "width": 1.5},
                marker={"size": MARKER_SIZE, "symbol": _symbol_of(name, palette)},
                error_y=_lone_interval(group, line, low="ci_low", high="ci_high"),
                customdata=group[["run_id", "retriever", "status", "n", "started"]].to_numpy(),
                hovertemplate="%{customdata[1]}<br>run %{customdata[0]}, %{customdata[4]}"
                f"<br>{measure} %{{y:.4f}} (%{{customdata[2]}}, %{{customdata[3]}} queries)"
                "<br>click: compare with baseline<extra></extra>",
            ),
            row=1,
            col=1,
        )
        base = group[group["run_id"] == baselines.get(name)]
        if not base.empty:
            figure.add_trace(
                go.Scatter(
                    x=base["x"],
                    y=base["value"],
                    mode="markers",
                    marker={"symbol": "star", "size": 16, "color": line},
                    name=f"baseline {name}",
                    legendgroup=name,
                    showlegend=False,
                    hovertemplate=f"baseline of {plot_text(str(name))}<br>%{{y:.4f}}"
                    "<extra></extra>",
                ),
                row=1,
                col=1,
            )
    marks = event_marks(events)
    _add_events(figure, marks, points, by_index=by_index)
    if marks.empty:
        # Plotly draws no axis for a subplot without a trace, and the strip's axis is the
        # one that carries the times: an invisible trace keeps it.
        figure.add_trace(
            go.Scatter(
                x=placed["x"],
                y=[EVENT_KINDS[0]] * len(placed),
                mode="markers",
                marker={"opacity": 0},
                hoverinfo="skip",
                showlegend=False,
            ),
            row=2,
            col=1,
        )
        figure.update_yaxes(showticklabels=False, showgrid=False, row=2, col=1)
    figure.update_yaxes(title_text=f"{measure} (mean over queries)", row=1, col=1)
    figure.update_yaxes(
        categoryorder="array",
        categoryarray=list(EVENT_KINDS),
        fixedrange=True,
        tickfont={"size": 10},
        row=2,
        col=1,
    )
    figure.update_xaxes(
        title_text="run (in start order)" if by_index else "run start (UTC)", row=2, col=1
    )
    if by_index:
        figure.update_xaxes(tickformat="d", row=2, col=1)
    else:
        _widen_one_moment(figure, [*placed["x"], *marks["time"]])
    return _layout(figure, title=f"{measure} per run", y_title="", height=540)


def _add_events(
    figure: go.Figure, marks: pd.DataFrame, points: pd.DataFrame, *, by_index: bool
) -> None:
    """Per kind: a vertical line through the measure at each event's moment (on an overlay
    axis from 0 to 1, so that it spans the plot whatever the measure's range), and a
    marker on the strip below carrying the details."""
    if marks.empty:
        return
    figure.update_layout(
        yaxis3={
            "overlaying": "y",
            "range": [0, 1],
            "visible": False,
            "fixedrange": True,
        }
    )
    for kind, group in marks.groupby("kind", sort=False):
        name = str(kind)
        shade = EVENT_COLOURS.get(name, NEUTRAL)
        where = _event_positions(group["time"], points) if by_index else list(group["time"])
        lines_x: list[object] = []
        lines_y: list[float | None] = []
        for x in where:
            lines_x += [x, x, None]
            lines_y += [0.0, 1.0, None]
        figure.add_trace(
            go.Scatter(
                x=lines_x,
                y=lines_y,
                mode="lines",
                line={"color": shade, "width": 1, "dash": "dot"},
                xaxis="x",
                yaxis="y3",
                name=f"event line: {name}",
                legendgroup=f"event: {name}",
                showlegend=False,
                hoverinfo="skip",
            )
        )
        stamps = pd.to_datetime(group["time"]).dt.strftime("%Y-%m-%d %H:%M:%S")
        figure.add_trace(
            go.Scatter(
                x=where,
                y=[name] * len(group),
                mode="markers",
                marker={"symbol": "triangle-down", "size": MARKER_SIZE + 2, "color": shade},
                name=f"event: {name}",
                legendgroup=f"event: {name}",
                customdata=np.column_stack([group["n"].to_numpy(), stamps.to_numpy()]),
                text=group["details"],
                hovertemplate="%{customdata[1]} UTC: %{customdata[0]} "
                + name
                + " event(s)<br>%{text}<extra></extra>",
            ),
            row=2,
            col=1,
        )


_METHOD_DASHES = ("solid", "dot", "dash", "dashdot", "longdash")


def drift_chart(
    checks: pd.DataFrame, *, value: str, colours: Mapping[str, str] | None = None
) -> go.Figure:
    """``value`` (statistic or p_value) of every check over time, one line per stream,
    subject and method in the page's colour for the stream and subject (``colours``, keyed
    ``stream / subject``; methods told apart by the line's dash), checks
    that drift as red crosses, faceted: one subplot per stream, and per method within a
    stream for statistics (methods' statistics have different units: Page-Hinkley's
    cumulative sum is not an MMD), each with its own axis. p-values are drawn on log axes
    with each stream's significance threshold as a red reference line."""
    subjects = checks["subject"].fillna("-")
    frame = checks.assign(subject=subjects, series=checks["stream"] + " / " + subjects)
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
    palette = _colours_for(frame["series"], colours)
    shown = ".2e" if value == "p_value" else ".4g"
    # A line joins checks of one method only: two methods' p-values on one stream and
    # subject read as one detector's trend. The stream's colour stays; the method's dash
    # tells them apart.
    methods_of: dict[str, list[str]] = {
        str(series): sorted(set(group)) for series, group in frame.groupby("series")["method"]
    }
    for (series, method, facet), unsorted in frame.groupby(
        ["series", "method", "facet"], sort=True
    ):
        row = facets.index(facet) + 1
        methods = methods_of[str(series)]
        name = str(series) if len(methods) == 1 else f"{series} ({method})"
        colour = palette[str(series)]
        dash = _METHOD_DASHES[methods.index(method) % len(_METHOD_DASHES)]
        group = unsorted.sort_values("created_at")
        figure.add_trace(
            go.Scatter(
                x=group["created_at"],
                y=group[value],
                mode="lines+markers" if len(group) <= _MARKED_POINTS else "lines",
                name=name,
                legendgroup=name,
                showlegend=not any(t.name == name for t in figure.data),
                line={"color": colour, "width": 1.5, "dash": dash},
                marker={"size": MARKER_SIZE - 2, "symbol": _symbol_of(str(series), palette)},
                customdata=group[["check_id"]].to_numpy(),
                text=group["method"] + ": " + group["finding"],
                hovertemplate=f"{plot_text(str(name))}<br>%{{text}}<br>%{{y:{shown}}}"
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
                    marker={"symbol": "x", "size": MARKER_SIZE + 2, "color": BAD},
                    name=f"drift {name}",
                    legendgroup=name,
                    showlegend=False,
                    hovertemplate=f"{plot_text(str(name))}: drift<br>%{{y:{shown}}}<extra></extra>",
                ),
                row=row,
                col=1,
            )
    if value == "p_value":
        figure.update_yaxes(type="log", dtick=1, exponentformat="power", title_text="p (log)")
        first, last = (
            pd.Timestamp(frame["created_at"].min()),
            pd.Timestamp(frame["created_at"].max()),
        )
        if first == last:  # one moment: the line spans the day either side the axis shows
            first, last = first - pd.Timedelta(days=1), last + pd.Timedelta(days=1)
        span = [first, last]
        for position, (stream, _) in enumerate(facets, start=1):
            limits = frame.loc[frame["stream"] == stream, "threshold"].dropna().unique()
            if len(limits) != 1 or not 0 < float(limits[0]) < 1:
                continue
            # A trace, not a shape: on a log axis it sits at the threshold's own value.
            figure.add_trace(
                go.Scatter(
                    x=span,
                    y=[float(limits[0])] * 2,
                    mode="lines",
                    line={"color": BAD, "width": 1, "dash": "dash"},
                    name=f"threshold {stream}",
                    showlegend=False,
                    hovertemplate=f"{stream}: drift below p {float(limits[0]):g}<extra></extra>",
                ),
                row=position,
                col=1,
            )
    figure.update_annotations(font_size=12)
    _widen_one_moment(figure, frame["created_at"])
    height = 190 * max(1, len(facets)) + 110
    title = "p-value per check" if value == "p_value" else "statistic per check"
    return _layout(figure, title=title, y_title="", height=height)


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


def log_axis(values: Iterable[float]) -> dict[str, Any]:
    """Settings of a log axis over ``values`` (latencies, say) whose every tick reads as its
    whole number: 20, 50, 100, 200 ms. Plotly's own labels the ticks between powers of ten
    by their first digit alone, so that 20-45 ms read "2-4"; across a decade or more the
    ticks are 1, 2 and 5 of each decade (every digit's would overlap), within one Plotly's
    evenly spaced ones."""
    data = np.asarray(list(values), dtype=float)
    positive = data[np.isfinite(data) & (data > 0)]
    wide = positive.size > 0 and float(np.log10(positive.max() / positive.min())) >= 1.0
    return {"type": "log", "tickformat": ",~g", **({"dtick": "D2"} if wide else {})}


def lines_chart(
    frame: pd.DataFrame,
    *,
    x: str,
    columns: Sequence[str],
    title: str,
    y_title: str,
    by: str | None = None,
    bars: bool = False,
    names: Mapping[str, str] | None = None,
    colours: Mapping[str, str] | None = None,
    dashes: Mapping[str, str] | None = None,
    log_y: bool = False,
    references: Sequence[tuple[float, str]] = (),
    x_title: str = "",
) -> go.Figure:
    """One line (or bar series) per column, or per value of ``by`` for one column; every
    series is of the unit ``y_title`` names.

    ``names``: a series' name for people by column (``latency_p50`` -> ``replay p50``);
    ``colours`` and ``dashes``: the page's colour and line dash by series name; ``log_y``:
    a log axis (latencies); ``references``: (value, label) drawn as red dashed lines (alert
    thresholds).
    """
    figure = go.Figure()
    if by is not None:
        groups = [(str(name), group, columns[0]) for name, group in frame.groupby(by, sort=True)]
    else:
        groups = [((names or {}).get(column, column), frame, column) for column in columns]
    palette = _colours_for([name for name, _, _ in groups], colours)
    for name, group, column in groups:
        trace = (
            go.Bar(x=group[x], y=group[column], name=name, marker={"color": palette[name]})
            if bars
            else go.Scatter(
                x=group[x],
                y=group[column],
                mode="lines+markers",
                name=name,
                line={"color": palette[name], "dash": (dashes or {}).get(name, "solid")},
                marker={"size": MARKER_SIZE - 2, "symbol": _symbol_of(name, palette)},
            )
        )
        figure.add_trace(trace)
    for level, label in references:
        figure.add_hline(
            y=level,
            line={"color": BAD, "width": 1, "dash": "dash"},
            annotation_text=label,
            annotation_font={"size": 10, "color": BAD},
        )
    if log_y:
        figure.update_yaxes(**log_axis(frame[list(columns)].to_numpy(dtype=float).ravel()))
    if x_title:
        figure.update_xaxes(title_text=x_title)
    if not frame.empty and frame[x].map(type).eq(str).all():
        # Labels such as a window's "2026-11-19" are names, not dates to spread over time.
        figure.update_xaxes(type="category")
    return _layout(figure, title=title, y_title=y_title, height=360)


JUDGED_SOURCE_LINES: Mapping[str, tuple[str, str]] = {
    "assessor": ("replayed", "solid"),
    "assessor_logged": ("logged by production", "dash"),
}
"""How each source of a judged figure is named and drawn (``judged_chart``)."""


def judged_chart(
    points: pd.DataFrame, *, measure: str, colours: Mapping[str, str] | None = None
) -> go.Figure:
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
    band_alpha = _band_alpha(points.groupby(keys).ngroups)
    grouped = [
        (" / ".join(str(part) for part in (key if isinstance(key, tuple) else (key,))), series)
        for key, series in points.groupby(keys, sort=True)
    ]
    palette = _colours_for([name for name, _ in grouped], colours)
    for name, series in grouped:
        line = palette[name]
        for source, unsorted in series.groupby("source", sort=False):
            label, dash = JUDGED_SOURCE_LINES.get(str(source), (str(source), "dot"))
            group = unsorted.sort_values("window_start")
            banded = group.dropna(subset=["low", "high"])
            if len(banded) > 1:
                figure.add_trace(
                    _interval_band(
                        banded["window_start"],
                        banded["low"],
                        banded["high"],
                        line=line,
                        alpha=band_alpha,
                        name=f"{name} {label}",
                        group=name,
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
                    marker={"size": MARKER_SIZE - 2, "symbol": _symbol_of(name, palette)},
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
                    hovertemplate=f"{plot_text(str(name))}, {label}<br>window"
                    " %{customdata[2]}: %{y:.3f}"
                    " [%{customdata[3]:.3f}, %{customdata[4]:.3f}]<br>judged"
                    " %{customdata[5]:.1%} (%{customdata[6]}, %{customdata[7]} queries)"
                    "<br>run %{customdata[0]}<extra></extra>",
                )
            )
    _widen_one_moment(figure, points["window_start"])
    return _layout(
        figure,
        title=f"Judged {measure} over time (assessor labels)",
        y_title=f"{measure} (assessor labels)",
        height=400,
    )


def _lone_interval(
    group: pd.DataFrame, line: str, *, low: str = "low", high: str = "high"
) -> dict[str, object] | None:
    """The interval (columns ``low`` and ``high``) of a series of one point as an error bar
    (a band needs two points)."""
    if len(group) != 1 or group[[low, high]].isna().any(axis=None):
        return None
    return {
        "type": "data",
        "array": list(group[high] - group["value"]),
        "arrayminus": list(group["value"] - group[low]),
        "color": line,
        "thickness": 1,
    }


def _widen_one_moment(figure: go.Figure, moments: Iterable[object]) -> None:
    """A day either side of the only moment ``moments`` hold: Plotly would otherwise span a
    few milliseconds around it and label the axis with them, or not at all."""
    distinct = pd.to_datetime(pd.Series(list(moments), dtype=object)).dropna().unique()
    if len(distinct) == 1:
        moment = pd.Timestamp(distinct[0])
        day = pd.Timedelta(days=1)
        figure.update_xaxes(range=[moment - day, moment + day])


def measurement_unit(name: str, values: pd.Series) -> str:
    """``count`` for an audit measurement that counts (documents, findings, ...) or exceeds
    1, else ``share`` (recalls, coverages, similarities: 0 to 1)."""
    lowered = name.lower()
    if any(part in lowered for part in _COUNT_NAMES) or bool((values.abs() > 1).any()):
        return "count"
    return "share"


def measurements_chart(
    history: pd.DataFrame, *, title: str, colours: Mapping[str, str] | None = None
) -> go.Figure:
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
    palette = _colours_for(units, colours)
    for name, unsorted in history.groupby("name", sort=True):
        label = str(name)
        group = unsorted.sort_values("measured_at")
        figure.add_trace(
            go.Scatter(
                x=group["measured_at"],
                y=group["value"],
                mode="lines+markers",
                name=label,
                line={"color": palette[label]},
                marker={"size": MARKER_SIZE - 2, "symbol": _symbol_of(label, palette)},
            ),
            row=rows.index(units[label]) + 1,
            col=1,
        )
    for position, unit in enumerate(rows, start=1):
        axis = "share (0-1)" if unit == "share" else "count"
        figure.update_yaxes(title_text=axis, row=position, col=1)
    _widen_one_moment(figure, history["measured_at"])
    return _layout(figure, title=title, y_title="", height=260 * len(rows) + 100)


def query_history_chart(
    values: pd.DataFrame, *, measures: Sequence[str], colours: Mapping[str, str] | None = None
) -> go.Figure:
    """One query's value per run over time (``values``: run_id, started_at, retriever,
    measure, value): a small chart per measure, one line per retriever in the page's
    colour for it. Every point carries customdata (run_id, retriever)."""
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
    palette = _colours_for(values["retriever"], colours)
    for row, measure in enumerate(shown, start=1):
        of_measure = values[values["measure"] == measure]
        for retriever in sorted(palette):
            group = of_measure[of_measure["retriever"] == retriever].sort_values("started_at")
            if group.empty:
                continue
            figure.add_trace(
                go.Scatter(
                    x=group["started_at"],
                    y=group["value"],
                    mode="lines+markers" if len(group) <= _MARKED_POINTS else "lines",
                    name=retriever,
                    legendgroup=retriever,
                    showlegend=row == 1,
                    line={"color": palette[retriever], "width": 1.2},
                    marker={"size": MARKER_SIZE, "symbol": _symbol_of(retriever, palette)},
                    customdata=group[["run_id", "retriever"]].to_numpy(),
                    hovertemplate=f"{measure} %{{y:.4f}}<br>run %{{customdata[0]}}"
                    "<br>%{customdata[1]}<br>click: compare with baseline<extra></extra>",
                ),
                row=row,
                col=1,
            )
        figure.update_yaxes(range=[-0.05, 1.05], row=row, col=1)
    _widen_one_moment(figure, values["started_at"])
    return _layout(
        figure,
        title="This query's values per run",
        y_title="",
        height=170 * max(1, len(shown)) + 120,
    )


def relevant_ranks_chart(
    ranks: pd.DataFrame, *, k: int, colours: Mapping[str, str] | None = None
) -> go.Figure:
    """Where each relevant document of a query landed per run (``ranks``: run_id,
    started_at, retriever, doc_id, relevance, rank; rank missing: not retrieved, drawn
    below rank ``k``), one colour per document (``colours``, keyed by doc id)."""
    figure = go.Figure()
    missing = k + 1
    palette = _colours_for(ranks["doc_id"], colours)
    for doc_id, unsorted in ranks.groupby("doc_id", sort=True):
        name = str(doc_id)
        group = unsorted.sort_values("started_at")
        figure.add_trace(
            go.Scatter(
                x=group["started_at"],
                y=group["rank"].fillna(missing),
                mode="markers",
                name=f"{name} (grade {int(group['relevance'].max())})",
                marker={
                    "size": MARKER_SIZE - 2,
                    "color": palette[name],
                    "symbol": _symbol_of(name, palette),
                },
                customdata=group[["run_id", "retriever"]].to_numpy(),
                hovertemplate=f"{plot_text(name)}<br>rank %{{y}}<br>run %{{customdata[0]}}"
                "<br>%{customdata[1]}<extra></extra>",
            )
        )
    figure.update_yaxes(
        autorange="reversed",
        tickvals=[1, *range(5, k + 1, 5), missing],
        ticktext=["1", *(str(v) for v in range(5, k + 1, 5)), "not retrieved"],
    )
    _widen_one_moment(figure, ranks["started_at"])
    return _layout(figure, title="Rank of each relevant document per run", y_title="rank (1 = top)")


def answers_chart(series: pd.DataFrame, *, metric: str) -> go.Figure:
    """One metric's mean per scoring, one line per method, method version and judge
    (versions read on different scales, so each has its own line), on the day the answers
    were given (``answered_on``: the traffic day where the store knows it) when the frame
    has it, else when they were scored."""
    shown = series[series["metric"] == metric].copy()
    version = shown.get("method_version", "-")
    shown["how"] = shown["method"] + " " + version + " / " + shown["judge_model"]
    on_day = "answered_on" in shown.columns
    figure = lines_chart(
        shown,
        x="answered_on" if on_day else "started_at",
        columns=["mean"],
        by="how",
        title=f"{metric} over time, by method and judge",
        y_title=f"mean {metric} (0-1)",
        x_title="day answered (traffic day; else day scored)" if on_day else "scored at",
    )
    figure.update_yaxes(range=[0, 1.05])
    if on_day and not shown.empty:
        days = pd.to_datetime(shown["answered_on"])
        one_day = pd.Timedelta(days=1)
        figure.update_xaxes(
            tickformat="%Y-%m-%d",
            dtick=86_400_000,
            range=[days.min() - one_day, days.max() + one_day],
        )
    elif not shown.empty:
        _widen_one_moment(figure, shown["started_at"])
    return figure


def sparkline_svg(
    values: Sequence[float],
    *,
    low: float,
    high: float,
    stroke: str,
    width: int = 120,
    height: int = 28,
) -> str:
    """A sparkline of ``values`` as SVG markup, on the fixed scale ``low`` to ``high`` (one
    scale for every series of a measure, so that a wobble looks like one), in ``stroke``."""
    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    span = (high - low) or 1.0
    pad = 2.0
    if not finite:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
            f' viewBox="0 0 {width} {height}"></svg>'
        )
    step = (width - 2 * pad) / max(1, len(finite) - 1)
    points = " ".join(
        f"{pad + index * step:.1f},"
        f"{pad + (height - 2 * pad) * (1 - (min(max(v, low), high) - low) / span):.1f}"
        for index, v in enumerate(finite)
    )
    last_x, last_y = points.split(" ")[-1].split(",")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}">'
        f'<line x1="0" y1="{height - 1}" x2="{width}" y2="{height - 1}" stroke="#dddddd"/>'
        f'<polyline fill="none" stroke="{stroke}" stroke-width="1.6" points="{points}"/>'
        f'<circle cx="{last_x}" cy="{last_y}" r="2.4" fill="{stroke}"/></svg>'
    )


def sparkline_url(values: Sequence[float], *, low: float, high: float, stroke: str) -> str:
    """``sparkline_svg`` as a data URL, for an ``st.column_config.ImageColumn`` cell."""
    svg = sparkline_svg(values, low=low, high=high, stroke=stroke)
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
