"""An index changed without evalkit changes the runs' index fingerprint, so `explain` names
it: documents deleted, added or swapped straight in Chroma (embedded and a real server),
rows deleted from a real pgvector table and points from a Qdrant collection in local mode."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import chromadb
import pytest
from chroma_server import ChromaServer, chroma_server_fixture  # noqa: F401
from chromadb.config import Settings as ChromaSettings
from demo_index import DEMO_DIR, cached_minilm, demo_documents, demo_goldset, demo_vectors, minilm
from evalkit_process import write_retriever_config
from postgres_server import PostgresServer, postgres_server_fixture  # noqa: F401
from qdrant_client import QdrantClient, models
from test_retrievers_qdrant import build_collection

from evalkit.cli import invoke
from evalkit.retrievers import ChromaRetriever, index_corpus
from evalkit.retrievers.chroma_client import close_client, open_chroma_client

pytestmark = pytest.mark.slow

N_DELETED = 23


def judged_relevant(n: int = N_DELETED) -> list[str]:
    """The first ``n`` distinct documents the demo goldset judges relevant."""
    found: list[str] = []
    for judgment in demo_goldset().judgments:
        if judgment.relevance >= 1 and judgment.doc_id not in found:
            found.append(judgment.doc_id)
    return found[:n]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh store with the demo goldset, the working directory ``tmp_path``."""
    home = tmp_path / "home"
    monkeypatch.setenv("EVALKIT_HOME", str(home))
    for name in ("EVALKIT_CONFIG", "EVALKIT_CHROMA_URL", "EVALKIT_CHROMA_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    assert invoke(["goldset", "import", str(DEMO_DIR), "--name", "demo", "-o", "json"]) == 0
    return home


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    capsys.readouterr()
    code = invoke([*args, "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def deleted_out_of_band_is_explained(
    capsys: pytest.CaptureFixture[str], run_args: list[str], delete: Callable[[list[str]], None]
) -> None:
    """After ``delete`` removed 23 judged-relevant documents behind evalkit's back, the next
    run's fingerprint differs and `explain` names the changed index among the causes of its
    regression."""
    before = cli_json(capsys, "run", "--goldset", "demo", "--k", "10", *run_args)
    assert before["index_fingerprint"]

    delete(judged_relevant())
    after = cli_json(capsys, "run", "--goldset", "demo", "--k", "10", *run_args)
    assert after["index_fingerprint"] not in (None, before["index_fingerprint"])
    assert after["aggregates"]["ndcg@10"] < before["aggregates"]["ndcg@10"]

    explained = cli_json(capsys, "explain", after["run_id"], "--baseline", before["run_id"])
    kinds = [cause["kind"] for cause in explained["causes"]]
    assert "index_changed" in kinds, kinds
    changed = explained["causes"][kinds.index("index_changed")]
    assert before["index_fingerprint"] in changed["statement"]
    assert after["index_fingerprint"] in changed["statement"]


# -- Chroma ---------------------------------------------------------------------------------


def chroma_delete(client_args: dict[str, Any], collection: str) -> Callable[[list[str]], None]:
    def delete(doc_ids: list[str]) -> None:
        settings = ChromaSettings(anonymized_telemetry=False)
        if "url" in client_args:
            host, port = client_args["url"].removeprefix("http://").split(":")
            client: Any = chromadb.HttpClient(host=host, port=int(port), settings=settings)
        else:
            client = chromadb.PersistentClient(path=str(client_args["path"]), settings=settings)
        try:
            handle = client.get_collection(collection, embedding_function=None)
            before = handle.count()
            handle.delete(ids=doc_ids)
            assert handle.count() == before - len(doc_ids)
        finally:
            close_client(client)

    return delete


def test_embedded_chroma_documents_deleted_out_of_band_change_the_fingerprint(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = str(DEMO_DIR / "corpus.jsonl")
    cli_json(capsys, "index", "--corpus", corpus, "--collection", "demo")
    deleted_out_of_band_is_explained(
        capsys, ["--collection", "demo"], chroma_delete({"path": home / "chroma"}, "demo")
    )


def test_chroma_server_documents_deleted_out_of_band_change_the_fingerprint(
    home: Path, capsys: pytest.CaptureFixture[str], chroma_server: ChromaServer
) -> None:
    corpus = str(DEMO_DIR / "corpus.jsonl")
    name = f"oob-{home.parent.name}"[:60].replace("_", "-")
    where = ["--chroma-url", chroma_server.url]
    cli_json(capsys, "index", "--corpus", corpus, "--collection", name, *where)
    deleted_out_of_band_is_explained(
        capsys, ["--collection", name, *where], chroma_delete({"url": chroma_server.url}, name)
    )


@pytest.fixture
def facts(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """The demo corpus indexed by evalkit into an embedded collection, and that collection."""
    client = open_chroma_client(path=tmp_path / "facts")
    index_corpus(client, demo_documents(), cached_minilm(), collection_name="facts")
    yield client, client.get_collection("facts", embedding_function=None)
    close_client(client)


def test_every_kind_of_out_of_band_change_moves_the_chroma_fingerprint(
    facts: tuple[Any, Any],
) -> None:
    client, collection = facts
    seen: list[str | None] = []

    def fingerprint() -> str | None:
        opened = client.get_collection("facts", embedding_function=None)
        with ChromaRetriever(opened, minilm()) as retriever:
            value = retriever.index_fingerprint()
        assert value is not None
        return value

    seen.append(fingerprint())
    assert fingerprint() == seen[0]  # nothing changed, nothing moves

    middle = [doc.id for doc in demo_documents()[100:103]]
    stored = collection.get(ids=middle, include=["embeddings"])
    vectors = dict(zip(stored["ids"], stored["embeddings"], strict=True))
    collection.delete(ids=middle)  # deleted from the middle: the count
    seen.append(fingerprint())
    collection.add(ids=["added-1"], embeddings=[vectors[middle[0]]], documents=["x"])
    seen.append(fingerprint())  # added: the count and the last documents
    collection.delete(ids=[demo_documents()[200].id])
    collection.add(ids=["added-2"], embeddings=[vectors[middle[1]]], documents=["y"])
    assert collection.count() == 330 - 3 + 1
    seen.append(fingerprint())  # one deleted and one added: the last documents
    first = demo_documents()[0].id
    collection.update(ids=[first], embeddings=[vectors[middle[2]]])
    seen.append(fingerprint())  # a sampled document re-embedded in place
    assert len(set(seen)) == len(seen), seen

    index_corpus(client, demo_documents(), cached_minilm(), collection_name="facts")
    assert fingerprint() not in seen  # evalkit's own re-index restores and records it


def test_a_chroma_collection_that_cannot_be_read_records_no_fingerprint(
    facts: tuple[Any, Any],
) -> None:
    client, collection = facts
    retriever = ChromaRetriever(collection, minilm())
    client.delete_collection("facts")
    assert retriever.index_fingerprint() is None


# -- pgvector -------------------------------------------------------------------------------


def test_pgvector_rows_deleted_out_of_band_change_the_fingerprint(
    home: Path, capsys: pytest.CaptureFixture[str], postgres_server: PostgresServer
) -> None:
    table = f"oob_{home.parent.name}".lower().replace("-", "_")[:60]
    with postgres_server.connect() as conn:
        conn.execute(
            f"CREATE TABLE {table} (doc_id text PRIMARY KEY, content text, embedding vector(384))"
        )
        with conn.cursor() as cursor, cursor.copy(f"COPY {table} FROM STDIN") as copy:
            for document, vector in zip(demo_documents(), demo_vectors(), strict=True):
                text = "[" + ",".join(repr(float(value)) for value in vector) + "]"
                copy.write_row((document.id, document.content, text))
    write_retriever_config(
        home.parent,
        "pgvector",
        dsn=postgres_server.dsn,
        table=table,
        id_column="doc_id",
        embedding_column="embedding",
        metric="cosine",
        search="exact",
    )

    def delete(doc_ids: list[str]) -> None:
        with postgres_server.connect() as conn:
            deleted = conn.execute(f"DELETE FROM {table} WHERE doc_id = ANY(%s)", (doc_ids,))
            assert deleted.rowcount == len(doc_ids)

    deleted_out_of_band_is_explained(capsys, [], delete)


# -- Qdrant (local mode) --------------------------------------------------------------------


def test_qdrant_points_deleted_out_of_band_change_the_fingerprint(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = home.parent / "qdrant"
    build_collection(store, "demo")
    write_retriever_config(
        home.parent, "qdrant", path=str(store), collection="demo", id_payload_key="doc_id"
    )

    def delete(doc_ids: list[str]) -> None:
        client = QdrantClient(path=str(store))
        try:
            matching = models.Filter(
                must=[models.FieldCondition(key="doc_id", match=models.MatchAny(any=doc_ids))]
            )
            client.delete("demo", points_selector=models.FilterSelector(filter=matching))
            assert client.count("demo", exact=True).count == 330 - len(doc_ids)
        finally:
            client.close()

    deleted_out_of_band_is_explained(capsys, [], delete)
