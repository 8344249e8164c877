"""The LLM judge: ragas' own Faithfulness and AnswerRelevancy over any OpenAI-compatible API.

``CallGuard`` bounds each call (concurrency, rate, timeout, retries then a ``JudgeCallError``
with its ``Unmeasured`` reason, reply size) and hands each output over as it arrives, so a
rerun pays only for unanswered calls. A judgment is identified by the judge model and the
prompt version. docs/answers.md, "The LLM judge".
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from evalkit.answers.cache import JudgeCallOutput, judge_call_key
from evalkit.answers.records import AnswerRecord, CachedJudgment, Unmeasured
from evalkit.config import JudgeSettings
from evalkit.errors import ConfigError, EvalkitError
from evalkit.jsonsafe import depth_checked
from evalkit.redaction import masked_excerpt, redact_known, register_secrets, url_secrets
from evalkit.retry import AttemptError, RetryPolicy

if TYPE_CHECKING:
    from evalkit.embedding import Embedder

__all__ = [
    "ACCEPTED_ENCODINGS",
    "JUDGE_METRICS",
    "MAX_REPLY_BYTES",
    "CallGuard",
    "JudgeCallError",
    "JudgeTask",
    "JudgmentCalls",
    "LLMJudge",
    "NotACompletionError",
    "RateLimiter",
    "ReplyTooLargeError",
    "cap_reply",
    "classify_failure",
    "judge_client",
]

T = TypeVar("T")

JUDGE_METRICS: tuple[str, ...] = ("faithfulness", "answer_relevancy")
"""Metrics the LLM judge scores, by their ragas names."""

MAX_REPLY_BYTES = 512 * 1024
"""The most of a judge's reply body read, counted as inflated when it was sent compressed: a
completion holding a grade, a verdict or a question is a few kB."""
_INFLATED = frozenset({"gzip", "x-gzip", "deflate"})
"""The content codings a capped reply is inflated from, by ``zlib`` (which tells gzip from
zlib's deflate by the header); the clients ask for these alone (``ACCEPTED_ENCODINGS``)."""
ACCEPTED_ENCODINGS = "gzip, deflate"
"""The ``Accept-Encoding`` of the judge's clients: the codings ``cap_reply`` can count."""

_RETRYABLE_STATUS = frozenset({408, 409, 429})
_DETAIL_LIMIT = 300
# How much of a reply that is not a chat completion, or not the JSON asked for, a detail shows.
_SHOWN_REPLY_CHARS = 200


class ReplyTooLargeError(ValueError):
    """A reply body larger than ``MAX_REPLY_BYTES`` (or in a coding it cannot be counted
    in): not read further, and a malformed output, never a grade taken from somewhere in it."""

    def __init__(self, status: int, coding: str | None = None) -> None:
        if coding is None:
            why = (
                f"the body is larger than {MAX_REPLY_BYTES:,} bytes: not read further, as no "
                "reply asked for is that long"
            )
        else:
            why = (
                f"the body is sent as {coding!r}, which evalkit did not ask for "
                f"(Accept-Encoding: {ACCEPTED_ENCODINGS}): not read"
            )
        super().__init__(f"HTTP {status}, and {why}")


class _CappedStream(httpx.AsyncByteStream):
    """A response body that raises ``ReplyTooLargeError`` once more than
    ``MAX_REPLY_BYTES`` arrive, inflated first when it comes compressed (``inflate``): a
    few kB of gzip can inflate to gigabytes."""

    def __init__(self, stream: httpx.AsyncByteStream, status: int, *, inflate: bool) -> None:
        self._stream = stream
        self._status = status
        self._inflate = inflate

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 32) if self._inflate else None
        async for received in self._stream:
            chunk = received
            if inflater is not None:
                try:
                    chunk = inflater.decompress(received, MAX_REPLY_BYTES + 1 - size)
                except zlib.error as error:
                    raise httpx.DecodingError(f"the compressed reply is damaged: {error}") from None
                if inflater.unconsumed_tail:
                    raise ReplyTooLargeError(self._status)
            size += len(chunk)
            if size > MAX_REPLY_BYTES:
                raise ReplyTooLargeError(self._status)
            yield chunk
        rest = b"" if inflater is None else inflater.flush()
        if size + len(rest) > MAX_REPLY_BYTES:
            raise ReplyTooLargeError(self._status)
        if rest:
            yield rest

    async def aclose(self) -> None:
        await self._stream.aclose()


