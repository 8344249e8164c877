"""`evalkit gate` and `evalkit compare` on TREC files, stored runs and a live retriever."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from evalkit_process import EVALKIT
from gate_inputs import retriever_endpoint, write_goldset_files
from loopback import running
from terminal import run_on_terminal, terminal_env

from evalkit.cli import invoke


def write_qrels(path: Path, n_queries: int) -> None:
    lines = []
    for q in range(n_queries):
        for r in range(3):
            lines.append(f"q{q} 0 rel{q}_{r} {1 + (r == 0)}\n")
    path.write_text("".join(lines))


def write_run(path: Path, n_queries: int, *, drop: set[int] = frozenset(), seed: int = 0) -> None:
    """Each query ranks its three relevant docs among 7 others with seeded jitter; queries in
    ``drop`` lose every relevant document."""
    lines = []
    for q in range(n_queries):
        rng = np.random.default_rng([seed, q])
        docs = [f"noise{q}_{i}" for i in range(7)]
        if q not in drop:
            docs += [f"rel{q}_{r}" for r in range(3)]
        scores = rng.random(10)[: len(docs)]
        for rank, index in enumerate(np.argsort(-scores), start=1):
            lines.append(f"q{q} Q0 {docs[index]} {rank} {scores[index]:.6f} run\n")
    path.write_text("".join(lines))


def gate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = invoke(["gate", *args, "--resamples", "2000", "--format", "json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def run_files(files: Path, *, candidate: str = "cand.run") -> list[str]:
    """The gate options naming the run files ``base.run`` and ``candidate`` and the qrels
    in ``files``."""
    return [
        "--baseline",
        str(files / "base.run"),
        "--candidate",
        str(files / candidate),
        "--qrels",
        str(files / "qrels"),
    ]


@pytest.fixture
def files(tmp_path: Path, evalkit_home: Path) -> Path:
    return tmp_path


def test_identical_runs_pass(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_qrels(files / "qrels", 300)
    write_run(files / "base.run", 300)
    code, data = gate(
        capsys,
        *run_files(files, candidate="base.run"),
        "-m",
        "ndcg@10",
        "-m",
        "recall@10",
    )
    assert code == 0
    assert data["decision"] == "pass"
    assert data["metrics"]["ndcg@10"]["delta"] == 0.0


def test_losing_relevant_docs_on_a_tenth_of_queries_is_a_regression(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dropped = set(range(0, 300, 10))
    write_qrels(files / "qrels", 300)
    write_run(files / "base.run", 300)
    write_run(files / "cand.run", 300, drop=dropped)
    junit = files / "out" / "gate.xml"
    markdown = files / "out" / "gate.md"
    code, data = gate(
        capsys,
        *run_files(files),
        "-m",
        "ndcg@10",
        "-m",
        "recall@10",
        "--min-effect",
        "0.01",
        "--junit",
        str(junit),
        "--markdown",
        str(markdown),
        "--worst",
        "40",
    )
    assert code == 1
    assert data["decision"] == "regression"
    metric = data["metrics"]["ndcg@10"]
    assert metric["decision"] == "regression"
    assert metric["ci_high"] < -0.01
    assert metric["p_adjusted"] < 0.05
    assert metric["n"] == 300
    listed = {row["query_id"] for row in data["worst_queries"]["ndcg@10"]}
    assert listed == {f"q{q}" for q in dropped}
    lost = {row["query_id"]: row["lost"] for row in data["worst_queries"]["recall@10"]}
    assert lost["q10"] == ["rel10_0", "rel10_1", "rel10_2"]
    suite = ET.fromstring(junit.read_text())
    assert suite.get("tests") == "2"
    assert suite.get("failures") == "2"
    summary = markdown.read_text()
    assert "regression" in summary
    assert "rel10\\_0" in summary  # Markdown-escaped


@pytest.mark.slow
def test_a_report_that_cannot_be_written_names_it_and_the_verdict(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A CI log used to show only "[Errno 17] File exists: 'out'" (exit 3): no report named,
    # and no word of the regression the gate had found.
    write_qrels(files / "qrels", 300)
    write_run(files / "base.run", 300)
    write_run(files / "cand.run", 300, drop=set(range(0, 300, 10)))
    (files / "out").write_text("a file where the reports' folder should be")
    code, data = gate(capsys, *run_files(files), "--junit", str(files / "out" / "gate.xml"))
    assert code == 2
    message = data["error"]["message"]
    assert message.startswith(f"cannot write the gate's JUnit report {files / 'out' / 'gate.xml'}")
    assert "The gate decided regression (exit 1)" in message


@pytest.mark.parametrize("columns", [80, 110, 160])
@pytest.mark.slow
def test_every_figure_of_the_verdict_is_whole_on_a_narrow_terminal(
    files: Path, capsys: pytest.CaptureFixture[str], columns: int
) -> None:
    """On an 80-column terminal the measures' table read `0.7…`, `-0.…` and `regr…` in every
    cell: the verdict's figures are printed whole, a block per measure where the table would
    have to cut them."""
    write_qrels(files / "qrels", 60)
    write_run(files / "base.run", 60)
    write_run(files / "cand.run", 60, drop=set(range(0, 60, 3)))
    args = [*run_files(files), "-m", "ndcg@10", "-m", "recall@10"]
    env = terminal_env(EVALKIT_HOME=str(files / "home"))
    command = [*EVALKIT, "gate", *args, "--resamples", "2000"]
    drawn = run_on_terminal(command, cwd=files, env=env, columns=columns)
    assert drawn.returncode == 1, drawn.output
    code, data = gate(capsys, *args)
    assert code == 1
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn.output)
    assert "…" not in text
    for name, metric in data["metrics"].items():
        assert name in text
        for key in ("baseline_mean", "candidate_mean", "delta"):
            assert f"{metric[key]:.4f}" in text
        assert f"[{metric['ci_low']:+.4f}, {metric['ci_high']:+.4f}]" in text
    assert text.count("regression") >= 3  # each measure's decision, then the verdict
    assert max(len(line) for line in text.splitlines()) <= columns


def test_five_queries_are_inconclusive(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_qrels(files / "qrels", 5)
    write_run(files / "base.run", 5, seed=1)
    write_run(files / "cand.run", 5, seed=2)
    code, data = gate(
        capsys,
        *run_files(files),
        "-m",
        "ndcg@10",
        "--min-effect",
        "0.01",
    )
    assert code == 4
    assert data["decision"] == "inconclusive"
    assert data["metrics"]["ndcg@10"]["queries_needed"] is not None
    assert data["metrics"]["ndcg@10"]["queries_needed"] > 5
    # The table output says it too, as the Markdown summary does.
    code = invoke(
        [
            "gate",
            *run_files(files),
            "--resamples",
            "2000",
        ]
    )
    out = capsys.readouterr().out
    assert code == 4
    needed = data["metrics"]["ndcg@10"]["queries_needed"]
    assert f"queries needed to decide ndcg@10: ~{needed:,}" in out


def test_a_baseline_that_names_nothing_says_what_it_was_looked_for_as(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped baseline file read "no run 'base.rn' in STORE; list runs with `evalkit
    runs list`", as if it had to be a run id."""
    write_qrels(files / "qrels", 10)
    write_run(files / "cand.run", 10)
    (files / "exports").mkdir()
    home = files / "home" / "evalkit.duckdb"
    # A store without runs (with none, the message says there is no store yet).
    invoke(["goldset", "import", str(write_goldset_files(files / "gold", 3)), "--name", "g"])
    capsys.readouterr()
    for baseline, message in (
        (
            str(files / "base.rn"),
            f"{str(files / 'base.rn')!r} is not a run file or run export (there is no "
            f"{files / 'base.rn'}), nor a run in {home}; list runs with `evalkit runs list`",
        ),
        (
            str(files / "exports"),
            f"{files / 'exports'} is a folder but not a run export (it holds no run.json; "
            "`evalkit runs export RUN --format parquet --output DIR` writes one), nor a run "
            f"in {home}",
        ),
        (
            "20261121T183500-3f9a1c",
            f"no run '20261121T183500-3f9a1c' in {home}; list runs with `evalkit runs list`",
        ),
    ):
        args = ["--baseline", baseline, "--candidate", str(files / "cand.run")]
        code, data = gate(capsys, *args, "--qrels", str(files / "qrels"))
        assert code == 2
        assert data["error"]["message"] == message


