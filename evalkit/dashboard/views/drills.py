"""Drills: what each incident drill of the configured monitoring caught, how many cycles
after the injection, naming which cause, and its false alarms (``evalkit drill``)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from evalkit.config import load_settings
from evalkit.dashboard import ui
from evalkit.drill.reports import drill_reports


def _incidents(report: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for result in report["incidents"]:
        first = result["first_alert"]
        rows.append(
            {
                "incident": result["incident"],
                "severity": result["severity"],
                "caught at cycle": None if first is None else first["cycle"],
                "first alert": None if first is None else first["rule"],
                "cause named first": result["top_cause"],
                "own cause's rank": result["cause_rank"],
                "resolved after": result["resolved_after"],
                "injected": result["injected"] or result["gap"],
            }
        )
    return pd.DataFrame(rows)


def _effects(report: dict[str, Any]) -> pd.DataFrame:
    rows = [
        {"incident": result["incident"], "measure": measure, **figures}
        for result in report["incidents"]
        for measure, figures in result["effect"].items()
    ]
    frame = pd.DataFrame(rows, columns=["incident", "measure", "before", "after"])
    return frame.assign(change=frame["after"] - frame["before"])


def render(page: ui.PageContext) -> None:
    """Draw a drill's report."""
    reports = drill_reports(load_settings().home)
    if not reports:
        st.info(
            "No drill yet: `evalkit drill` rehearses incidents (deletions, duplicates, stale "
            "content, a model mismatch) against your own [[jobs]] and [[alerts.rules]], on "
            "scratch copies of the collections they read (docs/drills.md).",
            icon=":material/info:",
        )
        return
    by_id = {str(report["drill_id"]): report for report in reports}
    report = by_id[ui.choose("Drill", list(by_id), param="drill")]
    incidents = report["incidents"]
    cards = st.columns(3)
    caught = sum(result["detected"] for result in incidents)
    named = sum(result["cause_rank"] == 1 for result in incidents)
    cards[0].metric("incidents caught", f"{caught} of {len(incidents)}")
    cards[1].metric("causes named first", f"{named} of {len(incidents)}")
    cards[2].metric(
        "false alarms",
        len(report["false_alarms"]),
        help=f"Alerts raised in the drill's {report['quiet_cycles']} quiet cycles.",
    )
    for note in report.get("notes", []):
        st.info(note, icon=":material/info:")
    for rule, error in report.get("rule_errors", {}).items():
        st.warning(f"Rule {rule} could not be evaluated, so it could not fire: {error}")
    st.subheader("Incidents")
    ui.table(_incidents(report), digits=None)
    effects = _effects(report)
    if not effects.empty:
        st.subheader("Effect on the goldset figures")
        ui.table(effects)
    st.caption(f"The drill's own store, with its runs and alerts: `{report['store']}`")


ui.run_page("Drills", render, areas=())
