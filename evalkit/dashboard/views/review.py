"""Review queue: grade draft goldset items from the keyboard, sign them, and publish.

One item at a time, the most useful first (``evalkit.pipeline.review`` orders the queue):
keys 0-3 grade the highlighted document and move to the next, J/K move between documents,
A accepts and saves, X rejects, S skips. Saving writes one review in a short transaction
under the store's writer lock (``evalkit.dashboard.access.write``); a read-only dashboard
shows the queue and saves nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import streamlit as st

from evalkit.dashboard import access, ui
from evalkit.dashboard.loaders.review import ReviewQueueData
from evalkit.errors import EvalkitError
from evalkit.pipeline import publish_goldset, record_review
from evalkit.records.review import (
    MAX_REVIEWER_CHARS,
    PublishRequest,
    ReviewItem,
    Verdict,
    reviewer_problem,
)
from evalkit.redaction import visible
from evalkit.store import Store
from evalkit.store.review import QueuedItem

GRADE_LABELS: Mapping[int, str] = {
    0: "not relevant",
    1: "related",
    2: "relevant",
    3: "highly relevant",
}
_EXCERPT_CHARS = 1200
_AGREEMENT_CARDS = 4
_REVIEWER_KEY = "review-reviewer"
_SKIPPED_KEY = "review-skipped"
_MESSAGE_KEY = "review-message"


def _grades(item_id: str) -> dict[str, int]:
    grades: dict[str, int] = st.session_state.setdefault(f"review-grades-{item_id}", {})
    return grades


def _cursor_key(item_id: str) -> str:
    return f"review-cursor-{item_id}"


def _grade(item: ReviewItem, grade: int) -> None:
    """Grade the highlighted document and highlight the next one."""
    cursor = st.session_state.get(_cursor_key(item.item_id), 0)
    _grades(item.item_id)[item.documents[cursor].doc_id] = grade
    st.session_state[_cursor_key(item.item_id)] = min(cursor + 1, len(item.documents) - 1)


def _move(item: ReviewItem, step: int) -> None:
    cursor = st.session_state.get(_cursor_key(item.item_id), 0) + step
    st.session_state[_cursor_key(item.item_id)] = max(0, min(cursor, len(item.documents) - 1))


def _skip(item: ReviewItem) -> None:
    st.session_state.setdefault(_SKIPPED_KEY, set()).add(item.item_id)


def _save(item: ReviewItem, verdict: Verdict) -> None:
    """Save the reviewer's review of ``item``; what went wrong is shown, nothing half-saved."""
    reviewer = str(st.session_state.get(_REVIEWER_KEY, "")).strip()
    grades = dict(_grades(item.item_id))
    if verdict is Verdict.accept:
        missing = [doc.doc_id for doc in item.documents if doc.doc_id not in grades]
        if missing:
            st.session_state[_MESSAGE_KEY] = (
                "error",
                f"Grade every document (0-3) before accepting: "
                f"{', '.join(ui.md(doc_id) for doc_id in missing)} not graded yet.",
            )
            return
    question = st.session_state.get(f"review-question-{item.item_id}", item.query.text)

    def work(store: Store) -> None:
        record_review(
            store,
            item.item_id,
            reviewer=reviewer,
            verdict=verdict,
            grades=grades if verdict is Verdict.accept else {},
            question=question if question != item.query.text else None,
        )

    try:
        access.write(access.configured_store_path(), f"review {item.item_id}", work)
    except (EvalkitError, OSError) as error:
        # OSError: a store on a read-only mount (errno 30), not only one of another user.
        st.session_state[_MESSAGE_KEY] = ("error", f"Not saved: {ui.md(error)}")
        return
    word = "Accepted" if verdict is Verdict.accept else "Rejected"
    st.session_state[_MESSAGE_KEY] = (
        "success",
        f"{word} item {ui.md(item.item_id[:8])} as {ui.md(reviewer)}: {ui.md(item.query.text)}",
    )


