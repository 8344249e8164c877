"""Running a coroutine from synchronous code, also where an event loop already runs.

The LLM judge and the LangChain / LlamaIndex adapters are async underneath but called from
synchronous stages. ``asyncio.run`` refuses to start inside a running loop (a notebook, an
async web server), so there the coroutine gets a loop of its own in a worker thread, with
the caller's context variables (tracing, callbacks) carried over.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["run_sync"]

T = TypeVar("T")


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
