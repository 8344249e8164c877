"""The traffic log format, and ``log_query``: the helper an application calls to write it.

One JSON object per line (or Parquet with the same columns); the fields are ``LOG_FIELDS``
(docs/traffic.md, "The log format").
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict, Unpack

from evalkit.clock import MAX_EPOCH_SECONDS, naive_utc, utc_now
from evalkit.errors import InputError
from evalkit.records import ScoredDoc

__all__ = ["LOG_FIELDS", "REQUIRED_FIELDS", "LoggedResult", "format_log_line", "log_query"]

LOG_FIELDS: Mapping[str, str] = {
    "query_id": "unique id of the query (string); a repeated id is ingested once",
    "timestamp": "when it was asked: ISO 8601 (UTC unless an offset is given) or epoch seconds",
    "text": "the query text as the user asked it",
    "tenant": "optional tenant; replay filters the index to this tenant's documents",
    "tags": 'optional object of tag name -> string, e.g. {"locale": "fr"}; stratify by one',
    "results": "optional ranked results the production system returned: "
    '[{"doc_id": ..., "score": ...}] or ["doc_id", ...]',
    "answer": "optional generated answer",
    "contexts": "optional list of context strings given to the generator",
    "latency_ms": "optional retrieval latency in production, milliseconds",
}
"""Every field of a log line, with what it holds."""

REQUIRED_FIELDS: tuple[str, ...] = ("query_id", "timestamp", "text")

LoggedResult = ScoredDoc | tuple[str, float] | Mapping[str, object] | str
"""What ``log_query`` accepts as one result: a ScoredDoc, (doc_id, score), a dict or an id."""

_FILE_MODE = 0o640


def _logged_id(doc_id: str) -> str:
    """``doc_id`` when `evalkit traffic ingest` reads it back: an empty id is refused."""
    if not doc_id:
        raise InputError(
            "a logged result's doc_id is empty (the line would not be read back by traffic ingest)",
            field="results",
        )
    return doc_id


_EARLIEST = datetime(1970, 1, 1)
_LATEST = datetime.fromtimestamp(MAX_EPOCH_SECONDS, UTC).replace(tzinfo=None)


def _utc_moment(timestamp: datetime | str | None) -> datetime:
    """``timestamp`` as naive UTC (now when None); InputError for one ingest refuses."""
    if timestamp is None:
        return utc_now()
    if isinstance(timestamp, str):
        try:
            timestamp = datetime.fromisoformat(timestamp)
        except ValueError:
            raise InputError(
                f"{timestamp!r} is not an ISO 8601 date-time such as 2026-11-21T18:35:00Z",
                field="timestamp",
            ) from None
    if not isinstance(timestamp, datetime):
        raise InputError(
            f"must be a datetime or ISO 8601 text, got {type(timestamp).__name__}",
            field="timestamp",
        )
    timestamp = naive_utc(timestamp)
    if not _EARLIEST <= timestamp < _LATEST:
        raise InputError(
            f"{timestamp.isoformat()} (UTC) is not between 1970 and the year 5138, which "
            "`evalkit traffic ingest` reads",
            field="timestamp",
        )
    return timestamp


class _LogFields(TypedDict, total=False):
    """The optional fields of a log line (``LOG_FIELDS``), as the writers below take them."""

    query_id: str | None
    timestamp: datetime | str | None
    tenant: str | None
    tags: Mapping[str, str] | None
    results: Sequence[LoggedResult] | None
    answer: str | None
    contexts: Sequence[str] | None
    latency_ms: float | None


def format_log_line(*, text: str, **fields: Unpack[_LogFields]) -> tuple[str, bytes]:
    """The query id and the encoded log line (ending in ``\\n``) for one query.

    ``query_id`` defaults to a random UUID and ``timestamp`` (a datetime, naive meaning UTC,
    or ISO 8601 text) to now. Raises InputError for a value the format cannot hold (empty
    text, a time before 1970 or past the year 5138, a non-finite latency or score, a result
    without a doc id): every line it returns is one ``evalkit traffic ingest`` reads.
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError("a logged query needs its non-empty text", field="text")
    if unknown := sorted(fields.keys() - _LogFields.__annotations__):
        raise TypeError(f"format_log_line() got unexpected keyword arguments {unknown}")
    query_id = fields.get("query_id")
    identifier = query_id if query_id is not None else uuid.uuid4().hex
    if not identifier:
        raise InputError("query_id must not be empty", field="query_id")
    if identifier != identifier.strip():
        raise InputError(
            f"query_id {identifier!r} has leading or trailing whitespace", field="query_id"
        )
    moment = _utc_moment(fields.get("timestamp"))
    record: dict[str, object] = {
        "query_id": identifier,
        "timestamp": moment.isoformat(timespec="milliseconds") + "Z",
        "text": text,
    }
    if (tenant := fields.get("tenant")) is not None:
        record["tenant"] = tenant
    if tags := fields.get("tags"):
        record["tags"] = {str(key): str(value) for key, value in tags.items()}
    if (results := fields.get("results")) is not None:
        record["results"] = [_result_object(result) for result in results]
    if (answer := fields.get("answer")) is not None:
        record["answer"] = answer
    if (contexts := fields.get("contexts")) is not None:
        record["contexts"] = [str(context) for context in contexts]
    if (latency_ms := fields.get("latency_ms")) is not None:
        if not math.isfinite(latency_ms) or latency_ms < 0:
            raise InputError("must be a finite number of milliseconds >= 0", field="latency_ms")
        record["latency_ms"] = float(latency_ms)
    try:
        encoded = json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise InputError(
            "a score is not a finite number (NaN and infinity cannot be written in JSON)",
            field="results",
        ) from None
    line = (encoded + "\n").encode("utf-8")
    return identifier, line


