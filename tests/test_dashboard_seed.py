"""A small store for the dashboard tests, written through evalkit's own APIs.

``seed_store(path)`` stores a goldset in two versions and three goldset x retriever series
whose figures are known by hand, drift checks, two replayed traffic windows with
embeddings and figures from two LLM assessors' labels, an answer scoring, two index audits,
alerts with delivery attempts and job runs. The tests in this module check that the
generator stored what the dashboard tests rely on; ``test_dashboard_pages`` and
``test_dashboard_browser`` import it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from evalkit.clock import utc_now
from evalkit.goldset.model import Goldset
from evalkit.metrics import Evaluator
from evalkit.pipeline import results_frame
from evalkit.records import Judgment, Query, QueryResult, ScoredDoc
from evalkit.store import RunSpec, Store
from evalkit.store.goldsets import save_goldset
from evalkit.store.runs import add_query_results, create_run, fail_run, finish_run, get_run

GOLDSET = "mini"
MEASURES = ("ndcg@10", "recall@10", "precision@10", "mrr@10", "hit_rate@10", "r_precision", "map")
K = 10
# More than 13 queries: scipy's Wilcoxon test then uses its normal approximation with
# ties; at 13 or fewer it runs a 2**n permutation loop that takes seconds.
N_QUERIES = 14
HTTP_URL = "http://127.0.0.1:9000/search"
SERIES_A = "chroma-embedded:mini"
SERIES_B = f"http:{HTTP_URL}"
SERIES_C = "chroma-embedded:mini-v2"
WINDOWS = ("2026-11-19", "2026-11-20")
TENANTS = ("acme", "globex")
ASSESSOR = "judge-model@p1"
"""The assessor that judged both traffic windows, under agreement ``AGREEMENT``."""
OTHER_ASSESSOR = "other-model@p2"
"""An assessor that judged the second window only, its agreement never measured."""
AGREEMENT = "agr-seeded"
JUDGED_PRECISION: dict[tuple[str, str, str], tuple[float, float, float, float]] = {
    (ASSESSOR, "assessor", WINDOWS[0]): (0.6, 0.5, 0.7, 1.0),
    (ASSESSOR, "assessor_logged", WINDOWS[0]): (0.55, 0.45, 0.65, 1.0),
    (ASSESSOR, "assessor", WINDOWS[1]): (0.45, 0.35, 0.55, 0.95),
    (ASSESSOR, "assessor_logged", WINDOWS[1]): (0.5, 0.4, 0.6, 0.9),
    (OTHER_ASSESSOR, "assessor", WINDOWS[1]): (0.4, 0.3, 0.5, 0.5),
}
"""precision@10 of the seeded traffic windows from assessor labels, by (assessor, source,
window): value, interval low and high, judged share."""
DIMENSION = 8


@dataclass(frozen=True)
class SeededStore:
    """Where the seeded store is and the ids the tests look for."""

    path: Path
    runs: dict[str, str]
    goldset_versions: tuple[str, str]
    traffic_runs: tuple[str, str]
    drift_check: str
    report: Path
    scoring: str
    alert: str


def query_ids(n: int = N_QUERIES) -> list[str]:
    """q01, q02, ..."""
    return [f"q{i:02d}" for i in range(1, n + 1)]


def goldset(n_queries: int) -> Goldset:
    """Every query has two relevant documents (grades 2 and 1) and one judged non-relevant."""
    queries = [
        Query(id=q, text=f"what is topic {q[1:]} about", tenant=None) for q in query_ids(n_queries)
    ]
    judgments = [
        judgment
        for q in query_ids(n_queries)
        for judgment in (
            Judgment(q, f"{q}-a", 2),
            Judgment(q, f"{q}-b", 1),
            Judgment(q, f"{q}-n", 0),
        )
    ]
    return Goldset.build(GOLDSET, queries, judgments, source="tests")


def perfect(query_id: str) -> list[str]:
    """Both relevant documents first, then the judged non-relevant one, then filler."""
    return [f"{query_id}-a", f"{query_id}-b", f"{query_id}-n"] + [f"x{i}" for i in range(7)]


def degraded(query_id: str) -> list[str]:
    """The grade-2 document at rank 5, the grade-1 document lost."""
    return [f"x{i}" for i in range(4)] + [f"{query_id}-a"] + [f"x{i}" for i in range(4, 9)]


def _results(rankings: dict[str, list[str]], failed: Sequence[str] = ()) -> list[QueryResult]:
    results = []
    for query_id, docs in rankings.items():
        if query_id in failed:
            results.append(QueryResult(query_id, (), latency_ms=5.0, error="timeout after 10 s"))
            continue
        scored = tuple(
            ScoredDoc(doc_id=doc, score=1.0 - rank / 100.0, rank=rank)
            for rank, doc in enumerate(docs, start=1)
        )
        results.append(QueryResult(query_id, scored, latency_ms=12.5))
    return results


def store_run(
    store: Store,
    gold: Goldset,
    rankings: dict[str, list[str]],
    *,
    retriever_kind: str,
    config: dict[str, object],
    collection: str | None,
    model_fingerprint: str,
    index_fingerprint: str | None,
    failed: Sequence[str] = (),
    label: str | None = None,
    k: int = K,
    measures: Sequence[str] = MEASURES,
    model_canaries: bytes = b"",
) -> str:
    """Create, fill, score and finish one run through the Store API; returns its id."""
    spec = RunSpec(
        kind="goldset",
        retriever_kind=retriever_kind,
        k=k,
        measures=tuple(measures),
        evalkit_version="test",
        goldset_name=gold.name,
        goldset_version=gold.version,
        retriever_config=config,
        collection=collection,
        model_name="all-MiniLM-L6-v2",
        model_dimension=384,
        model_fingerprint=model_fingerprint,
        model_canaries=model_canaries,
        index_fingerprint=index_fingerprint,
        label=label,
        n_queries=len(gold.queries),
    )
    run_id = create_run(store, spec)
    results = _results(rankings, failed)
    add_query_results(store, run_id, results)
    answered = [r.query_id for r in results if r.ok]
    evaluation = Evaluator(list(gold.judgments), list(measures)).evaluate(
        results_frame(results), complete=True, query_ids=answered
    )
    finish_run(
        store,
        run_id,
        status="partial" if failed else "complete",
        per_query=evaluation.per_query,
        aggregates=evaluation.aggregate,
        n_evaluated=evaluation.n_queries,
        n_total=len(gold.queries),
        n_failed=len(failed),
        error=f"{len(failed)} of {len(results)} queries failed" if failed else None,
    )
    return run_id


def store_traffic_run(store: Store, *, retriever_kind: str = "http", k: int = 10) -> str:
    """A finished traffic replay run with nothing scored (a window's replay is a run without
    measures); returns its id."""
    run_id = create_run(
        store,
        RunSpec(
            kind="traffic", retriever_kind=retriever_kind, k=k, measures=(), evalkit_version="t"
        ),
    )
    finish_unscored_run(store, run_id, 0)
    return run_id


def finish_unscored_run(store: Store, run_id: str, n_queries: int) -> None:
    """Mark a traffic replay run complete: ``n_queries`` replayed, none failed, no measure."""
    finish_run(
        store,
        run_id,
        status="complete",
        per_query=None,
        aggregates={},
        n_evaluated=n_queries,
        n_total=n_queries,
        n_failed=0,
    )


def _seed_traffic(store: Store, log: Path) -> tuple[str, str]:
    from evalkit.store.traffic import StoredWindowSummary, save_traffic_replay
    from evalkit.traffic import log_query
    from evalkit.traffic.ingest import ingest_paths

    rng = np.random.default_rng(7)
    start = datetime(2026, 11, 19)
    for day in range(2):
        for i in range(20):
            log_query(
                log,
                text=f"traffic question {i} on day {day}",
                query_id=f"t{day}-{i:02d}",
                timestamp=start + timedelta(days=day, minutes=i),
                tenant=TENANTS[i % 2],
                results=[(f"d{i}", 0.9), (f"d{i + 1}", 0.8)],
                answer=f"answer {i}",
                contexts=[f"context {i} one", f"context {i} two"],
                latency_ms=float(10 * (i + 1) + 100 * day),
            )
    ingest_paths(store, [log])
    run_ids = []
    for day, label in enumerate(WINDOWS):
        run_id = create_run(
            store,
            RunSpec(
                kind="traffic",
                retriever_kind="chroma-embedded",
                k=K,
                measures=(),
                evalkit_version="test",
                collection="mini",
            ),
        )
        # 20 queries per window, 10 per tenant; acme's first `low` queries are low-confidence.
        low = 2 + 3 * day
        per_query = pd.DataFrame(
            {
                "query_id": [f"t{day}-{i:02d}" for i in range(20)],
                "tenant": [TENANTS[i % 2] for i in range(20)],
                "stratum": [TENANTS[i % 2] for i in range(20)],
                "failed": [False] * 20,
                "n_results": [K] * 20,
                "top1_score": [0.2 if (i % 2 == 0 and i // 2 < low) else 0.8 for i in range(20)],
                "n_logged": [2] * 20,
                "overlap_at_k": [0.5 if day else 1.0] * 20,
                "rbo": [0.6] * 20,
            }
        )
        vectors = rng.normal(loc=1.5 * day, size=(20, DIMENSION)).astype(np.float32)
        summary = StoredWindowSummary(
            run_id=run_id,
            sample_id=f"sample-{day}",
            window_label=label,
            window_start=start + timedelta(days=day),
            window_end=start + timedelta(days=day + 1),
            computed_at=utc_now(),
            k=K,
            compare_k=K,
            rbo_p=0.9,
            volume=20,
            n_distinct=20,
            n_replayed=20,
            n_failed=0,
            latency_p50=20.0 + day,
            latency_p95=40.0 + day,
            latency_p99=45.0 + day,
            top1_mean=0.7,
            low_confidence_threshold=0.4,
            low_confidence_share=low / 20,
            empty_share=0.0,
            n_compared=20,
            overlap_mean=0.5 if day else 1.0,
            rbo_mean=0.6,
            churn=0.5 if day else 0.0,
            embedding_model="all-MiniLM-L6-v2",
            embedding_dimension=DIMENSION,
            embedding_fingerprint="fp-1",
            n_embeddings=20,
        )
        save_traffic_replay(
            store,
            summary=summary,
            per_query=per_query,
            embedding_ids=list(per_query["query_id"]),
            embeddings=vectors,
        )
        finish_unscored_run(store, run_id, 20)
        run_ids.append(run_id)
    return run_ids[0], run_ids[1]


def _seed_judged(store: Store, traffic_runs: tuple[str, str], goldset_version: str) -> None:
    """``JUDGED_PRECISION`` (with an nDCG@10 beside each, and an estimate that is not an
    assessor's figure) on the traffic windows, and ``ASSESSOR``'s agreement."""
    from evalkit.store.judging import (
        JudgedFigure,
        StoredAgreement,
        save_agreement,
        save_run_figures,
    )

    now = utc_now()
    save_agreement(
        store,
        StoredAgreement(
            agreement_id=AGREEMENT,
            assessor=ASSESSOR,
            goldset_name=GOLDSET,
            goldset_version=goldset_version,
            measured_at=now,
            n_pairs=40,
            n_unjudged=0,
            kappa=0.71,
            kappa_low=0.6,
            kappa_high=0.8,
            kappa_scale="linear",
            confusion={},
            tau=None,
            tau_p_value=None,
            tau_measure=None,
            n_runs=0,
            seed=0,
            details={},
        ),
    )
    run_of = dict(zip(WINDOWS, traffic_runs, strict=True))
    figures = []
    for (labeller, source, window), (value, low, high, share) in JUDGED_PRECISION.items():
        for measure, offset in (("precision@10", 0.0), ("ndcg_judged@10", 0.2)):
            figures.append(
                JudgedFigure(
                    run_id=run_of[window],
                    source=source,
                    labeller=labeller,
                    measure=measure,
                    value=value + offset,
                    low=low + offset,
                    high=high + offset,
                    n_queries=20,
                    judged_share=share,
                    status="complete" if share == 1.0 else "partial",
                    agreement_id=AGREEMENT if labeller == ASSESSOR else None,
                    computed_at=now,
                    details={"window": window, "k": K},
                )
            )
    figures.append(
        JudgedFigure(
            run_id=run_of[WINDOWS[1]],
            source="estimate",
            labeller="calibration",
            measure="precision@10",
            value=0.9,
            low=0.8,
            high=1.0,
            n_queries=20,
            judged_share=None,
            status="complete",
            agreement_id=None,
            computed_at=now,
            details={},
        )
    )
    save_run_figures(store, figures)


def _seed_answers(store: Store, run_id: str) -> str:
    from evalkit.answers.records import AnswerScores, MetricScore, summarise
    from evalkit.store.answers import save_answer_scores

    scores = [
        MetricScore(
            q,
            "faithfulness",
            "offline-embedding",
            value,
            judge_model="minilm",
            n_claims=4,
            n_supported=round(4 * value),
        )
        for q, value in (("q01", 0.25), ("q02", 0.5), ("q03", 1.0))
    ]
    scores.append(
        MetricScore(
            "q04",
            "faithfulness",
            "offline-embedding",
            None,
            judge_model="minilm",
            unmeasured_reason="no_claims",
        )
    )
    scores += [
        MetricScore(q, "context_recall", "ragas-id-based", value)
        for q, value in (("q01", 0.5), ("q02", 1.0))
    ]
    now = utc_now()
    result = AnswerScores(
        scores=tuple(scores),
        summaries=summarise(scores),
        n_records=4,
        started_at=now,
        finished_at=now,
        run_id=run_id,
    )
    return save_answer_scores(store, result)


def _seed_audits(store: Store) -> None:
    from evalkit.records.audit import AuditReport, CheckOutcome, Finding, Severity
    from evalkit.store.audit import save_audit

    for round_, near in enumerate((0, 2)):
        findings = (
            (
                Finding(
                    kind="near_duplicates",
                    check="duplicates",
                    severity=Severity.warning,
                    message=f"{near} documents are near-duplicates",
                    count=near,
                    doc_ids=("q01-a", "q02-a"),
                    clusters=(("q01-a", "q02-a"),),
                ),
            )
            if near
            else ()
        )
        now = utc_now()
        save_audit(
            store,
            AuditReport(
                collection="mini",
                location="/nonexistent/chroma",
                started_at=now,
                finished_at=now,
                n_documents=50 + round_,
                checks=(
                    CheckOutcome(
                        "duplicates",
                        True,
                        measurements={"near_duplicate_documents": float(near)},
                        findings=findings,
                    ),
                    CheckOutcome(
                        "ann_recall", True, measurements={"recall@10": 0.99 - 0.1 * round_}
                    ),
                ),
                config={},
                seed=0,
            ),
        )


def _seed_alerts(store: Store) -> str:
    from evalkit.store.alerts import (
        StoredAlert,
        StoredAlertState,
        record_delivery_attempt,
        save_alert,
    )
    from evalkit.store.jobs import finish_job_run, start_job_run

    now = utc_now()
    alert = StoredAlert(
        alert_id="20261121T020000-aaaa0001",
        rule="precision-drop",
        kind="precision_regression",
        dedup_key="precision-drop:mini",
        subject=GOLDSET,
        status="firing",
        severity="critical",
        title="ndcg@10 regressed on mini",
        summary="ndcg@10 1.0000 -> 0.3869",
        evidence={"measure": "ndcg@10"},
        links={},
        fired_at=now,
        created_at=now,
        n_sinks=2,
    )
    state = StoredAlertState(
        dedup_key=alert.dedup_key,
        rule=alert.rule,
        subject=alert.subject,
        active=True,
        severity="critical",
        since=now,
        last_evaluated_at=now,
        notified_status="firing",
        last_alert_id=alert.alert_id,
    )
    save_alert(store, alert, state=state, sinks=["log", "oncall"])
    record_delivery_attempt(
        store,
        alert_id=alert.alert_id,
        sink="log",
        attempt=1,
        attempted_at=now,
        duration_ms=1.0,
        ok=True,
        status_code=None,
        error=None,
        next_attempt_at=None,
    )
    record_delivery_attempt(
        store,
        alert_id=alert.alert_id,
        sink="oncall",
        attempt=1,
        attempted_at=now,
        duration_ms=30.0,
        ok=False,
        status_code=503,
        error="HTTP 503",
        next_attempt_at=now + timedelta(minutes=1),
    )
    job = start_job_run(
        store,
        job="nightly-mini",
        kind="goldset_run",
        trigger="cron",
        scheduled_for=None,
        pid=os.getpid(),
        host="test",
    )
    finish_job_run(store, job.job_run_id, status="succeeded", run_ids=["r"], summary={})
    return alert.alert_id


def document_text(doc_id: str) -> str:
    """The text of a seeded document (stored in the Chroma collection with ``chroma=True``)."""
    return f"Document {doc_id} explains the topic in some detail."


def _seed_chroma(path: Path, gold: Goldset) -> None:
    """An embedded Chroma collection ``mini`` holding every judged document (explicit
    vectors: no embedding function, no model)."""
    from evalkit.retrievers.chroma_client import open_chroma_client

    client = open_chroma_client(path=path)
    collection = client.get_or_create_collection("mini", embedding_function=None)
    ids = sorted({judgment.doc_id for judgment in gold.judgments})
    vectors = np.random.default_rng(0).normal(size=(len(ids), 4)).tolist()
    collection.add(ids=ids, embeddings=vectors, documents=[document_text(i) for i in ids])


def seed_store(path: Path, *, areas: bool = True, chroma: bool = False) -> SeededStore:
    """Write the seeded store at ``path`` (``areas=False``: goldsets and runs only;
    ``chroma=True``: also the Chroma collection the runs of series A name)."""
    from evalkit.records.drift import DriftCheck
    from evalkit.store.drift import save_drift_check

    chroma_path = path.parent / "chroma"
    chroma_config = {"kind": "chroma-embedded", "path": str(chroma_path), "collection": "mini"}

    gold_v1, gold_v2 = goldset(N_QUERIES), goldset(N_QUERIES + 1)
    if chroma:
        _seed_chroma(chroma_path, gold_v2)
    runs: dict[str, str] = {}
    with Store.open(path) as store:
        save_goldset(store, gold_v1)
        ids = query_ids()
        good = {q: perfect(q) for q in ids}
        # Three retrievers: A and C on Chroma collections, B behind HTTP.
        retrievers: dict[str, dict[str, Any]] = {
            "A": {
                "retriever_kind": "chroma-embedded",
                "config": chroma_config,
                "collection": "mini",
            },
            "B": {
                "retriever_kind": "http",
                "config": {"kind": "http", "url": HTTP_URL},
                "collection": None,
            },
            "C": {
                "retriever_kind": "chroma-embedded",
                "config": {**chroma_config, "collection": "mini-v2"},
                "collection": "mini-v2",
            },
        }
        for name, index_fingerprint, failed in (
            ("A1", "idx-1", ()),
            ("B1", None, ()),
            ("C1", "idx-c", ()),
            ("A2", "idx-2", ()),
            ("B2", None, ()),
            ("C2", "idx-c", ("q14",)),
        ):
            runs[name] = store_run(
                store,
                gold_v1,
                good,
                model_fingerprint="fp-1",
                index_fingerprint=index_fingerprint,
                failed=failed,
                **retrievers[name[0]],
            )
        save_goldset(store, gold_v2)
        worse = {q: degraded(q) for q in query_ids(N_QUERIES + 1)}
        runs["A3"] = store_run(
            store,
            gold_v2,
            worse,
            model_fingerprint="fp-2",
            index_fingerprint="idx-2",
            **retrievers["A"],
        )
        spec = get_run(store, runs["B2"]).spec
        runs["B3"] = create_run(store, spec)
        fail_run(store, runs["B3"], "RetrieverError: connection refused")
        if not areas:
            return SeededStore(
                path, runs, (gold_v1.version, gold_v2.version), ("", ""), "", path, "", ""
            )
        report = path.parent / "drift-report.html"
        report.write_text("<html><body>evidently report</body></html>", encoding="utf-8")
        save_drift_check(
            store,
            DriftCheck(
                stream="queries",
                subject="mini",
                finding="ok",
                method="ks",
                is_drift=False,
                reference=WINDOWS[0],
                current=WINDOWS[0],
                statistic=0.1,
                p_value=0.8,
                threshold=0.05,
            ),
        )
        drift_check = save_drift_check(
            store,
            DriftCheck(
                stream="queries",
                subject="mini",
                finding="drift",
                method="ks",
                is_drift=True,
                reference=WINDOWS[0],
                current=WINDOWS[1],
                n_reference=20,
                n_current=20,
                statistic=0.9,
                p_value=0.0001,
                threshold=0.05,
                effect_size=1.0,
                details={"n_dimensions": DIMENSION, "n_moved": 3, "moved_dimensions": [4, 1, 7]},
                report_path=str(report),
            ),
        ).check_id
        save_drift_check(
            store,
            DriftCheck(
                stream="precision",
                subject=f"{GOLDSET}|{SERIES_B}",
                finding="drift",
                method="page_hinkley+paired",
                is_drift=True,
                statistic=9.0,
                p_value=0.01,
            ),
        )
        save_drift_check(
            store,
            DriftCheck(
                stream="model",
                subject="mini-v2",
                finding="ok",
                method="canary_fingerprint",
                is_drift=False,
                statistic=1.0,
            ),
        )
        traffic_runs = _seed_traffic(store, path.parent / "traffic.jsonl")
        _seed_judged(store, traffic_runs, gold_v1.version)
        scoring = _seed_answers(store, runs["A1"])
        _seed_audits(store)
        alert = _seed_alerts(store)
    return SeededStore(
        path=path,
        runs=runs,
        goldset_versions=(gold_v1.version, gold_v2.version),
        traffic_runs=traffic_runs,
        drift_check=drift_check,
        report=report,
        scoring=scoring,
        alert=alert,
    )


# The degraded ranking of one query: grade 2 at rank 5, grade 1 lost, 2 relevant judged.
DEGRADED_NDCG = (2 / math.log2(6)) / (2 / math.log2(2) + 1 / math.log2(3))
DEGRADED_MAP = (1 / 5) / 2


_SHARED: dict[str, SeededStore] = {}


def shared_seeded_store(factory: pytest.TempPathFactory) -> SeededStore:
    """The seeded store with its Chroma collection, written once per test session and
    shared by the dashboard test modules (none of them writes to it)."""
    if "store" not in _SHARED:
        directory = factory.getbasetemp() / "dashboard-seeded"
        directory.mkdir(exist_ok=True)
        _SHARED["store"] = seed_store(directory / "evalkit.duckdb", chroma=True)
    return _SHARED["store"]


@pytest.fixture
def seeded(tmp_path_factory: pytest.TempPathFactory) -> SeededStore:
    """The shared seeded store."""
    return shared_seeded_store(tmp_path_factory)


def test_seeded_runs_have_the_hand_computed_figures(seeded: SeededStore) -> None:
    with Store.open(seeded.path, read_only=True) as store:
        baseline = get_run(store, seeded.runs["A1"])
        latest = get_run(store, seeded.runs["A3"])
        partial = get_run(store, seeded.runs["C2"])
        failed = get_run(store, seeded.runs["B3"])
    assert baseline.status == "complete"
    assert baseline.aggregates["ndcg@10"] == pytest.approx(1.0)
    assert baseline.aggregates["recall@10"] == pytest.approx(1.0)
    assert latest.aggregates["recall@10"] == pytest.approx(0.5)
    assert latest.aggregates["mrr@10"] == pytest.approx(0.2)
    assert latest.aggregates["ndcg@10"] == pytest.approx(DEGRADED_NDCG)
    assert latest.aggregates["map"] == pytest.approx(DEGRADED_MAP)
    assert latest.n_evaluated == N_QUERIES + 1
    assert partial.status == "partial"
    assert partial.n_evaluated == N_QUERIES - 1
    assert failed.status == "failed"


MIXED_GOLDSET = "demo"
MIXED_SERIES = "chroma-embedded:demo"
MIXED_CUTOFFS = (10, 20, 50, 100)


def mixed_measures(k: int) -> tuple[str, ...]:
    """The measures a run at ``k`` stores: each cutoff its own set, ``map`` in none at 20."""
    names = (f"ndcg@{k}", f"recall@{k}", f"precision@{k}", "mrr")
    return names if k == 20 else (*names, "map")


def seed_mixed_store(path: Path) -> dict[str, str]:
    """A store as it looks after changing k and the measures within a series.

    Goldset ``demo``, series ``chroma-embedded:demo``: complete runs at k = 10, 20, 50 and
    100, each storing its own measure set; a partial run at k = 100 (two failed queries); a
    partial run whose every query failed (its aggregates stored as NULL); a failed run. A
    second series behind HTTP has no model or index fingerprint, no label and one run at
    k = 10 only. Returns the run ids by name (``k10`` ... ``k100``, ``partial``, ``empty``,
    ``failed``, ``http``).
    """
    gold = Goldset.build(
        MIXED_GOLDSET,
        goldset(N_QUERIES).queries,
        goldset(N_QUERIES).judgments,
        source="tests",
    )
    chroma = {"kind": "chroma-embedded", "path": str(path.parent / "chroma"), "collection": "demo"}
    series = {"retriever_kind": "chroma-embedded", "config": chroma, "collection": "demo"}
    ids = query_ids()
    runs: dict[str, str] = {}
    with Store.open(path) as store:
        save_goldset(store, gold)
        for k in MIXED_CUTOFFS:
            runs[f"k{k}"] = store_run(
                store,
                gold,
                {q: perfect(q) if k != 50 else degraded(q) for q in ids},
                model_fingerprint="fp-1",
                index_fingerprint="idx-1",
                k=k,
                measures=mixed_measures(k),
                label=f"k={k}",
                **series,
            )
        runs["partial"] = store_run(
            store,
            gold,
            {q: perfect(q) for q in ids},
            model_fingerprint="fp-1",
            index_fingerprint="idx-1",
            failed=("q13", "q14"),
            k=100,
            measures=mixed_measures(100),
            **series,
        )
        spec = get_run(store, runs["partial"]).spec
        runs["empty"] = create_run(store, spec)
        add_query_results(store, runs["empty"], _results({q: [] for q in ids}, failed=ids))
        finish_run(
            store,
            runs["empty"],
            status="partial",
            per_query=None,
            aggregates=dict.fromkeys(spec.measures),
            n_evaluated=0,
            n_total=len(ids),
            n_failed=len(ids),
            error=f"{len(ids)} of {len(ids)} queries failed",
        )
        runs["failed"] = create_run(store, spec)
        fail_run(store, runs["failed"], "RetrieverError: connection refused")
        runs["http"] = store_run(
            store,
            gold,
            {q: degraded(q) for q in ids},
            retriever_kind="http",
            config={"kind": "http", "url": HTTP_URL},
            collection=None,
            model_fingerprint=None,  # type: ignore[arg-type]
            index_fingerprint=None,
            k=10,
            measures=mixed_measures(10),
        )
    return runs


SCALE_RUNS_PER_SERIES = 10
"""Runs per series of the scale store: the benchmark's shape (20 series, 1,000 alerts, 60
traffic windows, 2,000 drift checks) with 200 runs instead of 2,000, to seed in seconds."""


def seed_scale_store(path: Path, *, runs_per_series: int = SCALE_RUNS_PER_SERIES) -> None:
    """The store of ``benchmarks/dashboard.py`` (4 goldsets x 5 retrievers), in bulk."""
    from benchmark_scripts import load_benchmark

    load_benchmark("dashboard").seed(path, runs_per_series=runs_per_series)


def shared_scale_store(factory: pytest.TempPathFactory) -> Path:
    """The scale store, written once per test session."""
    if "scale" not in _SHARED_PATHS:
        directory = factory.getbasetemp() / "dashboard-scale"
        directory.mkdir(exist_ok=True)
        seed_scale_store(directory / "evalkit.duckdb")
        _SHARED_PATHS["scale"] = directory / "evalkit.duckdb"
    return _SHARED_PATHS["scale"]


_SHARED_PATHS: dict[str, Path] = {}
