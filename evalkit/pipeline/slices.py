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

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from evalkit.clock import utc_now
from evalkit.drift.slices import (
    ALL,
    CONTENT_GAP_SHARE,
    DEFAULT_FALSE_DISCOVERY_RATE,
    OUT_OF_SCOPE_QUANTILE,
    SliceChange,
    SlicedQuery,
    SliceFigures,
    scope_floor,
    slice_changes,
    slice_figures,
)
from evalkit.drift.topics import (
    MIN_QUERIES,
    OUTSIDE,
    TopicMatch,
    TopicSet,
    emerging_subjects,
    fit_topics,
    match_topics,
    slice_terms,
    topic_slice,
)
from evalkit.embedding.fingerprint import same_model
from evalkit.embedding.query import TextEmbedder
from evalkit.errors import ConfigError, NotFoundError
from evalkit.goldset.review import review_item_id
from evalkit.judging.window import mean_interval
from evalkit.pipeline.traffic_labels import calibration_run, found_top_scores
from evalkit.records import Query
from evalkit.records.jsonready import json_ready
from evalkit.records.review import ReviewItem, ReviewOrigin
from evalkit.store.access import WriterAccess
from evalkit.store.goldsets import load_stored_goldset
from evalkit.store.review import QueueCounts, save_items
from evalkit.store.runs import get_run, query_metrics
from evalkit.store.slices import (
    current_topic_set,
    query_values,
    save_slice_figures,
    save_topic_set,
    slice_figures_of_run,
)
from evalkit.store.store import Store
from evalkit.store.traffic import (
    StoredWindowSummary,
    latest_window_summary,
    list_window_summaries,
    load_sample_queries,
    window_embeddings,
    window_summary_of_run,
)

__all__ = [
    "CONTENT_GAP_SHARE",
    "GoldsetSlice",
    "SliceFigures",
    "StoredTopicSet",
    "WindowSlices",
    "goldset_run_slices",
    "goldset_topics",
    "queue_content_gaps",
    "window_slices",
]

_PRECISION_SOURCES = ("assessor", "estimate")


@dataclass(frozen=True, slots=True)
class StoredTopicSet:
    """A stored reference topic set: the set, the window it was fitted on, when, and how it
    maps to the set it replaced (None for the first)."""

    topics: TopicSet
    fitted_at: datetime
    reference_run_id: str
    reference_window: str
    n_queries: int
    previous_version: str | None
    matched: TopicMatch | None

    @property
    def version(self) -> str:
        """The set's version."""
        return str(self.topics.version)

    def to_dict(self) -> dict[str, Any]:
        """What ``save_topic_set`` stores of it (``centroids`` included)."""
        described = self.topics.to_dict()
        return {
            "version": self.version,
            "fitted_at": self.fitted_at,
            "model_fingerprint": self.topics.model_fingerprint,
            "reference_run_id": self.reference_run_id,
            "reference_window": self.reference_window,
            "n_queries": self.n_queries,
            "seed": self.topics.seed,
            "centroids": described["centroids"],
            "topics": described["topics"],
            "previous_version": self.previous_version,
            "matched": None
            if self.matched is None
            else {
                "same": {str(new): old for new, old in self.matched.same.items()},
                "new": list(self.matched.new),
                "gone": list(self.matched.gone),
            },
        }

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> StoredTopicSet:
        """The set ``to_dict`` described."""
        match = stored["matched"]
        return cls(
            topics=TopicSet.from_dict(stored),
            fitted_at=stored["fitted_at"],
            reference_run_id=stored["reference_run_id"],
            reference_window=stored["reference_window"],
            n_queries=int(stored["n_queries"]),
            previous_version=stored["previous_version"],
            matched=None
            if match is None
            else TopicMatch(
                same={int(new): int(old) for new, old in match["same"].items()},
                new=tuple(match["new"]),
                gone=tuple(match["gone"]),
            ),
        )


