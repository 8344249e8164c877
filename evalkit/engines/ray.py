"""The Ray engine: a replay fanned out over a pool of Ray Data actors, one shard per batch.

``RayEngine`` says where the cluster is and how the actor pool is shaped, and implements
the engine protocol (``evalkit.engines.base.Engine``): ``replay`` writes the run's numbered
query table (``evalkit.engines.tables``), has the actors (``evalkit.engines.ray_actors``)
replay and score it, and reports the shard directory they filled for the store's one
writer to load. Ray itself is imported only when a replay runs (it is the ``[ray]`` extra),
so this module is as light as the rest of ``evalkit.engines``.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evalkit.engines.base import (
    BatchSink,
    EngineReport,
    EngineStoppedError,
    Progress,
    ReplayQueries,
    ReplaySpec,
    ReplayTiming,
)
from evalkit.engines.tables import number_query_table, write_query_table
from evalkit.errors import ConfigError
from evalkit.extras import require
from evalkit.records.requests import DEFAULT_RAY_ACTORS

if TYPE_CHECKING:
    from evalkit.config import JudgeSettings, Settings
    from evalkit.retrievers.factory import RetrieverOptions

__all__ = ["WORKER_ENV", "RayEngine", "actor_judge_settings"]

WORKER_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_USAGE_STATS_ENABLED": "0",
}
"""The environment of every actor: models load from their install path, nothing is
downloaded and nothing reports usage."""


def actor_judge_settings(settings: JudgeSettings, actors: int) -> JudgeSettings:
    """The judge settings of one of ``actors`` actors: the pool's judge concurrency and
    rate shared between them, so the pool never exceeds the configured ones. Raises
    ConfigError when the concurrency is below the number of actors (an actor needs one
    call in flight at least)."""
    if settings.concurrency < actors:
        raise ConfigError(
            f"the judge's concurrency ({settings.concurrency}) is below the Ray engine's "
            f"{actors} actors, each of which judges at least one answer at a time: raise "
            "concurrency in [judge] (EVALKIT_JUDGE_CONCURRENCY), use fewer actors "
            "(--ray-actors), or turn answer scoring off (--no-answers)"
        )
    rate = settings.requests_per_minute
    return settings.model_copy(
        update={
            "concurrency": settings.concurrency // actors,
            "requests_per_minute": rate / actors if rate else None,
        }
    )


@dataclass(frozen=True)
class RayEngine:
    """A replay on Ray: where the cluster is and how the actor pool is shaped.

    ``retriever`` and ``settings`` travel to every actor, which builds its own retriever
    from them (a retriever client cannot be shipped between processes); a ``query_embedder``
    in the options is left behind, each actor builds the ``[embedder]`` one. ``address``
    is a Ray cluster's address (None: ``RAY_ADDRESS`` if set, else a local Ray instance
    started for the run and stopped after it). ``actors`` is the size of the pool;
    ``batch_size`` the queries per batch (and per shard); ``actor_cpus`` the CPUs Ray
    reserves per actor (replay waits on the retriever, so less than one CPU is usual);
    ``shard_root`` the directory under which each run's shards go (None:
    ``settings.home / "shards"``). An actor that dies is restarted by Ray and its batch
    retried (Ray Data's default for actor pools).
    """

    retriever: RetrieverOptions
    settings: Settings
    address: str | None = None
    actors: int = DEFAULT_RAY_ACTORS
    batch_size: int = 256
    actor_cpus: float = 0.5
    shard_root: Path | None = None

    def __post_init__(self) -> None:
        if self.actors < 1 or self.batch_size < 1 or self.actor_cpus <= 0:
            raise ConfigError(
                "the Ray engine needs actors >= 1, batch_size >= 1 and actor_cpus > 0; got "
                f"actors={self.actors}, batch_size={self.batch_size}, "
                f"actor_cpus={self.actor_cpus}"
            )
        # A missing extra is refused before anything is read or replayed.
        require("ray", "the Ray engine (--engine ray)")
        qdrant = self.settings.retriever.qdrant
        local_qdrant = qdrant.path is not None and not qdrant.url
        if local_qdrant and self.retriever.resolved_kind(self.settings) == "qdrant":
            # Qdrant's local mode locks its folder for one client: every actor (and the
            # driver) opens its own, so all but one would fail after the replay started.
            raise ConfigError(
                f"--engine ray cannot search Qdrant's local store ({qdrant.path}): one process "
                "at a time may open it, and every Ray actor opens its own retriever. Serve "
                "the collection with a Qdrant server ([retriever.qdrant] url), or replay with "
                "--engine local"
            )

    def shard_dir(self, run_id: str) -> Path:
        """The directory the shards of run ``run_id`` are written to."""
        root = self.shard_root if self.shard_root is not None else self.settings.home / "shards"
        return root / run_id

    @property
    def name(self) -> str:
        """``ray``."""
        return "ray"

    def query_table(self, run_id: str) -> Path:
        """Where the numbered query table of run ``run_id`` is written (beside its shards)."""
        return self.shard_dir(run_id).with_name(f"{run_id}.queries.parquet")

    def session(self) -> AbstractContextManager[None]:
        """Ray connected for a block of several replays: the cluster at ``address`` (or
        ``RAY_ADDRESS``), else one local instance for all of them, stopped at the end,
        instead of one started and stopped per replay."""
        actors = require("evalkit.engines.ray_actors", "the Ray engine (--engine ray)")
        session: AbstractContextManager[None] = actors.connected(self.address)
        return session

    def replay(
        self,
        spec: ReplaySpec,
        queries: ReplayQueries,
        *,
        progress: Progress | None = None,
        on_batch: BatchSink | None = None,
    ) -> EngineReport:
        """Replay ``queries`` on Ray (see the module docstring): the report names the shard
        directory and the numbered query table for the store's writer, and the engine's
        stop (the shards written until then stay; the writer records the rest as lost).
        ``on_batch`` is not called: the batches' results are the shards."""
        actors = require("evalkit.engines.ray_actors", "the Ray engine (--engine ray)")
        shard_dir = self.shard_dir(spec.run_id)
        table = self.query_table(spec.run_id)
        if queries.table is not None:
            total = number_query_table(queries.table, table)
        else:
            write_query_table(table, queries.queries, queries.judgments)
            total = len(queries.queries)
        done = 0

        def told(finished: int, of: int) -> None:
            nonlocal done
            done = finished
            if progress is not None:
                progress(finished, of)

        began = time.perf_counter()
        stopped: EngineStoppedError | None = None
        try:
            done = actors.replay_on_ray(
                table,
                shard_dir,
                self,
                spec,
                total=total,
                progress=told,
            )
        except EngineStoppedError as error:
            stopped = error
        return EngineReport(
            engine=self.name,
            timing=ReplayTiming(retriever_seconds=time.perf_counter() - began),
            n_replayed=done,
            shard_dir=shard_dir,
            query_table=table,
            stopped=stopped,
            extra={"engine": self.name, "shard_dir": str(shard_dir)},
        )
