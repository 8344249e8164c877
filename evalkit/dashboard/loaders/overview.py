"""The Overview page's data: per goldset x retriever, the latest figures against the
baseline, the paired test on one measure, drifting checks, and the series' status."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from evalkit.dashboard.loaders.shared import has_area
from evalkit.stats import decide
from evalkit.store import Store
from evalkit.store.dashboard import overview as sql
from evalkit.store.dashboard.alerts import latest_job_runs_frame, open_alerts_frame
from evalkit.store.dashboard.shared import existing_tables

__all__ = [
    "HISTORY_POINTS",
    "OVERVIEW_ALPHA",
    "OVERVIEW_MIN_EFFECT",
    "STATUS_ORDER",
    "OverviewData",
    "overview",
    "paired_tests",
    "series_status",
]


OVERVIEW_ALPHA = 0.05
OVERVIEW_MIN_EFFECT = 0.01
"""The Overview's status applies the gate's decision rule with ``evalkit drift precision``'s
alpha 0.05 and min effect 0.01 to a paired t-interval aggregated in DuckDB, so that a store
with any number of series loads at once; Compare runs gives the resampled figures."""


HISTORY_POINTS = 30
"""Runs per series in the Overview's sparklines."""


STATUS_ORDER = ("failed", "regression", "drift", "stale", "new", "pass", "no data")
"""Series statuses, worst first: a series shows the worst that applies (``no data``
outranks all but ``failed``, see ``series_status``)."""


@dataclass(frozen=True, slots=True)
class OverviewData:
    """Per goldset x retriever: the latest figures, the baseline's, and what flags them.

    ``series`` has the columns of ``series_frame``, its baseline replaced by the one on
    ``measure`` and the runs that stored it (``measured_series_frame``: ``latest_k``,
    ``measured_run``, ``measured_k``, ``baseline_run``), plus ``value``,
    ``baseline_value``, ``delta``, ``decision``, ``ci_low``, ``ci_high``, ``p_adjusted``,
    ``n_compared`` (the paired test of ``measured_run``, the newest run that stored
    ``measure``, against the baseline), ``drift`` (the drifting checks of the series, or
    '') and ``history`` (``measure`` of its newest ``HISTORY_POINTS`` runs, oldest first),
    ranked by ``delta``: the largest drop first, series without a change last. ``figures``
    is long: goldset_name, retriever, measure, latest, baseline, delta.
    """

    measure: str
    series: pd.DataFrame
    figures: pd.DataFrame
    open_alerts: pd.DataFrame | None
    jobs: pd.DataFrame | None


def paired_tests(differences: pd.DataFrame) -> pd.DataFrame:
    """The gate's decision for each pair of runs, from a paired t-interval of the mean
    per-query difference (``paired_differences_frame`` columns in; adds ci_low, ci_high,
    p_adjusted and decision). One measure per pair, so Holm leaves the p-value as it is.
    A pair without spread gets the interval [delta, delta]; a pair that shares a single
    query, which changed, an unbounded one, as ``evalkit.stats.compare_runs`` gives them."""
    from scipy import stats

    n = differences["n"].to_numpy(dtype=np.float64)
    mean = differences["mean_diff"].to_numpy(dtype=np.float64)
    sd = differences["sd_diff"].to_numpy(dtype=np.float64)
    degrees = np.maximum(n - 1.0, 1.0)
    standard_error = np.divide(sd, np.sqrt(n), out=np.zeros_like(sd), where=n > 0)
    half = stats.t.ppf(0.975, degrees) * standard_error
    low, high = mean - half, mean + half
    single = (n == 1) & (mean != 0.0)
    low, high = np.where(single, -np.inf, low), np.where(single, np.inf, high)
    t_statistic = np.divide(
        np.abs(mean), standard_error, out=np.full_like(mean, np.inf), where=standard_error > 0
    )
    p_values = np.where(
        standard_error > 0,
        2.0 * stats.t.sf(t_statistic, degrees),
        np.where(mean == 0.0, 1.0, 0.0),
    )
    decisions = [
        decide(
            ci_low=float(lo),
            ci_high=float(hi),
            p_adjusted=float(p),
            alpha=OVERVIEW_ALPHA,
            min_effect=OVERVIEW_MIN_EFFECT,
        ).value
        for lo, hi, p in zip(low, high, p_values, strict=True)
    ]
    return differences.assign(
        ci_low=np.where(np.isfinite(low), low, np.nan),
        ci_high=np.where(np.isfinite(high), high, np.nan),
        p_adjusted=p_values,
        decision=decisions,
    )


