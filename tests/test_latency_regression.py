"""Latency watched as precision is.

The statistics (``evalkit.stats.latency``) on synthetic data: pairs, unpaired queries, ties,
empty input, and the windowed bootstrap against a brute-force one. Then the real parts: a
loopback HTTP retriever whose service time the test sets (``time.sleep``, per query), replayed
20 times unchanged, where neither the ``latency_regression`` rule nor the gate's
``--max-latency-increase`` may fire on any consecutive pair, and once 50 % slower, where both
must; production latencies ingested from a traffic log; and the index size each run records
from real Chroma and Qdrant, with the probable cause it gives a latency rise.
"""

from __future__ import annotations

import json
import math
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from gate_inputs import write_goldset_files
from loopback import running
from qdrant_client import QdrantClient, models
from test_retrievers_model_check import DIMENSION, HashEmbedder
from traffic_windows import day_window_summary

from evalkit.alerts.rules import RULE_KINDS, LatencyRegressionParams, RuleContext
from evalkit.alerts.rules.latency import LATENCY_REGRESSION
from evalkit.causes import index_growth
from evalkit.cli import invoke
from evalkit.config import QdrantSettings, load_settings
from evalkit.config.types import parse_increase, parse_quantile
from evalkit.dashboard.index_latency import latency_size_chart
from evalkit.dashboard.loaders.index_health import index_latency
from evalkit.errors import ConfigError, InputError
from evalkit.goldset import Goldset, load_goldset
from evalkit.pipeline import evaluate_goldset, gate_against_baseline
from evalkit.records import Document, Query, QueryResult, ScoredDoc
from evalkit.records.requests import GatePolicy, GoldsetRunRequest
from evalkit.retrievers import ChromaRetriever, index_corpus
from evalkit.retrievers.base import IndexSize, index_size_of
from evalkit.retrievers.chroma_client import close_client, open_chroma_client
from evalkit.retrievers.http import HttpRetriever
from evalkit.retrievers.qdrant import QdrantRetriever
from evalkit.stats.decision import Decision
from evalkit.stats.latency import bootstrap_quantiles, compare_latency, latency_decision
from evalkit.stats.latency_check import run_latencies
from evalkit.store import Store
from evalkit.store.export import export_run
from evalkit.store.goldsets import save_goldset
from evalkit.store.runs import get_run
from evalkit.store.traffic import save_traffic_replay
from evalkit.traffic import ingest_paths

N_QUERIES = 100
BASE_MS = 200.0
"""Service time of the cheapest query (the dearest takes three times as long). On a shared
2-core machine under load 10 each request also waits for a CPU, a few ms and 40 ms or more in
a burst of load; a service time this much larger keeps that wait from diluting a slower
retriever below the 20 % the gate allows (a 30 % slower one measured +15 % with 8 ms, fell
below 20 % in 4 of 10 pairs with 100 ms, and measured +22.5 % [+16.9 %, +27.4 %] with 200 ms
once on a loaded CI machine)."""
SLOWER = 1.5
"""The slowed retriever's service time, against 1.0: far enough beyond the 20 % allowed that
a CPU wait of a loaded machine cannot dilute it into an inconclusive interval (the benchmark,
``benchmarks/latency_test.py``, measures how often a 30 % slower one is caught)."""
CONCURRENCY = 40
"""Requests in flight: a stall of the machine delays all of them at once, which moves the
median only if it holds half the queries."""
REPEATS = 20


def series(values: Sequence[float], prefix: str = "q") -> pd.Series:
    return pd.Series(list(values), index=[f"{prefix}{i}" for i in range(len(values))])


# -- the statistics ---------------------------------------------------------------------------


