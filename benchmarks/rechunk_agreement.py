"""Re-chunking SciFact: does the remapped goldset rank retrievers as the document goldset does?

BEIR SciFact's abstracts (../shared/data/beir_scifact) are split into chunks of two or
three sentences with their offsets (``source_id`` = the abstract's id). The test qrels
become a document-level goldset whose judgments are anchored to spans covering each
judged abstract whole; ``evalkit.goldset.remap.remap_judgments`` maps them onto the chunk
corpus. Several retrievers of different quality are then scored with evalkit's own
metrics twice: over whole abstracts against the document goldset, and over chunks against
the remapped goldset. The script prints both tables, the two rankings of the retrievers and
their Kendall tau, and the remap's counts.

    .venv/bin/python benchmarks/rechunk_agreement.py            # with MiniLM (tens of minutes)
    .venv/bin/python benchmarks/rechunk_agreement.py --no-dense # lexical retrievers only (~20 s)

The retrievers: BM25 (k1 0.9, b 0.4, as Anserini's BEIR baselines), TF-IDF cosine, MiniLM
(evalkit's bundled all-MiniLM-L6-v2, from its install path, never a hub), and two weak
ones: BM25 over the first 12 words of each unit, and TF-IDF over titles only. A chunk is
indexed with its abstract's title, as BEIR indexes title and text together.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.stats import kendalltau
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

from evalkit.goldset import Goldset, iter_corpus, load_goldset
from evalkit.goldset.remap import RemapResult, remap_judgments
from evalkit.metrics import Evaluator
from evalkit.records import Document, Judgment, Span

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SCIFACT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "beir_scifact"
MEASURES = ("ndcg@10", "recall@100", "map@100", "mrr@10")
DEPTH = 100
# A sentence ends at . ! or ? followed by whitespace and a capital, digit or bracket.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")

Scores = npt.NDArray[np.float64]
Retriever = Callable[[Sequence[str], Sequence[Document]], Scores]
"""(query texts, units) -> scores, one row per query, one column per unit."""


def sentence_bounds(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text``, whitespace between sentences left out."""
    bounds, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        bounds.append((start, match.start()))
        start = match.end()
    if text[start:].strip():
        bounds.append((start, len(text.rstrip())))
    return [(s, e) for s, e in bounds if e > s]


def group_sizes(n: int) -> list[int]:
    """Split ``n`` sentences into chunks of three, and of two where three does not fit (a
    one-sentence abstract stays one chunk)."""
    sizes = []
    while n > 0:
        take = n if n <= 3 else 2 if n == 4 else 3
        sizes.append(take)
        n -= take
    return sizes


def sentence_chunks(document: Document) -> list[Document]:
    """The chunks of two or three sentences of one abstract, with their offsets."""
    sentences = sentence_bounds(document.text)
    if not sentences:
        return [
            Document(f"{document.id}#0", document.text, document.title, source_id=document.id,
                     start=0, end=max(len(document.text), 1))
        ]  # fmt: skip
    chunks, first = [], 0
    for number, size in enumerate(group_sizes(len(sentences))):
        start, end = sentences[first][0], sentences[first + size - 1][1]
        chunks.append(
            Document(f"{document.id}#{number}", document.text[start:end], document.title,
                     source_id=document.id, start=start, end=end)
        )  # fmt: skip
        first += size
    return chunks


def span_goldset(goldset: Goldset, corpus: dict[str, Document]) -> Goldset:
    """The document goldset with every judgment anchored to its whole abstract."""
    judgments = [
        Judgment(j.query_id, j.doc_id, j.relevance,
                 Span(j.doc_id, 0, len(corpus[j.doc_id].text), corpus[j.doc_id].text))
        for j in goldset.judgments
    ]  # fmt: skip
    return Goldset.build(goldset.name, goldset.queries, judgments, source=goldset.source)


# -- retrievers: each scores every unit for every query --------------------------------------