def overview(store: Store, *, measure: str) -> OverviewData:
    """Latest figures per series with change since the baseline, the paired test on
    ``measure``, drifting checks, open alerts and the newest job runs."""
    tables = existing_tables(store)
    series = sql.series_frame(store)
    finished = series.dropna(subset=["latest_run"])
    run_ids = sorted(set(finished["latest_run"]) | set(finished["baseline_run"].dropna()))
    aggregates = sql.aggregates_frame(store, run_ids)[["run_id", "measure", "value"]]
    keys = finished[["goldset_name", "retriever", "latest_run", "baseline_run"]]
    latest = keys.merge(
        aggregates.rename(columns={"run_id": "latest_run", "value": "latest"}), on="latest_run"
    )
    figures = latest.merge(
        aggregates.rename(columns={"run_id": "baseline_run", "value": "baseline"}),
        on=["baseline_run", "measure"],
        how="left",
    )
    # A series' only run is its own baseline: there is no change to show, not a change of 0.
    changed = figures["latest_run"] != figures["baseline_run"]
    figures = figures.assign(delta=(figures["latest"] - figures["baseline"]).where(changed))[
        ["goldset_name", "retriever", "measure", "latest", "baseline", "delta"]
    ]
    # The figures on ``measure`` are of the newest run that stored it, against the oldest
    # complete run that did (as Quality over time picks it): a run at another k stores other
    # measures, and must neither read as a pass nor hide the drop before it.
    series = series.drop(columns=["baseline_run", "baseline_started"]).merge(
        sql.measured_series_frame(store, measure=measure),
        on=["goldset_name", "retriever"],
        how="left",
    )
    compared = series.dropna(subset=["measured_run", "baseline_run"])
    compared = compared[compared["measured_run"] != compared["baseline_run"]]
    pairs = list(zip(compared["baseline_run"], compared["measured_run"], strict=True))
    tests = paired_tests(sql.paired_differences_frame(store, pairs=pairs, measure=measure))
    measured_ids = set(series["measured_run"].dropna()) | set(series["baseline_run"].dropna())
    stored = sql.aggregates_frame(store, sorted(measured_ids))
    chosen = stored[stored["measure"] == measure].set_index("run_id")["value"]
    series = series.assign(
        value=series["measured_run"].map(chosen),
        baseline_value=series["baseline_run"].map(chosen),
    ).merge(
        tests[
            ["baseline_run", "candidate_run", "n", "ci_low", "ci_high", "p_adjusted", "decision"]
        ].rename(columns={"candidate_run": "measured_run", "n": "n_compared"}),
        on=["baseline_run", "measured_run"],
        how="left",
    )
    series["delta"] = (
        pd.to_numeric(series["value"]) - pd.to_numeric(series["baseline_value"])
    ).where(series["measured_run"] != series["baseline_run"])
    if has_area(tables, "drift"):
        drifting = sql.drifting_series_frame(
            store,
            series=list(zip(series["goldset_name"], series["retriever"], strict=True)),
            measure=measure,
        )
        series = series.merge(drifting, on=["goldset_name", "retriever"], how="left")
        series["drift"] = series["drift"].fillna("")
    else:
        series["drift"] = ""
    history = sql.series_history_frame(store, measure=measure, points=HISTORY_POINTS)
    series = series.merge(history, on=["goldset_name", "retriever"], how="left")
    series["history"] = [
        [float(v) for v in values] if isinstance(values, list | np.ndarray) else []
        for values in series["history"]
    ]
    series = series.sort_values(
        ["delta", "goldset_name", "retriever"], na_position="last", kind="stable"
    ).reset_index(drop=True)
    return OverviewData(
        measure=measure,
        series=series,
        figures=figures,
        open_alerts=open_alerts_frame(store) if has_area(tables, "alerts") else None,
        jobs=latest_job_runs_frame(store) if has_area(tables, "jobs") else None,
    )


