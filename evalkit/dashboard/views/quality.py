"""Quality over time: a measure per run with confidence bands, baselines and events."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from evalkit.dashboard import charts, formats, ui
from evalkit.dashboard.loaders.quality import QualityData

DEFAULT_BASELINE = "oldest complete run"
# Series drawn at once by default; more are picked by hand.
MAX_LINES = 8
# What a card's label holds in a row of four on a wide page.
CARD_LABEL_CHARACTERS = 24


def _x_axis() -> str:
    """Time or run index on the x axis, following the URL's ``x`` (a link keeps it)."""
    asked = st.query_params.get("x")
    chosen = st.radio(
        "X axis",
        charts.X_AXES,
        index=charts.X_AXES.index(asked) if asked in charts.X_AXES else 0,
        horizontal=True,
        key="quality-x",
        help="Time: each run at its start. Run index: the runs one after another, evenly "
        "spaced, so that runs close in time can be told apart and clicked.",
    )
    if chosen != asked and (asked is not None or chosen != charts.X_AXES[0]):
        st.query_params["x"] = chosen
    return str(chosen)


def render(page: ui.PageContext) -> None:
    """Draw the series of one goldset."""
    if not page.facts.goldsets:
        ui.missing_area("core")
        return
    left, middle, right = st.columns(3)
    goldset = ui.choose("Goldset", page.facts.goldsets, param="goldset", container=left)
    measures = page.load("measures", goldset=goldset)
    if not measures:
        ui.no_finished_run(page, goldset)
        return
    measure = ui.choose("Measure", measures, param="measure", default="ndcg@10", container=middle)
    runs = page.load("runs", goldset=goldset)
    options = [DEFAULT_BASELINE, *runs.loc[runs["status"] == "complete", "run_id"]]
    baseline = ui.choose(
        "Baseline",
        options,
        param="baseline",
        container=right,
        help="The run each series is compared with (starred on the chart).",
    )
    data: QualityData = page.load(
        "quality",
        goldset=goldset,
        measure=measure,
        baseline=None if baseline == DEFAULT_BASELINE else baseline,
    )
    if data.points.empty:
        st.info(f"No finished run of goldset {ui.md(goldset)} stored {measure}.")
        return
    if not data.without.empty:
        st.caption(
            f"{formats.plural(len(data.without), 'finished run')} of goldset {goldset} stored "
            f"no {measure} (another k or measure set, or no query answered) and "
            f"{'is' if len(data.without) == 1 else 'are'} not drawn: "
            + ", ".join(f"{row.run_id} (k={row.k})" for row in data.without.head(10).itertuples())
            + (" ..." if len(data.without) > 10 else "")
        )
    retrievers = _pick_retrievers(data)
    points = data.points[data.points["retriever"].isin(retrievers)]
    events = data.events[data.events["retriever"].isin(["", *retrievers])]
    baselines = {r: run for r, run in data.baselines.items() if r in retrievers}
    x_axis = _x_axis()
    chart = ui.figure(
        "quality",
        points,
        events,
        baselines,
        measure=measure,
        x_axis=x_axis,
        colours=charts.series_colours(data.points["retriever"]),
    )
    event = ui.plot(chart, key="quality-chart")
    ui.compare_clicked_run(event, goldset=goldset, baselines=data.baselines, measure=measure)
    st.caption(
        "Click a run's point to compare it with its series' baseline. Bands: 95 % "
        "t-interval of the mean over each run's stored per-query values. Dotted lines: "
        "events at their exact time (goldset version, model fingerprint, index or k changed "
        "with a run, alert fired), with a marker each on the strip below; hover it for the "
        "details."
    )
    st.caption(
        f"Latest {measure} of each series, and its change since the series' baseline (hover "
        "a card for the series' full name and the runs)."
    )
    cards = st.columns(max(1, min(4, len(baselines))))
    for index, (retriever, run_id) in enumerate(baselines.items()):
        group = points[points["retriever"] == retriever]
        latest = group.iloc[-1]
        base = group[group["run_id"] == run_id].iloc[0]
        # The baseline's own run has no change to show: it is what the others compare with.
        own = latest["run_id"] == run_id
        change = latest["value"] - base["value"]
        cards[index % len(cards)].metric(
            # Four cards a row: a long name would be cut from the right, where series differ.
            formats.shortened(retriever, CARD_LABEL_CHARACTERS),
            ui.fmt(latest["value"]),
            delta=None if own or pd.isna(change) else f"{change:+.4f}",
            delta_arrow="off" if change == 0 else "auto",
            delta_description="the baseline: no later run yet" if own else "since baseline",
            help=f"{retriever}: latest {measure}, run {latest['run_id']}; baseline {run_id}",
        )
    st.subheader("Events")
    if events.empty:
        st.caption("No change of goldset version, model, index or k, and no alert, in this series.")
    else:
        days = int(pd.to_datetime(events["time"]).dt.floor("D").nunique())
        ui.table(
            ui.paged(
                events,
                key="quality-events",
                noun=f"events on {formats.plural(days, 'day')}",
                one=f"event on {formats.plural(days, 'day')}",
            ),
            digits=None,
            columns={"description": st.column_config.TextColumn("Description", width="large")},
        )
    st.subheader("Runs")
    failed: pd.DataFrame = page.load("failed_runs", goldset=goldset)
    # A failed run has no figure to draw, but the table lists it with its error: a failing
    # job is seen here, not only in `evalkit runs list`.
    failed = failed[
        failed["retriever"].isin(retrievers) | ~failed["retriever"].isin(data.points["retriever"])
    ]
    if not failed.empty:
        st.caption(
            f"{formats.plural(len(failed), 'run')} of goldset {ui.md(goldset)} failed and "
            f"{'has' if len(failed) == 1 else 'have'} no {measure} (listed with the error, "
            "not drawn)."
        )
    shown = pd.concat(
        [
            points.assign(error=None),
            failed[
                [
                    "run_id",
                    "retriever",
                    "started_at",
                    "status",
                    "error",
                    "goldset_version",
                    "model_fingerprint",
                    "index_fingerprint",
                ]
            ],
        ],
        ignore_index=True,
    ).sort_values("started_at", ascending=False, kind="stable")
    shown = shown.assign(
        compare=[
            None
            if row.status == "failed"
            or data.baselines.get(str(row.retriever), row.run_id) == row.run_id
            else ui.page_url(
                "compare",
                goldset=goldset,
                measure=measure,
                baseline=data.baselines[str(row.retriever)],
                candidate=row.run_id,
            )
            for row in shown.itertuples()
        ]
    )[
        [
            "run_id",
            "compare",
            "retriever",
            "started_at",
            "status",
            "value",
            "ci_low",
            "ci_high",
            "n",
            "error",
            "goldset_version",
            "model_fingerprint",
            "index_fingerprint",
        ]
    ]
    ui.table(
        ui.paged(shown, key="quality-runs", noun="runs", one="run"),
        labels={"value": measure},
        columns={
            "compare": ui.link_column("Compare", help="This run against its series' baseline"),
            "ci_low": st.column_config.NumberColumn("95% CI low (t)", format="%.4f"),
            "ci_high": st.column_config.NumberColumn("95% CI high (t)", format="%.4f"),
            "error": None if failed.empty else st.column_config.TextColumn("Error", width="large"),
        },
    )


def _pick_retrievers(data: QualityData) -> list[str]:
    """The retrievers to draw: all when few, else those the user picks (by default the
    ones whose measure dropped most since their baseline)."""
    names = sorted(data.points["retriever"].astype(str).unique())
    if len(names) <= MAX_LINES:
        return names
    change = {}
    for retriever, group in data.points.groupby("retriever"):
        base = group[group["run_id"] == data.baselines.get(str(retriever))]
        first = base["value"].iloc[0] if not base.empty else group["value"].iloc[0]
        change[str(retriever)] = float(group.sort_values("started_at")["value"].iloc[-1] - first)
    ranked = sorted(names, key=lambda name: change.get(name, 0.0))
    chosen = st.multiselect(
        f"Retrievers ({len(names)}; by default the {MAX_LINES} that dropped most)",
        names,
        default=ranked[:MAX_LINES],
    )
    return chosen or ranked[:MAX_LINES]


ui.run_page("Quality over time", render)
