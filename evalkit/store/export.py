"""A stored run written out for other tools: a TREC run file, JSON Lines or Parquet.

* ``trec``: ``qid Q0 docid rank score tag``, one line per retrieved document, ranks and
  scores exactly as stored (scores in Python's shortest round-trip form), the run id as
  tag. trec_eval and pytrec_eval rank by score and break ties by doc id descending, which
  is the ranking evalkit scored, so they compute the stored metrics from it.
* ``jsonl``: one object per query of the run, in the goldset's order: its ranked results,
  latency, error and per-query metrics.
* ``parquet``: a directory holding ``results.parquet`` (one row per retrieved document),
  ``queries.parquet`` (one row per query: replay facts and one column per measure) and
  ``run.json`` (the run's provenance and aggregates), written by DuckDB's ``COPY``.

Every file is written next to its destination under a temporary name and renamed into
place, so a failed export never leaves a half-written file where the complete one goes.
See docs/export.md.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from evalkit.errors import ConfigError
from evalkit.files import create_beside
from evalkit.jsonsafe import finite_or_null
from evalkit.store.runs import RunRecord, get_run

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = [
    "EXPORT_FORMATS",
    "PARQUET_FILES",
    "RunExport",
    "export_run",
    "write_jsonl",
    "write_parquet",
    "write_trec",
]

EXPORT_FORMATS: tuple[str, ...] = ("trec", "jsonl", "parquet")
"""The formats ``export_run`` writes."""

PARQUET_FILES: tuple[str, ...] = ("results.parquet", "queries.parquet", "run.json")
"""The files of a Parquet export directory."""

_BATCH_ROWS = 50_000
_WHITESPACE = r"\s"

# Queries in the goldset's order (a traffic replay has none: by id), documents by rank.
_QUERY_ORDER = " LEFT JOIN goldset_queries g ON g.goldset_version = ? AND g.query_id = q.query_id"
_RESULTS_SQL = (
    "SELECT r.query_id, r.doc_id, r.rank, r.score FROM run_results r"
    " LEFT JOIN goldset_queries g ON g.goldset_version = ? AND g.query_id = r.query_id"
    " WHERE r.run_id = ? ORDER BY g.ordinal NULLS LAST, r.query_id, r.rank"
)


@dataclass(frozen=True, slots=True)
class RunExport:
    """What an export wrote: the run (and its status), the format, where (None: a
    stream), and how much."""

    run_id: str
    status: str
    format: str
    path: Path | None
    n_queries: int
    n_results: int
    files: tuple[Path, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "format": self.format,
            "path": None if self.path is None else str(self.path),
            "queries": self.n_queries,
            "results": self.n_results,
            "files": [str(file) for file in self.files],
        }


def export_run(
    store: Store,
    run_id: str,
    *,
    format: str,
    output: Path | None = None,
    stream: TextIO | None = None,
) -> RunExport:
    """Write the run ``run_id`` (a unique prefix is enough) in ``format``.

    ``trec`` and ``jsonl`` go to the file ``output`` or, without one, to ``stream``;
    ``parquet`` needs ``output``, the directory that receives its files. Raises
    ``NotFoundError`` for an unknown run and ``ConfigError`` for a format that cannot hold
    the run (a TREC file cannot hold an id with whitespace in it).
    """
    if format not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format {format!r}; use one of {EXPORT_FORMATS}")
    run = get_run(store, run_id)
    if format == "parquet":
        if output is None:
            raise ConfigError("a Parquet export needs a directory to write to: give --output DIR")
        return write_parquet(store, run, output)
    writer = write_trec if format == "trec" else write_jsonl
    if format == "trec":
        _check_trec_ids(store, run.run_id)
    if output is None:
        if stream is None:
            raise ConfigError(f"a {format} export needs an output file or a stream")
        n_queries, n_results = writer(store, run, stream)
        return RunExport(run.run_id, run.status, format, None, n_queries, n_results)
    with _replaced_file(output) as handle:
        n_queries, n_results = writer(store, run, handle)
    return RunExport(run.run_id, run.status, format, output, n_queries, n_results, files=(output,))


def write_trec(store: Store, run: RunRecord, handle: TextIO) -> tuple[int, int]:
    """Write ``run``'s results as TREC run lines; returns (queries with results, lines).

    Check the ids first (``export_run`` does): an id holding whitespace would shift the
    fields of its line.
    """
    queries: set[str] = set()
    lines = 0
    for batch in _batches(store, _RESULTS_SQL, [run.spec.goldset_version, run.run_id]):
        handle.write(
            "".join(
                f"{query_id} Q0 {doc_id} {rank} {_score_text(score)} {run.run_id}\n"
                for query_id, doc_id, rank, score in batch
            )
        )
        queries.update(row[0] for row in batch)
        lines += len(batch)
    return len(queries), lines


def write_jsonl(store: Store, run: RunRecord, handle: TextIO) -> tuple[int, int]:
    """Write one JSON object per query of ``run``; returns (queries, retrieved documents).

    Each object: ``run_id``, ``query_id``, ``latency_ms``, ``error`` (null unless the
    retrieval failed), ``n_duplicates``, ``results`` (``rank``, ``doc_id``, ``score``,
    best first) and ``metrics`` (measure -> value; empty for a query that was not scored).
    Non-finite numbers are written as null.
    """
    sql = (
        "WITH docs AS (SELECT query_id, list(struct_pack(rank := rank, doc_id := doc_id,"
        " score := score) ORDER BY rank) AS results FROM run_results WHERE run_id = ?"
        " GROUP BY query_id),"
        " values AS (SELECT m.query_id, list(struct_pack(measure := m.measure,"
        " value := m.value) ORDER BY list_position(?, m.measure)) AS metrics"
        " FROM query_metrics m WHERE m.run_id = ? GROUP BY m.query_id)"
        " SELECT q.query_id, q.latency_ms, q.error, q.n_duplicates, d.results, v.metrics"
        f" FROM run_queries q{_QUERY_ORDER}"
        " LEFT JOIN docs d ON d.query_id = q.query_id"
        " LEFT JOIN values v ON v.query_id = q.query_id"
        " WHERE q.run_id = ? ORDER BY g.ordinal NULLS LAST, q.query_id"
    )
    parameters = [
        run.run_id,
        list(run.spec.measures),
        run.run_id,
        run.spec.goldset_version,
        run.run_id,
    ]
    queries = documents = 0
    for batch in _batches(store, sql, parameters):
        for query_id, latency_ms, error, n_duplicates, results, metrics in batch:
            record = {
                "run_id": run.run_id,
                "query_id": query_id,
                "latency_ms": _finite(latency_ms),
                "error": error,
                "n_duplicates": n_duplicates or 0,
                "results": [
                    {"rank": doc["rank"], "doc_id": doc["doc_id"], "score": _finite(doc["score"])}
                    for doc in results or ()
                ],
                "metrics": {item["measure"]: _finite(item["value"]) for item in metrics or ()},
            }
            handle.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
            queries += 1
            documents += len(record["results"])
    return queries, documents


def write_parquet(store: Store, run: RunRecord, directory: Path) -> RunExport:
    """Write ``run`` as ``results.parquet``, ``queries.parquet`` and ``run.json`` in
    ``directory`` (created if needed; these three files are replaced, nothing else).

    ``results.parquet``: run_id, query_id, rank, doc_id, score, one row per retrieved
    document. ``queries.parquet``: run_id, query_id, latency_ms, error, n_results,
    n_duplicates and a DOUBLE column per measure of the run, named as the measure
    (``"ndcg@10"``), null where the query was not scored; the mean of a measure's column is
    the run's aggregate.
    """
    directory.mkdir(parents=True, exist_ok=True)
    goldset_version = run.spec.goldset_version
    measures = list(run.spec.measures)
    columns = "".join(
        f", max(value) FILTER (WHERE measure = ?) AS {_identifier(measure)}" for measure in measures
    )
    per_measure = "".join(f", m.{_identifier(measure)}" for measure in measures)
    queries_sql = (
        f"WITH m AS (SELECT query_id{columns} FROM query_metrics WHERE run_id = ?"
        " GROUP BY query_id)"
        " SELECT q.run_id, q.query_id, q.latency_ms, q.error, q.n_results,"
        f" coalesce(q.n_duplicates, 0) AS n_duplicates{per_measure}"
        f" FROM run_queries q{_QUERY_ORDER} LEFT JOIN m ON m.query_id = q.query_id"
        " WHERE q.run_id = ? ORDER BY g.ordinal NULLS LAST, q.query_id"
    )
    results_sql = (
        "SELECT r.run_id, r.query_id, r.rank, r.doc_id, r.score FROM run_results r"
        " LEFT JOIN goldset_queries g ON g.goldset_version = ? AND g.query_id = r.query_id"
        " WHERE r.run_id = ? ORDER BY g.ordinal NULLS LAST, r.query_id, r.rank"
    )
    results_path, queries_path, run_path = (directory / name for name in PARQUET_FILES)
    _copy_parquet(store, results_sql, [goldset_version, run.run_id], results_path)
    _copy_parquet(
        store,
        queries_sql,
        [*measures, run.run_id, goldset_version, run.run_id],
        queries_path,
    )
    with _replaced_file(run_path) as handle:
        handle.write(json.dumps(finite_or_null(run.to_dict()), indent=2, allow_nan=False) + "\n")
    counts = store.fetch(
        "SELECT (SELECT count(*) FROM run_queries WHERE run_id = ?),"
        " (SELECT count(*) FROM run_results WHERE run_id = ?)",
        [run.run_id, run.run_id],
    )[0]
    return RunExport(
        run.run_id,
        run.status,
        "parquet",
        directory,
        int(counts[0]),
        int(counts[1]),
        files=(results_path, queries_path, run_path),
    )


def _check_trec_ids(store: Store, run_id: str) -> None:
    """Refuse a run whose ids would break TREC's whitespace-separated fields."""
    rows = store.fetch(
        "SELECT query_id, doc_id FROM run_results WHERE run_id = ?"
        " AND (regexp_matches(query_id, ?) OR regexp_matches(doc_id, ?)) LIMIT 1",
        [run_id, _WHITESPACE, _WHITESPACE],
    )
    if rows:
        query_id, doc_id = rows[0]
        which = f"query id {query_id!r}" if any(c.isspace() for c in query_id) else None
        which = which or f"doc id {doc_id!r} (query {query_id!r})"
        raise ConfigError(
            f"run {run_id} cannot be written as a TREC run file: its {which} contains "
            "whitespace, which separates TREC fields; export it as jsonl or parquet"
        )


def _copy_parquet(store: Store, sql: str, parameters: Sequence[object], path: Path) -> None:
    """``COPY`` the query's rows to ``path`` as Parquet (written aside, then renamed)."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        store.copy_query(sql, parameters, partial, options="FORMAT parquet, COMPRESSION zstd")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


@contextmanager
def _replaced_file(path: Path) -> Iterator[TextIO]:
    """A text file written beside ``path`` and renamed onto it only once complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = create_beside(path)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as handle:
            yield handle
        os.replace(name, path)
    finally:
        Path(name).unlink(missing_ok=True)


def _batches(
    store: Store, sql: str, parameters: Sequence[object]
) -> Iterator[list[tuple[Any, ...]]]:
    return store.fetch_batches(sql, parameters, rows=_BATCH_ROWS)


def _identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _score_text(score: float) -> str:
    # repr is the shortest text that reads back as the same double, so every tool that
    # parses the file compares the scores evalkit compared.
    return repr(float(score))


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
