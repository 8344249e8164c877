"""Slices: where a traffic window's quality fails, and what its corpus cannot answer
(``evalkit traffic slices``; docs/slices.md)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from evalkit.dashboard import charts, ui
from evalkit.dashboard.loaders.slices import SlicesData
from evalkit.drift.slices import SliceChange
from evalkit.records.slices import SliceFigures


def _interval(value: float | None, low: float | None, high: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if low is None or high is None else f"{value:.3f} [{low:.3f}, {high:.3f}]"


def _hover(figure: SliceFigures, change: SliceChange | None) -> str:
    precision = figure.precision
    lines = [
        f"share {_interval(figure.share, figure.share_low, figure.share_high)}",
        "precision -"
        if precision is None
        else f"precision {_interval(precision.value, precision.low, precision.high)}"
        f" ({precision.source})",
        "out of scope "
        + _interval(figure.out_of_scope_share, figure.out_of_scope_low, figure.out_of_scope_high),
    ]
    if change is not None:
        lines.append(f"share q {change.share_q:.2g}")
        if change.drop_q is not None:
            lines.append(f"drop q {change.drop_q:.2g}")
    return "<br>".join(lines)


def _treemap(data: SlicesData) -> go.Figure:
    """Area: the slice's queries; colour: its precision change against the baseline; a
    slice whose change is significant is marked with a star."""
    shown = [f for f in data.figures if f.slice != "all"]
    kinds = sorted({f.kind for f in shown})
    labels, parents = list(kinds), [""] * len(kinds)
    values, colours, hover = [0] * len(kinds), [0.0] * len(kinds), [""] * len(kinds)
    for figure in shown:
        change = data.change(figure.slice)
        flagged = change is not None and (change.grew or change.dropped)
        delta = (
            0.0
            if change is None or change.precision is None or change.baseline_precision is None
            else change.precision - change.baseline_precision
        )
        labels.append(("★ " if flagged else "") + figure.label)
        parents.append(figure.kind)
        values.append(figure.n_queries)
        colours.append(delta)
        hover.append(_hover(figure, change))
    chart = go.Figure(
        go.Treemap(
            labels=[charts.plot_text(label) for label in labels],
            parents=parents,
            values=values,
            branchvalues="remainder",
            marker={"colors": colours, "colorscale": "RdBu", "cmid": 0.0, "showscale": True},
            hovertext=hover,
            hoverinfo="label+value+text",
        )
    )
    chart.update_layout(margin={"t": 10, "l": 0, "r": 0, "b": 0}, height=420)
    return charts.escaped(chart)


def _table(data: SlicesData) -> pd.DataFrame:
    rows = []
    for figure in data.figures:
        change = data.change(figure.slice)
        precision = figure.precision
        rows.append(
            {
                "slice": figure.label,
                "queries": figure.n_queries,
                "share": _interval(figure.share, figure.share_low, figure.share_high),
                "precision": "-"
                if precision is None
                else _interval(precision.value, precision.low, precision.high),
                "source": None if precision is None else precision.source,
                "out of scope": _interval(
                    figure.out_of_scope_share, figure.out_of_scope_low, figure.out_of_scope_high
                ),
                "low confidence": figure.low_confidence_share,
                "change": "-"
                if change is None
                else "; ".join(
                    mark
                    for mark, on in (
                        (f"grew from {change.baseline_share:.1%}", change.grew),
                        (f"shrank from {change.baseline_share:.1%}", change.shrank),
                        ("precision dropped", change.dropped),
                        ("content gap", figure.slice in data.gaps),
                    )
                    if on
                )
                or "-",
            }
        )
    return pd.DataFrame(rows)


def _trend(series: pd.DataFrame) -> go.Figure:
    chart = go.Figure()
    for column, name in (
        ("share", "share"),
        ("out_of_scope_share", "out of scope"),
        ("precision", "precision"),
    ):
        if series[column].notna().any():
            chart.add_trace(
                go.Scatter(
                    x=series["window_label"], y=series[column], name=name, mode="lines+markers"
                )
            )
    chart.update_layout(height=300, margin={"t": 10}, yaxis={"range": [0, 1]})
    return charts.escaped(chart)


def render(page: ui.PageContext) -> None:
    """Draw a window's slices."""
    listed: SlicesData = page.load("slices")
    if not listed.windows:
        st.info(
            "No window is sliced yet: `evalkit traffic slices --window W` cuts a replayed "
            "window into topics, tenants and tags (docs/slices.md).",
            icon=":material/info:",
        )
        return
    window = ui.choose("Window", list(listed.windows), param="window")
    data: SlicesData = page.load("slices", window=window)
    if not data.figures:
        st.info(f"Window {window} has no replayed query to slice.", icon=":material/info:")
        return
    whole = data.figures[0]
    slice_names = [f.slice for f in data.figures if f.slice != "all"]
    cards = st.columns(4)
    cards[0].metric("queries", whole.n_queries)
    cards[1].metric(
        "out of scope",
        "-" if whole.out_of_scope_share is None else f"{whole.out_of_scope_share:.1%}",
        help=_interval(whole.out_of_scope_share, whole.out_of_scope_low, whole.out_of_scope_high),
    )
    cards[2].metric("content gaps", len(data.gaps))
    cards[3].metric(
        "slices flagged",
        sum(c.grew or c.dropped for c in data.changes),
        help=f"{len(data.changes)} slices tested against {data.baseline_window}, "
        "Benjamini-Hochberg at 0.05",
    )
    st.caption(
        f"Replay run `{data.run_id}`; baseline window {data.baseline_window or '-'}; "
        + (
            "precision -"
            if whole.precision is None
            else f"{whole.precision.measure} from {whole.precision.source} "
            f"({whole.precision.labeller})"
        )
    )
    ui.plot(_treemap(data))
    ui.table(_table(data), digits=3)
    for gap in (f for f in data.figures if f.slice in data.gaps):
        with st.container(border=True):
            st.markdown(f"**Content gap: {ui.md(gap.label)}**")
            for subject in gap.details.get("emerging", []):
                st.markdown(
                    f"- {ui.md(', '.join(subject['terms'][:5]))} ({subject['share']:.0%}): "
                    + "; ".join(ui.md(query) for query in subject["central_queries"][:2])
                )
    if not slice_names:
        return
    chosen = ui.choose("Slice", slice_names, param="slice", where=f" in window {window}")
    detail: SlicesData = page.load("slices", window=window, slice_name=chosen)
    figure = next(f for f in data.figures if f.slice == chosen)
    st.subheader(ui.md(figure.label))
    central = figure.details.get("window_central_queries") or figure.details.get("central_queries")
    if central:
        st.markdown("\n".join(f"- {ui.md(query)}" for query in central))
    if detail.series is not None and not detail.series.empty:
        ui.plot(_trend(detail.series))


ui.run_page("Slices", render, areas=("traffic", "slices"))
