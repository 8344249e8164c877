"""The sweep file: reading it (``load_sweep``: a ``[grid]`` of every combination or a list
of ``[[points]]``, every bad key named by file and field). What a point means for the
retriever it runs on is ``sweep.points``."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from evalkit.config import EmbedderSettings
from evalkit.config.retriever import FactoryOptions, finite_options
from evalkit.config.sources import toml_file_problems, toml_place
from evalkit.config.tomlfile import read_toml, validate_toml
from evalkit.config.types import NAME_PATTERN
from evalkit.errors import ConfigError, MeasureError
from evalkit.metrics import parse_measures
from evalkit.records.requests import DEFAULT_GOLDSET_FORMAT, DEFAULT_GOLDSET_SPLIT, MAX_K
from evalkit.retrievers.factory import RetrieverOptions

__all__ = [
    "MAX_POINTS",
    "SWEEP_KEYS",
    "Sweep",
    "SweepPoint",
    "load_sweep",
]

SWEEP_KEYS = ("k", "embedder", "collection", "ef_search", "probes")
"""The settings a point may set besides a factory's ``options.NAME``, in the order a
point's settings are listed (its tags, its label)."""

MAX_POINTS = 1000
"""The most points a sweep runs unless its file's ``max_points`` (or ``evalkit sweep
--max-points``) allows more: each point is a whole goldset run, and a grid's points are
counted before any is made (a 1,000 x 1,000 grid would be a million runs, and took 776 MB
before its first one)."""

DEFAULT_EMBEDDER = "default"
"""The embedder name that means the ``[embedder]`` settings (and ``model_path``)."""

