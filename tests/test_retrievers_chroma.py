"""Chroma adapters and indexing, against a real ``chroma run`` server and embedded stores."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from chroma_server import ChromaServer, chroma_server_fixture, free_port  # noqa: F401
from loopback import serving

from evalkit.cli._output import with_flags
from evalkit.embedding import Embedder, ModelFingerprint, load_embedder
from evalkit.errors import ConfigError, EmbeddingError, InputError, RetrieverError
from evalkit.goldset import content_hash
from evalkit.goldset.model import Goldset
from evalkit.pipeline import evaluate_goldset
from evalkit.records import Document, Judgment, Query
from evalkit.records.requests import GoldsetRunRequest
from evalkit.retrievers import (
    ChromaRetriever,
    Retriever,
    TextEmbedder,
    get_collection,
    index_corpus,
    index_fingerprint,
    open_chroma_client,
)
from evalkit.retrievers.chroma import tenant_where
from evalkit.retrievers.chroma_client import (
    CONTENT_HASH_KEY,
    INDEX_FINGERPRINT_KEY,
    INDEXED_AT_KEY,
    TITLE_KEY,
    close_client,
    contents_fingerprint,
    parse_chroma_url,
)
from evalkit.store import Store

pytestmark = pytest.mark.slow

FACTS = [
    ("eiffel", "The Eiffel Tower in Paris is 330 metres tall and was completed in 1889."),
    ("photosynthesis", "Photosynthesis lets plants turn sunlight, water and CO2 into sugar."),
    ("python", "Python is a programming language created by Guido van Rossum."),
    ("everest", "Mount Everest is the highest mountain above sea level, at 8849 metres."),
    ("coffee", "Espresso is brewed by forcing hot water through finely ground coffee beans."),
    ("volcano", "Volcanoes erupt when molten magma rises through the Earth's crust."),
    ("bees", "Honey bees communicate the location of flowers with a waggle dance."),
    ("chess", "In chess, the king can castle with a rook if neither piece has moved."),
    ("tides", "Ocean tides are caused mainly by the gravitational pull of the Moon."),
    ("bread", "Sourdough bread rises thanks to wild yeast and lactic acid bacteria."),
    ("jupiter", "Jupiter is the largest planet in the Solar System, a gas giant."),
    ("dna", "DNA is a double helix that carries the genetic instructions of organisms."),
    ("marathon", "A marathon race is 42.195 kilometres long."),
    ("penguin", "Emperor penguins breed during the Antarctic winter on sea ice."),
    ("violin", "A violin has four strings tuned in perfect fifths and is played with a bow."),
    ("bitcoin", "Bitcoin is a cryptocurrency secured by a proof-of-work blockchain."),
    ("sahara", "The Sahara is the largest hot desert in the world, in North Africa."),
    ("vaccine", "Vaccines train the immune system to recognise a pathogen."),
    ("rainbow", "A rainbow appears when sunlight is refracted inside raindrops."),
    ("pyramid", "The Great Pyramid of Giza was built as a tomb for the pharaoh Khufu."),
    ("sushi", "Sushi combines vinegared rice with raw fish, seaweed or vegetables."),
    ("earthquake", "Earthquakes happen when tectonic plates suddenly slip along a fault."),
    ("shakespeare", "William Shakespeare wrote Hamlet, Macbeth and Romeo and Juliet."),
    ("tennis", "Wimbledon is the oldest tennis tournament, played on grass courts."),
    ("password", "To reset your account password, click 'Forgot password' on the login page."),
    ("invoice", "Invoices are due within thirty days of the billing date."),
    ("refund", "Refunds for cancelled orders are issued to the original payment method."),
    ("shipping", "Standard shipping takes three to five business days."),
    ("moon", "Neil Armstrong was the first person to walk on the Moon, in 1969."),
    ("blackhole", "A black hole's gravity is so strong that not even light escapes it."),
    ("insulin", "Insulin is a hormone that lets cells absorb glucose from the blood."),
    ("guitar", "An electric guitar needs an amplifier to be heard at volume."),
    ("origami", "Origami is the Japanese art of folding paper into shapes."),
    ("wine", "Wine is made by fermenting the juice of crushed grapes."),
    ("glacier", "Glaciers are slow rivers of ice that carve valleys as they move."),
    ("cheetah", "The cheetah is the fastest land animal, reaching 110 km/h."),
    ("compost", "Compost forms when microbes break down kitchen and garden waste."),
    ("printing", "Johannes Gutenberg introduced the movable-type printing press in Europe."),
    ("hurricane", "Hurricanes form over warm ocean water and rotate around a calm eye."),
    ("electron", "An electron is a subatomic particle with a negative electric charge."),
]

OBVIOUS_QUERIES = {
    "How tall is the Eiffel Tower?": "eiffel",
    "how do I reset my password": "password",
    "What is the highest mountain in the world?": "everest",
    "who wrote Hamlet": "shakespeare",
    "fastest animal on land": "cheetah",
}


def corpus() -> list[Document]:
    """Forty short documents; half belong to tenant 'acme', half to 'globex'."""
    return [
        Document(
            id=doc_id,
            text=text,
            title=doc_id.capitalize() if position % 3 == 0 else "",
            metadata={"tenant": "acme" if position % 2 == 0 else "globex", "position": position},
        )
        for position, (doc_id, text) in enumerate(FACTS)
    ]


class CountingEmbedder:
    """Wraps the real embedder, counting the texts it embeds; can fail on chosen texts."""

    def __init__(self, inner: TextEmbedder, *, fail_on: str | None = None) -> None:
        self.inner = inner
        self.fail_on = fail_on
        self.calls: list[list[str]] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    @property
    def fingerprint(self) -> ModelFingerprint:
        return self.inner.fingerprint

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(list(texts))
        if self.fail_on is not None and self.fail_on in texts:
            raise RuntimeError(f"cannot embed {self.fail_on!r}")
        return self.inner.embed(texts)

    @property
    def texts_embedded(self) -> int:
        return sum(len(call) for call in self.calls)


class CachedEmbedder(CountingEmbedder):
    """The real embedder, embedding each distinct text once per module to keep tests fast."""

    def __init__(self, inner: Embedder) -> None:
        super().__init__(inner)
        self.cache: dict[str, npt.NDArray[np.float32]] = {}

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        missing = list(dict.fromkeys(text for text in texts if text not in self.cache))
        if missing:
            self.cache.update(zip(missing, self.inner.embed(missing), strict=True))
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self.cache[text] for text in texts])


@pytest.fixture(scope="module")
def embedder() -> CachedEmbedder:
    return CachedEmbedder(load_embedder())


@pytest.fixture(scope="module")
def server_collection(chroma_server: ChromaServer, embedder: CachedEmbedder) -> str:
    """The corpus indexed once into the session's Chroma server."""
    client = open_chroma_client(url=chroma_server.url)
    try:
        index_corpus(client, corpus(), embedder, collection_name="facts")
    finally:
        close_client(client)
    return "facts"


