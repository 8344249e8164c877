"""Replay at scale: the local engine against the Ray engine with 1, 2 and 4 actors, measured
against the capacity of the retriever itself.

The retriever is a loopback HTTP service with a fixed service time: ``--replicas`` service
slots (a replica answers one query at a time, sleeping ``--service-ms``), spread over
``--server-processes`` asyncio processes sharing one port. Its capacity, the floor of any
replay, is ``replicas / service time`` queries per second. The queries are synthetic (a
few words each, two judged documents), written once as a Parquet query table
(``evalkit.engines``); the service answers each with ``k`` documents derived from the
query id, so every run is scored too.

Each engine runs in a fresh process (the writer: the one process that opens the store),
so its peak RSS is its own: the local engine through ``evaluate_goldset`` (the goldset
held in memory, as today), the Ray engine through ``evaluate_query_table`` (queries and
results stay in Parquet; DuckDB loads the shards). Ray is started in the writer before
the clock starts (a local instance; its own processes are not the writer's memory); the
actors' start-up is part of each Ray run's time.

It prints, per size and engine: queries/s, the ratio to the retriever's capacity (the
target: Ray >= 80 %, where the local engine is bound by its one process's in-flight
requests, ``--http-concurrency``), the writer's peak RSS (the target: flat in the number
of queries for Ray), the run's status, and the load average.

    .venv/bin/python benchmarks/scale.py --sizes 100000,1000000 --actors 1,2,4
    .venv/bin/python benchmarks/scale.py --sizes 20000 --actors 2 --local-up-to 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

WORDS = [
    *("how", "do", "i", "reset", "my", "password", "billing", "invoice", "refund", "policy"),
    *("travel", "expense", "report", "quarterly", "revenue", "error", "upstream", "service"),
    *("unavailable", "account", "locked", "export", "data", "delete", "user", "api", "key"),
]
CORPUS = 100_000
"""Documents the synthetic service ranks from."""


def ranked(query_number: int, k: int) -> list[dict[str, object]]:
    """The service's answer for query ``query_number``: ``k`` documents, best first."""
    return [
        {"id": f"d{(query_number * 7919 + rank * 104_729) % CORPUS}", "score": 1.0 - rank / (k + 1)}
        for rank in range(k)
    ]


def write_queries(path: Path, n: int, seed: int = 0) -> None:
    """A query table of ``n`` synthetic queries; each judges two of the documents the
    service will return (ranks 1 and 4) and one it will not."""
    rng = random.Random(seed)
    ids, texts, judged, grades = [], [], [], []
    for number in range(n):
        ids.append(f"q{number:09d}")
        texts.append(" ".join(rng.choice(WORDS) for _ in range(rng.randrange(3, 9))))
        returned = [str(doc["id"]) for doc in ranked(number, 5)]
        judged.append([returned[0], returned[3], f"x{number}"])
        grades.append([2, 1, 1])
    table = pa.table(
        {
            "query_id": pa.array(ids, pa.string()),
            "text": pa.array(texts, pa.string()),
            "tenant": pa.array([None] * n, pa.string()),
            "judged_doc_ids": pa.array(judged, pa.list_(pa.string())),
            "judged_relevance": pa.array(grades, pa.list_(pa.int32())),
        }
    )
    pq.write_table(table, path, row_group_size=10_000)


# -- the retriever service ------------------------------------------------------------------


async def _serve(sock: socket.socket, slots: int, service: float) -> None:
    gate = asyncio.Semaphore(slots)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = json.loads(await reader.readexactly(length))
                async with gate:
                    await asyncio.sleep(service)
                digits = "".join(c for c in str(body.get("query_id", "")) if c.isdigit())
                number = int(digits or 0)
                payload = json.dumps({"results": ranked(number, int(body["k"]))}).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(payload)).encode()
                    + b"\r\n\r\n"
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, sock=sock, backlog=1024)
    async with server:
        await server.serve_forever()


