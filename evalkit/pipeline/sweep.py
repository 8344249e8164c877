"""Configuration sweeps: ``evalkit sweep sweep.toml`` runs a grid (or a list) of retriever
settings against one goldset, each point a normal stored goldset run, then ranks them.

A sweep file names the goldset, the measures, the base retriever and the settings that
vary (``k``, a named query embedder, the collection, the store's search settings
``ef_search`` and ``probes``, a factory's ``options.NAME``), as a ``[grid]`` of every
combination or a list of ``[[points]]`` (docs/sweeps.md). ``load_sweep`` reads and checks
it; ``check_sweep`` checks it against the retriever it will run on; ``run_sweep`` runs
what is missing and returns a ``SweepOutcome``; ``pareto_front`` is the pure front of
quality against a cost.

Every point's run is tagged ``sweep:NAME``, ``sweep-point:HASH`` and one tag per setting
(``k=20``, ``ef_search=64``), and labelled with its settings. The hash is of everything
that makes the point's figures (the sweep's name, the goldset version, the measures, the
relevance threshold and query batch size, the base retriever and the ``[retriever]``
settings, the point's settings and its embedder's definition), so a sweep run again finds
the points that already have a complete run and runs only the others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from evalkit.config import EmbedderSettings, Settings
from evalkit.config.types import NAME_PATTERN
from evalkit.embedding import TextEmbedder, build_query_embedder
from evalkit.engines import RayEngine
from evalkit.errors import ConfigError, MeasureError, StoreError
from evalkit.goldset.model import Goldset
from evalkit.metrics import parse_measures
from evalkit.pipeline.goldset_run import evaluate_goldset
from evalkit.pipeline.leaderboard import RunLeaderboard, leaderboard_of_runs, replay_latency
from evalkit.records.requests import GoldsetRunRequest, LeaderboardRequest
from evalkit.retrievers.base import SupportsPrefetch
from evalkit.retrievers.factory import RETRIEVER_KINDS, RetrieverOptions, build_retriever
from evalkit.retrievers.plugins import FACTORY_KIND
from evalkit.stats.leaderboard import LatencySummary
from evalkit.store import RunRecord
from evalkit.store.access import WriterAccess
from evalkit.store.goldsets import load_stored_goldset
from evalkit.store.runs import list_runs

__all__ = [
    "SEARCH_SETTINGS",
    "SWEEP_KEYS",
    "PointResult",
    "Sweep",
    "SweepOutcome",
    "SweepPlan",
    "SweepPoint",
    "SweepProgress",
    "check_sweep",
    "load_sweep",
    "pareto_front",
    "run_sweep",
]

SWEEP_KEYS = ("k", "embedder", "collection", "ef_search", "probes")
"""The settings a point may set besides a factory's ``options.NAME``, in the order a
point's settings are listed (its tags, its label)."""

SEARCH_SETTINGS: dict[tuple[str, str], tuple[str, str]] = {
    ("chroma", "ef_search"): ("chroma", "ef_search"),
    ("pgvector", "ef_search"): ("pgvector", "hnsw_ef_search"),
    ("pgvector", "probes"): ("pgvector", "ivfflat_probes"),
    ("qdrant", "ef_search"): ("qdrant", "hnsw_ef"),
}
"""(retriever kind, sweep key) -> (``[retriever.TABLE]``, field) of the store search
setting the key sets: what each store can set per query or session today."""

DEFAULT_EMBEDDER = "default"
"""The embedder name that means the ``[embedder]`` settings (and ``model_path``)."""

COST_NOT_KNOWN = (
    "cost is not known: no embedder or judge evalkit runs reports the tokens it used, so "
    "the front is of quality against latency only"
)