def test_closing_a_server_client_closes_its_connections(
    chroma_server: ChromaServer, server_collection: str
) -> None:
    first = open_chroma_client(url=chroma_server.url)
    second = open_chroma_client(url=chroma_server.url)
    pool = first._server._session  # type: ignore[attr-defined]
    assert first.get_collection(server_collection, embedding_function=None).count() > 0
    close_client(first)
    assert pool.is_closed  # chromadb's own close leaves it open
    assert second.get_collection(server_collection, embedding_function=None).count() > 0
    close_client(second)


@pytest.fixture
def server_retriever(
    chroma_server: ChromaServer,
    server_collection: str,
    embedder: CachedEmbedder,
) -> Iterator[ChromaRetriever]:
    with ChromaRetriever.server(chroma_server.url, server_collection, embedder) as retriever:
        yield retriever


@pytest.fixture
def embedded_client(tmp_path: Path) -> Iterator[Any]:
    client = open_chroma_client(path=tmp_path / "chroma")
    yield client
    client.close()


def queries_for(texts: Sequence[str], tenant: str | None = None) -> list[Query]:
    return [Query(id=f"q{number}", text=text, tenant=tenant) for number, text in enumerate(texts)]


def test_server_ranks_the_obvious_document_first(server_retriever: ChromaRetriever) -> None:
    queries = queries_for(list(OBVIOUS_QUERIES))
    results = server_retriever.retrieve(queries, 5)

    assert [result.query_id for result in results] == [query.id for query in queries]
    for result, expected in zip(results, OBVIOUS_QUERIES.values(), strict=True):
        assert result.ok, result.error
        assert result.docs[0].doc_id == expected
        assert [doc.rank for doc in result.docs] == [1, 2, 3, 4, 5]
        scores = [doc.score for doc in result.docs]
        assert scores == sorted(scores, reverse=True)
        assert result.latency_ms > 0


