"""Rank fusion: every method and normalisation against ranx's ``fuse`` on the same runs, ties,
documents in one run only, empty runs, ``optimize_fusion`` against ranx's, and ``evalkit
fuse`` on a real store (the fused run shown, compared and optimised on held-out queries)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_causes import two_backends
from test_dashboard_seed import goldset as seeded_goldset
from test_dashboard_seed import perfect, query_ids, store_run

from evalkit.cli import invoke
from evalkit.cli.fuse import METHODS_HELP, NORMS_HELP
from evalkit.errors import ConfigError, InputError
from evalkit.goldset.model import Goldset
from evalkit.metrics import Evaluator
from evalkit.metrics.fusion import (
    FUSION_METHODS,
    NORMALIZATIONS,
    Fusion,
    FusionRuns,
    fuse,
    optimize_fusion,
    weight_grid,
)
from evalkit.pipeline import evaluate_goldset, fuse_runs
from evalkit.records import Judgment, Query, QueryResult, ScoredDoc
from evalkit.records.requests import FusionRequest, GoldsetRunRequest
from evalkit.store import Store
from evalkit.store.goldsets import save_goldset
from evalkit.store.runs import get_run, run_queries, run_results

PARAMS = {"combgmnz": {"gamma": 0.7}, "rbc": {"phi": 0.8}, "logn_isr": {"sigma": 0.3}}
WEIGHTS = (0.5, 0.3, 0.2)


@pytest.fixture(scope="module")
def ranx() -> Any:
    return pytest.importorskip("ranx")


def random_run(
    seed: int, *, n_queries: int = 30, pool: int = 40, depth: int = 20, ties: bool = False
) -> pd.DataFrame:
    """A run of ``n_queries`` queries, each with up to ``depth`` documents out of ``pool``
    (some queries empty); continuous scores, or with ``ties`` small integers."""
    rng = np.random.default_rng(seed)
    rows = []
    for q in range(n_queries):
        n = int(rng.integers(0, depth + 1)) if q % 7 else depth
        docs = rng.choice(pool, size=n, replace=False)
        scores = rng.integers(0, 4, size=n).astype(float) if ties else rng.normal(size=n)
        rows += [(f"q{q:02d}", f"d{d:02d}", float(s)) for d, s in zip(docs, scores, strict=True)]
    return pd.DataFrame(rows, columns=["query_id", "doc_id", "score"])


def ranx_run(ranx: Any, frame: pd.DataFrame, queries: Sequence[str]) -> Any:
    """The same run as a ranx Run, every query present (empty where the run has none), each
    query's documents given in evalkit's ranking order (score, then doc id, descending)."""
    ranked = frame.sort_values(["query_id", "score", "doc_id"], ascending=[True, False, False])
    run: dict[str, dict[str, float]] = {query: {} for query in queries}
    for query, doc, score in ranked[["query_id", "doc_id", "score"]].itertuples(index=False):
        run[query][doc] = score
    return ranx.Run.from_dict(run)


class RanxRuns:
    """The same runs as ranx Runs (built once: building them is most of ranx's time here)."""

    def __init__(self, ranx: Any, frames: Sequence[pd.DataFrame]) -> None:
        self.ranx = ranx
        self.queries = sorted(set().union(*(set(frame["query_id"]) for frame in frames)))
        self.runs = [ranx_run(ranx, frame, self.queries) for frame in frames]
        self._zmuv: list[Any] | None = None

    def zmuv(self) -> list[Any]:
        """The runs under zmuv, by ranx's per-query kernel ``_zmuv_norm``: ranx 0.3.21's
        ``zmuv_norm`` divides by zero on a query a run has no documents for, which empties
        other queries of its parallel loop."""
        from ranx.normalization.zmuv_norm import _zmuv_norm

        if self._zmuv is None:
            self._zmuv = [
                self.ranx.Run.from_dict(
                    {
                        q: dict(_zmuv_norm(run.run[q])) if len(run.run[q]) else {}
                        for q in self.queries
                    }
                )
                for run in self.runs
            ]
        return self._zmuv

    def fused(self, fusion: Fusion) -> dict[str, dict[str, float]]:
        """ranx's fusion of the runs as ``fusion`` says."""
        params: dict[str, Any] = dict(fusion.params)
        if fusion.weights is not None:
            params["weights"] = list(fusion.weights)
        zmuv = fusion.norm == "zmuv"
        fused = self.ranx.fuse(
            self.zmuv() if zmuv else self.runs,
            norm=None if zmuv or fusion.norm == "none" else fusion.norm,
            method=fusion.definition.ranx_name,
            params=params,
        )
        return {query: dict(docs) for query, docs in fused.to_dict().items() if docs}


def assert_same_fusion(ours: pd.DataFrame, theirs: dict[str, dict[str, float]]) -> None:
    """Scores equal to 1e-9 for the same (query, document) pairs; ranks equal where ranx's
    score is not tied, and in every query our order is a ranking by ranx's scores."""
    assert set(zip(ours["query_id"], ours["doc_id"], strict=True)) == {
        (query, doc) for query, docs in theirs.items() for doc in docs
    }
    for query, group in ours.groupby("query_id", sort=False):
        expected = theirs[str(query)]
        ranked = sorted(expected.items(), key=lambda item: -item[1])
        ranx_rank = {doc: rank for rank, (doc, _) in enumerate(ranked, start=1)}
        scores = np.array([expected[doc] for doc in group["doc_id"]])
        np.testing.assert_allclose(group["score"].to_numpy(), scores, rtol=0, atol=1e-9)
        assert list(group["rank"]) == list(range(1, len(group) + 1))
        assert np.all(np.diff(scores) <= 1e-9), f"{query}: not ranked by ranx's scores"
        tied = np.sum(np.abs(scores[:, None] - scores[None, :]) <= 1e-9, axis=1) > 1
        ranks = np.array([ranx_rank[doc] for doc in group["doc_id"]])
        np.testing.assert_array_equal(group["rank"].to_numpy()[~tied], ranks[~tied])


def fusion_of(method: str, norm: str, n_runs: int = 3) -> Fusion:
    weights = WEIGHTS[:n_runs] if FUSION_METHODS[method].weighted else None
    return Fusion.of(method, norm=norm, params=PARAMS.get(method), weights=weights, n_runs=n_runs)


def cases() -> list[tuple[str, str]]:
    """Every method under every normalisation, but Borda's under the methods that read
    positions: ranx then ranks the documents a run lacks in Python's set order."""
    return [
        (method, norm)
        for method, definition in FUSION_METHODS.items()
        for norm in NORMALIZATIONS
        if not (norm == "borda" and definition.positional)
    ]


@pytest.fixture(scope="module")
def three_runs() -> list[pd.DataFrame]:
    return [random_run(seed) for seed in range(3)]


@pytest.fixture(scope="module")
def prepared(three_runs: list[pd.DataFrame]) -> FusionRuns:
    return FusionRuns(three_runs)


@pytest.fixture(scope="module")
def three_ranx_runs(ranx: Any, three_runs: list[pd.DataFrame]) -> RanxRuns:
    return RanxRuns(ranx, three_runs)


@pytest.mark.parametrize(("method", "norm"), cases())
@pytest.mark.slow
def test_every_method_and_normalisation_equals_ranx(
    three_ranx_runs: RanxRuns, prepared: FusionRuns, method: str, norm: str
) -> None:
    fusion = fusion_of(method, norm)
    assert_same_fusion(prepared.fuse(fusion), three_ranx_runs.fused(fusion))


@pytest.mark.parametrize("norm", ["min-max", "rank", "borda", "none"])
def test_ties_within_runs_and_in_the_fused_ranking_follow_ranx_and_trec_eval(
    ranx: Any, norm: str
) -> None:
    # At most 15 documents a query: ranx's sort then keeps the order the run was given in
    # among ties, which ranx_run makes evalkit's (doc id descending).
    runs = [random_run(seed, depth=15, pool=25, ties=True) for seed in (10, 11)]
    prepared = FusionRuns(runs)
    theirs = RanxRuns(ranx, runs)
    for method, definition in FUSION_METHODS.items():
        if norm == "borda" and definition.positional:
            continue
        fusion = fusion_of(method, norm, n_runs=2)
        fused = prepared.fuse(fusion)
        assert_same_fusion(fused, theirs.fused(fusion))
        by_rank = fused.sort_values(["query_id", "rank"])
        for _, group in by_rank.groupby("query_id"):
            scores, docs = group["score"].to_numpy(), group["doc_id"].to_numpy()
            for i in range(len(group) - 1):
                if scores[i] == scores[i + 1]:
                    assert docs[i] > docs[i + 1], "ties go by doc id, descending"


def test_a_run_s_ties_are_ranked_by_doc_id_descending() -> None:
    runs = [
        pd.DataFrame({"query_id": ["q"] * 3, "doc_id": ["a", "b", "c"], "score": [1.0] * 3}),
        pd.DataFrame({"query_id": ["q"], "doc_id": ["z"], "score": [5.0]}),
    ]
    fused = fuse(runs, Fusion.of("rrf", n_runs=2))
    by_doc = dict(zip(fused["doc_id"], fused["score"], strict=True))
    assert by_doc == pytest.approx({"c": 1 / 61, "b": 1 / 62, "a": 1 / 63, "z": 1 / 61})
    assert list(fused["doc_id"]) == ["z", "c", "b", "a"]


def test_documents_in_one_run_only() -> None:
    a = pd.DataFrame({"query_id": ["q", "q"], "doc_id": ["shared", "only_a"], "score": [2.0, 1.0]})
    b = pd.DataFrame({"query_id": ["q", "q"], "doc_id": ["only_b", "shared"], "score": [9.0, 3.0]})
    runs = [a, b]

    def scores(method: str, **options: Any) -> dict[str, float]:
        fused = fuse(runs, Fusion.of(method, n_runs=2, **options))
        return dict(zip(fused["doc_id"], fused["score"], strict=True))

    assert scores("rrf") == pytest.approx(
        {"shared": 1 / 61 + 1 / 62, "only_a": 1 / 62, "only_b": 1 / 61}
    )
    # min-max: a gives shared 1, only_a 0; b gives only_b 1, shared 0.
    assert scores("combsum") == pytest.approx({"shared": 1.0, "only_a": 0.0, "only_b": 1.0})
    assert scores("combmnz") == pytest.approx({"shared": 2.0, "only_a": 0.0, "only_b": 1.0})
    assert scores("combanz") == pytest.approx({"shared": 0.5, "only_a": 0.0, "only_b": 1.0})
    assert scores("combmin") == pytest.approx({"shared": 0.0, "only_a": 0.0, "only_b": 1.0})
    # A run without the document counts -1e9 for CombMAX, as in ranx.
    assert scores("combmax", norm="none")["only_a"] == 1.0
    low = [a.assign(score=[-2e9, -3e9]), b]
    fused = fuse(low, Fusion.of("combmax", norm="none", n_runs=2))
    assert dict(zip(fused["doc_id"], fused["score"], strict=True))["only_a"] == -1e9
    # Borda: 3 candidates; each run ranks 2, the one it lacks gets (3 - 2 + 1) / 2 = 1.
    assert scores("bordafuse") == pytest.approx({"shared": 3 + 2, "only_a": 2 + 1, "only_b": 1 + 3})


def test_empty_runs_and_queries() -> None:
    a, b = random_run(1), random_run(2)
    empty = pd.DataFrame({"query_id": [], "doc_id": [], "score": []}).astype(
        {"query_id": object, "doc_id": object, "score": float}
    )
    two = Fusion.of("combsum", n_runs=2)
    three = Fusion.of("combsum", n_runs=3)
    pd.testing.assert_frame_equal(fuse([a, b, empty], three), fuse([a, b], two))
    weighted = fuse([a, b, empty], Fusion.of("wsum", weights=(0.6, 0.4, 0.9), n_runs=3))
    pd.testing.assert_frame_equal(
        weighted, fuse([a, b], Fusion.of("wsum", weights=(0.6, 0.4), n_runs=2))
    )
    nothing = fuse([empty, empty], Fusion.of("rrf", n_runs=2), k=10)
    assert nothing.empty
    assert list(nothing.columns) == ["query_id", "doc_id", "score", "rank"]
    # A query one run has no rows for is one it retrieved nothing for.
    only_a = a[a["query_id"] == "q01"]
    fused = fuse([only_a, b[b["query_id"] == "q02"]], Fusion.of("rrf", n_runs=2))
    assert set(fused["query_id"]) == {"q01", "q02"}


def test_the_fused_run_is_cut_to_k_query_by_query(prepared: FusionRuns) -> None:
    full = prepared.fuse(Fusion.of("rrf", n_runs=3))
    cut = prepared.fuse(Fusion.of("rrf", n_runs=3), k=5)
    assert cut["rank"].max() == 5
    pd.testing.assert_frame_equal(
        cut.reset_index(drop=True), full[full["rank"] <= 5].reset_index(drop=True)
    )
    assert list(cut["query_id"]) == sorted(cut["query_id"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "nope"}, "unknown fusion method 'nope'; choose one of: rrf, combsum"),
        ({"method": "rrf", "norm": "l2"}, "unknown score normalisation 'l2'"),
        ({"method": "wsum", "weights": (0.5, 0.5, 0.5)}, "3 weight(s) for 2 runs"),
        ({"method": "wsum"}, "needs one weight per run"),
        ({"method": "rrf", "weights": (1.0, 1.0)}, "takes no weights"),
        ({"method": "combgmnz"}, "needs gamma"),
        ({"method": "rrf", "params": {"phi": 0.5}}, "takes k; got phi"),
        ({"method": "rrf", "params": {"k": -1}}, "must be >= 0"),
        ({"method": "logn_isr", "params": {"sigma": 2.0}}, "between 0 and 1"),
    ],
)
def test_bad_fusions_say_what_is_wrong(options: dict[str, Any], message: str) -> None:
    method = options.pop("method")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Fusion.of(method, n_runs=2, **options)


