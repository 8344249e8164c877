"""Where a replay runs: ``local`` (one process, the default) or ``ray`` (a Ray cluster).

Both implement ``base.Engine`` (``replay(spec, queries) -> EngineReport``), so the run
lifecycle of ``evalkit.pipeline`` never asks which one it holds. Ray is imported only when a
Ray replay runs (the ``[ray]`` extra). This module only re-exports.
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
