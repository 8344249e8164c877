"""Probable causes: planted causes on a real DuckDB store must be named, and ranked first.

Each test stores a good baseline run and a worse candidate through the Store API, plants
one cause (documents removed from the index and audited, the query model swapped, the
goldset changed, a smaller k, failed queries) and checks the share of the loss
``explain_runs`` gives it by hand.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from test_dashboard_seed import degraded, goldset, perfect, query_ids, store_run, store_traffic_run

from evalkit.alerts import alerts_config, build_sinks, evaluate_rules
from evalkit.alerts.model import Alert
from evalkit.alerts.payload import alert_payload, encode, slack_body
from evalkit.causes import (
    CAUSE_KINDS,
    explain_alert,
    explain_comparison,
    explain_drift_check,
    explain_runs,
)
from evalkit.clock import utc_now
from evalkit.config import parse_settings
from evalkit.dashboard.loaders.query import query_diff
from evalkit.embedding.fingerprint import ModelFingerprint, fingerprint_from_canaries
from evalkit.errors import ConfigError
from evalkit.goldset.model import Goldset
from evalkit.records import Judgment
from evalkit.records.audit import AuditReport, CheckOutcome, Finding, Reembedding, Severity
from evalkit.records.drift import DriftCheck
from evalkit.records.requests import PairedTestSettings
from evalkit.schemas import load_schema
from evalkit.stats import compare_scored, score_stored_run
from evalkit.store import Store
from evalkit.store.alerts import StoredAlert, StoredAlertState, save_alert
from evalkit.store.audit import save_audit
from evalkit.store.dashboard.quality import series_points_frame
from evalkit.store.drift import save_drift_check
from evalkit.store.goldsets import judgments_frame, save_goldset

N = 14
MEASURES = ("ndcg@10", "recall@10", "precision@10")
CHROMA = {"kind": "chroma-embedded", "path": "/x/chroma", "collection": "mini"}
FAST = PairedTestSettings(resamples=500)


def _run(
    store: Store,
    gold: Goldset,
    rankings: dict[str, list[str]],
    *,
    model: str = "fp-1",
    index: str = "idx-1",
    failed: Sequence[str] = (),
    k: int = 10,
) -> str:
    return store_run(
        store,
        gold,
        rankings,
        retriever_kind="chroma-embedded",
        config=CHROMA,
        collection="mini",
        model_fingerprint=model,
        index_fingerprint=index,
        failed=failed,
        k=k,
        measures=MEASURES,
    )


def _canaries(seed: int) -> np.ndarray:
    """Unit-length canary embeddings of a made-up 384-dimension model, the first value 0."""
    vectors = np.random.default_rng(seed).normal(size=(8, 384))
    vectors[0, 0] = 0.0
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def two_backends() -> tuple[ModelFingerprint, ModelFingerprint]:
    """One model's fingerprint as two backends give it: the same canaries but for one value
    that sits on the hash's rounding boundary and lands on either side of it."""
    onnx = _canaries(5)
    torch = onnx.copy()
    onnx[0, 0], torch[0, 0] = np.float32(0.00050003), np.float32(0.00049997)
    return (
        fingerprint_from_canaries("all-MiniLM-L6-v2", 384, onnx),
        fingerprint_from_canaries("all-MiniLM-L6-v2", 384, torch),
    )


def _model_run(store: Store, gold: Goldset, model: ModelFingerprint, *, canaries: bool) -> str:
    """A perfect run whose query model is ``model``, with its canary embeddings stored or,
    as runs stored before they were kept, its hash only."""
    return store_run(
        store,
        gold,
        {q: perfect(q) for q in query_ids(N)},
        retriever_kind="chroma-embedded",
        config=CHROMA,
        collection="mini",
        model_fingerprint=model.canary_hash,
        model_canaries=model.canary_vectors if canaries else b"",
        index_fingerprint="idx-1",
        measures=MEASURES,
    )


def _without(removed: set[str]) -> dict[str, list[str]]:
    """Perfect rankings with the ``removed`` documents gone (the index no longer has them)."""
    return {q: [doc for doc in perfect(q) if doc not in removed] + ["x9"] for q in query_ids(N)}


def _audit(
    store: Store,
    kind: str | None,
    doc_ids: Sequence[str] = (),
    collection: str = "mini",
    *,
    goldset_version: str | None = None,
    n_documents: int = 40,
) -> str:
    """An audit of ``collection`` whose orphans check found ``doc_ids`` (a finding of
    ``kind``), or found nothing when ``kind`` is None."""
    findings = (
        ()
        if kind is None
        else (
            Finding(
                kind=kind,
                check="orphans",
                severity=Severity.warning,
                message=f"{len(doc_ids)} documents judged in goldset 'mini' are not in the index",
                count=len(doc_ids),
                doc_ids=tuple(doc_ids),
            ),
        )
    )
    return _saved_audit(
        store,
        CheckOutcome("orphans", True, findings=findings),
        collection,
        goldset_version,
        n_documents=n_documents,
    )


def _saved_audit(
    store: Store,
    check: CheckOutcome,
    collection: str,
    goldset_version: str | None = None,
    *,
    n_documents: int = 40,
) -> str:
    """An audit of ``collection`` (of goldset ``mini``) holding ``n_documents`` that ran
    ``check``, stored now."""
    now = utc_now()
    return save_audit(
        store,
        AuditReport(
            collection=collection,
            location="/x/chroma",
            started_at=now,
            finished_at=now,
            n_documents=n_documents,
            checks=(check,),
            config={},
            seed=0,
            goldset_name="mini",
            goldset_version=goldset_version,
        ),
    ).audit_id


REMOVED = sorted(f"{q}-b" for q in query_ids(N)[:7])


def precision_check(
    store: Store, baseline: str, candidate: str, measure: str, *, stream: str = "precision"
) -> str:
    """A stored precision drift check of the demo series between two runs (with ``stream =
    "metric"``, the drift_check job's check of the measure's series); its id."""
    metric = stream == "metric"
    return save_drift_check(
        store,
        DriftCheck(
            stream=stream,
            subject=f"mini:{measure}" if metric else "mini|chroma-embedded:mini",
            finding="drift",
            method="page_hinkley" if metric else "page_hinkley+paired",
            is_drift=True,
            reference=baseline,
            current=candidate,
            details={} if metric else {"measure": measure},
        ),
    ).check_id


def model_canary_check(store: Store, statistic: float) -> str:
    """A stored model canary check that found the query model differs from the index's."""
    return save_drift_check(
        store,
        DriftCheck(
            stream="model",
            subject="mini",
            finding="model_mismatch",
            method="canary_fingerprint",
            is_drift=True,
            statistic=statistic,
        ),
    ).check_id


def seed_removed_documents(path: Path) -> dict[str, str]:
    """A goldset, a good baseline run, a run after seven relevant documents left the index
    (its fingerprint changed too), and the audit that found them missing."""
    with Store.open(path) as store:
        gold = goldset(N)
        save_goldset(store, gold)
        baseline = _run(store, gold, {q: perfect(q) for q in query_ids(N)})
        candidate = _run(store, gold, _without(set(REMOVED)), index="idx-2")
        audit = _audit(store, "orphaned_judgments", REMOVED)
    return {"baseline": baseline, "candidate": candidate, "audit": audit}


