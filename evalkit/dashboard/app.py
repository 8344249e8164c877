"""evalkit's dashboard: start it with `evalkit dashboard` (or `streamlit run` on this file).

It reads the configured store (``EVALKIT_STORE_PATH``, else ``$EVALKIT_HOME/evalkit.duckdb``)
read-only; the review queue's page alone saves reviews to it, in short transactions, unless
the dashboard is read-only (``evalkit dashboard --read-only``, the default beyond loopback).
"""

from __future__ import annotations

import streamlit as st

from evalkit.dashboard import access, ui
from evalkit.dashboard.timing import timed_run
from evalkit.errors import EvalkitError

st.set_page_config(page_title="evalkit", page_icon=":material/monitoring:", layout="wide")

# The pages live in views/, not pages/: beside a pages/ directory Streamlit runs the first
# request of a process in its older multipage mode, and when that request is a deep link
# (an alert's link to Quality over time, say) the page script runs without this file, so
# the process shows file names in the sidebar until someone opens the root URL.
PAGES = {
    "Retrieval quality": [
        st.Page("views/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page("views/quality.py", title="Quality over time", icon=":material/show_chart:"),
        st.Page("views/compare.py", title="Compare runs", icon=":material/compare_arrows:"),
        st.Page("views/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:"),
        st.Page("views/query.py", title="Query drill-down", icon=":material/manage_search:"),
        st.Page("views/goldsets.py", title="Goldsets", icon=":material/fact_check:"),
        st.Page("views/review.py", title="Review queue", icon=":material/rate_review:"),
    ],
    "Monitoring": [
        st.Page("views/drift.py", title="Drift", icon=":material/moving:"),
        st.Page("views/traffic.py", title="Traffic", icon=":material/traffic:"),
        st.Page("views/slices.py", title="Slices", icon=":material/donut_small:"),
        st.Page("views/answers.py", title="Answers", icon=":material/question_answer:"),
        st.Page("views/index_health.py", title="Index health", icon=":material/health_and_safety:"),
        st.Page("views/alerts.py", title="Alerts", icon=":material/notifications:"),
        st.Page("views/drills.py", title="Drills", icon=":material/local_fire_department:"),
    ],
}

with timed_run() as script_run:
    navigation = st.navigation(PAGES)
    script_run.page = navigation.url_path
    ui.restore_selections(navigation.url_path)
    with st.sidebar:
        try:
            mode = "read-only" if access.reviews_read_only() else "reviews saved"
            st.caption(f"Store ({mode}): `{access.configured_store_path()}`")
        except EvalkitError as error:
            st.caption(f"Store: not configured ({error})")
        if st.button("Reload data", icon=":material/refresh:", help="Forget cached figures."):
            st.cache_data.clear()
    navigation.run()
    # Not on a switch to another page (an exception ends the run): its parameters are the
    # other page's.
    ui.remember_selections(navigation.url_path)
