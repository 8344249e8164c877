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

Series. The ``latency_regression`` rule judges each run's quantile against the spread of the
quiet runs before it (``evalkit.stats.latency_series``). Over the same unchanged HTTP runs, and
over ``--series-runs`` (36) unchanged replays of ``--series-queries`` (300) queries, paused
``--pause`` (5) seconds apart so that the machine's load moves between them, through evalkit's
own Chroma (a ``chroma run`` server) and pgvector (PostgreSQL from the tests' ``pixeltable``
wheel, HNSW) retrievers, each on 5,000 random 384-dimensional vectors behind a loopback TCP
proxy: the false alarms of the rule walked over the whole series (runs that start an alert,
out of the runs judged after the warm-up), and over every 12-run stretch walked afresh (12
quiet days: the share that raised any alert). Then ``--slow-runs`` runs with the proxy holding
each request so that the median doubles, and runs back to normal: for every 12-run stretch
followed by three slow runs and one normal one, whether the rule fired on the first slow run,
stayed firing through the third and resolved on the normal one. The two-run paired bootstrap
(``compare_latency``, what the rule used before) on consecutive unchanged runs is printed
beside it: its interval covers only the sampling of queries within the two runs.

    .venv/bin/python benchmarks/latency_test.py [--queries 100000] [--runs 40] [--skip-cost]
    .venv/bin/python benchmarks/latency_test.py --skip-cost --skip-alarms   # the series only
    .venv/bin/python benchmarks/latency_test.py --simulate     # the rule on simulated series
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import math
import os
import select
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.stats
from timing import best_time

from evalkit.config import PgvectorSettings
from evalkit.embedding import ModelFingerprint
from evalkit.records import Document, Query
from evalkit.retrievers import ChromaRetriever, index_corpus, open_chroma_client
from evalkit.retrievers.chroma_client import close_client
from evalkit.retrievers.http import HttpRetriever
from evalkit.retrievers.pgvector import PgvectorRetriever
from evalkit.stats.latency import compare_latency, quantile_level
from evalkit.stats.latency_series import judge_latency_series

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from chroma_server import running_chroma
from loopback import running
from postgres_server import postgres_directory, start_postgres

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
    medians = [float(np.median(run)) for run in same]
    slower = [float(np.median(after)) for _, after in slow]
    print("\nthe rule over the same runs (p50, each run against the quiet runs before it):")
    pairs = consecutive_pairs([run.tolist() for run in same])
    series_table([("HTTP, 30 % slower", medians, slower, medians[-len(slower) :], pairs)])


DIMENSION = 384
STRETCH = 12
"""Runs of a stretch walked afresh: 12 quiet days."""


class RandomEmbedder:
    """Each text to a fixed pseudo-random unit vector of 384 dimensions (MiniLM's size): the
    index's search cost without a model to load; query embedding is not timed anyway."""

    name = "random-384"
    dimension = DIMENSION
    fingerprint = ModelFingerprint(name, DIMENSION, "0" * 16)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            vector = np.random.default_rng(seed).normal(size=DIMENSION)
            rows.append(vector / np.linalg.norm(vector))
        return np.asarray(rows, dtype=np.float32)


class DelayProxy:
    """A loopback TCP proxy to ``upstream`` (a port) that holds each chunk a client sends for
    ``delay`` seconds: the same service made slower in front of it."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.delay = 0.0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            for one in (client, server):
                one.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        with client, server:
            while True:
                ready, _, _ = select.select([client, server], [], [])
                for source in ready:
                    data = source.recv(65536)
                    if not data:
                        return
                    if source is client and self.delay:
                        time.sleep(self.delay)
                    (server if source is client else client).sendall(data)

    def close(self) -> None:
        self._listener.close()


def replay_medians(
    retrieve: Callable[[], list[float]], runs: int, pause: float
) -> tuple[list[float], float]:
    """The p50 of ``runs`` replays, ``pause`` seconds apart, and the distinct values' share."""
    medians, distinct = [], []
    for number in range(runs):
        if number:
            time.sleep(pause)
        latencies = retrieve()
        medians.append(float(np.median(latencies)))
        distinct.append(len(set(latencies)) / len(latencies))
    return medians, float(np.mean(distinct))


def slowed_and_back(
    proxy: DelayProxy, retrieve: Callable[[], list[float]], quiet: list[float], args: Any
) -> tuple[list[float], list[float]]:
    """``--slow-runs`` replays with the proxy's delay set so that the median doubles (one
    calibrating replay first), then three back to normal."""
    level = float(np.median(quiet))
    proxy.delay = level / 1000.0
    added = float(np.median(retrieve())) - level
    proxy.delay = max(0.0, proxy.delay * level / added) if added > 0 else proxy.delay
    slow, _ = replay_medians(retrieve, args.slow_runs, args.pause)
    proxy.delay = 0.0
    back, _ = replay_medians(retrieve, 3, args.pause)
    return slow, back


