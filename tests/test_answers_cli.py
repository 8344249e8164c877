"""``evalkit answers score|list|show``, run in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.cli import invoke
from evalkit.store import Store

CONTEXT = (
    "The Sydney Harbour Bridge is a steel arch bridge in Sydney, Australia. "
    "It was opened in 1932 after eight years of construction."
)
LINES = [
    {
        "id": "good",
        "question": "When did the bridge open?",
        "answer": "The Sydney Harbour Bridge was opened in 1932.",
        "contexts": [CONTEXT],
    },
    {"id": "empty", "question": "When did the bridge open?", "answer": "", "contexts": [CONTEXT]},
    {
        "id": "ids",
        "question": "Which documents?",
        "answer": "The bridge opened in 1932.",
        "contexts": [],
        "context_ids": ["d1", "d2"],
        "reference_context_ids": ["d1"],
    },
]


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = invoke(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def answers_file(evalkit_home: Path) -> Path:
    Store.open(evalkit_home / "evalkit.duckdb").close()
    path = evalkit_home.parent / "answers.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in LINES) + "\n", encoding="utf-8")
    return path


@pytest.mark.slow
def test_score_list_show(answers_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys,
        "answers",
        "score",
        str(answers_file),
        "--method",
        "offline",
        "--format",
        "json",
        "--per-item",
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["n_records"] == 3
    assert data["judge_calls"] == 0
    summaries = {(s["metric"], s["method"]): s for s in data["summaries"]}
    faithfulness = summaries[("faithfulness", "offline-embedding")]
    assert (faithfulness["n_measured"], faithfulness["n_unmeasured"]) == (1, 2)
    assert faithfulness["unmeasured_by_reason"] == {"empty_answer": 1, "empty_contexts": 1}
    assert faithfulness["mean"] is not None
    assert summaries[("id_based_context_precision", "ragas-id-based")]["mean"] == 0.5
    assert len(data["scores"]) == 3 + 2 * 3
    scoring_id = data["scoring_id"]

    code, out, _ = run_cli(capsys, "answers", "list", "--format", "json")
    assert code == 0
    assert [s["scoring_id"] for s in json.loads(out)] == [scoring_id]

    code, out, _ = run_cli(
        capsys, "answers", "show", scoring_id[:-1], "--per-item", "--format", "json"
    )
    assert code == 0
    shown = json.loads(out)
    shown_summaries = {(s["metric"], s["method"]): s for s in shown["summaries"]}
    stored = shown_summaries[("faithfulness", "offline-embedding")]
    assert stored["mean"] == pytest.approx(faithfulness["mean"])
    assert stored["unmeasured_by_reason"] == {"empty_answer": 1, "empty_contexts": 1}
    assert len(shown["scores"]) == 9

    code, out, _ = run_cli(capsys, "answers", "show", scoring_id)
    assert code == 0
    assert "answer scoring" in out
    assert "faithfulness" in out


def test_bad_input_exits_2_with_the_line(
    answers_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    answers_file.write_text('{"question": "q"}\n', encoding="utf-8")
    code, _, err = run_cli(capsys, "answers", "score", str(answers_file), "--no-store")
    assert code == 2
    assert "answers.jsonl:1" in err
    assert "answer" in err


def test_a_deeply_nested_line_exits_2_with_a_json_error_naming_the_line(
    answers_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nested = "[" * 100_000 + "]" * 100_000
    answers_file.write_text(
        f'{{"question": "q", "answer": "a", "contexts": {nested}}}\n', encoding="utf-8"
    )
    code, out, err = run_cli(
        capsys, "answers", "score", str(answers_file), "--no-store", "--format", "json"
    )
    message = f"{answers_file}:1: not valid JSON: nests arrays and objects too deeply to read"
    assert code == 2
    assert json.loads(out) == {"error": {"type": "InputError", "message": message, "exit_code": 2}}
    assert err == f"error: {message}\n"


def test_unknown_method_is_a_usage_error(
    answers_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "answers", "score", str(answers_file), "--method", "magic")
    assert code == 2
    assert "magic" in err


def test_llm_method_without_a_judge_says_what_to_set(
    answers_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        capsys, "answers", "score", str(answers_file), "--method", "llm", "--no-store"
    )
    assert code == 2
    assert "EVALKIT_JUDGE_BASE_URL" in err


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("score", "list", "show"):
        code, out, _ = run_cli(capsys, "answers", command, "--help")
        assert code == 0
        assert "Example:" in out
