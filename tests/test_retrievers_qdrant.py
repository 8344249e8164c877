"""Qdrant collections replayed through ``QdrantRetriever``, in qdrant-client's local mode.

Local mode is Qdrant's own engine in-process on a directory (one client per directory at a
time: each test closes its client before another opens the store). The parity check is the
issue's: the demo goldset through a Qdrant collection of the same MiniLM vectors as an
embedded Chroma collection gives the same nDCG@10 within ANN noise.
"""

from __future__ import annotations

import json
import socket
import subprocess
import uuid
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import pytest
from demo_index import (
    DEMO_DIR,
    PARITY,
    Reference,
    demo_documents,
    demo_vectors,
    minilm,
    replay_ndcg10,
)
from evalkit_process import fresh_env, run_evalkit, write_retriever_config
from qdrant_client import QdrantClient, models

from evalkit.cli._output import with_flags
from evalkit.config import QdrantSettings
from evalkit.errors import CollectionNotFoundError, ConfigError, RetrieverError
from evalkit.records import Query
from evalkit.retrievers.qdrant import QdrantRetriever, tenant_filter
from evalkit.store import RunSpec, Store
from evalkit.store.runs import create_run, get_run

REPO = Path(__file__).resolve().parents[1]


def build_collection(
    path: Path,
    name: str,
    *,
    distance: models.Distance = models.Distance.COSINE,
    rotation: np.ndarray | None = None,
) -> None:
    """The demo corpus in a local Qdrant collection: UUID point ids, the doc id, tenant and
    text in the payload (as a chunked corpus would have them); its vectors turned by
    ``rotation`` into another embedding space of the same dimension when given."""
    vectors = demo_vectors() if rotation is None else demo_vectors() @ rotation
    client = QdrantClient(path=str(path))
    try:
        client.create_collection(
            name, vectors_config=models.VectorParams(size=384, distance=distance)
        )
        client.upsert(
            name,
            points=[
                models.PointStruct(
                    id=str(uuid.uuid5(uuid.NAMESPACE_URL, document.id)),
                    vector=vector.tolist(),
                    payload={"doc_id": document.id, "text": document.content, **document.metadata},
                )
                for document, vector in zip(demo_documents(), vectors, strict=True)
            ],
        )
    finally:
        client.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("qdrant")
    build_collection(path, "demo")
    build_collection(path, "demo_l2", distance=models.Distance.EUCLID)
    return path


def retriever(store: Path, collection: str = "demo", **settings: object) -> QdrantRetriever:
    configured = QdrantSettings(path=store, collection=collection, id_payload_key="doc_id")
    return QdrantRetriever(configured.model_copy(update=settings), minilm())


@pytest.mark.slow
def test_the_demo_goldset_through_qdrant_matches_embedded_chroma(
    store: Path, demo_reference: Reference, tmp_path: Path
) -> None:
    for collection in ("demo", "demo_l2"):
        with retriever(store, collection) as adapter:
            ndcg, status = replay_ndcg10(tmp_path / collection, adapter)
            assert status == "complete"
            assert abs(ndcg - demo_reference.ndcg10) <= PARITY, (collection, ndcg)
    with retriever(store, "demo_l2") as adapter:
        [result] = adapter.retrieve([Query("q", "reset my password")], 5)
        scores = [doc.score for doc in result.docs]
        assert scores == sorted(scores, reverse=True)
        assert all(score <= 0 for score in scores)


def test_a_tenant_filter_returns_no_other_tenants_document(store: Path) -> None:
    tenant_of = {document.id: document.metadata["tenant"] for document in demo_documents()}
    queries = [
        Query("k", "How many vacation days do we get?", tenant="kestrel"),
        Query("h", "How many vacation days do we get?", tenant="harbor"),
    ]
    with retriever(store, tenant_key="tenant") as adapter:
        results = adapter.retrieve(queries, 50)
        assert adapter.describe()["where_key"] == "tenant"
    for query, result in zip(queries, results, strict=True):
        assert len(result.docs) == 50
        assert {tenant_of[doc.doc_id] for doc in result.docs} == {query.tenant}
    with retriever(store) as adapter:
        mixed = adapter.retrieve(queries[:1], 50)[0]
    assert {tenant_of[doc.doc_id] for doc in mixed.docs} == {"kestrel", "harbor"}