def test_documents_removed_from_the_index_rank_first_with_their_share(store: Store) -> None:
    gold = goldset(N)
    save_goldset(store, gold)
    baseline = _run(store, gold, {q: perfect(q) for q in query_ids(N)})
    removed = {f"{q}-b" for q in query_ids(N)[:7]}
    candidate = _run(store, gold, _without(removed), index="idx-2")
    audit_id = _audit(store, "orphaned_judgments", sorted(removed))

    explanation = explain_runs(store, candidate, test=FAST)

    assert explanation.baseline == baseline
    assert explanation.decision == "regression"
    assert explanation.lost_queries == 7
    assert explanation.lost_documents == 7
    top = explanation.causes[0]
    assert top.kind == "missing_from_index"
    assert top.score == pytest.approx(1.0)
    assert (
        "7 of the 7 relevant documents lost by the 7 queries that dropped are missing from "
        "the index" in top.statement
    )
    assert top.link.page == "index_health"
    assert dict(top.link.params) == {
        "collection": "mini",
        "audit": audit_id,
        "finding": "orphaned_judgments",
    }
    assert {row["doc_id"] for row in top.evidence} == removed
    assert all(row["baseline_rank"] == 2 for row in top.evidence)
    rebuilt = next(c for c in explanation.causes if c.kind == "index_changed")
    assert rebuilt.score == pytest.approx(0.0)
    assert not rebuilt.measured
    assert explanation.notes == ()


def test_an_audit_of_another_collection_never_explains_a_retriever_without_one(
    store: Store,
) -> None:
    """A plug-in retriever after a Chroma baseline: an audit of some other collection of
    the same goldset says nothing about the index the candidate searched."""
    gold = goldset(N)
    save_goldset(store, gold)
    baseline = _run(store, gold, {q: perfect(q) for q in query_ids(N)})
    removed = {f"{q}-b" for q in query_ids(N)[:4]}
    candidate = store_run(
        store,
        gold,
        _without(removed),
        retriever_kind="factory",
        config={"kind": "factory", "factory": "mine:make"},
        collection=None,
        model_fingerprint="fp-1",
        index_fingerprint=None,
        measures=MEASURES,
    )
    _audit(store, "orphaned_judgments", sorted(removed), collection="small")

    explained = explain_runs(store, candidate, baseline=baseline, test=FAST)
    kinds = [cause.kind for cause in explained.causes]
    assert "missing_from_index" not in kinds
    assert kinds[0] == "retriever_changed"


def test_a_setting_an_earlier_evalkit_did_not_record_is_no_retriever_change(
    store: Store,
) -> None:
    """Runs stored before Chroma runs recorded their ef_search (and how they timed their
    queries) have none in their record: after an upgrade, explain named the retriever as
    changed, "ef_search - -> 100", between an old baseline and a new run of the same
    untouched collection."""
    gold = goldset(N)
    save_goldset(store, gold)
    rankings = {q: perfect(q) for q in query_ids(N)}
    old = store_run(
        store,
        gold,
        rankings,
        retriever_kind="chroma-embedded",
        config=CHROMA,
        collection="mini",
        model_fingerprint="fp-1",
        index_fingerprint="idx-1",
        measures=MEASURES,
    )

    def chroma_run(ef_search: int) -> str:
        return store_run(
            store,
            gold,
            _without({f"{q}-b" for q in query_ids(N)[:4]}),
            retriever_kind="chroma-embedded",
            config={**CHROMA, "ef_search": ef_search, "latency_timing": "per_query"},
            collection="mini",
            model_fingerprint="fp-1",
            index_fingerprint="idx-1",
            measures=MEASURES,
        )

    new = chroma_run(100)
    kinds = [cause.kind for cause in explain_runs(store, new, baseline=old, test=FAST).causes]
    assert "retriever_changed" not in kinds
    # Between two runs that both recorded it, a changed ef_search is still named.
    lowered = chroma_run(10)
    (changed,) = [
        cause
        for cause in explain_runs(store, lowered, baseline=new, test=FAST).causes
        if cause.kind == "retriever_changed"
    ]
    assert changed.statement.startswith("the retriever changed: ef_search 100 -> 10;")


def test_the_outcome_of_the_model_check_is_no_retriever_change(store: Store) -> None:
    """A collection evalkit did not build records the re-embedding check in its description
    (``model_check``): its cosines move with the sampled records, and runs stored before it
    was made lack it, so neither names the retriever as changed."""
    gold = goldset(N)
    save_goldset(store, gold)
    worse = _without({f"{q}-b" for q in query_ids(N)[:4]})

    def chroma_run(rankings: dict[str, list[str]], **extra: object) -> str:
        return store_run(
            store,
            gold,
            rankings,
            retriever_kind="chroma-embedded",
            config={**CHROMA, **extra},
            collection="mini",
            model_fingerprint="fp-1",
            index_fingerprint="idx-1",
            measures=MEASURES,
        )

    old = chroma_run({q: perfect(q) for q in query_ids(N)})
    checked = {"method": "dimension and 16 re-embedded stored texts"}
    first = chroma_run(worse, model_check={**checked, "result": {"median_cosine": 0.998}})
    second = chroma_run(worse, model_check={**checked, "result": {"median_cosine": 0.997}})
    for baseline, candidate in ((old, first), (first, second)):
        causes = explain_runs(store, candidate, baseline=baseline, test=FAST).causes
        assert "retriever_changed" not in [cause.kind for cause in causes]


def test_an_index_fingerprint_an_earlier_evalkit_recorded_is_no_index_change(
    store: Store,
) -> None:
    """Chroma runs recorded before fingerprints covered the collection's contents carry the
    fingerprint `evalkit index` stored; after an upgrade, explain and the Quality page said
    the index was rebuilt between an old run and a new run of the same untouched collection.
    A new run records the stored fingerprint beside its own, so the two are told apart."""
    gold = goldset(N)
    save_goldset(store, gold)
    rankings = {q: perfect(q) for q in query_ids(N)}

    def chroma_run(index: str, **config: object) -> str:
        return store_run(
            store,
            gold,
            rankings,
            retriever_kind="chroma-embedded",
            config={**CHROMA, **config},
            collection="mini",
            model_fingerprint="fp-1",
            index_fingerprint=index,
            measures=MEASURES,
        )

    old = chroma_run("stored-1", count=40)
    new = chroma_run("contents-1", count=40, indexed_fingerprint="stored-1")
    pruned = chroma_run("contents-2", count=36, indexed_fingerprint="stored-1")
    rebuilt = chroma_run("contents-3", count=40, indexed_fingerprint="stored-2")

    def changed(baseline: str, candidate: str) -> bool:
        explained = explain_runs(store, candidate, baseline=baseline, test=FAST)
        return "index_changed" in [cause.kind for cause in explained.causes]

    assert not changed(old, new)
    assert not changed(new, old)
    # Documents deleted without evalkit (the count) or a re-index (the stored fingerprint).
    assert changed(old, pruned)
    assert changed(old, rebuilt)
    series = series_points_frame(store, goldset=gold.name, measure="ndcg@10")
    assert dict(zip(series["run_id"], series["index_changed"], strict=True)) == {
        old: False,
        new: False,
        pruned: True,
        rebuilt: True,
    }


