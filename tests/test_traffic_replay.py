"""Replaying traffic samples with a fake retriever: stored run, comparison, window summary."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from evalkit.embedding import ModelFingerprint
from evalkit.errors import ConfigError
from evalkit.metrics.overlap import rank_biased_overlap
from evalkit.pipeline import ReplaySetup, TrafficReplayRequest, replay_traffic_window
from evalkit.records import Query, QueryResult, ScoredDoc
from evalkit.store import Store
from evalkit.store.runs import list_runs, run_results
from evalkit.store.traffic import (
    latest_window_summary,
    list_window_summaries,
    window_embeddings,
)
from evalkit.traffic import (
    SampleSpec,
    filters_by_tenant,
    ingest_paths,
    parse_window,
    replay_figures,
    sample_window,
)

DAY = parse_window("2026-11-21")


class FakeRetriever:
    """Answers from a table; ``where_key`` is what it claims to filter tenants by."""

    def __init__(
        self,
        answers: dict[str, list[tuple[str, float]]],
        *,
        latency: dict[str, float],
        failing: Sequence[str] = (),
        where_key: str | None = "tenant",
    ) -> None:
        self.answers = answers
        self.latency = latency
        self.failing = set(failing)
        self.where_key = where_key
        self.seen: list[Query] = []

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        self.seen.extend(queries)
        results = []
        for query in queries:
            latency = self.latency.get(query.id, 1.0)
            if query.id in self.failing:
                results.append(QueryResult(query.id, (), latency, error="TimeoutError: slow"))
                continue
            ranked = self.answers.get(query.text, [])[:k]
            docs = tuple(ScoredDoc(d, s, r) for r, (d, s) in enumerate(ranked, start=1))
            results.append(QueryResult(query.id, docs, latency))
        return results

    def describe(self) -> dict[str, Any]:
        return {"kind": "fake", "collection": "kb", "where_key": self.where_key}

    def index_fingerprint(self) -> str | None:
        return "index-1"

    def model_fingerprint(self) -> ModelFingerprint | None:
        return ModelFingerprint("fake-model", 4, "f00d")


class FakeEmbedder:
    """Deterministic 4-dimensional unit vectors from the text's characters."""

    name = "fake-model"
    dimension = 4
    fingerprint = ModelFingerprint("fake-model", 4, "f00d")

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        vectors = np.array(
            [[len(t), sum(map(ord, t)) % 7 + 1, t.count("a") + 1, 1.0] for t in texts],
            dtype=np.float32,
        )
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


RECORDS = [
    {
        "query_id": "q1",
        "text": "alpha",
        "tenant": "a",
        "results": ["d1", "d2", "d3"],
        "latency_ms": 5,
    },
    {
        "query_id": "q2",
        "text": "beta",
        "tenant": "a",
        "results": ["d2", "d1", "x"],
        "latency_ms": 15,
    },
    {"query_id": "q3", "text": "gamma", "tenant": "b"},
    {"query_id": "q4", "text": "delta", "tenant": "b", "results": ["d7"]},
]
ANSWERS = {
    "alpha": [("d1", 0.9), ("d2", 0.8), ("d3", 0.7)],
    "beta": [("d1", 0.3), ("d2", 0.2), ("d9", 0.1)],
    "gamma": [],
}
LATENCY = {"q1": 10.0, "q2": 20.0, "q3": 30.0, "q4": 99.0}


def sampled(store: Store, tmp_path: Path) -> str:
    log = tmp_path / "traffic.jsonl"
    log.write_text(
        "".join(json.dumps({**r, "timestamp": "2026-11-21T10:00:00Z"}) + "\n" for r in RECORDS)
    )
    assert ingest_paths(store, [log]).records_added == 4
    return sample_window(store, SampleSpec(window=DAY, n=10, seed=2)).sample_id