def series_table(rows: Sequence[tuple[str, list[float], list[float], list[float], str]]) -> None:
    """The rule's false alarms and detections over each path's series (p50, defaults)."""
    print(
        "| path | runs judged: false alarms | 12-run stretches with an alarm | slow run "
        "against the stretch before: fired on the first | firing through the third | "
        "of those, resolved on the next normal run | two-run bootstrap, consecutive "
        "unchanged pairs: regression (what the rule compared before) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, quiet, slow, back, pairs in rows:
        walked = judge_latency_series(quiet, quantile="p50")
        judged = [verdict for verdict in walked if verdict.comparison is not None]
        started = sum(
            verdict.firing and not (position and walked[position - 1].firing)
            for position, verdict in enumerate(walked)
        )
        stretches = [quiet[start : start + STRETCH] for start in range(len(quiet) - STRETCH + 1)]
        alarmed = sum(
            any(verdict.firing for verdict in judge_latency_series(stretch, quantile="p50"))
            for stretch in stretches
        )
        fired = stayed = resolved = 0
        for number, stretch in enumerate(stretches):
            three = [slow[(number + shift) % len(slow)] for shift in range(3)]
            walk = judge_latency_series(
                [*stretch, *three, back[number % len(back)]], quantile="p50"
            )
            fired += walk[STRETCH].firing
            held = all(verdict.firing for verdict in walk[STRETCH : STRETCH + 3])
            stayed += held
            resolved += held and not walk[-1].firing
        ratio = float(np.median(slow)) / float(np.median(quiet))
        spread = float(np.std(np.log(quiet), ddof=1))
        print(
            f"| {name} (p50 {np.median(quiet):.3g} ms, +/-{spread:.0%} run to run; slow "
            f"x{ratio:.2f}) | {started}/{len(judged)} = {wilson(started, len(judged))} | "
            f"{alarmed}/{len(stretches)} | {fired}/{len(stretches)} | "
            f"{stayed}/{len(stretches)} | {resolved}/{stayed} | "
            f"{pairs} |"
        )


def consecutive_pairs(runs: list[list[float]]) -> str:
    """Regressions of ``compare_latency`` (p50, gate defaults, unpaired ids kept: the same
    queries) over consecutive unchanged runs."""
    series = [pd.Series(run, index=[f"q{i}" for i in range(len(run))]) for run in runs]
    decisions = [
        compare_latency(a, b, quantile="p50", resamples=2000).decision.value
        for a, b in itertools.pairwise(series)
    ]
    hits = decisions.count("regression")
    return (
        f"{hits}/{len(decisions)} = {wilson(hits, len(decisions))} "
        f"({decisions.count('inconclusive')} inconclusive)"
    )


Replayed = tuple[list[float], list[float], list[float], str]
"""A path's unchanged runs' p50s, its slow and back runs' and its consecutive pairs' figure."""


def chroma_path(args: argparse.Namespace, queries: list[Query]) -> Replayed:
    embedder = RandomEmbedder()
    documents = [Document(f"d{i}", f"document {i}") for i in range(args.documents)]
    with tempfile.TemporaryDirectory() as base, running_chroma(Path(base)) as server:
        client = open_chroma_client(url=server.url)
        try:
            index_corpus(client, documents, embedder, collection_name="latency-bench")
        finally:
            close_client(client)
        proxy = DelayProxy(int(server.url.rsplit(":", 1)[1]))
        with ChromaRetriever.server(
            f"http://127.0.0.1:{proxy.port}", "latency-bench", embedder
        ) as retriever:
            return replay_path("Chroma", retriever, queries, proxy, args)


def pgvector_path(args: argparse.Namespace, queries: list[Query]) -> Replayed:
    embedder = RandomEmbedder()
    vectors = embedder.embed([f"document {i}" for i in range(args.documents)])
    directory = postgres_directory()
    server = start_postgres(directory / "pgdata")
    try:
        with server.connect() as conn:
            conn.execute(
                f"CREATE TABLE docs (doc_id text PRIMARY KEY, embedding vector({DIMENSION}))"
            )
            with conn.cursor() as cursor, cursor.copy("COPY docs FROM STDIN") as copy:
                for number, vector in enumerate(vectors):
                    copy.write_row((f"d{number}", "[" + ",".join(map(str, vector)) + "]"))
            conn.execute("CREATE INDEX ON docs USING hnsw (embedding vector_cosine_ops)")
            conn.execute("ANALYZE docs")
        proxy = DelayProxy(server.port)
        settings = PgvectorSettings(
            dsn=f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres",
            table="docs",
            id_column="doc_id",
        )
        with PgvectorRetriever(settings, embedder) as retriever:
            return replay_path("pgvector", retriever, queries, proxy, args)
    finally:
        with contextlib.suppress(Exception):
            server.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)


