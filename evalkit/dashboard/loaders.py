"""Everything a dashboard page shows, loaded from an open (read-only) store.

One loader per page view, registered in ``LOADERS`` by name: the Streamlit side calls them
through its cache (``evalkit.dashboard.access``), the benchmark and the tests call them
directly. Loaders take the store and keyword-only parameters and return frozen records of
DataFrames; all aggregation happens in SQL (``evalkit.store.dashboard``), the statistics
and run comparisons in ``evalkit.stats``, exactly as the CLI computes them.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evalkit.answers.files import read_answer_records
from evalkit.causes import Explanation, explain_alert, explain_drift_check, explain_runs
from evalkit.drift.ks import benjamini_hochberg, ks_statistics
from evalkit.errors import EvalkitError, InputError, NotFoundError
from evalkit.metrics import parse_measure
from evalkit.retrievers.chroma_client import get_collection, open_chroma_client
from evalkit.stats import compare_stored_runs, decide, document_depth
from evalkit.store import Store
from evalkit.store import dashboard as sql
from evalkit.store.alerts import get_alert
from evalkit.store.runs import get_run

__all__ = [
    "AREA_HINTS",
    "HISTORY_POINTS",
    "LOADERS",
    "STATUS_ORDER",
    "AlertsData",
    "AnswerItems",
    "AnswersData",
    "CompareData",
    "DriftData",
    "GoldsetsData",
    "IndexHealthData",
    "OverviewData",
    "ProjectionData",
    "QualityData",
    "QueryData",
    "StoreFacts",
    "TrafficData",
    "alert",
    "alert_deliveries",
    "alerts",
    "answer_items",
    "answers",
    "causes",
    "compare",
    "document_texts",
    "drift",
    "explain_measure",
    "goldsets",
    "index_health",
    "measures",
    "overview",
    "paired_tests",
    "projection",
    "quality",
    "query_detail",
    "query_list",
    "runs",
    "series_status",
    "store_facts",
    "traffic",
]

OVERVIEW_ALPHA = 0.05
OVERVIEW_MIN_EFFECT = 0.01
RESAMPLES = 10_000
SEED = 0
"""The paired tests' settings. Compare runs uses those of ``evalkit compare`` (10,000
resamples, seed 0; alpha and min effect as chosen), so it shows the CLI's numbers. The
Overview's status applies the gate's decision rule with ``evalkit drift precision``'s alpha
0.05 and min effect 0.01 to a paired t-interval aggregated in DuckDB, so that a store with
any number of series loads at once; Compare runs gives the resampled figures."""

HISTORY_POINTS = 30
"""Runs per series in the Overview's sparklines."""

STATUS_ORDER = ("regression", "drift", "stale", "pass", "no data")
"""Series statuses, worst first: a series shows the worst that applies."""

AREA_HINTS: Mapping[str, str] = {
    "core": "`evalkit goldset import ...` then `evalkit run --goldset NAME --collection C` "
    "(or `make demo`) store goldsets and runs.",
    "drift": "`evalkit drift embeddings|documents|model|precision`, or a scheduled "
    "`drift_check` job of `evalkit serve`, stores drift checks.",
    "traffic": "`evalkit traffic ingest LOGS`, then `evalkit traffic sample --window W` and "
    "`evalkit traffic replay --window W --collection C`, store traffic windows.",
    "embeddings": "`evalkit traffic replay --window W ...` stores the query embeddings of "
    "each window it replays.",
    "answers": "`evalkit answers score answers.jsonl` stores answer scores (faithfulness, "
    "context precision and recall).",
    "audit": "`evalkit audit --collection C --source corpus.jsonl` stores index audits.",
    "alerts": "`evalkit alerts evaluate` (or `evalkit serve` with `[[alerts.rules]]` in "
    "evalkit.toml) stores alerts and their deliveries.",
    "jobs": "`evalkit serve` (or `evalkit jobs run JOB`) records job runs.",
}
"""What produces each area's tables, shown where a page finds none of its data."""


# -- store facts ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoreFacts:
    """Which areas a store holds data for, and how much core data it has."""

    tables: frozenset[str]
    counts: Mapping[str, int]
    goldsets: tuple[str, ...]

    @property
    def empty(self) -> bool:
        """No goldset and no run: nothing to show yet."""
        return self.counts.get("goldsets", 0) == 0 and self.counts.get("runs", 0) == 0

    def has(self, area: str) -> bool:
        """Whether every table of ``area`` (see ``evalkit.store.dashboard.AREA_TABLES``) exists."""
        return _has(self.tables, area)


def _has(tables: frozenset[str], area: str) -> bool:
    return all(table in tables for table in sql.AREA_TABLES[area])


