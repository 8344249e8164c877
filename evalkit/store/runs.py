"""Stored runs: created ``running``, their per-query results appended batch by batch, then
finished with their metrics and final status (``complete``, ``partial`` or ``failed``) in
one transaction, so a crash never leaves a run that looks complete.

Tables ``runs``, ``run_queries``, ``run_results``, ``query_metrics`` and ``run_aggregates``
(migration 1).
"""

from __future__ import annotations

import base64
import contextlib
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import duckdb

from evalkit import __version__
from evalkit.clock import utc_now
from evalkit.embedding.fingerprint import ModelFingerprint, same_model
from evalkit.errors import StoreError, WorkInterruptedError
from evalkit.records import QueryResult
from evalkit.redaction import redact_known
from evalkit.retrievers.base import SupportsRetrieve, description_of, fingerprints_of, index_size_of
from evalkit.retrievers.kinds import COLLECTION, RETRIEVER_KINDS
from evalkit.store.access import FileLock, store_sibling
from evalkit.store.columns import (
    column_names,
    json_text,
    json_value,
    masked,
    placeholders,
    twice,
    values_of,
)
from evalkit.store.jobs import add_job_run_run
from evalkit.store.run_identity import (
    INDEXED_FINGERPRINT,
    RETRIEVER_ID_SQL,
    index_changed,
    index_changed_sql,
)

if TYPE_CHECKING:
    import pandas as pd

    from evalkit.store.store import Store

__all__ = [
    "INDEXED_FINGERPRINT",
    "RETRIEVER_ID_SQL",
    "RUN_STATUSES",
    "LatestAggregate",
    "RunRecord",
    "RunRecorder",
    "RunSpec",
    "RunStatus",
    "add_query_results",
    "create_run",
    "fail_run",
    "fail_running_runs",
    "finish_run",
    "get_run",
    "index_changed",
    "index_changed_sql",
    "insert_run",
    "is_run_id",
    "latest_aggregates",
    "list_runs",
    "mark_finished",
    "new_run_id",
    "query_metrics",
    "query_models",
    "run_aggregates",
    "run_lock",
    "run_queries",
    "run_results",
]

RunStatus = str
RUN_STATUSES: tuple[RunStatus, ...] = ("running", "complete", "partial", "failed")


def _collection_of(config: Mapping[str, Any]) -> str | None:
    """What a retriever searches as its store names it, from its ``describe()``: the field
    its kind declares (``RetrieverKind.collection_field``: the table of a pgvector
    retriever, which has no collection), else the collection."""
    kind = RETRIEVER_KINDS.get(str(config.get("kind")))
    name = config.get(kind.collection_field if kind is not None else COLLECTION)
    return None if name is None else str(name)


def new_run_id(started_at: datetime) -> str:
    """A run id that sorts by start time and is unique: ``20261121T183500-3f9a1c``."""
    return f"{started_at:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


_RUN_ID = re.compile(r"[0-9]{8}T[0-9]{6}-[0-9a-f]{6}")