def test_checks_of_a_collection_never_explain_a_retriever_that_names_none(
    store: Store,
) -> None:
    """A model canary mismatch and document drift on Chroma collection `mini` ranked first
    among the causes of a factory retriever's regression, which never read `mini`."""
    gold = goldset(N)
    save_goldset(store, gold)
    factory = {
        "retriever_kind": "factory",
        "config": {"kind": "factory", "factory": "mine:make"},
        "collection": None,
        "model_fingerprint": "fp-1",
        "index_fingerprint": None,
        "measures": MEASURES,
    }
    baseline = store_run(store, gold, {q: perfect(q) for q in query_ids(N)}, **factory)
    model_canary_check(store, 0.02)
    save_drift_check(
        store,
        DriftCheck(
            stream="documents",
            subject="mini",
            finding="drift",
            method="mmd",
            is_drift=True,
            p_value=0.001,
        ),
    )
    removed = {f"{q}-b" for q in query_ids(N)[:4]}
    candidate = store_run(store, gold, _without(removed), **factory)
    kinds = [cause.kind for cause in explain_runs(store, candidate, baseline=baseline).causes]
    assert "index_model_mismatch" not in kinds
    assert "document_drift" not in kinds


def test_half_the_lost_documents_audited_missing_explain_half_the_loss(store: Store) -> None:
    gold = goldset(N)
    save_goldset(store, gold)
    _run(store, gold, {q: perfect(q) for q in query_ids(N)})
    removed = {f"{q}-b" for q in query_ids(N)[:4]}
    candidate = _run(store, gold, _without(removed), index="idx-2")
    _audit(store, "orphaned_judgments", sorted(removed)[:2])

    explanation = explain_runs(store, candidate, test=FAST)

    by_kind = {cause.kind: cause for cause in explanation.causes}
    # Four queries lost the same amount each; two of them are explained by the audit; the
    # other two lost documents the candidate returned nowhere, a hint no audit confirms.
    assert by_kind["missing_from_index"].score == pytest.approx(0.5)
    assert by_kind["absent_from_results"].score == pytest.approx(0.5)
    assert {row["doc_id"] for row in by_kind["absent_from_results"].evidence} == {
        "q03-b",
        "q04-b",
    }
    assert by_kind["index_changed"].score == pytest.approx(0.5)
    assert explanation.causes[0].kind == "missing_from_index"


@pytest.mark.parametrize(
    ("kind", "check", "what"),
    [
        ("changed_in_index", "staleness", "no longer store their source's text in the index"),
        # the model check's sample: vectors the model does not reproduce from a text that is
        # not the one indexed (an incident drill's stale content was blamed on the rebuild)
        (
            "content_replaced",
            "model",
            "hold another text and vector in the index than they were indexed with",
        ),
    ],
)
def test_documents_whose_stored_text_was_replaced_are_stale(
    store: Store, kind: str, check: str, what: str
) -> None:
    """Relevant documents whose text and vectors a pipeline replaced in place (the
    staleness check's changed_in_index, or the model check's content_replaced) are the stale
    documents that explain the loss."""
    gold = goldset(N)
    save_goldset(store, gold)
    _run(store, gold, {q: perfect(q) for q in query_ids(N)})
    candidate = _run(store, gold, _without(set(REMOVED)), index="idx-2")
    finding = Finding(
        kind=kind,
        check=check,
        severity=Severity.warning,
        message="7 indexed documents store another text than their source",
        count=len(REMOVED),
        doc_ids=tuple(REMOVED),
    )
    audit_id = _saved_audit(store, CheckOutcome(check, True, findings=(finding,)), "mini")

    top = explain_runs(store, candidate, test=FAST).causes[0]

    assert (top.kind, top.score) == ("stale_documents", pytest.approx(1.0))
    assert top.statement.startswith(
        f"7 of the 7 relevant documents lost by the 7 queries that dropped {what} of "
        f"collection mini (audit {audit_id}, {kind})"
    )


def _duplicates_audit(store: Store, clusters: Sequence[tuple[str, ...]]) -> str:
    """An audit of collection ``mini`` whose duplicates check found ``clusters``."""
    doc_ids = tuple(doc for cluster in clusters for doc in cluster)
    finding = Finding(
        kind="exact_duplicates",
        check="duplicates",
        severity=Severity.warning,
        message=f"{len(doc_ids)} documents are exact duplicates",
        count=len(doc_ids),
        doc_ids=doc_ids,
        clusters=tuple(clusters),
    )
    return _saved_audit(store, CheckOutcome("duplicates", True, findings=(finding,)), "mini")


def _copies_first(query: str, copies: int) -> list[str]:
    """The perfect ranking with ``copies`` copies of the first document right after it:
    the last ones (the grade-1 document among them) pushed out of the top 10."""
    ranking = perfect(query)
    return [ranking[0], *(f"{ranking[0]}-copy{i}" for i in range(copies)), *ranking[1:]][:10]


def test_duplicates_that_crowd_relevant_documents_out_of_the_top_k_are_the_cause(
    store: Store,
) -> None:
    """Seven queries' top 10 fill with copies of their first document after the index took
    copies in: each pushes the grade-1 document out, and the audit's clusters trace it."""
    gold = goldset(N)
    save_goldset(store, gold)
    _run(store, gold, {q: perfect(q) for q in query_ids(N)})
    crowded = query_ids(N)[:7]
    candidate = _run(
        store,
        gold,
        {q: _copies_first(q, 9) if q in crowded else perfect(q) for q in query_ids(N)},
        index="idx-2",
    )
    audit_id = _duplicates_audit(
        store, [(f"{q}-a", *(f"{q}-a-copy{i}" for i in range(9))) for q in query_ids(N)]
    )

    explanation = explain_runs(store, candidate, test=FAST)

    top = explanation.causes[0]
    assert top.kind == "crowded_by_duplicates"
    assert top.score == pytest.approx(1.0)
    assert top.statement == (
        "7 of the 7 queries that dropped rank extra copies of duplicate documents in their "
        f"top 10 (63 in all, from 7 duplicate clusters of collection mini, audit {audit_id}, "
        "exact_duplicates); with each cluster in one place and the relevant documents the "
        "copies pushed out put back, they win back 100% of the ndcg@10 loss"
    )
    assert dict(top.link.params) == {
        "collection": "mini",
        "audit": audit_id,
        "finding": "exact_duplicates",
    }
    first = top.evidence[0]
    assert first["query_id"] == "q01"
    assert first["extra_copies"] == ", ".join(f"q01-a-copy{i}" for i in range(9))
    assert first["pushed_out"] == "q01-b"
    assert first["without_copies"] == pytest.approx(first["baseline"])
    # Traced to the duplicates, the pushed-out documents are not also "probably missing",
    # and a rebuilt index has nothing left to account for.
    kinds = {cause.kind: cause for cause in explanation.causes}
    assert "absent_from_results" not in kinds
    assert kinds["index_changed"].score == pytest.approx(0.0)