async def cap_reply(response: httpx.Response) -> None:
    """An httpx response hook: the body of ``response`` is read no further than
    ``MAX_REPLY_BYTES`` by whoever reads it (a body declared larger is refused at once), so
    a judge sending megabytes costs no more memory than that."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_REPLY_BYTES:
        raise ReplyTooLargeError(response.status_code)
    coding = response.headers.get("Content-Encoding", "").strip().lower()
    if coding not in ("", "identity", *_INFLATED):
        raise ReplyTooLargeError(response.status_code, coding)
    if isinstance(response.stream, httpx.AsyncByteStream):
        inflate = coding in _INFLATED
        if inflate:  # inflated here, counted as it is: httpx must not inflate it again
            del response.headers["Content-Encoding"]
        response.stream = _CappedStream(response.stream, response.status_code, inflate=inflate)


def judge_client(settings: JudgeSettings) -> Any:
    """An ``openai.AsyncOpenAI`` client of the ``[judge]`` endpoint, with no retries of its
    own (``CallGuard`` retries). The key, and any secret in the URL, are registered first:
    some proxies echo the key in an error body, and every detail is masked against it."""
    import openai  # deferred: the `answers` extra

    api_key = settings.api_key()
    register_secrets([api_key, *url_secrets(settings.base_url or "")])
    return openai.AsyncOpenAI(
        base_url=settings.base_url,
        api_key=api_key,
        timeout=settings.timeout,
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(
            headers={"Accept-Encoding": ACCEPTED_ENCODINGS},
            event_hooks={"response": [cap_reply, _require_completion]},
        ),
    )


async def _require_completion(response: Any) -> None:
    """Raise ``NotACompletionError`` for a successful chat-completions reply that is not a
    chat completion: the openai client and instructor would fail on it with an internal
    error (an AttributeError, an IndexError) that is neither retried nor telling."""
    if not response.is_success or not response.url.path.endswith("/chat/completions"):
        return
    await response.aread()
    try:
        body = depth_checked(json.loads, response.content)
    except ValueError:
        body = None
    if not is_completion(body):
        raise NotACompletionError.of(response.status_code, response.text)


class JudgeCallError(Exception):
    """A judge call that failed after every retry: why (an ``Unmeasured`` reason) and detail."""

    def __init__(self, reason: Unmeasured, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class NotACompletionError(ValueError):
    """An endpoint's successful reply that is not an OpenAI chat completion (a proxy's HTML
    page, a list, a choice without a message): an endpoint failure, asked again."""

    @classmethod
    def of(cls, status: int, body: str) -> NotACompletionError:
        """The error for a reply of HTTP ``status`` whose body, ``body``, is not a chat
        completion; the body's start is shown, masked."""
        shown = masked_excerpt(" ".join(body.split()), _SHOWN_REPLY_CHARS)
        return cls(
            f"HTTP {status}, but the body is not a chat completion "
            f"({{'choices': [{{'message': {{'content': ...}}}}]}}): {shown!r}"
        )


def is_completion(body: object) -> bool:
    """Whether the parsed JSON ``body`` is a chat completion with a first choice that has a
    message (its content may be empty)."""
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return False
    return isinstance(choices[0].get("message"), dict)


