"""Dashboard data loading at scale: every page's default view on a store with 2,000 runs and
1,000,000 per-query metric rows.

The store is seeded in bulk (``store.insert_frame`` inside ``store.transaction()``): 4
goldsets x 5 retrievers = 20 series of 100 runs, each run 100 queries x 5 measures (plus
its top-10 results and per-query facts), drift checks, 60 replayed traffic windows with
query embeddings, answer scorings, audits and alerts. Then, per page, it times what the
page loads on first view (cold: no cache) through the same loaders the app calls: open
the store read-only, run the loaders, close it. The budget is one second per page.

Named peer: the Quality-over-time aggregation done the way dashboards often start, by
reading the measure's per-query rows into pandas and aggregating there (per run: count and
standard deviation, checked equal to DuckDB's), against the page's own query
(``series_points_frame``, which computes that and each run's changes since the previous
one); the ratio says what aggregating in DuckDB saves.

Wall-clock times depend on what else the machine runs (the load average is printed);
the CPU column is the process's own CPU time, closer to what an idle machine would take.

Then, unless ``--no-browser``, it serves the store with ``evalkit dashboard`` and opens
every page in headless Chromium (Selenium, Debian's chromium and chromedriver; ``make
browser`` installs them): each page once cold (its loaders and figures not cached yet) and
``--repeat`` times warm, reporting per view the server time (the script runs' own time,
logged by the app through ``EVALKIT_DASHBOARD_TIMINGS``) and the time from navigation to a
finished render (see ``FINISHED_JS``), and the CPU seconds Chromium's processes spent on
the view (``browser_cpu_seconds``; on a shared machine the wall-clock render time follows
the load, the browser's CPU time much less). The budget: every page's warm view under 1 s
of server time and under 2 s to a finished render.

Run: .venv/bin/python benchmarks/dashboard.py [--store PATH] [--runs 100] [--repeat 3]
     [--pages "Overview,Quality over time"] [--no-browser] [--screenshots DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
from evalkit.dashboard import loaders, timing  # noqa: E402
from evalkit.store import Store  # noqa: E402
from evalkit.store.dashboard.quality import series_points_frame  # noqa: E402
from evalkit.store.dashboard.shared import FINISHED_STATUSES  # noqa: E402

N_GOLDSETS = 4
N_RETRIEVERS = 5
RUNS_PER_SERIES = 100
N_QUERIES = 100
MEASURES = ("ndcg@10", "recall@10", "precision@10", "mrr@10", "map@100")
TOP = 10
N_WINDOWS = 60
WINDOW_QUERIES = 500
DIMENSION = 384
BUDGET_SECONDS = 1.0
START = datetime(2026, 1, 1)


def _goldset_frames(rng: np.random.Generator) -> tuple[pd.DataFrame, ...]:
    goldsets, queries, judgments = [], [], []
    for g in range(N_GOLDSETS):
        version = f"v{g:02d}" + "0" * 62
        goldsets.append((f"gold{g}", version, "bench", START, N_QUERIES, N_QUERIES * 3))
        for q in range(N_QUERIES):
            queries.append((version, q, f"q{q:03d}", f"benchmark question {q} of set {g}"))
            for j, grade in enumerate((2, 1, 0)):
                judgments.append((version, f"q{q:03d}", f"d{q:03d}-{j}", grade))
    return (
        pd.DataFrame(
            goldsets,
            columns=["name", "version", "source", "imported_at", "n_queries", "n_judgments"],
        ),
        pd.DataFrame(queries, columns=["goldset_version", "ordinal", "query_id", "text"]),
        pd.DataFrame(judgments, columns=["goldset_version", "query_id", "doc_id", "relevance"]),
    )


def _run_frames(
    rng: np.random.Generator, runs_per_series: int = RUNS_PER_SERIES
) -> tuple[pd.DataFrame, ...]:
    n_runs = N_GOLDSETS * N_RETRIEVERS * runs_per_series
    series = np.arange(n_runs) // runs_per_series
    ordinal = np.arange(n_runs) % runs_per_series
    goldset = series // N_RETRIEVERS
    retriever = series % N_RETRIEVERS
    started = [
        START + timedelta(hours=int(o) * 24, minutes=int(s))
        for o, s in zip(ordinal, series, strict=True)
    ]
    run_ids = [f"{t:%Y%m%dT%H%M%S}-{i:06x}" for i, t in enumerate(started)]
    runs = pd.DataFrame(
        {
            "run_id": run_ids,
            "status": "complete",
            "kind": "goldset",
            "goldset_name": [f"gold{g}" for g in goldset],
            "goldset_version": [f"v{g:02d}" + "0" * 62 for g in goldset],
            "retriever_kind": "chroma-http",
            "retriever_config": [
                json.dumps({"kind": "chroma-http", "url": f"http://10.0.0.{r}:8000"})
                for r in retriever
            ],
            "collection": [f"kb{r}" for r in retriever],
            "model_name": "all-MiniLM-L6-v2",
            "model_dimension": DIMENSION,
            "model_fingerprint": ["fp-a" if o < 60 else "fp-b" for o in ordinal],
            "index_fingerprint": [f"idx-{o // 25}" for o in ordinal],
            "evalkit_version": "bench",
            "k": TOP,
            "relevance_threshold": 1,
            "measures": [list(MEASURES)] * n_runs,
            "started_at": started,
            "finished_at": [t + timedelta(minutes=5) for t in started],
            "n_queries": N_QUERIES,
            "n_failed": 0,
            "n_evaluated": N_QUERIES,
        }
    )
    level = 0.6 - 0.001 * ordinal
    values = np.clip(
        level[:, None, None] + rng.normal(0, 0.15, (n_runs, N_QUERIES, len(MEASURES))), 0, 1
    )
    query_ids = np.array([f"q{q:03d}" for q in range(N_QUERIES)], dtype=object)
    metrics = pd.DataFrame(
        {
            "run_id": np.repeat(np.array(run_ids, dtype=object), N_QUERIES * len(MEASURES)),
            "query_id": np.tile(np.repeat(query_ids, len(MEASURES)), n_runs),
            "measure": np.tile(np.array(MEASURES, dtype=object), n_runs * N_QUERIES),
            "value": values.ravel(),
        }
    )
    aggregates = pd.DataFrame(
        {
            "run_id": np.repeat(np.array(run_ids, dtype=object), len(MEASURES)),
            "measure": np.tile(np.array(MEASURES, dtype=object), n_runs),
            "value": values.mean(axis=1).ravel(),
            "n_evaluated": N_QUERIES,
            "n_total": N_QUERIES,
        }
    )
    ranks = np.arange(1, TOP + 1)
    shuffled = rng.integers(0, 5, size=(n_runs, N_QUERIES, TOP))
    docs = np.char.add(
        np.char.add("d", np.char.zfill(np.arange(N_QUERIES).astype(str), 3))[None, :, None],
        np.char.add("-", shuffled.astype(str)),
    )
    results = pd.DataFrame(
        {
            "run_id": np.repeat(np.array(run_ids, dtype=object), N_QUERIES * TOP),
            "query_id": np.tile(np.repeat(query_ids, TOP), n_runs),
            "rank": np.tile(ranks, n_runs * N_QUERIES).astype("int32"),
            "doc_id": docs.ravel().astype(object),
            "score": np.tile(1.0 - ranks / 100.0, n_runs * N_QUERIES),
        }
    )
    replayed = pd.DataFrame(
        {
            "run_id": np.repeat(np.array(run_ids, dtype=object), N_QUERIES),
            "query_id": np.tile(query_ids, n_runs),
            "latency_ms": rng.gamma(2.0, 10.0, n_runs * N_QUERIES),
            "error": None,
            "n_results": np.int32(TOP),
        }
    )
    return runs, metrics, aggregates, results, replayed


def _area_frames(rng: np.random.Generator, run_ids: list[str]) -> dict[str, pd.DataFrame]:
    frames: dict[str, pd.DataFrame] = {}
    checks = []
    for i in range(2000):
        stream = ("queries", "documents", "model", "precision")[i % 4]
        p_value = float(rng.uniform(0, 1))
        checks.append(
            {
                "check_id": f"c{i:06d}",
                "created_at": START + timedelta(hours=i),
                "stream": stream,
                "subject": f"kb{i % N_RETRIEVERS}",
                "finding": "drift" if p_value < 0.05 else "ok",
                "method": "ks",
                "statistic": float(rng.uniform(0, 1)),
                "p_value": p_value,
                "threshold": 0.05,
                "is_drift": p_value < 0.05,
                "details": "{}",
            }
        )
    frames["drift_checks"] = pd.DataFrame(checks)
    summaries, replay, embeddings = [], [], []
    for w in range(N_WINDOWS):
        run_id = f"traffic-{w:03d}"
        start = START + timedelta(days=w)
        summaries.append(
            {
                "run_id": run_id,
                "sample_id": f"sample-{w:03d}",
                "window_label": f"{start:%Y-%m-%d}",
                "window_start": start,
                "window_end": start + timedelta(days=1),
                "computed_at": start + timedelta(days=1, hours=1),
                "k": TOP,
                "compare_k": TOP,
                "rbo_p": 0.9,
                "volume": 10 * WINDOW_QUERIES,
                "n_distinct": 5 * WINDOW_QUERIES,
                "n_replayed": WINDOW_QUERIES,
                "n_failed": 0,
                "latency_p50": 20.0,
                "latency_p95": 60.0,
                "latency_p99": 90.0,
                "low_confidence_threshold": 0.4,
                "low_confidence_share": 0.1,
                "empty_share": 0.0,
                "n_compared": WINDOW_QUERIES,
                "churn": 0.2,
                "embedding_fingerprint": "fp-a",
                "n_embeddings": WINDOW_QUERIES,
            }
        )
        replay.append(
            pd.DataFrame(
                {
                    "run_id": run_id,
                    "query_id": [f"t{w}-{i}" for i in range(WINDOW_QUERIES)],
                    "tenant": [f"tenant{i % 8}" for i in range(WINDOW_QUERIES)],
                    "failed": False,
                    "n_results": TOP,
                    "top1_score": rng.uniform(0.2, 0.95, WINDOW_QUERIES),
                    "overlap_at_k": rng.uniform(0.5, 1.0, WINDOW_QUERIES),
                }
            )
        )
        if w >= N_WINDOWS - 4:
            vectors = rng.normal(0.01 * w, 1.0, (WINDOW_QUERIES, DIMENSION)).astype(np.float32)
            embeddings.append(
                pd.DataFrame(
                    {
                        "run_id": run_id,
                        "window_label": f"{start:%Y-%m-%d}",
                        "ordinal": np.arange(WINDOW_QUERIES, dtype=np.int32),
                        "query_id": [f"t{w}-{i}" for i in range(WINDOW_QUERIES)],
                        "embedding": list(vectors),
                    }
                )
            )
    frames["traffic_window_summaries"] = pd.DataFrame(summaries)
    frames["traffic_replay_queries"] = pd.concat(replay, ignore_index=True)
    frames["traffic_window_embeddings"] = pd.concat(embeddings, ignore_index=True)
    n_records = 200_000
    frames["traffic_records"] = pd.DataFrame(
        {
            "query_id": [f"r{i}" for i in range(n_records)],
            "ts": [
                START + timedelta(seconds=int(s))
                for s in np.sort(rng.integers(0, N_WINDOWS * 86400, n_records))
            ],
            "text": "a production question",
            "tenant": [f"tenant{i % 8}" for i in range(n_records)],
            "latency_ms": rng.gamma(2.0, 15.0, n_records),
            "query_key": np.arange(n_records, dtype=np.uint64),
            "source": "logs/app.jsonl",
            "line": np.arange(n_records),
            "ingested_at": START,
        }
    )
    scorings, scores = [], []
    for s in range(50):
        scoring_id = f"ans-{s:04d}"
        scorings.append(
            {
                "scoring_id": scoring_id,
                "run_id": run_ids[(s * 40) % len(run_ids)],
                "source": None,
                "started_at": START + timedelta(days=s),
                "finished_at": START + timedelta(days=s, minutes=3),
                "n_records": N_QUERIES,
                "judge_calls": N_QUERIES,
                "cache_hits": 0,
                "settings": "{}",
            }
        )
        values = rng.uniform(0, 1, N_QUERIES)
        unmeasured = rng.uniform(0, 1, N_QUERIES) < 0.05
        scores.append(
            pd.DataFrame(
                {
                    "scoring_id": scoring_id,
                    "run_id": run_ids[(s * 40) % len(run_ids)],
                    "item_id": [f"q{q:03d}" for q in range(N_QUERIES)],
                    "metric": "faithfulness",
                    "method": "offline-embedding",
                    "judge_model": "minilm",
                    "value": np.where(unmeasured, np.nan, values),
                    "unmeasured_reason": np.where(unmeasured, "no_claims", None),
                    "n_repeats": 1,
                }
            )
        )
    frames["answer_scorings"] = pd.DataFrame(scorings)
    frames["answer_scores"] = pd.concat(scores, ignore_index=True)
    audits, findings, measurements = [], [], []
    for a in range(100):
        audit_id = f"audit-{a:04d}"
        when = START + timedelta(days=a)
        collection = f"kb{a % N_RETRIEVERS}"
        audits.append(
            {
                "audit_id": audit_id,
                "collection": collection,
                "started_at": when,
                "finished_at": when,
                "n_documents": 100_000,
                "max_severity": "warning",
                "n_findings": 1,
                "evalkit_version": "bench",
            }
        )
        findings.append(
            {
                "audit_id": audit_id,
                "ordinal": 0,
                "collection": collection,
                "created_at": when,
                "kind": "near_duplicates",
                "check_name": "duplicates",
                "severity": "warning",
                "severity_rank": 1,
                "message": "near-duplicates",
                "n_affected": 20,
                "doc_ids": [f"d{i}" for i in range(20)],
                "clusters": [[f"d{i}", f"d{i + 1}"] for i in range(0, 20, 2)],
                "query_ids": [],
            }
        )
        for name in ("recall@10", "judged@10", "near_duplicate_documents"):
            measurements.append(
                {
                    "audit_id": audit_id,
                    "collection": collection,
                    "measured_at": when,
                    "check_name": "ann_recall",
                    "name": name,
                    "value": float(rng.uniform(0.8, 1.0)),
                }
            )
    frames["audits"] = pd.DataFrame(audits)
    frames["audit_findings"] = pd.DataFrame(findings)
    frames["audit_measurements"] = pd.DataFrame(measurements)
    alerts, outbox, attempts = [], [], []
    for i in range(1000):
        alert_id = f"alert-{i:05d}"
        when = START + timedelta(hours=3 * i)
        alerts.append(
            {
                "alert_id": alert_id,
                "rule": "precision-drop",
                "kind": "precision_regression",
                "dedup_key": f"precision-drop:gold{i % N_GOLDSETS}",
                "subject": f"gold{i % N_GOLDSETS}",
                "status": "firing" if i % 2 == 0 else "resolved",
                "severity": "warning",
                "title": "ndcg@10 dropped",
                "summary": "ndcg@10 0.61 -> 0.55",
                "evidence": "{}",
                "links": "{}",
                "fired_at": when,
                "created_at": when,
                "n_sinks": 1,
            }
        )
        outbox.append(
            {
                "alert_id": alert_id,
                "sink": "oncall",
                "state": "delivered",
                "attempts": 1,
                "created_at": when,
                "next_attempt_at": when,
            }
        )
        attempts.append(
            {
                "alert_id": alert_id,
                "sink": "oncall",
                "attempt": 1,
                "attempted_at": when,
                "duration_ms": 12.0,
                "ok": True,
                "status_code": 200,
            }
        )
    frames["alerts"] = pd.DataFrame(alerts)
    frames["alert_outbox"] = pd.DataFrame(outbox)
    frames["alert_delivery_attempts"] = pd.DataFrame(attempts)
    frames["job_runs"] = pd.DataFrame(
        {
            "job_run_id": [f"job-{i:05d}" for i in range(500)],
            "job": [f"nightly-gold{i % N_GOLDSETS}" for i in range(500)],
            "kind": "goldset_run",
            "trigger": "cron",
            "status": "succeeded",
            "started_at": [START + timedelta(hours=6 * i) for i in range(500)],
            "finished_at": [START + timedelta(hours=6 * i, minutes=4) for i in range(500)],
            "run_ids": [[run_ids[i % len(run_ids)]] for i in range(500)],
        }
    )
    return frames


def seed(path: Path, *, runs_per_series: int = RUNS_PER_SERIES) -> None:
    """Write the benchmark store at ``path`` in bulk (20 series of ``runs_per_series``)."""
    rng = np.random.default_rng(2026)
    goldsets, queries, judgments = _goldset_frames(rng)
    runs, metrics, aggregates, results, replayed = _run_frames(rng, runs_per_series)
    areas = _area_frames(rng, list(runs["run_id"]))
    with Store.open(path) as store, store.transaction():
        for table, frame in (
            ("goldsets", goldsets),
            ("goldset_queries", queries),
            ("judgments", judgments),
            ("runs", runs),
            ("query_metrics", metrics),
            ("run_aggregates", aggregates),
            ("run_results", results),
            ("run_queries", replayed),
            *areas.items(),
        ):
            store.insert_frame(table, frame)


def _timed(
    path: Path, work: Callable[[Store], Any], repeat: int
) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds of ``repeat`` loads (open read-only, work, close)."""
    wall, cpu = [], []
    for _ in range(repeat):
        began, began_cpu = time.perf_counter(), time.process_time()
        store = Store.open(path, read_only=True)
        try:
            work(store)
        finally:
            store.close()
        wall.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
    return wall, cpu