def store_facts(store: Store) -> StoreFacts:
    """Tables, counts and goldset names of the store."""
    return StoreFacts(
        tables=sql.existing_tables(store),
        counts=sql.store_counts(store),
        goldsets=tuple(sql.goldset_names(store)),
    )


def measures(store: Store, *, goldset: str | None = None) -> tuple[str, ...]:
    """Measures stored for finished runs (of one goldset), most common first."""
    frame = sql.measures_frame(store, goldset=goldset)
    return tuple(str(name) for name in frame["measure"])


def runs(store: Store, *, goldset: str | None = None, limit: int = 5000) -> pd.DataFrame:
    """Finished runs (of one goldset), newest first, for run pickers."""
    return sql.runs_frame(store, goldset=goldset, statuses=sql.FINISHED_STATUSES, limit=limit)


# -- overview ------------------------------------------------------------------------------


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
    ranked by ``delta``: the largest drop first, series without a change last. Where the
    latest run stored no value of ``measure``, ``measured_run`` is an earlier run (or None)
    and ``series_status`` says "no data". ``figures`` is long: goldset_name, retriever,
    measure, latest, baseline (the series' oldest complete run), delta.
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
    A pair without spread gets the interval [delta, delta]; a single changed query an
    unbounded one, as ``evalkit.stats.compare_runs`` gives them."""
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
    tables = sql.existing_tables(store)
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
    figures = figures.assign(delta=figures["latest"] - figures["baseline"])[
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
    series["delta"] = pd.to_numeric(series["value"]) - pd.to_numeric(series["baseline_value"])
    if _has(tables, "drift"):
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
        open_alerts=sql.open_alerts_frame(store) if _has(tables, "alerts") else None,
        jobs=sql.latest_job_runs_frame(store) if _has(tables, "jobs") else None,
    )


def series_status(
    row: Mapping[str, Any], *, measure: str, now: datetime, stale_after: timedelta
) -> tuple[str, list[str]]:
    """A series' status (the worst of ``STATUS_ORDER`` that applies) and every reason.

    ``no data``: no finished run yet, or its latest finished run stored no value of
    ``measure`` (another k or measure set, or no query answered). That outranks the rest:
    the series is not measured on ``measure`` now. Its reasons still say what the newest
    run that stored it showed (a regression is never hidden behind a later run at another
    k), and which run that is. Otherwise ``regression``: the paired test of its latest run
    against its baseline says so; ``drift``: a drift check of the series drifts; ``stale``:
    its latest finished run is older than ``stale_after``, or a newer run did not complete;
    ``pass`` otherwise.
    """
    latest = row.get("latest_run")
    if not isinstance(latest, str):
        return "no data", ["no finished run yet"]
    reasons: dict[str, str] = {}
    measured = row.get("measured_run")
    if measured != latest:
        where = f"the latest finished run {latest}{_at_k(row.get('latest_k'))} stored no {measure}"
        reasons["no data"] = (
            f"{where}; the figures are of run {measured}{_at_k(row.get('measured_k'))}, the "
            f"newest that stored it"
            if isinstance(measured, str)
            else f"{where}, nor did any earlier run"
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
    if isinstance(newest, str) and newest != row.get("latest_run"):
        reasons.setdefault(
            "stale",
            f"newest run {newest} is {row.get('newest_status')}"
            + (f": {row.get('newest_error')}" if row.get("newest_error") else ""),
        )
    if not reasons:
        decision = row.get("decision")
        if isinstance(decision, str):
            return "pass", [f"paired test against the baseline: {decision}"]
        return "pass", ["no paired test (no other complete run, or no per-query values)"]
    status = "no data" if "no data" in reasons else next(n for n in STATUS_ORDER if n in reasons)
    return status, [f"{name}: {text}" for name, text in reasons.items()]


def _at_k(k: object) -> str:
    """`` (k 5)`` for a run's k, or nothing when unknown."""
    return f" (k {int(k)})" if isinstance(k, int | float) and not pd.isna(k) else ""


# -- quality over time ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QualityData:
    """A measure over time for every retriever of a goldset.

    ``points``: one row per finished run (``series_points_frame`` columns) with
    ``ci_low``/``ci_high``, the 95 % t-interval of the mean over the run's stored per-query
    values. ``events``: time, retriever, kind (``goldset version``, ``model``, ``index``,
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
    tables = sql.existing_tables(store)
    every = sql.series_points_frame(store, goldset=goldset, measure=measure)
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
                    f"{_short(row.model_fingerprint)} (run {row.run_id})",
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
    if _has(tables, "alerts") and not every.empty:
        fired = sql.alert_events_frame(
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


def _short(value: object) -> str:
    if not isinstance(value, str) or not value:
        return "none"
    return value[:12]


# -- compare runs --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompareData:
    """Two runs compared as ``evalkit compare`` does.

    ``metrics``: one row per measure (measure, baseline_mean, candidate_mean, delta,
    ci_low, ci_high, p_permutation, p_wilcoxon, p_adjusted, n, decision). ``per_query``:
    every shared query with, per measure, ``<m> baseline``, ``<m> candidate``, ``<m> delta``,
    and the relevant documents ``lost`` and ``gained`` in the top ``depth``; sorted by the
    loss on ``sort_measure``, largest first. ``failed_in_baseline`` / ``failed_in_candidate``:
    queries whose retrieval failed in that run, compared as 0 (never left out).
    """

    baseline: str
    candidate: str
    measures: tuple[str, ...]
    sort_measure: str
    depth: int
    decision: str
    metrics: pd.DataFrame
    per_query: pd.DataFrame
    only_in_baseline: tuple[str, ...]
    only_in_candidate: tuple[str, ...]
    settings: Mapping[str, Any] = field(default_factory=dict)
    failed_in_baseline: tuple[str, ...] = ()
    failed_in_candidate: tuple[str, ...] = ()


def compare(
    store: Store,
    *,
    baseline: str,
    candidate: str,
    measures: Sequence[str],
    sort_measure: str | None = None,
    alpha: float = 0.05,
    min_effect: float = 0.0,
) -> CompareData:
    """Compare two stored runs on ``measures``: deltas, bootstrap CIs, p-values and the
    per-query table with the relevant documents each query lost or gained."""

    chosen = list(dict.fromkeys(measures)) or ["ndcg@10"]
    sort_by = sort_measure if sort_measure in chosen else chosen[0]
    # The page shows a partial run rather than refusing it: its failed queries count as 0
    # (the worst outcome), as `evalkit compare --failed-as-zero` does, never left out.
    report = compare_stored_runs(
        store,
        baseline,
        candidate,
        chosen,
        worst=0,
        failed_as_zero=True,
        alpha=alpha,
        min_effect=min_effect,
        resamples=RESAMPLES,
        seed=SEED,
    )
    comparison = report.comparison
    metrics = pd.DataFrame([{"measure": m.measure, **m.to_dict()} for m in comparison.metrics])[
        [
            "measure",
            "baseline_mean",
            "candidate_mean",
            "delta",
            "ci_low",
            "ci_high",
            "p_permutation",
            "p_wilcoxon",
            "p_adjusted",
            "n",
            "decision",
        ]
    ]
    first = comparison.metrics[0]
    table = pd.DataFrame(index=pd.Index(first.query_ids, name="query_id"))
    for metric in comparison.metrics:
        table[f"{metric.measure} baseline"] = metric.baseline_values
        table[f"{metric.measure} candidate"] = metric.candidate_values
        table[f"{metric.measure} delta"] = metric.candidate_values - metric.baseline_values
    depth = document_depth(sort_by)
    changes = report.document_changes(sort_by)
    table["lost"] = [", ".join(changes[q]["lost"]) for q in first.query_ids]
    table["gained"] = [", ".join(changes[q]["gained"]) for q in first.query_ids]
    table["n_lost"] = [len(changes[q]["lost"]) for q in first.query_ids]
    table["n_gained"] = [len(changes[q]["gained"]) for q in first.query_ids]
    texts = _query_texts(store, str(report.baseline_run.run_id))
    table.insert(0, "text", [texts.get(q, "") for q in first.query_ids])
    table = (
        table.reset_index()
        .sort_values([f"{sort_by} delta", "query_id"], ascending=[True, True], kind="stable")
        .reset_index(drop=True)
    )
    return CompareData(
        baseline=str(report.baseline_run.run_id),
        candidate=str(report.candidate_run.run_id),
        measures=tuple(chosen),
        sort_measure=sort_by,
        depth=depth,
        decision=comparison.decision.value,
        metrics=metrics,
        per_query=table,
        only_in_baseline=comparison.only_in_baseline,
        only_in_candidate=comparison.only_in_candidate,
        failed_in_baseline=comparison.failed_in_baseline,
        failed_in_candidate=comparison.failed_in_candidate,
        settings={
            "alpha": alpha,
            "min_effect": min_effect,
            "resamples": RESAMPLES,
            "seed": SEED,
            "confidence": comparison.confidence,
        },
    )


def _query_texts(store: Store, run_id: str) -> dict[str, str]:
    frame = sql.query_texts_frame(store, run_id=run_id)
    return dict(zip(frame["query_id"].astype(str), frame["text"].astype(str), strict=True))


# -- query drill-down ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueryData:
    """One query in one run, and across the goldset's runs.

    ``results``: what the run retrieved (rank, doc_id, score, relevance, relevant,
    evaluated_rank: the order trec_eval scores, by score then doc id descending, and
    ``text`` when the collection could be read). ``judgments``: the query's judged
    documents. ``explanations``: per stored measure, its value and how it comes about.
    ``values``: the query's values across runs (run x measure). ``relevant_ranks``: where
    each relevant document landed in the newest ``WIDE_RUNS`` runs (doc x run; empty cell:
    not retrieved). ``history`` and ``rank_history``: the same over the newest
    ``HISTORY_RUNS`` runs, long (``query_across_runs_frame`` and ``relevant_ranks_frame``
    columns), for charts.
    """

    goldset: str
    query_id: str
    text: str
    run_id: str
    relevance_threshold: int
    k: int
    results: pd.DataFrame
    judgments: pd.DataFrame
    explanations: pd.DataFrame
    values: pd.DataFrame
    relevant_ranks: pd.DataFrame
    snippet_note: str
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    rank_history: pd.DataFrame = field(default_factory=pd.DataFrame)


HISTORY_RUNS = 500
"""Runs of the goldset a query's history charts go back over."""
WIDE_RUNS = 10
"""Runs shown as columns of the relevant documents' rank table."""


def query_list(store: Store, *, goldset_version: str, text: str | None = None) -> pd.DataFrame:
    """Queries of a goldset version matching ``text`` in their id or text."""
    return sql.search_queries(store, goldset_version=goldset_version, text=text or None)


def explain_measure(
    measure: str,
    *,
    relevant_ranks: Sequence[int],
    grades_by_rank: Mapping[int, int],
    n_relevant: int,
    depth: int,
) -> str:
    """How ``measure`` comes about for one query, in words, from where its relevant
    documents landed (``relevant_ranks``: 1-based evaluated ranks of the retrieved
    relevant documents; ``n_relevant``: every judged-relevant document)."""

    parsed = parse_measure(measure)
    cutoff = parsed.cutoff or depth
    found = sorted(rank for rank in relevant_ranks if rank <= cutoff)
    shown = ", ".join(str(rank) for rank in found[:10]) + (" ..." if len(found) > 10 else "")
    where = f"at ranks {shown}" if found else "none"
    name = parsed.name
    if n_relevant == 0:
        return "no judged-relevant document: the query scores 0 on every measure"
    if name == "recall":
        return f"{len(found)} of {n_relevant} relevant documents in the top {cutoff} ({where})"
    if name == "precision":
        return f"{len(found)} relevant documents in the top {cutoff} ({where}), / {cutoff}"
    if name == "hit_rate":
        return f"a relevant document in the top {cutoff}: {'yes' if found else 'no'}"
    if name == "mrr":
        return (
            f"first relevant document at rank {found[0]}: 1/{found[0]}"
            if found
            else f"no relevant document in the top {cutoff}: 0"
        )
    if name == "r_precision":
        top = sorted(rank for rank in relevant_ranks if rank <= n_relevant)
        return f"{len(top)} relevant documents in the top R = {n_relevant}, / {n_relevant}"
    if name == "map":
        precisions = [index / rank for index, rank in enumerate(found, start=1)]
        terms = " + ".join(f"{p:.3f}" for p in precisions[:6]) + (
            " + ..." if len(precisions) > 6 else ""
        )
        return (
            f"precision at each relevant rank in the top {cutoff} ({terms or '0'}), "
            f"summed and / {n_relevant} relevant"
        )
    if name == "ndcg":
        gains = [f"rank {rank} grade {grades_by_rank[rank]}" for rank in found[:6]]
        return (
            f"graded gains / log2(rank + 1) in the top {cutoff} ({', '.join(gains) or 'none'}),"
            " / the ideal ordering of the judged grades"
        )
    return f"{len(found)} relevant documents in the top {cutoff}"


def query_detail(
    store: Store, *, goldset: str, query_id: str, run_id: str, with_text: bool = False
) -> QueryData:
    """One query of ``goldset`` in run ``run_id``, explained, and across the newest runs.

    ``with_text`` reads the retrieved documents' text from the run's Chroma collection.
    """
    run = get_run(store, run_id)
    version = run.spec.goldset_version or ""
    texts = sql.search_queries(store, goldset_version=version, text=None, limit=1_000_000)
    matching = texts[texts["query_id"] == query_id]
    text = str(matching.iloc[0]["text"]) if not matching.empty else ""
    threshold = run.spec.relevance_threshold
    results = sql.query_results_frame(store, run_id=run.run_id, query_id=query_id)
    order = results.sort_values(["score", "doc_id"], ascending=[False, False], kind="stable")
    evaluated = pd.Series(np.arange(1, len(order) + 1), index=order.index)
    results = results.assign(
        evaluated_rank=evaluated.reindex(results.index).to_numpy(),
        relevant=results["relevance"].fillna(-1).to_numpy() >= threshold,
    )
    judgments = sql.judgments_of_query(store, goldset_version=version, query_id=query_id)
    n_relevant = int((judgments["relevance"] >= threshold).sum())
    relevant_rows = results[results["relevant"]]
    ranks = [int(rank) for rank in relevant_rows["evaluated_rank"]]
    grades = {
        int(rank): int(grade)
        for rank, grade in zip(
            results["evaluated_rank"], results["relevance"].fillna(0), strict=True
        )
    }
    stored = run.aggregates
    values_long = sql.query_across_runs_frame(
        store, goldset=goldset, query_id=query_id, limit=HISTORY_RUNS
    )
    this_run = sql.query_values_frame(store, run_id=run.run_id, query_id=query_id)
    value_of = dict(zip(this_run["measure"], this_run["value"], strict=True))
    explanations = pd.DataFrame(
        [
            {
                "measure": name,
                "value": value_of.get(name),
                "run mean": stored.get(name),
                "why": explain_measure(
                    name,
                    relevant_ranks=ranks,
                    grades_by_rank=grades,
                    n_relevant=n_relevant,
                    depth=run.spec.k,
                ),
            }
            for name in run.spec.measures
        ],
        columns=["measure", "value", "run mean", "why"],
    )
    values = (
        values_long.pivot_table(
            index=["run_id", "started_at", "retriever"], columns="measure", values="value"
        )
        .reset_index()
        .sort_values("started_at", ascending=False)
        if not values_long.empty
        else pd.DataFrame(columns=["run_id", "started_at", "retriever"])
    )
    values.columns.name = None
    ranks_long = sql.relevant_ranks_frame(
        store,
        goldset=goldset,
        query_id=query_id,
        relevance_threshold=threshold,
        limit=HISTORY_RUNS,
    )
    if ranks_long.empty:
        relevant_ranks = pd.DataFrame(columns=["doc_id", "relevance"])
    else:
        newest_first = list(dict.fromkeys(ranks_long["run_id"]))[:WIDE_RUNS]
        wide = ranks_long.pivot(index="doc_id", columns="run_id", values="rank")[newest_first]
        grades = ranks_long.groupby("doc_id")["relevance"].max()
        relevant_ranks = wide.assign(relevance=grades)[["relevance", *newest_first]]
        relevant_ranks = relevant_ranks.sort_values(
            ["relevance", "doc_id"], ascending=[False, True]
        ).reset_index()
        relevant_ranks.columns.name = None
    note = ""
    if with_text:
        snippets, note = document_texts(run.spec.retriever_config, run.spec.collection, results)
        results = results.assign(text=[snippets.get(doc, "") for doc in results["doc_id"]])
    return QueryData(
        goldset=goldset,
        query_id=query_id,
        text=text,
        run_id=run.run_id,
        relevance_threshold=threshold,
        k=run.spec.k,
        results=results,
        judgments=judgments,
        explanations=explanations,
        values=values,
        relevant_ranks=relevant_ranks,
        snippet_note=note,
        history=values_long,
        rank_history=ranks_long,
    )


SNIPPET_CHARS = 300


def document_texts(
    config: Mapping[str, Any], collection: str | None, results: pd.DataFrame
) -> tuple[dict[str, str], str]:
    """Text snippets of the retrieved documents, read from the run's Chroma collection.

    Returns the snippets by doc id and, when they could not be read, why.
    """
    kind = str(config.get("kind", ""))
    if not kind.startswith("chroma") or not collection:
        return {}, f"text snippets need a Chroma collection; this run used {kind or 'unknown'}"
    if results.empty:
        return {}, ""

    path, url = config.get("path"), config.get("url")
    if url is None and not (isinstance(path, str) and (Path(path) / "chroma.sqlite3").is_file()):
        # Opening a missing embedded store would create an empty one: read nothing instead.
        return {}, f"text snippets unavailable: no Chroma store at {path} on this machine"
    try:
        client = open_chroma_client(path=path if url is None else None, url=url)
        found = get_collection(client, collection).get(
            ids=[str(doc) for doc in results["doc_id"]], include=["documents"]
        )
    except EvalkitError as error:
        return {}, f"text snippets unavailable: {error}"
    except Exception as error:  # Chroma raises its own, sqlite and HTTP errors alike
        return {}, f"text snippets unavailable: {type(error).__name__}: {error}"
    documents = found.get("documents") or []
    snippets = {
        str(doc_id): _snippet(text)
        for doc_id, text in zip(found.get("ids") or [], documents, strict=False)
        if text
    }
    return snippets, ""


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 3] + "..."


