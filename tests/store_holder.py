"""Another process holding a DuckDB file open for writing, as a stray script or a writer of
another evalkit does, so that tests see DuckDB's own lock conflict."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_HOLD = (
    "import sys, time, duckdb\n"
    "connection = duckdb.connect(sys.argv[1])\n"
    "print('holding', flush=True)\n"
    "time.sleep(60)\n"
)


@contextmanager
def held_open(path: Path) -> Iterator[int]:
    """A process that has ``path`` open for writing for the block; yields its pid."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        yield holder.pid
    finally:
        holder.terminate()
        holder.wait(timeout=30)
