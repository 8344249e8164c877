"""A goldset run's measures per slice: tag, tenant or topic (``evalkit runs show RUN --by``).
A slice's figure is the mean of its queries' stored values, what trec_eval computes on those
queries alone, with its interval."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evalkit.drift.topic_sets import StoredTopicSet
from evalkit.drift.topics import (
    topic_slice,
)
from evalkit.embedding.fingerprint import same_model
from evalkit.embedding.query import TextEmbedder
from evalkit.errors import ConfigError
from evalkit.judging.window import mean_interval
from evalkit.records import Query
from evalkit.store.goldsets import load_stored_goldset
from evalkit.store.runs import get_run, query_metrics
from evalkit.store.slices import (
    current_topic_set,
)
from evalkit.store.store import Store
from evalkit.store.traffic import (
    window_summary_of_run,
)

__all__ = ["GoldsetSlice", "goldset_run_slices", "goldset_topics"]


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
    found = current_topic_set(store)
    stored = None if found is None else StoredTopicSet.from_dict(found)
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
                "another model than the configured one "
                f"({model.name}, whose canary embeddings differ from the topics'): set the "
                "model they were fitted with, or fit them again "
                "(`evalkit traffic slices --window WINDOW --refit`)"
            )
        labels = stored.topics.assign(
            embedder.embed([query.text for query in queries]), stored.topics.model_fingerprint
        )
        return {q.id: topic_slice(int(n)) for q, n in zip(queries, labels, strict=True)}

    return topic_of


def _tag_slices(tags: Sequence[str], key: str) -> tuple[str, ...]:
    if not key:
        return tuple(f"tag:{tag}" for tag in sorted(set(tags)))
    found = []
    for tag in tags:
        for separator in (":", "="):
            name, sep, value = tag.partition(separator)
            if sep and name == key:
                found.append(f"tag:{key}={value}")
                break
    return tuple(dict.fromkeys(found))
