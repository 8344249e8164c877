"""Query drill-down: one query across runs, its retrieved documents, and why it scored so."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from evalkit.dashboard import ui
from evalkit.dashboard.loaders.query import WIDE_RUNS, QueryData


def render(page: ui.PageContext) -> None:
    """Draw one query of one run."""
    if not page.facts.goldsets:
        ui.missing_area("core")
        return
    top = st.columns(2)
    goldset = ui.choose(
        "Goldset", page.facts.goldsets, param="goldset", container=top[0], where=" in this store"
    )
    runs: pd.DataFrame = page.load("runs", goldset=goldset)
    if runs.empty:
        st.info(f"No finished run of goldset {goldset} yet: `evalkit run --goldset {goldset} ...`")
        return
    labels = {
        str(row.run_id): f"{row.run_id}  {row.retriever}  {row.status}" for row in runs.itertuples()
    }
    run_id = ui.choose(
        "Run",
        list(labels),
        param="run",
        format_func=labels.__getitem__,
        container=top[1],
        where=f" among the finished runs of goldset {goldset}",
    )
    version = str(runs.loc[runs["run_id"] == run_id, "goldset_version"].iloc[0])
    search = st.text_input("Find a query (id or text)", value=st.query_params.get("q", ""))
    queries: pd.DataFrame = page.load("query_list", goldset_version=version, text=search or None)
    if queries.empty:
        st.info("No query of this goldset version matches.")
        return
    wanted = ui.link_value("query")
    if wanted is not None and wanted not in set(queries["query_id"].astype(str)):
        # The list holds the first matches only: look the linked query up by itself.
        named = page.load("query_list", goldset_version=version, text=wanted)
        queries = pd.concat([queries, named[named["query_id"].astype(str) == wanted]])
    texts = dict(zip(queries["query_id"].astype(str), queries["text"].astype(str), strict=True))
    query_id = ui.choose(
        "Query",
        list(texts),
        param="query",
        format_func=lambda q: f"{q}: {texts[q][:100]}",
        where=f" in goldset {goldset} (version {version[:12]})",
    )
    retriever = str(runs.loc[runs["run_id"] == run_id, "retriever"].iloc[0])
    with_text = st.toggle(
        "Show document text",
        value=retriever.startswith("chroma-embedded"),
        help="Reads the retrieved documents from the run's Chroma collection (for a Chroma "
        "server, a request to it).",
    )
    data: QueryData = page.load(
        "query_detail", goldset=goldset, query_id=query_id, run_id=run_id, with_text=with_text
    )
    st.markdown(f"**{data.query_id}**: {data.text}")
    n_relevant = int((data.judgments["relevance"] >= data.relevance_threshold).sum())
    found = int(data.results["relevant"].sum())
    cards = st.columns(3)
    cards[0].metric("judged relevant", n_relevant)
    cards[1].metric(f"relevant retrieved (top {data.k})", found)
    first = data.results.loc[data.results["relevant"], "evaluated_rank"]
    cards[2].metric("first relevant rank", int(first.min()) if not first.empty else "-")
    st.subheader("Why it scored what it scored")
    ui.table(data.explanations)
    st.subheader(f"Retrieved documents in run {data.run_id}")
    st.caption(
        "`rank`: as the retriever returned them; `evaluated_rank`: the order trec_eval scores "
        f"(score, then doc id descending). Relevant: judged grade >= {data.relevance_threshold}."
    )
    if data.snippet_note:
        st.caption(data.snippet_note)
    ui.table(data.results)
    missed = sorted(
        set(data.judgments.loc[data.judgments["relevance"] >= data.relevance_threshold, "doc_id"])
        - set(data.results["doc_id"])
    )
    if missed:
        st.caption(f"Relevant but not retrieved: {', '.join(missed[:50])}")
    st.subheader("This query across runs")
    if data.history.empty:
        st.caption("No stored value of this query in any finished run.")
    else:
        baselines = _baselines(runs)
        measures = list(data.explanations["measure"])
        event = ui.plot(
            ui.figure("query_history", data.history, measures=measures), key="query-history"
        )
        ui.compare_clicked_run(event, goldset=goldset, baselines=baselines)
        n_runs = data.history["run_id"].nunique()
        st.caption(
            f"The newest {n_runs:,} finished runs of goldset {goldset} that scored this query. "
            "Click a point to compare that run with its series' baseline."
        )
    if not data.rank_history.empty:
        ui.plot(ui.figure("relevant_ranks", data.rank_history, k=data.k))
    with st.expander(f"Values per run ({len(data.values):,} runs)"):
        values = data.values.assign(
            open=[
                ui.page_url("query", goldset=goldset, run=run, query=query_id)
                for run in data.values["run_id"]
            ]
        )
        ui.table(
            ui.paged(values, key="query-values", noun="runs"),
            columns={"open": ui.link_column("open", help="This query in that run")},
        )
    st.subheader(
        f"Where its relevant documents landed in the newest {WIDE_RUNS} runs "
        "(rank per run; empty: not retrieved)"
    )
    st.dataframe(data.relevant_ranks, hide_index=True)


def _baselines(runs: pd.DataFrame) -> dict[str, str]:
    """Retriever -> its oldest complete run (the series' baseline)."""
    complete = runs[runs["status"] == "complete"].sort_values(["started_at", "run_id"])
    return {
        str(retriever): str(group.iloc[0]["run_id"])
        for retriever, group in complete.groupby("retriever")
    }


ui.run_page("Query drill-down", render)
