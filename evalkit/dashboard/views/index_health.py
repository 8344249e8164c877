"""Index health: the latest audit's findings per collection, and their history; replay
latency against index size and the freshness of each checked index at the end."""

from __future__ import annotations

import streamlit as st

from evalkit.dashboard import ui
from evalkit.dashboard.freshness import panel as freshness_panel
from evalkit.dashboard.index_latency import panel as latency_panel
from evalkit.dashboard.loaders.index_health import IndexHealthData

SEVERITIES = ("critical", "warning", "info")


def render(page: ui.PageContext) -> None:
    """Draw a collection's audits."""
    everything: IndexHealthData = page.load("index_health")
    if everything.audits.empty:
        ui.missing_area("audit")
        latency_panel(page)
        freshness_panel(page)
        return
    audits = everything.audits
    wanted_audit = st.query_params.get("audit")
    named = audits[audits["audit_id"] == wanted_audit]
    collections = sorted(audits["collection"].unique())
    columns = st.columns(2)
    collection = ui.choose(
        "Collection",
        collections,
        param="collection",
        default=str(named.iloc[0]["collection"]) if not named.empty else None,
        container=columns[0],
    )
    ids = list(audits.loc[audits["collection"] == collection, "audit_id"])
    audit_id = ui.choose("Audit", ids, param="audit", container=columns[1])
    data: IndexHealthData = page.load("index_health", collection=collection, audit_id=audit_id)
    findings = data.findings
    cards = st.columns(len(SEVERITIES) + 1)
    this = audits[audits["audit_id"] == audit_id].iloc[0]
    cards[0].metric("documents", int(this["n_documents"]))
    for column, severity in zip(cards[1:], SEVERITIES, strict=True):
        column.metric(severity, int((findings["severity"] == severity).sum()))
    st.subheader(f"Findings of audit {audit_id}")
    skipped = str(this.get("skipped") or "")
    if skipped:
        # A check that did not run found nothing because it looked at nothing.
        st.warning(f"Not checked by this audit: {ui.md(skipped)}", icon=":material/block:")
    if findings.empty:
        st.success(
            "The checks this audit ran found nothing." if skipped else "This audit found nothing."
        )
    else:
        table = findings.drop(columns=["doc_ids", "clusters", "query_ids"])
        ui.table(table)
        for row in findings.itertuples():
            if len(row.doc_ids) or len(row.clusters) or len(row.query_ids):
                with st.expander(
                    f"{row.kind}: affected documents and queries",
                    expanded=row.kind == st.query_params.get("finding"),
                ):
                    if len(row.clusters):
                        st.markdown("**Clusters**")
                        for cluster in row.clusters[:50]:
                            st.text(", ".join(str(doc) for doc in cluster))
                    elif len(row.doc_ids):
                        st.text(", ".join(str(doc) for doc in row.doc_ids[:500]))
                    if len(row.query_ids):
                        st.caption("Queries: " + ", ".join(str(q) for q in row.query_ids[:200]))
    st.subheader("History")
    history = data.measurements
    if not history.empty:
        names = sorted(history["name"].unique())
        default = [n for n in names if n.startswith(("findings:", "recall", "judged", "ann"))][
            :6
        ] or names[:4]
        chosen = st.multiselect("Measurements", names, default=default)
        ui.plot(
            ui.figure(
                "measurements",
                history[history["name"].isin(chosen)],
                title=f"Audits of {collection}: shares and counts on separate axes",
            )
        )
    st.subheader(f"Audits of {collection}")
    of_collection = audits[audits["collection"] == collection]
    table = of_collection.assign(
        open=[ui.page_url("index_health", audit=a) for a in of_collection["audit_id"]]
    )
    ui.table(
        ui.paged(table, key="index-health-audits", noun="audits", one="audit"),
        digits=None,
        columns={"open": ui.link_column("Open", help="This audit's findings")},
    )
    latency_panel(page)
    freshness_panel(page)


ui.run_page("Index health", render, areas=("audit",))