# -- goldsets ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GoldsetsData:
    """Stored goldset versions and the judgment coverage of their newest runs."""

    versions: pd.DataFrame
    coverage: pd.DataFrame
    depth: int


def goldsets(store: Store, *, depth: int = 10) -> GoldsetsData:
    """Goldset versions with sizes, and judged@depth / judged@k of each newest run."""
    return GoldsetsData(
        versions=sql.goldset_versions_frame(store),
        coverage=sql.goldset_coverage_frame(store, depth=depth),
        depth=depth,
    )


# -- drift ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DriftData:
    """Stored drift checks (``details`` parsed) and the replayed windows with embeddings."""

    checks: pd.DataFrame
    windows: pd.DataFrame


def drift(store: Store) -> DriftData:
    """Every stored drift check, and the traffic windows whose embeddings are stored."""
    tables = sql.existing_tables(store)
    checks = sql.drift_checks_frame(store) if _has(tables, "drift") else pd.DataFrame()
    if not checks.empty:
        checks = checks.assign(
            details=[
                json.loads(text) if isinstance(text, str) else {} for text in checks["details"]
            ]
        )
    windows = (
        sql.traffic_windows_frame(store)
        if _has(tables, "traffic") and _has(tables, "embeddings")
        else pd.DataFrame()
    )
    if not windows.empty:
        windows = windows[windows["n_embeddings"] > 0].reset_index(drop=True)
    return DriftData(checks=checks, windows=windows)


