"""Comparing two runs' latency distributions: how much a quantile rose, with an interval.

The bootstrap is paired by query (a query slow in both runs moves both quantiles together)
and costs ``resamples x window``, not ``resamples x queries``. The decision rule and the
computation: docs/gate.md, "Latency" and "How it is computed".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from evalkit.config.types import parse_quantile, quantile_name
from evalkit.errors import ConfigError, InputError
from evalkit.stats._resampling import FloatVector
from evalkit.stats.decision import Decision

__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_MAX_INCREASE",
    "DEFAULT_QUANTILE",
    "DEFAULT_RESAMPLES",
    "MIN_TAIL",
    "LatencyComparison",
    "bootstrap_quantiles",
    "compare_latency",
    "latency_decision",
    "percent",
    "quantile_level",
]

IntVector = npt.NDArray[np.int64]

DEFAULT_QUANTILE: Final = "p50"
"""The quantile compared unless told otherwise: the median, which a stall of the machine
hitting every query in flight at once moves least (see ``docs/gate.md``, "Latency")."""
DEFAULT_MAX_INCREASE: Final = 0.2
"""The largest relative increase of the quantile that passes (+20 %)."""
DEFAULT_CONFIDENCE: Final = 0.95
"""Two-sided confidence of the interval: each decision errs at most 2.5 % of the time
when the true increase sits exactly at ``max_increase``."""
DEFAULT_RESAMPLES: Final = 10_000
"""Bootstrap replicates, as the gate's quality comparison draws."""
MIN_TAIL: Final = 5
"""Fewer queries than this above the quantile in a run, and its interval is unreliable
(the bootstrap of an extreme order statistic is too narrow): the comparison says so."""

_WINDOW_SD: Final = 6.0
_WINDOW_MARGIN: Final = 2
_CHUNK_ELEMENTS: Final = 1 << 21
_ABSENT: Final = 3


def quantile_level(name: str) -> float:
    """``"p95"`` -> 0.95 (``parse_quantile``); ConfigError naming the quantiles otherwise."""
    try:
        return parse_quantile(name)
    except ValueError as error:
        raise ConfigError(str(error)) from error


def latency_decision(*, ci_low: float, ci_high: float, max_increase: float) -> Decision:
    """``regression`` when the interval of the relative increase lies above
    ``max_increase``, ``pass`` when it lies at or below it, else ``inconclusive``."""
    if ci_low > max_increase:
        return Decision.REGRESSION
    if ci_high <= max_increase:
        return Decision.PASS
    return Decision.INCONCLUSIVE