def _current(store: Store) -> StoredTopicSet | None:
    found = current_topic_set(store)
    return None if found is None else StoredTopicSet.from_dict(found)


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
        """Topic slices mostly out of scope (``CONTENT_GAP_SHARE``) whose share grew
        significantly against the baseline."""
        return tuple(
            f
            for f in self.figures
            if f.kind == "topic"
            and (f.out_of_scope_share or 0.0) >= CONTENT_GAP_SHARE
            and (change := self.change(f.slice)) is not None
            and change.grew
        )

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


def _window_queries(
    store: Store, summary: StoredWindowSummary
) -> tuple[dict[str, str], list[str], npt.NDArray[np.float32]]:
    texts = load_sample_queries(store, summary.sample_id)
    ids, vectors = window_embeddings(store, summary.run_id)
    return (
        dict(zip(texts["query_id"].astype(str), texts["text"].astype(str), strict=True)),
        ids,
        vectors,
    )


def _fit(
    store: Store,
    reference: StoredWindowSummary,
    previous: StoredTopicSet | None,
    *,
    n_topics: int | None,
    seed: int,
) -> StoredTopicSet:
    texts, ids, vectors = _window_queries(store, reference)
    if reference.embedding_fingerprint is None or len(ids) < MIN_QUERIES:
        raise ConfigError(
            f"window {reference.window_label} (run {reference.run_id}) has {len(ids)} embedded "
            f"queries: topics need at least {MIN_QUERIES}; replay a longer window with the "
            "query embedder and fit on it (--reference WINDOW)"
        )
    fitted = fit_topics(
        vectors,
        [texts.get(q, "") for q in ids],
        model_fingerprint=reference.embedding_fingerprint,
        n_topics=n_topics,
        seed=seed,
    )
    return StoredTopicSet(
        topics=fitted,
        fitted_at=utc_now(),
        reference_run_id=reference.run_id,
        reference_window=reference.window_label,
        n_queries=len(ids),
        previous_version=None if previous is None else previous.version,
        matched=None if previous is None else match_topics(previous.topics, fitted),
    )


def _topic_set(
    store: Store,
    window: StoredWindowSummary,
    *,
    reference: str | None,
    refit: bool,
    n_topics: int | None,
    seed: int,
) -> tuple[StoredTopicSet, bool]:
    stored = _current(store)
    if stored is not None and not refit and reference is None:
        return stored, False
    if reference is not None:
        chosen = latest_window_summary(store, reference)
    elif refit:
        chosen = window
    else:
        embedded = [
            s
            for s in list_window_summaries(store, limit=10_000)
            if s.n_embeddings >= MIN_QUERIES and same_model(s.embedded_with, window.embedded_with)
        ]
        if not embedded:
            raise ConfigError(
                f"no replayed window has {MIN_QUERIES} or more queries embedded by the model "
                f"of window {window.window_label}: topics cannot be fitted; replay a window "
                "with the query embedder"
            )
        chosen = embedded[-1]
    fitted = _fit(store, chosen, stored, n_topics=n_topics, seed=seed)
    if stored is not None and stored.version == fitted.version:
        return stored, False
    save_topic_set(store, fitted.to_dict())
    return fitted, True


def _assigned(
    store: Store, summary: StoredWindowSummary, topics: StoredTopicSet
) -> tuple[dict[str, int], dict[int, dict[str, Any]]]:
    """Each embedded query's topic, and each topic's terms and central queries in this window."""
    texts, ids, vectors = _window_queries(store, summary)
    if not ids:
        return {}, {}
    reference = window_summary_of_run(store, topics.reference_run_id)
    same = same_model(None if reference is None else reference.embedded_with, summary.embedded_with)
    if same is False or (
        same is None and summary.embedding_fingerprint != topics.topics.model_fingerprint
    ):
        raise ConfigError(
            f"the queries of window {summary.window_label} were embedded by another model "
            f"({summary.embedding_model}) than the topics (version {topics.version}) were "
            "fitted with: fit them again on a window of this model "
            f"(`evalkit traffic slices --window {summary.window_label} --refit`)"
        )
    labels = topics.topics.assign(
        vectors,
        topics.topics.model_fingerprint,
        reference=summary.run_id == topics.reference_run_id,
    )
    window_texts = [texts.get(q, "") for q in ids]
    named = {
        number: {"window_terms": list(terms), "window_central_queries": list(central)}
        for number, (terms, central) in slice_terms(vectors, window_texts, labels.tolist()).items()
    }
    outside = np.flatnonzero(labels == OUTSIDE)
    if len(outside) >= MIN_QUERIES:
        named[OUTSIDE] = emerging_subjects(vectors[outside], [window_texts[i] for i in outside])
    return dict(zip(ids, (int(x) for x in labels), strict=True)), named


