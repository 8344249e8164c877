"""The ``bm25`` retriever: a BM25 index built by ``evalkit index --kind bm25``, searched in
this process with bm25s.

Queries are tokenised as the index's documents were (``bm25_index.query_tokenizer``); a
document's score is the sum of the BM25 weights, computed when the index was built, of the
query's terms it holds. Only documents that hold a query term are returned, best first,
equal scores by doc id descending, as trec_eval ranks them. It embeds nothing and filters by
no tenant; its index fingerprint is the one the index was built with (docs/retrievers.md,
"BM25").
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.embedding import ModelFingerprint
from evalkit.errors import ConfigError, RetrieverError
from evalkit.records import Query, QueryResult, ScoredDoc
from evalkit.retrievers.base import (
    ClosesOnExit,
    IndexSize,
    describe_exception,
    elapsed_ms,
    failed_result,
    ranked_docs,
    validate_k,
)
from evalkit.retrievers.bm25_index import (
    INDEX_TIME_OPTIONS,
    Bm25Index,
    Bm25Parameters,
    load_bm25_index,
    query_tokenizer,
)

__all__ = ["RUN_OPTIONS", "Bm25Retriever", "build_bm25_retriever"]

RUN_OPTIONS = ("index",)
"""Options of a run of the bm25 kind, beside the index-time ones it may repeat."""


class Bm25Retriever(ClosesOnExit):
    """Searches a BM25 index loaded from its directory."""

    def __init__(self, index: Bm25Index) -> None:
        self._index: Bm25Index | None = index
        self._tokenize = query_tokenizer(index.parameters)
        self._starts, self._positions = index.postings
        self._doc_ids = np.asarray(index.doc_ids, dtype=object)

    @classmethod
    def open(cls, path: Path | str) -> Bm25Retriever:
        """The retriever of the index saved at ``path``; ConfigError when there is none."""
        return cls(load_bm25_index(path))

    @property
    def index(self) -> Bm25Index:
        """The loaded index; RetrieverError once the retriever is closed."""
        if self._index is None:
            raise RetrieverError("this bm25 retriever is closed; open the index again")
        return self._index

    @property
    def parameters(self) -> Bm25Parameters:
        """The parameters the index was built with."""
        return self.index.parameters

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        """Return the top ``k`` documents of every query, one result per query, in order."""
        validate_k(k)
        index = self.index
        results = []
        for query in queries:
            start = time.perf_counter()
            try:
                docs = self._top(index, query.text, k)
            except Exception as error:  # a query that breaks bm25s fails alone
                results.append(
                    failed_result(query.id, describe_exception(error), elapsed_ms(start))
                )
                continue
            results.append(QueryResult(query_id=query.id, docs=docs, latency_ms=elapsed_ms(start)))
        return results

    def _top(self, index: Bm25Index, text: str, k: int) -> tuple[ScoredDoc, ...]:
        [terms] = self._tokenize([text])
        term_ids = index.model.get_tokens_ids(terms)
        if not term_ids:
            return ()
        scores = index.model.get_scores_from_ids(term_ids)
        matched = np.unique(
            np.concatenate(
                [
                    self._positions[self._starts[term] : self._starts[term + 1]]
                    for term in set(term_ids)
                ]
            )
        )
        matched_scores = scores[matched]
        if len(matched) > k:
            # Every document tied with the k-th stays in, so the tie-break decides who is cut.
            kth = np.partition(matched_scores, len(matched) - k)[len(matched) - k]
            keep = matched_scores >= kth
            matched, matched_scores = matched[keep], matched_scores[keep]
        # Documents are stored in doc id order: a higher position is a higher doc id.
        order = np.lexsort((-matched.astype(np.int64), -matched_scores))[:k]
        return ranked_docs(
            [str(doc_id) for doc_id in self._doc_ids[matched[order]]],
            matched_scores[order].tolist(),
        )

    def describe(self) -> dict[str, Any]:
        """The index's directory, size, build parameters and bm25s version."""
        index = self.index
        return {
            "kind": "bm25",
            "path": str(index.path.resolve()),
            "documents": len(index.doc_ids),
            "terms": len(self._starts) - 1,
            **index.parameters.to_dict(),
            "built_at": index.built_at,
            "bm25s_version": index.bm25s_version,
        }

    def index_fingerprint(self) -> str | None:
        """The fingerprint the index was built with (parameters, doc ids, content hashes)."""
        return self.index.fingerprint

    def index_size(self) -> IndexSize | None:
        """The documents the index holds; a lexical index holds no vectors."""
        return IndexSize(documents=len(self.index.doc_ids), vectors=0)

    def model_fingerprint(self) -> ModelFingerprint | None:
        """None: a lexical index is built with no embedding model."""
        return None

    def close(self) -> None:
        """Let go of the index's arrays."""
        self._index = None


def build_bm25_retriever(options: Mapping[str, Any]) -> Bm25Retriever:
    """The bm25 retriever ``options`` name: ``index`` (the directory ``evalkit index --kind
    bm25`` wrote) and, optionally, index-time options (``method``, ``k1``...), which must be
    those the index was built with.

    ConfigError for an unknown option or value, a missing index, or index-time options the
    index was not built with (BM25 weights are computed when the index is built).
    """
    unknown = sorted(set(options) - {*RUN_OPTIONS, *INDEX_TIME_OPTIONS})
    if unknown:
        raise ConfigError(
            f"unknown bm25 option {', '.join(unknown)}; a bm25 run takes index=DIR and may "
            f"repeat the options the index was built with ({', '.join(INDEX_TIME_OPTIONS)})"
        )
    asked = {key: value for key, value in options.items() if key in INDEX_TIME_OPTIONS}
    Bm25Parameters.from_options(asked)
    location = options.get("index")
    if not location or not isinstance(location, str | Path):
        raise ConfigError(
            "the bm25 retriever needs its index directory: --option index=DIR, or options = "
            '{ index = "DIR" } in the [retriever] table (build it with `evalkit index --kind '
            "bm25 --corpus CORPUS --out DIR`)"
        )
    retriever = Bm25Retriever.open(location)
    differences = retriever.parameters.differences(asked)
    if differences:
        retriever.close()
        said = ", ".join(f"{key} {want}" for key, (want, _) in differences.items())
        built = ", ".join(f"{key} {have}" for key, (_, have) in differences.items())
        raise ConfigError(
            f"bm25 index {location} was built with {built}, not {said}: BM25 weights are fixed "
            "when the index is built, so build another index with those options "
            f"(`evalkit index --kind bm25 --corpus CORPUS --out DIR --option ...`)"
        )
    return retriever
