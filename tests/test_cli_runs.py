"""`evalkit runs list|show` on runs stored in a real store: failed queries, per-query order,
traffic replay runs."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from evalkit.cli import invoke
from evalkit.embedding import ModelFingerprint
from evalkit.goldset.model import Goldset
from evalkit.pipeline import TrafficReplayRequest, evaluate_goldset, replay_traffic_window
from evalkit.records import Judgment, Query, QueryResult, ScoredDoc
from evalkit.records.requests import GoldsetRunRequest
from evalkit.store import RunSpec, Store
from evalkit.store.goldsets import save_goldset
from evalkit.store.runs import create_run, fail_run
from evalkit.traffic import SampleSpec, ingest_paths, parse_window, sample_window


class Retriever:
    """Finds query n's relevant document at rank n % 4 + 1; fails the ids in ``fail``."""

    def __init__(self, fail: Sequence[str] = (), where_key: str | None = None) -> None:
        self.fail = set(fail)
        self.where_key = where_key

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        results = []
        for query in queries:
            if query.id in self.fail:
                results.append(QueryResult(query.id, (), 1.0, error=f"HTTP 503 for {query.id}"))
                continue
            rank = int(query.id[1:]) % 4 + 1
            docs = [f"x{i}" for i in range(1, 5)]
            docs.insert(rank - 1, f"d{query.id}")
            ranked = tuple(ScoredDoc(d, 1.0 - i / 10, i + 1) for i, d in enumerate(docs[:k]))
            results.append(QueryResult(query.id, ranked, 1.0))
        return results

    def describe(self) -> dict[str, Any]:
        return {"kind": "list", "collection": "kb", "where_key": self.where_key}

    def index_fingerprint(self) -> str | None:
        return "idx-1"

    def model_fingerprint(self) -> ModelFingerprint | None:
        return None


