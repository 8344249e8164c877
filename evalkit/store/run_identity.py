"""What tells the retrievers and indexes of stored runs apart: ``RETRIEVER_ID_SQL`` names a
run's retriever wherever runs are grouped by retriever, and ``index_changed`` (in SQL,
``index_changed_sql``) says whether two runs searched different indexes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evalkit.retrievers.kinds import (
    COLLECTION,
    DEFAULT_IDENTITY,
    RETRIEVER_KINDS,
    Identity,
    Joined,
)

if TYPE_CHECKING:
    from evalkit.store.runs import RunSpec

__all__ = [
    "INDEXED_FINGERPRINT",
    "RETRIEVER_ID_SQL",
    "index_changed",
    "index_changed_sql",
    "retriever_id_sql",
]


def _config_sql(name: str) -> str:
    """SQL reading the text of field ``name`` of a run's ``retriever_config`` (NULL if empty)."""
    return f"nullif(json_extract_string(retriever_config, '$.{name}'), '')"


def _alternative_sql(alternative: str | Joined, *, outer: bool = True) -> str:
    if isinstance(alternative, Joined):
        joined = ", ".join(_alternative_sql(part, outer=False) for part in alternative.fields)
        text = f"concat_ws('{alternative.sep}', {joined})"
        return f"nullif({text}, '')" if outer else text
    if alternative == COLLECTION:
        return "nullif(collection, '')"
    return _config_sql(alternative)


def _identity_sql(identity: Identity) -> str:
    """SQL of where a run searched, as a kind's ``identity`` declares it."""
    parts = [
        _alternative_sql(part[0])
        if len(part) == 1
        else f"coalesce({', '.join(_alternative_sql(a) for a in part)})"
        for part in identity
    ]
    return parts[0] if len(parts) == 1 else f"concat_ws('@', {', '.join(parts)})"


def _where_sql() -> str:
    """SQL of where a run searched, by the identity its kind declares (``RetrieverKind``)."""
    declared = "".join(
        f" WHEN '{name}' THEN {_identity_sql(kind.identity)}"
        for name, kind in RETRIEVER_KINDS.items()
        if kind.identity != DEFAULT_IDENTITY
    )
    default = _identity_sql(DEFAULT_IDENTITY)
    if not declared:
        return f"nullif({default}, '')"
    return f"nullif(CASE retriever_kind{declared} ELSE {default} END, '')"


_FACTORY_SQL = _config_sql("factory")


def retriever_id_sql() -> str:
    """``RETRIEVER_ID_SQL`` for the retriever kinds registered now."""
    return (
        f"concat(CASE WHEN retriever_kind = 'factory' THEN coalesce({_FACTORY_SQL}, retriever_kind)"
        # A fused run is named by its method: two fusions of one collection are two retrievers.
        " WHEN retriever_kind = 'fusion' THEN concat_ws(' ', retriever_kind,"
        "  nullif(json_extract_string(retriever_config, '$.method'), ''))"
        f" ELSE retriever_kind END, ':' || {_where_sql()},"
        f" CASE WHEN {_FACTORY_SQL} IS NOT NULL THEN"
        "  ' ' || nullif(json_extract(retriever_config, '$.options')::VARCHAR, '{}') END)"
    )


RETRIEVER_ID_SQL = retriever_id_sql()
"""SQL naming a run's retriever, over the ``runs`` columns: what tells two retrievers apart
wherever runs are grouped by retriever (``runs list``, the dashboard's series, the default
baseline of ``explain``, ``drift precision``, the precision alert rule).

A built-in kind with where it searches (``chroma-embedded:demo``, ``http:http://...``; a
pgvector table with its server and database, ``pgvector:public.docs@db.internal:5432/rag``; a
Qdrant collection with its server or local store, ``qdrant:docs@http://qdrant:6333``); the
user's own factory by its ``module:attribute`` and a plug-in by its name, each with where
its retriever searches when it says, and the options it was called with as JSON (secrets
masked), so ``mymod:make``, ``mymod:make_worse`` and ``mymod:make {"top":3}`` are three
retrievers. Where a built-in kind searches is what its registration declares
(``RetrieverKind.identity``); the others' is their collection, else their URL or path.
Computed from what every run has recorded since plug-ins existed, so runs stored by earlier
versions get theirs too.
"""


INDEXED_FINGERPRINT = "indexed_fingerprint"
"""The ``describe()`` field of a Chroma run holding the fingerprint ``evalkit index`` stored
in the collection: the whole index fingerprint of runs an earlier evalkit recorded."""


def index_changed(before: RunSpec, after: RunSpec) -> bool:
    """Whether two runs searched different indexes, by their index fingerprints; Chroma runs
    recorded before fingerprints covered contents count as the same index when the older one's
    fingerprint is the newer one's stored ``INDEXED_FINGERPRINT`` and their document counts
    agree. ``index_changed_sql`` is the same rule in SQL."""
    if before.index_fingerprint == after.index_fingerprint:
        return False
    return not any(
        older.index_fingerprint is not None
        and older.index_fingerprint == newer.retriever_config.get(INDEXED_FINGERPRINT)
        and older.retriever_config.get("count") == newer.retriever_config.get("count")
        for older, newer in ((before, after), (after, before))
    )


def index_changed_sql(before: str, after: str) -> str:
    """``index_changed`` as an SQL condition over two rows of ``runs`` columns, those of one
    named with the prefix ``before`` (``prev_index_fingerprint``, ``prev_retriever_config``),
    of the other with ``after``."""

    def recorded_before(older: str, newer: str) -> str:
        return (
            f"({older}index_fingerprint = json_extract_string({newer}retriever_config,"
            f" '$.{INDEXED_FINGERPRINT}') AND json_extract({older}retriever_config, '$.count')"
            f" IS NOT DISTINCT FROM json_extract({newer}retriever_config, '$.count'))"
        )

    return (
        f"({before}index_fingerprint IS DISTINCT FROM {after}index_fingerprint AND NOT"
        f" coalesce({recorded_before(before, after)} OR {recorded_before(after, before)},"
        " false))"
    )
