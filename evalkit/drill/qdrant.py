"""Scratch copies of Qdrant collections for a drill, and a copy as incidents write to it.

A copy is made from the stored points (ids, vectors, payloads: no re-embedding) into a
collection named as Chroma copies are (``evalkit-drill-<drill id>-<live name>``), with the
live one's vector, HNSW and payload settings, and collection metadata saying which process
owns it and since when (``copy_marks``); the next drill, and the ``retention`` job, remove a
copy whose drill is over. Documents are read as ``QdrantRetriever`` reads them: the id from
``id_payload_key`` (else the point id), the text from ``text_payload_key``, the vector
``vector_name``; the rest of the payload is the document's metadata.

Qdrant's local mode lets one client at a time open its folder, and the drill's jobs open
their own: every operation here opens a client and closes it before returning (an index
handed to an incident is closed by the drill after it).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from qdrant_client import QdrantClient, models

from evalkit.drill.index import Contents, NotInjectableError, Vectors, in_pages
from evalkit.drill.scratch import DRILL_PREFIX, copy_marks, drill_over
from evalkit.errors import RetrieverError
from evalkit.retrievers.base import describe_exception
from evalkit.retrievers.qdrant import open_client, read_qdrant_contents

if TYPE_CHECKING:
    from evalkit.config import QdrantSettings, Settings

__all__ = ["QdrantCopies", "QdrantIndex", "copy_qdrant_collection", "sweep_qdrant_copies"]

_PAGE = 1000


@contextlib.contextmanager
def qdrant_client(settings: QdrantSettings) -> Iterator[QdrantClient]:
    """A client of the Qdrant of ``settings`` for the block, closed after it."""
    try:
        client = open_client(settings, settings.api_key())
    except Exception as error:  # the client raises its own, and a held local lock alike
        where = settings.url or settings.path
        raise RetrieverError(
            f"cannot open Qdrant at {where}: {describe_exception(error)}"
        ) from error
    try:
        yield client
    finally:
        client.close()


def copy_qdrant_collection(client: QdrantClient, live_name: str, drill_id: str) -> str:
    """Copy Qdrant collection ``live_name`` into a new scratch collection for drill
    ``drill_id``: its points (ids, vectors, payloads) a page at a time, and its vector,
    HNSW and payload settings. A copy that fails half-way is removed before the error
    rises. Returns the copy's name."""
    name = f"{DRILL_PREFIX}{drill_id}-{live_name}"
    try:
        info = client.get_collection(live_name)
        params = info.config.params
        client.create_collection(
            name,
            vectors_config=params.vectors,
            sparse_vectors_config=params.sparse_vectors,
            on_disk_payload=params.on_disk_payload,
            hnsw_config=models.HnswConfigDiff(**info.config.hnsw_config.model_dump()),
            optimizers_config=models.OptimizersConfigDiff(
                **info.config.optimizer_config.model_dump()
            ),
            metadata={**(info.config.metadata or {}), **copy_marks(live_name)},
        )
    except Exception as error:
        raise RetrieverError(
            f"cannot copy Qdrant collection '{live_name}' into '{name}': "
            f"{describe_exception(error)}"
        ) from error
    copied = 0
    try:
        offset: Any = None
        while True:
            points, offset = client.scroll(
                live_name, limit=_PAGE, offset=offset, with_payload=True, with_vectors=True
            )
            if points:
                client.upsert(
                    name,
                    points=[
                        models.PointStruct(id=p.id, vector=p.vector or {}, payload=p.payload)
                        for p in points
                    ],
                )
            copied += len(points)
            if offset is None:
                break
    except BaseException as error:
        _remove(client, name)
        if isinstance(error, Exception):
            raise RetrieverError(
                f"copying Qdrant collection '{live_name}' into '{name}' failed after {copied} "
                f"points (the copy is removed): {describe_exception(error)}"
            ) from error
        raise
    return name


def _remove(client: QdrantClient, name: str) -> None:
    with contextlib.suppress(Exception):  # already gone, or the server is: a sweep retries
        client.delete_collection(name)


def sweep_qdrant_copies(client: QdrantClient) -> list[str]:
    """Remove the scratch collections whose drill is over (``drill_over``); their names."""
    removed = []
    for found in client.get_collections().collections:
        if not found.name.startswith(DRILL_PREFIX):
            continue
        try:
            marks = client.get_collection(found.name).config.metadata
        except Exception:  # removed meanwhile
            continue
        if drill_over(marks):
            _remove(client, found.name)
            removed.append(found.name)
    return removed


