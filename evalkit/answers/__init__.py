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
    from evalkit.answers.files import read_answer_records as read_answer_records
    from evalkit.answers.offline import OfflineFaithfulness as OfflineFaithfulness
    from evalkit.answers.records import AnswerRecord as AnswerRecord
    from evalkit.answers.records import AnswerScores as AnswerScores
    from evalkit.answers.records import Method as Method
    from evalkit.answers.records import MetricScore as MetricScore
    from evalkit.answers.records import MetricSummary as MetricSummary
    from evalkit.answers.records import Unmeasured as Unmeasured
    from evalkit.answers.scoring import check_judge_settings as check_judge_settings
    from evalkit.answers.scoring import score_answers as score_answers
    from evalkit.answers.scoring import uses_judge as uses_judge
else:
    # Importing the package loads none of its modules; each name loads its own on first use.
    __getattr__ = lazy_attributes(__name__)
