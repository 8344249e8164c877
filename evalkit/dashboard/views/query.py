"""Query drill-down: one query across runs, its retrieved documents beside a baseline's, why
each relevant document was lost, and why it scored what it scored."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from evalkit.dashboard import charts, formats, ui
from evalkit.dashboard.loaders.query import WIDE_RUNS, QueryData, QueryDiff
from evalkit.dashboard.loaders.story import Regression, Story

NO_BASELINE = "(none)"
LINK_PARAMS = ("goldset", "run", "query")


def _story(page: ui.PageContext) -> Story | None:
    """What the page opens on when its link names no goldset, run or query: the Overview's
    worst series' latest run, and the query that dropped most against `explain`'s baseline."""
    if any(st.query_params.get(param) for param in LINK_PARAMS):
        return None
    measures: tuple[str, ...] = page.load("measures")
    if not measures:
        return None
    measure = "ndcg@10" if "ndcg@10" in measures else measures[0]
    story: Story = page.load("story", measure=measure)
    return story if story.candidate is not None else None


def _worst_query(page: ui.PageContext, story: Story | None, run_id: str) -> str | None:
    """The query that dropped most from the story's baseline to its candidate ``run_id``."""
    if story is None or story.baseline is None or story.candidate != run_id:
        return None
    found: Regression = page.load(
        "regression", baseline=story.baseline, candidate=story.candidate, measure=story.measure
    )
    return None if found.worst.empty else str(found.worst.iloc[0]["query_id"])


def _baseline(
    page: ui.PageContext, runs: pd.DataFrame, run_id: str, story: Story | None
) -> str | None:
    """The run this query is diffed against: the link's, else the story's, else the one
    `evalkit explain` compares ``run_id`` with; None when the user picks none."""
    labels = {
        str(row.run_id): f"{row.run_id}  {row.retriever}  {row.status}"
        for row in runs.itertuples()
        if row.run_id != run_id
    }
    if story is not None and story.candidate == run_id:
        default = story.baseline
    else:
        default = page.load("explain_baseline", run_id=run_id)
    chosen = ui.choose(
        "Compared with (baseline)",
        [NO_BASELINE, *labels],
        param="baseline",
        default=default if default in labels else NO_BASELINE,
        format_func=lambda value: labels.get(value, "no baseline: this run alone"),
        help="By default the run before this one in its series, as `evalkit explain` "
        "compares them.",
        where=" among the other finished runs of this goldset",
    )
    return None if chosen == NO_BASELINE else chosen


def _diff_measure(measures: list[str], story: Story | None) -> str:
    """The measure whose depth the diff looks for lost documents in: the link's, the
    story's, else ndcg@10, else the run's first."""
    for wanted in (st.query_params.get("measure"), story.measure if story else None, "ndcg@10"):
        if wanted in measures:
            return str(wanted)
    return measures[0]


def _diff(diff: QueryDiff) -> None:
    """The two rankings side by side and, for each relevant document the candidate lost,
    why (with a link to the audit that found it missing or stale)."""
    st.subheader(f"Against baseline {diff.baseline}")
    if diff.candidate_error:
        st.warning(f"This query failed in run {diff.candidate}: {ui.md(diff.candidate_error)}")
    if diff.lost.empty:
        st.caption(
            f"No judged-relevant document of the baseline's top {diff.depth} is missing from "
            f"this run's ({diff.measure})."
        )
    else:
        st.markdown(
            f"**Lost** ({formats.plural(len(diff.lost), 'relevant document')} of the "
            f"baseline's top {diff.depth}, for {diff.measure}):"
        )
        for row in diff.lost.itertuples():
            grade = "" if pd.isna(row.grade) else f"grade {int(row.grade)}, "
            where = "" if pd.isna(row.baseline_rank) else f"baseline rank {int(row.baseline_rank)}"
            line = f"- **{ui.md(row.doc_id)}** ({grade}{where}): {row.why}"
            if isinstance(row.audit_id, str):
                url = ui.page_url(
                    "index_health",
                    collection=row.collection,
                    audit=row.audit_id,
                    finding=row.finding,
                )
                line += f" ([Index health]({url}))"
            st.markdown(line)
    if not diff.gained.empty:
        st.caption(
            "Gained: "
            + ", ".join(
                f"{ui.md(row.doc_id)} (rank {int(row.candidate_rank)})"
                for row in diff.gained.itertuples()
                if not pd.isna(row.candidate_rank)
            )
        )
    left, right = st.columns(2)
    relevant = f"judged grade >= {diff.relevance_threshold}"
    for column, title, ranking in (
        (left, f"Baseline {diff.baseline}", diff.baseline_ranking),
        (right, f"This run {diff.candidate}", diff.candidate_ranking),
    ):
        with column:
            st.markdown(f"**{title}**")
            ui.table(
                ranking.assign(relevant=["✓" if flag else "" for flag in ranking["relevant"]]),
                columns={
                    "rank": st.column_config.NumberColumn("Rank", format="%d", width=55),
                    "grade": st.column_config.NumberColumn("Grade", format="%d", width=60),
                    "relevant": st.column_config.TextColumn("Relevant", width=70, help=relevant),
                    "title": st.column_config.TextColumn("Title", width="medium")
                    if ranking["title"].astype(bool).any()
                    else None,
                },
            )
    if diff.snippet_note:
        st.caption(diff.snippet_note)


