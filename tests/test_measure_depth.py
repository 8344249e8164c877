"""A measure cut deeper than a run retrieves (ndcg@10 of a k 5 run) is another measure under
its name: runs refuse to store it, comparisons refuse to use one stored so earlier."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from test_dashboard_seed import goldset, perfect, query_ids, store_run

from evalkit.errors import ConfigError
from evalkit.pipeline import evaluate_goldset
from evalkit.records import Query, QueryResult, ScoredDoc
from evalkit.records.requests import GoldsetRunRequest
from evalkit.stats.compare import compare_stored_runs
from evalkit.store import Store
from evalkit.store.goldsets import save_goldset
from evalkit.store.runs import list_runs

N = 8


class _Perfect:
    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        return [
            QueryResult(
                q.id,
                tuple(ScoredDoc(d, 1.0 / (i + 1), i + 1) for i, d in enumerate(perfect(q.id)[:k])),
                1.0,
            )
            for q in queries
        ]

    def describe(self) -> dict[str, str]:
        return {"kind": "perfect"}

    def index_fingerprint(self) -> None:
        return None

    def model_fingerprint(self) -> None:
        return None


def test_a_run_refuses_a_measure_deeper_than_its_k_before_replaying(store: Store) -> None:
    gold = goldset(N)
    save_goldset(store, gold)
    with pytest.raises(ConfigError) as caught:
        evaluate_goldset(
            store, gold, _Perfect(), GoldsetRunRequest(k=5, measures=("ndcg@10",), answers=False)
        )
    assert str(caught.value) == (
        "ndcg@10 needs the top 10 documents of each query, and the run retrieves 5: retrieve "
        "deeper (--k 10) or measure at that depth (ndcg@5)"
    )
    assert list_runs(store) == []


def test_a_comparison_refuses_a_deep_measure_a_shallow_run_stored(store: Store) -> None:
    """`gate`/`compare` of a k 100 run and a k 5 run that stored ndcg@10 (as runs could)
    reported a regression of ndcg@10 computed from 5 documents."""
    gold = goldset(N)
    save_goldset(store, gold)
    common = {
        "retriever_kind": "http",
        "config": {"kind": "http", "url": "http://127.0.0.1:9/search"},
        "collection": None,
        "model_fingerprint": "fp-1",
        "index_fingerprint": None,
        "measures": ("ndcg@10",),
    }
    rankings = {q: perfect(q) for q in query_ids(N)}
    deep = store_run(store, gold, rankings, k=10, **common)
    shallow = store_run(store, gold, rankings, k=5, **common)
    with pytest.raises(ConfigError, match=f"run {shallow} retrieved only 5 documents per query"):
        compare_stored_runs(store, deep, shallow, ["ndcg@10"])
