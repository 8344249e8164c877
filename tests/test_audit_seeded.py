"""Audits of real Chroma collections seeded with known faults: each found, nothing else.

The collection is built with the real embedding model and ``index_corpus``, then damaged the
way production indexes are: an exact duplicate under another id, a lightly edited copy, a
document changed at the source after indexing, one deleted at the source, one never
indexed, a slice whose vectors come from another model (the real vectors under a fixed
random rotation), and judgments of documents that are not in the index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chroma_server import ChromaServer, chroma_server_fixture  # noqa: F401

from evalkit.audit import AuditConfig, AuditReport, CheckOutcome, Finding, Severity, run_audit
from evalkit.audit.context import AuditContext
from evalkit.audit.duplicates import check_duplicates
from evalkit.audit.runner import CHECKS
from evalkit.config import load_settings, parse_settings
from evalkit.embedding import Embedder, ModelFingerprint, load_embedder
from evalkit.goldset.model import Goldset, goldset_version
from evalkit.records import Document, Judgment, Query
from evalkit.retrievers.chroma_client import get_collection, open_chroma_client
from evalkit.retrievers.indexing import index_corpus
from evalkit.scheduler import JobRunner, service_config
from evalkit.store import Store
from evalkit.store.access import StoreAccess
from evalkit.store.audit import (
    latest_measurements,
    list_audit_findings,
    list_audits,
)
from evalkit.store.goldsets import load_stored_goldset, save_goldset

pytestmark = pytest.mark.slow

FACTS = {
    "eiffel": "The Eiffel Tower in Paris is 330 metres tall and was completed in 1889.",
    "photosynthesis": "Photosynthesis lets plants turn sunlight, water and CO2 into sugar.",
    "python": "Python is a programming language created by Guido van Rossum.",
    "everest": "Mount Everest is the highest mountain above sea level, at 8849 metres.",
    "coffee": "Espresso is brewed by forcing hot water through finely ground coffee beans.",
    "volcano": "Volcanoes erupt when molten magma rises through the Earth's crust.",
    "bees": "Honey bees communicate the location of flowers with a waggle dance.",
    "chess": "In chess, the king can castle with a rook if neither piece has moved.",
    "tides": "Ocean tides are caused mainly by the gravitational pull of the Moon.",
    "bread": "Sourdough bread rises thanks to wild yeast and lactic acid bacteria.",
    "jupiter": "Jupiter is the largest planet in the Solar System, a gas giant.",
    "dna": "DNA is a double helix that carries the genetic instructions of organisms.",
    "marathon": "A marathon race is 42.195 kilometres long.",
    "penguin": "Emperor penguins breed during the Antarctic winter on sea ice.",
    "violin": "A violin has four strings tuned in perfect fifths and is played with a bow.",
    "bitcoin": "Bitcoin is a cryptocurrency secured by a proof-of-work blockchain.",
    "sahara": "The Sahara is the largest hot desert in the world, in North Africa.",
    "vaccine": "Vaccines train the immune system to recognise a pathogen.",
    "rainbow": "A rainbow appears when sunlight is refracted inside raindrops.",
    "pyramid": "The Great Pyramid of Giza was built as a tomb for the pharaoh Khufu.",
    "sushi": "Sushi combines vinegared rice with raw fish, seaweed or vegetables.",
    "password": "To reset your account password, click 'Forgot password' on the login page.",
    "refund": "Refunds for cancelled orders are issued to the original payment method.",
    "moon": "Neil Armstrong was the first person to walk on the Moon, in 1969.",
    "insulin": "Insulin is a hormone that lets cells absorb glucose from the blood.",
    "glacier": "Glaciers are slow rivers of ice that carve valleys as they move.",
    "cheetah": "The cheetah is the fastest land animal, reaching 110 km/h.",
    "hurricane": "Hurricanes form over warm ocean water and rotate around a calm eye.",
}

EXACT_COPY = "eiffel-copy"
NEAR_COPY = "volcano-edit"
NEAR_TEXT = "Volcanoes erupt when molten magma rises through the crust of the Earth."
CHANGED = "coffee"
CHANGED_TEXT = "Filter coffee is brewed by pouring hot water over ground beans in a paper filter."
DELETED = "bitcoin"
NEW = "compost"
NEW_TEXT = "Compost forms when microbes break down kitchen and garden waste."
OTHER_MODEL = ("sahara", "vaccine", "rainbow")
ORPHANS = ("ghost-1", "ghost-2")

QUERIES = {
    "q-height": ("How tall is the Eiffel Tower?", ("eiffel", "everest", "pyramid")),
    "q-password": ("how do I reset my password", ("password", "refund", "python")),
    "q-mountain": ("What is the highest mountain in the world?", ("everest", "glacier")),
    "q-animal": ("fastest animal on land", ("cheetah", "penguin", "bees", ORPHANS[0])),
    "q-space": ("who walked on the moon first", ("moon", "jupiter", "tides", ORPHANS[1])),
}

EXPECTED = {
    "exact_duplicates": {"eiffel", EXACT_COPY},
    "near_duplicates": {"volcano", NEAR_COPY},
    "changed_at_source": {CHANGED},
    "not_in_source": {DELETED},
    "missing_from_index": {NEW},
    "vectors_from_another_model": set(OTHER_MODEL),
    "orphaned_judgments": set(ORPHANS),
}


@dataclass(frozen=True)
class Seeded:
    """A damaged collection, the source corpus file, and the goldset to audit it with."""

    collection: str
    source: Path
    goldset: Goldset


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder()


def _documents(facts: dict[str, str]) -> list[Document]:
    return [
        Document(id=doc_id, text=text, title="Landmark" if doc_id == "eiffel" else "")
        for doc_id, text in facts.items()
    ]


def _write_jsonl(path: Path, documents: list[Document]) -> None:
    lines = [
        json.dumps({"id": d.id, "title": d.title, "text": d.text, "metadata": d.metadata})
        for d in documents
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _rotation(dimension: int, seed: int = 7) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((dimension, dimension)))
    return q * np.sign(np.diag(r))


def seed_faults(client: Any, embedder: Embedder, name: str, folder: Path) -> Seeded:
    """Index a corpus into ``name``, damage it, and write the source as it is now."""
    originals = _documents(FACTS)
    eiffel = next(d for d in originals if d.id == "eiffel")
    indexed = [
        *originals,
        Document(id=EXACT_COPY, text=eiffel.text, title=eiffel.title),
        Document(id=NEAR_COPY, text=NEAR_TEXT),
    ]
    index_corpus(client, indexed, embedder, collection_name=name)
    collection = get_collection(client, name)
    stored = collection.get(ids=list(OTHER_MODEL), include=["embeddings", "metadatas", "documents"])
    rotated = np.asarray(stored["embeddings"], dtype=np.float32) @ _rotation(embedder.dimension).T
    collection.upsert(
        ids=stored["ids"],
        embeddings=rotated.astype(np.float32),
        metadatas=stored["metadatas"],
        documents=stored["documents"],
    )

    source = [
        Document(id=d.id, text=CHANGED_TEXT, title=d.title) if d.id == CHANGED else d
        for d in indexed
        if d.id != DELETED
    ]
    source.append(Document(id=NEW, text=NEW_TEXT))
    source_path = folder / "corpus.jsonl"
    _write_jsonl(source_path, source)

    queries = tuple(Query(id=qid, text=text) for qid, (text, _) in QUERIES.items())
    judgments = tuple(
        Judgment(query_id=qid, doc_id=doc_id, relevance=1 if rank == 0 else 0)
        for qid, (_, judged) in QUERIES.items()
        for rank, doc_id in enumerate(judged)
    )
    goldset = Goldset(
        name="seeded",
        queries=queries,
        judgments=judgments,
        version=goldset_version(queries, judgments),
        source="test",
    )
    return Seeded(collection=name, source=source_path, goldset=goldset)


@pytest.fixture(scope="module")
def chroma_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audit-chroma") / "chroma"


@pytest.fixture(scope="module")
def seeded(
    chroma_path: Path, embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> Seeded:
    client = open_chroma_client(path=chroma_path)
    return seed_faults(client, embedder, "seeded", tmp_path_factory.mktemp("audit-source"))


def _by_kind(report: AuditReport) -> dict[str, Finding]:
    kinds = [finding.kind for finding in report.findings]
    assert len(kinds) == len(set(kinds)), f"a kind is reported twice: {kinds}"
    return {finding.kind: finding for finding in report.findings}


def assert_exactly_the_seeded_faults(report: AuditReport) -> None:
    found = _by_kind(report)
    assert set(found) == set(EXPECTED), {kind: f.message for kind, f in found.items()}
    for kind, expected_ids in EXPECTED.items():
        assert set(found[kind].doc_ids) == expected_ids, kind
        assert found[kind].count == len(expected_ids), kind
    assert found["exact_duplicates"].clusters == (("eiffel", EXACT_COPY),)
    assert found["near_duplicates"].clusters == (("volcano", NEAR_COPY),)
    assert found["vectors_from_another_model"].severity is Severity.critical
    # Indexing the corpus again skips documents whose content is unchanged: only a rebuild
    # (or deleting them first) replaces their vectors.
    n = len(FACTS) + 2
    assert found["vectors_from_another_model"].message == (
        f"3 of {n} re-embedded documents do not match their stored vectors (cosine < 0.99); "
        f"about 3 of {n} documents were embedded by another model. Indexing the corpus "
        "again leaves them as they are, since their content has not changed: rebuild the "
        "collection with the query model (`evalkit index --corpus CORPUS --collection "
        f"{report.collection} --rebuild`), or delete these documents from it (Chroma's "
        "`collection.delete(ids=...)`) and index again."
    )
    assert set(found["orphaned_judgments"].query_ids) == {"q-animal", "q-space"}


def test_every_seeded_fault_is_found_and_nothing_else(
    seeded: Seeded, embedder: Embedder, chroma_path: Path
) -> None:
    collection = get_collection(open_chroma_client(path=chroma_path), seeded.collection)
    report = run_audit(collection, embedder=embedder, source=seeded.source, goldset=seeded.goldset)

    assert_exactly_the_seeded_faults(report)
    assert all(check.ran for check in report.checks), [c.note for c in report.checks]
    # A goldset without span judgments: the check ran and found none to check.
    spans = report.checks[-1]
    assert (spans.name, dict(spans.measurements)) == ("spans", {"span_judgments": 0.0})
    assert spans.note == "the goldset has no span-anchored judgments to check"
    measured = report.measurements
    assert measured["documents"] == len(FACTS) + 2
    assert measured["source_documents"] == len(FACTS) + 2
    assert measured["model_sampled_documents"] == len(FACTS) + 2
    assert measured["model_fingerprint_match"] == 1.0
    assert measured["recall@10"] == pytest.approx(1.0)
    # Each query judges 2-4 documents that are indexed, so judged@10 is at least 0.2.
    assert measured["judged@10"] >= 0.2
    assert measured["orphaned_relevant_documents"] == 0
    assert report.fails("critical")
    assert report.max_severity is Severity.critical


def test_unchanged_sources_and_a_small_sample_report_only_what_they_can_see(
    seeded: Seeded, embedder: Embedder, chroma_path: Path
) -> None:
    collection = get_collection(open_chroma_client(path=chroma_path), seeded.collection)
    config = AuditConfig(checks=("model", "ann_recall"), model_sample_size=5, seed=3)
    report = run_audit(collection, embedder=embedder, config=config)

    assert [check.name for check in report.checks] == ["model", "ann_recall"]
    assert report.measurements["model_sampled_documents"] == 5
    flagged = {doc_id for f in report.findings for doc_id in f.doc_ids}
    assert flagged <= set(OTHER_MODEL)
    # Without golden queries, the ANN check uses stored vectors as queries.
    assert "stored vectors" in (report.checks[1].note or "")


def test_a_collection_recording_another_model_is_critical(
    embedder: Embedder, tmp_path: Path
) -> None:
    client = open_chroma_client(path=tmp_path / "chroma")
    documents = _documents(dict(list(FACTS.items())[:8]))
    index_corpus(client, documents, embedder, collection_name="other-model")
    collection = get_collection(client, "other-model")
    foreign = ModelFingerprint(name="another-model", dimension=384, canary_hash="0123456789abcdef")
    collection.modify(metadata={**(collection.metadata or {}), **foreign.to_metadata()})
    report = run_audit(collection, embedder=embedder)

    found = _by_kind(report)
    assert set(found) == {"model_fingerprint_mismatch"}
    assert found["model_fingerprint_mismatch"].severity is Severity.critical
    assert found["model_fingerprint_mismatch"].details["stored"]["name"] == "another-model"


class _SmallModel:
    """A query model making vectors of another dimension than the collection's."""

    name = "small-model"
    dimension = 8
    fingerprint = ModelFingerprint(name="small-model", dimension=8, canary_hash="fedcba9876543210")

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.full((len(texts), self.dimension), 8**-0.5, dtype=np.float32)