def _tags(store: Store, query_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    rows = store.fetch(
        "SELECT query_id, tags FROM traffic_records WHERE list_contains(?, query_id)"
        " AND tags IS NOT NULL",
        [list(query_ids)],
    )
    tags: dict[str, dict[str, str]] = {}
    for query_id, text in rows:
        value = json.loads(text) if isinstance(text, str) else text
        if isinstance(value, Mapping):
            tags.setdefault(str(query_id), {k: str(v) for k, v in value.items()})
    return tags


def _precision(store: Store, run_id: str) -> tuple[tuple[str, str, str] | None, dict[str, float]]:
    for source in _PRECISION_SOURCES:
        measures = store.fetch(
            "SELECT measure FROM judged_run_figures WHERE run_id = ? AND source = ?"
            " AND measure LIKE 'precision@%' ORDER BY computed_at DESC LIMIT 1",
            [run_id, source],
        )
        if measures:
            labeller, values = query_values(store, run_id, source, str(measures[0][0]))
            if values:
                return (source, labeller, str(measures[0][0])), values
    return None, {}


def _scope(store: Store, summary: StoredWindowSummary) -> tuple[float | None, dict[str, Any]]:
    run = get_run(store, summary.run_id)
    try:
        goldset_run = calibration_run(store, run, summary.k)
    except ConfigError as error:
        return None, {"scope_note": f"out of scope by score not known: {error}"}
    floor = scope_floor(found_top_scores(store, goldset_run, summary.k))
    if floor is None:
        return None, {
            "scope_note": f"goldset run {goldset_run.run_id} has fewer than 20 queries that "
            "find a relevant document: too few to place the out-of-scope floor"
        }
    return floor, {
        "scope_floor": floor,
        "scope_quantile": OUT_OF_SCOPE_QUANTILE,
        "scope_calibration_run": goldset_run.run_id,
    }


@dataclass(frozen=True, slots=True)
class _QueryFacts:
    """What a window's queries are sliced and judged by."""

    topic_of: Mapping[str, int]
    tags: Mapping[str, Mapping[str, str]]
    floor: float | None
    precision: Mapping[str, float]
    max_grades: Mapping[str, float]
    low_confidence_threshold: float
    tenants: bool


def _sliced(row: Sequence[Any], facts: _QueryFacts) -> SlicedQuery:
    query_id, tenant, n_results, top1_score, overlap = row
    query_id = str(query_id)
    top1 = None if top1_score is None or np.isnan(top1_score) else float(top1_score)
    empty = int(n_results) == 0 or top1 is None
    slices = [topic_slice(facts.topic_of[query_id])] if query_id in facts.topic_of else []
    if facts.tenants and tenant is not None:
        slices.append(f"tenant:{tenant}")
    slices.extend(
        f"tag:{key}={value}" for key, value in sorted(facts.tags.get(query_id, {}).items())
    )
    by_score = None if facts.floor is None else (empty or top1 is None or top1 < facts.floor)
    return SlicedQuery(
        query_id=query_id,
        slices=tuple(slices),
        out_of_scope=True if facts.max_grades.get(query_id) == 0.0 else by_score,
        low_confidence=empty or top1 is None or top1 < facts.low_confidence_threshold,
        churn=None if overlap is None or np.isnan(overlap) else 1.0 - float(overlap),
        precision=facts.precision.get(query_id),
    )


def _topic_details(
    topics: StoredTopicSet, numbers: set[int], in_window: Mapping[int, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    details = {}
    for number in numbers:
        topic = topics.topics.topic(number)
        reference: dict[str, Any] = {}
        if topic is not None:
            reference = {
                "terms": list(topic.terms),
                "central_queries": list(topic.central_queries),
                "reference_share": topic.reference_share,
            }
        details[topic_slice(number)] = reference | dict(in_window.get(number, {}))
    return details


def _compute(
    store: Store, summary: StoredWindowSummary, topics: StoredTopicSet | None, kinds: Sequence[str]
) -> tuple[list[SliceFigures], list[str]]:
    notes: list[str] = []
    rows = store.fetch(
        "SELECT query_id, tenant, n_results, top1_score, overlap_at_k"
        " FROM traffic_replay_queries WHERE run_id = ? AND NOT failed ORDER BY query_id",
        [summary.run_id],
    )
    ids = [str(row[0]) for row in rows]
    topic_of, in_window = _assigned(store, summary, topics) if topics is not None else ({}, {})
    if topics is not None and len(topic_of) < len(ids):
        notes.append(f"{len(ids) - len(topic_of)} queries have no stored embedding: in no topic")
    floor, scope = _scope(store, summary)
    if "scope_note" in scope:
        notes.append(scope["scope_note"])
    precision_of, precision = _precision(store, summary.run_id)
    max_grades: dict[str, float] = {}
    if precision_of is None:
        notes.append(
            f"no per-query precision stored for run {summary.run_id}: judge or estimate the "
            f"window (`evalkit traffic judge --window {summary.window_label}` or `evalkit "
            "traffic estimate`) to see precision per slice"
        )
    elif precision_of[0] == "assessor":
        depth = precision_of[2].partition("@")[2]
        max_grades = query_values(store, summary.run_id, "assessor", f"max_grade@{depth}")[1]
    facts = _QueryFacts(
        topic_of=topic_of,
        tags=_tags(store, ids) if "tag" in kinds else {},
        floor=floor,
        precision=precision,
        max_grades=max_grades,
        low_confidence_threshold=summary.low_confidence_threshold,
        tenants="tenant" in kinds,
    )
    details: dict[str, dict[str, Any]] = {ALL: {**scope, "notes": notes}}
    if topics is not None:
        details |= _topic_details(topics, set(topic_of.values()), in_window)
    if precision_of is not None:
        details[ALL]["precision_interval"] = "korn-graubard over each slice's labelled queries"
        if precision_of[0] == "estimate":
            details[ALL]["precision_interval"] += (
                "; the calibration's own uncertainty, common to the windows compared, is in "
                "the window's estimate"
            )
    queries = [_sliced(row, facts) for row in rows]
    return slice_figures(queries, precision_of=precision_of, details=details), notes


def _figures_for(
    store: Store,
    summary: StoredWindowSummary,
    topics: StoredTopicSet | None,
    kinds: Sequence[str],
    *,
    recompute: bool,
) -> tuple[list[SliceFigures], list[str]]:
    version, _, stored = slice_figures_of_run(store, summary.run_id)
    if stored and not recompute and version == (None if topics is None else topics.version):
        return stored, list(stored[0].details.get("notes", []))
    figures, notes = _compute(store, summary, topics, kinds)
    save_slice_figures(
        store,
        summary.run_id,
        summary.window_label,
        None if topics is None else topics.version,
        figures,
    )
    return figures, notes


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
            _topic_set(
                store, summary, reference=reference, refit=refit, n_topics=n_topics, seed=seed
            )
            if "topic" in kinds
            else (None, False)
        )
        figures, notes = _figures_for(store, summary, topics, kinds, recompute=True)
        base_label = baseline or (None if topics is None else topics.reference_window)
        base = None if base_label is None else latest_window_summary(store, base_label)
        base_figures: list[SliceFigures] = []
        if base is not None and base.run_id != summary.run_id:
            base_figures, _ = _figures_for(store, base, topics, kinds, recompute=refitted)
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


@dataclass(frozen=True, slots=True)
class GoldsetSlice:
    """One slice of a goldset run: its queries, and each measure's mean over them (the exact
    measure computed on those queries alone) with its interval."""

    slice: str
    n_queries: int
    measures: Mapping[str, tuple[float, float, float]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "slice": self.slice,
            "n_queries": self.n_queries,
            "measures": {
                name: {"value": v, "low": lo, "high": hi}
                for name, (v, lo, hi) in self.measures.items()
            },
        }


def goldset_run_slices(
    store: Store,
    run_id: str,
    by: str,
    *,
    topic_of: Callable[[Sequence[Query]], Mapping[str, str]] | None = None,
) -> list[GoldsetSlice]:
    """A goldset run's measures per slice: ``by`` is ``tag`` (each tag), ``tag:KEY`` (tags
    written ``KEY:VALUE`` or ``KEY=VALUE``, by value), ``tenant`` or ``topic`` (``topic_of``
    names each query's topic slice). Slices largest first."""
    run = get_run(store, run_id)
    if run.spec.kind != "goldset" or run.spec.goldset_name is None:
        raise ConfigError(f"run {run.run_id} is a {run.spec.kind} run: --by slices goldset runs")
    goldset = load_stored_goldset(store, run.spec.goldset_name, run.spec.goldset_version)
    kind, _, key = by.partition(":")
    if kind == "topic":
        if topic_of is None:
            raise ConfigError("slicing by topic needs the query embedder")
        names: dict[str, tuple[str, ...]] = {
            query_id: (name,) for query_id, name in topic_of(goldset.queries).items()
        }
    elif kind == "tenant":
        names = {q.id: (f"tenant:{q.tenant}",) for q in goldset.queries if q.tenant is not None}
    elif kind == "tag":
        names = {q.id: _tag_slices(q.tags, key) for q in goldset.queries}
    else:
        raise ConfigError(f"--by {by!r}: use tag, tag:KEY, tenant or topic")
    values = query_metrics(store, run.run_id)
    members: dict[str, list[str]] = {}
    for query_id, slices in names.items():
        if query_id in values.index:
            for name in slices:
                members.setdefault(name, []).append(query_id)
    result = []
    for name, query_ids in members.items():
        chosen = values.loc[query_ids]
        measures = {}
        for measure in chosen.columns:
            array = chosen[measure].dropna().to_numpy(dtype=np.float64)
            if len(array):
                low, high = mean_interval(np.clip(array, 0.0, 1.0))
                measures[str(measure)] = (float(array.mean()), low, high)
        result.append(GoldsetSlice(name, len(query_ids), measures))
    return sorted(result, key=lambda s: (-s.n_queries, s.slice))


def goldset_topics(
    store: Store, embedder: TextEmbedder
) -> Callable[[Sequence[Query]], Mapping[str, str]]:
    """What names each goldset query's topic slice for ``goldset_run_slices``: its text
    embedded by ``embedder`` and assigned to the stored topics. ConfigError when no topics are
    fitted, or ``embedder`` is not the model they were fitted with."""
    stored = _current(store)
    if stored is None:
        raise ConfigError(
            "no topics are fitted yet: slice a replayed traffic window first "
            "(`evalkit traffic slices --window WINDOW`)"
        )
    reference = window_summary_of_run(store, stored.reference_run_id)
    fitted_with = None if reference is None else reference.embedded_with

    def topic_of(queries: Sequence[Query]) -> Mapping[str, str]:
        model = embedder.fingerprint
        same = same_model(fitted_with, model)
        if same is False or (same is None and model.canary_hash != stored.topics.model_fingerprint):
            raise ConfigError(
                f"the topics (version {stored.version}) were fitted on queries embedded by "
                f"{'another model' if fitted_with is None else fitted_with.name}, not "
                f"{model.name}: set the model they were fitted with, or fit them again"
            )
        labels = stored.topics.assign(
            embedder.embed([query.text for query in queries]), stored.topics.model_fingerprint
        )
        return {q.id: topic_slice(int(n)) for q, n in zip(queries, labels, strict=True)}

    return topic_of


def _tag_slices(tags: Sequence[str], key: str) -> tuple[str, ...]:
    if not key:
        return tuple(f"tag:{tag}" for tag in sorted(tags))
    found = []
    for tag in tags:
        for separator in (":", "="):
            name, sep, value = tag.partition(separator)
            if sep and name == key:
                found.append(f"tag:{key}={value}")
                break
    return tuple(found)
