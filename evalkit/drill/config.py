"""The user's configuration, pointed at a drill's copies.

A drill runs the ``[[jobs]]`` and ``[[alerts.rules]]`` of the user's evalkit.toml as they are,
but every Chroma or Qdrant collection they name (or ``[retriever.qdrant]`` names for them),
pgvector table and BM25 index folder they read is the drill's copy (everything lands in the
drill's own store, which the drill passes to ``load_settings`` itself). The rewrite works on
the file's tables before they are validated, so the drill's settings pass every check the
user's do, and an error still names the user's file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "bm25_indexes_named",
    "chroma_collections_by_server",
    "collections_named",
    "pgvector_tables_named",
    "pointed_at_copies",
    "qdrant_collections_named",
    "reads_change_tables",
    "traffic_jobs",
]

_NAMING_TABLES = ("jobs", "alerts", "retriever")
"""Where a collection is named: a job's ``collection``, a rule's ``collection``,
``[retriever.qdrant]``'s ``collection``."""
_NAMING_KEYS = frozenset({"collection", "subject"})
"""The keys whose value may be a collection's name: a rule on a collection's drift checks
names it as their ``subject``."""


def _walk(value: Any, rename: Mapping[str, str] | None, found: set[str]) -> Any:
    if isinstance(value, Mapping):
        walked = {}
        for key, item in value.items():
            if key in _NAMING_KEYS and isinstance(item, str):
                if key == "collection":
                    found.add(item)
                walked[key] = _renamed(item, rename) if rename is not None else item
            else:
                walked[key] = _walk(item, rename, found)
        return walked
    if isinstance(value, list):
        return [_walk(item, rename, found) for item in value]
    return value


def _renamed(name: str, rename: Mapping[str, str]) -> str:
    """``name``, or its copy's: a collection's name, or a freshness subject
    (``<kind>:<collection>``) ending in one."""
    if name in rename:
        return rename[name]
    kind, colon, collection = name.rpartition(":")
    return f"{kind}{colon}{rename[collection]}" if colon and collection in rename else name


def collections_named(tables: Mapping[str, Any]) -> set[str]:
    """The Chroma collections the jobs and rules of ``tables`` name (``collection`` keys),
    the Qdrant ones (``qdrant_collections_named``) left out."""
    found: set[str] = set()
    for table in ("jobs", "alerts"):
        _walk(tables.get(table), None, found)
    return found - qdrant_collections_named(tables)


def qdrant_collections_named(tables: Mapping[str, Any]) -> set[str]:
    """The Qdrant collections the ``[[jobs]]`` of ``tables`` read: a job's ``collection``
    with ``retriever = "qdrant"``, else ``[retriever.qdrant]``'s."""
    default = _engine_table(tables, "qdrant").get("collection")
    return {
        name
        for job in _jobs_reading(tables, "qdrant")
        if isinstance(name := job.get("collection") or default, str)
    }


def pgvector_tables_named(tables: Mapping[str, Any]) -> set[str]:
    """The pgvector table the ``[[jobs]]`` of ``tables`` read (``[retriever.pgvector]``'s
    ``table``), when one reads it."""
    table = _engine_table(tables, "pgvector").get("table")
    return {table} if isinstance(table, str) and _jobs_reading(tables, "pgvector") else set()


def bm25_indexes_named(tables: Mapping[str, Any]) -> set[str]:
    """The BM25 index folders the ``[[jobs]]`` of ``tables`` read: a bm25 job's
    ``retriever_options`` ``index``, else ``[retriever] options``' when ``[retriever]`` is
    of kind bm25 (as the factory reads them)."""
    return {
        index
        for job in _jobs_reading(tables, "bm25")
        if isinstance(index := _bm25_options(tables, job).get("index"), str)
    }


def _bm25_options(tables: Mapping[str, Any], job: Mapping[str, Any]) -> Mapping[str, Any]:
    """The options a bm25 job's retriever is built from."""
    own = job.get("retriever_options")
    if isinstance(own, Mapping):
        return own
    retriever = tables.get("retriever")
    if isinstance(retriever, Mapping) and retriever.get("kind") == "bm25":
        options = retriever.get("options")
        return options if isinstance(options, Mapping) else {}
    return {}


