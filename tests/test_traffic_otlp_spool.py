"""The spool of received span batches: order, bounds, torn and corrupt files, replay after
a crash between a batch's commit and the removal of its file, and a full disk."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from test_scheduler_support import evalkit_command, wait_until

from evalkit.errors import StoreError
from evalkit.store import Store
from evalkit.store.access import StoreAccess
from evalkit.traffic import committer as spool_committer
from evalkit.traffic.committer import SpoolCommitter
from evalkit.traffic.otlp import PreparedSpans, SpanBatch, commit_spans, prepare_spans
from evalkit.traffic.receiver import ReceiverCounters
from evalkit.traffic.spool import (
    Spool,
    SpoolCorruptError,
    SpoolFullError,
    SpoolWriteError,
    decode_batch,
    encode_batch,
)

TRACE = "5b8efff798038103d269b633813fc60c"
T0 = 1_763_452_800_000_000_000  # 2025-11-18T08:00:00Z


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"stringValue": value}
    return {"doubleValue": value}


def retrieval(span_id: str, text: str) -> dict[str, Any]:
    attributes = {"gen_ai.operation.name": "retrieval", "gen_ai.retrieval.query.text": text}
    return {
        "traceId": TRACE,
        "spanId": span_id,
        "startTimeUnixNano": str(T0),
        "endTimeUnixNano": str(T0 + 5_000_000),
        "attributes": [{"key": k, "value": _value(v)} for k, v in attributes.items()],
    }


def prepared(*span_ids: str, broken: bool = False) -> PreparedSpans:
    spans = [retrieval(span_id, f"question {span_id}") for span_id in span_ids]
    if broken:
        spans.append({"traceId": TRACE, "spanId": "", "startTimeUnixNano": str(T0)})
    batch = SpanBatch()
    batch.add_json(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}))
    return prepare_spans(batch)


def stored_ids(store: Store) -> list[str]:
    return [row[0] for row in store.fetch("SELECT query_id FROM traffic_records ORDER BY 1")]


def test_a_batch_round_trips_through_its_bytes() -> None:
    batch = prepared("1111111111111111", "2222222222222222", broken=True)
    request_id, back = decode_batch(encode_batch(batch, request_id="abc123", received_at=1.5))
    assert request_id == "abc123"
    assert back.records.equals(batch.records)
    assert back.generations.equals(batch.generations)
    assert back.problems == batch.problems
    assert back.outcome(2) == batch.outcome(2)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda data: data[:-10], "truncated"),
        (lambda data: data[:5], "no header"),
        (lambda data: data[:40] + bytes([data[40] ^ 0xFF]) + data[41:], "checksum"),
    ],
)
def test_a_damaged_batch_is_refused_with_the_reason(damage: Any, reason: str) -> None:
    data = encode_batch(prepared("1111111111111111"), request_id="abc123", received_at=0.0)
    with pytest.raises(SpoolCorruptError, match=reason):
        decode_batch(damage(data))


def test_batches_are_committed_in_order_once_and_files_removed_after_commit(
    tmp_path: Path, store: Store
) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    spool.recover()
    written = [spool.append(prepared(f"{n:016x}")) for n in range(1, 6)]
    assert [batch.sequence for batch in spool.ready()] == [1, 2, 3, 4, 5]
    assert spool.status().batches == 5
    for batch in spool.ready(2):
        commit_spans(store, spool.read(batch), source="otlp")
        spool.remove(batch)
    assert sorted(os.listdir(spool.directory)) == sorted(b.path.name for b in written[2:])
    assert [batch.sequence for batch in spool.ready()] == [3, 4, 5]
    assert stored_ids(store) == [f"{TRACE}-{n:016x}" for n in (1, 2)]


def test_a_write_under_way_holds_back_the_batches_after_it(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    spool.recover()
    first = spool.append(prepared("1111111111111111"))
    entered, proceed = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        if threading.current_thread().name == "slow-writer":
            entered.set()
            proceed.wait(10)
        real_fsync(fd)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fsync", slow_fsync)
        slow = threading.Thread(
            target=spool.append, args=(prepared("2222222222222222"),), name="slow-writer"
        )
        slow.start()
        assert entered.wait(10)
        third = spool.append(prepared("3333333333333333"))
        assert spool.ready() == [first]  # 3 waits for 2, whose write is not done
        proceed.set()
        slow.join(10)
    assert [batch.sequence for batch in spool.ready()] == [1, 2, third.sequence]


def test_a_crash_between_commit_and_removal_commits_again_and_stores_nothing_twice(
    tmp_path: Path, store: Store
) -> None:
    directory = tmp_path / "spool"
    spool = Spool(directory, max_bytes=1 << 20)
    spool.recover()
    spool.append(prepared("1111111111111111", "2222222222222222", broken=True))
    spool.append(prepared("3333333333333333"))
    (batch, _) = spool.ready()
    first = commit_spans(store, spool.read(batch), source="otlp")
    assert first.stored == 2
    # The process dies here: the batch is committed, its file still in the spool.
    restarted = Spool(directory, max_bytes=1 << 20)
    assert restarted.recover().batches == 2
    outcomes = []
    for again in restarted.ready():
        outcomes.append(commit_spans(store, restarted.read(again), source="otlp"))
        restarted.remove(again)
    assert [(o.stored, o.duplicates) for o in outcomes] == [(0, 2), (1, 0)]
    assert stored_ids(store) == [f"{TRACE}-{n * 4}" for n in ("1111", "2222", "3333")]
    assert store.fetch("SELECT count(*) FROM traffic_ingest_problems") == [(1,)]
    assert os.listdir(directory) == []
    # Numbering carries on after what was found, never reusing a name.
    assert restarted.append(prepared("4444444444444444")).sequence == 3


def test_a_torn_write_is_removed_and_reported_and_the_rest_is_kept(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    spool = Spool(directory, max_bytes=1 << 20)
    spool.recover()
    kept = spool.append(prepared("1111111111111111"))
    data = encode_batch(prepared("2222222222222222"), request_id="feedbeef0001", received_at=0)
    torn = directory / "00000000000000000002-feedbeef0001.batch.tmp"
    torn.write_bytes(data[: len(data) // 2])
    restarted = Spool(directory, max_bytes=1 << 20)
    recovery = restarted.recover()
    assert (recovery.batches, recovery.torn) == (1, (torn.name,))
    assert not torn.exists()
    assert [batch.path for batch in restarted.ready()] == [kept.path]
    assert restarted.status().torn == 1
    assert restarted.append(prepared("3333333333333333")).sequence == 2


def test_a_truncated_batch_at_the_end_is_set_aside_and_reported(
    tmp_path: Path, store: Store
) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    spool.recover()
    spool.append(prepared("1111111111111111"))
    last = spool.append(prepared("2222222222222222"))
    last.path.write_bytes(last.path.read_bytes()[:-7])
    restarted = Spool(spool.directory, max_bytes=1 << 20)
    restarted.recover()
    good, bad = restarted.ready()
    commit_spans(store, restarted.read(good), source="otlp")
    restarted.remove(good)
    with pytest.raises(SpoolCorruptError, match="truncated"):
        restarted.read(bad)
    kept = restarted.set_aside(bad)
    assert kept.name == last.path.name + ".corrupt"
    assert kept.exists()
    assert restarted.ready() == []
    assert restarted.status().corrupt == 1
    assert stored_ids(store) == [f"{TRACE}-1111111111111111"]
    # A set-aside file is never read again, and its number is not reused.
    again = Spool(spool.directory, max_bytes=1 << 20)
    assert again.recover().batches == 0
    assert again.append(prepared("3333333333333333")).sequence == 3


def test_beyond_its_bound_the_spool_refuses_and_a_first_batch_always_fits(
    tmp_path: Path,
) -> None:
    one = len(encode_batch(prepared("1111111111111111"), request_id="x" * 12, received_at=0))
    spool = Spool(tmp_path / "spool", max_bytes=one * 2 + one // 2)
    spool.recover()
    spool.append(prepared("1111111111111111"))
    second = spool.append(prepared("2222222222222222"))
    with pytest.raises(SpoolFullError, match="spool_max_bytes"):
        spool.append(prepared("3333333333333333"))
    assert spool.status().batches == 2
    on_disk = sum(path.stat().st_size for path in spool.directory.iterdir())
    assert spool.status().bytes == on_disk <= one * 2 + one // 2
    spool.remove(second)
    spool.append(prepared("3333333333333333"))
    tiny = Spool(tmp_path / "tiny", max_bytes=10)
    tiny.recover()
    tiny.append(prepared("1111111111111111"))  # larger than the bound, into an empty spool
    with pytest.raises(SpoolFullError):
        tiny.append(prepared("2222222222222222"))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=False
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_refuses_the_batch_and_keeps_every_batch_written(
    small_disk: Path, store: Store
) -> None:
    spool = Spool(small_disk / "spool", max_bytes=1 << 30)
    spool.recover()
    written = []
    refusal: SpoolWriteError | None = None
    for n in range(1, 10_000):
        try:
            written.append(spool.append(prepared(f"{n:016x}")))
        except SpoolWriteError as error:
            refusal = error
            break
    assert refusal is not None
    assert "No space left" in str(refusal)
    assert written
    assert not [name for name in os.listdir(spool.directory) if name.endswith(".tmp")]
    assert spool.status().bytes == sum(batch.size for batch in written)
    for batch in spool.ready():
        commit_spans(store, spool.read(batch), source="otlp")
        spool.remove(batch)
    assert len(stored_ids(store)) == len(written)


@pytest.mark.slow
def test_serve_exits_with_the_spool_path_when_the_spool_cannot_be_opened(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    blocker = home / "evalkit.duckdb.otlp-spool"
    blocker.write_text("a file where the spool directory belongs")
    config = tmp_path / "evalkit.toml"
    config.write_text("[scheduler]\nhealth_port = 0\n\n[otlp]\nreceiver = true\nport = 0\n")
    env = {**os.environ, "EVALKIT_HOME": str(home), "EVALKIT_CONFIG": str(config)}
    env.pop("EVALKIT_STORE_PATH", None)
    try:
        done = subprocess.run(
            evalkit_command("serve"),
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("evalkit serve hung instead of exiting when its spool cannot be opened")
    assert done.returncode == 2, done.stderr
    assert str(blocker) in done.stderr


def refused_by_the_store(span_id: str) -> PreparedSpans:
    """A batch whose record has no query id: the store's NOT NULL constraint refuses it."""
    batch = prepared(span_id)
    index = batch.records.schema.get_field_index("query_id")
    nulls = pa.array([None] * batch.records.num_rows, pa.string())
    return dataclasses.replace(batch, records=batch.records.set_column(index, "query_id", nulls))