def _publish(goldset: str, min_reviews: int) -> None:
    def work(store: Store) -> str:
        outcome = publish_goldset(store, goldset, PublishRequest(min_reviews=min_reviews))
        if outcome.publication is None:
            waiting = len(outcome.waiting)
            return f"Nothing to publish yet: no accepted item ({waiting} waiting for reviews)."
        publication = outcome.publication
        fresh = "new version" if outcome.created else "the same content as"
        return (
            f"Published {ui.md(goldset)} {publication.goldset_version} ({fresh}): "
            f"{publication.n_items} items, {publication.n_queries_added} queries added, "
            f"{publication.n_judgments_added} judgments added, "
            f"{publication.n_judgments_changed} changed."
            + (f" {ui.md(outcome.merged_summary())}." if outcome.merged else "")
        )

    try:
        message = access.write(access.configured_store_path(), f"publish {goldset}", work)
    except (EvalkitError, OSError) as error:
        st.session_state[_MESSAGE_KEY] = ("error", f"Not published: {ui.md(error)}")
        return
    st.session_state[_MESSAGE_KEY] = ("success", message)


def _next_item(data: ReviewQueueData, reviewer: str) -> QueuedItem | None:
    skipped: set[str] = st.session_state.get(_SKIPPED_KEY, set())
    for queued in data.items:
        if queued.status == "published" or queued.item.item_id in skipped:
            continue
        if reviewer and reviewer in queued.reviewers:
            continue
        return queued
    return None


def _document_panel(item: ReviewItem, cursor: int) -> None:
    grades = _grades(item.item_id)
    for position, document in enumerate(item.documents):
        current = position == cursor
        with st.container(border=True):
            grade = grades.get(document.doc_id)
            shown = "not graded" if grade is None else f"**{grade}** {GRADE_LABELS[grade]}"
            marker = ":material/arrow_right: " if current else ""
            suggested = (
                ""
                if document.suggested_grade is None
                else f" · suggested {document.suggested_grade} by "
                f"{ui.md(document.suggested_by or '?')}"
            )
            st.markdown(
                f"{marker}**{position + 1}/{len(item.documents)}** {ui.md(document.doc_id)} · "
                f"{shown}{suggested}"
            )
            text = document.text or "(no text stored for this document)"
            st.text(text[:_EXCERPT_CHARS] + ("…" if len(text) > _EXCERPT_CHARS else ""))
            if document.span is not None and document.span.text:
                st.caption(f"Evidence: “{ui.md(document.span.text)}”")


def _review_panel(item: ReviewItem, read_only: bool) -> None:
    cursor = st.session_state.setdefault(_cursor_key(item.item_id), 0)
    st.subheader(ui.md(item.query.text))
    tags = ", ".join(item.query.tags)
    st.caption(
        f"Item {ui.md(item.item_id)} · {item.origin} · priority {item.priority:.2f} · "
        f"{ui.md(item.reason)}" + (f" · tags: {ui.md(tags)}" if tags else "")
    )
    st.text_area(
        "Question (edit it if it is unclear)",
        item.query.text,
        key=f"review-question-{item.item_id}",
    )
    grade_columns = st.columns(4)
    for grade, label in GRADE_LABELS.items():
        grade_columns[grade].button(
            f"{grade} {label}",
            key=f"grade-{grade}",
            shortcut=str(grade),
            on_click=_grade,
            args=(item, grade),
            width="stretch",
        )
    actions = st.columns(5)
    actions[0].button(
        "Previous", key="review-previous", shortcut="K", on_click=_move, args=(item, -1)
    )
    actions[1].button("Next", key="review-next", shortcut="J", on_click=_move, args=(item, 1))
    actions[2].button(
        "Accept and save",
        key="review-accept",
        shortcut="A",
        type="primary",
        on_click=_save,
        args=(item, Verdict.accept),
        disabled=read_only,
    )
    actions[3].button(
        "Reject question",
        key="review-reject",
        shortcut="X",
        on_click=_save,
        args=(item, Verdict.reject),
        disabled=read_only,
    )
    actions[4].button("Skip", key="review-skip", shortcut="S", on_click=_skip, args=(item,))
    _document_panel(item, cursor)


def _queue_table(data: ReviewQueueData) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "item": queued.item.item_id,
                "status": queued.status,
                "origin": str(queued.item.origin),
                "priority": queued.item.priority,
                "question": visible(queued.item.query.text),
                "documents": len(queued.item.documents),
                "reviewers": visible(", ".join(queued.reviewers)),
                "reason": visible(queued.item.reason),
            }
            for queued in data.items
        ]
    )