def test_bad_runs_are_named() -> None:
    a = random_run(1)
    with pytest.raises(ConfigError, match="at least two runs"):
        FusionRuns([a])
    twice = pd.concat([a, a.head(1)])
    with pytest.raises(InputError, match=r"run 2 of 2 lists document .* twice for query"):
        FusionRuns([a, twice])
    with pytest.raises(InputError, match="run 1 of 2: score is missing or NaN"):
        FusionRuns([a.assign(score=np.nan), a])


def test_ranx_names_are_accepted() -> None:
    assert Fusion.of("mnz", n_runs=2).method == "combmnz"
    assert Fusion.of("comb_sum", norm="min_max", n_runs=2) == Fusion.of("combsum", n_runs=2)
    assert Fusion.of("rrf", n_runs=2).params == {"k": 60}


def test_the_cli_help_names_every_method_and_normalisation() -> None:
    for name in FUSION_METHODS:
        assert name in METHODS_HELP
    for norm in NORMALIZATIONS:
        assert norm in NORMS_HELP


def test_the_weight_grid_has_every_combination_adding_up_to_one() -> None:
    assert len(weight_grid(2)) == 11
    three = weight_grid(3)
    assert len(three) == 66
    assert (0.1, 0.2, 0.7) in three
    assert all(abs(sum(w) - 1) < 1e-9 for w in three)


