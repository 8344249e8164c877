"""Slices of a window's queries, their figures, and their change against a baseline window.

A slice is a set of the window's queries: a topic (``topic:3``, ``topic:outside``), a tenant
(``tenant:acme``) or a tag's value (``tag:locale=fr``); ``all`` is the whole window. An
embedded query is in one topic, a query in at most one tenant and one value of each tag key.
A slice's share is of its family's queries (``slice_family``): a topic's of the embedded
queries, a tenant's of those with a tenant, ``tag:locale=fr``'s of those tagged ``locale``.

``slice_figures`` gives each slice its share, its out-of-scope share (each with the interval
of ``evalkit.judging.window.mean_interval``), its low-confidence share, its churn, and the
mean of its queries' precision from one source, with the same interval: the figure a window
stores, computed over the slice's queries alone.

``slice_changes`` tests every slice of a window against the baseline window: its share (a
two-proportion z-test, pooled) and its precision (a one-sided test of a drop, from the two
intervals, as ``evalkit.drift.traffic_precision.window_test`` tests a whole window), each family
corrected by Benjamini-Hochberg over the slices tested (``scipy.stats.false_discovery_control``):
of the slices flagged in a family, at most the false discovery rate are expected flagged wrongly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from evalkit.errors import ConfigError
from evalkit.judging.window import mean_interval
from evalkit.records.jsonready import JsonReady
from evalkit.records.slices import SliceFigures, SlicePrecision

__all__ = [
    "ALL",
    "CONTENT_GAP_SHARE",
    "DEFAULT_FALSE_DISCOVERY_RATE",
    "OUT_OF_SCOPE_QUANTILE",
    "SLICE_KINDS",
    "SliceChange",
    "SliceFigures",
    "SlicePrecision",
    "SlicedQuery",
    "content_gaps",
    "scope_floor",
    "slice_changes",
    "slice_family",
    "slice_figures",
]

ALL = "all"
"""The slice of every query of the window."""
SLICE_KINDS = ("topic", "tenant", "tag")
DEFAULT_FALSE_DISCOVERY_RATE = 0.05
OUT_OF_SCOPE_QUANTILE = 0.05
"""The share of answerable goldset queries whose best score lies below the out-of-scope floor:
the rate at which a query the corpus can answer is called out of scope."""
CONTENT_GAP_SHARE = 0.5
"""A topic slice with this share of its queries out of scope or more is one the corpus does
not cover; when its share of traffic grows, it is a content gap."""
_Z95 = NormalDist().inv_cdf(0.975)


def scope_floor(found_top_scores: Sequence[float]) -> float | None:
    """The best-retrieval score below which a query is out of scope: the
    ``OUT_OF_SCOPE_QUANTILE`` quantile of the top-1 scores of the goldset queries whose top k
    holds a relevant document (None with fewer than 20 such queries: too few to place it)."""
    scores = np.asarray([s for s in found_top_scores if math.isfinite(s)], dtype=np.float64)
    if len(scores) < 20:
        return None
    return float(np.quantile(scores, OUT_OF_SCOPE_QUANTILE))


@dataclass(frozen=True, slots=True)
class SlicedQuery:
    """One replayed query of a window: the slices it is in, whether it is out of scope (None:
    not known), low-confidence, its churn (1 - overlap@k with what production logged; None
    when nothing was logged), and its precision from the window's source (None: not
    labelled)."""

    query_id: str
    slices: tuple[str, ...]
    out_of_scope: bool | None
    low_confidence: bool
    churn: float | None = None
    precision: float | None = None


def _share(flags: npt.NDArray[np.float64]) -> tuple[float, float, float]:
    low, high = mean_interval(flags)
    return float(flags.mean()), low, high


def slice_figures(
    queries: Sequence[SlicedQuery],
    *,
    precision_of: tuple[str, str, str] | None = None,
    details: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[SliceFigures]:
    """The figures of ``all`` and of every slice ``queries`` are in, ``all`` first, then by
    size. ``precision_of`` names the source, labeller and measure of the queries' precision
    (None: the window has none)."""
    groups: dict[str, list[SlicedQuery]] = {ALL: list(queries)}
    families: dict[str, set[str]] = {ALL: {q.query_id for q in queries}}
    for query in queries:
        for name in query.slices:
            groups.setdefault(name, []).append(query)
            families.setdefault(slice_family(name), set()).add(query.query_id)
    figures = []
    for name, members in groups.items():
        if not members:
            continue
        family = len(families[slice_family(name)])
        inside = np.zeros(family, dtype=np.float64)
        inside[: len(members)] = 1.0
        share, share_low, share_high = _share(inside)
        scoped = [q.out_of_scope for q in members if q.out_of_scope is not None]
        outside = np.asarray(scoped, dtype=np.float64)
        oos = _share(outside) if len(outside) else (None, None, None)
        churns = [q.churn for q in members if q.churn is not None]
        labelled = np.asarray(
            [q.precision for q in members if q.precision is not None], dtype=np.float64
        )
        precision = None
        if precision_of is not None:
            low_high = mean_interval(labelled) if len(labelled) else (None, None)
            precision = SlicePrecision(
                *precision_of,
                value=float(labelled.mean()) if len(labelled) else None,
                low=low_high[0],
                high=low_high[1],
                n_queries=len(labelled),
            )
        figures.append(
            SliceFigures(
                slice=name,
                n_queries=len(members),
                n_family=family,
                share=share,
                share_low=share_low,
                share_high=share_high,
                n_out_of_scope=int(outside.sum()) if len(outside) else None,
                out_of_scope_share=oos[0],
                out_of_scope_low=oos[1],
                out_of_scope_high=oos[2],
                low_confidence_share=float(np.mean([q.low_confidence for q in members])),
                churn=float(np.mean(churns)) if churns else None,
                precision=precision,
                details=dict((details or {}).get(name, {})),
            )
        )
    return sorted(figures, key=lambda f: (f.slice != ALL, -f.n_queries, f.slice))


def slice_family(name: str) -> str:
    """What a slice's share is of: the queries in any slice of its family. ``topic`` (the
    queries assigned a topic: those embedded), ``tenant`` (those with a tenant), ``tag:KEY``
    (those with that tag), ``all``."""
    kind, _, rest = name.partition(":")
    if kind == "tag":
        return f"tag:{rest.partition('=')[0]}"
    return kind


@dataclass(frozen=True, slots=True)
class SliceChange(JsonReady):
    """One slice of a window against the baseline window: its share of each (two-proportion
    test, q-value over the window's slices) and, when both windows have its precision from the
    same source, measure and labeller, the drop's one-sided test and q-value. ``grew`` /
    ``dropped``: significant at the false discovery rate."""

    slice: str
    baseline_share: float
    share: float
    share_p: float
    share_q: float
    grew: bool
    shrank: bool
    baseline_precision: float | None = None
    precision: float | None = None
    drop_p: float | None = None
    drop_q: float | None = None
    dropped: bool = False


def _two_proportion_p(a: int, n_a: int, b: int, n_b: int) -> float:
    pooled = (a + b) / (n_a + n_b)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    z = 0.0 if spread == 0 else (b / n_b - a / n_a) / spread
    return float(2 * stats.norm.sf(abs(z)))


def _drop_p(before: SlicePrecision, after: SlicePrecision) -> float | None:
    values = (before.value, after.value, before.low, before.high, after.low, after.high)
    if any(v is None for v in values) or min(before.n_queries, after.n_queries) < 2:
        return None
    assert before.value is not None  # for mypy: checked above
    assert after.value is not None
    error = math.hypot(
        (float(before.high or 0) - float(before.low or 0)) / (2 * _Z95),
        (float(after.high or 0) - float(after.low or 0)) / (2 * _Z95),
    )
    delta = after.value - before.value
    if error == 0:
        return 0.0 if delta < 0 else 1.0
    return float(NormalDist().cdf(delta / error))


def _comparable(before: SlicePrecision | None, after: SlicePrecision | None) -> bool:
    return (
        before is not None
        and after is not None
        and (before.source, before.labeller, before.measure)
        == (after.source, after.labeller, after.measure)
    )


def _bh(p_values: Sequence[float]) -> list[float]:
    return (
        [float(q) for q in stats.false_discovery_control(p_values, method="bh")] if p_values else []
    )


def slice_changes(
    baseline: Iterable[SliceFigures],
    current: Iterable[SliceFigures],
    *,
    false_discovery_rate: float = DEFAULT_FALSE_DISCOVERY_RATE,
    min_drop: float = 0.0,
) -> list[SliceChange]:
    """Each slice of ``current`` or ``baseline`` (``all`` left out) tested as the module
    docstring says; a slice missing from one window has share 0 there. A drop counts when
    significant and at least ``min_drop``. Most significant first."""
    if not 0 < false_discovery_rate < 1:
        raise ConfigError(f"false_discovery_rate must be in (0, 1), got {false_discovery_rate}")
    before = {f.slice: f for f in baseline}
    after = {f.slice: f for f in current}
    if ALL not in before or ALL not in after:
        return []
    # A slice is tested only where both windows were sliced by its family (a window sliced
    # by topic alone says nothing of its tenants), each share of its family's queries.
    family_before = {slice_family(f.slice): f.n_family for f in before.values()}
    family_after = {slice_family(f.slice): f.n_family for f in after.values()}
    names = sorted(
        name
        for name in (set(before) | set(after)) - {ALL}
        if family_before.get(slice_family(name)) and family_after.get(slice_family(name))
    )
    counts = [
        (
            before[n].n_queries if n in before else 0,
            family_before[slice_family(n)],
            after[n].n_queries if n in after else 0,
            family_after[slice_family(n)],
        )
        for n in names
    ]
    share_p = [_two_proportion_p(*four) for four in counts]
    share_q = _bh(share_p)
    tested = {
        n: p
        for n in names
        if n in before
        and n in after
        and _comparable(before[n].precision, after[n].precision)
        and (p := _drop_p(before[n].precision, after[n].precision)) is not None  # type: ignore[arg-type]
    }
    drop_q = dict(zip(tested, _bh(list(tested.values())), strict=True))
    changes = []
    for name, (a, n_a, b, n_b), p, q in zip(names, counts, share_p, share_q, strict=True):
        old_share, new_share = a / n_a, b / n_b
        significant = q <= false_discovery_rate
        old_precision = before[name].precision if name in before else None
        new_precision = after[name].precision if name in after else None
        change = SliceChange(
            slice=name,
            baseline_share=old_share,
            share=new_share,
            share_p=p,
            share_q=q,
            grew=significant and new_share > old_share,
            shrank=significant and new_share < old_share,
            baseline_precision=None if old_precision is None else old_precision.value,
            precision=None if new_precision is None else new_precision.value,
        )
        if name in tested:
            drop = (change.baseline_precision or 0.0) - (change.precision or 0.0)
            change = replace(
                change,
                drop_p=tested[name],
                drop_q=drop_q[name],
                dropped=drop_q[name] <= false_discovery_rate and drop >= max(min_drop, 1e-12),
            )
        changes.append(change)
    return sorted(
        changes, key=lambda c: (min(c.share_q, 1.0 if c.drop_q is None else c.drop_q), c.slice)
    )


def content_gaps(
    figures: Iterable[SliceFigures], changes: Iterable[SliceChange]
) -> list[SliceFigures]:
    """The topic slices of a window (``topic:outside`` included) at least
    ``CONTENT_GAP_SHARE`` out of scope whose share grew significantly against the baseline:
    subjects the corpus does not cover, asked more and more."""
    grew = {change.slice for change in changes if change.grew}
    return [
        figure
        for figure in figures
        if figure.kind == "topic"
        and figure.slice in grew
        and (figure.out_of_scope_share or 0.0) >= CONTENT_GAP_SHARE
    ]
