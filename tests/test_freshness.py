"""Freshness lag against real parts: an embedded Chroma collection and a pgvector table on a
real PostgreSQL server, updated by an "ingestion pipeline" thread that writes each change into
the index a known delay after it was made, must be measured at that delay (exactly where the
index keeps a write time, within a check interval where it does not); a probe of an HTTP
retriever that starts returning a document after some seconds measures those seconds; the
``freshness_lag`` rule fires on a breached objective and stays quiet otherwise; malformed
change rows are refused naming file, line and field (exit 2); a regression whose lost
documents were waiting to be re-indexed is explained by them; the Index health page shows the
series; change logs, DuckDB tables and corpora are read on from where the last check stopped,
and a Qdrant collection by its payloads.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg
import pytest
from loopback import JSONHandler, serving
from postgres_server import PostgresServer, postgres_server_fixture  # noqa: F401
from qdrant_client import QdrantClient, models
from streamlit.testing.v1 import AppTest
from test_dashboard_seed import goldset, perfect, query_ids, store_run

from evalkit.alerts import RULE_KINDS
from evalkit.alerts.rules.base import RuleContext
from evalkit.alerts.rules.freshness import FreshnessLagParams
from evalkit.causes import explain_runs
from evalkit.cli import invoke
from evalkit.clock import naive_utc, utc_now
from evalkit.config import PgvectorSettings, QdrantSettings
from evalkit.dashboard.loaders.freshness import freshness as freshness_data
from evalkit.embedding import ModelFingerprint
from evalkit.errors import ConfigError, InputError
from evalkit.pipeline import check_freshness
from evalkit.records import Document
from evalkit.records.freshness import FreshnessCheck, FreshnessRequest
from evalkit.records.requests import PairedTestSettings
from evalkit.retrievers import index_corpus, open_chroma_client
from evalkit.retrievers.http import HttpRetriever
from evalkit.retrievers.versions import (
    VERSION_COLUMNS,
    ChromaVersions,
    IndexVersions,
    PgvectorVersions,
    QdrantVersions,
    text_hash,
)
from evalkit.store import Store
from evalkit.store.goldsets import save_goldset

DIMENSION = 8
DELAY = 2.0
"""Seconds the test ingestion pipeline takes to write a change into the index."""
CHECK_INTERVAL = 0.5
N_CHANGES = 4
CHANGE_SPACING = 0.3
APP = Path(__file__).resolve().parents[1] / "evalkit" / "dashboard" / "app.py"


class HashEmbedder:
    """Each text to a fixed pseudo-random unit vector (the lag does not depend on meaning)."""

    name = "hash-model"
    dimension = DIMENSION

    @property
    def fingerprint(self) -> ModelFingerprint:
        return ModelFingerprint(self.name, DIMENSION, "0" * 16)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        rows = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        for row, text in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            vector = np.random.default_rng(seed).normal(size=DIMENSION)
            rows[row] = vector / np.linalg.norm(vector)
        return rows


def original(number: int) -> str:
    return f"Document {number} explains how refunds of order {number} are handled."


def revised(number: int) -> str:
    return f"Document {number} now says refunds of order {number} take five business days."


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds") + "Z"


def write_changes(path: Path, rows: Sequence[dict[str, Any]], *, append: bool = True) -> None:
    with path.open("a" if append else "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def vector_text(vector: npt.NDArray[np.float32]) -> str:
    return "[" + ",".join(f"{value:.6f}" for value in vector) + "]"


@dataclass
class Pipeline:
    """An ingestion pipeline: each change is logged, then written into Chroma and into the
    pgvector table ``DELAY`` seconds later; records when each write finished."""

    log: Path
    chroma: Any
    dsn: str
    embedder: HashEmbedder = field(default_factory=HashEmbedder)
    changed_at: dict[str, datetime] = field(default_factory=dict)
    writing_at: dict[str, datetime] = field(default_factory=dict)
    indexed_at: dict[str, datetime] = field(default_factory=dict)
    errors: list[BaseException] = field(default_factory=list)

    def run(self) -> None:
        try:
            start = time.monotonic()
            events = sorted(
                [(n * CHANGE_SPACING, "change", n) for n in range(N_CHANGES)]
                + [(n * CHANGE_SPACING + DELAY, "index", n) for n in range(N_CHANGES)]
            )
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                for due, what, number in events:
                    time.sleep(max(0.0, start + due - time.monotonic()))
                    doc_id = f"doc-{number}"
                    if what == "change":
                        moment = utc_now()
                        self.changed_at[doc_id] = moment
                        write_changes(
                            self.log,
                            [
                                {
                                    "doc_id": doc_id,
                                    "updated_at": iso(moment),
                                    "content": revised(number),
                                }
                            ],
                        )
                        continue
                    document = Document(id=doc_id, text=revised(number))
                    self.writing_at[doc_id] = utc_now()
                    index_corpus(self.chroma, [document], self.embedder, collection_name="fresh-kb")
                    conn.execute(
                        "UPDATE fresh_docs SET content = %s, embedding = %s::vector,"
                        " written_at = now() WHERE id = %s",
                        (
                            revised(number),
                            vector_text(self.embedder.embed([revised(number)])[0]),
                            doc_id,
                        ),
                    )
                    self.indexed_at[doc_id] = utc_now()
        except BaseException as error:  # reported by the test, which runs in another thread
            self.errors.append(error)


@pytest.fixture(scope="module")
def pg_table(postgres_server: PostgresServer) -> str:
    """The pgvector table of the test index, holding the original documents."""
    embedder = HashEmbedder()
    with postgres_server.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS fresh_docs")
        conn.execute(
            f"CREATE TABLE fresh_docs (id text PRIMARY KEY, embedding vector({DIMENSION}),"
            " content text, written_at timestamptz)"
        )
        for number in range(6):
            conn.execute(
                "INSERT INTO fresh_docs VALUES (%s, %s::vector, %s, now() - interval '1 day')",
                (
                    f"doc-{number}",
                    vector_text(embedder.embed([original(number)])[0]),
                    original(number),
                ),
            )
    return postgres_server.dsn


@pytest.mark.slow
@pytest.mark.usefixtures("served_first")
def test_the_lag_of_an_ingestion_pipeline_is_measured_at_its_delay(
    tmp_path: Path, pg_table: str
) -> None:
    chroma = open_chroma_client(path=tmp_path / "chroma")
    index_corpus(
        chroma,
        [Document(id=f"doc-{n}", text=original(n)) for n in range(6)],
        HashEmbedder(),
        collection_name="fresh-kb",
    )
    log = tmp_path / "changes.jsonl"
    log.touch()
    settings = PgvectorSettings(
        dsn=pg_table, table="fresh_docs", embedding_column="embedding", text_column="content"
    )
    readers: dict[str, IndexVersions] = {
        "chroma": ChromaVersions(chroma.get_collection("fresh-kb")),
        "pgvector-timed": PgvectorVersions(settings, indexed_at_column="written_at"),
        "pgvector-text": PgvectorVersions(settings, indexed_at_column=None),
    }
    pipeline = Pipeline(log, chroma, pg_table)
    writer = threading.Thread(target=pipeline.run, daemon=True)
    checks: dict[str, list[FreshnessCheck]] = {name: [] for name in readers}
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        writer.start()
        deadline = time.monotonic() + N_CHANGES * CHANGE_SPACING + DELAY + 3.0
        while time.monotonic() < deadline:
            started = time.monotonic()
            for name, reader in readers.items():
                request = FreshnessRequest(changes=(log,), subject=name, slo_p95_lag=60.0)
                checks[name].append(check_freshness(store, request, index=reader))
            if not writer.is_alive() and all(c[-1].n_pending == 0 for c in checks.values()):
                break
            time.sleep(max(0.0, CHECK_INTERVAL - (time.monotonic() - started)))
        writer.join(timeout=10)
        stored = store.fetch(
            "SELECT subject, doc_id, status, reflected_by, lag_seconds, reflected_after,"
            " reflected_at FROM freshness_changes ORDER BY subject, doc_id"
        )
    for reader in readers.values():
        reader.close()
    assert not pipeline.errors, pipeline.errors
    assert len(pipeline.indexed_at) == N_CHANGES

    by_subject: dict[str, list[tuple[Any, ...]]] = {}
    for row in stored:
        by_subject.setdefault(row[0], []).append(row[1:])
    for name in readers:
        rows = by_subject[name]
        assert [row[0] for row in rows] == [f"doc-{n}" for n in range(N_CHANGES)]
        assert {row[1] for row in rows} == {"reflected"}, rows
        assert sum(check.n_read for check in checks[name]) == N_CHANGES
        assert checks[name][-1].n_pending == 0

    def seconds(later: datetime, earlier: datetime) -> float:
        return (later - earlier).total_seconds()

    # Chroma's write time (evalkit index stores it per document) and the pgvector column give
    # the lag exactly: from the change to the write, the pipeline's delay.
    for name in ("chroma", "pgvector-timed"):
        for doc_id, _, by, lag, _, _ in by_subject[name]:
            changed = pipeline.changed_at[doc_id]
            assert by == "index_time"
            assert seconds(pipeline.writing_at[doc_id], changed) - 0.01 <= lag
            assert lag <= seconds(pipeline.indexed_at[doc_id], changed) + 0.01
            assert lag == pytest.approx(DELAY, abs=0.5)
    # Without a write time the lag is read at the first check that saw the change reflected:
    # the write happened between that check and the one before, so the measured lag exceeds
    # the delay by less than the interval between the two checks.
    check_times = [naive_utc(check.checked_at) for check in checks["pgvector-text"]]
    consecutive = set(itertools.pairwise(check_times))
    for doc_id, _, by, lag, after, at in by_subject["pgvector-text"]:
        changed = pipeline.changed_at[doc_id]
        assert by == "check"
        assert after <= pipeline.indexed_at[doc_id]
        assert at >= pipeline.writing_at[doc_id]
        assert seconds(pipeline.writing_at[doc_id], changed) - 0.01 <= lag
        assert lag <= seconds(pipeline.indexed_at[doc_id], changed) + seconds(at, after)
        assert (after, at) in consecutive  # the store's times are naive UTC already
    # Each check's percentiles cover the changes it found reflected.
    measured = [c for c in checks["chroma"] if c.n_reflected]
    assert sum(c.n_reflected for c in measured) == N_CHANGES
    for check in measured:
        assert check.lag_p95 == pytest.approx(DELAY, abs=0.5)
        assert check.lag_max is not None
        assert check.lag_p50 is not None
        assert check.lag_max >= check.lag_p50
        assert not check.breached


class DelayedHandler(JSONHandler):
    """An HTTP retriever whose index starts returning ``NEW_DOC`` at ``appear_at``
    (monotonic seconds, set by each test as it makes its change); until then only an
    unrelated document."""

    appear_at = 0.0
    queries: list[str] = []  # noqa: RUF012

    def do_POST(self) -> None:
        body = self.read_json()
        type(self).queries.append(str(body["query"]))
        results = [{"id": "other-doc", "score": 0.4}]
        if time.monotonic() >= type(self).appear_at:
            results.insert(0, {"id": NEW_DOC, "score": 0.9})
        self.send_json({"results": results})

    def log_message(self, *args: object) -> None:
        pass


NEW_DOC = "policy-7"
NEW_TEXT = (
    "Returns policy.\n\nOrders shipped to Iceland can be returned within sixty days at no cost."
    " Contact support for anything else."
)
APPEARS_AFTER = 1.5


@pytest.fixture
def delayed_retriever() -> Iterator[str]:
    DelayedHandler.queries = []
    DelayedHandler.appear_at = time.monotonic() + APPEARS_AFTER
    with serving(DelayedHandler) as url:
        yield url


@pytest.mark.slow
def test_a_probe_finds_a_document_when_the_retriever_starts_returning_it(
    tmp_path: Path, delayed_retriever: str, store: Store
) -> None:
    log = tmp_path / "changes.jsonl"
    write_changes(log, [{"doc_id": NEW_DOC, "updated_at": iso(utc_now()), "content": NEW_TEXT}])
    DelayedHandler.appear_at = time.monotonic() + APPEARS_AFTER
    request = FreshnessRequest(
        changes=(log,), probe_timeout=6.0, probe_interval=0.25, slo_p95_lag=60.0
    )
    with HttpRetriever(delayed_retriever) as retriever:
        check = check_freshness(store, request, retriever=retriever)

    assert (check.method, check.index_kind, check.n_reflected, check.n_pending) == (
        "probe",
        "http",
        1,
        0,
    )
    (found,) = check.reflected
    assert found.reflected_by == "probe"
    # Found by the first round after the document appeared: the lag exceeds the time it took
    # to appear by less than the interval between that round and the one before.
    bracket = (found.reflected_at - found.reflected_after).total_seconds()
    assert APPEARS_AFTER - 0.05 <= found.lag_seconds <= APPEARS_AFTER + bracket + 0.05
    assert 0 < bracket <= 0.25 + 1.0
    assert check.n_probes >= 4
    # The probe asks for the document's most distinctive sentence, not its heading.
    assert set(DelayedHandler.queries) == {
        "Orders shipped to Iceland can be returned within sixty days at no cost."
    }
    assert check.subject == f"http:{delayed_retriever}"


@pytest.mark.slow
def test_the_cli_exits_1_on_a_breached_objective_and_0_within_it(
    evalkit_home: Path, delayed_retriever: str, capsys: pytest.CaptureFixture[str]
) -> None:
    log = evalkit_home.parent / "changes.jsonl"
    write_changes(log, [{"doc_id": NEW_DOC, "updated_at": iso(utc_now()), "content": NEW_TEXT}])
    DelayedHandler.appear_at = time.monotonic() + APPEARS_AFTER
    common = ["freshness", "--changes", str(log), "--http-retriever", delayed_retriever]
    probe = ["--probe-timeout", "5s", "--probe-interval", "0.25s", "--format", "json"]
    assert invoke([*common, *probe, "--slo-p95-lag", "1s"]) == 1
    first = json.loads(capsys.readouterr().out)
    assert first["breached"]
    assert "p95 lag" in first["breaches"][0]
    assert first["reflected"][0]["doc_id"] == NEW_DOC

    write_changes(log, [{"doc_id": NEW_DOC, "updated_at": iso(utc_now()), "content": NEW_TEXT}])
    assert invoke([*common, *probe, "--slo-p95-lag", "1h"]) == 0
    second = json.loads(capsys.readouterr().out)
    # Only the new line was read; the retriever returns the document by now.
    assert (second["n_read"], second["n_reflected"], second["breached"]) == (1, 1, False)


def test_malformed_change_rows_are_refused_naming_file_line_and_field(
    evalkit_home: Path, delayed_retriever: str, capsys: pytest.CaptureFixture[str]
) -> None:
    log = evalkit_home.parent / "changes.jsonl"
    write_changes(
        log,
        [
            {"doc_id": "a", "updated_at": "2026-03-01T10:00:00Z", "content": "fine text"},
            {"doc_id": "b", "updated_at": "yesterday", "content": "text"},
            {"doc_id": "", "updated_at": 1767225600, "content": "text"},
        ],
    )
    with log.open("a", encoding="utf-8") as handle:
        handle.write('{"doc_id": "c", "updated_at": "2026-03-01T10:00:00Z"}\n{not json\n')
        handle.write('{"doc_id": "d", "updated_at": true, "content": "text"}\n')
    code = invoke(
        [
            "freshness",
            "--changes",
            str(log),
            "--http-retriever",
            delayed_retriever,
            "--format",
            "json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 2
    problems = json.loads(captured.out)["error"]["problems"]
    assert [(p["path"], p["line"], p["field"]) for p in problems] == [
        (str(log), 2, "updated_at"),
        (str(log), 3, "doc_id"),
        (str(log), 4, "content"),
        (str(log), 5, None),
        (str(log), 6, "updated_at"),
    ]
    assert "True is not a time" in problems[-1]["message"]  # present, of the wrong type
    assert f"{log}:2 field 'updated_at'" in captured.err

    # A DuckDB change table without its updated_at column is named too; nothing was stored.
    table = evalkit_home.parent / "changes.duckdb"
    with duckdb.connect(str(table)) as con:
        con.execute("CREATE TABLE changes (doc_id VARCHAR, content VARCHAR)")
    assert (
        invoke(
            [
                "freshness",
                "--changes",
                str(table),
                "--http-retriever",
                delayed_retriever,
                "--format",
                "json",
            ]
        )
        == 2
    )
    error = json.loads(capsys.readouterr().out)["error"]
    assert "updated_at" in error["message"]
    with Store.open(evalkit_home / "evalkit.duckdb") as store:
        assert store.fetch("SELECT count(*) FROM freshness_checks") == [(0,)]


@pytest.mark.parametrize(
    "updated_at",
    [
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "1969-12-31T23:59:59Z",
    ],
)
def test_a_time_at_the_edge_of_the_calendar_is_refused_naming_file_line_and_field(
    updated_at: str,
    evalkit_home: Path,
    delayed_retriever: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Year 1 and the year 9999 shifted past the calendar by their offset crashed the
    check (OverflowError, exit 1, which reads as a breached objective)."""
    log = evalkit_home.parent / "edge.jsonl"
    write_changes(
        log,
        [
            {"doc_id": "a", "updated_at": "2026-03-01T10:00:00Z", "content": "fine text"},
            {"doc_id": "b", "updated_at": updated_at, "content": "text"},
        ],
    )
    arguments = ["--changes", str(log), "--http-retriever", delayed_retriever]
    code = invoke(["freshness", *arguments, "--format", "json"])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    [problem] = json.loads(captured.out)["error"]["problems"]
    assert (problem["path"], problem["line"], problem["field"]) == (str(log), 2, "updated_at")
    assert f"{updated_at!r} is not a time between 1970 and now" in problem["message"]
    with Store.open(evalkit_home / "evalkit.duckdb") as store:
        assert store.fetch("SELECT count(*) FROM freshness_checks") == [(0,)]


