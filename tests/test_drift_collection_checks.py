"""The model and document checks of a real Chroma collection, from the CLI and from the
scheduler: the demo corpus indexed by evalkit, then every stored vector turned by a seeded
random rotation (another embedding space; the fingerprint the collection records left as it
was), as an index rebuilt by another model in place would be."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from demo_index import cached_minilm, demo_documents
from test_audit_seeded import _rotation

from evalkit.alerts import alerts_config, build_sinks, evaluate_rules
from evalkit.cli import invoke
from evalkit.config import load_settings, parse_settings
from evalkit.retrievers.chroma_client import close_client, open_chroma_client
from evalkit.retrievers.indexing import index_corpus
from evalkit.scheduler import JobRunner, service_config
from evalkit.store import Store, utc_now
from evalkit.store.access import StoreAccess
from evalkit.store.drift import list_drift_checks

pytestmark = pytest.mark.slow


@pytest.fixture
def demo_home(evalkit_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An EVALKIT_HOME whose embedded Chroma holds the demo corpus indexed by evalkit."""
    monkeypatch.delenv("EVALKIT_CHROMA_PATH", raising=False)
    client = open_chroma_client(path=evalkit_home / "chroma")
    try:
        index_corpus(client, demo_documents(), cached_minilm(), collection_name="demo")
    finally:
        close_client(client)
    return evalkit_home


def rotate_every_vector(home: Path) -> None:
    """Turn every stored vector of the demo collection by a seeded orthogonal rotation."""
    client = open_chroma_client(path=home / "chroma")
    try:
        collection = client.get_collection("demo", embedding_function=None)
        stored: Any = collection.get(include=["embeddings"])
        vectors = np.asarray(stored["embeddings"], dtype=np.float32)
        rotated = vectors @ _rotation(vectors.shape[1]).T
        collection.update(ids=stored["ids"], embeddings=rotated.astype(np.float32))
    finally:
        close_client(client)


def drift_model(capsys: pytest.CaptureFixture[str], expect: int) -> dict[str, Any]:
    capsys.readouterr()
    code = invoke(["drift", "model", "--collection", "demo", "--format", "json"])
    captured = capsys.readouterr()
    assert code == expect, captured.err
    data: dict[str, Any] = json.loads(captured.out)
    return data


def test_drift_model_checks_the_stored_vectors_not_only_the_fingerprint(
    demo_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    same = drift_model(capsys, 0)
    rotate_every_vector(demo_home)
    rotated = drift_model(capsys, 1)

    assert same["finding"] == "ok"
    assert same["evidence"] == ["canary_fingerprint", "reembedded_sample"]
    assert same["reembedding"]["sampled"] == 64
    assert same["reembedding"]["other_model"] == 0
    assert same["reembedding"]["lowest_cosine"] > 0.99
    assert "64 stored documents re-embedded from their text (64 reproduce" in same["message"]
    assert rotated["finding"] == "model_mismatch"
    assert rotated["canary_similarity"] == pytest.approx(1.0, abs=1e-3)  # it says nothing
    assert rotated["evidence"] == ["canary_fingerprint", "reembedded_sample"]
    assert rotated["reembedding"]["other_model"] == 64
    assert rotated["reembedding"]["content_replaced"] == 0
    assert rotated["message"].startswith(
        "64 of 64 stored documents re-embedded from their text with "
        "sentence-transformers/all-MiniLM-L6-v2 do not "
        "reproduce their stored vectors"
    )
    with Store.open(demo_home / "evalkit.duckdb", read_only=True) as store:
        checks = list_drift_checks(store, stream="model")
    assert [(c.finding, c.method, c.n_current) for c in checks] == [
        ("model_mismatch", "canary_fingerprint+reembedded_sample", 64),
        ("ok", "canary_fingerprint+reembedded_sample", 64),
    ]
    assert checks[0].check_id == rotated["check_id"]


JOBS = [
    {"name": "kb-documents", "kind": "drift_check", "stream": "documents", "collection": "demo"},
    {"name": "kb-model", "kind": "drift_check", "stream": "model", "collection": "demo"},
]
RULES = [
    {"name": "moved", "kind": "embedding_drift", "streams": ["documents"], "cooldown": 0},
    {"name": "model", "kind": "model_mismatch", "streams": ["model"], "cooldown": 0},
]


def test_scheduled_document_and_model_checks_store_findings_the_rules_read(
    demo_home: Path,
) -> None:
    settings = load_settings()
    configured = parse_settings({"jobs": JOBS, "alerts": {"rules": RULES}}, Path("evalkit.toml"))
    access = StoreAccess(settings.resolved_store_path, wait=10, program="test")
    runner = JobRunner(service_config(configured), settings=settings, session=access)

    first = runner.run("kb-documents")
    assert first is not None
    assert first.status == "succeeded"
    assert first.summary["note"].startswith("no reference snapshot of demo yet: saved one of ")
    for name in ("kb-documents", "kb-model"):
        quiet = runner.run(name)
        assert quiet is not None
        assert (quiet.status, quiet.error, quiet.summary["finding"]) == ("succeeded", None, "ok")

    rotate_every_vector(demo_home)
    moved, model = runner.run("kb-documents"), runner.run("kb-model")

    # A finding is a stored check of a run that succeeded, not a failed run.
    assert moved is not None
    assert model is not None
    assert (moved.status, moved.summary["finding"]) == ("succeeded", "drift")
    assert (model.status, model.summary["finding"]) == ("succeeded", "model_mismatch")
    assert model.summary["evidence"] == ["canary_fingerprint", "reembedded_sample"]
    rules = alerts_config(configured)
    with Store.open(settings.resolved_store_path) as store:
        checks = {c.check_id: c for c in list_drift_checks(store)}
        evaluation = evaluate_rules(store, rules, build_sinks(rules), now=utc_now())
    assert checks[moved.summary["check_id"]].subject == "demo"
    assert checks[model.summary["check_id"]].is_drift
    fired = {(alert.rule, alert.subject, alert.status.value) for alert in evaluation.alerts}
    assert fired == {("moved", "documents/demo", "firing"), ("model", "model/demo", "firing")}
