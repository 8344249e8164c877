"""Traffic: volume, latency percentiles, low-confidence share and churn per window and tenant,
and the precision an LLM assessor's labels gave the windows."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import streamlit as st

from evalkit.dashboard import ui
from evalkit.dashboard.charts import JUDGED_SOURCE_LINES
from evalkit.dashboard.loaders.traffic import TrafficData

DEFAULT_WINDOWS = 30
ALL_WINDOWS = 10_000
# The per-window charts, two a row: columns of the window summaries, title, unit, and
# whether the series are bars. (A string under the assignment would be drawn: Streamlit's
# magic writes every bare string of a page script.)
WINDOW_CHARTS: tuple[tuple[list[str], str, str, bool], ...] = (
    (["volume", "n_distinct", "n_replayed"], "Volume per window", "queries", True),
    (
        [
            "latency_p50",
            "latency_p95",
            "latency_p99",
            "logged_latency_p50",
            "logged_latency_p95",
            "logged_latency_p99",
        ],
        "Latency percentiles (replay and logged)",
        "ms",
        False,
    ),
    (
        ["low_confidence_share", "empty_share"],
        "Low-confidence and empty shares",
        "share of answered queries",
        False,
    ),
    (["churn"], "Churn against the logged results (1 - mean overlap@k)", "churn", False),
)
NOT_JUDGED = (
    "No traffic window shown here was judged yet: `evalkit traffic replay --judge --corpus C` "
    "(or `evalkit judge traffic RUN --corpus C`) labels a window's top-k with the [judge] LLM "
    "assessor."
)
NOT_MEASURED = "agreement not measured (`evalkit judge agreement --goldset NAME` measures it)"


def render(page: ui.PageContext) -> None:
    """Draw the replayed traffic windows."""
    shown = int(
        st.number_input(
            "Windows shown (newest)",
            min_value=1,
            max_value=10_000,
            value=DEFAULT_WINDOWS,
            step=10,
            help="How many of the newest replayed windows the charts and tables show.",
        )
    )
    # A link to a window older than those shown loads them all, so that it opens.
    linked = ui.link_value("window") is not None
    data: TrafficData = page.load("traffic", windows=ALL_WINDOWS if linked else shown)
    windows = data.windows
    if windows.empty:
        if data.records:
            st.info(
                f"{data.records} traffic records are ingested, but no window was replayed yet: "
                "`evalkit traffic sample --window W` then `evalkit traffic replay --window W "
                "--collection C`.",
                icon=":material/info:",
            )
        else:
            ui.missing_area("traffic")
        return
    st.caption(
        f"Showing the newest {len(windows):,} of {data.total_windows:,} replayed windows"
        + ("." if len(windows) == data.total_windows else "; raise *Windows shown* for more.")
    )
    latest = windows.iloc[-1]
    cards = st.columns(4)
    cards[0].metric(f"volume ({latest['window_label']})", int(latest["volume"]))
    cards[1].metric("replay latency p95 (ms)", ui.fmt(latest["latency_p95"], 1))
    cards[2].metric("low-confidence share", ui.fmt(latest["low_confidence_share"], 3))
    cards[3].metric("churn", ui.fmt(latest["churn"], 3))
    for pair in (WINDOW_CHARTS[:2], WINDOW_CHARTS[2:]):
        for container, (columns, title, y_title, bars) in zip(st.columns(2), pair, strict=True):
            container.plotly_chart(
                ui.figure(
                    "lines",
                    windows,
                    x="window_label",
                    columns=columns,
                    title=title,
                    y_title=y_title,
                    bars=bars,
                )
            )
    _judged_precision(data.judged, data.agreements)
    st.subheader("Per tenant")
    if not data.tenants.empty:
        st.plotly_chart(
            ui.figure(
                "lines",
                data.tenants,
                x="window_label",
                columns=["low_confidence_share"],
                by="tenant",
                title="Low-confidence share per tenant",
                y_title="share",
            )
        )
    labels = list(windows["window_label"].astype(str))
    window = ui.choose("Window", labels, param="window", default=labels[-1])
    tenants = data.tenants[data.tenants["window_label"] == window]
    volume = data.volume[data.volume["window_label"] == window]
    merged = tenants.merge(volume, on=["window_label", "tenant"], how="outer")
    ui.table(merged, digits=3)
    st.subheader("Windows")
    table = windows.sort_values("window_start", ascending=False)
    table.insert(1, "open", [ui.page_url("traffic", window=w) for w in table["window_label"]])
    ui.table(
        ui.paged(table, key="traffic-windows", noun="windows shown"),
        digits=3,
        columns={"open": ui.link_column("open", help="This window per tenant")},
    )


def _judged_precision(judged: pd.DataFrame | None, agreements: Mapping[str, str]) -> None:
    """The judged precision@k of the windows shown, with its bands, and per assessor a
    caption with its agreement and the judged share; a caption when none was judged."""
    if not ui.has_rows(judged, area="judging", empty=NOT_JUDGED):
        return
    measures = sorted(set(judged["measure"].astype(str)))
    measure = (
        measures[0]
        if len(measures) == 1
        else st.selectbox(
            "Judged measure",
            measures,
            key="judged-measure",
            help="Windows judged at different depths: each depth is a measure of its own.",
        )
    )
    shown = judged[judged["measure"] == measure]
    st.plotly_chart(ui.figure("judged", shown, measure=measure))
    for caption in _judged_captions(shown, agreements):
        st.caption(caption)


def _judged_captions(judged: pd.DataFrame, agreements: Mapping[str, str]) -> list[str]:
    """Per assessor: the agreement its newest judged window's figures were computed under
    (or that none was measured), and that window's judged share per source."""
    captions = []
    for labeller, figures in judged.groupby("labeller", sort=True):
        newest = figures[figures["window_start"] == figures["window_start"].max()]
        agreement_id = next(iter(newest["agreement_id"].dropna().astype(str)), None)
        if agreement_id is None:
            agreement = NOT_MEASURED
        else:
            agreement = f"{agreements.get(agreement_id, 'agreement')} ({agreement_id})"
        shares = ", ".join(
            f"{row.judged_share:.1%} {_source_name(str(row.source))} ({row.status})"
            for row in newest.sort_values("source").itertuples()
            if pd.notna(row.judged_share)
        )
        window = newest["window_label"].iloc[0]
        captions.append(
            f"Assessor `{labeller}`: {agreement}. Judged share in window {window}: {shares or '-'}."
        )
    return captions


def _source_name(source: str) -> str:
    return JUDGED_SOURCE_LINES.get(source, (source, ""))[0]


ui.run_page("Traffic", render, areas=("traffic",))
