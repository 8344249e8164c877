"""The Parquet tables the Ray engine reads and writes: query tables, shards, answer shards.

A query table holds one row per query with its judgments as two parallel lists (and, for
answers, its references). Each row of a numbered table carries its ``position``, which every
shard row repeats, so the writer can tell which queries the shards hold with one byte per
query instead of a table of query ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from evalkit.errors import InputError
from evalkit.records import Judgment, Query

__all__ = [
    "ANSWERS_DIR",
    "ANSWER_ITEM_SCHEMA",
    "ANSWER_SCORE_SCHEMA",
    "ANSWER_SHARDS",
    "COUNTS_KEY",
    "JUDGED_SCHEMA",
    "NUMBERED_SCHEMA",
    "POSITION",
    "QUERY_TABLE_COLUMNS",
    "QUERY_TABLE_SCHEMA",
    "REFERENCE_COLUMNS",
    "ROW_GROUP_SIZE",
    "SHARD_SUFFIX",
    "answer_shard",
    "check_query_table",
    "number_query_table",
    "query_table",
    "write_query_table",
]

QUERY_TABLE_COLUMNS: tuple[str, ...] = (
    "query_id",
    "text",
    "tenant",
    "judged_doc_ids",
    "judged_relevance",
)
"""The columns of a query table (see the module docstring)."""

REFERENCE_COLUMNS: tuple[str, ...] = ("reference_answer", "reference_context_ids")
"""The optional columns of a query table: what answer scoring compares an answer with."""

ROW_GROUP_SIZE = 10_000
"""Queries per row group of a query table evalkit writes."""

POSITION = "position"
"""The column of a numbered query table, and of a shard, that holds a query's row number."""

SHARD_SUFFIX = ".parquet"
"""How a finished shard's file name ends (one being written ends ``.tmp``)."""

ANSWERS_DIR = "answers"
"""The sub-directory of a run's shard directory holding the shards of its answers' scores."""

ANSWER_SHARDS: tuple[str, ...] = ("scores", "items", "judged")
"""The answer shards of a batch, each named ``<batch shard's stem>.<kind>.parquet``: the
scores of its answers (``answer_scores`` rows, the judge calls and cache hits in the file's
metadata), the answers scored (``answer_items`` rows) and the judge outputs it obtained
(``judge_cache`` rows)."""


ANSWER_SCORE_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("method", pa.string(), nullable=False),
        pa.field("judge_model", pa.string()),
        pa.field("prompt_version", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("unmeasured_reason", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("n_repeats", pa.int32(), nullable=False),
        pa.field("spread", pa.float64()),
        pa.field("n_claims", pa.int32()),
        pa.field("n_supported", pa.int32()),
    ]
)
"""The columns of a batch's ``scores`` answer shard: its ``answer_scores`` rows."""

ANSWER_ITEM_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("question", pa.string(), nullable=False),
        pa.field("answer", pa.string(), nullable=False),
        pa.field("contexts", pa.list_(pa.string()), nullable=False),
        pa.field("context_ids", pa.list_(pa.string()), nullable=False),
        pa.field("reference", pa.string()),
    ]
)
"""The columns of a batch's ``items`` answer shard: the answers scored (``answer_items``)."""

