"""Traffic: volume, latency percentiles, low-confidence share and churn per window and tenant."""

from __future__ import annotations

import streamlit as st

from evalkit.dashboard import ui
from evalkit.dashboard.loaders.traffic import TrafficData

DEFAULT_WINDOWS = 30
ALL_WINDOWS = 10_000
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
"""The per-window charts, two a row: columns of the window summaries, title, unit, and
whether the series are bars."""


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


ui.run_page("Traffic", render, areas=("traffic",))
