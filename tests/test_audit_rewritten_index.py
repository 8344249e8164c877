"""Audits of a real Chroma collection written to after `evalkit index`: the demo corpus with
its judged-relevant documents' text and vectors replaced by other documents' (metadata left
as it was, as `collection.update(documents=, embeddings=)` leaves it), and with documents
added again under new ids. The first is changed content, not another model; the second are
duplicates of source documents, not documents deleted at the source."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from demo_index import DEMO_DIR, cached_minilm, demo_documents
from test_index_changed_out_of_band import judged_relevant

from evalkit.audit import AuditConfig, AuditReport, Finding, run_audit
from evalkit.retrievers.chroma_client import close_client, open_chroma_client
from evalkit.retrievers.indexing import index_corpus

pytestmark = pytest.mark.slow

SOURCE = DEMO_DIR / "corpus.jsonl"
N_SWAPPED = 40


@pytest.fixture
def demo_collection(tmp_path: Path) -> Iterator[Any]:
    """The demo corpus indexed by evalkit into an embedded Chroma collection."""
    client = open_chroma_client(path=tmp_path / "chroma")
    index_corpus(client, demo_documents(), cached_minilm(), collection_name="demo")
    yield client.get_collection("demo", embedding_function=None)
    close_client(client)


def _by_kind(report: AuditReport) -> dict[str, Finding]:
    return {finding.kind: finding for finding in report.findings}


def swap_contents(collection: Any, doc_ids: list[str], donors: list[str]) -> None:
    """Give each of ``doc_ids`` the stored text and vector of the donor at its place."""
    got = collection.get(ids=donors, include=["documents", "embeddings"])
    texts = dict(zip(got["ids"], got["documents"], strict=True))
    vectors = dict(zip(got["ids"], got["embeddings"], strict=True))
    collection.update(
        ids=doc_ids,
        documents=[texts[donor] for donor in donors],
        embeddings=[vectors[donor] for donor in donors],
    )


def test_a_content_swap_is_changed_content_not_another_model(demo_collection: Any) -> None:
    swapped = judged_relevant(N_SWAPPED)
    relevant = set(judged_relevant(len(demo_documents())))
    donors = [doc.id for doc in demo_documents() if doc.id not in relevant][:N_SWAPPED]
    assert len(swapped) == len(donors) == N_SWAPPED
    swap_contents(demo_collection, swapped, donors)

    report = run_audit(
        demo_collection,
        embedder=cached_minilm(),
        source=SOURCE,
        config=AuditConfig(checks=("staleness", "model"), model_sample_size=None),
    )

    found = _by_kind(report)
    assert "vectors_from_another_model" not in found, found["vectors_from_another_model"].message
    assert "changed_at_source" not in found
    assert "not_in_source" not in found
    assert set(found["changed_in_index"].doc_ids) == set(swapped)
    assert found["changed_in_index"].message.startswith(
        f"{N_SWAPPED} indexed documents store another text than their source, which has not "
        "changed since they were indexed"
    )
    # The stored vectors are not the embeddings of the stored texts (each was embedded with
    # its donor's title): the model check says it is the content, checked against the source.
    replaced = found["content_replaced"]
    assert set(replaced.doc_ids) <= set(swapped)
    assert len(replaced.doc_ids) >= N_SWAPPED // 2
    assert replaced.details["compared_with"] == "source"
    assert "not embedded by another model. The staleness check lists every" in replaced.message
    assert report.measurements["model_mismatched_documents"] == 0
    assert report.measurements["model_sampled_documents"] == len(demo_documents())
    assert not report.fails("critical")

    # Without the source, the content hash recorded at indexing tells the same.
    alone = run_audit(
        demo_collection,
        embedder=cached_minilm(),
        config=AuditConfig(checks=("model",), model_sample_size=None),
    )
    found = _by_kind(alone)
    assert set(found) == {"content_replaced"}
    assert found["content_replaced"].doc_ids == replaced.doc_ids
    assert found["content_replaced"].details["compared_with"] == "recorded_hash"
    assert "Audit with --source to list every such document" in found["content_replaced"].message


def test_with_a_goldset_replaced_relevant_documents_are_found_beyond_a_small_sample(
    demo_collection: Any,
) -> None:
    """The random sample holds few of the swapped relevant documents; the goldset's
    judged-relevant ones are re-embedded too, so every swapped one is named, while the
    sample alone still sizes the model check's estimate."""
    from demo_index import demo_goldset

    swapped = judged_relevant(N_SWAPPED)
    relevant = set(judged_relevant(len(demo_documents())))
    donors = [doc.id for doc in demo_documents() if doc.id not in relevant][:N_SWAPPED]
    swap_contents(demo_collection, swapped, donors)
    config = AuditConfig(checks=("model",), model_sample_size=10, seed=1)

    alone = run_audit(demo_collection, embedder=cached_minilm(), config=config)
    sampled = _by_kind(alone).get("content_replaced")
    assert sampled is None or len(sampled.doc_ids) < N_SWAPPED // 2
    assert alone.measurements["model_judged_documents"] == 0

    report = run_audit(
        demo_collection, embedder=cached_minilm(), config=config, goldset=demo_goldset()
    )
    replaced = _by_kind(report)["content_replaced"]
    # A swap whose donor embeds close to the document's own text can pass the cosine check.
    assert set(replaced.doc_ids) <= set(swapped)
    assert len(replaced.doc_ids) >= N_SWAPPED // 2
    assert report.measurements["model_sampled_documents"] == 10
    # every relevant document outside the sample of 10
    assert len(relevant) - 10 <= report.measurements["model_judged_documents"] <= len(relevant)


def test_documents_added_again_under_new_ids_are_duplicates_of_the_source(
    demo_collection: Any,
) -> None:
    copied = [doc.id for doc in demo_documents()[:25]]
    got = demo_collection.get(ids=copied, include=["documents", "embeddings", "metadatas"])
    demo_collection.add(
        ids=[f"dup-{doc_id}" for doc_id in got["ids"]],
        documents=got["documents"],
        embeddings=got["embeddings"],
        metadatas=got["metadatas"],
    )
    stray = "A note that no source holds."
    demo_collection.add(ids=["stray-1"], documents=[stray], embeddings=[got["embeddings"][0]])

    report = run_audit(
        demo_collection,
        embedder=cached_minilm(),
        source=SOURCE,
        config=AuditConfig(checks=("duplicates", "staleness")),
    )

    found = _by_kind(report)
    copies = found["duplicates_of_source"]
    assert set(copies.doc_ids) == {f"dup-{doc_id}" for doc_id in copied}
    assert copies.clusters == tuple((doc_id, f"dup-{doc_id}") for doc_id in sorted(copied))
    assert copies.details["copies"]["dup-" + copied[0]] == copied[0]
    assert "ingested again under new ids without deduplication" in copies.message
    assert found["not_in_source"].doc_ids == ("stray-1",)
    assert found["not_in_source"].message.startswith(
        "1 indexed documents are not in the source (deleted from it, or never in it)"
    )
    assert report.measurements["duplicates_of_source"] == 25
    assert "changed_in_index" not in found
    assert found["exact_duplicates"].count == 50
