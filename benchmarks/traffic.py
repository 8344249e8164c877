"""Traffic ingest and sampling speed against DuckDB's own JSON reader, and peak memory.

Writes a synthetic traffic log (default 1,000,000 lines, ~360 bytes each, five tenants,
logged results on every line), then, each in a fresh process so peak memory is its own:

- the floor: ``CREATE TABLE ... AS SELECT * FROM read_json(...)`` into a new DuckDB file;
- evalkit: ``ingest_paths`` (validation, idempotence, ingest state) into a new store, then
  a seeded sample of 2,000 queries stratified by tenant.

It prints lines/s for both, their ratio (the target: within 2x), the CPU time each spends
per line (less at the mercy of other work on a shared machine), the size of each database
file, the load average, and the peak RSS of ingesting the large file and a smaller one
(default 200,000 lines): streaming means the two should be close. On a machine whose speed
wanders from minute to minute, the large file is measured ``--rounds`` times, floor and
evalkit one after the other in each round, and the median of the rounds' ratios is the
figure.

    .venv/bin/python benchmarks/traffic.py [--lines 1000000] [--small 200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = [
    *("how", "do", "i", "reset", "my", "password", "billing", "invoice", "refund", "policy"),
    *("travel", "expense", "report", "quarterly", "revenue", "error", "upstream", "service"),
    *("unavailable", "account", "locked", "export", "data", "delete", "user", "api", "key"),
    *("rotate", "token", "limit", "quota", "plan", "upgrade", "downgrade", "sso", "saml"),
]


def write_log(path: Path, lines: int, seed: int = 0) -> None:
    """A synthetic traffic log: ~5 % repeated queries, five tenants, five logged results."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as handle:
        for index in range(lines):
            words = rng.randrange(3, 12)
            text = " ".join(rng.choice(WORDS) for _ in range(words))
            if rng.random() < 0.05:
                text = "how do i reset my password"
            record = {
                "query_id": f"q{index:09d}",
                "timestamp": f"2026-11-{1 + index * 28 // lines:02d}T{rng.randrange(24):02d}:"
                f"{rng.randrange(60):02d}:{rng.randrange(60):02d}Z",
                "text": text,
                "tenant": f"tenant-{rng.randrange(5)}",
                "latency_ms": round(rng.uniform(5, 200), 2),
                "results": [
                    {"doc_id": f"d{rng.randrange(100_000)}", "score": round(rng.random(), 4)}
                    for _ in range(5)
                ],
            }
            handle.write(json.dumps(record) + "\n")


