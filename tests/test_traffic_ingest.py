"""Traffic ingest against a real DuckDB store: idempotence, torn lines, garbage, rotation."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import multiprocessing
import os
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit.cli import invoke
from evalkit.errors import ConfigError, InputError, StoreError
from evalkit.records import ScoredDoc
from evalkit.store import Store
from evalkit.store.traffic import (
    IngestTransaction,
    commit_ingest_batch,
    record_count,
)
from evalkit.traffic import Redaction, format_log_line, ingest_paths, log_query, watch
from evalkit.traffic import ingest as ingest_module
from evalkit.traffic._records import RECORD_SCHEMA, dedup_text


def open_store(path: Path) -> Store:
    return Store.open(path)


def line(query_id: str, text: str = "how do I reset my password", **extra: Any) -> str:
    record = {"query_id": query_id, "timestamp": "2026-11-21T10:00:00Z", "text": text, **extra}
    return json.dumps(record) + "\n"


def stored(store: Store) -> list[tuple[Any, ...]]:
    return store.fetch("SELECT query_id, line FROM traffic_records ORDER BY line, query_id")


def test_ingesting_twice_stores_each_record_once(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "traffic.jsonl"
    log.write_text("".join(line(f"q{i}") for i in range(5)))
    first = ingest_paths(store, [log])
    second = ingest_paths(store, [log])
    assert (first.records_added, first.lines_read) == (5, 5)
    assert first.files[0].status == "new"
    assert (second.records_added, second.lines_read) == (0, 0)
    assert second.files[0].status == "unchanged"
    assert record_count(store) == 5
    with log.open("a") as handle:
        handle.write(line("q5") + line("q6"))
    third = ingest_paths(store, [log])
    assert (third.records_added, third.files[0].status) == (2, "resumed")
    assert stored(store) == [(f"q{i}", i + 1) for i in range(7)]


def test_garbage_lines_are_reported_by_line_and_the_rest_ingested(
    store: Store, tmp_path: Path
) -> None:
    log = tmp_path / "mixed.jsonl"
    log.write_text(
        line("q1")
        + "this is not json\n"
        + line("q2")
        + "\n"  # blank lines are skipped, not malformed
        + '{"query_id": "q3", "timestamp": "2026-11-21T10:00:00Z"}\n'
        + '["an", "array"]\n'
        + line("q4", latency_ms=-3)
        + line("q5", timestamp="yesterday-ish")
        + '{"query_id": "q6", "timestamp": "2026-11-21T10:00:00Z", "text": "   "}\n'
        + line("q7", results=[{"doc_id": "d1", "score": "high"}])
        + line("q8", tenant="acme")
    )
    report = ingest_paths(store, [log])
    assert stored(store) == [("q1", 1), ("q2", 3), ("q8", 11)]
    assert report.malformed == 8 - 1  # eight bad lines minus the blank one
    by_line = {problem.line: problem.message for problem in report.problems}
    assert sorted(by_line) == [2, 5, 6, 7, 8, 9, 10]
    assert all(problem.path == str(log) for problem in report.problems)
    assert "not valid JSON" in by_line[2]
    assert "missing required field `text`" in by_line[5]
    assert "`object`" in by_line[6]
    assert "latency_ms" in by_line[7]
    assert "timestamp" in by_line[8]
    assert "text" in by_line[9]
    assert "score" in by_line[10]
    problems = store.fetch("SELECT line FROM traffic_ingest_problems ORDER BY line")
    assert [row[0] for row in problems] == [2, 5, 6, 7, 8, 9, 10]


def test_a_field_given_twice_is_reported_by_file_and_line(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "twice.jsonl"
    twice = line("dd10", tenant="acme")[:-2] + ', "tenant": "evil"}\n'
    log.write_text(line("q1") + twice + line("q2"))
    report = ingest_paths(store, [log])
    assert [str(problem) for problem in report.problems] == [
        f"{log}:2: invalid record: `tenant` appears twice in one object; keep one - at `$.tenant`"
    ]
    assert stored(store) == [("q1", 1), ("q2", 3)]


def test_deeply_nested_lines_are_reported_by_line_and_the_rest_ingested(
    store: Store, tmp_path: Path
) -> None:
    log = tmp_path / "deep.jsonl"
    nested = "[" * 3000 + "]" * 3000
    deep_tags = line("d1")[:-2] + f', "tags": {nested}}}\n'
    deep_extra = line("d2", tags={"team": "a"})[:-2] + f', "extra": {nested}}}\n'
    lines = [deep_tags, *(line(f"q{i}", tags={"team": "a"}) for i in range(2, 201)), deep_extra]
    lines[2] = deep_extra
    log.write_text("".join(lines))
    report = ingest_paths(store, [log])
    assert [(p.path, p.line, p.message) for p in report.problems] == [
        (str(log), 1, "invalid record: Expected `object | null`, got `array` - at `$.tags`"),
        (str(log), 3, "not valid JSON (nests arrays and objects too deeply to read)"),
        (str(log), 201, "not valid JSON (nests arrays and objects too deeply to read)"),
    ]
    assert report.records_added == 198
    assert ("q2", 2) in stored(store)


def test_a_line_that_is_not_utf8_is_reported_not_raised(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "latin1.jsonl"
    written_in_latin1 = json.dumps(
        {"query_id": "q1", "timestamp": "2026-11-21", "text": "café"}, ensure_ascii=False
    )
    log.write_bytes(written_in_latin1.encode("latin-1") + b"\n" + line("q2").encode())
    report = ingest_paths(store, [log])
    assert stored(store) == [("q2", 2)]
    assert [(p.line, p.message) for p in report.problems] == [
        (1, "not valid JSON (a string is not valid UTF-8)")
    ]


def test_problem_messages_never_quote_the_data(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "pii.jsonl"
    log.write_text(
        line("q1", timestamp="jane.doe@example.com")
        + '{"query_id": "q2", "timestamp": "2026-11-21T10:00:00Z", "text": 4155550100}\n'
        + '{"query_id": "q3", "text": "call jane.doe@example.com", "timestamp": \n'
    )
    report = ingest_paths(store, [log])
    assert report.malformed == 3
    for problem in report.problems:
        assert "jane" not in problem.message
        assert "4155550100" not in problem.message


def test_a_line_being_written_is_left_whole_for_the_next_pass(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "live.jsonl"
    full = line("q2", "what is the refund policy")
    log.write_text(line("q1") + full[:25])
    first = ingest_paths(store, [log])
    assert first.records_added == 1
    assert first.malformed == 0
    assert first.files[0].pending_bytes == 25
    with log.open("a") as handle:
        handle.write(full[25:] + line("q3"))
    second = ingest_paths(store, [log])
    assert (second.records_added, second.malformed) == (2, 0)
    assert stored(store) == [("q1", 1), ("q2", 2), ("q3", 3)]
    texts = dict(store.fetch("SELECT query_id, text FROM traffic_records"))
    assert texts["q2"] == "what is the refund policy"


def test_a_complete_last_line_without_newline_is_taken_once(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "unterminated.jsonl"
    log.write_text(line("q1") + line("q2").rstrip("\n"))
    assert ingest_paths(store, [log]).records_added == 2
    with log.open("a") as handle:
        handle.write("\n" + "garbage\n" + line("q3"))
    report = ingest_paths(store, [log])
    assert report.records_added == 1
    # Line numbers stay true: the garbage is line 3, q3 line 4.
    assert [(p.line, p.path) for p in report.problems] == [(3, str(log))]
    assert stored(store) == [("q1", 1), ("q2", 2), ("q3", 4)]


def test_repeated_query_ids_are_stored_once(store: Store, tmp_path: Path) -> None:
    first = tmp_path / "a.jsonl"
    second = tmp_path / "b.jsonl"
    first.write_text(line("q1", "first") + line("q1", "again") + line("q2"))
    second.write_text(line("q2", "elsewhere") + line("q3"))
    report = ingest_paths(store, [first, second])
    assert report.records_added == 3
    assert report.duplicates == 2
    texts = dict(store.fetch("SELECT query_id, text FROM traffic_records"))
    assert texts["q1"] == "first"


def test_rotation_by_rename_resumes_and_a_new_file_starts_fresh(
    store: Store, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    current = logs / "app.jsonl"
    current.write_text(line("q1") + line("q2"))
    assert ingest_paths(store, [logs]).records_added == 2
    with current.open("a") as handle:
        handle.write(line("q3"))
    current.rename(logs / "app.jsonl.1")
    current.write_text(line("q4"))
    (logs / "app.jsonl.2.gz").write_bytes(b"\x1f\x8b compressed")
    report = ingest_paths(store, [logs])
    statuses = {Path(f.path).name: (f.status, f.records_added) for f in report.files}
    assert statuses["app.jsonl.1"] == ("resumed", 1)
    assert statuses["app.jsonl"] == ("new", 1)
    assert statuses["app.jsonl.2.gz"][0] == "skipped"
    assert record_count(store) == 4


@pytest.mark.parametrize(
    ("compress", "name"),
    [(gzip.compress, "gzip"), (bz2.compress, "bzip2"), (lzma.compress, "xz")],
)
def test_a_compressed_log_under_a_plain_name_is_skipped_as_compressed(
    store: Store, tmp_path: Path, compress: Callable[[bytes], bytes], name: str
) -> None:
    log = tmp_path / "old.jsonl"
    log.write_bytes(compress(line("q1").encode()))
    for _ in range(2):
        report = ingest_paths(store, [log])
        assert [(f.kind, f.status, f.pending_bytes) for f in report.files] == [
            ("compressed", "skipped", 0)
        ]
        assert report.files[0].note == (
            f"compressed logs are not read: the file holds {name} data; decompress it, or "
            "ingest files before rotating them into compression"
        )
    assert record_count(store) == 0


def test_truncation_is_detected_and_read_from_the_start(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "copytruncate.jsonl"
    log.write_text(line("q1") + line("q2") + line("q3"))
    ingest_paths(store, [log])
    with log.open("w") as handle:  # same inode, new content
        handle.write(line("q4"))
    report = ingest_paths(store, [log])
    assert report.files[0].status == "restarted"
    assert report.records_added == 1
    assert record_count(store) == 4


def test_a_crash_mid_file_neither_loses_nor_repeats(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "big.jsonl"
    log.write_text("".join(line(f"q{i}") for i in range(10)))
    real_finish = IngestTransaction.finish
    calls = {"n": 0}

    def failing_finish(self: IngestTransaction, **kwargs: Any) -> None:
        # The second batch's records are in its transaction by now: they must go with it.
        calls["n"] += 1
        if calls["n"] == 2:
            assert self.inserted == 4
            raise StoreError("disk full")
        real_finish(self, **kwargs)

    monkeypatch.setattr(IngestTransaction, "finish", failing_finish)
    with pytest.raises(StoreError, match="disk full"):
        ingest_paths(store, [log], batch_lines=4)
    assert record_count(store) == 4
    monkeypatch.setattr(IngestTransaction, "finish", real_finish)
    report = ingest_paths(store, [log], batch_lines=4)
    assert report.records_added == 6
    assert report.duplicates == 0
    assert stored(store) == [(f"q{i}", i + 1) for i in range(10)]


def test_fields_are_stored_and_times_normalised_to_utc(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "fields.jsonl"
    log.write_text(
        line(
            "q1",
            timestamp="2026-11-21T12:30:00+02:00",
            tenant="acme",
            tags={"locale": "fr", "beta": True},
            results=[{"doc_id": "d1", "score": 0.9}, "d2", {"doc_id": "7"}],
            answer="Open settings",
            contexts=["ctx one", "ctx two"],
            latency_ms=12,
        )
        + line("q2", timestamp=1_763_726_400)  # epoch seconds: 2025-11-21T12:00:00Z
        + line("q3", timestamp=1_763_726_400_000)  # milliseconds: refused
        + line(1234, timestamp="2026-11-21")  # type: ignore[arg-type]
    )
    report = ingest_paths(store, [log])
    assert report.records_added == 3
    assert "milliseconds" in report.problems[0].message
    rows = store.fetch(
        "SELECT query_id, ts, tenant, tags, logged_doc_ids, logged_scores, answer, contexts,"
        " latency_ms FROM traffic_records ORDER BY line"
    )
    assert rows[0] == (
        "q1",
        datetime(2026, 11, 21, 10, 30),
        "acme",
        '{"beta":"true","locale":"fr"}',
        ["d1", "d2", "7"],
        [0.9, None, None],
        "Open settings",
        ["ctx one", "ctx two"],
        12.0,
    )
    assert rows[1][:2] == ("q2", datetime(2025, 11, 21, 12))
    assert rows[2][:2] == ("1234", datetime(2026, 11, 21))
    assert rows[1][2:] == (None, None, None, None, None, None, None)


def test_unknown_fields_are_counted(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "typo.jsonl"
    log.write_text(line("q1", tennant="acme") + line("q2", tennant="acme", user="u1"))
    report = ingest_paths(store, [log])
    assert report.records_added == 2
    assert report.unknown_fields == {"tennant": 2, "user": 1}


def test_redaction_masks_patterns_and_drops_fields(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "pii.jsonl"
    log.write_text(
        line(
            "q1",
            "mail jane.doe@example.co.uk or call +44 20 7946 0958 about order 42",
            answer="we wrote to jane@example.com",
            contexts=["account 12345678", "no digits"],
            tags={"user": "jane"},
        )
        + line("q2", "nothing personal")
    )
    redaction = Redaction.build(patterns=["email", "number"], custom=["jane"], drop=["tags"])
    report = ingest_paths(store, [log], redaction=redaction)
    assert report.records_added == 2
    rows = store.fetch("SELECT text, answer, contexts, tags FROM traffic_records ORDER BY query_id")
    assert rows[0] == (
        "mail <email> or call <number> about order <number>",
        "we wrote to <email>",
        ["account <number>", "no digits"],
        None,
    )
    assert rows[1] == ("nothing personal", None, None, None)
    assert report.redaction == {"patterns": ["email", "number", "custom1"], "drop": ["tags"]}


def test_redaction_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="unknown redaction pattern 'phone'"):
        Redaction.build(patterns=["phone"])
    with pytest.raises(ConfigError, match="not a valid RE2"):
        Redaction.build(custom=["(unclosed"])
    with pytest.raises(ConfigError, match="cannot be dropped"):
        Redaction.build(drop=["tenant"])


def test_a_later_pattern_never_matches_inside_an_earlier_placeholder() -> None:
    """Masked as <redacted>, "mail" must not turn an <email> put there before into
    <e<redacted>>, nor a digit pattern a mark's own characters."""
    redaction = Redaction.build(patterns=["email", "number"], custom=["mail", "d"])
    table = pa.table({"text": ["mail bob@example.com, call +1 555 0100 on day 3", None]})
    masked = redaction.apply(table).column("text").to_pylist()
    assert masked == ["<redacted> <email>, call <number> on <redacted>ay <number>", None]


