"""Stored freshness checks: the changes read from a source, each source's read position, and
one row per check with its lag percentiles and verdict.

A source's read position is written in the same transaction as the check that read up to
there, so a check that fails leaves the next one to read the same changes again. Reading a
user's DuckDB change table is here too: only the store speaks to DuckDB. docs/freshness.md,
"What a check stores".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

from evalkit import __version__
from evalkit.errors import InputError, StoreError
from evalkit.records.freshness import FreshnessFigures
from evalkit.store.columns import json_text, json_value, placeholders, values_of
from evalkit.store.views import registered

if TYPE_CHECKING:
    from evalkit.records.freshness import FreshnessCheck
    from evalkit.store.store import Store

__all__ = [
    "CHANGE_COLUMNS",
    "OUTCOME_COLUMNS",
    "SourceCursor",
    "StoredFreshnessCheck",
    "changes_read_at",
    "list_freshness_checks",
    "pending_changes",
    "read_duckdb_changes",
    "save_freshness_check",
    "source_cursors",
    "stored_changes",
    "unreflected_changes",
]

CHANGE_COLUMNS = (
    "doc_id",
    "updated_at",
    "origin",
    "content_hash",
    "text_hash",
    "probe_text",
)
"""The columns of a frame of changes read from a source (``save_freshness_check``)."""

OUTCOME_COLUMNS = (
    "doc_id",
    "updated_at",
    "status",
    "state",
    "reflected_at",
    "reflected_after",
    "reflected_by",
    "lag_seconds",
)
"""The columns of a frame of assessed changes (``save_freshness_check``)."""

_CHECK_COLUMNS = (
    "check_id, subject, checked_at, method, index_kind, source, n_read, n_reflected,"
    " n_pending, n_superseded, lag_p50_seconds, lag_p95_seconds, lag_max_seconds,"
    " unreflected_share, oldest_unreflected_seconds, slo_p95_lag_seconds,"
    " max_unreflected_age_seconds, breached, n_probes, probe_seconds, evalkit_seconds,"
    " evalkit_version, details"
)

_CURSOR_COLUMNS = (
    "subject, part, kind, path, head_hash, head_length, byte_offset, rows_read, watermark"
)


@dataclass(frozen=True, slots=True)
class SourceCursor:
    """Where a subject's checks stopped reading one part of their source: a file by
    ``file:DEV:INODE`` (a renamed file keeps its place; one whose first ``head_length`` bytes
    no longer hash to ``head_hash`` is read afresh) up to ``byte_offset``, ``rows_read`` lines;
    a table or corpus from ``watermark``, the newest ``updated_at`` read."""

    subject: str
    part: str
    kind: str
    path: str
    head_hash: str | None = None
    head_length: int | None = None
    byte_offset: int | None = None
    rows_read: int | None = None
    watermark: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoredFreshnessCheck(FreshnessFigures):
    """One stored freshness check (``FreshnessFigures``) and how it ran."""

    breached: bool
    n_probes: int
    probe_seconds: float
    evalkit_seconds: float
    evalkit_version: str
    details: dict[str, Any]

    @property
    def breaches(self) -> list[str]:
        """Each half of the objective the check breached."""
        return list(self.details.get("breaches", []))


def source_cursors(store: Store, subject: str) -> dict[str, SourceCursor]:
    """Every part of its source that ``subject``'s checks have read, by ``part``."""
    rows = store.fetch(
        f"SELECT {_CURSOR_COLUMNS} FROM freshness_sources WHERE subject = ?",
        [subject],
    )
    return {str(row[1]): SourceCursor(*row) for row in rows}


def pending_changes(store: Store, subject: str) -> pd.DataFrame:
    """The changes of ``subject`` not reflected yet, oldest first: doc_id, updated_at,
    origin, content_hash, text_hash, probe_text, last_checked_at."""
    return store.fetch_frame(
        "SELECT doc_id, updated_at, origin, content_hash, text_hash, probe_text,"
        " last_checked_at FROM freshness_changes WHERE subject = ? AND status = 'pending'"
        " ORDER BY updated_at, doc_id",
        [subject],
    )


def changes_read_at(store: Store, subject: str, moment: datetime) -> set[str]:
    """The documents whose change made at ``moment`` the subject's checks have read."""
    rows = store.fetch(
        "SELECT doc_id FROM freshness_changes WHERE subject = ? AND updated_at = ?",
        [subject, moment],
    )
    return {str(row[0]) for row in rows}