@dataclass(frozen=True, slots=True)
class ProjectionData:
    """Reference and current embeddings projected to 2-D, and per-dimension diagnostics.

    ``points``: x, y, window (the window label), query_id. ``dimensions``: per embedding
    dimension its two-sample KS statistic, Benjamini-Hochberg adjusted asymptotic p-value
    and standardised mean shift, strongest first. ``method``: ``PCA`` (fitted on both
    windows, so that a shift between them shows) or ``UMAP``.
    """

    reference: str
    current: str
    method: str
    points: pd.DataFrame
    dimensions: pd.DataFrame
    explained: tuple[float, ...]


def projection(
    store: Store, *, reference_run: str, current_run: str, limit: int = 2000
) -> ProjectionData:
    """Project two replayed windows' query embeddings and diagnose each dimension."""
    from scipy import stats
    from threadpoolctl import threadpool_limits

    frames = {}
    for run_id in (reference_run, current_run):
        frame = sql.window_embeddings_frame(store, run_id=run_id, limit=limit)
        frames[run_id] = frame
    labels = sql.window_labels_frame(store, run_ids=[reference_run, current_run])
    label_of = dict(zip(labels["run_id"], labels["window_label"], strict=True))
    vectors = {
        run_id: (
            np.vstack([np.asarray(v, dtype=np.float64) for v in frame["embedding"]])
            if not frame.empty
            else np.zeros((0, 0))
        )
        for run_id, frame in frames.items()
    }
    reference, current = vectors[reference_run], vectors[current_run]
    if len(reference) < 2 or len(current) < 2 or reference.shape[1] != current.shape[1]:
        raise InputError(
            "both windows need at least two stored embeddings of the same dimension "
            f"(reference {reference.shape}, current {current.shape})"
        )
    method = "UMAP" if importlib.util.find_spec("umap") is not None else "PCA"
    pooled = np.vstack([reference, current])
    explained: tuple[float, ...] = ()
    # One BLAS thread: on a shared machine, thread oversubscription makes these small
    # decompositions ten times slower, not faster.
    with threadpool_limits(limits=1):
        if method == "UMAP":
            import umap

            coordinates = umap.UMAP(n_components=2, random_state=SEED).fit_transform(pooled)
        else:
            centre = pooled.mean(axis=0)
            centred = pooled - centre
            variances, axes = np.linalg.eigh(centred.T @ centred)
            top = axes[:, ::-1][:, :2]
            coordinates = (pooled - centre) @ top
            total = float(variances.sum())
            explained = tuple(float(v) / total for v in variances[::-1][:2]) if total else ()
    names = [
        str(label_of.get(reference_run, reference_run)),
        str(label_of.get(current_run, current_run)),
    ]
    if names[0] == names[1]:
        names = [f"{names[0]} (reference)", f"{names[1]} (current)"]
    points = pd.DataFrame(
        {
            "x": coordinates[:, 0],
            "y": coordinates[:, 1],
            "window": [names[0]] * len(reference) + [names[1]] * len(current),
            "query_id": [*frames[reference_run]["query_id"], *frames[current_run]["query_id"]],
        }
    )
    statistics = ks_statistics(reference, current)
    m, n = len(reference), len(current)
    # The asymptotic (Kolmogorov) p-value: the exact one costs seconds for a few hundred
    # dimensions of large windows, and a diagnostic needs the ranking, not the last digit.
    p_values = np.clip(stats.kstwobign.sf(statistics * math.sqrt(m * n / (m + n))), 0.0, 1.0)
    adjusted = benjamini_hochberg(p_values)
    spread = np.sqrt((reference.var(axis=0, ddof=1) + current.var(axis=0, ddof=1)) / 2.0)
    shift = np.divide(
        current.mean(axis=0) - reference.mean(axis=0),
        spread,
        out=np.zeros(reference.shape[1]),
        where=spread > 0,
    )
    dimensions = (
        pd.DataFrame(
            {
                "dimension": np.arange(reference.shape[1]),
                "ks_statistic": statistics,
                "p_adjusted": adjusted,
                "mean_shift_sd": shift,
            }
        )
        .sort_values(["p_adjusted", "ks_statistic"], ascending=[True, False], kind="stable")
        .reset_index(drop=True)
    )
    return ProjectionData(
        reference=names[0],
        current=names[1],
        method=method,
        points=points,
        dimensions=dimensions,
        explained=explained,
    )