def test_a_run_file_without_judgments_is_a_usage_error(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_run(files / "base.run", 5)
    code = invoke(
        ["gate", "--baseline", str(files / "base.run"), "--candidate", str(files / "base.run")]
    )
    assert code == 2
    assert "--qrels" in capsys.readouterr().err


@pytest.mark.parametrize("candidate", ["empty", "renumbered"])
def test_a_candidate_file_none_of_whose_queries_is_judged_is_bad_input_not_a_regression(
    files: Path, capsys: pytest.CaptureFixture[str], candidate: str
) -> None:
    """An empty file, or one numbering its queries otherwise (`Q1` for `1`), would score 0 on
    every query: a regression that is not one, failing CI for a wrong reason."""
    write_qrels(files / "qrels", 20)
    write_run(files / "base.run", 20)
    base = (files / "base.run").read_text()
    (files / "cand.run").write_text("" if candidate == "empty" else base.replace("q", "Q", -1))
    code = invoke(["gate", *run_files(files), "--format", "json"])
    error = json.loads(capsys.readouterr().out)["error"]
    assert code == 2
    assert "no query of the run file is judged" in error["message"]
    assert error["message"].startswith(str(files / "cand.run"))
    compare = ["compare", str(files / "base.run"), str(files / "cand.run")]
    assert invoke([*compare, "--qrels", str(files / "qrels")]) == 2
    assert "check that the run and the goldset or qrels number queries alike" in (
        capsys.readouterr().err
    )


def test_a_judged_query_the_baseline_file_lacks_is_left_out_and_one_the_candidate_lacks_is_0(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run file has no line for a query that retrieved nothing, nor for one it was never
    asked (added to the goldset since): read as whichever cannot flatter the candidate."""
    write_qrels(files / "qrels", 300)
    write_run(files / "full.run", 300)
    write_run(files / "short.run", 280)
    files.joinpath("base.run").write_text(files.joinpath("short.run").read_text())
    files.joinpath("cand.run").write_text(files.joinpath("full.run").read_text())
    code, grown = gate(capsys, *run_files(files), "-m", "ndcg@10")
    assert (code, grown["decision"]) == (0, "pass")
    assert (grown["n_shared"], grown["metrics"]["ndcg@10"]["delta"]) == (280, 0.0)
    assert grown["only_in_candidate"] == sorted(f"q{q}" for q in range(280, 300))
    assert grown["only_in_baseline"] == []

    files.joinpath("base.run").write_text(files.joinpath("full.run").read_text())
    files.joinpath("cand.run").write_text(files.joinpath("short.run").read_text())
    code, lost = gate(capsys, *run_files(files), "-m", "ndcg@10")
    assert (code, lost["decision"]) == (1, "regression")
    assert (lost["n_shared"], lost["only_in_baseline"], lost["only_in_candidate"]) == (300, [], [])


@pytest.mark.parametrize("repeated", ["base.run", "cand.run"])
def test_a_document_listed_twice_in_a_run_file_names_the_file_and_lines(
    files: Path, capsys: pytest.CaptureFixture[str], repeated: str
) -> None:
    write_qrels(files / "qrels", 20)
    write_run(files / "base.run", 20)
    write_run(files / "cand.run", 20)
    lines = (files / repeated).read_text().splitlines(keepends=True)
    (files / repeated).write_text("".join([*lines, lines[1]]))
    code = invoke(["gate", *run_files(files), "--format", "json"])
    error = json.loads(capsys.readouterr().out)["error"]
    assert code == 2
    doc = lines[1].split()[2]
    assert error["message"] == (
        f"{files / repeated}:{len(lines) + 1} field 'doc_id': document '{doc}' appears more "
        "than once for query 'q0' (first on line 2); a ranking lists each document once "
        "(trec_eval rejects such runs too)"
    )


def test_a_document_judged_twice_in_the_qrels_names_the_file_and_lines(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The error named neither the qrels file nor a line: the pair was found when a run was
    scored on the judgments, where the file was no longer known."""
    write_qrels(files / "qrels", 20)
    write_run(files / "base.run", 20)
    write_run(files / "cand.run", 20)
    lines = (files / "qrels").read_text().splitlines(keepends=True)
    (files / "qrels").write_text("".join([*lines, lines[1]]))
    code = invoke(["gate", *run_files(files), "--format", "json"])
    error = json.loads(capsys.readouterr().out)["error"]
    assert code == 2
    assert error["message"] == (
        f"{files / 'qrels'}:{len(lines) + 1} field 'doc_id': document 'rel0_1' is judged more "
        "than once for query 'q0' (first on line 2); judge each (query_id, doc_id) pair once "
        "(trec_eval rejects such qrels too)"
    )


@pytest.fixture
def endpoint() -> Iterator[str]:
    with retriever_endpoint() as url:
        yield url


@pytest.mark.slow
def test_live_candidate_against_a_stored_baseline(
    files: Path, endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = files / "gs"
    folder.mkdir()
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"id": f"q{q}", "text": f"question {q}"}) + "\n" for q in range(60))
    )
    (folder / "judgments.jsonl").write_text(
        "".join(
            json.dumps({"query_id": f"q{q}", "doc_id": f"rel{q}_{r}", "relevance": 1}) + "\n"
            for q in range(60)
            for r in range(3)
        )
    )
    assert invoke(["goldset", "import", str(folder), "--name", "g"]) == 0
    write_run(files / "base.run", 60, drop=set(range(0, 60, 2)))
    capsys.readouterr()
    code, data = gate(
        capsys,
        "--baseline",
        str(files / "base.run"),
        "--goldset",
        "g",
        "--http-retriever",
        endpoint,
        "-m",
        "ndcg@10",
        "--k",
        "10",
    )
    assert code == 0
    assert data["decision"] == "pass"
    assert data["metrics"]["ndcg@10"]["delta"] > 0.3
    code = invoke(["runs", "list", "--format", "json"])
    stored = json.loads(capsys.readouterr().out)
    assert [run["label"] for run in stored] == ["gate candidate"]
    # The stored candidate run is now a baseline for `compare` by its id.
    code = invoke(
        [
            "compare",
            str(files / "base.run"),
            stored[0]["run_id"],
            "--goldset",
            "g",
            "--resamples",
            "1000",
            "--format",
            "json",
        ]
    )
    assert code == 0
    compared = json.loads(capsys.readouterr().out)
    assert compared["metrics"]["ndcg@10"]["delta"] == pytest.approx(
        data["metrics"]["ndcg@10"]["delta"]
    )