@pytest.mark.slow
def test_a_batch_the_store_keeps_refusing_is_set_aside_and_the_rest_committed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store_path = tmp_path / "evalkit.duckdb"
    Store.open(store_path).close()
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    spool.recover()
    bad = spool.append(refused_by_the_store("1111111111111111"))
    spool.append(prepared("2222222222222222"))
    counters = ReceiverCounters(spool.status)
    access = StoreAccess(store_path, wait=5.0, program="test")
    committer = SpoolCommitter(spool, access, counters.committed, threading.Event())
    committer.start()
    try:
        committer.wake()
        wait_until(lambda: counters.value("stored") == 1, timeout=60, what="the next batch")
    finally:
        committer.close(grace=10)
    assert not bad.path.exists()
    assert bad.path.with_name(bad.path.name + ".failed").exists()
    assert spool.status().failed == 1
    assert spool.status().batches == 0
    errors = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert len(errors) == 1
    assert "set aside as" in errors[0]
    assert errors[0].endswith("the batches after it carry on")
    aside = next(m for m in counters.collect() if m.name == "evalkit_otlp_spool_set_aside")
    assert {s.labels["reason"]: s.value for s in aside.samples}["failed"] == 1
    with Store.open(store_path) as store:
        assert stored_ids(store) == [f"{TRACE}-2222222222222222"]


