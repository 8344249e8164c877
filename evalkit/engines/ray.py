"""The Ray engine: a query table replayed by a pool of Ray Data actors, one shard per batch.

``replay_on_ray`` reads the query table (Parquet, see ``evalkit.engines``) as a Ray
dataset and maps its batches over a pool of ``RayEngine.actors`` stateful actors
(``map_batches`` with a callable class). Each actor builds one retriever (and with it one
query embedder) from the engine's options and settings, and for each batch:

- replays it with ``evalkit.replay.replay``, so a failing retriever call becomes
  per-query errors exactly as in a local run;
- scores the answered, judged queries with the metric kernels (``Evaluator``) on the
  batch's own judgments: every measure is per query, so the values are those of a local
  run;
- writes one Parquet shard (``shard_schema``) under the run's shard directory, first to a
  ``.tmp`` file and then renamed, so a shard is either whole or absent. A shard's name is
  a digest of its query ids, so a batch Ray retries after an actor died rewrites the same
  shard instead of adding one.

Nothing here touches the store: the pipeline's one writer loads the shards
(``evalkit.store.shards``). Ray is imported by this module only; import it only when the
Ray engine is asked for (``evalkit.extras.require``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray
import ray.data

from evalkit.engines import POSITION, SHARD_SUFFIX, EngineStoppedError, RayEngine
from evalkit.metrics import Evaluator, parse_measures
from evalkit.records import Judgment, Query, QueryResult
from evalkit.replay import replay, results_frame
from evalkit.retrievers.factory import build_retriever

if TYPE_CHECKING:
    from evalkit.config import Settings
    from evalkit.retrievers.factory import RetrieverOptions

__all__ = ["WORKER_ENV", "replay_on_ray", "shard_schema"]

WORKER_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_USAGE_STATS_ENABLED": "0",
}
"""The environment of every actor: models load from their install path, nothing is
downloaded and nothing reports usage."""

_RAISED = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception): ")
"""A traceback's last line: the type and message of what was raised."""

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


class _ReplayActor:
    """One member of the actor pool: one retriever, used for every batch it is given."""

    def __init__(
        self,
        retriever: RetrieverOptions,
        settings: Settings,
        *,
        k: int,
        measures: Sequence[str],
        relevance_threshold: int,
        shard_dir: str,
    ) -> None:
        self._retriever = build_retriever(replace(retriever, query_embedder=None), settings)
        self._k = k
        self._measures = parse_measures(list(measures))
        self._schema = shard_schema([str(measure) for measure in self._measures])
        self._relevance_threshold = relevance_threshold
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
        partial_path = path.with_suffix(".tmp")
        positions = [row[POSITION] for row in rows]
        pq.write_table(self._shard(positions, results, metrics), partial_path)
        os.replace(partial_path, path)
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


def _shard_name(query_ids: Sequence[str]) -> str:
    digest = hashlib.sha256("\x00".join(query_ids).encode("utf-8")).hexdigest()[:24]
    return f"{digest}-{len(query_ids)}{SHARD_SUFFIX}"


@contextlib.contextmanager
def _connected(address: str | None) -> Iterator[None]:
    """Ray connected for the block: the session already open in this process, else the
    cluster at ``address`` (or ``RAY_ADDRESS``), else a local instance started here and
    stopped afterwards."""
    if ray.is_initialized():
        yield
        return
    target = address or os.environ.get("RAY_ADDRESS")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    if target:
        ray.init(address=target, logging_level=logging.WARNING, log_to_driver=False)
    else:
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
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """Only ``logger``'s errors for the block: evalkit reports progress and outcome itself."""
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def replay_on_ray(
    query_table: Path,
    shard_dir: Path,
    engine: RayEngine,
    *,
    k: int,
    measures: Sequence[str],
    relevance_threshold: int,
    total: int,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Replay the queries of the Parquet ``query_table`` on Ray, leaving one shard per batch
    in ``shard_dir``; the number of queries the shards hold when the engine finished.

    Raises EngineStoppedError when the engine stops (an actor that cannot be built, a
    cluster that goes away); the shards written until then stay, and the caller records
    the queries they lack as lost. ``progress(done, total)`` is called as batches finish;
    what it raises (a job being cancelled) propagates unchanged.
    """
    shard_dir.mkdir(parents=True, exist_ok=True)
    with _connected(engine.address), _quiet(logging.getLogger("ray.data")):
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.enable_operator_progress_bars = False
        context.enable_auto_log_stats = False
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
            fn_constructor_args=(engine.retriever, engine.settings),
            fn_constructor_kwargs={
                "k": k,
                "measures": list(measures),
                "relevance_threshold": relevance_threshold,
                "shard_dir": str(shard_dir),
            },
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
    return f"{type(error).__name__}: {shown[:300]}"
