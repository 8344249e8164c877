"""The DuckDB store: the only place in evalkit that speaks SQL.

Every figure lands here first. Writes are transactional: a run row is created ``running``,
per-query results are appended batch by batch, and the metrics and the final status
(``complete``, ``partial`` or ``failed``) are written together in one transaction, so a crash
never leaves a run that looks complete. DuckDB allows one writing process at a time; readers
(the dashboard) open the file read-only.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import pandas as pd

from evalkit.clock import utc_now
from evalkit.errors import NotFoundError, StoreError
from evalkit.goldset.model import Goldset
from evalkit.records import Judgment, Query, QueryResult
from evalkit.redaction import redact_known
from evalkit.store.migrations import MIGRATIONS

__all__ = ["GoldsetInfo", "RunRecord", "RunSpec", "RunStatus", "Store", "utc_now"]

RunStatus = str
RUN_STATUSES: tuple[RunStatus, ...] = ("running", "complete", "partial", "failed")


def _masked(text: str | None) -> str | None:
    return None if text is None else redact_known(text)


def new_run_id(started_at: datetime) -> str:
    """A run id that sorts by start time and is unique: ``20261121T183500-3f9a1c``."""
    return f"{started_at:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class RunSpec:
    """What a run is: everything needed to reproduce it, recorded before it starts."""

    kind: str
    retriever_kind: str
    k: int
    measures: tuple[str, ...]
    evalkit_version: str
    relevance_threshold: int = 1
    goldset_name: str | None = None
    goldset_version: str | None = None
    retriever_config: Mapping[str, Any] = field(default_factory=dict)
    collection: str | None = None
    model_name: str | None = None
    model_dimension: int | None = None
    model_fingerprint: str | None = None
    index_fingerprint: str | None = None
    seed: int | None = None
    label: str | None = None
    n_queries: int = 0


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A stored run as read back: its spec, status, counts, times and aggregates."""

    run_id: str
    status: RunStatus
    spec: RunSpec
    started_at: datetime
    finished_at: datetime | None
    n_queries: int
    n_failed: int | None
    n_evaluated: int | None
    error: str | None
    aggregates: Mapping[str, float | None]
    n_duplicates: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        spec = self.spec
        return {
            "run_id": self.run_id,
            "status": self.status,
            "kind": spec.kind,
            "label": spec.label,
            "goldset": spec.goldset_name,
            "goldset_version": spec.goldset_version,
            "retriever": spec.retriever_kind,
            "retriever_config": dict(spec.retriever_config),
            "collection": spec.collection,
            "model": {
                "name": spec.model_name,
                "dimension": spec.model_dimension,
                "fingerprint": spec.model_fingerprint,
            },
            "index_fingerprint": spec.index_fingerprint,
            "evalkit_version": spec.evalkit_version,
            "k": spec.k,
            "relevance_threshold": spec.relevance_threshold,
            "measures": list(spec.measures),
            "seed": spec.seed,
            "started_at": self.started_at.isoformat() + "Z",
            "finished_at": self.finished_at.isoformat() + "Z" if self.finished_at else None,
            "n_queries": self.n_queries,
            "n_failed": self.n_failed,
            "n_evaluated": self.n_evaluated,
            "n_duplicates": self.n_duplicates,
            "error": self.error,
            "aggregates": dict(self.aggregates),
        }


@dataclass(frozen=True, slots=True)
class GoldsetInfo:
    """One stored goldset version."""

    name: str
    version: str
    source: str | None
    imported_at: datetime
    n_queries: int
    n_judgments: int


