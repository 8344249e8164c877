"""A replayed traffic window's slice figures from the store (docs/slices.md): the reference
topics fitted (or read), the window's queries assigned to them, each query's out-of-scope flag
(best score below the floor calibrated on the retriever's goldset run, or a top k the assessor
graded all 0) and precision (assessor, else estimate), then each slice's figures, stored."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from evalkit.clock import utc_now
from evalkit.drift.slices import (
    ALL,
    OUT_OF_SCOPE_QUANTILE,
    SlicedQuery,
    SliceFigures,
    scope_floor,
    slice_figures,
)
from evalkit.drift.topic_sets import StoredTopicSet
from evalkit.drift.topics import (
    MIN_QUERIES,
    OUTSIDE,
    emerging_subjects,
    fit_topics,
    match_topics,
    slice_terms,
    topic_slice,
)
from evalkit.embedding.fingerprint import same_model
from evalkit.errors import ConfigError
from evalkit.pipeline.traffic_labels import calibration_run, found_top_scores
from evalkit.store.runs import get_run
from evalkit.store.slices import (
    current_topic_set,
    query_values,
    save_slice_figures,
    save_topic_set,
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

__all__ = ["current_topics", "topic_set_for", "window_figures", "window_queries"]

_PRECISION_SOURCES = ("assessor", "estimate")


def current_topics(store: Store) -> StoredTopicSet | None:
    """The newest fitted topic set; None when none is stored."""
    found = current_topic_set(store)
    return None if found is None else StoredTopicSet.from_dict(found)


def window_queries(
    store: Store, summary: StoredWindowSummary
) -> tuple[dict[str, str], list[str], npt.NDArray[np.float32]]:
    """A replayed window's query texts by id, and the ids and vectors of those embedded."""
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
    texts, ids, vectors = window_queries(store, reference)
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


def topic_set_for(
    store: Store,
    window: StoredWindowSummary,
    *,
    reference: str | None,
    refit: bool,
    n_topics: int | None,
    seed: int,
) -> tuple[StoredTopicSet, bool]:
    """The topics ``window`` is sliced by, and whether they were fitted now: the stored set,
    or (none stored, ``refit``, or a ``reference`` window named) a set fitted on
    ``reference``, on ``window`` itself when refitting, else on the first replayed window of
    the same model, stored with how it maps to the set before."""
    stored = current_topics(store)
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
    texts, ids, vectors = window_queries(store, summary)
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
    # The reference queries themselves (whichever replay of the reference sample embedded
    # them) are measured against their topics without them.
    labels = topics.topics.assign(
        vectors,
        topics.topics.model_fingerprint,
        reference=reference is not None and reference.sample_id == summary.sample_id,
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


def _tags(
    store: Store, summary: StoredWindowSummary, query_ids: Sequence[str]
) -> dict[str, dict[str, str]]:
    rows = store.fetch(
        "SELECT query_id, tags FROM traffic_records WHERE list_contains(?, query_id)"
        " AND tags IS NOT NULL AND ts >= ? AND ts < ? ORDER BY ts",
        [list(query_ids), summary.window_start, summary.window_end],
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
        tags=_tags(store, summary, ids) if "tag" in kinds else {},
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


def window_figures(
    store: Store,
    summary: StoredWindowSummary,
    topics: StoredTopicSet | None,
    kinds: Sequence[str],
) -> tuple[list[SliceFigures], list[str]]:
    """The window's slice figures and notes, computed and stored (replacing the run's
    earlier ones): computed each time, as the window may have been judged, estimated or
    calibrated anew since."""
    figures, notes = _compute(store, summary, topics, kinds)
    save_slice_figures(
        store,
        summary.run_id,
        summary.window_label,
        None if topics is None else topics.version,
        figures,
    )
    return figures, notes
