"""Slices in the store: the reference topic sets, each labelled query's figures, and each
window's figures per slice (docs/slices.md; columns: docs/store.md)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from evalkit.clock import utc_now
from evalkit.records.slices import SliceFigures, SlicePrecision
from evalkit.store.columns import column_names, json_text, json_value, placeholders

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = [
    "current_topic_set",
    "newest_sliced_window",
    "query_values",
    "save_query_values",
    "save_slice_figures",
    "save_topic_set",
    "slice_figures_of_run",
    "slice_series",
    "sliced_run_of_window",
    "sliced_windows",
    "topic_reference_window",
]


_SET_COLUMNS = (
    "version, fitted_at, model_fingerprint, reference_run_id, reference_window, n_queries,"
    " seed, centroids, topics, previous_version, matched"
)

_JSON_COLUMNS = ("centroids", "topics", "matched")


def save_topic_set(store: Store, described: Mapping[str, Any]) -> None:
    """Store a topic set described by the columns of ``topic_sets`` (``centroids``, ``topics``
    and ``matched`` as JSON-ready values). An equal set stored before (a refit back to it) is
    made the current one again, with what it now replaces."""
    row = [
        json.dumps(value) if name in _JSON_COLUMNS and value is not None else value
        for name in column_names(_SET_COLUMNS)
        for value in (described[name],)
    ]
    with store.writing(f"cannot store topic set {described['version']}") as con:
        con.execute(
            f"INSERT INTO topic_sets ({_SET_COLUMNS}) VALUES ({placeholders(11)})"
            " ON CONFLICT (version) DO UPDATE SET fitted_at = excluded.fitted_at,"
            " reference_run_id = excluded.reference_run_id,"
            " reference_window = excluded.reference_window, n_queries = excluded.n_queries,"
            " previous_version = excluded.previous_version, matched = excluded.matched",
            row,
        )


def current_topic_set(store: Store, version: str | None = None) -> dict[str, Any] | None:
    """The newest fitted topic set (or the one of ``version``) as ``save_topic_set`` took it;
    None when none is stored."""
    rows = store.fetch(
        f"SELECT {_SET_COLUMNS} FROM topic_sets WHERE ? IS NULL OR version = ?"
        " ORDER BY fitted_at DESC LIMIT 1",
        [version, version],
    )
    if not rows:
        return None
    found = dict(zip(column_names(_SET_COLUMNS), rows[0], strict=True))
    for name in _JSON_COLUMNS:
        found[name] = json_value(found[name], empty=lambda: None)
    return found


def save_query_values(
    store: Store, run_id: str, source: str, labeller: str, values: Mapping[str, Mapping[str, float]]
) -> None:
    """Store each query's figures (``values[measure][query_id]``) of a run from one source and
    labeller, replacing what that source and labeller stored for the run before."""
    rows = [
        [run_id, source, labeller, measure, query_id, float(value)]
        for measure, by_query in values.items()
        for query_id, value in by_query.items()
    ]
    with store.writing(f"cannot store the per-query figures of run {run_id}") as con:
        con.execute(
            "DELETE FROM judged_query_values WHERE run_id = ? AND source = ? AND labeller = ?",
            [run_id, source, labeller],
        )
        if rows:
            con.executemany("INSERT INTO judged_query_values VALUES (?, ?, ?, ?, ?, ?)", rows)


def query_values(
    store: Store, run_id: str, source: str, measure: str
) -> tuple[str, dict[str, float]]:
    """The figure ``measure`` of each query of run ``run_id`` from ``source``, by the labeller
    whose figures of the run were computed last: (labeller, ``{query_id: value}``);
    ``("", {})`` when none is stored."""
    newest = store.fetch(
        "SELECT labeller FROM judged_run_figures WHERE run_id = ? AND source = ?"
        " ORDER BY computed_at DESC, labeller LIMIT 1",
        [run_id, source],
    )
    if not newest:
        return "", {}
    labeller = str(newest[0][0])
    rows = store.fetch(
        "SELECT query_id, value FROM judged_query_values"
        " WHERE run_id = ? AND source = ? AND labeller = ? AND measure = ?",
        [run_id, source, labeller, measure],
    )
    return labeller, {str(q): float(v) for q, v in rows}


_FIGURE_COLUMNS = (
    "run_id, window_label, topic_version, slice, n_queries, n_family, share, share_low,"
    " share_high,"
    " n_out_of_scope, out_of_scope_share, out_of_scope_low, out_of_scope_high,"
    " low_confidence_share, churn, precision_source, precision_labeller, precision_measure,"
    " precision, precision_low, precision_high, n_precision, computed_at, details"
)


def save_slice_figures(
    store: Store,
    run_id: str,
    window_label: str,
    topic_version: str | None,
    figures: Sequence[SliceFigures],
) -> datetime:
    """Store a window's slice figures, replacing the run's earlier ones; returns when."""
    now = utc_now()
    rows = []
    for f in figures:
        p = f.precision
        rows.append(
            [
                run_id, window_label, topic_version, f.slice, f.n_queries, f.n_family, f.share,
                f.share_low,
                f.share_high, f.n_out_of_scope, f.out_of_scope_share, f.out_of_scope_low,
                f.out_of_scope_high, f.low_confidence_share, f.churn,
                None if p is None else p.source, None if p is None else p.labeller,
                None if p is None else p.measure, None if p is None else p.value,
                None if p is None else p.low, None if p is None else p.high,
                0 if p is None else p.n_queries, now, json_text(dict(f.details)),
            ]
        )  # fmt: skip
    with store.writing(f"cannot store the slices of window {window_label}") as con:
        con.execute("DELETE FROM traffic_slice_figures WHERE run_id = ?", [run_id])
        if rows:
            con.executemany(
                f"INSERT INTO traffic_slice_figures ({_FIGURE_COLUMNS})"
                f" VALUES ({placeholders(24)})",
                rows,
            )
    return now


def _figures(row: Sequence[Any]) -> SliceFigures:
    (_, _, _, name, n, n_family, share, low, high, n_oos, oos, oos_low, oos_high, low_conf, churn,
     source, labeller, measure, value, p_low, p_high, n_precision, _, details) = row  # fmt: skip
    return SliceFigures(
        slice=name,
        n_queries=int(n),
        n_family=int(n_family),
        share=share,
        share_low=low,
        share_high=high,
        n_out_of_scope=n_oos,
        out_of_scope_share=oos,
        out_of_scope_low=oos_low,
        out_of_scope_high=oos_high,
        low_confidence_share=low_conf,
        churn=churn,
        precision=None
        if source is None
        else SlicePrecision(source, labeller, measure, value, p_low, p_high, int(n_precision)),
        details=json_value(details),
    )


def slice_figures_of_run(store: Store, run_id: str) -> list[SliceFigures]:
    """A window replay's stored slice figures, ``all`` first, then by size (none: empty)."""
    rows = store.fetch(
        f"SELECT {_FIGURE_COLUMNS} FROM traffic_slice_figures WHERE run_id = ?"
        " ORDER BY slice = 'all' DESC, n_queries DESC, slice",
        [run_id],
    )
    return [_figures(row) for row in rows]


