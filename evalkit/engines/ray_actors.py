"""The Ray engine's actors: a query table replayed by a pool of Ray Data actors, one shard per
batch (``RayEngine.replay`` drives it; docs/scale.md, "What runs where").

Each shard is written through a ``.tmp`` file under a digest of its query ids, so it is whole
or absent; nothing here touches the store. Only this module imports Ray.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray
import ray.data

from evalkit.answers.cache import JudgeCallOutput
from evalkit.answers.offline import DEFAULT_THRESHOLD, OfflineFaithfulness
from evalkit.answers.records import AnswerRecord, CachedJudgment, MetricScore, item_columns
from evalkit.answers.scoring import score_answers, uses_judge
from evalkit.engines.base import EngineStoppedError, ReplaySpec
from evalkit.engines.local import replay, results_frame
from evalkit.engines.ray import (
    LOCAL_RAY_ENV,
    WORKER_ENV,
    RayEngine,
    RayUnreachableError,
    actor_judge_settings,
    check_ray_address,
    probe_ray_address,
)
from evalkit.engines.tables import (
    ANSWER_ITEM_SCHEMA,
    ANSWER_SCORE_SCHEMA,
    COUNTS_KEY,
    JUDGED_SCHEMA,
    POSITION,
    SHARD_SUFFIX,
    answer_shard,
)
from evalkit.errors import ConfigError
from evalkit.metrics import Evaluator, parse_measures
from evalkit.records import Judgment, Query, QueryResult
from evalkit.redaction import masked_excerpt, redact_known
from evalkit.retrievers.factory import build_retriever

if TYPE_CHECKING:
    from evalkit.config import JudgeSettings, Settings
    from evalkit.retrievers.factory import RetrieverOptions

__all__ = ["check_shippable", "connected", "replay_on_ray", "shard_schema"]

_RAISED = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception): ")
"""A traceback's last line: the type and message of what was raised."""

_AUTH_HINT = (
    " (a cluster started with token authentication, as `ray start` does by default, "
    "admits this process only with RAY_AUTH_MODE=token in its environment)"
)

_INNER_BATCH = 64
"""Queries per retriever call inside an actor's batch (the local replay's default)."""


def shard_schema(measures: Sequence[str]) -> pa.Schema:
    """The columns of a shard: one row per query (its position in the numbered query table
    and its id), its ranked documents as parallel lists, and one column per measure (null
    where the query was not scored)."""
    return pa.schema(
        [
            pa.field(POSITION, pa.int64(), nullable=False),
            pa.field("query_id", pa.string(), nullable=False),
            pa.field("latency_ms", pa.float64()),
            pa.field("error", pa.string()),
            pa.field("n_results", pa.int32(), nullable=False),
            pa.field("n_duplicates", pa.int32(), nullable=False),
            pa.field("ranks", pa.list_(pa.int32())),
            pa.field("doc_ids", pa.list_(pa.string())),
            pa.field("scores", pa.list_(pa.float64())),
            *(pa.field(measure, pa.float64()) for measure in measures),
        ]
    )


class _SnapshotJudgeCache:
    """An actor's judge cache: the judge outputs the store held when the run started (a
    Parquet snapshot, read by key), and those obtained for the batch being scored, which
    ``take_fresh`` hands over for the batch's ``judged`` answer shard (the store's writer
    adds them to the store's cache). Nothing is kept from batch to batch: the actor's
    memory stays flat however many answers it judges."""

    def __init__(self, snapshot: Path | None) -> None:
        self._snapshot = snapshot
        self._fresh: dict[str, CachedJudgment] = {}

    def get_many(self, keys: Sequence[str]) -> dict[str, CachedJudgment]:
        """The cached outputs among ``keys``."""
        found = {key: self._fresh[key] for key in keys if key in self._fresh}
        wanted = [key for key in dict.fromkeys(keys) if key not in found]
        if wanted and self._snapshot is not None:
            table = pq.read_table(self._snapshot, filters=[("cache_key", "in", wanted)])
            for row in table.to_pylist():
                key = row.pop("cache_key")
                found[key] = CachedJudgment(**row)
        return found

    def put_many(self, entries: Any) -> None:
        """Keep these outputs (a key already cached keeps its first output)."""
        for key, entry in entries:
            self._fresh.setdefault(key, entry)

    def get_calls(self, judgment_keys: Sequence[str]) -> dict[str, str]:
        """No call outputs: those of a batch's unfinished judgments are not kept."""
        return {}

    def put_calls(self, entries: Iterable[JudgeCallOutput]) -> None:
        """Nothing is kept: an actor's batch is stored whole or not at all."""

    def take_fresh(self) -> dict[str, CachedJudgment]:
        """The outputs obtained since the last call, forgotten here."""
        fresh, self._fresh = self._fresh, {}
        return fresh