def test_scores_are_exact_cosine_similarities(
    server_retriever: ChromaRetriever, embedder: CachedEmbedder
) -> None:
    documents = corpus()
    doc_vectors = embedder.embed([document.content for document in documents])
    texts = ["volcanic eruptions and magma", "genetic code in cells", "paper folding"]
    query_vectors = embedder.embed(texts)
    similarities = query_vectors @ doc_vectors.T

    results = server_retriever.retrieve(queries_for(texts), 7)

    for result, row in zip(results, similarities, strict=True):
        expected = np.argsort(-row)[:7]
        assert [doc.doc_id for doc in result.docs] == [documents[i].id for i in expected]
        assert [doc.score for doc in result.docs] == pytest.approx(row[expected], abs=1e-4)


def test_server_and_embedded_adapters_agree(
    server_retriever: ChromaRetriever,
    embedded_client: Any,
    embedder: CachedEmbedder,
    tmp_path: Path,
) -> None:
    index_corpus(embedded_client, corpus(), embedder, collection_name="facts")
    texts = [*OBVIOUS_QUERIES, "space exploration", "music instruments", "food"]
    queries = queries_for(texts)

    with ChromaRetriever.embedded(tmp_path / "chroma", "facts", embedder) as embedded:
        local = embedded.retrieve(queries, 10)
    remote = server_retriever.retrieve(queries, 10)

    for mine, theirs in zip(local, remote, strict=True):
        assert [doc.doc_id for doc in mine.docs] == [doc.doc_id for doc in theirs.docs]
        assert [doc.score for doc in mine.docs] == pytest.approx(
            [doc.score for doc in theirs.docs], abs=1e-5
        )
    assert embedded.index_fingerprint() == server_retriever.index_fingerprint()


def test_server_describe_and_fingerprints(
    server_retriever: ChromaRetriever,
    chroma_server: ChromaServer,
    embedder: CachedEmbedder,
) -> None:
    assert isinstance(server_retriever, Retriever)
    description = server_retriever.describe()
    assert description["kind"] == "chroma-http"
    assert description["url"] == chroma_server.url
    assert description["collection"] == "facts"
    assert description["count"] == len(FACTS)
    assert description["space"] == "cosine"

    stored = server_retriever.model_fingerprint()
    assert stored is not None
    assert stored.canary_hash == embedder.fingerprint.canary_hash
    documents = corpus()
    stored_index = index_fingerprint({doc.id: content_hash(doc) for doc in documents}, stored)
    collection = server_retriever._collection
    assert (collection.metadata or {})[INDEX_FINGERPRINT_KEY] == stored_index
    # What runs recorded as their whole index fingerprint before it covered the contents.
    assert description["indexed_fingerprint"] == stored_index
    # The run records the collection's contents now, evalkit's stored fingerprint among them.
    assert server_retriever.index_fingerprint() == contents_fingerprint(collection)
    server_retriever.check()


def test_k_larger_than_the_collection_returns_everything(
    server_retriever: ChromaRetriever,
) -> None:
    [result] = server_retriever.retrieve(queries_for(["anything"]), 100)
    assert len(result.docs) == len(FACTS)
    assert server_retriever.retrieve([], 10) == []
    with pytest.raises(ConfigError, match="k must be"):
        server_retriever.retrieve(queries_for(["x"]), 0)


def test_tenant_queries_only_see_their_tenant(
    chroma_server: ChromaServer,
    server_collection: str,
    embedder: CachedEmbedder,
) -> None:
    acme = {doc.id for doc in corpus() if doc.metadata["tenant"] == "acme"}
    queries = [
        Query(id="a1", text="How tall is the Eiffel Tower?", tenant="acme"),
        Query(id="g1", text="How tall is the Eiffel Tower?", tenant="globex"),
        Query(id="n1", text="How tall is the Eiffel Tower?"),
        Query(id="a2", text="who wrote Hamlet", tenant="acme"),
    ]
    with ChromaRetriever.server(
        chroma_server.url, server_collection, embedder, where_key="tenant"
    ) as retriever:
        results = retriever.retrieve(queries, 30)

    assert [result.query_id for result in results] == ["a1", "g1", "n1", "a2"]
    a1, g1, n1, a2 = ({doc.doc_id for doc in result.docs} for result in results)
    assert a1 == acme
    assert a2 == acme
    assert g1 == {doc_id for doc_id, _ in FACTS} - acme
    assert len(n1) == 30
    assert results[0].docs[0].doc_id == "eiffel"  # eiffel is position 0: acme