# -- traffic -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrafficData:
    """Replayed traffic windows, and per window and tenant the replay's and the logs' figures."""

    windows: pd.DataFrame
    tenants: pd.DataFrame
    volume: pd.DataFrame
    records: int
    total_windows: int = 0


def traffic(store: Store, *, windows: int = 30) -> TrafficData:
    """The newest ``windows`` replayed windows with per-tenant breakdowns, and how many
    windows were replayed in all (``total_windows``)."""
    summaries = sql.traffic_windows_frame(store, limit=windows)
    records = sql.traffic_record_count(store)
    tenants = sql.traffic_tenants_frame(store, run_ids=list(summaries["run_id"]))
    volume = sql.traffic_volume_frame(
        store,
        windows=[
            (
                str(row.window_label),
                row.window_start.to_pydatetime(),
                row.window_end.to_pydatetime(),
            )
            for row in summaries.itertuples()
        ],
    )
    return TrafficData(
        windows=summaries,
        tenants=tenants,
        volume=volume,
        records=records,
        total_windows=sql.traffic_window_count(store),
    )


# -- answers -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnswersData:
    """Answer metrics per scoring over time, by metric, method and judge."""

    series: pd.DataFrame


def answers(store: Store) -> AnswersData:
    """Every scoring's means and measured / unmeasured counts."""
    return AnswersData(series=sql.answer_series_frame(store))


