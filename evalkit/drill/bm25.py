"""Scratch copies of BM25 indexes for a drill, built from the corpus each was built from.

A bm25s index keeps term weights, not texts, so a copy cannot be read out of it: the drill
is given the corpus (``--corpus``) and builds each copy from it with the live index's
parameters. The copy must come out with the live index's fingerprint (the same ids and
texts, the same parameters), or the drill refuses to start: it would rehearse another
index. An incident edits the copy's documents in memory and the copy is rebuilt when the
incident lets go of it (``close``); the restore rebuilds it from the corpus. Copies live in
the drill's folder, named as every drill copy is, so a killed drill's copies go with its
folder when the next drill or the ``retention`` job sweeps it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.drill.index import Contents, NotInjectableError, Vectors
from evalkit.drill.scratch import DRILL_PREFIX
from evalkit.errors import ConfigError
from evalkit.goldset import iter_corpus
from evalkit.records import Document
from evalkit.retrievers.bm25_index import Bm25Parameters, build_bm25_index, load_bm25_index

__all__ = ["Bm25Copies", "Bm25ScratchIndex"]

_NO_HNSW = "not injectable: a BM25 index searches exactly; it has no ANN search settings to lower"


class Bm25ScratchIndex:
    """A drill's BM25 copy as a ``ScratchIndex``: its documents held in memory, the copy
    rebuilt from them on ``close`` when a write changed them. It holds no vectors: an
    incident that only moves vectors cannot be played on it."""

    def __init__(
        self, path: Path, documents: Sequence[Document], parameters: Bm25Parameters
    ) -> None:
        self._path = path
        self._documents = {document.id: document for document in documents}
        self._parameters = parameters
        self._changed = False

    @property
    def name(self) -> str:
        """The copy's folder name (a drill's: ``DRILL_PREFIX``...)."""
        return self._path.name

    def contents(self) -> Contents:
        """Every document the copy was built from, with no vector columns."""
        held = list(self._documents.values())
        return Contents(
            [document.id for document in held],
            np.empty((len(held), 0), dtype=np.float32),
            [document.content for document in held],
            [dict(document.metadata) for document in held],
        )

    def hnsw(self) -> Mapping[str, int]:
        """None: BM25 searches exactly."""
        raise NotInjectableError(_NO_HNSW)

    def delete(self, ids: Sequence[str]) -> None:
        """Remove the documents ``ids``."""
        for doc_id in ids:
            self._documents.pop(doc_id, None)
        self._changed = True

    def add(
        self,
        ids: Sequence[str],
        embeddings: Vectors,
        documents: Sequence[str | None],
        metadatas: Sequence[Mapping[str, Any] | None],
    ) -> None:
        """Add documents under new ids (their texts; there are no vectors to keep)."""
        for doc_id, text, metadata in zip(ids, documents, metadatas, strict=True):
            self._documents[doc_id] = Document(doc_id, text or "", metadata=dict(metadata or {}))
        self._changed = True

    def update(
        self, ids: Sequence[str], *, embeddings: Vectors, documents: Sequence[str] | None = None
    ) -> None:
        """Give the documents ``ids`` these texts (there are no vectors to give)."""
        if documents is not None:
            self.set_texts(dict(zip(ids, documents, strict=True)))

    def set_texts(self, texts: Mapping[str, str]) -> None:
        """Give documents (by id) these texts."""
        for doc_id, text in texts.items():
            held = self._documents.get(doc_id)
            if held is not None:
                # The text is what BM25 reads of a document: the whole of it, title included.
                self._documents[doc_id] = replace(held, text=text, title="")
        self._changed = True

    def close(self) -> None:
        """Rebuild the copy from the documents, if a write changed them."""
        if self._changed:
            build_bm25_index(self._documents.values(), self._path, self._parameters)
            self._changed = False


class Bm25Copies:
    """Scratch copies of the BM25 indexes ``live_paths`` (as the configuration names them)
    in ``folder`` (the drill's), built from ``corpus``, for the ``with`` block; ``names``
    maps each live path to its copy's. ``ConfigError`` when the corpus is not the one an
    index was built from."""

    def __init__(
        self, live_paths: Iterable[str], corpus: Path | None, folder: Path, drill_id: str
    ) -> None:
        self._live = sorted(live_paths)
        self._corpus = corpus
        self._folder = folder / "bm25"
        self._drill_id = drill_id
        self._documents: tuple[Document, ...] = ()
        self._parameters: dict[str, Bm25Parameters] = {}
        self.names: dict[str, str] = {}

    def __enter__(self) -> Bm25Copies:
        if self._corpus is None:
            raise ConfigError(
                f"the jobs read the BM25 index {self._live[0]}, which keeps no texts to copy: "
                "give --corpus, the corpus it was built from (`evalkit index --kind bm25 "
                "--corpus CORPUS`)"
            )
        self._documents = tuple(iter_corpus(self._corpus))
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
            for number, live in enumerate(self._live):
                index = load_bm25_index(live)
                copy = self._folder / f"{DRILL_PREFIX}{self._drill_id}-{Path(live).name}"
                if str(copy) in self.names.values():  # two indexes in folders of one name
                    copy = copy.with_name(f"{copy.name}-{number}")
                built = build_bm25_index(self._documents, copy, index.parameters)
                self.names[live] = str(copy)
                self._parameters[live] = index.parameters
                if built.index_fingerprint != index.fingerprint:
                    raise ConfigError(
                        f"--corpus {self._corpus} is not the corpus BM25 index {live} was "
                        f"built from (built from it, the index's fingerprint is "
                        f"{built.index_fingerprint[:12]}, not {index.fingerprint[:12]}): give "
                        "the corpus the index was built from"
                    )
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        shutil.rmtree(self._folder, ignore_errors=True)

    def index(self, live: str) -> Bm25ScratchIndex:
        """The copy of ``live`` as incidents write to it."""
        return Bm25ScratchIndex(Path(self.names[live]), self._documents, self._parameters[live])

    def hold(self) -> None:
        """Nothing: a copy is rebuilt from the corpus on restore."""

    def restore(self) -> None:
        """Every copy rebuilt from the corpus, as the live index is."""
        for live, copy in self.names.items():
            build_bm25_index(self._documents, copy, self._parameters[live])

    def rebuild(self, live: str, hnsw: Mapping[str, Any]) -> None:
        """``NotInjectableError``: BM25 has no ANN search settings."""
        raise NotInjectableError(_NO_HNSW)
