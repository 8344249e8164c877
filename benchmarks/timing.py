"""How the benchmarks time what they measure: the best of a few wall-clock runs (the machine
may be shared), and the CPU seconds of one run. Imported by the scripts beside it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best_time(action: Callable[[], Any], repeats: int) -> float:
    """Best wall-clock time of ``repeats`` calls (the machine may be shared)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def cpu_time(action: Callable[[], Any]) -> float:
    """CPU seconds of one call, all threads of this process."""
    start = time.process_time()
    action()
    return time.process_time() - start


def best_time_and_cpu(action: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Best wall-clock seconds of ``repeats`` calls, and the CPU seconds of that call."""
    best, cpu = float("inf"), 0.0
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        action()
        elapsed = time.perf_counter() - start
        if elapsed < best:
            best, cpu = elapsed, time.process_time() - start_cpu
    return best, cpu
