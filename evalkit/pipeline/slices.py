"""Where quality fails: a replayed traffic window cut into slices (docs/slices.md).

``window_slices`` assigns a window's queries to the reference topics (fitting them on the first
replayed window, or the one the user names, when none are stored or a refit is asked), finds
which are out of scope (best score below the floor calibrated on the retriever's goldset run,
or a top k the assessor graded all 0), stores each slice's figures and tests them against the
baseline window with the false discovery rate controlled. ``queue_content_gaps`` sends the
central queries of the out-of-scope slices that grew to the review queue, as drafts with no
judged document. ``goldset_run_slices`` gives a goldset run's exact measures per tag, tenant
or topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evalkit.drift.slices import (
    DEFAULT_FALSE_DISCOVERY_RATE,
    SliceChange,
    SliceFigures,
    content_gaps,
    slice_changes,
)
from evalkit.drift.topic_sets import StoredTopicSet
from evalkit.errors import ConfigError, NotFoundError
from evalkit.goldset.review import review_item_id
from evalkit.pipeline.slice_figures import topic_set_for, window_figures
from evalkit.records import Query
from evalkit.records.jsonready import json_ready
from evalkit.records.review import ReviewItem, ReviewOrigin
from evalkit.store.access import WriterAccess
from evalkit.store.review import QueueCounts, save_items
from evalkit.store.runs import get_run
from evalkit.store.store import Store
from evalkit.store.traffic import (
    StoredWindowSummary,
    latest_window_summary,
    list_window_summaries,
    window_summary_of_run,
)

__all__ = [
    "SliceFigures",
    "StoredTopicSet",
    "WindowSlices",
    "queue_content_gaps",
    "window_gaps",
    "window_slices",
]


@dataclass(frozen=True, slots=True)
class WindowSlices:
    """A window's slices: its figures, the topic set they use (``refitted``: fitted by this
    call, and how it maps to the set before), the baseline window and each slice's change
    against it, and notes on what could not be computed."""

    window_label: str
    run_id: str
    topics: StoredTopicSet | None
    refitted: bool
    figures: tuple[SliceFigures, ...]
    baseline_window: str | None
    baseline_run_id: str | None
    changes: tuple[SliceChange, ...]
    false_discovery_rate: float
    notes: tuple[str, ...] = ()
    baseline_figures: tuple[SliceFigures, ...] = field(default=(), repr=False)

    def figure(self, name: str) -> SliceFigures | None:
        """The figures of slice ``name``, or None."""
        return next((f for f in self.figures if f.slice == name), None)

    def change(self, name: str) -> SliceChange | None:
        """The change of slice ``name`` against the baseline, or None."""
        return next((c for c in self.changes if c.slice == name), None)

    @property
    def content_gaps(self) -> tuple[SliceFigures, ...]:
        """The window's content gaps (``evalkit.drift.slices.content_gaps``)."""
        return tuple(content_gaps(self.figures, self.changes))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        topics = None if self.topics is None else self.topics.to_dict()
        if topics is not None:
            del topics["centroids"]
        return json_ready(self, omit=("topics", "baseline_figures")) | {
            "figures": [figure.to_dict() for figure in self.figures],
            "changes": [change.to_dict() for change in self.changes],
            "topics": topics,
            "content_gaps": [f.slice for f in self.content_gaps],
            "family": f"{len(self.changes)} slices, each tested for a change of share and, "
            "where both windows have it from one source, a drop of precision; "
            "Benjamini-Hochberg over each",
        }


def _summary(store: Store, window: str | None, run_id: str | None) -> StoredWindowSummary:
    if run_id is not None:
        found = window_summary_of_run(store, get_run(store, run_id).run_id)
        if found is None:
            raise NotFoundError(f"run {run_id} is not a traffic replay: only windows have slices")
        return found
    if window is None:
        raise ConfigError("name the window (or the replay run) to slice")
    return latest_window_summary(store, window)


def _baseline(store: Store, label: str, current: StoredWindowSummary) -> StoredWindowSummary:
    """The newest replay of window ``label`` by ``current``'s retriever (else the newest
    replay of it): precision and scores are compared within one retriever."""
    retriever = get_run(store, current.run_id).retriever_id
    replays = list_window_summaries(store, window_label=label, limit=1000)
    for replay in replays:
        if get_run(store, replay.run_id).retriever_id == retriever:
            return replay
    return latest_window_summary(store, label)