def replay_path(
    name: str, retriever: Any, queries: list[Query], proxy: DelayProxy, args: argparse.Namespace
) -> Replayed:
    runs: list[list[float]] = []

    def retrieve() -> list[float]:
        answered = retriever.retrieve(queries, 10)
        failed = [result.error for result in answered if not result.ok]
        if failed:
            raise RuntimeError(f"{name}: {len(failed)} queries failed: {failed[0]}")
        latencies = [result.latency_ms for result in answered]
        runs.append(latencies)
        return latencies

    retrieve()  # connections and the index's pages warm up; not counted
    runs.clear()
    started, load = time.perf_counter(), os.getloadavg()[0]
    quiet, distinct = replay_medians(retrieve, args.series_runs, args.pause)
    pairs = consecutive_pairs(runs)
    slow, back = slowed_and_back(proxy, retrieve, quiet, args)
    proxy.close()
    print(
        f"{name}: {args.series_runs} unchanged runs of {len(queries)} queries, "
        f"{time.perf_counter() - started:.0f} s, load average {load:.1f} before and "
        f"{os.getloadavg()[0]:.1f} after; distinct latencies per run {distinct:.0%}; "
        f"p50s {', '.join(f'{value:.2f}' for value in quiet)}; slow "
        f"{', '.join(f'{value:.2f}' for value in slow)}; back "
        f"{', '.join(f'{value:.2f}' for value in back)} ms"
    )
    return quiet, slow, back, pairs


def series(args: argparse.Namespace) -> None:
    queries = [Query(id=f"q{i}", text=f"query {i}") for i in range(args.series_queries)]
    rows = []
    for name, path in (("Chroma", chroma_path), ("pgvector", pgvector_path)):
        if name.lower() in args.skip_paths:
            continue
        rows.append((f"{name}, 2x slower", *path(args, queries)))
    print("\nthe rule (p50, defaults: warm-up 5, reference 10 runs, allowed +20 %):")
    series_table(rows)


SLOWDOWN = np.array([1.0] * 10 + [2.0] * 3 + [1.0] * 2)
"""Ten quiet days, three 2x slower, two back to normal."""


def simulate(args: argparse.Namespace) -> None:
    """The rule on simulated series: each day's p50 a quiet level times a lognormal
    day-to-day factor of the given spread."""
    rng = np.random.default_rng(0)
    n = args.simulated
    print(
        f"\nsimulated series ({n:,} per spread): | spread | 12 quiet days: any alert | "
        "3 days 2x slower after 10 quiet: fired and held | next normal day: resolved |"
    )
    for spread in (0.05, 0.1, 0.15, 0.2, 0.3):
        alarmed = held = resolved = 0
        for _ in range(n):
            quiet = np.exp(rng.normal(0.0, spread, STRETCH)).tolist()
            alarmed += any(v.firing for v in judge_latency_series(quiet, quantile="p50"))
            days = np.exp(rng.normal(0.0, spread, len(SLOWDOWN))) * SLOWDOWN
            walk = judge_latency_series(days.tolist(), quantile="p50")
            held += all(verdict.firing for verdict in walk[10:13])
            resolved += not walk[13].firing
        print(f"| {spread:.0%} | {alarmed / n:.3f} | {held / n:.3f} | {resolved / n:.3f} |")


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
    parser.add_argument("--series-runs", type=int, default=36)
    parser.add_argument("--series-queries", type=int, default=300)
    parser.add_argument("--documents", type=int, default=5000)
    parser.add_argument("--pause", type=float, default=5.0)
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--skip-alarms", action="store_true")
    parser.add_argument("--skip-series", action="store_true")
    parser.add_argument("--skip-paths", nargs="*", default=[], choices=["chroma", "pgvector"])
    parser.add_argument("--simulate", action="store_true", help="the simulated series only")
    parser.add_argument("--simulated", type=int, default=2000)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.simulate:
        simulate(args)
        return
    if not args.skip_cost:
        cost(args)
    if not args.skip_alarms:
        false_alarms(args)
    if not args.skip_series:
        series(args)


if __name__ == "__main__":
    main()