def slice_series(
    store: Store, slice_name: str, *, topic_version: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """One slice's figures over the windows (their newest replay each), oldest first; a
    topic's only where the windows were sliced by ``topic_version`` (another set's
    ``topic:3`` is another topic)."""
    frame = store.fetch_frame(
        "SELECT f.window_label, w.window_start, f.run_id, f.topic_version, f.n_queries, f.share,"
        " f.share_low, f.share_high, f.out_of_scope_share, f.out_of_scope_low,"
        " f.out_of_scope_high, f.precision_source, f.precision_measure, f.precision,"
        " f.precision_low, f.precision_high, f.n_precision"
        " FROM traffic_slice_figures f JOIN traffic_window_summaries w USING (run_id)"
        " WHERE f.slice = ? AND (NOT starts_with(f.slice, 'topic:')"
        "  OR f.topic_version IS NOT DISTINCT FROM ?)"
        " QUALIFY row_number() OVER (PARTITION BY f.window_label ORDER BY w.computed_at DESC) = 1"
        " ORDER BY w.window_start DESC LIMIT ?",
        [slice_name, topic_version, limit],
    )
    return [{str(k): v for k, v in row.items()} for row in frame.iloc[::-1].to_dict("records")]


def newest_sliced_window(store: Store) -> tuple[str, str, str | None] | None:
    """The run id, window label and topic version of the newest window (by its start, then
    its newest replay) whose slices are stored; None when none are."""
    rows = store.fetch(
        "SELECT f.run_id, f.window_label, any_value(f.topic_version)"
        " FROM traffic_slice_figures f JOIN traffic_window_summaries w USING (run_id)"
        " GROUP BY f.run_id, f.window_label, w.window_start, w.computed_at"
        " ORDER BY w.window_start DESC, w.computed_at DESC LIMIT 1"
    )
    return (str(rows[0][0]), str(rows[0][1]), rows[0][2]) if rows else None


def sliced_run_of_window(store: Store, window_label: str, topic_version: str | None) -> str | None:
    """The newest replay of ``window_label`` whose slices were stored with ``topic_version``."""
    rows = store.fetch(
        "SELECT f.run_id FROM traffic_slice_figures f JOIN traffic_window_summaries w"
        " USING (run_id) WHERE f.window_label = ? AND f.topic_version IS NOT DISTINCT FROM ?"
        " ORDER BY w.computed_at DESC LIMIT 1",
        [window_label, topic_version],
    )
    return str(rows[0][0]) if rows else None


def topic_reference_window(store: Store, version: str) -> str | None:
    """The window the topic set ``version`` was fitted on."""
    rows = store.fetch("SELECT reference_window FROM topic_sets WHERE version = ?", [version])
    return str(rows[0][0]) if rows else None


def sliced_windows(store: Store, *, limit: int = 200) -> list[tuple[str, str, str | None]]:
    """Each window whose slices are stored, newest first: its label, the newest sliced replay
    and the topic version of its slices."""
    rows = store.fetch(
        "SELECT f.window_label, f.run_id, any_value(f.topic_version)"
        " FROM traffic_slice_figures f JOIN traffic_window_summaries w USING (run_id)"
        " GROUP BY f.window_label, f.run_id, w.window_start, w.computed_at"
        " QUALIFY row_number() OVER (PARTITION BY f.window_label ORDER BY w.computed_at DESC) = 1"
        " ORDER BY w.window_start DESC LIMIT ?",
        [limit],
    )
    return [(str(label), str(run_id), version) for label, run_id, version in rows]
