"""The "Probable causes" panel: what the store knows about why a run regressed, ranked, each
cause linking to the page that shows its evidence (Compare runs, Drift and Alerts show it).

The causes are joined by ``evalkit.causes`` exactly as `evalkit explain` joins them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from evalkit.causes import Cause, Explanation
from evalkit.dashboard import formats, ui
from evalkit.dashboard.loaders.compare import CompareData
from evalkit.errors import ConfigError, InputError, NotFoundError

__all__ = [
    "PAGE_FILES",
    "alert_panel",
    "cause_line",
    "drift_panel",
    "panel",
    "render_explanation",
    "share_label",
]

PAGE_FILES = {
    "overview": "views/overview.py",
    "quality": "views/quality.py",
    "compare": "views/compare.py",
    "query": "views/query.py",
    "goldsets": "views/goldsets.py",
    "drift": "views/drift.py",
    "traffic": "views/traffic.py",
    "answers": "views/answers.py",
    "index_health": "views/index_health.py",
    "alerts": "views/alerts.py",
}
"""The page script of each page name a cause links to (its URL path)."""

# Red and orange mean "bad" and "warning" on every page; a cause's share is neither.
_SHARE_COLOURS = ((0.5, "blue"), (0.2, "violet"), (0.0, "gray"))


def share_label(cause: Cause) -> tuple[str, str]:
    """A cause's share of the loss for people ("100% of the loss", "40% of the loss
    (residual)") and its badge colour."""
    colour = next(c for limit, c in _SHARE_COLOURS if cause.score >= limit)
    label = f"{cause.score:.0%} of the loss" + ("" if cause.measured else " (residual)")
    return label, colour


def cause_line(cause: Cause) -> None:
    """One cause in a line: its kind and share badge, and a link to its evidence (the
    Overview's cards show a series' top cause so)."""
    label, colour = share_label(cause)
    st.badge(f"{cause.kind.replace('_', ' ')}: {label}", color=colour)
    _evidence_link(cause)


def _evidence_link(cause: Cause) -> None:
    st.page_link(
        PAGE_FILES[cause.link.page],
        label=cause.link.label,
        icon=":material/arrow_forward:",
        query_params=dict(cause.link.params),
    )


def _cause(index: int, cause: Cause, key: str) -> None:
    with st.container(border=True):
        label, colour = share_label(cause)
        head = st.columns([3, 1])
        head[0].markdown(f"**{index}. {cause.kind.replace('_', ' ')}**")
        with head[1]:
            st.badge(label, color=colour)
        st.markdown(cause.statement)
        _evidence_link(cause)
        if cause.evidence:
            with st.expander(f"Evidence ({formats.plural(len(cause.evidence), 'row')})"):
                ui.table(
                    pd.DataFrame([dict(row) for row in cause.evidence]),
                    key=f"{key}-evidence-{index}",
                )


def render_explanation(explanation: Explanation, *, key: str = "causes") -> None:
    """Draw an explanation: its headline, then each cause with its share, statement, link
    and evidence, best first."""
    st.subheader("Probable causes")
    st.caption(
        f"{explanation.headline()}. Each cause's share is how much of the "
        f"{explanation.measure} loss it can account for: traced query by query where the "
        "store holds the evidence, else the residual no traced cause explains (docs/cli.md, "
        "`evalkit explain`)."
    )
    if not explanation.causes:
        st.info(
            "The store holds no evidence of a cause for this change: no audit finding, "
            "model, index, goldset, k or settings change, drift check or failed query.",
            icon=":material/search_off:",
        )
    for index, cause in enumerate(explanation.causes, start=1):
        _cause(index, cause, key)
    for note in explanation.notes:
        st.info(note, icon=":material/lightbulb:")


def _load(page: ui.PageContext, key: str, **parameters: Any) -> None:
    try:
        explanation: Explanation = page.load("causes", **parameters)
    except (ConfigError, InputError, NotFoundError) as error:
        st.subheader("Probable causes")
        st.info(f"No probable causes to show: {error}", icon=":material/info:")
        return
    render_explanation(explanation, key=key)


def panel(page: ui.PageContext, data: CompareData) -> None:
    """The panel under a comparison whose decision is not pass (Compare runs), with the
    comparison's measures and test settings."""
    if data.decision == "pass":
        return
    _load(
        page,
        "compare-causes",
        baseline=data.baseline,
        candidate=data.candidate,
        measures=list(data.measures),
        alpha=float(data.settings.get("alpha", 0.05)),
        min_effect=float(data.settings.get("min_effect", 0.0)),
    )


def drift_panel(page: ui.PageContext, check: pd.Series) -> None:
    """The panel for a precision drift check (its baseline and newest run); nothing for
    other streams, whose checks are about embeddings rather than a regression."""
    if check["stream"] != "precision":
        return
    _load(page, "drift-causes", drift_check=str(check["check_id"]))


def alert_panel(page: ui.PageContext, alert: Mapping[str, Any]) -> None:
    """The panel for a precision alert (the runs its evidence names)."""
    if alert["kind"] != "precision_regression":
        return
    _load(page, "alert-causes", alert=str(alert["alert_id"]))