def show(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = invoke(["runs", "show", *args])
    return code, capsys.readouterr().out


@pytest.fixture
def partial_run(evalkit_home: Path) -> str:
    ids = [f"q{i}" for i in range(1, 13)]
    gold = Goldset.build(
        "twelve", [Query(q, f"question {q}") for q in ids], [Judgment(q, f"d{q}", 1) for q in ids]
    )
    evalkit_home.mkdir(parents=True, exist_ok=True)
    with Store.open(evalkit_home / "evalkit.duckdb") as store:
        save_goldset(store, gold)
        outcome = evaluate_goldset(
            store,
            gold,
            Retriever(fail=["q2", "q10", "q11"]),
            GoldsetRunRequest(k=5, measures=("ndcg@10", "mrr@10"), answers=False),
        )
    return outcome.run.run_id


def test_show_per_query_lists_every_failed_query_with_its_error(
    partial_run: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = show(capsys, partial_run, "--per-query", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["failed_queries"] == [
        {"query_id": q, "error": f"HTTP 503 for {q}"} for q in ("q2", "q10", "q11")
    ]
    code, out = show(capsys, partial_run, "--per-query")
    assert code == 0
    assert "failed queries (3)" in out
    for q in ("q2", "q10", "q11"):
        assert f"HTTP 503 for {q}" in out


def test_per_query_rows_sort_ids_naturally_or_worst_first(
    partial_run: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = show(capsys, partial_run, "--per-query", "--format", "json")
    assert code == 0
    answered = ["q1", "q3", "q4", "q5", "q6", "q7", "q8", "q9", "q12"]
    assert list(json.loads(out)["per_query"]) == answered

    code, out = show(capsys, partial_run, "--per-query", "--sort", "worst", "--format", "json")
    assert code == 0
    per_query = json.loads(out)["per_query"]
    values = [row["ndcg@10"] for row in per_query.values()]
    assert values == sorted(values)
    # Rank n % 4 + 1: q3 and q7 rank their document 4th, the worst; ties go by id.
    assert list(per_query)[:2] == ["q3", "q7"]

    code, out = show(capsys, partial_run, "--per-query", "--sort", "mrr@10", "--format", "json")
    assert list(json.loads(out)["per_query"])[:2] == ["q3", "q7"]

    code = invoke(["runs", "show", partial_run, "--per-query", "--sort", "latency"])
    assert code == 2
    assert "--sort 'latency'" in capsys.readouterr().err


def test_a_traffic_replay_run_shows_its_window_sample_and_figures(
    tmp_path: Path, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "traffic.jsonl"
    log.write_text(
        "".join(
            json.dumps(
                {
                    "query_id": f"q{i}",
                    "text": f"question {i}",
                    "tenant": "acme" if i % 2 else "globex",
                    "results": [f"dq{i}"],
                    "timestamp": "2026-11-21T10:00:00Z",
                }
            )
            + "\n"
            for i in range(1, 51)
        )
    )
    evalkit_home.mkdir(parents=True, exist_ok=True)
    with Store.open(evalkit_home / "evalkit.duckdb") as store:
        ingest_paths(store, [log])
        sample = sample_window(store, SampleSpec(window=parse_window("2026-11-21"), n=50, seed=1))
        run_id = replay_traffic_window(
            store,
            sample.sample_id,
            Retriever(fail=["q7"], where_key="tenant"),
            TrafficReplayRequest(k=5, answers=False),
        ).run.run_id

    code, out = show(capsys, run_id)
    assert code == 0
    assert "None @ None" not in out
    assert "evaluated of" not in out
    assert "2026-11-21" in out
    assert "50 sampled, 1 failed" in out
    assert "acme, globex" in out
    assert "label-free figures" in out
    assert "overlap@5 with logged results" in out

    code, out = show(capsys, run_id, "--format", "json")
    data = json.loads(out)
    assert data["traffic"]["summary"]["window_label"] == "2026-11-21"
    assert data["traffic"]["summary"]["n_replayed"] == 50
    assert data["traffic"]["tenants"] == ["acme", "globex"]

    code = invoke(["runs", "list"])
    listed = capsys.readouterr().out
    assert code == 0
    assert "traffic 2026-11-21" in listed
    row = next(line for line in listed.splitlines() if run_id[:10] in line)
    assert re.search(r"│\s+49\s+│", row)


def test_score_per_query_sorts_ids_naturally_or_worst_first(
    tmp_path: Path, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = [1, 2, 10, 11, 20]
    (tmp_path / "qrels").write_text("".join(f"q{i} 0 dq{i} 1\n" for i in ids))
    # q10's relevant document ranks 3rd, the others' 1st.
    (tmp_path / "run").write_text(
        "".join(
            f"q{i} Q0 {doc} {rank} {1 - rank / 10} t\n"
            for i in ids
            for rank, doc in enumerate(
                ["x1", "x2", f"dq{i}"] if i == 10 else [f"dq{i}", "x1", "x2"], start=1
            )
        )
    )
    common = ["score", "--qrels", str(tmp_path / "qrels"), "--run", str(tmp_path / "run")]
    common += ["-m", "ndcg@10", "--per-query", "--format", "json"]
    assert invoke(common) == 0
    assert list(json.loads(capsys.readouterr().out)["per_query"]) == [
        "q1",
        "q2",
        "q10",
        "q11",
        "q20",
    ]
    assert invoke([*common, "--sort", "worst"]) == 0
    assert list(json.loads(capsys.readouterr().out)["per_query"]) == [
        "q10",
        "q1",
        "q2",
        "q11",
        "q20",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--limit", "-1"], "Invalid value for '--limit'"),
        (["--status", "bogus"], "--status 'bogus': give one of running, complete, partial"),
    ],
)
def test_runs_list_refuses_bad_options_as_misuse_not_as_a_store_failure(
    partial_run: str, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert invoke(["runs", "list", *args]) == 2
    assert message in capsys.readouterr().err


def test_score_refuses_empty_qrels_and_a_run_none_of_whose_queries_is_judged(
    tmp_path: Path, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CI step must not pass on a NaN scored over no query."""
    (tmp_path / "empty").write_text("")
    (tmp_path / "run").write_text("1 Q0 d1 1 0.9 r\n")
    (tmp_path / "other").write_text("2 0 d1 1\n")
    base = ["score", "--run", str(tmp_path / "run"), "-m", "ndcg@10"]
    assert invoke([*base, "--qrels", str(tmp_path / "empty")]) == 2
    assert "empty: holds no judgments" in capsys.readouterr().err
    assert invoke([*base, "--qrels", str(tmp_path / "other")]) == 2
    assert "no query of the run is judged in" in capsys.readouterr().err
    # trec_eval -c scores the judged query the run left out as 0.
    complete = [*base, "--qrels", str(tmp_path / "other"), "--complete", "--format", "json"]
    assert invoke(complete) == 0
    assert json.loads(capsys.readouterr().out)["aggregate"] == {"ndcg@10": 0.0}


def test_text_from_users_data_is_shown_as_text_never_as_markup_or_terminal_codes(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name or query id is data, never markup ("[/x]" failed, "[bold]" vanished), and an
    escape sequence from a production log must not clear or reorder the terminal."""
    query_id = "q1\x1b[2J\u202e"
    gold = Goldset.build("[bold]faq", [Query(query_id, "question")], [Judgment(query_id, "d", 1)])
    evalkit_home.mkdir(parents=True, exist_ok=True)
    with Store.open(evalkit_home / "evalkit.duckdb") as store:
        save_goldset(store, gold)
        run = evaluate_goldset(store, gold, Retriever(), GoldsetRunRequest(k=5, answers=False))
    assert invoke(["runs", "show", run.run.run_id, "--per-query"]) == 0
    out = capsys.readouterr().out
    assert "[bold]faq @" in out
    assert "q1\\x1b[2J\\u202e" in out
    assert "\x1b" not in out
    assert "\u202e" not in out


class SameRanking(Retriever):
    """Ranks d0, d1, d2 for every query: query n's relevant document ``dn`` at rank n + 1."""

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        ranked = tuple(ScoredDoc(f"d{i}", 1.0 - i / 10, i + 1) for i in range(3))
        return [QueryResult(query.id, ranked, 1.0) for query in queries]


def test_a_query_id_holding_a_line_break_is_one_row_not_a_second_query(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Printed as it is, the id "q1\\nq2" drew a row "q2" without values under the row
    "q1": beside the goldset's real q2 it read as that query listed twice."""
    ids = ["q1\nq2", "q2", "q3\u2028q4"]
    gold = Goldset.build(
        "breaks",
        [Query(q, "question") for q in ids],
        [Judgment(q, f"d{i}", 1) for i, q in enumerate(ids)],
    )
    evalkit_home.mkdir(parents=True, exist_ok=True)
    with Store.open(evalkit_home / "evalkit.duckdb") as store:
        save_goldset(store, gold)
        outcome = evaluate_goldset(
            store, gold, SameRanking(), GoldsetRunRequest(k=3, measures=("mrr@10",), answers=False)
        )
    code, out = show(capsys, outcome.run.run_id, "--per-query")
    assert code == 0
    table = out[out.index("per query") :]
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in table.splitlines()
        if line.startswith("│")
    ]
    assert rows == [["q1\\nq2", "1.0000"], ["q2", "0.5000"], ["q3\\u2028q4", "0.3333"]]


def test_score_names_the_file_and_lines_that_give_a_document_twice(
    tmp_path: Path, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # d1 also stands in other fields and queries, which are not the pair's lines.
    (tmp_path / "run").write_text(
        "1 Q0 d1 1 0.9 d1\n2 Q0 d1 1 0.9 r\n\n# d1\n1 Q0 d2 2 0.8 r\nd1 Q0 d3 1 0.5 r\n"
        "1 Q0 d1 3 0.7 r\n1 Q0 d1 4 0.6 r\n"
    )
    (tmp_path / "qrels").write_text("1 0 d1 1\n")
    (tmp_path / "twice").write_text("\ufeff1 0 d1 1\n1 0 d2 0\n1 0 d1 2\n")
    (tmp_path / "once").write_text("1 Q0 d1 1 0.9 r\n")
    base = ["score", "-m", "ndcg@10"]
    assert invoke([*base, "--qrels", str(tmp_path / "qrels"), "--run", str(tmp_path / "run")]) == 2
    assert (
        f"{tmp_path / 'run'}:7 field 'doc_id': document 'd1' appears more than once for query "
        "'1' (first on line 1); a ranking lists each document once"
    ) in capsys.readouterr().err
    assert invoke([*base, "--qrels", str(tmp_path / "twice"), "--run", str(tmp_path / "once")]) == 2
    assert (
        f"{tmp_path / 'twice'}:3 field 'doc_id': document 'd1' is judged more than once for "
        "query '1' (first on line 1); judge each"
    ) in capsys.readouterr().err


def test_a_failed_run_shows_zero_queries_evaluated_not_none(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = RunSpec(
        kind="goldset",
        retriever_kind="http",
        k=10,
        measures=("ndcg@10",),
        evalkit_version="test",
        goldset_name="gs",
        n_queries=129,
    )
    evalkit_home.mkdir(parents=True, exist_ok=True)
    with Store.open(evalkit_home / "evalkit.duckdb") as store:
        run_id = create_run(store, spec)
        fail_run(store, run_id, "JobCancelledError: job nightly was interrupted")
    code, out = show(capsys, run_id)
    assert code == 0
    assert "0 evaluated of 129" in out


def test_show_tells_of_documents_without_a_vector(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pgvector table with NULL embeddings recorded 1500 documents and 1403 vectors, and
    nothing shown said that 97 documents could never be retrieved."""
    spec = RunSpec(
        kind="goldset",
        retriever_kind="pgvector",
        k=10,
        measures=("ndcg@10",),
        evalkit_version="test",
        goldset_name="gs",
        index_documents=1500,
        index_vectors=1403,
    )
    evalkit_home.mkdir(parents=True, exist_ok=True)
    with Store.open(evalkit_home / "evalkit.duckdb") as store:
        gapped = create_run(store, spec)
        whole = create_run(store, replace(spec, index_vectors=1500))
    code, out = show(capsys, gapped)
    assert code == 0
    assert (
        "1,403 of the index's 1,500 documents have a vector: the other 97 cannot be retrieved"
        in " ".join(out.split())
    )
    code, out = show(capsys, whole)
    assert code == 0
    assert "have a vector" not in out


def test_a_bm25_run_does_not_tell_of_documents_without_a_vector(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bm25 index records its documents and 0 vectors: it retrieves every document by its
    words, so saying that none of them can be retrieved was false on every bm25 run."""
    spec = RunSpec(
        kind="goldset",
        retriever_kind="bm25",
        k=10,
        measures=("ndcg@10",),
        evalkit_version="test",
        goldset_name="gs",
        index_documents=3,
        index_vectors=0,
    )
    evalkit_home.mkdir(parents=True, exist_ok=True)
    with Store.open(evalkit_home / "evalkit.duckdb") as store:
        run_id = create_run(store, spec)
    code, out = show(capsys, run_id)
    assert code == 0
    assert "vector" not in out
