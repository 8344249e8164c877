"""What the LangChain and LlamaIndex adapters share: turning a framework's hits into results.

Both adapters reduce documents or nodes to ``Hit`` (id, and score or None). Ids come from a
configured metadata key, else the framework's own id; a hit with no id fails its query with
a message naming the key to set, since a document the metrics cannot name would silently
count as not relevant. Scores are the store's when every hit has a finite one, else
``1 / rank``; ``describe()`` states which, before any query is sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from evalkit.errors import ConfigError
from evalkit.records import Query, QueryResult
from evalkit.retrievers.base import ClosesOnExit, Unfingerprinted, finite_float, ranked_docs

__all__ = [
    "NOT_FINGERPRINTED",
    "SCORE_METADATA_KEYS",
    "FrameworkAdapter",
    "Hit",
    "MissingIdError",
    "finite_score",
    "hits_result",
    "metadata_id",
    "metadata_score",
    "rank_fallback",
]

R = TypeVar("R")

NOT_FINGERPRINTED = (
    "the retriever encodes queries itself, or does not embed; evalkit cannot fingerprint its model"
)
"""What a run records as its model when evalkit does not embed the queries: the retriever
encodes them with a model evalkit does not call, or searches without embeddings (BM25)."""

SCORE_METADATA_KEYS = ("relevance_score", "score", "_score", "similarity_score")
"""Metadata keys in which retrievers (rerankers, hybrid and vector stores) leave a score."""


class MissingIdError(ValueError):
    """A returned document carries no id under the configured key (nor its own id)."""


@dataclass(frozen=True, slots=True)
class Hit:
    """One returned document: its id and the store's score, if it gave one."""

    doc_id: str
    score: float | None


def metadata_id(
    metadata: Mapping[str, Any] | None, own_id: object, id_key: str | None, *, what: str
) -> str:
    """The document id: ``metadata[id_key]`` when ``id_key`` is set, else ``own_id``.

    Raises ``MissingIdError`` naming the key to set when there is no id.
    """
    if id_key is not None:
        value = (metadata or {}).get(id_key)
        if value is None or value == "":
            keys = ", ".join(sorted(metadata or {})) or "none"
            raise MissingIdError(
                f"a returned {what} has no metadata key {id_key!r} (its keys: {keys}); "
                "set [retriever] id_key to the key holding the document id"
            )
        return str(value)
    if own_id is None or own_id == "":
        keys = ", ".join(sorted(metadata or {})) or "none"
        raise MissingIdError(
            f"a returned {what} has no id; set [retriever] id_key to the metadata key "
            f"holding the document id (its keys: {keys})"
        )
    return str(own_id)


def finite_score(value: object) -> float | None:
    """``value`` as a float when it is a finite number (not a bool) a float can hold, else
    None (an integer too large for a float too)."""
    if not isinstance(value, int | float):
        return None
    return finite_float(value)


def metadata_score(metadata: Mapping[str, Any] | None) -> float | None:
    """The first finite number under one of ``SCORE_METADATA_KEYS``, or None."""
    for key in SCORE_METADATA_KEYS:
        score = finite_score((metadata or {}).get(key))
        if score is not None:
            return score
    return None


def rank_fallback(source: str) -> str:
    """The scoring rule of ``hits_result`` for hits scored from ``source``, as ``describe()``
    states it."""
    return f"{source} when every hit has a finite one, else 1/rank for that query"


def hits_result(query: Query, hits: Sequence[Hit], k: int, latency_ms: float) -> QueryResult:
    """The ``QueryResult`` of ``query``: the first ``k`` hits, scored by the store or by rank.

    Hits' scores must already be finite or None (``finite_score``).
    """
    kept = list(hits[:k])
    if kept and all(hit.score is not None for hit in kept):
        scores: list[float] = [float(hit.score) for hit in kept if hit.score is not None]
    else:
        scores = [1.0 / rank for rank in range(1, len(kept) + 1)]
    return QueryResult(
        query_id=query.id,
        docs=ranked_docs([hit.doc_id for hit in kept], scores),
        latency_ms=latency_ms,
    )


def qualified_name(value: object) -> str:
    """``module.Class`` of ``value``'s type."""
    return f"{type(value).__module__}.{type(value).__qualname__}"


class FrameworkAdapter(Unfingerprinted, ClosesOnExit, Generic[R]):
    """What the adapters of retrievers that embed queries themselves share.

    Takes the user's retriever (an instance of the class's ``_base``) and the options, checked;
    answers None for both fingerprints (the framework's retriever does not say what it
    indexed, and embeds queries with a model evalkit does not call); and closes nothing (the
    user's retriever belongs to the user). What an adapter works out from the retriever
    before any query is sent, it does in ``_setup``.
    """

    _framework: ClassVar[str]
    """The framework's name, as messages give it."""
    _base: ClassVar[type]
    """The framework's retriever class, of which the adapter takes an instance."""

    def __init__(
        self,
        retriever: R,
        *,
        id_key: str | None = None,
        concurrency: int = 8,
        where_key: str | None = None,
    ) -> None:
        """``id_key``: the metadata key holding the document id; ``concurrency``: queries in
        flight; ``where_key``: the metadata key each query's tenant is filtered on."""
        base = self._base
        if not isinstance(retriever, base):
            raise ConfigError(
                f"the {self._framework} adapter needs a {base.__module__}.{base.__qualname__}, "
                f"got {qualified_name(retriever)}"
            )
        if concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {concurrency}")
        self._retriever = retriever
        self._id_key = id_key
        self._concurrency = concurrency
        self._where_key = where_key
        self._setup()

    def _setup(self) -> None:
        """Work out from the retriever how to call it, or refuse it with ConfigError."""

    def _described(self, kind: str, *, scores: str) -> dict[str, Any]:
        return {
            "kind": kind,
            "retriever": qualified_name(self._retriever),
            "id_key": self._id_key,
            "concurrency": self._concurrency,
            "scores": scores,
            "model": NOT_FINGERPRINTED,
            "where_key": self._where_key,
        }

    def close(self) -> None:
        """Nothing to close: the user's retriever belongs to the user."""
