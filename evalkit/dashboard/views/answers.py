"""Answers: faithfulness and context precision / recall over time by judge, unmeasured
counts, and the least faithful answers beside their contexts."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from evalkit.dashboard import ui
from evalkit.dashboard.loaders.answers import AnswerItems, AnswersData

PREFERRED = ("faithfulness", "context_precision", "context_recall")


def render(page: ui.PageContext) -> None:
    """Draw the answer metrics."""
    data: AnswersData = page.load("answers")
    series = data.series
    if series.empty:
        ui.missing_area("answers")
        return
    metrics = sorted(
        series["metric"].unique(),
        key=lambda m: (PREFERRED.index(m) if m in PREFERRED else len(PREFERRED), m),
    )
    shown = [m for m in metrics if m in PREFERRED] or metrics[:1]
    for metric in shown:
        ui.plot(ui.figure("answers", series, metric=metric))
    latest = series[series["scoring_id"] == series["scoring_id"].iloc[-1]]
    cards = st.columns(max(1, min(4, len(latest))))
    for index, row in enumerate(latest.itertuples()):
        cards[index % len(cards)].metric(
            f"{row.metric} ({row.method})",
            ui.fmt(row.mean, 3),
            delta=f"{row.n_unmeasured} unmeasured of {row.n_measured + row.n_unmeasured}",
            delta_color="off",
            delta_arrow="off",
        )
    st.caption(
        "Each scoring is drawn on the day its answers were given: the traffic window it "
        "replayed, or the day of its earliest traffic record, else the day it was scored "
        "(the table's *answered from* says which)."
    )
    st.subheader("Scorings")
    table = series.sort_values("started_at", ascending=False)
    ui.table(
        table,
        digits=3,
        labels={"started_at": "Scored"},
        columns={
            "answered_on": st.column_config.DatetimeColumn("Answered on", format="YYYY-MM-DD")
        },
    )
    scorings = list(dict.fromkeys(table["scoring_id"]))
    columns = st.columns(2)
    scoring = ui.choose("Scoring", scorings, param="scoring", container=columns[0])
    scored = list(dict.fromkeys(series.loc[series["scoring_id"] == scoring, "metric"]))
    metric = ui.choose(
        "Lowest answers on",
        scored,
        param="metric",
        default="faithfulness",
        container=columns[1],
    )
    items: AnswerItems = page.load("answer_items", scoring_id=scoring, metric=metric)
    if not items.unmeasured.empty:
        st.caption("Unmeasured (left out of the means):")
        ui.table(items.unmeasured, labels={"n": "Answers"})
    st.subheader(f"Lowest {metric} answers, beside their contexts")
    if items.items.empty:
        st.caption("Nothing measured on this metric in this scoring.")
        return
    for row in items.items.to_dict("records"):
        with st.expander(f"{ui.md(row['item_id'])}: {row['value']:.3f} ({row['method']})"):
            question, answer = row.get("question"), row.get("answer")
            asked = ui.md(question) if isinstance(question, str) else "(not stored)"
            st.markdown(f"**Question**: {asked}")
            shown = ui.md(answer) if isinstance(answer, str) else "(not stored)"
            st.markdown(f"**Answer**: {shown}")
            if row.get("n_claims") is not None and not pd.isna(row.get("n_claims")):
                st.caption(f"{row['n_supported']} of {row['n_claims']} claims supported")
            if isinstance(row.get("detail"), str):
                st.caption(row["detail"])
            contexts = row.get("contexts")
            if contexts is None or isinstance(contexts, float):
                st.caption("Contexts not stored with this scoring.")
            else:
                for number, context in enumerate(contexts, start=1):
                    st.text(f"[{number}] {context}")


ui.run_page("Answers", render, areas=("answers",))
