"""``evalkit run`` and ``evalkit traffic replay`` score generated answers.

A RAG endpoint on loopback answers each query with ranked results, the passage text of the
results it generated from, and a generated answer. The run stores its retrieval metrics,
then the answers' faithfulness under the run id: by the offline method (no LLM), and once
by the deterministic loopback judge of ``test_answers_judge``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from loopback import JSONHandler, serving
from test_answers_judge import FakeJudge, fake_judge  # noqa: F401
from test_docs_python import python_block

from evalkit.answers import AnswerRecord
from evalkit.cli import invoke
from evalkit.pipeline import run_answer_records
from evalkit.records import Query, QueryResult, ScoredDoc
from evalkit.retrievers import HttpRetriever
from evalkit.store import Store
from evalkit.store.answers import answer_scores_frame, list_scorings
from evalkit.store.dashboard.answers import answer_items_frame
from evalkit.store.goldsets import load_stored_goldset

pytestmark = pytest.mark.slow

SYDNEY = (
    "The Sydney Harbour Bridge is a steel arch bridge in Sydney, Australia. "
    "It was opened in 1932 after eight years of construction."
)
GOLDEN_GATE = (
    "The Golden Gate Bridge is a suspension bridge in San Francisco. It opened to traffic in 1937."
)
QUERIES = [
    {
        "id": "q1",
        "text": "When did the Sydney Harbour Bridge open?",
        "reference_answer": "It opened in 1932.",
        "reference_context_ids": ["d1"],
    },
    {
        "id": "q2",
        "text": "When did the Golden Gate Bridge open?",
        "reference_answer": "In 1937.",
    },
    {"id": "q3", "text": "Where is Tower Bridge?", "reference_answer": "In London."},
    {"id": "q4", "text": "Which bridge is the longest?"},
]
JUDGMENTS = [("q1", "d1"), ("q2", "d2"), ("q3", "d3"), ("q4", "d2")]

RESPONSES: dict[str, dict[str, Any]] = {
    # Generated from d1 and d2; every claim is in d1.
    "q1": {
        "results": [
            {"id": "d1", "score": 0.9, "text": SYDNEY},
            {"id": "d2", "score": 0.5, "text": GOLDEN_GATE},
        ],
        "answer": "It was opened in 1932 after eight years of construction.",
    },
    # The first claim is in d2, the second is made up.
    "q2": {
        "results": [{"id": "d2", "score": 0.8, "text": GOLDEN_GATE}],
        "answer": "The Golden Gate Bridge opened to traffic in 1937. "
        "It was designed by Gustave Eiffel in Lyon.",
    },
    # An answer without the passages it came from: unmeasured, never 0.
    "q3": {
        "results": [{"id": "d3", "score": 0.7}],
        "answer": "Tower Bridge crosses the River Thames in London.",
    },
    # A plain search result: no answer, nothing to score.
    "q4": {"results": [{"id": "d2", "score": 0.6}, {"id": "d1", "score": 0.4}]},
}
DEFAULT_RESPONSE: dict[str, Any] = {"results": [{"id": "d1", "score": 0.5}]}


class _RagHandler(JSONHandler):
    def do_POST(self) -> None:
        self.send_json(RESPONSES.get(self.read_json()["query_id"], DEFAULT_RESPONSE))


@pytest.fixture
def rag_endpoint() -> Iterator[str]:
    with serving(_RagHandler) as url:
        yield f"{url}/search"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = invoke(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def cli_json(capsys: pytest.CaptureFixture[str], *args: str, expect: int = 0) -> Any:
    code, out, err = cli(capsys, *args, "--format", "json")
    assert code == expect, err
    return json.loads(out)


@pytest.fixture
def goldset(evalkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    folder = tmp_path / "bridges"
    folder.mkdir()
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUERIES))
    (folder / "judgments.jsonl").write_text(
        "".join(
            json.dumps({"query_id": query_id, "doc_id": doc_id, "relevance": 1}) + "\n"
            for query_id, doc_id in JUDGMENTS
        )
    )
    code, _, err = cli(capsys, "goldset", "import", str(folder), "--name", "bridges")
    assert code == 0, err
    return "bridges"


def run_args(url: str, *extra: str) -> list[str]:
    return ["run", "--goldset", "bridges", "--http-retriever", url, "--k", "5", "-m", "mrr", *extra]


def summaries(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(s["metric"], s["method"]): s for s in data["summaries"]}


def stored_scores(home: Path, run_id: str) -> tuple[list[Any], dict[tuple[str, str], Any]]:
    with Store.open(home / "evalkit.duckdb", read_only=True) as store:
        scorings = list_scorings(store, run_id=run_id)
        frame = answer_scores_frame(store, scorings[0].scoring_id) if scorings else None
    rows = {}
    if frame is not None:
        for row in frame.itertuples(index=False):
            rows[(row.item_id, row.metric)] = row
    return scorings, rows


def test_run_scores_generated_answers_offline_and_links_them_to_the_run(
    goldset: str,
    rag_endpoint: str,
    evalkit_home: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = cli_json(capsys, *run_args(rag_endpoint))
    assert run["status"] == "complete"
    assert run["aggregates"] == {"mrr": 1.0}
    answers = run["answers"]
    # q4 generated nothing; q1, q2 and q3 did.
    assert answers["n_records"] == 3
    assert answers["run_id"] == run["run_id"]
    assert answers["judge_calls"] == 0
    faithfulness = summaries(answers)[("faithfulness", "offline-embedding")]
    assert (faithfulness["n_measured"], faithfulness["n_unmeasured"]) == (2, 1)
    assert faithfulness["n_total"] == 3
    assert faithfulness["unmeasured_by_reason"] == {"empty_contexts": 1}

    scorings, rows = stored_scores(evalkit_home, run["run_id"])
    assert [s.scoring_id for s in scorings] == [answers["scoring_id"]]
    assert scorings[0].run_id == run["run_id"]
    assert sorted(item for item, metric in rows if metric == "faithfulness") == ["q1", "q2", "q3"]
    q1, q2, q3 = (rows[(item, "faithfulness")] for item in ("q1", "q2", "q3"))
    assert q1.value > 0.8
    assert (q1.n_claims, q1.n_supported) == (1, 1)
    # One claim of two is supported.
    assert (q2.n_claims, q2.n_supported) == (2, 1)
    assert q2.value < q1.value
    assert pytest.approx((q1.value + q2.value) / 2) == faithfulness["mean"]
    assert q3.unmeasured_reason == "empty_contexts"
    assert pd.isna(q3.value)

    # The goldset's reference context ids enable ragas' ID-based context metrics: q1
    # generated from d1 and d2, and d1 is its reference.
    precision = rows[("q1", "id_based_context_precision")]
    recall = rows[("q1", "id_based_context_recall")]
    assert (precision.value, recall.value) == pytest.approx((0.5, 1.0))
    context = summaries(answers)[("id_based_context_precision", "ragas-id-based")]
    assert context["n_measured"] == 1
    assert context["mean"] == pytest.approx(0.5)

    # What was scored is stored with the scores, and the dashboard reads it from there:
    # the least faithful answer beside its passages, with no file or log to go back to.
    with Store.open(evalkit_home / "evalkit.duckdb", read_only=True) as store:
        lowest = answer_items_frame(
            store, scoring_id=answers["scoring_id"], metric="faithfulness", limit=1
        )
    assert lowest["item_id"].tolist() == ["q2"]
    assert lowest["question"].tolist() == ["When did the Golden Gate Bridge open?"]
    assert lowest["answer"].tolist() == [RESPONSES["q2"]["answer"]]
    assert list(lowest["contexts"].iloc[0]) == [GOLDEN_GATE]

    shown = cli_json(capsys, "runs", "show", run["run_id"])
    assert shown["answers"]["scoring_id"] == answers["scoring_id"]
    assert summaries(shown["answers"])[("faithfulness", "offline-embedding")][
        "mean"
    ] == pytest.approx(faithfulness["mean"])


def test_the_answers_page_s_python_example_scores_a_runs_answers(
    goldset: str, rag_endpoint: str, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/answers.md gave `evaluate_goldset(..., answers=True, ...)`, a TypeError:
    ``answers`` is a field of the request."""
    with (
        Store.open(evalkit_home / "evalkit.duckdb") as store,
        HttpRetriever(rag_endpoint) as retriever,
    ):
        scope: dict[str, Any] = {
            "store": store,
            "goldset": load_stored_goldset(store, goldset),
            "retriever": retriever,
        }
        exec(python_block("answers.md", "evaluate_goldset"), scope)
    outcome = scope["outcome"]
    assert outcome.run.status == "complete"
    assert outcome.answers.run_id == outcome.run.run_id
    assert outcome.answers.n_records == 3
    assert capsys.readouterr().out.strip() == str(outcome.answers.summary("faithfulness").mean)