@dataclass(frozen=True, slots=True)
class AnswerItems:
    """The lowest-scored answers of a scoring on one metric, with their contexts, and the
    scoring's unmeasured rows by reason."""

    scoring_id: str
    metric: str
    items: pd.DataFrame
    unmeasured: pd.DataFrame


def answer_items(store: Store, *, scoring_id: str, metric: str, limit: int = 20) -> AnswerItems:
    """The ``limit`` lowest ``metric`` values of a scoring beside their contexts.

    Questions, answers and contexts come from the traffic record of the same id, else from
    the scored JSONL file when it is still where it was scored, else the question from the
    run's goldset.
    """
    items = sql.answer_items_frame(
        store,
        scoring_id=scoring_id,
        metric=metric,
        limit=limit,
        with_traffic=_has(sql.existing_tables(store), "traffic"),
    )
    source = sql.scoring_source(store, scoring_id=scoring_id)
    path = Path(source) if source else None
    if path is not None and path.is_file() and not items.empty:
        items = _with_file_contexts(items, path)
    return AnswerItems(
        scoring_id=scoring_id,
        metric=metric,
        items=items,
        unmeasured=sql.unmeasured_frame(store, scoring_id=scoring_id),
    )


def _with_file_contexts(items: pd.DataFrame, path: Path) -> pd.DataFrame:

    try:
        records = {record.id: record for record in read_answer_records(path)}
    except EvalkitError:
        return items
    filled = items.copy()
    for column in ("question", "answer", "contexts"):
        filled[column] = filled[column].astype(object)
    for index, item_id in filled["item_id"].items():
        record = records.get(str(item_id))
        if record is None:
            continue
        if not isinstance(filled.at[index, "question"], str):
            filled.at[index, "question"] = record.question
        if not isinstance(filled.at[index, "answer"], str):
            filled.at[index, "answer"] = record.answer
        if filled.at[index, "contexts"] is None or (
            isinstance(filled.at[index, "contexts"], float)
        ):
            filled.at[index, "contexts"] = list(record.contexts)
    return filled