def test_replay_stores_a_traffic_run_comparison_and_summary(store: Store, tmp_path: Path) -> None:
    sample_id = sampled(store, tmp_path)
    retriever = FakeRetriever(ANSWERS, latency=LATENCY, failing=["q4"])
    outcome = replay_traffic_window(
        store,
        sample_id,
        retriever,
        TrafficReplayRequest(k=3, answers=False),
        setup=ReplaySetup(embedder=FakeEmbedder()),
    )
    run = outcome.run
    assert (run.status, run.spec.kind, run.n_failed) == ("partial", "traffic", 1)
    assert run.spec.label == "traffic 2026-11-21"
    assert run.spec.seed == 2
    assert (run.spec.index_fingerprint, run.spec.model_fingerprint) == ("index-1", "f00d")
    assert run_results(store, run.run_id)["doc_id"].tolist() == [
        "d1",
        "d2",
        "d3",
        "d1",
        "d2",
        "d9",
    ]
    per_query = {
        row[0]: row[1:]
        for row in store.fetch(
            "SELECT query_id, tenant, failed, n_results, top1_score, n_logged, overlap_at_k"
            " FROM traffic_replay_queries WHERE run_id = ?",
            [run.run_id],
        )
    }
    assert per_query == {
        "q1": ("a", False, 3, 0.9, 3, 1.0),
        # {d1, d2, d9} vs {d2, d1, x}: 2 shared of 4.
        "q2": ("a", False, 3, 0.3, 3, 0.5),
        "q3": ("b", False, 0, None, None, None),
        # A failed query is never compared: its empty answer is not a real one.
        "q4": ("b", True, 0, None, None, None),
    }
    rbo = dict(store.fetch("SELECT query_id, rbo FROM traffic_replay_queries"))
    assert rbo["q1"] == pytest.approx(1.0)
    assert rbo["q2"] == pytest.approx(
        rank_biased_overlap(["d1", "d2", "d9"], ["d2", "d1", "x"], depth=3)
    )

    summary = outcome.summary
    assert (summary.n_replayed, summary.n_failed, summary.volume, summary.n_distinct) == (
        4,
        1,
        4,
        4,
    )
    # Answered latencies 10, 20, 30 (numpy's linear quantiles).
    assert (summary.latency_p50, summary.latency_p95, summary.latency_p99) == pytest.approx(
        (20.0, 29.0, 29.8)
    )
    # Logged latencies 5 and 15.
    assert (summary.logged_latency_p50, summary.logged_latency_p95) == pytest.approx((10.0, 14.5))
    assert (summary.top1_mean, summary.top1_p50) == pytest.approx((0.6, 0.6))
    # q2 is below 0.4 and q3 returned nothing: 2 of the 3 answered queries.
    assert summary.low_confidence_share == pytest.approx(2 / 3)
    assert summary.empty_share == pytest.approx(1 / 3)
    assert summary.n_compared == 2
    assert (summary.overlap_mean, summary.churn) == pytest.approx((0.75, 0.25))
    assert summary.n_embeddings == 4
    assert summary.embedding_fingerprint == "f00d"

    stored = latest_window_summary(store, "2026-11-21")
    assert stored.to_dict() == summary.to_dict()
    ids, vectors = window_embeddings(store, run.run_id)
    assert sorted(ids) == ["q1", "q2", "q3", "q4"]
    texts = {r["query_id"]: r["text"] for r in RECORDS}
    np.testing.assert_allclose(vectors, FakeEmbedder().embed([texts[i] for i in ids]), rtol=1e-6)


def test_embedding_sample_is_seeded_and_capped(store: Store, tmp_path: Path) -> None:
    sample_id = sampled(store, tmp_path)
    first = replay_traffic_window(
        store,
        sample_id,
        FakeRetriever(ANSWERS, latency=LATENCY),
        TrafficReplayRequest(k=3, embedding_sample_size=2, answers=False),
        setup=ReplaySetup(embedder=FakeEmbedder()),
    )
    second = replay_traffic_window(
        store,
        sample_id,
        FakeRetriever(ANSWERS, latency=LATENCY),
        TrafficReplayRequest(k=3, embedding_sample_size=2, answers=False),
        setup=ReplaySetup(embedder=FakeEmbedder()),
    )
    assert first.summary.n_embeddings == 2
    assert (
        window_embeddings(store, first.run.run_id)[0]
        == window_embeddings(store, second.run.run_id)[0]
    )
    assert [s.run_id for s in list_window_summaries(store)] == [
        second.run.run_id,
        first.run.run_id,
    ]
    without = replay_traffic_window(
        store,
        sample_id,
        FakeRetriever(ANSWERS, latency=LATENCY),
        TrafficReplayRequest(k=3, answers=False),
    )
    assert without.summary.n_embeddings == 0
    assert without.summary.embedding_model is None
    assert without.run.status == "complete"


def test_tenants_are_never_replayed_on_a_retriever_that_ignores_them(
    store: Store, tmp_path: Path
) -> None:
    sample_id = sampled(store, tmp_path)
    blind = FakeRetriever(ANSWERS, latency=LATENCY, where_key=None)
    with pytest.raises(ConfigError, match="does not filter by tenant"):
        replay_traffic_window(store, sample_id, blind, TrafficReplayRequest(k=3, answers=False))
    assert blind.seen == []
    assert list_runs(store) == []
    outcome = replay_traffic_window(
        store, sample_id, blind, TrafficReplayRequest(k=3, tenant_isolation=False, answers=False)
    )
    assert outcome.run.status == "complete"
    assert {q.tenant for q in blind.seen} == {"a", "b"}