def test_an_integer_tenant_in_metadata_is_matched_and_a_missing_key_is_refused(
    chroma_server: ChromaServer,
    server_collection: str,
    embedder: CachedEmbedder,
) -> None:
    """Chroma's filter is type-strict and goldset tenants are text: ``"3"`` found nothing in
    an integer ``position``, and a key no record has found nothing for every query; the run
    was stored complete with nDCG 0."""
    queries = [
        Query(id="three", text="How tall is the Eiffel Tower?", tenant="3"),
        Query(id="padded", text="How tall is the Eiffel Tower?", tenant="03"),
    ]
    with ChromaRetriever.server(
        chroma_server.url, server_collection, embedder, where_key="position"
    ) as retriever:
        three, padded = retriever.retrieve(queries, 10)
    assert [doc.doc_id for doc in three.docs] == [FACTS[3][0]]
    assert padded.ok
    assert padded.docs == ()
    assert tenant_where("tenant", "acme") == {"tenant": "acme"}
    assert tenant_where("position", "-3") == {"$or": [{"position": "-3"}, {"position": -3}]}

    with pytest.raises(ConfigError) as refused:
        ChromaRetriever.server(chroma_server.url, server_collection, embedder, where_key="org")
    assert str(refused.value).startswith(
        "no record of Chroma collection 'facts' has metadata key 'org' (`where_key`): every "
        "query with a tenant would find nothing. Metadata keys of its first 40 records: "
    )
    assert "position, " in str(refused.value)
    assert "tenant" in str(refused.value)
    assert "'org' (--where-key): every" in with_flags(str(refused.value))


def test_a_failing_query_does_not_fail_its_batch(
    chroma_server: ChromaServer,
    server_collection: str,
    embedder: CachedEmbedder,
) -> None:
    failing = CountingEmbedder(embedder, fail_on="boom")
    texts = ["How tall is the Eiffel Tower?", "boom", "who wrote Hamlet", "fastest animal on land"]
    with ChromaRetriever.server(
        chroma_server.url, server_collection, failing, batch_size=3
    ) as retriever:
        results = retriever.retrieve(queries_for(texts), 3)

    assert [result.ok for result in results] == [True, False, True, True]
    assert "boom" in (results[1].error or "")
    assert results[1].docs == ()
    assert [results[i].docs[0].doc_id for i in (0, 2, 3)] == ["eiffel", "shakespeare", "cheetah"]
    # batch of three fails, then each of its queries alone; the last batch of one is fine
    assert [len(call) for call in failing.calls] == [3, 1, 1, 1, 1]


def test_indexing_is_idempotent_and_incremental(
    embedded_client: Any, embedder: CachedEmbedder
) -> None:
    counting = CountingEmbedder(embedder)
    documents = corpus()
    progress: list[tuple[int, int | None]] = []

    first = index_corpus(
        embedded_client,
        documents,
        counting,
        collection_name="facts",
        batch_size=16,
        progress=lambda done, total: progress.append((done, total)),
    )
    assert (first.added, first.updated, first.unchanged, first.total) == (40, 0, 0, 40)
    assert counting.texts_embedded == 40
    # The total comes before the first batch, so a bar never shows "0/?" while it embeds.
    assert progress == [(0, 40), (16, 40), (32, 40), (40, 40)]
    collection = get_collection(embedded_client, "facts")
    metadata_after_first = dict(collection.metadata)
    assert metadata_after_first[INDEX_FINGERPRINT_KEY] == first.index_fingerprint
    assert metadata_after_first[INDEXED_AT_KEY].endswith("+00:00")

    counting.calls.clear()
    second = index_corpus(
        embedded_client, iter(documents), counting, collection_name="facts", batch_size=16
    )
    assert (second.added, second.updated, second.unchanged, second.total) == (0, 0, 40, 40)
    assert counting.calls == []
    assert second.index_fingerprint == first.index_fingerprint
    assert dict(get_collection(embedded_client, "facts").metadata) == metadata_after_first

    changed = [
        replace(doc, text="The Eiffel Tower is painted every seven years.")
        if doc.id == "eiffel"
        else doc
        for doc in documents
    ]
    counting.calls.clear()
    third = index_corpus(embedded_client, changed, counting, collection_name="facts")
    assert (third.added, third.updated, third.unchanged) == (0, 1, 39)
    assert counting.calls == [["Eiffel\nThe Eiffel Tower is painted every seven years."]]
    assert third.index_fingerprint != first.index_fingerprint
    stored = get_collection(embedded_client, "facts").get(ids=["eiffel"], include=["metadatas"])
    assert stored["metadatas"][0][CONTENT_HASH_KEY] == content_hash(changed[0])
    assert stored["metadatas"][0][TITLE_KEY] == "Eiffel"
    assert stored["metadatas"][0]["tenant"] == "acme"

    counting.calls.clear()
    grown = [*changed, Document(id="tea", text="Green tea is made from unoxidised leaves.")]
    fourth = index_corpus(embedded_client, grown, counting, collection_name="facts")
    assert (fourth.added, fourth.updated, fourth.unchanged, fourth.stale) == (1, 0, 40, 0)
    assert counting.texts_embedded == 1

    shrunk = grown[2:]
    kept = index_corpus(embedded_client, shrunk, counting, collection_name="facts")
    assert (kept.unchanged, kept.stale, kept.removed) == (39, 2, 0)
    pruned = index_corpus(embedded_client, shrunk, counting, collection_name="facts", prune=True)
    assert (pruned.removed, pruned.stale) == (2, 0)
    assert get_collection(embedded_client, "facts").count() == 39
    expected = index_fingerprint(
        {doc.id: content_hash(doc) for doc in shrunk}, embedder.fingerprint
    )
    assert pruned.index_fingerprint == expected
    assert kept.index_fingerprint != pruned.index_fingerprint


