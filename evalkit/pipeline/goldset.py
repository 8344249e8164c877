"""Goldset workflows: what a goldset argument names, and the Ray engine's runs of a query
table with judgments."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow.compute as pc

from evalkit.engines import RayEngine, ReplayQueries, check_query_table
from evalkit.errors import ConfigError
from evalkit.goldset.formats import load_goldset as read_goldset_files
from evalkit.goldset.model import Goldset
from evalkit.metrics import parse_measures
from evalkit.pipeline.runs import (
    RunOutcome,
    _session,
    closing_retriever,
    default_measures,
    sharded_run,
)
from evalkit.retrievers.factory import build_retriever
from evalkit.store import RunSpec
from evalkit.store.access import WriterAccess
from evalkit.store.goldsets import list_goldsets


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
    """Replay the queries of a Parquet query table (``evalkit.engines``: one row per query
    with its judgments) on the Ray engine, score and store the run (kind ``queries``).

    For query sets too large for a goldset in memory (a day of traffic, a re-embedded
    index): the driver never holds the queries or their results, DuckDB reads both from
    Parquet. The retriever is built once here to describe the run, then closed.
    """
    # Parquet's reader is for the engine's paths only, not every `evalkit run`'s start.
    import pyarrow.parquet as pq

    measure_names = [str(m) for m in parse_measures(list(measures or default_measures(k)))]
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
        k=k,
        measure_names=measure_names,
        relevance_threshold=relevance_threshold,
        n_total=n_total,
        prepare=lambda writing: None,
        progress=progress,
        nothing_answered="failed",
    )


def resolve_goldset(
    store: WriterAccess | None,
    value: str | os.PathLike[str],
    *,
    root: Path | None = None,
    format: str = "jsonl",
    name: str | None = None,
    split: str = "test",
    topics: Path | None = None,
) -> str | Goldset:
    """What a goldset argument (``--goldset``, the pytest plugin's ``goldset=``) names: a
    stored goldset's name, or goldset files, read now.

    ``value`` is a path when it is spelt as one (a ``PathLike``, or text with a path
    separator: ``goldsets/demo``, ``./demo``); it must then exist. A bare word is the name of a
    stored goldset when ``store`` (a ``WriterAccess``, or None) holds one of
    that name, else the file or folder of that name if it exists, else a name that the
    store will say it does not know. Relative paths are relative to ``root`` (default: the
    working directory). Files are read as ``evalkit goldset import`` reads them (``format``
    jsonl, beir or trec with ``topics``; ``split``; ``name`` defaults to the file's or
    folder's stem) and their version is their content's hash, so storing them later adds a
    version only when the content is new. The ``Goldset``'s ``source`` is the path relative
    to ``root`` when it lies inside.
    """
    text = os.fspath(value)
    base = root or Path.cwd()
    path = base / Path(text).expanduser()
    spelt_as_path = isinstance(value, os.PathLike) or any(
        separator and separator in text for separator in ("/", os.sep, os.altsep)
    )
    if spelt_as_path:
        if not path.exists():
            raise ConfigError(
                f"goldset {text}: no such file or folder ({path}); give the path of a goldset "
                f"folder or file (relative to {base}), or the name of a stored goldset"
            )
    elif not path.exists() or _goldset_stored(store, text):
        return text
    loaded = read_goldset_files(
        path, format=format, name=name or path.stem, split=split, topics=topics
    )
    shown = path.relative_to(base) if path.is_relative_to(base) else path
    return dataclasses.replace(loaded, source=str(shown))


def _goldset_stored(store: WriterAccess | None, name: str) -> bool:
    with _session(store, "read goldsets") as opened:
        return opened is not None and bool(list_goldsets(opened, name))