def qrels_of(runs: Sequence[pd.DataFrame], seed: int, pool: int = 40) -> pd.DataFrame:
    """Graded judgments of some documents the runs retrieved, and of some they did not."""
    rng = np.random.default_rng(seed)
    queries = sorted(set().union(*(set(frame["query_id"]) for frame in runs)))
    rows = []
    for query in queries:
        for doc in rng.choice(pool, size=6, replace=False):
            rows.append((query, f"d{doc:02d}", int(rng.integers(1, 4))))
    return pd.DataFrame(rows, columns=["query_id", "doc_id", "relevance"])


def overlapping_runs(seeds: Sequence[int], n_queries: int = 25, n_docs: int = 15) -> list[Any]:
    """Runs that all retrieve the same documents for a query, with continuous scores: a
    weighted fusion of them has no tied scores, whatever the weights."""
    runs = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        rows = [
            (f"q{q:02d}", f"d{d:02d}", float(rng.random()))
            for q in range(n_queries)
            for d in range(n_docs)
        ]
        runs.append(pd.DataFrame(rows, columns=["query_id", "doc_id", "score"]))
    return runs


@pytest.mark.parametrize(
    ("method", "norm"), [("wsum", "min-max"), ("wmnz", "sum"), ("mixed", "max")]
)
def test_optimize_fusion_chooses_what_ranx_chooses(ranx: Any, method: str, norm: str) -> None:
    runs = overlapping_runs([21, 22])
    qrels = qrels_of(runs, 3, pool=20)  # most judged documents retrieved, some not
    ours = optimize_fusion(runs, qrels, method=method, norm=norm, measure="ndcg@10")
    theirs = RanxRuns(ranx, runs)
    ranx_qrels = ranx.Qrels(
        {
            q: dict(zip(g["doc_id"], g["relevance"], strict=True))
            for q, g in qrels.groupby("query_id")
        }
    )
    chosen = ranx.optimize_fusion(
        ranx_qrels,
        theirs.runs,
        norm=norm,
        method=method,
        metric="ndcg@10",
        show_progress=False,
    )
    assert ours.fusion.weights == tuple(chosen["weights"])
    assert ours.n_queries == len(theirs.queries)
    assert [trial.weights for trial in ours.trials] == weight_grid(2)
    for trial in ours.trials:
        fused = ranx.fuse(theirs.runs, norm=norm, method=method, params={"weights": trial.weights})
        assert trial.score == pytest.approx(ranx.evaluate(ranx_qrels, fused, "ndcg@10"), abs=1e-9)


