"""The judged pool, assessor agreements and the figures computed from assessor labels.

``judged_pool`` holds one row per (query text hash, document content hash, assessor): a
graded pair is never judged again by the same assessor, an unjudged one is retried by the
next pass, and a changed document is a new pair. ``judge_agreements`` holds agreement
measurements and ``judged_run_figures`` the measures computed from labels that are not the
goldset's. Columns: docs/store.md.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from evalkit.clock import utc_now
from evalkit.records.jsonready import json_ready
from evalkit.store.columns import masked, placeholders, qualified, record_of, values_of
from evalkit.store.runs import RETRIEVER_ID_SQL
from evalkit.store.views import registered

if TYPE_CHECKING:
    from evalkit.judging.records import Assessment
    from evalkit.store.store import Store

__all__ = [
    "ASSESSOR_SOURCE",
    "ASSESSOR_SOURCES",
    "ESTIMATE_SOURCE",
    "HOLES_SOURCE",
    "LOGGED_SOURCE",
    "JudgedFigure",
    "PoolGrade",
    "StoredAgreement",
    "WindowFigure",
    "agreements_by_id",
    "latest_agreement",
    "list_agreements",
    "load_pool",
    "new_agreement_id",
    "pool_counts",
    "run_figures",
    "save_agreement",
    "save_assessments",
    "save_run_figures",
    "traffic_figure_series",
]


ASSESSOR_SOURCE = "assessor"
"""A traffic window's replayed top-k labelled by the assessor."""
LOGGED_SOURCE = "assessor_logged"
"""The top-k production logged for a window's queries, labelled by the assessor."""
ASSESSOR_SOURCES: tuple[str, ...] = (ASSESSOR_SOURCE, LOGGED_SOURCE)
ESTIMATE_SOURCE = "estimate"
"""A window's precision estimated from calibrated scores."""
HOLES_SOURCE = "holes_filled"
"""A goldset run's measures with its unjudged top-k labelled by the assessor."""


@dataclass(frozen=True, slots=True)
class PoolGrade:
    """A stored judgment of one pair by one assessor (``grade`` None: left unjudged)."""

    query_hash: str
    content_hash: str
    assessor: str
    doc_id: str
    grade: int | None
    reason: str | None
    unjudged_reason: str | None
    detail: str | None
    judged_at: datetime
    flags: tuple[str, ...] = ()
    """What the pair's text was flagged for when judged (``Assessment.flags``)."""


_GRADE_COLUMNS = ", ".join(PoolGrade.__slots__)
_POOL_COLUMNS = (
    "query_hash, content_hash, assessor, model, prompt_version, query_text, doc_id, grade,"
    " reason, unjudged_reason, detail, judged_at, flags"
)


def save_assessments(store: Store, assessments: Iterable[Assessment]) -> int:
    """Add assessments to the pool in one statement and transaction; returns how many
    distinct pairs were written (the last assessment of a pair given twice counts).

    A graded pair already in the pool keeps its first grade; an unjudged row is replaced
    by the new assessment (graded or not), so a retry that succeeds fills it in.
    """
    import pyarrow as pa

    latest = {(a.pair.query_hash, a.pair.content_hash, a.assessor): a for a in assessments}
    if not latest:
        return 0
    now = utc_now()
    chosen = list(latest.values())
    columns = {
        "query_hash": [a.pair.query_hash for a in chosen],
        "content_hash": [a.pair.content_hash for a in chosen],
        "assessor": [a.assessor for a in chosen],
        "model": [a.assessor.rsplit("@", 1)[0] for a in chosen],
        "prompt_version": [a.assessor.rsplit("@", 1)[-1] for a in chosen],
        "query_text": [a.pair.query for a in chosen],
        "doc_id": [a.pair.doc_id for a in chosen],
        "grade": pa.array([a.grade for a in chosen], type=pa.int32()),
        "reason": pa.array([a.reason for a in chosen], type=pa.string()),
        "unjudged_reason": pa.array(
            [None if a.unjudged is None else str(a.unjudged) for a in chosen], type=pa.string()
        ),
        "detail": pa.array(
            [masked(a.detail) for a in chosen],
            type=pa.string(),
        ),
        "judged_at": pa.array([now] * len(chosen), type=pa.timestamp("us")),
        "flags": pa.array([",".join(a.flags) or None for a in chosen], type=pa.string()),
    }
    incoming = pa.table(columns)
    view = "_incoming_judgments"
    with (
        store.writing(f"cannot write the judged pool in {store.path}") as con,
        registered(con, view, incoming),
    ):
        # One statement for the whole batch: DuckDB runs an executemany upsert row by row.
        con.execute(
            f"INSERT INTO judged_pool ({_POOL_COLUMNS})"
            f" SELECT {_POOL_COLUMNS} FROM {view}"
            " ON CONFLICT (query_hash, content_hash, assessor) DO UPDATE SET"
            " grade = excluded.grade, reason = excluded.reason,"
            " unjudged_reason = excluded.unjudged_reason, detail = excluded.detail,"
            " doc_id = excluded.doc_id, judged_at = excluded.judged_at,"
            " flags = excluded.flags"
            " WHERE judged_pool.grade IS NULL"
        )
    return len(chosen)