def cpu_seconds() -> float:
    """CPU time this process has used, all its threads: user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_floor(log: Path, database: Path) -> dict[str, float]:
    """DuckDB reading the same file on its own: the floor."""
    import duckdb

    began, cpu_began = time.perf_counter(), cpu_seconds()
    connection = duckdb.connect(str(database))
    connection.execute(
        "CREATE TABLE traffic AS SELECT * FROM read_json(?, format = 'newline_delimited')",
        [str(log)],
    )
    rows = connection.execute("SELECT count(*) FROM traffic").fetchall()[0][0]
    connection.close()
    return {
        "seconds": time.perf_counter() - began,
        "cpu_seconds": cpu_seconds() - cpu_began,
        "rows": rows,
        "peak_mb": peak_rss_mb(),
        "file_mb": database.stat().st_size / 2**20,
    }


def child_evalkit(log: Path, database: Path, sample: int) -> dict[str, float]:
    """evalkit ingest of the file, then one stratified sample."""
    from evalkit.store import Store
    from evalkit.store.traffic import record_count
    from evalkit.traffic import SampleSpec, ingest_paths, parse_stratification, parse_window

    store = Store.open(database)
    began, cpu_began = time.perf_counter(), cpu_seconds()
    report = ingest_paths(store, [log])
    ingest_seconds = time.perf_counter() - began
    ingest_cpu_seconds = cpu_seconds() - cpu_began
    ingest_peak = peak_rss_mb()
    began = time.perf_counter()
    from evalkit.traffic import sample_window

    drawn = sample_window(
        store,
        SampleSpec(
            window=parse_window("2026-11"),
            n=sample,
            seed=7,
            stratify_by=parse_stratification("tenant"),
            min_per_stratum=20,
        ),
    )
    sample_seconds = time.perf_counter() - began
    stored = record_count(store)
    store.close()
    return {
        "seconds": ingest_seconds,
        "cpu_seconds": ingest_cpu_seconds,
        "rows": report.records_added,
        "stored": stored,
        "peak_mb": ingest_peak,
        "sample_seconds": sample_seconds,
        "sampled": drawn.n_sampled,
        "file_mb": database.stat().st_size / 2**20,
    }


def run_child(*arguments: str) -> dict[str, float]:
    """Run this script in a fresh process for one measurement; returns its JSON result."""
    completed = subprocess.run(
        [sys.executable, __file__, "--child", *arguments],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Write the logs, measure floor and evalkit in fresh processes, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=200_000)
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5, help="rounds on the large file")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        kind, log, database, *rest = options.child
        if kind == "floor":
            result = child_floor(Path(log), Path(database))
        else:
            result = child_evalkit(Path(log), Path(database), int(rest[0]))
        print(json.dumps(result))
        return

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="evalkit-traffic-bench-") as scratch:
        work = Path(scratch)
        measured = {}
        for lines in (options.small, options.lines):
            log = work / f"traffic-{lines}.jsonl"
            began = time.perf_counter()
            write_log(log, lines)
            size_mb = log.stat().st_size / 2**20
            print(
                f"wrote {lines:,} lines ({size_mb:.0f} MiB) in {time.perf_counter() - began:.1f} s"
            )
            rounds = []
            for round_number in range(options.rounds if lines == options.lines else 1):
                floor = run_child(
                    "floor", str(log), str(work / f"floor-{lines}-{round_number}.duckdb")
                )
                ours = run_child(
                    "evalkit",
                    str(log),
                    str(work / f"evalkit-{lines}-{round_number}.duckdb"),
                    str(options.sample),
                )
                rounds.append((floor, ours))
            measured[lines] = rounds

    print()
    print(
        f"{'lines':>10} {'duckdb read_json':>18} {'evalkit ingest':>16} {'ratio':>7}"
        f" {'sample':>9} {'peak MiB duckdb':>16} {'peak MiB evalkit':>17}"
        f" {'CPU us/line duckdb':>19} {'evalkit':>8}"
    )
    for lines, rounds in measured.items():
        for floor, ours in rounds:
            floor_rate = floor["rows"] / floor["seconds"]
            our_rate = ours["rows"] / ours["seconds"]
            print(
                f"{lines:>10,} {floor_rate:>13,.0f} l/s {our_rate:>11,.0f} l/s "
                f"{floor_rate / our_rate:>6.2f}x {ours['sample_seconds']:>7.2f} s "
                f"{floor['peak_mb']:>16.0f} {ours['peak_mb']:>17.0f}"
                f" {1e6 * floor['cpu_seconds'] / floor['rows']:>19.2f}"
                f" {1e6 * ours['cpu_seconds'] / ours['rows']:>8.2f}"
            )
    small = measured[options.small][0][1]
    large_rounds = measured[options.lines]
    ratios = [
        (floor["rows"] / floor["seconds"]) / (ours["rows"] / ours["seconds"])
        for floor, ours in large_rounds
    ]
    cpu_ratios = [
        (ours["cpu_seconds"] / ours["rows"]) / (floor["cpu_seconds"] / floor["rows"])
        for floor, ours in large_rounds
    ]
    large = large_rounds[0][1]
    print()
    print(
        f"evalkit ingest is {statistics.median(ratios):.2f}x slower than the DuckDB floor on "
        f"{options.lines:,} lines (median of {len(ratios)} rounds; "
        f"{min(ratios):.2f}x to {max(ratios):.2f}x); sampled {large['sampled']:.0f} queries "
        f"in {large['sample_seconds']:.2f} s"
    )
    # CPU time does not depend on what else the machine runs as much as elapsed time does.
    floor_cpu = statistics.median(1e6 * f["cpu_seconds"] / f["rows"] for f, _ in large_rounds)
    our_cpu = statistics.median(1e6 * o["cpu_seconds"] / o["rows"] for _, o in large_rounds)
    print(
        f"CPU per line on {options.lines:,} lines (medians): DuckDB {floor_cpu:.2f} us, evalkit "
        f"{our_cpu:.2f} us ({statistics.median(cpu_ratios):.2f}x)"
    )
    floor_file = statistics.median(f["file_mb"] for f, _ in large_rounds)
    our_file = statistics.median(o["file_mb"] for _, o in large_rounds)
    print(
        f"database file after {options.lines:,} lines: DuckDB's table {floor_file:.0f} MiB, "
        f"evalkit's store {our_file:.0f} MiB"
    )
    load_after = os.getloadavg()
    print(
        f"load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after, on "
        f"{os.cpu_count()} cores"
    )
    print(
        f"peak memory: {small['peak_mb']:.0f} MiB for {options.small:,} lines, "
        f"{large['peak_mb']:.0f} MiB for {options.lines:,} lines "
        f"({large['peak_mb'] / small['peak_mb']:.2f}x for {options.lines / options.small:.0f}x "
        "the lines)"
    )


if __name__ == "__main__":
    main()
