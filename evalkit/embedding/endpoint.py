"""Queries embedded by an OpenAI-compatible ``/embeddings`` endpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt

from evalkit.embedding.fingerprint import CANARY_TEXTS, ModelFingerprint, fingerprint_from_canaries
from evalkit.errors import ConfigError, EmbeddingError
from evalkit.jsonsafe import depth_checked
from evalkit.redaction import (
    http_url_problem,
    mask_url,
    masked_excerpt,
    redact_known,
    register_secrets,
    url_secrets,
)
from evalkit.retry import AttemptError, RetryPolicy, retry_after_seconds

__all__ = ["EndpointEmbedder"]

_ERROR_BODY_CHARS = 200
_EMBEDDINGS_SHAPE = '{"data": [{"index": <int>, "embedding": [<number>, ...]}, ...]}'


class EndpointEmbedder:
    """Queries embedded by an OpenAI-compatible ``/embeddings`` endpoint.

    One ``POST {url}/embeddings`` per batch of ``batch_size`` texts. Timeouts, connection
    errors, 429 and 5xx answers are retried (``Retry-After`` honoured, capped by
    ``max_retry_wait``); any other failure, or a reply that does not hold one finite vector
    per input of one length, raises ``EmbeddingError`` naming the (masked) URL, never the
    key. Vectors are returned at unit length. Nothing is sent before first use; ``dimension`` and
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
        problem = http_url_problem(url)
        if problem is not None:
            raise ConfigError(
                f"embedder URL {mask_url(url)!r}: {problem}; give an http:// or https:// URL "
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
        self._retry = RetryPolicy.of_attempts(retries, backoff, max_wait=max_retry_wait)

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
            text = masked_excerpt(" ".join(response.text.split()), _ERROR_BODY_CHARS)
            raise _EndpointAttemptError(
                self._fail(f"HTTP {status}: {text}" if text else f"HTTP {status}"),
                retryable=status == 429 or status >= 500,
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        try:
            vectors = self._parse(depth_checked(json.loads, response.content), len(batch))
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


class _EndpointAttemptError(AttemptError):
    """One failed request to an embedding endpoint, and whether another may help."""

    def __init__(
        self, error: EmbeddingError, *, retryable: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(str(error), retryable=retryable, retry_after=retry_after)
        self.error = error