class HeldVersions:
    """An index whose versions are given: doc id -> (text, write time)."""

    kind = "chroma"

    def __init__(self, name: str, held: dict[str, tuple[str, datetime | None]]) -> None:
        self.name = name
        self.held = held

    def versions(self, doc_ids: Sequence[str]) -> pd.DataFrame:
        rows = [
            (doc_id, None, text_hash(text), written)
            for doc_id, (text, written) in self.held.items()
            if doc_id in set(doc_ids)
        ]
        frame = pd.DataFrame(rows, columns=list(VERSION_COLUMNS))
        frame["indexed_at"] = pd.to_datetime(frame["indexed_at"])
        return frame

    def close(self) -> None:
        pass


def check_with(
    store: Store,
    tmp_path: Path,
    subject: str,
    changes: list[tuple[str, datetime, str]],
    held: HeldVersions,
) -> FreshnessCheck:
    log = tmp_path / f"{subject}.jsonl"
    write_changes(
        log, [{"doc_id": d, "updated_at": iso(at), "content": text} for d, at, text in changes]
    )
    request = FreshnessRequest(
        changes=(log,), subject=subject, slo_p95_lag=60.0, max_unreflected_age=3600.0
    )
    return check_freshness(store, request, index=held)


def test_many_malformed_changes_name_five_and_count_the_rest_json_lists_them(
    evalkit_home: Path, delayed_retriever: str, capsys: pytest.CaptureFixture[str]
) -> None:
    log = evalkit_home.parent / "changes.jsonl"
    write_changes(
        log,
        [{"doc_id": f"d{n}", "updated_at": "yesterday", "content": "text"} for n in range(7)],
    )
    arguments = ["freshness", "--changes", str(log), "--http-retriever", delayed_retriever]

    assert invoke(arguments) == 2
    message = capsys.readouterr().err
    assert "7 malformed changes: " in message
    assert all(f"{log}:{line} field 'updated_at'" in message for line in range(1, 6))
    assert f"{log}:6 " not in message
    assert "(and 2 more). Fix them and run the check again" in message

    assert invoke([*arguments, "--format", "json"]) == 2
    problems = json.loads(capsys.readouterr().out)["error"]["problems"]
    assert [p["line"] for p in problems] == [1, 2, 3, 4, 5, 6, 7]


