"""A drill's scratch copy of a Chroma collection (``evalkit.drill.scratch``).

On embedded Chroma and on a real ``chroma run`` server: the copy holds the live collection's
vectors, texts, metadata and index settings; the live collection is the same before, during
and after; a copy is removed when its block ends however it ends, and one whose process was
killed with SIGKILL is removed by the next sweep.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chroma_server import ChromaServer, chroma_server_fixture  # noqa: F401
from test_retrievers_model_check import HashEmbedder

from evalkit.config import load_settings
from evalkit.config.tomlfile import read_toml
from evalkit.drill import scratch
from evalkit.drill.config import collections_named, pointed_at_copies
from evalkit.drill.incidents import ScratchOnlyError, inject
from evalkit.drill.scratch import (
    DRILL_PREFIX,
    HELD_SUFFIX,
    ScratchCopies,
    copy_collection,
    scratch_collection,
    sweep_scratch_collections,
)
from evalkit.errors import ConfigError, RetrieverError
from evalkit.records import Document
from evalkit.retrievers import index_corpus
from evalkit.retrievers.chroma_client import close_client, contents_fingerprint, open_chroma_client
from evalkit.scheduler import service_config

N_DOCUMENTS = 23


def _corpus() -> list[Document]:
    documents = [
        Document(f"doc-{n:02d}", f"text number {n}", metadata={"topic": f"t{n % 3}"})
        for n in range(N_DOCUMENTS)
    ]
    return documents


def _everything(collection: Any) -> dict[str, Any]:
    """All a collection holds, ordered by id: what a copy must reproduce."""
    got = collection.get(include=["embeddings", "documents", "metadatas"])
    order = np.argsort(got["ids"])
    return {
        "ids": [got["ids"][i] for i in order],
        "embeddings": np.asarray(got["embeddings"])[order],
        "documents": [got["documents"][i] for i in order],
        "metadatas": [got["metadatas"][i] for i in order],
    }


def _assert_same_contents(copy: dict[str, Any], live: dict[str, Any], *, exact: bool) -> None:
    assert copy["ids"] == live["ids"]
    if exact:
        np.testing.assert_array_equal(copy["embeddings"], live["embeddings"])
    else:
        # A cosine collection normalises every vector it is given, the copy's too: a vector
        # already of unit length can come back a float32 rounding away.
        np.testing.assert_allclose(copy["embeddings"], live["embeddings"], rtol=0, atol=1e-7)
    assert copy["documents"] == live["documents"]
    assert copy["metadatas"] == live["metadatas"]


@pytest.fixture
def embedded(tmp_path: Path) -> Any:
    client = open_chroma_client(path=tmp_path / "chroma")
    index_corpus(client, _corpus(), HashEmbedder(), collection_name="live-kb")
    yield client
    close_client(client)


def test_a_copy_holds_the_collection_page_by_page_and_leaves_it_untouched(
    embedded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scratch, "_PAGE", 5)  # 23 documents: five pages, the last short
    live = embedded.get_collection("live-kb", embedding_function=None)
    before, fingerprint = _everything(live), contents_fingerprint(live)
    live_metadata, live_configuration = live.metadata, live.configuration_json

    with scratch_collection(embedded, "live-kb", "d1") as made:
        assert (made.name, made.source, made.n_documents) == (
            f"{DRILL_PREFIX}d1-live-kb",
            "live-kb",
            23,
        )
        copy = embedded.get_collection(made.name, embedding_function=None)
        _assert_same_contents(_everything(copy), before, exact=False)
        assert copy.configuration_json["hnsw"] == live_configuration["hnsw"]
        assert {k: v for k, v in copy.metadata.items() if not k.startswith("evalkit_drill_")} == (
            live_metadata
        )
        assert copy.metadata["evalkit_drill_source"] == "live-kb"
        assert copy.metadata["evalkit_drill_owner"].endswith(f":{os.getpid()}")
        # A search on the copy finds what a search on the live collection finds.
        probe = before["embeddings"][:3].tolist()
        assert (
            copy.query(query_embeddings=probe, n_results=4)["ids"]
            == live.query(query_embeddings=probe, n_results=4)["ids"]
        )
        copy.delete(ids=["doc-00"])  # an incident writes to the copy only
        assert live.count() == N_DOCUMENTS

    assert made.name not in [c.name for c in embedded.list_collections()]
    live = embedded.get_collection("live-kb", embedding_function=None)
    _assert_same_contents(_everything(live), before, exact=True)
    assert contents_fingerprint(live) == fingerprint
    assert (live.metadata, live.configuration_json) == (live_metadata, live_configuration)


def test_the_copy_is_removed_when_the_block_fails_or_the_copying_does(
    embedded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(KeyboardInterrupt), scratch_collection(embedded, "live-kb", "d2"):
        raise KeyboardInterrupt
    assert [c.name for c in embedded.list_collections()] == ["live-kb"]

    from chromadb.api.models.Collection import Collection

    added = Collection.add
    calls = {"n": 0}

    def fail_second_page(self: Collection, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        added(self, **kwargs)

    monkeypatch.setattr(scratch, "_PAGE", 10)
    monkeypatch.setattr(Collection, "add", fail_second_page)
    with pytest.raises(
        RetrieverError, match=r"'live-kb' into 'evalkit-drill-d3-live-kb' failed after 10 "
    ):
        copy_collection(embedded, "live-kb", "d3")
    assert [c.name for c in embedded.list_collections()] == ["live-kb"]


def test_a_copy_of_a_missing_collection_or_under_a_bad_name_is_refused(embedded: Any) -> None:
    with pytest.raises(RetrieverError, match="'nope' does not exist"):
        copy_collection(embedded, "nope", "d4")
    with pytest.raises(ConfigError, match="not valid"):
        copy_collection(embedded, "live-kb", "d4" + "x" * 600)
    assert [c.name for c in embedded.list_collections()] == ["live-kb"]


HOLDER = textwrap.dedent(
    """
    import sys, time
    from evalkit.drill.scratch import copy_collection
    from evalkit.retrievers.chroma_client import open_chroma_client
    client = open_chroma_client(url=sys.argv[1])
    copy_collection(client, "live-kb", sys.argv[2])
    print("copied", flush=True)
    time.sleep(600)
    """
)


@pytest.mark.slow
def test_a_copy_left_by_a_killed_drill_is_swept_on_a_chroma_server(
    chroma_server: ChromaServer,
) -> None:
    client = open_chroma_client(url=chroma_server.url)
    try:
        index_corpus(client, _corpus(), HashEmbedder(), collection_name="live-kb", rebuild=True)
        live = client.get_collection("live-kb", embedding_function=None)
        before = _everything(live)
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, chroma_server.url, "killed"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "copied"
        ours = copy_collection(client, "live-kb", "running")
        # While its drill runs, a copy stays.
        assert sweep_scratch_collections(client) == []
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        assert sweep_scratch_collections(client) == [f"{DRILL_PREFIX}killed-live-kb"]
        names = {c.name for c in client.list_collections()}
        assert ours.name in names
        assert f"{DRILL_PREFIX}killed-live-kb" not in names
        # A day on, a copy is removed even though its process still runs (its pid may have
        # been reused, or it ran on another host).
        later = datetime.now(UTC) + timedelta(hours=25)
        assert sweep_scratch_collections(client, now=later) == [ours.name]
        _assert_same_contents(
            _everything(client.get_collection("live-kb", embedding_function=None)),
            before,
            exact=True,
        )
    finally:
        for collection in client.list_collections():
            if collection.name.startswith(DRILL_PREFIX) or collection.name == "live-kb":
                client.delete_collection(collection.name)
        close_client(client)


# -- incidents injected into the copy ---------------------------------------------------------

RELEVANT = frozenset(f"doc-{n:02d}" for n in range(0, N_DOCUMENTS, 3))  # 8 of 23


def test_an_incident_writes_only_to_a_drill_copy(embedded: Any) -> None:
    live = embedded.get_collection("live-kb", embedding_function=None)
    before = _everything(live)
    with pytest.raises(ScratchOnlyError, match="writes only to its own copies"):
        inject(live, "deletion", 0.5)
    with scratch_collection(embedded, "live-kb", "bad") as made:
        copy = embedded.get_collection(made.name, embedding_function=None)
        with pytest.raises(ConfigError, match="unknown incident 'fire'; the incidents are: "):
            inject(copy, "fire")
        with pytest.raises(ConfigError, match=r"severity 1.5 is not from 0 to 1 \(the"):
            inject(copy, "deletion", 1.5)
        assert copy.count() == N_DOCUMENTS
    _assert_same_contents(_everything(live), before, exact=True)


def test_each_incident_changes_the_copy_as_its_severity_says_and_never_the_live_collection(
    embedded: Any,
) -> None:
    live = embedded.get_collection("live-kb", embedding_function=None)
    before = _everything(live)
    vectors = dict(zip(before["ids"], before["embeddings"], strict=True))
    texts = dict(zip(before["ids"], before["documents"], strict=True))

    with scratch_collection(embedded, "live-kb", "del") as made:
        copy = embedded.get_collection(made.name, embedding_function=None)
        deleted = inject(copy, "deletion", 0.25, relevant=RELEVANT, seed=7)
        # A quarter of the 8 relevant documents and of the 15 others.
        assert sum(doc_id in RELEVANT for doc_id in deleted.documents) == 2
        assert len(deleted.documents) == 2 + 4
        assert deleted.summary == "removed 6 documents, 2 of them judged relevant"
        assert set(copy.get()["ids"]) == set(before["ids"]) - set(deleted.documents)
    with scratch_collection(embedded, "live-kb", "del-again") as made:
        copy = embedded.get_collection(made.name, embedding_function=None)
        again = inject(copy, "deletion", 0.25, relevant=RELEVANT, seed=7)
        assert again.documents == deleted.documents, "the drill's seed fixes the choice"

    with scratch_collection(embedded, "live-kb", "dup") as made:
        copy = embedded.get_collection(made.name, embedding_function=None)
        duplicated = inject(copy, "duplicates", relevant=RELEVANT)  # default: 10 %
        assert len(duplicated.documents) == 1 + 2
        after = _everything(copy)
        assert len(after["ids"]) == N_DOCUMENTS + 3
        for doc_id, vector, text in zip(
            after["ids"], after["embeddings"], after["documents"], strict=True
        ):
            original = doc_id.removesuffix("#drill-copy")
            assert text == texts[original]
            np.testing.assert_allclose(vector, vectors[original], rtol=0, atol=1e-7)

    with scratch_collection(embedded, "live-kb", "stale") as made:
        copy = embedded.get_collection(made.name, embedding_function=None)
        stale = inject(copy, "stale_content", 0.5, relevant=RELEVANT, seed=3)
        assert len(stale.documents) == 4 + 8
        after = _everything(copy)
        assert after["ids"] == before["ids"]
        assert after["metadatas"] == before["metadatas"], "the ids' metadata stay"
        for doc_id, vector, text in zip(
            after["ids"], after["embeddings"], after["documents"], strict=True
        ):
            if doc_id in stale.documents:
                [donor] = [d for d, t in texts.items() if t == text]
                assert donor != doc_id
                np.testing.assert_allclose(vector, vectors[donor], rtol=0, atol=1e-6)
            else:
                assert text == texts[doc_id]

    with scratch_collection(embedded, "live-kb", "model") as made:
        copy = embedded.get_collection(made.name, embedding_function=None)
        moved = inject(copy, "model_mismatch", relevant=RELEVANT)  # default: every document
        assert len(moved.documents) == N_DOCUMENTS
        rotated = _everything(copy)["embeddings"]
        # Within the moved documents, similarities are those of one model ...
        np.testing.assert_allclose(
            rotated @ rotated.T, before["embeddings"] @ before["embeddings"].T, atol=1e-5
        )
        # ... but a document's own live vector, as a query, no longer finds it first.
        found = copy.query(query_embeddings=before["embeddings"].tolist(), n_results=1)["ids"]
        assert sum(hit == [doc_id] for hit, doc_id in zip(found, before["ids"], strict=True)) < 5

    _assert_same_contents(_everything(live), before, exact=True)
    assert [c.name for c in embedded.list_collections()] == ["live-kb"]


def test_chunking_drift_replaces_a_share_of_the_documents_by_chunks_of_their_text(
    tmp_path: Path,
) -> None:
    client = open_chroma_client(path=tmp_path / "chroma")
    words = [f"w{n}" for n in range(200)]
    long_corpus = [
        Document(f"doc-{n:02d}", " ".join(words[: 40 + 10 * n]), metadata={"topic": "t"})
        for n in range(10)
    ]
    embedder = HashEmbedder()
    index_corpus(client, long_corpus, embedder, collection_name="live-kb")
    live = client.get_collection("live-kb", embedding_function=None)
    before = _everything(live)
    with scratch_collection(client, "live-kb", "chunks") as made:
        copy = client.get_collection(made.name, embedding_function=None)
        with pytest.raises(ConfigError, match="needs the jobs' embedding model"):
            inject(copy, "chunking_drift", 0.5)
        chunked = inject(
            copy, "chunking_drift", 0.5, relevant=frozenset({"doc-09"}), embed=embedder.embed
        )
        assert "doc-09" in chunked.documents
        assert len(chunked.documents) == 1 + round(0.5 * 9)
        assert chunked.summary.endswith("re-chunked into pieces of 48 words")
        after = _everything(copy)
        texts = dict(zip(before["ids"], before["documents"], strict=True))
        for doc_id in chunked.documents:
            n_words = len(texts[doc_id].split())
            chunks = [i for i, d in enumerate(after["ids"]) if d.startswith(f"{doc_id}#chunk-")]
            assert doc_id not in after["ids"]
            assert len(chunks) == -(-n_words // 48), "48 words a chunk, the last shorter"
            for i in chunks:
                span = after["metadatas"][i]
                assert span["source_id"] == doc_id
                assert span["topic"] == "t"
                text = texts[doc_id][span["start"] : span["end"]]
                assert after["documents"][i] == text
                assert len(text.split()) <= 48
                np.testing.assert_allclose(
                    after["embeddings"][i], embedder.embed([text])[0], atol=1e-6
                )
        untouched = sorted(set(before["ids"]) - set(chunked.documents))
        assert [d for d in after["ids"] if "#chunk-" not in d] == untouched
    _assert_same_contents(_everything(live), before, exact=True)
    close_client(client)


def test_ann_degradation_rebuilds_the_copy_with_lowered_hnsw_settings_and_is_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    settings = load_settings()
    client = open_chroma_client(path=settings.resolved_chroma_path)
    index_corpus(client, _corpus(), HashEmbedder(), collection_name="live-kb")
    live = client.get_collection("live-kb", embedding_function=None)
    before, live_hnsw = _everything(live), live.configuration_json["hnsw"]

    def hnsw(collection: Any) -> tuple[int, int, int]:
        found = collection.configuration_json["hnsw"]
        return found["ef_search"], found["max_neighbors"], found["ef_construction"]

    with ScratchCopies(settings, ["live-kb"], "ann") as copies:
        assert hnsw(copies.collection("live-kb")) == (100, 16, 100)
        copies.hold()
        with pytest.raises(ConfigError, match="needs the drill's copies to rebuild"):
            inject(copies.collection("live-kb"), "ann_degradation")
        degraded = inject(
            copies.collection("live-kb"),
            "ann_degradation",
            rebuild=functools.partial(copies.rebuild, "live-kb"),
        )
        assert degraded.summary == (
            "HNSW index rebuilt with ef_search 100 -> 25, ef_construction 100 -> 25, "
            "max_neighbors 16 -> 4"
        )
        rebuilt = copies.collection("live-kb")
        assert hnsw(rebuilt) == (25, 4, 25)
        assert rebuilt.configuration_json["hnsw"]["space"] == live_hnsw["space"]
        _assert_same_contents(_everything(rebuilt), before, exact=False)
        assert hnsw(client.get_collection("live-kb")) == (100, 16, 100)
        copies.restore()
        assert hnsw(copies.collection("live-kb")) == (100, 16, 100)
    _assert_same_contents(_everything(live), before, exact=True)
    assert [c.name for c in client.list_collections()] == ["live-kb"]
    close_client(client)


# -- the user's configuration, pointed at the copies ------------------------------------------

USER_CONFIG = """
k = 10

