"""Drift: statistics and p-values over time per watched stream, embeddings in 2-D, and the
per-dimension diagnostics."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from evalkit.dashboard import causes, charts, formats, ui
from evalkit.dashboard.loaders.drift import DriftData, ProjectionData
from evalkit.errors import InputError

# Series drawn at once by default; more are picked by hand.
MAX_LINES = 8


def _subject(value: object) -> str:
    return value if isinstance(value, str) and value else "-"


def _series_of(checks: pd.DataFrame) -> pd.Series:
    return checks["stream"] + " / " + checks["subject"].map(_subject)


def _pick_series(checks: pd.DataFrame) -> list[str]:
    """The stream / subject series to draw: all when few, else those the user picks (by
    default the ones whose newest check drifts, then those that drifted most often)."""
    names = _series_of(checks)
    ordered = (
        checks.assign(series=names)
        .sort_values("created_at")
        .groupby("series")
        .agg(latest=("is_drift", "last"), drifts=("is_drift", "sum"))
        .sort_values(["latest", "drifts"], ascending=False)
    )
    ranked = [str(name) for name in ordered.index]
    if len(ranked) <= MAX_LINES:
        return ranked
    chosen = st.multiselect(
        f"Series ({len(ranked)}; by default the {MAX_LINES} drifting now or most often)",
        sorted(ranked),
        default=ranked[:MAX_LINES],
    )
    return chosen or ranked[:MAX_LINES]


def _checks(page: ui.PageContext, data: DriftData) -> None:
    checks = data.checks
    streams = sorted(checks["stream"].unique())
    shown_streams = st.multiselect("Streams", streams, default=streams)
    shown = checks[checks["stream"].isin(shown_streams)]
    latest = shown.sort_values("created_at").groupby(["stream", "subject"], dropna=False).tail(1)
    drifting = latest[latest["is_drift"].astype(bool)]
    cards = st.columns(4)
    cards[0].metric("series", len(latest))
    cards[1].metric("drifting now", len(drifting))
    cards[2].metric("checks", f"{len(shown):,}")
    cards[3].metric("drifting checks", f"{int(shown['is_drift'].astype(bool).sum()):,}")
    if not drifting.empty:
        st.caption(
            "Drifting now: "
            + "; ".join(
                f"{row.stream} / {_subject(row.subject)} ({row.method}"
                + (f", p {formats.fmt_p(row.p_value)}" if pd.notna(row.p_value) else "")
                + ")"
                for row in drifting.head(20).itertuples()
            )
            + (" ..." if len(drifting) > 20 else "")
        )
    series = _pick_series(shown)
    drawn = shown[_series_of(shown).isin(series)].drop(columns=["details"])
    # One colour per series in both charts (and the same series never changes colour).
    colours = charts.series_colours(_series_of(checks))
    left, right = st.columns(2)
    with_statistic = drawn[drawn["statistic"].notna()]
    # A method that stores no statistic (the precision checks' paired test) would draw an
    # empty panel: it is named instead.
    kept = set(zip(with_statistic["stream"], with_statistic["method"], strict=True))
    missing = sorted(set(zip(drawn["stream"], drawn["method"], strict=True)) - kept)
    if not with_statistic.empty:
        ui.plot(
            ui.figure("drift", with_statistic, value="statistic", colours=colours), container=left
        )
    elif not missing:
        left.caption("No check in these series stores a statistic.")
    if missing:
        left.caption(
            "; ".join(f"{stream} checks ({method})" for stream, method in missing)
            + " store no statistic, so they have no panel here; their paired test's p-value, "
            "where there is one, is charted beside."
        )
    with_p = drawn[drawn["p_value"].notna()]
    if with_p.empty:
        right.caption("No check in these series reports a p-value.")
    else:
        ui.plot(ui.figure("drift", with_p, value="p_value", colours=colours), container=right)
    st.caption(
        "One chart per stream, and per method within it: statistics of different methods "
        "have different scales and never share an axis. Each series keeps its colour in both "
        "charts; red crosses are checks that drift, the dashed red line a stream's "
        "significance threshold."
    )
    table = shown.drop(columns=["details"]).sort_values("created_at", ascending=False)
    table.insert(1, "open", [ui.page_url("drift", check=c) for c in table["check_id"]])
    ui.table(
        ui.paged(table, key="drift-checks", noun="checks", one="check"),
        columns={"open": ui.link_column("Open", help="This check's details")},
    )
    ids = list(table["check_id"])
    flagged = table.loc[table["is_drift"].astype(bool), "check_id"]
    check_id = ui.choose(
        "Check",
        ids,
        param="check",
        default=str(flagged.iloc[0]) if not flagged.empty else None,
        help="By default the newest check that drifts.",
    )
    check = checks[checks["check_id"] == check_id].iloc[0]
    st.markdown(
        f"**{check['stream']} / {ui.md(_subject(check['subject']))}**: {check['finding']} by "
        f"{check['method']}, reference `{check['reference']}`, current `{check['current']}`"
    )
    details = dict(check["details"])
    moved = details.get("moved_dimensions")
    if moved:
        st.caption(
            f"Dimensions that moved ({details.get('n_moved')} of {details.get('n_dimensions')}, "
            f"strongest first): {', '.join(str(d) for d in moved)}"
        )
    with st.expander("Stored details"):
        st.json(details)
    causes.drift_panel(page, check)
    report = check["report_path"]
    if isinstance(report, str) and report:
        path = Path(report)
        if path.is_file():
            st.download_button(
                "Evidently report (HTML)",
                data=path.read_bytes(),
                file_name=path.name,
                mime="text/html",
                icon=":material/download:",
            )
            st.caption(f"Report file: `{path}`")
        else:
            st.caption(f"The Evidently report `{report}` is no longer on this machine.")


def _projection(page: ui.PageContext, data: DriftData) -> None:
    st.subheader("Reference vs current query embeddings")
    windows = data.windows
    if len(windows) < 2:
        ui.missing_area("embeddings")
        st.caption("Two replayed windows with stored embeddings are needed.")
        return
    labels = {
        str(row.run_id): f"{row.window_label} ({row.n_embeddings} embeddings)"
        for row in windows.itertuples()
    }
    run_ids = list(labels)
    reference, current = (
        ui.choose(
            f"{param.capitalize()} window",
            run_ids,
            param=param,
            default=default,
            format_func=labels.__getitem__,
            container=column,
        )
        for param, default, column in zip(
            ("reference", "current"), run_ids[-2:], st.columns(2), strict=True
        )
    )
    try:
        projected: ProjectionData = page.load(
            "projection", reference_run=reference, current_run=current
        )
    except InputError as error:
        st.warning(str(error))
        return
    left, right = st.columns(2)
    ui.plot(ui.figure("projection", projected.points, method=projected.method), container=left)
    if projected.explained:
        left.caption(
            f"PCA fitted on both windows; the two axes explain "
            f"{projected.explained[0]:.1%} and {projected.explained[1]:.1%} of their variance."
        )
    ui.plot(ui.figure("dimensions", projected.dimensions), container=right)
    moved = int((projected.dimensions["p_adjusted"] <= 0.05).sum())
    right.caption(
        f"{moved} of {len(projected.dimensions)} dimensions differ at FDR 0.05 "
        "(two-sample KS per dimension, Benjamini-Hochberg)."
    )
    with st.expander("Per-dimension diagnostics"):
        ui.table(projected.dimensions, labels={"p_adjusted": "p (Benjamini-Hochberg)"})


def render(page: ui.PageContext) -> None:
    """Draw the drift checks and the embedding projection."""
    data: DriftData = page.load("drift")
    if data.checks.empty:
        ui.missing_area("drift")
    else:
        _checks(page, data)
    _projection(page, data)


ui.run_page("Drift", render, areas=())