def test_parquet_with_the_same_columns_is_ingested_once(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "traffic.parquet"
    table = pa.table(
        {
            "query_id": ["p1", "p2", "p3"],
            "timestamp": pa.array(
                [datetime(2026, 11, 21, 9, tzinfo=UTC)] * 3, pa.timestamp("us", tz="UTC")
            ),
            "text": ["first", None, "third"],
            "tenant": ["acme", "acme", None],
            "results": [[{"doc_id": "d1", "score": 0.5}], None, []],
            "extra": [1, 2, 3],
        }
    )
    pq.write_table(table, path, row_group_size=2)
    report = ingest_paths(store, [path], batch_lines=2)
    assert report.records_added == 2
    assert [(p.line, "text" in p.message) for p in report.problems] == [(2, True)]
    assert report.unknown_fields == {"extra": 3}
    assert ingest_paths(store, [path]).files[0].status == "unchanged"
    rows = store.fetch(
        "SELECT query_id, ts, tenant, logged_doc_ids FROM traffic_records ORDER BY query_id"
    )
    assert rows == [
        ("p1", datetime(2026, 11, 21, 9), "acme", ["d1"]),
        ("p3", datetime(2026, 11, 21, 9), None, []),
    ]


def test_an_unfinished_parquet_file_is_pending_and_retried(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "partial.parquet"
    path.write_bytes(b"PAR1 still being written")
    report = ingest_paths(store, [path])
    assert (report.files[0].status, report.n_problems) == ("pending", 0)
    assert report.files[0].note == (
        "not a readable Parquet file yet (still being written?); tried again next pass"
    )
    pq.write_table(
        pa.table({"query_id": ["p1"], "timestamp": ["2026-11-21T09:00:00Z"], "text": ["t"]}),
        path,
    )
    assert ingest_paths(store, [path]).records_added == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"query_id,timestamp,text\n",
            "not a Parquet file: it does not start with Parquet's magic bytes (PAR1)",
        ),
        (b"PAR1 damaged PAR1", "a damaged Parquet file: "),
        (
            None,
            "Parquet file lacks the column(s) text; traffic files need query_id, timestamp, text",
        ),
    ],
)
def test_a_parquet_file_that_cannot_be_read_is_a_problem(
    store: Store, tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "traffic.parquet"
    if content is None:
        pq.write_table(pa.table({"query_id": ["a"], "timestamp": [datetime(2026, 11, 20)]}), path)
    else:
        path.write_bytes(content)
    report = ingest_paths(store, [path])
    assert report.files[0].status == "unreadable"
    assert report.n_problems == 1
    assert (report.problems[0].path, report.problems[0].line) == (str(path), None)
    assert report.problems[0].message.startswith(message)


def test_a_directory_without_log_files_is_a_problem(store: Store, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "notes.txt").write_text("not a log\n")
    report = ingest_paths(store, [logs])
    assert report.files == ()
    assert [str(problem) for problem in report.problems] == [
        f"{logs}: holds no traffic log file (.jsonl, .ndjson, .json, .log or .parquet, rotated "
        "names such as app.jsonl.1 included; subfolders are not read): check the path"
    ]


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("missing.parquet", None, 2),
        ("corrupt.parquet", b"not parquet at all", 2),
        ("logs", "directory", 2),
        ("partial.parquet", b"PAR1 still being written", 0),
        ("unfinished.jsonl", b'{"query_id": "a1", "timest', 0),
    ],
)
def test_strict_ingest_fails_on_files_that_cannot_be_read(
    evalkit_home: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes | str | None,
    code: int,
) -> None:
    path = evalkit_home.parent / name
    if content is None:
        pq.write_table(pa.table({"query_id": ["a"], "timestamp": [datetime(2026, 11, 20)]}), path)
    elif content == "directory":
        path.mkdir()
    else:
        assert isinstance(content, bytes)
        path.write_bytes(content)
    assert invoke(["traffic", "ingest", str(path), "--strict", "--format", "json"]) == code
    assert invoke(["traffic", "ingest", str(path), "--format", "json"]) == 0
    capsys.readouterr()