def test_the_freshness_lag_rule_fires_on_a_breached_objective_and_is_quiet_within_it(
    store: Store, tmp_path: Path
) -> None:
    now = utc_now()
    ago = lambda seconds: now - timedelta(seconds=seconds)  # noqa: E731
    # Indexed 90 s after the change: above the 60 s objective.
    slow = check_with(
        store,
        tmp_path,
        "slow",
        [("a", ago(100), "new a")],
        HeldVersions("slow", {"a": ("new a", ago(10))}),
    )
    # Indexed within 5 s, but another change has waited two hours.
    stuck = check_with(
        store,
        tmp_path,
        "stuck",
        [("b", ago(20), "new b"), ("c", ago(7200), "new c")],
        HeldVersions("stuck", {"b": ("new b", ago(15)), "c": ("old c", ago(9000))}),
    )
    fine = check_with(
        store,
        tmp_path,
        "fine",
        [("d", ago(30), "new d")],
        HeldVersions("fine", {"d": ("new d", ago(25))}),
    )
    assert (slow.lag_p95, slow.breached) == (pytest.approx(90.0), True)
    assert (stuck.lag_p95, stuck.breached) == (pytest.approx(5.0), True)
    assert (stuck.oldest[0].doc_id, stuck.oldest[0].state) == ("c", "stale")
    assert (fine.lag_p95, fine.breached) == (pytest.approx(5.0), False)

    rule = RULE_KINDS["freshness_lag"]
    context = RuleContext(store=store, now=utc_now(), rule="fresh", previous={})
    signals = {s.subject: s for s in rule.evaluate(context, FreshnessLagParams())}
    assert {name: s.active for name, s in signals.items()} == {
        "slow": True,
        "stuck": True,
        "fine": False,
    }
    assert "p95 lag" in signals["slow"].title
    assert signals["stuck"].evidence["oldest_unreflected"] == ["c"]
    assert "not yet retrievable" in signals["stuck"].title
    # Limits of the rule's own replace the checks' objective.
    relaxed = FreshnessLagParams(max_p95_lag=120, max_unreflected_age="3h")
    assert not any(s.active for s in rule.evaluate(context, relaxed))
    assert rule.evaluate(context, FreshnessLagParams(subject="fine", max_p95_lag=1))[0].active


