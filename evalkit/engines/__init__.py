"""Where a replay runs: ``local`` (one process, the default) or ``ray`` (a Ray cluster).

Both implement one protocol (``base.Engine``: ``replay(spec, queries) -> EngineReport``),
so the run lifecycle of ``evalkit.pipeline`` never asks which one it holds:

- ``local``: ``LocalEngine`` calls the retriever in this process, batch by batch, and
  hands every query's result back;
- ``ray``: ``RayEngine`` fans the queries out over a pool of Ray Data actors
  (``ray_actors``, imported only when a replay runs: Ray is the ``[ray]`` extra), which
  score each batch and leave one Parquet shard per batch for the store's one writer;
- ``tables``: the Parquet query tables and shards the Ray engine reads and writes.

This module only re-exports.
"""

from evalkit.engines.base import (
    ENGINES,
    Engine,
    EngineReport,
    EngineStoppedError,
    ReplayQueries,
    ReplaySpec,
    ReplayTiming,
    check_engine,
)
from evalkit.engines.local import LocalEngine, replay, results_frame
from evalkit.engines.ray import RayEngine, actor_judge_settings
from evalkit.engines.tables import (
    ANSWER_ITEM_SCHEMA,
    ANSWER_SCORE_SCHEMA,
    ANSWER_SHARDS,
    ANSWERS_DIR,
    COUNTS_KEY,
    JUDGED_SCHEMA,
    NUMBERED_SCHEMA,
    POSITION,
    QUERY_TABLE_COLUMNS,
    REFERENCE_COLUMNS,
    SHARD_SUFFIX,
    answer_shard,
    check_query_table,
    number_query_table,
    query_table,
    write_query_table,
)

__all__ = [
    "ANSWERS_DIR",
    "ANSWER_ITEM_SCHEMA",
    "ANSWER_SCORE_SCHEMA",
    "ANSWER_SHARDS",
    "COUNTS_KEY",
    "ENGINES",
    "JUDGED_SCHEMA",
    "NUMBERED_SCHEMA",
    "POSITION",
    "QUERY_TABLE_COLUMNS",
    "REFERENCE_COLUMNS",
    "SHARD_SUFFIX",
    "Engine",
    "EngineReport",
    "EngineStoppedError",
    "LocalEngine",
    "RayEngine",
    "ReplayQueries",
    "ReplaySpec",
    "ReplayTiming",
    "actor_judge_settings",
    "answer_shard",
    "check_engine",
    "check_query_table",
    "number_query_table",
    "query_table",
    "replay",
    "results_frame",
    "write_query_table",
]
