"""The retriever kinds evalkit knows, each declaring what the rest of evalkit must know of it.

A ``RetrieverKind`` names how to build the kind's retriever and declares, once, what the
store, the sweep, the engines, the freshness check and the help text would otherwise keep
their own lists of: the fields that tell two of its indexes apart (``identity``), the store
search settings a sweep may set (``search_settings``) and whether a point may name a
``collection``, why it cannot replay on Ray, and where its index versions are read.

A built-in kind is one ``register_retriever_kind`` call below; its builder and its index
reader are named as ``module:function`` and imported when used, so this module stays cheap
enough for ``evalkit --help`` to list the kinds (no settings, no adapters).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evalkit.registry import register_named

if TYPE_CHECKING:
    from evalkit.config import Settings
    from evalkit.retrievers.base import Retriever
    from evalkit.retrievers.factory import RetrieverOptions
    from evalkit.retrievers.versions import IndexVersions

__all__ = [
    "COLLECTION",
    "DEFAULT_IDENTITY",
    "RETRIEVER_KINDS",
    "Joined",
    "RetrieverKind",
    "built_in_kinds",
    "listed",
    "register_retriever_kind",
]

FACTORY_KIND = "factory"
"""The kind of a retriever built by the user's ``module:attribute`` (``plugins``)."""

COLLECTION = "collection"
"""In an ``identity``, the collection a run recorded (what ``collection_field`` names)."""


@dataclass(frozen=True)
class Joined:
    """In an ``identity``, fields of a run's ``describe()`` joined by ``sep``, the absent
    ones left out: ``Joined("/", (Joined(":", ("host", "port")), "dbname"))`` is
    ``db.internal:5432/rag``."""

    sep: str
    fields: tuple[str | Joined, ...]


Identity = tuple[tuple[str | Joined, ...], ...]
"""Where a run of a kind searched: parts joined by ``@``, each the first present of its
alternatives; an alternative is ``COLLECTION``, a field of the run's ``describe()``, or a
``Joined`` of such fields."""

DEFAULT_IDENTITY: Identity = ((COLLECTION, "url", "path"),)
"""A kind that declares none: its collection, else its URL, else its local path."""

Build = Callable[["RetrieverOptions", "Settings"], "Retriever"]
Refusal = Callable[["RetrieverOptions", "Settings"], "str | None"]


@dataclass(frozen=True)
class RetrieverKind:
    """A named way of building a retriever, and what the rest of evalkit must know of it.

    ``build`` (a function or ``module:function``) takes ``RetrieverOptions`` and
    ``Settings``; ``identity`` tells its indexes apart in the store; ``search_settings``,
    ``fixed_search`` and ``takes_collection`` are what a sweep may set; ``on_ray`` says why
    it cannot replay on Ray (None: it can); ``index_versions`` opens its index's versions.
    """

    name: str
    build: Build | str
    embeds_queries: bool = False
    """Whether the kind embeds queries with ``[embedder]`` (a vector store searched by
    vector), so a command may start loading that model before building it."""
    takes_options: bool = False
    """Whether the kind is built from ``factory_options`` (``--option``, ``[retriever]
    options``); options given to a kind that takes none are refused, not ignored."""
    identity: Identity = DEFAULT_IDENTITY
    collection_field: str = COLLECTION
    search_settings: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    fixed_search: Refusal | None = None
    takes_collection: bool = False
    on_ray: Refusal | None = None
    index_versions: str | None = None
    lexical: bool = False
    """Whether its index holds no vectors by design (0 vectors is no fault)."""
    title: str | None = None
    """The kind's name in a sentence (``Chroma``); None: its ``name``."""

    @property
    def shown(self) -> str:
        """The kind's name in a sentence."""
        return self.title or self.name

    def built(self, options: RetrieverOptions, settings: Settings) -> Retriever:
        """The retriever of this kind that ``options`` and ``settings`` name."""
        build: Build = _imported(self.build) if isinstance(self.build, str) else self.build
        return build(options, settings)

    def open_versions(self, options: RetrieverOptions, settings: Settings) -> IndexVersions:
        """The reader of this kind's index versions; call only when ``index_versions`` is set."""
        assert self.index_versions is not None
        opened: IndexVersions = _imported(self.index_versions)(options, settings)
        return opened