def stored_changes(store: Store, subject: str, changes: pd.DataFrame) -> pd.DataFrame:
    """Of ``changes`` (doc_id, updated_at), those ``subject``'s checks have stored already (a
    table or corpus read again from its newest ``updated_at``, a file read afresh)."""
    if changes.empty:
        return changes.loc[:, ["doc_id", "updated_at"]]
    frame = changes.loc[:, ["doc_id", "updated_at"]]
    with (
        store.writing(f"cannot read the stored changes of {subject}") as con,
        registered(con, "_read_freshness_changes", frame) as view,
    ):
        return con.execute(
            f"SELECT DISTINCT n.doc_id, n.updated_at FROM {view} n"
            " JOIN freshness_changes c ON c.subject = ? AND c.doc_id = n.doc_id"
            " AND c.updated_at = n.updated_at",
            [subject],
        ).df()


def save_freshness_check(
    store: Store,
    check: FreshnessCheck,
    *,
    new_changes: pd.DataFrame,
    outcomes: pd.DataFrame,
    cursors: Sequence[SourceCursor],
) -> None:
    """Store one check in one transaction: the changes it read (``CHANGE_COLUMNS``; a
    change already stored for the subject is skipped), what it found of each change it
    assessed (``OUTCOME_COLUMNS``: status ``pending``, ``reflected`` or ``superseded``),
    the read positions after it, and the check's row."""
    details = {
        "breaches": list(check.breaches),
        "reflected": [change.to_dict() for change in check.reflected[:200]],
        "oldest_unreflected": [change.to_dict() for change in check.oldest],
        "index_seconds": check.index_seconds,
        "notes": list(check.notes),
        "timings": dict(check.timings),
    }
    row = values_of(
        check,
        _CHECK_COLUMNS,
        lag_p50_seconds=check.lag_p50,
        lag_p95_seconds=check.lag_p95,
        lag_max_seconds=check.lag_max,
        slo_p95_lag_seconds=check.slo_p95_lag,
        max_unreflected_age_seconds=check.max_unreflected_age,
        evalkit_version=__version__,
        details=json_text(details),
    )
    try:
        with store.transaction() as con:
            subject, at, check_id = check.subject, check.checked_at, check.check_id
            _execute_over(
                con, new_changes, CHANGE_COLUMNS, _INSERT_CHANGES, [subject, at, check_id, subject]
            )
            _execute_over(con, outcomes, OUTCOME_COLUMNS, _APPLY_OUTCOMES, [at, check_id, subject])
            for cursor in cursors:
                con.execute(
                    "INSERT OR REPLACE INTO freshness_sources"
                    f" ({_CURSOR_COLUMNS}, updated_at) VALUES ({placeholders(10)})",
                    [*values_of(cursor, _CURSOR_COLUMNS), check.checked_at],
                )
            con.execute(
                f"INSERT INTO freshness_checks ({_CHECK_COLUMNS})"
                f" VALUES ({placeholders(len(row))})",
                row,
            )
    except duckdb.Error as error:
        raise StoreError(
            f"cannot store the freshness check of {check.subject} in {store.path}: {error}; "
            "nothing of it was kept, so the next check reads the same changes again"
        ) from error


_INSERT_CHANGES = (
    "INSERT INTO freshness_changes (subject, doc_id, updated_at, origin, content_hash,"
    " text_hash, probe_text, read_at, read_check_id, status)"
    " SELECT DISTINCT ON (n.doc_id, n.updated_at) ?, n.doc_id, n.updated_at, n.origin,"
    " n.content_hash, n.text_hash, n.probe_text, ?, ?, 'pending' FROM {view} n"
    " WHERE NOT EXISTS (SELECT 1 FROM freshness_changes c WHERE c.subject = ?"
    "  AND c.doc_id = n.doc_id AND c.updated_at = n.updated_at)"
    " ORDER BY n.doc_id, n.updated_at"
)
_APPLY_OUTCOMES = (
    "UPDATE freshness_changes AS c SET status = o.status, state = o.state,"
    " last_checked_at = ?, reflected_at = o.reflected_at,"
    " reflected_after = o.reflected_after, reflected_by = o.reflected_by,"
    " lag_seconds = o.lag_seconds,"
    " check_id = CASE WHEN o.status = 'pending' THEN NULL ELSE ? END"
    " FROM {view} AS o WHERE c.subject = ? AND c.status = 'pending'"
    " AND c.doc_id = o.doc_id AND c.updated_at = o.updated_at"
)


def _execute_over(
    con: duckdb.DuckDBPyConnection,
    frame: pd.DataFrame,
    columns: Sequence[str],
    sql: str,
    parameters: Sequence[object],
) -> None:
    """Run ``sql`` with ``frame``'s ``columns`` as its ``{view}``; nothing for an empty frame."""
    if frame.empty:
        return
    with registered(con, "_freshness_frame", frame.loc[:, list(columns)]) as view:
        con.execute(sql.format(view=view), parameters)


