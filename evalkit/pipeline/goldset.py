"""Goldset workflows: the Ray engine's runs of a query table with judgments."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow.compute as pc

from evalkit.engines import RayEngine, ReplayQueries, check_query_table
from evalkit.metrics import parse_measures
from evalkit.pipeline.runs import (
    RunOutcome,
    closing_retriever,
    default_measures,
    sharded_run,
)
from evalkit.retrievers.factory import build_retriever
from evalkit.store import RunSpec
from evalkit.store.access import WriterAccess


def evaluate_query_table(
    store: WriterAccess,
    path: Path,
    engine: RayEngine,
    *,
    k: int,
    measures: Sequence[str] | None = None,
    relevance_threshold: int = 1,
    label: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RunOutcome:
    """Replay a Parquet query table (one row per query with its judgments) on the Ray engine,
    score and store the run (kind ``queries``): the driver never holds the queries or results.
    """
    # Parquet's reader is for the engine's paths only, not every `evalkit run`'s start.
    import pyarrow.parquet as pq

    measure_names = [str(m) for m in parse_measures(measures or default_measures(k))]
    # A table that is not one fails before a run is recorded.
    check_query_table(path)
    n_queries = n_total = 0
    # A batch at a time: a table of millions of queries is never held whole.
    for batch in pq.ParquetFile(path).iter_batches(columns=["judged_doc_ids"]):
        judged = pc.list_value_length(batch.column(0))
        n_queries += batch.num_rows
        n_total += int(pc.sum(pc.greater(judged, 0)).as_py() or 0)
    described = build_retriever(engine.retriever, engine.settings)
    with closing_retriever(described):
        spec = RunSpec.for_retriever(
            described,
            kind="queries",
            k=k,
            n_queries=n_queries,
            measures=measure_names,
            relevance_threshold=relevance_threshold,
            label=label,
        )

    return sharded_run(
        store,
        spec,
        engine,
        ReplayQueries(table=path),
        n_total=n_total,
        prepare=lambda writing: None,
        progress=progress,
        nothing_answered="failed",
    )
