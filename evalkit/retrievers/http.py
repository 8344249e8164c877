"""Any retriever behind an HTTP JSON endpoint, one request per query.

The request and response shapes, retries, redirects and the token: docs/retrievers.md,
"HTTP endpoint" (``request_json_schema`` and ``response_json_schema`` give the shapes).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, NotRequired, TypedDict
from urllib.parse import urlsplit

import httpx
import msgspec

from evalkit.config.secrets import HTTP_RETRIEVER_TOKEN_ENV
from evalkit.coroutines import map_requests
from evalkit.errors import ConfigError, RetrieverError
from evalkit.jsonsafe import depth_checked
from evalkit.records import Query, QueryResult, ScoredDoc
from evalkit.redaction import (
    http_url_problem,
    mask_url,
    masked_excerpt,
    redact_known,
    register_secrets,
    url_secrets,
)
from evalkit.retrievers.base import (
    ClosesOnExit,
    Unfingerprinted,
    describe_exception,
    elapsed_ms,
    failed_result,
    finite_float,
    ranked_docs,
    validate_k,
)
from evalkit.retry import AttemptError, RetryPolicy, retry_after_seconds

__all__ = [
    "HTTP_TOKEN_ENV",
    "HttpRetriever",
    "ParsedResponse",
    "RetrievalRequest",
    "RetrievalResponse",
    "RetrievedItem",
    "parse_response",
    "parse_results",
    "request_json_schema",
    "response_json_schema",
]

HTTP_TOKEN_ENV = HTTP_RETRIEVER_TOKEN_ENV
"""Environment variable holding a token sent as ``Authorization: Bearer``."""

_EXPECTED_SHAPE = (
    '{"results": [{"id": "<doc id>", "score": <number, optional>, "text": <string, optional>},'
    ' ...], "answer": <string, optional>}'
)
_ERROR_BODY_CHARS = 200
MAX_RESPONSE_BYTES = 16 * 2**20
"""The largest response body read (16 MiB): an endpoint that ignores ``k`` and answers with
hundreds of thousands of results would otherwise be read whole, by every request in
flight, before the first ``k`` are kept."""
_CHECK_QUERY = Query(id="evalkit-check", text="evalkit connectivity check")
_MISCONFIGURED_HINTS = {
    401: f"the endpoint wants credentials: set {HTTP_TOKEN_ENV} or pass headers",
    403: f"the endpoint refused the credentials: check {HTTP_TOKEN_ENV} or the headers",
    404: "no endpoint at this URL: check the path",
    405: "the URL does not accept POST: point it at the search endpoint",
}


class RetrievalRequest(TypedDict):
    """The JSON body of the request the HTTP retriever sends for each query."""

    query: Annotated[str, msgspec.Meta(description="the query text")]
    query_id: Annotated[str, msgspec.Meta(description="the query's id in the goldset or log")]
    k: Annotated[int, msgspec.Meta(ge=1, description="how many documents to return, at most")]
    tenant: Annotated[
        str | None,
        msgspec.Meta(description="the query's tenant; null for queries without one"),
    ]


class RetrievedItem(TypedDict):
    """One ranked result of an endpoint's answer."""

    id: Annotated[
        str | int,
        msgspec.Meta(description="the document's id (an integer is read as its digits)"),
    ]
    score: NotRequired[
        Annotated[float, msgspec.Meta(description="higher is better; for every result or none")]
    ]
    text: NotRequired[
        Annotated[
            str | None,
            msgspec.Meta(description="the passage the generator was given (RAG endpoints)"),
        ]
    ]


# Two rules JSON Schema cannot state here, which parse_response checks: ids are not blank,
# and scores do not rise down the list.
_SCORES_FOR_ALL_OR_NONE = {
    "anyOf": [
        {"items": {"required": ["score"]}},
        {"items": {"not": {"required": ["score"]}}},
    ]
}


class RetrievalResponse(TypedDict):
    """The JSON body an endpoint answers with (status 200). Other fields are ignored."""

    results: Annotated[
        list[RetrievedItem],
        msgspec.Meta(
            description="the documents, best first; more than k are cut to the first k",
            extra_json_schema=_SCORES_FOR_ALL_OR_NONE,
        ),
    ]
    answer: NotRequired[
        Annotated[str | None, msgspec.Meta(description="the answer a RAG endpoint generated")]
    ]


def request_json_schema() -> dict[str, Any]:
    """JSON Schema of the request body, generated from ``RetrievalRequest``."""
    return msgspec.json.schema(RetrievalRequest)