def _check(row: Sequence[Any]) -> StoredFreshnessCheck:
    values = list(row)
    values[-1] = json_value(values[-1])
    return StoredFreshnessCheck(*values)


def list_freshness_checks(
    store: Store,
    *,
    subject: str | None = None,
    since: datetime | None = None,
    latest_only: bool = False,
    limit: int = 100,
) -> list[StoredFreshnessCheck]:
    """Stored checks, newest first: of one ``subject``, made at or after ``since`` (naive
    UTC); ``latest_only`` keeps each subject's newest check (what alert rules read)."""
    rows = store.fetch(
        f"SELECT {_CHECK_COLUMNS} FROM freshness_checks f"
        " WHERE (? IS NULL OR subject = ?) AND (? IS NULL OR checked_at >= ?)"
        " AND (NOT ? OR check_id = (SELECT l.check_id FROM freshness_checks l"
        "  WHERE l.subject = f.subject ORDER BY l.checked_at DESC, l.check_id DESC LIMIT 1))"
        " ORDER BY checked_at DESC, check_id DESC LIMIT ?",
        [subject, subject, since, since, latest_only, limit],
    )
    return [_check(row) for row in rows]


def unreflected_changes(
    store: Store, doc_ids: Sequence[str], *, after: datetime, at: datetime
) -> list[dict[str, Any]]:
    """Changes of ``doc_ids`` made after ``after`` and at or before ``at`` that the index had
    not reflected at ``at`` (still pending, or reflected later), each document's earliest:
    doc_id, subject, updated_at, status, reflected_at, check_id (the check that read it)."""
    if not doc_ids:
        return []
    rows = store.fetch(
        "SELECT DISTINCT ON (doc_id) doc_id, subject, updated_at, status, reflected_at,"
        " read_check_id FROM freshness_changes"
        " WHERE doc_id IN (SELECT unnest(?::VARCHAR[])) AND updated_at > ? AND updated_at <= ?"
        " AND status <> 'superseded' AND (reflected_at IS NULL OR reflected_at > ?)"
        " ORDER BY doc_id, updated_at, subject",
        [list(doc_ids), after, at, at],
    )
    names = ("doc_id", "subject", "updated_at", "status", "reflected_at", "check_id")
    return [dict(zip(names, row, strict=True)) for row in rows]


def read_duckdb_changes(
    path: Path, table: str, *, watermark: datetime | None, columns: Sequence[str]
) -> pd.DataFrame:
    """The rows of ``table`` in the DuckDB file ``path`` (opened read-only) with their
    ``columns`` and their position as ``_row``. A timestamp ``updated_at`` reads only rows from
    ``watermark``, as naive UTC; text or epoch seconds come back as stored, every row. Raises
    InputError when the file is not DuckDB, lacks the table, or the table lacks ``doc_id`` or
    ``updated_at``."""
    where = str(path)
    try:
        con = duckdb.connect(where, read_only=True)
    except duckdb.Error as error:
        raise InputError(f"cannot open as a DuckDB file: {error}", path=where) from error
    try:
        try:
            con.execute("SET TimeZone = 'UTC'")
            described = con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ?",
                [table],
            ).fetchall()
        except duckdb.Error as error:
            raise InputError(f"cannot read its catalog: {error}", path=where) from error
        types = {str(name): str(kind) for name, kind in described}
        if not types:
            raise InputError(
                f"holds no table {table!r}; name the change table with changes_table",
                path=where,
            )
        for required in ("doc_id", "updated_at"):
            if required not in types:
                raise InputError(
                    f"table {table!r} has no column {required!r}; a change table holds "
                    "doc_id, updated_at and content",
                    path=where,
                    field=required,
                )
        timed = types["updated_at"].startswith(("TIMESTAMP", "DATE"))
        chosen = [
            f'CAST("{name}" AS TIMESTAMP) AS updated_at'
            if name == "updated_at" and timed
            else f'"{name}"'
            for name in columns
            if name in types
        ]
        try:
            return con.execute(
                f"SELECT * FROM (SELECT {', '.join(chosen)}, row_number() OVER () AS _row"
                f' FROM "{table}") WHERE NOT ? OR ? IS NULL OR updated_at >= ?'
                " ORDER BY _row",
                [timed, watermark, watermark],
            ).df()
        except duckdb.Error as error:
            raise InputError(
                f"cannot read table {table!r}: {error}", path=where, field="updated_at"
            ) from error
    finally:
        con.close()