def _agreement_table(data: ReviewQueueData) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "reviewers": visible(f"{pair.reviewer_a} / {pair.reviewer_b}"),
                "items": pair.n_items,
                "graded pairs": pair.n_pairs,
                "kappa": pair.kappa,
                "low": pair.low,
                "high": pair.high,
                "same verdict": pair.verdict_agreement,
            }
            for pair in data.agreement
        ]
    )


def render(page: ui.PageContext) -> None:
    """Draw the review queue."""
    read_only = access.reviews_read_only()
    status: pd.DataFrame = page.load("review_goldsets")
    if status.empty:
        ui.missing_area("review")
        return
    goldset = ui.choose("Goldset", list(status["goldset"]), param="goldset")
    counts = status.set_index("goldset").loc[goldset]
    cards = st.columns(5)
    for card, column in zip(
        cards, ("open", "accepted", "rejected", "published", "reviewers"), strict=True
    ):
        card.metric(column, int(counts[column]))
    reviewer = st.text_input(
        "Reviewer (your name signs your reviews)",
        key=_REVIEWER_KEY,
        disabled=read_only,
        max_chars=MAX_REVIEWER_CHARS,
    ).strip()
    problem = reviewer_problem(reviewer)
    if problem is not None:
        st.error(f"This name cannot sign a review: {ui.md(problem)}", icon=":material/badge:")
    if read_only:
        st.info(
            "This dashboard is read-only: it shows the queue and saves nothing. Start it with "
            "`evalkit dashboard` on a loopback address (or `--allow-reviews`) to review.",
            icon=":material/lock:",
        )
    message = st.session_state.pop(_MESSAGE_KEY, None)
    if message is not None:
        (st.success if message[0] == "success" else st.error)(message[1])
    data: ReviewQueueData = page.load("review_queue", goldset=goldset)
    queued = _next_item(data, reviewer)
    if queued is None:
        st.success("Nothing left for you to review in this goldset.", icon=":material/done_all:")
    else:
        st.caption(
            "Keys: **0-3** grade the highlighted document · **J/K** next/previous document · "
            "**A** accept and save · **X** reject · **S** skip"
        )
        if not reviewer and not read_only:
            st.warning("Type your name above before saving: every review is signed.")
        _review_panel(queued.item, read_only)
    st.subheader("Publish")
    min_reviews = int(
        st.number_input("Reviewers needed per item", min_value=1, max_value=20, value=1, step=1)
    )
    st.button(
        f"Publish the accepted items as a new version of {ui.md(goldset)}",
        key="review-publish",
        on_click=_publish,
        args=(goldset, min_reviews),
        disabled=read_only,
    )
    if data.publications:
        ui.table(pd.DataFrame([publication.to_dict() for publication in data.publications]))
    st.subheader("Reviewer agreement (Cohen's kappa)")
    if data.agreement:
        st.caption(
            "Linear-weighted kappa over the documents both reviewers graded (0-3), with its "
            "95% bootstrap interval; 'same verdict' is the share of shared items both "
            "accepted or both rejected."
        )
        shown = data.agreement[:_AGREEMENT_CARDS]
        for card, pair in zip(st.columns(len(shown)), shown, strict=True):
            interval = (
                ""
                if pair.low is None or pair.high is None
                else f"95% interval {pair.low:.2f} to {pair.high:.2f}"
            )
            card.metric(
                f"{ui.md(pair.reviewer_a)} / {ui.md(pair.reviewer_b)}",
                "-" if pair.kappa is None else f"{pair.kappa:.2f}",
                delta=f"{pair.n_pairs} graded pairs, {pair.n_items} items",
                delta_color="off",
                delta_arrow="off",
                help=interval or None,
            )
        ui.table(_agreement_table(data))
    else:
        st.caption("Agreement needs two reviewers who reviewed the same items.")
    st.subheader("Queue")
    ui.table(_queue_table(data))


ui.run_page("Review queue", render, areas=("review",), needs_evaluation=False)
