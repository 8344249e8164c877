"""CLI commands that need no retriever: score, goldset import/validate/list, runs, help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.cli import invoke

QRELS = """\
q1 0 a 2
q1 0 b 0
q1 0 c 1
q2 0 x 1
q3 0 z 1
"""
# q1 ranking by score: c (0.9) then a/b tied at 0.5 -> doc id descending: b, a.
RUN = """\
q1 Q0 a 1 0.5 t
q1 Q0 b 2 0.5 t
q1 Q0 c 3 0.9 t
q2 Q0 y 1 0.8 t
q2 Q0 x 2 0.7 t
"""


@pytest.fixture
def trec_files(tmp_path: Path) -> tuple[Path, Path]:
    qrels = tmp_path / "qrels.txt"
    run = tmp_path / "run.txt"
    qrels.write_text(QRELS)
    run.write_text(RUN)
    return qrels, run


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = invoke(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_score_json_follows_trec_eval(
    trec_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    qrels, run = trec_files
    code, out, _ = run_cli(
        capsys,
        "score",
        "--qrels",
        str(qrels),
        "--run",
        str(run),
        "-m",
        "mrr",
        "-m",
        "P@2",
        "--per-query",
        "--format",
        "json",
    )
    assert code == 0
    data = json.loads(out)
    # q1: c(rel) at 1 -> rr 1; P@2 = c rel, b not -> 0.5. q2: x at 2 -> rr 0.5, P@2 0.5.
    # q3 is judged but absent from the run: skipped by default, as trec_eval does.
    assert data["per_query"] == {
        "q1": {"mrr": 1.0, "precision@2": 0.5},
        "q2": {"mrr": 0.5, "precision@2": 0.5},
    }
    assert data["aggregate"] == {"mrr": 0.75, "precision@2": 0.5}


def test_score_complete_counts_missing_queries_as_zero(
    trec_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    qrels, run = trec_files
    code, out, _ = run_cli(
        capsys,
        "score",
        "--qrels",
        str(qrels),
        "--run",
        str(run),
        "-m",
        "mrr",
        "--complete",
        "--format",
        "json",
    )
    assert code == 0
    data = json.loads(out)
    assert "per_query" not in data
    assert data["aggregate"]["mrr"] == pytest.approx(1.5 / 3)


def test_score_bad_line_exits_2_naming_file_and_line(
    trec_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    qrels, run = trec_files
    run.write_text(RUN + "q2 Q0 w 3 not-a-number t\n")
    code, _, err = run_cli(capsys, "score", "--qrels", str(qrels), "--run", str(run), "-m", "mrr")
    assert code == 2
    assert f"{run}:6" in err
    assert "score" in err


def test_score_unknown_measure_exits_2(
    trec_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    qrels, run = trec_files
    code, _, err = run_cli(capsys, "score", "--qrels", str(qrels), "--run", str(run), "-m", "f1")
    assert code == 2
    assert "ndcg" in err


def write_goldset(directory: Path, judgments: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "queries.jsonl").write_text(
        '{"id": "q1", "text": "how to reset a password"}\n'
        '{"id": "q2", "text": "vpn setup", "tags": ["hard"]}\n'
    )
    (directory / "judgments.jsonl").write_text(judgments)
    return directory


def test_goldset_import_list_and_reimport(
    tmp_path: Path, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_goldset(
        tmp_path / "gs",
        '{"query_id": "q1", "doc_id": "d1", "relevance": 2}\n'
        '{"query_id": "q2", "doc_id": "d2", "relevance": 1}\n',
    )
    code, out, _ = run_cli(capsys, "goldset", "import", str(folder), "--name", "g", "-o", "json")
    assert code == 0
    first = json.loads(out)
    assert (first["queries"], first["judgments"], first["new_version"]) == (2, 2, True)
    code, out, _ = run_cli(capsys, "goldset", "import", str(folder), "--name", "g", "-o", "json")
    assert json.loads(out)["new_version"] is False
    code, out, _ = run_cli(capsys, "goldset", "list", "--format", "json")
    listed = json.loads(out)
    assert [(g["name"], g["version"]) for g in listed] == [("g", first["version"])]
    assert (evalkit_home / "evalkit.duckdb").exists()


def test_invalid_goldset_is_rejected_whole_and_nothing_is_stored(
    tmp_path: Path, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_goldset(
        tmp_path / "bad",
        '{"query_id": "q1", "doc_id": "d1", "relevance": 2}\n'
        '{"query_id": "q9", "doc_id": "d2", "relevance": 1}\n'
        '{"query_id": "q2", "doc_id": "d3", "relevance": -1}\n',
    )
    code, out, _ = run_cli(capsys, "goldset", "validate", str(folder), "-o", "json")
    assert code == 2
    problems = json.loads(out)["problems"]
    located = {(Path(p["path"]).name, p["line"], p["field"]) for p in problems}
    assert ("judgments.jsonl", 2, "query_id") in located
    assert ("judgments.jsonl", 3, "relevance") in located
    code, _, err = run_cli(capsys, "goldset", "import", str(folder), "--name", "bad")
    assert code == 2
    assert "judgments.jsonl:2" in err
    assert not (evalkit_home / "evalkit.duckdb").exists()
    code, out, _ = run_cli(capsys, "goldset", "list", "--format", "json")
    assert code == 2
    assert "no evalkit store" in json.loads(out)["error"]["message"]


def test_runs_list_without_a_store_explains_how_to_start(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "runs", "list")
    assert code == 2
    assert "make demo" in err


def test_run_without_a_retriever_is_a_usage_error(
    tmp_path: Path, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_goldset(tmp_path / "gs", '{"query_id": "q1", "doc_id": "d1", "relevance": 1}\n')
    run_cli(capsys, "goldset", "import", str(folder), "--name", "g")
    code, _, err = run_cli(capsys, "run", "--goldset", "g")
    assert code == 2
    assert "--collection" in err


def test_console_script_help_is_fast_and_has_examples() -> None:
    evalkit = Path(sys.executable).with_name("evalkit")
    for command in (
        ["--help"],
        ["run", "--help"],
        ["score", "--help"],
        ["goldset", "import", "--help"],
    ):
        done = subprocess.run(
            [str(evalkit), *command], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        if command != ["--help"]:
            assert "Example" in done.stdout


def test_bad_option_values_are_usage_errors_not_tracebacks(
    evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert invoke(["runs", "list", "--limit", "many"]) == 2
    assert invoke(["score", "--no-such-option"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "No such option" in err


def test_a_run_left_running_by_a_stopped_process_is_marked_failed_by_the_next_writer(
    tmp_path: Path, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from evalkit.store import RunSpec, Store
    from evalkit.store.runs import create_run

    # What a killed `evalkit run` leaves: a run committed as running, never finished.
    with Store.open(evalkit_home / "evalkit.duckdb") as store:
        orphan = create_run(
            store,
            RunSpec(
                kind="goldset",
                retriever_kind="http",
                k=10,
                measures=("mrr",),
                evalkit_version="test",
            ),
        )
    folder = write_goldset(tmp_path / "gs", '{"query_id": "q1", "doc_id": "d1", "relevance": 1}\n')
    code, _, err = run_cli(capsys, "goldset", "import", str(folder), "--name", "g")
    assert code == 0
    assert f"run {orphan} was left running by a process that stopped; marked failed" in err
    code, out, _ = run_cli(capsys, "runs", "show", orphan, "--format", "json")
    shown = json.loads(out)
    assert shown["status"] == "failed"
    assert shown["error"].startswith("interrupted: the process writing it stopped")
    # A reader never changes anything.
    code, _, err = run_cli(capsys, "runs", "list")
    assert "left running" not in err
