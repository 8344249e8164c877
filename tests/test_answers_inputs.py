"""Answer records from JSONL, and the judge settings from evalkit.toml and the environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.answers import AnswerRecord, read_answer_records
from evalkit.config import JudgeSettings, ScoringMethod, load_settings
from evalkit.errors import ConfigError, InputError


def write_lines(path: Path, *lines: object) -> Path:
    path.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n",
        encoding="utf-8",
    )
    return path


def test_reads_evalkit_and_ragas_field_names(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "answers.jsonl",
        {
            "id": "a",
            "question": "Q1?",
            "answer": "A1.",
            "contexts": ["c1", "c2"],
            "reference": "R1",
            "reference_context_ids": ["d1", 7],
        },
        "",
        {
            "user_input": "Q2?",
            "response": "A2.",
            "retrieved_contexts": [],
            "retrieved_context_ids": ["d9"],
            "ground_truth": "R2",
            "reference_contexts": ["rc"],
        },
    )
    first, second = read_answer_records(path)
    assert first == AnswerRecord(
        id="a",
        question="Q1?",
        answer="A1.",
        contexts=("c1", "c2"),
        reference="R1",
        reference_context_ids=("d1", "7"),
    )
    assert second == AnswerRecord(
        id="3",  # no id: the line number
        question="Q2?",
        answer="A2.",
        contexts=(),
        context_ids=("d9",),
        reference="R2",
        reference_contexts=("rc",),
    )


def test_a_reference_written_as_a_list_of_one_answer_is_that_answer(tmp_path: Path) -> None:
    """Older ragas datasets, amnesty_qa among them, write ground_truth(s) as a list."""
    path = write_lines(
        tmp_path / "answers.jsonl",
        {"question": "Q1?", "answer": "A1.", "ground_truth": ["R1"]},
        {"question": "Q2?", "answer": "A2.", "ground_truths": ["R2"]},
    )
    assert [record.reference for record in read_answer_records(path)] == ["R1", "R2"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "answers.jsonl:2: not valid JSON"),
        (
            '{"question": "q", "answer": "a", "contexts": ' + "[" * 5000 + "]" * 5000 + "}",
            "answers.jsonl:2: not valid JSON: nests arrays and objects too deeply to read",
        ),
        (
            '{"id": ' + "7" * 5000 + ', "question": "q", "answer": "a"}',
            "answers.jsonl:2: holds a number too long to read (over 4300 digits)",
        ),
        ('["a list"]', "answers.jsonl:2: each line must be a JSON object"),
        ('{"question": "q", "answer": "a", "contxts": []}', "field 'contxts': unknown field"),
        ('{"answer": "a"}', "field 'question': is required"),
        ('{"question": "q", "answer": 3}', "field 'answer': must be a string"),
        ('{"question": "q", "answer": "a", "contexts": "one"}', "wrap it in [ ]"),
        ('{"question": "q", "answer": "a", "contexts": [null]}', "item 0 must be a string"),
        ('{"question": "q", "response": "r", "answer": "a"}', "given twice"),
        (
            '{"id": "a36", "question": "q", "answer": "It is 36.", "answer": "Something else."}',
            "answers.jsonl:2 field 'answer': appears twice in one object; keep one",
        ),
        ('{"id": "x", "question": "q", "answer": "a"}', "duplicate id 'x' (first on line 1)"),
        (
            '{"question": "q", "answer": "a", "ground_truths": ["r1", "r2"]}',
            "field 'reference': a list of 2 reference answers: give one",
        ),
        ('{"question": "q", "answer": "a", "ground_truth": [3]}', "field 'reference': must be a"),
    ],
)
def test_bad_lines_name_file_line_and_field(tmp_path: Path, line: str, message: str) -> None:
    path = write_lines(
        tmp_path / "answers.jsonl", {"id": "x", "question": "q", "answer": "a"}, line
    )
    with pytest.raises(InputError) as caught:
        read_answer_records(path)
    assert message in str(caught.value)


def test_a_line_that_is_not_utf8_is_named_with_its_byte(tmp_path: Path) -> None:
    good = [json.dumps({"id": f"a{n}", "question": "q", "answer": "a"}) for n in range(1500)]
    path = tmp_path / "answers.jsonl"
    latin1 = '{"id": "x", "question": "Où?", "answer": "Voilà"}'.encode("latin-1")
    path.write_bytes(
        "\ufeff".encode() + "\n".join(good).encode() + b"\n" + latin1 + b"\n" + latin1 + b"\n"
    )
    with pytest.raises(InputError) as caught:
        read_answer_records(path)
    assert [str(problem) for problem in caught.value.problems] == [
        f"{path}:{line}: is not valid UTF-8 (byte 27 of the line); save the file as UTF-8"
        for line in (1501, 1502)
    ]


def test_missing_or_empty_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_answer_records(tmp_path / "absent.jsonl")
    with pytest.raises(InputError, match="holds no record"):
        read_answer_records(write_lines(tmp_path / "empty.jsonl", ""))


def test_judge_settings_defaults_configure_no_judge(evalkit_home: Path) -> None:
    settings = load_settings().judge
    assert not settings.judge_configured
    assert settings.method is ScoringMethod.auto
    assert (settings.repeats, settings.max_retries, settings.concurrency) == (1, 2, 4)


def test_judge_table_of_evalkit_toml_and_environment(
    evalkit_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("evalkit.toml").write_text(
        'home = "elsewhere"\n\n[judge]\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m-toml"\n'
        'api_key_env = "MY_JUDGE_KEY"\nconcurrency = 2\nrequests_per_minute = 30\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("EVALKIT_JUDGE_MODEL", "m-env")
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-secret-value")
    settings = load_settings(judge={"concurrency": 8}).judge
    assert settings.base_url == "http://127.0.0.1:9/v1"
    assert settings.model == "m-env"  # the environment beats the file
    assert settings.concurrency == 8  # arguments beat both
    assert settings.requests_per_minute == 30
    assert settings.judge_configured
    assert settings.api_key() == "sk-secret-value"
    assert "sk-secret-value" not in json.dumps(settings.public_dict())


def test_toml_without_a_judge_table_is_fine(evalkit_home: Path) -> None:
    Path("evalkit.toml").write_text('home = "x"\n', encoding="utf-8")
    assert load_settings().judge.model is None


def test_invalid_judge_settings_say_where(
    evalkit_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALKIT_JUDGE_REPEATS", "0")
    with pytest.raises(ConfigError, match=r"^environment variable EVALKIT_JUDGE_REPEATS: "):
        load_settings()
    monkeypatch.delenv("EVALKIT_JUDGE_REPEATS")
    Path("evalkit.toml").write_text("[judge]\nmodle = 'typo'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="modle"):
        load_settings()
    Path("evalkit.toml").write_text("judge = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"must be a table"):
        load_settings()


def test_missing_key_variable_gives_a_placeholder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_JUDGE_KEY", raising=False)
    assert JudgeSettings(api_key_env="NO_SUCH_JUDGE_KEY").api_key() == "not-set"


def test_record_from_a_goldset_query() -> None:
    from evalkit.records import Query

    query = Query(id="q7", text="Who?", reference_answer="Ada.", reference_context_ids=("d1",))
    record = AnswerRecord.from_query(query, answer="Ada did.", contexts=["c"], context_ids=["d1"])
    assert record == AnswerRecord(
        id="q7",
        question="Who?",
        answer="Ada did.",
        contexts=("c",),
        context_ids=("d1",),
        reference="Ada.",
        reference_context_ids=("d1",),
    )


def test_public_surface_is_importable() -> None:
    import evalkit.answers

    for name in evalkit.answers.__all__:
        assert getattr(evalkit.answers, name) is not None, name
