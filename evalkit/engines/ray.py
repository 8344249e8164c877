"""The Ray engine: a replay fanned out over a pool of Ray Data actors, one shard per batch.

``RayEngine.replay`` writes the run's numbered query table, has the actors
(``evalkit.engines.ray_actors``) replay and score it, and reports the shard directory for the
store's one writer to load. Ray is imported only when a replay runs (the ``[ray]`` extra).
"""

from __future__ import annotations

import os
import re
import socket
import sys
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
from evalkit.errors import ConfigError, RetrieverError
from evalkit.extras import require
from evalkit.records.requests import DEFAULT_RAY_ACTORS
from evalkit.retrievers.kinds import RETRIEVER_KINDS

if TYPE_CHECKING:
    from evalkit.config import JudgeSettings, Settings
    from evalkit.retrievers.factory import RetrieverOptions

__all__ = [
    "CONNECT_TIMEOUT",
    "LOCAL_RAY_ENV",
    "WORKER_ENV",
    "RayEngine",
    "RayUnreachableError",
    "actor_judge_settings",
    "check_ray_address",
    "probe_ray_address",
    "ray_address_problem",
]

WORKER_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_USAGE_STATS_ENABLED": "0",
}
"""The environment of every actor: models load from their install path, nothing is
downloaded and nothing reports usage."""

LOCAL_RAY_ENV: dict[str, str] = {"RAY_worker_niceness": "0"}
"""Set for a local Ray instance the engine starts (its raylet reads it): Ray starts its
workers at niceness 15, below the driver, and on a busy machine the actors doing the run
then got a sliver of a core (a replay took 10 times longer beside two other processes)."""


CONNECT_TIMEOUT = 5.0
"""Seconds the Ray engine waits for a cluster's address to accept a connection before
it says the cluster is unreachable (Ray itself retries for ever)."""

_HOST_PORT = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_.-]+)):(?P<port>\d{1,5})$"
)
"""A cluster's address as ``ray start`` prints it: ``HOST:PORT`` (an IPv6 host bracketed)."""

_ADDRESS_FORMS = (
    "give the address `ray start --head` printed, HOST:PORT (its GCS port, 6379 by "
    "default), or auto for the cluster started on this machine"
)

_RAY_JOB = (
    "run evalkit on the cluster as a Ray Job instead: `ray job submit --address "
    "http://HEAD:8265 -- evalkit run ... --engine ray`, inside which the cluster's address "
    "is found without --ray-address (docs/scale.md)"
)


class RayUnreachableError(RetrieverError):
    """The Ray cluster named for the engine does not answer at its address (exit 3)."""


def ray_address_problem(address: str, *, source: str = "--ray-address") -> str | None:
    """What is wrong with Ray address ``address`` given by ``source``, or None for ``HOST:PORT``,
    ``auto`` or ``local``. A ``ray://`` (Ray Client) address is refused, since Ray Data's executor
    fails under it; the message says to submit a Ray Job instead.
    """
    text = address.strip()
    if text in ("auto", "local"):
        return None
    if text.lower().startswith("ray://"):
        return (
            f"{source} {address!r} is a Ray Client address, which the Ray engine cannot use: "
            f"Ray Data's actor pool does not run under Ray Client. {_RAY_JOB[0].upper()}"
            f"{_RAY_JOB[1:]}"
        )
    matched = _HOST_PORT.match(text)
    if matched is None or not 0 < int(matched["port"]) < 65536:
        hint = (
            " (an http:// address is the dashboard's, for `ray job submit`)"
            if text.lower().startswith(("http://", "https://"))
            else ""
        )
        return f"{source} {address!r} is not a Ray cluster address{hint}: {_ADDRESS_FORMS}"
    return None