def load_pool(
    store: Store, assessor: str, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], PoolGrade]:
    """The pool's rows of ``assessor`` for ``keys`` ((query hash, content hash) pairs)."""
    if not keys:
        return {}
    unique = list(dict.fromkeys(keys))
    rows = store.fetch(
        f"SELECT {qualified(_GRADE_COLUMNS, 'p')} FROM judged_pool p"
        " JOIN (SELECT unnest(?) AS q, unnest(?) AS c) k"
        " ON p.query_hash = k.q AND p.content_hash = k.c WHERE p.assessor = ?",
        [[key[0] for key in unique], [key[1] for key in unique], assessor],
    )
    return {
        (row[0], row[1]): record_of(
            PoolGrade,
            _GRADE_COLUMNS,
            row,
            flags=lambda text: tuple(text.split(",")) if text else (),
        )
        for row in rows
    }


def pool_counts(store: Store) -> list[dict[str, Any]]:
    """Per assessor: judged and unjudged pairs, those flagged (``PoolGrade.flags``), and the
    newest judgment."""
    rows = store.fetch(
        "SELECT assessor, count(grade), count(*) - count(grade), count(flags), max(judged_at)"
        " FROM judged_pool GROUP BY assessor ORDER BY assessor"
    )
    names = ("assessor", "judged", "unjudged", "flagged", "newest")
    return [dict(zip(names, row, strict=True)) for row in rows]


@dataclass(frozen=True, slots=True)
class StoredAgreement:
    """One measured agreement of an assessor with a goldset's human judgments.

    ``n_pairs`` kappa pairs were judged and ``n_unjudged`` sampled ones were not; Kendall's
    tau rests on the ``tau_pairs`` of the runs' top-k less the ``tau_unjudged`` (both in
    ``details``). Unjudged pairs are left out of every figure, never counted not relevant.
    """

    agreement_id: str
    assessor: str
    goldset_name: str
    goldset_version: str
    measured_at: datetime
    n_pairs: int
    n_unjudged: int
    kappa: float | None
    kappa_low: float | None
    kappa_high: float | None
    kappa_scale: str
    confusion: Mapping[str, Any]
    tau: float | None
    tau_p_value: float | None
    tau_measure: str | None
    n_runs: int
    seed: int
    details: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "agreement_id": self.agreement_id,
            "assessor": self.assessor,
            "goldset": self.goldset_name,
            "goldset_version": self.goldset_version,
            "measured_at": self.measured_at.isoformat(),
            "n_pairs": self.n_pairs,
            "n_unjudged": self.n_unjudged,
            "kappa": self.kappa,
            "kappa_low": self.kappa_low,
            "kappa_high": self.kappa_high,
            "kappa_scale": self.kappa_scale,
            "confusion": dict(self.confusion),
            "tau": self.tau,
            "tau_p_value": self.tau_p_value,
            "tau_measure": self.tau_measure,
            "tau_pairs": self.tau_pairs,
            "tau_unjudged": self.tau_unjudged,
            "n_runs": self.n_runs,
            "seed": self.seed,
            "details": dict(self.details),
        }

    @property
    def tau_pairs(self) -> int | None:
        """Distinct pairs of the runs' top-k Kendall's tau was to rest on (None: measured
        before they were counted)."""
        value = self.details.get("tau_pairs")
        return None if value is None else int(value)

    @property
    def tau_unjudged(self) -> int | None:
        """Of ``tau_pairs``, those the assessor left unjudged (None: not counted)."""
        value = self.details.get("tau_unjudged")
        return None if value is None else int(value)

    def unjudged_line(self) -> str:
        """The pairs left unjudged of each part's pairs: ``kappa 13/40, tau 10/70`` (``-``
        when none was)."""
        parts = []
        if self.n_unjudged:
            parts.append(f"kappa {self.n_unjudged}/{self.n_pairs + self.n_unjudged}")
        if self.tau_unjudged:
            parts.append(f"tau {self.tau_unjudged}/{self.tau_pairs}")
        return ", ".join(parts) or "-"

    def summary(self) -> str:
        """One line: kappa with its interval, and tau over runs when measured, each with
        the pairs left unjudged when some were."""
        if self.kappa is None:
            text = "kappa undefined (one label everywhere)"
        else:
            text = f"kappa {self.kappa:.2f} [{self.kappa_low:.2f}, {self.kappa_high:.2f}]"
        text += f" on {self.n_pairs} pairs of {self.goldset_name}"
        if self.n_unjudged:
            text += f" ({self.n_unjudged} unjudged)"
        if self.tau is not None:
            text += f", Kendall tau {self.tau:.2f} over {self.n_runs} runs ({self.tau_measure}"
            if self.tau_unjudged:
                text += f", {self.tau_unjudged} of {self.tau_pairs} pairs unjudged"
            text += ")"
        return text


