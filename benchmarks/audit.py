"""Near-duplicate detection on 100,000 x 384 vectors: evalkit's blocked search vs baselines.

The vectors are seeded and clustered like text embeddings (1,000 topics, within-topic cosine
around 0.5), with 500 planted near-duplicate pairs (cosine about 0.99) and 200 exact copies.
Every method looks for all pairs with cosine >= 0.95 and is run in its own process, so its
peak memory is its own:

* ``blocked``: ``evalkit.audit.near_duplicate_pairs`` (exact; BLAS tiles of block x block,
  upper triangle only) on all n vectors;
* ``matrix``: the brute-force n² baseline, the whole n x n similarity matrix at once, on a
  subset, extrapolated by (n / subset)² in time and memory;
* ``loop``: the n² pair loop (one dot product per pair), on a smaller subset, extrapolated;
* ``hnsw``: querying a Chroma HNSW index (embedded, cosine) for every vector's 10 nearest
  neighbours, on a subset (index build and queries timed apart), extrapolated by n log n.

Prints wall and CPU seconds, peak traced memory (NumPy allocations, tracemalloc) and peak
RSS per method, the ratios to ``blocked``, and the share of the planted pairs each method
found. Run: ``.venv/bin/python benchmarks/audit.py`` (``--n 20000`` for a quick look;
``--sweep 10000`` also times block sizes).
"""

from __future__ import annotations

import argparse
import itertools
import math
import multiprocessing
import os
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.audit import near_duplicate_pairs, unit_rows

N_TOPICS = 1000
N_PLANTED = 500
N_EXACT = 200
NEIGHBOURS = 10


def make_vectors(n: int, dimension: int, seed: int) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """Clustered unit vectors and the set of planted (near and exact) duplicate pairs."""
    rng = np.random.default_rng(seed)
    topics = unit_rows(rng.standard_normal((N_TOPICS, dimension)))
    members = rng.integers(0, N_TOPICS, size=n)
    vectors = topics[members] + rng.standard_normal((n, dimension)).astype(np.float32) / math.sqrt(
        dimension
    )
    vectors = unit_rows(vectors)
    planted: set[tuple[int, int]] = set()
    rows = rng.choice(n, size=2 * (N_PLANTED + N_EXACT), replace=False)
    for index, (source, target) in enumerate(rows.reshape(-1, 2)):
        noise = 0.0 if index < N_EXACT else 0.15 / math.sqrt(dimension)
        vectors[target] = vectors[source] + noise * rng.standard_normal(dimension)
        planted.add((int(min(source, target)), int(max(source, target))))
    return unit_rows(vectors), planted


def run_blocked(vectors: np.ndarray, threshold: float, block_size: int) -> set[tuple[int, int]]:
    pairs = near_duplicate_pairs(vectors, threshold=threshold, block_size=block_size)
    return set(zip(pairs.first.tolist(), pairs.second.tolist(), strict=True))


def run_matrix(vectors: np.ndarray, threshold: float, _: int) -> set[tuple[int, int]]:
    similarity = vectors @ vectors.T
    first, second = np.nonzero(np.triu(similarity >= threshold, k=1))
    return set(zip(first.tolist(), second.tolist(), strict=True))


def run_loop(vectors: np.ndarray, threshold: float, _: int) -> set[tuple[int, int]]:
    rows = list(vectors.astype(np.float64))
    found = set()
    for i, j in itertools.combinations(range(len(rows)), 2):
        if float(rows[i] @ rows[j]) >= threshold:
            found.add((i, j))
    return found


def run_hnsw(vectors: np.ndarray, threshold: float, _: int) -> set[tuple[int, int]]:
    import chromadb
    from chromadb.config import Settings

    with tempfile.TemporaryDirectory() as folder:
        client = chromadb.PersistentClient(
            path=folder, settings=Settings(anonymized_telemetry=False)
        )
        collection = client.create_collection(
            "bench", embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
        )
        batch = min(5000, int(client.get_max_batch_size()))
        ids = [str(i) for i in range(len(vectors))]
        clock = time.perf_counter()
        for start in range(0, len(vectors), batch):
            collection.add(
                ids=ids[start : start + batch], embeddings=vectors[start : start + batch]
            )
        BUILD_SECONDS.append(time.perf_counter() - clock)
        found = set()
        for start in range(0, len(vectors), 1000):
            answer = collection.query(
                query_embeddings=vectors[start : start + 1000],
                n_results=NEIGHBOURS + 1,
                include=["distances"],
            )
            for offset, (neighbours, distances) in enumerate(
                zip(answer["ids"], answer["distances"], strict=True)
            ):
                row = start + offset
                for neighbour, distance in zip(neighbours, distances, strict=True):
                    other = int(neighbour)
                    if other != row and 1.0 - distance >= threshold:
                        found.add((min(row, other), max(row, other)))
        return found


BUILD_SECONDS: list[float] = []


def _quadratic(n: int) -> float:
    return float(n) ** 2


def _linear(n: int) -> float:
    return float(n)


def _n_log_n(n: int) -> float:
    return n * math.log(n)