def test_a_paired_rise_is_measured_exactly_and_decided_by_its_interval() -> None:
    rng = np.random.default_rng(0)
    base = rng.lognormal(2.5, 0.6, 300)
    rose = compare_latency(series(base), series(base * 1.5), quantile="p95", resamples=2000)
    assert rose.increase == pytest.approx(0.5)
    # Every query rose by the same factor: whatever the resample, the ratio is 1.5.
    assert (rose.ci_low, rose.ci_high) == (pytest.approx(0.5), pytest.approx(0.5))
    assert rose.decision is Decision.REGRESSION
    assert (rose.n_paired, rose.n_baseline_only, rose.n_candidate_only) == (300, 0, 0)
    assert rose.baseline_ms == pytest.approx(np.quantile(base, 0.95))
    same = compare_latency(series(base), series(base * 1.1), max_increase=0.2, resamples=2000)
    assert same.decision is Decision.PASS
    assert "p95 latency" in rose.summary()
    assert "+50.0 %" in rose.summary()


def test_pairing_narrows_the_interval_of_a_query_dependent_latency() -> None:
    rng = np.random.default_rng(1)
    difficulty = rng.lognormal(2.5, 0.8, 400)
    base = difficulty * rng.lognormal(0, 0.05, 400)
    cand = difficulty * rng.lognormal(0, 0.05, 400) * 1.5
    paired = compare_latency(series(base), series(cand), resamples=4000)
    unpaired = compare_latency(series(base), series(cand), resamples=4000, paired=False)
    assert paired.increase == pytest.approx(unpaired.increase)
    assert paired.ci_high - paired.ci_low < 0.5 * (unpaired.ci_high - unpaired.ci_low)
    assert paired.decision is Decision.REGRESSION
    assert unpaired.n_paired == 0
    assert unpaired.n_baseline_only == 400


def test_queries_one_run_lacks_are_resampled_apart() -> None:
    rng = np.random.default_rng(2)
    base = series(rng.lognormal(2.0, 0.4, 200))
    cand = series(rng.lognormal(2.0, 0.4, 150))
    extra = series(rng.lognormal(2.0, 0.4, 30), prefix="new")
    compared = compare_latency(base, pd.concat([cand, extra]), resamples=2000)
    assert (compared.n_paired, compared.n_baseline_only, compared.n_candidate_only) == (
        150,
        50,
        30,
    )
    assert compared.n_baseline == 200
    assert compared.n_candidate == 180
    assert compared.candidate_ms == pytest.approx(
        np.quantile(np.concatenate([cand.to_numpy(), extra.to_numpy()]), 0.5)
    )


def test_ties_and_identical_runs_pass_even_with_no_increase_allowed() -> None:
    flat = series([5.0] * 50)
    compared = compare_latency(flat, flat, max_increase=0.0, resamples=500)
    assert (compared.increase, compared.ci_low, compared.ci_high) == (0.0, 0.0, 0.0)
    assert compared.decision is Decision.PASS
    ties = series([3.0] * 60 + [9.0] * 40)
    assert compare_latency(ties, ties, quantile="p50", resamples=500).decision is Decision.PASS
    zeros = series([0.0] * 20)
    assert compare_latency(zeros, zeros, resamples=500).increase == 0.0
    from_zero = compare_latency(zeros, series([1.0] * 20), resamples=500)
    assert math.isinf(from_zero.increase)
    assert from_zero.to_dict()["increase"] is None
    assert from_zero.decision is Decision.REGRESSION


def test_empty_repeated_and_bad_inputs_are_refused() -> None:
    with pytest.raises(InputError, match="baseline has no latency"):
        compare_latency(series([]), series([1.0]))
    with pytest.raises(InputError, match="candidate has no latency"):
        compare_latency(series([1.0]), series([math.nan]))
    repeated = pd.Series([1.0, 2.0], index=["q1", "q1"])
    with pytest.raises(InputError, match="repeats query ids"):
        compare_latency(repeated, series([1.0]))
    assert compare_latency(repeated, series([1.0]), paired=False, resamples=100).n_paired == 0
    with pytest.raises(InputError, match="negative"):
        compare_latency(series([-1.0]), series([1.0]))
    with pytest.raises(ConfigError, match="p50, p95, p99"):
        compare_latency(series([1.0]), series([1.0]), quantile="95th")
    with pytest.raises(ConfigError, match="resamples"):
        compare_latency(series([1.0]), series([1.0]), resamples=10)