def test_a_retriever_with_retrieve_alone_is_replayed(store: Store, tmp_path: Path) -> None:
    """Only ``retrieve`` is required of a retriever of one's own (docs/retrievers.md): the
    replay asked for its ``describe()`` and failed with an AttributeError."""
    sample_id = sampled(store, tmp_path)
    answering = FakeRetriever(ANSWERS, latency=LATENCY)

    class RetrieveOnly:
        def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
            return answering.retrieve(queries, k)

    request = TrafficReplayRequest(k=3, tenant_isolation=False, answers=False)
    outcome = replay_traffic_window(store, sample_id, RetrieveOnly(), request)
    assert outcome.run.status == "complete"
    assert outcome.run.spec.retriever_config == {"class": f"{__name__}.{RetrieveOnly.__qualname__}"}
    assert len(answering.seen) == 4


def test_which_retrievers_filter_by_tenant() -> None:
    assert filters_by_tenant({"kind": "chroma-embedded", "where_key": "tenant"})
    assert not filters_by_tenant({"kind": "chroma-embedded", "where_key": None})
    assert filters_by_tenant({"kind": "http", "url": "http://x"})
    assert not filters_by_tenant({"kind": "python"})


def test_compare_k_must_fit_k(store: Store, tmp_path: Path) -> None:
    sample_id = sampled(store, tmp_path)
    with pytest.raises(ConfigError, match="compare_k"):
        replay_traffic_window(
            store,
            sample_id,
            FakeRetriever(ANSWERS, latency=LATENCY),
            TrafficReplayRequest(k=3, compare_k=5, answers=False),
        )


def test_a_crash_during_replay_marks_the_run_failed(store: Store, tmp_path: Path) -> None:
    sample_id = sampled(store, tmp_path)

    def stopped(done: int, total: int) -> None:
        if done:
            raise RuntimeError("stopped mid-replay")

    with pytest.raises(RuntimeError, match="stopped mid-replay"):
        replay_traffic_window(
            store,
            sample_id,
            FakeRetriever(ANSWERS, latency=LATENCY),
            TrafficReplayRequest(k=3, answers=False, batch_size=2),
            progress=stopped,
        )
    (run,) = list_runs(store)
    assert run.status == "failed"
    assert "stopped mid-replay" in (run.error or "")
    assert list_window_summaries(store) == []


def test_a_window_that_cannot_be_embedded_fails_before_any_query_is_sent(
    store: Store, tmp_path: Path
) -> None:
    """The window's query sample is embedded before the replay (without the store, when
    the replay is given an access that does not keep it open): a model that fails costs no
    retriever call and leaves no run."""
    sample_id = sampled(store, tmp_path)

    class BrokenEmbedder(FakeEmbedder):
        def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
            raise RuntimeError("model gone")

    retriever = FakeRetriever(ANSWERS, latency=LATENCY)
    with pytest.raises(RuntimeError, match="model gone"):
        replay_traffic_window(
            store,
            sample_id,
            retriever,
            TrafficReplayRequest(k=3, answers=False),
            setup=ReplaySetup(embedder=BrokenEmbedder()),
        )
    assert (retriever.seen, list_runs(store), list_window_summaries(store)) == ([], [], [])


def test_figures_by_hand() -> None:
    figures = replay_figures(
        latency_ms=np.array([1.0, 2.0, 3.0, 4.0, 100.0]),
        failed=np.array([False, False, False, False, True]),
        top1_score=np.array([0.2, 0.5, np.nan, 0.8, np.nan]),
        overlap_at_k=np.array([1.0, np.nan, np.nan, 0.0, 0.7]),
        rbo=np.array([1.0, np.nan, np.nan, 0.5, 0.7]),
        low_confidence_threshold=0.5,
    )
    assert (figures.n_replayed, figures.n_failed) == (5, 1)
    assert figures.latency_p50 == pytest.approx(2.5)
    assert (figures.top1_mean, figures.top1_p50) == pytest.approx((0.5, 0.5))
    assert figures.top1_std == pytest.approx(np.std([0.2, 0.5, 0.8], ddof=1))
    # 0.2 < 0.5 and the empty answer are low; 0.5 itself is not.
    assert figures.low_confidence_share == pytest.approx(2 / 4)
    assert figures.empty_share == pytest.approx(1 / 4)
    # The failed query's 0.7 is left out.
    assert (figures.n_compared, figures.overlap_mean, figures.rbo_mean) == (2, 0.5, 0.75)
    assert figures.churn == pytest.approx(0.5)


def test_figures_without_support_are_none_not_zero() -> None:
    figures = replay_figures(
        latency_ms=np.array([5.0, 6.0]),
        failed=np.array([True, True]),
        top1_score=np.array([np.nan, np.nan]),
        overlap_at_k=np.array([np.nan, np.nan]),
        rbo=np.array([np.nan, np.nan]),
    )
    assert figures.latency_p50 is None
    assert figures.top1_mean is None
    assert figures.low_confidence_share is None
    assert (figures.n_compared, figures.overlap_mean, figures.churn) == (0, None, None)
