"""A drill on Qdrant collections, in qdrant-client's local mode (Qdrant's own engine on a
folder): the copy holds the live points, every incident changes the copy as Chroma's do
(documents read as ``QdrantRetriever`` reads them: id and text from the payload), the live
collection is the same point for point after a whole drill, and a copy whose drill was
killed is swept by the next one.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from demo_index import demo_goldset
from qdrant_client import QdrantClient, models
from test_drill_run import CONFIG, JOB_FAILURE_RULE, on_the_retriever_table
from test_retrievers_model_check import HashEmbedder
from test_retrievers_qdrant import build_collection

from evalkit.config import load_settings
from evalkit.drill import scratch
from evalkit.drill.incidents import INCIDENTS, inject
from evalkit.drill.index import NotInjectableError
from evalkit.drill.qdrant import QdrantCopies, copy_qdrant_collection
from evalkit.drill.scratch import DRILL_PREFIX, sweep_drill_leftovers
from evalkit.errors import RetrieverError
from evalkit.scheduler.drill import DrillRequest, run_drill
from evalkit.store import Store
from evalkit.store.goldsets import save_goldset

N_DOCUMENTS = 20
RELEVANT = frozenset(f"doc-{n:02d}" for n in range(0, N_DOCUMENTS, 4))  # 5 of 20


def _points(path: Path, name: str) -> str:
    """A digest of every point of collection ``name``: ids, vectors and payloads."""
    client = QdrantClient(path=str(path))
    try:
        points, _ = client.scroll(name, limit=10_000, with_payload=True, with_vectors=True)
    finally:
        client.close()
    rows = sorted(json.dumps([str(p.id), p.payload, p.vector], sort_keys=True) for p in points)
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def _collections(path: Path) -> list[str]:
    client = QdrantClient(path=str(path))
    try:
        return sorted(c.name for c in client.get_collections().collections)
    finally:
        client.close()


@pytest.fixture
def qdrant_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home whose [retriever.qdrant] is a local store holding collection ``kb``: 20
    documents of 60 words, UUID point ids, the doc id and text in the payload."""
    store = tmp_path / "qdrant"
    embedder = HashEmbedder()
    texts = [" ".join(f"w{n}-{i}" for i in range(60)) for n in range(N_DOCUMENTS)]
    client = QdrantClient(path=str(store))
    try:
        client.create_collection(
            "kb", vectors_config=models.VectorParams(size=embedder.dimension, distance="Cosine")
        )
        client.upsert(
            "kb",
            points=[
                models.PointStruct(
                    id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"doc-{n:02d}")),
                    vector=vector.tolist(),
                    payload={"doc_id": f"doc-{n:02d}", "text": text, "topic": f"t{n % 3}"},
                )
                for n, (text, vector) in enumerate(zip(texts, embedder.embed(texts), strict=True))
            ],
        )
    finally:
        client.close()
    (tmp_path / "evalkit.toml").write_text(
        f'[retriever]\nkind = "qdrant"\n\n[retriever.qdrant]\npath = "{store}"\n'
        'collection = "kb"\nid_payload_key = "doc_id"\ntext_payload_key = "text"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("EVALKIT_CONFIG", str(tmp_path / "evalkit.toml"))
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    return store


def test_each_incident_changes_a_qdrant_copy_as_on_chroma_and_never_the_live_collection(
    qdrant_home: Path,
) -> None:
    before = _points(qdrant_home, "kb")
    settings = load_settings()
    embedder = HashEmbedder()
    with QdrantCopies(settings, ["kb"], "q1") as copies:
        copy = f"{DRILL_PREFIX}q1-kb"
        assert copies.names == {"kb": copy}
        assert _points(qdrant_home, copy) == before, "the same ids, vectors and payloads"

        def changed(incident: str, severity: float) -> tuple[Any, Any]:
            copies.restore()
            index = copies.index("kb")
            try:
                injected = inject(
                    index, incident, severity, relevant=RELEVANT, seed=1, embed=embedder.embed
                )
            finally:
                index.close()
            index = copies.index("kb")
            try:
                return injected, index.contents()
            finally:
                index.close()

        deleted, after = changed("deletion", 0.4)
        assert sum(doc_id in RELEVANT for doc_id in deleted.documents) == 2
        assert sorted(after.ids) == sorted(
            f"doc-{n:02d}" for n in range(N_DOCUMENTS) if f"doc-{n:02d}" not in deleted.documents
        )

        duplicated, after = changed("duplicates", 0.2)
        assert len(after.ids) == N_DOCUMENTS + len(duplicated.documents)
        by_id = dict(zip(after.ids, after.documents, strict=True))
        for copy_id in duplicated.documents:
            assert by_id[copy_id] == by_id[copy_id.removesuffix("#drill-copy")]

        stale, after = changed("stale_content", 0.2)
        assert sorted(after.ids) == sorted(f"doc-{n:02d}" for n in range(N_DOCUMENTS))
        texts = {doc_id: f"w{int(doc_id[4:])}-0" for doc_id in after.ids}
        for doc_id, text, metadata in zip(after.ids, after.documents, after.metadatas, strict=True):
            assert text is not None
            assert metadata == {"topic": f"t{int(doc_id[4:]) % 3}"}, "id and metadata stay"
            assert text.startswith(texts[doc_id]) == (doc_id not in stale.documents)

        chunked, after = changed("chunking_drift", 0.2)
        for doc_id in chunked.documents:
            chunks = sorted(i for i, d in enumerate(after.ids) if d.startswith(f"{doc_id}#chunk-"))
            assert len(chunks) == 2, "60 words: 48 and 12"
            words = [f"w{int(doc_id[4:])}-{i}" for i in range(60)]
            original = " ".join(words)
            spans = [after.metadatas[i] for i in chunks]
            assert [s["source_id"] for s in spans] == [doc_id, doc_id]
            assert [original[s["start"] : s["end"]] for s in spans] == [
                " ".join(words[:48]),
                " ".join(words[48:]),
            ]
            for i in chunks:
                np.testing.assert_allclose(
                    after.embeddings[i], embedder.embed([after.documents[i]])[0], atol=1e-6
                )

        copies.restore()
        lag = INCIDENTS["ingestion_lag"]
        assert lag.catch_up is not None
        index = copies.index("kb")
        try:
            quiet = index.contents()
            withheld = inject(
                index, "ingestion_lag", 6.0, changes=qdrant_home.parent / "changes.jsonl"
            )
            lag.catch_up(index, withheld)
        finally:
            index.close()
        assert _points(qdrant_home, copy) != before
        index = copies.index("kb")
        try:
            caught_up = index.contents()
        finally:
            index.close()
        np.testing.assert_array_equal(caught_up.embeddings, quiet.embeddings)
        for doc_id, text in zip(caught_up.ids, caught_up.documents, strict=True):
            assert text is not None
            assert text.endswith(" (revised)") == (doc_id in withheld.withheld)

        index = copies.index("kb")
        try:
            with pytest.raises(NotInjectableError, match="not injectable on Qdrant"):
                inject(index, "ann_degradation", rebuild=lambda hnsw: copies.rebuild("kb", hnsw))
        finally:
            index.close()
        copies.restore()
        assert _points(qdrant_home, copy) == before, "a restore copies the live points again"
    assert _collections(qdrant_home) == ["kb"]
    assert _points(qdrant_home, "kb") == before


def test_a_qdrant_copy_left_by_a_killed_drill_is_swept_by_retention_and_by_the_next_drill(
    qdrant_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    killed = subprocess.Popen([sys.executable, "-c", "pass"])
    killed.wait(timeout=30)

    def left_by_killed_drill(drill_id: str) -> str:
        client = QdrantClient(path=str(qdrant_home))
        try:
            with monkeypatch.context() as patched:
                patched.setattr(scratch, "owner", lambda: f"{socket.gethostname()}:{killed.pid}")
                return copy_qdrant_collection(client, "kb", drill_id)
        finally:
            client.close()

    left = left_by_killed_drill("killed")
    assert _collections(qdrant_home) == sorted(["kb", left])
    # What the retention job calls (tests/test_scheduler_jobs.py runs it as a job).
    assert sweep_drill_leftovers(load_settings()) == [left]
    assert _collections(qdrant_home) == ["kb"]

    left_by_killed_drill("killed-again")
    with QdrantCopies(load_settings(), ["kb"], "next") as copies:
        assert _collections(qdrant_home) == sorted(["kb", copies.names["kb"]])
    assert _collections(qdrant_home) == ["kb"]
    client = QdrantClient(path=str(qdrant_home))
    try:
        with pytest.raises(RetrieverError, match="cannot copy Qdrant collection 'absent'"):
            copy_qdrant_collection(client, "absent", "next")
    finally:
        client.close()
    assert _collections(qdrant_home) == ["kb"], "a failed copy leaves nothing"


QDRANT_CONFIG = (
    """
[retriever]
kind = "qdrant"

[retriever.qdrant]
path = "{path}"
collection = "demo"
id_payload_key = "doc_id"
text_payload_key = "text"
"""
    + on_the_retriever_table(CONFIG)
    + JOB_FAILURE_RULE
)


@pytest.mark.slow
def test_a_drill_of_a_qdrant_collection_catches_its_incidents_and_leaves_it_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo corpus with MiniLM vectors in local Qdrant, read through [retriever.qdrant]:
    a deletion is caught by the nDCG rule on its first cycle; a model mismatch makes the
    replay job refuse the collection (the model check re-embeds the payload's texts), which
    the job_failure rule catches, the job's error naming the model; the ANN incident is
    reported as not injectable; the live collection is the same point for point."""
    store = tmp_path / "qdrant"
    build_collection(store, "demo")
    (tmp_path / "evalkit.toml").write_text(QDRANT_CONFIG.format(path=store), encoding="utf-8")
    monkeypatch.setenv("EVALKIT_CONFIG", str(tmp_path / "evalkit.toml"))
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    user = load_settings()
    with Store.open(user.resolved_store_path) as live_store:
        save_goldset(live_store, demo_goldset())
    before = _points(store, "demo")

    report = run_drill(
        user,
        DrillRequest(
            incidents=(("deletion", 0.34), ("model_mismatch", None), ("ann_degradation", None)),
            quiet_cycles=3,
            cycles=3,
            recovery_cycles=6,
            drill_id="qd",
        ),
    )

    assert report.copies == {"demo": f"{DRILL_PREFIX}qd-demo"}
    assert report.false_alarms == ()
    deletion, mismatch, ann = report.incidents
    assert deletion.first_alert == ("ndcg-drop", 1), deletion
    before_ndcg, after_ndcg = deletion.effect["ndcg@10"]
    assert after_ndcg is not None
    assert before_ndcg is not None
    assert after_ndcg < before_ndcg
    assert deletion.resolved_after is not None
    assert mismatch.first_alert == ("job-failed", 1), mismatch
    assert "were not made by the query embedder" in mismatch.failed_jobs["nightly"]
    assert mismatch.resolved_after is not None
    assert ann.injected is None
    assert ann.gap is not None
    assert ann.gap.startswith("not injectable on Qdrant")
    assert report.exit_code == 1, "an incident not played is not caught"
    markdown = (Path(report.folder) / "report.md").read_text(encoding="utf-8")
    assert "- model_mismatch: job nightly failed: the vectors of Qdrant collection" in markdown

    assert _collections(store) == ["demo"]
    assert _points(store, "demo") == before
