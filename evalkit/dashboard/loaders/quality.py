"""The Quality over time page's data: a measure per retriever of a goldset, with bands,
baselines and the events (goldset, model, index changes; alerts) between runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import pandas as pd

from evalkit.dashboard.loaders.shared import has_area
from evalkit.store import Store
from evalkit.store.dashboard.quality import alert_events_frame, series_points_frame
from evalkit.store.dashboard.shared import existing_tables

__all__ = ["QualityData", "quality"]


@dataclass(frozen=True, slots=True)
class QualityData:
    """A measure over time for every retriever of a goldset.

    ``points``: one row per finished run (``series_points_frame`` columns) with
    ``ci_low``/``ci_high``, the 95 % t-interval of the mean over the run's stored per-query
    values. ``events``: time, retriever, kind (``goldset version``, ``model``, ``index``, ``k``,
    ``alert``) and a description. ``baselines``: retriever -> baseline run (its oldest
    complete run that stored the measure, or the one asked for). ``without``: the finished
    runs that stored no value of the measure (another k or measure set, or no query
    answered): run_id, retriever, started_at, status, k.
    """

    goldset: str
    measure: str
    points: pd.DataFrame
    events: pd.DataFrame
    baselines: Mapping[str, str]
    without: pd.DataFrame = field(default_factory=pd.DataFrame)


def _t_interval(mean: pd.Series, sd: pd.Series, n: pd.Series) -> tuple[pd.Series, pd.Series]:
    from scipy import stats

    count = pd.to_numeric(n, errors="coerce").astype("float64")
    spread = pd.to_numeric(sd, errors="coerce").astype("float64").fillna(0.0)
    degrees = np.maximum(count.to_numpy() - 1.0, 1.0)
    multiplier = stats.t.ppf(0.975, degrees)
    half = np.where(count.to_numpy() > 1, multiplier * spread.to_numpy() / np.sqrt(count), 0.0)
    centre = pd.to_numeric(mean, errors="coerce").astype("float64")
    return centre - half, centre + half


def quality(
    store: Store, *, goldset: str, measure: str, baseline: str | None = None
) -> QualityData:
    """The measure's series per retriever of ``goldset``, its bands, baselines and events."""
    tables = existing_tables(store)
    every = series_points_frame(store, goldset=goldset, measure=measure)
    # Changing k or the measures within a series is ordinary: a run that stored no value of
    # this measure is listed apart, not drawn as a gap nor picked as a baseline.
    stored = every["value"].notna()
    points = every[stored].reset_index(drop=True)
    without = every.loc[~stored, ["run_id", "retriever", "started_at", "status", "k"]]
    low, high = _t_interval(points["value"], points["sd"], points["n"])
    points = points.assign(ci_low=low, ci_high=high)
    baselines: dict[str, str] = {}
    for retriever, group in points.groupby("retriever"):
        complete = group[group["status"] == "complete"]
        chosen = group[group["run_id"] == baseline] if baseline else complete.head(0)
        pick = chosen if not chosen.empty else complete
        if not pick.empty:
            baselines[str(retriever)] = str(pick.iloc[0]["run_id"])
    events = []
    for row in every.itertuples():
        if row.goldset_changed:
            events.append(
                (
                    row.started_at,
                    row.retriever,
                    "goldset version",
                    f"goldset version {_short(row.prev_goldset_version)} -> "
                    f"{_short(row.goldset_version)} (run {row.run_id})",
                )
            )
        if row.model_changed:
            events.append(
                (
                    row.started_at,
                    row.retriever,
                    "model",
                    f"model fingerprint {_short(row.prev_model_fingerprint)} -> "
                    f"{_short(row.model_fingerprint)} (run {row.run_id}"
                    f"{_UNCONFIRMED if row.model_change_unconfirmed else ''})",
                )
            )
        if row.index_changed:
            events.append(
                (
                    row.started_at,
                    row.retriever,
                    "index",
                    f"index re-built: fingerprint {_short(row.prev_index_fingerprint)} -> "
                    f"{_short(row.index_fingerprint)} (run {row.run_id})",
                )
            )
        if row.k_changed:
            events.append(
                (
                    row.started_at,
                    row.retriever,
                    "k",
                    f"k {_whole(row.prev_k)} -> {_whole(row.k)} (run {row.run_id})",
                )
            )
    if has_area(tables, "alerts") and not every.empty:
        fired = alert_events_frame(
            store,
            goldset=goldset,
            since=pd.Timestamp(every["started_at"].min()).to_pydatetime(),
            until=pd.Timestamp(every["started_at"].max()).to_pydatetime() + timedelta(days=1),
        )
        for row in fired.itertuples():
            events.append(
                (row.created_at, "", "alert", f"{row.severity} alert {row.rule}: {row.title}")
            )
    event_frame = pd.DataFrame(events, columns=["time", "retriever", "kind", "description"])
    return QualityData(
        goldset=goldset,
        measure=measure,
        points=points,
        events=event_frame.sort_values("time", kind="stable").reset_index(drop=True),
        baselines=baselines,
        without=without.sort_values("started_at", ascending=False).reset_index(drop=True),
    )


def _whole(value: object) -> str:
    return "none" if value is None or pd.isna(value) else str(int(value))  # type: ignore[call-overload]


_UNCONFIRMED = "; unconfirmed: a run stored no canary embeddings, the backend may differ"


def _short(value: object) -> str:
    if not isinstance(value, str) or not value:
        return "none"
    return value[:12]