def _imported(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


RETRIEVER_KINDS: dict[str, RetrieverKind] = {}


def register_retriever_kind(kind: RetrieverKind) -> None:
    """Make ``kind`` buildable by name; ConfigError if the name is taken."""
    register_named(RETRIEVER_KINDS, kind, what="retriever kind")


def built_in_kinds() -> list[str]:
    """The names of the registered kinds a user names (not ``factory``), in order."""
    return [name for name in RETRIEVER_KINDS if name != FACTORY_KIND]


def listed(names: list[str]) -> str:
    """``names`` as a sentence lists them: ``chroma, pgvector and qdrant``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _chroma_search(options: RetrieverOptions, settings: Settings) -> str | None:
    server = options.chroma_url or settings.chroma_url
    if not server:
        return None
    return (
        f"the Chroma server at {server} keeps its searcher's ef_search until it restarts, "
        "and Chroma has no per-query ef_search; sweep it on an embedded store"
    )


def _qdrant_on_ray(options: RetrieverOptions, settings: Settings) -> str | None:
    qdrant = settings.retriever.qdrant
    if qdrant.path is None or qdrant.url:
        return None
    # Qdrant's local mode locks its folder for one client: every actor (and the driver)
    # opens its own, so all but one would fail after the replay started.
    return (
        f'engine = "ray" cannot search Qdrant\'s local store ({qdrant.path}): one process at a '
        "time may open it, and every Ray actor opens its own retriever. Serve the collection "
        'with a Qdrant server ([retriever.qdrant] url), or replay with engine = "local"'
    )


_FACTORY = "evalkit.retrievers.factory"
_VERSIONS = "evalkit.retrievers.versions"

register_retriever_kind(
    RetrieverKind(
        "chroma",
        f"{_FACTORY}:build_chroma",
        title="Chroma",
        embeds_queries=True,
        search_settings={"ef_search": ("chroma", "ef_search")},
        fixed_search=_chroma_search,
        takes_collection=True,
        index_versions=f"{_VERSIONS}:open_chroma_versions",
    )
)
register_retriever_kind(RetrieverKind("http", f"{_FACTORY}:build_http"))
register_retriever_kind(
    RetrieverKind(
        "pgvector",
        f"{_FACTORY}:build_pgvector",
        embeds_queries=True,
        # A table is searched on one server and database; runs stored before the table was
        # recorded as their collection have it in their description.
        identity=(
            (COLLECTION, "table"),
            (Joined("/", (Joined(":", ("host", "port")), "dbname")),),
        ),
        collection_field="table",
        search_settings={
            "ef_search": ("pgvector", "hnsw_ef_search"),
            "probes": ("pgvector", "ivfflat_probes"),
        },
        index_versions=f"{_VERSIONS}:open_pgvector_versions",
    )
)
register_retriever_kind(
    RetrieverKind(
        "qdrant",
        f"{_FACTORY}:build_qdrant",
        title="Qdrant",
        embeds_queries=True,
        # Collections of one name on two servers (or local stores) are two indexes.
        identity=((COLLECTION,), ("url", "path")),
        search_settings={"ef_search": ("qdrant", "hnsw_ef")},
        takes_collection=True,
        on_ray=_qdrant_on_ray,
        index_versions=f"{_VERSIONS}:open_qdrant_versions",
    )
)
register_retriever_kind(
    RetrieverKind("bm25", f"{_FACTORY}:build_bm25", takes_options=True, lexical=True)
)
register_retriever_kind(
    RetrieverKind(FACTORY_KIND, f"{_FACTORY}:build_factory", takes_options=True)
)