class _AnswerScorer:
    """An actor's answer scorer: the offline method (its model loaded on first use) or the
    LLM judge with this actor's share of the judge limits (``actor_judge_settings``)."""

    def __init__(self, settings: JudgeSettings, *, actors: int, judge_cache: Path | None) -> None:
        self._settings = (
            actor_judge_settings(settings, actors) if uses_judge(settings) else settings
        )
        self._offline: OfflineFaithfulness | None = None
        if settings.nli_model_path is None:
            self._offline = OfflineFaithfulness(
                threshold=settings.offline_threshold or DEFAULT_THRESHOLD,
                version=settings.offline_version,
            )
        self._cache = _SnapshotJudgeCache(judge_cache)

    def write(self, records: Sequence[AnswerRecord], shard: Path) -> None:
        """Score ``records`` and write the answer shards of the batch shard ``shard``."""
        scores = score_answers(
            records,
            settings=self._settings,
            cache=self._cache,
            offline=self._offline,
            every_context_metric=True,
        )
        counts = f"{scores.judge_calls} {scores.cache_hits}".encode()
        _write_whole(
            _score_table(scores.scores).replace_schema_metadata({COUNTS_KEY: counts}),
            answer_shard(shard, "scores"),
        )
        _write_whole(_item_table(records), answer_shard(shard, "items"))
        _write_whole(_judged_table(self._cache.take_fresh()), answer_shard(shard, "judged"))


def _masked(text: str | None) -> str | None:
    # The actor's retriever and judge registered their secrets in this process.
    return None if text is None else redact_known(text)


def _attribute_table(rows: Sequence[Any], schema: pa.Schema, **given: list[Any]) -> pa.Table:
    """A ``schema`` table with a row for each of ``rows``: each column is the attribute of
    that name (``detail`` with secrets masked), unless ``given`` holds the column."""
    columns = {
        name: given[name] if name in given else [getattr(row, name) for row in rows]
        for name in schema.names
    }
    columns["detail"] = [_masked(detail) for detail in columns["detail"]]
    return pa.table(columns, schema=schema)


def _score_table(scores: Sequence[MetricScore]) -> pa.Table:
    return _attribute_table(scores, ANSWER_SCORE_SCHEMA)


def _item_table(records: Sequence[AnswerRecord]) -> pa.Table:
    return pa.table(item_columns(records), schema=ANSWER_ITEM_SCHEMA)


def _judged_table(entries: dict[str, CachedJudgment]) -> pa.Table:
    return _attribute_table(list(entries.values()), JUDGED_SCHEMA, cache_key=list(entries))


