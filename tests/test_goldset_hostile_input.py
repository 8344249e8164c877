"""Goldset files built to break the reader: ``evalkit goldset import`` names the line.

A grade the store cannot hold and a line nested deeper than any record needs are
validation errors with file, line and field (exit 2), never an OverflowError or a
RecursionError; the published judgment schema says the same grade range.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from evalkit_process import fresh_env, run_evalkit

from evalkit.errors import ConfigError, NotFoundError
from evalkit.goldset._reading import MAX_NESTING
from evalkit.goldset._schema import MAX_GRADE, MAX_OFFSET
from evalkit.goldset.model import MAX_GOLDSET_NAME_LENGTH, Goldset, check_goldset_name
from evalkit.records import Query
from evalkit.schemas import schema_file_name
from evalkit.store import Store
from evalkit.store.goldsets import load_stored_goldset, save_goldset

SCHEMAS = Path(__file__).resolve().parents[1] / "evalkit" / "schemas"


def evalkit(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_evalkit(*args, env=fresh_env(home), timeout=120)


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def jsonl_goldset(folder: Path, *, queries: list[str], judgments: list[str]) -> Path:
    folder.mkdir()
    write_lines(folder / "queries.jsonl", queries)
    write_lines(folder / "judgments.jsonl", judgments)
    return folder


QUERY = json.dumps({"id": "q1", "text": "how do I reset my password"})
JUDGED = json.dumps({"query_id": "q1", "doc_id": "d1", "relevance": 1})


def problems_of(result: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    """The problems of a failed ``--output json`` command (printed on stdout)."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    payload = json.loads(result.stdout)
    problems = payload["error"]["problems"]
    assert isinstance(problems, list)
    return problems


@pytest.mark.parametrize(
    "relevance", ["1e308", "1e300", str(MAX_GRADE + 1), "99999999999999999999999"]
)
def test_a_grade_beyond_the_store_column_is_a_problem_on_its_line(
    tmp_path: Path, relevance: str
) -> None:
    folder = jsonl_goldset(
        tmp_path / "big-grade",
        queries=[QUERY],
        judgments=[JUDGED, f'{{"query_id": "q1", "doc_id": "d2", "relevance": {relevance}}}'],
    )
    result = evalkit(tmp_path / "home", "goldset", "import", str(folder), "--name", "g")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "judgments.jsonl:2 field 'relevance'" in result.stderr
    assert f"from 0 to {MAX_GRADE}" in result.stderr

    as_json = evalkit(
        tmp_path / "home", "goldset", "import", str(folder), "--name", "g", "--output", "json"
    )
    (problem,) = problems_of(as_json)
    assert (problem["path"], problem["line"], problem["field"]) == (
        str(folder / "judgments.jsonl"),
        2,
        "relevance",
    )


@pytest.mark.parametrize("end", [str(MAX_OFFSET + 1), "100000000000000000000000"])
def test_a_span_offset_beyond_the_store_column_is_a_problem_on_its_line(
    tmp_path: Path, end: str
) -> None:
    span = f'"source_id": "s", "start": 0, "end": {end}'
    folder = jsonl_goldset(
        tmp_path / "far-span",
        queries=[QUERY],
        judgments=[JUDGED, f'{{"query_id": "q1", "doc_id": "d2", "relevance": 1, {span}}}'],
    )
    said = f"must be a character offset, an integer from 0 to {MAX_OFFSET}, got a number ({end})"
    validated = evalkit(tmp_path / "home", "goldset", "validate", str(folder), "-o", "json")
    assert validated.returncode == 2, validated.stderr
    imported = evalkit(
        tmp_path / "home", "goldset", "import", str(folder), "--name", "g", "--output", "json"
    )
    where = {"path": str(folder / "judgments.jsonl"), "line": 2, "field": "end", "message": said}
    assert json.loads(validated.stdout)["problems"] == [where]
    assert problems_of(imported) == [where]
    assert f"judgments.jsonl:2 field 'end': {said}" in imported.stderr


def test_the_largest_grade_the_store_holds_is_imported(tmp_path: Path) -> None:
    folder = jsonl_goldset(
        tmp_path / "max-grade",
        queries=[QUERY],
        judgments=[json.dumps({"query_id": "q1", "doc_id": "d1", "relevance": MAX_GRADE})],
    )
    result = evalkit(tmp_path / "home", "goldset", "import", str(folder), "--name", "g")
    assert result.returncode == 0, result.stderr