def render(page: ui.PageContext) -> None:
    """Draw one query of one run."""
    if not page.facts.goldsets:
        ui.missing_area("core")
        return
    story = _story(page)
    top = st.columns(3)
    goldset = ui.choose(
        "Goldset",
        page.facts.goldsets,
        param="goldset",
        default=story.goldset if story is not None else None,
        container=top[0],
        where=" in this store",
    )
    runs: pd.DataFrame = page.load("runs", goldset=goldset)
    if runs.empty:
        ui.no_finished_run(page, goldset)
        return
    labels = {
        str(row.run_id): f"{row.run_id}  {row.retriever}  {row.status}" for row in runs.itertuples()
    }
    run_id = ui.choose(
        "Run",
        list(labels),
        param="run",
        default=story.candidate if story is not None else None,
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
    worst = _worst_query(page, story, run_id)
    wanted = ui.link_value("query") or worst
    if wanted is not None and wanted not in set(queries["query_id"].astype(str)):
        # The list holds the first matches only: look the wanted query up by itself.
        named = page.load("query_list", goldset_version=version, text=wanted)
        queries = pd.concat([queries, named[named["query_id"].astype(str) == wanted]])
    texts = dict(zip(queries["query_id"].astype(str), queries["text"].astype(str), strict=True))
    query_id = ui.choose(
        "Query",
        list(texts),
        param="query",
        default=worst,
        format_func=lambda q: f"{q}: {texts[q][:100]}",
        where=f" in goldset {goldset} (version {version[:12]})",
    )
    # Picked once the query is known to exist: a stale link opens no other run in its place.
    with top[2]:
        baseline = _baseline(page, runs, run_id, story)
    if story is not None and worst == query_id:
        st.caption(
            f"Opened on the query that dropped most in the Overview's worst series "
            f"({story.goldset} x {story.retriever}): run {run_id} against {story.baseline}, "
            f"on {story.measure}."
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
    st.markdown(f"**{ui.md(data.query_id)}**: {ui.md(data.text)}")
    n_relevant = int((data.judgments["relevance"] >= data.relevance_threshold).sum())
    found = int(data.results["relevant"].sum())
    cards = st.columns(3)
    cards[0].metric("judged relevant", n_relevant)
    cards[1].metric(f"relevant retrieved (top {data.k})", found)
    first = data.results.loc[data.results["relevant"], "evaluated_rank"]
    cards[2].metric("first relevant rank", int(first.min()) if not first.empty else formats.DASH)
    if baseline is not None:
        measure = _diff_measure(list(data.explanations["measure"]), story)
        diff: QueryDiff = page.load(
            "query_diff",
            query_id=query_id,
            baseline=baseline,
            candidate=run_id,
            measure=measure,
            with_text=with_text,
        )
        _diff(diff)
    st.subheader("Why it scored what it scored")
    ui.table(data.explanations, labels={"value": "This query"})
    st.subheader(f"Retrieved documents in run {data.run_id}")
    st.caption(
        "Rank: as the retriever returned them; evaluated rank: the order trec_eval scores "
        f"(score, then doc id descending). Relevant: judged grade >= {data.relevance_threshold}; "
        "a dash: not judged."
    )
    if data.snippet_note:
        st.caption(data.snippet_note)
    ui.table(data.results, columns={"text": st.column_config.TextColumn("Text", width="large")})
    missed = sorted(
        set(data.judgments.loc[data.judgments["relevance"] >= data.relevance_threshold, "doc_id"])
        - set(data.results["doc_id"])
    )
    if missed:
        st.caption(f"Relevant but not retrieved: {', '.join(ui.md(d) for d in missed[:50])}")
    st.subheader("This query across runs")
    if data.history.empty:
        st.caption("No stored value of this query in any finished run.")
    else:
        baselines = _baselines(runs)
        measures = list(data.explanations["measure"])
        colours = charts.series_colours(runs["retriever"])
        event = ui.plot(
            ui.figure("query_history", data.history, measures=measures, colours=colours),
            key="query-history",
        )
        ui.compare_clicked_run(event, goldset=goldset, baselines=baselines)
        n_runs = data.history["run_id"].nunique()
        st.caption(
            f"The newest {formats.plural(n_runs, 'finished run')} of goldset {goldset} that "
            "scored this query. Click a point to compare that run with its series' baseline."
        )
    if not data.rank_history.empty:
        ui.plot(ui.figure("relevant_ranks", data.rank_history, k=data.k))
    with st.expander(f"Values per run ({formats.plural(len(data.values), 'run')})"):
        values = data.values.assign(
            open=[
                ui.page_url("query", goldset=goldset, run=run, query=query_id)
                for run in data.values["run_id"]
            ]
        )
        ui.table(
            ui.paged(values, key="query-values", noun="runs", one="run"),
            columns={"open": ui.link_column("Open", help="This query in that run")},
        )
    st.subheader(
        f"Where its relevant documents landed in the newest {WIDE_RUNS} runs "
        "(rank per run; a dash: not retrieved)"
    )
    ranks = data.relevant_ranks
    ui.table(
        ranks,
        columns={
            str(column): st.column_config.NumberColumn(str(column), format="%d", width=190)
            for column in ranks.columns
            if column not in ("doc_id", "relevance")
        },
    )


def _baselines(runs: pd.DataFrame) -> dict[str, str]:
    """Retriever -> its oldest complete run (the series' baseline)."""
    complete = runs[runs["status"] == "complete"].sort_values(["started_at", "run_id"])
    return {
        str(retriever): str(group.iloc[0]["run_id"])
        for retriever, group in complete.groupby("retriever")
    }


ui.run_page("Query drill-down", render)
