"""The audit's settings (``AuditConfig``) and what every check reads (``AuditContext``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from evalkit.audit.snapshot import IndexSnapshot
from evalkit.embedding import TextEmbedder
from evalkit.errors import ConfigError, RetrieverError
from evalkit.goldset.model import Goldset
from evalkit.goldset.remap import SourceText
from evalkit.records import Query
from evalkit.records.audit import AuditConfig, CheckOutcome
from evalkit.retrievers.base import describe_exception

if TYPE_CHECKING:
    from evalkit.audit.snapshot import AuditedCollection

__all__ = ["AuditContext", "RetrievedLists", "SourceHashes"]

_QUERY_BATCH = 100
_MOSTLY_ANOTHER_MODEL = 0.5


@dataclass(frozen=True, slots=True)
class SourceHashes:
    """Each source document's ``content_hash`` and ``embedded_text_hash``, by id
    (``evalkit.audit.staleness.hash_source``)."""

    content: Mapping[str, str]
    text: Mapping[str, str]

    def __len__(self) -> int:
        return len(self.content)


@dataclass(frozen=True, slots=True)
class RetrievedLists:
    """Queries embedded with the query model and what the collection's ANN index returned.

    ``doc_ids[i]`` are the ranked ids Chroma returned for ``query_ids[i]``.
    """

    query_ids: tuple[str, ...]
    vectors: npt.NDArray[np.float32]
    doc_ids: tuple[tuple[str, ...], ...]


@dataclass(eq=False)
class AuditContext:
    """Everything the checks read: the collection, its snapshot, the inputs, the settings.

    ``source_hashes``: each source document's content and text hash; ``span_sources``: the
    current text of each source the span judgments name (each None without a source);
    ``queries``: what ANN recall samples; ``outcomes``: the findings so far, by check.
    """

    collection: AuditedCollection
    snapshot: IndexSnapshot
    config: AuditConfig
    embedder: TextEmbedder | None = None
    source_hashes: SourceHashes | None = None
    span_sources: Mapping[str, SourceText] | None = None
    goldset: Goldset | None = None
    queries: Sequence[Query] | None = None
    previous: Mapping[str, float] = field(default_factory=dict)
    outcomes: dict[str, CheckOutcome] = field(default_factory=dict)

    @cached_property
    def embedder_problem(self) -> str | None:
        """Why the query model cannot query this collection, or None when it can."""
        if self.embedder is None:
            return "no query model was given"
        if len(self.snapshot) and self.embedder.dimension != self.snapshot.dimension:
            return (
                f"the query model makes {self.embedder.dimension}-dimensional vectors but the "
                f"collection holds {self.snapshot.dimension}-dimensional ones"
            )
        return None

    @property
    def other_model(self) -> str | None:
        """Why the collection's vectors are known to come from another model than the query
        model, or None: the vectors' dimension, else the model check's re-embedding sample
        when it ran (more than half of it made by another model), else the model the
        collection records. Queries embedded with the query model then land in another
        vector space than the documents, so what the index returns for them shows the
        mismatch, not the index or the goldset."""
        if self.embedder is None:
            return None
        if self.embedder_problem is not None:
            return self.embedder_problem
        model = self.outcomes.get("model")
        sampled = model.measurements.get("model_sampled_documents", 0.0) if model else 0.0
        if model is not None and sampled:
            mismatched = model.measurements.get("model_mismatched_documents", 0.0)
            if mismatched / sampled <= _MOSTLY_ANOTHER_MODEL:
                return None
            return (
                f"{mismatched:g} of {sampled:g} re-embedded documents do not match their "
                "stored vectors (vectors_from_another_model)"
            )
        stored, current = self.snapshot.stored_model, self.embedder.fingerprint
        if stored is None or stored.matches(current):
            return None
        return (
            f"the collection was built with {stored.name}, not the query model "
            f"{current.name} (model_fingerprint_mismatch)"
        )

    @cached_property
    def golden_results(self) -> RetrievedLists | None:
        """The golden queries run against the ANN index (None without goldset or model)."""
        if self.goldset is None or self.embedder_problem is not None:
            return None
        return self.retrieve(self.goldset.queries)

    @cached_property
    def rng(self) -> np.random.Generator:
        """The audit's random generator (seeded by ``config.seed``)."""
        return np.random.default_rng(self.config.seed)

    def retrieve(self, queries: Sequence[Query]) -> RetrievedLists:
        """Embed ``queries`` with the query model and run them against the collection."""
        if self.embedder is None:
            raise ConfigError("running queries against the collection needs a query model")
        vectors = self.embedder.embed([query.text for query in queries])
        return RetrievedLists(
            query_ids=tuple(query.id for query in queries),
            vectors=vectors,
            doc_ids=self.query_index(vectors),
        )

    def query_index(self, vectors: npt.NDArray[np.float32]) -> tuple[tuple[str, ...], ...]:
        """The ids the collection's ANN index returns for each query vector (top ``k``)."""
        depth = min(self.config.k, len(self.snapshot))
        if depth == 0 or len(vectors) == 0:
            return tuple(() for _ in range(len(vectors)))
        answered: list[tuple[str, ...]] = []
        for start in range(0, len(vectors), _QUERY_BATCH):
            batch = vectors[start : start + _QUERY_BATCH]
            try:
                response = self.collection.query(
                    query_embeddings=batch, n_results=depth, include=["distances"]
                )
            except RetrieverError:  # another engine's, which says what failed
                raise
            except Exception as error:  # connection, server and validation errors alike
                raise RetrieverError(
                    f"querying Chroma collection '{self.snapshot.name}' failed: "
                    f"{describe_exception(error)}"
                ) from error
            answered.extend(tuple(str(doc_id) for doc_id in ids) for ids in response["ids"])
        return tuple(answered)