def test_optimize_fusion_fits_rrf_s_k_on_ranx_s_grid_and_scores_as_trec_eval() -> None:
    runs = [random_run(seed, n_queries=25) for seed in (21, 22)]
    qrels = qrels_of(runs, 3)
    ours = optimize_fusion(runs, qrels, method="rrf", measure="ndcg@10", k=10)
    assert [trial.params["k"] for trial in ours.trials] == list(range(10, 101, 10))
    # RRF ties often (first in one run, absent from the other); ranx orders ties its own
    # way, evalkit as trec_eval does, so the figure is evalkit's own evaluation.
    fused = fuse(runs, ours.fusion, k=10)
    evaluated = Evaluator(qrels, ["ndcg@10"]).evaluate(fused, complete=True)
    assert ours.score == pytest.approx(evaluated.aggregate["ndcg@10"], abs=1e-12)
    assert ours.score == max(trial.score for trial in ours.trials)
    best = [i for i, trial in enumerate(ours.trials) if trial.score == ours.score]
    assert ours.fusion.params["k"] == ours.trials[best[-1]].params["k"]


def test_optimize_fusion_refuses_a_method_with_nothing_to_fit() -> None:
    with pytest.raises(ConfigError, match="combsum has no parameter or weights to fit"):
        optimize_fusion(
            [random_run(1), random_run(2)],
            qrels_of([random_run(1)], 0),
            method="combsum",
            measure="ndcg@10",
        )


