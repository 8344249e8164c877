"""Running work concurrently from synchronous code: a coroutine, also where an event loop
already runs, and blocking requests on a few threads that an interruption does not wait for.

``asyncio.run`` refuses to start inside a running loop (a notebook, an async web server), so
there the coroutine gets a loop of its own in a worker thread, with the caller's context
variables (tracing, callbacks) carried over. ``map_requests`` runs on threads named
``REQUEST_THREADS``.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TypeVar

__all__ = ["REQUEST_THREADS", "map_requests", "run_sync"]

T = TypeVar("T")
R = TypeVar("R")

REQUEST_THREADS = "evalkit-request"
"""The name prefix of the threads ``map_requests`` sends requests on."""

_WAKE_SECONDS = 0.25


def run_sync(make_coroutine: Callable[[], Awaitable[T]]) -> T:
    """Run the coroutine ``make_coroutine()`` makes to completion and return its result."""

    async def main() -> T:
        return await make_coroutine()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="evalkit-loop") as pool:
        return pool.submit(context.run, lambda: asyncio.run(main())).result()


def map_requests(
    ask: Callable[[T, threading.Event], R], items: Sequence[T], *, workers: int
) -> list[R]:
    """``[ask(item, stopped) for item in items]``, on at most ``workers`` threads, in order.

    Interrupted (Ctrl-C, SIGTERM), the caller goes on at once: requests not started are
    dropped and ``stopped`` is set so those in flight try no more. Waiting for them held a
    SIGTERM minutes past a container's grace period on a hung endpoint.
    """
    stopped = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=REQUEST_THREADS)
    try:
        futures = [pool.submit(ask, item, stopped) for item in items]
        pending: set[Future[R]] = set(futures)
        while pending:
            # Waited for in slices: a signal that lands just before this thread blocks is
            # only acted on once it wakes, and a hung request would not wake it.
            done, pending = wait(pending, timeout=_WAKE_SECONDS, return_when=FIRST_EXCEPTION)
            for future in done:
                future.result()  # a request's exception, raised as soon as it is known
        results = [future.result() for future in futures]
    except BaseException:
        stopped.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return results