def _bm25_matrix(texts: Sequence[str], *, k1: float = 0.9, b: float = 0.4) -> tuple[Any, Any]:
    vectorizer = CountVectorizer(lowercase=True, token_pattern=r"(?u)\b\w+\b")
    counts = sparse.csr_matrix(vectorizer.fit_transform(texts), dtype=np.float64)
    lengths = np.asarray(counts.sum(axis=1)).ravel()
    n_docs = counts.shape[0]
    frequency = np.bincount(counts.indices, minlength=counts.shape[1])
    idf = np.log(1 + (n_docs - frequency + 0.5) / (frequency + 0.5))
    norm = k1 * (1 - b + b * lengths / max(lengths.mean(), 1e-9))
    rows = np.repeat(np.arange(n_docs), np.diff(counts.indptr))
    data = counts.data * (k1 + 1) / (counts.data + norm[rows]) * idf[counts.indices]
    weights = sparse.csr_matrix((data, counts.indices, counts.indptr), shape=counts.shape)
    return vectorizer, weights


def bm25(queries: Sequence[str], units: Sequence[Document]) -> Scores:
    """BM25 over title and text."""
    vectorizer, weights = _bm25_matrix([u.content for u in units])
    query_terms = (vectorizer.transform(queries) > 0).astype(np.float64)
    return np.asarray((query_terms @ weights.T).todense())


def bm25_first_words(
    queries: Sequence[str], units: Sequence[Document], *, words: int = 12
) -> Scores:
    """BM25 over the first ``words`` words of each unit's text only (a weak retriever)."""
    truncated = [Document(u.id, " ".join(u.text.split()[:words])) for u in units]
    return bm25(queries, truncated)


