"""Leaderboard: many runs of one goldset ranked with corrected statistics and latency."""

from __future__ import annotations

import shlex

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from evalkit.dashboard import charts, formats, ui
from evalkit.dashboard.loaders.leaderboard import LeaderboardData
from evalkit.errors import EvalkitError
from evalkit.metrics import parse_measure
from evalkit.redaction import visible

# Runs ranked when neither a link nor a tag names them: the goldset's newest.
NEWEST_BY_DEFAULT = 5
CORRECTIONS = ("holm", "bonferroni", "tukey", "none")
# Session-state key: the goldset and tag the Runs picker was last drawn for (a comment, as
# Streamlit's magic would draw a bare string of a page script).
SCOPE_KEY = "_evalkit_leaderboard_scope"


def render(page: ui.PageContext) -> None:
    """Draw the leaderboard of the chosen runs."""
    all_runs: pd.DataFrame = page.load("runs")
    if all_runs.empty:
        st.info("No finished run yet: `evalkit run --goldset NAME --collection C` stores one.")
        return
    scored = all_runs[all_runs["n_evaluated"].fillna(0) > 0]
    goldsets = sorted(scored["goldset_name"].dropna().unique())
    top = st.columns([1, 1, 1])
    goldset = ui.choose("Goldset", goldsets, param="goldset", container=top[0])
    runs = scored[scored["goldset_name"] == goldset]
    tags: pd.DataFrame = page.load("run_tags", goldset=goldset)
    tag_names = ["", *sorted(tags["tag"].unique())]
    tag = ui.choose(
        "Tag",
        tag_names,
        param="tag",
        format_func=lambda name: name or "(newest runs)",
        container=top[1],
        help="Rank the runs stored with this tag (`evalkit run --tag`, a sweep's `sweep:NAME`).",
    )
    correction = ui.choose(
        "Correction",
        list(CORRECTIONS),
        param="correction",
        container=top[2],
        help="For the many pairs: Holm (default), Bonferroni, Tukey's HSD on a randomised "
        "test, or none.",
    )
    labels = ui.run_labels(runs, status=False)
    ui.check_link(
        "Run list",
        "runs",
        lambda value: all(run in labels for run in value.split(",") if run),
        where=f" (each must be a finished run of goldset {goldset})",
    )
    measures = sorted(set().union(*(set(m) for m in runs["measures"])) if len(runs) else set())
    # `measure` lists the chosen measures, comma-separated, as on Compare runs.
    asked = [m for m in (st.query_params.get("measure") or "").split(",") if m in measures]
    preferred = asked[0] if asked else "ndcg@10"
    scope = f"{goldset}\n{tag}"
    if st.session_state.get(SCOPE_KEY, scope) != scope:
        # Another goldset or tag picked: it opens on its own runs, not those picked before.
        st.query_params.pop("runs", None)
    st.session_state[SCOPE_KEY] = scope
    linked = [run for run in (st.query_params.get("runs") or "").split(",") if run in labels]
    if linked:
        default = linked
    elif tag:
        default = [run for run in tags.loc[tags["tag"] == tag, "run_id"] if run in labels]
    else:
        default = _newest_that_can_rank(runs, preferred)
    chosen = st.multiselect(
        "Runs", list(labels), default=default, format_func=lambda run: visible(labels[run])
    )
    picked = st.multiselect(
        "Measures",
        measures,
        default=asked or ([preferred] if preferred in measures else measures[:1]),
    )
    # The picks go to the URL, so that a reload, a shared link or the sidebar's way back
    # (`ui.restore_selections`) opens the same board; an emptied picker keeps the last.
    for param, values in (("runs", chosen), ("measure", picked)):
        if values and st.query_params.get(param) != ",".join(values):
            st.query_params[param] = ",".join(values)
    if len(chosen) < 2:
        if len(labels) < 2:
            st.info(
                f"Goldset {ui.md(goldset)} has {formats.plural(len(labels), 'finished run')}: "
                f"`evalkit run --goldset {goldset} ... --label NAME` stores another to rank "
                "against it."
            )
        else:
            st.info("Pick at least two runs to rank.")
        return
    if not picked:
        st.info("Pick at least one measure.")
        return
    try:
        data: LeaderboardData = page.load(
            "leaderboard", runs=tuple(chosen), measures=tuple(picked), correction=correction
        )
    except EvalkitError as error:
        # A measure deeper than a run retrieved, runs of two goldset versions: the CLI's
        # refusal, said here as it says it.
        st.warning(str(error))
        return
    command = ["evalkit", "compare", *chosen]
    for measure in picked:
        command += ["-m", measure]
    if correction != "holm":
        command += ["--correction", correction]
    board = data.ranked.board
    st.caption(
        f"Same figures as `{shlex.join(command)} --failed-as-zero`: {board.n_queries} queries "
        f"shared by all {len(board.runs)} runs, {board.test_label}, {board.correction_label}. "
        "Runs sharing a letter are not significantly different "
        f"(alpha {board.options.alpha:g})."
    )
    first = data.standings[data.standings["measure"] == picked[0]]
    best = first.iloc[0]
    cards = st.columns(3)
    cards[0].metric(
        f"Best on {picked[0]}: {best['run']}",
        f"{best['mean']:.4f}",
        delta=str(best["what"]) or None,
        delta_color="off",
        delta_arrow="off",
    )
    cards[1].metric("Runs in group a", str(int(first["letters"].str.contains("a").sum())))
    significant = data.pairs[(data.pairs["measure"] == picked[0]) & data.pairs["significant"]]
    cards[2].metric(
        "Pairs significantly different",
        f"{len(significant)} of {len(first) * (len(first) - 1) // 2}",
    )
    shown = first.assign(
        compare=[
            None
            if run == best["run"]
            else ui.page_url("compare", goldset=goldset, baseline=str(best["run"]), candidate=run)
            for run in first["run"]
        ]
    )
    ui.table(
        shown.drop(columns=["measure"]).rename(columns={"ci_low": "low", "ci_high": "high"}),
        labels={"low": "95% CI low (bootstrap)", "high": "95% CI high (bootstrap)"},
        columns={"compare": ui.link_column("Compare with the best")},
    )
    ui.plot(charts.escaped(_means_chart(data, picked)))
    if first["latency_p95_ms"].notna().any():
        ui.plot(charts.escaped(_quality_latency_chart(first, picked[0])))
    for measure in picked:
        with st.expander(f"Pairs on {measure}"):
            ui.table(data.pairs[data.pairs["measure"] == measure].drop(columns=["measure"]))
    with st.expander("Report (as `--format markdown`)"):
        st.markdown(data.markdown)


