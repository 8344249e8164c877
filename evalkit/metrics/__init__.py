"""IR metrics, scored exactly as trec_eval scores them.

::

    from evalkit.metrics import Evaluator, parse_measures, read_qrels, read_run

    evaluator = Evaluator(read_qrels("qrels.txt"), parse_measures(["ndcg@10", "recall@100"]))
    result = evaluator.evaluate(read_run("run.txt"))
    result.aggregate            # {"ndcg@10": 0.66, "recall@100": 0.91}
    result.per_query            # DataFrame indexed by query_id, one column per measure

Measures have one canonical name (``ndcg@10``, ``precision@10``, ``recall@100``, ``mrr``,
``mrr@10``, ``map``, ``map@100``, ``hit_rate@10``, ``r_precision``); the kernels in
:mod:`evalkit.metrics.kernels` are pure NumPy over a whole run.
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
