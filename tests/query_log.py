"""An application's query log as ``evalkit traffic ingest`` reads it, for tests that ingest
a few queries of one day."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def logged_query(index: int, *, day: str = "2026-11-21", **fields: Any) -> dict[str, Any]:
    """Query ``q{index}`` ("question {index}") at hour ``index`` (mod 24) of ``day``, 10 ms,
    with ``fields`` (``results``, ``tenant``...) besides."""
    return {
        "query_id": f"q{index}",
        "timestamp": f"{day}T{index % 24:02d}:00:00Z",
        "text": f"question {index}",
        **fields,
        "latency_ms": 10,
    }


def write_query_log(folder: Path, lines: Iterable[Mapping[str, Any]]) -> Path:
    """``folder/logs/app.jsonl`` holding ``lines``, one JSON object a line; the ``logs``
    folder, as ``evalkit traffic ingest`` takes it."""
    logs = folder / "logs"
    logs.mkdir()
    (logs / "app.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return logs