def _address_given(address: str | None) -> tuple[str, str] | None:
    """The cluster address the engine connects to and where it comes from (``address``, else
    ``RAY_ADDRESS``); None when neither names one (a local instance is started)."""
    if address:
        return address, "--ray-address"
    from_environment = os.environ.get("RAY_ADDRESS")
    if from_environment:
        return from_environment, "RAY_ADDRESS"
    return None


def check_ray_address(address: str | None) -> None:
    """ConfigError (exit 2) when ``address``, else ``RAY_ADDRESS``, is not an address the
    engine connects with (``ray_address_problem``)."""
    given = _address_given(address)
    if given is not None:
        problem = ray_address_problem(given[0], source=given[1])
        if problem is not None:
            raise ConfigError(problem)


def probe_ray_address(address: str | None) -> None:
    """RayUnreachableError (exit 3) naming the address when the cluster at ``address``
    (else ``RAY_ADDRESS``) does not accept a connection within ``CONNECT_TIMEOUT``
    seconds: Ray itself retries an unreachable cluster for ever. Nothing is probed for a
    local instance or ``auto`` (which Ray finds on this machine or refuses at once)."""
    given = _address_given(address)
    if given is None:
        return
    matched = _HOST_PORT.match(given[0].strip())
    if matched is None:
        return
    host = matched["v6"] or matched["host"]
    try:
        with socket.create_connection((host, int(matched["port"])), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as error:
        reason = (
            f"no answer within {CONNECT_TIMEOUT:g} s"
            if isinstance(error, TimeoutError)
            else str(error.strerror or error).lower()
        )
        raise RayUnreachableError(
            f"cannot connect to the Ray cluster at {given[0]} ({given[1]}): {reason}. Check "
            f"that the cluster is up (`ray status --address {given[0]}`) and that this "
            "machine reaches its GCS port"
        ) from error


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
            "(`ray_actors`), or turn answer scoring off (`answers = false`)"
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
    """A replay on Ray: where the cluster is and how the actor pool is shaped (docs/scale.md).

    Every actor builds its own retriever (and ``[embedder]``) from ``retriever`` and ``settings``.
    ``address`` is ``HOST:PORT`` or ``auto`` (None: ``RAY_ADDRESS``, else a local Ray for the run);
    a ``ray://`` or malformed address is a ConfigError. ``shard_root`` defaults to
    ``settings.home / "shards"``; a dead actor is restarted and its batch retried.
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
        # A missing extra, or an address the engine cannot use, is refused before
        # anything is read or replayed.
        require("ray", 'the Ray engine (engine = "ray")')
        check_ray_address(self.address)
        # What the retriever's kind declares it cannot do on Ray (Qdrant's local store,
        # which one process at a time may open) is refused before the replay starts.
        try:
            kind = RETRIEVER_KINDS.get(self.retriever.resolved_kind(self.settings))
        except ConfigError:  # no retriever named: said where it is built, as before
            kind = None
        refusal = kind.on_ray(self.retriever, self.settings) if kind and kind.on_ray else None
        if refusal is not None:
            raise ConfigError(refusal)

    def preflight(self) -> None:
        """Raise what would stop the replay before its first query, so that the caller can
        refuse the run before recording it: a retriever option the actors cannot be sent
        (ConfigError naming it), a cluster that does not answer (RayUnreachableError)."""
        actors = require("evalkit.engines.ray_actors", 'the Ray engine (engine = "ray")')
        actors.check_shippable(self.retriever)
        self.check_reachable()

    def check_reachable(self) -> None:
        """RayUnreachableError when the cluster the engine would connect to does not answer
        (``probe_ray_address``); nothing is probed when this process is connected to Ray
        already (the replay then uses that session)."""
        ray = sys.modules.get("ray")
        if ray is not None and ray.is_initialized():
            return
        probe_ray_address(self.address)

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
        actors = require("evalkit.engines.ray_actors", 'the Ray engine (engine = "ray")')
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
        actors = require("evalkit.engines.ray_actors", 'the Ray engine (engine = "ray")')
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
