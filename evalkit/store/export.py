"""A stored run written out for other tools (a TREC run file, JSON Lines or Parquet), and
a Parquet export read back into a store as the run it was.

The TREC file holds ranks and scores exactly as stored, so trec_eval computes the stored
metrics from it. A Parquet export carries the goldset version's queries and judgments, so
``import_run`` brings the run into another store whole. Every file is written under a
temporary name and renamed into place, so a failed export never leaves a half-written file.
Formats: docs/export.md.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import duckdb

from evalkit.clock import utc_now
from evalkit.errors import ConfigError, InputError, StoreError
from evalkit.files import create_beside
from evalkit.goldset.trec import TREC_SEPARATORS
from evalkit.jsonsafe import REPEATED_KEY, finite_or_null, noting_repeated_keys
from evalkit.records.run_reference import RUN_EXPORT_FILE, is_run_export
from evalkit.store.retention import require_per_query_rows
from evalkit.store.runs import RunRecord, RunSpec, get_run, insert_run, is_run_id

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = [
    "EXPORT_FORMATS",
    "GOLDSET_FILES",
    "PARQUET_FILES",
    "RunExport",
    "RunImport",
    "export_run",
    "import_run",
    "is_run_export",
    "write_jsonl",
    "write_parquet",
    "write_trec",
]

EXPORT_FORMATS: tuple[str, ...] = ("trec", "jsonl", "parquet")
"""The formats ``export_run`` writes."""

PARQUET_FILES: tuple[str, ...] = ("results.parquet", "queries.parquet", RUN_EXPORT_FILE)
"""The files of a Parquet export directory."""

GOLDSET_FILES: tuple[str, ...] = ("goldset_queries.parquet", "judgments.parquet")
"""The files a Parquet export of a goldset run adds: its goldset version's queries and
judgments, as the store holds them."""

_FINISHED = ("complete", "partial", "failed")

_BATCH_ROWS = 50_000
# RE2's \s leaves out the vertical tab, which trec_eval and `evalkit score` split on.
_TREC_SEPARATOR = "[" + TREC_SEPARATORS.encode("unicode_escape").decode() + "]"

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
    overwrite: bool = False,
) -> RunExport:
    """Write the run ``run_id`` (a unique prefix is enough) in ``format``: ``trec`` and
    ``jsonl`` to the file ``output`` or else ``stream``, ``parquet`` into the directory
    ``output``. Raises ``NotFoundError`` for an unknown run, ``ConfigError`` for a format that
    cannot hold the run or a run whose per-query rows retention deleted, and ``InputError``
    for an existing ``output`` (a directory holding files) unless ``overwrite``."""
    if format not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format {format!r}; use one of {EXPORT_FORMATS}")
    run = get_run(store, run_id)
    require_per_query_rows(
        store,
        run.run_id,
        needed=", so an export would hold none of them. Export a run before retention prunes "
        "it, or list it in the retention job's keep_runs",
    )
    if output is not None and not overwrite:
        _refuse_existing(output, directory=format == "parquet")
    if format == "parquet":
        if output is None:
            raise ConfigError("a Parquet export needs a directory to write to: give output DIR")
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


def _refuse_existing(output: Path, *, directory: bool) -> None:
    """InputError naming ``output`` when an export would replace what is there: a file (a
    link too), or for a ``directory`` export a directory holding anything. (A directory
    given for a file is named as such when it is opened.)"""
    if directory:
        if output.exists() and not output.is_dir():
            raise InputError(
                "is a file; a Parquet export is a directory: give another output",
                path=str(output),
            )
        if output.is_dir() and any(output.iterdir()):
            raise InputError(
                "already holds files; pass overwrite to write the export's files into it "
                "(the others are kept), or choose another output",
                path=str(output),
            )
    elif not output.is_dir() and (output.exists() or output.is_symlink()):
        raise InputError(
            "already exists; pass overwrite to replace it, or choose another output",
            path=str(output),
        )


def write_trec(store: Store, run: RunRecord, handle: TextIO) -> tuple[int, int]:
    """Write ``run``'s results as TREC run lines; returns (queries with results, lines).

    Check the ids first (``export_run`` does): an id holding whitespace would shift the
    fields of its line.
    """
    queries: set[str] = set()
    lines = 0
    for batch in store.fetch_batches(_RESULTS_SQL, [run.spec.goldset_version, run.run_id]):
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
    """Write one JSON object per query of ``run`` (fields in docs/export.md; non-finite
    numbers as null); returns (queries, retrieved documents)."""
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
    # A row is a whole query with its k results: batches are sized in results, or one batch
    # would hold every query of a 50,000-query run (3 GB of Python objects at k 100).
    per_batch = max(1, _BATCH_ROWS // max(run.spec.k, 1))
    for batch in store.fetch_batches(sql, parameters, rows=per_batch):
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
    ``directory`` (created if needed), plus ``GOLDSET_FILES`` for a goldset run; only these
    files are replaced (an earlier export's ``GOLDSET_FILES`` removed when ``run`` has no
    goldset). Columns in docs/export.md; a measure's column mean is the run's aggregate."""
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
    goldset_paths: tuple[Path, ...] = ()
    if goldset_version is not None:
        goldset_paths = tuple(directory / name for name in GOLDSET_FILES)
        for table, path in zip(("goldset_queries", "judgments"), goldset_paths, strict=True):
            _copy_parquet(
                store,
                f"SELECT * FROM {table} WHERE goldset_version = ?"
                + (" ORDER BY ordinal" if table == "goldset_queries" else ""),
                [goldset_version],
                path,
            )
    else:
        # An earlier export of a goldset run into this directory left its goldset's files:
        # read beside this run's (a glob over exports/*/judgments.parquet), they would pass
        # for its goldset.
        for name in GOLDSET_FILES:
            (directory / name).unlink(missing_ok=True)
    with _replaced_file(run_path) as handle:
        handle.write(
            json.dumps(finite_or_null(run.to_dict(canaries=True)), indent=2, allow_nan=False) + "\n"
        )
    return RunExport(
        run.run_id,
        run.status,
        "parquet",
        directory,
        *_counts(store, run.run_id),
        files=(results_path, queries_path, run_path, *goldset_paths),
    )


