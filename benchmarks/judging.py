"""Relevance judging speed: ``judge_pairs`` against a loopback endpoint of fixed capacity.

The endpoint is an OpenAI-compatible chat-completions server (a threaded ``http.server``
with HTTP/1.1 keep-alive and TCP_NODELAY, in a child process so that its CPU is not
evalkit's): it serves at most ``--slots`` calls at once, each taking ``--service-ms``, so
its capacity, the floor of any judging pass, is ``slots / service time`` judgments per
second. It reads the query and passage back out of evalkit's prompt and answers a grade
fixed by a hash of the pair. (``http.server`` leaves Nagle's algorithm on by default: its
headers and body, written apart, then wait for the client's delayed ACK, about 45 ms a
call on loopback; real servers such as uvicorn set TCP_NODELAY, and so does this one.)

Each measurement judges ``--pairs`` distinct pairs (ten passages of ~600 characters per
query) through ``evalkit.pipeline.judge_pairs`` into a fresh store opened with
``Store.open``, with ``concurrency`` equal to the endpoint's slots. It prints:

- **throughput**, per service time: judgments/s and the ratio to the endpoint's capacity
  (the target: at least 0.90); the share of the pass's wall time spent in pool writes
  (``save_assessments``, timed by wrapping it where ``judge_pairs`` calls it: it runs in
  the event loop's thread, so while it runs no call is sent and no reply read); the peer,
  a bare ``openai.AsyncOpenAI`` loop sending the same prompts under an
  ``asyncio.Semaphore`` of the same size (no guard, no pool), over half the pairs; the
  most calls the endpoint saw in flight; evalkit's and the endpoint's CPU per judgment,
  and how many cores the two processes kept busy;
- **CPU per judgment**: this process's CPU time (all threads: asyncio, the openai client,
  DuckDB) per judgment against an endpoint of service time 0, of which the pool writes;
  beside it the bare openai client's CPU per call and the floor of a raw
  ``httpx.AsyncClient`` posting the same request bodies; and the ceiling that CPU sets on
  one core (the event loop's thread does it all), against each endpoint's capacity;
- **pool hits**: a second ``judge_pairs`` over the same pairs, all in the pool: wall time
  per pair and the requests the endpoint received (must be 0).

The clocks start after a short warm-up pass (imports of openai and DuckDB's first query
are paid once per process and are not in the per-judgment figures). ``--profile`` runs
cProfile over one judging pass against the zero-service-time endpoint and prints the
functions that cost most.

    .venv/bin/python benchmarks/judging.py [--pairs 2000] [--slots 8] [--service-ms 20,50,100]
    .venv/bin/python benchmarks/judging.py --quick
    .venv/bin/python benchmarks/judging.py --profile
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import importlib
import io
import json
import os
import pstats
import random
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai

from evalkit.config import JudgeSettings
from evalkit.judging.assessor import RelevanceAssessor, parse_reply, prompt_messages
from evalkit.judging.records import Assessment, JudgePair
from evalkit.pipeline import judge_pairs
from evalkit.records.requests import JudgingRequest
from evalkit.store import Store

TARGET = 0.90
"""Judgments/s over the endpoint's capacity that a judging pass should reach."""
FLUSH_EVERY = 32
"""Assessments per pool write, as ``judge_pairs`` flushes them."""
MODEL = "grader-1"
WORDS = [
    *("how", "do", "i", "reset", "my", "password", "billing", "invoice", "refund", "policy"),
    *("travel", "expense", "report", "quarterly", "revenue", "error", "upstream", "service"),
    *("unavailable", "account", "locked", "export", "data", "delete", "user", "api", "key"),
    *("rotate", "token", "limit", "quota", "plan", "upgrade", "downgrade", "sso", "saml"),
]
POOL_WORKFLOW = importlib.import_module(judge_pairs.__module__)
"""The module of ``judge_pairs``, whose pool writes are timed (``timed_pool_writes``)."""
_PAIR = re.compile(r"Query: (?P<query>.*?)\n\nPassage: (?P<passage>.*?)\n\nReply with", re.S)