class QdrantIndex:
    """A drill's copy of a Qdrant collection as a ``ScratchIndex``, read and written as
    ``QdrantRetriever`` reads it. Open until ``close``."""

    def __init__(self, settings: QdrantSettings, name: str) -> None:
        self._settings = settings
        self._name = name
        try:
            self._client = open_client(settings, settings.api_key())
        except Exception as error:  # the client raises its own, and a held local lock alike
            raise RetrieverError(
                f"cannot open Qdrant at {settings.url or settings.path}: "
                f"{describe_exception(error)}"
            ) from error
        self._points: dict[str, list[models.ExtendedPointId]] = {}
        self._payloads: dict[models.ExtendedPointId, dict[str, Any]] = {}

    @property
    def name(self) -> str:
        """The copy's name."""
        return self._name

    def close(self) -> None:
        """Close the client (a local store's lock is released)."""
        self._client.close()

    def contents(self) -> Contents:
        """Every document the copy holds (``read_qdrant_contents``), each point of a
        document kept for the writes."""
        self._points.clear()
        self._payloads.clear()

        def keep(point: models.ExtendedPointId, doc_id: str, payload: Mapping[str, Any]) -> None:
            self._payloads[point] = dict(payload)
            self._points.setdefault(doc_id, []).append(point)

        return read_qdrant_contents(self._client, self._name, self._settings, keep)

    def _vector(self, row: Vectors) -> Any:
        values = [float(value) for value in row]
        return {self._settings.vector_name: values} if self._settings.vector_name else values

    def hnsw(self) -> Mapping[str, int]:
        """Nothing: a Qdrant copy is not rebuilt with other HNSW settings."""
        return {}

    def delete(self, ids: Sequence[str]) -> None:
        """Remove every point of the documents ``ids``."""
        points = [point for doc_id in ids for point in self._points.pop(doc_id, [])]
        for page in in_pages(points):
            self._client.delete(self._name, points_selector=models.PointIdsList(points=list(page)))

    def add(
        self,
        ids: Sequence[str],
        embeddings: Vectors,
        documents: Sequence[str | None],
        metadatas: Sequence[Mapping[str, Any] | None],
    ) -> None:
        """Add a point a document, its point id derived from the copy's name and the
        document id (a collection without ``id_payload_key`` reports that point id)."""
        id_key, text_key = self._settings.id_payload_key, self._settings.text_payload_key
        points = []
        for doc_id, row, text, metadata in zip(ids, embeddings, documents, metadatas, strict=True):
            payload: dict[str, Any] = dict(metadata or {})
            if id_key:
                payload[id_key] = doc_id
            if text_key and text is not None:
                payload[text_key] = text
            point = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self._name}/{doc_id}"))
            points.append(models.PointStruct(id=point, vector=self._vector(row), payload=payload))
        self._upsert(points)

    def update(
        self, ids: Sequence[str], *, embeddings: Vectors, documents: Sequence[str] | None = None
    ) -> None:
        """Give every point of the documents ``ids`` these vectors (and texts, under
        ``text_payload_key``), their ids and the rest of their payload kept."""
        text_key = self._settings.text_payload_key
        points = []
        for n, doc_id in enumerate(ids):
            for point in self._points.get(doc_id, []):
                payload = dict(self._payloads[point])
                if documents is not None and text_key:
                    payload[text_key] = documents[n]
                points.append(
                    models.PointStruct(
                        id=point, vector=self._vector(embeddings[n]), payload=payload
                    )
                )
        self._upsert(points)

    def set_texts(self, texts: Mapping[str, str]) -> None:
        """Give every point of the documents (by id) these texts under
        ``text_payload_key``, their vectors and the rest of their payload kept."""
        key = self._settings.text_payload_key
        if key is None:
            return
        self.contents()  # which points hold each document
        for doc_id, text in texts.items():
            points = self._points.get(doc_id) or []
            if points:
                self._client.set_payload(self._name, payload={key: text}, points=points)

    def _upsert(self, points: list[models.PointStruct]) -> None:
        for page in in_pages(points):
            self._client.upsert(self._name, points=list(page))


class QdrantCopies:
    """The drill's copies of the Qdrant collections its jobs read, in the Qdrant of
    ``settings`` (``[retriever.qdrant]``): made on entering (after sweeping what killed
    drills left), injected into, restored by copying again, and removed on leaving however
    it ends. Qdrant's local mode searches exactly (as a server does below its indexing
    threshold), so a fresh copy answers every query as the one the quiet cycles searched; a
    server's HNSW graph built anew may rank a few queries differently."""

    def __init__(self, settings: Settings, live_names: Iterable[str], drill_id: str) -> None:
        self._settings = settings.retriever.qdrant
        self._live = sorted(live_names)
        self._drill_id = drill_id
        self.names: dict[str, str] = {}
        """Live collection name to its copy's name."""

    def __enter__(self) -> QdrantCopies:
        try:
            with qdrant_client(self._settings) as client:
                sweep_qdrant_copies(client)
                for name in self._live:
                    self.names[name] = copy_qdrant_collection(client, name, self._drill_id)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        if not self.names:
            return
        with contextlib.suppress(RetrieverError), qdrant_client(self._settings) as client:
            for copy in self.names.values():
                _remove(client, copy)

    def index(self, live_name: str) -> QdrantIndex:
        """The copy of ``live_name``, open (close it before the jobs run)."""
        return QdrantIndex(self._settings, self.names[live_name])

    def hold(self) -> None:
        """Nothing to set aside: ``restore`` copies the live collection again."""

    def restore(self) -> None:
        """Undo an incident: copy every live collection again in place of its copy."""
        with qdrant_client(self._settings) as client:
            for live, copy in self.names.items():
                _remove(client, copy)
                copy_qdrant_collection(client, live, self._drill_id)

    def rebuild(self, live_name: str, hnsw: Mapping[str, Any]) -> None:
        """Refused: Qdrant's search breadth is each query's ``hnsw_ef`` ([retriever.qdrant]),
        and its local mode has no HNSW index."""
        raise NotInjectableError(
            "not injectable on Qdrant: a drill lowers the HNSW settings of Chroma copies; a "
            "Qdrant collection is searched with each query's hnsw_ef ([retriever.qdrant]), "
            "and local mode searches exactly"
        )