def test_a_regression_whose_lost_documents_wait_for_reindexing_is_explained_by_them(
    store: Store, tmp_path: Path
) -> None:
    gold = goldset(8)
    save_goldset(store, gold)
    config = {"kind": "chroma-embedded", "collection": "mini"}

    def run(rankings: dict[str, list[str]]) -> str:
        return store_run(
            store,
            gold,
            rankings,
            retriever_kind="chroma-embedded",
            config=config,
            collection="mini",
            model_fingerprint="fp",
            index_fingerprint="idx",
        )

    run({q: perfect(q) for q in query_ids(8)})
    time.sleep(0.01)
    changed = ["q01-b", "q02-b"]
    waiting = check_with(
        store,
        tmp_path,
        "chroma:mini",
        [(doc, utc_now(), f"new text of {doc}") for doc in changed],
        HeldVersions("chroma:mini", {doc: (f"old text of {doc}", None) for doc in changed}),
    )
    assert waiting.n_pending == 2
    time.sleep(0.01)
    lost = {"q01-b", "q02-b", "q03-b", "q04-b"}
    candidate = run({q: [d for d in perfect(q) if d not in lost] for q in query_ids(8)})

    explanation = explain_runs(store, candidate, test=PairedTestSettings(resamples=500))
    causes = {cause.kind: cause for cause in explanation.causes}
    cause = causes["unreflected_changes"]
    # Four queries lost one document each; two of them were waiting to be re-indexed.
    assert cause.score == pytest.approx(0.5)
    assert {row["doc_id"] for row in cause.evidence} == set(changed)
    assert "chroma:mini" in cause.statement
    assert cause.link.page == "index_health"
    assert cause.link.params == {"freshness": "chroma:mini"}
    # The documents accounted for are not also hinted at as missing from the index.
    absent = causes["absent_from_results"]
    assert {row["doc_id"] for row in absent.evidence} == {"q03-b", "q04-b"}


