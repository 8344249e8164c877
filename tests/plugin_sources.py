"""Sources of retriever modules a test writes beside its store and names as
``--retriever module:make``, as a user's own factory is named: no model, index or server."""

from __future__ import annotations


def fixed_retriever_source(first: str = "d001", second: str = "d002") -> str:
    """A module whose ``make()`` returns a retriever answering every query with the same
    documents, ``first`` (score 1.0) then ``second`` (0.5), cut at k."""
    return f"""
from evalkit.records import QueryResult
from evalkit.retrievers.base import ranked_docs

DOCS = ["{first}", "{second}"]


class Fixed:
    def retrieve(self, queries, k):
        return [
            QueryResult(query_id=query.id, docs=ranked_docs(DOCS[:k], [1.0, 0.5]), latency_ms=1.0)
            for query in queries
        ]

    def describe(self):
        return {{"kind": "fixed"}}


def make():
    return Fixed()
"""


def stalling_retriever_source() -> str:
    """A module whose ``make()`` returns a retriever answering its first batch of queries at
    once and stalling on the next (for an interruption mid-replay)."""
    return """
import sys
import time

from evalkit.records import QueryResult
from evalkit.retrievers.base import ranked_docs


class Stalling:
    def __init__(self):
        self.batches = 0

    def retrieve(self, queries, k):
        self.batches += 1
        if self.batches > 1:
            print("stalling", file=sys.stderr, flush=True)
            # In slices: a signal that lands between the print and the start of a sleep is
            # acted on only when the sleep ends (CPython checks for signals between
            # bytecodes), as with any blocking call of a user's retriever.
            for _ in range(6000):
                time.sleep(0.1)
        return [
            QueryResult(query_id=query.id, docs=ranked_docs(["d1"], [1.0]), latency_ms=1.0)
            for query in queries
        ]

    def describe(self):
        return {"kind": "stalling"}


def make():
    return Stalling()
"""