# How time and memory grow with n, to extrapolate a subset: n² pairs for the matrix and the
# loop, n log n queries for HNSW; the matrix holds n² cells, the loop and the index n vectors.
GROWTH: dict[str, tuple[Callable[[int], float], Callable[[int], float]]] = {
    "matrix": (_quadratic, _quadratic),
    "loop": (_quadratic, _linear),
    "hnsw": (_n_log_n, _linear),
}
METHODS: dict[str, Callable[[np.ndarray, float, int], set[tuple[int, int]]]] = {
    "blocked": run_blocked,
    "matrix": run_matrix,
    "loop": run_loop,
    "hnsw": run_hnsw,
}


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def measure(method: str, n: int, data: str, threshold: float, block: int) -> dict[str, Any]:
    """Run one method on the first ``n`` saved vectors; its time and peak memory.

    Peak RSS is the kernel's high-water mark (VmHWM), reset once the vectors are loaded
    (ru_maxrss would carry the parent's peak across exec), so the growth is the method's own.
    """
    vectors = np.load(f"{data}/vectors.npy")[:n].copy()
    planted = np.load(f"{data}/planted.npy")
    expected = {(int(a), int(b)) for a, b in planted if b < n}
    Path("/proc/self/clear_refs").write_text("5")
    rss_before = _status_kb("VmRSS")
    tracemalloc.start()
    clock, cpu_clock = time.perf_counter(), time.process_time()
    found = METHODS[method](vectors, threshold, block)
    seconds, cpu_seconds = time.perf_counter() - clock, time.process_time() - cpu_clock
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_peak = _status_kb("VmHWM")
    return {
        "method": method,
        "n": n,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "build_seconds": BUILD_SECONDS[-1] if BUILD_SECONDS else None,
        "traced_peak_mb": traced_peak / 2**20,
        "rss_growth_mb": max(0, rss_peak - rss_before) / 1024,
        "pairs": len(found),
        "planted_found": len(expected & found) / len(expected) if expected else float("nan"),
    }


def _child(arguments: tuple[Any, ...]) -> dict[str, Any]:
    return measure(*arguments)


def in_subprocess(*arguments: Any) -> dict[str, Any]:
    """``measure`` in a fresh process, so peak memory belongs to one method only."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        result: dict[str, Any] = pool.apply(_child, (arguments,))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--block-size", type=int, default=2048)
    parser.add_argument("--matrix-subset", type=int, default=10_000)
    parser.add_argument("--loop-subset", type=int, default=1_500)
    parser.add_argument("--hnsw-subset", type=int, default=20_000)
    parser.add_argument("--sweep", type=int, default=0, help="also time block sizes on this n")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    n = args.n
    folder = tempfile.TemporaryDirectory()
    vectors, planted = make_vectors(n, args.dimension, args.seed)
    np.save(f"{folder.name}/vectors.npy", vectors)
    np.save(f"{folder.name}/planted.npy", np.array(sorted(planted), dtype=np.int64))
    del vectors
    common = (folder.name, args.threshold, args.block_size)
    rows = []
    blocked = in_subprocess("blocked", n, *common)
    rows.append((blocked, 1.0, 1.0))
    for method, subset in (
        ("matrix", args.matrix_subset),
        ("loop", args.loop_subset),
        ("hnsw", args.hnsw_subset),
    ):
        size = min(subset, n)
        result = in_subprocess(method, size, *common)
        time_growth, memory_growth = GROWTH[method]
        rows.append(
            (result, time_growth(n) / time_growth(size), memory_growth(n) / memory_growth(size))
        )

    print(
        f"near-duplicate search, {n:,} x {args.dimension} vectors, cosine >= {args.threshold}, "
        f"block {args.block_size}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
        "cores"
    )
    header = (
        f"{'method':8} {'measured n':>10} {'seconds':>9} {'CPU s':>8} {'traced MB':>10} "
        f"{'RSS+ MB':>9} "
        f"{'pairs':>7} {'planted':>8} | {'at n: s':>10} {'MB':>10} {'x blocked':>10}"
    )
    print(header)
    for result, scale, memory_scale in rows:
        seconds = result["seconds"] * scale
        memory = result["traced_peak_mb"] * memory_scale
        build = result["build_seconds"]
        print(
            f"{result['method']:8} {result['n']:>10,} {result['seconds']:>9.2f} "
            f"{result['cpu_seconds']:>8.1f} "
            f"{result['traced_peak_mb']:>10.1f} {result['rss_growth_mb']:>9.1f} "
            f"{result['pairs']:>7} {result['planted_found']:>8.3f} | {seconds:>10.1f} "
            f"{memory:>10.1f} {seconds / blocked['seconds']:>10.1f}"
            + (f"   (+ index build {build:.1f} s, x{scale:.1f} at n)" if build else "")
        )
    print(
        "'at n' columns extrapolate subsets: time by (n/subset)^2 (matrix, loop) or n log n "
        "(hnsw); memory by (n/subset)^2 (matrix) or n/subset (loop, hnsw). blocked is measured "
        "at n."
    )
    if args.sweep:
        print(f"\nblock sizes on {args.sweep:,} vectors:")
        for block in (256, 512, 1024, 2048, 4096):
            swept = in_subprocess("blocked", args.sweep, folder.name, args.threshold, block)
            print(
                f"  block {block:>5}: {swept['seconds']:7.2f} s, {swept['traced_peak_mb']:7.1f} MB"
            )


if __name__ == "__main__":
    main()