def make_pairs(n: int, *, seed: int = 0, prefix: str = "q") -> list[JudgePair]:
    """``n`` distinct pairs: ten passages of ~600 characters for each query."""
    rng = random.Random(seed)
    pairs = []
    for number in range(n):
        query_number = number // 10
        query = f"{prefix}{query_number}: " + " ".join(
            random.Random(query_number).choice(WORDS) for _ in range(8)
        )
        text = f"passage {number}: " + " ".join(rng.choice(WORDS) for _ in range(90))
        pairs.append(JudgePair(query, f"d{number}", text, query_id=f"q{query_number}"))
    return pairs


# -- the endpoint, in its own process -------------------------------------------------------


class _Server(ThreadingHTTPServer):
    """A threaded server whose listen backlog takes every client connecting at once
    (socketserver's default of 5 makes the rest retry their SYN a second later)."""

    daemon_threads = True
    request_queue_size = socket.SOMAXCONN


def serve(slots: int, service: float, keep_alive: bool) -> None:
    """Serve chat completions on a free loopback port, printing the port first: at most
    ``slots`` calls at once, each ``service`` seconds; ``GET /stats`` says what it saw."""
    gate = threading.BoundedSemaphore(slots)
    lock = threading.Lock()
    stats: dict[str, float] = {"requests": 0, "in_flight": 0, "max_in_flight": 0, "connections": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"
        disable_nagle_algorithm = True

        def setup(self) -> None:
            super().setup()
            with lock:
                stats["connections"] += 1

        def send(self, status: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            with lock:
                self.send(200, {**stats, "cpu": usage.ru_utime + usage.ru_stime})

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            match = _PAIR.search(str(request["messages"][-1]["content"]))
            if match is None:
                self.send(400, {"error": {"message": "no query and passage in the prompt"}})
                return
            with gate:
                with lock:
                    stats["requests"] += 1
                    stats["in_flight"] += 1
                    stats["max_in_flight"] = max(stats["max_in_flight"], stats["in_flight"])
                if service:
                    time.sleep(service)
                with lock:
                    stats["in_flight"] -= 1
            digest = hashlib.sha256((match["query"] + "\x1f" + match["passage"]).encode())
            grade = digest.digest()[0] % 4
            content = json.dumps({"grade": grade, "reason": f"graded {grade}"})
            self.send(
                200,
                {
                    "id": "chatcmpl-bench",
                    "object": "chat.completion",
                    "created": 0,
                    "model": MODEL,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 300, "completion_tokens": 12, "total_tokens": 312},
                },
            )

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


@dataclass
class Endpoint:
    """A running endpoint: its ``/v1`` base URL, capacity, and its process."""

    url: str
    slots: int
    service: float
    process: subprocess.Popen[bytes]

    @property
    def capacity(self) -> float:
        """Judgments per second it can serve (infinite at service time 0)."""
        return self.slots / self.service if self.service else float("inf")

    def stats(self) -> dict[str, float]:
        """What the server has seen so far, and its process's CPU seconds."""
        with urllib.request.urlopen(self.url.removesuffix("/v1") + "/stats", timeout=10) as r:
            result: dict[str, float] = json.loads(r.read())
        return result

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def start_endpoint(slots: int, service: float, keep_alive: bool) -> Endpoint:
    """Start the endpoint in a child process and wait for its port."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(slots), str(service), str(int(keep_alive))],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return Endpoint(f"http://127.0.0.1:{port}/v1", slots, service, process)


# -- measurements ---------------------------------------------------------------------------


def cpu_seconds() -> float:
    """CPU time this process has used, all its threads: user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class WriteClock:
    """Pool writes of one pass: how many, their wall and CPU seconds."""

    calls: int = 0
    seconds: float = 0.0
    cpu: float = 0.0


@contextmanager
def timed_pool_writes() -> Iterator[WriteClock]:
    """Time every pool write ``judge_pairs`` makes for the block. It writes from
    ``on_assessed``, in the event loop's thread: while a write runs, no judge call is sent
    and no reply is read, so its wall time is time the endpoint may sit idle."""
    clock = WriteClock()
    original = getattr(POOL_WORKFLOW, "save_assessments", None)
    if original is None:
        raise SystemExit(
            f"{POOL_WORKFLOW.__name__} no longer writes the pool through save_assessments: "
            "point timed_pool_writes at what it calls now"
        )

    def timed(store: Store, assessments: Sequence[Assessment]) -> int:
        began, cpu_began = time.perf_counter(), cpu_seconds()
        try:
            return original(store, assessments)
        finally:
            clock.calls += 1
            clock.seconds += time.perf_counter() - began
            clock.cpu += cpu_seconds() - cpu_began

    POOL_WORKFLOW.save_assessments = timed
    try:
        yield clock
    finally:
        POOL_WORKFLOW.save_assessments = original


@dataclass(frozen=True)
class Pass:
    """One measured pass: wall and CPU seconds, judgments made; the requests the endpoint
    got, the most it saw in flight, the connections opened, its CPU seconds; the pool
    writes (evalkit's passes only)."""

    seconds: float
    cpu: float
    judged: int
    requests: int
    max_in_flight: int
    connections: int
    endpoint_cpu: float
    writes: WriteClock

    @property
    def rate(self) -> float:
        return self.judged / self.seconds

    def per_judgment_ms(self, seconds: float) -> float:
        return 1000 * seconds / max(self.judged, 1)


def assessor_for(endpoint: Endpoint, concurrency: int) -> RelevanceAssessor:
    settings = JudgeSettings(
        base_url=endpoint.url,
        model=MODEL,
        api_key_env=None,
        concurrency=concurrency,
        retry_backoff=0,
        timeout=60,
    )
    return RelevanceAssessor(settings)


def measured(endpoint: Endpoint, run: Callable[[], int]) -> Pass:
    """Run ``run()`` (returning the number judged), timed, with the endpoint's counters
    read before and after."""
    before = endpoint.stats()
    with timed_pool_writes() as writes:
        began, cpu_began = time.perf_counter(), cpu_seconds()
        judged = run()
        seconds, cpu = time.perf_counter() - began, cpu_seconds() - cpu_began
    after = endpoint.stats()
    return Pass(
        seconds=seconds,
        cpu=cpu,
        judged=judged,
        requests=int(after["requests"] - before["requests"]),
        max_in_flight=int(after["max_in_flight"]),
        connections=int(after["connections"] - before["connections"]),
        endpoint_cpu=after["cpu"] - before["cpu"],
        writes=writes,
    )


def evalkit_pass(
    endpoint: Endpoint, store: Store, pairs: Sequence[JudgePair], concurrency: int
) -> Pass:
    """``judge_pairs`` over ``pairs`` into ``store``."""
    assessor = assessor_for(endpoint, concurrency)

    def run() -> int:
        outcome = judge_pairs(store, pairs, assessor, JudgingRequest())
        if outcome.n_unjudged:
            raise SystemExit(f"{outcome.n_unjudged} pairs unjudged: {dict(outcome.unjudged)}")
        return outcome.n_judged

    return measured(endpoint, run)


async def _bare(endpoint: Endpoint, pairs: Sequence[JudgePair], concurrency: int) -> int:
    gate = asyncio.Semaphore(concurrency)
    client = openai.AsyncOpenAI(base_url=endpoint.url, api_key="not-set", max_retries=0)

    async def one(pair: JudgePair) -> int:
        async with gate:
            response = await client.chat.completions.create(
                model=MODEL, messages=prompt_messages(pair), temperature=0.0, max_tokens=256
            )
        return parse_reply(response.choices[0].message.content or "")[0]

    try:
        grades = await asyncio.gather(*(one(pair) for pair in pairs))
    finally:
        await client.close()
    return len(grades)


def bare_pass(endpoint: Endpoint, pairs: Sequence[JudgePair], concurrency: int) -> Pass:
    """The peer: the openai client alone, the same prompts, ``concurrency`` in flight."""
    return measured(endpoint, lambda: asyncio.run(_bare(endpoint, pairs, concurrency)))


async def _raw(endpoint: Endpoint, pairs: Sequence[JudgePair], concurrency: int) -> int:
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=endpoint.url, limits=limits, timeout=60) as client:

        async def one(pair: JudgePair) -> int:
            body = {
                "model": MODEL,
                "messages": prompt_messages(pair),
                "temperature": 0.0,
                "max_tokens": 256,
            }
            async with gate:
                response = await client.post("/chat/completions", json=body)
            content = response.json()["choices"][0]["message"]["content"]
            return parse_reply(content)[0]

        grades = await asyncio.gather(*(one(pair) for pair in pairs))
    return len(grades)