[[jobs]]
name = "nightly"
kind = "goldset_replay"
goldset = "support"
collection = "support-kb"
cron = "0 2 * * *"

[[jobs]]
name = "kb-documents"
kind = "drift_check"
stream = "documents"
collection = "support-kb"
cron = "0 3 * * *"

[[jobs]]
name = "other"
kind = "goldset_replay"
goldset = "support"
collection = "other-kb"
cron = "0 4 * * *"

[[alerts.rules]]
name = "kb-documents-moved"
kind = "embedding_drift"
streams = ["documents"]
subject = "support-kb"

[[alerts.rules]]
name = "slow"
kind = "latency_regression"
goldset = "support"
"""


def test_the_users_jobs_and_rules_read_the_copies_and_write_the_drills_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "evalkit.toml"
    config.write_text(USER_CONFIG, encoding="utf-8")
    monkeypatch.setenv("EVALKIT_CONFIG", str(config))
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    user = load_settings()
    assert collections_named(read_toml(config)) == {"support-kb", "other-kb"}
    copies = {"support-kb": f"{DRILL_PREFIX}d9-support-kb"}
    drill_store = tmp_path / "drill" / "evalkit.duckdb"
    drill = load_settings(
        rewrite_tables=lambda tables: pointed_at_copies(tables, copies=copies),
        store_path=drill_store,
    )
    jobs = {job.name: job.params for job in service_config(drill).jobs}
    assert jobs["nightly"].collection == copies["support-kb"]  # type: ignore[attr-defined]
    assert jobs["kb-documents"].collection == copies["support-kb"]  # type: ignore[attr-defined]
    assert jobs["other"].collection == "other-kb", "a collection not copied is left alone"  # type: ignore[attr-defined]
    rules = {rule.name: rule for rule in service_config(drill).alerts.rules}
    assert rules["kb-documents-moved"].params.subject == copies["support-kb"]  # type: ignore[attr-defined]
    assert drill.resolved_store_path == drill_store
    assert user.resolved_store_path != drill_store
    assert config.read_text(encoding="utf-8") == USER_CONFIG
    # Everything else is the user's: the same k, the same schedules and rules.
    assert drill.k == user.k == 10
    assert [job.cron for job in drill.jobs] == [job.cron for job in user.jobs]


def test_an_incident_changes_a_fresh_copy_and_the_restore_puts_back_the_very_index_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh copy's approximate search ranked 2 of SciFact's 300 queries differently, so a
    restore that copied again never brought back the quality the quiet cycles had."""
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    settings = load_settings()
    client = open_chroma_client(path=settings.resolved_chroma_path)
    index_corpus(client, _corpus(), HashEmbedder(), collection_name="live-kb")
    with ScratchCopies(settings, ["live-kb"], "d5") as copies:
        quiet = copies.collection("live-kb")
        quiet_id, before = quiet.id, _everything(quiet)
        copies.hold()
        held = f"{DRILL_PREFIX}d5-live-kb{HELD_SUFFIX}"
        changed = copies.collection("live-kb")
        assert changed.id != quiet_id
        inject(changed, "deletion", 0.5)
        assert copies.collection("live-kb").count() < N_DOCUMENTS
        copies.restore()
        restored = copies.collection("live-kb")
        assert restored.id == quiet_id, "the collection the quiet cycles searched"
        _assert_same_contents(_everything(restored), before, exact=True)
        copies.hold()
        names = sorted(c.name for c in client.list_collections())
        assert names == [f"{DRILL_PREFIX}d5-live-kb", held, "live-kb"]
        # the set-aside copy keeps the copy's marks: a sweep removes it once the drill is over
        assert (
            client.get_collection(held).metadata["evalkit_drill_owner"].endswith(f":{os.getpid()}")
        )
    assert [c.name for c in client.list_collections()] == ["live-kb"]
    close_client(client)