def is_run_id(text: str) -> bool:
    """Whether ``text`` is a run id as ``new_run_id`` writes them."""
    return _RUN_ID.fullmatch(text) is not None


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
    tags: tuple[str, ...] = ()
    """Free strings that group runs (``--tag``; a sweep's ``sweep:NAME`` and settings),
    found again with ``list_runs(store, tag=...)``."""
    index_documents: int | None = None
    """Documents in the index when the run started, as its store counted them
    (``IndexSize``); None where the retriever cannot say."""
    index_vectors: int | None = None
    """Vectors in the index then, where the store can say."""
    model_canaries: bytes = b""
    """The query model's canary embeddings (``ModelFingerprint.canary_vectors``); empty for
    a run stored before runs kept them, which is known by ``model_fingerprint`` only."""

    @property
    def query_model(self) -> ModelFingerprint | None:
        """The query embedding model's fingerprint as the run stored it; None when the
        retriever embeds nothing or cannot say."""
        return ModelFingerprint.stored(
            self.model_name, self.model_dimension, self.model_fingerprint, self.model_canaries
        )

    def same_query_model(self, other: RunSpec) -> bool | None:
        """Whether this run and ``other`` embedded their queries with one model
        (``ModelFingerprint.agrees_with``: same name, canaries close by cosine); None when
        one run was stored before runs kept their canary embeddings and it cannot be told."""
        return same_model(self.query_model, other.query_model)

    @classmethod
    def for_retriever(
        cls,
        retriever: SupportsRetrieve,
        *,
        kind: str,
        k: int,
        n_queries: int,
        measures: Sequence[str] = (),
        relevance_threshold: int = 1,
        goldset_name: str | None = None,
        goldset_version: str | None = None,
        seed: int | None = None,
        label: str | None = None,
        tags: Sequence[str] = (),
    ) -> RunSpec:
        """The spec of a ``kind`` run replaying ``n_queries`` queries against ``retriever``:
        its kind and configuration (``describe``), collection, embedding model and index
        fingerprints and index size as the retriever gives them, and this evalkit's
        version."""
        config = description_of(retriever)
        fingerprint, index_fingerprint = fingerprints_of(retriever)
        size = index_size_of(retriever)
        return cls(
            kind=kind,
            retriever_kind=str(config.get("kind", type(retriever).__name__)),
            k=k,
            measures=tuple(measures),
            evalkit_version=__version__,
            relevance_threshold=relevance_threshold,
            goldset_name=goldset_name,
            goldset_version=goldset_version,
            retriever_config=config,
            collection=_collection_of(config),
            model_name=fingerprint.name if fingerprint else None,
            model_dimension=fingerprint.dimension if fingerprint else None,
            model_fingerprint=fingerprint.canary_hash if fingerprint else None,
            model_canaries=fingerprint.canary_vectors if fingerprint else b"",
            index_fingerprint=index_fingerprint,
            seed=seed,
            label=label,
            n_queries=n_queries,
            tags=tuple(sorted(set(tags))),
            index_documents=size.documents if size is not None else None,
            index_vectors=size.vectors if size is not None else None,
        )


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A stored run (as read back, or as ``insert_run`` writes it): its spec, status, counts,
    times and aggregates."""

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
    imported_from: str | None = None
    """Where the run was read from when it was imported from a run export (it ran
    elsewhere, in another store); None for a run recorded in this store."""
    imported_at: datetime | None = None
    retriever_id: str = ""
    """The retriever as runs are grouped by it (``RETRIEVER_ID_SQL``); empty for a record
    that was not read from a store."""

    @classmethod
    def running(cls, run_id: str, spec: RunSpec, started_at: datetime) -> RunRecord:
        """The run ``run_id`` of ``spec`` as it starts: ``running``, nothing counted yet."""
        return cls(
            run_id=run_id,
            status="running",
            spec=spec,
            started_at=started_at,
            finished_at=None,
            n_queries=spec.n_queries,
            n_failed=None,
            n_evaluated=None,
            error=None,
            aggregates={},
        )

    def to_dict(self, *, canaries: bool = False) -> dict[str, Any]:
        """JSON-ready form; with ``canaries`` the model's canary embeddings too (base64 of
        float16, about 8 KB: what an exported run needs to be compared by model, and more
        than a listing of runs should carry)."""
        spec = self.spec
        model: dict[str, Any] = {
            "name": spec.model_name,
            "dimension": spec.model_dimension,
            "fingerprint": spec.model_fingerprint,
        }
        if canaries:
            model["canaries"] = (
                base64.b64encode(spec.model_canaries).decode("ascii")
                if spec.model_canaries
                else None
            )
        return {
            "run_id": self.run_id,
            "status": self.status,
            "kind": spec.kind,
            "label": spec.label,
            "tags": list(spec.tags),
            "goldset": spec.goldset_name,
            "goldset_version": spec.goldset_version,
            "retriever": spec.retriever_kind,
            "retriever_id": self.retriever_id,
            "retriever_config": dict(spec.retriever_config),
            "collection": spec.collection,
            "model": model,
            "index_fingerprint": spec.index_fingerprint,
            "index_size": {"documents": spec.index_documents, "vectors": spec.index_vectors},
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
            "imported_from": self.imported_from,
            "imported_at": self.imported_at.isoformat() + "Z" if self.imported_at else None,
        }


def create_run(
    store: Store,
    spec: RunSpec,
    *,
    started_at: datetime | None = None,
    run_id: str | None = None,
) -> str:
    """Record a new run as ``running`` and return its id (committed at once).

    ``started_at`` (UTC, naive; default now) and ``run_id`` are for a run replayed or named
    before its row was written. Through ``Store.working_for`` the run joins that job run."""
    store.require_writable()
    started_at = started_at or utc_now()
    run_id = run_id or new_run_id(started_at)
    with store.writing(f"cannot record a new run in {store.path}") as con:
        insert_run(con, RunRecord.running(run_id, spec, started_at))
        if store.job_run_id is not None:
            add_job_run_run(con, store.job_run_id, run_id)
    return run_id


def insert_run(con: duckdb.DuckDBPyConnection, run: RunRecord) -> None:
    """Write the ``runs`` row of ``run`` (its tags too, not its aggregates), on ``con``,
    with retriever options and error masked of every registered secret: the one place a
    run row is written, for recorded and imported runs alike."""
    spec = run.spec
    con.execute(
        f"INSERT INTO runs ({_STORED_COLUMNS}) VALUES ({placeholders(29)})",
        values_of(
            spec,
            _STORED_COLUMNS,
            **{name: getattr(run, name) for name in _RECORD_FIELDS}
            | {
                "n_queries": spec.n_queries,
                "retriever_config": redact_known(json_text(dict(spec.retriever_config))),
                "measures": list(spec.measures),
                "error": masked(run.error),
                "model_canaries": spec.model_canaries or None,
            },
        ),
    )
    if spec.tags:
        con.executemany(
            "INSERT INTO run_tags (run_id, tag) VALUES (?, ?)",
            [[run.run_id, tag] for tag in sorted(set(spec.tags))],
        )


def add_query_results(store: Store, run_id: str, results: Sequence[QueryResult]) -> None:
    """Append one batch of per-query results (docs, latency, error) in one transaction."""
    import pandas as pd

    if not results:
        return
    queries = pd.DataFrame(
        {
            "run_id": run_id,
            "query_id": [r.query_id for r in results],
            "latency_ms": [r.latency_ms for r in results],
            "error": [masked(r.error) for r in results],
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
    with store.writing(f"cannot store results of run {run_id}"):
        store.insert_frame("run_queries", queries)
        store.insert_frame("run_results", docs)


def finish_run(
    store: Store,
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
    import pandas as pd

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
    with store.writing(f"cannot finish run {run_id}") as con:
        store.insert_frame("query_metrics", long)
        store.insert_frame("run_aggregates", aggregate_rows)
        mark_finished(
            con,
            run_id,
            status=status,
            n_failed=n_failed,
            n_evaluated=n_evaluated,
            error=error,
        )


def mark_finished(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    *,
    status: RunStatus,
    n_failed: int,
    n_evaluated: int,
    error: str | None,
) -> None:
    """Write a run's final status row inside the caller's open transaction (whose other
    statements store the figures that status vouches for)."""
    if status not in RUN_STATUSES or status == "running":
        raise StoreError(f"cannot finish run {run_id} with status {status!r}")
    con.execute(
        "UPDATE runs SET status = ?, finished_at = ?, n_failed = ?, n_evaluated = ?,"
        " error = ? WHERE run_id = ?",
        [status, utc_now(), n_failed, n_evaluated, masked(error), run_id],
    )


def fail_run(store: Store, run_id: str, error: str) -> None:
    """Mark a run failed (its partial results stay for inspection; no metrics are kept)."""
    with store.transaction() as con:
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


def run_lock(store_path: Path, run_id: str) -> FileLock:
    """The lock on run ``run_id`` (a file beside the store) that the process replaying it
    holds while the run is recorded ``running`` and the store is closed (a Ray run of
    ``evalkit run``): while it is held, the run is not one a stopped process left. The
    kernel releases it when the process dies, however it dies."""
    return FileLock(store_sibling(store_path.resolve(), f".{run_id}.lock"), program="evalkit")


def fail_running_runs(store: Store, *, note: str) -> list[str]:
    """Mark every run still ``running`` as failed (``interrupted: note``), except those whose
    ``run_lock`` a live process holds; their ids. Call only while holding the store for
    writing: then a run still ``running`` without its lock held belongs to a stopped process."""
    run_ids = [
        str(row[0]) for row in store.fetch("SELECT run_id FROM runs WHERE status = 'running'")
    ]
    failed = []
    for run_id in run_ids:
        lock = run_lock(store.path, run_id)
        if lock.path.exists() and lock.is_held():
            continue
        fail_run(store, run_id, f"interrupted: {note}")
        lock.path.unlink(missing_ok=True)
        failed.append(run_id)
    return failed


class RunRecorder:
    """The lifecycle of one run in the store, which every kind of run goes through.

    Entering records the run ``running`` (``recorded``: this process wrote the row already);
    ``add`` stores a batch of results; ``finish`` writes figures and final status at once:
    ``failed`` when every query failed (none at all: ``nothing_answered``), ``partial`` when
    some did, else ``complete``. ``finish_loaded`` does it for results loaded otherwise (Ray
    shards). Leaving unfinished finishes with no figures; leaving by an exception marks it
    ``failed`` and re-raises; if the store itself broke, the run stays ``running``."""

    def __init__(
        self,
        store: Store,
        spec: RunSpec,
        *,
        nothing_answered: RunStatus = "failed",
        started_at: datetime | None = None,
        run_id: str | None = None,
        recorded: bool = False,
    ) -> None:
        self.store = store
        self.recorded = recorded
        self.spec = spec
        self.nothing_answered = nothing_answered
        self.started_at = started_at or utc_now()
        self.run_id = run_id or new_run_id(self.started_at)
        self.n_results = 0
        self.n_failed = 0
        self.first_error: str | None = None
        self.seconds_store = 0.0
        """Seconds spent writing results and the final row."""
        self._finished = False

    def __enter__(self) -> RunRecorder:
        self.record_running()
        return self

    def record_running(self) -> None:
        """Record the run ``running`` (``create_run``), unless its row exists already."""
        if not self.recorded:
            create_run(self.store, self.spec, started_at=self.started_at, run_id=self.run_id)
            self.recorded = True

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is not None:
            self.fail(error)
        elif not self._finished:
            self.finish()

    @property
    def status(self) -> RunStatus:
        """The final status the results counted so far give the run."""
        if self.n_failed and self.n_failed == self.n_results:
            return "failed"
        if not self.n_results:
            return self.nothing_answered
        return "partial" if self.n_failed else "complete"

    @property
    def failure_note(self) -> str | None:
        """The run's error column: how many queries failed and the first error (None when
        none did)."""
        if not self.n_failed:
            return None
        return f"{self.n_failed} of {self.n_results} queries failed; first: {self.first_error}"

    def add(self, results: Sequence[QueryResult]) -> None:
        """Store a batch of per-query results and count its failures."""
        began = time.perf_counter()
        add_query_results(self.store, self.run_id, results)
        self.seconds_store += time.perf_counter() - began
        self._count(
            sum(1 for result in results if not result.ok),
            len(results),
            next((result.error for result in results if result.error), None),
        )

    def finish(
        self,
        *,
        per_query: pd.DataFrame | None = None,
        aggregates: Mapping[str, float | None] | None = None,
        n_evaluated: int = 0,
        n_total: int | None = None,
    ) -> None:
        """Write the run's figures (``finish_run``: ``n_total`` defaults to the number of
        results) and its final status."""
        began = time.perf_counter()
        finish_run(
            self.store,
            self.run_id,
            status=self.status,
            per_query=per_query,
            aggregates=aggregates or {},
            n_evaluated=n_evaluated,
            n_total=self.n_results if n_total is None else n_total,
            n_failed=self.n_failed,
            error=self.failure_note,
        )
        self.seconds_store += time.perf_counter() - began
        self._finished = True

    def finish_loaded(
        self,
        load: Callable[[RunStatus, str | None], object],
        *,
        n_failed: int,
        n_results: int,
        first_error: str | None,
    ) -> None:
        """Finish a run whose results were loaded outside ``add``: ``load(status, note)``
        writes its rows and final row in one transaction, with the status and failure note
        its counts give."""
        self._count(n_failed, n_results, first_error)
        began = time.perf_counter()
        load(self.status, self.failure_note)
        self.seconds_store += time.perf_counter() - began
        self._finished = True

    def fail(self, error: BaseException) -> None:
        """Mark the run ``failed`` with ``error`` unless it is finished already; never
        raises (the error the caller handles is the one that matters)."""
        if isinstance(error, WorkInterruptedError) and self.run_id not in error.run_ids:
            error.run_ids.append(self.run_id)
        if self._finished:
            return
        # Said as a run a stopped process left is said, not as an error of the run's own.
        if isinstance(error, WorkInterruptedError):
            note = f"interrupted: {error.reason}"
        elif isinstance(error, KeyboardInterrupt):
            note = "interrupted: Ctrl-C"
        elif not isinstance(error, Exception):  # SIGTERM, SystemExit: the process is stopping
            note = f"interrupted: {error or type(error).__name__}"
        else:
            note = f"{type(error).__name__}: {error}"
        with contextlib.suppress(Exception):
            fail_run(self.store, self.run_id, note)
            self._finished = True

    def _count(self, n_failed: int, n_results: int, first_error: str | None) -> None:
        self.n_failed += n_failed
        self.n_results += n_results
        if self.first_error is None:
            self.first_error = first_error


def get_run(store: Store, run_id: str) -> RunRecord:
    """One stored run; a unique prefix of its id is enough."""
    row = store.fetch_by_prefix(
        f"SELECT {_RUN_COLUMNS} FROM runs WHERE starts_with(run_id, ?) ORDER BY run_id",
        run_id,
        missing=f"no run {run_id!r} in {store.path}; list runs with `evalkit runs list`",
        what="run",
    )
    return _run_record(row, run_aggregates(store, row[0]))


def list_runs(
    store: Store,
    *,
    goldset: str | None = None,
    status: str | tuple[str, ...] | None = None,
    kind: str | None = None,
    tag: str | None = None,
    label: str | None = None,
    retriever: str | None = None,
    limit: int = 20,
    limit_per_retriever: bool = False,
) -> list[RunRecord]:
    """Stored runs, newest first (of one goldset, status or statuses, kind, tag, label and
    retriever (``RunRecord.retriever_id``) when given): at most ``limit``, or with
    ``limit_per_retriever`` at most ``limit`` of each retriever, so that a series is not cut
    short by the runs of others. The filters apply before the limit."""
    statuses = [status] if isinstance(status, str) else None if status is None else list(status)
    per_retriever = (
        f" QUALIFY row_number() OVER (PARTITION BY {RETRIEVER_ID_SQL}"
        "   ORDER BY started_at DESC, run_id DESC) <= ?"
        if limit_per_retriever
        else ""
    )
    rows = store.fetch(
        f"SELECT {_RUN_COLUMNS} FROM runs WHERE (? IS NULL OR goldset_name = ?)"
        " AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], status))"
        " AND (? IS NULL OR kind = ?) AND (? IS NULL OR label = ?)"
        f" AND (? IS NULL OR {RETRIEVER_ID_SQL} = ?)"
        " AND (? IS NULL OR EXISTS (SELECT 1 FROM run_tags t"
        "   WHERE t.run_id = runs.run_id AND t.tag = ?))"
        f"{per_retriever} ORDER BY started_at DESC, run_id DESC"
        f"{'' if limit_per_retriever else ' LIMIT ?'}",
        [*twice(goldset, statuses, kind, label, retriever, tag), limit],
    )
    aggregates = _aggregates_of(store, [str(row[0]) for row in rows])
    return [_run_record(row, aggregates.get(str(row[0]), {})) for row in rows]


def _aggregates_of(store: Store, run_ids: list[str]) -> dict[str, dict[str, float | None]]:
    """``run_aggregates`` of each of ``run_ids``, in one query: one per run made listing a
    few hundred runs (what every alert rule evaluation does) slower with every run stored."""
    found: dict[str, dict[str, float | None]] = {}
    if not run_ids:
        return found
    rows = store.fetch(
        "SELECT a.run_id, a.measure, a.value FROM run_aggregates a JOIN runs r USING (run_id)"
        " WHERE a.run_id IN (SELECT unnest(?::VARCHAR[]))"
        " ORDER BY a.run_id, list_position(r.measures, a.measure), a.measure",
        [run_ids],
    )
    for run_id, measure, value in rows:
        found.setdefault(str(run_id), {})[str(measure)] = value
    return found


def _run_record(row: tuple[Any, ...], aggregates: dict[str, float | None]) -> RunRecord:
    values = dict(zip(_RUN_FIELDS, row, strict=True))
    spec = RunSpec(
        **{name: values[name] for name in _SPEC_FIELDS},
        measures=tuple(values["measures"]),
        retriever_config=json_value(values["retriever_config"]),
        tags=tuple(values["tags"] or ()),
        model_canaries=bytes(values["model_canaries"] or b""),
    )
    return RunRecord(
        **{name: values[name] for name in _RECORD_FIELDS},
        spec=spec,
        aggregates=aggregates,
        n_duplicates=int(values["n_duplicates"]),
        retriever_id=str(values["retriever_id"]),
    )


def run_aggregates(store: Store, run_id: str) -> dict[str, float | None]:
    """A run's mean per measure, in the order the run listed its measures."""
    return _aggregates_of(store, [run_id]).get(run_id, {})


