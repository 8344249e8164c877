"""The DuckDB store against a real DuckDB file: migrations, goldsets, runs, atomicity, locks."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from store_holder import held_open

from evalkit.cli import invoke
from evalkit.errors import NotFoundError, StoreError
from evalkit.goldset.model import Goldset
from evalkit.records import Judgment, Query, QueryResult, ScoredDoc
from evalkit.scheduler.lock import ServiceInfo, ServiceLock
from evalkit.store import MIGRATIONS, RunSpec, Store
from evalkit.store import goldsets as goldsets_module
from evalkit.store import store as store_module
from evalkit.store.access import StoreAccess
from evalkit.store.goldsets import (
    StoredVersion,
    list_goldsets,
    load_stored_goldset,
    save_goldset,
    save_goldset_version,
)
from evalkit.store.runs import (
    add_query_results,
    create_run,
    fail_run,
    finish_run,
    get_run,
    list_runs,
    query_metrics,
    run_results,
)

DEMO = Path(__file__).resolve().parents[1] / "goldsets" / "demo"


def small_goldset(name: str = "tiny") -> Goldset:
    queries = [
        Query("q2", "second query", tenant="acme", tags=("hard",)),
        Query("q1", "first query", reference_answer="yes", reference_context_ids=("d1",)),
    ]
    judgments = [Judgment("q1", "d1", 2), Judgment("q1", "d2", 0), Judgment("q2", "d3", 1)]
    return Goldset.build(name, queries, judgments, source="test")


def spec(**overrides: object) -> RunSpec:
    values: dict[str, object] = {
        "kind": "goldset",
        "retriever_kind": "fake",
        "k": 10,
        "measures": ("ndcg@10", "recall@10"),
        "evalkit_version": "test",
        "goldset_name": "tiny",
        "n_queries": 2,
    }
    values.update(overrides)
    return RunSpec(**values)  # type: ignore[arg-type]


def result(query_id: str, *doc_ids: str, error: str | None = None) -> QueryResult:
    docs = tuple(ScoredDoc(d, 1.0 - i / 10, i + 1) for i, d in enumerate(doc_ids))
    return QueryResult(query_id, docs, latency_ms=3.5, error=error)


def test_migrations_are_applied_once_and_recorded(tmp_path: Path) -> None:
    path = tmp_path / "s.duckdb"
    with Store.open(path) as first:
        assert first.schema_version() == MIGRATIONS[-1].number
    with Store.open(path) as second:
        assert second.migrate() == []
        assert second.schema_version() == MIGRATIONS[-1].number


def test_a_new_store_is_made_at_once_with_the_schema_the_first_was_migrated_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first new store of a process replays every migration, one transaction each; a
    later one runs the statements of the schema they built in one transaction, and has the
    same tables, columns, constraints, indexes, sequences and migration history."""
    monkeypatch.setattr(store_module, "_NEW_STORE_SCHEMA", {})
    transactions: list[Path] = []
    real_transaction = Store.transaction

    def counted(self: Store):  # type: ignore[no-untyped-def]
        transactions.append(self.path)
        return real_transaction(self)

    monkeypatch.setattr(Store, "transaction", counted)
    catalog = (
        "SELECT table_name, column_index, column_name, data_type, column_default, is_nullable"
        " FROM duckdb_columns() WHERE NOT internal ORDER BY ALL",
        "SELECT table_name, constraint_type, constraint_text FROM duckdb_constraints()"
        " ORDER BY ALL",
        "SELECT table_name, sql FROM duckdb_indexes() ORDER BY ALL",
        "SELECT sql FROM duckdb_sequences() ORDER BY ALL",
        "SELECT number, name FROM schema_migrations ORDER BY ALL",
    )
    made = []
    for name in ("first.duckdb", "second.duckdb"):
        with Store.open(tmp_path / name) as opened:
            made.append(([opened.fetch(sql) for sql in catalog], opened.migrated))
    (first, first_names), (second, second_names) = made
    assert transactions.count(tmp_path / "first.duckdb") == len(MIGRATIONS)
    assert transactions.count(tmp_path / "second.duckdb") == 1
    assert second == first
    assert second_names == first_names == tuple(m.name for m in MIGRATIONS)
    assert len(first[0]) > 400


