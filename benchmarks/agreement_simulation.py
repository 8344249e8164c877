"""What ``evalkit judge agreement`` measures on real judgments, for assessors of known quality.

Data (read from ../shared/data; the script exits when it is absent): BEIR SciFact's test
queries, corpus and qrels, and the BM25 run ``reference_values/scifact_test_bm25_top100.run``.
Four stored runs of the SciFact goldset are the BM25 run with 0 %, 30 %, 60 % and 90 % of
the documents it retrieved removed from the index (seeded): four systems of falling quality.

The assessor is a loopback OpenAI-compatible endpoint that grades each (query, passage) pair
from SciFact's qrels, 3 for a judged-relevant document and 0 otherwise, and answers another
grade (one of the other three alike) for a set share of the pairs. For each flip rate the
script runs ``measure_agreement`` (the workflow behind ``evalkit judge agreement``) on a
fresh judged pool and prints the weighted kappa with its interval beside the kappa the flip
rate implies, and Kendall's tau between the four runs ranked by precision@10 under human
and assessor labels. It checks evalkit's measurement, not an LLM: what a real model scores
is for ``evalkit judge agreement`` against that model.

    .venv/bin/python benchmarks/agreement_simulation.py [--sample 300] [--tau-queries 100]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.config import JudgeSettings
from evalkit.goldset import load_goldset
from evalkit.judging.assessor import RelevanceAssessor
from evalkit.pipeline import CorpusTexts, evaluate_goldset, measure_agreement
from evalkit.records import Query, QueryResult, ScoredDoc
from evalkit.records.requests import AgreementRequest, GoldsetRunRequest, JudgingRequest
from evalkit.store import Store
from evalkit.store.goldsets import save_goldset

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SCIFACT = SHARED_DATA / "beir_scifact"
BM25_RUN = SHARED_DATA / "reference_values" / "scifact_test_bm25_top100.run"
REMOVED = (0.0, 0.3, 0.6, 0.9)
FLIP_RATES = (0.0, 0.1, 0.25, 0.4)
_PAIR = re.compile(r"Query: (?P<query>.*?)\n\nPassage: (?P<passage>.*?)\n\nReply with", re.S)


def _unit(*parts: str) -> float:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class FlippingAssessor:
    """Grades from the qrels (3 relevant, 0 not), another grade for ``flip_rate`` of pairs."""

    def __init__(self, relevant: set[tuple[str, str]], flip_rate: float) -> None:
        self.relevant = relevant
        self.flip_rate = flip_rate

    def grade(self, query: str, passage: str) -> int:
        true = 3 if (query, passage) in self.relevant else 0
        if _unit("flip", query, passage) < self.flip_rate:
            return (true + 1 + int(_unit("to", query, passage) * 3)) % 4
        return true


@contextmanager
def serving(assessor: FlippingAssessor) -> Iterator[str]:
    """The assessor as a chat-completions endpoint on loopback; yields its /v1 URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            match = _PAIR.search(str(body["messages"][-1]["content"]))
            grade = assessor.grade(match["query"], match["passage"]) if match else 0
            payload = json.dumps(
                {
                    "id": "sim",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "sim",
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": json.dumps({"grade": grade}),
                            },
                            "finish_reason": "stop",
                        }
                    ],
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


class RunFileRetriever:
    """Serves the BM25 run's rankings, without the documents removed from the index."""

    def __init__(self, rankings: dict[str, list[tuple[str, float]]], removed: set[str]) -> None:
        self.rankings = rankings
        self.removed = removed

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        results = []
        for query in queries:
            kept = [
                (doc, score)
                for doc, score in self.rankings.get(query.id, [])
                if doc not in self.removed
            ]
            docs = tuple(
                ScoredDoc(doc, score, rank) for rank, (doc, score) in enumerate(kept[:k], 1)
            )
            results.append(QueryResult(query.id, docs, latency_ms=0.1))
        return results

    def describe(self) -> dict[str, Any]:
        return {"kind": "bm25-run", "removed": len(self.removed)}

    def index_fingerprint(self) -> str | None:
        return None

    def model_fingerprint(self) -> None:
        return None


def read_run(path: Path) -> dict[str, list[tuple[str, float]]]:
    """A TREC run ranked as trec_eval ranks it (score descending, ties by docno descending)."""
    rankings: dict[str, list[tuple[str, float]]] = {}
    for line in path.read_text().splitlines():
        query_id, _, doc_id, _, score, *_ = line.split()
        rankings.setdefault(query_id, []).append((doc_id, float(score)))
    for ranked in rankings.values():
        ranked.sort(key=lambda item: item[0], reverse=True)
        ranked.sort(key=lambda item: item[1], reverse=True)
    return rankings


