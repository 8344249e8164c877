"""``evalkit audit`` of a Qdrant collection (local mode, Qdrant's own engine on a folder): the
collection read as ``QdrantRetriever`` reads it (id and text from the payload), a few points
of another model and a copy under a new id found, ANN recall measured through Qdrant's own
search. A pgvector table is audited by a drill's audit job (tests/test_drill_pgvector.py).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from demo_index import demo_documents, demo_goldset
from qdrant_client import QdrantClient, models
from test_retrievers_qdrant import build_collection

from evalkit.cli import invoke
from evalkit.store import Store
from evalkit.store.goldsets import save_goldset

TURNED = ("d0001", "d0014", "d0100")
COPIED = "d0002"


def _point(doc_id: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, doc_id))


def _changed_by_hand(path: Path) -> None:
    """Three points' vectors turned into another space (as another model's would be), and
    one document written again under a new id (a re-run ingestion)."""
    client = QdrantClient(path=str(path))
    try:
        turned = client.retrieve(
            "demo", [_point(doc_id) for doc_id in TURNED], with_payload=True, with_vectors=True
        )
        rotation, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(384, 384)))
        [copied] = client.retrieve("demo", [_point(COPIED)], with_payload=True, with_vectors=True)
        client.upsert(
            "demo",
            points=[
                *(
                    models.PointStruct(
                        id=point.id,
                        vector=(np.asarray(point.vector) @ rotation).tolist(),
                        payload=point.payload,
                    )
                    for point in turned
                ),
                models.PointStruct(
                    id=str(uuid.uuid4()),
                    vector=copied.vector,
                    payload={**(copied.payload or {}), "doc_id": f"{COPIED}-again"},
                ),
            ],
        )
    finally:
        client.close()


def test_an_audit_of_a_qdrant_collection_finds_another_model_and_copies_and_measures_ann(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "qdrant"
    build_collection(store, "demo")
    _changed_by_hand(store)
    (tmp_path / "evalkit.toml").write_text(
        f'[retriever.qdrant]\npath = "{store}"\ncollection = "demo"\n'
        'id_payload_key = "doc_id"\ntext_payload_key = "text"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("EVALKIT_CONFIG", str(tmp_path / "evalkit.toml"))
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    with Store.open(tmp_path / "home" / "evalkit.duckdb") as live:
        save_goldset(live, demo_goldset())

    # --model-sample 0: every stored text re-embedded, so each turned point is named.
    options = ["--retriever", "qdrant", "--goldset", "demo", "--model-sample", "0"]
    code = invoke(["audit", *options, "--format", "json"])

    out = capsys.readouterr().out
    report = json.loads(out)
    assert code == 1, "vectors of another model are a critical finding"
    assert report["collection"] == "demo"
    assert report["location"] == f"qdrant:{store}"
    assert report["n_documents"] == len(demo_documents()) + 1
    found = {finding["kind"]: finding for finding in report["findings"]}
    assert set(found["vectors_from_another_model"]["doc_ids"]) == set(TURNED)
    assert "A qdrant index records none" in found["model_fingerprint_missing"]["message"]
    assert [COPIED, f"{COPIED}-again"] in found["exact_duplicates"]["clusters"]
    checks = {check["name"]: check for check in report["checks"]}
    assert checks["ann_recall"]["ran"], checks["ann_recall"]
    # Local Qdrant searches exactly: what it returns is what exact search returns.
    assert checks["ann_recall"]["measurements"]["recall@10"] == 1.0
    assert checks["coverage"]["ran"]
    assert report["audit_id"] is not None

    # The stored audit is the collection's, as runs of the Qdrant retriever name it.
    with Store.open(tmp_path / "home" / "evalkit.duckdb", read_only=True) as live:
        [(collection, location)] = live.fetch("SELECT collection, location FROM audits")
    assert (collection, location) == ("demo", f"qdrant:{store}")
