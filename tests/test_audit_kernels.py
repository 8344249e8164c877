"""The audit's pure kernels against hand-computed tables and brute-force oracles."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import pytrec_eval
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.audit import (
    CHECK_NAMES,
    CHECKS,
    FINDING_KINDS,
    AuditConfig,
    Severity,
    ann_recall,
    cluster_pairs,
    compare_hashes,
    exact_duplicate_groups,
    exact_scores,
    judged_at_k,
    near_duplicate_pairs,
    rowwise_cosine,
    unit_rows,
)
from evalkit.errors import ConfigError
from evalkit.store.audit import SEVERITY_RANKS


def _brute_force_pairs(vectors: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = unit.astype(np.float32) @ unit.astype(np.float32).T
    return {
        (i, j)
        for i, j in itertools.combinations(range(len(vectors)), 2)
        if similarity[i, j] >= threshold
    }


def _union_find_clusters(n: int, pairs: list[tuple[int, int]]) -> list[list[int]]:
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        parent[root(a)] = root(b)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def test_near_duplicate_pairs_by_hand() -> None:
    vectors = np.array(
        [[1.0, 0.0, 0.0], [0.99, 0.1, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0], [0.0, 0.0, 1.0]]
    )
    pairs = near_duplicate_pairs(vectors, threshold=0.99, block_size=2)
    assert list(zip(pairs.first.tolist(), pairs.second.tolist(), strict=True)) == [(0, 1), (3, 4)]
    assert pairs.similarity[0] == pytest.approx(0.99 / np.hypot(0.99, 0.1), abs=1e-6)
    assert pairs.similarity[1] == pytest.approx(1.0, abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 70),
    dimension=st.integers(2, 12),
    block_size=st.integers(1, 80),
    planted=st.integers(0, 10),
    threshold=st.sampled_from([0.5, 0.9, 0.97]),
    seed=st.integers(0, 2**16),
)
def test_blocked_search_finds_exactly_the_brute_force_pairs(
    n: int, dimension: int, block_size: int, planted: int, threshold: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dimension))
    for _ in range(planted if n > 1 else 0):
        source, target = rng.choice(n, size=2, replace=False)
        vectors[target] = vectors[source] + rng.normal(scale=0.01, size=dimension)
    pairs = near_duplicate_pairs(vectors, threshold=threshold, block_size=block_size)
    found = set(zip(pairs.first.tolist(), pairs.second.tolist(), strict=True))
    expected = _brute_force_pairs(vectors, threshold) if n else set()
    # Pairs within float32 rounding of the threshold may fall either way.
    unit = unit_rows(vectors).astype(np.float64)
    borderline = {
        (i, j) for i, j in found ^ expected if abs(float(unit[i] @ unit[j]) - threshold) < 1e-5
    }
    assert found - borderline == expected - borderline
    assert len(found) == len(pairs)
    assert all(i < j for i, j in found)


def test_too_many_near_duplicate_pairs_is_a_config_error() -> None:
    vectors = np.ones((30, 4))
    with pytest.raises(ConfigError, match="raise the near-duplicate threshold"):
        near_duplicate_pairs(vectors, threshold=0.9, max_pairs=100)
    with pytest.raises(ConfigError, match="block_size"):
        near_duplicate_pairs(vectors, threshold=0.9, block_size=0)


def test_clusters_by_hand() -> None:
    clusters = cluster_pairs(8, [6, 1, 0], [5, 2, 1])
    assert [c.tolist() for c in clusters] == [[0, 1, 2], [5, 6]]
    assert cluster_pairs(3, [], []) == []


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    raw_pairs=st.lists(st.tuples(st.integers(0, 39), st.integers(0, 39)), max_size=40),
)
def test_clusters_match_a_union_find(n: int, raw_pairs: list[tuple[int, int]]) -> None:
    pairs = [(a % n, b % n) for a, b in raw_pairs if a % n != b % n]
    first = [a for a, _ in pairs]
    second = [b for _, b in pairs]
    clusters = [c.tolist() for c in cluster_pairs(n, first, second)]
    assert clusters == _union_find_clusters(n, pairs)


def test_exact_duplicate_groups_ignore_missing_hashes() -> None:
    hashes = ["a", "b", "", "a", "c", "", "b", "a"]
    groups = exact_duplicate_groups(hashes)
    assert [g.tolist() for g in groups] == [[0, 3, 7], [1, 6]]
    assert exact_duplicate_groups([]) == []
    assert exact_duplicate_groups(["", ""]) == []


def test_compare_hashes_by_hand() -> None:
    diff = compare_hashes(
        ["d1", "d2", "d3", "d4"],
        ["h1", "h2", "h3", ""],
        {"d1": "h1", "d2": "CHANGED", "d4": "h4", "d5": "h5", "d0": "h0"},
    )
    assert diff.changed == ("d2", "d4")
    assert diff.deleted == ("d3",)
    assert diff.missing == ("d0", "d5")
    empty = compare_hashes([], [], {})
    assert (empty.changed, empty.deleted, empty.missing) == ((), (), ())


def test_ann_recall_by_hand_counts_ties_as_found() -> None:
    documents = np.array([[1.0, 0.0], [1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]])
    queries = np.array([[1.0, 0.0], [0.0, 1.0]])
    # Query 0: exact top 2 is {0, 1} (tied). Returning 1 and 0 in either order is perfect;
    # query 1: exact top 2 is {3, 2}; returning 3 and 4 misses 2.
    result = ann_recall(queries, documents, [[1, 0], [3, 4]], k=2)
    assert result.recall.tolist() == [1.0, 0.5]
    assert result.missed[0].tolist() == []
    assert result.missed[1].tolist() == [2]
    # Rows 0 and 1 tie for the best score: either one is a perfect top 1.
    assert ann_recall(queries[:1], documents, [[1]], k=1).recall.tolist() == [1.0]
    assert ann_recall(queries[:1], documents, [[0]], k=1).recall.tolist() == [1.0]
    # Padding (-1) and a short list are misses; k is capped at the number of documents.
    assert ann_recall(queries[1:], documents, [[3, -1]], k=2).recall.tolist() == [0.5]
    assert ann_recall(queries[1:], documents[:1], [[0]], k=10).recall.tolist() == [1.0]


@pytest.mark.parametrize("space", ["cosine", "ip", "l2"])
def test_ann_recall_against_argsort(space: str) -> None:
    rng = np.random.default_rng(11)
    documents = rng.standard_normal((300, 16))
    queries = rng.standard_normal((25, 16))
    if space == "cosine":
        scores = unit_rows(queries).astype(float) @ unit_rows(documents).astype(float).T
    elif space == "ip":
        scores = queries @ documents.T
    else:
        scores = -(((queries[:, None, :] - documents[None, :, :]) ** 2).sum(axis=2))
    ranking = np.argsort(-scores, axis=1)
    k = 10
    # An "ANN" list: the exact top k with a seeded share of entries swapped for far documents.
    returned = ranking[:, :k].copy()
    swaps = rng.random((25, k)) < 0.3
    returned[swaps] = ranking[:, -k:][swaps]
    expected = np.array([len(set(returned[q]) & set(ranking[q, :k])) / k for q in range(25)])
    result = ann_recall(queries, documents, returned, k=k, space=space)
    np.testing.assert_allclose(result.recall, expected)
    for q in range(25):
        assert set(result.missed[q].tolist()) == set(ranking[q, :k]) - set(returned[q])
    np.testing.assert_allclose(
        exact_scores(queries, documents, space=space).argsort(axis=1)[:, -1], ranking[:, 0]
    )


def test_unknown_space_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown distance space"):
        exact_scores(np.ones((1, 2)), np.ones((1, 2)), space="hamming")


def test_judged_at_k_by_hand() -> None:
    judgments = pd.DataFrame(
        {
            "query_id": ["q1", "q1", "q1", "q2"],
            "doc_id": ["a", "b", "z", "c"],
            "relevance": [2, 0, 1, 1],
        }
    )
    per_query = judged_at_k(
        ["q1", "q2", "q3"], [["a", "x", "b", "y"], ["d", "e"], []], judgments, k=3
    )
    # q1: a and b judged in the top 3 (y is 4th); q2: nothing judged; q3: returned nothing.
    assert per_query.to_dict() == pytest.approx({"q1": 2 / 3, "q2": 0.0, "q3": 0.0})
    assert per_query.name == "judged@3"


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), k=st.integers(1, 12))
def test_judged_at_k_matches_pytrec_eval(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    corpus = [f"d{i}" for i in range(40)]
    queries = [f"q{i}" for i in range(8)]
    qrels: dict[str, dict[str, int]] = {}
    rows = []
    for qid in queries:
        judged = rng.choice(corpus, size=rng.integers(1, 12), replace=False)
        qrels[qid] = {str(doc): int(rng.integers(0, 3)) for doc in judged}
        rows.extend((qid, doc, rel) for doc, rel in qrels[qid].items())
    ranked = [list(rng.choice(corpus, size=rng.integers(1, 20), replace=False)) for _ in queries]
    judgments = pd.DataFrame(rows, columns=["query_id", "doc_id", "relevance"])
    per_query = judged_at_k(queries, ranked, judgments, k=k)

    run = {
        qid: {str(doc): float(100 - rank) for rank, doc in enumerate(docs[:k])}
        for qid, docs in zip(queries, ranked, strict=True)
    }
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"num_rel_ret", "num_nonrel_judged_ret"})
    oracle = evaluator.evaluate(run)
    for qid in queries:
        judged = oracle[qid]["num_rel_ret"] + oracle[qid]["num_nonrel_judged_ret"]
        assert per_query[qid] == pytest.approx(judged / k)


def test_rowwise_cosine_and_zero_rows() -> None:
    first = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    second = np.array([[1.0, 1.0], [0.0, -1.0], [1.0, 0.0]])
    np.testing.assert_allclose(rowwise_cosine(first, second), [np.sqrt(0.5), -1.0, 0.0])
    with pytest.raises(ValueError, match="row shapes"):
        rowwise_cosine(first, second[:2])
    with pytest.raises(ConfigError, match="2-D"):
        unit_rows(np.ones(3))


def test_severities_are_ordered_and_agree_with_the_store() -> None:
    assert Severity.critical.at_least(Severity.warning)
    assert not Severity.info.at_least(Severity.warning)
    assert Severity.parse(" Warning ") is Severity.warning
    with pytest.raises(ConfigError, match="info, warning, critical"):
        Severity.parse("fatal")
    assert {s.value: s.rank for s in Severity} == dict(SEVERITY_RANKS)


def test_every_finding_kind_belongs_to_a_registered_check() -> None:
    assert tuple(CHECKS) == CHECK_NAMES
    assert {kind.check for kind in FINDING_KINDS.values()} == set(CHECK_NAMES)


@pytest.mark.parametrize(
    ("settings_", "message"),
    [
        ({"checks": ("duplicates", "typo")}, "unknown audit checks"),
        ({"near_duplicate_threshold": 1.5}, "near_duplicate_threshold"),
        ({"ann_min_recall": -0.1}, "ann_min_recall"),
        ({"k": 0}, "k must be"),
        ({"model_sample_size": 0}, "model_sample_size"),
        ({"block_size": True}, "must be a number"),
        ({"severities": {"no_such_kind": Severity.info}}, "unknown finding kinds"),
    ],
)
def test_invalid_audit_settings_say_what_is_wrong(
    settings_: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        AuditConfig(**settings_)  # type: ignore[arg-type]


def test_configured_severity_replaces_the_default() -> None:
    config = AuditConfig(severities={"near_duplicates": Severity.critical})
    assert config.severity("near_duplicates") is Severity.critical
    assert config.severity("exact_duplicates") is Severity.warning
    finding = config.finding("near_duplicates", "m", 2, doc_ids=("a", "b"))
    assert (finding.check, finding.severity) == ("duplicates", Severity.critical)
