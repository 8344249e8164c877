"""IR metrics, scored exactly as trec_eval scores them.

Measures have one canonical name (``ndcg@10``, ``recall@100``, ``mrr``, ...); ``Evaluator``
indexes judgments once and scores runs, and the kernels in :mod:`evalkit.metrics.kernels`
are pure NumPy over a whole run.
"""

from evalkit.metrics.evaluator import EvaluationResult, Evaluator
from evalkit.metrics.inputs import JudgmentsInput, RepeatedPairError, RunArrays, RunInput
from evalkit.metrics.kernels import UNJUDGED, RankedGrades
from evalkit.metrics.measures import (
    MEASURES,
    Cutoff,
    Measure,
    MeasureDefinition,
    parse_measure,
    parse_measures,
)
from evalkit.metrics.ranking import CorpusIndex
from evalkit.metrics.trec_files import pair_lines, read_qrels, read_run, repeat_in_file

__all__ = [
    "MEASURES",
    "UNJUDGED",
    "CorpusIndex",
    "Cutoff",
    "EvaluationResult",
    "Evaluator",
    "JudgmentsInput",
    "Measure",
    "MeasureDefinition",
    "RankedGrades",
    "RepeatedPairError",
    "RunArrays",
    "RunInput",
    "pair_lines",
    "parse_measure",
    "parse_measures",
    "read_qrels",
    "read_run",
    "repeat_in_file",
]