def query_models(store: Store, run_ids: Sequence[str]) -> dict[str, ModelFingerprint | None]:
    """The query embedding model of each of ``run_ids`` as the run stored it
    (``RunSpec.query_model``), in one query; a run not stored is left out."""
    rows = store.fetch(
        "SELECT run_id, model_name, model_dimension, model_fingerprint, model_canaries FROM runs"
        " WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
        [list(run_ids)],
    )
    return {str(row[0]): ModelFingerprint.stored(*row[1:]) for row in rows}


def query_metrics(store: Store, run_id: str) -> pd.DataFrame:
    """Per-query values of a run, wide: index query_id, one column per measure."""
    import pandas as pd

    long = store.fetch_frame(
        "SELECT query_id, measure, value FROM query_metrics WHERE run_id = ?", [run_id]
    )
    if long.empty:
        return pd.DataFrame(index=pd.Index([], name="query_id"))
    wide = long.pivot(index="query_id", columns="measure", values="value")
    wide.columns.name = None
    measures = get_run(store, run_id).spec.measures
    return wide[[m for m in measures if m in wide.columns]]


def run_results(store: Store, run_id: str) -> pd.DataFrame:
    """Retrieved documents of a run: query_id, rank, doc_id, score (ranked)."""
    return store.fetch_frame(
        "SELECT query_id, rank, doc_id, score FROM run_results WHERE run_id = ?"
        " ORDER BY query_id, rank",
        [run_id],
    )


