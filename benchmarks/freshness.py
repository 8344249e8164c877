"""A freshness check over 100,000 source documents with 1 % changed: evalkit's own time beyond
the index reads and probe queries, against a plain pandas merge of the same source with the
index snapshot.

Setup (not timed): a JSON Lines corpus of ``--documents`` documents (about 60 words each,
``updated_at`` in their metadata), indexed into an embedded Chroma collection as ``evalkit
index`` writes one (content hash and write time per document; 4-dimensional vectors, since the
check never searches), and a first check that reads them all (its time is printed too). Then,
in each of ``--rounds`` rounds, another 1 % of the documents change at the source and 90 % of
those changes are written into the index; the timed check reads the corpus again, finds the
1,000 changes (and those still waiting from earlier rounds), reads their stored versions from
Chroma and stores the lags. The median round is printed.

* ``index``: ``evalkit.pipeline.check_freshness`` reading the Chroma collection: wall time,
  the Chroma reads (``index_seconds``), and evalkit's own time (the rest: reading and hashing
  the corpus, assessing, storing), with its breakdown.
* ``probe``: the same changes checked by probing an in-process retriever that answers from a
  dictionary (its time, ``probe_seconds``, is left out of evalkit's own; the probe passages
  are evalkit's own time).
* ``pandas``: the peer. ``pd.read_json(lines=True)`` of the corpus, the documents changed
  since the last check, their content hashed as evalkit hashes it, merged with the index
  snapshot (doc_id, content_hash, indexed_at: already in memory), the lag of the matches and
  its percentiles. Nothing is stored and no position is kept.

Run: ``.venv/bin/python benchmarks/freshness.py`` (``--documents 20000`` for a quick look).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evalkit.goldset.corpus import content_hash
from evalkit.pipeline import check_freshness
from evalkit.records import Document, Query, QueryResult, ScoredDoc
from evalkit.records.freshness import FreshnessRequest
from evalkit.retrievers import open_chroma_client
from evalkit.retrievers.chroma_client import CONTENT_HASH_KEY, INDEXED_AT_KEY
from evalkit.retrievers.versions import ChromaVersions
from evalkit.store import Store

CHANGED_SHARE = 0.01
REFLECTED_SHARE = 0.9
WORDS = [f"w{n}" for n in range(20_000)]
BATCH = 5000
T0 = datetime(2026, 3, 1, 12, 0, 0)


def text(rng: random.Random) -> str:
    first = " ".join(rng.choice(WORDS) for _ in range(35))
    second = " ".join(rng.choice(WORDS) for _ in range(25))
    return f"{first}. {second}."


def document(doc_id: str, body: str, updated: datetime) -> Document:
    return Document(id=doc_id, text=body, metadata={"updated_at": updated.isoformat() + "Z"})


def write_corpus(path: Path, documents: Sequence[Document]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for doc in documents:
            handle.write(
                json.dumps({"id": doc.id, "text": doc.text, "metadata": doc.metadata}) + "\n"
            )


def index(collection: Any, documents: Sequence[Document], written: datetime) -> None:
    """Write documents as ``evalkit index`` does: text, content hash and write time."""
    rng = np.random.default_rng(0)
    stamp = written.replace(tzinfo=UTC).isoformat(timespec="milliseconds")
    for start in range(0, len(documents), BATCH):
        part = documents[start : start + BATCH]
        collection.upsert(
            ids=[doc.id for doc in part],
            embeddings=rng.normal(size=(len(part), 4)).astype(np.float32),
            documents=[doc.text for doc in part],
            metadatas=[
                {**doc.metadata, CONTENT_HASH_KEY: content_hash(doc), INDEXED_AT_KEY: stamp}
                for doc in part
            ],
        )


class DictionaryRetriever:
    """Answers a probe passage with the indexed document it was taken from, instantly."""

    def __init__(self) -> None:
        self.by_sentence: dict[str, str] = {}

    def index(self, documents: Sequence[Document]) -> None:
        for doc in documents:
            for sentence in doc.text.split(". "):
                self.by_sentence[sentence.rstrip(".")] = doc.id

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        return [
            QueryResult(
                query.id,
                (ScoredDoc(self.by_sentence.get(query.text.rstrip("."), "none"), 1.0, 1),),
                0.1,
            )
            for query in queries
        ]

    def describe(self) -> dict[str, Any]:
        return {"kind": "dictionary"}

    def index_fingerprint(self) -> str | None:
        return None

    def model_fingerprint(self) -> None:
        return None


def pandas_peer(corpus: Path, snapshot: pd.DataFrame, watermark: datetime) -> dict[str, float]:
    """The same question answered by a plain pandas merge: read, filter, hash, merge, lag."""
    frame = pd.read_json(corpus, lines=True, dtype={"id": str})
    updated = pd.to_datetime(
        frame["metadata"].map(lambda meta: meta["updated_at"]), utc=True
    ).dt.tz_localize(None)
    changed = frame[updated > pd.Timestamp(watermark)].assign(updated_at=updated)
    changed = changed.assign(
        content_hash=[
            content_hash(Document(id=i, text=t, metadata=m))
            for i, t, m in zip(changed["id"], changed["text"], changed["metadata"], strict=True)
        ]
    )
    merged = changed.merge(snapshot, left_on="id", right_on="doc_id", suffixes=("", "_held"))
    reflected = merged[merged["content_hash"] == merged["content_hash_held"]]
    lags = (reflected["indexed_at"] - reflected["updated_at"]).dt.total_seconds().to_numpy()
    _, p95 = np.percentile(lags, [50, 95])
    return {"changes": float(len(changed)), "reflected": float(len(reflected)), "p95": p95}


def snapshot_of(collection: Any, doc_ids: Sequence[str]) -> pd.DataFrame:
    rows = []
    for start in range(0, len(doc_ids), 1000):
        got = collection.get(ids=list(doc_ids[start : start + 1000]), include=["metadatas"])
        for doc_id, meta in zip(got["ids"], got["metadatas"], strict=True):
            rows.append(
                (
                    doc_id,
                    meta[CONTENT_HASH_KEY],
                    pd.Timestamp(meta[INDEXED_AT_KEY]).tz_convert(None),
                )
            )
    return pd.DataFrame(rows, columns=["doc_id", "content_hash", "indexed_at"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="timed checks (median shown)")
    args = parser.parse_args()
    n = args.documents
    rng = random.Random(7)
    work = Path(tempfile.mkdtemp(prefix="evalkit-freshness-bench-"))
    print(f"load average before: {os.getloadavg()[0]:.1f}; {n:,} documents in {work}")

    started = time.perf_counter()
    documents = [document(f"doc{i:06d}", text(rng), T0) for i in range(n)]
    corpus = work / "corpus.jsonl"
    write_corpus(corpus, documents)
    client = open_chroma_client(path=work / "chroma")
    collection = client.create_collection(
        "freshness-bench", embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
    )
    index(collection, documents, T0 + timedelta(minutes=5))
    print(f"setup: corpus and Chroma collection in {time.perf_counter() - started:.1f} s")

    reader = ChromaVersions(collection)
    retriever = DictionaryRetriever()
    retriever.index(documents)
    timed, probed, peer = [], [], []
    with Store.open(work / "evalkit.duckdb") as store:
        request = FreshnessRequest(corpus=corpus, subject="chroma:bench", max_unreflected_age=1e9)
        first = check_freshness(store, request, index=reader)
        print(
            f"first check ({first.n_read:,} changes: every document): "
            f"{first.evalkit_seconds + first.index_seconds:.2f} s, of which Chroma reads "
            f"{first.index_seconds:.2f} s"
        )
        for round_ in range(args.rounds):
            changed_at = T0 + timedelta(hours=6 * (round_ + 1))
            changed = rng.sample(range(n), int(n * CHANGED_SHARE))
            for position in changed:
                documents[position] = document(documents[position].id, text(rng), changed_at)
            write_corpus(corpus, documents)
            reflected = [documents[p] for p in changed[: int(len(changed) * REFLECTED_SHARE)]]
            index(collection, reflected, changed_at + timedelta(minutes=42))
            retriever.index(reflected)
            snapshot = snapshot_of(collection, [doc.id for doc in documents])

            check = check_freshness(store, request, index=reader)
            mark = time.perf_counter()
            figures = pandas_peer(corpus, snapshot, changed_at - timedelta(seconds=1))
            peer.append(time.perf_counter() - mark)
            probe = check_freshness(
                store,
                FreshnessRequest(
                    corpus=corpus,
                    subject="dictionary",
                    since=changed_at,
                    k=1,
                    max_unreflected_age=1e9,
                ),
                retriever=retriever,
            )
            assert check.n_read == len(changed), check.n_read
            assert check.n_reflected == figures["reflected"] == len(reflected)
            assert check.lag_p95 == figures["p95"]
            timed.append(check)
            probed.append(probe)
    check = sorted(timed, key=lambda c: c.evalkit_seconds)[len(timed) // 2]
    probe = sorted(probed, key=lambda c: c.evalkit_seconds)[len(probed) // 2]
    pandas_seconds = sorted(peer)[len(peer) // 2]
    print()
    print(
        f"check over {n:,} documents, {check.n_read:,} changed since the last check, "
        f"{check.n_reflected:,} of the waiting ones reflected, {check.n_pending:,} waiting"
    )
    print(
        f"  index (Chroma): wall {check.evalkit_seconds + check.index_seconds:.2f} s, Chroma "
        f"reads {check.index_seconds:.2f} s, evalkit's own {check.evalkit_seconds:.2f} s"
    )
    print("    " + ", ".join(f"{k} {v:.3f}" for k, v in check.timings.items()))
    print(
        f"  probe: wall {probe.evalkit_seconds + probe.probe_seconds:.2f} s, probe queries "
        f"{probe.probe_seconds:.2f} s ({probe.n_probes:,}), evalkit's own "
        f"{probe.evalkit_seconds:.2f} s"
    )
    print("    " + ", ".join(f"{k} {v:.3f}" for k, v in probe.timings.items()))
    print(f"  pandas merge (peer, nothing stored): {pandas_seconds:.2f} s")
    print(
        f"  evalkit's own / pandas: index {check.evalkit_seconds / pandas_seconds:.2f}x, "
        f"probe {probe.evalkit_seconds / pandas_seconds:.2f}x; target: own time < 10 s"
    )
    print(f"load average after: {os.getloadavg()[0]:.1f} (median of {args.rounds} rounds)")


if __name__ == "__main__":
    main()