def _write_whole(table: pa.Table, path: Path) -> None:
    """``table`` to ``path`` through a ``.tmp`` file: the file is whole or absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial_path = path.with_suffix(".tmp")
    pq.write_table(table, partial_path)
    os.replace(partial_path, path)


class _ReplayActor:
    """One member of the actor pool: one retriever, used for every batch it is given."""

    def __init__(
        self,
        retriever: RetrieverOptions,
        settings: Settings,
        spec: ReplaySpec,
        *,
        shard_dir: str,
        actors: int = 1,
    ) -> None:
        self._retriever = build_retriever(replace(retriever, query_embedder=None), settings)
        self._answers = (
            _AnswerScorer(spec.answers, actors=actors, judge_cache=spec.judge_cache)
            if spec.answers is not None
            else None
        )
        self._k = spec.k
        self._measures = parse_measures(spec.measures)
        self._schema = shard_schema([str(measure) for measure in self._measures])
        self._relevance_threshold = spec.relevance_threshold
        self._shard_dir = Path(shard_dir)

    def __call__(self, batch: pa.Table) -> dict[str, np.ndarray[Any, Any]]:
        rows = batch.to_pylist()
        queries = [
            Query(id=row["query_id"], text=row["text"], tenant=row["tenant"]) for row in rows
        ]
        results = replay(queries, self._retriever, k=self._k, batch_size=_INNER_BATCH)
        judgments = [
            Judgment(row["query_id"], doc_id, int(grade))
            for row in rows
            for doc_id, grade in zip(
                row["judged_doc_ids"] or (), row["judged_relevance"] or (), strict=True
            )
        ]
        metrics = self._score(results, judgments)
        name = _shard_name([query.id for query in queries])
        path = self._shard_dir / name
        records = _answer_records(rows, results)
        if self._answers is not None and records:
            self._answers.write(records, path)
        positions = [row[POSITION] for row in rows]
        _write_whole(self._shard(positions, results, metrics), path)
        return {
            "shard": np.array([name]),
            "queries": np.array([len(results)]),
            "failed": np.array([sum(1 for result in results if not result.ok)]),
            "pid": np.array([os.getpid()]),
        }

    def _score(
        self, results: Sequence[QueryResult], judgments: Sequence[Judgment]
    ) -> dict[str, dict[str, float]]:
        judged = {judgment.query_id for judgment in judgments}
        evaluated = [
            result.query_id for result in results if result.ok and result.query_id in judged
        ]
        if not evaluated:
            return {}
        evaluator = Evaluator(
            list(judgments), self._measures, relevance_threshold=self._relevance_threshold
        )
        per_query = evaluator.evaluate(
            results_frame(results), complete=True, query_ids=evaluated
        ).per_query
        return {
            str(query_id): {str(name): float(value) for name, value in row.items()}
            for query_id, row in per_query.to_dict("index").items()
        }

    def _shard(
        self,
        positions: Sequence[int],
        results: Sequence[QueryResult],
        metrics: dict[str, dict[str, float]],
    ) -> pa.Table:
        columns: dict[str, Sequence[Any]] = {
            POSITION: positions,
            "query_id": [r.query_id for r in results],
            "latency_ms": [r.latency_ms for r in results],
            "error": [r.error for r in results],
            "n_results": [len(r.docs) for r in results],
            "n_duplicates": [r.n_duplicates for r in results],
            "ranks": [[d.rank for d in r.docs] for r in results],
            "doc_ids": [[d.doc_id for d in r.docs] for r in results],
            "scores": [[d.score for d in r.docs] for r in results],
        }
        for measure in self._measures:
            name = str(measure)
            columns[name] = [metrics.get(r.query_id, {}).get(name) for r in results]
        return pa.table(columns, schema=self._schema)


def _answer_records(
    rows: Sequence[dict[str, Any]], results: Sequence[QueryResult]
) -> list[AnswerRecord]:
    """One answer record per answered query that came back with a generated answer, with
    the query's references (as ``evalkit.pipeline.run_answer_records`` for a local run)."""
    by_id = {row["query_id"]: row for row in rows}
    return [
        AnswerRecord.from_query(
            Query(
                id=result.query_id,
                text=by_id[result.query_id]["text"],
                reference_answer=by_id[result.query_id].get("reference_answer"),
                reference_context_ids=tuple(
                    by_id[result.query_id].get("reference_context_ids") or ()
                ),
            ),
            answer=result.answer,
            contexts=result.contexts,
            context_ids=result.context_ids,
        )
        for result in results
        if result.ok and result.answer is not None and result.query_id in by_id
    ]


def _shard_name(query_ids: Sequence[str]) -> str:
    digest = hashlib.sha256("\x00".join(query_ids).encode("utf-8")).hexdigest()[:24]
    return f"{digest}-{len(query_ids)}{SHARD_SUFFIX}"


@contextlib.contextmanager
def connected(address: str | None) -> Iterator[None]:
    """Ray connected for the block: the session already open in this process, else the
    cluster at ``address`` (or ``RAY_ADDRESS``), else a local instance started here and
    stopped afterwards. ConfigError for an address the engine cannot use (``ray://``, a
    malformed one), RayUnreachableError for a cluster that does not answer. The process's
    SIGTERM and SIGINT handlers stay those it had (``ray.init`` replaces SIGTERM's)."""
    if ray.is_initialized():
        yield
        return
    check_ray_address(address)
    probe_ray_address(address)
    target = address or os.environ.get("RAY_ADDRESS")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    with _stdout_on_stderr():
        with _signal_handlers_kept():
            if target:
                try:
                    ray.init(address=target, logging_level=logging.WARNING, log_to_driver=False)
                except ConnectionError as error:  # refused, or `auto` finding no cluster
                    raise RayUnreachableError(
                        f"cannot connect to the Ray cluster at {target}: {_first_line(error)}"
                        f"{_AUTH_HINT if not os.environ.get('RAY_AUTH_MODE') else ''}"
                    ) from error
            else:
                for name, value in LOCAL_RAY_ENV.items():  # a value of the user's stands
                    os.environ.setdefault(name, value)
                ray.init(
                    address="local",
                    include_dashboard=False,
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                    runtime_env={"env_vars": WORKER_ENV},
                )
        try:
            yield
        finally:
            ray.shutdown()