# -- the sweep file ---------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SweepRetriever(_Model):
    """The ``[retriever]`` table of a sweep file: the base retriever, as ``evalkit run``'s
    options name it (unset fields fall back to the ``[retriever]`` settings)."""

    kind: str | None = Field(default=None, description="Retriever kind.")
    collection: str | None = Field(default=None, description="Chroma or Qdrant collection.")
    chroma_url: str | None = Field(default=None, description="Chroma server URL.")
    http_url: str | None = Field(default=None, description="HTTP retriever endpoint URL.")
    retriever: str | None = Field(
        default=None, description="A kind's name or module:factory (as --retriever)."
    )
    options: dict[str, Any] | None = Field(
        default=None, description="Keyword arguments of the factory or plug-in."
    )
    where_key: str | None = Field(default=None, description="Metadata key of the tenant.")
    allow_model_mismatch: bool = Field(
        default=False, description="Query a collection built with another model."
    )


class SweepEmbedder(EmbedderSettings):
    """An ``[embedders.NAME]`` table: the ``[embedder]`` settings' fields, and
    ``model_path`` for a local model other than the bundled MiniLM."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_path: Path | None = Field(
        default=None, description="Directory of a sentence-transformers model."
    )


class SweepPointSettings(_Model):
    """One ``[[points]]`` entry: the settings of one point (unset: the base's)."""

    k: int | None = Field(default=None, ge=1)
    embedder: str | None = None
    collection: str | None = None
    ef_search: int | None = Field(default=None, ge=1)
    probes: int | None = Field(default=None, ge=1)
    options: dict[str, Any] = Field(default_factory=dict)


def _non_empty(value: list[Any] | None) -> list[Any] | None:
    if value is not None and not value:
        raise ValueError("an empty list: give at least one value, or leave the key out")
    return value


class SweepGrid(_Model):
    """The ``[grid]`` table: values of each setting; the points are every combination."""

    k: list[int] | None = None
    embedder: list[str] | None = None
    collection: list[str] | None = None
    ef_search: list[int] | None = None
    probes: list[int] | None = None
    options: dict[str, list[Any]] = Field(default_factory=dict)

    @field_validator("k", "embedder", "collection", "ef_search", "probes")
    @classmethod
    def _values(cls, value: list[Any] | None) -> list[Any] | None:
        return _non_empty(value)

    @field_validator("k", "ef_search", "probes")
    @classmethod
    def _positive(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(number < 1 for number in value):
            raise ValueError(f"values must be at least 1, got {value}")
        return value

    @field_validator("options")
    @classmethod
    def _option_values(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for name, values in value.items():
            if not values:
                raise ValueError(f"options.{name} is an empty list: give at least one value")
        return value


class SweepFile(_Model):
    """A sweep file, as written."""

    name: str = Field(pattern=NAME_PATTERN)
    goldset: str
    goldset_version: str | None = None
    goldset_format: Literal["jsonl", "beir", "trec"] = "jsonl"
    goldset_split: str = "test"
    measures: list[str] = Field(min_length=1)
    k: int | None = Field(default=None, ge=1)
    retriever: SweepRetriever = Field(default_factory=SweepRetriever)
    embedders: dict[str, SweepEmbedder] = Field(default_factory=dict)
    grid: SweepGrid | None = None
    points: list[SweepPointSettings] | None = None


# -- a sweep, read and checked ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SweepPoint:
    """One point of a sweep: its settings in ``SWEEP_KEYS`` order, then ``options.NAME``
    sorted; ``source`` says where it was written (``[grid]``, ``[[points]] #2``)."""

    settings: tuple[tuple[str, Any], ...]
    source: str

    def get(self, key: str) -> Any:
        """The point's value of ``key`` (None when it leaves it to the base)."""
        return dict(self.settings).get(key)

    @property
    def options(self) -> dict[str, Any]:
        """The factory options the point sets (``options.NAME`` without the prefix)."""
        return {
            key.removeprefix("options."): value
            for key, value in self.settings
            if key.startswith("options.")
        }

    @property
    def tags(self) -> tuple[str, ...]:
        """One tag per setting: ``k=20``, ``ef_search=64``, ``options.mode=fast``."""
        return tuple(f"{key}={_shown(value)}" for key, value in self.settings)

    def describe(self) -> str:
        """The settings for people: ``k=20 ef_search=64`` (``base`` when it sets none)."""
        return " ".join(self.tags) or "base"


@dataclass(frozen=True, slots=True)
class Sweep:
    """A sweep as read from ``path``: what to run and on what."""

    name: str
    path: Path
    goldset: str
    goldset_version: str | None
    goldset_format: str
    goldset_split: str
    measures: tuple[str, ...]
    k: int | None
    retriever: SweepRetriever
    embedders: Mapping[str, SweepEmbedder]
    points: tuple[SweepPoint, ...]

    @property
    def root(self) -> Path:
        """The folder relative paths of the sweep file are read from."""
        return self.path.parent

    @property
    def tag(self) -> str:
        """``sweep:NAME``, the tag every run of the sweep carries."""
        return f"sweep:{self.name}"

    def retriever_options(self) -> RetrieverOptions:
        """The base retriever's options (a point adds its collection and factory options)."""
        base = self.retriever
        return RetrieverOptions(
            kind=base.kind,
            collection=base.collection,
            chroma_url=base.chroma_url,
            http_url=base.http_url,
            retriever=base.retriever,
            factory_options=base.options,
            where_key=base.where_key,
            allow_model_mismatch=base.allow_model_mismatch,
        )


def load_sweep(path: Path) -> Sweep:
    """Read and check the sweep file ``path`` (TOML).

    ConfigError naming the file, the key path and what is wrong with it: not TOML, an
    unknown key, a value of the wrong type, an empty ``[grid]`` or ``[[points]]``, both or
    neither of them, an unknown measure or embedder name, two points with the same
    settings.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from error
    except OSError as error:
        raise ConfigError(f"{path}: cannot read it: {error}") from error
    try:
        written = SweepFile.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_validation_message(path, error)) from error
    try:
        measures = tuple(str(measure) for measure in parse_measures(written.measures))
    except MeasureError as error:
        raise ConfigError(f"{path}: measures: {error}") from error
    points = _points(path, written)
    sweep = Sweep(
        name=written.name,
        path=path,
        goldset=written.goldset,
        goldset_version=written.goldset_version,
        goldset_format=written.goldset_format,
        goldset_split=written.goldset_split,
        measures=measures,
        k=written.k,
        retriever=written.retriever,
        embedders=dict(written.embedders),
        points=points,
    )
    for point in points:
        embedder = point.get("embedder")
        if (
            embedder is not None
            and embedder != DEFAULT_EMBEDDER
            and embedder not in sweep.embedders
        ):
            known = ", ".join([DEFAULT_EMBEDDER, *sorted(sweep.embedders)])
            raise ConfigError(
                f"{path}: {point.source} embedder: no embedder named {embedder!r}; define it "
                f"in an [embedders.{embedder}] table (known: {known})"
            )
    return sweep


def _validation_message(path: Path, error: ValidationError) -> str:
    problems = []
    for problem in error.errors():
        where = _key_path(problem["loc"])
        if problem["type"] == "extra_forbidden":
            text = "unknown key"
        elif problem["type"] == "missing":
            text = "missing: this key is required"
        else:
            text = problem["msg"]
        problems.append(f"{where}: {text}")
    return f"{path}: " + "; ".join(problems)


def _key_path(loc: tuple[int | str, ...]) -> str:
    """``grid.ef_search``, ``points[2].k`` (1-based, as people count entries)."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part + 1}]"
        else:
            text += f".{part}" if text else part
    return text or "(file)"


def _points(path: Path, written: SweepFile) -> tuple[SweepPoint, ...]:
    if (written.grid is None) == (written.points is None):
        raise ConfigError(
            f"{path}: give either a [grid] table (every combination of its values) or "
            "[[points]] entries (one point each), "
            + ("not both" if written.grid is not None else "none is given")
        )
    if written.grid is not None:
        points = list(_grid_points(written.grid))
        if not points:
            raise ConfigError(
                f"{path}: grid: an empty [grid]; give at least one setting with its values "
                f"({', '.join(SWEEP_KEYS)}, options.NAME)"
            )
    else:
        entries = written.points or []
        if not entries:
            raise ConfigError(f"{path}: points: no [[points]] entry; give at least one")
        points = [
            _point(entry.model_dump(exclude={"options"}), entry.options, f"[[points]] #{number}")
            for number, entry in enumerate(entries, start=1)
        ]
    seen: dict[tuple[tuple[str, Any], ...], str] = {}
    for point in points:
        key = tuple((name, _shown(value)) for name, value in point.settings)
        if key in seen:
            raise ConfigError(
                f"{path}: {point.source} has the same settings as {seen[key]} ({point.describe()})"
            )
        seen[key] = point.source
    return tuple(points)


def _grid_points(grid: SweepGrid) -> Iterator[SweepPoint]:
    axes: list[tuple[str, list[Any]]] = [
        (key, values) for key in SWEEP_KEYS if (values := getattr(grid, key)) is not None
    ]
    axes += [(f"options.{name}", values) for name, values in sorted(grid.options.items())]
    if not axes:
        return
    names = [name for name, _ in axes]
    for values in itertools.product(*(values for _, values in axes)):
        yield SweepPoint(settings=tuple(zip(names, values, strict=True)), source="[grid]")


def _point(values: Mapping[str, Any], options: Mapping[str, Any], source: str) -> SweepPoint:
    settings = [(key, values[key]) for key in SWEEP_KEYS if values.get(key) is not None]
    settings += [(f"options.{name}", value) for name, value in sorted(options.items())]
    return SweepPoint(settings=tuple(settings), source=source)


def _shown(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def check_sweep(sweep: Sweep, settings: Settings) -> str:
    """The retriever kind the sweep runs on under ``settings``; ConfigError naming the key
    of a point that kind cannot set (``ef_search`` on an HTTP endpoint, ``options.NAME`` on
    Chroma, an ``ef_search`` on a Chroma server, which keeps its searcher's value until it
    restarts), or whose ``k`` is shallower than a measure's cutoff."""
    try:
        kind = sweep.retriever_options().resolved_kind(settings)
    except ConfigError as error:
        raise ConfigError(f"{sweep.path}: retriever: {error}") from error
    for point in sweep.points:
        k = point.get("k") or sweep.k or settings.k
        for measure in parse_measures(sweep.measures):
            if measure.cutoff is not None and measure.cutoff > k:
                raise ConfigError(
                    f"{sweep.path}: {point.source} k: {measure} needs at least "
                    f"{measure.cutoff} documents per query, the point retrieves {k}; raise k "
                    "or lower the measure's cutoff"
                )
    built_in = RETRIEVER_KINDS.get(kind)
    takes_options = built_in is None or built_in.takes_options
    embeds = built_in is None or kind == FACTORY_KIND or built_in.embeds_queries
    chroma_server = sweep.retriever.chroma_url or settings.chroma_url
    for point in sweep.points:
        for key, _ in point.settings:
            problem: str | None = None
            if key in ("ef_search", "probes"):
                if (kind, key) not in SEARCH_SETTINGS:
                    able = sorted(name for name, setting in SEARCH_SETTINGS if setting == key)
                    problem = (
                        f"the {kind} retriever has no {key} evalkit can set (it can on "
                        f"{', '.join(able)})"
                    )
                elif kind == "chroma" and chroma_server:
                    problem = (
                        f"the Chroma server at {chroma_server} keeps its searcher's ef_search "
                        "until it restarts, and Chroma has no per-query ef_search; sweep it on "
                        "an embedded store"
                    )
            elif key == "embedder" and not embeds:
                problem = f"the {kind} retriever embeds no queries with evalkit's embedder"
            elif key == "collection" and kind not in ("chroma", "qdrant"):
                problem = f"the {kind} retriever takes no collection (chroma and qdrant do)"
            elif key.startswith("options.") and not takes_options:
                problem = (
                    f"the {kind} retriever takes no options (a module:factory retriever, a "
                    "plug-in or bm25 does)"
                )
            if problem is not None:
                raise ConfigError(f"{sweep.path}: {point.source} {key}: {problem}")
        try:
            _point_options(sweep, settings, point)
        except ConfigError as error:  # a collection name Chroma would refuse
            raise ConfigError(f"{sweep.path}: {point.source} collection: {error}") from error
    return kind


# -- running it --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """What a sweep will do: its points, numbered from 1, and which of them already have
    a complete run (``already``: number -> run id)."""

    total: int
    already: Mapping[int, str]

    @property
    def to_run(self) -> int:
        """How many points run now."""
        return self.total - len(self.already)

    def describe(self) -> str:
        """``3 of 9 points already run; running 6``."""
        if not self.already:
            return f"running {self.total} point{'s' if self.total != 1 else ''}"
        if not self.to_run:
            return f"all {self.total} points already run; nothing to run"
        return f"{len(self.already)} of {self.total} points already run; running {self.to_run}"


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
    """Run the points of ``sweep`` that have no complete run yet, each a stored goldset
    run (``evaluate_goldset``) tagged and labelled with its settings, and rank them all.

    ``goldset`` is what the sweep's goldset names (``resolve_goldset``): a stored goldset's
    name (read at ``sweep.goldset_version``, default the newest) or goldset files read.
    ``settings`` are the base settings each point's are derived from (its embedder, its
    store search setting); ``engine`` (a ``RayEngine``) runs every point on Ray, with the
    point's retriever options and settings. ``check_sweep`` runs first.

    A point whose retriever cannot be built, or whose run fails or is partial, is reported
    and the sweep goes on; a ConfigError (a setting a point's retriever refuses) or a
    StoreError stops it. ``query_progress`` is each run's progress callback (a job's
    cancellation check). Answers are not scored: a sweep ranks retrieval.
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
        keys = [_point_key(sweep, gold, settings, point) for point in sweep.points]
        reused = {
            number: PointResult(
                number, point, key, status="complete", reused=True, run=runs[0]
            ).with_latency(replay_latency(opened, runs[0].run_id))
            for number, (point, key) in enumerate(zip(sweep.points, keys, strict=True), start=1)
            if (runs := list_runs(opened, tag=_key_tag(key), status="complete", limit=1))
        }
    plan = SweepPlan(
        total=len(sweep.points),
        already={number: result.run.run_id for number, result in reused.items() if result.run},
    )
    if progress is not None:
        progress.planned(plan)
    embedders: dict[str, TextEmbedder | None] = {}
    results: list[PointResult] = []
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
    settings: Settings,
    number: int,
    point: SweepPoint,
    key: str,
    embedders: dict[str, TextEmbedder | None],
    engine: RayEngine | None,
    query_progress: Callable[[int, int], None] | None,
) -> PointResult:
    point_settings = _point_settings(sweep, settings, point)
    embedder_name = point.get("embedder") or DEFAULT_EMBEDDER
    try:
        if embedder_name not in embedders:
            embedder = build_query_embedder(point_settings)
            embedders[embedder_name] = embedder if engine is not None else _warm(embedder, goldset)
        options = _point_options(sweep, settings, point)
        retriever = build_retriever(
            dataclasses.replace(options, query_embedder=embedders[embedder_name]),
            point_settings,
        )
    except (ConfigError, StoreError):
        raise
    except Exception as error:  # reported as this point's failure; the sweep goes on
        return PointResult(number, point, key, status="failed", error=_error_text(error))
    k = point.get("k") or sweep.k or settings.k
    request = GoldsetRunRequest(
        k=k,
        measures=sweep.measures,
        relevance_threshold=settings.relevance_threshold,
        batch_size=settings.query_batch_size,
        label=f"sweep {sweep.name}: {point.describe()}",
        answers=False,
        tags=(sweep.tag, _key_tag(key), *point.tags),
    )
    on_ray = (
        dataclasses.replace(engine, retriever=options, settings=point_settings)
        if engine is not None
        else None
    )
    try:
        outcome = evaluate_goldset(
            store,
            goldset,
            retriever,
            request,
            progress=query_progress,
            close_retriever=True,
            engine=on_ray,
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
        runs = list_runs(opened, tag=_key_tag(key), limit=1)
    return runs[0] if runs else None


def _point_options(sweep: Sweep, settings: Settings, point: SweepPoint) -> RetrieverOptions:
    """The retriever options of ``point``: the base's with its collection and factory
    options (laid over the base's, else the ``[retriever]`` options)."""
    options = sweep.retriever_options()
    collection = point.get("collection")
    if collection is not None:
        options = dataclasses.replace(options, collection=collection)
    if point.options:
        base = options.factory_options
        merged = {**(base if base is not None else settings.retriever.options), **point.options}
        options = dataclasses.replace(options, factory_options=merged)
    return options


def _point_settings(sweep: Sweep, settings: Settings, point: SweepPoint) -> Settings:
    """The settings of ``point``: the base ones with its embedder and store search
    settings (``SEARCH_SETTINGS``)."""
    kind = sweep.retriever_options().resolved_kind(settings)
    retriever = settings.retriever
    for key in ("ef_search", "probes"):
        value = point.get(key)
        if value is None:
            continue
        table, field = SEARCH_SETTINGS[(kind, key)]
        section = getattr(retriever, table).model_copy(update={field: value})
        retriever = retriever.model_copy(update={table: section})
    updates: dict[str, Any] = {"retriever": retriever}
    name = point.get("embedder")
    if name is not None and name != DEFAULT_EMBEDDER:
        chosen = sweep.embedders[name]
        updates["embedder"] = EmbedderSettings(**chosen.model_dump(exclude={"model_path"}))
        updates["model_path"] = chosen.model_path
    return settings.model_copy(update=updates)


def _point_key(sweep: Sweep, goldset: Goldset, settings: Settings, point: SweepPoint) -> str:
    """A hash of everything that makes the point's figures (its latency too: a query's is
    its share of its batch's time)."""
    name = point.get("embedder")
    embedder = (
        sweep.embedders[name].model_dump(mode="json")
        if name is not None and name != DEFAULT_EMBEDDER
        else {**settings.embedder.model_dump(mode="json"), "model_path": settings.model_path}
    )
    identity = {
        "sweep": sweep.name,
        "goldset": goldset.name,
        "goldset_version": goldset.version,
        "measures": list(sweep.measures),
        "k": point.get("k") or sweep.k or settings.k,
        "relevance_threshold": settings.relevance_threshold,
        "query_batch_size": settings.query_batch_size,
        "retriever": sweep.retriever.model_dump(mode="json"),
        "retriever_settings": settings.retriever.model_dump(mode="json"),
        "chroma": settings.chroma_url or settings.resolved_chroma_path,
        "settings": [[key, value] for key, value in point.settings],
        "embedder": embedder,
    }
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _key_tag(key: str) -> str:
    return f"sweep-point:{key}"


def pareto_front(points: Sequence[tuple[float | None, float | None]]) -> list[int]:
    """Indices of the points no other point dominates, in input order.

    Each point is (quality, cost): higher quality and lower cost are better (cost: a
    latency, a price). A point dominates another when it is at least as good on both and
    better on one; equal points are all on the front. A point missing either figure
    (None, or NaN) is on no front.
    """
    known = [
        (index, float(quality), float(cost))
        for index, (quality, cost) in enumerate(points)
        if quality is not None and cost is not None and not np.isnan(quality) and not np.isnan(cost)
    ]
    return [
        index
        for index, quality, cost in known
        if not any(
            other_quality >= quality
            and other_cost <= cost
            and (other_quality > quality or other_cost < cost)
            for _, other_quality, other_cost in known
        )
    ]