def expected_kappa(shares: Sequence[float], flip_rate: float) -> float:
    """Kappa of binary human labels (``shares``: not relevant, relevant) against an assessor
    made binary at grade 2 that answers 3 or 0 and flips ``flip_rate`` of the pairs to one
    of the other three grades alike: a flipped 3 stays relevant only as a 2 (one in three),
    a flipped 0 stays not relevant only as a 1 (one in three)."""
    relevant_kept = 1 - flip_rate + flip_rate / 3  # 3 -> 3, or flipped to 2
    nonrelevant_kept = 1 - flip_rate + flip_rate / 3  # 0 -> 0, or flipped to 1
    p_not, p_rel = shares
    observed = np.array(
        [[p_not * nonrelevant_kept, p_not * (1 - nonrelevant_kept)],
         [p_rel * (1 - relevant_kept), p_rel * relevant_kept]]
    )  # fmt: skip
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    return float((observed.trace() - expected.trace()) / (1 - expected.trace()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=300)
    parser.add_argument("--tau-queries", type=int, default=100)
    args = parser.parse_args()
    if not SCIFACT.is_dir() or not BM25_RUN.is_file():
        print(f"../shared/data is not present ({SCIFACT}); nothing to measure", file=sys.stderr)
        return 1
    goldset = load_goldset(SCIFACT, format="beir", name="scifact", split="test")
    rankings = read_run(BM25_RUN)
    texts = {query.id: query.text for query in goldset.queries}
    corpus_path = SCIFACT / "corpus.jsonl"
    documents = {}
    for line in corpus_path.read_text().splitlines():
        row = json.loads(line)
        documents[row["_id"]] = (
            f"{row['title']}\n{row['text']}" if row.get("title") else row["text"]
        )
    relevant = {
        (texts[j.query_id], documents[j.doc_id])
        for j in goldset.judgments
        if j.relevance >= 1 and j.doc_id in documents
    }
    retrieved = sorted({doc for ranked in rankings.values() for doc, _ in ranked})
    rng = np.random.default_rng(20261125)
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder) / "runs.duckdb"
        with Store.open(base) as store:
            save_goldset(store, goldset)
            for share in REMOVED:
                removed = set(rng.choice(retrieved, int(share * len(retrieved)), replace=False))
                outcome = evaluate_goldset(
                    store,
                    goldset,
                    RunFileRetriever(rankings, removed),
                    GoldsetRunRequest(k=10, measures=("precision@10", "ndcg@10"), answers=False),
                )
                print(
                    f"run removing {share:.0%} of the index: precision@10 "
                    f"{outcome.run.aggregates['precision@10']:.4f}",
                    flush=True,
                )
        print()
        header = (
            f"{'flip rate':>9} | {'kappa (binary)':>14} | {'95% interval':>16} | "
            f"{'expected':>8} | {'tau (4 runs)':>12} | {'pairs':>5} | {'calls':>5} | {'s':>5}"
        )
        print(header)
        print("-" * len(header))
        for flip_rate in FLIP_RATES:
            copy = Path(folder) / f"flip-{flip_rate}.duckdb"
            copy.write_bytes(base.read_bytes())
            started = time.perf_counter()
            with serving(FlippingAssessor(relevant, flip_rate)) as url, Store.open(copy) as store:
                assessor = RelevanceAssessor(
                    JudgeSettings(base_url=url, model="sim", concurrency=8, retry_backoff=0)
                )
                outcome = measure_agreement(
                    store,
                    "scifact",
                    assessor,
                    CorpusTexts(corpus_path),
                    AgreementRequest(
                        sample=args.sample, tau_queries=args.tau_queries, resamples=2000
                    ),
                    judging=JudgingRequest(),
                )
            seconds = time.perf_counter() - started
            agreement = outcome.agreement
            assert agreement is not None
            counts = np.array(agreement.confusion["counts"])
            shares = counts.sum(axis=1) / counts.sum()
            print(
                f"{flip_rate:>9.2f} | {agreement.kappa:>14.3f} | "
                f"[{agreement.kappa_low:.3f}, {agreement.kappa_high:.3f}] | "
                f"{expected_kappa(shares, flip_rate):>8.3f} | {agreement.tau:>12.3f} | "
                f"{agreement.n_pairs:>5} | {outcome.judging.calls:>5} | {seconds:>5.1f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