def test_the_index_health_page_draws_the_lag_series_and_the_oldest_waiting_documents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "evalkit.duckdb"
    now = utc_now()
    with Store.open(path) as store:
        save_goldset(store, goldset(2))
        for round_ in range(3):
            check_with(
                store,
                tmp_path,
                "chroma:kb",
                [(f"d{round_}", now - timedelta(seconds=300), f"text {round_}")],
                HeldVersions(
                    "chroma:kb", {f"d{round_}": (f"text {round_}", now - timedelta(seconds=240))}
                ),
            )
        check_with(
            store,
            tmp_path,
            "chroma:kb",
            [("late", now - timedelta(hours=3), "late text")],
            HeldVersions("chroma:kb", {}),
        )
        data = freshness_data(store)
    assert data.subjects == ("chroma:kb",)
    assert len(data.checks) == 4
    assert list(data.checks["lag_p95_seconds"].iloc[:3]) == pytest.approx([60.0] * 3)
    assert list(data.waiting["doc_id"]) == ["late"]

    monkeypatch.setenv("EVALKIT_STORE_PATH", str(path))
    monkeypatch.delenv("EVALKIT_CONFIG", raising=False)
    app = AppTest.from_file(str(APP), default_timeout=120)
    app.query_params["freshness"] = "chroma:kb"
    app.switch_page("views/index_health.py").run()
    assert not app.exception, [e.value for e in app.exception]
    shown = {metric.label: metric.value for metric in app.metric}
    assert shown["objective"] == "breached"
    assert shown["oldest unreflected"] == "3.0 h"
    waiting = next(frame.value for frame in app.dataframe if "doc_id" in frame.value.columns)
    assert list(waiting["doc_id"]) == ["late"]


