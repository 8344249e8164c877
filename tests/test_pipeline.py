"""The pipeline: replay, score, store; failed queries make a partial run, crashes a failed one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from evalkit.embedding import ModelFingerprint
from evalkit.errors import ConfigError
from evalkit.goldset.model import Goldset
from evalkit.pipeline import default_measures, evaluate_goldset
from evalkit.records import Judgment, Query, QueryResult, ScoredDoc
from evalkit.records.requests import GoldsetRunRequest
from evalkit.store import Store
from evalkit.store import runs as store_runs
from evalkit.store.runs import list_runs, query_metrics, run_queries, run_results


class ListRetriever:
    """Returns fixed rankings; fails the queries named in ``fail`` and raises for ``explode``."""

    def __init__(
        self,
        rankings: dict[str, list[str]],
        *,
        fail: Sequence[str] = (),
        explode: Sequence[str] = (),
    ) -> None:
        self.rankings = rankings
        self.fail = set(fail)
        self.explode = set(explode)
        self.batches: list[list[str]] = []

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        self.batches.append([q.id for q in queries])
        if self.explode & {q.id for q in queries}:
            raise ConnectionError("connection refused")
        results = []
        for query in queries:
            if query.id in self.fail:
                results.append(QueryResult(query.id, (), 5.0, error="timed out after 10 s"))
                continue
            ranked = self.rankings.get(query.id, [])[:k]
            docs = tuple(ScoredDoc(d, 1.0 - i * 0.01, i + 1) for i, d in enumerate(ranked))
            results.append(QueryResult(query.id, docs, 1.0))
        return results

    def describe(self) -> dict[str, Any]:
        return {"kind": "list", "collection": "fixed"}

    def index_fingerprint(self) -> str | None:
        return "idx-1"

    def model_fingerprint(self) -> ModelFingerprint | None:
        return ModelFingerprint("fake-model", 3, "abc")


def goldset() -> Goldset:
    queries = [Query(f"q{i}", f"query {i}") for i in range(1, 5)]
    judgments = [
        Judgment("q1", "a", 1),
        Judgment("q2", "b", 1),
        Judgment("q3", "c", 1),
        Judgment("q4", "d", 1),
        Judgment("q4", "e", 1),
    ]
    return Goldset.build("four", queries, judgments)


RANKINGS = {
    "q1": ["a", "x"],  # hit at 1
    "q2": ["x", "b"],  # hit at 2
    "q3": ["x", "y"],  # miss
    "q4": ["d", "x", "e"],  # both relevant, ranks 1 and 3
}


def test_complete_run_scores_and_records_reproducibility(store: Store) -> None:
    outcome = evaluate_goldset(
        store,
        goldset(),
        ListRetriever(RANKINGS),
        GoldsetRunRequest(k=10, measures=("mrr", "recall@2")),
    )
    run = outcome.run
    assert run.status == "complete"
    assert run.n_evaluated == 4
    assert run.aggregates["mrr"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert run.aggregates["recall@2"] == pytest.approx((1 + 1 + 0 + 0.5) / 4)
    assert run.spec.goldset_version == goldset().version
    assert run.spec.model_fingerprint == "abc"
    assert run.spec.index_fingerprint == "idx-1"
    assert run.spec.retriever_config == {"kind": "list", "collection": "fixed"}
    assert query_metrics(store, run.run_id).loc["q2", "mrr"] == pytest.approx(0.5)


class _Filtering(ListRetriever):
    def describe(self) -> dict[str, Any]:
        return {"kind": "list", "collection": "fixed", "where_key": "tenant"}


def test_tenanted_queries_replayed_without_a_tenant_filter_are_said_to_be(store: Store) -> None:
    """The run mixed every tenant's documents into each query's results without a word,
    where a traffic replay refuses to."""
    plain = goldset()
    tenanted = Goldset.build(
        "tenanted",
        [replace(query, tenant="acme" if query.id < "q3" else "globex") for query in plain.queries],
        plain.judgments,
    )
    request = GoldsetRunRequest(k=10, measures=("mrr",))
    mixed = evaluate_goldset(store, tenanted, ListRetriever(RANKINGS), request)
    assert mixed.unfiltered_tenants == (4, 2)
    assert mixed.unfiltered_tenants_note == (
        "4 of the goldset's queries belong to 2 tenant(s), and the retriever does not filter "
        "by tenant: each searched every tenant's documents (--where-key KEY, the metadata key "
        "holding the tenant, restricts each query to its own)"
    )
    assert (
        evaluate_goldset(store, tenanted, _Filtering(RANKINGS), request).unfiltered_tenants_note
        is None
    )
    assert (
        evaluate_goldset(store, plain, ListRetriever(RANKINGS), request).unfiltered_tenants_note
        is None
    )


class OnlyRetrieve:
    """A retriever of one's own with nothing but ``retrieve``, as the factory path takes."""

    def __init__(self, rankings: dict[str, list[str]]) -> None:
        self.inner = ListRetriever(rankings)

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        return self.inner.retrieve(queries, k)