def test_an_integer_tenant_payload_is_matched_and_a_missing_key_is_refused(
    tmp_path: Path,
) -> None:
    """Goldset tenants are text and Qdrant's match is type-strict: a tenant "1" found nothing
    in an integer ``org_id``, and a key no point has found nothing for every query; the run
    was stored complete with nDCG 0."""
    org_of = {"harbor": 1, "kestrel": 2}
    client = QdrantClient(path=str(tmp_path))
    try:
        client.create_collection(
            "orgs", vectors_config=models.VectorParams(size=384, distance=models.Distance.COSINE)
        )
        client.upsert(
            "orgs",
            points=[
                models.PointStruct(
                    id=number,
                    vector=vector.tolist(),
                    payload={"doc_id": document.id, "org_id": org_of[document.metadata["tenant"]]},
                )
                for number, (document, vector) in enumerate(
                    zip(demo_documents(), demo_vectors(), strict=True)
                )
            ],
        )
    finally:
        client.close()
    tenant_of = {document.id: document.metadata["tenant"] for document in demo_documents()}
    queries = [
        Query("h", "How many vacation days do we get?", tenant="1"),
        Query("k", "How many vacation days do we get?", tenant="2"),
    ]
    with retriever(tmp_path, "orgs", tenant_key="org_id") as adapter:
        harbor, kestrel = adapter.retrieve(queries, 50)
    assert len(harbor.docs) == len(kestrel.docs) == 50
    assert {tenant_of[doc.doc_id] for doc in harbor.docs} == {"harbor"}
    assert {tenant_of[doc.doc_id] for doc in kestrel.docs} == {"kestrel"}

    with pytest.raises(ConfigError) as refused:
        retriever(tmp_path, "orgs", tenant_key="tenant")
    assert str(refused.value) == (
        f"no point of Qdrant collection 'orgs' at {tmp_path} has payload key 'tenant' "
        "(`where_key`, or tenant_key in [retriever.qdrant]): every query with a tenant would "
        "find nothing. Payload keys of its first 100 points: doc_id, org_id"
    )
    assert "'tenant' (--where-key, or tenant_key" in with_flags(str(refused.value))


def test_a_tenant_filter_matches_the_type_the_payload_index_holds() -> None:
    """A server in strict mode refuses a condition the key's index cannot serve."""

    def values(tenant: str, indexed: models.PayloadSchemaType | None) -> list[object]:
        wanted = tenant_filter("org", tenant, indexed=indexed)
        conditions = wanted.must if wanted.must is not None else wanted.should
        assert isinstance(conditions, list)
        return [condition.match.value for condition in conditions]  # type: ignore[union-attr]

    assert values("1", None) == ["1", 1]
    assert values("1", models.PayloadSchemaType.INTEGER) == [1]
    assert values("1", models.PayloadSchemaType.KEYWORD) == ["1"]
    assert values("acme", None) == ["acme"]
    assert values("01", None) == ["01"]
    assert values(str(2**63), None) == [str(2**63)]
    assert tenant_filter("org", "acme").must is not None


def test_one_collection_name_in_two_stores_is_two_retrievers(store: Path, tmp_path: Path) -> None:
    """``qdrant:demo`` named every collection called demo, on any server or local store:
    their runs were one series for drift precision, explain's baseline and the alerts."""
    build_collection(tmp_path / "copy", "demo")
    specs = []
    for path in (store, tmp_path / "copy"):
        with retriever(path) as adapter:
            specs.append(RunSpec.for_retriever(adapter, kind="goldset", k=10, n_queries=0))
    server = replace(specs[0], retriever_config={"kind": "qdrant", "url": "http://qdrant:6333"})
    with Store.open(tmp_path / "evalkit.duckdb") as stored:
        ids = [get_run(stored, create_run(stored, spec)).retriever_id for spec in [*specs, server]]
    assert ids == [
        f"qdrant:demo@{store}",
        f"qdrant:demo@{tmp_path / 'copy'}",
        "qdrant:demo@http://qdrant:6333",
    ]


def test_a_collection_gone_mid_run_fails_each_query_with_its_error(tmp_path: Path) -> None:
    """Queries are never dropped or averaged as complete: each one carries the failure."""
    build_collection(tmp_path, "vanishing")
    queries = [Query(f"q{i}", text) for i, text in enumerate(["API keys", "refunds", "VPN"])]
    with retriever(tmp_path, "vanishing") as adapter:
        assert all(result.error is None for result in adapter.retrieve(queries[:1], 3))
        adapter._client.delete_collection("vanishing")
        results = adapter.retrieve(queries, 3)
    assert [result.query_id for result in results] == ["q0", "q1", "q2"]
    for result in results:
        assert result.docs == ()
        assert result.error is not None
        assert "vanishing" in result.error


def test_a_point_without_the_id_field_fails_its_query_naming_it(store: Path) -> None:
    with retriever(store, id_payload_key="source") as adapter:
        [result] = adapter.retrieve([Query("q", "API keys")], 3)
    assert result.error is not None
    assert "'source'" in result.error
    with retriever(store, id_payload_key=None) as adapter:
        [by_point] = adapter.retrieve([Query("q", "API keys")], 3)
    assert all(uuid.UUID(doc.doc_id) for doc in by_point.docs)