JUDGED_SCHEMA = pa.schema(
    [
        pa.field("cache_key", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),
        pa.field("judge_model", pa.string(), nullable=False),
        pa.field("prompt_version", pa.string(), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("unmeasured_reason", pa.string()),
        pa.field("n_claims", pa.int32()),
        pa.field("n_supported", pa.int32()),
        pa.field("detail", pa.string()),
    ]
)
"""The columns of a batch's ``judged`` answer shard, and of the judge cache's snapshot the
actors read: judge outputs by cache key (``judge_cache`` rows)."""

COUNTS_KEY = b"evalkit.answer_counts"
"""The ``scores`` answer shard's metadata key holding its judge calls and cache hits."""


def answer_shard(shard: Path, kind: str) -> Path:
    """Where the ``kind`` answer shard (``ANSWER_SHARDS``) of the batch shard ``shard`` goes."""
    return (
        shard.parent / ANSWERS_DIR / f"{shard.name.removesuffix(SHARD_SUFFIX)}.{kind}{SHARD_SUFFIX}"
    )


QUERY_TABLE_SCHEMA = pa.schema(
    [
        pa.field("query_id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("tenant", pa.string()),
        pa.field("judged_doc_ids", pa.list_(pa.string())),
        pa.field("judged_relevance", pa.list_(pa.int32())),
        pa.field("reference_answer", pa.string()),
        pa.field("reference_context_ids", pa.list_(pa.string())),
    ]
)
"""The columns of a query table evalkit writes (``QUERY_TABLE_COLUMNS`` and the references)."""

NUMBERED_SCHEMA = QUERY_TABLE_SCHEMA.append(pa.field(POSITION, pa.int64(), nullable=False))
"""A query table with each row's position (what the engine replays)."""


def query_table(queries: Sequence[Query], judgments: Sequence[Judgment] = ()) -> pa.Table:
    """``queries`` and their ``judgments`` as a numbered query table, in the queries' order."""
    judged: dict[str, tuple[list[str], list[int]]] = {}
    for judgment in judgments:
        doc_ids, grades = judged.setdefault(judgment.query_id, ([], []))
        doc_ids.append(judgment.doc_id)
        grades.append(judgment.relevance)
    empty: tuple[list[str], list[int]] = ([], [])
    return pa.table(
        {
            "query_id": [query.id for query in queries],
            "text": [query.text for query in queries],
            "tenant": [query.tenant for query in queries],
            "judged_doc_ids": [judged.get(query.id, empty)[0] for query in queries],
            "judged_relevance": [judged.get(query.id, empty)[1] for query in queries],
            "reference_answer": [query.reference_answer for query in queries],
            "reference_context_ids": [list(query.reference_context_ids) for query in queries],
            POSITION: range(len(queries)),
        },
        schema=NUMBERED_SCHEMA,
    )


def write_query_table(
    path: Path,
    queries: Sequence[Query],
    judgments: Sequence[Judgment] = (),
    *,
    row_group_size: int = ROW_GROUP_SIZE,
) -> Path:
    """Write ``queries`` and ``judgments`` as a numbered query table to the Parquet file ``path``,
    in row groups of ``row_group_size`` queries (the units a reader can spread over
    workers)."""
    # Parquet's writer only when a table is written: `evalkit run` imports this module.
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(query_table(queries, judgments), path, row_group_size=row_group_size)
    return path


def check_query_table(source: Path) -> set[str]:
    """The columns of the query table ``source``; InputError naming the file when a column
    of ``QUERY_TABLE_COLUMNS`` is missing. Reads the Parquet schema only."""
    import pyarrow.parquet as pq

    present = set(pq.read_schema(source).names)
    missing = [name for name in QUERY_TABLE_COLUMNS if name not in present]
    if missing:
        raise InputError(
            f"{source}: not a query table: no column {', '.join(missing)} (a query table has "
            f"{', '.join(QUERY_TABLE_COLUMNS)})"
        )
    return present


def number_query_table(source: Path, path: Path) -> int:
    """Copy the query table ``source`` to ``path`` with each row's ``POSITION`` (0, 1, ...),
    a row group at a time (a table of millions of queries is never held whole); the number
    of queries. The ``REFERENCE_COLUMNS`` are copied when present, else left null. Raises
    InputError naming the file when a column of ``QUERY_TABLE_COLUMNS`` is missing."""
    # Parquet's reader and writer only on the engine's path: `evalkit run` imports this.
    import numpy as np
    import pyarrow.parquet as pq

    reader = pq.ParquetFile(source)
    present = check_query_table(source)
    references = [name for name in REFERENCE_COLUMNS if name in present]
    copied = [*QUERY_TABLE_COLUMNS, *references]
    schema = pa.schema(
        [
            *(reader.schema_arrow.field(name) for name in copied),
            *(QUERY_TABLE_SCHEMA.field(name) for name in REFERENCE_COLUMNS if name not in present),
        ]
    ).append(pa.field(POSITION, pa.int64(), nullable=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with pq.ParquetWriter(path, schema) as writer:
        for batch in reader.iter_batches(batch_size=ROW_GROUP_SIZE, columns=copied):
            positions = pa.array(np.arange(count, count + batch.num_rows), pa.int64())
            absent = [
                pa.nulls(batch.num_rows, QUERY_TABLE_SCHEMA.field(name).type)
                for name in REFERENCE_COLUMNS
                if name not in present
            ]
            writer.write_batch(
                pa.RecordBatch.from_arrays([*batch.columns, *absent, positions], schema=schema)
            )
            count += batch.num_rows
    return count
