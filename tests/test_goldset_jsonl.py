"""The JSONL goldset format: loading, every validation rule with its location, writing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.errors import ConfigError, GoldsetError, InputError
from evalkit.goldset import Goldset, goldset_version, load_jsonl_goldset, write_jsonl_goldset
from evalkit.records import Judgment, Query

FIXTURE = Path(__file__).parent / "data" / "goldset" / "jsonl_small"

QUERIES = '{"id": "q1", "text": "first"}\n{"id": "q2", "text": "second"}\n'
JUDGMENTS = (
    '{"query_id": "q1", "doc_id": "d1", "relevance": 1}\n'
    '{"query_id": "q2", "doc_id": "d2", "relevance": 0}\n'
)


def write_goldset(directory: Path, queries: str | bytes, judgments: str | bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in (("queries.jsonl", queries), ("judgments.jsonl", judgments)):
        data = content.encode("utf-8") if isinstance(content, str) else content
        (directory / name).write_bytes(data)
    return directory


def locations(error: GoldsetError) -> list[tuple[str, int | None, str | None]]:
    return [
        (Path(problem.path).name if problem.path else "", problem.line, problem.field)
        for problem in error.problems
    ]


def test_fixture_loads_with_every_field() -> None:
    goldset = load_jsonl_goldset(FIXTURE)

    expected_queries = (
        Query(
            id="q001",
            text="How do I rotate an API key?",
            tenant="acme",
            tags=("security", "hard"),
            reference_answer="Open Settings, then Keys, and press Rotate.",
            reference_context_ids=("d0001",),
        ),
        Query(id="q002", text="What is the refund window?"),
        Query(id="q003", text="Which regions store customer data?"),
    )
    expected_judgments = (
        Judgment("q001", "d0001", 2),
        Judgment("q001", "d0002", 0),
        Judgment("q002", "d0003", 1),
        Judgment("q003", "d0004", 3),
    )
    assert goldset.name == "jsonl_small"
    assert goldset.queries == expected_queries
    assert goldset.judgments == expected_judgments
    assert goldset.version == goldset_version(expected_queries, expected_judgments)
    assert goldset.source == str(FIXTURE)


def test_integral_float_grade_is_read_as_integer() -> None:
    goldset = load_jsonl_goldset(FIXTURE)

    grade = goldset.judgments[-1].relevance
    assert grade == 3
    assert type(grade) is int


def test_name_and_explicit_paths(tmp_path: Path) -> None:
    queries = tmp_path / "my-queries.jsonl"
    judgments = tmp_path / "other" / "qrels.jsonl"
    judgments.parent.mkdir()
    queries.write_text(QUERIES, encoding="utf-8")
    judgments.write_text(JUDGMENTS, encoding="utf-8")

    goldset = load_jsonl_goldset(queries_path=queries, judgments_path=judgments, name="faq")

    assert goldset.name == "faq"
    assert goldset.query_ids == ("q1", "q2")
    assert [j.doc_id for j in goldset.judgments] == ["d1", "d2"]


def test_explicit_path_overrides_the_directory_file(tmp_path: Path) -> None:
    write_goldset(tmp_path, QUERIES, '{"query_id": "q1", "doc_id": "zz", "relevance": 1}\n')
    judgments = tmp_path / "alt.jsonl"
    judgments.write_text(JUDGMENTS, encoding="utf-8")

    goldset = load_jsonl_goldset(tmp_path, judgments_path=judgments)

    assert [j.doc_id for j in goldset.judgments] == ["d1", "d2"]


def test_without_directory_both_paths_are_needed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="both queries_path and judgments_path"):
        load_jsonl_goldset(queries_path=tmp_path / "queries.jsonl")


def test_bom_crlf_and_blank_lines_are_tolerated(tmp_path: Path) -> None:
    plain = load_jsonl_goldset(write_goldset(tmp_path / "plain", QUERIES, JUDGMENTS))
    windows_queries = b"\xef\xbb\xbf" + QUERIES.replace("\n", "\r\n\r\n").encode("utf-8")
    windows_judgments = b"\xef\xbb\xbf\r\n" + JUDGMENTS.replace("\n", "\r\n").encode("utf-8")

    windows = load_jsonl_goldset(
        write_goldset(tmp_path / "windows", windows_queries, windows_judgments)
    )

    assert windows.queries == plain.queries
    assert windows.judgments == plain.judgments
    assert windows.version == plain.version


def test_line_numbers_count_blank_lines_and_crlf(tmp_path: Path) -> None:
    queries = b"\xef\xbb\xbf" + b'{"id": "q1", "text": "a"}\r\n\r\n   \r\n{"id": "q2"}\r\n'
    write_goldset(tmp_path, queries, JUDGMENTS)

    with pytest.raises(GoldsetError) as caught:
        load_jsonl_goldset(tmp_path)

    assert locations(caught.value) == [("queries.jsonl", 4, "text")]


# (queries, judgments, expected problems as (file, line, field)); the third line of a file is
# the one under test.
VALIDATION_CASES = {
    "queries: bad JSON": (
        QUERIES + '{"id": "q3", "text": "third"\n',
        JUDGMENTS,
        [("queries.jsonl", 3, None)],
    ),
    "queries: line is not an object": (
        QUERIES + '["q3", "third"]\n',
        JUDGMENTS,
        [("queries.jsonl", 3, None)],
    ),
    "queries: missing id": (
        QUERIES + '{"text": "third"}\n',
        JUDGMENTS,
        [("queries.jsonl", 3, "id")],
    ),
    "queries: empty id": (
        QUERIES + '{"id": "", "text": "third"}\n',
        JUDGMENTS,
        [("queries.jsonl", 3, "id")],
    ),
    "queries: null id": (
        QUERIES + '{"id": null, "text": "third"}\n',
        JUDGMENTS,
        [("queries.jsonl", 3, "id")],
    ),
    "queries: numeric id": (
        QUERIES + '{"id": 3, "text": "third"}\n',
        JUDGMENTS,
        [("queries.jsonl", 3, "id")],
    ),
    "queries: id with surrounding whitespace": (
        QUERIES + '{"id": "q3 ", "text": "third"}\n',
        JUDGMENTS,
        [("queries.jsonl", 3, "id")],
    ),
    "queries: missing text": (
        QUERIES + '{"id": "q3"}\n',
        JUDGMENTS,
        [("queries.jsonl", 3, "text")],
    ),
    "queries: blank text": (
        QUERIES + '{"id": "q3", "text": " \\t"}\n',
        JUDGMENTS,
        [("queries.jsonl", 3, "text")],
    ),
    "queries: text not a string": (
        QUERIES + '{"id": "q3", "text": ["third"]}\n',
        JUDGMENTS,
        [("queries.jsonl", 3, "text")],
    ),
    "queries: tags not a list": (
        QUERIES + '{"id": "q3", "text": "third", "tags": "hard"}\n',
        JUDGMENTS,
        [("queries.jsonl", 3, "tags")],
    ),
    "queries: tags not strings": (
        QUERIES + '{"id": "q3", "text": "third", "tags": ["hard", 1]}\n',
        JUDGMENTS,
        [("queries.jsonl", 3, "tags")],
    ),
    "queries: reference_context_ids not a list": (
        QUERIES + '{"id": "q3", "text": "third", "reference_context_ids": "d1"}\n',
        JUDGMENTS,
        [("queries.jsonl", 3, "reference_context_ids")],
    ),
    "queries: tenant not a string": (
        QUERIES + '{"id": "q3", "text": "third", "tenant": 7}\n',
        JUDGMENTS,
        [("queries.jsonl", 3, "tenant")],
    ),
    "queries: empty reference_answer": (
        QUERIES + '{"id": "q3", "text": "third", "reference_answer": ""}\n',
        JUDGMENTS,
        [("queries.jsonl", 3, "reference_answer")],
    ),
    "queries: unknown field": (
        QUERIES + '{"id": "q3", "text": "third", "referance_answer": "x"}\n',
        JUDGMENTS,
        [("queries.jsonl", 3, "referance_answer")],
    ),
    "queries: key repeated in one object": (
        QUERIES + '{"id": "q3", "text": "a", "text": "b"}\n',
        JUDGMENTS,
        [("queries.jsonl", 3, "text")],
    ),
    "queries: duplicate id": (
        QUERIES + '{"id": "q1", "text": "again"}\n',
        JUDGMENTS,
        [("queries.jsonl", 3, "id")],
    ),
    "queries: not UTF-8": (
        QUERIES.encode() + b'{"id": "q3", "text": "caf\xe9"}\n',
        JUDGMENTS,
        [("queries.jsonl", 3, None)],
    ),
    "queries: empty file": ("", JUDGMENTS, [("queries.jsonl", None, None)]),
    "judgments: bad JSON": (
        QUERIES,
        JUDGMENTS + '{"query_id": "q1", "doc_id": "d3", relevance: 1}\n',
        [("judgments.jsonl", 3, None)],
    ),
    "judgments: line is not an object": (
        QUERIES,
        JUDGMENTS + "3\n",
        [("judgments.jsonl", 3, None)],
    ),
    "judgments: missing query_id": (
        QUERIES,
        JUDGMENTS + '{"doc_id": "d3", "relevance": 1}\n',
        [("judgments.jsonl", 3, "query_id")],
    ),
    "judgments: empty doc_id": (
        QUERIES,
        JUDGMENTS + '{"query_id": "q1", "doc_id": "", "relevance": 1}\n',
        [("judgments.jsonl", 3, "doc_id")],
    ),
    "judgments: missing relevance": (
        QUERIES,
        JUDGMENTS + '{"query_id": "q1", "doc_id": "d3"}\n',
        [("judgments.jsonl", 3, "relevance")],
    ),
    "judgments: unknown query": (
        QUERIES,
        JUDGMENTS + '{"query_id": "q9", "doc_id": "d3", "relevance": 1}\n',
        [("judgments.jsonl", 3, "query_id")],
    ),
    "judgments: duplicate pair": (
        QUERIES,
        JUDGMENTS + '{"query_id": "q1", "doc_id": "d1", "relevance": 2}\n',
        [("judgments.jsonl", 3, "doc_id")],
    ),
    "judgments: negative grade": (
        QUERIES,
        JUDGMENTS + '{"query_id": "q1", "doc_id": "d3", "relevance": -1}\n',
        [("judgments.jsonl", 3, "relevance")],
    ),
    "judgments: fractional grade": (
        QUERIES,
        JUDGMENTS + '{"query_id": "q1", "doc_id": "d3", "relevance": 2.5}\n',
        [("judgments.jsonl", 3, "relevance")],
    ),
    "judgments: grade as a string": (
        QUERIES,
        JUDGMENTS + '{"query_id": "q1", "doc_id": "d3", "relevance": "2"}\n',
        [("judgments.jsonl", 3, "relevance")],
    ),
    "judgments: grade as a boolean": (
        QUERIES,
        JUDGMENTS + '{"query_id": "q1", "doc_id": "d3", "relevance": true}\n',
        [("judgments.jsonl", 3, "relevance")],
    ),
    "judgments: grade NaN": (
        QUERIES,
        JUDGMENTS + '{"query_id": "q1", "doc_id": "d3", "relevance": NaN}\n',
        [("judgments.jsonl", 3, "relevance")],
    ),
    "judgments: misspelt field reports both the typo and the missing field": (
        QUERIES,
        JUDGMENTS + '{"query_id": "q1", "doc_id": "d3", "relevant": 1}\n',
        [("judgments.jsonl", 3, "relevant"), ("judgments.jsonl", 3, "relevance")],
    ),
    "judgments: empty file": (QUERIES, "\n\n", [("judgments.jsonl", None, None)]),
}


@pytest.mark.parametrize(
    ("queries", "judgments", "expected"),
    list(VALIDATION_CASES.values()),
    ids=list(VALIDATION_CASES),
)
def test_each_validation_rule_names_file_line_and_field(
    tmp_path: Path,
    queries: str | bytes,
    judgments: str | bytes,
    expected: list[tuple[str, int | None, str | None]],
) -> None:
    write_goldset(tmp_path, queries, judgments)

    with pytest.raises(GoldsetError) as caught:
        load_jsonl_goldset(tmp_path)

    assert locations(caught.value) == expected
    for problem in caught.value.problems:
        assert isinstance(problem, InputError)
        assert problem.path is not None
        assert str(problem).startswith(problem.path)


def test_duplicate_query_names_both_lines(tmp_path: Path) -> None:
    write_goldset(tmp_path, QUERIES + '{"id": "q1", "text": "again"}\n', JUDGMENTS)

    with pytest.raises(GoldsetError) as caught:
        load_jsonl_goldset(tmp_path)

    (problem,) = caught.value.problems
    assert problem.line == 3
    assert "first on line 1" in problem.detail


def test_duplicate_judgment_names_both_lines(tmp_path: Path) -> None:
    write_goldset(
        tmp_path, QUERIES, JUDGMENTS + '{"query_id": "q2", "doc_id": "d2", "relevance": 1}\n'
    )

    with pytest.raises(GoldsetError) as caught:
        load_jsonl_goldset(tmp_path)

    (problem,) = caught.value.problems
    assert problem.line == 3
    assert "first on line 2" in problem.detail


def test_unknown_field_suggests_the_intended_one(tmp_path: Path) -> None:
    write_goldset(tmp_path, '{"_id": "q1", "text": "first"}\n', JUDGMENTS.splitlines()[0])

    with pytest.raises(GoldsetError) as caught:
        load_jsonl_goldset(tmp_path)

    messages = {problem.field: problem.detail for problem in caught.value.problems}
    assert "did you mean 'id'?" in messages["_id"]
    assert "is missing" in messages["id"]


def test_missing_files_are_reported_once_each(tmp_path: Path) -> None:
    with pytest.raises(GoldsetError) as caught:
        load_jsonl_goldset(tmp_path / "absent")

    assert locations(caught.value) == [
        ("queries.jsonl", None, None),
        ("judgments.jsonl", None, None),
    ]
    assert "does not exist" in caught.value.problems[0].detail


def test_all_problems_of_both_files_are_collected_in_file_and_line_order(tmp_path: Path) -> None:
    queries = (
        '{"id": "q1", "text": "first"}\n'
        '{"id": "q2", "text": ""}\n'
        "not json\n"
        '{"id": "q1", "text": "again", "tags": "x"}\n'
    )
    judgments = (
        '{"query_id": "q1", "doc_id": "d1", "relevance": 1.5}\n'
        '{"query_id": "q7", "doc_id": "d1", "relevance": 1}\n'
    )
    write_goldset(tmp_path, queries, judgments)

    with pytest.raises(GoldsetError) as caught:
        load_jsonl_goldset(tmp_path)

    assert locations(caught.value) == [
        ("queries.jsonl", 2, "text"),
        ("queries.jsonl", 3, None),
        ("queries.jsonl", 4, "tags"),
        ("queries.jsonl", 4, "id"),
        ("judgments.jsonl", 1, "relevance"),
        ("judgments.jsonl", 2, "query_id"),
    ]
    message = str(caught.value)
    assert message.startswith(str(tmp_path))
    assert "6 problems" in message
    assert "queries.jsonl:2 field 'text'" in message
    assert "... and 3 more" in message
    assert "judgments.jsonl:2" not in message


def test_query_with_other_problems_still_counts_as_known(tmp_path: Path) -> None:
    write_goldset(
        tmp_path, '{"id": "q1", "text": "first", "tag": ["x"]}\n', JUDGMENTS.splitlines()[0]
    )

    with pytest.raises(GoldsetError) as caught:
        load_jsonl_goldset(tmp_path)

    assert locations(caught.value) == [("queries.jsonl", 1, "tag")]


def test_problem_list_is_capped_but_counted(tmp_path: Path) -> None:
    queries = QUERIES + "".join(f'{{"id": "x{n}", "txt": "t"}}\n' for n in range(700))
    write_goldset(tmp_path, queries, JUDGMENTS)

    with pytest.raises(GoldsetError) as caught:
        load_jsonl_goldset(tmp_path)

    assert len(caught.value.problems) == 1000
    assert "1400 problems" in str(caught.value)
    assert "only the first 1000" in str(caught.value)


def test_write_is_canonical(tmp_path: Path) -> None:
    goldset = Goldset.build(
        "tiny",
        [
            Query(id="q2", text="Größe?", tags=("b", "a"), tenant="acme"),
            Query(id="q1", text="plain", reference_answer="yes", reference_context_ids=("d9",)),
        ],
        [Judgment("q2", "d1", 2), Judgment("q1", "d9", 0)],
    )

    queries_file, judgments_file = write_jsonl_goldset(goldset, tmp_path / "out")

    assert (
        queries_file.read_bytes()
        == (
            '{"id": "q2", "text": "Größe?", "tenant": "acme", "tags": ["b", "a"]}\n'
            '{"id": "q1", "text": "plain", "reference_answer": "yes", '
            '"reference_context_ids": ["d9"]}\n'
        ).encode()
    )
    assert judgments_file.read_text(encoding="utf-8") == (
        '{"query_id": "q2", "doc_id": "d1", "relevance": 2}\n'
        '{"query_id": "q1", "doc_id": "d9", "relevance": 0}\n'
    )


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    original = load_jsonl_goldset(FIXTURE)

    write_jsonl_goldset(original, tmp_path)
    loaded = load_jsonl_goldset(tmp_path, name=original.name)

    assert loaded.queries == original.queries
    assert loaded.judgments == original.judgments
    assert loaded.version == original.version
    assert sorted(path.name for path in tmp_path.iterdir()) == ["judgments.jsonl", "queries.jsonl"]


def test_write_refuses_to_replace_unless_asked(tmp_path: Path) -> None:
    first = load_jsonl_goldset(write_goldset(tmp_path / "a", QUERIES, JUDGMENTS))
    second = load_jsonl_goldset(FIXTURE)
    write_jsonl_goldset(first, tmp_path / "out")

    with pytest.raises(InputError, match="overwrite=True"):
        write_jsonl_goldset(second, tmp_path / "out")
    assert load_jsonl_goldset(tmp_path / "out").version == first.version

    write_jsonl_goldset(second, tmp_path / "out", overwrite=True)
    assert load_jsonl_goldset(tmp_path / "out").version == second.version


def test_write_of_an_invalid_goldset_leaves_existing_files_untouched(tmp_path: Path) -> None:
    valid = load_jsonl_goldset(write_goldset(tmp_path / "a", QUERIES, JUDGMENTS))
    write_jsonl_goldset(valid, tmp_path / "out")
    invalid = Goldset.build(
        "bad", [Query(id="q1", text="t")], [Judgment("q1", "d1", -2), Judgment("q5", "d1", 1)]
    )

    with pytest.raises(GoldsetError) as caught:
        write_jsonl_goldset(invalid, tmp_path / "out", overwrite=True)

    assert [(p.line, p.field) for p in caught.value.problems] == [(1, "relevance"), (2, "query_id")]
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "judgments.jsonl",
        "queries.jsonl",
    ]
    assert load_jsonl_goldset(tmp_path / "out").version == valid.version


def test_a_goldset_with_no_judgment_is_refused_naming_it_not_a_temp_file(
    tmp_path: Path,
) -> None:
    empty = Goldset.build("kq", [Query("q1", "anything?")], [])

    with pytest.raises(GoldsetError) as raised:
        write_jsonl_goldset(empty, tmp_path / "out")

    target = tmp_path / "out" / "judgments.jsonl"
    assert str(raised.value) == (
        f"{target}: goldset 'kq' version {empty.version} holds no judgments; a goldset needs "
        "at least one graded judgment, so it is not written"
    )
    assert not (tmp_path / "out").exists()


def test_a_json_array_is_one_problem_saying_it_is_not_json_lines(tmp_path: Path) -> None:
    """json.dump of a list, indented: each of its lines was "not valid JSON" before."""
    folder = tmp_path / "gs"
    folder.mkdir()
    queries = [{"id": "q1", "text": "a"}, {"id": "q2", "text": "b"}]
    (folder / "queries.jsonl").write_text(json.dumps(queries, indent=2), encoding="utf-8")
    (folder / "judgments.jsonl").write_text(
        '{"query_id": "q1", "doc_id": "d1", "relevance": 1}\n', encoding="utf-8"
    )

    with pytest.raises(GoldsetError) as caught:
        load_jsonl_goldset(folder)

    (problem,) = caught.value.problems
    assert (Path(problem.path).name, problem.line) == ("queries.jsonl", 1)
    assert problem.detail == (
        "holds a JSON array, not JSON Lines (one object per line); convert it, e.g. "
        "jq -c '.[]' queries.jsonl > queries.lines.jsonl"
    )
