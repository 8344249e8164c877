"""Build once, score many: index judgments once, then evaluate runs against them.

Runs are scored exactly as trec_eval (10.0): by score descending, ties by doc id in
descending byte order, rank column ignored; judged queries absent from the run are skipped
unless ``complete=True``; a document listed twice for one query is an error. Arrays over a
fixed corpus skip the string work (:meth:`Evaluator.evaluate_arrays`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.typing import NDArray

from evalkit.errors import ConfigError, InputError, MeasureError
from evalkit.metrics.inputs import (
    JudgmentsInput,
    RunArrays,
    RunInput,
    codes_in,
    judgment_columns,
    long_run,
    strings,
)
from evalkit.metrics.kernels import RankedGrades
from evalkit.metrics.measures import Measure, parse_measures
from evalkit.metrics.ranking import (
    BoolArray,
    CorpusIndex,
    RankedRows,
    corpus_index,
    index_judgments,
    ragged_subset,
    rank_long_run,
    rank_run_arrays,
)

__all__ = ["EvaluationResult", "Evaluator"]


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """What came out of one evaluation.

    ``per_query`` is indexed by ``query_id`` (sorted) with one float column per measure,
    named canonically (``ndcg@10``); ``aggregate`` maps each name to the arithmetic mean
    over the ``n_queries`` evaluated queries (NaN when none was evaluated).
    """

    measures: tuple[Measure, ...]
    per_query: pd.DataFrame
    aggregate: dict[str, float]
    n_queries: int
    relevance_threshold: int
    complete: bool

    def to_dict(self) -> dict[str, Any]:
        """``{"aggregate": {name: mean}, "per_query": {qid: {name: value}}}``, JSON-ready.

        A NaN mean (no query evaluated) becomes ``None``.
        """
        return {
            "aggregate": {
                name: None if math.isnan(value) else value for name, value in self.aggregate.items()
            },
            "per_query": {
                str(query_id): {name: float(value) for name, value in row.items()}
                for query_id, row in self.per_query.to_dict(orient="index").items()
            },
        }


class Evaluator:
    """Scores runs against one set of judgments, for a fixed list of measures.

    The judgments are indexed once, at construction; :meth:`evaluate` can then be called
    for any number of runs. ``relevance_threshold`` is the smallest grade that counts as
    relevant (trec_eval ``-l``; nDCG always uses the grades themselves as gains).
    """

    def __init__(
        self,
        judgments: JudgmentsInput,
        measures: Iterable[str | Measure],
        *,
        relevance_threshold: int = 1,
    ) -> None:
        self.measures: tuple[Measure, ...] = parse_measures(measures)
        if not self.measures:
            raise MeasureError("no measures given; name at least one, e.g. ['ndcg@10']")
        if (
            isinstance(relevance_threshold, bool)
            or not isinstance(relevance_threshold, int | np.integer)
            or relevance_threshold < 0
        ):
            raise ConfigError(
                f"relevance_threshold must be an integer >= 0, got {relevance_threshold!r}"
            )
        self.relevance_threshold = int(relevance_threshold)
        query_ids, doc_ids, grades = judgment_columns(judgments)
        self._index = index_judgments(
            query_ids, doc_ids, grades, relevance_threshold=self.relevance_threshold
        )

    @property
    def query_ids(self) -> tuple[str, ...]:
        """The judged query ids, sorted."""
        return tuple(self._index.query_labels)

    def evaluate(
        self,
        run: RunInput,
        *,
        complete: bool = False,
        query_ids: Iterable[str] | None = None,
    ) -> EvaluationResult:
        """Score ``run`` on every measure, per query and on average.

        ``run``: a DataFrame (query_id, doc_id, score) or ``{query_id: {doc_id: score}}``,
        an empty inner mapping meaning nothing retrieved. ``complete=True`` also scores judged
        queries absent from the run; ``query_ids`` restricts the evaluation to those queries.
        """
        selected = self._selection(query_ids)
        ranked = rank_long_run(self._index, long_run(run), selected)
        return self._result(ranked, complete=complete, selected=selected)

    def corpus_index(
        self, doc_ids: Sequence[str] | NDArray[Any] | pd.Series | pa.Array
    ) -> CorpusIndex:
        """Index a corpus's doc ids once, so runs over it can be scored as arrays.

        Position ``i`` in ``doc_ids`` is the document that :class:`RunArrays` refers to
        as ``i``. Doc ids must be unique.
        """
        return corpus_index(self._index, doc_ids)

    def evaluate_arrays(
        self,
        run: RunArrays,
        *,
        corpus: CorpusIndex,
        complete: bool = False,
        query_ids: Iterable[str] | None = None,
    ) -> EvaluationResult:
        """Score a run held as dense arrays; same semantics and result as :meth:`evaluate`.

        ``corpus`` must come from this evaluator's :meth:`corpus_index`.
        """
        if corpus._owner is not self._index:
            raise InputError(
                "this CorpusIndex was built by another Evaluator; "
                "call corpus_index(doc_ids) on the evaluator that scores the run"
            )
        selected = self._selection(query_ids)
        ranked = rank_run_arrays(self._index, corpus, run, selected)
        return self._result(ranked, complete=complete, selected=selected)

    def _selection(self, query_ids: Iterable[str] | None) -> BoolArray | None:
        if query_ids is None:
            return None
        if isinstance(query_ids, str):
            raise InputError(
                f"query_ids must be a collection of query ids, got the string {query_ids!r}",
                field="query_ids",
            )
        codes = codes_in(strings(list(query_ids), what="query_ids"), self._index.query_ids)
        selected = np.zeros(self._index.n_queries, dtype=np.bool_)
        selected[codes[codes >= 0]] = True
        return selected

    def _result(
        self, ranked: RankedRows, *, complete: bool, selected: BoolArray | None
    ) -> EvaluationResult:
        index = self._index
        evaluated = ranked.present
        if complete:
            evaluated = np.ones_like(evaluated) if selected is None else evaluated | selected
        queries = np.flatnonzero(evaluated)
        row_of_query = np.full(index.n_queries, -1, dtype=np.int64)
        row_of_query[queries] = np.arange(queries.size)
        rows = row_of_query[ranked.query_codes]
        by_row_and_rank = np.argsort(
            rows * (int(ranked.ranks.max(initial=0)) + 1) + ranked.ranks, kind="stable"
        )
        ideal_gains, ideal_offsets = ragged_subset(index.ideal_gains, index.ideal_offsets, queries)
        ranked_grades = RankedGrades(
            rows[by_row_and_rank],
            ranked.ranks[by_row_and_rank],
            ranked.grades[by_row_and_rank],
            index.n_relevant[queries],
            ideal_gains,
            ideal_offsets,
            relevance_threshold=self.relevance_threshold,
        )
        columns = {str(measure): measure.compute(ranked_grades) for measure in self.measures}
        per_query = pd.DataFrame(
            columns,
            index=pd.Index(index.query_labels[queries], name="query_id", dtype=object),
        )
        aggregate = {
            name: float(values.mean()) if queries.size else math.nan
            for name, values in columns.items()
        }
        return EvaluationResult(
            measures=self.measures,
            per_query=per_query,
            aggregate=aggregate,
            n_queries=int(queries.size),
            relevance_threshold=self.relevance_threshold,
            complete=complete,
        )
