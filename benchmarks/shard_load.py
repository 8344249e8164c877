"""The Ray engine's writer alone: peak memory of loading N queries' shards into the store.

A Ray run ends with the one store writer loading the actors' Parquet shards in one
transaction (``evalkit.store.shards``). This script writes the numbered query table and
the shards such a run leaves
(``--batch-size`` queries per shard, ``k`` ranked documents and three measures per query)
without running Ray, then, each in a fresh process, loads them the way the pipeline does
(lost queries, summary, one loading transaction) into a new store opened with
``store_memory_limit`` (the setting's default, ``--limits``) and with DuckDB's own default
(80 % of the RAM), and prints the writer's peak RSS per size. Flat means the peak stops
growing with the number of queries once DuckDB's buffers reach the limit.

    .venv/bin/python benchmarks/shard_load.py --sizes 100000,1000000,3000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

MEASURES = ["ndcg@10", "recall@10", "mrr@10"]


def write_shards(work: Path, n: int, batch: int, k: int, seed: int = 0) -> None:
    """The query table and the shards of a finished run of ``n`` queries."""
    from evalkit.engines import NUMBERED_SCHEMA, POSITION
    from evalkit.engines.ray_actors import shard_schema

    rng = np.random.default_rng(seed)
    shards = work / "shards"
    shards.mkdir(parents=True)
    with pq.ParquetWriter(work / "queries.parquet", NUMBERED_SCHEMA) as table:
        for start in range(0, n, batch):
            positions = np.arange(start, min(n, start + batch))
            ids = [f"q{number:09d}" for number in positions.tolist()]
            size = len(ids)
            table.write_table(
                pa.table(
                    {
                        "query_id": ids,
                        "text": ["how do i reset my password"] * size,
                        "tenant": pa.array([None] * size, pa.string()),
                        "judged_doc_ids": [["d1", "d2"]] * size,
                        "judged_relevance": pa.array([[1, 1]] * size, pa.list_(pa.int32())),
                        "reference_answer": pa.nulls(size, pa.string()),
                        "reference_context_ids": pa.nulls(size, pa.list_(pa.string())),
                        POSITION: positions,
                    },
                    schema=NUMBERED_SCHEMA,
                )
            )
            documents = rng.integers(0, 100_000, size=(size, k))
            columns = {
                POSITION: positions,
                "query_id": ids,
                "latency_ms": rng.uniform(5, 50, size),
                "error": pa.array([None] * size, pa.string()),
                "n_results": pa.array([k] * size, pa.int32()),
                "n_duplicates": pa.array([0] * size, pa.int32()),
                "ranks": pa.array([list(range(1, k + 1))] * size, pa.list_(pa.int32())),
                "doc_ids": pa.array(
                    [[f"d{doc}" for doc in row] for row in documents.tolist()],
                    pa.list_(pa.string()),
                ),
                "scores": pa.array(rng.random((size, k)).tolist(), pa.list_(pa.float64())),
                **{measure: rng.random(size) for measure in MEASURES},
            }
            pq.write_table(
                pa.table(columns, schema=shard_schema(MEASURES)),
                shards / f"{start:010d}-{size}.parquet",
            )


def child(work: Path, n: int, limit: str) -> dict[str, float]:
    """Load the shards as the pipeline's writer does; the writer's peak RSS."""
    from evalkit import __version__
    from evalkit.store import RunSpec, Store
    from evalkit.store.runs import create_run
    from evalkit.store.shards import load_run_shards, summarize_shards, write_lost_shard

    database = work / f"store-{limit or 'duckdb-default'}.duckdb"
    store = Store.open(database, memory_limit=limit or None)
    spec = RunSpec(
        kind="queries",
        retriever_kind="http",
        k=10,
        measures=tuple(MEASURES),
        evalkit_version=__version__,
        n_queries=n,
    )
    run_id = create_run(store, spec)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    began = time.perf_counter()
    shards = sorted((work / "shards").glob("*.parquet"))
    lost = work / f"lost-{limit}.parquet"
    if write_lost_shard(
        store, work / "queries.parquet", shards, lost, error="lost", measures=MEASURES
    ):
        shards.append(lost)
    summary = summarize_shards(store, shards, MEASURES)
    loaded = load_run_shards(
        store, run_id, shards, measures=MEASURES, status="complete", n_total=summary.n_queries
    )
    seconds = time.perf_counter() - began
    store.close()
    return {
        "loaded": loaded,
        "seconds": seconds,
        "before_mib": before,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    """Write each size's shards, load them in fresh processes, print the peaks."""
    from evalkit.config import Settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,3000000")
    parser.add_argument(
        "--limits",
        default=f"{Settings.model_fields['store_memory_limit'].default},",
        help="store_memory_limit values, comma-separated; empty: DuckDB's default.",
    )
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        work, n, limit = options.child
        print(json.dumps(child(Path(work), int(n), limit)))
        return
    sizes = [int(size) for size in options.sizes.split(",")]
    limits = options.limits.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="evalkit-shard-load-") as scratch:
        for n in sizes:
            work = Path(scratch) / str(n)
            began = time.perf_counter()
            write_shards(work, n, options.batch_size, options.k)
            print(f"wrote {n:,} queries' shards in {time.perf_counter() - began:.0f} s", flush=True)
            for limit in limits:
                completed = subprocess.run(
                    [sys.executable, __file__, "--child", str(work), str(n), limit],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                result = json.loads(completed.stdout.strip().splitlines()[-1])
                rows.append((n, limit, result))
                print(
                    f"  {limit or 'DuckDB default'}: peak {result['peak_mib']:.0f} MiB, "
                    f"{result['seconds']:.1f} s",
                    flush=True,
                )
    print()
    print(f"{'queries':>10} {'store_memory_limit':>30} {'load s':>7} {'writer peak MiB':>16}")
    for n, limit, result in rows:
        shown = limit or "DuckDB default (80 % of RAM)"
        print(f"{n:>10,} {shown:>30} {result['seconds']:>7.1f} {result['peak_mib']:>16.0f}")
    for limit in limits:
        peaks = [result["peak_mib"] for _, used, result in rows if used == limit]
        if len(peaks) > 1:
            print(
                f"{limit or 'DuckDB default'}: the writer's peak grows {peaks[-1] / peaks[0]:.2f}x "
                f"for {sizes[-1] / sizes[0]:.0f}x the queries"
            )
    load = os.getloadavg()[0]
    print(f"load average (1 min) {load:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
