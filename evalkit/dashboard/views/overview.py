"""Overview: per goldset x retriever, the latest status and figures, open alerts, job runs."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from evalkit.clock import utc_now
from evalkit.dashboard import ui
from evalkit.dashboard.loaders.overview import (
    HISTORY_POINTS,
    STATUS_ORDER,
    OverviewData,
    series_status,
)
from evalkit.dashboard.loaders.shared import AREA_HINTS

STATUS_BADGES = {
    "regression": ("red", ":material/trending_down:"),
    "drift": ("orange", ":material/moving:"),
    "stale": ("gray", ":material/schedule:"),
    "pass": ("green", ":material/check_circle:"),
    "no data": ("gray", ":material/help:"),
}
# Series that regressed or drift, shown as cards above the ranking, worst first.
ATTENTION_CARDS = 4
# Reasons that earn a card whatever the status: a series that is "no data" now (its latest
# run is at another k) still shows the drop its newest measured run had.
FLAGGING = ("regression:", "drift:")


def _filtered(series: pd.DataFrame) -> pd.DataFrame:
    """The series the goldset, retriever and status filters keep (all when none is set)."""
    columns = st.columns(3)
    kept = series
    for column, (label, field) in zip(
        columns,
        (("Goldsets", "goldset_name"), ("Retrievers", "retriever"), ("Statuses", "status")),
        strict=True,
    ):
        options = (
            [s for s in STATUS_ORDER if s in set(series[field])]
            if field == "status"
            else sorted(series[field].dropna().unique())
        )
        chosen = column.multiselect(label, options, placeholder="all", key=f"filter-{field}")
        if chosen:
            kept = kept[kept[field].isin(chosen)]
    return kept


def _attention(series: pd.DataFrame, *, measure: str) -> None:
    """Cards for the worst ranked series that regressed or drift (also when the latest run
    has no data on the measure), with a link to Compare."""
    flagged = series[series["flagged"]].head(ATTENTION_CARDS)
    if flagged.empty:
        return
    columns = st.columns(min(ATTENTION_CARDS, len(flagged)) if len(flagged) > 1 else 2)
    for column, row in zip(columns, flagged.to_dict("records"), strict=False):
        colour, icon = STATUS_BADGES[row["status"]]
        with column.container(border=True):
            st.badge(row["status"], color=colour, icon=icon)
            value, delta = row.get("value"), row.get("delta")
            st.metric(
                f"{row['goldset_name']} x {row['retriever']}",
                ui.fmt(value),
                delta=None if delta is None or pd.isna(delta) else f"{delta:+.4f}",
                delta_arrow="off" if not delta else "auto",
                help=f"{measure} of run {row['measured_run']}",
                chart_data=row["history"] or None,
                chart_type="line",
            )
            st.caption(row["why"])
            if isinstance(row.get("baseline_run"), str) and row["baseline_run"] != row.get(
                "measured_run"
            ):
                st.page_link(
                    "views/compare.py",
                    label="Compare with baseline",
                    icon=":material/compare_arrows:",
                    query_params={
                        "goldset": row["goldset_name"],
                        "baseline": row["baseline_run"],
                        "candidate": row["measured_run"],
                        "measure": measure,
                    },
                )


def render(page: ui.PageContext) -> None:
    """Draw the overview."""
    measures = page.load("measures")
    if not measures:
        st.info(
            "Goldsets are stored but no run has finished yet: "
            "`evalkit run --goldset NAME --collection C` evaluates one.",
            icon=":material/info:",
        )
        st.dataframe(page.load("goldsets").versions, hide_index=True)
        return
    left, right = st.columns(2)
    measure = ui.choose("Measure", measures, param="measure", default="ndcg@10", container=left)
    stale_days = right.number_input(
        "Stale after (days)",
        min_value=1,
        max_value=365,
        value=7,
        step=1,
        help="A series whose latest finished run is older than this is stale.",
    )
    data: OverviewData = page.load("overview", measure=measure)
    now = utc_now()
    statuses, reasons, flagged = [], [], []
    for row in data.series.to_dict("records"):
        status, why = series_status(
            row, measure=measure, now=now, stale_after=timedelta(days=int(stale_days))
        )
        statuses.append(status)
        reasons.append("; ".join(why))
        flagged.append(any(reason.startswith(FLAGGING) for reason in why))
    series = data.series.assign(status=statuses, why=reasons, flagged=flagged)
    counts = series["status"].value_counts()
    summary = st.columns(len(STATUS_ORDER))
    for column, status in zip(summary, STATUS_ORDER, strict=True):
        column.metric(f"{status}", int(counts.get(status, 0)))
    shown = _filtered(series)
    st.subheader(f"Series ranked by change of {measure} since the baseline")
    st.caption(
        "Largest drop first. Change is against the baseline, the series' oldest complete "
        "run that stored the measure. The status applies the gate's decision rule (alpha "
        "0.05, min effect 0.01) to a paired t-interval of the latest run against the "
        "baseline (open Compare for the bootstrap and permutation figures of `evalkit "
        "compare`), then the series' drift "
        "checks and age. A series whose latest run stored no value of the measure (run at "
        "another k or with other measures) is **no data**: its figures are those of "
        "`measured_run`, the newest run that stored it, and `why` says what that run showed."
    )
    _attention(shown, measure=measure)
    table = shown.assign(
        series=shown["goldset_name"] + " x " + shown["retriever"],
        compare=[
            ui.page_url(
                "compare",
                goldset=row.goldset_name,
                measure=measure,
                baseline=row.baseline_run,
                candidate=row.measured_run,
            )
            if isinstance(row.baseline_run, str)
            and isinstance(row.measured_run, str)
            and row.baseline_run != row.measured_run
            else None
            for row in shown.itertuples()
        ],
        quality=[
            ui.page_url("quality", goldset=row.goldset_name, measure=measure)
            for row in shown.itertuples()
        ],
    )
    page = ui.paged(table, key="overview-page", noun=f"series (of {len(series):,})")
    st.dataframe(
        page[
            [
                "series",
                "status",
                "history",
                "value",
                "measured_run",
                "delta",
                "ci_low",
                "ci_high",
                "p_adjusted",
                "baseline_value",
                "compare",
                "quality",
                "why",
                "decision",
                "n_runs",
                "latest_run",
                "latest_started",
                "baseline_run",
                "goldset_name",
                "retriever",
            ]
        ],
        hide_index=True,
        column_config={
            **ui.number_columns(page),
            "history": st.column_config.LineChartColumn(
                f"{measure}, last {HISTORY_POINTS} runs", width="medium"
            ),
            "compare": ui.link_column("compare", help="Latest run against the baseline"),
            "quality": ui.link_column("quality", help="The series over time"),
            "why": st.column_config.TextColumn("why", width="large"),
            "measured_run": st.column_config.TextColumn(
                "measured_run",
                help=f"The run value, delta and test are of: the newest that stored {measure} "
                "(the latest run, unless that one is no data)",
            ),
        },
        height=min(38 + 35 * len(page), 760),
    )
    st.subheader("Latest figures and change since baseline")
    if not data.figures.empty:
        wide = data.figures.pivot_table(
            index=["goldset_name", "retriever"], columns="measure", values=["latest", "delta"]
        )
        wide.columns = [f"{measure_name} {kind}" for kind, measure_name in wide.columns]
        ordered = sorted(wide.columns, key=lambda name: (name.split(" ")[0], name))
        ranked = shown[["goldset_name", "retriever"]].merge(
            wide[ordered].reset_index(), on=["goldset_name", "retriever"]
        )
        ui.table(ranked)
    left, right = st.columns(2)
    with left:
        st.subheader("Open alerts")
        if ui.has_rows(data.open_alerts, area="alerts", empty="No alert is firing."):
            st.dataframe(data.open_alerts, hide_index=True)
    with right:
        st.subheader("Last job runs")
        if ui.has_rows(data.jobs, area="jobs", empty=f"No job has run yet: {AREA_HINTS['jobs']}"):
            ui.table(data.jobs, digits=1)


ui.run_page("Overview", render)
