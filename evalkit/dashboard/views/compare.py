"""Compare runs: per-measure deltas with CIs and p-values, and the per-query losses."""

from __future__ import annotations

import shlex

import pandas as pd
import streamlit as st

from evalkit.dashboard import causes, ui
from evalkit.dashboard.loaders.compare import CompareData

DECISION_COLOURS = {"pass": "green", "regression": "red", "inconclusive": "orange"}


def _run_label(runs: pd.DataFrame) -> dict[str, str]:
    return {
        str(row.run_id): f"{row.run_id}  {row.retriever}  {row.status}"
        + (f"  [{row.label}]" if isinstance(row.label, str) and row.label else "")
        for row in runs.itertuples()
    }


def _previous(runs: pd.DataFrame, candidate: str) -> str:
    """The run before ``candidate`` of the same retriever (else the newest other run),
    among runs that evaluated at least one query (one that evaluated none compares with
    nothing)."""
    this = runs[runs["run_id"] == candidate].iloc[0]
    scored = runs[(runs["run_id"] != candidate) & (runs["n_evaluated"].fillna(0) > 0)]
    older = scored[scored["started_at"] < this["started_at"]]
    same = older[older["retriever"] == this["retriever"]]
    for pool in (same, older, scored):
        if not pool.empty:
            return str(pool.iloc[0]["run_id"])
    return candidate


def render(page: ui.PageContext) -> None:
    """Draw the comparison of two runs."""
    all_runs: pd.DataFrame = page.load("runs")
    if all_runs.empty:
        st.info("No finished run yet: `evalkit run --goldset NAME --collection C` stores one.")
        return
    finished = set(all_runs["run_id"].astype(str))
    for param in ("baseline", "candidate"):
        ui.check_link(
            f"Run ({param})",
            param,
            finished.__contains__,
            where=" among the finished (complete or partial) runs of this store",
        )
    wanted = st.query_params.get("candidate") or st.query_params.get("baseline")
    named = all_runs[all_runs["run_id"] == wanted]
    default_goldset = str(named.iloc[0]["goldset_name"]) if not named.empty else None
    goldsets = sorted(all_runs["goldset_name"].dropna().unique())
    top = st.columns([1, 2, 2])
    goldset = ui.choose(
        "Goldset", goldsets, param="goldset", default=default_goldset, container=top[0]
    )
    runs = all_runs[all_runs["goldset_name"] == goldset]
    labels = _run_label(runs)
    run_ids = list(labels)
    candidate = ui.choose(
        "Candidate",
        run_ids,
        param="candidate",
        default=run_ids[0],
        format_func=labels.__getitem__,
        container=top[2],
    )
    baseline = ui.choose(
        "Baseline",
        run_ids,
        param="baseline",
        default=_previous(runs, candidate),
        format_func=labels.__getitem__,
        container=top[1],
    )
    stored = sorted(
        set(runs.loc[runs["run_id"] == baseline, "measures"].iloc[0])
        & set(runs.loc[runs["run_id"] == candidate, "measures"].iloc[0])
    )
    if not stored:
        st.warning("These runs share no stored measure.")
        return
    asked = st.query_params.get("measure")
    preferred = asked if asked in stored else "ndcg@10"
    default_measures = [preferred] if preferred in stored else stored[:1]
    chosen = st.multiselect("Measures", stored, default=default_measures)
    if not chosen:
        st.info("Pick at least one measure.")
        return
    with st.expander("Test settings (as `evalkit compare` options)"):
        columns = st.columns(3)
        alpha = columns[0].number_input("--alpha", 0.001, 0.5, 0.05, 0.01, format="%.3f")
        min_effect = columns[1].number_input("--min-effect", 0.0, 1.0, 0.0, 0.005, format="%.3f")
        sort_measure = columns[2].selectbox("Sort queries by loss on", chosen)
    data: CompareData = page.load(
        "compare",
        baseline=baseline,
        candidate=candidate,
        measures=list(chosen),
        sort_measure=sort_measure,
        alpha=float(alpha),
        min_effect=float(min_effect),
    )
    command = ["evalkit", "compare", data.baseline, data.candidate]
    for name in data.measures:
        command += ["-m", name]
    if alpha != 0.05:
        command += ["--alpha", f"{alpha:g}"]
    if min_effect:
        command += ["--min-effect", f"{min_effect:g}"]
    st.badge(
        f"decision: {data.decision}",
        color=DECISION_COLOURS.get(data.decision, "gray"),
    )
    st.caption(f"Same figures as `{shlex.join(command)}`")
    cards = st.columns(max(1, len(data.measures)))
    for column, row in zip(cards, data.metrics.to_dict("records"), strict=False):
        column.metric(
            row["measure"],
            ui.fmt(row["candidate_mean"]),
            delta=f"{row['delta']:+.4f}",
            delta_description=(
                f"CI [{ui.fmt(row['ci_low'])}, {ui.fmt(row['ci_high'])}], "
                f"p adj {row['p_adjusted']:.3g}, {row['decision']}"
            ),
        )
    ui.table(data.metrics)
    causes.panel(page, data)
    st.subheader(f"Queries by loss on {data.sort_measure}")
    st.caption(
        f"`lost` / `gained`: judged-relevant documents in the baseline's top {data.depth} "
        "but not the candidate's, and the other way round."
    )
    # What a query lost or gained is the likely cause: it comes right after the query.
    first = ["query_id", f"{data.sort_measure} delta", "lost", "gained"]
    ordered = data.per_query[first + [c for c in data.per_query.columns if c not in first]]
    per_query = ui.paged(ordered, key="compare-queries", noun="queries")
    ui.table(
        per_query.assign(
            query_id=[
                ui.page_url("query", goldset=goldset, run=data.candidate, query=query)
                for query in per_query["query_id"]
            ]
        ),
        columns={
            "query_id": ui.link_column(
                "query_id", shows="query", help="This query in the candidate run"
            )
        },
    )
    if data.only_in_baseline or data.only_in_candidate:
        st.warning(
            f"{len(data.only_in_baseline)} queries only in the baseline and "
            f"{len(data.only_in_candidate)} only in the candidate were not compared: "
            + ", ".join([*data.only_in_baseline, *data.only_in_candidate][:20])
        )


ui.run_page("Compare runs", render)