def series_status(
    row: Mapping[str, Any], *, measure: str, now: datetime, stale_after: timedelta
) -> tuple[str, list[str]]:
    """A series' status (the worst of ``STATUS_ORDER`` that applies) and every reason.

    ``failed`` first, then ``no data`` (its reasons still say what the newest run that
    stored ``measure`` showed, so a regression is never hidden behind a later run at another
    k), then the worst of the rest. Rules: docs/dashboard.md, "How the Overview decides a
    status".
    """
    latest = row.get("latest_run")
    failure = _newest_failure(row)
    if not isinstance(latest, str):
        if failure is None:
            return "no data", ["no finished run yet"]
        runs = row.get("n_runs")
        count = int(runs) if isinstance(runs, int | float) and not pd.isna(runs) else 0
        unfinished = (
            "it has no finished run" if count < 2 else f"none of its {count:,} runs finished"
        )
        return "failed", [f"failed: {failure}", f"no data: {unfinished}"]
    reasons: dict[str, str] = {} if failure is None else {"failed": failure}
    measured = row.get("measured_run")
    if measured != latest:
        where = f"the latest finished run {latest}{_at_k(row.get('latest_k'))} stored no {measure}"
        reasons["no data"] = (
            f"{where}; the figures are of run {measured}{_at_k(row.get('measured_k'))}, the "
            f"newest that stored it"
            if isinstance(measured, str)
            else f"{where}, nor did any earlier run"
        )
    if isinstance(measured, str) and not isinstance(row.get("baseline_run"), str):
        reasons["new"] = f"no complete run that stored {measure} to compare with yet" + (
            f"; the latest run {latest} is partial: {_failed_share(row)}"
            if row.get("latest_status") == "partial"
            else ""
        )
    if row.get("decision") == "regression":
        p_value = float(row.get("p_adjusted") or 0.0)
        shown = "p < 0.001" if p_value < 0.001 else f"p {p_value:.3f}"
        reasons["regression"] = (
            f"{measure} dropped against baseline {row.get('baseline_run')} ({shown})"
        )
    drifts = [part for part in str(row.get("drift") or "").split("; ") if part]
    if "regression" in reasons:
        # A precision drift check tests the same drop the paired test found: one fact.
        agreeing = [part for part in drifts if part.startswith("precision ")]
        drifts = [part for part in drifts if not part.startswith("precision ")]
        if agreeing:
            reasons["regression"] += "; the precision drift check agrees: " + "; ".join(
                part.removeprefix("precision ") for part in agreeing
            )
    if drifts:
        reasons["drift"] = "; ".join(drifts)
    started = row.get("latest_started")
    if isinstance(started, datetime | pd.Timestamp) and now - pd.Timestamp(started) > stale_after:
        reasons["stale"] = f"latest finished run started {pd.Timestamp(started):%Y-%m-%d %H:%M}"
    newest = row.get("newest_run")
    if isinstance(newest, str) and newest != latest and failure is None:
        reasons.setdefault(
            "stale",
            f"newest run {newest} is {row.get('newest_status')}"
            + (f": {row.get('newest_error')}" if row.get("newest_error") else ""),
        )
    if not reasons:
        decision = row.get("decision")
        if isinstance(decision, str):
            return "pass", [f"paired test against the baseline: {decision}"]
        if measured == row.get("baseline_run"):
            return "new", ["one complete run, the baseline: nothing to compare it with yet"]
        return "pass", ["no paired test (no per-query values)"]
    status = next(name for name in ("failed", "no data", *STATUS_ORDER) if name in reasons)
    return status, [f"{name}: {text}" for name, text in reasons.items()]


def _newest_failure(row: Mapping[str, Any]) -> str | None:
    """``newest run R failed: ERROR`` when a series' newest run failed, else None."""
    if row.get("newest_status") != "failed" or not isinstance(row.get("newest_run"), str):
        return None
    error = row.get("newest_error")
    return f"newest run {row['newest_run']} failed" + (
        f": {error}" if isinstance(error, str) and error else ""
    )


def _failed_share(row: Mapping[str, Any]) -> str:
    """``3 of 122 queries failed`` for the latest finished run of a series' row."""
    failed, total = row.get("latest_n_failed"), row.get("latest_n_queries")
    if not isinstance(failed, int | float) or pd.isna(failed):
        return "some of its queries failed"
    if isinstance(total, int | float) and not pd.isna(total):
        return f"{int(failed):,} of {int(total):,} queries failed"
    return f"{int(failed):,} {'query' if failed == 1 else 'queries'} failed"


def _at_k(k: object) -> str:
    """`` (k 5)`` for a run's k, or nothing when unknown."""
    return f" (k {int(k)})" if isinstance(k, int | float) and not pd.isna(k) else ""