def test_a_duckdb_change_table_and_a_corpus_are_read_from_where_the_last_check_stopped(
    store: Store, tmp_path: Path
) -> None:
    table = tmp_path / "cdc.duckdb"
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with duckdb.connect(str(table)) as con:
        con.execute(
            "CREATE TABLE changes (doc_id VARCHAR, updated_at TIMESTAMPTZ, content VARCHAR)"
        )
        con.execute(
            "INSERT INTO changes VALUES ('a', ?, 'alpha'), ('b', ?, 'beta')", [start, start]
        )
    held = HeldVersions("cdc", {"a": ("alpha", None), "b": ("old beta", None)})
    request = FreshnessRequest(changes=(table,), subject="cdc", max_unreflected_age=1e9)
    first = check_freshness(store, request, index=held)
    assert (first.n_read, first.n_reflected, first.n_pending) == (2, 1, 1)
    with duckdb.connect(str(table)) as con:
        con.execute(
            "INSERT INTO changes VALUES ('b', ?, 'beta two')", [start + timedelta(minutes=5)]
        )
    held.held["b"] = ("beta two", None)
    second = check_freshness(store, request, index=held)
    # The row at the last position is not read twice; the older change of b is superseded.
    assert (second.n_read, second.n_reflected, second.n_pending, second.n_superseded) == (
        1,
        1,
        0,
        1,
    )

    corpus = tmp_path / "corpus.jsonl"
    documents = [
        {"id": "x", "text": "ex text", "metadata": {"updated_at": "2026-03-01T12:00:00Z"}},
        {"id": "y", "text": "why text", "metadata": {"updated_at": "2026-03-01T12:05:00Z"}},
    ]
    corpus.write_text("".join(json.dumps(d) + "\n" for d in documents), encoding="utf-8")
    from_corpus = FreshnessRequest(corpus=corpus, subject="docs", max_unreflected_age=1e9)
    books = HeldVersions(
        "docs", {"x": ("ex text", None), "y": ("why text", None), "z": ("zed text", None)}
    )
    assert check_freshness(store, from_corpus, index=books).n_reflected == 2
    documents[0]["metadata"] = {"updated_at": "2026-03-02T09:00:00Z"}
    documents[0]["text"] = "ex text, revised"
    # A document of the same time as the newest one read, added after it was read.
    documents.append(
        {"id": "z", "text": "zed text", "metadata": {"updated_at": "2026-03-01T12:05:00Z"}}
    )
    corpus.write_text("".join(json.dumps(d) + "\n" for d in documents), encoding="utf-8")
    again = check_freshness(store, from_corpus, index=books)
    assert (again.n_read, again.n_reflected, again.n_pending) == (2, 1, 1)
    assert (again.oldest[0].doc_id, again.oldest[0].origin) == ("x", f"{corpus}:1")
    assert check_freshness(store, from_corpus, index=books).n_read == 0