def raw_pass(endpoint: Endpoint, pairs: Sequence[JudgePair], concurrency: int) -> Pass:
    """The floor of any Python client: raw ``httpx`` posts of the same request bodies."""
    return measured(endpoint, lambda: asyncio.run(_raw(endpoint, pairs, concurrency)))


def profile_pass(
    endpoint: Endpoint, store: Store, pairs: Sequence[JudgePair], concurrency: int
) -> None:
    """Print the functions that cost most over one profiled ``judge_pairs`` pass, and the
    share of its wall time spent in pool writes."""
    assessor = assessor_for(endpoint, concurrency)
    profiler = cProfile.Profile()
    began = time.perf_counter()
    profiler.enable()
    judge_pairs(store, pairs, assessor, JudgingRequest())
    profiler.disable()
    seconds = time.perf_counter() - began
    stats = pstats.Stats(profiler)
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        stats.stream = out  # type: ignore[attr-defined]
        stats.sort_stats(order).print_stats(25)
        print(f"\n-- cProfile, {len(pairs):,} judgments, by {order} --")
        print(out.getvalue().split("\n\n", 2)[-1].rstrip())
    print(f"\nthe pass took {seconds:.2f} s under the profiler")
    for (path, _, function), row in stats.stats.items():  # type: ignore[attr-defined]
        if function in ("save_assessments", "_build_request", "_async_transform_recursive"):
            calls, cumulative = row[0], row[3]
            print(
                f"  {function} ({Path(path).name}): {calls:,} calls, {cumulative:.2f} s "
                f"cumulative ({cumulative / seconds:.0%} of the pass)"
            )