def test_a_title_or_metadata_key_the_corpus_dropped_leaves_the_index_too(
    embedded_client: Any, embedder: CachedEmbedder
) -> None:
    """Chroma's upsert keeps the keys it is not sent: the old title stayed beside the new
    text, so an audit read it into the embedded text and called the same model another
    one (critical), and a dropped tenant still filtered."""
    documents = corpus()[:4]
    index_corpus(embedded_client, documents, embedder, collection_name="dropped")
    eiffel = documents[0]
    assert eiffel.id == "eiffel"
    assert eiffel.title
    assert eiffel.metadata
    untitled = replace(eiffel, title=None, metadata={})
    report = index_corpus(
        embedded_client, [untitled, *documents[1:]], embedder, collection_name="dropped"
    )
    assert (report.updated, report.unchanged) == (1, 3)
    stored = get_collection(embedded_client, "dropped").get(
        ids=["eiffel", documents[1].id], include=["metadatas"]
    )
    by_id = dict(zip(stored["ids"], stored["metadatas"], strict=True))
    assert set(by_id["eiffel"]) == {CONTENT_HASH_KEY, INDEXED_AT_KEY}
    assert by_id["eiffel"][CONTENT_HASH_KEY] == content_hash(untitled)
    assert by_id[documents[1].id]["tenant"] == documents[1].metadata["tenant"]


def test_changed_document_is_found_by_its_new_text(
    embedded_client: Any, embedder: CachedEmbedder, tmp_path: Path
) -> None:
    documents = corpus()[:10]
    index_corpus(embedded_client, documents, embedder, collection_name="small")
    renamed = [replace(documents[0], text="Kangaroos carry their young in a pouch.")]
    index_corpus(embedded_client, renamed + documents[1:], embedder, collection_name="small")

    retriever = ChromaRetriever(get_collection(embedded_client, "small"), embedder)
    [result] = retriever.retrieve(queries_for(["which animal has a pouch"]), 1)
    assert result.docs[0].doc_id == documents[0].id
    assert retriever.describe()["kind"] == "chroma"


def fake_other_model(fingerprint: ModelFingerprint) -> ModelFingerprint:
    """A fingerprint of a model whose canary embeddings point elsewhere."""
    vectors = np.random.default_rng(7).normal(size=(8, fingerprint.dimension))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return ModelFingerprint(
        name="other-model",
        dimension=fingerprint.dimension,
        canary_hash="0123456789abcdef",
        canary_vectors=vectors.astype(np.float16).tobytes(),
    )