def classify_failure(error: BaseException) -> tuple[Unmeasured, bool, str]:
    """(reason, retryable, detail) for an exception raised by a judge call: through the
    openai client (the answer judge's ragas metrics) or plain httpx (the relevance
    assessor)."""
    if isinstance(error, TimeoutError | asyncio.TimeoutError | httpx.TimeoutException):
        return Unmeasured.judge_timeout, True, "no reply in time"
    if isinstance(error, httpx.HTTPStatusError):
        return _status_failure(error.response.status_code, error.response.text)
    if isinstance(error, httpx.TransportError):
        return Unmeasured.judge_error, True, f"cannot reach the judge: {_short(str(error))}"
    too_large = _cause(error, ReplyTooLargeError)
    if too_large is not None:
        # The openai client reports it as a connection error too.
        return Unmeasured.judge_malformed_output, True, str(too_large)
    not_a_completion = _cause(error, NotACompletionError)
    if not_a_completion is not None:
        # The openai client reports a reply refused by its response hook as a connection error.
        return Unmeasured.judge_error, True, _short(str(not_a_completion))
    try:
        import openai  # the answer judge's client (the `answers` extra)
    except ImportError:
        openai = None  # type: ignore[assignment]
    if openai is not None:
        if isinstance(error, openai.APITimeoutError):
            return Unmeasured.judge_timeout, True, "no reply in time"
        if isinstance(error, openai.APIStatusError):
            return _status_failure(error.status_code, error.message)
        if isinstance(error, openai.APIConnectionError):
            return Unmeasured.judge_error, True, f"cannot reach the judge: {_short(str(error))}"
    if _is_malformed_output(error):
        return Unmeasured.judge_malformed_output, True, _malformed_detail(error)
    return Unmeasured.judge_error, False, f"{type(error).__name__}: {_short(str(error))}"


E = TypeVar("E", bound=BaseException)


def _cause(error: BaseException, kind: type[E]) -> E | None:
    """``error`` or the first of its causes that is a ``kind``."""
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None or isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _malformed_detail(error: BaseException) -> str:
    """What was wrong with a reply that is not the JSON asked for, with the reply itself
    when instructor kept it: what instructor parsed is only the part of the reply between
    braces, and its error alone reads as if the reply had been empty."""
    from pydantic import ValidationError

    cause = error.__cause__ or error
    if isinstance(cause, ValidationError):
        why = "; ".join(_problem(problem["loc"], problem["msg"]) for problem in cause.errors()[:2])
    else:
        why = " ".join(str(cause).split())
    reply = _reply_text(getattr(error, "last_completion", None))
    if reply is None:
        return f"reply is not the JSON asked for: {_short(why)}"
    shown = masked_excerpt(" ".join(reply.split()), _SHOWN_REPLY_CHARS)
    return f"reply is not the JSON asked for ({_short(why)}): {shown!r}"


def _problem(location: Sequence[int | str], message: str) -> str:
    where = ".".join(str(part) for part in location)
    return f"{where}: {message}" if where else message


def _reply_text(completion: object) -> str | None:
    """The text of the first choice of a chat completion object (None: no completion)."""
    choices = getattr(completion, "choices", None)
    if not choices:
        return None
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    return "" if content is None else str(content)


def _status_failure(status: int, message: str) -> tuple[Unmeasured, bool, str]:
    retryable = status in _RETRYABLE_STATUS or status >= 500
    return Unmeasured.judge_error, retryable, f"HTTP {status}: {_short(message)}"


def _is_malformed_output(error: BaseException) -> bool:
    from pydantic import ValidationError

    if isinstance(error, ValidationError | json.JSONDecodeError):
        return True
    # instructor raises InstructorRetryException (its module moved between versions) when
    # a reply does not parse into the prompt's output model.
    return any(cls.__name__ == "InstructorRetryException" for cls in type(error).__mro__)


def _short(text: str) -> str:
    # Masked before cutting, so a secret cut at the limit is not half left in the detail.
    text = redact_known(" ".join(text.split()))
    return text if len(text) <= _DETAIL_LIMIT else text[: _DETAIL_LIMIT - 1] + "…"


