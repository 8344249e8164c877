"""Measure names, the registry, and the evaluator on small hand-computed tables."""

from __future__ import annotations

import dataclasses
import json
import math
from math import log2

import numpy as np
import pandas as pd
import pytest

import evalkit.metrics as metrics
from evalkit.errors import ConfigError, InputError, MeasureError
from evalkit.metrics import (
    MEASURES,
    Evaluator,
    Measure,
    RunArrays,
    parse_measure,
    parse_measures,
)
from evalkit.records import Judgment

CANONICAL = [
    "recall@10",
    "precision@10",
    "ndcg@10",
    "ndcg",
    "mrr",
    "mrr@10",
    "map",
    "map@100",
    "hit_rate@10",
    "r_precision",
]


# --- names -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", CANONICAL)
def test_canonical_names_round_trip(name: str) -> None:
    measure = parse_measure(name)
    assert str(measure) == name
    assert parse_measure(str(measure)) == measure


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("nDCG@10", "ndcg@10"),
        ("P@10", "precision@10"),
        ("P_10", "precision@10"),
        ("p.5", "precision@5"),
        ("recall_10", "recall@10"),
        ("R@100", "recall@100"),
        ("ndcg_cut_10", "ndcg@10"),
        ("ndcg_cut.20", "ndcg@20"),
        ("recip_rank", "mrr"),
        ("RR@10", "mrr@10"),
        ("MRR", "mrr"),
        ("success@10", "hit_rate@10"),
        ("success_10", "hit_rate@10"),
        ("hit@10", "hit_rate@10"),
        ("Rprec", "r_precision"),
        ("R-precision", "r_precision"),
        ("map_cut_100", "map@100"),
        ("AP", "map"),
        ("  ndcg@010 ", "ndcg@10"),
    ],
)
def test_aliases_print_canonically(alias: str, canonical: str) -> None:
    assert str(parse_measure(alias)) == canonical


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus", "known measures: recall@k, precision@k, ndcg"),
        ("bogus@10", "unknown measure 'bogus@10'"),
        ("precision", "needs a cutoff"),
        ("hit_rate", "needs a cutoff"),
        ("r_precision@10", "takes no cutoff"),
        ("ndcg@0", "positive integer"),
        ("ndcg@x", "positive integer"),
        ("ndcg@-3", "positive integer"),
        ("ndcg_cut", "needs a cutoff"),
        ("", "unknown measure"),
    ],
)
def test_bad_names_say_what_exists(text: str, message: str) -> None:
    with pytest.raises(MeasureError, match=message):
        parse_measure(text)


def test_measure_errors_are_input_errors() -> None:
    with pytest.raises(InputError):
        parse_measure(3)  # type: ignore[arg-type]


def test_measures_are_frozen_hashable_values() -> None:
    measure = parse_measure("ndcg@10")
    assert measure == Measure("ndcg", 10)
    assert hash(measure) == hash(Measure("ndcg", 10))
    assert measure.cutoff == 10
    assert parse_measure("map").cutoff is None
    assert {measure: 1}[parse_measure("NDCG_CUT_10")] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        measure.cutoff = 5  # type: ignore[misc]
    with pytest.raises(MeasureError):
        Measure("ndcg", 0)
    with pytest.raises(MeasureError):
        Measure("precision")
    with pytest.raises(MeasureError):
        Measure("ndcg", True)


def test_parse_measures_keeps_order_and_drops_duplicates() -> None:
    parsed = parse_measures(["P@10", "ndcg@10", "precision@10", parse_measure("mrr")])
    assert [str(m) for m in parsed] == ["precision@10", "ndcg@10", "mrr"]
    assert parse_measures([]) == ()
    # One measure named alone is that measure, as the request records and the plugin take it.
    assert [str(m) for m in parse_measures("ndcg@10")] == ["ndcg@10"]


@pytest.mark.parametrize(
    ("name", "trec_eval"),
    [
        ("precision@5", "P_5"),
        ("recall@100", "recall_100"),
        ("ndcg@10", "ndcg_cut_10"),
        ("ndcg", "ndcg"),
        ("mrr", "recip_rank"),
        ("mrr@10", None),
        ("map", "map"),
        ("map@100", "map_cut_100"),
        ("hit_rate@10", "success_10"),
        ("r_precision", "Rprec"),
    ],
)
def test_trec_eval_names(name: str, trec_eval: str | None) -> None:
    assert parse_measure(name).trec_eval_name == trec_eval