def test_a_collection_built_with_another_model_is_refused(
    embedded_client: Any, embedder: CachedEmbedder
) -> None:
    index_corpus(embedded_client, corpus()[:5], embedder, collection_name="facts")
    collection = get_collection(embedded_client, "facts")
    other = fake_other_model(embedder.fingerprint)
    collection.modify(metadata={**collection.metadata, **other.to_metadata()})

    with pytest.raises(RetrieverError, match="two embedding spaces") as refused:
        ChromaRetriever(get_collection(embedded_client, "facts"), embedder)
    assert "other-model" in str(refused.value)
    assert embedder.fingerprint.canary_hash in str(refused.value)

    tolerant = ChromaRetriever(
        get_collection(embedded_client, "facts"), embedder, allow_model_mismatch=True
    )
    # The run records the model its queries were embedded with, not the collection's: a
    # query model that changed between runs shows (explain's query_model_changed).
    assert tolerant.model_fingerprint() == embedder.fingerprint
    assert tolerant.retrieve(queries_for(["Eiffel Tower"]), 1)[0].ok

    with pytest.raises(EmbeddingError, match="other-model"):
        index_corpus(embedded_client, corpus()[:5], embedder, collection_name="facts")

    rebuilt = index_corpus(
        embedded_client, corpus()[:5], embedder, collection_name="facts", rebuild=True
    )
    assert rebuilt.added == 5
    restored = ChromaRetriever(get_collection(embedded_client, "facts"), embedder)
    assert restored.model_fingerprint() == embedder.fingerprint


def test_collections_evalkit_did_not_build_are_guarded(
    embedded_client: Any, embedder: CachedEmbedder
) -> None:
    foreign = embedded_client.create_collection(name="foreign", embedding_function=None)
    foreign.add(ids=["a"], embeddings=[[1.0, 0.0, 0.0]], documents=["three dimensions"])

    with pytest.raises(RetrieverError, match="no evalkit model fingerprint"):
        index_corpus(embedded_client, corpus()[:3], embedder, collection_name="foreign")
    with pytest.raises(RetrieverError, match="3-dimensional"):
        ChromaRetriever(get_collection(embedded_client, "foreign"), embedder)

    empty = embedded_client.create_collection(name="empty-one", embedding_function=None)
    assert empty.count() == 0
    report = index_corpus(embedded_client, corpus()[:3], embedder, collection_name="empty-one")
    assert report.added == 3


def test_a_collection_another_model_of_the_same_dimension_built_is_refused(
    chroma_server: ChromaServer, embedder: CachedEmbedder
) -> None:
    # A collection an application built (no evalkit fingerprint) with another 384-dimension
    # model: a rotation of MiniLM's space is as unaligned with it as another model's is.
    docs = corpus()[:12]
    vectors = embedder.embed([doc.text for doc in docs]).astype(np.float64)
    rotation, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(384, 384)))
    client = open_chroma_client(url=chroma_server.url)
    try:
        for name, stored in (("app-other-model", vectors @ rotation), ("app-same-model", vectors)):
            with contextlib.suppress(Exception):
                client.delete_collection(name)
            collection = client.create_collection(
                name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
            )
            collection.add(
                ids=[doc.id for doc in docs],
                embeddings=stored.tolist(),
                documents=[doc.text for doc in docs],
            )
    finally:
        close_client(client)

    with pytest.raises(RetrieverError, match=r"app-other-model.*median cosine") as refused:
        ChromaRetriever.server(chroma_server.url, "app-other-model", embedder)
    assert "--allow-model-mismatch" in str(refused.value)

    with ChromaRetriever.server(
        chroma_server.url, "app-other-model", embedder, allow_model_mismatch=True
    ) as tolerant:
        assert tolerant.retrieve(queries_for(["How tall is the Eiffel Tower?"]), 3)[0].ok
        measured = tolerant.describe()["model_check"]
    assert measured["result"]["sampled"] == 12
    assert measured["result"]["median_cosine"] < 0.5

    with ChromaRetriever.server(chroma_server.url, "app-same-model", embedder) as same:
        top = same.retrieve(queries_for(["How tall is the Eiffel Tower?"]), 1)[0]
        checked = same.describe()["model_check"]
    assert top.docs[0].doc_id == "eiffel"
    assert checked["method"] == "dimension and 16 re-embedded stored texts"
    assert checked["result"]["median_cosine"] == pytest.approx(1.0, abs=1e-4)


