"""`evalkit runs export` of real runs (replayed over HTTP from a loopback server, stored in a
DuckDB file), read back by pytrec_eval, ranx and DuckDB: every tool computes the metrics
the store holds."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import duckdb
import pytest
from loopback import serving
from test_dashboard_seed import store_traffic_run

from evalkit.cli import invoke
from evalkit.cli._output import with_flags
from evalkit.errors import ConfigError, InputError
from evalkit.goldset.model import Goldset
from evalkit.metrics import parse_measures
from evalkit.pipeline import evaluate_goldset
from evalkit.records import Judgment, Query, QueryResult, ScoredDoc
from evalkit.records.requests import GoldsetRunRequest
from evalkit.retrievers import HttpRetriever
from evalkit.store import Store
from evalkit.store import export as export_module
from evalkit.store.export import GOLDSET_FILES, PARQUET_FILES
from evalkit.store.goldsets import save_goldset
from evalkit.store.retention import prune_run_details
from evalkit.store.runs import get_run, query_metrics, run_results

pytrec_eval = pytest.importorskip("pytrec_eval")

REPO_ROOT = Path(__file__).resolve().parents[1]
MEASURES = ["ndcg@10", "recall@10", "precision@5", "map", "mrr", "r_precision"]
TREC_NAMES = {str(m): m.trec_eval_name for m in parse_measures(MEASURES)}
RANX_NAMES = {
    "ndcg@10": "ndcg@10",
    "recall@10": "recall@10",
    "precision@5": "precision@5",
    "map": "map",
    "mrr": "mrr",
    "r_precision": "r-precision",
}
K = 20
FAILING = "q13"
UNJUDGED = "q40"
QUERY_IDS = [f"q{n}" for n in range(1, 41)]
DOC_IDS = [f"d{n:03d}" for n in range(120)]


def rankings(seed: int, *, tied: bool) -> dict[str, list[dict[str, Any]]]:
    """What the endpoint answers per query: K documents, best first.

    ``tied`` rounds scores to one decimal, so most queries hold ties, and lists each tie
    in doc id *ascending* order: trec_eval (and evalkit) break ties the other way, so the
    stored ranks are not the order the measures are computed in.
    """
    rng = random.Random(seed)
    answers = {}
    for query_id in QUERY_IDS:
        docs = rng.sample(DOC_IDS, K)
        scores = [rng.uniform(0, 10) for _ in docs]
        if tied:
            scores = [round(score / 10, 1) for score in scores]
        pairs = sorted(zip(docs, scores, strict=True), key=lambda pair: (-pair[1], pair[0]))
        answers[query_id] = [{"id": doc, "score": score} for doc, score in pairs]
    return answers


def with_spaced_id(
    answers: dict[str, list[dict[str, Any]]], space: str = " "
) -> dict[str, list[dict[str, Any]]]:
    """``answers`` with q7's fourth document renamed ``d 7`` (``space`` inside)."""
    answers["q7"][3]["id"] = f"d{space}7"
    return answers