COST_NOT_KNOWN = (
    "cost is not known: no embedder or judge evalkit runs reports the tokens it used, so "
    "the front is of quality against latency only"
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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
    options: FactoryOptions | None = Field(
        default=None, description="Keyword arguments of the factory or plug-in."
    )
    where_key: str | None = Field(default=None, description="Metadata key of the tenant.")
    allow_model_mismatch: bool = Field(
        default=False, description="Query a collection built with another model."
    )

    @model_validator(mode="after")
    def _one_retriever(self) -> SweepRetriever:
        # Said in the file's words: the CLI's message names its flags instead.
        if self.http_url and (self.collection or self.chroma_url or self.retriever):
            raise ValueError(
                "give one of http_url, retriever, or collection (with chroma_url), not several"
            )
        return self


class SweepEmbedder(EmbedderSettings):
    """An ``[embedders.NAME]`` table: the ``[embedder]`` settings' fields, and
    ``model_path`` for a local model other than the bundled MiniLM."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    model_path: Path | None = Field(
        default=None, description="Directory of a sentence-transformers model."
    )


class SweepPointSettings(_Model):
    """One ``[[points]]`` entry: the settings of one point (unset: the base's)."""

    k: int | None = Field(default=None, ge=1, le=MAX_K)
    embedder: str | None = None
    collection: str | None = None
    ef_search: int | None = Field(default=None, ge=1)
    probes: int | None = Field(default=None, ge=1)
    options: FactoryOptions = Field(default_factory=dict)


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
    options: Annotated[dict[str, list[Any]], AfterValidator(finite_options)] = Field(
        default_factory=dict
    )

    @field_validator("k", "embedder", "collection", "ef_search", "probes")
    @classmethod
    def _values(cls, value: list[Any] | None) -> list[Any] | None:
        return _non_empty(value)

    @field_validator("k", "ef_search", "probes")
    @classmethod
    def _positive(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(number < 1 for number in value):
            raise ValueError(f"values must be at least 1, got {value}")
        if value is not None and any(number > MAX_K for number in value):
            raise ValueError(f"values must be at most {MAX_K}, got {value}")
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
    goldset_format: Literal["jsonl", "beir", "trec"] = DEFAULT_GOLDSET_FORMAT
    goldset_split: str = DEFAULT_GOLDSET_SPLIT
    measures: list[str] = Field(min_length=1)
    k: int | None = Field(default=None, ge=1, le=MAX_K)
    retriever: SweepRetriever = Field(default_factory=SweepRetriever)
    embedders: dict[str, SweepEmbedder] = Field(default_factory=dict)
    grid: SweepGrid | None = None
    points: list[SweepPointSettings] | None = None
    max_points: int | None = Field(default=None, ge=1)


# -- a sweep, read and checked ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SweepPoint:
    """One point of a sweep: its settings in ``SWEEP_KEYS`` order, then ``options.NAME``
    sorted; ``source`` says where it was written (``[grid]``, ``[[points]] #2``)."""

    settings: tuple[tuple[str, Any], ...]
    source: str
    at: tuple[str | int, ...] = ("grid",)
    """Where the point is written: ``("grid",)``, ``("points", 1)`` for the second."""

    def place(self, path: Path, key: str = "") -> str:
        """``line N, `` of the point's ``key`` (``options.top``) in the sweep file ``path``,
        else of the point itself."""
        return toml_place(path, (*self.at, *filter(None, key.split("."))))

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
    max_points: int = MAX_POINTS
    """The most points the sweep may have (``MAX_POINTS``, or what the file or the caller
    allowed)."""

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


def load_sweep(path: Path, *, max_points: int | None = None) -> Sweep:
    """Read and check the sweep file ``path`` (TOML; docs/sweeps.md).

    ConfigError names the file, the key path and what is wrong: not TOML, an unknown key, a wrong
    type, an empty, missing or doubled ``[grid]``/``[[points]]``, an unknown measure or embedder,
    duplicate points, or more points than ``max_points`` (else the file's, else ``MAX_POINTS``).
    """
    data = read_toml(path)
    try:
        written = validate_toml(SweepFile, data)
    except ValidationError as error:
        raise ConfigError(toml_file_problems(path, error, SweepFile)) from error
    try:
        measures = tuple(str(measure) for measure in parse_measures(written.measures))
    except MeasureError as error:
        raise ConfigError(f"{path}: {toml_place(path, ('measures',))}measures: {error}") from error
    cap = max_points or written.max_points or MAX_POINTS
    points = _points(path, written, cap)
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
        max_points=cap,
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
                f"{path}: {point.place(path, 'embedder')}{point.source} embedder: no embedder "
                f"named {embedder!r}; define it "
                f"in an [embedders.{embedder}] table (known: {known})"
            )
    return sweep


def _points(path: Path, written: SweepFile, cap: int) -> tuple[SweepPoint, ...]:
    if (written.grid is None) == (written.points is None):
        raise ConfigError(
            f"{path}: give either a [grid] table (every combination of its values) or "
            "[[points]] entries (one point each), "
            + ("not both" if written.grid is not None else "none is given")
        )
    if written.grid is not None:
        axes = _grid_axes(written.grid)
        count = math.prod(len(values) for _, values in axes) if axes else 0
        if count > cap:
            sizes = " x ".join(f"{len(values)} {key}" for key, values in axes)
            _refuse_count(path, ("grid",), f"grid: {count:,} points ({sizes})", cap)
        _refuse_repeated_values(path, written.grid)
        points = list(_grid_points(written.grid))
        if not points:
            raise ConfigError(
                f"{path}: {toml_place(path, ('grid',))}grid: an empty [grid]; give at least one "
                "setting with its values "
                f"({', '.join(SWEEP_KEYS)}, options.NAME)"
            )
    else:
        entries = written.points or []
        if not entries:
            raise ConfigError(f"{path}: points: no [[points]] entry; give at least one")
        if len(entries) > cap:
            _refuse_count(path, ("points",), f"points: {len(entries):,} [[points]] entries", cap)
        points = [
            _point(entry.model_dump(exclude={"options"}), entry.options, number)
            for number, entry in enumerate(entries, start=1)
        ]
    seen: dict[tuple[tuple[str, Any], ...], str] = {}
    for point in points:
        key = tuple((name, _shown(value)) for name, value in point.settings)
        if key in seen:
            raise ConfigError(
                f"{path}: {point.place(path)}{point.source} has the same settings as {seen[key]} "
                f"({point.describe()})"
            )
        seen[key] = point.source
    return tuple(points)


def _refuse_count(path: Path, at: tuple[str, ...], counted: str, cap: int) -> None:
    raise ConfigError(
        f"{path}: {toml_place(path, at)}{counted}, more than the {cap:,} points a sweep runs "
        f"at most (each point is a goldset run); narrow it, or allow more with max_points = N "
        "in the file or --max-points N"
    )


def _refuse_repeated_values(path: Path, grid: SweepGrid) -> None:
    """ConfigError naming the key of a value listed twice: each of its points would repeat
    another, and the duplicate point's message would name no key."""
    for key, values in _grid_axes(grid):
        seen: set[str] = set()
        for value in values:
            shown = _shown(value)
            if shown in seen:
                raise ConfigError(
                    f"{path}: {toml_place(path, ('grid', *key.split('.')))}grid.{key}: the value "
                    f"{shown} is listed twice; list each value once"
                )
            seen.add(shown)


def _grid_axes(grid: SweepGrid) -> list[tuple[str, list[Any]]]:
    """Each setting the grid lists, with its values, in the points' order."""
    axes: list[tuple[str, list[Any]]] = [
        (key, values) for key in SWEEP_KEYS if (values := getattr(grid, key)) is not None
    ]
    return axes + [(f"options.{name}", values) for name, values in sorted(grid.options.items())]


def _grid_points(grid: SweepGrid) -> Iterator[SweepPoint]:
    axes = _grid_axes(grid)
    if not axes:
        return
    names = [name for name, _ in axes]
    for values in itertools.product(*(values for _, values in axes)):
        yield SweepPoint(settings=tuple(zip(names, values, strict=True)), source="[grid]")


def _point(values: Mapping[str, Any], options: Mapping[str, Any], number: int) -> SweepPoint:
    settings = [(key, values[key]) for key in SWEEP_KEYS if values.get(key) is not None]
    settings += [(f"options.{name}", value) for name, value in sorted(options.items())]
    return SweepPoint(
        settings=tuple(settings), source=f"[[points]] #{number}", at=("points", number - 1)
    )


def _shown(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
