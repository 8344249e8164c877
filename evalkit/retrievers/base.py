"""The retriever protocol, and what every adapter shares.

Adapters never swallow errors: a query that fails or times out comes back as a
``QueryResult`` whose ``error`` says what happened, so its run is stored as ``partial``.
Only a retriever that cannot work at all (unreachable, misconfigured, built with another
embedding model) raises ``RetrieverError``, up front: in its constructor or ``check()``.
"""

from __future__ import annotations

import math
import numbers
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self, TypeVar, runtime_checkable

from evalkit.embedding.fingerprint import ModelFingerprint
from evalkit.errors import ConfigError, RetrieverError
from evalkit.records import Query, QueryResult, ScoredDoc
from evalkit.records.requests import validate_k
from evalkit.redaction import redact

__all__ = [
    "BATCH_SHARE",
    "LATENCY_TIMING",
    "PER_QUERY",
    "RESULTS_CONTRACT",
    "TENANT_FORWARDING_KINDS",
    "ClosesOnExit",
    "IndexSize",
    "Retriever",
    "SupportsCheck",
    "SupportsIndexSize",
    "SupportsPrefetch",
    "SupportsRetrieve",
    "Unfingerprinted",
    "check_retriever",
    "checked_description",
    "checked_results",
    "describe_exception",
    "description_of",
    "elapsed_ms",
    "failed_result",
    "filters_by_tenant",
    "fingerprints_of",
    "finite_float",
    "index_size_of",
    "integer_tenant",
    "latency_timing",
    "ranked_docs",
    "redact",
    "retrieve_in_batches",
    "tenant_groups",
    "validate_k",
]


@runtime_checkable
class SupportsRetrieve(Protocol):
    """What evalkit requires of a retriever of one's own: ``retrieve`` alone.

    ``retrieve`` is batched: it returns one ``QueryResult`` per query, in the order given,
    with ``ScoredDoc`` ranks 1..n and scores where higher is better, and the latency of
    each query in milliseconds. The workflows that replay a retriever take this; the rest
    of ``Retriever`` is used when present (``description_of``, ``fingerprints_of``).
    """

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        """Return the top ``k`` documents of every query, one result per query, in order."""
        ...


@runtime_checkable
class Retriever(SupportsRetrieve, Protocol):
    """Anything that turns queries into ranked documents, and says what it is.

    ``retrieve`` as ``SupportsRetrieve``. ``describe`` returns the kind and configuration
    needed to reproduce a run (never a secret). ``index_fingerprint`` and
    ``model_fingerprint`` identify the index and embedding model behind the retriever, when
    it can tell. evalkit's own adapters have all four.
    """

    def describe(self) -> dict[str, Any]:
        """Kind and configuration of this retriever, for reproducibility; no secrets."""
        ...

    def index_fingerprint(self) -> str | None:
        """Fingerprint of the indexed corpus, or None when the retriever cannot give one."""
        ...

    def model_fingerprint(self) -> ModelFingerprint | None:
        """Fingerprint of the embedding model the index was built with, when known."""
        ...


@runtime_checkable
class SupportsCheck(Protocol):
    """A retriever that can verify, before a run, that it is reachable and configured."""

    def check(self) -> None:
        """Raise ``RetrieverError`` saying what to do when the retriever cannot work."""
        ...


@runtime_checkable
class SupportsPrefetch(Protocol):
    """A retriever that embeds query texts itself and can embed a known set ahead of the
    ``retrieve`` calls that will ask for it (the pipeline does so before a goldset replay)."""

    def prefetch(self, texts: Sequence[str]) -> None:
        """Start embedding ``texts`` in the background; returns at once."""
        ...


@dataclass(frozen=True, slots=True)
class IndexSize:
    """How large the index behind a retriever is, as its store counts it: ``documents`` (the
    records a search can return: Chroma records, table rows, Qdrant points) and ``vectors``
    (those holding an embedding) where the store can say; None where it cannot."""

    documents: int | None
    vectors: int | None = None


@runtime_checkable
class SupportsIndexSize(Protocol):
    """A retriever that can say how large its index is now (each run records it)."""

    def index_size(self) -> IndexSize | None:
        """The index's size now; None when it cannot be read."""
        ...


def index_size_of(retriever: object) -> IndexSize | None:
    """``retriever.index_size()`` when it has the method (``SupportsIndexSize``), else None.

    Never raises: a run records the size as it records the index fingerprint, best effort,
    and a store that cannot be counted fails the run's queries, not its record.
    """
    if not isinstance(retriever, SupportsIndexSize):
        return None
    try:
        size = retriever.index_size()
    except Exception:  # a plug-in's own method may raise anything; the size is a record
        return None
    return size if isinstance(size, IndexSize) else None