def test_tags_nested_100000_deep_are_a_problem_on_their_line(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    nested = QUERY[:-1] + f', "tags": {deep}}}'
    folder = jsonl_goldset(
        tmp_path / "deep", queries=[nested, json.dumps({"id": "q2", "text": "t"})], judgments=[]
    )
    write_lines(folder / "judgments.jsonl", [JUDGED, JUDGED.replace("q1", "q2")])
    result = evalkit(tmp_path / "home", "goldset", "import", str(folder), "--name", "g")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "RecursionError" not in result.stderr
    assert "queries.jsonl:1 field 'tags'" in result.stderr
    assert f"deeper than {MAX_NESTING} levels" in result.stderr


def test_nesting_just_past_the_limit_is_refused_and_brackets_in_strings_are_text(
    tmp_path: Path,
) -> None:
    too_deep = "[" * MAX_NESTING + "]" * MAX_NESTING  # one level more under the object
    bracketed_text = json.dumps({"id": "q2", "text": "[" * 1000 + "{" * 1000})
    folder = jsonl_goldset(
        tmp_path / "edge",
        queries=[QUERY[:-1] + f', "tags": {too_deep}}}', bracketed_text],
        judgments=[JUDGED, JUDGED.replace("q1", "q2")],
    )
    as_json = evalkit(
        tmp_path / "home", "goldset", "import", str(folder), "--name", "g", "--output", "json"
    )
    queries = str(folder / "queries.jsonl")
    in_queries = [p for p in problems_of(as_json) if p["path"] == queries]
    assert [(p["line"], p["field"]) for p in in_queries] == [(1, "tags")]
    assert f"deeper than {MAX_NESTING} levels" in str(in_queries[0]["message"])


def test_a_trec_grade_beyond_the_store_column_names_its_line(tmp_path: Path) -> None:
    topics = tmp_path / "topics.tsv"
    topics.write_text("1\thow do I reset my password\n", encoding="utf-8")
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("1 0 d1 1\n1 0 d2 99999999999999999999\n", encoding="utf-8")
    result = evalkit(
        tmp_path / "home",
        "goldset",
        "import",
        "--format",
        "trec",
        str(qrels),
        "--topics",
        str(topics),
        "--name",
        "t",
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "qrels.txt:2" in result.stderr
    assert f"at most {MAX_GRADE}" in result.stderr


def test_the_published_judgment_schema_has_the_same_grade_range() -> None:
    schema = json.loads((SCHEMAS / schema_file_name("goldset-judgment")).read_text())
    assert schema["properties"]["relevance"]["maximum"] == MAX_GRADE
    assert schema["properties"]["relevance"]["minimum"] == 0


def test_a_number_longer_than_python_reads_is_a_problem_on_its_line(tmp_path: Path) -> None:
    """Python refuses to turn more than 4300 digits into an int: a problem, not a traceback."""
    folder = jsonl_goldset(
        tmp_path / "long-number",
        queries=[QUERY],
        judgments=[JUDGED, '{"query_id": "q1", "doc_id": "d2", "relevance": 1' + "0" * 5000 + "}"],
    )
    as_json = evalkit(
        tmp_path / "home", "goldset", "import", str(folder), "--name", "g", "--output", "json"
    )
    (problem,) = problems_of(as_json)
    assert (problem["path"], problem["line"]) == (str(folder / "judgments.jsonl"), 2)
    assert "too long to read" in str(problem["message"])


def test_a_lone_surrogate_escape_is_a_problem_of_its_field_and_a_pair_is_text(
    tmp_path: Path,
) -> None:
    lone = '{"id": "q2", "text": "broken \\ud800 escape"}'
    paired = '{"id": "q3", "text": "a smile \\ud83d\\ude00"}'
    folder = jsonl_goldset(
        tmp_path / "surrogates",
        queries=[QUERY, lone, paired],
        judgments=[JUDGED, JUDGED.replace("q1", "q3")],
    )
    as_json = evalkit(
        tmp_path / "home", "goldset", "import", str(folder), "--name", "g", "--output", "json"
    )
    (problem,) = problems_of(as_json)
    assert (problem["line"], problem["field"]) == (2, "text")
    assert "lone UTF-16 surrogate" in str(problem["message"])

    write_lines(folder / "queries.jsonl", [QUERY, paired])
    stored = evalkit(tmp_path / "home", "goldset", "import", str(folder), "--name", "g")
    assert stored.returncode == 0, stored.stderr


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("a/b", "is spelt as a path"),
        ("..", "is spelt as a path"),
        ("a\\b", "is spelt as a path"),
        ("", "is empty"),
        ("   ", "is empty"),
        (" padded", "starts or ends with white space"),
        ("two\nlines", "holds a control character"),
        ("x" * (MAX_GOLDSET_NAME_LENGTH + 1), f"longer than {MAX_GOLDSET_NAME_LENGTH}"),
    ],
)
def test_a_name_a_goldset_could_not_be_run_by_again_is_refused(name: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        check_goldset_name(name)


@pytest.mark.parametrize("name", ["scifact-test", "support faq", "FAQ.v2", "x" * 200, "données"])
def test_names_people_give_goldsets_are_taken(name: str) -> None:
    assert check_goldset_name(name) == name


@pytest.mark.slow
def test_goldset_import_refuses_a_path_like_or_empty_name_and_stores_nothing(
    tmp_path: Path,
) -> None:
    folder = jsonl_goldset(tmp_path / "faq", queries=[QUERY], judgments=[JUDGED])
    home = tmp_path / "home"
    for name in ("a/b", ""):
        result = evalkit(home, "goldset", "import", str(folder), "--name", name)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert f"goldset name {name!r}" in result.stderr
    listed = evalkit(home, "goldset", "list", "--format", "json")
    assert json.loads(listed.stdout) == []


def test_an_unknown_goldset_lists_twenty_stored_names_and_points_to_the_list(
    store: Store,
) -> None:
    for number in range(25):
        save_goldset(store, Goldset.build(f"set-{number:02d}", [Query("q1", "t")], []))
    with pytest.raises(NotFoundError) as raised:
        load_stored_goldset(store, "nosuch")
    message = str(raised.value)
    assert "set-19" in message
    assert "set-20" not in message
    assert "and 5 more: `evalkit goldset list`" in message


def test_a_jsonl_goldset_given_as_one_of_its_files_names_the_folder_to_give(
    tmp_path: Path,
) -> None:
    folder = jsonl_goldset(tmp_path / "faq", queries=[QUERY], judgments=[JUDGED])
    given = folder / "queries.jsonl"
    result = evalkit(tmp_path / "home", "goldset", "validate", str(given))
    assert result.returncode == 2, result.stderr
    assert f"{given}: is a file; the jsonl format reads a folder" in result.stderr
    assert f"(give {folder})" in result.stderr


COUNTING_RETRIEVER = """
from pathlib import Path

from evalkit.records import QueryResult


class Counting:
    def retrieve(self, queries, k):
        with Path(__file__).with_name("asked.txt").open("a") as asked:
            asked.writelines(query.id + "\\n" for query in queries)
        return [QueryResult(query.id, [], 1.0) for query in queries]


def make():
    return Counting()
"""


@pytest.mark.slow
def test_run_refuses_a_goldset_folder_whose_name_cannot_name_it_before_any_query(
    tmp_path: Path,
) -> None:
    """The name was checked only once every query had been replayed, and the error pointed
    to --name, which `evalkit run` does not have."""
    (tmp_path / "counting.py").write_text(COUNTING_RETRIEVER, encoding="utf-8")
    folder = jsonl_goldset(tmp_path / "bad\x1b]0;PWN\x07name", queries=[QUERY], judgments=[JUDGED])
    home = tmp_path / "home"
    env = fresh_env(home)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    ran = run_evalkit(
        "run", "--goldset", str(folder), "--retriever", "counting:make", env=env, timeout=120
    )
    assert ran.returncode == 2, ran.stderr
    assert (
        "goldset name 'bad\\x1b]0;PWN\\x07name' holds a control character; the name is the "
        "goldset folder's or file's: rename it, or import the goldset under a name such as "
        "'support-faq' (`evalkit goldset import PATH --name support-faq`) and give --goldset "
        "that name"
    ) in ran.stderr
    assert not (tmp_path / "asked.txt").exists()
    listed = evalkit(home, "runs", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