def log_query(path: Path | str, *, text: str, **fields: Unpack[_LogFields]) -> str:
    """Append one query to the traffic log at ``path``; returns its query id.

    Safe to call from many threads and processes at once: one ``write`` to a file opened
    with ``O_APPEND``, so lines never interleave. The file is opened by name on each call, so
    log rotation needs no signal; its folder is made when it is missing.
    """
    identifier, line = format_log_line(text=text, **fields)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _FILE_MODE)
    except FileNotFoundError:
        # A log under a folder not made yet (logs/app.jsonl in a fresh checkout).
        os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _FILE_MODE)
    try:
        written = os.write(descriptor, line)
    finally:
        os.close(descriptor)
    if written != len(line):
        raise OSError(
            f"only {written} of {len(line)} bytes of a traffic log line reached {path} "
            "(disk full?); the torn line is reported by the next ingest"
        )
    return identifier


def _result_object(result: LoggedResult) -> object:
    """One result as the log line holds it, refused (InputError) where `evalkit traffic
    ingest` would refuse the line: the query would be lost there, unseen by the caller."""
    if isinstance(result, ScoredDoc):
        return {"doc_id": _logged_id(result.doc_id), "score": float(result.score)}
    if isinstance(result, str):
        return _logged_id(result)
    if isinstance(result, tuple):
        doc_id, score = result
        return {"doc_id": _logged_id(str(doc_id)), "score": float(score)}
    if isinstance(result, Mapping):
        logged = dict(result)
        given_id = logged.get("doc_id")
        if not isinstance(given_id, str):
            raise InputError(
                "a logged result given as a dict needs its doc_id, a string (the line would "
                f"not be read back by traffic ingest); got {sorted(map(str, logged))}",
                field="results",
            )
        _logged_id(given_id)
        given_score = logged.get("score")
        if given_score is not None and (
            isinstance(given_score, bool) or not isinstance(given_score, int | float)
        ):
            raise InputError(
                f"the score of logged result {given_id!r} must be a number, got "
                f"{type(given_score).__name__}",
                field="results",
            )
        return logged
    raise InputError(
        f"a logged result must be a ScoredDoc, (doc_id, score), a dict or a doc id, "
        f"got {type(result).__name__}",
        field="results",
    )
