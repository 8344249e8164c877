"""Committing received span batches into a store that already holds many records.

The OTLP receiver's committer stores each spooled batch (512 spans: the SDK's
BatchSpanProcessor default) in its own transaction, after checking which of its query ids
are stored already. Span query ids are random (trace id and span id), so the range of a
batch's ids covers nearly the whole table: the check of the ids alone read every stored id
at each commit, and the commit rate fell with the size of the store. The check now looks
only among the records of the batch's time range, which the row groups' statistics find
without reading the others.

For each store size (``--sizes``, 100,000 and 1,500,000 records by default) a new store
is filled with span records of random ids, a millisecond apart, ending where the synthetic
spans of ``benchmarks/otlp.py`` begin; then, ``--rounds`` times, one new batch is committed
with the query of before (the peer: the same commit with the ids' range as the only bound)
and one with today's, side by side, and a batch committed before is committed again (each
way), which must store nothing. It prints the median seconds per batch, spans/s and the
ratio per size, beside the machine's load.

    .venv/bin/python benchmarks/span_commit.py [--sizes 100000,1500000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from otlp import START_NS, requests

from evalkit.store import Store
from evalkit.store.traffic import ingest
from evalkit.traffic.otlp import PreparedSpans, SpanBatch, commit_spans, prepare_spans

_NANOSECONDS_PER_MICROSECOND = 1000


def fill(store: Store, records: int) -> None:
    """``records`` span records of random ids, a millisecond apart in time order, the last
    just before ``START_NS`` (as traffic stored over the preceding time)."""
    end_us = START_NS // _NANOSECONDS_PER_MICROSECOND
    store.execute(
        "INSERT INTO traffic_records SELECT q.trace || '-' || q.span, q.ts,"
        " 'stored query ' || i, 'tenant-' || (i % 2), NULL, NULL, NULL, NULL, NULL, NULL,"
        " hash(i), 'otlp', 0, now(), q.trace, q.span"
        " FROM (SELECT i, md5('t' || i) AS trace, substr(md5('s' || i), 1, 16) AS span,"
        "  make_timestamp(? - (? - i) * 1000) AS ts FROM range(?) r(i)) q ORDER BY q.ts",
        [end_us, records, records],
    )
    store.execute("CHECKPOINT")


def batches(count: int, size: int) -> Iterator[PreparedSpans]:
    """``count`` prepared batches of ``size`` synthetic retrieval spans, as the receiver
    spools them."""
    for request in requests(count * size, size):
        batch = SpanBatch()
        batch.add_protobuf(request)
        yield prepare_spans(batch)


@contextmanager
def query_of_before() -> Iterator[None]:
    """The duplicate check of before: the ids' range only, no time bound."""
    span_times = ingest._span_times
    ingest._span_times = lambda records: ()
    try:
        yield
    finally:
        ingest._span_times = span_times


def timed(commit: Callable[[], int]) -> tuple[float, int]:
    began = time.perf_counter()
    stored = commit()
    return time.perf_counter() - began, stored


def measure(records: int, rounds: int, size: int, work: Path) -> dict[str, list[float]]:
    """Seconds per batch committed the way of before and today's, ``rounds`` each."""
    seconds: dict[str, list[float]] = {"before": [], "after": []}
    prepared = list(batches(2 * rounds, size))
    with Store.open(work / f"store-{records}.duckdb") as store:
        fill(store, records)

        def commit(batch: PreparedSpans) -> int:
            return commit_spans(store, batch, source="otlp").stored

        for round_ in range(rounds):
            old, new = prepared[2 * round_], prepared[2 * round_ + 1]
            with query_of_before():
                elapsed, stored = timed(lambda batch=old: commit(batch))
                again = commit(old)
            if (stored, again) != (size, 0):
                raise SystemExit(f"before: stored {stored}, then {again} again (of {size})")
            seconds["before"].append(elapsed)
            elapsed, stored = timed(lambda batch=new: commit(batch))
            again = commit(new)
            if (stored, again) != (size, 0):
                raise SystemExit(f"after: stored {stored}, then {again} again (of {size})")
            seconds["after"].append(elapsed)
        (count, distinct) = store.fetch(
            "SELECT count(*), count(DISTINCT query_id) FROM traffic_records"
        )[0]
    if count != distinct or count != records + 2 * rounds * size:
        raise SystemExit(f"{count} records, {distinct} distinct ids")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1500000")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=512)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        for records in (int(size) for size in options.sizes.split(",")):
            seconds = measure(records, options.rounds, options.batch, Path(directory))
            before, after = (statistics.median(seconds[way]) for way in ("before", "after"))
            print(
                f"{records:>9,} records: before {before:.3f} s/batch "
                f"({options.batch / before:,.0f} spans/s), after {after:.3f} s/batch "
                f"({options.batch / after:,.0f} spans/s): {before / after:.1f}x "
                f"(medians of {options.rounds})"
            )
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