def response_json_schema() -> dict[str, Any]:
    """JSON Schema of the response body, generated from ``RetrievalResponse``."""
    return msgspec.json.schema(RetrievalResponse)


class MalformedResponseError(ValueError):
    """An endpoint's answer does not have the documented shape."""


class _AttemptError(AttemptError):
    """One failed attempt: what went wrong, its HTTP status if it had one, and whether
    another attempt may help."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable, retry_after=retry_after)
        self.status_code = status_code


@dataclass(frozen=True, slots=True)
class _Outcome:
    result: QueryResult
    status_code: int | None
    attempts: int


@dataclass(frozen=True, slots=True)
class ParsedResponse:
    """An endpoint's answer to one query: ranked documents and, from a RAG endpoint, the
    generated ``answer`` with the passages (``contexts``) and ids (``context_ids``) of the
    results that carried a ``text``, in rank order."""

    docs: tuple[ScoredDoc, ...]
    answer: str | None = None
    contexts: tuple[str, ...] = ()
    context_ids: tuple[str, ...] = ()


def parse_results(payload: Any, k: int) -> tuple[ScoredDoc, ...]:
    """Turn a decoded response body into at most ``k`` ranked documents.

    Raises ``MalformedResponseError`` saying what is wrong when the body is not
    ``{"results": [{"id": ..., "score": ...}, ...]}`` as docs/retrievers.md, "HTTP endpoint"
    states it: scores that rise down the list would rank another order than the endpoint's.
    """
    return parse_response(payload, k).docs


def parse_response(payload: Any, k: int) -> ParsedResponse:
    """Turn a decoded response body into ranked documents and the generated answer, if any.

    As ``parse_results``, and also: ``answer``, when present and not null, must be a
    string; a result's ``text``, when present and not null, must be a string. Texts of
    results beyond the first ``k`` are dropped with those results.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
        raise MalformedResponseError(f"expected a JSON object {_EXPECTED_SHAPE}")
    answer = payload.get("answer")
    if answer is not None and not isinstance(answer, str):
        raise MalformedResponseError(
            f"answer must be a string (the generated answer), got {type(answer).__name__}"
        )
    items: list[Any] = payload["results"][:k]
    doc_ids: list[str] = []
    scores: list[float] = []
    contexts: list[str] = []
    context_ids: list[str] = []
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise MalformedResponseError(f"results[{position}] is not an object")
        doc_id = item.get("id")
        if isinstance(doc_id, bool) or not isinstance(doc_id, str | int):
            raise MalformedResponseError(f"results[{position}].id must be a string")
        if not str(doc_id).strip():
            raise MalformedResponseError(f"results[{position}].id is empty")
        doc_ids.append(str(doc_id))
        text = item.get("text")
        if text is not None:
            if not isinstance(text, str):
                raise MalformedResponseError(
                    f"results[{position}].text must be a string (the passage), "
                    f"got {type(text).__name__}"
                )
            contexts.append(text)
            context_ids.append(str(doc_id))
        if "score" in item:
            score = item["score"]
            if isinstance(score, bool) or not isinstance(score, int | float):
                raise MalformedResponseError(f"results[{position}].score must be a number")
            number = finite_float(score)
            if number is None:
                why = " (an integer too large for a 64-bit float)" if isinstance(score, int) else ""
                raise MalformedResponseError(f"results[{position}].score is not finite{why}")
            scores.append(number)
    if scores and len(scores) != len(doc_ids):
        raise MalformedResponseError(
            "some results have a score and some do not; give every result a score, or none"
        )
    rising = next((i for i in range(1, len(scores)) if scores[i] > scores[i - 1]), None)
    if rising is not None:
        raise MalformedResponseError(
            f"results[{rising}].score {scores[rising]:g} is higher than results[{rising - 1}]"
            f".score {scores[rising - 1]:g}: give the results best first with scores that do "
            "not rise (negate distances), or leave the scores out to be scored by rank"
        )
    if not scores:
        scores = [1.0 / rank for rank in range(1, len(doc_ids) + 1)]
    return ParsedResponse(
        docs=ranked_docs(doc_ids, scores),
        answer=answer,
        contexts=tuple(contexts),
        context_ids=tuple(context_ids),
    )


class _BodyTooSlowError(Exception):
    """The body was still arriving when the request's time was up."""


def _capped_body(response: httpx.Response, deadline: float) -> bytes | None:
    """The body of ``response`` read as it streams in, or None as soon as it is known to be
    over ``MAX_RESPONSE_BYTES`` (by its Content-Length, else by what arrived).

    Raises ``_BodyTooSlowError`` when it is still arriving at ``deadline`` (``time.monotonic``):
    httpx's timeout bounds each read, so a body sent a byte at a time never timed out.
    """
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            return None
        chunks.append(chunk)
        if time.monotonic() > deadline:
            raise _BodyTooSlowError
    return b"".join(chunks)