def test_few_queries_above_the_quantile_are_noted() -> None:
    compared = compare_latency(series(range(1, 101)), series(range(1, 101)), quantile="p99")
    assert compared.note is not None
    assert "500 queries" in compared.note
    assert compare_latency(series(range(1, 201)), series(range(1, 201))).note is None


def test_the_decision_rule_and_its_vocabulary() -> None:
    assert latency_decision(ci_low=0.21, ci_high=0.4, max_increase=0.2) is Decision.REGRESSION
    assert latency_decision(ci_low=-0.1, ci_high=0.2, max_increase=0.2) is Decision.PASS
    assert latency_decision(ci_low=0.1, ci_high=0.3, max_increase=0.2) is Decision.INCONCLUSIVE
    assert parse_quantile("p99.9") == pytest.approx(0.999)
    assert parse_increase("20%") == pytest.approx(0.2) == parse_increase(0.2)
    with pytest.raises(ValueError, match="ambiguous"):
        parse_increase("20")


def test_the_windowed_bootstrap_draws_what_a_brute_force_bootstrap_draws() -> None:
    """Same distribution of the resampled quantiles (joint for the paired queries) as
    drawing every resample whole; the window only saves work."""
    rng = np.random.default_rng(3)
    n, paired, level, draws = 3000, 2000, 0.95, 3000
    base = rng.lognormal(2.0, 0.5, n)
    cand = base * rng.lognormal(0.0, 0.1, n)
    brute = np.random.default_rng(4)
    expected = np.empty((draws, 2))
    for row in range(draws):
        shared = brute.integers(0, paired, paired)
        apart = [brute.integers(paired, n, n - paired) for _ in range(2)]
        expected[row] = [
            np.quantile(np.concatenate([values[shared], values[rest]]), level)
            for values, rest in zip((base, cand), apart, strict=True)
        ]
    got_base, got_cand = bootstrap_quantiles(
        base, cand, n_paired=paired, level=level, resamples=draws, rng=np.random.default_rng(5)
    )
    for column, got in enumerate((got_base, got_cand, got_cand / got_base)):
        want = expected[:, column] if column < 2 else expected[:, 1] / expected[:, 0]
        assert np.mean(got) == pytest.approx(np.mean(want), rel=0.005)
        assert np.std(got) == pytest.approx(np.std(want), rel=0.08)
        assert np.quantile(got, [0.025, 0.975]) == pytest.approx(
            np.quantile(want, [0.025, 0.975]), rel=0.01
        )
    again = bootstrap_quantiles(
        base, cand, n_paired=paired, level=level, resamples=draws, rng=np.random.default_rng(5)
    )
    assert np.array_equal(again[0], got_base)
    assert np.array_equal(again[1], got_cand)


# -- a loopback retriever whose service time the test sets -----------------------------------


def weight(query_id: str) -> float:
    """A query's own cost, 1 to 3 times the base service time: long and short queries."""
    return 1.0 + 2.0 * ((int(query_id[1:]) * 37) % 100) / 100.0


