"""The audit's settings (``AuditConfig``) and what every check reads (``AuditContext``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from evalkit.audit.snapshot import IndexSnapshot
from evalkit.config.audit import DEFAULT_ORPHANED_RELEVANT_CRITICAL_SHARE
from evalkit.embedding import TextEmbedder
from evalkit.errors import ConfigError, RetrieverError
from evalkit.goldset.model import Goldset
from evalkit.records import Query
from evalkit.records.audit import FINDING_KINDS, Finding, Severity
from evalkit.retrievers.base import describe_exception

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

__all__ = ["AuditConfig", "AuditContext", "RetrievedLists"]

CHECK_NAMES: tuple[str, ...] = (
    "duplicates",
    "staleness",
    "model",
    "ann_recall",
    "coverage",
    "orphans",
    "spans",
)

_QUERY_BATCH = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditConfig:
    """What an audit checks and the thresholds that turn measurements into findings.

    - ``near_duplicate_threshold``: cosine at or above which two stored vectors are near
      duplicates; ``block_size``: rows (and columns) of one tile of the blocked search.
    - ``model_sample_size``: stored documents re-embedded (None: all of them);
      ``model_min_cosine``: agreement below which a stored vector came from another model.
    - ``k``: depth of the ANN recall and judged@k; ``ann_max_queries``: queries sampled;
      ``ann_min_recall`` (warning) and ``ann_critical_recall`` (critical).
    - ``min_judged_at_k``: judged@k below which coverage is low; ``max_judged_drop``: relative
      drop from the previous audit's judged@k that is reported even above that floor.
    - ``orphaned_relevant_critical_share``: share of the goldset's relevant documents missing
      from the index above which orphaned judgments are critical (the ``[audit]`` setting).
    - ``severities``: per finding kind, a severity replacing the default.
    """

    checks: tuple[str, ...] = CHECK_NAMES
    near_duplicate_threshold: float = 0.95
    block_size: int = 2048
    max_near_duplicate_pairs: int = 5_000_000
    model_sample_size: int | None = 256
    model_min_cosine: float = 0.99
    k: int = 10
    ann_max_queries: int = 200
    ann_min_recall: float = 0.95
    ann_critical_recall: float = 0.80
    min_judged_at_k: float = 0.05
    max_judged_drop: float = 0.5
    orphaned_relevant_critical_share: float = DEFAULT_ORPHANED_RELEVANT_CRITICAL_SHARE
    relevance_threshold: int = 1
    seed: int = 0
    page_size: int = 1000
    max_listed: int = 50
    severities: Mapping[str, Severity] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [name for name in self.checks if name not in CHECK_NAMES]
        if unknown:
            raise ConfigError(
                f"unknown audit checks {unknown}; choose from: {', '.join(CHECK_NAMES)}"
            )
        for name in ("near_duplicate_threshold", "model_min_cosine"):
            _require(name, getattr(self, name), low=-1.0, high=1.0, low_open=True)
        for name in (
            "ann_min_recall",
            "ann_critical_recall",
            "min_judged_at_k",
            "max_judged_drop",
            "orphaned_relevant_critical_share",
        ):
            _require(name, getattr(self, name), low=0.0, high=1.0)
        for name in ("block_size", "max_near_duplicate_pairs", "k", "ann_max_queries"):
            _require(name, getattr(self, name), low=1, high=math.inf)
        for name in ("page_size", "max_listed"):
            _require(name, getattr(self, name), low=1, high=math.inf)
        if self.model_sample_size is not None:
            _require("model_sample_size", self.model_sample_size, low=1, high=math.inf)
        unknown_kinds = [kind for kind in self.severities if kind not in FINDING_KINDS]
        if unknown_kinds:
            raise ConfigError(
                f"severities given for unknown finding kinds {unknown_kinds}; kinds are: "
                + ", ".join(FINDING_KINDS)
            )

    def severity(self, kind: str) -> Severity:
        """The severity of findings of ``kind``: the configured one, else the default."""
        configured = self.severities.get(kind)
        return Severity.parse(configured) if configured else FINDING_KINDS[kind].severity

    def finding(self, kind: str, message: str, count: int, **fields: Any) -> Finding:
        """A finding of ``kind`` with its check and configured severity filled in."""
        severity = fields.pop("severity", None) or self.severity(kind)
        return Finding(
            kind=kind,
            check=FINDING_KINDS[kind].check,
            severity=severity,
            message=message,
            count=count,
            **fields,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (recorded with every audit)."""
        data = asdict(self)
        data["checks"] = list(self.checks)
        data["severities"] = {kind: str(value) for kind, value in self.severities.items()}
        return data


def _require(name: str, value: float, *, low: float, high: float, low_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"audit setting {name} must be a number, got {value!r}")
    too_low = value <= low if low_open else value < low
    if too_low or value > high:
        bound = f"({low}" if low_open else f"[{low}"
        raise ConfigError(f"audit setting {name} must be in {bound}, {high}], got {value}")


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

    ``source_hashes`` maps each source document id to its content hash (None: no source);
    ``span_sources`` holds the current text of each source the goldset's span judgments
    name, rebuilt from the source corpus (None: no source corpus given);
    ``goldset`` supplies golden queries and judgments; ``queries`` are the queries the ANN
    recall check samples (default: the golden queries); ``previous`` holds the
    measurements of the previous comparable audit.
    """

    collection: Collection
    snapshot: IndexSnapshot
    config: AuditConfig
    embedder: TextEmbedder | None = None
    source_hashes: Mapping[str, str] | None = None
    span_sources: Mapping[str, str] | None = None
    goldset: Goldset | None = None
    queries: Sequence[Query] | None = None
    previous: Mapping[str, float] = field(default_factory=dict)

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
            except Exception as error:  # connection, server and validation errors alike
                raise RetrieverError(
                    f"querying Chroma collection '{self.snapshot.name}' failed: "
                    f"{describe_exception(error)}"
                ) from error
            answered.extend(tuple(str(doc_id) for doc_id in ids) for ids in response["ids"])
        return tuple(answered)