ENDPOINTS = {
    "/distinct": rankings(1, tied=False),
    "/tied": rankings(2, tied=True),
    "/spaced": with_spaced_id(rankings(3, tied=False)),
    "/vertical_tab": with_spaced_id(rankings(3, tied=False), "\x0b"),
    "/no_break_space": with_spaced_id(rankings(3, tied=False), "\u00a0"),
}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        answers = ENDPOINTS.get(self.path)
        if answers is None or body["query_id"] == FAILING:
            self.reply(503, b"unavailable")
            return
        self.reply(200, json.dumps({"results": answers[body["query_id"]]}).encode())

    def reply(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def judgments(seed: int) -> list[Judgment]:
    """Graded judgments (0-3) of 12 documents per query, none for ``UNJUDGED``."""
    rng = random.Random(seed)
    return [
        Judgment(query_id, doc, rng.choice([0, 1, 1, 2, 3]))
        for query_id in QUERY_IDS
        if query_id != UNJUDGED
        for doc in rng.sample(DOC_IDS, 12)
    ]


@dataclass(frozen=True)
class Runs:
    home: Path
    store_path: Path
    qrels: Path
    distinct: str
    tied: str
    spaced: str
    vertical_tab: str
    no_break_space: str


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """Three runs of one goldset replayed over real HTTP and stored: tie-free scores,
    tied scores, and one with a doc id holding a space. q13 fails (HTTP 503)."""
    home = tmp_path_factory.mktemp("export-home")
    gold = Goldset.build(
        "export", [Query(q, f"question {q}") for q in QUERY_IDS], judgments(seed=5)
    )
    run_ids = {}
    with serving(Handler) as url, Store.open(home / "evalkit.duckdb") as store:
        save_goldset(store, gold)
        for path in ENDPOINTS:
            with HttpRetriever(f"{url}{path}", retries=0, concurrency=4) as retriever:
                outcome = evaluate_goldset(
                    store,
                    gold,
                    retriever,
                    GoldsetRunRequest(k=K, measures=tuple(MEASURES), answers=False),
                )
            assert outcome.run.status == "partial"
            run_ids[path.strip("/")] = outcome.run.run_id
    qrels = home / "qrels.txt"
    qrels.write_text("".join(f"{j.query_id} 0 {j.doc_id} {j.relevance}\n" for j in gold.judgments))
    return Runs(home, home / "evalkit.duckdb", qrels, **run_ids)


@pytest.fixture
def in_home(runs: Runs, monkeypatch: pytest.MonkeyPatch) -> Runs:
    monkeypatch.setenv("EVALKIT_HOME", str(runs.home))
    monkeypatch.delenv("EVALKIT_STORE_PATH", raising=False)
    monkeypatch.delenv("EVALKIT_CONFIG", raising=False)
    monkeypatch.chdir(runs.home)
    return runs


def stored(runs: Runs, run_id: str) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Per-query metrics and aggregates of a stored run."""
    with Store.open(runs.store_path, read_only=True) as store:
        per_query = query_metrics(store, run_id)
        aggregates = get_run(store, run_id).aggregates
    values = {str(q): {m: float(v) for m, v in row.items()} for q, row in per_query.iterrows()}
    return values, {m: float(v) for m, v in aggregates.items() if v is not None}


def export(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = invoke(["runs", "export", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def pytrec_per_query(qrels: Path, run_file: Path) -> dict[str, dict[str, float]]:
    with qrels.open() as q, run_file.open() as r:
        evaluator = pytrec_eval.RelevanceEvaluator(
            pytrec_eval.parse_qrel(q), set(TREC_NAMES.values())
        )
        values = evaluator.evaluate(pytrec_eval.parse_run(r))
    return {
        query: {name: values[query][trec] for name, trec in TREC_NAMES.items()} for query in values
    }


def assert_same(
    got: dict[str, dict[str, float]], expected: dict[str, dict[str, float]], *, abs: float = 1e-9
) -> None:
    assert sorted(got) == sorted(expected)
    for query, values in expected.items():
        for name, value in values.items():
            assert got[query][name] == pytest.approx(value, abs=abs), (query, name)


def test_trec_export_gives_pytrec_eval_and_ranx_the_stored_metrics(
    in_home: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    per_query, aggregates = stored(in_home, in_home.distinct)
    assert FAILING not in per_query
    assert UNJUDGED not in per_query
    assert len(per_query) == 38

    run_file = in_home.home / "distinct.run"
    code, _, err = export(capsys, in_home.distinct, "--format", "trec", "--output", str(run_file))
    assert code == 0, err
    assert f"as trec to {run_file}" in err
    assert "is partial" in err
    lines = run_file.read_text().splitlines()
    assert len(lines) == 39 * K
    assert all(line.split()[1] == "Q0" and line.endswith(in_home.distinct) for line in lines)

    assert_same(pytrec_per_query(in_home.qrels, run_file), per_query)

    # ranx breaks tied scores in no fixed order: this run has none.
    ranx = pytest.importorskip("ranx")
    qrels = ranx.Qrels.from_file(str(in_home.qrels), kind="trec")
    run = ranx.Run.from_file(str(run_file), kind="trec")
    judged = ranx.Run({q: docs for q, docs in run.to_dict().items() if q != UNJUDGED})
    means = ranx.evaluate(qrels, judged, list(RANX_NAMES.values()), make_comparable=True)
    # make_comparable scores the failed query, absent from the run, as 0 (trec_eval -c);
    # evalkit leaves a failed query out of the means.
    n = len(per_query)
    for name, ranx_name in RANX_NAMES.items():
        assert means[ranx_name] * (n + 1) / n == pytest.approx(aggregates[name], abs=1e-9), name
        ranx_query = judged.scores[ranx_name]
        for query, values in per_query.items():
            assert ranx_query[query] == pytest.approx(values[name], abs=1e-9), (query, name)


def test_tied_scores_are_read_as_evalkit_ranked_them(
    in_home: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    per_query, aggregates = stored(in_home, in_home.tied)
    run_file = in_home.home / "tied.run"
    code, out, _ = export(capsys, in_home.tied, "--trec", str(run_file))
    assert code == 0
    assert out == ""

    # Ranks and scores are the stored ones, in the retriever's order (ties by doc id
    # ascending), though trec_eval ranks ties by doc id descending.
    with Store.open(in_home.store_path, read_only=True) as store:
        results = run_results(store, in_home.tied)
    written = [line.split() for line in run_file.read_text().splitlines()]
    as_stored = {(q, d): (r, s) for q, r, d, s in results.itertuples(index=False)}
    assert len(written) == len(as_stored)
    for query_id, _, doc_id, rank, score, _ in written:
        assert (int(rank), float(score)) == as_stored[(query_id, doc_id)]
    tied_queries = results.groupby("query_id")["score"].apply(lambda s: s.duplicated().any())
    assert tied_queries.sum() >= 30

    assert_same(pytrec_per_query(in_home.qrels, run_file), per_query)
    scored = json.loads(
        run_cli(
            capsys,
            "score",
            "--qrels",
            str(in_home.qrels),
            "--run",
            str(run_file),
            *[arg for m in MEASURES for arg in ("-m", m)],
            "--format",
            "json",
        )
    )
    for name, value in aggregates.items():
        assert scored["aggregate"][name] == pytest.approx(value, abs=1e-12), name

    # A tool that re-ranked ties by the rank column would see other values.
    by_rank = in_home.home / "by-rank.run"
    by_rank.write_text("".join(f"{q} Q0 {d} {r} {-int(r)} x\n" for q, _, d, r, _, _ in written))
    reranked = pytrec_per_query(in_home.qrels, by_rank)
    assert any(
        reranked[query][name] != pytest.approx(value, abs=1e-9)
        for query, values in per_query.items()
        for name, value in values.items()
    )


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = invoke(list(args))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def test_jsonl_export_holds_every_query_with_results_and_metrics(
    in_home: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    per_query, aggregates = stored(in_home, in_home.distinct)
    code, out, _ = export(capsys, in_home.distinct[:-2], "--format", "jsonl")
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["query_id"] for r in records] == QUERY_IDS  # the goldset's order
    by_id = {r["query_id"]: r for r in records}
    assert by_id[FAILING]["error"].startswith("HTTP 503")
    assert by_id[FAILING]["results"] == []
    assert by_id[FAILING]["metrics"] == {}
    assert by_id[UNJUDGED]["metrics"] == {}
    assert len(by_id[UNJUDGED]["results"]) == K
    assert {r["query_id"]: r["metrics"] for r in records if r["metrics"]} == per_query
    assert list(by_id["q1"]["metrics"]) == MEASURES
    first = by_id["q1"]["results"]
    assert [doc["rank"] for doc in first] == list(range(1, K + 1))
    assert first[0] == {
        "rank": 1,
        "doc_id": ENDPOINTS["/distinct"]["q1"][0]["id"],
        "score": ENDPOINTS["/distinct"]["q1"][0]["score"],
    }

    path = in_home.home / "distinct.jsonl"
    code, _, _ = export(capsys, in_home.distinct, "--format", "jsonl", "-o", str(path))
    assert code == 0
    assert path.read_text() == out
    con = duckdb.connect()
    means = con.execute(
        'SELECT avg(metrics."ndcg@10"), avg(metrics.map), count(*), sum(len(results))'
        " FROM read_json(?, format = 'newline_delimited')",
        [str(path)],
    ).fetchone()
    assert means is not None
    assert means[0] == pytest.approx(aggregates["ndcg@10"], abs=1e-12)
    assert means[1] == pytest.approx(aggregates["map"], abs=1e-12)
    assert means[2:] == (40, 39 * K)


def test_parquet_export_is_queried_as_tables(
    in_home: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    per_query, aggregates = stored(in_home, in_home.tied)
    directory = in_home.home / "tied-parquet"
    code, _, err = export(capsys, in_home.tied, "--format", "parquet", "--output", str(directory))
    assert code == 0, err
    assert sorted(p.name for p in directory.iterdir()) == sorted(PARQUET_FILES + GOLDSET_FILES)
    results, queries, _ = (str(directory / name) for name in PARQUET_FILES)
    con = duckdb.connect()
    columns = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [results]).fetchall()
    assert [(c[0], c[1]) for c in columns] == [
        ("run_id", "VARCHAR"),
        ("query_id", "VARCHAR"),
        ("rank", "INTEGER"),
        ("doc_id", "VARCHAR"),
        ("score", "DOUBLE"),
    ]
    columns = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [queries]).fetchall()
    assert [c[0] for c in columns] == [
        "run_id",
        "query_id",
        "latency_ms",
        "error",
        "n_results",
        "n_duplicates",
        *MEASURES,
    ]
    for name, value in aggregates.items():
        mean = con.execute(f'SELECT avg("{name}") FROM read_parquet(?)', [queries]).fetchone()
        assert mean is not None
        assert mean[0] == pytest.approx(value, abs=1e-12), name
    rows = con.execute(
        'SELECT query_id, "ndcg@10", error FROM read_parquet(?) ORDER BY query_id', [queries]
    ).fetchall()
    assert {q: v for q, v, _ in rows if v is not None} == {
        q: values["ndcg@10"] for q, values in per_query.items()
    }
    assert next(e for q, _, e in rows if q == FAILING).startswith("HTTP 503")
    joined = con.execute(
        "SELECT count(*), count(DISTINCT r.query_id) FROM read_parquet(?) r"
        " JOIN read_parquet(?) q USING (run_id, query_id) WHERE q.error IS NULL",
        [results, queries],
    ).fetchone()
    assert joined == (39 * K, 39)
    with Store.open(in_home.store_path, read_only=True) as store:
        stored_results = run_results(store, in_home.tied)
    exported = con.execute(
        "SELECT query_id, rank, doc_id, score FROM read_parquet(?) ORDER BY query_id, rank",
        [results],
    ).df()
    assert exported.to_dict("list") == stored_results.to_dict("list")
    facts = json.loads((directory / "run.json").read_text())
    assert facts["run_id"] == in_home.tied
    assert facts["aggregates"] == pytest.approx(aggregates)


def test_trec_alias_and_option_mistakes(in_home: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    alias, explicit = in_home.home / "alias.run", in_home.home / "explicit.run"
    assert export(capsys, in_home.distinct, "--trec", str(alias))[0] == 0
    assert export(capsys, in_home.distinct, "--output", str(explicit))[0] == 0
    assert alias.read_bytes() == explicit.read_bytes()
    code, out, _ = export(capsys, in_home.distinct)
    assert code == 0
    assert out == alias.read_text()

    code, _, err = export(capsys, in_home.distinct, "--trec", "x.run", "--format", "jsonl")
    assert code == 2
    assert "--trec PATH is --format trec --output PATH" in err
    code, _, err = export(capsys, in_home.distinct, "--format", "parquet")
    assert code == 2
    assert "--output DIR" in err
    code, _, err = export(capsys, in_home.distinct, "--format", "csv")
    assert code == 2
    assert "csv" in err


def test_a_jsonl_export_reads_its_queries_in_batches_sized_in_results(
    in_home: Runs, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of 50,000 rows was 50,000 queries with k results each: a 50,000-query run at
    k 100 held 3 GB of Python objects to write one file."""
    whole = export(capsys, in_home.distinct, "--format", "jsonl")[1]
    fetched: list[int] = []
    original = Store.fetch_batches

    def counted(store: Store, sql: str, parameters: Any = (), *, rows: int = 50_000) -> Any:
        fetched.append(rows)
        return original(store, sql, parameters, rows=rows)

    monkeypatch.setattr(export_module, "_BATCH_ROWS", 3 * K)
    monkeypatch.setattr(Store, "fetch_batches", counted)
    code, batched, _ = export(capsys, in_home.distinct, "--format", "jsonl")
    assert code == 0
    assert fetched == [3]
    assert batched == whole


def test_a_doc_id_with_whitespace_is_refused_for_trec_only(
    in_home: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    target = in_home.home / "spaced.run"
    code, out, err = export(capsys, in_home.spaced, "--output", str(target))
    assert code == 2
    assert "doc id 'd 7' (query 'q7') contains whitespace" in err
    assert "export it as jsonl or parquet" in err
    assert out == ""
    assert not target.exists()
    assert list(in_home.home.glob(".spaced.run*")) == []
    code, out, _ = export(capsys, in_home.spaced, "--format", "jsonl")
    assert code == 0
    assert '"doc_id": "d 7"' in out


def test_a_vertical_tab_is_a_trec_separator_and_a_no_break_space_is_not(
    in_home: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    """trec_eval and `evalkit score` split fields on C's isspace, \\v included: such an id
    would be read as two fields (a relevant document counted as not retrieved); a no-break
    space is part of the id for both."""
    code, _, err = export(capsys, in_home.vertical_tab)
    assert code == 2
    assert "doc id 'd\\x0b7' (query 'q7') contains whitespace" in err
    target = in_home.home / "no-break.run"
    assert export(capsys, in_home.no_break_space, "--output", str(target))[0] == 0
    assert "q7 Q0 d\u00a07 " in target.read_text(encoding="utf-8")
    expected, _ = stored(in_home, in_home.no_break_space)
    score = ["score", "--qrels", str(in_home.qrels), "--run", str(target), "--per-query"]
    assert invoke([*score, "-m", "ndcg@10", "--format", "json"]) == 0
    scored = json.loads(capsys.readouterr().out)["per_query"]
    assert {query: row["ndcg@10"] for query, row in scored.items()} == pytest.approx(
        {query: row["ndcg@10"] for query, row in expected.items() if query in scored}
    )
    judged = in_home.home / "no-break.qrels"
    judged.write_text(in_home.qrels.read_text() + "q7 0 d\u00a07 3\n", encoding="utf-8")
    score[2] = str(judged)
    assert invoke([*score, "-m", "ndcg@10", "--format", "json"]) == 0
    rescored = json.loads(capsys.readouterr().out)["per_query"]
    assert rescored["q7"]["ndcg@10"] > scored["q7"]["ndcg@10"]


def test_the_command_names_an_unknown_run(in_home: Runs) -> None:
    environment = {**os.environ, "EVALKIT_HOME": str(in_home.home)}
    done = subprocess.run(
        [sys.executable, "-m", "evalkit", "runs", "export", "20990101T000000-nope", "-o", "x"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=in_home.home,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "no run '20990101T000000-nope'" in done.stderr
    assert not (in_home.home / "x").exists()


def test_the_queries_in_export_md_run_on_a_real_export(
    in_home: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    exports = in_home.home / "exports"
    for run_id in (in_home.distinct, in_home.tied):
        code, _, _ = export(capsys, run_id, "--format", "parquet", "-o", str(exports / run_id))
        assert code == 0
    jsonl = in_home.home / "run.jsonl"
    assert export(capsys, in_home.distinct, "--format", "jsonl", "-o", str(jsonl))[0] == 0
    text = (REPO_ROOT / "docs" / "export.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sql\n(.*?)```", text, re.DOTALL)
    statements = [
        s.strip() for block in blocks for s in block.split(";") if re.sub(r"--.*", "", s).strip()
    ]
    assert len(statements) == 4
    con = duckdb.connect()
    results = []
    for statement in statements:
        sql = (
            statement.replace("exports/RUN_ID", f"{exports}/{in_home.distinct}")
            .replace("exports/*", f"{exports}/*")
            .replace("'run.jsonl'", f"'{jsonl}'")
        )
        results.append(con.execute(sql).fetchall())
    worst_jsonl, aggregates, compared, worst_docs = results
    per_query, stored_aggregates = stored(in_home, in_home.distinct)
    lowest = sorted(values["ndcg@10"] for values in per_query.values())
    assert [row[1] for row in worst_jsonl] == pytest.approx(lowest[:10], abs=1e-12)
    assert all(per_query[q]["ndcg@10"] == pytest.approx(v) for q, v in worst_jsonl)
    assert aggregates[0][0] == pytest.approx(stored_aggregates["ndcg@10"], abs=1e-12)
    assert aggregates[0][1] == pytest.approx(stored_aggregates["recall@10"], abs=1e-12)
    assert {row[0]: row[2] for row in compared} == {in_home.distinct: 1, in_home.tied: 1}
    assert len(worst_docs) == 10 * K


def test_an_export_to_a_folder_where_a_file_goes_is_bad_input_naming_the_folder(
    in_home: Runs, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Not a system failure with the name of an internal temporary file."""
    code, _, err = export(capsys, in_home.distinct, "--output", str(tmp_path))
    assert code == 2
    assert err.strip() == f"error: {tmp_path}: is a folder; give a file"
    assert list(tmp_path.iterdir()) == []


class _Listing:
    """A retriever answering every query with the same two documents."""

    def retrieve(self, queries: list[Query], k: int) -> list[QueryResult]:
        docs = (ScoredDoc("d1", 2.0, 1), ScoredDoc("d2", 1.0, 2))
        return [QueryResult(query_id=query.id, docs=docs, latency_ms=1.0) for query in queries]

    def describe(self) -> dict[str, Any]:
        return {"kind": "listing"}

    def index_fingerprint(self) -> None:
        return None

    def model_fingerprint(self) -> None:
        return None


def test_a_query_id_trec_eval_reads_as_a_comment_is_refused_for_trec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A line starting with '#' is a comment to trec_eval and `evalkit score`: exported,
    the query would vanish from the file and from every figure computed from it."""
    gold = Goldset.build(
        "hashes",
        [Query("#q1", "first question"), Query("q2", "second question")],
        [Judgment("#q1", "d1", 1), Judgment("q2", "d2", 1)],
    )
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        save_goldset(store, gold)
        outcome = evaluate_goldset(
            store, gold, _Listing(), GoldsetRunRequest(k=2, measures=("map",), answers=False)
        )
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    code, out, err = export(capsys, outcome.run.run_id)
    assert code == 2
    assert "query id '#q1' starts with '#'" in err
    assert out == ""
    code, out, _ = export(capsys, outcome.run.run_id, "--format", "jsonl")
    assert code == 0
    assert '"query_id": "#q1"' in out


def test_a_run_retention_pruned_is_refused_in_every_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It was written as an export with no query (trec, jsonl) or one whose aggregates its
    empty queries.parquet contradicts, which `runs import` then called edited or broken."""
    gold = Goldset.build("tiny", [Query("q1", "first question")], [Judgment("q1", "d1", 1)])
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        save_goldset(store, gold)
        outcome = evaluate_goldset(
            store, gold, _Listing(), GoldsetRunRequest(k=2, measures=("map",), answers=False)
        )
        prune_run_details(store, [outcome.run.run_id])
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    for output_format, output in (("trec", "r.trec"), ("jsonl", "r.jsonl"), ("parquet", "dx")):
        code, _, err = export(capsys, outcome.run.run_id, "--format", output_format, "-o", output)
        assert code == 2
        assert err.startswith(
            f"error: run {outcome.run.run_id} has no per-query results any more: retention "
            "deleted them at "
        )
        assert "an export would hold none of them" in err
        assert not (tmp_path / output).exists()


def test_a_run_without_a_goldset_exported_where_a_goldset_run_was_leaves_no_goldset_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The goldset run's goldset_queries.parquet and judgments.parquet stayed beside the
    traffic run's files, where a glob over exports/*/judgments.parquet reads them as its."""
    gold = Goldset.build("tiny", [Query("q1", "first question")], [Judgment("q1", "d1", 1)])
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        save_goldset(store, gold)
        goldset_run = evaluate_goldset(
            store, gold, _Listing(), GoldsetRunRequest(k=2, measures=("map",), answers=False)
        ).run.run_id
        traffic_run = store_traffic_run(store, k=2)
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    for run_id in (goldset_run, traffic_run):
        code, _, err = export(capsys, run_id, "--format", "parquet", "-o", "dx", "--overwrite")
        assert code == 0, err
    assert sorted(path.name for path in (tmp_path / "dx").iterdir()) == sorted(PARQUET_FILES)
    assert json.loads((tmp_path / "dx" / "run.json").read_text())["run_id"] == traffic_run


@pytest.mark.parametrize("form", ["trec", "jsonl"])
def test_an_export_does_not_replace_a_file_without_overwrite(
    in_home: Runs, capsys: pytest.CaptureFixture[str], tmp_path: Path, form: str
) -> None:
    """`runs export --output FILE` replaced a file that was there, whatever it held."""
    target = tmp_path / f"kept.{form}"
    target.write_text("someone's file\n")
    code, _, err = export(capsys, in_home.distinct, "--format", form, "--output", str(target))
    assert code == 2
    assert err.strip() == (
        f"error: {target}: already exists; pass --overwrite to replace it, or choose another "
        "--output"
    )
    assert target.read_text() == "someone's file\n"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no partial file left
    options = ["--format", form, "--output", str(target), "--overwrite"]
    assert export(capsys, in_home.distinct, *options)[0] == 0
    assert target.read_text() != "someone's file\n"


def test_a_parquet_export_does_not_write_into_a_folder_holding_files_without_overwrite(
    in_home: Runs, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "notes.txt").write_text("kept\n")
    options = ["--format", "parquet", "--output", str(folder)]
    code, _, err = export(capsys, in_home.distinct, *options)
    assert code == 2
    assert err.strip().startswith(f"error: {folder}: already holds files; pass --overwrite")
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    assert export(capsys, in_home.distinct, *options, "--overwrite")[0] == 0
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["notes.txt", *PARQUET_FILES, *GOLDSET_FILES]
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert export(capsys, in_home.tied, "--format", "parquet", "--output", str(empty))[0] == 0
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    code, _, err = export(capsys, in_home.tied, "--format", "parquet", "--output", str(a_file))
    assert (code, a_file.read_text()) == (2, "x")
    assert f"{a_file}: is a file" in err


def test_below_the_cli_an_export_refusal_names_the_setting_not_a_flag(
    runs: Runs, tmp_path: Path
) -> None:
    """The store names the settings (``output``, ``overwrite``); the CLI shows them as its
    flags (``--output``, ``--overwrite``), as the tests above read."""
    target = tmp_path / "kept.trec"
    target.write_text("x")
    with Store.open(runs.store_path, read_only=True) as store:
        with pytest.raises(InputError) as exists:
            export_module.export_run(store, runs.distinct, format="trec", output=target)
        with pytest.raises(ConfigError) as no_output:
            export_module.export_run(store, runs.distinct, format="parquet")
    assert str(exists.value).endswith(
        "already exists; pass overwrite to replace it, or choose another output"
    )
    assert str(no_output.value).endswith("give output DIR")
    assert with_flags(str(no_output.value)).endswith("give --output DIR")
