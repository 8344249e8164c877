"""The latency test: its cost on two 100,000-query runs, and its false-alarm rate on repeated
runs of one loopback retriever.

Cost. Two synthetic runs of ``--queries`` queries (a per-query difficulty, lognormal, times
independent lognormal noise per run; the candidate 5 % slower), compared at p50 and p95:

* evalkit: ``evalkit.stats.latency.compare_latency`` (paired bootstrap of the quantile ratio,
  the resamples never materialised);
* scipy 1.x: ``scipy.stats.bootstrap((base, cand), statistic, paired=True,
  vectorized=True, method="percentile")`` on the same statistic, the ratio of the two
  quantiles, drawing ``batch`` resamples at a time so that memory stays bounded.

Both with ``--resamples`` (2,000) replicates; evalkit also with its default 10,000. Prints
the times (best of ``--repeats``), the ratio and the two intervals.

False alarms. ``--runs`` (40) replays of ``--queries-replayed`` (100) queries against a
loopback HTTP retriever whose service time per query is ``--base-ms`` x (1 to 3), set with
``time.sleep``, through ``HttpRetriever`` (``--concurrency`` in flight), exactly as
``tests/test_latency_regression.py`` does; then ``--slow-runs`` (10) with the service time
30 % longer. Each consecutive pair of unchanged runs is compared at p50, p95 and p99 with
the gate's defaults (allowed increase 20 %, 95 % interval, 10,000 resamples); a
``regression`` there is a false alarm. Every pair of unchanged runs (not only consecutive
ones) gives a second, larger (but not independent) count. Each slower run against the
unchanged run before it measures the power. Rates carry 95 % Wilson intervals.

    .venv/bin/python benchmarks/latency_test.py [--queries 100000] [--runs 40] [--skip-cost]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.stats
from timing import best_time

from evalkit.records import Query
from evalkit.retrievers.http import HttpRetriever
from evalkit.stats.latency import compare_latency, quantile_level

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from loopback import running

QUANTILES = ("p50", "p95", "p99")


def wilson(hits: int, n: int) -> str:
    """``rate [low, high]``, the 95 % Wilson interval."""
    if not n:
        return "-"
    z = 1.959964
    rate = hits / n
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return f"{rate:.3f} [{max(0.0, centre - half):.3f}, {min(1.0, centre + half):.3f}]"


def cost(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(0)
    n = args.queries
    difficulty = rng.lognormal(3.0, 0.7, n)
    base = difficulty * rng.lognormal(0.0, 0.1, n)
    cand = difficulty * rng.lognormal(0.0, 0.1, n) * 1.05
    ids = [f"q{i}" for i in range(n)]
    base_series, cand_series = pd.Series(base, index=ids), pd.Series(cand, index=ids)
    print(f"cost: two runs of {n:,} queries, {args.resamples:,} resamples")
    for name in ("p50", "p95"):
        level = quantile_level(name)

        def ratio(b: np.ndarray, c: np.ndarray, axis: int = -1, *, q: float = level) -> Any:
            return np.quantile(c, q, axis=axis) / np.quantile(b, q, axis=axis)

        ours = best_time(
            lambda name=name: compare_latency(
                base_series, cand_series, quantile=name, resamples=args.resamples
            ),
            args.repeats,
        )
        ours_default = best_time(
            lambda name=name: compare_latency(base_series, cand_series, quantile=name),
            args.repeats,
        )
        batch = max(1, args.batch_elements // n)
        peer = best_time(
            lambda ratio=ratio, batch=batch: scipy.stats.bootstrap(
                (base, cand),
                ratio,
                paired=True,
                vectorized=True,
                n_resamples=args.resamples,
                batch=batch,
                method="percentile",
                random_state=np.random.default_rng(0),
            ),
            1,
        )
        ours_result = compare_latency(
            base_series, cand_series, quantile=name, resamples=args.resamples
        )
        peer_result = scipy.stats.bootstrap(
            (base, cand),
            ratio,
            paired=True,
            vectorized=True,
            n_resamples=args.resamples,
            batch=batch,
            method="percentile",
            random_state=np.random.default_rng(1),
        )
        low, high = peer_result.confidence_interval
        print(
            f"  {name}: evalkit {ours:.3f} s ({ours_default:.3f} s at 10,000 resamples), "
            f"scipy.stats.bootstrap {peer:.2f} s (batch {batch}): "
            f"**{peer / ours:.0f}x** faster; interval of the increase evalkit "
            f"[{ours_result.ci_low:+.4f}, {ours_result.ci_high:+.4f}], scipy "
            f"[{low - 1:+.4f}, {high - 1:+.4f}]"
        )


def weight(query_id: str) -> float:
    """A query's own cost, 1 to 3 times the base service time."""
    return 1.0 + 2.0 * ((int(query_id[1:]) * 37) % 100) / 100.0


