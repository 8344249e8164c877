"""Server time of each page view, for the benchmark: how long a script run took.

Off unless ``EVALKIT_DASHBOARD_TIMINGS`` names a file; then every script run appends one
JSON line ``{"page": ..., "seconds": ..., "finished": ...}`` to it (the page's URL path,
'' for Overview; wall-clock seconds from the script's start to its end, or to the moment
it handed over to another page).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TIMINGS_ENV", "ScriptRun", "timed_run"]

TIMINGS_ENV = "EVALKIT_DASHBOARD_TIMINGS"
"""Environment variable: a file to append the server time of every script run to."""

_write_lock = threading.Lock()


@dataclass(slots=True)
class ScriptRun:
    """The script run being timed; the app names its page once navigation knows it."""

    page: str = ""


@contextmanager
def timed_run() -> Iterator[ScriptRun]:
    """Time a script run and append it to ``EVALKIT_DASHBOARD_TIMINGS`` (when set)."""
    target = os.environ.get(TIMINGS_ENV)
    began = time.perf_counter()
    run = ScriptRun()
    try:
        yield run
    finally:
        if target:
            line = json.dumps(
                {
                    "page": run.page,
                    "seconds": round(time.perf_counter() - began, 4),
                    "finished": time.time(),
                }
            )
            with _write_lock, Path(target).open("a", encoding="utf-8") as output:
                output.write(line + "\n")
