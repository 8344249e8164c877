"""Errors raised by evalkit.

Every error evalkit raises on purpose derives from one root, so callers can catch
``EvalkitError`` and know the message is meant for a person::

    EvalkitError
    ├── ConfigError        settings or command-line options that cannot work together
    ├── InputError         a user-supplied file or value is malformed (names file, line, field)
    │   ├── GoldsetError   a golden set (queries / judgments / corpus) is invalid
    │   └── MeasureError   a measure name does not parse
    ├── RetrieverError     the retriever is unreachable, misconfigured or failed as a whole
    │   └── CollectionNotFoundError  the collection named does not exist
    ├── JudgeError         the LLM judge endpoint failed as a whole
    │   └── TooFewJudgedError  too few pairs judged for a measurement to mean anything
    ├── EmbeddingError     the embedding model cannot be loaded or used
    ├── StoreError         the DuckDB store cannot be opened, migrated or written
    │   └── NotFoundError  a named goldset, run or collection does not exist
    └── WorkInterruptedError  work asked to stop part-way (``evalkit serve`` stopping)

Messages say what was wrong, where, and what to do. Only the CLI turns them into exit
codes (``exit_code``): 2 for bad input or usage, 3 for retriever or store failures.
"""

from __future__ import annotations

__all__ = [
    "DUCKDB_INTERRUPTED",
    "CollectionNotFoundError",
    "ConfigError",
    "EmbeddingError",
    "EvalkitError",
    "GoldsetError",
    "InputError",
    "MeasureError",
    "NotFoundError",
    "RetrieverError",
    "StoreError",
    "TooFewJudgedError",
    "WorkInterruptedError",
]


class EvalkitError(Exception):
    """Root of every error evalkit raises deliberately."""

    exit_code = 2


class ConfigError(EvalkitError):
    """Settings or options that are invalid or contradict each other."""


class InputError(EvalkitError):
    """A user-supplied file or value is malformed.

    ``path``, ``line`` (1-based) and ``field`` say where, when known; ``str(error)``
    always starts with that location so a person can jump straight to it. A file with
    several bad lines raises one error whose ``problems`` lists each of them.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
        problems: list[InputError] | None = None,
    ) -> None:
        self.problems: list[InputError] = problems or []
        self.path = path
        self.line = line
        self.field = field
        self.detail = message
        super().__init__(_locate(message, path=path, line=line, field=field))


class GoldsetError(InputError):
    """A golden set is invalid; ``problems`` lists every problem found, not just the first."""


class MeasureError(InputError):
    """A measure name such as ``ndcg@10`` does not parse."""


class RetrieverError(EvalkitError):
    """The retriever cannot be reached or failed as a whole."""

    exit_code = 3


class CollectionNotFoundError(RetrieverError):
    """The collection a retriever was asked to search does not exist: the user named one
    that is not there (bad input, exit 2), found when the retriever opens it."""

    exit_code = 2


class JudgeError(EvalkitError):
    """The LLM judge endpoint failed as a whole (every call of a pass)."""

    exit_code = 3


class TooFewJudgedError(JudgeError):
    """Too few of the pairs a measurement rests on were judged (left over the budget, left
    unjudged by the judge, or without a document text) for it to mean anything: nothing is
    stored, and the pairs judged stay in the judged pool, so the next pass sends only the
    rest."""


class EmbeddingError(EvalkitError):
    """The embedding model cannot be loaded or does not behave as recorded."""

    exit_code = 3


class StoreError(EvalkitError):
    """The store cannot be opened, migrated, read or written."""

    exit_code = 3


class NotFoundError(StoreError):
    """A goldset, run or collection named by the user does not exist."""

    exit_code = 2


class WorkInterruptedError(EvalkitError):
    """Work was asked to stop part-way. A run it was recording is stored ``failed`` with
    ``interrupted: <reason>``, as a run a stopped process left is, and its id is added to
    ``run_ids`` on the way out."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.run_ids: list[str] = []


def _locate(message: str, *, path: str | None, line: int | None, field: str | None) -> str:
    where = ""
    if path is not None:
        where = path if line is None else f"{path}:{line}"
    if field is not None:
        where = f"{where} field '{field}'" if where else f"field '{field}'"
    return f"{where}: {message}" if where else message


DUCKDB_INTERRUPTED = "Query interrupted"
"""The message of the RuntimeError DuckDB raises instead of the exception a signal handler
raised while it ran a query (Ctrl-C's KeyboardInterrupt, SIGTERM's): the command is being
stopped, not failing."""
