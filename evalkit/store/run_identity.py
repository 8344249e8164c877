"""What tells the retrievers and indexes of stored runs apart: ``RETRIEVER_ID_SQL`` names a
run's retriever wherever runs are grouped by retriever, and ``index_changed`` (in SQL,
``index_changed_sql``) says whether two runs searched different indexes."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evalkit.store.runs import RunSpec

__all__ = ["INDEXED_FINGERPRINT", "RETRIEVER_ID_SQL", "index_changed", "index_changed_sql"]


def _config_sql(name: str) -> str:
    """SQL reading the text of field ``name`` of a run's ``retriever_config`` (NULL if empty)."""
    return f"nullif(json_extract_string(retriever_config, '$.{name}'), '')"


_URL_OR_PATH_SQL = f"coalesce({_config_sql('url')}, {_config_sql('path')})"
_PG_SERVER_SQL = (
    f"nullif(concat_ws('/', concat_ws(':', {_config_sql('host')}, {_config_sql('port')}),"
    f" {_config_sql('dbname')}), '')"
)
_WHERE_SQL = (
    "nullif(CASE retriever_kind"
    # A table is searched on one server and database; runs stored before the table was
    # recorded as their collection have it in their description.
    " WHEN 'pgvector' THEN concat_ws('@',"
    f"  coalesce(nullif(collection, ''), {_config_sql('table')}), {_PG_SERVER_SQL})"
    # Collections of one name on two servers (or local stores) are two indexes.
    f" WHEN 'qdrant' THEN concat_ws('@', nullif(collection, ''), {_URL_OR_PATH_SQL})"
    f" ELSE coalesce(nullif(collection, ''), {_URL_OR_PATH_SQL}) END, '')"
)
_FACTORY_SQL = _config_sql("factory")
RETRIEVER_ID_SQL = (
    f"concat(CASE WHEN retriever_kind = 'factory' THEN coalesce({_FACTORY_SQL}, retriever_kind)"
    # A fused run is named by its method: two fusions of one collection are two retrievers.
    " WHEN retriever_kind = 'fusion' THEN concat_ws(' ', retriever_kind,"
    "  nullif(json_extract_string(retriever_config, '$.method'), ''))"
    f" ELSE retriever_kind END, ':' || {_WHERE_SQL},"
    f" CASE WHEN {_FACTORY_SQL} IS NOT NULL THEN"
    "  ' ' || nullif(json_extract(retriever_config, '$.options')::VARCHAR, '{}') END)"
)
"""SQL naming a run's retriever, over the ``runs`` columns: what tells two retrievers apart
wherever runs are grouped by retriever (``runs list``, the dashboard's series, the default
baseline of ``explain``, ``drift precision``, the precision alert rule).

A built-in kind with where it searches (``chroma-embedded:demo``, ``http:http://...``; a
pgvector table with its server and database, ``pgvector:public.docs@db.internal:5432/rag``; a
Qdrant collection with its server or local store, ``qdrant:docs@http://qdrant:6333``); the
user's own factory by its ``module:attribute`` and a plug-in by its name, each with where
its retriever searches when it says, and the options it was called with as JSON (secrets
masked), so ``mymod:make``, ``mymod:make_worse`` and ``mymod:make {"top":3}`` are three
retrievers. Computed from what every run has recorded since plug-ins existed, so runs stored
by earlier versions get theirs too.
"""


INDEXED_FINGERPRINT = "indexed_fingerprint"
"""The ``describe()`` field of a Chroma run holding the fingerprint ``evalkit index`` stored
in the collection: the whole index fingerprint of runs an earlier evalkit recorded."""


def index_changed(before: RunSpec, after: RunSpec) -> bool:
    """Whether two runs searched different indexes, by their index fingerprints.

    Chroma runs an evalkit recorded before fingerprints covered the collection's contents
    carry the fingerprint ``evalkit index`` stored as their own; a later run records that
    one too (``INDEXED_FINGERPRINT``). Two such runs searched the same index when the older
    one's fingerprint is the newer one's stored fingerprint and their document counts agree,
    rather than an index changed by nothing but the upgrade. ``index_changed_sql`` is the
    same rule in SQL.
    """
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
