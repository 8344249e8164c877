"""evalkit's measures against pytrec_eval (trec_eval's own C code) on random qrels and runs.

Hypothesis draws small collections with tied scores, grades -1..3, queries missing from
the run or from the qrels, unjudged documents, empty rankings and doc ids whose byte order
differs from their numeric order; every measure is compared per query and on average, to
1e-9, for the three ways of handing evalkit a run (dict, DataFrame, dense arrays).
``mrr@k`` has no trec_eval counterpart and is checked against a small reference below.

pytrec_eval embeds trec_eval 9.x, which stores scores as C floats; trec_eval 10.0 (the
conformance suite's, and evalkit's) stores doubles. Scores are drawn as floats, which both
compare alike; test_metrics_measures checks scores that only doubles tell apart.
"""

from __future__ import annotations

from unittest.mock import patch

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from evalkit.metrics import EvaluationResult, Evaluator, RunArrays, parse_measures

pytrec_eval = pytest.importorskip("pytrec_eval")

CUTOFFS = (1, 2, 3, 5, 10)
MEASURES = parse_measures(
    [
        *(
            f"{name}@{k}"
            for name in ("precision", "recall", "ndcg", "map", "hit_rate", "mrr")
            for k in CUTOFFS
        ),
        "ndcg",
        "map",
        "mrr",
        "r_precision",
    ]
)
TREC_NAMES = {str(m): m.trec_eval_name for m in MEASURES if m.trec_eval_name is not None}
MRR_CUTOFFS = {str(m): m.cutoff for m in MEASURES if m.name == "mrr" and m.cutoff is not None}
DOC_IDS = (
    "d1",
    "d10",
    "d2",
    "D3",
    "a",
    "b",
    "b-1",
    "007",
    "7",
    "é",
    "doc_11",
    "x",
    "y",
    "z",
    "d20",
)
QUERY_IDS = ("q1", "q2", "q10", "003", "Q")
SCORES = st.one_of(
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 1.0, 2.0, -1.0]),
    st.floats(-10, 10, allow_nan=False, allow_infinity=False, width=32),
)

Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]


@st.composite
def collections(draw: st.DrawFn) -> tuple[Qrels, Run, int]:
    """Random qrels, a random run over overlapping queries, and a relevance threshold."""
    qrels: Qrels = {}
    for query in draw(st.lists(st.sampled_from(QUERY_IDS), min_size=1, max_size=5, unique=True)):
        docs = draw(st.lists(st.sampled_from(DOC_IDS), min_size=1, max_size=10, unique=True))
        qrels[query] = {doc: draw(st.sampled_from([-1, 0, 0, 1, 1, 2, 3])) for doc in docs}
        if max(qrels[query].values()) < 0:
            # trec_eval's ndcg_cut loops forever on a query judged only with negative grades
            # (it reads rel_levels[-1]); evalkit scores such a query 0 (see the kernel tests).
            qrels[query][docs[0]] = 0
    run: Run = {}
    for query in draw(st.lists(st.sampled_from((*QUERY_IDS, "unjudged")), max_size=6, unique=True)):
        docs = draw(st.lists(st.sampled_from(DOC_IDS), max_size=12, unique=True))
        run[query] = {doc: draw(SCORES) for doc in docs}
    return qrels, run, draw(st.sampled_from([1, 1, 2]))


def pytrec_values(qrels: Qrels, run: Run, threshold: int) -> dict[str, dict[str, float]]:
    """Per-query values from pytrec_eval, plus the mrr@k reference, by canonical name."""
    evaluator = pytrec_eval.RelevanceEvaluator(
        qrels, set(TREC_NAMES.values()), relevance_level=threshold
    )
    values = evaluator.evaluate(run)
    return {
        query: {
            **{name: measures[trec] for name, trec in TREC_NAMES.items()},
            **{
                name: reference_mrr(qrels[query], run[query], k=k, threshold=threshold)
                for name, k in MRR_CUTOFFS.items()
            },
        }
        for query, measures in values.items()
    }


def reference_mrr(
    judged: dict[str, int], ranking: dict[str, float], *, k: int, threshold: int
) -> float:
    """Reciprocal rank within the top k, ranked as trec_eval ranks.

    trec_eval keeps scores as C floats: rank by the single-precision score, then doc id,
    both descending.
    """
    ordered = sorted(
        ranking.items(), key=lambda item: (float(np.float32(item[1])), item[0]), reverse=True
    )
    for rank, (doc, _) in enumerate(ordered[:k], start=1):
        if judged.get(doc, -1) >= max(threshold, 0):
            return 1.0 / rank
    return 0.0


