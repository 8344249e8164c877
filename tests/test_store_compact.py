"""`evalkit store compact`: the space retention freed goes back to the file system.

DuckDB reuses the space of deleted rows but never shrinks its file; a year of pruned
per-query rows left a 205 MB store that a copy holds in 41 MB. The compaction copies the
store, checks every table kept its rows, and replaces it under the writer lock; what the
store held (rows, schema, sequences) is all there afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_migrations_frozen import save_alert_row, schema_of

from evalkit.cli import invoke
from evalkit.config import load_settings
from evalkit.errors import StoreError
from evalkit.records import Judgment, Query, QueryResult, ScoredDoc
from evalkit.records.requests import GoldsetRunRequest
from evalkit.store import Store
from evalkit.store import compact as compact_module
from evalkit.store.access import FileLock, StoreAccess
from evalkit.store.compact import compact_store
from evalkit.store.retention import prune_run_details
from evalkit.store.runs import get_run, list_runs


class Ranked:
    """Fifty documents per query."""

    def retrieve(self, queries: list[Query], k: int) -> list[QueryResult]:
        return [
            QueryResult(
                query.id,
                tuple(ScoredDoc(f"d{i}", 1.0 - i / 100, i + 1) for i in range(min(k, 50))),
                1.0,
            )
            for query in queries
        ]


def filled_store(path: Path, runs: int = 6) -> list[str]:
    from evalkit.goldset.model import Goldset
    from evalkit.pipeline import evaluate_goldset

    goldset = Goldset.build(
        "g",
        [Query(f"q{i}", f"query {i}") for i in range(300)],
        [Judgment(f"q{i}", f"d{i % 50}", 1) for i in range(300)],
    )
    with Store.open(path) as store:
        made = [
            evaluate_goldset(store, goldset, Ranked(), GoldsetRunRequest(k=50)).run.run_id
            for _ in range(runs)
        ]
        prune_run_details(store, made[:-1])
        save_alert_row(store)
    return made


@pytest.mark.slow
def test_a_compacted_store_is_smaller_and_holds_the_same(tmp_path: Path) -> None:
    path = tmp_path / "evalkit.duckdb"
    runs = filled_store(path)
    with Store.open(path, read_only=True) as store:
        schema = schema_of(store)
        aggregates = {run.run_id: run.aggregates for run in list_runs(store)}
    before = path.stat().st_size

    report = compact_store(StoreAccess(path, wait=5, program="test"))

    assert report.bytes_before == before
    assert report.bytes_after == path.stat().st_size < before
    assert not (tmp_path / "evalkit.duckdb.compacting").exists()
    with Store.open(path) as store:
        assert schema_of(store) == schema
        assert {run.run_id: run.aggregates for run in list_runs(store)} == aggregates
        assert report.rows == sum(
            int(store.fetch(f'SELECT count(*) FROM "{table}"')[0][0])
            for (table,) in store.fetch("SELECT table_name FROM duckdb_tables()")
        )
        assert get_run(store, runs[-1]).status == "complete"
        # Sequences carry on where they were: a new alert comes after the old one.
        store.execute(
            "INSERT INTO alerts (alert_id, rule, kind, dedup_key, subject, status, severity,"
            " title, summary, evidence, links, fired_at, created_at, n_sinks) VALUES"
            " ('a4', 'r', 'k', 'd', 's', 'firing', 'warning', 't', 'sum', '{}', '[]',"
            " '2026-01-04', '2026-01-04', 0)"
        )
        assert store.fetch("SELECT alert_id FROM alerts ORDER BY sequence") == [("a3",), ("a4",)]


def test_a_copy_that_differs_leaves_the_store_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "evalkit.duckdb"
    filled_store(path, runs=2)
    content = path.read_bytes()
    counts = compact_module._row_counts

    def one_row_lost(store: Store) -> dict[str, int]:
        found = counts(store)
        if store.path.name.endswith(".compacting"):
            found["runs"] -= 1
        return found

    monkeypatch.setattr(compact_module, "_row_counts", one_row_lost)
    with pytest.raises(StoreError, match="does not hold the same rows \\(tables runs\\)"):
        compact_store(StoreAccess(path, wait=5, program="test"))
    assert path.read_bytes() == content
    assert not (tmp_path / "evalkit.duckdb.compacting").exists()


@pytest.mark.slow
def test_the_command_waits_for_the_writer_and_reports_in_json(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = load_settings().resolved_store_path
    path.parent.mkdir(parents=True, exist_ok=True)
    filled_store(path, runs=3)
    monkeypatch.setenv("EVALKIT_STORE_WAIT", "0.5")
    lock_path = path.with_name(path.name + ".writer.lock")
    lock = FileLock(lock_path, program="other")
    with lock.hold(purpose="job nightly", wait=1):
        # Held as by another process (a wait for this process's own work is told later).
        record = json.loads(lock_path.read_text())
        lock_path.write_text(json.dumps({**record, "pid": record["pid"] + 1}))
        assert invoke(["store", "compact"]) == 3
    waited = " ".join(capsys.readouterr().err.split())
    assert "waiting for the store" in waited
    assert "held by" in waited

    assert invoke(["store", "compact", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["path"] == str(path)
    assert data["bytes_after"] <= data["bytes_before"]
    assert data["rows"] > 0
    assert invoke(["store", "compact"]) == 0
    assert f"compacted {path}: " in " ".join(capsys.readouterr().err.split())


@pytest.mark.slow
def test_it_waits_for_a_reader_and_keeps_the_file_s_mode_and_place(tmp_path: Path) -> None:
    """A reader holding the file (the dashboard, a script) made the compaction fail at once;
    the copy took the default mode, and replaced a symbolic link by a regular file."""
    import subprocess
    import sys
    import time

    target = tmp_path / "data" / "evalkit.duckdb"
    target.parent.mkdir()
    filled_store(target, runs=2)
    target.chmod(0o640)
    link = tmp_path / "evalkit.duckdb"
    link.symlink_to(target)
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True);"
            " print('open', flush=True); time.sleep(3); c.close()",
            str(target),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None
        assert reader.stdout.readline().strip() == "open"
        began = time.monotonic()
        report = compact_store(StoreAccess(link, wait=30, program="test"))
        assert time.monotonic() - began > 1
    finally:
        reader.wait(timeout=30)
    assert report.path == target
    assert link.is_symlink()
    assert link.resolve() == target
    assert target.stat().st_mode & 0o777 == 0o640
    with Store.open(link, read_only=True) as store:
        assert len(list_runs(store)) == 2


def test_the_log_of_a_killed_writer_is_folded_in_and_a_link_shares_the_lock(
    tmp_path: Path,
) -> None:
    """A writer killed by kill -9 leaves DuckDB's write-ahead log: compaction refused until
    something else wrote to the store. And a compaction reached through a symbolic link
    took another lock file than the writers using the real path, so one of their commits
    could land between its copy and its rename, and be lost."""
    import subprocess
    import sys

    from evalkit.store.access import StoreBusyError

    path = tmp_path / "evalkit.duckdb"
    filled_store(path, runs=1)
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import duckdb, os, sys; c = duckdb.connect(sys.argv[1]);"
            " c.execute(\"INSERT INTO run_tags VALUES ('late', 'kept')\"); os._exit(0)",
            str(path),
        ],
        check=False,
    )
    assert killed.returncode == 0
    assert (tmp_path / "evalkit.duckdb.wal").stat().st_size > 0
    compact_store(StoreAccess(path, wait=5, program="test"))
    assert not (tmp_path / "evalkit.duckdb.wal").exists()
    with Store.open(path, read_only=True) as store:
        assert store.fetch("SELECT tag FROM run_tags WHERE run_id = 'late'") == [("kept",)]

    link = tmp_path / "link.duckdb"
    link.symlink_to(path)
    writer = FileLock(path.with_name(path.name + ".writer.lock"), program="serve")
    with writer.hold(purpose="job nightly", wait=1), pytest.raises(StoreBusyError):
        compact_store(StoreAccess(link, wait=0.5, program="test"))


@pytest.mark.parametrize(
    ("terminated", "code", "said"),
    [(False, 130, "interrupted: "), (True, 143, "terminated (SIGTERM): ")],
)
def test_a_signal_during_a_duckdb_query_ends_the_command_as_the_signal_does(
    evalkit_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    terminated: bool,
    code: int,
    said: str,
) -> None:
    """DuckDB raises RuntimeError('Query interrupted') in place of the KeyboardInterrupt or
    SIGTERM that arrived while it ran the copy: a traceback and exit 1."""
    import evalkit.cli as cli

    def copying(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Query interrupted")

    monkeypatch.setattr(compact_module, "compact_store", copying)
    monkeypatch.setitem(cli._signalled, "SIGTERM", terminated)
    assert invoke(["store", "compact"]) == code
    err = capsys.readouterr().err
    assert err.startswith(said)
    assert "Traceback" not in err


def test_a_lock_file_root_creates_in_a_user_s_folder_goes_to_that_user(tmp_path: Path) -> None:
    """`sudo evalkit store compact` (or any writing command run as root) created the writer
    lock root-owned, 0644, in the folder of the service's user, whose own commands then
    failed to open it with a PermissionError."""
    import os

    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    folder = tmp_path / "service"
    folder.mkdir()
    os.chown(folder, 65534, 65534)
    lock = FileLock(folder / "evalkit.duckdb.writer.lock", program="evalkit")
    with lock.hold(purpose="store compact", wait=1):
        pass
    owner = (folder / "evalkit.duckdb.writer.lock").stat()
    assert (owner.st_uid, owner.st_gid) == (65534, 65534)