def test_goldset_round_trip_keeps_order_fields_and_version(store: Store) -> None:
    goldset = small_goldset()
    assert save_goldset(store, goldset) is True
    assert save_goldset(store, goldset) is False
    loaded = load_stored_goldset(store, "tiny")
    assert loaded.version == goldset.version
    assert loaded.query_ids == ("q2", "q1")
    assert loaded.queries[0].tags == ("hard",)
    assert loaded.queries[0].tenant == "acme"
    assert loaded.queries[1].reference_context_ids == ("d1",)
    assert set(loaded.judgments) == set(goldset.judgments)
    assert load_stored_goldset(store, "tiny", goldset.version[:6]).version == goldset.version


def test_a_second_version_becomes_the_default(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = small_goldset()
    second = Goldset.build("tiny", first.queries, (*first.judgments, Judgment("q2", "d9", 3)))
    saved_at = iter([datetime(2026, 11, 20, 9), datetime(2026, 11, 20, 10)])
    monkeypatch.setattr(goldsets_module, "utc_now", lambda: next(saved_at))
    save_goldset(store, first)
    save_goldset(store, second)
    assert [info.version for info in list_goldsets(store, "tiny")] == [
        second.version,
        first.version,
    ]
    assert load_stored_goldset(store, "tiny").version == second.version
    assert load_stored_goldset(store, "tiny", first.version).version == first.version


def test_storing_an_older_version_again_makes_it_current_again(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Re-importing an older version (the ordinary way to undo a bad edit) stored nothing and
    left the bad version current for every run, remap and publish."""
    first = small_goldset()
    second = Goldset.build("tiny", first.queries, (*first.judgments, Judgment("q2", "d9", 3)))
    saved_at = iter([datetime(2026, 11, 20, 9), datetime(2026, 11, 20, 10)])
    # A coarse clock: the third save reads the second's time again.
    monkeypatch.setattr(
        goldsets_module, "utc_now", lambda: next(saved_at, datetime(2026, 11, 20, 10))
    )
    assert save_goldset_version(store, first) == StoredVersion(created=True, was_current=None)
    assert save_goldset_version(store, second) == StoredVersion(True, first.version)
    again = save_goldset_version(store, first)
    assert again == StoredVersion(created=False, was_current=second.version)
    assert again.current_again
    assert load_stored_goldset(store, "tiny").version == first.version
    listed = list_goldsets(store, "tiny")
    assert [(info.version, info.current) for info in listed] == [
        (first.version, True),
        (second.version, False),
    ]
    assert listed[0].imported_at == datetime(2026, 11, 20, 9)
    assert listed[0].current_since > listed[1].current_since
    assert save_goldset_version(store, first) == StoredVersion(created=False, was_current=None)
    assert next(info.version for info in list_goldsets(store, "tiny")) == first.version


def test_import_of_an_older_version_says_it_is_current_again(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folders = {}
    for label, doc_id in (("a", "d1"), ("b", "d2")):
        folder = tmp_path / label
        folder.mkdir()
        (folder / "queries.jsonl").write_text('{"id": "q1", "text": "cat on a mat"}\n')
        (folder / "judgments.jsonl").write_text(
            f'{{"query_id": "q1", "doc_id": "{doc_id}", "relevance": 1}}\n'
        )
        folders[label] = str(folder)
    said = []
    for label in ("a", "b", "a", "a"):
        assert invoke(["goldset", "import", folders[label], "--name", "g"]) == 0
        said.append(" ".join(capsys.readouterr().out.split()))
    a, b = (said[0].split()[3].rstrip(":"), said[1].split()[3].rstrip(":"))
    assert said[2] == (
        f"goldset g version {a}: 1 queries, 1 judgments, already stored; now current again "
        f"(was {b})"
    )
    assert (
        said[3] == f"goldset g version {a}: 1 queries, 1 judgments, already stored (same content)"
    )
    assert invoke(["goldset", "list", "-o", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(row["version"], row["current"]) for row in listed] == [(a, True), (b, False)]
    assert invoke(["goldset", "import", folders["b"], "--name", "g", "-o", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["new_version"], report["was_current"]) == (False, a)
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        assert load_stored_goldset(store, "g").version == b


def test_an_import_that_drops_queries_of_the_current_version_says_so(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A promoted-traffic draft imported under its goldset's name replaced 129 queries with
    4, and the import said only "stored as a new version"."""

    def folder(label: str, query_ids: list[str]) -> str:
        path = tmp_path / label
        path.mkdir()
        (path / "queries.jsonl").write_text(
            "".join(f'{{"id": "{q}", "text": "question {q}"}}\n' for q in query_ids)
        )
        (path / "judgments.jsonl").write_text(
            "".join(f'{{"query_id": "{q}", "doc_id": "d1", "relevance": 1}}\n' for q in query_ids)
        )
        return str(path)

    whole = folder("whole", ["q1", "q2", "q3", "q4", "q5", "q6"])
    draft = folder("draft", ["q6", "t1"])
    assert invoke(["goldset", "import", whole, "--name", "g"]) == 0
    first = capsys.readouterr().out.split()[3].rstrip(":")
    assert invoke(["goldset", "import", draft, "--name", "g"]) == 0
    said = capsys.readouterr()
    assert " ".join(said.err.split()) == (
        f"note: 5 queries of g's version {first} are not in this version, which is current "
        "now, so runs of g no longer ask them: q1, q2, q3 and 2 more. An import replaces a "
        "goldset's queries; to add queries to it, queue them (`evalkit review add PATH "
        "--goldset g`) and publish them (`evalkit goldset publish g`)"
    )
    assert "stored as a new version" in said.out
    assert invoke(["goldset", "import", whole, "--name", "g", "-o", "json"]) == 0
    undone = json.loads(capsys.readouterr().out)
    assert (undone["queries_dropped"], undone["notices"]) == (0, [])
    assert invoke(["goldset", "import", folder("more", ["q1", "q2", "q3"]), "--name", "h"]) == 0
    assert capsys.readouterr().err == ""


def test_a_run_of_an_older_version_leaves_the_current_version_current(
    evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`goldset publish` and `goldset remap` build on the current version: running an older
    one to compare made it current, so the next publish dropped the newer version's content."""
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"id": "d1", "text": "cat on a mat"}\n{"id": "d2", "text": "a dog"}\n')
    index = tmp_path / "bm25"
    assert invoke(["index", "--kind", "bm25", "--corpus", str(corpus), "--out", str(index)]) == 0
    capsys.readouterr()
    versions = []
    for label, doc_id in (("a", "d1"), ("b", "d2")):
        folder = tmp_path / label
        folder.mkdir()
        (folder / "queries.jsonl").write_text('{"id": "q1", "text": "cat on a mat"}\n')
        (folder / "judgments.jsonl").write_text(
            f'{{"query_id": "q1", "doc_id": "{doc_id}", "relevance": 1}}\n'
        )
        assert invoke(["goldset", "import", str(folder), "--name", "g", "-o", "json"]) == 0
        versions.append(json.loads(capsys.readouterr().out)["version"])
    older, newer = versions
    bm25 = ["--retriever", "bm25", "--option", f"index={index}", "--format", "json"]

    assert invoke(["run", "--goldset", "g", "--goldset-version", older[:6], *bm25]) == 0
    assert json.loads(capsys.readouterr().out)["goldset_version"] == older
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        assert load_stored_goldset(store, "g").version == newer
    # Goldset files are stored as an import stores them: an older checkout is current again.
    assert invoke(["run", "--goldset", str(tmp_path / "a"), *bm25]) == 0
    capsys.readouterr()
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        assert load_stored_goldset(store, "a").version == older


def test_a_store_migrated_from_before_current_since_keeps_its_newest_import_current(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.duckdb"
    first = small_goldset()
    second = Goldset.build("tiny", first.queries, first.judgments[:2])
    with monkeypatch.context() as older_release:
        older_release.setattr(store_module, "MIGRATIONS", MIGRATIONS[:19])
        with Store.open(path) as old, old.transaction() as con:
            for version, at in (
                (second.version, "2026-11-20 10:00"),
                (first.version, "2026-11-20 09:00"),
            ):
                con.execute(
                    "INSERT INTO goldsets VALUES ('tiny', ?, 'test', ?, 2, 2)", [version, at]
                )
    with Store.open(path) as upgraded:
        listed = list_goldsets(upgraded, "tiny")
    assert [(info.version, info.current) for info in listed] == [
        (second.version, True),
        (first.version, False),
    ]
    assert [info.current_since for info in listed] == [info.imported_at for info in listed]


def test_unknown_goldset_and_run_say_what_exists(store: Store) -> None:
    save_goldset(store, small_goldset())
    with pytest.raises(NotFoundError, match="stored: tiny"):
        load_stored_goldset(store, "nope")
    with pytest.raises(NotFoundError, match="evalkit runs list"):
        get_run(store, "missing")


def finish_two_query_run(store: Store, run_id: str) -> None:
    """Finish run ``run_id`` of q1 and q2 complete, with ndcg@10 1.0 and 0.5, recall@10 1."""
    per_query = pd.DataFrame(
        {"ndcg@10": [1.0, 0.5], "recall@10": [1.0, 1.0]}, index=pd.Index(["q1", "q2"])
    )
    finish_run(
        store,
        run_id,
        status="complete",
        per_query=per_query,
        aggregates={"ndcg@10": 0.75, "recall@10": 1.0},
        n_evaluated=2,
        n_total=2,
        n_failed=0,
    )


def test_run_lifecycle_running_then_complete(store: Store) -> None:
    run_id = create_run(store, spec())
    assert get_run(store, run_id).status == "running"
    add_query_results(store, run_id, [result("q1", "d1", "d2"), result("q2", "d3")])
    finish_two_query_run(store, run_id)
    run = get_run(store, run_id[:17])
    assert run.status == "complete"
    assert run.finished_at is not None
    assert dict(run.aggregates) == {"ndcg@10": 0.75, "recall@10": 1.0}
    values = query_metrics(store, run_id)
    assert list(values.columns) == ["ndcg@10", "recall@10"]
    assert values.loc["q2", "ndcg@10"] == pytest.approx(0.5)
    docs = run_results(store, run_id)
    assert docs[docs.query_id == "q1"].doc_id.tolist() == ["d1", "d2"]
    assert list_runs(store, goldset="tiny")[0].run_id == run_id


def test_a_crash_while_finishing_leaves_no_metrics_and_a_running_run(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = create_run(store, spec())
    add_query_results(store, run_id, [result("q1", "d1")])
    real_insert = store.insert_frame

    def fail_on_aggregates(table: str, frame: pd.DataFrame) -> None:
        if table == "run_aggregates":
            raise OSError("No space left on device")
        real_insert(table, frame)

    monkeypatch.setattr(store, "insert_frame", fail_on_aggregates)
    with pytest.raises(OSError, match="No space"):
        finish_run(
            store,
            run_id,
            status="complete",
            per_query=pd.DataFrame({"ndcg@10": [1.0]}, index=["q1"]),
            aggregates={"ndcg@10": 1.0},
            n_evaluated=1,
            n_total=1,
            n_failed=0,
        )
    run = get_run(store, run_id)
    assert run.status == "running"
    assert query_metrics(store, run_id).empty
    assert dict(run.aggregates) == {}
    fail_run(store, run_id, "disk full")
    assert get_run(store, run_id).status == "failed"
    assert len(run_results(store, run_id)) == 1


def test_read_only_store_must_exist_and_refuses_writes(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="make demo"):
        Store.open(tmp_path / "absent.duckdb", read_only=True)
    Store.open(tmp_path / "s.duckdb").close()
    with (
        Store.open(tmp_path / "s.duckdb", read_only=True) as reader,
        pytest.raises(StoreError, match="read-only"),
    ):
        create_run(reader, spec())


def test_a_second_writer_process_gets_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.duckdb"
    Store.open(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from evalkit.store import Store
                store = Store.open({str(path)!r})
                print("holding", flush=True)
                time.sleep(30)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(StoreError, match="held by another writing process"):
            Store.open(path)
    finally:
        holder.kill()
        holder.wait()


def test_a_store_this_process_holds_open_another_way_is_named_as_the_holder(
    tmp_path: Path,
) -> None:
    """docs/export.md holds a read-only Store open; opening the store to write in the same
    process said only DuckDB's `different configuration than existing connections`."""
    path = tmp_path / "held.duckdb"
    Store.open(path).close()
    with Store.open(path, read_only=True):
        with pytest.raises(StoreError, match="another Store of this process holds it open"):
            Store.open(path)
        writer = StoreAccess(path, wait=1, program="a notebook").writer("a run")
        with pytest.raises(StoreError, match="close that Store first"), writer:
            pass
    with Store.open(path), pytest.raises(StoreError, match="another Store of this process"):
        Store.open(path, read_only=True)


def _duckdb_reports(limit: str) -> str:
    import duckdb

    connection = duckdb.connect(":memory:", config={"memory_limit": limit})
    try:
        return str(connection.execute("SELECT current_setting('memory_limit')").fetchone()[0])
    finally:
        connection.close()


def test_the_store_memory_limit_reaches_duckdb_from_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalkit.cli._store import open_store
    from evalkit.config import load_settings

    def limit_of(store: Store) -> str:
        return str(store.fetch("SELECT current_setting('memory_limit')")[0][0])

    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EVALKIT_STORE_PATH", raising=False)
    monkeypatch.setenv("EVALKIT_STORE_MEMORY_LIMIT", "300MB")
    settings = load_settings()
    with open_store(write=True, purpose="test", config=settings) as store:
        assert limit_of(store) == _duckdb_reports("300MB")
    with open_store(write=False, purpose="test", config=settings) as store:
        assert limit_of(store) == _duckdb_reports("300MB")
    # The default bounds the store too, well under DuckDB's own 80 % of the RAM.
    monkeypatch.delenv("EVALKIT_STORE_MEMORY_LIMIT")
    with open_store(write=False, purpose="test", config=load_settings()) as store:
        assert limit_of(store) == _duckdb_reports("1GB")
    with Store.open(tmp_path / "home" / "evalkit.duckdb", read_only=True) as store:
        assert limit_of(store) != _duckdb_reports("1GB")


def test_a_store_memory_limit_that_is_no_size_is_refused_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EVALKIT_STORE_MEMORY_LIMIT", "plenty")
    completed = subprocess.run(
        [sys.executable, "-m", "evalkit", "runs", "list"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2, completed.stderr
    assert "environment variable EVALKIT_STORE_MEMORY_LIMIT: " in completed.stderr
    assert "must be a size such as 512MB" in completed.stderr


def _store_of_schema_19(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as older_release:
        older_release.setattr(store_module, "MIGRATIONS", MIGRATIONS[:19])
        with Store.open(home / "evalkit.duckdb") as old:
            assert old.schema_version() == 19


@pytest.fixture
def read_only_mount(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A folder and a read-only bind mount of it (root only)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a read-only bind mount needs root")
    source, mount = tmp_path / "rw", tmp_path / "ro"
    source.mkdir()
    mount.mkdir()
    for command in (
        ["mount", "--bind", str(source), str(mount)],
        ["mount", "-o", "remount,ro,bind", str(mount)],
    ):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)
            pytest.skip(f"cannot bind-mount read-only here: {done.stderr.strip()}")
    try:
        yield source, mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_an_older_store_is_migrated_by_store_migrate_which_readers_name(
    evalkit_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Readers asked for "any writing evalkit command" to be run, naming none, and there
    was no command whose only work is migrating."""
    _store_of_schema_19(evalkit_home, monkeypatch)
    path = evalkit_home / "evalkit.duckdb"
    latest = MIGRATIONS[-1].number
    assert invoke(["runs", "list"]) == 3
    assert capsys.readouterr().err.strip() == (
        f"error: the store {path} has schema version 19, this evalkit needs {latest}: run "
        "`evalkit store migrate` once to migrate it"
    )
    assert invoke(["store", "migrate"]) == 0
    names = ", ".join(m.name for m in MIGRATIONS[19:])
    assert capsys.readouterr().err.strip() == (
        f"migrated {path} to schema version {latest}: applied {names}"
    )
    assert invoke(["store", "migrate", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "path": str(path),
        "schema_version": latest,
        "applied": [],
    }
    assert invoke(["store", "migrate"]) == 0
    assert capsys.readouterr().err.strip() == (
        f"the store {path} is current (schema version {latest})"
    )
    assert invoke(["runs", "list"]) == 0


def test_store_migrate_says_to_restart_the_older_evalkit_serve_still_running(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An evalkit serve started before the upgrade goes on with the old evalkit on the
    migrated store, and `evalkit jobs run` hands it the jobs: migrate said nothing of it."""
    _store_of_schema_19(evalkit_home, monkeypatch)
    path = evalkit_home / "evalkit.duckdb"
    service = ServiceLock(path)
    service.acquire()
    try:
        service.publish(ServiceInfo(4242, "http://127.0.0.1:8765", "2026-11-24T08:00:00Z", True))
        assert invoke(["store", "migrate"]) == 0
        assert capsys.readouterr().err.strip().splitlines()[1:] == [
            "note: evalkit serve (pid 4242, started 2026-11-24T08:00:00Z) is running on this "
            "store with the evalkit it was started with, older than the store now: restart it "
            "(stop it, then `evalkit serve`) so that its jobs and alert rules run this evalkit"
        ]
        # A store already current changes nothing the service reads.
        assert invoke(["store", "migrate"]) == 0
        assert "note:" not in capsys.readouterr().err
    finally:
        service.release()


def test_an_older_store_on_a_read_only_mount_says_to_migrate_a_copy(
    read_only_mount: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """It was told to run a writing command, which cannot work on a read-only mount."""
    source, mount = read_only_mount
    _store_of_schema_19(source, monkeypatch)
    monkeypatch.setenv("EVALKIT_HOME", str(mount))
    monkeypatch.delenv("EVALKIT_STORE_PATH", raising=False)
    monkeypatch.delenv("EVALKIT_CONFIG", raising=False)
    assert invoke(["runs", "list"]) == 3
    err = " ".join(capsys.readouterr().err.split())
    assert err == (
        f"error: the store {mount / 'evalkit.duckdb'} has schema version 19, this evalkit "
        f"needs {MIGRATIONS[-1].number}, and it cannot be migrated where it is: it is "
        "read-only here (a read-only file, folder or mount). Copy it somewhere writable and "
        "run `evalkit store migrate` with EVALKIT_STORE_PATH set to the copy, then read the copy"
    )


def test_a_writing_command_on_a_read_only_mount_names_the_store_and_says_it_is_read_only(
    read_only_mount: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """It said only `[Errno 30] Read-only file system: '.../evalkit.duckdb.writer.lock'`."""
    source, mount = read_only_mount
    with Store.open(source / "evalkit.duckdb") as store:
        save_goldset(store, small_goldset())
    monkeypatch.setenv("EVALKIT_HOME", str(mount))
    monkeypatch.delenv("EVALKIT_STORE_PATH", raising=False)
    monkeypatch.delenv("EVALKIT_CONFIG", raising=False)
    assert invoke(["store", "migrate"]) == 3
    err = " ".join(capsys.readouterr().err.split())
    store_path = mount / "evalkit.duckdb"
    assert err == (
        f"error: the store {store_path} cannot be written: it is on a read-only file system "
        f"(its writer lock {store_path}.writer.lock: Read-only file system). Reading commands "
        "work on it as it is; to write, use a writable copy (EVALKIT_STORE_PATH)"
    )
    assert invoke(["goldset", "list"]) == 0


def _damaged(path: Path, how: str) -> None:
    """Damage the closed store at ``path`` as a full disk or a storage fault does."""
    size = path.stat().st_size
    if how == "cut short":
        with path.open("r+b") as file:
            file.truncate(4096)
        return
    # Past DuckDB's three header blocks: the first block a query reads no longer matches
    # its checksum, while the file still opens.
    with path.open("r+b") as file:
        file.seek(3 * 4096)
        file.write(bytes(range(256)) * ((size - 3 * 4096) // 256))


@pytest.mark.parametrize("how", ["cut short", "overwritten"])
def test_a_damaged_store_is_named_as_damaged_and_left_as_it_was(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    """It said `cannot open the store ...: IO Error: Could not read enough bytes from file
    ...: attempted to read 4096 bytes from location 4096`, or `store query failed`, and
    nothing of what to do; the dashboard took a checksum error's "block" for a writer's
    lock and asked to reload when the writer was done."""
    path = evalkit_home / "evalkit.duckdb"
    with Store.open(path) as store:
        save_goldset(store, small_goldset())
    _damaged(path, how)
    before = path.read_bytes()
    for command in (["goldset", "list"], ["store", "migrate"]):
        assert invoke(command) == 3
        err = " ".join(capsys.readouterr().err.split())
        assert err.startswith(f"error: the store {path} is damaged or not a DuckDB file (")
        assert err.endswith(
            "evalkit changed nothing in it. If it is the store, it was cut short or "
            "overwritten (a full disk, a copy that stopped part-way, a storage fault) and "
            "evalkit cannot repair it: keep it aside and restore it from a copy. Else point "
            "EVALKIT_STORE_PATH at the store"
        )
        assert "Traceback" not in err
    assert path.read_bytes() == before


def test_a_killed_writers_log_is_read_and_a_damaged_one_is_named_with_what_to_do(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A damaged write-ahead log was reported as `cannot open the store ...: Failure while
    replaying WAL file ...`, with no word of the log being the trouble or of the store
    opening without it."""
    path = evalkit_home / "evalkit.duckdb"
    with Store.open(path) as store:
        save_goldset(store, small_goldset("kept"))
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import os, signal, sys
                from evalkit.store import Store
                from evalkit.store.goldsets import save_goldset
                from test_store import small_goldset
                store = Store.open(sys.argv[1])
                store.execute("PRAGMA disable_checkpoint_on_shutdown")
                save_goldset(store, small_goldset("logged"))
                os.kill(os.getpid(), signal.SIGKILL)
                """
            ),
            str(path),
        ],
        cwd=Path(__file__).parent,
        check=False,
    )
    assert killed.returncode == -9
    log = path.with_name("evalkit.duckdb.wal")
    assert log.stat().st_size > 100
    assert invoke(["goldset", "list", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(g["name"] for g in listed) == ["kept", "logged"]

    with log.open("r+b") as file:
        file.seek(60)
        file.write(b"\xff" * 16)
    assert invoke(["goldset", "list"]) == 3
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith(f"error: the write-ahead log {log} of the store {path} is damaged (")
    assert err.endswith(
        "evalkit changed neither file. A writer was killed or the disk failed as it wrote "
        "the log: the store opens without it, as of its last checkpoint but without the "
        "writes the log holds, once evalkit.duckdb.wal is moved aside (keep it); or restore "
        "both files from a copy"
    )
    log.rename(tmp := log.with_name("kept.wal"))
    assert invoke(["goldset", "list", "--format", "json"]) == 0
    assert [g["name"] for g in json.loads(capsys.readouterr().out)] == ["kept"]
    assert tmp.exists()


def _evalkit_limited(
    home: Path, max_file_bytes: int, *args: str
) -> subprocess.CompletedProcess[str]:
    """`evalkit ARGS` in a process that may write no file past ``max_file_bytes``
    (RLIMIT_FSIZE), where a write fails as on a full disk; no root or mount needed."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    return subprocess.run(
        [sys.executable, "-m", "evalkit", *args],
        env={**os.environ, "EVALKIT_HOME": str(home)},
        capture_output=True,
        text=True,
        preexec_fn=limit,
        check=False,
    )


def test_a_migration_the_disk_stops_says_where_the_store_stands_and_migrate_goes_on(
    evalkit_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It said only DuckDB's `Failed to commit: Could not write file ...`: nothing of
    whether the upgrade had left the store half-changed or of what to run next."""
    with monkeypatch.context() as older_release:
        older_release.setattr(store_module, "MIGRATIONS", MIGRATIONS[:4])
        with Store.open(evalkit_home / "evalkit.duckdb") as old:
            old.execute("INSERT INTO goldsets VALUES ('tiny', 'v1', 'test', '2026-11-01', 2, 3)")
    path = evalkit_home / "evalkit.duckdb"
    stopped = _evalkit_limited(evalkit_home, 8 * 1024, "store", "migrate")
    assert stopped.returncode == 3, stopped.stderr
    err = " ".join(stopped.stderr.split())
    assert "Traceback" not in err
    with duckdb.connect(str(path), read_only=True) as con:
        reached = con.execute("SELECT max(number) FROM schema_migrations").fetchall()[0][0]
        assert con.execute("SELECT name FROM goldsets").fetchall() == [("tiny",)]
    assert 4 <= reached < MIGRATIONS[-1].number
    failed = MIGRATIONS[reached]
    assert err.startswith(f"error: migration {failed.number} ({failed.name}) failed on {path}: ")
    assert err.endswith(
        f"File too large. The store stays at schema version {reached}, as the migrations "
        "before this one left it (this one was rolled back); once the cause is mended (free "
        "space on a full disk, for one), `evalkit store migrate` goes on from there"
    )
    assert invoke(["store", "migrate"]) == 0
    with Store.open(path, read_only=True) as upgraded:
        assert upgraded.schema_version() == MIGRATIONS[-1].number
        assert [g.name for g in list_goldsets(upgraded)] == ["tiny"]


def test_a_store_the_disk_stopped_creating_is_not_left_behind_as_damaged(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """DuckDB's first block of a new store was left on disk: every later command, with
    space again, refused the store as a file it could not read."""
    stopped = _evalkit_limited(evalkit_home, 4096, "goldset", "import", str(DEMO), "--name", "demo")
    assert stopped.returncode == 3, stopped.stderr
    assert "File too large" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert not (evalkit_home / "evalkit.duckdb").exists()
    assert invoke(["goldset", "import", str(DEMO), "--name", "demo"]) == 0, capsys.readouterr()


def test_a_reader_that_waited_in_vain_names_the_process_holding_the_store(
    tmp_path: Path,
) -> None:
    """It said "written by another process ...; try again later", where a writer that
    waited in vain named the holder's pid."""
    path = tmp_path / "held.duckdb"
    Store.open(path).close()
    access = StoreAccess(path, wait=0.3, program="test")
    with (
        held_open(path) as pid,
        pytest.raises(StoreError, match=rf"more than 0.3 s \(.*PID {pid}\)"),
        access.reader(),
    ):
        pass


def test_a_failed_write_is_rolled_back_and_said_as_what_failed(store: Store) -> None:
    """``Store.writing``: a DuckDB error inside becomes a StoreError naming the work, and
    nothing of the block stays."""

    def write_two_tags() -> None:
        with store.writing(f"cannot store the tags in {store.path}") as con:
            con.execute("INSERT INTO run_tags (run_id, tag) VALUES ('r1', 'a')")
            con.execute("INSERT INTO run_tags (run_id, tag) VALUES ('r1', NULL)")

    with pytest.raises(StoreError, match=r"^cannot store the tags in .*: .*run_tags") as failed:
        write_two_tags()
    assert isinstance(failed.value.__cause__, duckdb.Error)
    assert store.fetch("SELECT count(*) FROM run_tags") == [(0,)]


def test_a_row_is_found_by_its_id_or_a_unique_prefix_of_it(store: Store) -> None:
    for run_id in ("20261121T183500-3f9a1c", "20261121T183500-3f9a1d", "20261122T000000-000000"):
        create_run(store, spec(), run_id=run_id)
    sql = "SELECT run_id FROM runs WHERE starts_with(run_id, ?) ORDER BY run_id"

    def found(prefix: str) -> object:
        return store.fetch_by_prefix(sql, prefix, missing="none", what="run")[0]

    assert found("20261122") == "20261122T000000-000000"
    assert found("20261121T183500-3f9a1d") == "20261121T183500-3f9a1d"
    with pytest.raises(NotFoundError, match=r"^run id prefix '20261121' is ambiguous: 2026"):
        found("20261121")
    with pytest.raises(NotFoundError, match=r"^none$"):
        found("1999")