class Store:
    """A DuckDB file holding goldsets, runs, per-query results and metrics.

    Open it with ``Store.open(path)`` (creates and migrates the file) or
    ``Store.open(path, read_only=True)`` (never writes; the file must exist).
    """

    def __init__(self, connection: duckdb.DuckDBPyConnection, path: Path, *, read_only: bool):
        self._con = connection
        self.path = path
        self.read_only = read_only

    @classmethod
    def open(cls, path: Path | str, *, read_only: bool = False) -> Store:
        """Open (and, unless read-only, create and migrate) the store at ``path``."""
        path = Path(path)
        if read_only and not path.exists():
            raise NotFoundError(
                f"no evalkit store at {path}: run `evalkit run` (or `make demo`) first, "
                "or point EVALKIT_HOME / EVALKIT_STORE_PATH at an existing store"
            )
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as error:
            if "lock" in str(error).lower():
                raise StoreError(
                    f"the store {path} is held by another writing process (for example "
                    "`evalkit serve`); wait for it to finish or open the store read-only"
                ) from error
            raise StoreError(f"cannot open the store {path}: {error}") from error
        except duckdb.Error as error:
            raise StoreError(f"cannot open the store {path}: {error}") from error
        store = cls(connection, path, read_only=read_only)
        if read_only:
            store._check_schema_current()
        else:
            store.migrate()
        return store

    def close(self) -> None:
        """Close the connection."""
        self._con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Run the enclosed statements atomically: all of them or none."""
        self._require_writable()
        self._con.begin()
        try:
            yield self._con
        except BaseException:
            self._con.rollback()
            raise
        self._con.commit()

    def _require_writable(self) -> None:
        if self.read_only:
            raise StoreError(f"the store {self.path} is open read-only; this needs a writer")

    def execute(self, sql: str, parameters: Sequence[object] = ()) -> None:
        """Run one parameterised write statement in its own transaction."""
        try:
            with self.transaction() as con:
                con.execute(sql, list(parameters))
        except duckdb.Error as error:
            raise StoreError(f"store write failed on {self.path}: {error}") from error

    def fetch(self, sql: str, parameters: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Rows of a parameterised query (for evalkit.store's own modules)."""
        try:
            return self._con.execute(sql, list(parameters)).fetchall()
        except duckdb.Error as error:
            raise StoreError(f"store query failed on {self.path}: {error}") from error

    def fetch_frame(self, sql: str, parameters: Sequence[object] = ()) -> pd.DataFrame:
        """A parameterised query's result as a DataFrame (for evalkit.store's own modules)."""
        try:
            return self._con.execute(sql, list(parameters)).df()
        except duckdb.Error as error:
            raise StoreError(f"store query failed on {self.path}: {error}") from error

    def insert_frame(self, table: str, frame: pd.DataFrame) -> None:
        """Bulk-insert a DataFrame whose columns are named as the table's (inside a transaction)."""
        if frame.empty:
            return
        view = f"_incoming_{table}"
        self._con.register(view, frame)
        try:
            columns = ", ".join(frame.columns)
            self._con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {view}")
        finally:
            self._con.unregister(view)

    # -- schema -------------------------------------------------------------------------

    def migrate(self) -> list[str]:
        """Apply the migrations this file has not had yet; returns their names."""
        self._require_writable()
        self._con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "number INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
        )
        applied = {row[0] for row in self.fetch("SELECT number FROM schema_migrations")}
        names = []
        for migration in MIGRATIONS:
            if migration.number in applied:
                continue
            try:
                with self.transaction() as con:
                    con.execute(migration.sql)
                    con.execute(
                        "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                        [migration.number, migration.name, utc_now()],
                    )
            except duckdb.Error as error:
                raise StoreError(
                    f"migration {migration.number} ({migration.name}) failed on {self.path}: "
                    f"{error}"
                ) from error
            names.append(migration.name)
        return names

    def schema_version(self) -> int:
        """The highest migration applied to this file (0 for an empty file)."""
        try:
            rows = self._con.execute("SELECT max(number) FROM schema_migrations").fetchall()
        except duckdb.CatalogException:
            return 0
        return int(rows[0][0] or 0)

    def _check_schema_current(self) -> None:
        current = self.schema_version()
        latest = MIGRATIONS[-1].number
        if current < latest:
            raise StoreError(
                f"the store {self.path} has schema version {current}, this evalkit needs "
                f"{latest}: run any writing evalkit command once to migrate it"
            )

    # -- goldsets -----------------------------------------------------------------------

    def save_goldset(self, goldset: Goldset) -> bool:
        """Store a goldset version; returns False when that name and version were stored already."""
        self._require_writable()
        exists = self.fetch(
            "SELECT 1 FROM goldsets WHERE name = ? AND version = ?",
            [goldset.name, goldset.version],
        )
        if exists:
            return False
        content_stored = self.fetch(
            "SELECT 1 FROM goldset_queries WHERE goldset_version = ? LIMIT 1", [goldset.version]
        )
        queries = pd.DataFrame(
            {
                "goldset_version": goldset.version,
                "ordinal": range(len(goldset.queries)),
                "query_id": [q.id for q in goldset.queries],
                "text": [q.text for q in goldset.queries],
                "tenant": [q.tenant for q in goldset.queries],
                "tags": [list(q.tags) for q in goldset.queries],
                "reference_answer": [q.reference_answer for q in goldset.queries],
                "reference_context_ids": [list(q.reference_context_ids) for q in goldset.queries],
            }
        )
        judgments = pd.DataFrame(
            {
                "goldset_version": goldset.version,
                "query_id": [j.query_id for j in goldset.judgments],
                "doc_id": [j.doc_id for j in goldset.judgments],
                "relevance": pd.array([j.relevance for j in goldset.judgments], dtype="int32"),
            }
        )
        try:
            with self.transaction() as con:
                con.execute(
                    "INSERT INTO goldsets VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        goldset.name,
                        goldset.version,
                        goldset.source,
                        utc_now(),
                        len(goldset.queries),
                        len(goldset.judgments),
                    ],
                )
                if not content_stored:
                    self.insert_frame("goldset_queries", queries)
                    self.insert_frame("judgments", judgments)
        except duckdb.Error as error:
            raise StoreError(f"cannot store goldset {goldset.name}: {error}") from error
        return True

    def list_goldsets(self, name: str | None = None) -> list[GoldsetInfo]:
        """Stored goldset versions, newest first (optionally of one name)."""
        rows = self.fetch(
            "SELECT name, version, source, imported_at, n_queries, n_judgments FROM goldsets "
            "WHERE ? IS NULL OR name = ? ORDER BY name, imported_at DESC",
            [name, name],
        )
        return [GoldsetInfo(*row) for row in rows]

    def load_goldset(self, name: str, version: str | None = None) -> Goldset:
        """The goldset ``name`` at ``version`` (default: the newest imported version)."""
        versions = self.list_goldsets(name)
        if not versions:
            known = sorted({info.name for info in self.list_goldsets()})
            raise NotFoundError(
                f"no goldset named {name!r} in {self.path} (stored: {', '.join(known) or 'none'}); "
                "import it with `evalkit goldset import PATH --name NAME`"
            )
        chosen = versions[0]
        if version is not None:
            matching = [info for info in versions if info.version.startswith(version)]
            if not matching:
                raise NotFoundError(
                    f"goldset {name!r} has no version {version!r}; stored versions: "
                    + ", ".join(info.version for info in versions)
                )
            chosen = matching[0]
        query_rows = self.fetch(
            "SELECT query_id, text, tenant, tags, reference_answer, reference_context_ids "
            "FROM goldset_queries WHERE goldset_version = ? ORDER BY ordinal",
            [chosen.version],
        )
        queries = [
            Query(
                id=row[0],
                text=row[1],
                tenant=row[2],
                tags=tuple(row[3] or ()),
                reference_answer=row[4],
                reference_context_ids=tuple(row[5] or ()),
            )
            for row in query_rows
        ]
        judgment_rows = self.fetch(
            "SELECT query_id, doc_id, relevance FROM judgments WHERE goldset_version = ? "
            "ORDER BY query_id, doc_id",
            [chosen.version],
        )
        judgments = [Judgment(*row) for row in judgment_rows]
        return Goldset(
            name=chosen.name,
            queries=tuple(queries),
            judgments=tuple(judgments),
            version=chosen.version,
            source=chosen.source or "",
        )

    def judgments_frame(self, goldset_version: str) -> pd.DataFrame:
        """Judgments of a goldset version as a DataFrame (query_id, doc_id, relevance)."""
        return self.fetch_frame(
            "SELECT query_id, doc_id, relevance FROM judgments WHERE goldset_version = ?",
            [goldset_version],
        )

    # -- runs ---------------------------------------------------------------------------

    def create_run(self, spec: RunSpec, *, started_at: datetime | None = None) -> str:
        """Record a new run as ``running`` and return its id (committed at once).

        ``started_at`` (UTC, naive) defaults to now; a run replayed before it is recorded
        gives the time its replay began.
        """
        self._require_writable()
        started_at = started_at or utc_now()
        run_id = new_run_id(started_at)
        try:
            with self.transaction() as con:
                con.execute(
                    "INSERT INTO runs (run_id, status, kind, label, goldset_name, goldset_version,"
                    " retriever_kind, retriever_config, collection, model_name, model_dimension,"
                    " model_fingerprint, index_fingerprint, evalkit_version, k,"
                    " relevance_threshold, measures, seed, started_at, n_queries)"
                    " VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        run_id,
                        spec.kind,
                        spec.label,
                        spec.goldset_name,
                        spec.goldset_version,
                        spec.retriever_kind,
                        redact_known(
                            json.dumps(dict(spec.retriever_config), sort_keys=True, default=str)
                        ),
                        spec.collection,
                        spec.model_name,
                        spec.model_dimension,
                        spec.model_fingerprint,
                        spec.index_fingerprint,
                        spec.evalkit_version,
                        spec.k,
                        spec.relevance_threshold,
                        list(spec.measures),
                        spec.seed,
                        started_at,
                        spec.n_queries,
                    ],
                )
        except duckdb.Error as error:
            raise StoreError(f"cannot record a new run in {self.path}: {error}") from error
        return run_id

    def add_query_results(self, run_id: str, results: Sequence[QueryResult]) -> None:
        """Append one batch of per-query results (docs, latency, error) in one transaction."""
        if not results:
            return
        queries = pd.DataFrame(
            {
                "run_id": run_id,
                "query_id": [r.query_id for r in results],
                "latency_ms": [r.latency_ms for r in results],
                "error": [None if r.error is None else redact_known(r.error) for r in results],
                "n_results": pd.array([len(r.docs) for r in results], dtype="int32"),
                "n_duplicates": pd.array([r.n_duplicates for r in results], dtype="int32"),
            }
        )
        docs = pd.DataFrame(
            {
                "run_id": run_id,
                "query_id": [r.query_id for r in results for _ in r.docs],
                "rank": pd.array([d.rank for r in results for d in r.docs], dtype="int32"),
                "doc_id": [d.doc_id for r in results for d in r.docs],
                "score": [d.score for r in results for d in r.docs],
            }
        )
        try:
            with self.transaction():
                self.insert_frame("run_queries", queries)
                self.insert_frame("run_results", docs)
        except duckdb.Error as error:
            raise StoreError(f"cannot store results of run {run_id}: {error}") from error

    def finish_run(
        self,
        run_id: str,
        *,
        status: RunStatus,
        per_query: pd.DataFrame | None,
        aggregates: Mapping[str, float | None],
        n_evaluated: int,
        n_total: int,
        n_failed: int,
        error: str | None = None,
    ) -> None:
        """Write a run's metrics and final status together, atomically.

        ``per_query`` is wide: index query_id, one column per canonical measure name.
        """
        if status not in RUN_STATUSES or status == "running":
            raise StoreError(f"cannot finish run {run_id} with status {status!r}")
        long = _long_metrics(run_id, per_query)
        aggregate_rows = pd.DataFrame(
            {
                "run_id": run_id,
                "measure": list(aggregates),
                "value": [aggregates[name] for name in aggregates],
                "n_evaluated": n_evaluated,
                "n_total": n_total,
            }
        )
        try:
            with self.transaction() as con:
                self.insert_frame("query_metrics", long)
                self.insert_frame("run_aggregates", aggregate_rows)
                con.execute(
                    "UPDATE runs SET status = ?, finished_at = ?, n_failed = ?, n_evaluated = ?,"
                    " error = ? WHERE run_id = ?",
                    [status, utc_now(), n_failed, n_evaluated, _masked(error), run_id],
                )
        except duckdb.Error as err:
            raise StoreError(f"cannot finish run {run_id}: {err}") from err

    def fail_run(self, run_id: str, error: str) -> None:
        """Mark a run failed (its partial results stay for inspection; no metrics are kept)."""
        with self.transaction() as con:
            con.execute("DELETE FROM query_metrics WHERE run_id = ?", [run_id])
            con.execute("DELETE FROM run_aggregates WHERE run_id = ?", [run_id])
            failed = con.execute(
                "SELECT count(*) FROM run_queries WHERE run_id = ? AND error IS NOT NULL",
                [run_id],
            ).fetchall()[0][0]
            con.execute(
                "UPDATE runs SET status = 'failed', finished_at = ?, error = ?, n_failed = ?"
                " WHERE run_id = ?",
                [utc_now(), redact_known(error), failed, run_id],
            )

    def fail_running_runs(self, *, note: str) -> list[str]:
        """Mark every run still ``running`` as failed (``interrupted: note``); their ids.

        Call only while holding the store for writing: DuckDB admits one writing process
        and a run's writer keeps the store open until the run is finished, so a run still
        ``running`` then belongs to a process that stopped without finishing it.
        """
        run_ids = [
            str(row[0]) for row in self.fetch("SELECT run_id FROM runs WHERE status = 'running'")
        ]
        for run_id in run_ids:
            self.fail_run(run_id, f"interrupted: {note}")
        return run_ids

    def get_run(self, run_id: str) -> RunRecord:
        """One stored run; a unique prefix of its id is enough."""
        rows = self.fetch(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE starts_with(run_id, ?) ORDER BY run_id",
            [run_id],
        )
        if not rows:
            raise NotFoundError(
                f"no run {run_id!r} in {self.path}; list runs with `evalkit runs list`"
            )
        exact = [row for row in rows if row[0] == run_id]
        if len(rows) > 1 and not exact:
            raise NotFoundError(
                f"run id prefix {run_id!r} is ambiguous: " + ", ".join(r[0] for r in rows[:5])
            )
        row = exact[0] if exact else rows[0]
        return self._run_record(row)

    def list_runs(
        self, *, goldset: str | None = None, status: str | None = None, limit: int = 20
    ) -> list[RunRecord]:
        """Stored runs, newest first."""
        rows = self.fetch(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE (? IS NULL OR goldset_name = ?)"
            " AND (? IS NULL OR status = ?) ORDER BY started_at DESC, run_id DESC LIMIT ?",
            [goldset, goldset, status, status, limit],
        )
        return [self._run_record(row) for row in rows]

    def _run_record(self, row: tuple[Any, ...]) -> RunRecord:
        (
            run_id,
            status,
            kind,
            label,
            goldset_name,
            goldset_version,
            retriever_kind,
            retriever_config,
            collection,
            model_name,
            model_dimension,
            model_fingerprint,
            index_fingerprint,
            evalkit_version,
            k,
            relevance_threshold,
            measures,
            seed,
            started_at,
            finished_at,
            n_queries,
            n_failed,
            n_evaluated,
            error,
            n_duplicates,
        ) = row
        spec = RunSpec(
            kind=kind,
            retriever_kind=retriever_kind,
            k=k,
            measures=tuple(measures),
            evalkit_version=evalkit_version,
            relevance_threshold=relevance_threshold,
            goldset_name=goldset_name,
            goldset_version=goldset_version,
            retriever_config=json.loads(retriever_config) if retriever_config else {},
            collection=collection,
            model_name=model_name,
            model_dimension=model_dimension,
            model_fingerprint=model_fingerprint,
            index_fingerprint=index_fingerprint,
            seed=seed,
            label=label,
            n_queries=n_queries,
        )
        return RunRecord(
            run_id=run_id,
            status=status,
            spec=spec,
            started_at=started_at,
            finished_at=finished_at,
            n_queries=n_queries,
            n_failed=n_failed,
            n_evaluated=n_evaluated,
            error=error,
            aggregates=self.run_aggregates(run_id),
            n_duplicates=int(n_duplicates),
        )

    def run_aggregates(self, run_id: str) -> dict[str, float | None]:
        """A run's mean per measure, in the order the run listed its measures."""
        rows = self.fetch(
            "SELECT a.measure, a.value FROM run_aggregates a JOIN runs r USING (run_id)"
            " WHERE a.run_id = ? ORDER BY list_position(r.measures, a.measure), a.measure",
            [run_id],
        )
        return dict(rows)

    def query_metrics(self, run_id: str) -> pd.DataFrame:
        """Per-query values of a run, wide: index query_id, one column per measure."""
        long = self.fetch_frame(
            "SELECT query_id, measure, value FROM query_metrics WHERE run_id = ?", [run_id]
        )
        if long.empty:
            return pd.DataFrame(index=pd.Index([], name="query_id"))
        wide = long.pivot(index="query_id", columns="measure", values="value")
        wide.columns.name = None
        measures = self.get_run(run_id).spec.measures
        return wide[[m for m in measures if m in wide.columns]]

    def run_results(self, run_id: str) -> pd.DataFrame:
        """Retrieved documents of a run: query_id, rank, doc_id, score (ranked)."""
        return self.fetch_frame(
            "SELECT query_id, rank, doc_id, score FROM run_results WHERE run_id = ?"
            " ORDER BY query_id, rank",
            [run_id],
        )

    def run_queries(self, run_id: str) -> pd.DataFrame:
        """Per-query replay facts of a run: query_id, latency_ms, error, n_results, n_duplicates."""
        return self.fetch_frame(
            "SELECT query_id, latency_ms, error, n_results, n_duplicates FROM run_queries"
            " WHERE run_id = ?"
            " ORDER BY query_id",
            [run_id],
        )


_RUN_COLUMNS = (
    "run_id, status, kind, label, goldset_name, goldset_version, retriever_kind,"
    " retriever_config, collection, model_name, model_dimension, model_fingerprint,"
    " index_fingerprint, evalkit_version, k, relevance_threshold, measures, seed, started_at,"
    " finished_at, n_queries, n_failed, n_evaluated, error,"
    " (SELECT coalesce(sum(q.n_duplicates), 0) FROM run_queries q"
    "  WHERE q.run_id = runs.run_id) AS n_duplicates"
)


def _long_metrics(run_id: str, per_query: pd.DataFrame | None) -> pd.DataFrame:
    if per_query is None or per_query.empty:
        return pd.DataFrame(columns=["run_id", "query_id", "measure", "value"])
    long = (
        per_query.rename_axis("query_id")
        .reset_index()
        .melt(id_vars="query_id", var_name="measure", value_name="value")
    )
    long.insert(0, "run_id", run_id)
    return long.dropna(subset=["value"])
