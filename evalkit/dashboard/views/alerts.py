"""Alerts: history with status and delivery attempts, conditions firing now, job runs."""

from __future__ import annotations

import streamlit as st

from evalkit.dashboard import causes, ui
from evalkit.dashboard.loaders.alerts import AlertsData
from evalkit.dashboard.loaders.shared import AREA_HINTS

STATUSES = ("all", "firing", "resolved")


def _alert(page: ui.PageContext, data: AlertsData) -> str:
    """The alert whose deliveries are shown: the linked one (checked to exist), else one
    picked among this page of the history."""
    ids = [str(a) for a in data.alerts["alert_id"]]
    ui.check_link("Alert", "alert", lambda wanted: page.load("alert", alert_id=wanted) is not None)
    wanted = st.query_params.get("alert")
    options = ids if wanted is None or wanted in ids else [wanted, *ids]
    return str(ui.choose("Alert", options, param="alert"))


def render(page: ui.PageContext) -> None:
    """Draw the alert history."""
    status = ui.choose("Status", STATUSES, param="status")
    chosen = None if status == "all" else status
    first: AlertsData = page.load("alerts", status=chosen, page_size=ui.PAGE_ROWS)
    cards = st.columns(4)
    cards[0].metric("firing now", len(first.open_alerts))
    cards[1].metric("notifications", f"{first.total:,}")
    cards[2].metric("undelivered", f"{first.undelivered:,}")
    cards[3].metric("abandoned", f"{first.abandoned:,}")
    st.subheader("Firing now")
    if first.open_alerts.empty and first.total == 0:
        # Nothing was ever raised: whether no rule is configured or none has fired, say how
        # rules come to be evaluated rather than that all is well.
        st.caption(f"No alert has been raised yet. {AREA_HINTS['alerts']}")
    elif first.open_alerts.empty:
        st.caption("No condition is firing.")
    else:
        ui.table(first.open_alerts)
    st.subheader("History")
    if first.total == 0:
        ui.missing_area("alerts")
    else:
        start = ui.page_start(first.total, key="alerts-page", noun="alerts", one="alert")
        data: AlertsData = (
            first
            if start == 0
            else page.load("alerts", status=chosen, offset=start, page_size=ui.PAGE_ROWS)
        )
        history = data.alerts.assign(
            open=[ui.page_url("alerts", status=status, alert=a) for a in data.alerts["alert_id"]]
        )
        ui.table(
            history,
            digits=None,
            columns={"open": ui.link_column("Open", help="This alert's deliveries")},
        )
        alert_id = _alert(page, data)
        row = page.load("alert", alert_id=alert_id)
        st.markdown(f"**{ui.md(row['title'])}** ({row['severity']}, {row['status']})")
        st.text(row["summary"])
        causes.alert_panel(page, row)
        attempts = page.load("alert_deliveries", alert_id=alert_id)
        if attempts.empty:
            st.caption("No delivery attempted yet.")
        else:
            ui.table(attempts, digits=1)
    st.subheader("Job runs")
    if ui.has_rows(first.jobs, area="jobs", empty=f"No job has run yet: {AREA_HINTS['jobs']}"):
        if first.total_jobs > len(first.jobs):
            st.caption(f"The newest {len(first.jobs):,} of {first.total_jobs:,} job runs.")
        ui.table(ui.paged(first.jobs, key="alerts-jobs", noun="job runs", one="job run"), digits=1)


ui.run_page("Alerts", render, areas=("alerts",))