def test_an_unjudged_copy_ranked_above_its_judged_original_is_the_cause(store: Store) -> None:
    """A copy of each query's best document, unjudged, ranks above it: the relevant
    documents move down a place and none is lost, and the cluster's place is the
    original's, so the copy accounts for the whole drop."""
    gold = goldset(N)
    save_goldset(store, gold)
    _run(store, gold, {q: perfect(q) for q in query_ids(N)})
    crowded = query_ids(N)[:5]
    candidate = _run(
        store,
        gold,
        {
            q: [f"{q}-a-copy", *perfect(q)][:10] if q in crowded else perfect(q)
            for q in query_ids(N)
        },
        index="idx-2",
    )
    _duplicates_audit(store, [(f"{q}-a", f"{q}-a-copy") for q in query_ids(N)])

    explanation = explain_runs(store, candidate, test=FAST)

    assert explanation.lost_documents == 0
    top = explanation.causes[0]
    assert (top.kind, top.score) == ("crowded_by_duplicates", pytest.approx(1.0))
    assert {row["query_id"]: row["extra_copies"] for row in top.evidence} == {
        q: f"{q}-a-copy" for q in crowded
    }
    assert all(row["pushed_out"] == "" for row in top.evidence)


def test_copies_the_baseline_ranked_as_well_explain_nothing(store: Store) -> None:
    """The same copies in both runs' top 10 took no place the baseline had: the loss is the
    retriever's, not the duplicates'."""
    gold = goldset(N)
    save_goldset(store, gold)
    crowded = query_ids(N)[:7]
    _run(
        store, gold, {q: _copies_first(q, 2) if q in crowded else perfect(q) for q in query_ids(N)}
    )
    candidate = _run(
        store,
        gold,
        {
            q: [doc for doc in _copies_first(q, 2) if doc != f"{q}-b"] + ["x5"]
            if q in crowded
            else perfect(q)
            for q in query_ids(N)
        },
        index="idx-2",
    )
    _duplicates_audit(store, [(f"{q}-a", f"{q}-a-copy0", f"{q}-a-copy1") for q in crowded])

    kinds = [cause.kind for cause in explain_runs(store, candidate, test=FAST).causes]
    assert "crowded_by_duplicates" not in kinds


def test_without_an_audit_absent_documents_are_named_and_the_note_says_how_to_audit(
    store: Store,
) -> None:
    gold = goldset(N)
    save_goldset(store, gold)
    _run(store, gold, {q: perfect(q) for q in query_ids(N)})
    candidate = _run(store, gold, _without({"q01-b", "q02-b"}), index="idx-2")

    explanation = explain_runs(store, candidate, test=FAST)

    # Without an audit, the store still knows the candidate returned them for no query.
    kinds = [cause.kind for cause in explanation.causes]
    assert kinds == ["index_changed", "absent_from_results"]
    rebuilt, absent = explanation.causes
    assert absent.score == pytest.approx(1.0)
    assert absent.statement.startswith("probably missing from the index: 2 of the 2")
    assert {row["doc_id"] for row in absent.evidence} == {"q01-b", "q02-b"}
    assert dict(absent.link.params) == {"goldset": "mini", "run": candidate, "query": "q02"}
    # A hint, not evidence: the rebuilt index can still account for the whole loss.
    assert rebuilt.score == pytest.approx(1.0)
    assert any("evalkit audit --collection mini --goldset mini" in n for n in explanation.notes)
    assert explanation.lost_documents == explanation.lost_pairs == 2


def test_absent_documents_an_audit_found_in_the_index_are_said_ranked_out_not_missing(
    store: Store,
) -> None:
    """The statement read "probably missing from the index (an audit of the index confirms
    it)" after an audit of every judged document had found none missing."""
    gold = goldset(N)
    save_goldset(store, gold)
    _run(store, gold, {q: perfect(q) for q in query_ids(N)})
    candidate = _run(store, gold, _without({"q01-b", "q02-b"}), index="idx-2")
    audit_id = _audit(store, None, goldset_version=gold.version)

    absent = {cause.kind: cause for cause in explain_runs(store, candidate, test=FAST).causes}[
        "absent_from_results"
    ]
    assert absent.statement.startswith(
        f"in the index (audit {audit_id}) but ranked out of every query's top k, so its "
        "vectors or ranking changed: 2 of the 2 relevant documents"
    )
    assert "evalkit audit" not in absent.statement


def test_an_audit_before_the_candidate_never_says_its_lost_documents_are_in_the_index(
    store: Store,
) -> None:
    """An audit between the runs, before documents were deleted from the index: explain
    said the deleted documents were "in the index (audit ...)" on its word."""
    gold = goldset(N)
    save_goldset(store, gold)
    _run(store, gold, {q: perfect(q) for q in query_ids(N)})
    _audit(store, None, goldset_version=gold.version)
    candidate = _run(store, gold, _without({"q01-b", "q02-b"}), index="idx-2")

    absent = {cause.kind: cause for cause in explain_runs(store, candidate, test=FAST).causes}[
        "absent_from_results"
    ]
    assert absent.statement.startswith("probably missing from the index: 2 of the 2")


def test_the_audit_note_names_the_index_and_only_for_indexes_an_audit_reads(
    store: Store,
) -> None:
    gold = goldset(N)
    save_goldset(store, gold)
    lost = _without({"q01-b", "q02-b"})
    served = {"kind": "chroma-http", "url": "http://chroma:8000", "collection": "mini"}
    expected = {
        "chroma-http": "`evalkit audit --collection mini --chroma-url http://chroma:8000 "
        "--goldset mini`",
        "qdrant": "`evalkit audit --retriever qdrant --collection kb --goldset mini`",
        "pgvector": "`evalkit audit --retriever pgvector --goldset mini`",
    }
    for kind, config in (
        ("chroma-http", served),
        ("qdrant", {"kind": "qdrant", "collection": "kb"}),
        ("pgvector", {"kind": "pgvector", "table": "public.docs"}),
        ("http", {"kind": "http", "url": "http://s"}),
    ):
        runs = [
            store_run(
                store,
                gold,
                rankings,
                retriever_kind=kind,
                config=config,
                collection=config.get("collection") or config.get("table"),
                model_fingerprint="fp-1",
                index_fingerprint="idx-1",
                measures=MEASURES,
            )
            for rankings in ({q: perfect(q) for q in query_ids(N)}, lost)
        ]
        notes = explain_runs(store, runs[1], baseline=runs[0], test=FAST).notes
        if kind in expected:
            assert any(expected[kind] in note for note in notes), notes
        else:
            # An HTTP endpoint is no Chroma collection: `evalkit audit` could not read it.
            assert not any("evalkit audit" in note for note in notes), notes


def test_a_swapped_query_model_ranks_first_and_a_canary_mismatch_before_it(
    store: Store,
) -> None:
    gold = goldset(N)
    save_goldset(store, gold)
    _run(store, gold, {q: perfect(q) for q in query_ids(N)})
    shuffled = {q: [f"y{i}" for i in range(5)] + perfect(q)[:5] for q in query_ids(N)}
    candidate = _run(store, gold, shuffled, model="fp-other")

    explanation = explain_runs(store, candidate, test=FAST)
    assert explanation.causes[0].kind == "query_model_changed"
    assert explanation.causes[0].score == pytest.approx(1.0)
    assert "fp-1" in explanation.causes[0].statement
    assert "fp-other" in explanation.causes[0].statement

    check = model_canary_check(store, 0.02)
    explanation = explain_runs(store, candidate, test=FAST)
    kinds = [cause.kind for cause in explanation.causes]
    assert kinds[:2] == ["index_model_mismatch", "query_model_changed"]
    assert explanation.causes[0].link.page == "drift"
    assert dict(explanation.causes[0].link.params) == {"check": check}
    assert "0.020" in explanation.causes[0].statement