def tfidf(queries: Sequence[str], units: Sequence[Document]) -> Scores:
    """TF-IDF cosine over title and text (scikit-learn, sublinear tf)."""
    vectorizer = TfidfVectorizer(sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
    matrix = vectorizer.fit_transform([u.content for u in units])
    return np.asarray((vectorizer.transform(queries) @ matrix.T).todense())


def tfidf_titles(queries: Sequence[str], units: Sequence[Document]) -> Scores:
    """TF-IDF cosine over titles only (a weak retriever)."""
    vectorizer = TfidfVectorizer(sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
    matrix = vectorizer.fit_transform([u.title or u.text for u in units])
    return np.asarray((vectorizer.transform(queries) @ matrix.T).todense())


def minilm() -> Retriever:
    """Dense retrieval with evalkit's bundled all-MiniLM-L6-v2 (cosine)."""
    from evalkit.embedding import load_embedder

    embedder = load_embedder()

    def score(queries: Sequence[str], units: Sequence[Document]) -> Scores:
        query_vectors = embedder.embed(list(queries))
        unit_vectors = embedder.embed([u.content for u in units])
        return np.asarray(query_vectors @ unit_vectors.T, dtype=np.float64)

    return score


LEXICAL: dict[str, Retriever] = {
    "bm25": bm25,
    "tfidf": tfidf,
    "bm25-first-12-words": bm25_first_words,
    "tfidf-titles": tfidf_titles,
}


def run_of(
    scores: Scores, query_ids: Sequence[str], units: Sequence[Document]
) -> dict[str, dict[str, float]]:
    """The top ``DEPTH`` units of each query, as evalkit's run mapping."""
    top = np.argsort(-scores, axis=1, kind="stable")[:, :DEPTH]
    return {
        query_id: {units[col].id: float(scores[row, col]) for col in top[row]}
        for row, query_id in enumerate(query_ids)
    }


@dataclass(frozen=True)
class Agreement:
    """The figures of both levels, per retriever, and the rankings' Kendall tau."""

    documents: dict[str, dict[str, float]]
    chunks: dict[str, dict[str, float]]
    remap: RemapResult
    n_chunks: int
    seconds: dict[str, float]

    def ranking(self, level: str, measure: str = "ndcg@10") -> list[str]:
        """Retrievers from best to worst on ``measure`` at ``level`` (documents|chunks)."""
        figures = self.documents if level == "documents" else self.chunks
        return sorted(figures, key=lambda name: -figures[name][measure])

    def tau(self, measure: str = "ndcg@10") -> float:
        """Kendall tau between the two levels' figures of ``measure`` over the retrievers."""
        names = sorted(self.documents)
        value = kendalltau(
            [self.documents[n][measure] for n in names], [self.chunks[n][measure] for n in names]
        ).statistic
        return float(value)


def measure_agreement(
    root: Path = SCIFACT,
    retrievers: dict[str, Retriever] | None = None,
    *,
    min_overlap: float = 0.5,
) -> Agreement:
    """Chunk SciFact, remap its test qrels and score ``retrievers`` at both levels."""
    chosen = retrievers or LEXICAL
    gold = load_goldset(root, format="beir", split="test")
    corpus = {document.id: document for document in iter_corpus(root)}
    documents = list(corpus.values())
    chunks = [chunk for document in documents for chunk in sentence_chunks(document)]
    doc_gold = span_goldset(gold, corpus)
    remap = remap_judgments(doc_gold.judgments, chunks, min_overlap=min_overlap)
    query_ids = [q.id for q in gold.queries]
    texts = [q.text for q in gold.queries]
    doc_eval = Evaluator(doc_gold.judgments, MEASURES)
    chunk_eval = Evaluator(remap.judgments, MEASURES)
    at_documents: dict[str, dict[str, float]] = {}
    at_chunks: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    for name, retriever in chosen.items():
        clock = time.perf_counter()
        doc_run = run_of(retriever(texts, documents), query_ids, documents)
        chunk_run = run_of(retriever(texts, chunks), query_ids, chunks)
        seconds[name] = time.perf_counter() - clock
        at_documents[name] = dict(doc_eval.evaluate(doc_run, complete=True).aggregate)
        at_chunks[name] = dict(chunk_eval.evaluate(chunk_run, complete=True).aggregate)
    return Agreement(at_documents, at_chunks, remap, len(chunks), seconds)


def _table(title: str, figures: dict[str, dict[str, float]], order: list[str]) -> str:
    lines = [title, f"  {'retriever':<22}" + "".join(f"{m:>12}" for m in MEASURES)]
    lines += [
        f"  {name:<22}" + "".join(f"{figures[name][m]:>12.4f}" for m in MEASURES) for name in order
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-dense", action="store_true", help="skip MiniLM")
    parser.add_argument("--min-overlap", type=float, default=0.5)
    args = parser.parse_args()
    if not SCIFACT.is_dir():
        sys.exit(f"{SCIFACT} is not present; this benchmark reads BEIR SciFact from ../shared/data")
    retrievers = dict(LEXICAL)
    if not args.no_dense:
        retrievers = {"minilm": minilm(), **retrievers}
    started = time.perf_counter()
    result = measure_agreement(retrievers=retrievers, min_overlap=args.min_overlap)
    counts = result.remap.counts
    per_source = result.n_chunks / 5183
    print(f"SciFact: 5,183 abstracts -> {result.n_chunks:,} chunks of 2-3 sentences "
          f"({per_source:.2f} per abstract); load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"remap of {len(result.remap.outcome_of())} test judgments: {counts}; "
          f"{len(result.remap.judgments)} chunk judgments")  # fmt: skip
    documents_order = result.ranking("documents")
    print(_table("document level (doc goldset)", result.documents, documents_order))
    print(_table("chunk level (remapped goldset)", result.chunks, result.ranking("chunks")))
    for measure in ("ndcg@10", "recall@100"):
        print(f"{measure}: documents {' > '.join(result.ranking('documents', measure))}")
        print(f"{measure}: chunks    {' > '.join(result.ranking('chunks', measure))}")
        print(f"{measure}: Kendall tau {result.tau(measure):.3f}")
    print("seconds per retriever (both levels): "
          + ", ".join(f"{n} {s:.1f}" for n, s in result.seconds.items())
          + f"; total {time.perf_counter() - started:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
