"""Compare runs: per-measure deltas with CIs and p-values, and the per-query losses."""

from __future__ import annotations

import shlex

import pandas as pd
import streamlit as st

from evalkit.dashboard import causes, formats, ui
from evalkit.dashboard.loaders.compare import CompareData
from evalkit.dashboard.loaders.story import Story

DECISION_COLOURS = {"pass": "green", "regression": "red", "inconclusive": "orange"}
# Session-state key of the story this session's Compare opened on by default (a comment:
# Streamlit's magic would draw a bare string of a page script).
STORY_KEY = "_evalkit_compare_story"
BOOTSTRAP_LABELS = {
    "ci_low": "95% CI low (bootstrap)",
    "ci_high": "95% CI high (bootstrap)",
    "delta": "Change (candidate - baseline)",
}


def _default_measure(page: ui.PageContext) -> str:
    """The (first) measure asked for in the URL, else ndcg@10 when stored, else the most
    common."""
    measures: tuple[str, ...] = page.load("measures")
    asked = (st.query_params.get("measure") or "").split(",")[0]
    if asked in measures:
        return str(asked)
    return "ndcg@10" if "ndcg@10" in measures or not measures else measures[0]


def _without_goldset(page: ui.PageContext, finished: set[str]) -> bool:
    """Refuse a link naming a run that exists but has no goldset (a traffic replay), as
    `evalkit compare` refuses it; True when refused."""
    for param in ("baseline", "candidate"):
        wanted = ui.link_value(param)
        if wanted is None or wanted in finished:
            continue
        facts = page.load("run_facts", run_id=wanted)
        if facts is not None and facts["goldset"] is None:
            st.error(
                f"Run ({param}) {wanted!r} named by this link (?{param}={wanted}) is a "
                f"{facts['kind']} run and has no goldset: it has no judged queries to compare. "
                f"`evalkit compare` says the same (run {wanted} has no goldset). Compare runs "
                "compares goldset runs; a traffic window's figures are on the Traffic page."
            )
            return True
    return False


def _story(page: ui.PageContext) -> Story | None:
    """The pair to open on when the link names no run: the Overview's worst series, its
    latest run against its baseline (the series' when the Overview says it regressed, else
    the run before it, as `evalkit explain` picks); None (with a message) when there is
    nothing to compare."""
    story: Story = page.load("story", measure=_default_measure(page))
    if story.candidate is None:
        st.info(f"Nothing to compare yet: {story.note}.", icon=":material/info:")
        return None
    if story.baseline is None:
        st.info(
            f"Nothing to compare yet: {story.note}. A run compared with itself shows no "
            "change, so none is shown; `evalkit run` stores another, or pick a baseline of "
            "another series by its link (?baseline=RUN&candidate=RUN).",
            icon=":material/info:",
        )
        return None
    st.session_state[STORY_KEY] = story
    return story


def _story_caption(story: Story | None, goldset: str, baseline: str, candidate: str) -> None:
    if story is None or (story.baseline, story.candidate) != (baseline, candidate):
        return
    against_series = story.baseline == story.series_baseline and story.status == "regression"
    if against_series:
        text = (
            f"Opened on the series the Overview reports as regressed ({story.goldset} x "
            f"{story.retriever}): its latest run against the series' baseline, the comparison "
            "behind the Overview's status."
        )
        other, other_label = story.previous, "the run before it (what `evalkit explain` compares)"
    else:
        text = (
            f"Opened on the series that dropped most on the Overview ({story.goldset} x "
            f"{story.retriever}): its latest run against the run before it, the baseline "
            f"`evalkit explain {candidate}` picks."
        )
        other, other_label = story.series_baseline, "the series' baseline (the Overview's)"
    st.caption(text)
    if other and other != baseline:
        st.page_link(
            "views/compare.py",
            label=f"Against {other_label}, {other}, instead",
            icon=":material/compare_arrows:",
            query_params={
                "goldset": goldset,
                "measure": story.measure,
                "baseline": other,
                "candidate": candidate,
            },
        )


def _linked_number(param: str, low: float, high: float, default: float) -> float:
    """The URL parameter ``param`` as a number within [low, high], else ``default``."""
    try:
        value = float(st.query_params.get(param, ""))
    except ValueError:
        return default
    return value if low <= value <= high else default


