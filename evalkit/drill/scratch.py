"""Scratch copies of a Chroma collection for a drill.

A drill injects failures into a copy of the index the user's jobs read, never into the index
itself. The copy is made from the stored vectors, texts and metadata (no re-embedding) into a
collection named ``evalkit-drill-<drill id>-<live name>``, whose metadata says which process
owns it and since when. The drill removes its copy when it ends, SIGTERM included (the CLI
raises it as an exception); a copy whose owner was killed is removed by the next
``sweep_scratch_collections``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from evalkit.drill.index import ChromaIndex
from evalkit.drill.reports import owner, sweep_drill_folders
from evalkit.errors import RetrieverError
from evalkit.retrievers.base import describe_exception
from evalkit.retrievers.chroma_client import (
    check_collection_name,
    close_client,
    collection_space,
    get_collection,
    open_chroma_client,
)
from evalkit.store.access import process_alive

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.collection_configuration import CreateCollectionConfiguration
    from chromadb.api.models.Collection import Collection

    from evalkit.config import Settings

__all__ = [
    "DRILL_PREFIX",
    "ScratchCopies",
    "ScratchCopy",
    "copy_collection",
    "copy_marks",
    "drill_over",
    "scratch_collection",
    "sweep_drill_leftovers",
    "sweep_scratch_collections",
]

DRILL_PREFIX = "evalkit-drill-"
"""What every scratch collection's name starts with, and nothing else of evalkit's does."""
OWNER_KEY = "evalkit_drill_owner"
STARTED_KEY = "evalkit_drill_started"
SOURCE_KEY = "evalkit_drill_source"
STALE_AFTER = timedelta(hours=24)
"""A copy older than this is removed whoever owns it: its owner's pid may have been reused,
or it ran on another host, where its process cannot be looked up."""
HELD_SUFFIX = "-held"
"""Ends the name of a copy set aside during an incident (``ScratchCopies.hold``)."""
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class ScratchCopy:
    """A scratch copy: its name, the collection it copies, how many documents, how long."""

    name: str
    source: str
    n_documents: int
    seconds: float


def copy_collection(
    client: ClientAPI, live_name: str, drill_id: str, *, hnsw: Mapping[str, Any] | None = None
) -> ScratchCopy:
    """Copy collection ``live_name`` into a new scratch collection for drill ``drill_id``:
    the same vectors, texts, metadata, distance space and HNSW settings (those in ``hnsw``
    changed), read a page at a time and never written. A copy that fails half-way is removed
    before the error rises.

    In a cosine collection Chroma normalises every vector it is given, so a copied vector
    equals the live one to float32 rounding (within 1e-7), not bit for bit."""
    started = time.perf_counter()
    live = get_collection(client, live_name)
    name = check_collection_name(f"{DRILL_PREFIX}{drill_id}-{live_name}")
    settings = {
        **((live.configuration_json or {}).get("hnsw") or {}),
        **(hnsw or {}),
        "space": collection_space(live),
    }
    metadata: dict[str, Any] = {**(live.metadata or {}), **copy_marks(live_name)}
    try:
        scratch = client.create_collection(
            name=name,
            embedding_function=None,
            configuration=cast("CreateCollectionConfiguration", {"hnsw": settings}),
            metadata=metadata,
        )
    except Exception as error:
        raise RetrieverError(
            f"cannot create the drill's copy '{name}' of Chroma collection '{live_name}': "
            f"{describe_exception(error)}"
        ) from error
    copied = 0
    try:
        while True:
            page = live.get(
                include=["embeddings", "documents", "metadatas"], limit=_PAGE, offset=copied
            )
            ids = page["ids"]
            if ids:
                scratch.add(
                    ids=ids,
                    embeddings=page["embeddings"],
                    documents=page["documents"],
                    metadatas=page["metadatas"],
                )
            copied += len(ids)
            if len(ids) < _PAGE:
                break
    except BaseException as error:
        _remove(client, name)
        if isinstance(error, Exception):
            raise RetrieverError(
                f"copying Chroma collection '{live_name}' into '{name}' failed after "
                f"{copied} documents (the copy is removed): {describe_exception(error)}"
            ) from error
        raise
    return ScratchCopy(name, live_name, copied, time.perf_counter() - started)


def _remove(client: ClientAPI, name: str) -> None:
    with contextlib.suppress(Exception):  # already gone, or the server is: the sweep retries
        client.delete_collection(name)


@contextlib.contextmanager
def scratch_collection(client: ClientAPI, live_name: str, drill_id: str) -> Iterator[ScratchCopy]:
    """A scratch copy of ``live_name`` for the block, removed when it ends however it ends
    (an error, Ctrl-C, the CLI's SIGTERM)."""
    copy = copy_collection(client, live_name, drill_id)
    try:
        yield copy
    finally:
        _remove(client, copy.name)


def sweep_scratch_collections(
    client: ClientAPI, *, now: datetime | None = None, stale_after: timedelta = STALE_AFTER
) -> list[str]:
    """Remove the scratch collections whose drill is over (``drill_over``). Returns the
    names removed."""
    removed = []
    for collection in client.list_collections():
        if collection.name.startswith(DRILL_PREFIX) and drill_over(
            collection.metadata, now=now, stale_after=stale_after
        ):
            _remove(client, collection.name)
            removed.append(collection.name)
    return removed


def copy_marks(source: str) -> dict[str, str]:
    """The metadata that marks a drill's copy of ``source`` as this process's, from now."""
    return {
        OWNER_KEY: owner(),
        STARTED_KEY: datetime.now(UTC).isoformat(timespec="seconds"),
        SOURCE_KEY: source,
    }


def drill_over(
    marks: Mapping[str, Any] | None,
    *,
    now: datetime | None = None,
    stale_after: timedelta = STALE_AFTER,
) -> bool:
    """Whether the drill that made a copy with metadata ``marks`` (``copy_marks``) is over:
    its process is gone (on this host), it started more than ``stale_after`` ago, or the
    copy was never marked (a half-made one)."""
    now = now or datetime.now(UTC)
    host, _, pid = str((marks or {}).get(OWNER_KEY, "")).rpartition(":")
    try:
        started = datetime.fromisoformat(str((marks or {})[STARTED_KEY]))
        alive = process_alive(int(pid), host or None)
    except (KeyError, ValueError):
        return True
    return not alive or now - started >= stale_after


def sweep_drill_leftovers(settings: Settings) -> list[str]:
    """Remove what drills that ended without cleaning up (killed) left under ``settings``:
    their scratch collections in its Chroma (server, or embedded store when there is one)
    and its Qdrant ([retriever.qdrant]), their scratch tables in its PostgreSQL
    ([retriever.pgvector]), and their folders without a report. Returns what
    was removed, named. An engine that cannot be reached raises ``RetrieverError`` after
    the rest is swept."""
    removed = [str(folder) for folder in sweep_drill_folders(settings.home)]
    unreachable: list[str] = []

    def sweep(
        engine: str,
        opened: Callable[[], contextlib.AbstractContextManager[Any]],
        swept: Callable[[Any], list[str]],
    ) -> None:
        try:
            with opened() as client:
                removed.extend(swept(client))
        except Exception as error:  # a server down, a store locked: the next sweep retries
            unreachable.append(f"{engine}: {describe_exception(error)}")

    if settings.chroma_url or settings.resolved_chroma_path.exists():
        sweep("Chroma", lambda: _closing_client(settings), sweep_scratch_collections)
    qdrant = settings.retriever.qdrant
    if qdrant.url or (qdrant.path is not None and qdrant.path.is_dir()):
        # qdrant_client is an optional extra: only a set-up with a Qdrant needs it.
        from evalkit.drill.qdrant import qdrant_client, sweep_qdrant_copies

        sweep("Qdrant", lambda: qdrant_client(qdrant), sweep_qdrant_copies)
    pgvector = settings.retriever.pgvector
    if pgvector.dsn is not None and pgvector.table:
        # psycopg is an optional extra: only a set-up with a pgvector table needs it.
        from evalkit.drill.pgvector import connect, sweep_pgvector_copies

        sweep("PostgreSQL", lambda: connect(pgvector), sweep_pgvector_copies)
    if unreachable:
        raise RetrieverError(
            f"cannot sweep drills' scratch copies: {'; '.join(unreachable)} (removed: "
            f"{', '.join(removed) or 'nothing'})"
        )
    return removed


@contextlib.contextmanager
def _closing_client(settings: Settings) -> Iterator[ClientAPI]:
    client = _open_client(settings)
    try:
        yield client
    finally:
        close_client(client)


class ScratchCopies:
    """The drill's copies of the collections its jobs read, in the Chroma of ``settings``
    (its server, else its embedded path): made on entering (after sweeping what killed
    drills left), injected into, restored, and removed on leaving however it ends."""

    def __init__(self, settings: Settings, live_names: Iterable[str], drill_id: str) -> None:
        self._settings = settings
        self._live = sorted(live_names)
        self._drill_id = drill_id
        self._client: ClientAPI | None = None
        self.names: dict[str, str] = {}
        """Live collection name to its copy's name."""

    def __enter__(self) -> ScratchCopies:
        self._client = _open_client(self._settings)
        try:
            sweep_scratch_collections(self._client)
            for name in self._live:
                self.names[name] = copy_collection(self._client, name, self._drill_id).name
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        if self._client is None:
            return
        for copy in self.names.values():
            _remove(self._client, copy)
            _remove(self._client, _held(copy))
        close_client(self._client)
        self._client = None

    def collection(self, live_name: str) -> Collection:
        """The copy of ``live_name``, open."""
        return get_collection(self._open(), self.names[live_name])

    def index(self, live_name: str) -> ChromaIndex:
        """The copy of ``live_name`` as incidents write to it."""
        return ChromaIndex(self.collection(live_name))

    def hold(self) -> None:
        """Set every copy aside as it is and copy its live collection again under its name,
        for an incident to change; ``restore`` puts the set-aside copy back. The jobs then
        search the very index of the quiet cycles again: a fresh copy's approximate search
        ranks a few queries differently (2 of SciFact's 300), which kept a sequential rule
        from ever seeing the quality it knew."""
        client = self._open()
        for live, copy in self.names.items():
            get_collection(client, copy).modify(name=_held(copy))
            try:
                copy_collection(client, live, self._drill_id)
            except BaseException:
                get_collection(client, _held(copy)).modify(name=copy)
                raise

    def rebuild(self, live_name: str, hnsw: Mapping[str, Any]) -> Collection:
        """Copy ``live_name`` again in place of its copy, its HNSW settings changed by
        ``hnsw`` (those fixed when an index is built, too); the new copy, open."""
        client = self._open()
        _remove(client, self.names[live_name])
        copy_collection(client, live_name, self._drill_id, hnsw=hnsw)
        return self.collection(live_name)

    def restore(self) -> None:
        """Undo an incident: drop the copies it changed and put back those ``hold`` set
        aside."""
        client = self._open()
        for copy in self.names.values():
            _remove(client, copy)
            get_collection(client, _held(copy)).modify(name=copy)

    def _open(self) -> ClientAPI:
        assert self._client is not None, "use ScratchCopies as a context manager"
        return self._client


def _open_client(settings: Settings) -> ClientAPI:
    """The Chroma of ``settings``: its server, else its embedded store."""
    if settings.chroma_url:
        return open_chroma_client(url=settings.chroma_url)
    return open_chroma_client(path=settings.resolved_chroma_path)


def _held(copy: str) -> str:
    return check_collection_name(f"{copy}{HELD_SUFFIX}")