DESCRIBE_CONTRACT = (
    "describe() must return a dict of the retriever's kind and configuration "
    "(docs/retrievers.md, 'The protocol')"
)


def checked_description(described: object) -> dict[str, Any]:
    """What a retriever's ``describe()`` returned, as a dict; ``ConfigError`` saying what
    ``describe()`` must return when it is no mapping (None from a forgotten ``return``)."""
    if not isinstance(described, Mapping):
        shown = "None" if described is None else _named_type(described)
        raise ConfigError(f"describe() returned {shown}; {DESCRIBE_CONTRACT}")
    return dict(described)


def description_of(retriever: object) -> dict[str, Any]:
    """``retriever.describe()`` (checked: ``checked_description``); for an object that has
    only ``retrieve`` (a retriever of one's own handed to the Python API), its class, so the
    run still says what it replayed."""
    describe = getattr(retriever, "describe", None)
    if callable(describe):
        return checked_description(describe())
    made = type(retriever)
    return {"class": f"{made.__module__}.{made.__qualname__}"}


def fingerprints_of(retriever: object) -> tuple[ModelFingerprint | None, str | None]:
    """The model and index fingerprints ``retriever`` gives, None for a method it does not
    have (the protocol's "cannot tell")."""
    model = getattr(retriever, "model_fingerprint", None)
    index = getattr(retriever, "index_fingerprint", None)
    return (model() if callable(model) else None, index() if callable(index) else None)


class ClosesOnExit:
    """A mixin for retrievers that hold a client or connection: ``with retriever:`` calls
    the class's ``close`` on the way out."""

    def close(self) -> None:
        """Release what the retriever holds (each class says what)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Unfingerprinted:
    """A mixin for retrievers that cannot tell what they indexed or which model embeds the
    queries (a generic HTTP endpoint, a framework's retriever): both fingerprints are None."""

    def index_fingerprint(self) -> str | None:
        """None: the retriever does not say what it has indexed."""
        return None

    def model_fingerprint(self) -> ModelFingerprint | None:
        """None: the retriever does not say which model embeds the queries."""
        return None


RESULTS_CONTRACT = (
    "retrieve(queries, k) must return a list of evalkit.records.QueryResult, one per query, "
    "in the order given (docs/retrievers.md, 'The protocol')"
)


def _named_type(value: object) -> str:
    """``value``'s type with its article: ``an int``, ``a mypackage.Hit``."""
    kind = type(value)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    return f"{'an' if name[:1].lower() in ('a', 'e', 'i', 'o', 'u') else 'a'} {name}"


def checked_results(queries: Sequence[Query], answered: object) -> list[QueryResult]:
    """``answered`` as what ``retrieve(queries, k)`` must return, checked.

    Raises ``ConfigError`` (a broken adapter: every batch would fail alike) when it is not a
    list of ``QueryResult``, and ``RetrieverError`` when its results are not one per query
    in the order given; both say what ``retrieve`` must return.
    """
    if isinstance(answered, str | bytes | Mapping) or not isinstance(answered, Sequence):
        raise ConfigError(f"retrieve() returned {_named_type(answered)}; {RESULTS_CONTRACT}")
    for position, result in enumerate(answered):
        if not isinstance(result, QueryResult):
            raise ConfigError(
                f"retrieve() returned a list whose item {position} is "
                f"{_named_type(result)}, not a QueryResult; {RESULTS_CONTRACT}"
            )
    expected = [query.id for query in queries]
    got = [result.query_id for result in answered]
    if got != expected:
        raise RetrieverError(
            f"retrieve() answered {len(got)} queries {got[:3]}... for a batch of "
            f"{len(expected)} queries {expected[:3]}...; {RESULTS_CONTRACT}"
        )
    return list(answered)


def check_retriever(retriever: Retriever) -> None:
    """Run the retriever's ``check()`` when it has one; raises ``RetrieverError``."""
    if isinstance(retriever, SupportsCheck):
        retriever.check()


TENANT_FORWARDING_KINDS: Mapping[str, str] = {
    "http": "sends each query's tenant to the endpoint, which must filter by it",
}
"""Retriever kinds that pass the tenant on with every query, and how."""


def filters_by_tenant(description: Mapping[str, Any]) -> bool:
    """True when a retriever (by its ``describe()``) restricts each query to its tenant."""
    return bool(description.get("where_key")) or description.get("kind") in TENANT_FORWARDING_KINDS


def tenant_groups(
    queries: Sequence[Query], *, filtered: bool
) -> list[tuple[str | None, list[int]]]:
    """The positions of ``queries`` grouped by tenant, in first-seen order; one group with no
    tenant when the retriever does not filter by tenant (``filtered`` False)."""
    if not filtered:
        return [(None, list(range(len(queries))))]
    groups: dict[str | None, list[int]] = {}
    for position, query in enumerate(queries):
        groups.setdefault(query.tenant, []).append(position)
    return list(groups.items())


_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]{0,18})")
_INT64 = range(-(2**63), 2**63)