def page_views(store: Store) -> dict[str, Callable[[Store], Any]]:
    """What each page loads on first view, as the app calls it."""
    runs = loaders.shared.runs(store)
    newest = runs.iloc[0]
    goldset = str(newest["goldset_name"])
    same = runs[(runs["retriever"] == newest["retriever"]) & (runs["goldset_name"] == goldset)]
    windows = loaders.drift.drift(store).windows
    audits = loaders.index_health.index_health(store).audits
    scoring = str(loaders.answers.answers(store).series["scoring_id"].iloc[-1])
    alert = str(loaders.alerts.alerts(store).alerts["alert_id"].iloc[0])

    def with_facts(*steps: Callable[[Store], Any]) -> Callable[[Store], Any]:
        def view(s: Store) -> None:
            loaders.shared.store_facts(s)
            for step in steps:
                step(s)

        return view

    return {
        "Overview": with_facts(
            loaders.shared.measures, lambda s: loaders.overview.overview(s, measure="ndcg@10")
        ),
        "Quality over time": with_facts(
            lambda s: loaders.shared.measures(s, goldset=goldset),
            lambda s: loaders.shared.runs(s, goldset=goldset),
            lambda s: loaders.quality.quality(s, goldset=goldset, measure="ndcg@10"),
        ),
        "Compare runs": with_facts(
            loaders.shared.runs,
            lambda s: loaders.compare.compare(
                s,
                baseline=str(same.iloc[1]["run_id"]),
                candidate=str(same.iloc[0]["run_id"]),
                measures=["ndcg@10"],
            ),
        ),
        "Query drill-down": with_facts(
            lambda s: loaders.shared.runs(s, goldset=goldset),
            lambda s: loaders.query.query_list(s, goldset_version=str(newest["goldset_version"])),
            lambda s: loaders.query.query_detail(
                s, goldset=goldset, query_id="q000", run_id=str(newest["run_id"])
            ),
        ),
        "Goldsets": with_facts(lambda s: loaders.goldsets.goldsets(s, depth=10)),
        "Drift": with_facts(
            loaders.drift.drift,
            lambda s: loaders.drift.projection(
                s,
                reference_run=str(windows.iloc[-2]["run_id"]),
                current_run=str(windows.iloc[-1]["run_id"]),
            ),
        ),
        "Traffic": with_facts(loaders.traffic.traffic),
        "Answers": with_facts(
            loaders.answers.answers,
            lambda s: loaders.answers.answer_items(s, scoring_id=scoring, metric="faithfulness"),
        ),
        "Index health": with_facts(
            loaders.index_health.index_health,
            lambda s: loaders.index_health.index_health(
                s,
                collection=str(audits.iloc[0]["collection"]),
                audit_id=str(audits.iloc[0]["audit_id"]),
            ),
        ),
        "Alerts": with_facts(
            loaders.alerts.alerts, lambda s: loaders.alerts.alert_deliveries(s, alert_id=alert)
        ),
    }