def test_a_query_model_of_another_dimension_is_told_to_rebuild(
    seeded: Seeded, chroma_path: Path
) -> None:
    collection = get_collection(open_chroma_client(path=chroma_path), seeded.collection)
    report = run_audit(collection, embedder=_SmallModel(), config=AuditConfig(checks=("model",)))

    found = _by_kind(report)
    assert found["vectors_from_another_model"].message == (
        "every stored vector was made by another model: the query model makes 8-dimensional "
        "vectors but the collection holds 384-dimensional ones; query it with the model it "
        "was built with, or rebuild it with the query model (`evalkit index --corpus CORPUS "
        f"--collection {seeded.collection} --rebuild`)"
    )


def _built_by_another_model(client: Any, embedder: Embedder, name: str) -> Any:
    """FACTS indexed by ``evalkit index``, then every vector replaced by another model's."""
    index_corpus(client, _documents(FACTS), embedder, collection_name=name)
    collection = get_collection(client, name)
    stored = collection.get(include=["embeddings", "metadatas", "documents"])
    rotated = np.asarray(stored["embeddings"], dtype=np.float32) @ _rotation(embedder.dimension).T
    collection.upsert(
        ids=stored["ids"],
        embeddings=rotated.astype(np.float32),
        metadatas=stored["metadatas"],
        documents=stored["documents"],
    )
    return collection


