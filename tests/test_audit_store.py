"""Stored audits: one transaction per audit, findings filterable as alert rules need."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from evalkit.audit import AuditReport, CheckOutcome, Finding, Severity
from evalkit.errors import ConfigError, NotFoundError
from evalkit.store import Store
from evalkit.store.audit import (
    audit_findings,
    get_audit,
    latest_measurements,
    list_audit_findings,
    list_audits,
    save_audit,
)


def _report(
    collection: str,
    started_at: datetime,
    findings: tuple[Finding, ...],
    *,
    judged: float = 0.4,
    goldset_version: str | None = "v1",
) -> AuditReport:
    checks = (
        CheckOutcome("duplicates", True, {"documents": 10.0}, findings),
        CheckOutcome("coverage", True, {"judged@10": judged}),
        CheckOutcome("staleness", False, note="no source corpus given (--source)"),
    )
    return AuditReport(
        collection=collection,
        location="/tmp/chroma",
        started_at=started_at,
        finished_at=started_at + timedelta(seconds=2),
        n_documents=10,
        checks=checks,
        config={"k": 10},
        seed=0,
        model_name="m",
        model_fingerprint="abc",
        goldset_name="gold",
        goldset_version=goldset_version,
    )


DUPLICATES = Finding(
    kind="exact_duplicates",
    check="duplicates",
    severity=Severity.warning,
    message="2 documents are exact duplicates",
    count=2,
    doc_ids=("a", "a-copy"),
    clusters=(("a", "a-copy"),),
    details={"groups": 1},
)
MODEL = Finding(
    kind="vectors_from_another_model",
    check="model",
    severity=Severity.critical,
    message="1 document",
    count=1,
    doc_ids=("z",),
    value=0.01,
    threshold=0.99,
)
START = datetime(2026, 1, 5, 12, 0, 0)


def test_an_audit_round_trips_with_its_findings_and_measurements(store: Store) -> None:
    stored = save_audit(store, _report("docs", START, (DUPLICATES, MODEL)))

    assert get_audit(store, stored.audit_id) == stored
    assert stored.max_severity == "critical"
    assert stored.n_findings == 2
    assert stored.checks[2] == {
        "name": "staleness",
        "ran": False,
        "measurements": {},
        "n_findings": 0,
        "note": "no source corpus given (--source)",
        "seconds": 0.0,
    }
    findings = audit_findings(store, stored.audit_id)
    assert [f.kind for f in findings] == ["exact_duplicates", "vectors_from_another_model"]
    assert findings[0].clusters == (("a", "a-copy"),)
    assert findings[0].doc_ids == ("a", "a-copy")
    assert findings[0].details == {"groups": 1}
    assert findings[0].value is None
    assert (findings[1].value, findings[1].threshold) == (0.01, 0.99)
    assert findings[1].to_dict()["created_at"].endswith("Z")
    assert latest_measurements(store, collection="docs") == {"documents": 10.0, "judged@10": 0.4}


def test_findings_filter_by_severity_collection_kind_time_and_latest(store: Store) -> None:
    save_audit(store, _report("docs", START, (DUPLICATES, MODEL)))
    save_audit(store, _report("docs", START + timedelta(days=1), (DUPLICATES,)))
    save_audit(store, _report("faq", START + timedelta(hours=1), (MODEL,)))

    assert len(list_audit_findings(store)) == 4
    critical = list_audit_findings(store, min_severity="critical")
    assert [(f.collection, f.kind) for f in critical] == [
        ("faq", "vectors_from_another_model"),
        ("docs", "vectors_from_another_model"),
    ]
    assert len(list_audit_findings(store, min_severity="info")) == 4
    assert len(list_audit_findings(store, collection="docs", kind="exact_duplicates")) == 2
    since = list_audit_findings(store, since=START + timedelta(hours=12))
    assert [f.collection for f in since] == ["docs"]
    latest = list_audit_findings(store, latest_only=True)
    assert sorted((f.collection, f.kind) for f in latest) == [
        ("docs", "exact_duplicates"),
        ("faq", "vectors_from_another_model"),
    ]
    with pytest.raises(ConfigError, match="unknown severity"):
        list_audit_findings(store, min_severity="fatal")


def test_listing_and_previous_measurements(store: Store) -> None:
    first = save_audit(store, _report("docs", START, (), judged=0.5))
    second = save_audit(
        store, _report("docs", START + timedelta(days=1), (), judged=0.3, goldset_version="v2")
    )

    assert [a.audit_id for a in list_audits(store)] == [second.audit_id, first.audit_id]
    assert list_audits(store, collection="other") == []
    assert first.max_severity is None
    assert latest_measurements(store, collection="docs")["judged@10"] == 0.3
    assert latest_measurements(store, collection="docs", goldset_version="v1")["judged@10"] == 0.5
    assert latest_measurements(store, collection="nothing") == {}
    with pytest.raises(NotFoundError, match="no audit"):
        get_audit(store, "20260101T000000-ffffff")