def test_wrong_collections_and_dimensions_are_refused_up_front(store: Path, tmp_path: Path) -> None:
    with pytest.raises(CollectionNotFoundError, match=r"no collection 'missing' \(it has: demo"):
        retriever(store, "missing")
    client = QdrantClient(path=str(tmp_path / "small"))
    client.create_collection(
        "small", vectors_config=models.VectorParams(size=8, distance=models.Distance.COSINE)
    )
    client.close()
    with pytest.raises(RetrieverError, match="8-dimensional"):
        retriever(tmp_path / "small", "small")
    with pytest.raises(ConfigError, match="no local Qdrant store"):
        retriever(tmp_path / "nowhere", "small")
    assert not (tmp_path / "nowhere").exists()  # no empty store made where none was
    with pytest.raises(ConfigError, match=r"not both \(both are given"):
        retriever(tmp_path / "small", "small", url="http://127.0.0.1:9")
    client = QdrantClient(path=str(tmp_path / "named"))
    client.create_collection(
        "named",
        vectors_config={"dense": models.VectorParams(size=384, distance=models.Distance.COSINE)},
    )
    client.close()
    with pytest.raises(ConfigError, match=r"named vectors \(dense\): set vector_name"):
        retriever(tmp_path / "named", "named")
    with pytest.raises(ConfigError, match=r"vector_name 'sparse' is none of them"):
        retriever(tmp_path / "named", "named", vector_name="sparse")
    with pytest.raises(ConfigError, match=r"url .* or path"):
        QdrantRetriever(QdrantSettings(collection="demo"), minilm())


@pytest.mark.slow
def test_a_model_of_the_same_dimension_is_told_apart_by_re_embedded_points(
    store: Path, tmp_path: Path
) -> None:
    rotation, _ = np.linalg.qr(np.random.default_rng(5).normal(size=(384, 384)))
    build_collection(tmp_path, "other_model", rotation=rotation)
    with pytest.raises(RetrieverError, match="not made by the query embedder") as refused:
        retriever(tmp_path, "other_model", text_payload_key="text")
    assert "payload 'text'" in str(refused.value)
    with retriever(tmp_path, "other_model") as blind:
        assert blind.describe()["model_check"] == {
            "method": "dimension only (set text_payload_key to re-embed sampled points)"
        }
    with retriever(store, text_payload_key="text") as same:
        check = same.describe()["model_check"]
    assert check["result"]["sampled"] == 16
    assert check["result"]["median_cosine"] == pytest.approx(1.0, abs=1e-5)


def test_an_unreachable_server_fails_up_front_and_the_key_is_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QDRANT_API_KEY", "sk-qdrant-secret-1234")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    # https: qdrant-client warns (rightly) when an API key would travel in clear text.
    url = f"https://127.0.0.1:{port}"
    settings = QdrantSettings(url=url, collection="demo", timeout=2)
    with pytest.raises(RetrieverError, match=f"cannot reach Qdrant at {url}") as e:
        QdrantRetriever(settings, minilm())
    assert "sk-qdrant-secret-1234" not in str(e.value)


@pytest.mark.slow
def test_evalkit_run_replays_a_qdrant_collection(
    store: Path, demo_reference: Reference, tmp_path: Path
) -> None:
    write_retriever_config(
        tmp_path, "qdrant", path=str(store), collection="demo", id_payload_key="doc_id"
    )
    env = fresh_env(tmp_path / "home", PYTHONPATH=str(REPO))

    def evalkit(*args: str) -> subprocess.CompletedProcess[str]:
        return run_evalkit(*args, env=env, cwd=tmp_path)

    imported = evalkit("goldset", "import", str(DEMO_DIR), "--name", "demo")
    assert imported.returncode == 0, imported.stderr
    # A tenant key no point holds is refused before a run is stored (the one below is all).
    wrong_key = evalkit("run", "--goldset", "demo", "--where-key", "org_id")
    assert wrong_key.returncode == 2, wrong_key.stderr
    assert "no point of Qdrant collection 'demo'" in wrong_key.stderr
    assert "has payload key 'org_id'" in wrong_key.stderr
    done = evalkit("run", "--goldset", "demo", "--k", "10", "--format", "json")
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["status"] == "complete"
    assert abs(run["aggregates"]["ndcg@10"] - demo_reference.ndcg10) <= PARITY
    with duckdb.connect(str(tmp_path / "home" / "evalkit.duckdb"), read_only=True) as stored:
        [(kind, config, fingerprint)] = stored.execute(
            "SELECT retriever_kind, retriever_config::VARCHAR, index_fingerprint FROM runs"
        ).fetchall()
    assert kind == "qdrant"
    assert json.loads(config)["collection"] == "demo"
    assert fingerprint