def test_a_mismatch_found_by_re_embedding_quotes_the_sample_not_the_canary(
    store: Store,
) -> None:
    """`drift model` found every sampled vector of another space while the fingerprint the
    collection records matched (canary cosine 1.000): explain quoted that cosine as the
    evidence of the mismatch. It quotes what the check found it by, and names it."""
    gold = goldset(N)
    save_goldset(store, gold)
    _run(store, gold, {q: perfect(q) for q in query_ids(N)})
    shuffled = {q: [f"y{i}" for i in range(5)] + perfect(q)[:5] for q in query_ids(N)}
    candidate = _run(store, gold, shuffled)
    sample = Reembedding(
        doc_ids=tuple(f"d{i}" for i in range(64)),
        cosines=np.linspace(0.0123, 0.21, 64),
        content_changed=np.zeros(64, dtype=bool),
        min_cosine=0.99,
    ).summary()
    check = save_drift_check(
        store,
        DriftCheck(
            stream="model",
            subject="mini",
            finding="model_mismatch",
            method="canary_fingerprint+reembedded_sample",
            is_drift=True,
            reference="fp-1",
            current="fp-1",
            statistic=1.0,
            n_current=64,
            details={
                "evidence": ["canary_fingerprint", "reembedded_sample"],
                "reembedding": sample,
            },
        ),
    ).check_id

    explanation = explain_runs(store, candidate, test=FAST)

    cause = explanation.causes[0]
    assert cause.kind == "index_model_mismatch"
    assert cause.statement.startswith(
        f"the model check {check} found the index mini built with another embedding model "
        "than the query model: 64 of 64 stored documents re-embedded from their text (100%) "
        "do not reproduce their stored vectors, lowest cosine 0.012 < 0.99 "
        "(reembedded_sample); lowest canary cosine 1.000 (canary_fingerprint): the model the "
        "collection records is not the one that made its vectors"
    )
    assert cause.evidence[0]["evidence"] == ["canary_fingerprint", "reembedded_sample"]
    assert cause.evidence[0]["reembedded_sample"]["other_model"] == 64


def test_one_model_on_two_backends_is_no_model_change(store: Store) -> None:
    """The same model on ONNX Runtime and on torch has two canary hashes: explain named a
    query model change between two runs with identical metrics, and the Quality page
    marked one."""
    onnx, torch = two_backends()
    assert onnx.canary_hash != torch.canary_hash
    gold = goldset(N)
    save_goldset(store, gold)
    baseline = _model_run(store, gold, torch, canaries=True)
    candidate = _model_run(store, gold, onnx, canaries=True)

    explanation = explain_runs(store, candidate, baseline=baseline, test=FAST)
    assert "query_model_changed" not in [cause.kind for cause in explanation.causes]
    points = series_points_frame(store, goldset="mini", measure="ndcg@10")
    assert points["model_changed"].tolist() == [False, False]
    assert points["model_change_unconfirmed"].tolist() == [False, False]


def test_another_model_is_a_model_change_with_its_canary_cosine(store: Store) -> None:
    gold = goldset(N)
    save_goldset(store, gold)
    mine, _ = two_backends()
    other = fingerprint_from_canaries("all-MiniLM-L6-v2", 384, _canaries(6))
    baseline = _model_run(store, gold, mine, canaries=True)
    candidate = _model_run(store, gold, other, canaries=True)

    causes = explain_runs(store, candidate, baseline=baseline, test=FAST).causes
    changed = {cause.kind: cause for cause in causes}["query_model_changed"]
    cosine = mine.canary_similarity(other)
    assert cosine is not None
    assert cosine < 0.5
    assert changed.statement.startswith(
        f"the query embedding model changed: all-MiniLM-L6-v2 (384d, canary {mine.canary_hash})"
        f" in the baseline, all-MiniLM-L6-v2 (384d, canary {other.canary_hash}) in the "
        f"candidate, lowest canary cosine {cosine:.4f}"
    )
    points = series_points_frame(store, goldset="mini", measure="ndcg@10")
    assert points["model_changed"].tolist() == [False, True]
    assert points["model_change_unconfirmed"].tolist() == [False, False]


def test_a_run_stored_with_its_canary_hash_only_makes_the_model_change_unconfirmed(
    store: Store,
) -> None:
    """Runs stored before runs kept canary embeddings: another hash of the same name may be
    the same model on another backend, and explain says so rather than asserting a change."""
    onnx, torch = two_backends()
    gold = goldset(N)
    save_goldset(store, gold)
    baseline = _model_run(store, gold, torch, canaries=False)
    candidate = _model_run(store, gold, onnx, canaries=True)
    again = _model_run(store, gold, onnx, canaries=False)

    causes = explain_runs(store, candidate, baseline=baseline, test=FAST).causes
    changed = {cause.kind: cause for cause in causes}["query_model_changed"]
    assert changed.statement.startswith(
        f"the query embedding model may have changed: all-MiniLM-L6-v2 (384d, canary "
        f"{torch.canary_hash}) in the baseline, all-MiniLM-L6-v2 (384d, canary "
        f"{onnx.canary_hash}) in the candidate; a run stored without its canary embeddings "
        "cannot tell another model from the same model on another backend (ONNX Runtime, "
        "torch) or CPU"
    )
    same_hash = explain_runs(store, again, baseline=candidate, test=FAST).causes
    assert "query_model_changed" not in [cause.kind for cause in same_hash]
    points = series_points_frame(store, goldset="mini", measure="ndcg@10")
    assert points["model_changed"].tolist() == [False, True, False]
    assert points["model_change_unconfirmed"].tolist() == [False, True, False]


def test_changed_judgments_are_the_goldset_cause(store: Store) -> None:
    gold = goldset(N)
    save_goldset(store, gold)
    _run(store, gold, {q: perfect(q) for q in query_ids(N)})
    changed = {"q01", "q02", "q03"}
    judgments = [
        Judgment(j.query_id, f"{j.query_id}-z", j.relevance)
        if j.query_id in changed and j.doc_id.endswith("-b")
        else j
        for j in gold.judgments
    ]
    gold_v2 = Goldset.build(name=gold.name, queries=gold.queries, judgments=judgments)
    save_goldset(store, gold_v2)
    candidate = _run(store, gold_v2, {q: perfect(q) for q in query_ids(N)})

    explanation = explain_runs(store, candidate, test=FAST)

    top = explanation.causes[0]
    assert top.kind == "goldset_changed"
    assert top.score == pytest.approx(1.0)
    assert {row["query_id"] for row in top.evidence} == changed
    assert "judgments of 3 compared queries differ" in top.statement
    assert top.link.page == "quality"
    assert dict(top.link.params) == {"goldset": "mini", "measure": "ndcg@10"}


def test_the_goldset_cause_names_each_runs_goldset_with_its_own_version(store: Store) -> None:
    """A candidate replayed on a goldset of another name was described as the candidate's
    goldset "changed from" the baseline's version, which belongs to another goldset."""
    gold = goldset(N)
    save_goldset(store, gold)
    baseline = _run(store, gold, {q: perfect(q) for q in query_ids(N)})
    kept = set(query_ids(10))
    smaller = Goldset.build(
        name="mini-small",
        queries=[q for q in gold.queries if q.id in kept],
        judgments=[j for j in gold.judgments if j.query_id in kept],
    )
    save_goldset(store, smaller)
    candidate = _run(store, smaller, {q: perfect(q) for q in query_ids(10)})

    (cause,) = [
        c
        for c in explain_runs(store, candidate, baseline=baseline, test=FAST).causes
        if c.kind == "goldset_changed"
    ]

    assert cause.statement == (
        f"the goldset changed from mini version {gold.version[:12]} (baseline) to mini-small "
        f"version {smaller.version[:12]} (candidate): no query both versions hold is judged "
        "otherwise (0% of the ndcg@10 loss); 0 queries added and 4 removed are not compared"
    )