# -- the report -----------------------------------------------------------------------------


def main() -> None:
    """Start the endpoints, measure, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000, help="pairs a throughput pass")
    parser.add_argument("--slots", type=int, default=8, help="calls the endpoint serves at once")
    parser.add_argument(
        "--service-ms", default="20,50,100", help="service times per call, comma-separated"
    )
    parser.add_argument("--no-bare", action="store_true", help="skip the bare-client peer")
    parser.add_argument(
        "--no-keep-alive", action="store_true", help="the endpoint closes each connection"
    )
    parser.add_argument("--quick", action="store_true", help="400 pairs, 50 ms only")
    parser.add_argument("--profile", action="store_true", help="cProfile one pass, then stop")
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        slots, service, keep_alive = options.serve
        serve(int(slots), float(service), keep_alive == "1")
        return
    if options.quick:
        options.pairs, options.service_ms = 400, "50"
    services = [float(ms) / 1000 for ms in options.service_ms.split(",")]
    slots, n = options.slots, options.pairs
    keep_alive = not options.no_keep_alive
    pairs = make_pairs(n)
    half = pairs[: max(n // 2, 4 * FLUSH_EVERY)]
    warm = make_pairs(2 * slots, seed=1, prefix="warm-up ")

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="evalkit-judging-bench-") as scratch:
        work = Path(scratch)
        fast = start_endpoint(slots, 0.0, keep_alive)
        try:
            with Store.open(work / "warm.duckdb") as store:
                evalkit_pass(fast, store, warm, slots)
                bare_pass(fast, warm, slots)
                raw_pass(fast, warm, slots)
            if options.profile:
                with Store.open(work / "profile.duckdb") as store:
                    profile_pass(fast, store, pairs, slots)
                return
            with Store.open(work / "cpu.duckdb") as store:
                cpu_evalkit = evalkit_pass(fast, store, half, slots)
            cpu_bare = bare_pass(fast, half, slots)
            cpu_raw = raw_pass(fast, half, slots)
        finally:
            fast.stop()

        rows = []
        hit: tuple[Pass, float] | None = None
        for service in services:
            endpoint = start_endpoint(slots, service, keep_alive)
            try:
                with Store.open(work / f"pool-{service}.duckdb") as store:
                    ours = evalkit_pass(endpoint, store, pairs, slots)
                    if hit is None:
                        hit = evalkit_pass(endpoint, store, pairs, slots), service
                peer = None if options.no_bare else bare_pass(endpoint, half, slots)
            finally:
                endpoint.stop()
            rows.append((endpoint, ours, peer))
    load_after = os.getloadavg()

    connection = "keep-alive" if keep_alive else "a connection per call"
    print(
        f"endpoint: {slots} slots, {connection}, in its own process; evalkit: judge_pairs over "
        f"{n:,} distinct pairs into a fresh store, concurrency {slots}; peer: a bare "
        f"openai.AsyncOpenAI loop, {len(half):,} pairs, {slots} in flight"
    )
    print()
    print(f"throughput (target: evalkit >= {TARGET:.2f} of the endpoint's capacity)")
    print(
        f"{'service':>8} {'capacity':>9} {'evalkit':>9} {'ratio':>6} {'in writes':>9}"
        f" {'bare openai':>11} {'ratio':>6} {'max in flight':>13} {'CPU ms/judgment':>15}"
        f" {'endpoint ms':>11} {'cores busy':>10}"
    )
    for endpoint, ours, peer in rows:
        ratio = ours.rate / endpoint.capacity
        bare = f"{peer.rate:>9,.0f}/s" if peer else f"{'-':>11}"
        bare_ratio = f"{peer.rate / endpoint.capacity:>6.2f}" if peer else f"{'-':>6}"
        print(
            f"{endpoint.service * 1000:>6.0f}ms {endpoint.capacity:>7,.0f}/s {ours.rate:>7,.0f}/s"
            f" {ratio:>6.2f} {ours.writes.seconds / ours.seconds:>9.0%} {bare} {bare_ratio}"
            f" {ours.max_in_flight:>13} {ours.per_judgment_ms(ours.cpu):>15.2f}"
            f" {ours.per_judgment_ms(ours.endpoint_cpu):>11.2f}"
            f" {(ours.cpu + ours.endpoint_cpu) / ours.seconds:>10.2f}"
            + ("" if ratio >= TARGET else "  below target")
        )
    print(
        "  in writes: share of the pass's wall time inside the pool writes (on the pool "
        "writer's thread, beside the event loop); endpoint ms: the endpoint process's CPU per call"
    )
    print()
    print("evalkit's CPU per judgment (endpoint of service time 0, in its own process)")
    ours_ms = cpu_evalkit.per_judgment_ms(cpu_evalkit.cpu)
    bare_ms = cpu_bare.per_judgment_ms(cpu_bare.cpu)
    writes = cpu_evalkit.writes
    print(
        f"  judge_pairs: {ours_ms:.2f} ms CPU a judgment, {len(half):,} judgments at "
        f"{cpu_evalkit.rate:,.0f}/s ({cpu_evalkit.connections} connections opened)"
    )
    print(
        f"    of which pool writes: {cpu_evalkit.per_judgment_ms(writes.cpu):.2f} ms "
        f"({writes.calls} calls of save_assessments, {1000 * writes.cpu / writes.calls:.0f} ms "
        f"CPU and {1000 * writes.seconds / writes.calls:.0f} ms wall each)"
    )
    print(
        f"  peer, bare openai client: {bare_ms:.2f} ms CPU a call ({cpu_bare.rate:,.0f}/s); "
        f"evalkit {ours_ms / bare_ms:.2f}x, {ours_ms - bare_ms:.2f} ms more a judgment"
    )
    raw_ms = cpu_raw.per_judgment_ms(cpu_raw.cpu)
    print(f"  floor, raw httpx posts of the same bodies: {raw_ms:.2f} ms CPU a call")
    endpoint_ms = cpu_evalkit.per_judgment_ms(cpu_evalkit.endpoint_cpu)
    print(f"  the endpoint's own CPU (not counted above): {endpoint_ms:.2f} ms a call")
    print(
        f"  ceiling on one core (the event loop's thread): evalkit {1000 / ours_ms:,.0f} "
        f"judgments/s, bare openai {1000 / bare_ms:,.0f}/s; at each endpoint's capacity "
        "evalkit would keep "
        + ", ".join(
            f"{endpoint.capacity * ours_ms / 1000:.2f} of a core busy at "
            f"{endpoint.service * 1000:.0f} ms"
            for endpoint, _, _ in rows
        )
    )
    print()
    assert hit is not None
    again, service = hit
    print(f"pool hits: a second judge_pairs over the same {n:,} pairs (all in the pool)")
    print(
        f"  {1e6 * again.seconds / n:.1f} us a pair ({1000 * again.seconds:.0f} ms in all), "
        f"{again.requests} requests received by the endpoint (must be 0), {again.judged} judged"
    )
    print()
    print(
        f"load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after, on "
        f"{os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