@pytest.mark.slow
def test_the_freshness_job_stores_a_check_that_the_rule_alerts_on(
    evalkit_home: Path,
    delayed_retriever: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = evalkit_home.parent / "changes.jsonl"
    write_changes(log, [{"doc_id": NEW_DOC, "updated_at": iso(utc_now()), "content": NEW_TEXT}])
    DelayedHandler.appear_at = time.monotonic() + APPEARS_AFTER
    config = evalkit_home.parent / "evalkit.toml"
    config.write_text(
        f"""
[freshness]
slo_p95_lag = "1s"
probe_interval = "0.25s"

[[jobs]]
name = "fresh"
kind = "freshness"
changes = ["{log}"]
http_retriever = "{delayed_retriever}"
probe_timeout = "5s"

[[alerts.rules]]
name = "ingestion-lag"
kind = "freshness_lag"
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("EVALKIT_CONFIG", str(config))
    assert invoke(["jobs", "run", "fresh", "--local", "--format", "json"]) == 0
    capsys.readouterr()
    with Store.open(evalkit_home / "evalkit.duckdb") as store:
        (subject, lag, breached) = store.fetch(
            "SELECT subject, lag_p95_seconds, breached FROM freshness_checks"
        )[0]
        alerts = store.fetch("SELECT rule, subject, status FROM alerts")
    assert subject == f"http:{delayed_retriever}"
    assert lag >= APPEARS_AFTER - 0.05
    assert breached
    assert alerts == [("ingestion-lag", subject, "firing")]


def test_a_change_log_is_read_on_from_its_last_complete_line(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "changes.jsonl"
    at = iso(utc_now() - timedelta(seconds=30))
    write_changes(log, [{"doc_id": "a", "updated_at": at, "content": "alpha"}])
    with log.open("a", encoding="utf-8") as handle:
        handle.write('{"doc_id": "b", "updated_at": "' + at + '", "content": "be')
    held = HeldVersions("log", {"a": ("alpha", None), "b": ("beta", None)})
    request = FreshnessRequest(changes=(log,), subject="log")
    first = check_freshness(store, request, index=held)
    assert (first.n_read, first.n_reflected) == (1, 1)
    assert first.notes == (f"{log}: an unfinished last line was left for the next check",)
    with log.open("a", encoding="utf-8") as handle:
        handle.write('ta"}\n')
    # Renamed (rotated), the file keeps its place: only the finished line is new.
    rotated = log.rename(tmp_path / "changes.jsonl.1")
    second = check_freshness(store, FreshnessRequest(changes=(rotated,), subject="log"), index=held)
    assert (second.n_read, second.n_reflected, second.reflected[0].doc_id) == (1, 1, "b")
    # Replaced by another file, it is read from the start; changes stored already are skipped.
    write_changes(rotated, [{"doc_id": "a", "updated_at": at, "content": "alpha"}], append=False)
    third = check_freshness(store, FreshnessRequest(changes=(rotated,), subject="log"), index=held)
    assert third.n_read == 0


def test_a_qdrant_collection_is_read_by_its_payload_and_chunks_by_their_earliest_write(
    store: Store, tmp_path: Path
) -> None:
    changed = datetime(2026, 3, 1, 12, 0, 0)
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    client.create_collection(
        "docs", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE)
    )
    points = [
        (1, "a", "alpha, new", "2026-03-01T12:00:40Z"),
        (2, "b", "beta part 1", "2026-03-01T12:01:00Z"),
        (3, "b", "beta part 2", "2026-03-01T11:00:00Z"),
    ]
    client.upsert(
        "docs",
        points=[
            models.PointStruct(
                id=pid, vector=[1.0, 0, 0, 0], payload={"doc": d, "text": t, "written": w}
            )
            for pid, d, t, w in points
        ],
    )
    client.close()
    settings = QdrantSettings(
        path=tmp_path / "qdrant", collection="docs", id_payload_key="doc", text_payload_key="text"
    )
    reader = QdrantVersions(settings, collection=None, indexed_at_key="written")
    log = tmp_path / "changes.jsonl"
    write_changes(
        log,
        [
            {"doc_id": "a", "updated_at": iso(changed), "content": "alpha,  new"},
            {"doc_id": "b", "updated_at": iso(changed), "content": "beta, whole"},
        ],
    )
    try:
        check = check_freshness(
            store, FreshnessRequest(changes=(log,), max_unreflected_age=1e9), index=reader
        )
    finally:
        reader.close()
    assert check.subject == "qdrant:docs"
    # a: same text (whitespace aside), written 40 s after the change; b: one chunk of it is
    # older than the change, so the document is not reflected yet.
    assert [(r.doc_id, r.lag_seconds, r.reflected_by) for r in check.reflected] == [
        ("a", 40.0, "index_time")
    ]
    assert [(p.doc_id, p.state) for p in check.oldest] == [("b", "stale")]


def test_a_write_time_in_epoch_milliseconds_is_refused_naming_its_payload_key(
    store: Store, tmp_path: Path
) -> None:
    """Read as seconds, it crashed with a traceback (year 58874 is out of range) and exit
    1, the code of a breached objective."""
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    client.create_collection(
        "docs", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE)
    )
    payload = {"doc": "a", "text": "alpha", "written": 1_772_366_440_000}
    client.upsert("docs", points=[models.PointStruct(id=1, vector=[1.0, 0, 0, 0], payload=payload)])
    client.close()
    settings = QdrantSettings(
        path=tmp_path / "qdrant", collection="docs", id_payload_key="doc", text_payload_key="text"
    )
    reader = QdrantVersions(settings, collection=None, indexed_at_key="written")
    log = tmp_path / "changes.jsonl"
    write_changes(log, [{"doc_id": "a", "updated_at": "2026-03-01T12:00:00Z", "content": "alpha"}])
    try:
        with pytest.raises(ConfigError, match="payload key 'written' holds 1772366440000, which"):
            check_freshness(store, FreshnessRequest(changes=(log,)), index=reader)
    finally:
        reader.close()


def test_a_change_dated_in_the_future_is_refused_and_moves_no_read_position(
    store: Store, tmp_path: Path
) -> None:
    """A corpus document dated 2099 used to be read as reflected before it happened and to
    move the corpus's read position to 2099, so that no later change was ever read."""
    now = datetime(2026, 11, 26, 16, 0)
    corpus = tmp_path / "corpus.jsonl"
    documents = [
        {"id": "a", "text": "alpha text", "metadata": {"updated_at": "2099-01-01T00:00:00Z"}},
        {"id": "b", "text": "beta text", "metadata": {"updated_at": "2026-11-26T10:00:00Z"}},
    ]
    corpus.write_text("".join(json.dumps(d) + "\n" for d in documents), encoding="utf-8")
    request = FreshnessRequest(corpus=corpus, subject="docs", max_unreflected_age=1e9)
    held = HeldVersions("docs", {"a": ("alpha text", None), "b": ("beta text", None)})
    with pytest.raises(InputError) as caught:
        check_freshness(store, request, index=held, clock=lambda: now)
    [problem] = caught.value.problems
    assert (problem.line, problem.field) == (1, "metadata.updated_at")
    assert "2099-01-01T00:00:00Z is in the future" in str(problem)

    # A source's clock a little ahead of the check's is not a mistake.
    documents[0]["metadata"] = {"updated_at": "2026-11-26T16:03:00Z"}
    corpus.write_text("".join(json.dumps(d) + "\n" for d in documents), encoding="utf-8")
    assert check_freshness(store, request, index=held, clock=lambda: now).n_read == 2
    documents.append(
        {"id": "c", "text": "gamma text", "metadata": {"updated_at": "2026-11-26T16:30:00Z"}}
    )
    corpus.write_text("".join(json.dumps(d) + "\n" for d in documents), encoding="utf-8")
    held.held["c"] = ("gamma text", None)
    later = datetime(2026, 11, 26, 17, 0)
    assert check_freshness(store, request, index=held, clock=lambda: later).n_read == 1


def test_of_two_changes_with_one_time_the_later_line_is_checked(
    store: Store, tmp_path: Path
) -> None:
    """Two lines giving one document the same time: the later is what the document
    became; the earlier one's text used to be checked, and found pending for ever."""
    at = datetime(2026, 3, 1, 12, 0)
    held = HeldVersions("twice", {"d": ("cherry tart dessert", None)})
    check = check_with(
        store,
        tmp_path,
        "twice",
        [("d", at, "zebra quantum xylophone"), ("d", at, "cherry tart dessert")],
        held,
    )
    assert (check.n_read, check.n_reflected, check.n_pending) == (1, 1, 0)