def duckdb_series(store: Store, goldset: str) -> pd.DataFrame:
    """The Quality-over-time series as the page reads it: aggregated in DuckDB."""
    return series_points_frame(store, goldset=goldset, measure="ndcg@10")


def pandas_peer(store: Store, goldset: str) -> pd.DataFrame:
    """The same series' per-run spread (count and standard deviation of the per-query
    values) aggregated in pandas from the per-query rows of the measure: only the columns
    and rows it needs are read, and it computes no more than the DuckDB query does."""
    rows = store.fetch_frame(
        "SELECT run_id, value FROM query_metrics WHERE measure = ?", ["ndcg@10"]
    )
    runs = store.fetch_frame(
        "SELECT run_id FROM runs WHERE goldset_name = ? AND list_contains(?::VARCHAR[], status)",
        [goldset, list(FINISHED_STATUSES)],
    )
    chosen = rows.merge(runs, on="run_id")
    return chosen.groupby("run_id")["value"].agg(n="count", sd="std")


def same_spread(ours: pd.DataFrame, theirs: pd.DataFrame) -> bool:
    """Whether DuckDB's and pandas' per-run counts and deviations agree (to 1e-9)."""
    mine = ours.dropna(subset=["n"]).set_index("run_id")[["n", "sd"]].sort_index()
    theirs = theirs.sort_index()
    return (
        list(mine.index) == list(theirs.index)
        and np.array_equal(mine["n"].to_numpy(int), theirs["n"].to_numpy(int))
        and np.allclose(mine["sd"].to_numpy(float), theirs["sd"].to_numpy(float), atol=1e-9)
    )