class _FlakyEndpoint(BaseHTTPRequestHandler):
    """Answers every query with its relevant documents first, except the ids in ``down``
    (set on the server), which get HTTP 503."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        q = body["query_id"]
        if q in getattr(self.server, "down", set()):
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b"overloaded")
            return
        results = [{"id": f"rel{q[1:]}_{r}", "score": 1.0 - r / 10} for r in range(3)]
        payload = json.dumps({"results": results}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _import_goldset(folder: Path, n_queries: int) -> None:
    write_goldset_files(folder, n_queries)
    assert invoke(["goldset", "import", str(folder), "--name", "g"]) == 0


def _stored_baseline(
    server: str, files: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[str, list[str], str]:
    """Goldset ``g`` of 60 queries imported and replayed against the endpoint at ``server``:
    its search URL, the `evalkit run` arguments and the stored baseline's run id."""
    url = f"{server}/search"
    _import_goldset(files / "gs", 60)
    capsys.readouterr()
    run = ["run", "--goldset", "g", "--http-retriever", url, "--k", "10", "--format", "json"]
    assert invoke(run) == 0
    return url, run, json.loads(capsys.readouterr().out)["run_id"]


@pytest.mark.slow
def test_a_stored_candidate_with_failed_queries_is_refused_or_counted_as_zero(
    files: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EVALKIT_HTTP_RETRIES", "0")
    with running(_FlakyEndpoint) as server:
        _url, run, baseline = _stored_baseline(server.url, files, capsys)
        down = {f"q{q}" for q in range(13)}
        server.down = down  # type: ignore[attr-defined]
        assert invoke(run) == 3
        candidate = json.loads(capsys.readouterr().out)["run_id"]
    args = ["--baseline", baseline, "--candidate", candidate, "-m", "ndcg@10", "-m", "recall@10"]

    code = invoke(["gate", *args, "--resamples", "2000"])
    captured = capsys.readouterr()
    assert code == 3
    assert "decision" not in captured.out
    assert "13 queries failed in the candidate (q0, q1, q10, q11, q12 and 8 more)" in captured.err
    assert "--failed-as-zero" in captured.err

    code = invoke(["compare", baseline, candidate, "--resamples", "1000"])
    assert code == 3
    assert "13 queries failed in the candidate" in capsys.readouterr().err

    code, data = gate(capsys, *args, "--failed-as-zero")
    assert code == 1
    assert data["decision"] == "regression"
    assert sorted(data["failed_in_candidate"]) == sorted(down)
    assert data["only_in_baseline"] == []
    assert data["n_shared"] == 60
    assert data["metrics"]["ndcg@10"]["candidate_mean"] == pytest.approx(47 / 60)

    # Swapped, the failed queries are the baseline's: refused likewise, or counted as 0.
    code = invoke(["gate", "--baseline", candidate, "--candidate", baseline, "--resamples", "500"])
    assert code == 3
    assert "13 queries failed in the baseline" in capsys.readouterr().err
    code = invoke(["compare", candidate, baseline, "--failed-as-zero", "--resamples", "500"])
    assert code == 0
    err = capsys.readouterr().err
    assert "13 queries failed in the baseline and were counted as 0" in err


@pytest.mark.slow
def test_a_live_candidate_with_failed_queries_is_refused_or_counted_as_zero(
    files: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--failed-as-zero holds for a live candidate as for a stored one (gate.md): its
    partial run is compared with the failed queries at 0; without it, exit 3."""
    monkeypatch.setenv("EVALKIT_HTTP_RETRIES", "0")
    with running(_FlakyEndpoint) as server:
        url, _run, baseline = _stored_baseline(server.url, files, capsys)
        server.down = {f"q{q}" for q in range(13)}  # type: ignore[attr-defined]
        live = ["--baseline", baseline, "--goldset", "g", "--http-retriever", url, "--k", "10"]
        live += ["-m", "ndcg@10"]
        assert invoke(["gate", *live, "--resamples", "500"]) == 3
        refused = capsys.readouterr().err
        assert "The gate needs every query answered" in refused
        assert "or count each failed query as 0 (--failed-as-zero)" in refused
        code, data = gate(capsys, *live, "--failed-as-zero")
        assert code == 1
        assert data["decision"] == "regression"
        assert len(data["failed_in_candidate"]) == 13
        assert data["metrics"]["ndcg@10"]["candidate_mean"] == pytest.approx(47 / 60)
        server.down = {f"q{q}" for q in range(60)}  # type: ignore[attr-defined]
        assert invoke(["gate", *live, "--failed-as-zero", "--resamples", "500"]) == 3
        assert "is failed" in capsys.readouterr().err


_QUALITY_RETRIEVER = """
from evalkit.records import QueryResult
from evalkit.retrievers.base import ranked_docs


class Graded:
    def __init__(self, found):
        self.found = found

    def retrieve(self, queries, k):
        results = []
        for query in queries:
            number = query.id[1:]
            docs = ([f"rel{number}_{r}" for r in range(self.found)] + ["noise"])[:k]
            scores = [1.0 / (i + 1) for i in range(len(docs))]
            results.append(QueryResult(query.id, ranked_docs(docs, scores), 1.0))
        return results

    def describe(self):
        return {"kind": "graded", "found": self.found}


def make(found=3):
    return Graded(found)
"""


@pytest.mark.slow
def test_a_live_candidate_takes_retriever_options_as_run_does(
    files: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--option KEY=VALUE` reaches a live candidate's factory (ci.md: the same options as
    `evalkit run`)."""
    (files / "graded_retriever.py").write_text(_QUALITY_RETRIEVER)
    monkeypatch.syspath_prepend(str(files))
    _import_goldset(files / "gs", 40)
    capsys.readouterr()
    run = ["run", "--goldset", "g", "--retriever", "graded_retriever:make", "--k", "10"]
    assert invoke([*run, "--format", "json"]) == 0
    baseline = json.loads(capsys.readouterr().out)["run_id"]
    live = ["--baseline", baseline, "--goldset", "g", "--retriever", "graded_retriever:make"]
    code, data = gate(capsys, *live, "--k", "10", "-m", "recall@10", "--option", "found=1")
    assert code == 1
    assert data["decision"] == "regression"
    assert data["metrics"]["recall@10"]["candidate_mean"] == pytest.approx(1 / 3)


@pytest.mark.slow
def test_a_candidate_replayed_on_a_goldset_that_lost_queries_says_which_were_left_out(
    files: Path, endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Scored on the smaller goldset's judgments, the baseline's queries the candidate never
    ran vanished from the comparison, and every output said "both runs have the same ones"."""
    _import_goldset(files / "gs", 60)
    capsys.readouterr()
    assert invoke(["run", "--goldset", "g", "--http-retriever", endpoint, "--k", "10"]) == 0
    capsys.readouterr()
    assert invoke(["runs", "list", "--format", "json"]) == 0
    baseline = json.loads(capsys.readouterr().out)[0]["run_id"]
    smaller = write_goldset_files(files / "smaller", 48)
    live = ["--baseline", baseline, "--goldset", str(smaller), "--http-retriever", endpoint]
    live += ["--k", "10", "-m", "ndcg@10", "--resamples", "500"]
    note = (
        "Compared on the 48 queries both runs share; 12 left out: 12 only in the baseline "
        "(q48, q49, q50, q51, q52, q53, q54, q55, q56, q57 and 2 more). The baseline holds 60 "
        "queries, the candidate 48."
    )

    markdown, junit = files / "gate.md", files / "gate.xml"
    code = invoke(["gate", *live, "--markdown", str(markdown), "--junit", str(junit)])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.err.splitlines()[-1] == f"note: {note}"
    assert note in markdown.read_text().splitlines()
    suite = ET.parse(junit).getroot()
    assert suite.findtext("system-out") == note
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert (properties["n_shared"], properties["n_dropped"]) == ("48", "12")

    code, data = gate(capsys, *live)
    assert code == 0
    assert (data["n_shared"], data["n_dropped"]) == (48, 12)
    assert data["only_in_baseline"] == [f"q{q}" for q in range(48, 60)]
    assert (data["only_in_candidate"], data["not_judged"]) == ([], [])

    # Two stored runs of the 60 queries scored on the smaller goldset: 12 are judged in
    # neither, which the note says instead of "both runs have the same ones".
    stored = ["--baseline", baseline, "--candidate", baseline, "--goldset", str(smaller)]
    assert invoke(["gate", *stored, "-m", "ndcg@10", "--resamples", "500"]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == (
        "note: Compared on the 48 queries both runs share; 12 left out: 12 in both runs but "
        "not judged by the goldset or qrels scored on (q48, q49, q50, q51, q52, q53, q54, q55, "
        "q56, q57 and 2 more). The baseline holds 60 queries, the candidate 60."
    )
