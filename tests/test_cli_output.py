"""The command line's own surface, in a real ``evalkit`` process: ``--version``, the
output-format option, JSON error objects and input files with several bad lines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from evalkit.store import Store


def evalkit(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EVALKIT_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "evalkit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
        cwd=home.parent,
    )


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    done = evalkit("--version", home=tmp_path / "home")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"evalkit {version('evalkit-retrieval')}\n"


@pytest.mark.parametrize("option", ["-o", "--output", "--format"])
@pytest.mark.slow
def test_goldset_list_takes_the_same_output_option_as_import(tmp_path: Path, option: str) -> None:
    folder = tmp_path / "gs"
    folder.mkdir()
    (folder / "queries.jsonl").write_text('{"id": "q1", "text": "bridge"}\n')
    (folder / "judgments.jsonl").write_text('{"query_id": "q1", "doc_id": "d1", "relevance": 1}\n')
    home = tmp_path / "home"
    imported = evalkit("goldset", "import", str(folder), "--name", "g", "-o", "json", home=home)
    assert imported.returncode == 0, imported.stderr
    listed = evalkit("goldset", "list", option, "json", home=home)
    assert listed.returncode == 0, listed.stderr
    assert [row["name"] for row in json.loads(listed.stdout)] == ["g"]


@pytest.mark.parametrize(
    ("args", "kind", "code"),
    [
        (["runs", "show", "nope", "--format", "json"], "NotFoundError", 2),
        (["runs", "show", "nope", "--format=json"], "NotFoundError", 2),
        (["goldset", "import", "absent", "--name", "g", "-o", "json"], "GoldsetError", 2),
        (["goldset", "import", "absent", "--name", "g", "-ojson"], "GoldsetError", 2),
        (["runs", "list", "--limit", "many", "--format", "json"], "UsageError", 2),
    ],
)
def test_a_failure_asked_for_json_prints_a_json_error_object(
    tmp_path: Path, args: list[str], kind: str, code: int
) -> None:
    done = evalkit(*args, home=tmp_path / "home")
    assert done.returncode == code
    error = json.loads(done.stdout)["error"]
    assert error["type"] == kind
    assert error["exit_code"] == code
    assert error["message"]
    assert "error" in done.stderr.lower()
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "show", "nope"],
        # --format names the source format here: no JSON asked for.
        ["goldset", "import", "absent", "--name", "g", "--format", "jsonl"],
    ],
)
def test_a_failure_not_asked_for_json_keeps_stdout_empty(tmp_path: Path, args: list[str]) -> None:
    done = evalkit(*args, home=tmp_path / "home")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("error: ")


@pytest.mark.slow
def test_answers_score_reports_every_bad_line_and_stores_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Store.open(home / "evalkit.duckdb").close()
    path = tmp_path / "answers.jsonl"
    lines = [
        '{"question": "q", "answer": "a", "contexts": ["c"]}',
        "{not json",
        '{"question": "q", "answer": 3}',
        "",
        '{"question": "q", "answer": "a", "contxts": []}',
        '{"answer": "a"}',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = evalkit(
        "answers", "score", str(path), "--method", "offline", "--format", "json", home=home
    )
    assert done.returncode == 2, done.stderr
    error = json.loads(done.stdout)["error"]
    where = [(p["line"], p["field"]) for p in error["problems"]]
    assert where == [(2, None), (3, "answer"), (5, "contxts"), (6, "question")]
    assert all(p["path"] == str(path) for p in error["problems"])
    for location in (f"{path}:2:", f"{path}:3 field 'answer'", f"{path}:6 field 'question'"):
        assert location in done.stderr
    listed = evalkit("answers", "list", "--format", "json", home=home)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []


def test_a_closing_tag_in_a_cell_is_text_and_control_characters_are_escaped() -> None:
    from rich.console import Console

    from evalkit.cli._output import table, visible

    assert visible("tab\tand\nnewline stay") == "tab\tand\nnewline stay"
    assert visible("esc\x1b[31m nul\x00 del\x7f c1\x9b rtl\u202e") == (
        "esc\\x1b[31m nul\\x00 del\\x7f c1\\x9b rtl\\u202e"
    )
    console = Console(record=True, width=80, markup=False)
    console.print(table(None, ["query"], [["how [/x] works \x1b[2J"]]))
    assert "how [/x] works \\x1b[2J" in console.export_text()


def test_a_name_too_wide_beside_the_values_is_shortened_in_the_middle_and_others_kept() -> None:
    from rich.console import Console

    from evalkit.cli._output import table

    url = "https://example.com/" + "a" * 80 + "?page=12"
    rows = [[url, 0.5, 0.25], ["q" * 40, 1.0, None], ["q2", 1.0, 0.0]]
    console = Console(record=True, width=100, markup=False)
    console.print(table("per query", ["query", "ndcg@10", "recall@10"], rows))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) == 100
    (shortened,) = [line for line in lines if "https://example.com/" in line]
    assert re.search(r"^│ https://example\.com/a+…a+\?page=12 │ +0\.5000 │ +0\.2500 │$", shortened)
    # Names that fit beside the values are whole, and drawn as they were.
    assert any(re.match(r"│ q{40} +│ +1\.0000 │ +- │$", line) for line in lines)
    console = Console(record=True, width=100, markup=False)
    console.print(table("per query", ["query", "ndcg@10", "recall@10"], rows[1:]))
    assert console.export_text().splitlines()[1:4] == [
        "┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━┳━━━━━━━━━━━┓",
        "┃ query                                    ┃ ndcg@10 ┃ recall@10 ┃",
        "┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━╇━━━━━━━━━━━┩",
    ]


def test_a_run_id_stays_whole_beside_long_paths_and_tags() -> None:
    """`runs list` beside a bm25 index path and sweep tags at 120 columns printed the run id
    as 202611…8d705, which can no longer be copied into `runs show`."""
    from rich.console import Console

    from evalkit.cli._output import table

    path = "bm25:/tmp/explore-upgrade/w1/indexes/bm25/scifact"
    tags = "sweep:20261127T022310-ef,point:k1=1.2,b=0.75"
    header = ["run", "status", "goldset", "retriever", "label", "tags", "ndcg@10", "queries"]
    rows = [
        [f"20261127T0223{i:02d}-b8d705", "complete", "scifact", path, "nightly", tags, 0.7, 60]
        for i in range(3)
    ]
    console = Console(record=True, width=120, markup=False)
    console.print(table("runs", header, rows))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 120
    assert sum("20261127T022301-b8d705" in line for line in lines) == 1


def test_a_leaderboard_keeps_its_run_ids_whole_beside_the_rank() -> None:
    """The ranked runs' ids stand in the second column, beside the rank: `evalkit sweep`'s
    leaderboard cut every one to 20261127T0249…, alike."""
    from rich.console import Console

    from evalkit.cli._output import table

    header = ["#", "run", "what", "ndcg@10 [95 % CI]", "ndcg@10 groups", "p50 ms", "p95 ms"]
    figures = ["0.7976 [0.5119, 1.0000]", "a", "0.2", "0.6"]
    what = "k=10 ef_search=40  [sweep:demo-k-ef]"
    rows = [[str(n), f"20261127T0249{n:02d}-60dd63", what, *figures] for n in range(1, 4)]
    console = Console(record=True, width=90, markup=False)
    console.print(table("leaderboard", header, rows, whole=(1,)))
    text = console.export_text()
    assert all(f"20261127T0249{n:02d}-60dd63" in text for n in range(1, 4))


def test_a_line_break_in_a_name_is_escaped_where_a_message_keeps_its_lines() -> None:
    """A query id "q1\\nq2" drawn as it is reads as a row q1 and a row q2; an error message
    in a labelled value is meant to span lines."""
    from rich.console import Console

    from evalkit.cli._output import key_values, table

    names = ["q1\nq2", "q3\r\nq4", "q5\u2028q6\u2029q7\x0bq8\x0cq9\x85q10"]
    console = Console(record=True, width=100, markup=False)
    console.print(table(None, ["query", "ndcg@10"], [[name, 0.5] for name in names]))
    console.print(key_values("run", {"error": "HTTP 503\nretry later"}))
    lines = console.export_text().splitlines()
    rows = [line.split("│")[1:-1] for line in lines if line.startswith("│")]
    assert [[cell.strip() for cell in row] for row in rows] == [
        ["q1\\nq2", "0.5000"],
        ["q3\\r\\nq4", "0.5000"],
        ["q5\\u2028q6\\u2029q7\\x0bq8\\x0cq9\\x85q10", "0.5000"],
        ["error", "HTTP 503"],
        ["", "retry later"],
    ]


def test_labelled_facts_have_no_empty_header_row() -> None:
    """A table of labelled facts names its rows itself: an empty header row above them is
    only a blank band under the title."""
    from rich.console import Console

    from evalkit.cli._output import key_values

    console = Console(record=True, width=80, markup=False)
    console.print(key_values("run", {"id": "abc", "ndcg@10": 0.75}))
    lines = console.export_text().splitlines()
    assert lines[1].startswith("┌")
    assert [line for line in lines if "│" in line] == [
        "│ id      │ abc    │",
        "│ ndcg@10 │ 0.7500 │",
    ]