def test_registry_lists_every_measure_once() -> None:
    assert set(MEASURES) == {
        "recall",
        "precision",
        "ndcg",
        "ndcg_judged",
        "mrr",
        "map",
        "hit_rate",
        "r_precision",
    }
    for name, definition in MEASURES.items():
        assert definition.name == name
        assert callable(definition.kernel)
        assert definition.description


def test_public_surface() -> None:
    for name in metrics.__all__:
        assert hasattr(metrics, name), name
    for required in (
        "Measure",
        "parse_measure",
        "parse_measures",
        "Evaluator",
        "EvaluationResult",
        "read_qrels",
        "read_run",
        "RunArrays",
    ):
        assert required in metrics.__all__


# --- the evaluator on hand-computed tables --------------------------------------------

QRELS = pd.DataFrame(
    [
        ("q1", "a", 1),
        ("q1", "b", 0),
        ("q1", "c", 2),
        ("q2", "x", 3),
        ("q3", "n", 0),
    ],
    columns=["query_id", "doc_id", "relevance"],
)

# q1: "z" scores highest; a, b and c tie, and trec_eval breaks ties by doc id descending,
# so the ranking is z, c, b, a (the rank column says otherwise and is ignored).
# q3 has no relevant document. "other" is not judged and is ignored.
RUN = pd.DataFrame(
    [
        ("q1", "a", 1.0, 1),
        ("q1", "b", 1.0, 2),
        ("q1", "c", 1.0, 3),
        ("q1", "z", 2.0, 4),
        ("q3", "n", 5.0, 1),
        ("other", "x", 1.0, 1),
    ],
    columns=["query_id", "doc_id", "score", "rank"],
)
NAMES = [
    "mrr",
    "precision@2",
    "recall@2",
    "map",
    "hit_rate@1",
    "r_precision",
    "ndcg@2",
    "ndcg",
    "mrr@1",
]
Q1 = {
    "mrr": 1 / 2,
    "precision@2": 1 / 2,
    "recall@2": 1 / 2,
    "map": (1 / 2 + 2 / 4) / 2,
    "hit_rate@1": 0.0,
    "r_precision": 1 / 2,
    "ndcg@2": (2 / log2(3)) / (2 + 1 / log2(3)),
    "ndcg": (2 / log2(3) + 1 / log2(5)) / (2 + 1 / log2(3)),
    "mrr@1": 0.0,
}
ZERO = dict.fromkeys(NAMES, 0.0)


def test_ties_break_by_doc_id_descending_and_rank_column_is_ignored() -> None:
    result = Evaluator(QRELS, NAMES).evaluate(RUN)
    assert list(result.per_query.index) == ["q1", "q3"]
    assert result.n_queries == 2
    assert result.per_query.loc["q1"].to_dict() == pytest.approx(Q1)
    assert result.per_query.loc["q3"].to_dict() == pytest.approx(ZERO)
    assert result.aggregate == pytest.approx({name: Q1[name] / 2 for name in NAMES})
    assert list(result.per_query.columns) == NAMES
    assert result.per_query.index.name == "query_id"


def test_doc_ids_compare_as_strings_not_numbers() -> None:
    qrels = pd.DataFrame([("q", "9", 1)], columns=["query_id", "doc_id", "relevance"])
    run = pd.DataFrame([("q", "10", 1.0), ("q", "9", 1.0)], columns=["query_id", "doc_id", "score"])
    # "9" > "10" as strings, so "9" ranks first
    assert Evaluator(qrels, ["mrr"]).evaluate(run).aggregate["mrr"] == 1.0


def test_scores_are_compared_at_double_precision_as_trec_eval_does() -> None:
    """trec_eval 10.0 stores scores as doubles: scores that differ beyond a float's 7 digits
    (or over its range) are not tied; only equal doubles are, which "b" > "a" wins."""
    qrels = pd.DataFrame([("q", "a", 1)], columns=["query_id", "doc_id", "relevance"])
    run = {"q": {"b": 1.0, "a": 1.0 + 1e-12}}
    evaluator = Evaluator(qrels, ["mrr"])
    assert evaluator.evaluate(run).aggregate["mrr"] == 1.0
    corpus = evaluator.corpus_index(["a", "b"])
    arrays = RunArrays(["q"], np.array([[1, 0]]), np.array([[1.0, 1.0 + 1e-12]]))
    assert evaluator.evaluate_arrays(arrays, corpus=corpus).aggregate["mrr"] == 1.0
    for scores in ({"a": 1e301, "b": 1e300}, {"a": 1e-49, "b": 1e-50, "c": 0.0}):
        assert evaluator.evaluate({"q": scores}).aggregate["mrr"] == 1.0
    assert evaluator.evaluate({"q": {"a": 1e308, "b": np.inf}}).aggregate["mrr"] == 0.5
    assert evaluator.evaluate({"q": {"a": 0.5, "b": 0.5}}).aggregate["mrr"] == 0.5


