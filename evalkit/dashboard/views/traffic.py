"""Traffic: volume, latency percentiles, low-confidence share and churn per window and tenant,
and the precision an LLM assessor's labels gave the windows."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import streamlit as st

from evalkit.alerts.configured import alerts_config
from evalkit.config import load_settings
from evalkit.dashboard import charts, ui
from evalkit.dashboard.charts import JUDGED_SOURCE_LINES
from evalkit.dashboard.loaders.traffic import TrafficData
from evalkit.errors import EvalkitError

DEFAULT_WINDOWS = 30
ALL_WINDOWS = 10_000
# Replay latency (evalkit's replay against the live retriever) and production latency (what
# the logs recorded) are different measurements: never one name. (Comments, not strings:
# Streamlit's magic draws a bare string of a page script.)
LATENCY_NAMES = {
    "latency_p50": "replay latency p50",
    "latency_p95": "replay latency p95",
    "latency_p99": "replay latency p99",
    "logged_latency_p50": "production latency p50",
    "logged_latency_p95": "production latency p95",
    "logged_latency_p99": "production latency p99",
}
# The name of each per-window series, the same in every chart and colour mapping.
SERIES_NAMES = {
    **LATENCY_NAMES,
    "volume": "logged queries",
    "n_distinct": "distinct queries",
    "n_replayed": "replayed queries",
    "low_confidence_share": "low-confidence share",
    "empty_share": "empty share",
    "churn": "churn",
}


def _low_confidence_thresholds() -> tuple[tuple[float, str], ...]:
    """The thresholds of the configured ``low_confidence_rate`` alert rules, to draw as
    reference lines; none when the configuration names none (or cannot be read)."""
    try:
        config = alerts_config(load_settings())
    except EvalkitError:
        return ()
    return tuple(
        (float(getattr(rule.params, "threshold", 0.0)), f"alert {rule.name}")
        for rule in config.rules
        if rule.config.kind == "low_confidence_rate" and rule.config.enabled
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
    cards = st.columns(5)
    cards[0].metric(f"volume ({latest['window_label']})", int(latest["volume"]))
    cards[1].metric("replay latency p95 (ms)", ui.fmt(latest["latency_p95"], 1))
    cards[2].metric("production latency p95 (ms)", ui.fmt(latest["logged_latency_p95"], 1))
    cards[3].metric("low-confidence share", ui.fmt(latest["low_confidence_share"], 3))
    cards[4].metric("churn", ui.fmt(latest["churn"], 3))
    colours = charts.series_colours(SERIES_NAMES.values())
    thresholds = _low_confidence_thresholds()
    charts_of_windows = (
        {
            "columns": ["volume", "n_distinct", "n_replayed"],
            "title": "Volume per window",
            "y_title": "queries",
            "bars": True,
        },
        {
            "columns": list(LATENCY_NAMES),
            "title": "Replay and production latency percentiles",
            "y_title": "latency (ms, log scale)",
            "log_y": True,
            "dashes": {name: "dash" for name in LATENCY_NAMES.values() if "production" in name},
        },
        {
            "columns": ["low_confidence_share", "empty_share"],
            "title": "Low-confidence and empty shares",
            "y_title": "share of answered queries (0-1)",
            "references": thresholds,
        },
        {
            "columns": ["churn"],
            "title": "Churn against the logged results (1 - mean overlap@k)",
            "y_title": "churn (0-1)",
        },
    )
    for pair in (charts_of_windows[:2], charts_of_windows[2:]):
        for container, options in zip(st.columns(2), pair, strict=True):
            container.plotly_chart(
                ui.figure(
                    "lines",
                    windows,
                    x="window_label",
                    names=SERIES_NAMES,
                    colours=colours,
                    **options,
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
                y_title="share of answered queries (0-1)",
                colours=charts.series_colours(data.tenants["tenant"]),
                references=thresholds,
            )
        )
    labels = list(windows["window_label"].astype(str))
    window = ui.choose("Window", labels, param="window", default=labels[-1])
    tenants = data.tenants[data.tenants["window_label"] == window]
    volume = data.volume[data.volume["window_label"] == window]
    merged = tenants.merge(volume, on=["window_label", "tenant"], how="outer")
    ui.table(
        merged,
        digits=3,
        labels={
            "latency_p50": "Production latency p50",
            "latency_p95": "Production latency p95",
            "latency_p99": "Production latency p99",
            "records": "Logged records",
        },
    )
    st.caption(
        "Latency per tenant is production latency, as the logs recorded it; replay latency "
        "is per window above."
    )
    st.subheader("Windows")
    table = windows.sort_values("window_start", ascending=False)
    table.insert(1, "open", [ui.page_url("traffic", window=w) for w in table["window_label"]])
    ui.table(
        ui.paged(table, key="traffic-windows", noun="windows shown", one="window shown"),
        digits=3,
        columns={"open": ui.link_column("Open", help="This window per tenant")},
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