def window_slices(
    access: WriterAccess,
    window: str | None = None,
    *,
    run_id: str | None = None,
    baseline: str | None = None,
    reference: str | None = None,
    refit: bool = False,
    n_topics: int | None = None,
    kinds: Sequence[str] = ("topic", "tenant", "tag"),
    false_discovery_rate: float = DEFAULT_FALSE_DISCOVERY_RATE,
    min_drop: float = 0.0,
    seed: int = 0,
) -> WindowSlices:
    """Slice window ``window``'s newest replay (or replay ``run_id``), store its figures and test
    them against ``baseline`` (default: the window the topics were fitted on). See the module
    docstring; ConfigError when topics cannot be fitted or were fitted with another model."""
    unknown = set(kinds) - {"topic", "tenant", "tag"}
    if unknown:
        raise ConfigError(f"unknown slice kind(s) {sorted(unknown)}: use topic, tenant or tag")
    with access.writer("traffic slices") as store:
        summary = _summary(store, window, run_id)
        topics, refitted = (
            topic_set_for(
                store, summary, reference=reference, refit=refit, n_topics=n_topics, seed=seed
            )
            if "topic" in kinds
            else (None, False)
        )
        figures, notes = window_figures(store, summary, topics, kinds)
        base_label = baseline or (None if topics is None else topics.reference_window)
        base = None if base_label is None else _baseline(store, base_label, summary)
        base_figures: list[SliceFigures] = []
        if base is not None and base.run_id != summary.run_id:
            base_figures, _ = window_figures(store, base, topics, kinds)
        elif base is not None:
            base_figures = figures
    changes = slice_changes(
        base_figures, figures, false_discovery_rate=false_discovery_rate, min_drop=min_drop
    )
    if refitted and topics is not None and topics.matched is not None:
        matched = topics.matched
        notes.append(
            f"topics refitted on window {topics.reference_window} (version {topics.version}, "
            f"was {topics.previous_version}): {len(matched.same)} kept their meaning, new "
            f"{list(matched.new)}, gone {list(matched.gone)} (old numbers)"
        )
    return WindowSlices(
        window_label=summary.window_label,
        run_id=summary.run_id,
        topics=topics,
        refitted=refitted,
        figures=tuple(figures),
        baseline_window=None if base is None else base.window_label,
        baseline_run_id=None if base is None else base.run_id,
        changes=tuple(changes),
        false_discovery_rate=false_discovery_rate,
        notes=tuple(notes),
        baseline_figures=tuple(base_figures),
    )


def window_gaps(
    access: WriterAccess, window: str, *, queue_for: str | None = None, per_gap: int = 3
) -> tuple[WindowSlices, QueueCounts | None]:
    """Window ``window`` sliced (``window_slices``, every kind, so its stored slices stay
    whole), and, with ``queue_for``, each content gap's central queries queued for review."""
    sliced = window_slices(access, window)
    if queue_for is None:
        return sliced, None
    return sliced, queue_content_gaps(access, sliced, queue_for, per_gap=per_gap)


def queue_content_gaps(
    access: WriterAccess, slices: WindowSlices, goldset: str, *, per_gap: int = 3
) -> QueueCounts:
    """Queue each content gap's central queries in this window (up to ``per_gap``) for review
    into ``goldset``, as drafts with no judged document: a reviewer finds (or writes) the
    documents that answer them."""
    items = []
    for gap in slices.content_gaps:
        central = list(
            gap.details.get("window_central_queries") or gap.details.get("central_queries") or []
        )
        for ordinal, text in enumerate(central[:per_gap]):
            query = Query(
                id=f"gap-{slices.window_label}-{gap.slice.replace(':', '-')}-{ordinal}",
                text=text,
                tags=("content-gap", gap.slice, f"window:{slices.window_label}"),
            )
            terms = ", ".join(gap.details.get("window_terms") or gap.details.get("terms") or [])
            items.append(
                ReviewItem(
                    item_id=review_item_id(goldset, ReviewOrigin.traffic, text, None, None),
                    goldset=goldset,
                    origin=ReviewOrigin.traffic,
                    query=query,
                    documents=(),
                    priority=float(gap.out_of_scope_share or 0.0),
                    reason=f"content gap: {gap.slice} ({terms}) is {gap.share:.1%} of window "
                    f"{slices.window_label}, {gap.out_of_scope_share or 0:.0%} of it out of scope",
                    provenance={
                        "window": slices.window_label,
                        "run_id": slices.run_id,
                        "slice": gap.slice,
                        "topic_version": "" if slices.topics is None else slices.topics.version,
                    },
                )
            )
    with access.writer("traffic gaps") as store:
        return save_items(store, items)
