"""Rule kinds over what other stages stored: drift checks, audits, traffic windows, job runs,
and the sequential form of the precision rule."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from traffic_windows import day_window_summary

from evalkit.alerts import AlertsConfig, Evaluation, alerts_config, build_sinks, evaluate_rules
from evalkit.alerts.engine import dedup_key
from evalkit.config import parse_settings
from evalkit.embedding import ModelFingerprint
from evalkit.goldset.model import Goldset
from evalkit.pipeline import evaluate_goldset
from evalkit.records import Judgment, Query, QueryResult, ScoredDoc
from evalkit.records.audit import AuditReport, CheckOutcome, Finding, Severity
from evalkit.records.drift import DriftCheck
from evalkit.records.requests import GoldsetRunRequest
from evalkit.store import RunSpec, Store
from evalkit.store.alerts import (
    StoredAlertState,
    list_alerts,
    load_alert_states,
    record_delivery_attempt,
    save_alert_states,
)
from evalkit.store.audit import save_audit
from evalkit.store.drift import save_drift_check
from evalkit.store.goldsets import save_goldset
from evalkit.store.jobs import record_job_run
from evalkit.store.runs import create_run, finish_run, get_run
from evalkit.store.traffic import StoredWindowSummary, save_traffic_replay

T0 = datetime(2026, 11, 21, 2, 0, 0)


def configure(*rules: dict[str, Any]) -> AlertsConfig:
    return alerts_config(
        parse_settings(
            {"alerts": {"rules": [{"cooldown": 0, **rule} for rule in rules]}}, Path("evalkit.toml")
        )
    )


def evaluate(store: Store, config: AlertsConfig, minutes: int = 0) -> Evaluation:
    return evaluate_rules(store, config, build_sinks(config), now=T0 + timedelta(minutes=minutes))


def told(evaluation: Evaluation) -> list[tuple[str, str, str]]:
    return sorted((a.subject, a.status.value, a.severity.value) for a in evaluation.alerts)


def test_embedding_drift_fires_on_the_newest_check_and_resolves(store: Store) -> None:
    config = configure({"name": "drift", "kind": "embedding_drift", "severity": "warning"})
    save_drift_check(
        store,
        DriftCheck(
            stream="queries",
            subject="traffic",
            finding="ok",
            method="mmd",
            is_drift=False,
            p_value=0.4,
        ),
    )
    assert told(evaluate(store, config)) == []
    save_drift_check(
        store,
        DriftCheck(
            stream="queries",
            subject="traffic",
            finding="drift",
            method="mmd",
            is_drift=True,
            p_value=0.001,
            statistic=0.123456789,
            effect_size=0.3,
            n_reference=500,
            n_current=480,
            reference="2026-11-19",
            current="2026-11-20",
        ),
    )
    first = evaluate(store, config, 1)
    assert told(first) == [("queries/traffic", "firing", "warning")]
    assert first.alerts[0].title == "queries embeddings of traffic: drift"
    assert first.alerts[0].summary == (
        "mmd: statistic 0.1235, p = 0.001, effect size 0.3000, 500 reference vs 480 current "
        "(2026-11-19 -> 2026-11-20)"
    )
    evidence = first.alerts[0].evidence
    assert (evidence["p_value"], evidence["effect_size"], evidence["n_current"]) == (
        0.001,
        0.3,
        480,
    )
    assert told(evaluate(store, config, 2)) == []
    save_drift_check(
        store,
        DriftCheck(
            stream="queries",
            subject="traffic",
            finding="ok",
            method="mmd",
            is_drift=False,
            p_value=0.5,
        ),
    )
    assert told(evaluate(store, config, 3)) == [("queries/traffic", "resolved", "warning")]


def test_embedding_drift_of_two_arrays_names_no_index(store: Store) -> None:
    config = configure({"name": "drift", "kind": "embedding_drift"})
    save_drift_check(
        store,
        DriftCheck(
            stream="queries",
            finding="drift",
            method="mmd",
            is_drift=True,
            reference="last_week.npy",
            current="today.npy",
        ),
    )
    [alert] = evaluate(store, config).alerts
    assert alert.title == "queries embeddings: drift"
    assert alert.summary.startswith("mmd: statistic -, p = -, effect size -,")


def test_embedding_drift_closes_the_streams_it_no_longer_watches(store: Store) -> None:
    """A stream (or subject) dropped from the rule is never read again: its open alert is
    resolved instead of firing for ever."""
    save_alert_states(
        store, firing_states("drift", ["documents/kb", "queries/kb", "queries/other"])
    )
    config = configure(
        {"name": "drift", "kind": "embedding_drift", "streams": ["queries"], "subject": "kb"}
    )
    evaluation = evaluate(store, config, 1)
    assert told(evaluation) == [
        ("documents/kb", "resolved", "critical"),
        ("queries/other", "resolved", "critical"),
    ]
    assert evaluation.alerts[0].evidence["closed"] == (
        "documents/kb is no longer watched: the rule's streams or subject changed"
    )
    assert load_alert_states(store, rule="drift")[dedup_key("drift", "queries/kb")].active


def test_model_mismatch_is_its_own_rule(store: Store) -> None:
    config = configure(
        {"name": "drift", "kind": "embedding_drift"},
        {"name": "model", "kind": "model_mismatch"},
    )
    save_drift_check(
        store,
        DriftCheck(
            stream="queries",
            subject="traffic",
            finding="model_mismatch",
            method="fingerprint",
            is_drift=False,
        ),
    )
    evaluation = evaluate(store, config)
    assert [(a.rule, a.subject) for a in evaluation.alerts] == [("model", "queries/traffic")]


def audit_report(
    collection: str,
    minute: int,
    *findings: Finding,
    ran: Sequence[str] = ("duplicates",),
    not_run: Sequence[str] = (),
) -> AuditReport:
    """An audit that ran the checks ``ran`` and those of ``findings``; ``not_run`` are
    listed as not run (their inputs were missing)."""
    moment = T0 + timedelta(minutes=minute)
    names = dict.fromkeys([*ran, *(finding.check for finding in findings)])
    checks = [
        CheckOutcome(name, True, findings=tuple(f for f in findings if f.check == name))
        for name in names
    ]
    checks += [CheckOutcome(name, False, note="no input given") for name in not_run]
    return AuditReport(
        collection=collection,
        location="chroma",
        started_at=moment,
        finished_at=moment,
        n_documents=100,
        checks=tuple(checks),
        config={},
        seed=0,
    )


def test_audit_findings_fire_per_kind_with_their_severity(store: Store) -> None:
    config = configure(
        {"name": "index", "kind": "audit_findings"}, {"name": "model", "kind": "model_mismatch"}
    )
    near = Finding(
        "near_duplicates",
        "duplicates",
        Severity.warning,
        "3 near duplicates",
        3,
        doc_ids=("a", "b", "c"),
        clusters=(("a", "b", "c"),),
    )
    recall = Finding(
        "low_ann_recall",
        "ann_recall",
        Severity.critical,
        "recall@10 0.82",
        40,
        value=0.82,
        threshold=0.95,
    )
    vectors = Finding("vectors_from_another_model", "model", Severity.critical, "other model", 7)
    info = Finding("orphaned_judgments", "orphans", Severity.info, "2 orphans", 2)
    save_audit(store, audit_report("kb", 0, near, recall, vectors, info))
    first = evaluate(store, config)
    assert told(first) == [
        ("audit/kb", "firing", "critical"),
        ("kb/low_ann_recall", "firing", "critical"),
        ("kb/near_duplicates", "firing", "warning"),
    ]
    recall_alert = next(a for a in first.alerts if a.subject == "kb/low_ann_recall")
    assert recall_alert.evidence["value"] == 0.82
    assert recall_alert.evidence["findings"][0]["threshold"] == 0.95
    save_audit(store, audit_report("kb", 1, near, ran=("ann_recall", "model", "orphans")))
    assert told(evaluate(store, config, 1)) == [
        ("audit/kb", "resolved", "critical"),
        ("kb/low_ann_recall", "resolved", "critical"),
    ]
    save_audit(store, audit_report("other", 2, recall))
    assert told(evaluate(store, config, 2)) == [("other/low_ann_recall", "firing", "critical")]


def test_an_audit_clears_only_the_findings_of_the_checks_it_ran(store: Store) -> None:
    """An audit of other checks (``evalkit audit --check staleness``) leaves the duplicates
    and the model mismatch an earlier audit found firing; an audit that ran their checks
    and no longer finds them resolves them."""
    config = configure(
        {"name": "index", "kind": "audit_findings"}, {"name": "model", "kind": "model_mismatch"}
    )
    exact = Finding("exact_duplicates", "duplicates", Severity.warning, "2 copies", 2)
    vectors = Finding("vectors_from_another_model", "model", Severity.critical, "other model", 7)
    save_audit(store, audit_report("kb", 0, exact, vectors))
    assert told(evaluate(store, config)) == [
        ("audit/kb", "firing", "critical"),
        ("kb/exact_duplicates", "firing", "warning"),
    ]
    save_audit(store, audit_report("kb", 1, ran=("staleness",), not_run=("model",)))
    assert told(evaluate(store, config, 1)) == []
    assert load_alert_states(store, rule="index")["index:kb/exact_duplicates"].active
    stale = Finding("changed_at_source", "staleness", Severity.warning, "3 changed", 3)
    save_audit(store, audit_report("kb", 2, stale, ran=("model",)))
    assert told(evaluate(store, config, 2)) == [
        ("audit/kb", "resolved", "critical"),
        ("kb/changed_at_source", "firing", "warning"),
    ]
    save_audit(store, audit_report("kb", 3, ran=("duplicates",)))
    evaluation = evaluate(store, config, 3)
    assert told(evaluation) == [("kb/exact_duplicates", "resolved", "warning")]
    audit_id = evaluation.alerts[0].evidence["audit_id"]
    assert audit_id.startswith(f"{T0 + timedelta(minutes=3):%Y%m%dT%H%M%S}-")


def fail(store: Store, job: str, status: str, minute: int) -> None:
    started = T0 + timedelta(minutes=minute)
    record_job_run(
        store,
        job=job,
        kind="command",
        trigger="schedule",
        status=status,
        started_at=started,
        finished_at=started + timedelta(seconds=5),
        pid=1,
        host="h",
        error=f"{job} {status}",
    )


def test_job_failure_counts_consecutive_failures(store: Store) -> None:
    config = configure({"name": "jobs", "kind": "job_failure", "consecutive": 2})
    fail(store, "nightly", "failed", 0)
    assert told(evaluate(store, config)) == []
    fail(store, "nightly", "interrupted", 1)
    evaluation = evaluate(store, config, 1)
    assert told(evaluation) == [("nightly", "firing", "critical")]
    assert evaluation.alerts[0].evidence["consecutive_failures"] == 2
    fail(store, "nightly", "succeeded", 2)
    assert told(evaluate(store, config, 2)) == [("nightly", "resolved", "critical")]


def test_a_job_removed_from_the_file_leaves_nothing_firing(store: Store) -> None:
    """A failing job deleted from [[jobs]] never runs again, so nothing else would resolve
    its alert: the rule watching every job closes it, and no longer watches the job."""

    def with_jobs(*names: str) -> AlertsConfig:
        jobs = [{"name": name, "kind": "command", "command": ["true"]} for name in names]
        rules = [{"name": "jobs", "kind": "job_failure", "cooldown": 0}]
        return alerts_config(
            parse_settings({"jobs": jobs, "alerts": {"rules": rules}}, Path("evalkit.toml"))
        )

    fail(store, "nightly", "failed", 0)
    fail(store, "weekly", "failed", 0)
    assert told(evaluate(store, with_jobs("nightly", "weekly"), 1)) == [
        ("nightly", "firing", "critical"),
        ("weekly", "firing", "critical"),
    ]
    evaluation = evaluate(store, with_jobs("nightly"), 2)
    assert told(evaluation) == [("weekly", "resolved", "critical")]
    assert evaluation.alerts[0].evidence["closed"] == "job weekly is no longer configured"
    assert evaluation.alerts[0].title == (
        "job weekly is no longer configured: its failures are no longer watched"
    )
    assert told(evaluate(store, with_jobs("nightly"), 3)) == []
    state = load_alert_states(store, rule="jobs")
    assert state[dedup_key("jobs", "nightly")].active
    assert not state[dedup_key("jobs", "weekly")].active

    fail(store, "weekly", "failed", 4)
    assert told(evaluate(store, with_jobs("nightly", "weekly"), 5)) == [
        ("weekly", "firing", "critical")
    ]


def summary(run_id: str, label: str, share: float, replayed: int = 100) -> StoredWindowSummary:
    return day_window_summary(
        run_id,
        label,
        volume=1000,
        n_distinct=900,
        n_replayed=replayed,
        low_confidence_threshold=0.4,
        low_confidence_share=share,
    )


def test_low_confidence_rate_reads_the_newest_window(store: Store) -> None:
    config = configure({"name": "lowconf", "kind": "low_confidence_rate", "threshold": 0.25})
    empty = pd.DataFrame()
    save_traffic_replay(store, summary=summary("r1", "2026-11-19", 0.10), per_query=empty)
    assert told(evaluate(store, config)) == []
    save_traffic_replay(store, summary=summary("r2", "2026-11-20", 0.40), per_query=empty)
    evaluation = evaluate(store, config, 1)
    assert told(evaluation) == [("traffic", "firing", "critical")]
    assert evaluation.alerts[0].evidence["share"] == 0.40
    save_traffic_replay(
        store, summary=summary("r3", "2026-11-21", 0.60, replayed=5), per_query=empty
    )
    assert told(evaluate(store, config, 2)) == [], "too few queries to judge"
    save_traffic_replay(store, summary=summary("r4", "2026-11-22", 0.20), per_query=empty)
    assert told(evaluate(store, config, 3)) == [("traffic", "resolved", "critical")]


def stored_run(store: Store, value: float, label: str = "replay") -> str:
    spec = RunSpec(
        kind="goldset",
        retriever_kind="http",
        k=10,
        measures=("precision@10",),
        evalkit_version="test",
        goldset_name="gs",
        label=label,
        n_queries=30,
    )
    run_id = create_run(store, spec)
    finish_run(
        store,
        run_id,
        status="complete",
        per_query=None,
        aggregates={"precision@10": value},
        n_evaluated=30,
        n_total=30,
        n_failed=0,
    )
    return run_id


@pytest.mark.parametrize("method", ["page_hinkley", "cusum"])
def test_sequential_precision_rule_catches_a_sustained_drop(store: Store, method: str) -> None:
    config = configure(
        {
            "name": "seq",
            "kind": "precision_regression",
            "goldset": "gs",
            "method": method,
            "warmup": 8,
            "measures": ["precision@10"],
        }
    )
    noise = [0.01, -0.01, 0.005, -0.005, 0.0, 0.01, -0.01, 0.0]
    for offset in noise:
        stored_run(store, 0.30 + offset)
    assert told(evaluate(store, config)) == []
    states = []
    for minute in range(1, 6):
        stored_run(store, 0.22)
        evaluation = evaluate(store, config, minute)
        states.append([a.status.value for a in evaluation.alerts])
    assert ["firing"] in states, states
    # A series is one retriever's runs, its subject naming the retriever.
    state = load_alert_states(store)["seq:gs|http:precision@10"]
    assert state.active
    assert state.evidence["metric"] == "precision@10"
    assert state.evidence["delta"] == pytest.approx(0.22 - state.evidence["baseline"])
    # The retriever fixed: the alert resolves on the fourth run back at the baseline.
    # Before, the statistic fell by the allowance per run: for weeks of daily runs.
    statuses = []
    for minute in range(6, 10):
        stored_run(store, 0.30)
        statuses.append([a.status.value for a in evaluate(store, config, minute).alerts])
    assert statuses == [[], [], [], ["resolved"]], statuses
    assert not load_alert_states(store)["seq:gs|http:precision@10"].active


def test_a_sequential_alert_of_the_series_that_mixed_retrievers_is_resolved(
    store: Store,
) -> None:
    """An earlier version watched every retriever of a goldset as one series, subject
    ``goldset:measure``: its firing alert is resolved once the series are per retriever."""
    config = configure(
        {
            "name": "seq",
            "kind": "precision_regression",
            "goldset": "gs",
            "method": "page_hinkley",
            "measures": ["precision@10"],
        }
    )
    save_alert_states(store, firing_states("seq", ["gs:precision@10"]))
    for _ in range(3):
        stored_run(store, 0.3)
    assert told(evaluate(store, config, 1)) == [("gs:precision@10", "resolved", "critical")]
    assert told(evaluate(store, config, 2)) == []


@pytest.mark.parametrize("method", ["gate", "page_hinkley"])
def test_a_precision_rule_closes_the_subjects_its_new_configuration_no_longer_watches(
    store: Store, method: str
) -> None:
    """A label renamed with its job (or a measure dropped) leaves the old subject with
    nothing that would ever evaluate it: its open alert is resolved, not left firing."""
    baseline = stored_run(store, 0.3, label="nightly-prod")
    config = configure(
        {
            "name": "drop",
            "kind": "precision_regression",
            "goldset": "gs",
            "label": "nightly-prod",
            "method": method,
            "measures": ["precision@10"],
            **({"baseline_run": baseline} if method == "gate" else {}),
        }
    )
    still = "gs/nightly-prod" if method == "gate" else "gs/nightly-prod|http:precision@10"
    gone = ["gs/nightly", "gs/nightly|http:precision@10", "gs/nightly-prod|http:ndcg@10"]
    save_alert_states(store, firing_states("drop", [still, *gone]))
    evaluation = evaluate(store, config, 1)
    assert told(evaluation) == sorted((subject, "resolved", "critical") for subject in gone)
    assert evaluation.alerts[0].evidence["closed"] == (
        f"{evaluation.alerts[0].subject} is no longer watched: "
        "the rule's goldset, label, method or measures changed"
    )
    assert load_alert_states(store, rule="drop")[dedup_key("drop", still)].active
    assert told(evaluate(store, config, 2)) == []


def firing_states(rule: str, subjects: Sequence[str]) -> list[StoredAlertState]:
    """Open keys of ``rule``, one per subject, as an earlier evaluation left them."""
    return [
        StoredAlertState(
            dedup_key=dedup_key(rule, subject),
            rule=rule,
            subject=subject,
            active=True,
            severity="critical",
            since=T0,
            last_evaluated_at=T0,
            notified_status="firing",
            notified_severity="critical",
            last_notified_at=T0,
            last_fired_notice_at=T0,
        )
        for subject in subjects
    ]


@pytest.mark.parametrize(
    ("params", "still", "gone", "why"),
    [
        (
            {"kind": "latency_regression", "goldset": "gs", "label": "nightly-prod"},
            ["gs/nightly-prod|http", "gs/nightly-prod|bm25"],
            ["gs/nightly|http", "gs|http", "traffic"],
            "the rule's source, goldset, label, retriever or baseline_run changed",
        ),
        (
            {"kind": "latency_regression", "goldset": "gs", "retriever": "http"},
            ["gs|http"],
            ["gs|bm25", "gs/nightly|http"],
            "the rule's source, goldset, label, retriever or baseline_run changed",
        ),
        (
            {"kind": "latency_regression", "source": "production"},
            ["traffic"],
            ["gs|http"],
            "the rule's source, goldset, label, retriever or baseline_run changed",
        ),
        (
            {"kind": "traffic_precision_drop", "measure": "ndcg_judged@10", "assessor": "m@v2"},
            ["traffic|m@v2|http:ndcg_judged@10", "traffic|m@v2|chroma:kb:ndcg_judged@10"],
            ["traffic|m@v2|http:precision@10", "traffic|m@v1|http:ndcg_judged@10"],
            "the rule's measure, assessor or retriever changed",
        ),
        (
            {"kind": "traffic_precision_drop", "retriever": "http"},
            ["traffic|m@v1|http:precision@10", "traffic|m@v2|http:precision@10"],
            ["traffic|m@v1|bm25:precision@10"],
            "the rule's measure, assessor or retriever changed",
        ),
        (
            {"kind": "faithfulness_drop", "source": "answers.jsonl"},
            ["faithfulness/answers.jsonl"],
            ["faithfulness", "faithfulness/run-1", "relevance/answers.jsonl"],
            "the rule's metric or source changed",
        ),
        (
            {"kind": "freshness_lag", "subject": "chroma:kb"},
            ["chroma:kb"],
            ["chroma:docs"],
            "the rule's subject changed",
        ),
        (
            {"kind": "model_mismatch", "streams": ["queries"], "audits": False},
            ["queries/traffic", "queries/-"],
            ["documents/kb", "audit/kb"],
            "the rule's streams or audits changed",
        ),
        (
            {"kind": "audit_findings", "collection": "kb"},
            ["kb/duplicates"],
            ["docs/duplicates"],
            "the rule's collection changed",
        ),
    ],
    ids=[
        "latency-label",
        "latency-retriever",
        "latency-production",
        "traffic-measure-assessor",
        "traffic-retriever",
        "faithfulness-source",
        "freshness-subject",
        "model-mismatch-streams",
        "audit-collection",
    ],
)
def test_every_rule_kind_closes_the_subjects_its_new_configuration_no_longer_watches(
    store: Store, params: dict[str, Any], still: list[str], gone: list[str], why: str
) -> None:
    """A rule whose parameters changed (a label renamed with its job, a retriever or an
    assessor picked, a subject narrowed) never evaluates its old subjects again: their open
    alerts are resolved once, and those it still watches are left as they were."""
    save_alert_states(store, firing_states("rule", [*still, *gone]))
    config = configure({"name": "rule", **params})
    evaluation = evaluate(store, config, 1)
    assert told(evaluation) == sorted((subject, "resolved", "critical") for subject in gone)
    closed = {alert.subject: alert.evidence["closed"] for alert in evaluation.alerts}
    assert closed == {subject: f"{subject} is no longer watched: {why}" for subject in gone}
    states = load_alert_states(store, rule="rule")
    assert all(states[dedup_key("rule", subject)].active for subject in still)
    assert told(evaluate(store, config, 2)) == []


def test_a_failing_rule_does_not_stop_the_others(store: Store) -> None:
    config = configure(
        {
            "name": "gate",
            "kind": "precision_regression",
            "goldset": "gs",
            "baseline_run": "20260101T000000-000000",
        },
        {"name": "jobs", "kind": "job_failure"},
    )
    stored_run(store, 0.3)
    fail(store, "nightly", "failed", 0)
    evaluation = evaluate(store, config)
    assert "no run '20260101T000000-000000'" in evaluation.errors["gate"]
    assert evaluation.evaluated == ("jobs",)
    assert [a.rule for a in list_alerts(store)] == ["jobs"]


def test_disabled_rules_are_skipped_unless_named(store: Store) -> None:
    config = configure({"name": "jobs", "kind": "job_failure", "enabled": False})
    fail(store, "nightly", "failed", 0)
    assert evaluate(store, config).alerts == ()
    named = evaluate_rules(store, config, build_sinks(config), now=T0, only=["jobs"])
    assert len(named.alerts) == 1


def scoring(
    store: Store, minute: int, values: list[float | None], version: str | None = None
) -> str:
    from evalkit.answers.records import AnswerScores, MetricScore
    from evalkit.store.answers import save_answer_scores

    moment = T0 + timedelta(minutes=minute)
    scores = tuple(
        MetricScore(
            item_id=f"a{i:02d}",
            metric="faithfulness",
            method="offline-embedding",
            value=value,
            prompt_version=version,
            unmeasured_reason=None if value is not None else "no contexts",
        )
        for i, value in enumerate(values)
    )
    return save_answer_scores(
        store,
        AnswerScores(
            scores=scores,
            summaries=(),
            n_records=len(values),
            started_at=moment,
            finished_at=moment,
            source="answers.jsonl",
        ),
    )


def test_faithfulness_drop_compares_answers_item_by_item(store: Store) -> None:
    config = configure(
        {"name": "faith", "kind": "faithfulness_drop", "min_effect": 0.05, "resamples": 500}
    )
    steady = [0.9, 0.8, 0.85, 0.95, 0.9, 0.7, 0.88, 0.92, 0.81, 0.9, None, 0.86]
    first = scoring(store, 0, steady)
    assert told(evaluate(store, config)) == [], "one scoring: nothing to compare with"
    scoring(store, 1, steady)
    assert told(evaluate(store, config, 1)) == []
    worse = [None if v is None else v - 0.3 for v in steady]
    worse[3] = 0.1
    dropped = scoring(store, 2, worse)
    evaluation = evaluate(store, config, 2)
    assert told(evaluation) == [("faithfulness", "firing", "critical")]
    # "dropped -0.3500" read as a double negative.
    assert evaluation.alerts[0].title == "faithfulness of answers dropped by 0.3500"
    evidence = evaluation.alerts[0].evidence
    assert evidence["current_scoring"] == dropped
    assert evidence["n_items"] == 11, "the unmeasured answer is left out, not scored 0"
    assert evidence["n_measured_current"] == 11
    assert evidence["worst_queries"][0] == {
        "query_id": "a03",
        "baseline": 0.95,
        "candidate": 0.1,
        "delta": pytest.approx(-0.85),
    }
    pinned = configure(
        {"name": "faith", "kind": "faithfulness_drop", "baseline_scoring": first, "resamples": 500}
    )
    scoring(store, 3, steady)
    assert told(evaluate(store, pinned, 3)) == [("faithfulness", "resolved", "critical")]


def test_faithfulness_drop_never_compares_offline_v2_with_offline_v3(store: Store) -> None:
    """offline-v2 reads lower than offline-v3 on the same answers: a scoring of the other
    version is no baseline, so switching versions is not a drop."""
    config = configure({"name": "faith", "kind": "faithfulness_drop", "resamples": 500})
    v3 = [0.95, 0.9, 0.92, 0.97, 0.93, 0.85, 0.94, 0.96, 0.9, 0.95]
    v2 = [v - 0.25 for v in v3]
    first = scoring(store, 0, v3, "offline-v3/threshold=0.5")
    scoring(store, 1, v3, "offline-v3/threshold=0.5")
    scoring(store, 2, v2, "offline-v2/threshold=0.5")
    assert told(evaluate(store, config, 2)) == [], "no earlier offline-v2 scoring to compare"
    latest = scoring(store, 3, v3, "offline-v3/threshold=0.7")
    evaluation = evaluate(store, config, 3)
    assert told(evaluation) == []
    state = load_alert_states(store)["faith:faithfulness"]
    assert state.evidence["current_scoring"] == latest
    assert state.evidence["baseline_scoring"] != first, "the newest offline-v3 one"
    scoring(store, 4, v2, "offline-v2/threshold=0.5")
    pinned = configure(
        {"name": "faith", "kind": "faithfulness_drop", "baseline_scoring": first, "resamples": 500}
    )
    evaluation = evaluate(store, pinned, 4)
    assert "not comparable" in evaluation.errors["faith"]
    assert "offline-v2" in evaluation.errors["faith"]
    assert "offline-v3" in evaluation.errors["faith"]


def test_an_unchanged_comparison_is_read_back_not_recomputed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import evalkit.stats

    steady = [0.9, 0.8, 0.85, 0.95, 0.9, 0.7, 0.88, 0.92]
    scoring(store, 0, steady)
    scoring(store, 1, [v - 0.4 for v in steady])
    config = configure({"name": "faith", "kind": "faithfulness_drop", "resamples": 500})
    first = evaluate(store, config)
    assert told(first) == [("faithfulness", "firing", "critical")]

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the comparison was recomputed")

    monkeypatch.setattr(evalkit.alerts.rules.answers, "compare_runs", refuse)
    assert told(evaluate(store, config, 1)) == []
    state = load_alert_states(store)["faith:faithfulness"]
    assert state.active
    assert state.title == first.alerts[0].title
    assert state.evidence == first.alerts[0].evidence
    changed = configure(
        {"name": "faith", "kind": "faithfulness_drop", "resamples": 600, "min_effect": 0.01}
    )
    with pytest.raises(AssertionError, match="recomputed"):
        evaluate(store, changed, 2)


class _Retriever:
    """Ranks each query's relevant document first; the queries in ``fail`` fail."""

    def __init__(self, fail: set[str]) -> None:
        self.fail = fail

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        return [
            QueryResult(q.id, (), 0.1, error="HTTP 503 Service Unavailable")
            if q.id in self.fail
            else QueryResult(q.id, (ScoredDoc(f"d{q.id}", 1.0, 1),), 0.1)
            for q in queries
        ]

    def describe(self) -> dict[str, Any]:
        return {"kind": "list", "collection": "fixed"}

    def index_fingerprint(self) -> str | None:
        return "idx-1"

    def model_fingerprint(self) -> ModelFingerprint | None:
        return None