def test_changed_judgments_explain_nothing_when_both_runs_are_scored_on_the_same_ones(
    store: Store,
) -> None:
    """The gate scores both runs on --goldset's judgments: the queries regraded between the
    runs' versions were credited with the whole loss they had on the same judgments."""
    gold = goldset(N)
    save_goldset(store, gold)
    baseline = _run(store, gold, {q: perfect(q) for q in query_ids(N)})
    changed = {"q01", "q02", "q03"}
    judgments = [
        Judgment(j.query_id, j.doc_id, 1) if j.query_id in changed and j.relevance == 2 else j
        for j in gold.judgments
    ]
    gold_v2 = Goldset.build(name=gold.name, queries=gold.queries, judgments=judgments)
    save_goldset(store, gold_v2)
    rankings = {q: degraded(q) if q in changed else perfect(q) for q in query_ids(N)}
    candidate = _run(store, gold_v2, rankings)
    frame = judgments_frame(store, gold_v2.version)
    before, after = (
        score_stored_run(store, run, ["ndcg@10"], judgments=frame) for run in (baseline, candidate)
    )

    explanation = explain_comparison(store, compare_scored(before, after, ["ndcg@10"], FAST))

    (cause,) = [c for c in explanation.causes if c.kind == "goldset_changed"]
    assert explanation.loss > 0
    assert cause.score == 0
    assert cause.statement == (
        f"goldset mini changed from version {gold.version[:12]} (baseline) to "
        f"{gold_v2.version[:12]} (candidate): the judgments of 3 queries differ between the "
        "versions, but both runs were scored on the same judgments, so the change accounts for "
        "none of the ndcg@10 loss; 0 queries added and 0 removed are not compared"
    )
    own = explain_runs(store, candidate, baseline=baseline, test=FAST).causes
    assert [c.score for c in own if c.kind == "goldset_changed"] == [pytest.approx(1.0)]


def test_a_smaller_k_is_the_cause_of_documents_ranked_below_it(store: Store) -> None:
    gold = goldset(N)
    save_goldset(store, gold)
    deep = {q: [f"y{i}" for i in range(5)] + perfect(q)[:5] for q in query_ids(N)}
    _run(store, gold, deep)
    candidate = _run(store, gold, {q: deep[q][:6] for q in query_ids(N)}, k=6)

    explanation = explain_runs(store, candidate, measures=["recall@10"], test=FAST)

    top = explanation.causes[0]
    assert top.kind == "k_changed"
    assert top.score == pytest.approx(1.0)
    assert "k changed from 10 to 6" in top.statement
    assert {row["baseline_rank"] for row in top.evidence} == {7}

    # A deeper candidate cannot lose what its baseline ranked below the baseline's k: the
    # cause is not listed at 0% (docs/cli.md: "retrieved fewer documents per query").
    deeper = _run(store, gold, {q: deep[q][:1] for q in query_ids(N)}, k=20)
    kinds = [cause.kind for cause in explain_runs(store, deeper, test=FAST).causes]
    assert "k_changed" not in kinds


def test_failed_queries_of_a_partial_run_are_their_share_of_the_loss(store: Store) -> None:
    gold = goldset(N)
    save_goldset(store, gold)
    good = {q: perfect(q) for q in query_ids(N)}
    _run(store, gold, good)
    candidate = _run(store, gold, good, failed=("q01", "q02"))

    explanation = explain_runs(store, candidate, test=FAST)

    top = explanation.causes[0]
    assert top.kind == "failed_queries"
    assert top.score == pytest.approx(1.0)
    assert top.link.page == "query"
    assert dict(top.link.params) == {"goldset": "mini", "run": candidate, "query": "q01"}
    assert "2 queries failed" in top.statement


def test_query_drift_between_goldset_runs_is_a_note_not_a_cause(store: Store) -> None:
    gold = goldset(N)
    save_goldset(store, gold)
    _run(store, gold, {q: perfect(q) for q in query_ids(N)})
    save_drift_check(
        store,
        DriftCheck(stream="queries", subject="mini", finding="drift", method="ks", is_drift=True),
    )
    candidate = _run(store, gold, _without({"q01-b"}))
    save_drift_check(
        store,
        DriftCheck(stream="queries", subject="mini", finding="drift", method="mmd", is_drift=True),
    )

    explanation = explain_runs(store, candidate, test=FAST)

    # A goldset asks the same queries whatever production asks: drifted queries are no
    # cause of its loss, only a sign it may have aged.
    assert "query_drift" not in [cause.kind for cause in explanation.causes]
    [note] = [note for note in explanation.notes if "of the queries between" in note]
    assert note.startswith("1 drift check of the queries between the runs found drift")
    assert "(ks on mini" in note
    assert "does not explain the loss" in note


def _lost_to_missing_documents(store: Store) -> tuple[Goldset, str, str]:
    """The goldset, a perfect baseline run and a candidate that lost 7 relevant documents
    an audit then found missing from the index."""
    gold = goldset(N)
    save_goldset(store, gold)
    baseline = _run(store, gold, {q: perfect(q) for q in query_ids(N)})
    removed = {f"{q}-b" for q in query_ids(N)[:7]}
    candidate = _run(store, gold, _without(removed), index="idx-2")
    _audit(store, "missing_from_index", sorted(removed))
    return gold, baseline, candidate


