"""A local model loaded on first use, optionally in the background with queries embedded ahead."""

from __future__ import annotations

import atexit
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from evalkit.config import EmbedBackend, Settings
from evalkit.embedding.fingerprint import ModelFingerprint
from evalkit.embedding.local import DEFAULT_MODEL_NAME, Embedder, load_embedder

__all__ = ["LazyEmbedder", "load_embedder_for"]


def load_embedder_for(settings: Settings) -> Embedder:
    """``load_embedder`` with the model, batch size, backend and cache ``settings`` name."""
    return LazyEmbedder.from_settings(settings).load()


class LazyEmbedder:
    """An ``Embedder`` that loads its model on first use (embedding, dimension, fingerprint).

    Loading takes seconds to tens of seconds, so every cheap check reports its error first.
    ``name`` is known without loading. Loading errors are ``load_embedder``'s, raised at first
    use in the calling thread, also after ``start_loading`` or ``prefetch``.
    """

    def __init__(
        self,
        model_path: Path | str | None = None,
        *,
        batch_size: int = 64,
        backend: EmbedBackend = EmbedBackend.auto,
        cache_dir: Path | None = None,
    ) -> None:
        self._model_path = model_path
        self.batch_size = batch_size
        self._backend = backend
        self._cache_dir = cache_dir
        self.name = DEFAULT_MODEL_NAME if model_path is None else Path(model_path).name
        self._loaded: Embedder | None = None
        self._load_lock = threading.Lock()
        self._ahead_lock = threading.Lock()
        self._prefetched: list[_Prefetched] = []
        self._threads: list[threading.Thread] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> LazyEmbedder:
        """The local model ``settings`` names (path, batch size, backend, cache), not loaded."""
        return cls(
            settings.model_path,
            batch_size=settings.embed_batch_size,
            backend=settings.embed_backend,
            cache_dir=settings.cache_dir,
        )

    @property
    def loaded(self) -> bool:
        """Whether the model has been loaded yet."""
        return self._loaded is not None

    def load(self) -> Embedder:
        """The loaded model (loading it now if it was not yet, or waiting for the background
        load ``start_loading`` began)."""
        with self._load_lock:
            if self._loaded is None:
                self._loaded = load_embedder(
                    self._model_path,
                    batch_size=self.batch_size,
                    backend=self._backend,
                    cache_dir=self._cache_dir,
                )
            return self._loaded

    def start_loading(self) -> None:
        """Begin loading the model in a background thread; returns at once.

        A load that fails in the background is tried again, and raises, at first use.
        """
        if self._loaded is None:
            self._spawn(None)

    def prefetch(self, texts: Sequence[str]) -> None:
        """Embed ``texts`` in a background thread, in one ``embed`` call, ahead of the calls
        that will ask for them; returns at once.

        A later ``embed`` of texts that are all among these takes their rows (waiting for
        the background call to finish) instead of embedding them again. One call over the
        whole set sorts it by length, so its batches need less padding than the caller's
        own batches would; a text's vector is then the one it gets in this set (the same
        to within float rounding, 1e-7). Vectors are held until ``close``. The same set
        prefetched twice is embedded once.
        """
        wanted = tuple(texts)
        if not wanted:
            return
        with self._ahead_lock:
            if any(known.texts == wanted for known in self._prefetched):
                return
            entry = _Prefetched(wanted)
            self._prefetched.append(entry)
        self._spawn(entry)

    def close(self) -> None:
        """Drop prefetched vectors and prefetches not started, and wait for the background
        threads (an embedding or a load under way is finished first). The model stays
        loaded."""
        with self._ahead_lock:
            for entry in self._prefetched:
                entry.vectors.cancel()
            self._prefetched.clear()
            threads, self._threads = self._threads, []
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join()

    @property
    def dimension(self) -> int:
        """Length of the vectors the model makes (loads the model)."""
        return self.load().dimension

    @property
    def max_seq_length(self) -> int | None:
        """Tokens of a text the model reads (loads the model); None when unknown."""
        return self.load().max_seq_length

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """``Embedder.embed`` (loads the model), or the rows ``prefetch`` made of these
        texts."""
        vectors = self._take(texts)
        return vectors if vectors is not None else self.load().embed(texts)

    @property
    def fingerprint(self) -> ModelFingerprint:
        """``Embedder.fingerprint`` (loads the model)."""
        return self.load().fingerprint

    def _take(self, texts: Sequence[str]) -> npt.NDArray[np.float32] | None:
        if not texts:
            return None
        with self._ahead_lock:
            candidates = list(self._prefetched)
        for entry in candidates:
            if any(text not in entry.rows for text in texts):
                continue
            rows = [entry.rows[text] for text in texts]
            try:
                vectors = entry.vectors.result()
            except CancelledError:
                return None
            return np.ascontiguousarray(vectors[rows])
        return None

    def _spawn(self, entry: _Prefetched | None) -> None:
        thread = threading.Thread(
            target=self._background, args=(entry,), name="evalkit-embedder", daemon=True
        )
        with self._ahead_lock:
            self._threads = [known for known in self._threads if known.is_alive()]
            self._threads.append(thread)
        _WITH_THREADS.add(self)
        thread.start()

    def _background(self, entry: _Prefetched | None) -> None:
        # scipy.stats looks torch up in sys.modules while it imports: a caller's thread
        # importing it while this thread is half-way through importing torch failed with
        # "partially initialized module 'torch'". Importing it here first orders the two
        # (a thread that meets a module another is importing waits for it).
        import scipy.stats  # noqa: F401

        try:
            embedder = self.load()
        except Exception:
            # The caller then embeds by itself, and its own load raises this error in its
            # thread, at first use.
            if entry is not None:
                entry.vectors.cancel()
            return
        if entry is None or not entry.vectors.set_running_or_notify_cancel():
            return
        try:
            entry.vectors.set_result(embedder.embed(entry.texts))
        except Exception as error:  # raised to the caller that takes these vectors
            entry.vectors.set_exception(error)


@dataclass(frozen=True, eq=False)
class _Prefetched:
    """A set of texts embedded ahead, and its vectors once the background call is done."""

    texts: tuple[str, ...]
    vectors: Future[npt.NDArray[np.float32]] = field(default_factory=Future)
    rows: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", {text: row for row, text in enumerate(self.texts)})


_WITH_THREADS: weakref.WeakSet[LazyEmbedder] = weakref.WeakSet()


@atexit.register
def _stop_background_threads() -> None:
    # The threads are daemons, so a command never waits for one by itself; they are stopped
    # here, before the interpreter shuts down, so none is left inside the model's native code.
    for embedder in list(_WITH_THREADS):
        embedder.close()
