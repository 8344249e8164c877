"""The one retry policy: exponential back-off with jitter, a cap, and ``Retry-After``.

Retry n waits ``backoff * 2**n`` times a jitter factor (concurrent callers do not retry in
lockstep), or the failure's ``Retry-After``, at most ``max_wait``. ``retryable`` decides which
exceptions get another attempt; others, and the last failure, are raised unchanged.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception
from tenacity.stop import stop_after_attempt

__all__ = ["AttemptError", "RetryPolicy", "retry_after_seconds"]

T = TypeVar("T")


def _always(error: BaseException) -> bool:
    return True


def _no_hint(error: BaseException) -> float | None:
    return None


class AttemptError(Exception):
    """One failed attempt, classified by the attempt itself: whether another attempt may
    help, and how long the failure asks to wait (an HTTP ``Retry-After``), if it says."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


def _retryable_attempt(error: BaseException) -> bool:
    return isinstance(error, AttemptError) and error.retryable


def _attempt_hint(error: BaseException) -> float | None:
    return error.retry_after if isinstance(error, AttemptError) else None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry a failing call (see the module docstring).

    ``retries`` is the number of attempts after the first; ``retryable(error)`` says whether
    a failure may be retried; ``retry_after(error)`` is the wait the failure asks for, if any.
    """

    retries: int
    backoff: float
    max_wait: float = math.inf
    jitter: tuple[float, float] = (1.0, 2.0)
    retryable: Callable[[BaseException], bool] = _always
    retry_after: Callable[[BaseException], float | None] = _no_hint

    @classmethod
    def of_attempts(
        cls,
        retries: int,
        backoff: float,
        *,
        max_wait: float = math.inf,
        jitter: tuple[float, float] = (1.0, 2.0),
    ) -> RetryPolicy:
        """A policy that retries the ``AttemptError`` failures that say another attempt may
        help, after the wait they ask for; any other exception is raised at once."""
        return cls(
            retries=retries,
            backoff=backoff,
            max_wait=max_wait,
            jitter=jitter,
            retryable=_retryable_attempt,
            retry_after=_attempt_hint,
        )

    def wait(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first retry)."""
        if retry_after is not None:
            return min(max(0.0, retry_after), self.max_wait)
        low, high = self.jitter
        base = self.backoff * 2.0**retry
        return min(base * random.uniform(low, high), self.max_wait)

    def _wait_for(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        hint = self.retry_after(error) if error is not None else None
        return self.wait(state.attempt_number - 1, hint)

    def _tenacity(self) -> dict[str, Any]:
        """The policy as tenacity takes it, for ``call`` and ``acall`` alike."""
        return {
            "stop": stop_after_attempt(self.retries + 1),
            "wait": self._wait_for,
            "retry": retry_if_exception(self.retryable),
            "reraise": True,
        }

    def call(self, attempt: Callable[[], T], *, sleep: Callable[[float], None] = time.sleep) -> T:
        """Run ``attempt()`` until it returns, retrying as the policy allows."""
        return Retrying(sleep=sleep, **self._tenacity())(attempt)

    async def acall(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> T:
        """Await ``attempt()`` until it returns, retrying as the policy allows."""
        return await AsyncRetrying(sleep=sleep, **self._tenacity())(attempt)


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds an HTTP ``Retry-After`` header value asks to wait (delay or date), or None."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())