# -- the real browser -----------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,2200",
)
RENDER_BUDGET_SECONDS = 2.0
SERVER_BUDGET_SECONDS = 1.0
PAGE_TIMEOUT_SECONDS = 180.0
STABLE_SECONDS = 0.3
FINISHED_JS = """
const [title, charts] = arguments;
if (document.readyState !== 'complete') return false;
const app = document.querySelector('[data-testid="stApp"]');
if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
if (document.querySelector('[data-testid="stStatusWidget"]')) return false;
if (document.querySelector('[data-stale="true"]')) return false;
const heading = document.querySelector('h1');
if (!heading || heading.textContent.trim() !== title) return false;
if (document.querySelectorAll('.js-plotly-plot .main-svg').length < charts) return false;
if (document.querySelector('[data-testid="stSkeleton"]')) return false;
return true;
"""
"""A finished render: the document is loaded; the app's script state (the
``data-test-script-state`` Streamlit keeps on ``stApp``) is ``notRunning``, so a script run
has been and has ended; Streamlit shows no running-script status widget and no stale
(greyed, about to be replaced) element; the page's own title is the
heading, so this page's script run has drawn; every Plotly chart the page draws on this
store has its ``.main-svg``; no element is still a loading skeleton. The condition must
still hold ``STABLE_SECONDS`` later (else waiting goes on); the time is taken when it
first held."""