# -- index health --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndexHealthData:
    """Audits, and for one collection its chosen (default newest) audit's findings and the
    history of every measurement."""

    audits: pd.DataFrame
    collection: str | None
    findings: pd.DataFrame
    measurements: pd.DataFrame


def index_health(
    store: Store, *, collection: str | None = None, audit_id: str | None = None
) -> IndexHealthData:
    """Audits of the store; findings and measurement history of one collection."""
    audits = sql.audits_frame(store)
    if audit_id is not None:
        chosen = audits[audits["audit_id"] == audit_id]
        if not chosen.empty:
            collection = str(chosen.iloc[0]["collection"])
    if collection is None and not audits.empty:
        collection = str(audits.iloc[0]["collection"])
    if collection is None:
        return IndexHealthData(audits, None, pd.DataFrame(), pd.DataFrame())
    return IndexHealthData(
        audits=audits,
        collection=collection,
        findings=sql.audit_findings_frame(store, collection=collection, audit_id=audit_id),
        measurements=sql.audit_measurements_frame(store, collection=collection),
    )


# -- alerts --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertsData:
    """Alert history with delivery summaries (one page of it), conditions firing now, and
    job runs.

    ``alerts``: the ``page_size`` notifications from row ``offset``, newest first;
    ``total``: how many the store holds (of the status asked for); ``undelivered`` and
    ``abandoned``: how many of those have a delivery pending or given up.
    """

    alerts: pd.DataFrame
    open_alerts: pd.DataFrame
    jobs: pd.DataFrame | None
    total: int = 0
    offset: int = 0
    undelivered: int = 0
    abandoned: int = 0
    total_jobs: int = 0