_AGREEMENT_COLUMNS = (
    "agreement_id, assessor, goldset_name, goldset_version, measured_at, n_pairs, n_unjudged,"
    " kappa, kappa_low, kappa_high, kappa_scale, confusion, tau, tau_p_value, tau_measure,"
    " n_runs, seed, details"
)


def new_agreement_id(measured_at: datetime) -> str:
    """A new agreement id: ``agr-<UTC time>-<6 hex>``."""
    return f"agr-{measured_at:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def save_agreement(store: Store, agreement: StoredAgreement) -> None:
    """Store one agreement measurement."""
    values = values_of(
        agreement,
        _AGREEMENT_COLUMNS,
        confusion=json.dumps(dict(agreement.confusion)),
        details=json.dumps(dict(agreement.details)),
    )
    with store.writing(f"cannot store the agreement in {store.path}") as con:
        con.execute(
            f"INSERT INTO judge_agreements ({_AGREEMENT_COLUMNS})"
            f" VALUES ({placeholders(len(values))})",
            values,
        )


def _agreement(row: tuple[Any, ...]) -> StoredAgreement:
    return record_of(
        StoredAgreement, _AGREEMENT_COLUMNS, row, confusion=json.loads, details=json.loads
    )


def list_agreements(
    store: Store, *, assessor: str | None = None, goldset: str | None = None, limit: int = 20
) -> list[StoredAgreement]:
    """Stored agreements, newest first, optionally of one assessor or goldset."""
    rows = store.fetch(
        f"SELECT {_AGREEMENT_COLUMNS} FROM judge_agreements"
        " WHERE (? IS NULL OR assessor = ?) AND (? IS NULL OR goldset_name = ?)"
        " ORDER BY measured_at DESC, agreement_id DESC LIMIT ?",
        [assessor, assessor, goldset, goldset, limit],
    )
    return [_agreement(row) for row in rows]


def agreements_by_id(store: Store, agreement_ids: Iterable[str]) -> dict[str, StoredAgreement]:
    """The stored agreements among ``agreement_ids``, by id (ids not stored are absent)."""
    wanted = sorted(set(agreement_ids))
    if not wanted:
        return {}
    rows = store.fetch(
        f"SELECT {_AGREEMENT_COLUMNS} FROM judge_agreements WHERE list_contains(?, agreement_id)",
        [wanted],
    )
    return {row[0]: _agreement(row) for row in rows}


def latest_agreement(
    store: Store, assessor: str, *, goldset: str | None = None
) -> StoredAgreement | None:
    """The newest agreement measured for ``assessor``: on ``goldset`` when one was (the
    labels of a run of that goldset are trusted as far as the assessor agreed there), else
    on any goldset; None when none was measured."""
    if goldset is not None:
        found = list_agreements(store, assessor=assessor, goldset=goldset, limit=1)
        if found:
            return found[0]
    found = list_agreements(store, assessor=assessor, limit=1)
    return found[0] if found else None


