"""The one retry policy shared by the HTTP retriever, the webhook sink and the LLM judge."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from evalkit.retry import RetryPolicy


class FlakyError(Exception):
    def __init__(self, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__("flaky")
        self.retryable = retryable
        self.retry_after = retry_after


def policy(**kwargs: object) -> RetryPolicy:
    return RetryPolicy(
        retryable=lambda error: isinstance(error, FlakyError) and error.retryable,
        retry_after=lambda error: error.retry_after if isinstance(error, FlakyError) else None,
        **kwargs,  # type: ignore[arg-type]
    )


def failing(times: int, error: Exception, calls: list[int]) -> Callable[[], str]:
    def attempt() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error
        return "done"

    return attempt


def test_retries_until_success_with_doubling_jittered_waits() -> None:
    calls: list[int] = []
    waits: list[float] = []
    result = policy(retries=3, backoff=0.5).call(
        failing(3, FlakyError(), calls), sleep=waits.append
    )
    assert result == "done"
    assert len(calls) == 4
    assert len(waits) == 3
    for retry, wait in enumerate(waits):
        assert 0.5 * 2**retry <= wait <= 2 * 0.5 * 2**retry


def test_spent_retries_raise_the_last_failure() -> None:
    calls: list[int] = []
    waits: list[float] = []
    error = FlakyError()
    with pytest.raises(FlakyError) as caught:
        policy(retries=2, backoff=0.0).call(failing(10, error, calls), sleep=waits.append)
    assert caught.value is error
    assert len(calls) == 3
    assert waits == [0.0, 0.0]


def test_a_failure_that_is_not_retryable_is_raised_at_once() -> None:
    calls: list[int] = []
    waits: list[float] = []
    with pytest.raises(FlakyError):
        policy(retries=5, backoff=1.0).call(
            failing(10, FlakyError(retryable=False), calls),
            sleep=waits.append,
        )
    assert len(calls) == 1
    assert waits == []


def test_an_unexpected_exception_is_never_retried() -> None:
    calls: list[int] = []
    with pytest.raises(KeyError):
        policy(retries=5, backoff=1.0).call(
            failing(10, KeyError("bug"), calls), sleep=lambda s: None
        )
    assert len(calls) == 1


def test_retry_after_replaces_the_backoff_under_the_cap() -> None:
    waits: list[float] = []
    calls: list[int] = []
    capped = policy(retries=2, backoff=10.0, max_wait=3.0)
    capped.call(failing(1, FlakyError(retry_after=0.25), calls), sleep=waits.append)
    calls.clear()
    capped.call(failing(1, FlakyError(retry_after=100.0), calls), sleep=waits.append)
    calls.clear()
    capped.call(failing(1, FlakyError(), calls), sleep=waits.append)
    assert waits == [0.25, 3.0, 3.0]


def test_waits_stay_within_the_jitter_bounds_and_the_cap() -> None:
    half = RetryPolicy(retries=3, backoff=1.0, jitter=(0.5, 1.0))
    for retry in range(4):
        for _ in range(50):
            assert 0.5 * 2**retry <= half.wait(retry) <= 2**retry
    capped = RetryPolicy(retries=10, backoff=0.5, max_wait=3.0)
    assert capped.wait(8) == 3.0
    assert capped.wait(0, retry_after=-1.0) == 0.0


def test_async_calls_retry_the_same_way() -> None:
    calls: list[int] = []
    waits: list[float] = []

    async def attempt() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise FlakyError()
        return "done"

    async def record(seconds: float) -> None:
        waits.append(seconds)

    result = asyncio.run(
        policy(retries=2, backoff=0.1, jitter=(0.5, 1.0)).acall(attempt, sleep=record)
    )
    assert result == "done"
    assert len(calls) == 3
    assert 0.05 <= waits[0] <= 0.1
    assert 0.1 <= waits[1] <= 0.2