def _not_json(response: httpx.Response, body: bytes) -> str:
    """Why a successful answer's body is not the JSON asked for: empty, or what it holds."""
    if not body.strip():
        return 'the body is empty; answer with a JSON object, {"results": []} for no results'
    content_type = response.headers.get("Content-Type", "no Content-Type")
    excerpt = masked_excerpt(" ".join(body.decode("utf-8", "replace").split()), _ERROR_BODY_CHARS)
    return f"the body is not JSON ({content_type}): {excerpt}"


def _retry_after_seconds(response: httpx.Response) -> float | None:
    return retry_after_seconds(response.headers.get("Retry-After"))


class HttpRetriever(Unfingerprinted, ClosesOnExit):
    """A retriever behind an HTTP JSON endpoint (one POST per query, concurrent).

    ``timeout`` is per request, in seconds; the n-th of ``retries`` waits ``backoff * 2**n``
    seconds plus jitter, or what ``Retry-After`` asks, at most ``max_retry_wait``. An
    answered query's latency is its successful attempt's; a failed query's runs until it was
    given up, back-off included.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        concurrency: int = 8,
        headers: Mapping[str, str] | None = None,
        max_retry_wait: float = 30.0,
    ) -> None:
        problem = http_url_problem(url)
        if problem is not None:
            raise ConfigError(
                f"HTTP retriever URL {mask_url(url)!r}: {problem}; give an http:// or https:// "
                "URL such as http://127.0.0.1:8080/search"
            )
        if timeout <= 0 or retries < 0 or backoff < 0 or concurrency < 1 or max_retry_wait < 0:
            raise ConfigError(
                "HTTP retriever needs timeout > 0, retries >= 0, backoff >= 0, "
                f"concurrency >= 1 and max_retry_wait >= 0; got timeout={timeout}, "
                f"retries={retries}, backoff={backoff}, concurrency={concurrency}, "
                f"max_retry_wait={max_retry_wait}"
            )
        self._url = url
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._concurrency = concurrency
        self._max_retry_wait = max_retry_wait
        self._headers = dict(headers or {})
        token = os.environ.get(HTTP_TOKEN_ENV)
        self._token_from_env = bool(token) and not any(
            name.lower() == "authorization" for name in self._headers
        )
        parts = urlsplit(url)
        if self._token_from_env and (parts.username or parts.password):
            # httpx would send the URL's user:password as Basic auth in place of the bearer.
            raise ConfigError(
                f"HTTP retriever URL {mask_url(url)!r}: both credentials in the URL "
                f"(user:password@) and a token in {HTTP_TOKEN_ENV} were given; choose one: "
                f"remove the credentials from the URL or unset {HTTP_TOKEN_ENV}"
            )
        if token and self._token_from_env:
            self._headers["Authorization"] = f"Bearer {token}"
        secrets = [value for value in self._headers.values() if value]
        if token:
            secrets.append(token)
        # The URL's password and secret query values travel in every request (the password
        # as a base64 Basic-auth header), and an endpoint may echo them in an error body.
        secrets.extend(url_secrets(url))
        register_secrets(secrets)
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()
        self._retry = RetryPolicy.of_attempts(retries, backoff, max_wait=max_retry_wait)

    def _http(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=self._timeout,
                    headers=self._headers,
                    limits=httpx.Limits(
                        max_connections=self._concurrency,
                        max_keepalive_connections=self._concurrency,
                    ),
                )
            return self._client

    def retrieve(self, queries: Sequence[Query], k: int) -> list[QueryResult]:
        """Return the top ``k`` documents of every query, one result per query, in order."""
        validate_k(k)
        if not queries:
            return []
        outcomes = map_requests(
            lambda query, stopped: self._ask(query, k, stopped),
            queries,
            workers=min(self._concurrency, len(queries)),
        )
        return [outcome.result for outcome in outcomes]

    def _ask(self, query: Query, k: int, stopped: threading.Event | None = None) -> _Outcome:
        payload = RetrievalRequest(query=query.text, query_id=query.id, k=k, tenant=query.tenant)
        first_start = time.perf_counter()
        attempts = 0

        def attempt() -> _Outcome:
            nonlocal attempts
            if stopped is not None and stopped.is_set():
                raise _AttemptError("stopped: the replay was interrupted", retryable=False)
            attempts += 1
            start = time.perf_counter()
            deadline = time.monotonic() + self._timeout
            try:
                with self._http().stream("POST", self._url, json=payload) as response:
                    body = _capped_body(response, deadline)
            except httpx.TimeoutException as error:
                failure = f"timed out after {self._timeout:g} s ({type(error).__name__})"
                raise _AttemptError(failure, retryable=True) from error
            except _BodyTooSlowError as error:
                failure = f"timed out after {self._timeout:g} s: the response was still arriving"
                raise _AttemptError(failure, retryable=True) from error
            except httpx.TransportError as error:
                raise _AttemptError(
                    f"request failed: {describe_exception(error)}", retryable=True
                ) from error
            status_code = response.status_code
            latency = elapsed_ms(start)
            if not response.is_success:
                raise _AttemptError(
                    self._status_failure(response, body or b""),
                    retryable=status_code == 429 or status_code >= 500,
                    status_code=status_code,
                    retry_after=_retry_after_seconds(response),
                )
            if body is None:
                raise _AttemptError(
                    f"response larger than {MAX_RESPONSE_BYTES // 2**20} MiB (HTTP "
                    f"{status_code}): answer with at most k results",
                    retryable=False,
                    status_code=status_code,
                )
            try:
                parsed = parse_response(depth_checked(json.loads, body), k)
            except json.JSONDecodeError as error:
                # "Expecting value: line 1 column 1" says nothing of an empty body (a 204) or
                # a proxy's HTML page in place of the endpoint's JSON.
                failure = f"malformed response (HTTP {status_code}): {_not_json(response, body)}"
                raise _AttemptError(failure, retryable=False, status_code=status_code) from error
            except ValueError as error:  # shape errors, and JSON nested too deeply
                failure = f"malformed response (HTTP {status_code}): {error}"
                raise _AttemptError(failure, retryable=False, status_code=status_code) from error
            result = QueryResult(
                query_id=query.id,
                docs=parsed.docs,
                latency_ms=latency,
                answer=parsed.answer,
                contexts=parsed.contexts,
                context_ids=parsed.context_ids,
            )
            return _Outcome(result, status_code, attempts)

        try:
            return self._retry.call(attempt)
        except _AttemptError as failure:
            message = f"{failure} (after {attempts} attempt{'s' if attempts > 1 else ''})"
            result = failed_result(query.id, redact_known(message), elapsed_ms(first_start))
            return _Outcome(result, failure.status_code, attempts)

    def _status_failure(self, response: httpx.Response, content: bytes) -> str:
        body = masked_excerpt(
            " ".join(content.decode("utf-8", "replace").split()),
            _ERROR_BODY_CHARS,
        )
        reason = response.reason_phrase or "error"
        failure = f"HTTP {response.status_code} {reason}"
        if response.has_redirect_location:
            # Not followed: a 301 or 302 turns the POST into a bodiless GET, and a 307 or 308
            # would send the query (and the token) to wherever the endpoint points.
            location = response.headers["Location"]
            with contextlib.suppress(httpx.InvalidURL):
                location = str(response.url.join(location))
            return (
                f"{failure}: redirected to {mask_url(location)}; use that URL (redirects are "
                "not followed)"
            )
        return failure + (f": {body}" if body else "")

    def _wait(self, attempt: int, retry_after: float | None) -> float:
        return self._retry.wait(attempt, retry_after)

    def check(self) -> None:
        """Send one probe query; raise ``RetrieverError`` saying what to fix if it fails."""
        outcome = self._ask(_CHECK_QUERY, 1)
        if outcome.result.ok:
            return
        error = outcome.result.error or ""
        hint = _MISCONFIGURED_HINTS.get(outcome.status_code or 0, "")
        if outcome.status_code is None:
            hint = "check the URL and that the service is running"
        elif not hint and "malformed" in error and _EXPECTED_SHAPE not in error:
            hint = f"the endpoint must answer {_EXPECTED_SHAPE}"
        raise RetrieverError(
            f"HTTP retriever at {mask_url(self._url)} does not answer a probe query: "
            f"{error}" + (f"; {hint}" if hint else "")
        )

    def describe(self) -> dict[str, Any]:
        """Kind, URL and request settings; header names only, never their values."""
        return {
            "kind": "http",
            "url": mask_url(self._url),
            "timeout": self._timeout,
            "retries": self._retries,
            "backoff": self._backoff,
            "concurrency": self._concurrency,
            "headers": sorted(self._headers),
            "token_from_env": self._token_from_env,
        }

    def close(self) -> None:
        """Close the connection pool."""
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None