def test_collections_are_copied_in_the_chroma_server_their_jobs_read() -> None:
    from evalkit.drill.config import chroma_collections_by_server, pointed_at_copies

    tables = {
        "jobs": [
            {"name": "same", "collection": "kb", "chroma_url": "http://127.0.0.1:8000/"},
            {"name": "own", "collection": "other-kb", "chroma_url": "http://10.0.0.5:8000"},
            {"name": "plain", "collection": "kb"},
            {"name": "http", "kind": "goldset_replay", "http_retriever": {"url": "http://x"}},
        ],
        "alerts": {
            "rules": [
                {"name": "a", "kind": "audit_findings", "collection": "other-kb"},
                {"name": "b", "kind": "audit_findings", "collection": "rules-only"},
            ]
        },
    }
    assert chroma_collections_by_server(tables, "http://127.0.0.1:8000") == {
        None: {"kb", "rules-only"},
        "http://10.0.0.5:8000": {"other-kb"},
    }
    assert chroma_collections_by_server(tables, None) == {
        None: {"kb", "rules-only"},
        "http://127.0.0.1:8000": {"kb"},
        "http://10.0.0.5:8000": {"other-kb"},
    }
    proxied = pointed_at_copies(
        tables,
        copies={"other-kb": "evalkit-drill-d-other-kb"},
        chroma_urls={
            "http://10.0.0.5:8000": "http://127.0.0.1:4000",
            "http://127.0.0.1:8000": "http://127.0.0.1:4001",
        },
    )
    own = proxied["jobs"][1]
    assert own == {
        "name": "own",
        "collection": "evalkit-drill-d-other-kb",
        "chroma_url": "http://127.0.0.1:4000",
    }
    assert proxied["jobs"][0]["chroma_url"] == "http://127.0.0.1:4001", "the settings' server"
    assert proxied["jobs"][2] == {"name": "plain", "collection": "kb"}