def test_leading_zeros_are_kept() -> None:
    qrels = pd.DataFrame([("01", "007", 1)], columns=["query_id", "doc_id", "relevance"])
    run = {"01": {"7": 2.0, "007": 1.0}}
    result = Evaluator(qrels, ["mrr"]).evaluate(run)
    assert list(result.per_query.index) == ["01"]
    assert result.aggregate["mrr"] == 0.5


def test_complete_scores_missing_queries_as_empty_rankings() -> None:
    result = Evaluator(QRELS, NAMES).evaluate(RUN, complete=True)
    assert list(result.per_query.index) == ["q1", "q2", "q3"]
    assert result.per_query.loc["q2"].to_dict() == pytest.approx(ZERO)
    assert result.aggregate == pytest.approx({name: Q1[name] / 3 for name in NAMES})
    assert result.complete is True


def test_query_ids_restrict_which_queries_count() -> None:
    evaluator = Evaluator(QRELS, NAMES)
    only_q3 = evaluator.evaluate(RUN, query_ids=["q3", "unknown"])
    assert list(only_q3.per_query.index) == ["q3"]
    both = evaluator.evaluate(RUN, query_ids=["q1", "q2"], complete=True)
    assert list(both.per_query.index) == ["q1", "q2"]
    assert both.aggregate["mrr"] == pytest.approx(0.25)
    nothing = evaluator.evaluate(RUN, query_ids=[])
    assert nothing.n_queries == 0
    with pytest.raises(InputError, match="collection of query ids"):
        evaluator.evaluate(RUN, query_ids="q1")


def test_relevance_threshold_two() -> None:
    result = Evaluator(QRELS, NAMES, relevance_threshold=2).evaluate(RUN)
    # only c (grade 2) counts for q1: it sits at rank 2; q3 and q2 unchanged
    q1 = result.per_query.loc["q1"]
    assert q1["mrr"] == pytest.approx(1 / 2)
    assert q1["recall@2"] == pytest.approx(1.0)
    assert q1["map"] == pytest.approx(1 / 2)
    assert q1["r_precision"] == 0.0
    assert q1["ndcg"] == pytest.approx(Q1["ndcg"])
    assert result.relevance_threshold == 2


def test_empty_run() -> None:
    empty = pd.DataFrame(columns=["query_id", "doc_id", "score"])
    evaluator = Evaluator(QRELS, NAMES)
    result = evaluator.evaluate(empty)
    assert result.n_queries == 0
    assert result.per_query.empty
    assert all(math.isnan(value) for value in result.aggregate.values())
    assert result.to_dict()["aggregate"] == dict.fromkeys(NAMES)
    completed = evaluator.evaluate(empty, complete=True)
    assert completed.n_queries == 3
    assert completed.aggregate == pytest.approx(ZERO)
    assert evaluator.evaluate({}).n_queries == 0


def test_an_empty_ranking_in_a_dict_counts_as_run() -> None:
    result = Evaluator(QRELS, NAMES).evaluate({"q2": {}})
    assert list(result.per_query.index) == ["q2"]
    assert result.aggregate == pytest.approx(ZERO)


def test_every_input_form_gives_the_same_result() -> None:
    judgments = [Judgment(q, d, int(r)) for q, d, r in QRELS.itertuples(index=False)]
    as_dict: dict[str, dict[str, float]] = {}
    for q, d, s, _ in RUN.itertuples(index=False):
        as_dict.setdefault(q, {})[d] = s
    qrels_dict: dict[str, dict[str, int]] = {}
    for q, d, r in QRELS.itertuples(index=False):
        qrels_dict.setdefault(q, {})[d] = int(r)
    expected = Evaluator(QRELS, NAMES).evaluate(RUN).per_query
    for judged in (judgments, qrels_dict, QRELS.astype({"relevance": float})):
        evaluator = Evaluator(judged, NAMES)
        pd.testing.assert_frame_equal(evaluator.evaluate(RUN).per_query, expected)
        pd.testing.assert_frame_equal(evaluator.evaluate(as_dict).per_query, expected)
        arrow_run = RUN.astype({"query_id": "string[pyarrow]", "doc_id": "string[pyarrow]"})
        pd.testing.assert_frame_equal(evaluator.evaluate(arrow_run).per_query, expected)