@contextlib.contextmanager
def _signal_handlers_kept() -> Iterator[None]:
    """The process's SIGTERM and SIGINT handlers as they were before the block: ``ray.init``
    replaces SIGTERM's with one that exits at once with code 15, which would skip the
    command's own handling (a run stored failed, exit 143, its note)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread sets handlers, Ray's included
        return
    kept = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in kept.items():
            if handler is not None:
                signal.signal(signum, handler)


@contextlib.contextmanager
def _stdout_on_stderr() -> Iterator[None]:
    """What is written to standard output during the block goes to standard error: Ray's
    core reports a failed task on the process's standard output (its file descriptor, not
    ``sys.stdout``), where a command's `--format json` output goes. evalkit writes nothing
    there while it replays (progress is on standard error)."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no file descriptor 1 (a closed or replaced stdout)
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """Only ``logger``'s errors for the block: evalkit reports progress and outcome itself."""
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def check_shippable(retriever: RetrieverOptions) -> None:
    """ConfigError naming the option when one of ``retriever``'s factory options cannot be
    pickled: every actor is sent the options to build its own retriever, and Ray would
    otherwise fail the whole run with a message about its own internals. (Its
    ``query_embedder`` is never sent; each actor builds its own.)"""
    for name, value in (retriever.factory_options or {}).items():
        try:
            ray.cloudpickle.dumps(value)  # type: ignore[no-untyped-call]
        except Exception as error:  # pickling may raise anything the object's type raises
            raise ConfigError(
                f"the retriever option {name!r} ({type(value).__name__}) cannot be sent to "
                f"the Ray engine's actors, which each build their own retriever from the "
                f"options: {type(error).__name__}: {masked_excerpt(str(error), 200)}. Pass a "
                "value that can be pickled (a number, a string, a path) and build the object "
                'inside the factory, or replay with engine = "local"'
            ) from error


def replay_on_ray(
    query_table: Path,
    shard_dir: Path,
    engine: RayEngine,
    spec: ReplaySpec,
    *,
    total: int,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Replay ``query_table``'s queries on Ray, one shard per batch in ``shard_dir``; returns the
    number of queries the shards hold.

    Raises EngineStoppedError when the engine stops (shards written so far stay). Actors score
    ``spec.measures`` at ``spec.k`` and, with ``spec.answers``, the answers (reading the
    ``spec.judge_cache`` snapshot). What ``progress(done, total)`` raises propagates.
    """
    retriever = replace(engine.retriever, query_embedder=None)
    check_shippable(retriever)
    shard_dir.mkdir(parents=True, exist_ok=True)
    with connected(engine.address), _quiet(logging.getLogger("ray.data")):
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.enable_operator_progress_bars = False
        context.enable_auto_log_stats = False
        # Ray Data's second Parquet reader lists the files and reads their footers in actors
        # of its own, each a worker process to start, for the one file of a query table; the
        # first reads that footer here, and a run then takes about 40 % less CPU.
        context.use_datasource_v2 = False
        # Streaming repartition: one block per batch, so every actor gets work even when
        # the table is one small file, without a barrier before the first batch.
        dataset = ray.data.read_parquet(str(query_table)).repartition(
            target_num_rows_per_block=engine.batch_size
        )
        dataset = dataset.map_batches(
            _ReplayActor,
            batch_size=engine.batch_size,
            batch_format="pyarrow",
            zero_copy_batch=True,
            compute=ray.data.ActorPoolStrategy(size=engine.actors),
            num_cpus=engine.actor_cpus,
            fn_constructor_args=(retriever, engine.settings, spec),
            fn_constructor_kwargs={"shard_dir": str(shard_dir), "actors": engine.actors},
            runtime_env={"env_vars": WORKER_ENV},
        )
        done = 0
        batches = iter(dataset.iter_batches(batch_size=None, batch_format="numpy"))
        while True:
            try:
                finished = next(batches)
            except StopIteration:
                break
            except Exception as error:
                raise EngineStoppedError(_first_line(error)) from error
            done += int(finished["queries"].sum())
            if progress is not None:
                progress(done, total)
    return done


def _first_line(error: BaseException) -> str:
    """``error`` in one short line, naming what the actor raised: Ray wraps it in errors
    of its own whose text carries the remote traceback, ``ValueError: ...`` among it."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    raised = [line for line in lines if _RAISED.match(line) and not line.startswith("ray.")]
    shown = raised[0] if raised else (lines[0] if lines else "")
    return f"{type(error).__name__}: {masked_excerpt(shown, 300)}"
