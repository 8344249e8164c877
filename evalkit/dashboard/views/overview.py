"""Overview: per goldset x retriever, the latest status and figures, open alerts, job runs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd
import streamlit as st

from evalkit.clock import utc_now
from evalkit.dashboard import causes, charts, formats, ui
from evalkit.dashboard.loaders.overview import (
    HISTORY_POINTS,
    STATUS_ORDER,
    OverviewData,
    series_status,
)
from evalkit.dashboard.loaders.shared import AREA_HINTS
from evalkit.dashboard.loaders.story import Regression
from evalkit.errors import ConfigError, InputError, NotFoundError

STATUS_BADGES = {
    "failed": ("red", ":material/error:"),
    "regression": ("red", ":material/trending_down:"),
    "drift": ("orange", ":material/moving:"),
    "stale": ("gray", ":material/schedule:"),
    "new": ("blue", ":material/fiber_new:"),
    "pass": ("green", ":material/check_circle:"),
    "no data": ("gray", ":material/help:"),
}
# Series that regressed or drift, shown as cards above the ranking, worst first.
ATTENTION_CARDS = 4
# Reasons that earn a card whatever the status: a series that is "no data" now (its latest
# run is at another k) still shows the drop its newest measured run had.
FLAGGING = ("failed:", "regression:", "drift:")
# The measure of a store where no run finished yet: what `evalkit run` stores by default.
DEFAULT_MEASURE = "ndcg@10"


def _filtered(series: pd.DataFrame) -> pd.DataFrame:
    """The series the goldset, retriever and status filters keep (all when none is set).

    Each filter follows its URL parameter (``goldset``, ``retriever``, ``status``, repeated
    once per value: a retriever's name may hold commas), so a reload or a link keeps it."""
    columns = st.columns(3)
    kept = series
    for column, (label, field, param) in zip(
        columns,
        (
            ("Goldsets", "goldset_name", "goldset"),
            ("Retrievers", "retriever", "retriever"),
            ("Statuses", "status", "status"),
        ),
        strict=True,
    ):
        options = (
            [s for s in STATUS_ORDER if s in set(series[field])]
            if field == "status"
            else sorted(series[field].dropna().unique())
        )
        linked = st.query_params.get_all(param)
        if field == "status":
            linked = [value for value in linked if value in STATUS_ORDER]
        # A linked value no series has now stays picked and matches nothing: a link to the
        # regressions must not show every series once none regresses.
        options = [*options, *(value for value in linked if value not in options)]
        chosen = column.multiselect(
            label, options, default=linked, placeholder="all", key=f"filter-{field}"
        )
        if chosen != st.query_params.get_all(param):
            st.query_params[param] = [str(value) for value in chosen]
        if chosen:
            kept = kept[kept[field].isin(chosen)]
    return kept


def _scale(series: pd.DataFrame) -> tuple[float, float]:
    """One y-scale for every sparkline of the measure: 0 to 1 (the range of every IR
    measure), widened to any value outside it, so that a wobble looks like a wobble."""
    values = [value for history in series["history"] for value in history]
    return min([0.0, *values]), max([1.0, *values])


def _regression_story(page: ui.PageContext, row: dict[str, Any], *, measure: str) -> None:
    """Under a regressed series' card: its top probable cause with its share and a link to
    the evidence, and its three worst queries, each opening its drill-down."""
    baseline, candidate = row.get("baseline_run"), row.get("measured_run")
    if not (isinstance(baseline, str) and isinstance(candidate, str)) or baseline == candidate:
        return
    try:
        found: Regression = page.load(
            "regression", baseline=baseline, candidate=candidate, measure=measure
        )
    except (ConfigError, InputError, NotFoundError) as error:
        st.caption(f"No probable cause to show: {error}")
        return
    top = found.explanation.top
    if top is None:
        st.caption("Probable cause: none found in the store.")
    else:
        st.caption("Probable cause")
        causes.cause_line(top)
    if found.worst.empty:
        return
    st.caption(f"Worst {formats.plural(len(found.worst), 'query', 'queries')}")
    for query in found.worst.itertuples():
        lost = f", lost {query.lost}" if query.lost else ""
        st.page_link(
            "views/query.py",
            label=f"{query.query_id} {query.delta:+.3f}{lost}",
            icon=":material/manage_search:",
            query_params={
                "goldset": str(row["goldset_name"]),
                "run": candidate,
                "baseline": baseline,
                "query": str(query.query_id),
            },
        )


def _attention(
    page: ui.PageContext, series: pd.DataFrame, *, measure: str, scale: tuple[float, float]
) -> None:
    """Cards for the worst ranked series that regressed or drift (also when the latest run
    has no data on the measure): the figure, its change with the paired t-interval, a
    sparkline in the status's colour, and for a regression its probable cause and worst
    queries; with a link to Compare."""
    flagged = series[series["flagged"]].head(ATTENTION_CARDS)
    if flagged.empty:
        return
    columns = st.columns(min(ATTENTION_CARDS, len(flagged)) if len(flagged) > 1 else 2)
    for column, row in zip(columns, flagged.to_dict("records"), strict=False):
        colour, icon = STATUS_BADGES[row["status"]]
        with column.container(border=True):
            st.badge(row["status"], color=colour, icon=icon)
            value, delta = row.get("value"), row.get("delta")
            interval = (
                f"95% paired t-interval [{ui.fmt(row.get('ci_low'))}, "
                f"{ui.fmt(row.get('ci_high'))}], p {formats.fmt_p(row.get('p_adjusted'))}"
                if isinstance(row.get("decision"), str)
                else None
            )
            st.metric(
                f"{row['goldset_name']} x {row['retriever']}",
                ui.fmt(value),
                delta=None if delta is None or pd.isna(delta) else f"{delta:+.4f}",
                delta_color="normal" if row["status"] == "regression" else "off",
                delta_arrow="off" if not delta else "auto",
                delta_description=interval,
                help=f"{measure} of run {row['measured_run']}, against baseline "
                f"{row.get('baseline_run')}",
            )
            if row["history"]:
                st.image(
                    charts.sparkline_svg(
                        row["history"],
                        low=scale[0],
                        high=scale[1],
                        stroke=charts.STATUS_COLOURS[row["status"]],
                        width=220,
                        height=40,
                    ),
                    caption=f"{measure}, last {formats.plural(len(row['history']), 'run')} "
                    f"(scale {scale[0]:g} to {scale[1]:g})",
                )
            st.caption(row["why"])
            if "regression:" in str(row["why"]):
                _regression_story(page, row, measure=measure)
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
        unfinished: OverviewData = page.load("overview", measure=DEFAULT_MEASURE)
        if unfinished.series.empty:
            st.info(
                "Goldsets are stored but no run has finished yet: "
                "`evalkit run --goldset NAME --collection C` evaluates one.",
                icon=":material/info:",
            )
            ui.table(page.load("goldsets").versions)
            return
        st.warning(
            "No run has finished yet: every goldset run of this store failed or is still "
            "running. Each series' newest error is below (`evalkit runs show RUN` prints it "
            "in full).",
            icon=":material/error:",
        )
    left, right = st.columns(2)
    measure = (
        ui.choose("Measure", measures, param="measure", default=DEFAULT_MEASURE, container=left)
        if measures
        else DEFAULT_MEASURE
    )
    linked_stale = st.query_params.get("stale", "")
    stale_days = right.number_input(
        "Stale after (days)",
        min_value=1,
        max_value=365,
        value=int(linked_stale) if linked_stale.isdigit() and 1 <= int(linked_stale) <= 365 else 7,
        step=1,
        help="A series whose latest finished run is older than this is stale.",
    )
    if str(stale_days) != linked_stale and (linked_stale or stale_days != 7):
        st.query_params["stale"] = str(stale_days)
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
        "baseline (the CI and p columns; open Compare for the bootstrap interval and "
        "permutation p-values of `evalkit compare`), then the series' drift "
        "checks and age. A series whose newest run failed is **failed**, its error in *why*. "
        "A series whose latest run stored no value of the measure (run at "
        "another k or with other measures) is **no data**: its figures are those of "
        "the measured run, the newest run that stored it, and *why* says what that run showed."
    )
    scale = _scale(series)
    _attention(page, shown, measure=measure, scale=scale)
    table = shown.assign(
        series=shown["goldset_name"] + " x " + shown["retriever"],
        trend=[
            charts.sparkline_url(
                history, low=scale[0], high=scale[1], stroke=charts.STATUS_COLOURS[status]
            )
            for history, status in zip(shown["history"], shown["status"], strict=True)
        ],
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
    rows = ui.paged(
        table,
        key="overview-page",
        noun=f"series (of {len(series):,})",
        one=f"series (of {len(series):,})",
    )
    ui.table(
        rows[
            [
                "series",
                "status",
                "trend",
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
        labels={
            "value": measure,
            "delta": f"{measure} change",
            "baseline_value": f"{measure} of the baseline",
            "ci_low": "95% CI low (paired t)",
            "ci_high": "95% CI high (paired t)",
            "p_adjusted": "p (paired t)",
        },
        columns={
            "history": None,
            "trend": st.column_config.ImageColumn(
                f"{measure}, last {HISTORY_POINTS} runs",
                width=130,
                help=f"One scale for every series ({scale[0]:g} to {scale[1]:g}); red only "
                "for a regression or a failed newest run, orange for drift, green for pass, "
                "grey otherwise",
            ),
            "compare": ui.link_column("Compare", help="Latest run against the baseline"),
            "quality": ui.link_column("Quality", help="The series over time"),
            "why": st.column_config.TextColumn("Why", width="large"),
            "measured_run": st.column_config.TextColumn(
                "Measured run",
                help=f"The run value, change and test are of: the newest that stored {measure} "
                "(the latest run, unless that one is no data)",
            ),
        },
        height=min(38 + 35 * len(rows), 760),
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
            ui.table(data.open_alerts)
    with right:
        st.subheader("Last job runs")
        if ui.has_rows(data.jobs, area="jobs", empty=f"No job has run yet: {AREA_HINTS['jobs']}"):
            ui.table(data.jobs, digits=1)


ui.run_page("Overview", render)