@dataclass(frozen=True, slots=True)
class LatencyComparison:
    """How one latency quantile moved from a baseline run to a candidate run.

    ``increase`` is ``candidate_ms / baseline_ms - 1`` (0.3 for +30 %); ``ci_low`` and
    ``ci_high`` bound it at ``confidence``; ``decision`` compares them with
    ``max_increase``. ``n_paired`` queries were resampled jointly, ``n_baseline_only`` and
    ``n_candidate_only`` apart. ``note`` says why the interval is less trustworthy than
    its confidence claims (too few queries above the quantile), when it is.
    """

    quantile: str
    baseline_ms: float
    candidate_ms: float
    increase: float
    ci_low: float
    ci_high: float
    confidence: float
    max_increase: float
    decision: Decision
    n_paired: int
    n_baseline_only: int
    n_candidate_only: int
    resamples: int
    seed: int
    note: str | None = None

    @property
    def n_baseline(self) -> int:
        """Latencies of the baseline compared."""
        return self.n_paired + self.n_baseline_only

    @property
    def n_candidate(self) -> int:
        """Latencies of the candidate compared."""
        return self.n_paired + self.n_candidate_only

    def summary(self) -> str:
        """One line: ``p95 latency 12.1 ms -> 15.9 ms (+31.4 %, 95 % CI [+27.0 %, +35.2 %];
        allowed +20 %): regression``."""
        return (
            f"{self.quantile} latency {self.baseline_ms:.3g} ms -> {self.candidate_ms:.3g} ms "
            f"({percent(self.increase)}, {round(self.confidence * 100)} % CI "
            f"[{percent(self.ci_low)}, {percent(self.ci_high)}]; allowed "
            f"{percent(self.max_increase)}): {self.decision.value}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (an infinite bound, from a baseline quantile of 0 ms, is null)."""
        return {
            **asdict(self),
            "increase": _finite(self.increase),
            "ci_low": _finite(self.ci_low),
            "ci_high": _finite(self.ci_high),
            "decision": self.decision.value,
            "method": "bootstrap of the quantile ratio, paired by query",
        }


def percent(value: float) -> str:
    """A relative change as a signed percentage: ``+31.4 %`` (``+inf`` when unbounded)."""
    return f"{value * 100:+.1f} %" if math.isfinite(value) else f"{value:+}"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _latencies(values: pd.Series, role: str, *, paired: bool) -> pd.Series:
    series = pd.to_numeric(pd.Series(values), errors="coerce").astype(np.float64).dropna()
    if series.empty:
        raise InputError(f"the {role} has no latency to compare")
    if bool((series < 0).any()) or not bool(np.isfinite(series.to_numpy()).all()):
        raise InputError(f"the {role} has negative or infinite latencies")
    if series.nunique() < 2:
        raise InputError(
            f"the {role}'s latencies are not measurable: its {len(series):,} latencies take "
            f"{series.nunique()} distinct value, so an interval of their quantile would be one "
            "point (latencies that are a batch's share of its time look like this)"
        )
    if paired and series.index.has_duplicates:
        repeated = ", ".join(map(str, series.index[series.index.duplicated()][:3]))
        raise InputError(
            f"the {role} repeats query ids ({repeated}): pairing needs one latency per "
            "query; compare unpaired (paired=False)"
        )
    return series


def compare_latency(
    baseline: pd.Series,
    candidate: pd.Series,
    *,
    quantile: str = DEFAULT_QUANTILE,
    max_increase: float = DEFAULT_MAX_INCREASE,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    paired: bool = True,
) -> LatencyComparison:
    """Compare the ``quantile`` of two runs' latencies (milliseconds, indexed by query id).

    Queries both runs have are paired (resampled jointly) unless ``paired`` is False
    (production windows, whose requests are not the same queries), the others resampled
    apart; missing values are left out. ``resamples`` replicates drawn with ``seed``.
    Raises InputError when a run has no latency, a negative one, fewer than two distinct
    ones (not measurable: a degenerate interval is no evidence) or (paired) a query id
    twice; ConfigError on a bad quantile, confidence or resample count.
    """
    level = quantile_level(quantile)
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    if resamples < 100:
        raise ConfigError(f"resamples must be at least 100, got {resamples}")
    if not (max_increase >= 0.0 and math.isfinite(max_increase)):
        raise ConfigError(f"max_increase must be a finite share >= 0, got {max_increase!r}")
    base = _latencies(baseline, "baseline", paired=paired)
    cand = _latencies(candidate, "candidate", paired=paired)
    shared = base.index.intersection(cand.index, sort=False) if paired else base.index[:0]
    base_values = np.concatenate(
        [base.loc[shared].to_numpy(), base[~base.index.isin(shared)].to_numpy()]
    )
    cand_values = np.concatenate(
        [cand.loc[shared].to_numpy(), cand[~cand.index.isin(shared)].to_numpy()]
    )
    n_paired = len(shared)
    boot_base, boot_cand = bootstrap_quantiles(
        base_values,
        cand_values,
        n_paired=n_paired,
        level=level,
        resamples=resamples,
        rng=np.random.default_rng(seed),
    )
    ratios = np.sort(_relative(boot_cand, boot_base))
    tail = (1.0 - confidence) / 2.0
    last = resamples - 1
    ci_low = float(ratios[math.floor(tail * last)])
    ci_high = float(ratios[math.ceil((1.0 - tail) * last)])
    observed_base = float(np.quantile(base_values, level))
    observed_cand = float(np.quantile(cand_values, level))
    above = min(len(base_values), len(cand_values)) * (1.0 - level)
    note = None
    if above < MIN_TAIL:
        note = (
            f"about {above:.0f} queries lie above the {quantile_name(level)} of the smaller "
            f"run (fewer than {MIN_TAIL}): the interval of so extreme a quantile is too narrow; "
            f"compare a lower quantile or use at least "
            f"{math.ceil(MIN_TAIL / (1.0 - level)):,} queries"
        )
    return LatencyComparison(
        quantile=quantile_name(level),
        baseline_ms=observed_base,
        candidate_ms=observed_cand,
        increase=float(_relative(np.array([observed_cand]), np.array([observed_base]))[0]),
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=confidence,
        max_increase=max_increase,
        decision=latency_decision(ci_low=ci_low, ci_high=ci_high, max_increase=max_increase),
        n_paired=n_paired,
        n_baseline_only=len(base_values) - n_paired,
        n_candidate_only=len(cand_values) - n_paired,
        resamples=resamples,
        seed=seed,
        note=note,
    )


def _relative(candidate: FloatVector, baseline: FloatVector) -> FloatVector:
    """``candidate / baseline - 1``; 0 when both are 0, +inf when only the baseline is."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(baseline > 0, candidate / baseline, np.where(candidate > 0, np.inf, 1.0))
    return np.asarray(ratio - 1.0, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class _Side:
    """One run's latencies sorted, each query's rank, and the window around its quantile."""

    sorted_values: FloatVector
    ranks: IntVector
    low: int
    high: int
    fraction: float
    start: int
    stop: int

    @classmethod
    def of(cls, values: FloatVector, level: float, *, whole: bool) -> _Side:
        n = len(values)
        order = np.argsort(values, kind="stable")
        ranks = np.empty(n, dtype=np.int64)
        ranks[order] = np.arange(n, dtype=np.int64)
        position = (n - 1) * level
        low = math.floor(position)
        high = min(low + 1, n - 1)
        half = math.ceil(_WINDOW_SD * math.sqrt(n * level * (1.0 - level))) + _WINDOW_MARGIN
        start, stop = (0, n) if whole else (max(0, low - half), min(n, high + half + 1))
        return cls(values[order], ranks, low, high, position - low, start, stop)

    @property
    def width(self) -> int:
        return self.stop - self.start

    def classes(self, positions: IntVector) -> IntVector:
        """0 below the window, 1 in it, 2 above it, ``_ABSENT`` for position -1."""
        ranks = self.ranks[np.maximum(positions, 0)]
        found = np.where(ranks < self.start, 0, np.where(ranks < self.stop, 1, 2))
        return np.asarray(np.where(positions < 0, _ABSENT, found), dtype=np.int64)

    def quantiles(self, below: IntVector, window: IntVector) -> tuple[FloatVector, bool]:
        """Each replicate's quantile from its draws below and in the window; and whether
        every replicate's order statistics fell inside the window."""
        cumulative = np.cumsum(window, axis=1)
        cumulative += below[:, np.newaxis]
        inside = bool((below <= self.low).all() and (cumulative[:, -1] > self.high).all())
        at_low = (cumulative <= self.low).sum(axis=1)
        at_high = (cumulative <= self.high).sum(axis=1)
        values = self.sorted_values[self.start : self.stop]
        lower = values[np.minimum(at_low, self.width - 1)]
        upper = values[np.minimum(at_high, self.width - 1)]
        return np.asarray(lower + self.fraction * (upper - lower), dtype=np.float64), inside


@dataclass(frozen=True, slots=True)
class _Group:
    """Queries resampled together: their cells and each cell's members (positions in the
    baseline and the candidate, -1 where the run lacks the query)."""

    size: int
    cells: IntVector
    shares: FloatVector
    members: tuple[tuple[IntVector, IntVector], ...]

    @classmethod
    def of(
        cls, base_positions: IntVector, cand_positions: IntVector, sides: Sequence[_Side]
    ) -> _Group:
        base_side, cand_side = sides
        cell = base_side.classes(base_positions) * 4 + cand_side.classes(cand_positions)
        cells, inverse, sizes = np.unique(cell, return_inverse=True, return_counts=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        members = tuple(
            (base_positions[order[a:b]], cand_positions[order[a:b]]) for a, b in pairwise(bounds)
        )
        size = len(base_positions)
        return cls(size, cells, sizes / max(size, 1), members)


def _draw(
    groups: Sequence[_Group], sides: Sequence[_Side], rows: int, rng: np.random.Generator
) -> tuple[list[FloatVector], bool]:
    """``rows`` replicates of both quantiles, and whether each fell inside its window."""
    below = [np.zeros(rows, dtype=np.int64) for _ in sides]
    keys: list[list[IntVector]] = [[] for _ in sides]
    replicate = np.arange(rows, dtype=np.int64)
    for group in groups:
        if not group.size:
            continue
        counts = rng.multinomial(group.size, group.shares, size=rows)
        for column, (cell, members) in enumerate(zip(group.cells, group.members, strict=True)):
            drawn = counts[:, column]
            classes = divmod(int(cell), 4)
            for side_index, cls in enumerate(classes):
                if cls == 0:
                    below[side_index] += drawn
            if 1 not in classes:
                continue
            total = int(drawn.sum())
            if not total:
                continue
            owner = np.repeat(replicate, drawn)
            picked = rng.integers(0, len(members[0]), size=total)
            for side_index, (side, cls) in enumerate(zip(sides, classes, strict=True)):
                if cls == 1:
                    rank = side.ranks[members[side_index][picked]] - side.start
                    keys[side_index].append(owner * side.width + rank)
    quantiles = []
    inside = True
    for side, side_below, side_keys in zip(sides, below, keys, strict=True):
        flat = np.concatenate(side_keys) if side_keys else np.zeros(0, dtype=np.int64)
        window = np.bincount(flat, minlength=rows * side.width).reshape(rows, side.width)
        values, fits = side.quantiles(side_below, window)
        quantiles.append(values)
        inside = inside and fits
    return quantiles, inside


def bootstrap_quantiles(
    baseline: FloatVector,
    candidate: FloatVector,
    *,
    n_paired: int,
    level: float,
    resamples: int,
    rng: np.random.Generator,
) -> tuple[FloatVector, FloatVector]:
    """``resamples`` bootstrap replicates of the ``level`` quantile of each run.

    The first ``n_paired`` latencies of ``baseline`` and ``candidate`` are the same queries
    in the same order, drawn jointly; the rest of each run is drawn apart (see the module
    docstring for how the draws stay within a window around each quantile).
    """
    base = np.asarray(baseline, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if not len(base) or not len(cand):
        raise InputError("a bootstrap of latency quantiles needs latencies in both runs")
    if not 0 <= n_paired <= min(len(base), len(cand)):
        raise InputError(f"n_paired {n_paired} exceeds a run's {min(len(base), len(cand))}")

    def plan(whole: bool) -> tuple[list[_Side], list[_Group]]:
        sides = [_Side.of(base, level, whole=whole), _Side.of(cand, level, whole=whole)]
        paired = np.arange(n_paired, dtype=np.int64)
        only_base = np.arange(n_paired, len(base), dtype=np.int64)
        only_cand = np.arange(n_paired, len(cand), dtype=np.int64)
        groups = [
            _Group.of(paired, paired, sides),
            _Group.of(only_base, np.full(len(only_base), -1, dtype=np.int64), sides),
            _Group.of(np.full(len(only_cand), -1, dtype=np.int64), only_cand, sides),
        ]
        return sides, groups

    out = [np.empty(resamples, dtype=np.float64) for _ in range(2)]
    windowed = plan(whole=False)
    whole: tuple[list[_Side], list[_Group]] | None = None
    for first, block in _blocks(0, resamples, windowed[0]):
        drawn, inside = _draw(windowed[1], windowed[0], block, rng)
        if inside:
            _store(out, first, drawn)
            continue
        whole = whole or plan(whole=True)
        for again, rows in _blocks(first, block, whole[0]):
            _store(out, again, _draw(whole[1], whole[0], rows, rng)[0])
    return out[0], out[1]


def _blocks(first: int, count: int, sides: Sequence[_Side]) -> list[tuple[int, int]]:
    """``(start, rows)`` blocks of replicates ``[first, first + count)`` sized so that a
    block's window counts stay near ``_CHUNK_ELEMENTS``."""
    rows = max(1, _CHUNK_ELEMENTS // max(side.width for side in sides))
    return [
        (start, min(rows, first + count - start)) for start in range(first, first + count, rows)
    ]


def _store(out: list[FloatVector], first: int, drawn: list[FloatVector]) -> None:
    for target, values in zip(out, drawn, strict=True):
        target[first : first + len(values)] = values