def serve(port: int, slots: int, service: float) -> None:
    """One process of the service: ``slots`` replicas on ``port`` (SO_REUSEPORT)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    asyncio.run(_serve(sock, slots, service))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_service(
    replicas: int, processes: int, service: float
) -> tuple[str, list[subprocess.Popen[bytes]]]:
    port = free_port()
    per_process = [
        replicas // processes + (1 if i < replicas % processes else 0) for i in range(processes)
    ]
    servers = [
        subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(slots), str(service)])
        for slots in per_process
        if slots
    ]
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    return f"http://127.0.0.1:{port}/search", servers


# -- one engine run, in its own process ---------------------------------------------------


def run_child(args: argparse.Namespace) -> None:
    """Replay ``--table`` on ``--engine`` into a fresh store; print one JSON line."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from evalkit.config import Settings
    from evalkit.retrievers.factory import RetrieverOptions, build_retriever
    from evalkit.store import Store

    home = Path(args.home)
    settings = Settings(
        home=home, http_concurrency=args.http_concurrency, http_retries=0, http_timeout=30
    )
    options = RetrieverOptions(http_url=args.url)
    measures = ["ndcg@10", "recall@10", "mrr@10"]
    started_ray = 0.0
    with Store.open(home / "evalkit.duckdb", memory_limit=settings.store_memory_limit) as store:
        if args.engine == "local":
            from evalkit.goldset.model import Goldset
            from evalkit.pipeline import evaluate_goldset
            from evalkit.records import Judgment, Query
            from evalkit.records.requests import GoldsetRunRequest

            table = pq.read_table(args.table).to_pylist()
            goldset = Goldset.build(
                "scale",
                [Query(id=row["query_id"], text=row["text"]) for row in table],
                [
                    Judgment(row["query_id"], doc, grade)
                    for row in table
                    for doc, grade in zip(
                        row["judged_doc_ids"], row["judged_relevance"], strict=True
                    )
                ],
            )
            del table
            began = time.perf_counter()
            outcome = evaluate_goldset(
                store,
                goldset,
                build_retriever(options, settings),
                GoldsetRunRequest(
                    k=args.k, measures=tuple(measures), batch_size=args.batch_size, answers=False
                ),
                close_retriever=True,
            )
        else:
            import ray

            from evalkit.engines import RayEngine
            from evalkit.engines.ray import WORKER_ENV
            from evalkit.pipeline import evaluate_query_table

            os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
            ray_began = time.perf_counter()
            ray.init(
                num_cpus=args.ray_cpus,
                include_dashboard=False,
                log_to_driver=False,
                logging_level="WARNING",
                runtime_env={"env_vars": WORKER_ENV},
            )
            started_ray = time.perf_counter() - ray_began
            engine = RayEngine(
                options,
                settings,
                actors=args.actors,
                batch_size=args.batch_size,
                actor_cpus=args.actor_cpus,
            )
            began = time.perf_counter()
            outcome = evaluate_query_table(
                store, Path(args.table), engine, k=args.k, measures=measures
            )
        seconds = time.perf_counter() - began
        run = outcome.run
        print(
            json.dumps(
                {
                    "seconds": seconds,
                    "replay_seconds": outcome.timing.retriever_seconds,
                    "store_seconds": outcome.seconds_store,
                    "ray_start_seconds": started_ray,
                    "queries": run.n_queries,
                    "failed": run.n_failed,
                    "status": run.status,
                    "ndcg@10": run.aggregates.get("ndcg@10"),
                    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                }
            ),
            flush=True,
        )


def measure(
    args: argparse.Namespace, table: Path, url: str, engine: str, actors: int
) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="evalkit-scale-") as home:
        command = [
            sys.executable, __file__, "--child", "--engine", engine, "--table", str(table),
            "--url", url, "--home", home, "--actors", str(actors), "--k", str(args.k),
            "--batch-size", str(args.batch_size), "--http-concurrency", str(args.http_concurrency),
            "--actor-cpus", str(args.actor_cpus), "--ray-cpus", str(args.ray_cpus),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"the {engine} run failed (exit {done.returncode})")
    result: dict[str, object] = json.loads(lines[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="Query counts, comma-separated.")
    parser.add_argument("--actors", default="1,2,4", help="Ray actor pool sizes, comma-separated.")
    parser.add_argument("--local-up-to", type=int, default=100_000,
                        help="Run the local engine only on sizes up to this.")  # fmt: skip
    parser.add_argument("--replicas", type=int, default=16, help="Service slots of the retriever.")
    parser.add_argument("--service-ms", type=float, default=20.0, help="Service time per query.")
    parser.add_argument("--server-processes", type=int, default=2)
    parser.add_argument("--http-concurrency", type=int, default=8,
                        help="Requests in flight per client (per process, per actor).")  # fmt: skip
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--actor-cpus", type=float, default=0.25)
    parser.add_argument("--ray-cpus", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--verbose", action="store_true", help="Print each run's timings.")
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        port, slots, service = args.serve
        serve(int(port), int(slots), float(service))
        return
    if args.child:
        args.actors = int(args.actors)
        run_child(args)
        return

    service = args.service_ms / 1000
    capacity = args.replicas / service
    url, servers = start_service(args.replicas, args.server_processes, service)
    print(
        f"retriever: {args.replicas} replicas x {args.service_ms:g} ms = "
        f"{capacity:,.0f} queries/s; "
        f"k {args.k}; {args.http_concurrency} requests in flight per client; "
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{'queries':>9} {'engine':>8} {'seconds':>8} {'queries/s':>10} {'capacity':>8} "
          f"{'writer RSS':>10} {'status':>8} {'ndcg@10':>8} {'load':>5}")  # fmt: skip
    try:
        with tempfile.TemporaryDirectory(prefix="evalkit-scale-") as scratch:
            for size in [int(value) for value in args.sizes.split(",")]:
                table = Path(scratch) / f"queries-{size}.parquet"
                write_queries(table, size)
                runs = [("local", 1)] if size <= args.local_up_to else []
                runs += [("ray", int(n)) for n in args.actors.split(",")]
                for engine, actors in runs:
                    got = measure(args, table, url, engine, actors)
                    seconds = float(got["seconds"])  # type: ignore[arg-type]
                    rate = size / seconds
                    name = engine if engine == "local" else f"ray x{actors}"
                    ndcg = got["ndcg@10"]
                    if args.verbose:
                        print(f"          {got}")
                    print(
                        f"{size:>9,} {name:>8} {seconds:>8.1f} {rate:>10,.0f} "
                        f"{rate / capacity:>8.0%} {float(got['peak_rss_mib']):>7.0f} MiB "  # type: ignore[arg-type]
                        f"{got['status']!s:>8} {float(ndcg):>8.4f} {os.getloadavg()[0]:>5.2f}",  # type: ignore[arg-type]
                        flush=True,
                    )
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
