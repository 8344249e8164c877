"""ragas' ID-based and non-LLM context precision and recall, as evalkit runs them."""

from __future__ import annotations

import sys

import pytest

from evalkit.answers import AnswerRecord, score_answers
from evalkit.answers.context import CONTEXT_METRICS, applicable_context_metrics, score_context
from evalkit.config import JudgeSettings, ScoringMethod

pytestmark = pytest.mark.slow  # imports ragas

RECORDS = (
    # retrieved {a, b, c} (a repeated), reference {a, d}: precision 1/3, recall 1/2
    AnswerRecord(
        id="q1",
        question="q",
        answer="a",
        context_ids=("a", "b", "c", "a"),
        reference_context_ids=("a", "d"),
    ),
    # every retrieved id is a reference id, every reference id retrieved: 1 and 1
    AnswerRecord(
        id="q2", question="q", answer="a", context_ids=("x", "y"), reference_context_ids=("y", "x")
    ),
    # nothing retrieved: unmeasured (empty_contexts); no reference: unmeasured (no_reference)
    AnswerRecord(id="q3", question="q", answer="a", reference_context_ids=("a",)),
    AnswerRecord(id="q4", question="q", answer="a", context_ids=("a",)),
)


def values(metric: str) -> dict[str, float | str | None]:
    return {
        s.item_id: s.value if s.value is not None else s.unmeasured_reason
        for s in score_context(CONTEXT_METRICS[metric], RECORDS)
    }


def test_id_based_context_precision_by_hand() -> None:
    assert values("id_based_context_precision") == pytest.approx(
        {"q1": 1 / 3, "q2": 1.0, "q3": "empty_contexts", "q4": "no_reference"}
    )


def test_id_based_context_recall_by_hand() -> None:
    assert values("id_based_context_recall") == pytest.approx(
        {"q1": 0.5, "q2": 1.0, "q3": "empty_contexts", "q4": "no_reference"}
    )


def test_only_metrics_with_a_reference_apply() -> None:
    assert [m.name for m in applicable_context_metrics(RECORDS)] == [
        "id_based_context_precision",
        "id_based_context_recall",
    ]
    assert applicable_context_metrics([RECORDS[3]]) == []


TEXT_RECORD = AnswerRecord(
    id="t1",
    question="q",
    answer="a",
    contexts=("Paris is the capital of France.", "Bananas are yellow when ripe."),
    reference_contexts=("Paris is the capital of France.",),
)


def test_non_llm_context_metrics_by_hand() -> None:
    precision = score_context(
        CONTEXT_METRICS["non_llm_context_precision_with_reference"], [TEXT_RECORD]
    )
    recall = score_context(CONTEXT_METRICS["non_llm_context_recall"], [TEXT_RECORD])
    # verdicts [1, 0]: average precision (1/1 * 1) / 1 = 1; the one reference is found: 1
    assert precision[0].value == pytest.approx(1.0)
    assert recall[0].value == pytest.approx(1.0)


def test_non_llm_context_metrics_need_rapidfuzz(monkeypatch: pytest.MonkeyPatch) -> None:
    # rapidfuzz is a dependency; a broken install that lacks it is reported, not crashed on.
    monkeypatch.setitem(sys.modules, "rapidfuzz", None)
    [score] = score_context(CONTEXT_METRICS["non_llm_context_recall"], [TEXT_RECORD])
    assert score.value is None
    assert score.unmeasured_reason == "missing_dependency"
    assert "pip install rapidfuzz" in str(score.detail)


def test_score_answers_adds_context_metrics_beside_faithfulness() -> None:
    # Method offline with empty answers: faithfulness is unmeasured without loading a model.
    records = [
        AnswerRecord(
            id=r.id,
            question=r.question,
            answer="",
            context_ids=r.context_ids,
            reference_context_ids=r.reference_context_ids,
        )
        for r in RECORDS
    ]
    result = score_answers(records, settings=JudgeSettings(method=ScoringMethod.offline))
    precision = result.summary("id_based_context_precision")
    assert precision.method == "ragas-id-based"
    assert precision.mean == pytest.approx((1 / 3 + 1.0) / 2)
    assert (precision.n_measured, precision.n_unmeasured) == (2, 2)
    assert result.summary("faithfulness").unmeasured_by_reason == {"empty_answer": 4}