def alerts(
    store: Store, *, status: str | None = None, offset: int = 0, page_size: int = 50
) -> AlertsData:
    """One page of notifications (optionally of one status) with the true total, open
    conditions and recent job runs."""
    states = sql.alert_state_counts(store, status=status)
    return AlertsData(
        alerts=sql.alerts_frame(store, status=status, limit=page_size, offset=offset),
        open_alerts=sql.open_alerts_frame(store),
        jobs=sql.job_runs_frame(store) if _has(sql.existing_tables(store), "jobs") else None,
        total=sql.alerts_count(store, status=status),
        offset=offset,
        undelivered=states["pending"],
        abandoned=states["abandoned"],
        total_jobs=sql.job_runs_count(store) if _has(sql.existing_tables(store), "jobs") else 0,
    )


def alert(store: Store, *, alert_id: str) -> dict[str, Any] | None:
    """One notification (alert_id, kind, title, severity, status, summary), or None."""
    return sql.alert_row(store, alert_id=alert_id)


def alert_deliveries(store: Store, *, alert_id: str) -> pd.DataFrame:
    """Every delivery attempt of one alert."""
    return sql.alert_deliveries_frame(store, alert_id=alert_id)


# -- probable causes -----------------------------------------------------------------------


def causes(
    store: Store,
    *,
    baseline: str | None = None,
    candidate: str | None = None,
    measures: Sequence[str] = (),
    drift_check: str | None = None,
    alert: str | None = None,
    alpha: float = 0.05,
    min_effect: float = 0.0,
) -> Explanation:
    """The probable causes of a candidate run against its baseline (``explain_runs``, with
    Compare runs' test settings), or of a stored drift check or alert, as `evalkit explain`
    joins them."""
    options = {"alpha": alpha, "min_effect": min_effect, "resamples": RESAMPLES, "seed": SEED}
    if drift_check is not None:
        return explain_drift_check(store, drift_check, **options)
    if alert is not None:
        stored = get_alert(store, alert)
        if stored is None:
            raise NotFoundError(f"no alert {alert!r} in this store")
        return explain_alert(store, stored, **options)
    if candidate is None:
        raise InputError("name a candidate run, a drift check or an alert to explain")
    return explain_runs(
        store, candidate, baseline=baseline, measures=list(measures) or None, **options
    )


LOADERS: Mapping[str, Callable[..., Any]] = {
    "facts": store_facts,
    "measures": measures,
    "runs": runs,
    "overview": overview,
    "quality": quality,
    "compare": compare,
    "query_list": query_list,
    "query_detail": query_detail,
    "goldsets": goldsets,
    "drift": drift,
    "projection": projection,
    "traffic": traffic,
    "answers": answers,
    "answer_items": answer_items,
    "index_health": index_health,
    "alerts": alerts,
    "alert": alert,
    "alert_deliveries": alert_deliveries,
    "causes": causes,
}
"""Loaders by name: what the dashboard's cache calls (``evalkit.dashboard.access.load``)."""