def test_no_answers_stores_no_scores(
    goldset: str,
    rag_endpoint: str,
    evalkit_home: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = cli_json(capsys, *run_args(rag_endpoint, "--no-answers"))
    assert run["status"] == "complete"
    assert run["answers"] is None
    scorings, _ = stored_scores(evalkit_home, run["run_id"])
    assert scorings == []
    assert cli_json(capsys, "answers", "list") == []
    assert cli_json(capsys, "runs", "show", run["run_id"])["answers"] is None


def test_run_table_shows_the_faithfulness_figures(
    goldset: str,
    rag_endpoint: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from evalkit.cli._output import console

    monkeypatch.setattr(console, "width", 200)
    code, out, err = cli(capsys, *run_args(rag_endpoint))
    assert code == 0, err
    line = next(line for line in out.splitlines() if "faithfulness" in line)
    assert "offline-embedding" in line
    assert "empty_contexts 1" in line


def test_a_judge_that_needs_configuring_fails_before_any_query(
    goldset: str,
    rag_endpoint: str,
    evalkit_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVALKIT_JUDGE_METHOD", "llm")
    code, _, err = cli(capsys, *run_args(rag_endpoint))
    assert code == 2
    assert "needs an LLM judge" in err
    assert "--no-answers" in err
    assert cli_json(capsys, "runs", "list") == []
    # Without answer scoring the same run goes ahead.
    assert cli_json(capsys, *run_args(rag_endpoint, "--no-answers"))["status"] == "complete"


@pytest.mark.filterwarnings("ignore:FUNCTIONS is deprecated:DeprecationWarning")
def test_run_scores_answers_with_the_llm_judge_and_caches_it(
    goldset: str,
    rag_endpoint: str,
    fake_judge: FakeJudge,  # noqa: F811
    evalkit_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = {
        "BASE_URL": fake_judge.url,
        "MODEL": "fake-judge-1",
        "API_KEY_ENV": "EVALKIT_TEST_NO_SUCH_KEY",
        "TIMEOUT": "5",
        "MAX_RETRIES": "1",
        "RETRY_BACKOFF": "0",
        "ANSWER_RELEVANCY": "false",
    }
    for name, value in settings.items():
        monkeypatch.setenv(f"EVALKIT_JUDGE_{name}", value)

    first = cli_json(capsys, *run_args(rag_endpoint))
    faithfulness = summaries(first["answers"])[("faithfulness", "ragas-llm")]
    # The loopback judge supports a statement when all its words are in the contexts:
    # q1 1 of 1, q2 1 of 2; q3 has no context and never reaches the judge.
    assert faithfulness["mean"] == pytest.approx(0.75)
    assert (faithfulness["n_measured"], faithfulness["n_unmeasured"]) == (2, 1)
    assert faithfulness["unmeasured_by_reason"] == {"empty_contexts": 1}
    assert faithfulness["judge_model"] == "fake-judge-1"
    assert first["answers"]["judge_calls"] == fake_judge.calls == 4
    _, rows = stored_scores(evalkit_home, first["run_id"])
    assert rows[("q1", "faithfulness")].value == pytest.approx(1.0)
    assert rows[("q2", "faithfulness")].value == pytest.approx(0.5)

    second = cli_json(capsys, *run_args(rag_endpoint))
    assert second["run_id"] != first["run_id"]
    assert second["answers"]["judge_calls"] == 0
    # One cached judgment per measured answer (each stands for two judge calls).
    assert second["answers"]["cache_hits"] == 2
    assert fake_judge.calls == 4
    again = summaries(second["answers"])[("faithfulness", "ragas-llm")]
    assert again["mean"] == pytest.approx(0.75)


TRAFFIC = [
    {
        "query_id": "t1",
        "text": "When did the Sydney Harbour Bridge open?",
        "answer": "It was opened in 1932 after eight years of construction.",
        "contexts": [SYDNEY],
    },
    {
        "query_id": "t2",
        "text": "When did the Golden Gate Bridge open?",
        "answer": "It opened in 1937.",
        "contexts": [],
    },
    {"query_id": "t3", "text": "Which bridge is the longest?"},
]


def test_traffic_replay_scores_the_logged_answers(
    rag_endpoint: str,
    evalkit_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = tmp_path / "traffic.jsonl"
    log.write_text(
        "".join(json.dumps({**r, "timestamp": "2026-11-21T10:00:00Z"}) + "\n" for r in TRAFFIC)
    )
    assert cli_json(capsys, "traffic", "ingest", str(log))["records_added"] == 3
    cli_json(capsys, "traffic", "sample", "--window", "2026-11-21", "--n", "10", "--seed", "1")
    replay_args = [
        "traffic",
        "replay",
        "--window",
        "2026-11-21",
        "--http-retriever",
        rag_endpoint,
        "--k",
        "3",
        "--embed-sample",
        "0",
    ]
    replayed = cli_json(capsys, *replay_args)
    run_id = replayed["run"]["run_id"]
    answers = replayed["answers"]
    assert answers["run_id"] == run_id
    assert answers["n_records"] == 2
    faithfulness = summaries(answers)[("faithfulness", "offline-embedding")]
    assert (faithfulness["n_measured"], faithfulness["n_unmeasured"]) == (1, 1)
    assert faithfulness["unmeasured_by_reason"] == {"empty_contexts": 1}
    _, rows = stored_scores(evalkit_home, run_id)
    assert rows[("t1", "faithfulness")].value == pytest.approx(faithfulness["mean"])
    assert faithfulness["mean"] > 0.8

    skipped = cli_json(capsys, *replay_args, "--no-answers")
    assert skipped["answers"] is None
    assert stored_scores(evalkit_home, skipped["run"]["run_id"])[0] == []


def test_answer_records_come_from_answered_queries_with_an_answer() -> None:
    queries = [
        Query(id="a", text="qa", reference_answer="ref a", reference_context_ids=("d1",)),
        Query(id="b", text="qb"),
        Query(id="c", text="qc"),
        Query(id="d", text="qd"),
    ]
    doc = (ScoredDoc("d1", 1.0, 1),)
    results = [
        QueryResult("a", doc, 1.0, answer="ans", contexts=("text 1",), context_ids=("d1",)),
        QueryResult("b", doc, 1.0),
        QueryResult("c", (), 1.0, error="HTTP 500", answer="never scored"),
        QueryResult("d", doc, 1.0, answer=""),
    ]
    assert run_answer_records(queries, results) == [
        AnswerRecord(
            id="a",
            question="qa",
            answer="ans",
            contexts=("text 1",),
            context_ids=("d1",),
            reference="ref a",
            reference_context_ids=("d1",),
        ),
        # An empty answer is a record (stored as unmeasured), not left out.
        AnswerRecord(id="d", question="qd", answer=""),
    ]