# -- a real store: evalkit fuse, runs show, compare ------------------------------------------

N_QUERIES = 30


class ListRetriever:
    """Ranks query n's relevant document ``rel{n}`` at ``rank_of(n)``, among fillers shared
    by the retrievers (so fusion has documents in both runs and in one only)."""

    def __init__(self, name: str, rank_of: Any, fail: Sequence[str] = ()) -> None:
        self.name = name
        self.rank_of = rank_of
        self.fail = set(fail)

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        results = []
        for query in queries:
            if query.id in self.fail:
                results.append(QueryResult(query.id, (), 3.0, error=f"HTTP 503 for {query.id}"))
                continue
            n = int(query.id[1:])
            docs = [f"{self.name}{i}" if i % 2 else f"shared{n}_{i}" for i in range(1, 8)]
            docs.insert(self.rank_of(n) - 1, f"rel{n}")
            ranked = tuple(ScoredDoc(d, 1.0 - i / 10, i + 1) for i, d in enumerate(docs[:k]))
            results.append(QueryResult(query.id, ranked, 2.0))
        return results

    def describe(self) -> dict[str, Any]:
        return {"kind": "list", "collection": "kb", "name": self.name}

    def index_fingerprint(self) -> str | None:
        return None

    def model_fingerprint(self) -> None:
        return None


def goldset(name: str, queries: int = N_QUERIES) -> Goldset:
    ids = [f"q{i}" for i in range(queries)]
    return Goldset.build(
        name,
        [Query(q, f"question {q}", tags=("train",) if int(q[1:]) % 3 == 0 else ()) for q in ids],
        [Judgment(q, f"rel{q[1:]}", 1) for q in ids],
    )