def test_a_precision_drift_check_and_an_alert_resolve_to_their_runs(store: Store) -> None:
    _, baseline, candidate = _lost_to_missing_documents(store)
    check = precision_check(store, baseline, candidate, "precision@10")
    explanation = explain_drift_check(store, check, test=FAST)
    assert (explanation.baseline, explanation.candidate) == (baseline, candidate)
    assert explanation.measure == "precision@10"
    assert explanation.causes[0].kind == "missing_from_index"
    assert explanation.about == {"drift_check": check}

    now = utc_now()
    alert = StoredAlert(
        alert_id="a1",
        rule="precision-drop",
        kind="precision_regression",
        dedup_key="precision-drop:mini",
        subject="mini",
        status="firing",
        severity="critical",
        title="t",
        summary="s",
        evidence={"baseline_run": baseline, "candidate_run": candidate, "metric": "ndcg@10"},
        links={},
        fired_at=now,
        created_at=now,
        n_sinks=0,
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
    save_alert(store, alert, state=state, sinks=[])
    explanation = explain_alert(store, alert, test=FAST)
    assert explanation.causes[0].kind == "missing_from_index"
    assert explanation.about == {"alert": "a1"}


def test_a_metric_drift_check_resolves_to_its_own_runs_and_measure(store: Store) -> None:
    gold, baseline, candidate = _lost_to_missing_documents(store)
    # A later run (the index repaired): the check is about the two runs it names.
    _run(store, gold, {q: perfect(q) for q in query_ids(N)})
    check = precision_check(store, baseline, candidate, "precision@10", stream="metric")

    explanation = explain_drift_check(store, check, test=FAST)

    assert (explanation.baseline, explanation.candidate) == (baseline, candidate)
    assert explanation.measure == "precision@10"
    assert explanation.causes[0].kind == "missing_from_index"


def test_a_query_drift_check_resolves_to_goldset_runs_not_traffic_replays(store: Store) -> None:
    gold = goldset(N)
    save_goldset(store, gold)
    baseline = _run(store, gold, {q: perfect(q) for q in query_ids(N)})
    candidate = _run(store, gold, _without({"q01-b"}), index="idx-2")
    # A traffic window's replay, made after the goldset runs: a run without measures.
    store_traffic_run(store, retriever_kind="chroma-embedded")
    store_traffic_run(store, retriever_kind="chroma-embedded")
    check = save_drift_check(
        store,
        DriftCheck(
            stream="queries", subject="traffic", finding="drift", method="mmd", is_drift=True
        ),
    ).check_id

    explanation = explain_drift_check(store, check, test=FAST)

    assert (explanation.baseline, explanation.candidate) == (baseline, candidate)
    assert explanation.about == {"drift_check": check}
    assert explanation.causes[0].kind == "index_changed"


def test_a_run_with_no_earlier_run_asks_for_a_baseline(store: Store) -> None:
    gold = goldset(N)
    save_goldset(store, gold)
    only = _run(store, gold, {q: perfect(q) for q in query_ids(N)})
    with pytest.raises(ConfigError, match=r"name the baseline \(`baseline`\)"):
        explain_runs(store, only)


def test_every_cause_kind_names_a_dashboard_page() -> None:
    pages = {"index_health", "query", "quality", "drift", "compare"}
    assert {kind.page for kind in CAUSE_KINDS.values()} <= pages


def test_a_precision_alert_carries_the_causes_in_its_payload(store: Store, tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    gold = goldset(N)
    save_goldset(store, gold)
    baseline = _run(store, gold, {q: perfect(q) for q in query_ids(N)})
    removed = {f"{q}-b" for q in query_ids(N)[:7]}
    _run(store, gold, _without(removed), index="idx-2")
    audit_id = _audit(store, "orphaned_judgments", sorted(removed))
    [alert] = _precision_alerts(store, tmp_path, baseline, dashboard_url="http://dash:8501/")
    causes = alert.evidence["probable_causes"]
    top = causes["causes"][0]
    assert top["kind"] == "missing_from_index"
    assert top["url"] == (
        f"http://dash:8501/index_health?collection=mini&audit={audit_id}&finding=orphaned_judgments"
    )
    assert "Probable cause (100% of the loss): 7 of the 7 relevant documents" in alert.summary
    payload = alert_payload(alert)
    validator = jsonschema.Draft202012Validator(load_schema("alert-payload"))
    assert not [error.message for error in validator.iter_errors(json.loads(encode(payload)))]
    slack = json.dumps(slack_body(alert))
    assert "*probable causes*" in slack
    assert "missing from the index" in slack


def test_a_newer_audit_before_the_candidate_that_no_longer_finds_the_documents_clears_them(
    store: Store,
) -> None:
    """Documents an audit found missing were indexed again, and a later audit before the
    candidate found them: that audit is the nearer one, and they are no longer blamed."""
    gold = goldset(N)
    save_goldset(store, gold)
    _run(store, gold, {q: perfect(q) for q in query_ids(N)})
    removed = {f"{q}-b" for q in query_ids(N)[:7]}
    _audit(store, "orphaned_judgments", sorted(removed))
    _audit(store, None)
    candidate = _run(store, gold, _without(removed), index="idx-2")

    explanation = explain_runs(store, candidate, test=FAST)

    kinds = [cause.kind for cause in explanation.causes]
    assert "missing_from_index" not in kinds
    assert kinds[0] == "index_changed"


def _precision_alerts(
    store: Store, tmp_path: Path, baseline: str, *, dashboard_url: str | None = None
) -> list[Alert]:
    """The alerts of one ``precision_regression`` rule on goldset ``mini`` against
    ``baseline``, evaluated now."""
    rule = {
        "name": "precision-drop",
        "kind": "precision_regression",
        "goldset": "mini",
        "measures": ["ndcg@10"],
        "baseline_run": baseline,
        "resamples": 500,
        "cooldown": 0,
    }
    alerts: dict[str, object] = {"rules": [rule]}
    if dashboard_url is not None:
        alerts["dashboard_url"] = dashboard_url
    config = alerts_config(parse_settings({"alerts": alerts}, tmp_path / "evalkit.toml"))
    return list(evaluate_rules(store, config, build_sinks(config), now=utc_now()).alerts)


def _counted_run(store: Store, gold: Goldset, rankings: dict[str, list[str]], count: int) -> str:
    """A run of collection ``mini`` that recorded the index holding ``count`` documents."""
    return store_run(
        store,
        gold,
        rankings,
        retriever_kind="chroma-embedded",
        config={**CHROMA, "count": count},
        collection="mini",
        model_fingerprint="fp-1",
        index_fingerprint=f"idx-{count}",
        measures=MEASURES,
    )


def test_explain_reads_the_incidents_audit_not_one_made_after_a_restore(store: Store) -> None:
    """Seven relevant documents deleted, an audit finding them missing, the incident run;
    then the index restored from a backup and audited again. A post-mortem `explain` of the
    incident run read the newest audit, which saw the restored index, and said the
    documents were "in the index but ranked out of every query's top k"."""
    gold = goldset(N)
    save_goldset(store, gold)
    _counted_run(store, gold, {q: perfect(q) for q in query_ids(N)}, 40)
    incident = _audit(
        store, "orphaned_judgments", REMOVED, goldset_version=gold.version, n_documents=33
    )
    candidate = _counted_run(store, gold, _without(set(REMOVED)), 33)
    restored = _audit(store, None, goldset_version=gold.version, n_documents=40)

    explanation = explain_runs(store, candidate, test=FAST)

    top = explanation.causes[0]
    assert top.kind == "missing_from_index"
    assert top.score == pytest.approx(1.0)
    assert f"(audit {incident}, orphaned_judgments)" in top.statement
    assert "absent_from_results" not in [cause.kind for cause in explanation.causes]
    assert [(row["kind"], row["id"], row["checks"]) for row in explanation.evidence] == [
        ("audit", incident, ["orphans"])
    ]
    (left_out,) = [note for note in explanation.notes if "left out" in note]
    assert left_out.startswith("1 audit or canary check made from ")
    assert left_out.endswith(
        f"UTC on was left out: audit {restored} counted 40 documents where the candidate "
        "searched 33, so the index changed after the candidate ran (restored, re-indexed or "
        "edited) and they describe it since"
    )
    assert explanation.evidence_line() == (
        f"evidence read: audit {incident} of mini "
        f"({explanation.evidence[0]['at'][:16].replace('T', ' ')} UTC: orphans)"
    )


def test_the_query_drill_down_reads_the_audits_explain_reads(store: Store) -> None:
    """The Query drill-down's "why" read the newest audits since the baseline and knew no
    changed_in_index: after a restore and a clean audit it no longer said the documents
    were missing, and a document whose stored text the index replaced was "not in the
    candidate's top k". It reads the audits `explain` reads, nearest the candidate."""
    gold = goldset(N)
    save_goldset(store, gold)
    baseline = _counted_run(store, gold, {q: perfect(q) for q in query_ids(N)}, 40)
    replaced = sorted(f"{q}-a" for q in query_ids(N)[:3])
    rewritten = _saved_audit(
        store,
        CheckOutcome(
            "staleness",
            True,
            findings=(
                Finding(
                    kind="changed_in_index",
                    check="staleness",
                    severity=Severity.warning,
                    message=f"{len(replaced)} documents no longer store their source's text",
                    count=len(replaced),
                    doc_ids=tuple(replaced),
                ),
            ),
        ),
        "mini",
    )
    incident = _audit(store, "orphaned_judgments", REMOVED, n_documents=33)
    candidate = _counted_run(store, gold, _without({*REMOVED, *replaced}), 33)
    _audit(store, None, n_documents=40)

    diff = query_diff(
        store, query_id="q01", baseline=baseline, candidate=candidate, measure="ndcg@10"
    )

    why = {row.doc_id: (row.why, row.audit_id, row.finding) for row in diff.lost.itertuples()}
    assert why == {
        "q01-a": (
            f"stale: the index no longer stores its source's text (audit {rewritten})",
            rewritten,
            "changed_in_index",
        ),
        "q01-b": (
            f"missing from the index per audit {incident} (orphaned_judgments)",
            incident,
            "orphaned_judgments",
        ),
    }
    explanation = explain_runs(store, candidate, baseline=baseline, test=FAST)
    assert {row["id"] for row in explanation.evidence if row["kind"] == "audit"} == {
        rewritten,
        incident,
    }


def test_duplicates_at_the_incident_stay_the_cause_after_a_restore_and_a_clean_audit(
    store: Store,
) -> None:
    """Copies crowd the incident run's top 10 and an audit then finds them; the index is
    restored, a run finds it as before, and a newer audit finds no duplicates. Explaining
    the incident run afterwards named only "index changed": the newer audit had settled the
    duplicates check."""
    gold = goldset(N)
    save_goldset(store, gold)
    _run(store, gold, {q: perfect(q) for q in query_ids(N)})
    crowded = query_ids(N)[:7]
    candidate = _run(
        store,
        gold,
        {q: _copies_first(q, 9) if q in crowded else perfect(q) for q in query_ids(N)},
        index="idx-2",
    )
    incident = _duplicates_audit(
        store, [(f"{q}-a", *(f"{q}-a-copy{i}" for i in range(9))) for q in query_ids(N)]
    )
    recovered = _run(store, gold, {q: perfect(q) for q in query_ids(N)})
    _saved_audit(store, CheckOutcome("duplicates", True), "mini")

    explanation = explain_runs(store, candidate, test=FAST)

    top = explanation.causes[0]
    assert top.kind == "crowded_by_duplicates"
    assert top.score == pytest.approx(1.0)
    assert f"audit {incident}" in top.statement
    assert [row["id"] for row in explanation.evidence] == [incident]
    assert any(
        f"run {recovered} searched another index (fingerprint idx-2 -> idx-1)" in note
        for note in explanation.notes
    )


def test_an_alert_that_carried_a_cause_still_reports_it_after_a_restore(
    store: Store, tmp_path: Path
) -> None:
    """`explain --alert` on an alert whose evidence named the missing documents said "none
    found" once the index was restored and audited again."""
    gold = goldset(N)
    save_goldset(store, gold)
    baseline = _counted_run(store, gold, {q: perfect(q) for q in query_ids(N)}, 40)
    _counted_run(store, gold, _without(set(REMOVED)), 33)
    incident = _audit(store, "orphaned_judgments", REMOVED, n_documents=33)
    [fired] = _precision_alerts(store, tmp_path, baseline)
    assert fired.evidence["probable_causes"]["causes"][0]["kind"] == "missing_from_index"
    _audit(store, None, n_documents=40)

    explanation = explain_alert(store, fired, test=FAST)

    assert explanation.causes[0].kind == "missing_from_index"
    assert f"audit {incident}" in explanation.causes[0].statement
    assert explanation.about == {"alert": fired.alert_id}


def test_a_model_canary_check_resolves_to_the_newest_run_of_its_collection(
    store: Store,
) -> None:
    gold = goldset(N)
    save_goldset(store, gold)
    baseline = _run(store, gold, {q: perfect(q) for q in query_ids(N)})
    shuffled = {q: [f"y{i}" for i in range(5)] + perfect(q)[:5] for q in query_ids(N)}
    candidate = _run(store, gold, shuffled)
    check = model_canary_check(store, 0.01)

    explanation = explain_drift_check(store, check, test=FAST)

    assert (explanation.baseline, explanation.candidate) == (baseline, candidate)
    assert explanation.causes[0].kind == "index_model_mismatch"
    assert explanation.causes[0].score == pytest.approx(1.0)
    assert explanation.about == {"drift_check": check}

    # A check of another collection's index: a run of "mini" says nothing of it.
    other = save_drift_check(
        store,
        DriftCheck(
            stream="documents", subject="other", finding="drift", method="mmd", is_drift=True
        ),
    ).check_id
    with pytest.raises(ConfigError, match="is of collection 'other' \\(documents\\), and no"):
        explain_drift_check(store, other, test=FAST)


def test_an_index_rebuilt_or_grown_is_an_index_change_not_a_retriever_one(
    store: Store,
) -> None:
    """A BM25 index's description lists its document and term counts and build time: a
    rebuild from a changed corpus changes them and its fingerprint, which is index_changed.
    A plug-in's fields of the same names still describe its retriever."""
    gold = goldset(N)
    save_goldset(store, gold)
    worse = _without({f"{q}-b" for q in query_ids(N)[:4]})

    def run(kind: str, rankings: dict[str, list[str]], index: str, **facts: object) -> str:
        return store_run(
            store,
            gold,
            rankings,
            retriever_kind=kind,
            config={"kind": kind, "k1": 1.2, **facts},
            collection=None,
            model_fingerprint=None,
            index_fingerprint=index,
            measures=MEASURES,
        )

    perfect_rankings = {q: perfect(q) for q in query_ids(N)}
    built = {"documents": 40, "terms": 300, "built_at": "2026-11-01T00:00:00+00:00"}
    rebuilt = {"documents": 36, "terms": 280, "built_at": "2026-11-02T00:00:00+00:00"}
    before = run("bm25", perfect_rankings, "idx-1", **built)
    after = run("bm25", worse, "idx-2", **rebuilt)
    kinds = [cause.kind for cause in explain_runs(store, after, baseline=before, test=FAST).causes]
    assert "retriever_changed" not in kinds
    assert kinds[0] == "index_changed"

    # A pgvector table's row estimate moves as rows are written and after ANALYZE.
    before = run("pgvector", perfect_rankings, "idx-1", estimated_rows=-1)
    after = run("pgvector", worse, "idx-2", estimated_rows=5183)
    kinds = [cause.kind for cause in explain_runs(store, after, baseline=before, test=FAST).causes]
    assert "retriever_changed" not in kinds
    assert kinds[0] == "index_changed"

    mine = run("factory", perfect_rankings, "idx-1", documents=40)
    theirs = run("factory", worse, "idx-1", documents=36)
    kinds = [cause.kind for cause in explain_runs(store, theirs, baseline=mine, test=FAST).causes]
    assert "retriever_changed" in kinds