@dataclass(frozen=True, slots=True)
class RunImport:
    """What ``import_run`` did: the run, the export it was read from, and whether this
    import stored it (False: the store held that run already and nothing was written)."""

    run_id: str
    status: str
    path: Path
    imported: bool
    n_queries: int
    n_results: int
    goldset_stored: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "path": str(self.path),
            "imported": self.imported,
            "queries": self.n_queries,
            "results": self.n_results,
            "goldset_stored": self.goldset_stored,
        }


def import_run(store: Store, path: Path) -> RunImport:
    """Store the run of the Parquet export ``path`` (its directory or ``run.json``) as it was
    recorded, with ``imported_from`` naming the export, and its goldset version's queries and
    judgments when the store lacks them (under no goldset name). Idempotent: a run already
    held (same id, goldset version and start) is left, ``imported`` False. Raises
    ``InputError`` naming the file and field of a broken export, and ``ConfigError`` when the
    store holds another run under that id."""
    directory = path if path.is_dir() else path.parent
    missing = [name for name in PARQUET_FILES if not (directory / name).is_file()]
    if missing:
        raise InputError(
            f"not a run export: {', '.join(missing)} missing (write one with `evalkit runs "
            "export RUN --format parquet --output DIR`)",
            path=str(directory),
        )
    results_path, queries_path, run_path = (directory / name for name in PARQUET_FILES)
    exported = _read_run_json(run_path)
    origin = str(directory.resolve())
    held = store.fetch(
        "SELECT goldset_version, started_at, status, imported_from FROM runs WHERE run_id = ?",
        [exported.run_id],
    )
    if held:
        version, started_at, status, _ = held[0]
        if (version, started_at) != (exported.spec.goldset_version, exported.started_at):
            raise ConfigError(
                f"{run_path}: the store {store.path} holds another run with id "
                f"{exported.run_id} (goldset version {version}, started {started_at}); "
                "it cannot be imported beside it"
            )
        counts = _counts(store, exported.run_id)
        return RunImport(exported.run_id, str(status), directory, False, *counts)
    if store.read_only:
        raise StoreError(
            f"{directory} is the export of run {exported.run_id}, which the store {store.path} "
            "does not hold, and the store is read-only here: import it where the store can be "
            "written (`evalkit runs import`), or compare its TREC run file (`evalkit runs "
            "export RUN --format trec`) with --goldset"
        )
    measures = list(exported.spec.measures)
    _require_columns(store, queries_path, measures, "the run's measures")
    _check_run_rows(store, results_path, exported.run_id, "run_results")
    _check_run_rows(store, queries_path, exported.run_id, "run_queries")
    _check_aggregates(store, exported, queries_path, run_path)
    goldset_paths = [directory / name for name in GOLDSET_FILES]
    version = exported.spec.goldset_version
    held_goldset = version is not None and bool(
        store.fetch("SELECT 1 FROM goldset_queries WHERE goldset_version = ? LIMIT 1", [version])
    )
    absent_goldset = [file.name for file in goldset_paths if not file.is_file()]
    if version is not None and absent_goldset and not held_goldset:
        raise InputError(
            f"the export of a goldset run holds its goldset version's rows; "
            f"{', '.join(absent_goldset)} missing, and the store {store.path} does not hold "
            f"goldset version {version} either (an export written by an evalkit older than "
            "the goldset files has none): import the goldset version the run replayed "
            "(`evalkit goldset import`) and import the run again, or export it again "
            "with this evalkit",
            path=str(directory),
        )
    if version is not None:
        for table, file in zip(("goldset_queries", "judgments"), goldset_paths, strict=True):
            if file.is_file():
                _check_columns(store, file, table)
    # A goldset version is named by its content: the store's rows of it are the export's.
    store_goldset = version is not None and not held_goldset
    n_total = exported.spec.n_queries
    if held_goldset:
        n_total = int(
            store.fetch(
                "SELECT count(DISTINCT query_id) FROM judgments WHERE goldset_version = ?",
                [version],
            )[0][0]
        )
    elif version is not None:
        n_total = int(
            store.fetch(
                "SELECT count(DISTINCT query_id) FROM read_parquet(?) WHERE goldset_version = ?",
                [str(goldset_paths[1]), version],
            )[0][0]
        )
    try:
        with store.transaction() as con:
            insert_run(con, replace(exported, imported_from=origin, imported_at=utc_now()))
            con.execute(
                "INSERT INTO run_queries (run_id, query_id, latency_ms, error, n_results,"
                " n_duplicates) SELECT run_id, query_id, latency_ms, error, n_results,"
                " n_duplicates FROM read_parquet(?)",
                [str(queries_path)],
            )
            con.execute(
                "INSERT INTO run_results (run_id, query_id, rank, doc_id, score)"
                " SELECT run_id, query_id, rank, doc_id, score FROM read_parquet(?)",
                [str(results_path)],
            )
            for measure in measures:
                column = _identifier(measure)
                con.execute(
                    "INSERT INTO query_metrics (run_id, query_id, measure, value)"
                    f" SELECT run_id, query_id, ?, {column} FROM read_parquet(?)"
                    f" WHERE {column} IS NOT NULL",
                    [measure, str(queries_path)],
                )
            for measure, value in exported.aggregates.items():
                con.execute(
                    "INSERT INTO run_aggregates (run_id, measure, value, n_evaluated, n_total)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [exported.run_id, measure, value, exported.n_evaluated or 0, n_total],
                )
            if store_goldset:
                for table, file in zip(
                    ("goldset_queries", "judgments"), goldset_paths, strict=True
                ):
                    con.execute(
                        f"INSERT INTO {table} SELECT * FROM read_parquet(?)"
                        " WHERE goldset_version = ?",
                        [str(file), version],
                    )
    except duckdb.Error as error:
        raise InputError(
            f"cannot import the run {exported.run_id}: {error}", path=str(directory)
        ) from error
    return RunImport(
        exported.run_id,
        exported.status,
        directory,
        True,
        *_counts(store, exported.run_id),
        goldset_stored=store_goldset,
    )