def test_golden_queries_do_not_probe_an_index_built_by_another_model(
    seeded: Seeded, embedder: Embedder, tmp_path: Path
) -> None:
    """Queries embedded by the query model are in another space than such an index's
    vectors: low recall or coverage would only restate the mismatch, with the wrong fix."""
    client = open_chroma_client(path=tmp_path / "chroma")
    collection = _built_by_another_model(client, embedder, "rotated")
    config = AuditConfig(checks=("model", "ann_recall", "coverage"))
    report = run_audit(collection, embedder=embedder, goldset=seeded.goldset, config=config)

    assert {finding.kind for finding in report.findings} == {"vectors_from_another_model"}
    _, ann, coverage = report.checks
    n = len(FACTS)
    reason = (
        f"{n} of {n} re-embedded documents do not match their stored vectors "
        "(vectors_from_another_model)"
    )
    assert ann.ran
    assert ann.note == f"{n} stored vectors used as queries, not the golden queries: {reason}"
    assert not coverage.ran
    assert coverage.note == (
        f"not measured: {reason}; what the index returns for queries embedded by another "
        "model than its documents' says nothing of the judgments"
    )
    assert "judged@10" not in report.measurements

    foreign = ModelFingerprint(name="another-model", dimension=384, canary_hash="0123456789abcdef")
    collection.modify(metadata={**(collection.metadata or {}), **foreign.to_metadata()})
    config = AuditConfig(checks=("ann_recall", "coverage"))
    recorded = run_audit(collection, embedder=embedder, goldset=seeded.goldset, config=config)

    assert recorded.findings == ()
    reason = (
        f"the collection was built with another-model, not the query model {embedder.name} "
        "(model_fingerprint_mismatch)"
    )
    ann, coverage = recorded.checks
    assert ann.note == f"{n} stored vectors used as queries, not the golden queries: {reason}"
    assert not coverage.ran
    assert (coverage.note or "").startswith(f"not measured: {reason}; ")