def _engine_table(tables: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    """``[retriever.<kind>]`` of ``tables``, or nothing."""
    retriever = tables.get("retriever")
    found = retriever.get(kind) if isinstance(retriever, Mapping) else None
    return found if isinstance(found, Mapping) else {}


def _jobs_reading(tables: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    """The ``[[jobs]]`` of ``tables`` whose retriever is of ``kind``."""
    jobs = tables.get("jobs")
    return [
        job
        for job in (jobs if isinstance(jobs, list) else [])
        if isinstance(job, Mapping) and _retriever_kind(tables, job) == kind
    ]


def _retriever_kind(tables: Mapping[str, Any], job: Mapping[str, Any]) -> Any:
    """The kind of retriever ``job`` reads: its ``retriever``, else ``[retriever] kind`` for
    a job that names no index of its own."""
    if job.get("retriever"):
        return job["retriever"]
    if any(job.get(key) for key in ("collection", "chroma_url", "http_retriever")):
        return None
    retriever = tables.get("retriever")
    return retriever.get("kind") if isinstance(retriever, Mapping) else None


def chroma_collections_by_server(
    tables: Mapping[str, Any], chroma_url: str | None
) -> dict[str | None, set[str]]:
    """The Chroma collections of ``collections_named``, by the server holding them: a job's
    own ``chroma_url`` (without a trailing slash) when it differs from the settings'
    ``chroma_url``, else None (the Chroma the settings name: that server, or the embedded
    store). A rule's collection is taken to be where a job reads it, else in the settings'
    Chroma."""
    chroma = collections_named(tables)
    jobs = tables.get("jobs")
    by_server: dict[str | None, set[str]] = {}
    for job in jobs if isinstance(jobs, list) else []:
        found: set[str] = set()
        _walk(job, None, found)
        by_server.setdefault(_own_chroma(job, chroma_url), set()).update(found & chroma)
    elsewhere = set().union(*(names for url, names in by_server.items() if url is not None))
    ruled: set[str] = set()
    _walk(tables.get("alerts"), None, ruled)
    by_server.setdefault(None, set()).update((ruled & chroma) - elsewhere)
    return {url: names for url, names in by_server.items() if names}


def _own_chroma(job: Any, chroma_url: str | None) -> str | None:
    """The Chroma server ``job`` reads when it is not the settings' (its ``chroma_url``,
    without a trailing slash)."""
    url = job.get("chroma_url") if isinstance(job, Mapping) else None
    if url is None or _server(url) == _server(chroma_url or ""):
        return None
    return _server(url)


def _server(url: Any) -> str:
    """A Chroma server's URL as one server has one: without a trailing slash."""
    return str(url).rstrip("/")


def pointed_at_copies(
    tables: Mapping[str, Any],
    *,
    copies: Mapping[str, str],
    changes: Path | None = None,
    traffic: Path | None = None,
    chroma_urls: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``tables`` (an evalkit.toml's, unvalidated) with each collection a job or rule names
    (as its ``collection``, or a rule's ``subject``) replaced by its copy in ``copies`` (live
    name to copy name), ``changes`` (the drill's change table) added to the change tables of
    every freshness job that reads some, and ``traffic`` (the drill's traffic log) the only
    log of every traffic job, and each BM25 index folder (a job's ``retriever_options``,
    ``[retriever] options``) its copy's, and a job's own ``chroma_url`` the one
    ``chroma_urls`` gives its server (the drill's proxy in front of it; keys without a
    trailing slash); ``tables`` itself
    is unchanged. The drill's store is given to ``load_settings`` as an argument, which
    outranks the environment, as tables do not."""
    rewritten = dict(tables)
    found: set[str] = set()
    for table in _NAMING_TABLES:
        if table in tables:
            rewritten[table] = _walk(tables[table], copies, found)
    pgvector = _engine_table(rewritten, "pgvector")
    if pgvector.get("table") in copies:
        retriever = dict(rewritten["retriever"])
        retriever["pgvector"] = {**pgvector, "table": copies[pgvector["table"]]}
        rewritten["retriever"] = retriever
    if isinstance(rewritten.get("jobs"), list):
        rewritten["jobs"] = [_bm25_copy(job, copies) for job in rewritten["jobs"]]
    lexical = rewritten.get("retriever")
    if isinstance(lexical, Mapping) and lexical.get("kind") == "bm25":
        options = lexical.get("options")
        if isinstance(options, Mapping) and options.get("index") in copies:
            copy = copies[options["index"]]
            rewritten["retriever"] = {**lexical, "options": {**options, "index": copy}}
    if changes is not None and isinstance(rewritten.get("jobs"), list):
        rewritten["jobs"] = [
            {**job, "changes": [*job["changes"], str(changes)]}
            if isinstance(job, Mapping) and reads_change_tables(job)
            else job
            for job in rewritten["jobs"]
        ]
    if traffic is not None and isinstance(rewritten.get("jobs"), list):
        rewritten["jobs"] = [
            {**job, "paths": [str(traffic)]} if _is_traffic_job(job) else job
            for job in rewritten["jobs"]
        ]
    if chroma_urls and isinstance(rewritten.get("jobs"), list):
        rewritten["jobs"] = [
            {**job, "chroma_url": chroma_urls[_server(job["chroma_url"])]}
            if isinstance(job, Mapping)
            and job.get("chroma_url")
            and _server(job["chroma_url"]) in chroma_urls
            else job
            for job in rewritten["jobs"]
        ]
    return rewritten


def _bm25_copy(job: Any, copies: Mapping[str, str]) -> Any:
    """``job``, its own ``retriever_options`` pointed at the copy of the BM25 index they
    name (a job reading ``[retriever]``'s reads the copy through that table)."""
    options = job.get("retriever_options") if isinstance(job, Mapping) else None
    if not isinstance(options, Mapping) or options.get("index") not in copies:
        return job
    return {**job, "retriever_options": {**options, "index": copies[options["index"]]}}


def _is_traffic_job(job: object) -> bool:
    return isinstance(job, Mapping) and job.get("kind") == "traffic"


def traffic_jobs(tables: Mapping[str, Any]) -> list[str]:
    """The ``[[jobs]]`` of ``tables`` that sample and replay traffic, by name."""
    jobs = tables.get("jobs")
    return [
        str(job.get("name"))
        for job in (jobs if isinstance(jobs, list) else [])
        if _is_traffic_job(job)
    ]


def reads_change_tables(job: Mapping[str, Any]) -> bool:
    """Whether ``job`` (a ``[[jobs]]`` table) is a freshness job reading change tables."""
    return job.get("kind") == "freshness" and isinstance(job.get("changes"), list)