def test_the_gate_rule_reports_a_partial_candidate_with_its_failed_queries_as_zero(
    store: Store,
) -> None:
    ids = [f"q{i}" for i in range(40)]
    gold = Goldset.build(
        "forty", [Query(q, f"query {q}") for q in ids], [Judgment(q, f"d{q}", 1) for q in ids]
    )
    save_goldset(store, gold)

    def replay(fail: set[str]) -> str:
        outcome = evaluate_goldset(
            store,
            gold,
            _Retriever(fail),
            GoldsetRunRequest(k=10, measures=("ndcg@10",), answers=False),
        )
        return outcome.run.run_id

    baseline = replay(set())
    candidate = replay(set(ids[:10]))
    assert get_run(store, candidate).status == "partial"
    config = configure(
        {
            "name": "gate",
            "kind": "precision_regression",
            "goldset": "forty",
            "measures": ["ndcg@10"],
            "baseline_run": baseline,
            "resamples": 500,
        }
    )
    evaluation = evaluate(store, config)
    assert [(a.subject, a.status.value) for a in evaluation.alerts] == [("forty", "firing")]
    alert = evaluation.alerts[0]
    assert alert.evidence["candidate_run"] == candidate
    assert alert.evidence["failed_in_candidate"] == sorted(ids[:10])
    assert "10 failed queries of the candidate counted as 0" in alert.summary