def test_a_fault_of_the_store_itself_is_retried_and_never_sets_a_batch_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk fails every batch: counting it against the batch would set the whole
    spool aside one batch after another."""
    store_path = tmp_path / "evalkit.duckdb"
    Store.open(store_path).close()
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    spool.recover()
    spool.append(prepared("3333333333333333"))
    faults = {"left": spool_committer._MAX_BATCH_ATTEMPTS + 2}

    def full_disk(store: Store, batch: PreparedSpans, **options: Any) -> Any:
        if faults["left"]:
            faults["left"] -= 1
            try:
                raise duckdb.IOException("Could not write file: No space left on device")
            except duckdb.IOException as error:
                raise StoreError(f"store write failed: {error}") from error
        return commit_spans(store, batch, **options)

    monkeypatch.setattr(spool_committer, "commit_spans", full_disk)
    monkeypatch.setattr(spool_committer, "_RETRY_COMMIT_SECONDS", 0.05)
    counters = ReceiverCounters(spool.status)
    committer = SpoolCommitter(
        spool,
        StoreAccess(store_path, wait=5.0, program="test"),
        counters.committed,
        threading.Event(),
    )
    committer.start()
    try:
        committer.wake()
        wait_until(lambda: counters.value("stored") == 1, timeout=60, what="the retried batch")
    finally:
        committer.close(grace=10)
    assert faults["left"] == 0
    assert spool.status().failed == 0
    with Store.open(store_path) as store:
        assert stored_ids(store) == [f"{TRACE}-3333333333333333"]


def test_close_finishes_the_batch_under_way_begins_no_other_and_ends_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog longer than the grace: close returns only once the commit under way is
    over (a thread left inside DuckDB aborts the interpreter at exit), and the batches not
    begun are committed, once each, by the next start."""
    store_path = tmp_path / "evalkit.duckdb"
    Store.open(store_path).close()
    directory = tmp_path / "spool"
    spool = Spool(directory, max_bytes=1 << 20)
    spool.recover()
    for n in range(1, 6):
        spool.append(prepared(f"{n:016x}"))
    entered, proceed, finished = threading.Event(), threading.Event(), threading.Event()

    def slow_commit(store: Store, batch: PreparedSpans, **options: Any) -> Any:
        entered.set()
        assert proceed.wait(60)
        outcome = commit_spans(store, batch, **options)
        finished.set()
        return outcome

    monkeypatch.setattr(spool_committer, "commit_spans", slow_commit)
    counters = ReceiverCounters(spool.status)
    access = StoreAccess(store_path, wait=5.0, program="test")
    committer = SpoolCommitter(spool, access, counters.committed, threading.Event())
    committer.start()
    assert entered.wait(60)
    closer = threading.Thread(target=committer.close, kwargs={"grace": 0.0})
    closer.start()
    closer.join(0.5)
    assert closer.is_alive(), "close returned while a batch was being committed"
    proceed.set()
    closer.join(60)
    assert not closer.is_alive()
    assert finished.is_set()
    assert "evalkit-otlp-committer" not in {thread.name for thread in threading.enumerate()}
    assert counters.value("stored") == 1
    assert spool.status().batches == 4

    monkeypatch.undo()
    restarted = Spool(directory, max_bytes=1 << 20)
    assert restarted.recover().batches == 4
    counters = ReceiverCounters(restarted.status)
    committer = SpoolCommitter(restarted, access, counters.committed, threading.Event())
    committer.start()
    committer.close(grace=60)
    assert counters.value("stored") == 4
    assert restarted.status().batches == 0
    with Store.open(store_path) as store:
        assert stored_ids(store) == [f"{TRACE}-{n:016x}" for n in range(1, 6)]