def test_dense_arrays_give_the_same_result() -> None:
    evaluator = Evaluator(QRELS, NAMES)
    corpus = evaluator.corpus_index(["a", "b", "c", "z", "n", "x", "unused"])
    arrays = RunArrays(
        query_ids=["q3", "q1", "other"],
        doc_indices=np.array([[4, -1, -1, -1], [3, 0, 2, 1], [5, -1, -1, -1]]),
        scores=np.array([[5.0, 0, 0, 0], [2.0, 1.0, 1.0, 1.0], [1.0, 0, 0, 0]]),
    )
    result = evaluator.evaluate_arrays(arrays, corpus=corpus)
    pd.testing.assert_frame_equal(result.per_query, evaluator.evaluate(RUN).per_query)
    float32 = dataclasses.replace(arrays, scores=arrays.scores.astype(np.float32))
    pd.testing.assert_frame_equal(
        evaluator.evaluate_arrays(float32, corpus=corpus, complete=True).per_query,
        evaluator.evaluate(RUN, complete=True).per_query,
    )


def test_arrays_with_no_columns_and_ragged_runs() -> None:
    evaluator = Evaluator(QRELS, NAMES)
    corpus = evaluator.corpus_index(["a", "b", "c", "z", "n", "x"])
    empty = RunArrays(["q1", "q2"], np.zeros((2, 0), dtype=np.int64), np.zeros((2, 0)))
    result = evaluator.evaluate_arrays(empty, corpus=corpus)
    assert list(result.per_query.index) == ["q1", "q2"]
    assert result.aggregate == pytest.approx(ZERO)

    # one long ranking among short ones: ranked in chunks of similar length
    long_run = {f"u{i:03d}": float(i) for i in range(1, 41)} | {"c": 0.5, "a": -1.0}
    ragged = {"q1": long_run, "q2": {"x": 1.0}, "q3": {"n": 1.0, "m": 2.0}}
    per_query = evaluator.evaluate(ragged).per_query
    assert per_query.loc["q1", "mrr"] == pytest.approx(1 / 41)
    assert per_query.loc["q1", "map"] == pytest.approx((1 / 41 + 2 / 42) / 2)
    assert per_query.loc["q2", "mrr"] == 1.0
    frame = pd.DataFrame(
        [(q, d, s) for q, ranking in ragged.items() for d, s in ranking.items()],
        columns=["query_id", "doc_id", "score"],
    ).sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(evaluator.evaluate(frame).per_query, per_query)


def test_unjudged_documents_keep_their_rank() -> None:
    qrels = pd.DataFrame([("q", "rel", 1)], columns=["query_id", "doc_id", "relevance"])
    run = {"q": {"u1": 3.0, "u2": 2.0, "rel": 1.0}}
    result = Evaluator(qrels, ["mrr", "precision@3", "ndcg"]).evaluate(run)
    assert result.aggregate == pytest.approx(
        {"mrr": 1 / 3, "precision@3": 1 / 3, "ndcg": 1 / log2(4)}
    )


def test_to_dict_shape_and_json() -> None:
    result = Evaluator(QRELS, ["mrr", "map"]).evaluate(RUN)
    shaped = result.to_dict()
    assert set(shaped) == {"aggregate", "per_query"}
    assert shaped["aggregate"] == pytest.approx({"mrr": 0.25, "map": 0.25})
    assert shaped["per_query"]["q1"] == pytest.approx({"mrr": 0.5, "map": 0.5})
    assert shaped["per_query"]["q3"] == {"mrr": 0.0, "map": 0.0}
    json.dumps(shaped)
    assert result.measures == (parse_measure("mrr"), parse_measure("map"))


# --- errors -------------------------------------------------------------------------------


def test_a_document_listed_twice_for_a_query_is_rejected() -> None:
    run = pd.concat([RUN, RUN.iloc[[0]].assign(score=9.0)])
    with pytest.raises(InputError, match="'a' appears more than once for query 'q1'"):
        Evaluator(QRELS, NAMES).evaluate(run)
    evaluator = Evaluator(QRELS, NAMES)
    corpus = evaluator.corpus_index(["a", "b"])
    twice = RunArrays(["q1"], np.array([[0, 1, 0]]), np.array([[1.0, 2.0, 3.0]]))
    with pytest.raises(InputError, match="'a' appears more than once"):
        evaluator.evaluate_arrays(twice, corpus=corpus)