def run_queries(store: Store, run_id: str) -> pd.DataFrame:
    """Per-query replay facts of a run: query_id, latency_ms, error, n_results, n_duplicates."""
    return store.fetch_frame(
        "SELECT query_id, latency_ms, error, n_results, n_duplicates FROM run_queries"
        " WHERE run_id = ?"
        " ORDER BY query_id",
        [run_id],
    )


_RUN_FIELDS = column_names(
    "run_id, status, kind, label, goldset_name, goldset_version, retriever_kind,"
    " retriever_config, collection, model_name, model_dimension, model_fingerprint,"
    " index_fingerprint, evalkit_version, k, relevance_threshold, measures, seed, started_at,"
    " finished_at, n_queries, n_failed, n_evaluated, error, n_duplicates, imported_from,"
    " imported_at, retriever_id, tags, index_documents, index_vectors, model_canaries"
)
"""What ``_RUN_COLUMNS`` selects of a run: the ``runs`` columns of a ``RunSpec`` and a
``RunRecord`` by their field names, and the computed ``n_duplicates`` and ``retriever_id``."""
_COMPUTED_RUN_COLUMNS = {
    "n_duplicates": "(SELECT coalesce(sum(q.n_duplicates), 0) FROM run_queries q"
    "  WHERE q.run_id = runs.run_id)",
    "retriever_id": RETRIEVER_ID_SQL,
    "tags": "(SELECT list(t.tag ORDER BY t.tag) FROM run_tags t WHERE t.run_id = runs.run_id)",
}
_STORED_COLUMNS = ", ".join(name for name in _RUN_FIELDS if name not in _COMPUTED_RUN_COLUMNS)
"""The ``runs`` columns (``insert_run`` writes those of ``_RECORD_FIELDS`` from the
``RunRecord``, the others from its ``RunSpec``)."""
_RUN_COLUMNS = ", ".join(
    f"{_COMPUTED_RUN_COLUMNS[name]} AS {name}" if name in _COMPUTED_RUN_COLUMNS else name
    for name in _RUN_FIELDS
)
# The fields `_run_record` passes on as they are stored; it converts or computes the others.
_SPEC_FIELDS = [
    name
    for name in _RUN_FIELDS
    if name in RunSpec.__dataclass_fields__
    and name not in {"measures", "retriever_config", "tags", "model_canaries"}
]
_RECORD_FIELDS = [
    name
    for name in _RUN_FIELDS
    if name in RunRecord.__dataclass_fields__ and name not in {"n_duplicates", "retriever_id"}
]