class RateLimiter:
    """Spaces call starts so that at most ``per_minute`` start in any minute (None: no limit).

    ``clock`` and ``sleep`` default to ``time.monotonic`` and ``asyncio.sleep``.
    """

    def __init__(
        self,
        per_minute: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next_start = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        """Return when the next call may start."""
        if not self.interval:
            return
        async with self._lock:
            now = self._clock()
            delay = self._next_start - now
            self._next_start = max(now, self._next_start) + self.interval
        if delay > 0:
            await self._sleep(delay)


@dataclass
class CallGuard:
    """Concurrency limit, rate limit, timeout and retries around each judge call.

    ``calls`` counts every request started (retries included).
    """

    timeout: float
    max_retries: int
    retry_backoff: float
    concurrency: int
    requests_per_minute: float | None = None
    calls: int = 0
    _semaphore: asyncio.Semaphore = field(init=False, repr=False)
    _limiter: RateLimiter = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._semaphore = asyncio.Semaphore(self.concurrency)
        self._limiter = RateLimiter(self.requests_per_minute)

    @classmethod
    def from_settings(cls, settings: JudgeSettings) -> CallGuard:
        """A guard with the limits of ``settings``."""
        limits = ("timeout", "max_retries", "retry_backoff", "concurrency", "requests_per_minute")
        return cls(**{name: getattr(settings, name) for name in limits})

    async def call(self, make_call: Callable[[], Awaitable[T]]) -> T:
        """Run ``make_call()`` under the limits; raise JudgeCallError once retries are spent."""
        attempts = 0

        async def attempt() -> T:
            nonlocal attempts
            attempts += 1
            async with self._semaphore:
                await self._limiter.wait()
                self.calls += 1
                try:
                    return await asyncio.wait_for(make_call(), timeout=self.timeout)
                except Exception as error:  # every failure is classified, none escapes raw
                    reason, retryable, detail = classify_failure(error)
                    raise _AttemptError(reason, retryable, detail) from error

        # The jitter (half to all of each doubled wait) keeps many concurrent retries from
        # hitting the judge in lockstep.
        policy = RetryPolicy.of_attempts(self.max_retries, self.retry_backoff, jitter=(0.5, 1.0))
        try:
            return await policy.acall(attempt)
        except _AttemptError as failure:
            tries = f"{attempts} attempt" + ("s" if attempts > 1 else "")
            raise JudgeCallError(failure.reason, f"{failure.detail} ({tries})") from None


class _AttemptError(AttemptError):
    """One failed judge call, classified."""

    def __init__(self, reason: Unmeasured, retryable: bool, detail: str) -> None:
        super().__init__(detail, retryable=retryable)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class JudgeTask:
    """One judgment to make: a metric of a record, for one repeat."""

    record: AnswerRecord
    metric: str
    repeat: int
    key: str


class JudgmentCalls:
    """The LLM calls of one judgment: the outputs ``known`` from earlier scorings (call key
    -> output) are recalled instead of sent, and each new output is handed to ``on_call``
    as it arrives. A call is identified by the judgment, its request (the prompt and output
    model, and the sampling settings of ``settings``) and how many identical requests the
    judgment made before it."""

    def __init__(
        self,
        task: JudgeTask,
        settings: JudgeSettings,
        *,
        known: Mapping[str, str],
        on_call: Callable[[JudgeCallOutput], None] | None,
    ) -> None:
        self.task = task
        self._model = str(settings.model)
        self._sampling = (settings.temperature, settings.max_tokens)
        self._known = known
        self._on_call = on_call
        self._asked: Counter[tuple[str, str]] = Counter()

    def recall(self, prompt: str, output_model: str) -> tuple[str, str | None]:
        """(call key, the output kept for it or None) for the judgment's next call of
        ``prompt`` answered as ``output_model``."""
        request = (prompt, output_model)
        occurrence = self._asked[request]
        self._asked[request] += 1
        key = judge_call_key(
            judgment_key=self.task.key,
            request=[self._model, *self._sampling, output_model, prompt],
            occurrence=occurrence,
        )
        return key, self._known.get(key)

    def keep(self, call_key: str, output: str) -> None:
        """Hand the output of a call just answered to ``on_call``."""
        if self._on_call is not None:
            self._on_call(
                JudgeCallOutput(
                    call_key=call_key,
                    judgment_key=self.task.key,
                    judge_model=self._model,
                    output=output,
                )
            )


class LLMJudge:
    """ragas' Faithfulness (and AnswerRelevancy) with the judge configured in ``settings``.

    Nothing is sent until ``judge`` is called; building the judge checks the configuration
    and computes the prompt versions.
    """

    def __init__(self, settings: JudgeSettings, *, embedder: Embedder | None = None) -> None:
        if not settings.judge_configured:
            raise ConfigError(
                "no LLM judge is configured: set base_url and model in the [judge] table of "
                "evalkit.toml (or EVALKIT_JUDGE_BASE_URL and EVALKIT_JUDGE_MODEL)"
            )
        os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
        from evalkit.answers import _ragas  # deferred: it imports ragas (heavy, optional)

        self.settings = settings
        self.model = str(settings.model)
        self.metrics: tuple[str, ...] = (
            JUDGE_METRICS if settings.answer_relevancy else ("faithfulness",)
        )
        self._embedder = embedder
        embedding_name = embedder.name if embedder is not None else None
        self.prompt_versions: dict[str, str] = {
            metric: _ragas.prompt_version(metric, embedding_model=embedding_name)
            for metric in self.metrics
        }
        self.calls = 0

    async def judge(
        self,
        tasks: Sequence[JudgeTask],
        *,
        known_calls: Mapping[str, str] | None = None,
        on_call: Callable[[JudgeCallOutput], None] | None = None,
        on_judged: Callable[[JudgeTask, CachedJudgment | JudgeCallError], None] | None = None,
    ) -> list[CachedJudgment | JudgeCallError]:
        """Judge every task (``concurrency`` at once, under the guard's limits), in task order.

        Calls ``known_calls`` holds are not sent; ``on_call`` / ``on_judged`` get each new output as
        it arrives, so a caller keeps what was paid for if the batch is killed.
        """
        if not tasks:
            return []
        # deferred: _ragas imports ragas (heavy, optional)
        from evalkit.answers import _ragas

        guard = CallGuard.from_settings(self.settings)
        client = judge_client(self.settings)
        results: list[CachedJudgment | JudgeCallError | None] = [None] * len(tasks)
        try:
            build = _ragas.metric_builder(
                client=client,
                model=self.model,
                guard=guard,
                temperature=self.settings.temperature,
                max_tokens=self.settings.max_tokens,
                embedder=self._embedder,
            )
            queued = iter(enumerate(tasks))

            async def work() -> None:
                for index, task in queued:
                    calls = JudgmentCalls(
                        task, self.settings, known=known_calls or {}, on_call=on_call
                    )
                    outcome = await self._judge_one(task, build(task.metric, calls))
                    results[index] = outcome
                    if on_judged is not None:
                        on_judged(task, outcome)

            await asyncio.gather(*(work() for _ in range(min(guard.concurrency, len(tasks)))))
        finally:
            self.calls += guard.calls
            await client.close()
        return [outcome for outcome in results if outcome is not None]

    async def _judge_one(self, task: JudgeTask, metric: Any) -> CachedJudgment | JudgeCallError:
        record = task.record
        try:
            if task.metric == "faithfulness":
                result = await metric.ascore(
                    user_input=record.question,
                    response=record.answer,
                    retrieved_contexts=list(record.contexts),
                )
            else:
                result = await metric.ascore(user_input=record.question, response=record.answer)
        except JudgeCallError as failure:
            return failure
        except EvalkitError:
            raise  # evalkit's own failure (an output that cannot be kept) stops the judging
        except Exception as error:  # a judge must never crash a scoring
            reason, _, detail = classify_failure(error)
            return JudgeCallError(reason, detail)
        value = _finite_or_none(result.value)
        return CachedJudgment(
            metric=task.metric,
            judge_model=self.model,
            prompt_version=self.prompt_versions[task.metric],
            value=value,
            unmeasured_reason=None if value is not None else str(Unmeasured.no_claims),
            detail=None if value is not None else "the judge found no statement in the answer",
        )


def _finite_or_none(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