def test_a_retriever_with_only_retrieve_is_replayed_and_named_by_its_class(
    store: Store,
) -> None:
    """evaluate_goldset called describe() on it: AttributeError, while `--retriever
    module:factory` returning the same object worked."""
    outcome = evaluate_goldset(
        store, goldset(), OnlyRetrieve(RANKINGS), GoldsetRunRequest(k=10, measures=("mrr",))
    )
    run = outcome.run
    assert run.status == "complete"
    assert run.aggregates["mrr"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert run.spec.retriever_kind == "OnlyRetrieve"
    assert run.spec.retriever_config == {"class": f"{__name__}.OnlyRetrieve"}
    assert (run.spec.model_fingerprint, run.spec.index_fingerprint) == (None, None)


def test_documents_returned_twice_count_once_at_their_best_rank(store: Store) -> None:
    # Chunk-level retrievers return one document per chunk; q2's "b" comes back three times.
    repeated = {**RANKINGS, "q2": ["x", "b", "x", "b", "b"]}
    outcome = evaluate_goldset(
        store,
        goldset(),
        ListRetriever(repeated),
        GoldsetRunRequest(k=10, measures=("mrr", "precision@5")),
    )
    run = outcome.run
    assert (run.status, run.n_duplicates) == ("complete", 3)
    assert run.to_dict()["n_duplicates"] == 3
    assert run.aggregates["mrr"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert query_metrics(store, run.run_id).loc["q2", "precision@5"] == pytest.approx(1 / 5)
    replayed = run_queries(store, run.run_id).set_index("query_id")
    assert replayed.loc["q2", "n_duplicates"] == 3
    assert replayed.loc["q2", "n_results"] == 2
    assert run_results(store, run.run_id).query("query_id == 'q2'")["rank"].tolist() == [1, 2]


class _Overflowing(ListRetriever):
    """Ignores k (a hook that forgot to cut), and gives q3 a NaN score."""

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        results = []
        for query in queries:
            ranked = [f"n{i}" for i in range(k + 20)] + self.rankings.get(query.id, [])
            score = float("nan") if query.id == "q3" else 1.0
            docs = tuple(ScoredDoc(d, score - i * 0.01, i + 1) for i, d in enumerate(ranked))
            results.append(QueryResult(query.id, docs, 1.0))
        return results


def test_results_past_k_are_cut_and_a_non_finite_score_fails_its_query(store: Store) -> None:
    """retrieve() returns at most k documents (the protocol): more were stored and scored,
    recall@100 of a k=10 run counting documents at rank 30. A NaN score failed the whole
    run with a store error; it is that query's error."""
    outcome = evaluate_goldset(
        store,
        goldset(),
        _Overflowing(RANKINGS),
        GoldsetRunRequest(k=10, measures=("recall@10",)),
    )
    run = outcome.run
    assert run.status == "partial"
    assert run.aggregates["recall@10"] == 0.0  # the relevant ones came after rank 10
    stored = run_results(store, run.run_id)
    assert stored.groupby("query_id").size().max() == 10
    replayed = run_queries(store, run.run_id).set_index("query_id")
    assert (
        "document 'n0' has score nan; scores must be finite numbers" in replayed.loc["q3", "error"]
    )


class _Unscored(ListRetriever):
    """Gives q3's documents no score (None), as a hook that forgot to copy it might."""

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        return [
            QueryResult(r.query_id, tuple(ScoredDoc(d.doc_id, None, d.rank) for d in r.docs), 1.0)  # type: ignore[arg-type]
            if r.query_id == "q3"
            else r
            for r in super().retrieve(queries, k)
        ]


def test_a_document_without_a_score_fails_its_query_saying_so(store: Store) -> None:
    """A None score failed every query of its batch with `TypeError: must be real number,
    not NoneType`; NaN got a message saying what was wrong."""
    outcome = evaluate_goldset(
        store, goldset(), _Unscored(RANKINGS), GoldsetRunRequest(k=10, measures=("mrr",))
    )
    assert (outcome.run.status, outcome.run.n_failed) == ("partial", 1)
    replayed = run_queries(store, outcome.run.run_id).set_index("query_id")
    assert replayed.loc["q3", "error"] == (
        "MalformedResults: document 'x' has score None; scores must be finite numbers"
    )


class _Overlarge(ListRetriever):
    """Gives q3's documents an integer score too large for a float."""

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        return [
            QueryResult(r.query_id, tuple(ScoredDoc(d.doc_id, 10**400, d.rank) for d in r.docs), 0)
            if r.query_id == "q3"
            else r
            for r in super().retrieve(queries, k)
        ]


def test_a_score_too_large_for_a_float_fails_its_query_saying_so(store: Store) -> None:
    """It raised OverflowError out of the replay: the run failed whole."""
    outcome = evaluate_goldset(
        store, goldset(), _Overlarge(RANKINGS), GoldsetRunRequest(k=10, measures=("mrr",))
    )
    assert (outcome.run.status, outcome.run.n_failed) == ("partial", 1)
    replayed = run_queries(store, outcome.run.run_id).set_index("query_id")
    assert replayed.loc["q3", "error"] == (
        "MalformedResults: document 'x' has score an integer too large for a 64-bit float; "
        "scores must be finite numbers"
    )


class _Undescribed(ListRetriever):
    """Its describe() builds the description and forgets to return it."""

    def describe(self) -> dict[str, Any]:
        self.description = {"kind": "undescribed"}
        return None  # type: ignore[return-value]


def test_a_describe_that_returns_no_dict_is_named(store: Store) -> None:
    """describe() returning None raised a bare `TypeError: 'NoneType' object is not
    iterable`, naming neither describe() nor what it must return."""
    retriever = _Undescribed(RANKINGS)
    with pytest.raises(
        ConfigError, match=r"describe\(\) returned None; describe\(\) must return a dict"
    ):
        evaluate_goldset(store, goldset(), retriever, GoldsetRunRequest(k=10))
    assert retriever.batches == []
    assert list_runs(store) == []


class _FailingClose(ListRetriever):
    def close(self) -> None:
        raise OSError("socket already closed")


def test_a_close_that_raises_after_the_run_is_stored_is_logged_and_the_outcome_returned(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """close_retriever=True closes after the run is stored complete: a close() that raised
    propagated and lost the outcome, as a factory's retriever's close() does not on the CLI."""
    outcome = evaluate_goldset(
        store,
        goldset(),
        _FailingClose(RANKINGS),
        GoldsetRunRequest(k=10, measures=("mrr",)),
        close_retriever=True,
    )
    assert outcome.run.status == "complete"
    assert [r.status for r in list_runs(store)] == ["complete"]
    assert "closing the retriever (test_pipeline._FailingClose) raised OSError: socket already" in (
        caplog.text
    )


def test_failed_queries_make_a_partial_run_left_out_of_averages(store: Store) -> None:
    outcome = evaluate_goldset(
        store,
        goldset(),
        ListRetriever(RANKINGS, fail=["q3"]),
        GoldsetRunRequest(k=10, measures=("mrr",)),
    )
    run = outcome.run
    assert run.status == "partial"
    assert run.n_failed == 1
    assert run.n_evaluated == 3
    assert run.aggregates["mrr"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert "timed out" in (run.error or "")
    replayed = run_queries(store, run.run_id).set_index("query_id")
    assert replayed.loc["q3", "error"] == "timed out after 10 s"
    assert "q3" not in query_metrics(store, run.run_id).index


def test_a_batch_that_raises_fails_its_queries_not_the_run(store: Store) -> None:
    retriever = ListRetriever(RANKINGS, explode=["q1"])
    outcome = evaluate_goldset(
        store, goldset(), retriever, GoldsetRunRequest(k=10, measures=("mrr",), batch_size=2)
    )
    assert retriever.batches == [["q1", "q2"], ["q3", "q4"]]
    assert outcome.run.status == "partial"
    assert outcome.run.n_failed == 2
    errors = run_queries(store, outcome.run.run_id).set_index("query_id")["error"]
    assert errors["q1"] == "ConnectionError: connection refused"


def test_a_retriever_down_for_every_query_fails_the_run(store: Store) -> None:
    retriever = ListRetriever(RANKINGS, explode=["q1", "q3"])
    outcome = evaluate_goldset(store, goldset(), retriever, GoldsetRunRequest(k=10, batch_size=2))
    assert outcome.run.status == "failed"
    assert dict(outcome.run.aggregates) == {}


def test_a_crash_in_the_store_marks_the_run_failed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(store: Store, run_id: str, results: Sequence[QueryResult]) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(store_runs, "add_query_results", broken)
    with pytest.raises(OSError, match="No space"):
        evaluate_goldset(store, goldset(), ListRetriever(RANKINGS), GoldsetRunRequest(k=10))
    [run] = list_runs(store)
    assert run.status == "failed"
    assert "No space" in (run.error or "")


def test_default_measures_fit_k() -> None:
    assert "recall@100" in default_measures(100)
    assert "recall@100" not in default_measures(10)
    assert "ndcg@10" in default_measures(10)


class ElsewhereRetriever(ListRetriever):
    def describe(self) -> dict[str, Any]:
        return {"kind": "list", "collection": "elsewhere"}


def test_a_limit_per_retriever_keeps_a_rarely_run_series_whole(store: Store) -> None:
    """`drift precision` read the newest 500 runs of a goldset whatever their retriever:
    past 500 (three weeks of hourly runs of a busy retriever) a rarely run retriever's
    series lost its points and its baseline, the oldest run, moved without a word."""
    from evalkit.drift.watch import watch_precision

    request = GoldsetRunRequest(k=10, measures=("precision@10",))
    rare = [evaluate_goldset(store, goldset(), ElsewhereRetriever(RANKINGS), request)]
    busy = [evaluate_goldset(store, goldset(), ListRetriever(RANKINGS), request) for _ in range(4)]
    rare.append(evaluate_goldset(store, goldset(), ElsewhereRetriever(RANKINGS), request))
    newest_two = list_runs(store, goldset="four", limit=2)
    assert [run.run_id for run in newest_two] == [rare[1].run.run_id, busy[3].run.run_id]
    per_retriever = list_runs(store, goldset="four", limit=2, limit_per_retriever=True)
    assert [run.run_id for run in per_retriever] == [
        rare[1].run.run_id,
        busy[3].run.run_id,
        busy[2].run.run_id,
        rare[0].run.run_id,
    ]
    checks = {
        check.subject: check
        for check in watch_precision(
            store, "four", measure="precision@10", limit=3, save=False
        ).checks
    }
    assert checks["list:elsewhere"].baseline_run == rare[0].run.run_id
    assert len(checks["list:elsewhere"].series) == 2
    assert len(checks["list:fixed"].series) == 3
    # The baseline is the series' first run, not the oldest of the runs read: it would
    # move with every new run.
    assert checks["list:fixed"].baseline_run == busy[0].run.run_id


class _Closable(ListRetriever):
    closed = 0

    def close(self) -> None:
        self.closed += 1


def test_run_goldset_replays_a_loaded_goldset_on_a_ready_retriever_left_open(
    store: Store,
) -> None:
    """The gate's live candidate and each sweep point go through run_goldset with the goldset
    they loaded and the retriever they hold: scored as evaluate_goldset scores, the goldset
    stored as current only when asked, and the caller's retriever not closed."""
    from evalkit.config import Settings
    from evalkit.pipeline.goldset_run import run_goldset
    from evalkit.store.goldsets import list_goldsets

    retriever = _Closable(RANKINGS)
    request = GoldsetRunRequest(k=10, measures=("recall@10",), label="loaded", answers=False)
    outcome = run_goldset(store, request, Settings(), retriever, goldset=goldset())
    assert outcome.run.status == "complete"
    assert outcome.run.spec.label == "loaded"
    assert outcome.run.aggregates["recall@10"] == pytest.approx(0.75)
    assert retriever.closed == 0
    assert [g.name for g in list_goldsets(store, "four")] == ["four"]
