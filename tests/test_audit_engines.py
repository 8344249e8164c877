"""``evalkit audit`` of a Qdrant collection (local mode, Qdrant's own engine on a folder): the
collection read as ``QdrantRetriever`` reads it (id and text from the payload), a few points
of another model and a copy under a new id found, ANN recall measured through Qdrant's own
search; a pgvector table read as ``PgvectorRetriever`` reads it, compared with its source by
the text that is embedded (neither engine records evalkit's content hash).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from demo_index import demo_documents, demo_goldset, demo_vectors
from postgres_server import PostgresServer, postgres_server_fixture  # noqa: F401
from qdrant_client import QdrantClient, models
from test_retrievers_qdrant import build_collection

from evalkit.audit import AuditConfig, run_audit
from evalkit.audit.view import IndexView
from evalkit.cli import invoke
from evalkit.errors import ConfigError
from evalkit.retrievers.contents import Contents
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
    clusters = [sorted(cluster) for cluster in found["exact_duplicates"]["clusters"]]
    assert [COPIED, f"{COPIED}-again"] in clusters
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


def test_an_audit_of_a_pgvector_table_compares_the_embedded_text_with_the_source(
    postgres_server: PostgresServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The demo corpus in a pgvector table (title and text as embedded, a tenant column):
    the source's documents are all there and unchanged (the table records no content hash,
    so the texts are compared), one row's vector is of another space, one row has no vector
    (the retriever never returns it); the report says where the table is."""
    documents = demo_documents()
    vectors = demo_vectors().copy()
    vectors[5] = vectors[5] @ np.linalg.qr(np.random.default_rng(1).normal(size=(384, 384)))[0]
    with postgres_server.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS audited")
        conn.execute(
            "CREATE TABLE audited (doc_id text PRIMARY KEY, tenant text, content text,"
            " embedding vector(384))"
        )
        with conn.cursor() as cursor, cursor.copy("COPY audited FROM STDIN") as copy:
            for document, vector in zip(documents, vectors, strict=True):
                copy.write_row((document.id, "acme", document.content, str(vector.tolist())))
        conn.execute("INSERT INTO audited VALUES ('unembedded', 'acme', 'no vector yet', NULL)")
        conn.execute("CREATE INDEX ON audited USING hnsw (embedding vector_cosine_ops)")
    (tmp_path / "evalkit.toml").write_text(
        f'[retriever]\nkind = "pgvector"\n\n[retriever.pgvector]\ndsn = "{postgres_server.dsn}"\n'
        'table = "audited"\nid_column = "doc_id"\ntext_column = "content"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("EVALKIT_CONFIG", str(tmp_path / "evalkit.toml"))
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))

    source = Path(__file__).resolve().parents[1] / "goldsets" / "demo" / "corpus.jsonl"
    options = ["--source", str(source), "--model-sample", "0", "--no-save"]
    code = invoke(["audit", *options, "--format", "json"])  # [retriever] kind names pgvector

    report = json.loads(capsys.readouterr().out)
    assert code == 1, report["findings"]
    assert report["collection"] == "public.audited"
    assert report["location"] == f"pgvector://127.0.0.1:{postgres_server.port}/postgres"
    assert report["n_documents"] == len(documents)
    found = {finding["kind"]: finding for finding in report["findings"]}
    assert found["vectors_from_another_model"]["doc_ids"] == [documents[5].id]
    assert "write them to the pgvector index" in found["vectors_from_another_model"]["message"]
    checks = {check["name"]: check for check in report["checks"]}
    assert checks["staleness"]["ran"]
    assert {
        name: checks["staleness"]["measurements"][name]
        for name in ("changed_at_source", "not_in_source", "missing_from_index")
    } == {"changed_at_source": 0.0, "not_in_source": 0.0, "missing_from_index": 0.0}

    assert invoke(["audit", "--retriever", "pgvector", "--chroma-url", "http://x:1"]) == 2
    assert "--chroma-url is for a Chroma collection" in capsys.readouterr().err


class _Chunked:
    """A fake readable index: three documents, the second stored as two points."""

    index_name = "fake"
    space: str | None = "cosine"

    def read_contents(self) -> Contents:
        vectors = np.eye(3, 4, dtype=np.float32)
        return Contents(["a", "b", "c"], vectors, ["x", "y", "z"], [{}, {"n": 1}, None], 4)

    def search_vectors(self, vectors: np.ndarray, k: int) -> list[list[str]]:
        return [["b", "a", "c"][:k] for _ in vectors]

    def describe(self) -> dict[str, object]:
        return {"kind": "fake"}


def test_the_view_pages_as_chroma_does_and_ann_recall_is_not_run_over_chunks() -> None:
    view = IndexView(_Chunked())
    assert view.get(include=["documents"], limit=2, offset=0)["ids"] == ["a", "b"]
    page = view.get(include=["embeddings", "metadatas"], limit=2, offset=2)
    assert page["ids"] == ["c"]
    assert page["metadatas"] == [None]
    assert page["documents"] is None
    assert view.get(include=["documents"], limit=2, offset=5)["ids"] == []
    assert view.get(["c", "missing", "a"], include=["documents"])["documents"] == ["z", "x"]
    assert view.query(np.zeros((2, 4), dtype=np.float32), n_results=2) == {"ids": [["b", "a"]] * 2}

    report = run_audit(view, config=AuditConfig(checks=("duplicates", "ann_recall")))
    checks = {check.name: check for check in report.checks}
    assert report.n_documents == 3
    assert not checks["ann_recall"].ran
    assert checks["ann_recall"].note == (
        "the index stores 3 documents as 4 points or rows: its searches rank each, an exact "
        "search over documents would not"
    )

    manhattan = _Chunked()
    manhattan.space = None
    with pytest.raises(ConfigError, match="a distance the audit cannot compute"):
        IndexView(manhattan)