def assert_matches(result: EvaluationResult, expected: dict[str, dict[str, float]]) -> None:
    """Same evaluated queries, same per-query values, same means (1e-9)."""
    assert sorted(result.per_query.index) == sorted(expected)
    assert result.n_queries == len(expected)
    names = [str(m) for m in MEASURES]
    for query, values in expected.items():
        got = result.per_query.loc[query]
        for name in names:
            assert got[name] == pytest.approx(values[name], abs=1e-9), (query, name)
    for name in names:
        if expected:
            mean = float(np.mean([values[name] for values in expected.values()]))
            assert result.aggregate[name] == pytest.approx(mean, abs=1e-9), name
        else:
            assert np.isnan(result.aggregate[name])


def as_frame(run: Run) -> pd.DataFrame:
    """The run as a long DataFrame (empty rankings cannot be represented)."""
    rows = [(query, doc, score) for query, ranking in run.items() for doc, score in ranking.items()]
    return pd.DataFrame(rows, columns=["query_id", "doc_id", "score"])


def as_arrays(run: Run) -> RunArrays:
    """The run as dense arrays over DOC_IDS, columns in insertion order, -1 padding."""
    depth = max((len(ranking) for ranking in run.values()), default=0)
    positions = np.full((len(run), depth), -1, dtype=np.int64)
    scores = np.zeros((len(run), depth), dtype=np.float64)
    for row, ranking in enumerate(run.values()):
        positions[row, : len(ranking)] = [DOC_IDS.index(doc) for doc in ranking]
        scores[row, : len(ranking)] = list(ranking.values())
    return RunArrays(list(run), positions, scores)


# The explain phase traces coverage through NumPy and pandas, which takes minutes.
PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink)


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(collections(), st.booleans(), st.booleans())
@pytest.mark.slow
def test_every_measure_matches_pytrec_eval(
    collection: tuple[Qrels, Run, int], complete: bool, counting: bool
) -> None:
    qrels, run, threshold = collection
    evaluator = Evaluator(qrels, MEASURES, relevance_threshold=threshold)
    completed = {query: {} for query in qrels} | run if complete else run
    expected = pytrec_values(qrels, completed, threshold)
    frame_run = {query: ranking for query, ranking in run.items() if ranking}
    frame_completed = {query: {} for query in qrels} | frame_run if complete else frame_run
    corpus = evaluator.corpus_index(list(DOC_IDS))

    # evalkit ranks either by counting the documents ahead of each judged one or by
    # sorting whole rows, depending on which is cheaper; check both
    with patch("evalkit.metrics.ranking._counting_is_cheaper", return_value=counting):
        assert_matches(evaluator.evaluate(run, complete=complete), expected)
        assert_matches(
            evaluator.evaluate_arrays(as_arrays(run), corpus=corpus, complete=complete), expected
        )
        assert_matches(
            evaluator.evaluate(as_frame(run), complete=complete),
            pytrec_values(qrels, frame_completed, threshold),
        )


@settings(max_examples=50, deadline=None, database=None, phases=PHASES)
@given(collections(), st.data())
def test_query_ids_restrict_the_evaluation(
    collection: tuple[Qrels, Run, int], data: st.DataObject
) -> None:
    qrels, run, threshold = collection
    chosen = data.draw(st.lists(st.sampled_from((*QUERY_IDS, "unjudged")), unique=True))
    evaluator = Evaluator(qrels, MEASURES, relevance_threshold=threshold)
    restricted = {query: ranking for query, ranking in run.items() if query in chosen}
    expected = pytrec_values(qrels, restricted, threshold)
    assert_matches(evaluator.evaluate(run, query_ids=chosen), expected)

    completed = {query: {} for query in qrels if query in chosen} | restricted
    assert_matches(
        evaluator.evaluate(run, query_ids=chosen, complete=True),
        pytrec_values(qrels, completed, threshold),
    )


def test_reference_mrr_is_itself_right() -> None:
    """The mrr@k reference on a hand-checked ranking: ties go to the larger doc id."""
    judged = {"a": 1, "b": 0, "c": 2}
    ranking = {"a": 1.0, "b": 1.0, "c": 0.5, "z": 3.0}
    # order: z (3.0), b (1.0, 'b' > 'a'), a (1.0), c (0.5)
    assert reference_mrr(judged, ranking, k=2, threshold=1) == 0.0
    assert reference_mrr(judged, ranking, k=3, threshold=1) == pytest.approx(1 / 3)
    assert reference_mrr(judged, ranking, k=10, threshold=2) == pytest.approx(1 / 4)
    assert reference_mrr(judged, ranking, k=10, threshold=0) == pytest.approx(1 / 2)
