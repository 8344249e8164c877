"""Quality over time: a measure per run with confidence bands, baselines and events."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from evalkit.dashboard import charts, ui
from evalkit.dashboard.loaders import QualityData

DEFAULT_BASELINE = "oldest complete run"


def render(page: ui.PageContext) -> None:
    """Draw the series of one goldset."""
    if not page.facts.goldsets:
        ui.missing_area("core")
        return
    left, middle, right = st.columns(3)
    goldset = ui.choose("Goldset", page.facts.goldsets, param="goldset", container=left)
    measures = page.load("measures", goldset=goldset)
    if not measures:
        st.info(f"No finished run of goldset {goldset} yet: `evalkit run --goldset {goldset} ...`")
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
        st.info(f"No finished run of goldset {goldset} stored {measure}.")
        return
    if not data.without.empty:
        st.caption(
            f"{len(data.without)} finished runs of goldset {goldset} stored no {measure} "
            "(another k or measure set, or no query answered) and are not drawn: "
            + ", ".join(f"{row.run_id} (k={row.k})" for row in data.without.head(10).itertuples())
            + (" ..." if len(data.without) > 10 else "")
        )
    st.plotly_chart(charts.quality_chart(data.points, data.events, data.baselines, measure=measure))
    st.caption(
        "Bands: 95 % t-interval of the mean over each run's stored per-query values. "
        "Dotted lines: goldset version changed, model fingerprint changed, index re-built, "
        "alert fired (hover the triangles)."
    )
    cards = st.columns(max(1, min(3, len(data.baselines))))
    for index, (retriever, run_id) in enumerate(data.baselines.items()):
        group = data.points[data.points["retriever"] == retriever]
        latest = group.iloc[-1]
        base = group[group["run_id"] == run_id].iloc[0]
        change = latest["value"] - base["value"]
        cards[index % len(cards)].metric(
            f"{retriever}: latest {measure}",
            ui.fmt(latest["value"]),
            delta=None if pd.isna(change) else f"{change:+.4f}",
            delta_arrow="off" if change == 0 else "auto",
            delta_description=f"since baseline {run_id}",
        )
    st.subheader("Events")
    if data.events.empty:
        st.caption("No change of goldset version, model or index, and no alert, in this series.")
    else:
        st.dataframe(data.events, hide_index=True)
    st.subheader("Runs")
    shown = data.points[
        [
            "run_id",
            "retriever",
            "started_at",
            "status",
            "value",
            "ci_low",
            "ci_high",
            "n",
            "goldset_version",
            "model_fingerprint",
            "index_fingerprint",
        ]
    ].sort_values("started_at", ascending=False)
    st.dataframe(shown, hide_index=True, column_config=ui.number_columns(shown))


ui.run_page("Quality over time", render)
