"""Alerts: history with status and delivery attempts, conditions firing now, job runs."""

from __future__ import annotations

import streamlit as st

from evalkit.dashboard import causes, ui
from evalkit.dashboard.loaders import AREA_HINTS, AlertsData

STATUSES = ("all", "firing", "resolved")


def render(page: ui.PageContext) -> None:
    """Draw the alert history."""
    status = ui.choose("Status", STATUSES, param="status")
    data: AlertsData = page.load("alerts", status=None if status == "all" else status)
    cards = st.columns(4)
    cards[0].metric("firing now", len(data.open_alerts))
    cards[1].metric("notifications", len(data.alerts))
    cards[2].metric("undelivered", int((data.alerts["pending"] > 0).sum()))
    cards[3].metric("abandoned", int((data.alerts["abandoned"] > 0).sum()))
    st.subheader("Firing now")
    if data.open_alerts.empty:
        st.caption("No condition is firing.")
    else:
        st.dataframe(data.open_alerts, hide_index=True)
    st.subheader("History")
    if data.alerts.empty:
        ui.missing_area("alerts")
    else:
        st.dataframe(data.alerts, hide_index=True)
        ids = list(data.alerts["alert_id"])
        alert_id = ui.choose("Alert", ids, param="alert")
        row = data.alerts[data.alerts["alert_id"] == alert_id].iloc[0]
        st.markdown(f"**{row['title']}** ({row['severity']}, {row['status']})")
        st.text(row["summary"])
        causes.alert_panel(page, row)
        attempts = page.load("alert_deliveries", alert_id=alert_id)
        if attempts.empty:
            st.caption("No delivery attempted yet.")
        else:
            st.dataframe(attempts, hide_index=True, column_config=ui.number_columns(attempts, 1))
    st.subheader("Job runs")
    if data.jobs is None:
        st.caption(AREA_HINTS["jobs"])
    elif data.jobs.empty:
        st.caption("No job has run yet.")
    else:
        st.dataframe(data.jobs, hide_index=True, column_config=ui.number_columns(data.jobs, 1))


ui.run_page("Alerts", render, areas=("alerts",))