def test_a_collection_written_by_another_tool(embedder: Embedder, tmp_path: Path) -> None:
    """No fingerprint, no content hashes, vectors of another model, a duplicate under a new id."""
    client = open_chroma_client(path=tmp_path / "chroma")
    documents = [
        Document(id=d.id, text=d.text, title=d.title, metadata={"origin": "other-tool"})
        for d in _documents(dict(list(FACTS.items())[:10]))
    ]
    documents.append(
        Document(id="chess-again", text=FACTS["chess"], metadata={"origin": "other-tool"})
    )
    foreign = embedder.embed([d.content for d in documents]) @ _rotation(embedder.dimension).T
    collection = client.create_collection(
        "no-fingerprint", embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
    )
    collection.add(
        ids=[d.id for d in documents],
        embeddings=foreign.astype(np.float32),
        documents=[d.text for d in documents],
        metadatas=[
            {**d.metadata, **({"evalkit_title": d.title} if d.title else {})} for d in documents
        ],
    )
    source = tmp_path / "corpus.jsonl"
    _write_jsonl(source, documents)
    report = run_audit(collection, embedder=embedder, source=source)

    found = _by_kind(report)
    assert set(found) == {
        "model_fingerprint_missing",
        "vectors_from_another_model",
        "exact_duplicates",
    }
    assert found["model_fingerprint_missing"].severity is Severity.info
    assert set(found["vectors_from_another_model"].doc_ids) == {d.id for d in documents}
    assert found["vectors_from_another_model"].details["mismatched_share"] == 1.0
    # Hashes derived from the stored text: the copy is an exact duplicate, nothing is stale.
    assert found["exact_duplicates"].clusters == (("chess", "chess-again"),)
    assert report.measurements["changed_at_source"] == 0