def _newest_that_can_rank(runs: pd.DataFrame, measure: str) -> list[str]:
    """The goldset's newest runs (oldest first) deep enough for ``measure``: a run that
    retrieved fewer documents than its cutoff would stop the whole board."""
    cutoff = parse_measure(measure).cutoff if measure else None
    deep = runs if cutoff is None else runs[runs["k"] >= cutoff]
    left_out = runs.head(NEWEST_BY_DEFAULT)
    left_out = left_out[~left_out["run_id"].isin(deep["run_id"])]
    if not left_out.empty:
        st.caption(
            f"Left out of the newest runs: {', '.join(left_out['run_id'])}, which retrieved "
            f"fewer than the {cutoff} documents {measure} needs. Pick them with a measure they "
            "can be scored on."
        )
    return list(reversed(list(deep["run_id"].head(NEWEST_BY_DEFAULT))))


def _means_chart(data: LeaderboardData, measures: list[str]) -> go.Figure:
    """Each run's mean with its bootstrap interval, one trace per measure."""
    colours = charts.series_colours(pd.Series(measures))
    chart = go.Figure()
    for measure in measures:
        rows = data.standings[data.standings["measure"] == measure]
        chart.add_trace(
            go.Scatter(
                x=rows["run"],
                y=rows["mean"],
                mode="markers",
                name=measure,
                marker={"size": 11, "color": colours.get(measure)},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": rows["ci_high"] - rows["mean"],
                    "arrayminus": rows["mean"] - rows["ci_low"],
                },
                text=rows["letters"],
                hovertemplate="%{x}<br>mean %{y:.4f}<br>group %{text}"
                "<extra>%{fullData.name}</extra>",
            )
        )
    chart.update_layout(
        title="Mean with 95 % bootstrap interval, best first",
        yaxis_title="mean over the shared queries",
        xaxis_title="run",
    )
    return chart


def _quality_latency_chart(first: pd.DataFrame, measure: str) -> go.Figure:
    """Quality against replay latency p95 (log axis): the trade-off a choice makes."""
    timed = first[first["latency_p95_ms"].notna()]
    chart = go.Figure(
        go.Scatter(
            x=timed["latency_p95_ms"],
            y=timed["mean"],
            mode="markers+text",
            text=timed["letters"],
            textposition="top center",
            customdata=timed["run"],
            marker={"size": 12},
            hovertemplate="%{customdata}<br>p95 %{x:.1f} ms<br>mean %{y:.4f}<extra></extra>",
            name=measure,
        )
    )
    chart.update_layout(
        title=f"{measure} against replay latency p95",
        xaxis={
            **charts.log_axis(timed["latency_p95_ms"]),
            "title": "replay latency p95 (ms, log scale)",
        },
        yaxis_title=f"{measure} mean",
    )
    return chart


ui.run_page("Leaderboard", render)