@dataclass(frozen=True, slots=True)
class BrowserPage:
    """A page to open: its title (the heading), URL path with parameters, Plotly charts."""

    title: str
    path: str
    charts: int


def browser_pages(store: Store) -> dict[str, BrowserPage]:
    """Every page of the app on the benchmark store, opened as a user (or a link) would."""
    runs = loaders.shared.runs(store)
    newest = runs.iloc[0]
    goldset = str(newest["goldset_name"])
    series = runs[(runs["retriever"] == newest["retriever"]) & (runs["goldset_name"] == goldset)]
    baseline, candidate = str(series.iloc[-1]["run_id"]), str(series.iloc[0]["run_id"])
    return {
        "Overview": BrowserPage("Overview", "", 0),
        "Quality over time": BrowserPage(
            "Quality over time", f"quality?goldset={goldset}&measure=ndcg%4010", 1
        ),
        "Compare runs": BrowserPage(
            "Compare runs",
            f"compare?goldset={goldset}&baseline={baseline}&candidate={candidate}",
            0,
        ),
        "Query drill-down": BrowserPage(
            "Query drill-down", f"query?goldset={goldset}&run={candidate}&query=q000", 2
        ),
        "Goldsets": BrowserPage("Goldsets", "goldsets", 1),
        "Drift": BrowserPage("Drift", "drift", 4),
        "Traffic": BrowserPage("Traffic", "traffic", 5),
        "Answers": BrowserPage("Answers", "answers", 1),
        "Index health": BrowserPage("Index health", "index_health", 1),
        "Alerts": BrowserPage("Alerts", "alerts", 0),
    }


