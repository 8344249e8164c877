"""evalkit.stats.compare: scoring stored runs and run files, and the one comparison report."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from evalkit.errors import ConfigError
from evalkit.goldset.model import Goldset
from evalkit.pipeline import evaluate_goldset
from evalkit.pipeline.compared_runs import resolve_run
from evalkit.records import Judgment, Query, QueryResult, ScoredDoc
from evalkit.records.requests import GoldsetRunRequest, PairedTestSettings
from evalkit.stats import (
    UNCUT_DEPTH,
    ComparisonReport,
    Decision,
    FailedQueriesError,
    compare_scored,
    compare_stored_runs,
    document_depth,
    overall_decision,
    score_run,
    score_stored_run,
)
from evalkit.store import Store
from evalkit.store.goldsets import judgments_frame
from evalkit.store.runs import get_run, query_metrics

N_QUERIES = 20
MISSED = {f"q{i:02d}" for i in range(0, N_QUERIES, 2)}
QUICK = PairedTestSettings(resamples=500)
PRECISE = PairedTestSettings(resamples=2000)
"""Queries on which the candidate retriever no longer finds the relevant documents."""


class FixedRetriever:
    """Ranks each query's two relevant documents first, unless the query is in ``miss``;
    queries in ``fail`` error out."""

    def __init__(self, *, miss: Sequence[str] = (), fail: Sequence[str] = ()) -> None:
        self.miss = set(miss)
        self.fail = set(fail)

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        results = []
        for query in queries:
            if query.id in self.fail:
                results.append(QueryResult(query.id, (), 1.0, error="timed out after 10 s"))
                continue
            noise = [f"{query.id}-noise{i}" for i in range(3)]
            relevant = [f"{query.id}-rel{i}" for i in range(2)]
            ranked = noise if query.id in self.miss else relevant + noise
            docs = tuple(ScoredDoc(d, 1.0 - i * 0.1, i + 1) for i, d in enumerate(ranked[:k]))
            results.append(QueryResult(query.id, docs, 1.0))
        return results

    def describe(self) -> dict[str, Any]:
        return {"kind": "fixed"}

    def index_fingerprint(self) -> str | None:
        return None

    def model_fingerprint(self) -> None:
        return None


def goldset() -> Goldset:
    ids = [f"q{i:02d}" for i in range(N_QUERIES)]
    queries = [Query(query_id, f"query {query_id}") for query_id in ids]
    judgments = [Judgment(q, f"{q}-rel{r}", 1) for q in ids for r in range(2)]
    return Goldset.build("twenty", queries, judgments)


def stored_run(store: Store, retriever: FixedRetriever) -> str:
    outcome = evaluate_goldset(
        store,
        goldset(),
        retriever,
        GoldsetRunRequest(k=10, measures=("ndcg@10", "recall@10", "map"), answers=False),
    )
    return outcome.run.run_id


def test_the_report_is_a_frozen_record_of_the_whole_comparison(store: Store) -> None:
    baseline = stored_run(store, FixedRetriever())
    candidate = stored_run(store, FixedRetriever(miss=MISSED))

    report = compare_stored_runs(
        store, baseline, candidate, ["ndcg@10", "recall@10"], PRECISE, worst=3
    )

    assert isinstance(report, ComparisonReport)
    assert [f.name for f in dataclasses.fields(report)] == [
        "baseline",
        "candidate",
        "comparison",
        "worst_queries",
        "worst",
        "baseline_run",
        "candidate_run",
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.worst = 5  # type: ignore[misc]
    assert (report.baseline, report.candidate) == (baseline, candidate)
    assert report.baseline_run.run_id == baseline
    assert report.candidate_run.run_id == candidate
    assert report.measures == ("ndcg@10", "recall@10")
    assert report.metric("recall@10").delta == pytest.approx(-0.5)
    assert report.metric("recall@10").n == N_QUERIES
    assert report.failed_in_baseline == report.failed_in_candidate == ()


def test_one_measure_may_be_named_alone(store: Store) -> None:
    """A measure given as a string was split into characters: `unknown measure 'n'`."""
    baseline = stored_run(store, FixedRetriever())
    candidate = stored_run(store, FixedRetriever(miss=MISSED))
    run = evaluate_goldset(
        store, goldset(), FixedRetriever(), GoldsetRunRequest(k=10, measures="mrr", answers=False)
    ).run

    report = compare_stored_runs(store, baseline, candidate, "recall@10", QUICK)

    assert report.measures == ("recall@10",)
    assert report.metric("recall@10").delta == pytest.approx(-0.5)
    assert run.spec.measures == ("mrr",)
    assert score_stored_run(store, run.run_id, "mrr").per_query.columns.tolist() == ["mrr"]


def test_decision_and_worst_queries_agree_with_the_stored_runs(store: Store) -> None:
    baseline = stored_run(store, FixedRetriever())
    candidate = stored_run(store, FixedRetriever(miss=MISSED))

    report = compare_stored_runs(
        store,
        baseline,
        candidate,
        ["ndcg@10", "map"],
        PairedTestSettings(resamples=2000, min_effect=0.01),
    )

    # Half the queries lose both relevant documents: a drop no interval can call noise.
    assert report.decision is Decision.REGRESSION
    assert report.decision is overall_decision(m.decision for m in report.metrics)
    assert [m.decision for m in report.metrics] == [Decision.REGRESSION, Decision.REGRESSION]
    stored = query_metrics(store, candidate)
    for measure in report.measures:
        drops = report.worst_for(measure)
        # Ten queries dropped by the same amount; the ten listed are those, by query id.
        assert [drop.query_id for drop in drops] == sorted(MISSED)
        for drop in drops:
            assert drop.measure == measure
            assert drop.baseline == pytest.approx(1.0)
            assert drop.candidate == pytest.approx(stored.loc[drop.query_id, measure]) == 0.0
            assert drop.delta == pytest.approx(-1.0)
            assert drop.lost_docs == (f"{drop.query_id}-rel0", f"{drop.query_id}-rel1")
            assert drop.gained_docs == ()
    assert report.worst_queries == report.worst_for("ndcg@10") + report.worst_for("map")

    data = report.to_dict()
    assert data["decision"] == "regression"
    assert (data["baseline"], data["candidate"]) == (baseline, candidate)
    assert data["metrics"]["ndcg@10"]["delta"] == pytest.approx(-0.5)
    first = data["worst_queries"]["map"][0]
    assert first == {
        "query_id": "q00",
        "baseline": pytest.approx(1.0),
        "candidate": 0.0,
        "delta": pytest.approx(-1.0),
        "lost": ["q00-rel0", "q00-rel1"],
        "gained": [],
    }


def test_worst_bounds_the_listed_queries_and_identical_runs_list_none(store: Store) -> None:
    baseline = stored_run(store, FixedRetriever())
    candidate = stored_run(store, FixedRetriever(miss=MISSED))
    again = stored_run(store, FixedRetriever())

    bounded = compare_stored_runs(store, baseline, candidate, ["ndcg@10"], QUICK, worst=4)
    assert [drop.query_id for drop in bounded.worst_queries] == sorted(MISSED)[:4]
    same = compare_stored_runs(store, baseline, again, ["ndcg@10"], QUICK)
    assert same.decision is Decision.PASS
    assert same.worst_queries == ()
    assert same.to_dict()["worst_queries"] == {"ndcg@10": []}


def test_document_changes_cover_every_shared_query_at_the_measure_depth(store: Store) -> None:
    baseline = stored_run(store, FixedRetriever(miss=MISSED))
    candidate = stored_run(store, FixedRetriever())

    report = compare_stored_runs(store, baseline, candidate, ["map"], QUICK)

    changes = report.document_changes("map")
    assert sorted(changes) == [f"q{i:02d}" for i in range(N_QUERIES)]
    for query_id, change in changes.items():
        gained = [f"{query_id}-rel0", f"{query_id}-rel1"] if query_id in MISSED else []
        assert change == {"lost": [], "gained": gained}
    assert document_depth("map") == UNCUT_DEPTH
    assert document_depth("ndcg@10") == 10
    assert report.document_changes("map", ["q01"]) == {"q01": {"lost": [], "gained": []}}


def test_failed_queries_are_refused_or_counted_as_zero_once_for_every_caller(
    store: Store,
) -> None:
    baseline = stored_run(store, FixedRetriever())
    partial = stored_run(store, FixedRetriever(fail=["q03"]))
    assert get_run(store, partial).status == "partial"

    with pytest.raises(FailedQueriesError) as refused:
        compare_stored_runs(store, baseline, partial, ["ndcg@10"], QUICK)
    assert refused.value.failed_in_candidate == ("q03",)

    report = compare_stored_runs(store, baseline, partial, ["ndcg@10"], QUICK, failed_as_zero=True)
    assert report.failed_in_candidate == ("q03",)
    assert report.metric("ndcg@10").n == N_QUERIES
    (drop,) = report.worst_for("ndcg@10")
    assert (drop.query_id, drop.candidate, drop.lost_docs) == ("q03", 0.0, ("q03-rel0", "q03-rel1"))
    assert report.to_dict()["failed_in_candidate"] == ["q03"]


def test_score_run_reads_a_trec_run_file_or_a_stored_run(store: Store, tmp_path: Path) -> None:
    baseline = stored_run(store, FixedRetriever())
    judgments = judgments_frame(store, goldset().version)
    path = tmp_path / "cand.run"
    lines = []
    for i in range(N_QUERIES):
        query_id = f"q{i:02d}"
        docs = [f"{query_id}-noise0"] if query_id in MISSED else [f"{query_id}-rel0"]
        lines += [
            f"{query_id} Q0 {doc} {rank} {1.0 / rank} file\n" for rank, doc in enumerate(docs, 1)
        ]
    path.write_text("".join(lines))

    from_file = score_run(store, resolve_run(store, str(path)), ["recall@10"], judgments=judgments)
    assert from_file.run_id is None
    assert from_file.reference == str(path)
    assert from_file.per_query.loc["q01", "recall@10"] == pytest.approx(0.5)
    from_store = score_run(store, baseline, ["recall@10"])
    stored = score_stored_run(store, baseline, ["recall@10"])
    assert from_store.run_id == baseline
    pd.testing.assert_frame_equal(from_store.per_query, stored.per_query)

    report = compare_scored(from_store, from_file, ["recall@10"], QUICK)
    assert report.candidate == str(path)
    assert report.metric("recall@10").delta == pytest.approx(-0.75)

    with pytest.raises(ConfigError, match="give qrels or goldset"):
        score_run(store, resolve_run(store, str(path)), ["recall@10"])
    with pytest.raises(ConfigError, match="neither a run file nor a stored run"):
        resolve_run(None, "20261121T101500-1a2b3c")