def test_the_gate_rule_finds_its_label_behind_a_sweep_of_other_labels(store: Store) -> None:
    """Fifty newer runs of the goldset with another label (a sweep) do not hide the watched
    label's newest run: the rule still compares it with the baseline."""
    ids = [f"q{i}" for i in range(40)]
    gold = Goldset.build(
        "syn", [Query(q, f"query {q}") for q in ids], [Judgment(q, f"d{q}", 1) for q in ids]
    )
    save_goldset(store, gold)

    def replay(fail: set[str]) -> str:
        request = GoldsetRunRequest(k=10, measures=("ndcg@10",), label="nightly", answers=False)
        return evaluate_goldset(store, gold, _Retriever(fail), request).run.run_id

    baseline = replay(set())
    candidate = replay(set(ids[:20]))
    sweep = replace(get_run(store, candidate).spec, label="sweep")
    for _ in range(50):
        finish_run(
            store,
            create_run(store, sweep),
            status="complete",
            per_query=None,
            aggregates={"ndcg@10": 1.0},
            n_evaluated=40,
            n_total=40,
            n_failed=0,
        )
    config = configure(
        {
            "name": "gate",
            "kind": "precision_regression",
            "goldset": "syn",
            "label": "nightly",
            "measures": ["ndcg@10"],
            "baseline_run": baseline,
            "resamples": 500,
        }
    )
    evaluation = evaluate(store, config)
    assert [(a.subject, a.status.value) for a in evaluation.alerts] == [("syn/nightly", "firing")]
    assert evaluation.alerts[0].evidence["candidate_run"] == candidate