def test_a_run_of_an_empty_collection_says_that_nothing_was_returned(
    chroma_server: ChromaServer, server_collection: str, embedder: CachedEmbedder, store: Store
) -> None:
    """Every query of an empty collection answers no document: the run was stored complete
    with every measure 0 and nothing to say why."""
    client = open_chroma_client(url=chroma_server.url)
    try:
        with contextlib.suppress(Exception):
            client.delete_collection("nothing-indexed")
        client.create_collection("nothing-indexed", embedding_function=None)
    finally:
        close_client(client)
    gold = Goldset.build(
        "facts",
        queries_for(["How tall is the Eiffel Tower?", "who wrote Hamlet"]),
        [Judgment("q0", "eiffel", 1), Judgment("q1", "shakespeare", 1)],
    )
    request = GoldsetRunRequest(k=5, measures=("ndcg@5",))
    with ChromaRetriever.server(chroma_server.url, "nothing-indexed", embedder) as empty:
        outcome = evaluate_goldset(store, gold, empty, request)
    assert outcome.run.status == "complete"
    assert outcome.nothing_judged_note == (
        "the retriever returned no document for any of the 2 queries it answered, so every "
        "measure is 0: check that the index holds documents and that no filter (a tenant, "
        "--where-key) excludes them all"
    )
    with ChromaRetriever.server(chroma_server.url, server_collection, embedder) as indexed:
        assert evaluate_goldset(store, gold, indexed, request).nothing_judged_note is None


def test_bad_documents_are_reported(embedded_client: Any, embedder: CachedEmbedder) -> None:
    twice = [*corpus()[:3], corpus()[1]]
    with pytest.raises(InputError, match="'photosynthesis' appears more than once"):
        index_corpus(embedded_client, twice, embedder, collection_name="dupes")
    reserved = [Document(id="x", text="text", metadata={"evalkit_title": "mine"})]
    with pytest.raises(InputError, match="reserved"):
        index_corpus(embedded_client, reserved, embedder, collection_name="reserved")
    with pytest.raises(InputError, match="no document"):
        index_corpus(embedded_client, [], embedder, collection_name="nothing")
    # A refused corpus leaves no empty collection behind for a run to search instead of
    # hearing that it does not exist; a collection that held documents before stays.
    names = {c.name for c in embedded_client.list_collections()}
    assert not names & {"dupes", "reserved", "nothing"}
    index_corpus(embedded_client, corpus()[:2], embedder, collection_name="kept")
    with pytest.raises(InputError, match="appears more than once"):
        index_corpus(embedded_client, twice, embedder, collection_name="kept")
    assert get_collection(embedded_client, "kept").count() == 2


def test_missing_collection_lists_the_existing_ones(
    embedded_client: Any, embedder: CachedEmbedder, tmp_path: Path
) -> None:
    index_corpus(embedded_client, corpus()[:2], embedder, collection_name="present")
    with pytest.raises(RetrieverError, match=r"'absent' does not exist \(existing collections: "):
        get_collection(embedded_client, "absent")
    with pytest.raises(RetrieverError, match="present"):
        ChromaRetriever.embedded(tmp_path / "chroma", "absent", embedder)


def token_proxy(upstream: str, token: str) -> type[BaseHTTPRequestHandler]:
    """A reverse proxy before ``upstream`` that wants ``Authorization: Bearer TOKEN`` and
    answers anything else as nginx does: 401 with an HTML page."""

    class Proxy(BaseHTTPRequestHandler):
        def forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.headers.get("Authorization") != f"Bearer {token}":
                page = b"<html><head><title>401 Authorization Required</title></head></html>"
                status, headers, content = 401, {"Content-Type": "text/html"}, page
            else:
                answer = httpx.request(
                    self.command,
                    upstream + self.path,
                    content=body,
                    headers={"Content-Type": self.headers.get("Content-Type", "")},
                )
                status, content = answer.status_code, answer.content
                headers = {"Content-Type": answer.headers.get("Content-Type", "")}
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def do_GET(self) -> None:
            self.forward()

        def do_POST(self) -> None:
            self.forward()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Proxy


def test_a_server_refusing_the_credentials_is_not_called_unreachable(
    chroma_server: ChromaServer,
    server_collection: str,
    embedder: CachedEmbedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A proxy's 401 was reported as "cannot reach the Chroma server ... Start one with
    `chroma run`", sending the user to start a server that was running."""
    monkeypatch.delenv("EVALKIT_CHROMA_TOKEN", raising=False)
    with serving(token_proxy(chroma_server.url, "s3cret")) as url:
        with pytest.raises(RetrieverError) as refused:
            ChromaRetriever.server(url, server_collection, embedder)
        message = str(refused.value)
        assert message.startswith(f"the Chroma server at {url} refused the request: ")
        assert "no token was sent: set EVALKIT_CHROMA_TOKEN" in message
        assert "chroma run" not in message

        monkeypatch.setenv("EVALKIT_CHROMA_TOKEN", "wrong")
        with pytest.raises(RetrieverError, match="the token in EVALKIT_CHROMA_TOKEN was sent"):
            ChromaRetriever.server(url, server_collection, embedder)

        monkeypatch.setenv("EVALKIT_CHROMA_TOKEN", "s3cret")
        with ChromaRetriever.server(url, server_collection, embedder) as retriever:
            (found,) = retriever.retrieve(queries_for(["who wrote Hamlet"]), 1)
    assert found.docs[0].doc_id == "shakespeare"


def test_unreachable_server_raises_up_front(embedder: CachedEmbedder) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RetrieverError, match="cannot reach the Chroma server") as raised:
        ChromaRetriever.server(url, "facts", embedder)
    assert "chroma run" in str(raised.value)