class ServiceTime(BaseHTTPRequestHandler):
    """Answers ``qN`` with ``relN_0..2`` after ``BASE_MS x weight x factor`` milliseconds."""

    factor: ClassVar[float] = 1.0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        query_id = str(body["query_id"])
        time.sleep(BASE_MS * weight(query_id) * self.factor / 1000.0)
        number = query_id[1:]
        results = [{"id": f"rel{number}_{r}", "score": 1.0 - r / 10} for r in range(3)]
        payload = json.dumps({"results": results}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


def replay(store: Store, gold: Goldset, url: str) -> str:
    with HttpRetriever(f"{url}/search", retries=0, concurrency=CONCURRENCY) as retriever:
        outcome = evaluate_goldset(
            store, gold, retriever, GoldsetRunRequest(k=10, answers=False, label="latency")
        )
    assert outcome.run.status == "complete"
    return outcome.run.run_id


MAX_WAIT = 0.05
"""The share of its service time a run's median query may have waited for a CPU for the pair
of runs to tell the retriever's latency (see ``waited``)."""


def waited(store: Store, run_id: str, factor: float) -> float:
    """How long the median query of a run waited beyond the service time the loopback server
    gave it, as a share of that service time: near 0 on a machine that could serve the run."""
    latencies = run_latencies(store, run_id, run_id).latencies
    assert latencies is not None
    service = latencies.index.map(lambda query_id: BASE_MS * weight(query_id) * factor)
    return float(np.median((latencies.to_numpy() - service.to_numpy()) / service.to_numpy()))


def rule_signals(store: Store, **params: Any) -> list[Any]:
    context = RuleContext(store=store, now=datetime(2026, 11, 25), rule="latency", previous={})
    return LATENCY_REGRESSION.evaluate(context, LatencyRegressionParams(**params))


LATENCY_GATE = GatePolicy(max_latency_increase=0.2)


def test_one_retriever_replayed_20_times_raises_no_alarm_and_50_percent_slower_does(
    tmp_path: Path, evalkit_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gold = load_goldset(write_goldset_files(tmp_path / "gold", N_QUERIES), name="lat")
    path = load_settings().resolved_store_path
    path.parent.mkdir(parents=True, exist_ok=True)
    decisions: list[tuple[str, str]] = []
    with running(ServiceTime) as server, Store.open(path) as store:
        save_goldset(store, gold)
        ServiceTime.factor = 1.0
        runs = [replay(store, gold, server.url)]
        for _ in range(REPEATS - 1):
            for _attempt in range(3):
                runs.append(replay(store, gold, server.url))
                [signal] = rule_signals(store, goldset="lat")
                assert signal.evidence["candidate_run"] == runs[-1]
                assert signal.evidence["baseline_run"] == runs[-2]
                outcome = gate_against_baseline(store, runs[-2], runs[-1], policy=LATENCY_GATE)
                assert outcome.report.decision is Decision.PASS
                assert outcome.latency is not None
                assert outcome.latency.comparison is not None
                pair = (signal.evidence["decision"], outcome.latency.comparison.decision)
                held_back = max(waited(store, runs[-2], 1.0), waited(store, runs[-1], 1.0))
                if "regression" not in pair or held_back < MAX_WAIT:
                    break
                # As below: the machine held the candidate's requests back (another
                # process's burst of load), so the pair measured the machine: replay it.
            decisions.append(pair)
        for attempt in range(3):
            if attempt:
                # The machine held the last pair's requests back (another process's burst of
                # load), so it measured the machine, not the retriever: replay both again.
                ServiceTime.factor = 1.0
                runs.append(replay(store, gold, server.url))
            ServiceTime.factor = SLOWER
            slower = replay(store, gold, server.url)
            if max(waited(store, runs[-1], 1.0), waited(store, slower, SLOWER)) < MAX_WAIT:
                break
        [fired] = rule_signals(store, goldset="lat")
        outcome = gate_against_baseline(store, runs[-1], slower, policy=LATENCY_GATE)
    alarms = [pair for pair in decisions if "regression" in pair]
    assert alarms == [], f"false alarms on repeated runs: {decisions}"
    assert fired.active, fired.summary
    assert fired.title.startswith("p50 latency rose")
    assert fired.evidence["ci_low"] > 0.2
    assert outcome.exit_code == 1
    assert outcome.decision is Decision.REGRESSION
    assert outcome.report.decision is Decision.PASS, "quality is unchanged"

    junit, markdown = tmp_path / "gate.xml", tmp_path / "gate.md"
    capsys.readouterr()
    code = invoke(
        [
            "gate",
            "--baseline",
            runs[-1],
            "--candidate",
            slower,
            "--max-latency-increase",
            "20%",
            "--junit",
            str(junit),
            "--markdown",
            str(markdown),
            "--format",
            "json",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert (data["decision"], data["quality_decision"]) == ("regression", "pass")
    assert data["latency"]["comparison"]["decision"] == "regression"
    assert data["latency"]["comparison"]["n_paired"] == N_QUERIES
    suite = ET.parse(junit).getroot()
    case = suite.find("testcase[@name='latency p50']")
    assert case is not None
    assert case.find("failure") is not None
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    summary = markdown.read_text()
    assert summary.startswith("### evalkit gate\n\n**Gate: REGRESSION** - latency: p50 latency")
    assert "Quality: **PASS**" in summary
    assert "### Latency" in summary

    export_run_file = tmp_path / "slower.run"
    with Store.open(path) as store:
        export_run(store, slower, format="trec", output=export_run_file)
    capsys.readouterr()
    code = invoke(
        [
            "gate",
            "--baseline",
            runs[-1],
            "--candidate",
            str(export_run_file),
            "--goldset",
            "lat",
            "--max-latency-increase",
            "20%",
            "--format",
            "json",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 0, "a run file has no latency: the check is skipped, not failed"
    assert data["latency"]["decision"] is None
    assert "run file" in data["latency"]["skipped"]


def test_production_latencies_of_the_newest_window_against_the_one_before(
    tmp_path: Path, store: Store
) -> None:
    rng = np.random.default_rng(6)
    days = {"2026-11-20": 1.0, "2026-11-21": 1.02, "2026-11-22": 1.5}
    lines = []
    for day, factor in days.items():
        start = datetime.fromisoformat(day)
        for n, latency in enumerate(rng.lognormal(3.0, 0.5, 400) * factor):
            ts = start + timedelta(seconds=60 * n)
            record = {"query_id": f"{day}-{n}", "timestamp": f"{ts.isoformat()}Z"}
            lines.append(json.dumps({**record, "text": f"question {n}", "latency_ms": latency}))
    log = tmp_path / "traffic.jsonl"
    log.write_text("\n".join(lines) + "\n")
    ingest_paths(store, [log])
    empty = pd.DataFrame()
    for number, day in enumerate(days):
        save_traffic_replay(store, summary=day_window_summary(f"r{number}", day), per_query=empty)
        if number == 0:
            assert rule_signals(store, source="production") == [], "one window: nothing to compare"
        elif number == 1:
            [quiet] = rule_signals(store, source="production")
            assert not quiet.active
            assert quiet.evidence["n_paired"] == 0
        else:
            [fired] = rule_signals(store, source="production")
            assert fired.active
            assert fired.subject == "traffic"
            assert fired.evidence["candidate_window"] == "2026-11-22"
            assert fired.evidence["baseline_window"] == "2026-11-21"
    assert "latency_regression" in RULE_KINDS
    with pytest.raises(ValueError, match="goldset"):
        LatencyRegressionParams(source="replay")
    assert LatencyRegressionParams(goldset="g", max_increase="35%").max_increase == 0.35


# -- index size, and the probable cause it gives ---------------------------------------------


class SizedRetriever:
    """A retriever object with an index size and a latency the test sets per query."""

    def __init__(self, documents: int, latency_ms: float) -> None:
        self.documents = documents
        self.latency_ms = latency_ms

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        return [
            QueryResult(
                query.id,
                tuple(ScoredDoc(f"rel{query.id[1:]}_{r}", 1.0 - r / 10, r + 1) for r in range(3)),
                self.latency_ms * weight(query.id),
            )
            for query in queries
        ]

    def describe(self) -> dict[str, Any]:
        return {"kind": "sized"}

    def index_fingerprint(self) -> str | None:
        return f"docs-{self.documents}"

    def model_fingerprint(self) -> None:
        return None

    def index_size(self) -> IndexSize:
        return IndexSize(documents=self.documents, vectors=self.documents)


def test_a_latency_rise_names_an_index_that_grew(tmp_path: Path, store: Store) -> None:
    gold = load_goldset(write_goldset_files(tmp_path / "gold", 60), name="sized")
    save_goldset(store, gold)
    request = GoldsetRunRequest(k=10, answers=False)
    small = evaluate_goldset(store, gold, SizedRetriever(10_000, 5.0), request).run.run_id
    large = evaluate_goldset(store, gold, SizedRetriever(14_000, 7.5), request).run.run_id
    assert get_run(store, small).spec.index_documents == 10_000
    assert get_run(store, large).to_dict()["index_size"] == {"documents": 14_000, "vectors": 14_000}
    grew = index_growth(get_run(store, small), get_run(store, large))
    assert grew is not None
    assert grew.kind == "index_grew"
    assert grew.statement.startswith("the index grew by 40% between the runs: 10,000 documents")
    assert index_growth(get_run(store, large), get_run(store, small)) is None
    outcome = gate_against_baseline(store, small, large, policy=LATENCY_GATE)
    assert outcome.latency is not None
    assert outcome.decision is Decision.REGRESSION
    assert any("[index_grew]" in note for note in outcome.latency.notes)
    [signal] = rule_signals(store, goldset="sized")
    assert signal.active
    assert "Probable cause: the index grew by 40%" in signal.summary
    assert signal.evidence["probable_causes"][0]["kind"] == "index_grew"
    drawn = index_latency(store)
    assert list(drawn["index_documents"]) == [14_000, 10_000]
    assert drawn["latency_p50"].iloc[1] == pytest.approx(
        np.median([5.0 * weight(f"q{n}") for n in range(60)])
    )
    chart = latency_size_chart(drawn)
    assert [trace.name for trace in chart.data] == ["sized p50", "sized p95"]
    assert list(chart.data[0].x) == [10_000, 14_000]
    assert chart.layout.yaxis.type == "log"  # latencies on log axes (docs/dashboard.md)


def test_real_chroma_and_qdrant_report_their_index_size(tmp_path: Path, store: Store) -> None:
    embedder = HashEmbedder()
    documents = [Document(f"d{n}", f"document {n} about refunds") for n in range(40)]
    client = open_chroma_client(path=tmp_path / "chroma")
    try:
        index_corpus(client, documents[:30], embedder, collection_name="sized")
    finally:
        close_client(client)
    gold = load_goldset(write_goldset_files(tmp_path / "gold", 5), name="chroma")
    save_goldset(store, gold)
    request = GoldsetRunRequest(k=10, answers=False)
    runs = []
    for upto in (30, 40):
        if upto == 40:
            client = open_chroma_client(path=tmp_path / "chroma")
            try:
                index_corpus(client, documents, embedder, collection_name="sized")
            finally:
                close_client(client)
        with ChromaRetriever.embedded(tmp_path / "chroma", "sized", embedder) as retriever:
            assert retriever.index_size() == IndexSize(upto, upto)
            runs.append(evaluate_goldset(store, gold, retriever, request).run)
    assert [run.spec.index_documents for run in runs] == [30, 40]
    grew = index_growth(get_run(store, runs[0].run_id), get_run(store, runs[1].run_id))
    assert grew is not None
    assert "grew by 33%" in grew.statement

    qdrant = QdrantClient(path=str(tmp_path / "qdrant"))
    try:
        qdrant.create_collection(
            "sized", vectors_config=models.VectorParams(size=DIMENSION, distance="Cosine")
        )
        qdrant.upsert(
            "sized",
            points=[
                models.PointStruct(id=n, vector=vector.tolist(), payload={"doc_id": f"d{n}"})
                for n, vector in enumerate(embedder.embed([d.content for d in documents[:12]]))
            ],
        )
    finally:
        qdrant.close()
    settings = QdrantSettings(path=tmp_path / "qdrant", collection="sized", id_payload_key="doc_id")
    with QdrantRetriever(settings, embedder, defer_model_check=True) as retriever:
        assert index_size_of(retriever) == IndexSize(12, 12)
    assert index_size_of(HttpRetriever("http://127.0.0.1:9/search")) is None


class BatchedRetriever(SizedRetriever):
    """A vector-store adapter's way of timing: queries searched 64 at a time, each query's
    latency its share of its batch's time (Chroma, pgvector and Qdrant record their
    ``batch_size``)."""

    def describe(self) -> dict[str, Any]:
        return {"kind": "batched", "batch_size": 64}


def test_latencies_timed_a_batch_at_a_time_are_not_gated_query_by_query(
    tmp_path: Path, store: Store
) -> None:
    """An unchanged embedded Chroma collection gated on latency exited 4 (inconclusive) on
    every replay: the demo's 129 queries, 64 at a time, take three values, and the median
    was the one query of the last batch."""
    gold = load_goldset(write_goldset_files(tmp_path / "gold", 60), name="batched")
    save_goldset(store, gold)
    request = GoldsetRunRequest(k=10, answers=False)
    base = evaluate_goldset(store, gold, BatchedRetriever(100, 5.0), request).run.run_id
    cand = evaluate_goldset(store, gold, BatchedRetriever(100, 7.5), request).run.run_id
    outcome = gate_against_baseline(store, base, cand, policy=LATENCY_GATE)
    assert outcome.latency is not None
    assert outcome.latency.skipped == (
        f"run {base} timed its queries 64 at a time (each query's latency is its share of "
        "its batch's time), so they cannot be compared query by query; replay both runs with "
        "query_batch_size = 1 (EVALKIT_QUERY_BATCH_SIZE=1) to gate on latency"
    )
    assert outcome.decision is Decision.PASS
    # Timed one query at a time, the same latencies are compared.
    base = evaluate_goldset(store, gold, SizedRetriever(100, 5.0), request).run.run_id
    cand = evaluate_goldset(store, gold, SizedRetriever(100, 7.5), request).run.run_id
    outcome = gate_against_baseline(store, base, cand, policy=LATENCY_GATE)
    assert outcome.latency is not None
    assert outcome.latency.skipped is None
    assert outcome.decision is Decision.REGRESSION


def test_traffic_replays_are_not_joined_to_the_goldset_runs_of_their_retriever() -> None:
    # Index health drew a traffic window's replay (other queries, at k=10) on the same line
    # as the retriever's goldset runs (k=100), so its latency read as the index's doing.
    runs = pd.DataFrame(
        {
            "retriever": ["chroma-embedded:kb"] * 3,
            "goldset_name": ["demo", "demo", None],
            "run_id": ["r1", "r2", "t1"],
            "started_at": ["2026-11-27 10:00", "2026-11-27 11:00", "2026-11-27 12:00"],
            "n_latencies": [129, 129, 100],
            "index_documents": [330, 220, 220],
            "latency_p50": [4.9, 1.8, 9.5],
            "latency_p95": [7.7, 7.7, 11.8],
        }
    )
    chart = latency_size_chart(runs)
    assert [trace.name for trace in chart.data] == [
        "chroma-embedded:kb p50",
        "chroma-embedded:kb p95",
        "chroma-embedded:kb (traffic) p50",
        "chroma-embedded:kb (traffic) p95",
    ]
    assert list(chart.data[0].x) == [220, 330]
    assert list(chart.data[0].y) == [1.8, 4.9]
    assert list(chart.data[2].y) == [9.5]
