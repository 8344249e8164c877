"""Goldsets: stored versions, their sizes, and how many retrieved documents are judged."""

from __future__ import annotations

import streamlit as st

from evalkit.dashboard import charts, ui
from evalkit.dashboard.loaders.goldsets import GoldsetsData


def render(page: ui.PageContext) -> None:
    """Draw the goldsets."""
    depth = int(
        st.number_input(
            "Coverage depth (top k judged)", min_value=1, max_value=1000, value=10, step=1
        )
    )
    data: GoldsetsData = page.load("goldsets", depth=depth)
    if data.versions.empty:
        ui.missing_area("core")
        return
    current = data.versions.drop_duplicates("name")
    cards = st.columns(min(4, len(current)))
    for index, row in enumerate(current.itertuples()):
        cards[index % len(cards)].metric(
            f"{row.name} ({row.version[:12]})",
            f"{row.n_queries} queries",
            delta=f"{row.n_judgments} judgments",
            delta_color="off",
            delta_arrow="off",
        )
    st.subheader("Versions")
    ui.table(data.versions)
    st.subheader(f"Judgment coverage of the newest run per version and retriever (top {depth})")
    if data.coverage.empty:
        st.caption("No finished run yet: coverage needs retrieved documents.")
        return
    st.caption(
        f"Judged share of the top: share of the top {depth} retrieved documents that are "
        "judged; of all: the same over everything retrieved. Unjudged documents count as "
        "non-relevant, so low coverage makes every measure an underestimate. A run that "
        f"retrieved fewer than {depth} documents per query has no share of the top {depth}."
    )
    ui.table(data.coverage, digits=3)
    shown = data.coverage.assign(
        series=data.coverage["goldset_name"] + " " + data.coverage["goldset_version"].str[:8]
    )
    ui.plot(
        ui.figure(
            "lines",
            shown,
            x="series",
            columns=["judged_at_depth"],
            by="retriever",
            bars=True,
            title=f"Judged share of the top {depth}",
            y_title="judged share (0-1)",
            colours=charts.series_colours(shown["retriever"]),
        )
    )


ui.run_page("Goldsets", render)