@pytest.fixture
def stored(evalkit_home: Path) -> dict[str, str]:
    """Two runs of goldset ``fused`` (one with a failed query), and one of another goldset."""
    evalkit_home.mkdir(parents=True, exist_ok=True)
    gold, other = goldset("fused"), goldset("other", 5)
    request = GoldsetRunRequest(k=8, measures=("ndcg@10", "mrr@10"), answers=False)
    with Store.open(evalkit_home / "evalkit.duckdb") as store:
        save_goldset(store, gold)
        save_goldset(store, other)
        a = evaluate_goldset(store, gold, ListRetriever("a", lambda n: n % 5 + 1), request)
        b = evaluate_goldset(store, gold, ListRetriever("b", lambda n: 5 - n % 5), request)
        c = evaluate_goldset(store, gold, ListRetriever("c", lambda n: 1, fail=["q7"]), request)
        o = evaluate_goldset(store, other, ListRetriever("o", lambda n: 1), request)
    return {
        "a": a.run.run_id,
        "b": b.run.run_id,
        "c": c.run.run_id,
        "other": o.run.run_id,
        "store": str(evalkit_home / "evalkit.duckdb"),
    }


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = invoke(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.slow
def test_evalkit_fuse_stores_a_run_every_command_takes(
    stored: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "fuse", stored["a"], stored["b"], "--format", "json")
    assert code == 0
    data = json.loads(out)
    fused_id = data["run_id"]
    assert data["kind"] == "fused"
    assert data["status"] == "complete"
    assert data["compare"] == f"evalkit compare {stored['a']} {stored['b']} {fused_id}"
    with Store.open(Path(stored["store"]), read_only=True) as store:
        run = get_run(store, fused_id)
        sources = [run_results(store, stored[name]) for name in ("a", "b")]
        results = run_results(store, fused_id)
        replayed = run_queries(store, fused_id)
    assert run.spec.retriever_kind == "fusion"
    assert run.spec.retriever_config["sources"] == [stored["a"], stored["b"]]
    assert run.spec.retriever_config["method"] == "rrf"
    assert run.spec.retriever_config["params"] == {"k": 60}
    assert run.spec.goldset_name == "fused"
    assert run.spec.collection == "kb"
    assert run.n_evaluated == N_QUERIES
    assert replayed["latency_ms"].isna().all()
    expected = fuse(sources, Fusion.of("rrf", n_runs=2), k=8)
    pd.testing.assert_frame_equal(
        results[["query_id", "doc_id", "rank"]].reset_index(drop=True),
        expected.sort_values(["query_id", "rank"])[["query_id", "doc_id", "rank"]]
        .reset_index(drop=True)
        .astype({"rank": results["rank"].dtype}),
    )
    # Each retriever finds the relevant document somewhere; fused, it rises.
    assert run.aggregates["mrr@10"] > 0

    code, out, _ = run_cli(capsys, "runs", "show", fused_id, "--format", "json")
    assert code == 0
    assert json.loads(out)["retriever_config"]["method"] == "rrf"
    code, out, _ = run_cli(capsys, "runs", "show", fused_id)
    assert code == 0
    assert "fusion" in out

    code, out, _ = run_cli(
        capsys, "compare", stored["a"], fused_id, "--resamples", "500", "--format", "json"
    )
    assert code == 0, out
    compared = json.loads(out)
    assert compared["candidate"] == fused_id

    code, out, _ = run_cli(
        capsys,
        "fuse",
        stored["a"],
        stored["b"],
        "--method",
        "wsum",
        "--weight",
        "0.7",
        "--weight",
        "0.3",
        "--k",
        "5",
        "--label",
        "hybrid",
        "--tag",
        "fusion-test",
    )
    assert code == 0
    assert "wsum" in out
    assert "evalkit compare" in out


def test_a_query_failed_in_a_source_fails_in_the_fused_run(
    stored: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "fuse", stored["a"], stored["c"], "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["status"] == "partial"
    assert data["n_failed"] == 1
    assert "failed in source run" in err
    with Store.open(Path(stored["store"]), read_only=True) as store:
        replayed = run_queries(store, data["run_id"])
    failed = replayed[replayed["error"].notna()]
    assert list(failed["query_id"]) == ["q7"]
    assert failed["error"].iloc[0].startswith(f"failed in source run {stored['c']}: HTTP 503")


def test_optimize_stores_the_held_out_queries_only(
    stored: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(
        capsys,
        "fuse",
        stored["a"],
        stored["b"],
        "--method",
        "wsum",
        "--optimize",
        "--optimize-measure",
        "mrr@10",
        "--train-share",
        "0.4",
        "--seed",
        "3",
        "--format",
        "json",
    )
    assert code == 0, out
    data = json.loads(out)
    optimized = data["optimized"]
    assert optimized["train_queries"] == 12
    assert optimized["held_out_queries"] == 18
    assert optimized["measure"] == "mrr@10"
    assert 0 <= optimized["score"] <= 1
    assert len(data["fusion"]["weights"]) == 2
    with Store.open(Path(stored["store"]), read_only=True) as store:
        run = get_run(store, data["run_id"])
        replayed = run_queries(store, data["run_id"])
    assert len(replayed) == 18
    assert run.n_evaluated == 18
    config = run.spec.retriever_config["optimize"]
    assert config["stored"] == "held-out queries only"
    assert config["split"] == {"train_share": 0.4, "seed": 3}
    assert config["train_score"] == optimized["score"]
    # Compared with a source, only the held-out queries are paired.
    code, out, _ = run_cli(
        capsys, "compare", stored["a"], data["run_id"], "--resamples", "500", "--format", "json"
    )
    assert code == 0, out
    assert json.loads(out)["n_dropped"] == 12

    code, out, _ = run_cli(
        capsys,
        "fuse",
        stored["a"],
        stored["b"],
        "--method",
        "rrf",
        "--optimize",
        "--train-tag",
        "train",
    )
    assert code == 0, out
    assert "fitted on" in out
    assert "10 training queries" in out
    assert "the 20 held-out queries only" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a", "other"], "runs of different goldsets cannot be fused"),
        (["a", "b", "--method", "nope"], "unknown fusion method 'nope'"),
        (["a", "b", "--method", "wsum", "--weight", "1"], "1 weight(s) for 2 runs"),
        (["a", "b", "--param", "k"], "--param takes NAME=NUMBER"),
        (["a"], "at least two runs"),
        (["a", "a"], "is named twice"),
        (["a", "b", "--method", "isr", "--optimize"], "has no parameter or weights to fit"),
        (["a", "b", "--optimize", "--train-tag", "nothing"], "--train-tag 'nothing' marks 0"),
        (["a", "b", "--optimize", "--param", "k=20"], "--optimize fits k of rrf"),
        (["a", "b", "--optimize", "--param", "k=20"], "leave out --param k=..."),
        (
            ["a", "b", "--method", "wsum", "--weight", "1", "--weight", "2", "--optimize"],
            "--optimize fits the weights of wsum: leave out --weight",
        ),
        (["a", "b", "--method", "combgmnz"], "combgmnz needs gamma"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    stored: dict[str, str], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    argv = [stored.get(arg, arg) for arg in args]
    code, _, err = run_cli(capsys, "fuse", *argv)
    assert code == 2
    assert message in err


def test_a_fused_run_cut_below_its_sources_measures_scores_them_at_its_depth(
    stored: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """recall@100 of a run keeping 5 documents would be recall@5 under another name."""
    code, out, err = run_cli(
        capsys, "fuse", stored["a"], stored["b"], "--k", "5", "--format", "json"
    )
    assert code == 0, err
    fused = json.loads(out)
    assert (fused["k"], sorted(fused["aggregates"])) == (5, ["mrr@5", "ndcg@5"])
    assert fused["notes"] == [
        "the fused run keeps 5 documents per query, so the sources' measures cut deeper are "
        "taken at 5: ndcg@10 as ndcg@5, mrr@10 as mrr@5"
    ]
    assert "note: the fused run keeps 5 documents per query" in err
    code, _, err = run_cli(capsys, "fuse", stored["a"], stored["b"], "--k", "5", "-m", "ndcg@10")
    assert code == 2
    assert "ndcg@10 needs 10 documents per query; the fused run keeps 5 (--k)" in err


def test_runs_of_one_model_on_two_backends_fuse_into_a_run_of_that_model(store: Store) -> None:
    """Sources embedded on ONNX Runtime and on torch have two canary hashes: the fused run
    recorded no query model, and `evalkit explain` then named a model change against it."""
    onnx, torch = two_backends()
    gold = seeded_goldset(6)
    save_goldset(store, gold)
    sources = [
        store_run(
            store,
            gold,
            {q: perfect(q) for q in query_ids(6)},
            retriever_kind="http",
            config={"kind": "http", "url": url},
            collection=None,
            model_fingerprint=model.canary_hash,
            model_canaries=model.canary_vectors,
            index_fingerprint=None,
        )
        for url, model in (("http://a", torch), ("http://b", onnx))
    ]
    fused = fuse_runs(store, FusionRequest(run_ids=tuple(sources))).run.spec
    assert (fused.model_name, fused.model_fingerprint, fused.model_canaries) == (
        torch.name,
        torch.canary_hash,
        torch.canary_vectors,
    )
