"""Running a sweep: each point missing a complete run becomes a stored goldset run, tagged
with its settings (``run_sweep``); then the points are ranked and the Pareto front of
quality against latency drawn (``pareto_front``)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from evalkit.config import Settings
from evalkit.embedding import TextEmbedder, build_query_embedder
from evalkit.engines import RayEngine, check_engine
from evalkit.errors import ConfigError, StoreError
from evalkit.goldset.model import Goldset
from evalkit.pipeline.goldset_run import resolve_goldset, run_goldset
from evalkit.pipeline.leaderboard import RunLeaderboard, leaderboard_of_runs, replay_latency
from evalkit.pipeline.runs import closing_retriever
from evalkit.pipeline.sweep.file import (
    COST_NOT_KNOWN,
    DEFAULT_EMBEDDER,
    Sweep,
    SweepPoint,
    load_sweep,
)
from evalkit.pipeline.sweep.points import check_sweep, point_depth, point_options, point_settings
from evalkit.pipeline.sweep.reuse import PointRerun, earlier_runs, key_tag, point_key
from evalkit.records.requests import DEFAULT_RAY_ACTORS, GoldsetRunRequest, LeaderboardRequest
from evalkit.retrievers.base import SupportsPrefetch
from evalkit.retrievers.factory import build_retriever
from evalkit.stats.leaderboard import LatencySummary
from evalkit.stats.pareto import pareto_front
from evalkit.store import RunRecord
from evalkit.store.access import WriterAccess
from evalkit.store.goldsets import load_stored_goldset
from evalkit.store.runs import list_runs

__all__ = [
    "PointResult",
    "SweepOutcome",
    "SweepPlan",
    "SweepProgress",
    "pareto_front",
    "read_sweep_file",
    "run_sweep",
    "run_sweep_file",
]

# -- running it --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """What a sweep will do: its points, numbered from 1, which of them already have a
    complete run (``already``: number -> run id), which run again though they have one
    (``rerun``: their index changed since), and the measure they are ranked on
    (``quality``: the sweep's first)."""

    total: int
    already: Mapping[int, str]
    quality: str
    rerun: Mapping[int, PointRerun] = dataclasses.field(default_factory=dict)

    @property
    def to_run(self) -> int:
        """How many points run now."""
        return self.total - len(self.already)

    def describe(self) -> str:
        """``3 of 9 points already run; running 6``, and why points with a run run again:
        ``; 2 points rerun: index changed since they ran (points 4, 5)``."""
        if not self.already:
            done = f"running {self.total} point{'s' if self.total != 1 else ''}"
        elif not self.to_run:
            done = (
                f"all {self.total} points already run; nothing to run"
                if self.total != 1
                else "the point already run; nothing to run"
            )
        else:
            done = f"{len(self.already)} of {self.total} points already run; running {self.to_run}"
        for example in {rerun.reason: rerun for rerun in self.rerun.values()}.values():
            numbers = [str(n) for n, rerun in self.rerun.items() if rerun.reason == example.reason]
            s = "s" if len(numbers) > 1 else ""
            said = example.said(points=len(numbers))
            done += f"; {len(numbers)} point{s} rerun: {said} (point{s} {', '.join(numbers)})"
        return done


@dataclass(frozen=True, slots=True)
class PointResult:
    """A point's outcome: its run (reused from an earlier sweep, or made now), its figures
    and replay latency, or why it has none."""

    number: int
    point: SweepPoint
    key: str
    status: str
    """``complete``, ``partial`` or ``failed`` as its run was stored; ``failed`` too when
    its retriever could not be built (then no run)."""
    reused: bool = False
    run: RunRecord | None = None
    error: str | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    rerun: PointRerun | None = None
    """The point's earlier complete run that was not reused, and why (its index changed)."""

    def with_latency(self, latency: LatencySummary | None) -> PointResult:
        """This result with its run's replay latency p50 and p95 (ms)."""
        if latency is None:
            return self
        return dataclasses.replace(
            self, latency_p50_ms=latency.p50_ms, latency_p95_ms=latency.p95_ms
        )

    @property
    def ok(self) -> bool:
        """Whether the point has a complete run."""
        return self.status == "complete"

    def quality(self, measure: str) -> float | None:
        """The run's mean of ``measure`` (None without a complete run)."""
        if not self.ok or self.run is None:
            return None
        value = self.run.aggregates.get(measure)
        return None if value is None else float(value)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "number": self.number,
            "settings": dict(self.point.settings),
            "source": self.point.source,
            "point_key": self.key,
            "tags": list(self.run.spec.tags) if self.run else [],
            "status": self.status,
            "reused": self.reused,
            "run_id": self.run.run_id if self.run else None,
            "label": self.run.spec.label if self.run else None,
            "aggregates": dict(self.run.aggregates) if self.run else {},
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p95_ms": self.latency_p95_ms,
            "error": self.error,
            "rerun": None if self.rerun is None else self.rerun.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class SweepOutcome:
    """A finished sweep: every point's result, and the Pareto front of quality (the first
    measure) against replay latency p95. Cost is not known (``COST_NOT_KNOWN``)."""

    sweep: Sweep
    goldset_name: str
    goldset_version: str
    plan: SweepPlan
    points: tuple[PointResult, ...]
    front: tuple[int, ...]
    """Numbers of the points on the front, best quality first."""
    leaderboard: RunLeaderboard | None = None
    """The complete runs ranked as ``evalkit compare`` ranks them (None with fewer than
    two)."""

    @property
    def quality_measure(self) -> str:
        """The measure the front ranks quality by: the sweep's first."""
        return self.sweep.measures[0]

    @property
    def failed(self) -> tuple[PointResult, ...]:
        """The points without a complete run."""
        return tuple(point for point in self.points if not point.ok)

    @property
    def cost_note(self) -> str:
        """Why the front leaves cost out (``COST_NOT_KNOWN``)."""
        return COST_NOT_KNOWN

    @property
    def run_ids(self) -> tuple[str, ...]:
        """The complete runs of the sweep, in point order (what a leaderboard ranks)."""
        return tuple(p.run.run_id for p in self.points if p.ok and p.run is not None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "sweep": self.sweep.name,
            "file": str(self.sweep.path),
            "tag": self.sweep.tag,
            "goldset": self.goldset_name,
            "goldset_version": self.goldset_version,
            "measures": list(self.sweep.measures),
            "points_total": self.plan.total,
            "points_already_run": len(self.plan.already),
            "points_run": self.plan.to_run,
            "points_rerun": len(self.plan.rerun),
            "points_failed": len(self.failed),
            "points": [point.to_dict() for point in self.points],
            "pareto": {
                "quality": self.quality_measure,
                "against": "latency_p95_ms",
                "points": list(self.front),
            },
            "cost": None,
            "cost_note": self.cost_note,
            "leaderboard": None if self.leaderboard is None else self.leaderboard.to_dict(),
        }


class SweepProgress(Protocol):
    """What a caller hears while a sweep runs (the CLI prints it; a job need not)."""

    def planned(self, plan: SweepPlan) -> None:
        """Before any point runs: how many already have a run."""

    def started(self, number: int, total: int, point: SweepPoint) -> None:
        """Point ``number`` of ``total`` starts."""

    def finished(self, result: PointResult) -> None:
        """A point ran (or failed to)."""


def run_sweep(
    store: WriterAccess,
    sweep: Sweep,
    goldset: str | Goldset,
    settings: Settings,
    *,
    engine: RayEngine | None = None,
    progress: SweepProgress | None = None,
    query_progress: Callable[[int, int], None] | None = None,
) -> SweepOutcome:
    """Run the points of ``sweep`` that have no complete run yet, each a tagged goldset run
    (``run_goldset``), and rank them all (docs/sweeps.md, "Every point is a run").

    A point that cannot be built or whose run fails is reported and the sweep goes on; a
    ConfigError or StoreError stops it. ``engine`` runs every point on Ray. Answers are not scored.
    """
    check_sweep(sweep, settings)
    if not isinstance(goldset, str) and sweep.goldset_version is not None:
        raise ConfigError(
            f"{sweep.path}: goldset_version picks a stored goldset's version; {sweep.goldset} "
            f"is read from its files (version {goldset.version})"
        )
    with store.writer(f"sweep {sweep.name}") as opened:
        gold = (
            load_stored_goldset(opened, goldset, sweep.goldset_version)
            if isinstance(goldset, str)
            else goldset
        )
    keys = [point_key(sweep, gold, settings, point) for point in sweep.points]
    earlier = earlier_runs(store, sweep, settings, keys)
    with store.writer(f"sweep {sweep.name}") as opened:
        reused = {
            number: PointResult(
                number, sweep.points[number - 1], keys[number - 1], "complete", True, run
            ).with_latency(replay_latency(opened, run.run_id))
            for number, run in earlier.reused.items()
        }
    plan = SweepPlan(
        total=len(sweep.points),
        already={number: run.run_id for number, run in earlier.reused.items()},
        quality=sweep.measures[0],
        rerun=earlier.rerun,
    )
    if progress is not None:
        progress.planned(plan)
    embedders: dict[str, TextEmbedder | None] = {}
    results: list[PointResult] = []
    # One Ray session for every point run here (a local instance is started once).
    with contextlib.ExitStack() as ray_session:
        if engine is not None and len(reused) < plan.total:
            ray_session.enter_context(engine.session())
        try:
            for number, (point, key) in enumerate(zip(sweep.points, keys, strict=True), start=1):
                if number in reused:
                    results.append(reused[number])
                    continue
                if progress is not None:
                    progress.started(number, plan.total, point)
                result = _run_point(
                    store,
                    sweep,
                    goldset=gold,
                    from_files=not isinstance(goldset, str),
                    settings=settings,
                    number=number,
                    point=point,
                    key=key,
                    embedders=embedders,
                    engine=engine,
                    query_progress=query_progress,
                )
                if result.run is not None:
                    with store.writer(f"sweep {sweep.name}") as opened:
                        result = result.with_latency(replay_latency(opened, result.run.run_id))
                result = dataclasses.replace(result, rerun=plan.rerun.get(number))
                results.append(result)
                if progress is not None:
                    progress.finished(result)
        finally:
            for embedder in embedders.values():
                close = getattr(embedder, "close", None)
                if callable(close):
                    close()
    quality = sweep.measures[0]
    front = pareto_front([(result.quality(quality), result.latency_p95_ms) for result in results])
    best_first = sorted(front, key=lambda index: -(results[index].quality(quality) or 0.0))
    return SweepOutcome(
        sweep=sweep,
        goldset_name=gold.name,
        goldset_version=gold.version,
        plan=plan,
        points=tuple(results),
        front=tuple(results[index].number for index in best_first),
        leaderboard=_ranked(store, sweep, results),
    )


def read_sweep_file(path: Path, settings: Settings, *, max_points: int | None = None) -> Sweep:
    """The sweep file at ``path`` read (``load_sweep``, refusing more points than
    ``max_points`` allows) and checked against the retriever of ``settings``
    (``check_sweep``): what ``evalkit sweep --dry-run`` shows, and what a sweep runs."""
    sweep = load_sweep(path, max_points=max_points)
    check_sweep(sweep, settings)
    return sweep


def run_sweep_file(
    store: WriterAccess,
    path: Path,
    settings: Settings,
    *,
    engine: str = "local",
    ray_address: str | None = None,
    ray_actors: int = DEFAULT_RAY_ACTORS,
    max_points: int | None = None,
    progress: SweepProgress | None = None,
    query_progress: Callable[[int, int], None] | None = None,
) -> SweepOutcome:
    """What ``evalkit sweep`` and the sweep job do: read and check the sweep file at
    ``path`` (``read_sweep_file``), read or name its goldset (relative to the file) and run
    it (``run_sweep``) on ``engine``: ``local``, or ``ray`` on the cluster at
    ``ray_address`` (None: ``RAY_ADDRESS``, else one local instance for the whole sweep)
    with ``ray_actors`` actors."""
    sweep = read_sweep_file(path, settings, max_points=max_points)
    on_ray = (
        RayEngine(sweep.retriever_options(), settings, address=ray_address, actors=ray_actors)
        if check_engine(engine) == "ray"
        else None
    )
    goldset = resolve_goldset(
        store,
        sweep.goldset,
        root=sweep.root,
        format=sweep.goldset_format,
        split=sweep.goldset_split,
    )
    return run_sweep(
        store,
        sweep,
        goldset,
        settings,
        engine=on_ray,
        progress=progress,
        query_progress=query_progress,
    )


def _ranked(
    store: WriterAccess, sweep: Sweep, results: Sequence[PointResult]
) -> RunLeaderboard | None:
    """The complete runs of the sweep ranked on its measures (None with fewer than two)."""
    run_ids = [r.run.run_id for r in results if r.ok and r.run is not None]
    if len(run_ids) < 2:
        return None
    return leaderboard_of_runs(store, run_ids, LeaderboardRequest(measures=sweep.measures))


def _run_point(
    store: WriterAccess,
    sweep: Sweep,
    *,
    goldset: Goldset,
    from_files: bool,
    settings: Settings,
    number: int,
    point: SweepPoint,
    key: str,
    embedders: dict[str, TextEmbedder | None],
    engine: RayEngine | None,
    query_progress: Callable[[int, int], None] | None,
) -> PointResult:
    settings_at_point = point_settings(sweep, settings, point)
    embedder_name = point.get("embedder") or DEFAULT_EMBEDDER
    missing = _missing_model(sweep, embedder_name)
    if missing is not None:
        return PointResult(number, point, key, status="failed", error=missing)
    try:
        if embedder_name not in embedders:
            embedder = build_query_embedder(settings_at_point)
            embedders[embedder_name] = embedder if engine is not None else _warm(embedder, goldset)
        options = point_options(sweep, settings, point)
        retriever = build_retriever(
            dataclasses.replace(options, query_embedder=embedders[embedder_name]),
            settings_at_point,
        )
    except (ConfigError, StoreError):
        raise
    except Exception as error:  # reported as this point's failure; the sweep goes on
        return PointResult(number, point, key, status="failed", error=_error_text(error))
    request = GoldsetRunRequest.from_settings(
        settings,
        k=point_depth(point, sweep, settings),
        measures=sweep.measures,
        label=f"sweep {sweep.name}: {point.describe()}",
        answers=False,
        tags=(sweep.tag, key_tag(key), *point.tags),
    )
    on_ray = (
        dataclasses.replace(engine, retriever=options, settings=settings_at_point)
        if engine is not None
        else None
    )
    try:
        with closing_retriever(retriever):
            outcome = run_goldset(
                store,
                request,
                settings_at_point,
                retriever,
                goldset=goldset,
                make_current=from_files,
                engine=on_ray,
                progress=query_progress,
            )
    except (ConfigError, StoreError):
        raise
    except Exception as error:  # the run is stored as failed with it; the sweep goes on
        return PointResult(
            number,
            point,
            key,
            status="failed",
            run=_newest_run(store, key),
            error=_error_text(error),
        )
    run = outcome.run
    return PointResult(number, point, key, status=run.status, run=run, error=run.error)


def _missing_model(sweep: Sweep, embedder_name: str) -> str | None:
    """Why embedder ``embedder_name`` cannot load, its ``model_path`` being no directory, in
    the sweep file's terms (the loader names EVALKIT_MODEL_PATH, which that overrides)."""
    if embedder_name == DEFAULT_EMBEDDER:
        return None
    model_path = sweep.embedders[embedder_name].model_path
    if model_path is None or model_path.is_dir():
        return None
    return (
        f"{sweep.path}: embedders.{embedder_name}.model_path: {model_path} is not a directory; "
        "give a local sentence-transformers model directory"
    )


def _warm(embedder: TextEmbedder | None, goldset: Goldset) -> TextEmbedder | None:
    """``embedder`` with the model loaded and the goldset's queries embedded, once per
    embedder: the first point of each would otherwise carry the load in its latency. (On
    Ray each actor loads its own.)"""
    if isinstance(embedder, SupportsPrefetch):
        texts = [query.text for query in goldset.queries]
        embedder.prefetch(texts)
        embedder.embed(texts)
    return embedder


def _error_text(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _newest_run(store: WriterAccess, key: str) -> RunRecord | None:
    with store.writer("read the sweep's runs") as opened:
        runs = list_runs(opened, tag=key_tag(key), limit=1)
    return runs[0] if runs else None