@dataclass(frozen=True, slots=True)
class JudgedFigure:
    """A measure of a run computed from labels that are not the goldset's: ``source``
    ``assessor`` (LLM labels, ``labeller`` the assessor) or ``estimate`` (``labeller`` the
    calibration); ``partial`` when pairs were left unjudged; ``judged_share`` of the top-k it
    rests on; ``agreement_id`` the assessor's agreement then (None: not measured)."""

    run_id: str
    source: str
    labeller: str
    measure: str
    value: float | None
    low: float | None
    high: float | None
    n_queries: int
    judged_share: float | None
    status: str
    agreement_id: str | None
    computed_at: datetime
    details: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return json_ready(self, utc_mark="")


_FIGURE_COLUMNS = (
    "run_id, source, labeller, measure, value, low, high, n_queries, judged_share, status,"
    " agreement_id, computed_at, details"
)


def save_run_figures(store: Store, figures: Sequence[JudgedFigure]) -> None:
    """Store a run's figures, replacing earlier ones of the same run, source, labeller and
    measure, in one transaction."""
    rows = [values_of(f, _FIGURE_COLUMNS, details=json.dumps(dict(f.details))) for f in figures]
    if not rows:
        return
    with store.writing(f"cannot store judged figures in {store.path}") as con:
        con.executemany(
            f"INSERT OR REPLACE INTO judged_run_figures ({_FIGURE_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def run_figures(store: Store, run_id: str, *, source: str | None = None) -> list[JudgedFigure]:
    """The figures stored for ``run_id`` (of one ``source``, or all), by source and measure."""
    rows = store.fetch(
        f"SELECT {_FIGURE_COLUMNS} FROM judged_run_figures"
        " WHERE run_id = ? AND (? IS NULL OR source = ?) ORDER BY source, labeller, measure",
        [run_id, source, source],
    )
    return [record_of(JudgedFigure, _FIGURE_COLUMNS, row, details=json.loads) for row in rows]


@dataclass(frozen=True, slots=True)
class WindowFigure:
    """One traffic window's figure from assessor labels, with its window and run."""

    window_label: str
    window_start: datetime
    run_id: str
    started_at: datetime
    retriever_id: str
    figure: JudgedFigure


def traffic_figure_series(
    store: Store,
    measure: str,
    *,
    source: str = "assessor",
    labeller: str | None = None,
    retriever_id: str | None = None,
    limit: int = 500,
) -> list[WindowFigure]:
    """The ``measure`` of each judged traffic window, oldest window first (one run per
    window, labeller and retriever: the newest replay of it; the newest ``limit`` points),
    optionally of one ``labeller`` (assessor) and one retriever (``RETRIEVER_ID_SQL``).
    Figures of different assessors are never one series: callers group by
    ``figure.labeller``."""
    columns = qualified(_FIGURE_COLUMNS, "f")
    rows = store.fetch(
        "SELECT * FROM ("
        f" SELECT s.window_label, s.window_start, r.run_id, r.started_at, r.retriever_id,"
        f" {columns}"
        " FROM judged_run_figures f JOIN traffic_window_summaries s ON s.run_id = f.run_id"
        f" JOIN (SELECT run_id, started_at, {RETRIEVER_ID_SQL} AS retriever_id FROM runs) r"
        "  ON r.run_id = f.run_id"
        " WHERE f.measure = ? AND f.source = ? AND (? IS NULL OR f.labeller = ?)"
        " AND (? IS NULL OR r.retriever_id = ?)"
        " QUALIFY row_number() OVER (PARTITION BY s.window_label, f.labeller, r.retriever_id"
        "  ORDER BY r.started_at DESC, r.run_id DESC) = 1"
        # The newest windows are kept when there are more than ``limit``.
        " ORDER BY s.window_start DESC, f.labeller LIMIT ?"
        ") ORDER BY window_start, labeller",
        [measure, source, labeller, labeller, retriever_id, retriever_id, limit],
    )
    return [
        WindowFigure(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            record_of(JudgedFigure, _FIGURE_COLUMNS, row[5:], details=json.loads),
        )
        for row in rows
    ]
