"""What a sweep's point means for the retriever it runs on: its depth, retriever options and
settings, and the check that the retriever can take every key a point sets
(``check_sweep``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from evalkit.config import EmbedderSettings, Settings
from evalkit.errors import ConfigError
from evalkit.metrics import parse_measures
from evalkit.pipeline.sweep.file import DEFAULT_EMBEDDER, Sweep, SweepPoint
from evalkit.retrievers.factory import RetrieverOptions
from evalkit.retrievers.kinds import FACTORY_KIND, RETRIEVER_KINDS, built_in_kinds, listed

__all__ = ["check_sweep", "point_depth", "point_options", "point_settings"]


def check_sweep(sweep: Sweep, settings: Settings) -> str:
    """The retriever kind the sweep runs on under ``settings``; ConfigError naming the key
    of a point that kind cannot set, as the kind declares what it can (``ef_search`` on an
    HTTP endpoint, ``options.NAME`` on Chroma, an ``ef_search`` on a Chroma server, which
    keeps its searcher's value until it restarts), or whose ``k`` is shallower than a
    measure's cutoff."""
    options = sweep.retriever_options()
    try:
        kind = options.resolved_kind(settings)
    except ConfigError as error:
        raise ConfigError(f"{sweep.path}: retriever: {error}") from error
    for point in sweep.points:
        k = point_depth(point, sweep, settings)
        for measure in parse_measures(sweep.measures):
            if measure.cutoff is not None and measure.cutoff > k:
                raise ConfigError(
                    f"{sweep.path}: {point.place(sweep.path, 'k')}{point.source} k: {measure} "
                    "needs at least "
                    f"{measure.cutoff} documents per query, the point retrieves {k}; raise k "
                    "or lower the measure's cutoff"
                )
    built_in = RETRIEVER_KINDS.get(kind)
    takes_options = built_in is None or built_in.takes_options
    embeds = built_in is None or kind == FACTORY_KIND or built_in.embeds_queries
    searchable = built_in.search_settings if built_in is not None else {}
    fixed = built_in.fixed_search if built_in is not None else None
    with_collection = [name for name, known in RETRIEVER_KINDS.items() if known.takes_collection]
    for point in sweep.points:
        for key, _ in point.settings:
            problem: str | None = None
            if key in ("ef_search", "probes"):
                if key not in searchable:
                    able = sorted(
                        name
                        for name, known in RETRIEVER_KINDS.items()
                        if key in known.search_settings
                    )
                    problem = (
                        f"the {kind} retriever has no {key} evalkit can set (it can on "
                        f"{', '.join(able)})"
                    )
                elif fixed is not None:
                    problem = fixed(options, settings)
            elif key == "embedder" and not embeds:
                problem = f"the {kind} retriever embeds no queries with evalkit's embedder"
            elif key == "collection" and kind not in with_collection:
                problem = f"the {kind} retriever takes no collection ({listed(with_collection)} do)"
            elif key.startswith("options.") and not takes_options:
                optioned = [n for n in built_in_kinds() if RETRIEVER_KINDS[n].takes_options]
                problem = (
                    f"the {kind} retriever takes no options (a module:factory retriever, a "
                    f"plug-in or {listed(optioned)} does)"
                )
            if problem is not None:
                raise ConfigError(
                    f"{sweep.path}: {point.place(sweep.path, key)}{point.source} {key}: {problem}"
                )
        try:
            point_options(sweep, settings, point)
        except ConfigError as error:  # a collection name Chroma would refuse
            where = point.place(sweep.path, "collection")
            raise ConfigError(f"{sweep.path}: {where}{point.source} collection: {error}") from error
    return kind


def point_depth(point: SweepPoint, sweep: Sweep, settings: Settings) -> int:
    """The ``k`` of ``point``: its own, else the sweep's, else the settings'."""
    for depth in (point.get("k"), sweep.k):
        if depth is not None:
            return int(depth)
    return settings.k


def point_options(sweep: Sweep, settings: Settings, point: SweepPoint) -> RetrieverOptions:
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


def point_settings(sweep: Sweep, settings: Settings, point: SweepPoint) -> Settings:
    """The settings of ``point``: the base ones with its embedder and store search
    settings (the ``[retriever.TABLE]`` field its kind declares for each:
    ``RetrieverKind.search_settings``)."""
    kind = sweep.retriever_options().resolved_kind(settings)
    retriever = settings.retriever
    for key in ("ef_search", "probes"):
        value = point.get(key)
        if value is None:
            continue
        table, field = RETRIEVER_KINDS[kind].search_settings[key]
        section = getattr(retriever, table).model_copy(update={field: value})
        retriever = retriever.model_copy(update={table: section})
    updates: dict[str, Any] = {"retriever": retriever}
    name = point.get("embedder")
    if name is not None and name != DEFAULT_EMBEDDER:
        chosen = sweep.embedders[name]
        updates["embedder"] = EmbedderSettings(**chosen.model_dump(exclude={"model_path"}))
        updates["model_path"] = chosen.model_path
    return settings.model_copy(update=updates)