@contextlib.contextmanager
def serving(store: Path, timings: Path, log: Path) -> Iterator[str]:
    """`evalkit dashboard` on a free loopback port over ``store``, logging every script
    run's server time to ``timings``; yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    environment = {
        **os.environ,
        "EVALKIT_STORE_PATH": str(store),
        timing.TIMINGS_ENV: str(timings),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    with log.open("w", encoding="utf-8") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "evalkit", "dashboard", "--port", str(port)],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the dashboard did not start:\n{log.read_text()}")
            time.sleep(0.3)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium with a fresh profile, driven by chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="evalkit-bench-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def browser_cpu_seconds(driver: Any) -> float:
    """CPU seconds Chromium's processes (chromedriver's descendants, with the children they
    reaped) have used so far: the browser's own work for a view, which unlike its wall-clock
    time barely grows with what else the machine runs. Linux only (/proc)."""
    root = int(driver.service.process.pid)
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        ticks[int(entry.name)] = sum(int(value) for value in fields[11:15])
    total = 0
    for pid, used in ticks.items():
        ancestor = parents.get(pid, 0)
        while ancestor > 1 and ancestor != root:
            ancestor = parents.get(ancestor, 0)
        if ancestor == root:
            total += used
    return total / os.sysconf("SC_CLK_TCK")


def render_seconds(driver: Any, url: str, page: BrowserPage) -> float:
    """Open ``url`` and return the seconds until its render finished (``FINISHED_JS``)."""
    driver.get("about:blank")
    began = time.perf_counter()
    driver.get(url)
    return wait_finished(driver, page, began)


def wait_finished(driver: Any, page: BrowserPage, began: float) -> float:
    """Seconds from ``began`` until ``page`` finished rendering (``FINISHED_JS``)."""
    deadline = began + PAGE_TIMEOUT_SECONDS
    finished_at: float | None = None
    while time.perf_counter() < deadline:
        done = bool(driver.execute_script(FINISHED_JS, page.title, page.charts))
        now = time.perf_counter()
        if not done:
            finished_at = None
        elif finished_at is None:
            finished_at = now
        elif now - finished_at >= STABLE_SECONDS:
            return finished_at - began
        time.sleep(0.05)
    raise SystemExit(f"{page.title} did not finish rendering in {PAGE_TIMEOUT_SECONDS:.0f} s")


def in_app_seconds(driver: Any, page: BrowserPage) -> float:
    """Click ``page`` in the sidebar (the app stays loaded, as when a user moves between
    pages) and return the seconds until it finished rendering with its default choices."""
    from selenium.webdriver.common.by import By

    for link in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebarNavLink"]'):
        if link.text.splitlines()[-1:] == [page.title]:
            began = time.perf_counter()
            link.click()
            return wait_finished(driver, page, began)
    raise SystemExit(f"no sidebar link to {page.title}")


def server_seconds(timings: Path, *, page: str, since: float, wait: float = 10.0) -> float:
    """Server time of the script runs of ``page`` (its URL path) that finished after
    ``since`` (epoch seconds), waiting up to ``wait`` seconds for the first to be logged."""
    deadline = time.monotonic() + wait
    while True:
        total, found = 0.0, False
        if timings.exists():
            for line in timings.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                if entry["page"] == page and entry["finished"] >= since:
                    total += float(entry["seconds"])
                    found = True
        if found or time.monotonic() > deadline:
            return total if found else float("nan")
        time.sleep(0.1)


def browser_benchmark(
    path: Path, pages: dict[str, BrowserPage], *, repeat: int, screenshots: Path | None
) -> dict[str, dict[str, float]]:
    """Per page: server and render seconds of its first (cold) and later (warm) views."""
    directory = Path(tempfile.mkdtemp(prefix="evalkit-bench-browser-"))
    timings = directory / "timings.jsonl"
    results: dict[str, dict[str, float]] = {}
    with serving(path, timings, directory / "dashboard.log") as url, chromium() as driver:
        # One throw-away view of a stale link (it loads nothing but the store's facts): the
        # server process imports its libraries once, as any running dashboard already has.
        render_seconds(
            driver, f"{url}/query?goldset=none", BrowserPage("Query drill-down", "query", 0)
        )
        for name, page in pages.items():
            views = []
            for _ in range(1 + repeat):
                since, cpu = time.time(), browser_cpu_seconds(driver)
                seconds = render_seconds(driver, f"{url}/{page.path}", page)
                cpu = browser_cpu_seconds(driver) - cpu
                path = page.path.split("?")[0]
                views.append((server_seconds(timings, page=path, since=since), seconds, cpu))
            if screenshots is not None:
                screenshots.mkdir(parents=True, exist_ok=True)
                height = driver.execute_script(
                    "return document.querySelector('[data-testid=\"stMain\"]')"
                    "?.scrollHeight || document.body.scrollHeight"
                )
                driver.set_window_size(1400, max(1200, min(int(height) + 200, 6000)))
                time.sleep(0.5)
                driver.save_screenshot(
                    str(screenshots / f"{page.path.split('?')[0] or 'overview'}.png")
                )
                driver.set_window_size(1400, 2200)
            # Warm views within the loaded app: from another page to this one by its link.
            in_app = []
            other = next(p for n, p in pages.items() if n != name) if len(pages) > 1 else page
            for _ in range(repeat):
                if other is not page:
                    in_app_seconds(driver, other)
                since, cpu = time.time(), browser_cpu_seconds(driver)
                seconds = in_app_seconds(driver, page)
                cpu = browser_cpu_seconds(driver) - cpu
                path = page.path.split("?")[0]
                in_app.append((server_seconds(timings, page=path, since=since), seconds, cpu))
            warm = views[1:] or views
            results[name] = {
                "server_cold": views[0][0],
                "render_cold": views[0][1],
                "server_warm": statistics.median(v[0] for v in warm),
                "render_warm": statistics.median(v[1] for v in warm),
                "server_in_app": statistics.median(v[0] for v in in_app or warm),
                "render_in_app": statistics.median(v[1] for v in in_app or warm),
                "cpu_warm": statistics.median(v[2] for v in warm),
                "cpu_in_app": statistics.median(v[2] for v in in_app or warm),
            }
            row = results[name]
            print(
                f"  {name:<20} server {row['server_cold']:.2f} / {row['server_warm']:.2f} /"
                f" {row['server_in_app']:.2f} s, render {row['render_cold']:.2f} /"
                f" {row['render_warm']:.2f} / {row['render_in_app']:.2f} s"
                " (cold / warm reload / warm in-app); browser CPU"
                f" {row['cpu_warm']:.2f} / {row['cpu_in_app']:.2f} s (warm reload / in-app)",
                flush=True,
            )
    return results


def main() -> None:
    """Seed (unless --store names an existing one), time every page's loaders and its views
    in Chromium, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="Reuse (or write) the store here.")
    parser.add_argument(
        "--runs",
        type=int,
        default=RUNS_PER_SERIES,
        help=f"Runs per series when seeding (20 series; default {RUNS_PER_SERIES}).",
    )
    parser.add_argument("--repeat", type=int, default=3, help="Timed warm views per page.")
    parser.add_argument(
        "--pages", help="Comma-separated page titles to time (default: every page)."
    )
    parser.add_argument(
        "--no-browser", action="store_true", help="Time the loaders only, not Chromium."
    )
    parser.add_argument(
        "--screenshots", type=Path, help="Save a full-page screenshot of every page here."
    )
    arguments = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="evalkit-dashboard-bench-"))
    path = arguments.store or directory / "evalkit.duckdb"
    if not path.exists():
        began = time.perf_counter()
        seed(path, runs_per_series=arguments.runs)
        print(f"seeded {path} in {time.perf_counter() - began:.1f} s")
    with Store.open(path, read_only=True) as store:
        counts = store.fetch(
            "SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM query_metrics),"
            " (SELECT count(*) FROM run_results)"
        )[0]
        views = page_views(store)
        pages = browser_pages(store)
        for view in views.values():
            view(store)  # a running dashboard has imported scipy, the stats module, ... once
    if arguments.pages:
        wanted = [name.strip() for name in arguments.pages.split(",") if name.strip()]
        unknown = sorted(set(wanted) - set(views))
        if unknown:
            parser.error(f"unknown pages {unknown}; pages: {', '.join(views)}")
        views = {name: views[name] for name in wanted}
        pages = {name: pages[name] for name in wanted}
    print(f"store: {counts[0]:,} runs, {counts[1]:,} per-query metric rows, {counts[2]:,} results")
    print(
        f"load average: {', '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} cores"
    )
    loaded: dict[str, tuple[float, float]] = {}
    for name, view in views.items():
        seconds, cpu = _timed(path, view, arguments.repeat)
        loaded[name] = (seconds[0], statistics.median(cpu))
    browser: dict[str, dict[str, float]] = {}
    if not arguments.no_browser:
        print("Chromium (headless), server time and time to a finished render:")
        browser = browser_benchmark(
            path, pages, repeat=arguments.repeat, screenshots=arguments.screenshots
        )
    print()
    print(
        f"load average now: {', '.join(f'{v:.1f}' for v in os.getloadavg())}"
        " (wall-clock times grow with it)"
    )
    header = (
        f"{'page':<20} {'loaders':>8} {'loaders':>8} {'server':>7} {'server':>7} {'server':>7}"
        f" {'render':>7} {'render':>7} {'render':>7} {'browser':>8} {'browser':>8} {'warm':>7}\n"
        f"{'':<20} {'cold':>8} {'CPU':>8} {'cold':>7} {'reload':>7} {'in-app':>7}"
        f" {'cold':>7} {'reload':>7} {'in-app':>7} {'CPU rel':>8} {'CPU app':>8}"
        f" {'budget':>7}"
    )
    print(header)
    print("-" * len(header.splitlines()[0]))
    over = []
    for name, (cold, cpu) in loaded.items():
        row = browser.get(name)
        if row is None:
            print(f"{name:<20} {cold:>8.3f} {cpu:>8.3f}")
            continue
        ok = all(
            row[f"server_{view}"] < SERVER_BUDGET_SECONDS
            and row[f"render_{view}"] < RENDER_BUDGET_SECONDS
            for view in ("warm", "in_app")
        )
        if not ok:
            over.append(name)
        print(
            f"{name:<20} {cold:>8.3f} {cpu:>8.3f} {row['server_cold']:>7.2f}"
            f" {row['server_warm']:>7.2f} {row['server_in_app']:>7.2f}"
            f" {row['render_cold']:>7.2f} {row['render_warm']:>7.2f}"
            f" {row['render_in_app']:>7.2f} {row['cpu_warm']:>8.2f} {row['cpu_in_app']:>8.2f}"
            f" {'ok' if ok else 'OVER':>7}"
        )
    print(
        "cold: the page's first view after the server started (its queries and figures not"
        " cached); reload: the page's URL opened again in a fresh page load (the browser"
        " loads the app's JavaScript again); in-app: reached by its sidebar link from"
        " another page, with its default choices (the app stays loaded). browser CPU:"
        " CPU seconds of all of Chromium's processes per warm view (reload / in-app),"
        " which grows far less than wall-clock time with the machine's load."
    )
    print(
        f"budget: warm server time < {SERVER_BUDGET_SECONDS:g} s and warm render"
        f" < {RENDER_BUDGET_SECONDS:g} s per page (reload and in-app); "
        + (
            f"over: {', '.join(over)}"
            if over
            else "every page timed in the browser is within"
            if browser
            else "no page timed in the browser"
        )
    )
    if "Quality over time" in views:
        goldset = "gold0"
        with Store.open(path, read_only=True) as store:
            agree = same_spread(duckdb_series(store, goldset), pandas_peer(store, goldset))
        if not agree:
            raise SystemExit("Quality aggregation: DuckDB and the pandas peer disagree")
        ours, _ = _timed(path, lambda s: duckdb_series(s, goldset), 3)
        peer, _ = _timed(path, lambda s: pandas_peer(s, goldset), 3)
        ratio = statistics.median(peer) / statistics.median(ours)
        print(
            f"Quality aggregation: DuckDB SQL {statistics.median(ours):.3f} s vs pandas peer "
            f"{statistics.median(peer):.3f} s -> {ratio:.1f}x (per-run counts and deviations "
            "equal)"
        )


if __name__ == "__main__":
    main()