def test_a_sequential_series_is_read_behind_the_runs_of_other_labels(store: Store) -> None:
    """``history`` counts the watched label's runs, not the goldset's newest runs."""
    config = configure(
        {
            "name": "seq",
            "kind": "precision_regression",
            "goldset": "gs",
            "label": "replay",
            "method": "page_hinkley",
            "warmup": 8,
            "history": 20,
            "measures": ["precision@10"],
        }
    )
    for offset in [0.01, -0.01, 0.005, -0.005, 0.0, 0.01, -0.01, 0.0]:
        stored_run(store, 0.30 + offset)
    for _ in range(5):
        stored_run(store, 0.22)
    for _ in range(20):
        stored_run(store, 0.5, label="sweep")
    assert told(evaluate(store, config)) == [("gs/replay|http:precision@10", "firing", "critical")]


def test_a_resolution_goes_only_to_the_sinks_told_of_the_firing(
    store: Store, tmp_path: Path
) -> None:
    """A sink added after an alert fired never gets a resolution of a firing it never saw."""

    def with_sinks(*names: str) -> AlertsConfig:
        sinks = [
            {"name": name, "kind": "log", "path": str(tmp_path / f"{name}.jsonl")} for name in names
        ]
        rules = [{"name": "jobs", "kind": "job_failure", "cooldown": 0}]
        data = {"alerts": {"rules": rules, "sinks": sinks}}
        return alerts_config(parse_settings(data, Path("evalkit.toml")))

    fail(store, "nightly", "failed", 0)
    assert told(evaluate(store, with_sinks("first"), 1)) == [("nightly", "firing", "critical")]
    fail(store, "nightly", "succeeded", 2)
    assert told(evaluate(store, with_sinks("first", "added"), 3)) == [
        ("nightly", "resolved", "critical")
    ]
    resolution = next(a for a in list_alerts(store) if a.status == "resolved")
    assert sorted(resolution.deliveries) == ["first"]