def integer_tenant(tenant: str) -> int | None:
    """``tenant`` as a 64-bit integer when it is one written plainly (``1``, ``-3``; not
    ``01``, ``+1`` or ``1.0``), else None.

    A goldset's tenants are text, but a store may hold them as integers in its metadata, and
    Chroma's and Qdrant's filters compare types strictly: ``"1"`` never matches ``1``. Such a
    tenant is matched both ways, as PostgreSQL's ``tenant = '1'`` does on an integer column.
    """
    if _INTEGER.fullmatch(tenant) is None:
        return None
    number = int(tenant)
    return number if number in _INT64 else None


Group = TypeVar("Group")


def retrieve_in_batches(
    queries: Sequence[Query],
    groups: Iterable[tuple[Group, list[int]]],
    *,
    batch_size: int,
    retrieve_batch: Callable[[list[Query], Group], list[QueryResult]],
) -> list[QueryResult]:
    """Answer ``queries`` group by group (a tenant or its filter, with the positions of its
    queries), ``batch_size`` queries per ``retrieve_batch`` call; the results come back in
    the order of ``queries``."""
    by_position: dict[int, QueryResult] = {}
    for group, positions in groups:
        for start in range(0, len(positions), batch_size):
            batch = positions[start : start + batch_size]
            answered = retrieve_batch([queries[i] for i in batch], group)
            by_position.update(zip(batch, answered, strict=True))
    return [by_position[position] for position in range(len(queries))]


def finite_float(value: object) -> float | None:
    """``value`` as a float when it is a real number (not a bool) that a float holds and that
    is finite, else None.

    JSON and Python integers have no size limit: an integer too large for a float (past
    about 1.8e308) is None, as infinity is, rather than an ``OverflowError``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def ranked_docs(doc_ids: Sequence[str], scores: Iterable[float]) -> tuple[ScoredDoc, ...]:
    """Pair ids with scores in the order given and number them 1..n."""
    return tuple(
        ScoredDoc(doc_id=doc_id, score=float(score), rank=rank)
        for rank, (doc_id, score) in enumerate(zip(doc_ids, scores, strict=True), start=1)
    )


def failed_result(query_id: str, message: str, latency_ms: float) -> QueryResult:
    """A result recording that ``query_id`` failed with ``message``."""
    return QueryResult(query_id=query_id, docs=(), latency_ms=latency_ms, error=message)


def elapsed_ms(start: float) -> float:
    """Milliseconds since ``start``, a ``time.perf_counter()`` reading."""
    return (time.perf_counter() - start) * 1000.0


LATENCY_TIMING = "latency_timing"
"""The ``describe()`` field that says how the retriever timed its queries: ``PER_QUERY`` or
``BATCH_SHARE``."""
PER_QUERY = "per_query"
"""Each query's latency is the time of its own request, sent alone."""
BATCH_SHARE = "batch_share"
"""Each query's latency is its share of the time of a request that carried several queries:
every query of a batch carries the same value, so it is no latency of that query."""


def latency_timing(description: Mapping[str, Any]) -> str:
    """How the retriever that ``description`` describes (``describe()``, or a stored run's
    ``retriever_config``) timed its queries: the ``latency_timing`` it gives; for a run stored
    before retrievers said, ``BATCH_SHARE`` where a vector store searched several queries in
    one request (a ``batch_size`` above 1; Qdrant, which recorded none, 64 by default) and
    ``PER_QUERY`` otherwise."""
    given = description.get(LATENCY_TIMING)
    if given in (PER_QUERY, BATCH_SHARE):
        return str(given)
    batch_size = description.get("batch_size")
    if isinstance(batch_size, int) and batch_size > 1:
        return BATCH_SHARE
    if batch_size is None and description.get("kind") == "qdrant":
        return BATCH_SHARE
    return PER_QUERY


def describe_exception(error: BaseException) -> str:
    """``TypeName: message``, so a stored error says what kind of failure it was."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