def test_a_clean_collection_reports_nothing(embedder: Embedder, tmp_path: Path) -> None:
    documents = _documents(FACTS)
    source = tmp_path / "corpus.jsonl"
    _write_jsonl(source, documents)
    client = open_chroma_client(path=tmp_path / "chroma")
    index_corpus(client, documents, embedder, collection_name="clean")
    report = run_audit(get_collection(client, "clean"), embedder=embedder, source=source)

    assert report.findings == ()
    assert not report.fails("warning")
    assert report.max_severity is None


def test_audit_through_a_chroma_server(
    chroma_server: ChromaServer, embedder: Embedder, tmp_path: Path
) -> None:
    client = open_chroma_client(url=chroma_server.url)
    seeded = seed_faults(client, embedder, "seeded-server", tmp_path)
    report = run_audit(
        get_collection(client, seeded.collection),
        embedder=embedder,
        source=seeded.source,
        goldset=seeded.goldset,
        config=AuditConfig(page_size=7),
        location=chroma_server.url,
    )

    assert_exactly_the_seeded_faults(report)
    assert report.n_documents == len(FACTS) + 2


def _store_with_audit_tables(path: Path) -> Store:
    """A store whose migrations have created the audit tables."""
    return Store.open(path)


def _home_with_the_goldset(
    seeded: Seeded, chroma_path: Path, evalkit_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The store of ``evalkit_home``, holding the seeded goldset, with the CLI pointed at
    ``chroma_path``."""
    monkeypatch.setenv("EVALKIT_CHROMA_PATH", str(chroma_path))
    store_path = evalkit_home / "evalkit.duckdb"
    with _store_with_audit_tables(store_path) as store:
        save_goldset(store, seeded.goldset)
    return store_path


def test_cli_reports_stores_and_gates_on_severity(
    seeded: Seeded,
    chroma_path: Path,
    evalkit_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from evalkit.cli import invoke

    store_path = _home_with_the_goldset(seeded, chroma_path, evalkit_home, monkeypatch)
    capsys.readouterr()
    arguments = ["audit", "--collection", seeded.collection, "--format", "json"]

    code = invoke([*arguments, "--source", str(seeded.source), "--goldset", "seeded"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert data["failed"] is True
    assert data["max_severity"] == "critical"
    kinds = {finding["kind"]: set(finding["doc_ids"]) for finding in data["findings"]}
    assert kinds == EXPECTED

    assert invoke([*arguments, "--check", "duplicates"]) == 0
    duplicates_only = json.loads(capsys.readouterr().out)
    assert {f["kind"] for f in duplicates_only["findings"]} == {
        "exact_duplicates",
        "near_duplicates",
    }
    assert invoke([*arguments, "--check", "duplicates", "--fail-on", "warning"]) == 1
    capsys.readouterr()
    assert invoke([*arguments, "--check", "duplicates", "--no-save"]) == 0
    assert json.loads(capsys.readouterr().out)["audit_id"] is None

    with Store.open(store_path, read_only=True) as store:
        audits = list_audits(store, collection=seeded.collection)
        critical = list_audit_findings(store, min_severity="critical")
        latest = list_audit_findings(store, collection=seeded.collection, latest_only=True)
        previous = latest_measurements(
            store, collection=seeded.collection, goldset_version=seeded.goldset.version
        )
    assert len(audits) == 3
    assert audits[-1].audit_id == data["audit_id"]
    assert audits[-1].max_severity == "critical"
    assert [f.kind for f in critical] == ["vectors_from_another_model"]
    assert set(critical[0].doc_ids) == set(OTHER_MODEL)
    assert {f.kind for f in latest} == {"exact_duplicates", "near_duplicates"}
    assert previous["judged@10"] == pytest.approx(data["checks"][4]["measurements"]["judged@10"])


def _a_writer_during_the_duplicates_check(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Goldset, list[bool]]:
    """The duplicates check made to import a goldset into the store first, waiting at most
    a second for it: the goldset, and whether each import saved it."""
    imported = Goldset.build(
        "meanwhile", [Query(id="q", text="tall tower")], [Judgment("q", "eiffel", 1)], source="t"
    )
    saved: list[bool] = []

    def duplicates_with_a_writer_meanwhile(context: AuditContext) -> CheckOutcome:
        access = StoreAccess(store_path, wait=1, program="test")
        with access.writer("goldset import") as writing:
            saved.append(save_goldset(writing, imported))
        return check_duplicates(context)

    monkeypatch.setitem(CHECKS, "duplicates", duplicates_with_a_writer_meanwhile)
    return imported, saved


def test_cli_lets_other_writers_have_the_store_while_the_checks_run(
    seeded: Seeded,
    chroma_path: Path,
    evalkit_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from evalkit.cli import invoke

    store_path = _home_with_the_goldset(seeded, chroma_path, evalkit_home, monkeypatch)
    imported, saved = _a_writer_during_the_duplicates_check(store_path, monkeypatch)
    capsys.readouterr()
    arguments = ["audit", "--collection", seeded.collection, "--goldset", "seeded"]

    code = invoke([*arguments, "--check", "duplicates", "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert saved == [True]
    data = json.loads(captured.out)
    with Store.open(store_path, read_only=True) as store:
        [audit] = list_audits(store, collection=seeded.collection)
        assert load_stored_goldset(store, "meanwhile").version == imported.version
    assert audit.audit_id == data["audit_id"]
    assert audit.goldset_name == "seeded"


def test_the_audit_job_lets_other_writers_have_the_store_while_the_checks_run(
    seeded: Seeded,
    chroma_path: Path,
    evalkit_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The `audit` job of `evalkit serve` held the store through every check (re-embedding,
    ANN queries, the near-duplicate search), keeping other writers, readers and the
    service's alert outbox out for as long; it now holds it as `evalkit audit` does, to read
    what it compares with and to store its findings."""
    store_path = _home_with_the_goldset(seeded, chroma_path, evalkit_home, monkeypatch)
    imported, saved = _a_writer_during_the_duplicates_check(store_path, monkeypatch)
    settings = load_settings()
    job = {
        "name": "health",
        "kind": "audit",
        "collection": seeded.collection,
        "goldset": "seeded",
        "checks": ["duplicates"],
    }
    config = service_config(parse_settings({"jobs": [job]}, Path("evalkit.toml")))
    access = StoreAccess(store_path, wait=10, program="test")
    ran = JobRunner(config, settings=settings, session=access).run("health")
    assert ran is not None
    assert (ran.status, ran.error) == ("succeeded", None)
    assert saved == [True]
    with Store.open(store_path, read_only=True) as store:
        [audit] = list_audits(store, collection=seeded.collection)
        assert load_stored_goldset(store, "meanwhile").version == imported.version
    assert ran.summary["audit_id"] == audit.audit_id


def test_cli_table_output_and_bad_options(
    seeded: Seeded,
    chroma_path: Path,
    evalkit_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from evalkit.cli import invoke

    monkeypatch.setenv("EVALKIT_CHROMA_PATH", str(chroma_path))
    arguments = ["audit", "--collection", seeded.collection, "--no-save"]

    assert invoke([*arguments, "--check", "duplicates"]) == 0
    printed = capsys.readouterr().out
    assert "exact_duplicates" in printed
    assert "eiffel-copy" in printed
    assert "pass (fail on critical" in printed

    assert invoke([*arguments, "--check", "nonsense"]) == 2
    assert "unknown audit checks" in capsys.readouterr().err
    # A check asked for by name that cannot run is refused, not passed unchecked.
    assert invoke(["audit", "--collection", "eiffel", "--check", "orphans"]) == 2
    assert "--check orphans needs --goldset" in capsys.readouterr().err
    assert invoke(["audit", "--collection", "eiffel", "--check", "staleness"]) == 2
    assert "--check staleness needs --source" in capsys.readouterr().err
    assert invoke(["audit", "--collection", "no-such-collection", "--no-save"]) == 2
    assert "does not exist" in capsys.readouterr().err
