"""Answer-level metrics: faithfulness, answer relevance, context precision and recall.

* **LLM judge** (``ragas-llm``): ragas' own ``Faithfulness`` and ``AnswerRelevancy`` with
  any OpenAI-compatible endpoint configured in the ``[judge]`` table of ``evalkit.toml``,
  with concurrency and rate limits, timeouts, retries, repeats and a cache of judge outputs.
* **Offline** (``offline-embedding``): when no judge is configured, claim-level support by
  embedding similarity and word overlap, calibrated to read as the share of supported
  claims, with no LLM (``evalkit.answers.offline``); or (``offline-nli``) by the user's own
  local NLI cross-encoder (``evalkit.answers.nli``, ``nli_model_path`` in ``[judge]``).
* **Context metrics** (``ragas-id-based``, ``ragas-non-llm``): ragas' ID-based and non-LLM
  context precision and recall, when records carry reference contexts or their ids.

An answer that cannot be measured is stored as unmeasured with its reason, counted, and
left out of every mean: a broken judge never turns an average into NaN.

Typical use::

    from evalkit.answers import AnswerRecord, score_answers

    scores = score_answers([AnswerRecord(id="q1", question=..., answer=..., contexts=(...,))])
    scores.summary("faithfulness").mean
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalkit.lazy import lazy_attributes

if TYPE_CHECKING:
    from evalkit.answers.files import read_answer_records
    from evalkit.answers.offline import OfflineFaithfulness
    from evalkit.answers.records import (
        AnswerRecord,
        AnswerScores,
        Method,
        MetricScore,
        MetricSummary,
        Unmeasured,
    )
    from evalkit.answers.scoring import check_judge_settings, score_answers, uses_judge


__all__ = [
    "AnswerRecord",
    "AnswerScores",
    "Method",
    "MetricScore",
    "MetricSummary",
    "OfflineFaithfulness",
    "Unmeasured",
    "check_judge_settings",
    "read_answer_records",
    "score_answers",
    "uses_judge",
]

# Importing the package loads none of its modules; each name loads its own on first use.
__getattr__ = lazy_attributes(
    __name__,
    {
        "AnswerRecord": "evalkit.answers.records",
        "AnswerScores": "evalkit.answers.records",
        "Method": "evalkit.answers.records",
        "MetricScore": "evalkit.answers.records",
        "MetricSummary": "evalkit.answers.records",
        "OfflineFaithfulness": "evalkit.answers.offline",
        "Unmeasured": "evalkit.answers.records",
        "check_judge_settings": "evalkit.answers.scoring",
        "read_answer_records": "evalkit.answers.files",
        "score_answers": "evalkit.answers.scoring",
        "uses_judge": "evalkit.answers.scoring",
    },
)
