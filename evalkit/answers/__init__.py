"""Answer-level metrics: faithfulness, answer relevance, context precision and recall.

Scored by an LLM judge (ragas), offline, or by ragas' non-LLM context metrics. An unmeasured
answer is stored with its reason and left out of every mean. docs/answers.md.
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