def _long_metrics(run_id: str, per_query: pd.DataFrame | None) -> pd.DataFrame:
    import pandas as pd

    if per_query is None or per_query.empty:
        return pd.DataFrame(columns=["run_id", "query_id", "measure", "value"])
    long = (
        per_query.rename_axis("query_id")
        .reset_index()
        .melt(id_vars="query_id", var_name="measure", value_name="value")
    )
    long.insert(0, "run_id", run_id)
    return long.dropna(subset=["value"])


@dataclass(frozen=True, slots=True)
class LatestAggregate:
    """One measure of the newest finished goldset run of a goldset and label."""

    goldset: str
    label: str
    run_id: str
    status: str
    started_at: datetime
    measure: str
    value: float | None


def latest_aggregates(store: Store) -> list[LatestAggregate]:
    """Aggregates of the newest complete or partial goldset run per (goldset, label)."""
    rows = store.fetch(
        "WITH latest AS (SELECT run_id, goldset_name, coalesce(label, '') AS label, status,"
        " started_at FROM runs WHERE kind = 'goldset' AND status IN ('complete', 'partial')"
        " QUALIFY row_number() OVER (PARTITION BY goldset_name, coalesce(label, '')"
        " ORDER BY started_at DESC, run_id DESC) = 1)"
        " SELECT l.goldset_name, l.label, l.run_id, l.status, l.started_at, a.measure, a.value"
        " FROM latest l JOIN run_aggregates a USING (run_id) ORDER BY ALL"
    )
    return [LatestAggregate(*row) for row in rows]