def render(page: ui.PageContext) -> None:
    """Draw the comparison of two runs."""
    all_runs: pd.DataFrame = page.load("runs")
    if all_runs.empty:
        st.info("No finished run yet: `evalkit run --goldset NAME --collection C` stores one.")
        return
    finished = set(all_runs["run_id"].astype(str))
    if _without_goldset(page, finished):
        return
    for param in ("baseline", "candidate"):
        ui.check_link(
            f"Run ({param})",
            param,
            finished.__contains__,
            where=" among the finished (complete or partial) runs of this store",
        )
    wanted = st.query_params.get("candidate") or st.query_params.get("baseline")
    story: Story | None = st.session_state.get(STORY_KEY)
    if wanted is None:
        story = _story(page)
        if story is None:
            return
        wanted = story.candidate
    named = all_runs[all_runs["run_id"] == wanted]
    default_goldset = str(named.iloc[0]["goldset_name"]) if not named.empty else None
    goldsets = sorted(all_runs["goldset_name"].dropna().unique())
    top = st.columns([1, 2, 2])
    goldset = ui.choose(
        "Goldset", goldsets, param="goldset", default=default_goldset, container=top[0]
    )
    runs = all_runs[all_runs["goldset_name"] == goldset]
    labels = ui.run_labels(runs, status=True)
    run_ids = list(labels)
    candidate = ui.choose(
        "Candidate",
        run_ids,
        param="candidate",
        default=wanted if wanted in labels else run_ids[0],
        format_func=labels.__getitem__,
        container=top[2],
    )
    explained = (
        story.baseline
        if story is not None and story.candidate == candidate
        else page.load("explain_baseline", run_id=candidate)
    )
    baseline = ui.choose(
        "Baseline",
        run_ids,
        param="baseline",
        default=explained if explained in labels else None,
        format_func=labels.__getitem__,
        container=top[1],
        help="By default the series' baseline when the Overview says the series regressed, "
        "else the run before the candidate, as `evalkit explain` compares them.",
    )
    if baseline == candidate:
        st.warning(
            f"Baseline and candidate are the same run ({candidate}): a run compared with "
            "itself shows no change, so nothing is shown. Pick another baseline (`evalkit "
            "explain RUN` compares a run with the run before it in its series).",
            icon=":material/block:",
        )
        return
    _story_caption(story, goldset, baseline, candidate)
    stored = sorted(
        set(runs.loc[runs["run_id"] == baseline, "measures"].iloc[0])
        & set(runs.loc[runs["run_id"] == candidate, "measures"].iloc[0])
    )
    if not stored:
        st.warning("These runs share no stored measure.")
        return
    # `measure` lists the chosen measures, comma-separated, so that a shared link keeps them.
    linked = [name for name in (st.query_params.get("measure") or "").split(",") if name in stored]
    preferred = story.measure if story is not None and story.measure in stored else "ndcg@10"
    default_measures = linked or ([preferred] if preferred in stored else stored[:1])
    chosen = st.multiselect("Measures", stored, default=default_measures)
    if not chosen:
        st.info("Pick at least one measure.")
        return
    if st.query_params.get("measure") != ",".join(chosen):
        st.query_params["measure"] = ",".join(chosen)
    with st.expander("Test settings (as `evalkit compare` options)"):
        columns = st.columns(3)
        alpha = columns[0].number_input(
            "--alpha", 0.001, 0.5, _linked_number("alpha", 0.001, 0.5, 0.05), 0.01, format="%.3f"
        )
        min_effect = columns[1].number_input(
            "--min-effect",
            0.0,
            1.0,
            _linked_number("min_effect", 0.0, 1.0, 0.0),
            0.005,
            format="%.3f",
        )
        linked_sort = st.query_params.get("sort")
        sort_measure = columns[2].selectbox(
            "Sort queries by loss on",
            chosen,
            index=chosen.index(linked_sort) if linked_sort in chosen else 0,
        )
    # A link keeps the settings its figures were computed under; the defaults stay out of it.
    for param, value, default in (
        ("alpha", f"{alpha:g}", "0.05"),
        ("min_effect", f"{min_effect:g}", "0"),
        ("sort", sort_measure, chosen[0]),
    ):
        if value != default and st.query_params.get(param) != value:
            st.query_params[param] = value
        elif value == default and param in st.query_params:
            del st.query_params[param]
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
    if data.failed_in_baseline or data.failed_in_candidate:
        # Without the flag the command refuses a partial run (exit 3); the page counted its
        # failed queries as 0, which is what the flag does.
        command.append("--failed-as-zero")
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
            delta_color="normal" if row["decision"] == "regression" else "off",
            delta_arrow="off" if not row["delta"] else "auto",
            delta_description=(
                f"95% bootstrap CI [{ui.fmt(row['ci_low'])}, {ui.fmt(row['ci_high'])}], "
                f"p (Holm) {formats.fmt_p(row['p_adjusted'])}, {row['decision']}"
            ),
        )
    ui.table(data.metrics, labels=BOOTSTRAP_LABELS)
    causes.panel(page, data)
    st.subheader(f"Queries by loss on {data.sort_measure}")
    st.caption(
        f"Lost / gained: judged-relevant documents in the baseline's top {data.depth} "
        "but not the candidate's, and the other way round. A query opens its drill-down, "
        "the two rankings side by side with why each document was lost."
    )
    # What a query lost or gained is the likely cause: it comes right after the query.
    first = ["query_id", f"{data.sort_measure} delta", "lost", "gained"]
    ordered = data.per_query[first + [c for c in data.per_query.columns if c not in first]]
    per_query = ui.paged(ordered, key="compare-queries", noun="queries", one="query")
    ui.table(
        per_query.assign(
            query_id=[
                ui.page_url(
                    "query",
                    goldset=goldset,
                    run=data.candidate,
                    baseline=data.baseline,
                    query=query,
                )
                for query in per_query["query_id"]
            ]
        ),
        columns={
            "query_id": ui.link_column(
                "Query", shows="query", help="This query in the candidate beside the baseline"
            )
        },
    )
    if data.only_in_baseline or data.only_in_candidate:
        st.warning(
            f"{formats.plural(len(data.only_in_baseline), 'query', 'queries')} only in the "
            f"baseline and {len(data.only_in_candidate):,} only in the candidate were not "
            "compared: " + ", ".join([*data.only_in_baseline, *data.only_in_candidate][:20])
        )


ui.run_page("Compare runs", render)
