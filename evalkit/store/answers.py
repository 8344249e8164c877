"""Stored answer scores (faithfulness, answer relevance, context precision / recall) and the
judge cache.

An unmeasured score is a NULL with its reason; means are computed here in SQL over measured
rows only, with the unmeasured counted beside them. ``judge_cache`` (whole judgments) and
``judge_calls`` (single LLM calls of unfinished judgments) mean a rerun sends the judge only
what it was never answered; ``context_embeddings`` embeds each distinct context once
(``StoreEmbeddingCache``). Columns: docs/store.md.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from evalkit.answers.cache import JudgeCallOutput, Vectors
from evalkit.answers.records import AnswerScores, CachedJudgment, MetricSummary, item_columns
from evalkit.clock import utc_now
from evalkit.records.jsonready import JsonReady
from evalkit.store.columns import (
    column_names,
    json_text,
    json_value,
    masked,
    placeholders,
    record_of,
    values_of,
)
from evalkit.store.views import registered

if TYPE_CHECKING:
    import pandas as pd

    from evalkit.answers.records import AnswerRecord
    from evalkit.store.access import WriterAccess
    from evalkit.store.store import Store

__all__ = [
    "StoreEmbeddingCache",
    "StoreJudgeCache",
    "StoredScoring",
    "answer_score_rows",
    "answer_scores_frame",
    "answer_summaries",
    "answer_summary_frame",
    "forget_judge_calls",
    "get_scoring",
    "list_scorings",
    "load_cached_judgments",
    "load_context_vectors",
    "load_judge_calls",
    "metric_summaries",
    "save_answer_scores",
    "save_cached_judgments",
    "save_context_vectors",
    "save_judge_calls",
    "unmeasured_frame",
]

V = TypeVar("V")

_SCORE_COLUMNS = (
    "item_id, metric, method, judge_model, prompt_version, value, unmeasured_reason, detail,"
    " n_repeats, spread, n_claims, n_supported"
)


_SCORING_COLUMNS = (
    "scoring_id, run_id, source, started_at, finished_at, n_records, judge_calls, cache_hits,"
    " settings"
)


@dataclass(frozen=True, slots=True)
class StoredScoring(JsonReady):
    """One stored scoring: what was scored, when, and how many judge calls it cost."""

    scoring_id: str
    run_id: str | None
    source: str | None
    started_at: datetime
    finished_at: datetime
    n_records: int
    judge_calls: int
    cache_hits: int
    settings: Mapping[str, Any]

    def answer_scores(self, summaries: Sequence[MetricSummary]) -> AnswerScores:
        """This scoring with these ``summaries`` as ``AnswerScores``, without its per-item
        scores (they stay in the store)."""
        return AnswerScores(
            scores=(),
            summaries=tuple(summaries),
            **{f.name: getattr(self, f.name) for f in fields(self) if f.name != "settings"},
        )


def new_scoring_id(started_at: datetime) -> str:
    """A scoring id that sorts by start time and is unique: ``ans-20261121T183500-3f9a1c``."""
    return f"ans-{started_at:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def save_answer_scores(
    store: Store,
    scores: AnswerScores,
    *,
    settings: Mapping[str, Any] | None = None,
    records: Sequence[AnswerRecord] = (),
) -> str:
    """Store a scoring, its per-item scores and the scored ``records`` (question, answer,
    contexts, reference) in one transaction; returns its id."""
    import pandas as pd

    scoring_id = scores.scoring_id or new_scoring_id(scores.started_at)
    rows = scores.scores
    unique = list({record.id: record for record in records}.values())
    items = pd.DataFrame(
        {"scoring_id": scoring_id, "run_id": scores.run_id, **item_columns(unique)}
    )
    frame = pd.DataFrame(
        {
            "scoring_id": scoring_id,
            "run_id": scores.run_id,
            "source": scores.source,
            "item_id": [s.item_id for s in rows],
            "metric": [s.metric for s in rows],
            "method": [s.method for s in rows],
            "judge_model": [s.judge_model for s in rows],
            "prompt_version": [s.prompt_version for s in rows],
            "value": pd.array([s.value for s in rows], dtype="Float64"),
            "unmeasured_reason": [s.unmeasured_reason for s in rows],
            "detail": [masked(s.detail) for s in rows],
            "n_repeats": pd.array([s.n_repeats for s in rows], dtype="Int32"),
            "spread": pd.array([s.spread for s in rows], dtype="Float64"),
            "n_claims": pd.array([s.n_claims for s in rows], dtype="Int32"),
            "n_supported": pd.array([s.n_supported for s in rows], dtype="Int32"),
        }
    )
    with store.writing(f"cannot store answer scores in {store.path}") as con:
        con.execute(
            f"INSERT INTO answer_scorings ({_SCORING_COLUMNS}) VALUES ({placeholders(9)})",
            values_of(
                scores,
                _SCORING_COLUMNS,
                scoring_id=scoring_id,
                settings=json_text(dict(settings or {})),
            ),
        )
        store.insert_frame("answer_scores", frame)
        store.insert_frame("answer_items", items)
    return scoring_id


def list_scorings(
    store: Store, *, run_id: str | None = None, limit: int = 20
) -> list[StoredScoring]:
    """Stored scorings, newest first (optionally only those of one run)."""
    rows = store.fetch(
        f"SELECT {_SCORING_COLUMNS} FROM answer_scorings WHERE (? IS NULL OR run_id = ?)"
        " ORDER BY started_at DESC, scoring_id DESC LIMIT ?",
        [run_id, run_id, limit],
    )
    return [_scoring(row) for row in rows]


def get_scoring(store: Store, scoring_id: str) -> StoredScoring:
    """One stored scoring; a unique prefix of its id is enough."""
    row = store.fetch_by_prefix(
        f"SELECT {_SCORING_COLUMNS} FROM answer_scorings WHERE starts_with(scoring_id, ?)"
        " ORDER BY scoring_id",
        scoring_id,
        missing=f"no answer scoring {scoring_id!r} in {store.path}; list them with "
        "`evalkit answers list`",
        what="scoring",
    )
    return _scoring(row)


def _scoring(row: tuple[Any, ...]) -> StoredScoring:
    return record_of(StoredScoring, _SCORING_COLUMNS, row, settings=json_value)


def answer_scores_frame(store: Store, scoring_id: str) -> pd.DataFrame:
    """Every per-item score of a scoring, ordered by item, metric and method."""
    return store.fetch_frame(
        f"SELECT {_SCORE_COLUMNS} FROM answer_scores WHERE scoring_id = ?"
        " ORDER BY item_id, metric, method",
        [scoring_id],
    )


def answer_summary_frame(store: Store, scoring_id: str) -> pd.DataFrame:
    """Per (metric, method): mean over measured rows, measured and unmeasured counts, spread.

    ``mean`` is NULL (None) when nothing was measured; it is never NaN.
    """
    return store.fetch_frame(
        "SELECT metric, method, any_value(judge_model) AS judge_model,"
        " any_value(prompt_version) AS prompt_version, avg(value) AS mean,"
        " count(value) AS n_measured, count(*) - count(value) AS n_unmeasured,"
        " count(*) AS n_total, max(spread) AS max_spread"
        " FROM answer_scores WHERE scoring_id = ? GROUP BY metric, method"
        " ORDER BY metric, method",
        [scoring_id],
    )


def unmeasured_frame(store: Store, scoring_id: str) -> pd.DataFrame:
    """How many rows of each (metric, method) are unmeasured, by reason."""
    return store.fetch_frame(
        "SELECT metric, method, unmeasured_reason, count(*) AS n FROM answer_scores"
        " WHERE scoring_id = ? AND value IS NULL GROUP BY ALL"
        " ORDER BY metric, method, unmeasured_reason",
        [scoring_id],
    )


def answer_summaries(store: Store, scoring_id: str) -> list[dict[str, Any]]:
    """JSON-ready summaries of a scoring, as ``MetricSummary.to_dict`` gives them."""
    return [summary.to_dict() for summary in metric_summaries(store, scoring_id)]


def metric_summaries(store: Store, scoring_id: str) -> tuple[MetricSummary, ...]:
    """The summaries of a scoring, one per (metric, method), ordered by both.

    Aggregated in SQL: the mean covers measured rows only (None when there is none) and
    the unmeasured rows are counted by reason.
    """
    reasons: dict[tuple[str, str], dict[str, int]] = {}
    for metric, method, reason, count in store.fetch(
        "SELECT metric, method, unmeasured_reason, count(*) FROM answer_scores"
        " WHERE scoring_id = ? AND value IS NULL GROUP BY ALL ORDER BY ALL",
        [scoring_id],
    ):
        reasons.setdefault((metric, method), {})[reason] = int(count)
    rows = store.fetch(
        "SELECT metric, method, avg(value), count(value), count(*) - count(value),"
        " any_value(judge_model), any_value(prompt_version) FROM answer_scores"
        " WHERE scoring_id = ? GROUP BY metric, method ORDER BY metric, method",
        [scoring_id],
    )
    return tuple(
        MetricSummary(
            metric=metric,
            method=method,
            mean=None if mean is None else float(mean),
            n_measured=int(measured),
            n_unmeasured=int(unmeasured),
            unmeasured_by_reason=reasons.get((metric, method), {}),
            judge_model=judge_model,
            prompt_version=prompt_version,
        )
        for metric, method, mean, measured, unmeasured, judge_model, prompt_version in rows
    )


def answer_score_rows(store: Store, scoring_id: str) -> list[dict[str, Any]]:
    """Every per-item score of a scoring as JSON-ready dicts (``MetricScore.to_dict`` form)."""
    rows = store.fetch(
        f"SELECT {_SCORE_COLUMNS} FROM answer_scores WHERE scoring_id = ?"
        " ORDER BY item_id, metric, method",
        [scoring_id],
    )
    return [dict(zip(column_names(_SCORE_COLUMNS), row, strict=True)) for row in rows]


def _cached_rows(
    store: Store, table: str, columns: str, keys: Sequence[str]
) -> list[tuple[Any, ...]]:
    """The rows of cache ``table`` among ``keys``: ``cache_key``, then ``columns``."""
    if not keys:
        return []
    return store.fetch(
        f"SELECT cache_key, {columns} FROM {table} WHERE list_contains(?, cache_key)",
        [list(dict.fromkeys(keys))],
    )


def _add_to_cache(
    store: Store, table: str, keys: list[str], columns: dict[str, Any], what: str
) -> None:
    """Add the entries ``keys`` to cache ``table`` with their ``columns`` (the table's, in
    order, between ``cache_key`` and ``created_at``); a key the table holds already keeps
    its row. StoreError naming ``what`` when the store cannot be written."""
    import pandas as pd

    if not keys:
        return
    frame = pd.DataFrame({"cache_key": keys, **columns, "created_at": utc_now()})
    view = f"_incoming_{table}"
    with store.writing(f"cannot write {what} in {store.path}") as con, registered(con, view, frame):
        con.execute(
            f"INSERT INTO {table} SELECT {', '.join(frame.columns)} FROM {view}"
            " ON CONFLICT (cache_key) DO NOTHING"
        )


def load_cached_judgments(store: Store, keys: Sequence[str]) -> dict[str, CachedJudgment]:
    """The cached judge outputs among ``keys`` (keys not cached are absent)."""
    rows = _cached_rows(
        store,
        "judge_cache",
        "metric, judge_model, prompt_version, value, unmeasured_reason, n_claims, n_supported,"
        " detail",
        keys,
    )
    return {row[0]: CachedJudgment(*row[1:]) for row in rows}


def save_cached_judgments(store: Store, entries: Iterable[tuple[str, CachedJudgment]]) -> None:
    """Add judge outputs to the cache (a key cached already keeps its first output)."""
    import pandas as pd

    items = dict(entries)
    cached = items.values()
    columns = {
        "metric": [entry.metric for entry in cached],
        "judge_model": [entry.judge_model for entry in cached],
        "prompt_version": [entry.prompt_version for entry in cached],
        "value": pd.array([entry.value for entry in cached], dtype="Float64"),
        "unmeasured_reason": [entry.unmeasured_reason for entry in cached],
        "n_claims": pd.array([entry.n_claims for entry in cached], dtype="Int32"),
        "n_supported": pd.array([entry.n_supported for entry in cached], dtype="Int32"),
        "detail": [masked(entry.detail) for entry in cached],
    }
    _add_to_cache(store, "judge_cache", list(items), columns, "the judge cache")


def load_judge_calls(store: Store, judgment_keys: Sequence[str]) -> dict[str, str]:
    """The call outputs kept for the judgments ``judgment_keys``: call key -> output."""
    if not judgment_keys:
        return {}
    rows = store.fetch(
        "SELECT cache_key, output FROM judge_calls WHERE list_contains(?, judgment_key)",
        [list(dict.fromkeys(judgment_keys))],
    )
    return dict(rows)


def save_judge_calls(store: Store, entries: Iterable[JudgeCallOutput]) -> None:
    """Keep the outputs of judge calls (a call kept already keeps its first output)."""
    calls = list({call.call_key: call for call in entries}.values())
    columns = {
        "judgment_key": [call.judgment_key for call in calls],
        "judge_model": [call.judge_model for call in calls],
        "output": [call.output for call in calls],
    }
    _add_to_cache(
        store, "judge_calls", [call.call_key for call in calls], columns, "the judge cache"
    )


def forget_judge_calls(store: Store, judgment_keys: Sequence[str]) -> None:
    """Delete the call outputs of the judgments ``judgment_keys`` (cached whole now)."""
    if not judgment_keys:
        return
    with store.writing(f"cannot write the judge cache in {store.path}") as con:
        con.execute(
            "DELETE FROM judge_calls WHERE list_contains(?, judgment_key)",
            [list(dict.fromkeys(judgment_keys))],
        )


class _TableCache(Generic[V]):
    """A keyed cache (``evalkit.answers.cache.KeyedCache``) in a table of the store. ``store``
    is a ``WriterAccess``: an access that opens the store per read or write keeps no other
    process out while a scoring waits on its judge."""

    def __init__(
        self,
        store: WriterAccess,
        load: Callable[[Store, Sequence[str]], dict[str, V]],
        save: Callable[[Store, Iterable[tuple[str, V]]], None],
    ) -> None:
        self.store = store
        self._load = load
        self._save = save

    def get_many(self, keys: Sequence[str]) -> dict[str, V]:
        """The cached values among ``keys``."""
        with self.store.writer("reading the answer scoring cache") as store:
            return self._load(store, keys)

    def put_many(self, entries: Iterable[tuple[str, V]]) -> None:
        """Keep these values (a key already cached keeps its first value)."""
        items = list(entries)
        if items:
            with self.store.writer("writing the answer scoring cache") as store:
                self._save(store, items)


class StoreJudgeCache(_TableCache[CachedJudgment]):
    """A judge cache (``evalkit.answers.cache.JudgeCache``) in the ``judge_cache`` table,
    with the outputs of the calls of judgments not finished yet in ``judge_calls``."""

    def __init__(self, store: WriterAccess) -> None:
        super().__init__(store, load_cached_judgments, save_cached_judgments)

    def put_many(self, entries: Iterable[tuple[str, CachedJudgment]]) -> None:
        """Keep these judgments (a key already cached keeps its first one) and forget the
        outputs of their calls."""
        items = list(entries)
        if items:
            with self.store.writer("writing the judge cache") as store:
                save_cached_judgments(store, items)
                forget_judge_calls(store, [key for key, _ in items])

    def get_calls(self, judgment_keys: Sequence[str]) -> dict[str, str]:
        """The call outputs kept for these judgments: call key -> output."""
        with self.store.writer("reading the judge cache") as store:
            return load_judge_calls(store, judgment_keys)

    def put_calls(self, entries: Iterable[JudgeCallOutput]) -> None:
        """Keep these call outputs (a call kept already keeps its first output)."""
        outputs = list(entries)
        if outputs:
            with self.store.writer("writing the judge cache") as store:
                save_judge_calls(store, outputs)


def load_context_vectors(store: Store, keys: Sequence[str]) -> dict[str, Vectors]:
    """The cached sentence vectors among ``keys`` ((sentences, dimension) float32 arrays)."""
    rows = _cached_rows(store, "context_embeddings", "n_sentences, dimension, vectors", keys)
    return {
        key: np.frombuffer(blob, dtype=np.float32).reshape(n_sentences, dimension)
        for key, n_sentences, dimension, blob in rows
    }


MAX_CACHED_CONTEXT_BYTES = 16 * 2**20
"""The largest context whose vectors are cached (about 11,000 sentences of 384 dimensions): a
larger one is embedded again when it is scored again, rather than written as one blob that
a store with a bounded memory cannot hold."""
_CACHE_WRITE_BYTES = 64 * 2**20


def save_context_vectors(store: Store, entries: Iterable[tuple[str, Vectors]]) -> None:
    """Add sentence vectors of contexts (a key cached already keeps its first vectors);
    contexts over ``MAX_CACHED_CONTEXT_BYTES`` are not cached."""
    batch: dict[str, Vectors] = {}
    size = 0
    for key, vectors in entries:
        blob_size = vectors.shape[0] * vectors.shape[1] * 4
        if blob_size > MAX_CACHED_CONTEXT_BYTES:
            continue
        if size + blob_size > _CACHE_WRITE_BYTES:
            _save_vector_batch(store, batch)
            batch, size = {}, 0
        batch[key] = vectors
        size += blob_size
    _save_vector_batch(store, batch)


def _save_vector_batch(store: Store, items: dict[str, Vectors]) -> None:
    cached = items.values()
    columns = {
        "n_sentences": [int(vectors.shape[0]) for vectors in cached],
        "dimension": [int(vectors.shape[1]) for vectors in cached],
        "vectors": [np.ascontiguousarray(v, dtype=np.float32).tobytes() for v in cached],
    }
    _add_to_cache(store, "context_embeddings", list(items), columns, "context embeddings")


class StoreEmbeddingCache(_TableCache[Vectors]):
    """A context embedding cache (``evalkit.answers.cache.EmbeddingCache``) in the
    ``context_embeddings`` table."""

    def __init__(self, store: WriterAccess) -> None:
        super().__init__(store, load_context_vectors, save_context_vectors)