def _check_aggregates(store: Store, run: RunRecord, queries_path: Path, run_path: Path) -> None:
    """Refuse an export whose ``run.json`` aggregates are not the means of its per-query
    values: an edited figure would be listed and gated on as if the run had scored it."""
    measures = [measure for measure in run.spec.measures if measure in run.aggregates]
    if not measures:
        return
    means = store.fetch(
        f"SELECT {', '.join(f'avg({_identifier(measure)})' for measure in measures)}"
        " FROM read_parquet(?)",
        [str(queries_path)],
    )[0]
    for measure, mean in zip(measures, means, strict=True):
        stated = run.aggregates[measure]
        agree = (
            stated is None or math.isnan(stated)
            if mean is None
            else stated is not None and math.isclose(stated, mean, rel_tol=1e-9, abs_tol=1e-12)
        )
        if not agree:
            raise InputError(
                f"is {stated}, but the mean of the run's per-query values in "
                f"{queries_path.name} is {mean}; the export was edited or is broken",
                path=str(run_path),
                field=f"aggregates.{measure}",
            )


def _read_run_json(path: Path) -> RunRecord:
    """The run record of an export's ``run.json``, every field checked."""

    def refused(message: str, field: str | None = None) -> InputError:
        return InputError(message, path=str(path), field=field)

    repeated: list[str] = []
    try:
        data = json.loads(
            path.read_text(encoding="utf-8"), object_pairs_hook=noting_repeated_keys(repeated)
        )
    except (OSError, UnicodeDecodeError) as error:
        raise refused(f"cannot read the run record: {error}") from error
    except json.JSONDecodeError as error:
        raise InputError(f"not JSON: {error.msg}", path=str(path), line=error.lineno) from error
    if repeated:
        raise refused(REPEATED_KEY, repeated[0])
    if not isinstance(data, dict):
        raise refused("expected a JSON object (the run's record)")
    model = data.get("model") or {}
    if not isinstance(model, dict):
        raise refused("expected an object or null", "model")
    size = data.get("index_size") or {}
    if not isinstance(size, dict):
        raise refused("expected an object or null", "index_size")

    def count(name: str) -> int | None:
        found = size.get(name)
        if found is not None and (
            not isinstance(found, int) or isinstance(found, bool) or found < 0
        ):
            raise refused(f"expected a count or null, found {found!r}", f"index_size.{name}")
        return found

    def value(name: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
        source, key = (model, name.split(".", 1)[1]) if name.startswith("model.") else (data, name)
        found = source.get(key)
        if found is None and optional:
            return None
        if not isinstance(found, kind) or isinstance(found, bool):
            names = (
                kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            )
            raise refused(
                f"expected {names}{' or null' if optional else ''}, found {found!r}", name
            )
        return found

    def moment(name: str, text: str) -> datetime:
        try:
            return datetime.fromisoformat(text.removesuffix("Z")).replace(tzinfo=None)
        except ValueError as error:
            raise refused(f"expected an ISO 8601 time, found {text!r}", name) from error

    status = value("status", str)
    if status not in _FINISHED:
        raise refused(
            f"a run export holds a finished run ({', '.join(_FINISHED)}), not {status!r}", "status"
        )
    measures = value("measures", list)
    if not all(isinstance(m, str) for m in measures):
        raise refused("expected a list of measure names", "measures")
    config = value("retriever_config", dict, optional=True) or {}
    aggregates = value("aggregates", dict, optional=True) or {}
    for measure, figure in aggregates.items():
        if figure is not None and (not isinstance(figure, int | float) or isinstance(figure, bool)):
            raise refused(f"expected a number or null, found {figure!r}", f"aggregates.{measure}")
    tags = value("tags", list, optional=True) or []
    if not all(isinstance(tag, str) for tag in tags):
        raise refused(f"expected a list of strings, found {tags!r}", "tags")

    def canaries(dimension: int | None) -> bytes:
        text = value("model.canaries", str, optional=True)
        if text is None:
            return b""
        try:
            blob = base64.b64decode(text, validate=True)
        except binascii.Error as error:
            raise refused(
                f"expected the canary embeddings in base64: {error}", "model.canaries"
            ) from error
        # float16 values, one row of `dimension` per canary text
        if not dimension or not blob or len(blob) % (2 * dimension):
            raise refused(
                f"expected float16 canary embeddings of {dimension} dimensions, found "
                f"{len(blob)} bytes",
                "model.canaries",
            )
        return blob

    k = value("k", int)
    if k < 1:
        raise refused(f"expected a positive depth, found {k}", "k")
    spec = RunSpec(
        kind=value("kind", str),
        retriever_kind=value("retriever", str),
        k=k,
        measures=tuple(measures),
        evalkit_version=value("evalkit_version", str),
        relevance_threshold=value("relevance_threshold", int),
        goldset_name=value("goldset", str, optional=True),
        goldset_version=value("goldset_version", str, optional=True),
        retriever_config=config,
        collection=value("collection", str, optional=True),
        model_name=value("model.name", str, optional=True),
        model_dimension=value("model.dimension", int, optional=True),
        model_fingerprint=value("model.fingerprint", str, optional=True),
        model_canaries=canaries(value("model.dimension", int, optional=True)),
        index_fingerprint=value("index_fingerprint", str, optional=True),
        seed=value("seed", int, optional=True),
        label=value("label", str, optional=True),
        n_queries=value("n_queries", int),
        tags=tuple(tags),
        index_documents=count("documents"),
        index_vectors=count("vectors"),
    )
    run_id = value("run_id", str)
    if not is_run_id(run_id):
        # Only ids evalkit wrote can be named on the command line and sort by start time.
        shown = run_id if len(run_id) <= 40 else run_id[:40] + "..."
        raise refused(
            "expected a run id as evalkit writes them (start time and six hex digits, "
            f"such as 20261121T183500-3f9a1c), found {shown!r}",
            "run_id",
        )
    finished_at = value("finished_at", str, optional=True)
    return RunRecord(
        run_id=run_id,
        status=status,
        spec=spec,
        started_at=moment("started_at", value("started_at", str)),
        finished_at=None if finished_at is None else moment("finished_at", finished_at),
        n_queries=spec.n_queries,
        n_failed=value("n_failed", int, optional=True),
        n_evaluated=value("n_evaluated", int, optional=True),
        error=value("error", str, optional=True),
        aggregates={str(m): None if v is None else float(v) for m, v in aggregates.items()},
    )


def _parquet_columns(store: Store, path: Path) -> set[str]:
    try:
        rows = store.fetch("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)])
    except StoreError as error:
        reason = str(error.__cause__ or error).splitlines()[0]
        raise InputError(f"not a readable Parquet file ({reason})", path=str(path)) from error
    return {str(row[0]) for row in rows}


_IMPORTED_COLUMNS = {
    "run_results": ("run_id", "query_id", "rank", "doc_id", "score"),
    "run_queries": ("run_id", "query_id", "latency_ms", "error", "n_results", "n_duplicates"),
}
"""The columns an import reads from a run's Parquet files; a goldset file gives every column
of its table."""


def _check_columns(store: Store, path: Path, table: str) -> None:
    """Refuse a Parquet file of an export that lacks a column the import of ``table`` reads."""
    wanted = _IMPORTED_COLUMNS.get(table) or [
        str(row[0]) for row in store.fetch(f"DESCRIBE {table}")
    ]
    _require_columns(store, path, wanted, f"{table} rows")


def _require_columns(store: Store, path: Path, wanted: Sequence[str], what: str) -> None:
    """Refuse the Parquet file ``path`` unless it has every ``wanted`` column (of ``what``)."""
    held = _parquet_columns(store, path)
    missing = [column for column in wanted if column not in held]
    if missing:
        raise InputError(
            f"column missing (the file holds {what}: {', '.join(wanted)})",
            path=str(path),
            field=missing[0],
        )


def _check_run_rows(store: Store, path: Path, run_id: str, table: str) -> None:
    """Refuse a Parquet file of an export that is not ``table``'s rows of run ``run_id``."""
    _check_columns(store, path, table)
    try:
        other = store.fetch(
            "SELECT run_id FROM read_parquet(?) WHERE run_id IS DISTINCT FROM ? LIMIT 1",
            [str(path), run_id],
        )
    except StoreError as error:
        raise InputError(f"not a file of a run export: {error}", path=str(path)) from error
    if other:
        raise InputError(
            f"rows of run {other[0][0]!r} in the export of run {run_id!r}",
            path=str(path),
            field="run_id",
        )


def _counts(store: Store, run_id: str) -> tuple[int, int]:
    row = store.fetch(
        "SELECT (SELECT count(*) FROM run_queries WHERE run_id = ?),"
        " (SELECT count(*) FROM run_results WHERE run_id = ?)",
        [run_id, run_id],
    )[0]
    return int(row[0]), int(row[1])


def _check_trec_ids(store: Store, run_id: str) -> None:
    """Refuse a run whose ids would break TREC's whitespace-separated fields, or whose
    query id starts with ``#``, which makes trec_eval read the line as a comment."""
    rows = store.fetch(
        "SELECT query_id, doc_id FROM run_results WHERE run_id = ?"
        " AND (regexp_matches(query_id, ?) OR regexp_matches(doc_id, ?)"
        " OR starts_with(query_id, '#')) LIMIT 1",
        [run_id, _TREC_SEPARATOR, _TREC_SEPARATOR],
    )
    if not rows:
        return
    query_id, doc_id = rows[0]
    if any(c in TREC_SEPARATORS for c in query_id):
        problem = f"query id {query_id!r} contains whitespace, which separates TREC fields"
    elif query_id.startswith("#"):
        problem = (
            f"query id {query_id!r} starts with '#', which makes trec_eval (and "
            "`evalkit score`) skip its lines as comments"
        )
    else:
        problem = (
            f"doc id {doc_id!r} (query {query_id!r}) contains whitespace, which separates "
            "TREC fields"
        )
    raise ConfigError(
        f"run {run_id} cannot be written as a TREC run file: its {problem}; export it as "
        "jsonl or parquet"
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


def _identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _score_text(score: float) -> str:
    # repr is the shortest text that reads back as the same double, so every tool that
    # parses the file compares the scores evalkit compared.
    return repr(float(score))


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