def test_a_document_judged_twice_is_rejected() -> None:
    qrels = pd.concat([QRELS, QRELS.iloc[[2]]])
    with pytest.raises(InputError, match="'c' is judged more than once for query 'q1'"):
        Evaluator(qrels, NAMES)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (RUN.drop(columns="score"), "missing column"),
        (RUN.assign(score=np.nan), "score is missing or NaN for query 'q1', document 'a'"),
        (RUN.assign(score="high"), "score must be numeric"),
        (RUN.assign(doc_id=[1.5, 2.5, 3.5, 4.5, 5.5, 6.5]), "doc_id must hold strings"),
        (RUN.assign(query_id=None), "query_id has 6 missing"),
    ],
)
def test_malformed_runs(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(InputError, match=message):
        Evaluator(QRELS, NAMES).evaluate(frame)


def test_malformed_dict_runs() -> None:
    evaluator = Evaluator(QRELS, NAMES)
    with pytest.raises(InputError, match="every score must be a number"):
        evaluator.evaluate({"q1": {"a": "high"}})  # type: ignore[dict-item]
    with pytest.raises(InputError, match="score is NaN for query 'q1', document 'b'"):
        evaluator.evaluate({"q1": {"a": 1.0, "b": math.nan}})
    with pytest.raises(InputError, match="doc_id"):
        evaluator.evaluate({"q1": ["a", "b"]})  # type: ignore[dict-item]
    with pytest.raises(InputError, match="a run must be"):
        evaluator.evaluate([("q1", "a", 1.0)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (QRELS.assign(relevance=1.5), "integer grade, got 1.5"),
        (QRELS.assign(relevance="yes"), "integer grade, got 'yes'"),
        (QRELS.assign(relevance=True), "booleans"),
        (QRELS.rename(columns={"relevance": "rel"}), "missing column"),
    ],
)
def test_malformed_judgments(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(InputError, match=message):
        Evaluator(frame, NAMES)


def test_integer_ids_are_read_as_decimal_strings() -> None:
    qrels = pd.DataFrame({"query_id": [1], "doc_id": [7], "relevance": [1]})
    result = Evaluator(qrels, ["mrr"]).evaluate({"1": {"7": 1.0}})
    assert result.aggregate["mrr"] == 1.0


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match="relevance_threshold"):
        Evaluator(QRELS, NAMES, relevance_threshold=-1)
    with pytest.raises(ConfigError, match="relevance_threshold"):
        Evaluator(QRELS, NAMES, relevance_threshold=1.5)  # type: ignore[arg-type]
    with pytest.raises(MeasureError, match="no measures"):
        Evaluator(QRELS, [])
    with pytest.raises(MeasureError, match="unknown measure"):
        Evaluator(QRELS, ["ndcg@10", "nope"])


def test_bad_arrays() -> None:
    evaluator = Evaluator(QRELS, NAMES)
    corpus = evaluator.corpus_index(["a", "b", "c"])
    with pytest.raises(InputError, match="outside the corpus"):
        evaluator.evaluate_arrays(
            RunArrays(["q1"], np.array([[0, 3]]), np.ones((1, 2))), corpus=corpus
        )
    with pytest.raises(InputError, match="same shape"):
        evaluator.evaluate_arrays(
            RunArrays(["q1"], np.array([[0, 1]]), np.ones((1, 3))), corpus=corpus
        )
    with pytest.raises(InputError, match="2 entries but doc_indices has 1 rows"):
        evaluator.evaluate_arrays(
            RunArrays(["q1", "q2"], np.array([[0]]), np.ones((1, 1))), corpus=corpus
        )
    with pytest.raises(InputError, match="'q1' has more than one row"):
        evaluator.evaluate_arrays(
            RunArrays(["q1", "q1"], np.array([[0], [1]]), np.ones((2, 1))), corpus=corpus
        )
    with pytest.raises(InputError, match="score is NaN"):
        evaluator.evaluate_arrays(
            RunArrays(["q1"], np.array([[0, 1]]), np.array([[1.0, np.nan]])), corpus=corpus
        )
    nan_in_empty_slot = RunArrays(["q1"], np.array([[2, -1]]), np.array([[1.0, np.nan]]))
    assert evaluator.evaluate_arrays(nan_in_empty_slot, corpus=corpus).aggregate["mrr"] == 1.0
    with pytest.raises(InputError, match="another Evaluator"):
        Evaluator(QRELS, NAMES).evaluate_arrays(nan_in_empty_slot, corpus=corpus)
    with pytest.raises(InputError, match="appears more than once in the corpus"):
        evaluator.corpus_index(["a", "b", "a"])
