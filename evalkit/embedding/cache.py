"""Document vectors kept between runs, so that indexing embeds each text once per model.

``CachingEmbedder`` keeps vectors in one SQLite file per model, chosen by a hash of the
model's canary embeddings (a model is known by the vectors it makes, not by its name). The
cache is an optimisation only: when it cannot be read or written, texts are embedded as if
it were not there, with a warning (docs/retrievers.md, "Document vectors are embedded once
per model").
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from evalkit.embedding.fingerprint import ModelFingerprint
from evalkit.embedding.wrapper import EmbedderWrapper

if TYPE_CHECKING:
    from evalkit.embedding.query import TextEmbedder

__all__ = ["CachingEmbedder"]

log = logging.getLogger(__name__)

# SQLite allows 32,766 parameters per statement; lookups go in chunks well below that.
_LOOKUP_CHUNK = 500


class _VectorFile:
    """One model's vectors: a SQLite table from text digest to float32 bytes."""

    def __init__(self, path: Path, dimension: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._dimension = dimension
        self._lock = threading.Lock()
        # Background prefetch threads may embed through the same cache.
        self._connection = sqlite3.connect(
            path, timeout=60, isolation_level=None, check_same_thread=False
        )
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.execute(
            "CREATE TABLE IF NOT EXISTS vectors "
            "(digest BLOB PRIMARY KEY, vector BLOB NOT NULL) WITHOUT ROWID"
        )

    def found(self, digests: Sequence[bytes]) -> dict[bytes, npt.NDArray[np.float32]]:
        """The stored vectors of those of ``digests`` that are stored."""
        found: dict[bytes, npt.NDArray[np.float32]] = {}
        with self._lock:
            for start in range(0, len(digests), _LOOKUP_CHUNK):
                chunk = digests[start : start + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._connection.execute(
                    f"SELECT digest, vector FROM vectors WHERE digest IN ({marks})", chunk
                )
                for digest, blob in rows:
                    vector = np.frombuffer(blob, dtype=np.float32)
                    if vector.size == self._dimension:
                        found[digest] = vector
        return found

    def keep(self, digests: Sequence[bytes], vectors: npt.NDArray[np.float32]) -> None:
        """Store ``vectors`` (row per digest); a digest stored already keeps its vector."""
        rows = [
            (digest, np.ascontiguousarray(vector, dtype=np.float32).tobytes())
            for digest, vector in zip(digests, vectors, strict=True)
        ]
        with self._lock, self._transaction():
            self._connection.executemany(
                "INSERT OR IGNORE INTO vectors (digest, vector) VALUES (?, ?)", rows
            )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._connection.close()


def _model_key(fingerprint: ModelFingerprint, window: int | None) -> str:
    digest = hashlib.sha256()
    digest.update(f"{fingerprint.name}\n{fingerprint.dimension}\n{window}\n".encode())
    digest.update(fingerprint.canary_hash.encode())
    digest.update(fingerprint.canary_vectors)
    return digest.hexdigest()[:32]


class CachingEmbedder(EmbedderWrapper):
    """A ``TextEmbedder`` that embeds each text once per model: texts embedded before (in
    this process or any other sharing ``directory``) are read from the cache.

    ``name``, ``dimension`` and ``fingerprint`` are the wrapped embedder's. The cache file is
    opened at the first ``embed``; ``close`` closes it (the wrapped embedder is not closed).
    """

    def __init__(self, embedder: TextEmbedder, directory: Path) -> None:
        super().__init__(embedder)
        self._directory = directory
        self._file: _VectorFile | None = None
        self._opened = False
        self._open_lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts``: stored vectors for the texts this model embedded before, the
        model's for the others (which are then stored)."""
        vector_file = self._vector_file()
        if vector_file is None or not texts:
            return self._embedder.embed(texts)
        digests = [hashlib.sha256(text.encode("utf-8")).digest() for text in texts]
        try:
            found = vector_file.found(list(dict.fromkeys(digests)))
        except sqlite3.Error as error:
            self._give_up(f"cannot read it ({error})")
            return self._embedder.embed(texts)
        missing = list(dict.fromkeys(d for d in digests if d not in found))
        if missing:
            first_text = dict(zip(digests, texts, strict=True))
            fresh = self._embedder.embed([first_text[digest] for digest in missing])
            found.update(zip(missing, fresh, strict=True))
            try:
                vector_file.keep(missing, fresh)
            except sqlite3.Error as error:
                self._give_up(f"cannot write it ({error})")
        return np.stack([found[digest] for digest in digests]).astype(np.float32, copy=False)

    def close(self) -> None:
        """Close the cache file."""
        with self._open_lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def _vector_file(self) -> _VectorFile | None:
        with self._open_lock:
            if not self._opened:
                self._opened = True
                # The canary texts are short: a model that reads fewer tokens of a long text
                # embeds them alike, so its window is part of its identity.
                window = getattr(self._embedder, "max_seq_length", None)
                key = _model_key(self._embedder.fingerprint, window)
                path = self._directory / "vectors" / f"{key}.sqlite3"
                try:
                    self._file = _VectorFile(path, self._embedder.dimension)
                except (OSError, sqlite3.Error) as error:
                    log.warning(
                        "the vector cache %s cannot be opened (%s); embedding every text",
                        path,
                        error,
                    )
            return self._file

    def _give_up(self, reason: str) -> None:
        log.warning("the vector cache under %s: %s; embedding every text", self._directory, reason)
        self.close()
