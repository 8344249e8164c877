"""The engine seam: what every engine a replay runs on does, whichever engine it is.

``replay(spec, queries)`` returns an ``EngineReport``: the per-query results (local) or the
Parquet shards left for the store's writer (Ray), with where the time went and whether it
stopped early. Engines never touch the store: the run lifecycle of ``evalkit.pipeline``
records the run around ``replay`` and stores what the report holds.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from evalkit.errors import ConfigError, RetrieverError
from evalkit.records import Judgment, Query, QueryResult

if TYPE_CHECKING:
    from evalkit.config import JudgeSettings

__all__ = [
    "ENGINES",
    "BatchSink",
    "Engine",
    "EngineReport",
    "EngineStoppedError",
    "Progress",
    "ReplayQueries",
    "ReplaySpec",
    "ReplayTiming",
    "check_engine",
]

ENGINES: tuple[str, ...] = ("local", "ray")
"""The engines a replay can run on."""

BatchSink = Callable[[list[QueryResult]], None]
"""Receives each batch's results as soon as they exist."""

Progress = Callable[[int, int], None]
"""Told ``(done, total)`` queries as batches finish; what it raises stops the replay."""


class EngineStoppedError(RetrieverError):
    """The engine stopped before every batch was replayed (an actor that could not be
    built, a cluster that went away); the shards written until then are kept."""


def check_engine(name: str) -> str:
    """``name`` when it is an engine evalkit has; ConfigError listing them otherwise."""
    if name not in ENGINES:
        raise ConfigError(f"unknown engine {name!r}; engines: {', '.join(ENGINES)}")
    return name


@dataclass(slots=True)
class ReplayTiming:
    """Where replay time went: inside the retriever, and in evalkit's own handling."""

    retriever_seconds: float = 0.0
    sink_seconds: float = 0.0
    batches: int = 0


@dataclass(frozen=True, slots=True)
class ReplaySpec:
    """What a replay is asked for: its run, ``k`` documents per query, and what an engine that
    scores as it replays (Ray) scores on: ``measures`` at ``relevance_threshold`` and, with
    ``answers``, the generated answers (reading the ``judge_cache`` snapshot). The local engine
    scores nothing itself.
    """

    run_id: str
    k: int
    measures: tuple[str, ...] = ()
    relevance_threshold: int = 1
    answers: JudgeSettings | None = None
    judge_cache: Path | None = None

    def __post_init__(self) -> None:
        if self.k < 1:
            raise RetrieverError(f"k must be at least 1, got {self.k}")


@dataclass(frozen=True, slots=True)
class ReplayQueries:
    """The queries of a replay: in memory (``queries`` with their ``judgments``), or a
    Parquet query table (``table``, see ``evalkit.engines.tables``) too large to hold."""

    queries: Sequence[Query] = ()
    judgments: Sequence[Judgment] = ()
    table: Path | None = None

    def __post_init__(self) -> None:
        if self.table is not None and self.queries:
            raise ConfigError("a replay takes its queries from memory or from a table, not both")


@dataclass(frozen=True, slots=True)
class EngineReport:
    """What an engine's replay produced: ``results`` in query order when handed back (local;
    empty for Ray), or ``shard_dir`` and its numbered ``query_table`` for the writer to load
    (queries no shard holds are lost); ``n_replayed``; ``stopped``, why it stopped early.
    """

    engine: str
    timing: ReplayTiming
    n_replayed: int
    results: Sequence[QueryResult] = ()
    shard_dir: Path | None = None
    query_table: Path | None = None
    stopped: EngineStoppedError | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def discard(self) -> None:
        """Remove the files the engine left (its shards and query table), once loaded."""
        if self.shard_dir is not None:
            shutil.rmtree(self.shard_dir, ignore_errors=True)
        if self.query_table is not None:
            self.query_table.unlink(missing_ok=True)


@runtime_checkable
class Engine(Protocol):
    """Where a replay runs (``LocalEngine``, ``RayEngine``)."""

    @property
    def name(self) -> str:
        """The engine's name, one of ``ENGINES``."""
        ...

    def replay(
        self,
        spec: ReplaySpec,
        queries: ReplayQueries,
        *,
        progress: Progress | None = None,
        on_batch: BatchSink | None = None,
    ) -> EngineReport:
        """Replay ``queries`` as ``spec`` asks. ``progress(done, total)`` is told as batches
        finish (what it raises propagates); ``on_batch`` receives each batch's results when
        the engine hands results back. A retriever failing a query is that query's error,
        never the replay's; an engine that stops early says so in ``stopped``."""
        ...