class ServiceTime(BaseHTTPRequestHandler):
    """Answers ``qN`` after ``base_ms x weight x factor`` milliseconds."""

    base_ms: ClassVar[float] = 200.0
    factor: ClassVar[float] = 1.0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        query_id = str(body["query_id"])
        time.sleep(self.base_ms * weight(query_id) * self.factor / 1000.0)
        payload = json.dumps({"results": [{"id": f"d{query_id[1:]}", "score": 1.0}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


def false_alarms(args: argparse.Namespace) -> None:
    ServiceTime.base_ms = args.base_ms
    queries = [Query(id=f"q{i}", text=f"question {i}") for i in range(args.queries_replayed)]
    same: list[pd.Series] = []
    slow: list[tuple[pd.Series, pd.Series]] = []
    started = time.perf_counter()
    load_before = os.getloadavg()
    with (
        running(ServiceTime) as server,
        HttpRetriever(f"{server.url}/search", retries=0, concurrency=args.concurrency) as retriever,
    ):

        def replay() -> pd.Series:
            answered = retriever.retrieve(queries, 1)
            return pd.Series(
                [result.latency_ms for result in answered],
                index=[result.query_id for result in answered],
            )

        replay()  # connections and threads warm up; not counted
        ServiceTime.factor = 1.0
        same = [replay() for _ in range(args.runs)]
        for _ in range(args.slow_runs):
            ServiceTime.factor = 1.0
            before = replay()
            ServiceTime.factor = 1.3
            slow.append((before, replay()))
    seconds = time.perf_counter() - started
    print(
        f"\nfalse alarms: {args.runs} runs of {args.queries_replayed} queries, service "
        f"{args.base_ms:g}-{3 * args.base_ms:g} ms, {args.concurrency} in flight, "
        f"{args.slow_runs} runs 30 % slower; {seconds:.0f} s; load average "
        f"{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after on {os.cpu_count()} cores"
    )
    print(
        "| quantile | consecutive pairs: regression (false alarm) | inconclusive | "
        "all pairs: false alarm | 30 % slower: regression (power) |"
    )
    print("|---|---|---|---|---|")
    for name in QUANTILES:
        consecutive = [
            compare_latency(a, b, quantile=name).decision.value for a, b in itertools.pairwise(same)
        ]
        every = [
            compare_latency(a, b, quantile=name, resamples=2000).decision.value
            for a, b in itertools.combinations(same, 2)
        ]
        slower = [compare_latency(a, b, quantile=name) for a, b in slow]
        caught = [compared.decision.value for compared in slower]
        rises = ", ".join(
            f"{compared.increase:+.0%} [{compared.ci_low:+.0%}, {compared.ci_high:+.0%}]"
            for compared in slower
        )
        print(
            f"| {name} | {consecutive.count('regression')}/{len(consecutive)} = "
            f"{wilson(consecutive.count('regression'), len(consecutive))} | "
            f"{wilson(consecutive.count('inconclusive'), len(consecutive))} | "
            f"{every.count('regression')}/{len(every)} = "
            f"{wilson(every.count('regression'), len(every))} | "
            f"{caught.count('regression')}/{len(caught)} |"
        )
        print(f"<!-- {name}, 30 % slower runs: {rises} -->")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-elements", type=int, default=20_000_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--slow-runs", type=int, default=10)
    parser.add_argument("--queries-replayed", type=int, default=100)
    parser.add_argument("--base-ms", type=float, default=200.0)
    parser.add_argument("--concurrency", type=int, default=40)
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--skip-alarms", action="store_true")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if not args.skip_cost:
        cost(args)
    if not args.skip_alarms:
        false_alarms(args)


if __name__ == "__main__":
    main()