def test_default_embedding_function_is_never_built(
    embedded_client: Any, embedder: CachedEmbedder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from chromadb.api.types import DefaultEmbeddingFunction
    from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2

    touched: list[str] = []

    def refuse(name: str) -> Any:
        def refused(*args: Any, **kwargs: Any) -> Any:
            touched.append(name)
            raise AssertionError(f"{name} must not be used")

        return refused

    monkeypatch.setattr(ONNXMiniLM_L6_V2, "__init__", refuse("ONNXMiniLM_L6_V2"))
    monkeypatch.setattr(ONNXMiniLM_L6_V2, "__call__", refuse("ONNXMiniLM_L6_V2.__call__"))
    monkeypatch.setattr(DefaultEmbeddingFunction, "__call__", refuse("DefaultEmbeddingFunction"))
    download_dir = ONNXMiniLM_L6_V2.DOWNLOAD_PATH
    existed = download_dir.exists()

    index_corpus(embedded_client, corpus()[:4], embedder, collection_name="facts")
    with ChromaRetriever.embedded(tmp_path / "chroma", "facts", embedder) as retriever:
        assert all(result.ok for result in retriever.retrieve(queries_for(["tea", "x"]), 2))
    index_corpus(embedded_client, corpus()[:5], embedder, collection_name="facts")

    assert touched == []
    assert download_dir.exists() == existed


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8123", ("127.0.0.1", 8123, False)),
        ("http://chroma.internal", ("chroma.internal", 8000, False)),
        ("https://chroma.example.com/", ("chroma.example.com", 443, True)),
        ("https://chroma.example.com:9443", ("chroma.example.com", 9443, True)),
    ],
)
def test_parse_chroma_url(url: str, expected: tuple[str, int, bool]) -> None:
    assert parse_chroma_url(url) == expected


@pytest.mark.parametrize(
    "url",
    ["127.0.0.1:8000", "ftp://host", "http://host/api", "http://user:pw@host", "http://h:99999"],
)
def test_parse_chroma_url_rejects(url: str) -> None:
    with pytest.raises(ConfigError):
        parse_chroma_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/?token=chLEAK-4Rt8",
        "http://127.0.0.1:99999/?token=chLEAK-4Rt8",
        "chroma://127.0.0.1:8000/?token=chLEAK-4Rt8",
    ],
)
def test_a_refused_chroma_url_is_shown_with_its_token_masked(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_chroma_url(url)
    assert "token=***" in str(raised.value)
    assert "chLEAK" not in str(raised.value)


def test_open_chroma_client_wants_one_location(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        open_chroma_client()
    with pytest.raises(ConfigError, match="exactly one"):
        open_chroma_client(path=tmp_path, url="http://127.0.0.1:8000")


_OPENED_FROM_THREADS = """
import sys, threading
from evalkit.retrievers.chroma_client import close_client, open_chroma_client

outcomes = []

def open_and_count(store):
    try:
        client = open_chroma_client(path=store)
        outcomes.append(client.get_collection("docs").count())
        close_client(client)
    except Exception as error:
        outcomes.append(f"{type(error).__name__}: {error}")

threads = [threading.Thread(target=open_and_count, args=(sys.argv[1],)) for _ in range(3)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(outcomes)
"""


def test_an_embedded_store_opened_from_several_threads_at_once_opens_in_each(
    tmp_path: Path,
) -> None:
    """Chroma's first open of a store in a process is not thread-safe: two threads of a
    notebook or a service opening one store at once both failed."""
    import subprocess
    import sys

    client = open_chroma_client(path=tmp_path / "chroma")
    collection = client.get_or_create_collection("docs", embedding_function=None)
    collection.upsert(ids=["a", "b"], embeddings=[[0.1, 0.2], [0.3, 0.1]])
    close_client(client)
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", _OPENED_FROM_THREADS, str(tmp_path / "chroma")],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "[2, 2, 2]", done.stdout + done.stderr
