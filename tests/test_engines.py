"""The engine seam: the local engine through the ``Engine`` protocol, what it refuses, the
report's clean-up, and ``RunSpec.for_retriever`` (the one mapping of a retriever to a run)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from overlap_retriever import overlap_retriever

from evalkit import __version__
from evalkit.config import Settings
from evalkit.embedding import ModelFingerprint
from evalkit.engines import (
    Engine,
    EngineReport,
    LocalEngine,
    RayEngine,
    ReplayQueries,
    ReplaySpec,
    ReplayTiming,
    replay,
    write_query_table,
)
from evalkit.errors import ConfigError, InputError, RetrieverError
from evalkit.pipeline import evaluate_query_table
from evalkit.records import Judgment, Query, QueryResult, ScoredDoc
from evalkit.retrievers.factory import RetrieverOptions
from evalkit.store import RunSpec, Store
from evalkit.store.runs import list_runs

QUERIES = [Query(id=f"q{i}", text=f"text {i}") for i in range(5)]


class Scripted:
    """Answers each query with two documents; ``broken`` query ids make their batch raise."""

    def __init__(self, broken: frozenset[str] = frozenset()) -> None:
        self.broken = broken
        self.calls: list[list[str]] = []

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        self.calls.append([q.id for q in queries])
        if self.broken & {q.id for q in queries}:
            raise RuntimeError("down")
        return [
            QueryResult(
                query_id=q.id,
                docs=tuple(ScoredDoc(f"{q.id}-d{r}", 1.0 / (r + 1), r + 1) for r in range(k)),
                latency_ms=1.0,
            )
            for q in queries
        ]

    def describe(self) -> dict[str, Any]:
        return {"kind": "scripted", "collection": "docs", "depth": 2}

    def index_fingerprint(self) -> str | None:
        return "index-1"

    def model_fingerprint(self) -> ModelFingerprint | None:
        return ModelFingerprint(name="mini", dimension=8, canary_hash="abc")


def test_the_local_engine_is_an_engine_and_reports_what_replay_returns() -> None:
    engine = LocalEngine(Scripted(broken=frozenset({"q4"})), batch_size=2)
    assert isinstance(engine, Engine)
    assert engine.name == "local"
    batches: list[list[str]] = []
    told: list[tuple[int, int]] = []
    report = engine.replay(
        ReplaySpec(run_id="r1", k=2),
        ReplayQueries(queries=QUERIES),
        progress=lambda done, total: told.append((done, total)),
        on_batch=lambda batch: batches.append([r.query_id for r in batch]),
    )
    expected = replay(QUERIES, Scripted(broken=frozenset({"q4"})), k=2, batch_size=2)
    # A failed batch's latency is measured, so it differs from one replay to the next.
    assert [(r.query_id, r.docs, r.error) for r in report.results] == [
        (r.query_id, r.docs, r.error) for r in expected
    ]
    assert report.engine == "local"
    assert report.n_replayed == 5
    assert (report.shard_dir, report.query_table, report.stopped) == (None, None, None)
    assert batches == [["q0", "q1"], ["q2", "q3"], ["q4"]]
    assert told == [(2, 5), (4, 5), (5, 5)]
    assert report.timing.batches == 3
    assert [r.error for r in report.results] == [None] * 4 + ["RuntimeError: down"]


def test_the_local_engine_refuses_a_query_table(tmp_path: Path) -> None:
    table = write_query_table(tmp_path / "queries.parquet", QUERIES)
    retriever = Scripted()
    with pytest.raises(ConfigError, match=r"queries\.parquet: a query table is replayed on Ray"):
        LocalEngine(retriever).replay(ReplaySpec(run_id="r1", k=2), ReplayQueries(table=table))
    assert retriever.calls == []


def test_a_replay_asks_for_one_document_at_least_and_one_source_of_queries(
    tmp_path: Path,
) -> None:
    with pytest.raises(RetrieverError, match="k must be at least 1, got 0"):
        ReplaySpec(run_id="r1", k=0)
    with pytest.raises(ConfigError, match="from memory or from a table, not both"):
        ReplayQueries(queries=QUERIES, table=tmp_path / "queries.parquet")


def test_the_ray_engine_is_an_engine(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    engine = RayEngine(RetrieverOptions(collection="demo"), Settings(home=tmp_path))
    assert isinstance(engine, Engine)
    assert engine.name == "ray"
    assert engine.query_table("r1") == tmp_path / "shards" / "r1.queries.parquet"


def test_a_report_discards_the_files_the_engine_left(tmp_path: Path) -> None:
    shards = tmp_path / "shards" / "r1"
    shards.mkdir(parents=True)
    (shards / "a.parquet").write_bytes(b"x")
    table = write_query_table(
        tmp_path / "shards" / "r1.queries.parquet", QUERIES, [Judgment("q0", "q0-d0", 1)]
    )
    report = EngineReport(
        engine="ray", timing=ReplayTiming(), n_replayed=5, shard_dir=shards, query_table=table
    )
    report.discard()
    assert not shards.exists()
    assert not table.exists()
    report.discard()  # twice is harmless


def test_run_spec_for_retriever_records_the_retriever_as_it_describes_itself() -> None:
    spec = RunSpec.for_retriever(
        Scripted(),
        kind="goldset",
        k=10,
        n_queries=5,
        measures=["ndcg@10", "recall@10"],
        relevance_threshold=2,
        goldset_name="demo",
        goldset_version="v1",
        label="nightly",
    )
    assert spec == RunSpec(
        kind="goldset",
        retriever_kind="scripted",
        k=10,
        measures=("ndcg@10", "recall@10"),
        evalkit_version=__version__,
        relevance_threshold=2,
        goldset_name="demo",
        goldset_version="v1",
        retriever_config={"kind": "scripted", "collection": "docs", "depth": 2},
        collection="docs",
        model_name="mini",
        model_dimension=8,
        model_fingerprint="abc",
        index_fingerprint="index-1",
        label="nightly",
        n_queries=5,
    )


def test_run_spec_for_retriever_names_an_undescribed_retriever_by_its_type() -> None:
    class Bare(Scripted):
        def describe(self) -> dict[str, Any]:
            return {}

        def model_fingerprint(self) -> ModelFingerprint | None:
            return None

    spec = RunSpec.for_retriever(Bare(), kind="traffic", k=5, n_queries=0, seed=7)
    assert (spec.retriever_kind, spec.collection, spec.model_name, spec.seed) == (
        "Bare",
        None,
        None,
        7,
    )
    assert spec.measures == ()


def test_a_file_that_is_not_a_query_table_fails_before_a_run_is_recorded(
    store: Store, tmp_path: Path
) -> None:
    pytest.importorskip("ray")
    not_a_table = tmp_path / "no-text.parquet"
    pq.write_table(
        pa.table({"query_id": ["q1"], "judged_doc_ids": [["d1"]], "judged_relevance": [[1]]}),
        not_a_table,
    )
    with overlap_retriever() as url:
        engine = RayEngine(RetrieverOptions(http_url=url), Settings(home=tmp_path))
        with pytest.raises(InputError, match=r"no-text\.parquet: not a query table: no column"):
            evaluate_query_table(store, not_a_table, engine, k=10)
    assert list_runs(store) == []
    assert not (tmp_path / "shards").exists()