def test_no_resolution_goes_to_a_sink_whose_firing_was_abandoned(
    store: Store, tmp_path: Path
) -> None:
    """A receiver that never got the firing (its delivery given up) gets no resolution of
    it; the other sinks do."""
    sinks = [
        {"name": name, "kind": "log", "path": str(tmp_path / f"{name}.jsonl")}
        for name in ("down", "up")
    ]
    rules = [{"name": "jobs", "kind": "job_failure", "cooldown": 0}]
    config = alerts_config(
        parse_settings({"alerts": {"rules": rules, "sinks": sinks}}, Path("evalkit.toml"))
    )
    fail(store, "nightly", "failed", 0)
    (firing,) = evaluate(store, config, 1).alerts
    record_delivery_attempt(
        store,
        alert_id=firing.alert_id,
        sink="down",
        attempt=1,
        attempted_at=T0,
        duration_ms=1.0,
        ok=False,
        status_code=None,
        error="gave up",
        next_attempt_at=None,
    )
    fail(store, "nightly", "succeeded", 2)
    assert told(evaluate(store, config, 3)) == [("nightly", "resolved", "critical")]
    resolution = next(a for a in list_alerts(store) if a.status == "resolved")
    assert sorted(resolution.deliveries) == ["up"]


def test_a_removed_or_disabled_rule_leaves_nothing_firing(store: Store, tmp_path: Path) -> None:
    """Deleting a rule from evalkit.toml closes its open keys with one resolution to the sinks
    told it fired; evaluating one named rule leaves the others' keys alone."""

    def with_rules(*rules: dict[str, Any]) -> AlertsConfig:
        sinks = [{"name": "pager", "kind": "log", "path": str(tmp_path / "pager.jsonl")}]
        data = {"alerts": {"rules": [{"cooldown": 0, **r} for r in rules], "sinks": sinks}}
        return alerts_config(parse_settings(data, Path("evalkit.toml")))

    jobs = {"name": "jobs", "kind": "job_failure"}
    other = {"name": "other", "kind": "job_failure"}
    fail(store, "nightly", "failed", 0)
    assert told(evaluate(store, with_rules(jobs), 1)) == [("nightly", "firing", "critical")]

    only_other = with_rules(other)
    named = evaluate_rules(
        store, only_other, build_sinks(only_other), now=T0 + timedelta(minutes=2), only=["other"]
    )
    assert [a.rule for a in named.alerts] == ["other"]
    assert load_alert_states(store, rule="jobs")[dedup_key("jobs", "nightly")].active

    evaluation = evaluate(store, only_other, 3)
    closed = [a for a in evaluation.alerts if a.rule == "jobs"]
    assert [(a.subject, a.status.value, a.severity.value) for a in closed] == [
        ("nightly", "resolved", "critical")
    ]
    assert "no longer configured" in closed[0].evidence["closed"]
    state = load_alert_states(store, rule="jobs")[dedup_key("jobs", "nightly")]
    assert not state.active
    assert state.notified_status == "resolved"
    stored = next(a for a in list_alerts(store) if a.alert_id == closed[0].alert_id)
    assert stored.kind == "job_failure"
    assert sorted(stored.deliveries) == ["pager"]
    assert [a.rule for a in evaluate(store, only_other, 4).alerts if a.rule == "jobs"] == []

    fail(store, "weekly", "failed", 5)
    assert ("weekly", "firing", "critical") in told(evaluate(store, with_rules(other), 6))
    disabled = with_rules(other | {"enabled": False})
    assert told(evaluate(store, disabled, 7)) == [
        ("nightly", "resolved", "critical"),
        ("weekly", "resolved", "critical"),
    ]