def test_missing_paths_and_bad_batch_sizes_are_refused(store: Store, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        ingest_paths(store, [tmp_path / "absent.jsonl"])
    with pytest.raises(ConfigError, match="batch_lines"):
        ingest_paths(store, [tmp_path], batch_lines=0)


def test_watch_runs_passes_and_reports_each(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "watched.jsonl"
    log.write_text(line("q1"))
    reports = []

    def on_report(report: Any) -> None:
        reports.append(report)
        with log.open("a") as handle:
            handle.write(line(f"q{len(reports) + 1}"))

    passes = watch(
        store, [log], interval=0, on_report=on_report, max_passes=3, sleep=lambda _: None
    )
    assert passes == 3
    assert [report.records_added for report in reports] == [1, 1, 1]


def test_log_query_writes_lines_ingest_reads(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "app.jsonl"
    query_id = log_query(
        log,
        text="reset password",
        tenant="acme",
        tags={"locale": "fr"},
        results=[ScoredDoc("d1", 0.8, 1), ("d2", 0.5), "d3", {"doc_id": "d4"}],
        answer="Open settings",
        contexts=["ctx"],
        latency_ms=12.5,
        timestamp=datetime(2026, 11, 21, 12, tzinfo=UTC),
    )
    log_query(log, text="second", query_id="fixed")
    # A fresh checkout has no logs/ folder yet: the first call makes it.
    assert log_query(tmp_path / "new" / "logs" / "app.jsonl", text="first", query_id="n1") == "n1"
    log.rename(tmp_path / "app.jsonl.1")
    log_query(log, text="after rotation", query_id="third")
    assert log.read_text().count("\n") == 1
    report = ingest_paths(store, [tmp_path])
    assert report.records_added == 3
    assert report.malformed == 0
    row = store.fetch(
        "SELECT ts, tenant, logged_doc_ids, logged_scores, latency_ms FROM traffic_records"
        " WHERE query_id = ?",
        [query_id],
    )[0]
    assert row == (
        datetime(2026, 11, 21, 12),
        "acme",
        ["d1", "d2", "d3", "d4"],
        [0.8, 0.5, None, None],
        12.5,
    )


def test_format_log_line_refuses_what_the_format_cannot_hold() -> None:
    with pytest.raises(InputError, match="text"):
        format_log_line(text="  ")
    with pytest.raises(InputError, match="latency_ms"):
        format_log_line(text="q", latency_ms=float("nan"))
    # What the reader would refuse is refused when written, not lost at ingest.
    with pytest.raises(InputError, match="NaN and infinity"):
        format_log_line(text="q", results=[("a", float("nan"))])
    with pytest.raises(InputError, match="NaN and infinity"):
        format_log_line(text="q", results=[("a", float("inf"))])
    with pytest.raises(InputError, match=r"needs its doc_id.*would not be read back"):
        format_log_line(text="q", results=[{"id": "b"}])
    with pytest.raises(InputError, match="would not be read back"):
        format_log_line(text="q", results=[""])
    with pytest.raises(InputError, match="would not be read back"):
        format_log_line(text="q", results=[("", 0.5)])
    with pytest.raises(InputError, match="query_id ' q1' has leading or trailing whitespace"):
        format_log_line(text="q", query_id=" q1")
    for moment in (datetime(1969, 12, 31, 23), datetime(6000, 1, 1), "1969-12-31T23:00:00Z"):
        with pytest.raises(InputError, match="is not between 1970 and the year 5138"):
            format_log_line(text="q", timestamp=moment)
    with pytest.raises(InputError, match="'yesterday' is not an ISO 8601 date-time"):
        format_log_line(text="q", timestamp="yesterday")
    _, zoned = format_log_line(text="q", timestamp="2026-11-21T10:00:00+05:30")
    assert b'"timestamp":"2026-11-21T04:30:00.000Z"' in zoned
    query_id, encoded = format_log_line(text="héllo", query_id="x")
    assert query_id == "x"
    assert encoded.endswith(b"\n")
    assert json.loads(encoded)["text"] == "héllo"


def _append_many(path: str, worker: int, count: int) -> None:
    for index in range(count):
        log_query(
            path, text=f"worker {worker} query {index} " + "x" * 300, query_id=f"w{worker}-{index}"
        )


def test_concurrent_writers_never_interleave_lines(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "shared.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_append_many, args=(str(log), worker, 150)) for worker in range(4)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join()
    report = ingest_paths(store, [log])
    assert (report.records_added, report.malformed) == (600, 0)


LINE_TEXTS = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30
).filter(lambda text: text.strip() != "")


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=st.lists(LINE_TEXTS, min_size=1, max_size=12),
    cuts=st.lists(st.floats(min_value=0, max_value=1), max_size=4),
)
@pytest.mark.slow
def test_any_sequence_of_partial_appends_stores_every_line_once(
    texts: list[str], cuts: list[float]
) -> None:
    """Whatever byte boundaries the writer pauses at (even inside a UTF-8 character),
    ingest after each pause ends with every record stored once, with its line number."""
    data = "".join(line(f"q{i}", text) for i, text in enumerate(texts)).encode("utf-8")
    boundaries = sorted({int(cut * len(data)) for cut in cuts} | {len(data)})
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        store = open_store(work / "s.duckdb")
        log = work / "grow.jsonl"
        log.write_bytes(b"")
        written = 0
        for boundary in boundaries:
            with log.open("ab") as handle:
                handle.write(data[written:boundary])
            written = boundary
            report = ingest_paths(store, [log])
            assert report.malformed == 0
        rows = store.fetch("SELECT query_id, line, text FROM traffic_records ORDER BY line")
        store.close()
    assert rows == [(f"q{i}", i + 1, text) for i, text in enumerate(texts)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=st.lists(LINE_TEXTS, min_size=1, max_size=20),
    garbage_at=st.integers(min_value=0, max_value=20),
    read_bytes=st.integers(min_value=1, max_value=300),
    batch_lines=st.integers(min_value=1, max_value=7),
    newline_at_end=st.booleans(),
)
@pytest.mark.slow
def test_where_a_read_of_the_file_ends_changes_nothing(
    texts: list[str], garbage_at: int, read_bytes: int, batch_lines: int, newline_at_end: bool
) -> None:
    """Lines are found in buffers read from the file; wherever a buffer ends (inside a line
    or a UTF-8 character, on a newline), every record is stored once with its line number,
    the garbage line is reported by its number, and the file is read to its end."""
    lines = [line(f"q{i}", text) for i, text in enumerate(texts)]
    garbage_at = min(garbage_at, len(lines))
    lines.insert(garbage_at, "not json\n")
    data = "".join(lines).encode("utf-8")
    if not newline_at_end:
        data = data.removesuffix(b"\n")
    expected = [
        (query_id, number)
        for number, query_id in enumerate(
            (json.loads(raw)["query_id"] if raw != "not json\n" else None for raw in lines),
            start=1,
        )
        if query_id is not None
    ]
    with tempfile.TemporaryDirectory() as scratch, pytest.MonkeyPatch.context() as patch:
        patch.setattr(ingest_module, "_READ_BYTES", read_bytes)
        work = Path(scratch)
        store = open_store(work / "s.duckdb")
        log = work / "log.jsonl"
        log.write_bytes(data)
        report = ingest_paths(store, [log], batch_lines=batch_lines)
        rows = stored(store)
        (state,) = store.fetch("SELECT byte_offset, lines_read FROM traffic_sources")
        store.close()
    assert rows == sorted(expected, key=lambda row: row[1])
    if newline_at_end or garbage_at < len(texts):
        assert [problem.line for problem in report.problems] == [garbage_at + 1]
        # An unterminated last line that is a whole record is taken, its bytes with it.
        assert (state[0], report.files[0].pending_bytes) == (len(data), 0)
    else:
        # An unterminated last line that is not a whole record may still be being written.
        assert report.problems == ()
        pending = len(b"not json")
        assert (state[0], report.files[0].pending_bytes) == (len(data) - pending, pending)


def test_the_state_lives_in_the_store_not_the_process(tmp_path: Path) -> None:
    log = tmp_path / "t.jsonl"
    log.write_text(line("q1") + line("q2"))
    with open_store(tmp_path / "s.duckdb") as first:
        ingest_paths(first, [log])
    with open_store(tmp_path / "s.duckdb") as second:
        assert ingest_paths(second, [log]).files[0].status == "unchanged"
        state = second.fetch("SELECT path, byte_offset, lines_read FROM traffic_sources")
    assert state == [(str(log), os.path.getsize(log), 2)]


@pytest.mark.parametrize("part_lines", [2, ingest_module._DECODE_LINES])
def test_a_progress_callback_that_raises_stops_after_its_batch(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, part_lines: int
) -> None:
    """The next batch is decoded (and with parts of 2 lines, partly written) while one is
    written, but none is committed after the callback for the one before it raised."""
    monkeypatch.setattr(ingest_module, "_DECODE_LINES", part_lines)
    log = tmp_path / "stopped.jsonl"
    log.write_text("".join(line(f"q{i}") for i in range(10)))
    seen: list[int] = []

    def stop_after_first(records: int, _: int | None) -> None:
        seen.append(records)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest_paths(store, [log], batch_lines=4, progress=stop_after_first)
    assert seen == [4]
    assert stored(store) == [(f"q{i}", i + 1) for i in range(4)]
    report = ingest_paths(store, [log], batch_lines=4)
    assert (report.files[0].status, report.records_added, report.duplicates) == ("resumed", 6, 0)
    assert stored(store) == [(f"q{i}", i + 1) for i in range(10)]


def test_batches_read_in_slices_keep_line_numbers_problems_and_the_tail(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest_module, "_DECODE_LINES", 2)
    log = tmp_path / "slices.jsonl"
    lines = [line(f"q{i}") for i in range(9)]
    lines[4] = "not json\n"
    lines[6] = "\n"
    log.write_text("".join(lines) + line("q9").rstrip("\n"))
    committed: list[int] = []
    report = ingest_paths(
        store, [log], batch_lines=5, progress=lambda records, _: committed.append(records)
    )
    assert committed == [4, 8]
    assert [(p.line, "not valid JSON" in p.message) for p in report.problems] == [(5, True)]
    assert stored(store) == [(f"q{i}", i + 1) for i in (0, 1, 2, 3, 5, 7, 8, 9)]
    state = store.fetch("SELECT byte_offset, lines_read FROM traffic_sources")
    assert state == [(os.path.getsize(log), 9)]


def test_a_batch_written_in_parts_is_committed_whole_or_not_at_all(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch goes to the store a part at a time (while the next part is decoded) but in
    one transaction: a failure in its second part takes its first part with it, and an id
    repeated in a later part of the same batch is a duplicate, as within one part."""
    monkeypatch.setattr(ingest_module, "_DECODE_LINES", 2)
    log = tmp_path / "parts.jsonl"
    ids = ["q0", "q1", "q2", "q0", "q4", "q5", "q6", "q7", "q8", "q9", "q10", "q11", "q12"]
    log.write_text("".join(line(query_id) for query_id in ids))
    real_add = IngestTransaction.add_records
    parts: list[int] = []

    def failing_add(self: IngestTransaction, records: pa.Table) -> int:
        parts.append(records.num_rows)
        if len(parts) == 5:  # the second batch's second part
            raise StoreError("disk full")
        return real_add(self, records)

    monkeypatch.setattr(IngestTransaction, "add_records", failing_add)
    with pytest.raises(StoreError, match="disk full"):
        ingest_paths(store, [log], batch_lines=6)
    assert parts[:5] == [2, 2, 2, 2, 2]
    # The first batch, lines 1-6, with q0 once (line 1): its repeat on line 4 was in
    # another part of the same batch.
    assert stored(store) == [("q0", 1), ("q1", 2), ("q2", 3), ("q4", 5), ("q5", 6)]
    monkeypatch.setattr(IngestTransaction, "add_records", real_add)
    report = ingest_paths(store, [log], batch_lines=6)
    assert (report.files[0].status, report.records_added, report.duplicates) == ("resumed", 7, 0)
    assert stored(store) == [
        (query_id, number)
        for number, query_id in enumerate(ids, start=1)
        if number != 4  # the repeat of q0
    ]
    state = store.fetch("SELECT byte_offset, lines_read FROM traffic_sources")
    assert state == [(os.path.getsize(log), len(ids))]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(
            st.text(min_size=1, max_size=12),
            st.one_of(st.none(), st.text(max_size=12)),
            st.one_of(st.none(), st.text(min_size=1, max_size=30)),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_the_stored_query_key_is_duckdbs_md5_number_upper(
    store: Store, rows: list[tuple[str, str | None, str | None]]
) -> None:
    """The key is computed without DuckDB's md5_number_upper macro (cheaper), but is its
    value: of tenant and normalised text, or of the query id for a record without text."""
    store.execute("DELETE FROM traffic_records")
    ids = {query_id for query_id, _, _ in rows}
    records = [row for row in rows if row[0] in ids and not ids.discard(row[0])]
    given_columns = {
        "query_id": [query_id for query_id, _, _ in records],
        "ts": [datetime(2026, 11, 21)] * len(records),
        "text": [text for _, _, text in records],
        "tenant": [tenant for _, tenant, _ in records],
        "line": list(range(1, len(records) + 1)),
        "dedup_text": [None if text is None else dedup_text(text) for _, _, text in records],
    }
    table = pa.table(
        {
            name: pa.array(
                given_columns.get(name, [None] * len(records)), RECORD_SCHEMA.field(name).type
            )
            for name in RECORD_SCHEMA.names
        },
        schema=RECORD_SCHEMA,
    )
    commit_ingest_batch(store, records=table, source="keys", problems=[], state=None)
    with store.transaction() as con:
        con.register("_expected", table)
        differing = con.execute(
            "SELECT count(*) FROM traffic_records r JOIN _expected e USING (query_id)"
            " WHERE r.query_key IS DISTINCT FROM CASE WHEN e.dedup_text IS NULL"
            " THEN md5_number_upper(chr(30) || e.query_id)"
            " ELSE md5_number_upper(coalesce(e.tenant, '') || chr(31) || e.dedup_text) END"
        ).fetchall()
        con.unregister("_expected")
    assert differing == [(0,)]
    assert record_count(store) == len(records)


def test_stored_ids_are_skipped_in_any_part_of_a_batch_whatever_their_order(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A part whose ids all sort above every stored id is not checked against the store;
    a later part of the same batch holding a stored id (below them) still is."""
    monkeypatch.setattr(ingest_module, "_DECODE_LINES", 2)
    first = tmp_path / "first.jsonl"
    first.write_text("".join(line(f"q{number}") for number in range(10, 20)))
    assert ingest_paths(store, [first]).records_added == 10
    second = tmp_path / "second.jsonl"
    ids = ["q30", "q31", "q12", "q32", "q40", "q19", "q05", "q41"]
    second.write_text("".join(line(query_id) for query_id in ids))
    report = ingest_paths(store, [second], batch_lines=6)
    assert (report.records_added, report.duplicates) == (6, 2)
    new = store.fetch(
        "SELECT query_id FROM traffic_records WHERE source = ? ORDER BY line", [str(second)]
    )
    assert [row[0] for row in new] == ["q30", "q31", "q32", "q40", "q05", "q41"]
    assert record_count(store) == 16


def test_parts_decoded_out_of_order_are_stored_in_file_order(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts are decoded on several threads; a part that takes longer than the one after
    it still lands before it: records, problems and the unknown fields keep file order."""
    monkeypatch.setattr(ingest_module, "_DECODE_LINES", 2)
    real_decode = ingest_module._Part.decode
    both_started = threading.Barrier(2, timeout=10)
    second_decoded = threading.Event()

    def decode_the_second_part_first(part: Any) -> Any:
        # Parts 1 and 2 are on the two decoder threads at once; part 1 waits until part 2
        # is decoded, so part 2 is finished first.
        if part.first_line in (1, 3):
            both_started.wait()
        if part.first_line == 1:
            second_decoded.wait(10)
        decoded = real_decode(part)
        if part.first_line == 3:
            second_decoded.set()
        return decoded

    monkeypatch.setattr(ingest_module._Part, "decode", decode_the_second_part_first)
    lines = [line(f"q{i}", tenent="typo") if i == 0 else line(f"q{i}") for i in range(9)]
    lines[1] = "not json\n"
    lines[3] = "{broken\n"
    log = tmp_path / "ordered.jsonl"
    log.write_text("".join(lines))
    report = ingest_paths(store, [log], batch_lines=6)
    assert [problem.line for problem in report.problems] == [2, 4]
    assert dict(report.unknown_fields) == {"tenent": 1}
    assert stored(store) == [(f"q{i}", i + 1) for i in (0, 2, 4, 5, 6, 7, 8)]


def test_a_part_that_fails_to_decode_leaves_its_batch_unstored(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error on a decoder thread stops the pass: the batches committed before it are
    kept, the one it belongs to is rolled back, and the next pass reads on from there."""
    monkeypatch.setattr(ingest_module, "_DECODE_LINES", 2)
    real_decode = ingest_module._Part.decode

    def failing_decode(part: Any) -> Any:
        if part.first_line == 7:  # the second batch's second part
            raise MemoryError("out of memory")
        return real_decode(part)

    monkeypatch.setattr(ingest_module._Part, "decode", failing_decode)
    log = tmp_path / "decode-fails.jsonl"
    log.write_text("".join(line(f"q{i}") for i in range(12)))
    with pytest.raises(MemoryError):
        ingest_paths(store, [log], batch_lines=4)
    assert stored(store) == [(f"q{i}", i + 1) for i in range(4)]
    monkeypatch.setattr(ingest_module._Part, "decode", real_decode)
    report = ingest_paths(store, [log], batch_lines=4)
    assert (report.files[0].status, report.records_added) == ("resumed", 8)
    assert stored(store) == [(f"q{i}", i + 1) for i in range(12)]


def test_a_pass_sets_the_store_up_for_ingest_and_back_afterwards(
    store: Store, tmp_path: Path
) -> None:
    """While a pass ingests, DuckDB runs on the cores the decoder threads leave and writes
    strings with ZSTD; afterwards the store's settings are as they were, also when the
    pass fails."""
    settings_sql = "SELECT current_setting('threads'), current_setting('force_compression')"
    store.fetch("SET threads = 3")
    before = store.fetch(settings_sql)
    log = tmp_path / "settings.jsonl"
    # A whole row group, so the batch is written to the file by its commit, compressed.
    rows = ingest_module.DEFAULT_BATCH_LINES
    log.write_text("".join(line(f"q{i:06d}", f"query number {i}") for i in range(rows)))
    during: list[tuple[Any, ...]] = []
    real_finish = IngestTransaction.finish

    def finish_noting_settings(self: IngestTransaction, **parts: Any) -> None:
        # On the writer thread, which holds the connection while it stores a batch.
        during.extend(self.connection.execute(settings_sql).fetchall())
        real_finish(self, **parts)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(IngestTransaction, "finish", finish_noting_settings)
        ingest_paths(store, [log])
    assert set(during) == {(3 - ingest_module._DECODE_THREADS, "zstd")}
    assert store.fetch(settings_sql) == before
    compression = store.fetch(
        "SELECT DISTINCT compression FROM pragma_storage_info('traffic_records')"
        " WHERE column_name = 'text' AND segment_type = 'VARCHAR'"
    )
    assert compression == [("ZSTD",)]
    assert record_count(store) == rows

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    log.write_text(log.read_text() + line("q10"))
    with pytest.raises(KeyboardInterrupt):
        ingest_paths(store, [log], progress=interrupt)
    assert store.fetch(settings_sql) == before
