"""Many runs ranked at once: means with intervals, corrected pairwise tests and letter groups.

One sign matrix serves every pair of every measure and one bootstrap resample matrix gives
both the runs' and the pairs' intervals. The result does not depend on the order the runs are
given in. Methods: docs/gate.md, "Comparing many runs".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy

from evalkit.errors import ConfigError, InputError
from evalkit.jsonsafe import finite_or_null
from evalkit.records.requests import LEADERBOARD_DEFAULTS, measure_names
from evalkit.stats._resampling import (
    FloatMatrix,
    FloatVector,
    bootstrap_means,
    check_resampling,
    chunk_rows,
    percentile_interval,
    run_streams,
    stream_sizes,
    tie_tolerance,
)
from evalkit.stats.paired import distinct_measures, holm_adjust, shown_ids

__all__ = [
    "CORRECTIONS",
    "TESTS",
    "LatencySummary",
    "Leaderboard",
    "LeaderboardOptions",
    "MeasureLeaderboard",
    "PairComparison",
    "RunStanding",
    "compact_letters",
    "leaderboard",
]

TESTS: Final[Mapping[str, str]] = {
    "randomization": "paired randomisation (sign-flip) test",
    "t": "paired t-test",
}
"""Pairwise tests by the name ``LeaderboardOptions(test=...)`` accepts, with a label."""

CORRECTIONS: Final[Mapping[str, str]] = {
    "holm": "Holm",
    "bonferroni": "Bonferroni",
    "tukey": "Tukey's HSD",
    "none": "no correction",
}
"""Multiple-comparison corrections by the name ``LeaderboardOptions(correction=...)``
accepts, with a label."""

IntVector = npt.NDArray[np.intp]

# Sign matrices and Tukey's sparse picks are built this many elements at a time.
_CHUNK_ELEMENTS: Final = 1 << 22
# Tukey's table of permuted rows is built for a block of queries at a time, at most this many
# float32 values (512 KB): the rows each resample picks at random then stay in cache.
_TABLE_ELEMENTS: Final = 1 << 17
_LETTERS: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_SHOWN_IDS: Final = 5


class _Figures:
    """Base of the frozen records below, whose fields are all plain values."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values."""
        return asdict(cast(Any, self))


@dataclass(frozen=True, slots=True)
class LeaderboardOptions(_Figures):
    """Statistical settings of a leaderboard: ``test`` a key of ``TESTS``, ``correction``
    of ``CORRECTIONS``; a pair differs at corrected p <= ``alpha``; ``resamples`` bootstrap
    resamples and as many sign vectors or permutations are drawn from ``seed``."""

    alpha: float = LEADERBOARD_DEFAULTS.alpha
    resamples: int = LEADERBOARD_DEFAULTS.resamples
    seed: int = LEADERBOARD_DEFAULTS.seed
    test: str = LEADERBOARD_DEFAULTS.test
    correction: str = LEADERBOARD_DEFAULTS.correction
    confidence: float = 0.95

    def __post_init__(self) -> None:
        check_resampling(
            alpha=self.alpha, confidence=self.confidence, resamples=self.resamples, seed=self.seed
        )
        if self.test not in TESTS:
            raise ConfigError(f"unknown test {self.test!r}; choose one of {', '.join(TESTS)}")
        if self.correction not in CORRECTIONS:
            raise ConfigError(
                f"unknown correction {self.correction!r}; choose one of {', '.join(CORRECTIONS)}"
            )


DEFAULT_OPTIONS: Final = LeaderboardOptions()


@dataclass(frozen=True, slots=True)
class LatencySummary(_Figures):
    """A run's replay latency per query: median and 95th percentile, in milliseconds."""

    p50_ms: float
    p95_ms: float


@dataclass(frozen=True, slots=True)
class RunStanding(_Figures):
    """One run on one measure: its mean over the shared queries with a bootstrap interval,
    its rank (1 is the highest mean; equal means share a rank) and its letters (runs that
    share a letter are not significantly different; the best run has ``a``)."""

    run: str
    mean: float
    ci_low: float
    ci_high: float
    rank: int
    letters: str


@dataclass(frozen=True, slots=True)
class PairComparison(_Figures):
    """Two runs compared on one measure over the shared queries.

    ``delta`` is ``mean(first) - mean(second)``; ``effect_size`` Cohen's d_z (0 when the
    runs agree on every query); ``p_adjusted`` the corrected p-value, ``significant`` when
    at most ``alpha``; ``wins``/``ties``/``losses`` count queries where ``first`` is higher,
    equal, lower.
    """

    first: str
    second: str
    delta: float
    ci_low: float
    ci_high: float
    effect_size: float
    p_value: float
    p_adjusted: float
    significant: bool
    wins: int
    ties: int
    losses: int

    def reversed(self) -> PairComparison:
        """The same comparison seen from ``second``."""
        return replace(
            self,
            first=self.second,
            second=self.first,
            delta=-self.delta,
            ci_low=-self.ci_high,
            ci_high=-self.ci_low,
            effect_size=-self.effect_size,
            wins=self.losses,
            losses=self.wins,
        )


@dataclass(frozen=True, slots=True)
class MeasureLeaderboard:
    """All runs on one measure: a standing per run (in the order the runs were given) and
    a comparison per pair (``first`` given before ``second``)."""

    measure: str
    standings: tuple[RunStanding, ...]
    pairs: tuple[PairComparison, ...]

    def standing(self, run: str) -> RunStanding:
        """The standing of ``run``; InputError naming the runs when it is not one of them."""
        for standing in self.standings:
            if standing.run == run:
                return standing
        raise InputError(
            f"run {run!r} is not on the leaderboard; it ranks "
            f"{', '.join(s.run for s in self.standings)}"
        )

    def pair(self, first: str, second: str) -> PairComparison:
        """The comparison of ``first`` with ``second`` (``delta = first - second``)."""
        for pair in self.pairs:
            if (pair.first, pair.second) == (first, second):
                return pair
            if (pair.first, pair.second) == (second, first):
                return pair.reversed()
        self.standing(first)
        self.standing(second)
        raise InputError(f"a run is not compared with itself: {first!r}")

    def ranked(self) -> tuple[RunStanding, ...]:
        """The standings from the highest mean down (equal means in the order given)."""
        return tuple(sorted(self.standings, key=lambda standing: standing.rank))

    def better_than(self, run: str) -> tuple[str, ...]:
        """The runs that ``run`` is significantly better than, in the order given."""
        return tuple(
            other.run
            for other in self.standings
            if other.run != run
            and (pair := self.pair(run, other.run)).significant
            and pair.delta > 0.0
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values: the standings and the pairs."""
        return {
            "standings": [standing.to_dict() for standing in self.standings],
            "pairs": [pair.to_dict() for pair in self.pairs],
        }


@dataclass(frozen=True, slots=True)
class Leaderboard:
    """Result of ``leaderboard``: runs (in the order given) ranked per measure.

    ``n_queries`` are shared by every run; ``n_dropped`` were left out (``dropped_by_run``
    per run); ``latency`` is None for a run given none.
    """

    runs: tuple[str, ...]
    boards: tuple[MeasureLeaderboard, ...]
    n_queries: int
    n_dropped: int
    dropped_by_run: tuple[int, ...]
    latency: tuple[LatencySummary | None, ...]
    options: LeaderboardOptions

    @property
    def measures(self) -> tuple[str, ...]:
        """The measures ranked, in order."""
        return tuple(board.measure for board in self.boards)

    @property
    def test_label(self) -> str:
        """The pairwise test in words."""
        return TESTS[self.options.test]

    @property
    def correction_label(self) -> str:
        """The multiple-comparison correction in words."""
        return CORRECTIONS[self.options.correction]

    def board(self, measure: str) -> MeasureLeaderboard:
        """The leaderboard of one measure; InputError naming the measures ranked."""
        for board in self.boards:
            if board.measure == measure:
                return board
        raise InputError(
            f"measure {measure!r} was not ranked; ranked: {', '.join(self.measures)}",
            field="measures",
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary; p-values are floats and no value is NaN or infinite (None)."""
        data = {
            "runs": list(self.runs),
            "measures": list(self.measures),
            "n_queries": self.n_queries,
            "n_dropped": self.n_dropped,
            "dropped_by_run": dict(zip(self.runs, self.dropped_by_run, strict=True)),
            "test": self.options.test,
            "correction": self.options.correction,
            "options": self.options.to_dict(),
            "latency": {
                run: None if summary is None else summary.to_dict()
                for run, summary in zip(self.runs, self.latency, strict=True)
            },
            "metrics": {board.measure: board.to_dict() for board in self.boards},
        }
        return cast(dict[str, Any], finite_or_null(data))


def _frame(run: str, values: object) -> pd.DataFrame:
    if not isinstance(values, pd.DataFrame):
        raise InputError(
            f"run {run!r}: per-query values must be a pandas DataFrame indexed by query id "
            f"with one column per measure, got {type(values).__name__}"
        )
    frame = values.set_index("query_id") if "query_id" in values.columns else values
    if pd.api.types.infer_dtype(frame.index, skipna=False) != "string":
        frame = frame.set_axis(frame.index.map(str), axis=0)
    if not frame.index.is_unique:
        repeated = frame.index[frame.index.duplicated()].unique()
        raise InputError(
            f"run {run!r} has more than one row for query ids {shown_ids(list(repeated))}: "
            "give one row per query"
        )
    return frame


def _values(
    frames: Sequence[pd.DataFrame],
    runs: Sequence[str],
    shared: pd.Index,
    measures: tuple[str, ...],
) -> FloatMatrix:
    """Values of the shared queries, shape ``(n, measures * runs)``, measure-major."""
    n, k = len(shared), len(frames)
    values = np.empty((n, len(measures) * k), dtype=np.float64)
    for r, (run, frame) in enumerate(zip(runs, frames, strict=True)):
        absent = [m for m in measures if m not in frame.columns]
        if absent:
            raise InputError(
                f"run {run!r} has no column for measures {absent}; it has "
                f"{[str(c) for c in frame.columns]}",
                field="measures",
            )
        try:
            rows = frame.index.get_indexer(shared)
            block = frame[list(measures)].to_numpy(dtype=np.float64)[rows]
        except (TypeError, ValueError) as error:
            raise InputError(f"run {run!r} has non-numeric per-query values: {error}") from error
        for mi, measure in enumerate(measures):
            column = block[:, mi]
            bad = np.flatnonzero(~np.isfinite(column))
            if bad.size:
                raise InputError(
                    f"run {run!r} has no finite {measure} for queries "
                    f"{shown_ids([str(shared[int(i)]) for i in bad])}: score every query (a "
                    "query the retriever failed on scores 0)",
                    field=measure,
                )
            values[:, mi * k + r] = column
    return values


def _flip_hits(
    weights: npt.NDArray[np.float32],
    totals: FloatVector,
    first: IntVector,
    second: IntVector,
    thresholds: FloatVector,
    *,
    resamples: int,
    rng: np.random.Generator,
) -> npt.NDArray[np.int64]:
    """Per pair, how many random sign vectors give ``|sum(s * (x_first - x_second))|`` at
    least its threshold; the flipped sum is linear, so each sign vector is applied once per
    run (one matrix product) and pairs are differences. Bits as ``sign_flip_hits`` draws them.
    """
    n_queries = weights.shape[0]
    hits = np.zeros(first.size, dtype=np.int64)
    rows = chunk_rows(n_queries, resamples)
    for start in range(0, resamples, rows):
        chunk = min(rows, resamples - start)
        packed = np.frombuffer(rng.bytes((chunk * n_queries + 7) // 8), dtype=np.uint8)
        keep = np.unpackbits(packed, count=chunk * n_queries).reshape(chunk, n_queries)
        flipped = 2.0 * (keep.astype(np.float32) @ weights).astype(np.float64) - totals
        contrasts = flipped[:, first] - flipped[:, second]
        hits += (np.abs(contrasts) >= thresholds).sum(axis=0)
    return hits


def _dihedral(k: int) -> IntVector:
    """The dihedral group on ``k`` positions: row ``g`` maps position ``s`` to ``g[s]``."""
    positions = np.arange(k)
    shifts = np.arange(k)[:, np.newaxis]
    return np.concatenate([(shifts + positions) % k, (shifts - positions) % k]).astype(np.intp)


def _tukey_sums(
    centred: FloatMatrix,
    relabel: IntVector,
    n_runs: int,
    *,
    resamples: int,
    rng: np.random.Generator,
) -> FloatMatrix:
    """Per-run sums after permuting the runs within each query, shape ``(resamples, K)``.

    Query ``q`` permutes within ``relabel[q] ∘ G ∘ relabel[q]^-1`` (``G`` the dihedral group:
    a subgroup, so the test stays exact; the fixed random relabelling spreads every pair
    over every pair of positions). Each query's ``2k`` rows are tabulated once.
    """
    n_queries, width = centred.shape
    group = _dihedral(n_runs)
    order = group.shape[0]
    inverse = np.argsort(relabel, axis=1)
    measures = width // n_runs
    sums = np.zeros((resamples, width), dtype=np.float64)
    block_queries = max(1, _TABLE_ELEMENTS // (order * width))
    for first in range(0, n_queries, block_queries):
        block = slice(first, min(first + block_queries, n_queries))
        size = block.stop - block.start
        moved = np.take(group, inverse[block], axis=1)
        source = np.take_along_axis(relabel[np.newaxis, block], moved, axis=2)
        values = centred[block].reshape(size, measures, n_runs)
        table = np.take_along_axis(
            values[:, np.newaxis, :, :],
            source.transpose(1, 0, 2)[:, :, np.newaxis, :],
            axis=3,
        )
        table32 = table.reshape(size * order, width).astype(np.float32)
        offsets = (np.arange(size, dtype=np.int64) * order)[np.newaxis, :]
        rows = chunk_rows(size, resamples)
        indptr = np.arange(0, rows * size + 1, size, dtype=np.int64)
        for start in range(0, resamples, rows):
            chunk = min(rows, resamples - start)
            picks = rng.integers(0, order, size=(chunk, size), dtype=np.int64) + offsets
            selection = scipy.sparse.csr_array(
                (np.ones(chunk * size, dtype=np.float32), picks.ravel(), indptr[: chunk + 1]),
                shape=(chunk, size * order),
            )
            sums[start : start + chunk] += selection @ table32
    return sums


def _tukey_randomised(
    sums: FloatMatrix, observed: FloatMatrix, tolerance: FloatMatrix, n_runs: int
) -> FloatMatrix:
    """Randomised Tukey HSD p-values, shape ``(measures, pairs)``: the share of resamples
    whose range of run sums reaches the pair's observed ``|difference|``, +1 corrected."""
    resamples = sums.shape[0]
    ranges = np.ptp(sums.reshape(resamples, -1, n_runs), axis=2)
    ranges.sort(axis=0)
    hits = np.empty(observed.shape, dtype=np.float64)
    for mi in range(observed.shape[0]):
        below = np.searchsorted(ranges[:, mi], np.abs(observed[mi]) - tolerance[mi], "left")
        hits[mi] = resamples - below
    return np.asarray((1.0 + hits) / (1.0 + resamples), dtype=np.float64)


def _tukey_parametric(values: FloatMatrix, first: IntVector, second: IntVector) -> FloatVector:
    """Tukey HSD p-values of one measure in the blocked (queries x runs) design: the
    studentized range of the mean difference over the two-way residual mean square, with
    ``(n - 1)(k - 1)`` degrees of freedom."""
    n_queries, n_runs = values.shape
    means = values.mean(axis=0)
    difference = np.abs(means[first] - means[second])
    freedom = (n_queries - 1) * (n_runs - 1)
    if freedom == 0:
        return np.ones_like(difference)
    residual = values - values.mean(axis=1, keepdims=True) - means + values.mean()
    mean_square = float((residual**2).sum()) / freedom
    if mean_square == 0.0:
        return np.where(difference > 0.0, 0.0, 1.0)
    statistic = difference / math.sqrt(mean_square / n_queries)
    p_values = scipy.stats.studentized_range.sf(statistic, n_runs, freedom)
    return np.asarray(np.clip(p_values, 0.0, 1.0), dtype=np.float64)


def _t_pvalues(differences: FloatMatrix) -> FloatVector:
    """Two-sided paired t-test p-values per column, as ``scipy.stats.ttest_rel`` gives them;
    1 where the test has nothing to go on (fewer than 2 queries, or no difference at all)."""
    n = differences.shape[0]
    if n < 2:
        return np.ones(differences.shape[1], dtype=np.float64)
    mean = differences.mean(axis=0)
    sd = differences.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = mean / (sd / math.sqrt(n))
    p_values = 2.0 * scipy.special.stdtr(n - 1.0, -np.abs(statistic))
    return np.asarray(np.where(np.isnan(p_values), 1.0, p_values), dtype=np.float64)


def _bonferroni(p_values: FloatVector) -> FloatVector:
    return np.minimum(p_values * p_values.size, 1.0)


_PAIRWISE_CORRECTIONS: Final[Mapping[str, Callable[[FloatVector], FloatVector]]] = {
    "holm": holm_adjust,
    "bonferroni": _bonferroni,
    "none": lambda p_values: p_values.copy(),
}


def compact_letters(means: npt.ArrayLike, significant: npt.ArrayLike) -> tuple[str, ...]:
    """Compact letter display (Piepho 2004, insert-and-absorb): each run's letters.

    ``significant[i, j]`` when runs ``i`` and ``j`` differ; runs sharing a letter do not.
    Letters follow each group's best run (higher mean first), so the best run has ``a``.
    """
    values = np.asarray(means, dtype=np.float64)
    k = values.size
    matrix = np.asarray(significant, dtype=bool)
    if matrix.shape != (k, k):
        raise ConfigError(f"significant must be a {k} x {k} matrix, got shape {matrix.shape}")
    order = np.lexsort((np.arange(k), -values))
    rank = np.empty(k, dtype=np.intp)
    rank[order] = np.arange(k)
    columns: list[set[int]] = [set(range(k))]
    for i, j in zip(*np.nonzero(np.triu(matrix | matrix.T, 1)), strict=True):
        split: list[set[int]] = []
        for column in columns:
            if i in column and j in column:
                split.extend((column - {int(j)}, column - {int(i)}))
            else:
                split.append(column)
        columns = _absorbed(split)
    columns.sort(key=lambda column: sorted(rank[list(column)]))
    for column in columns:
        for run in sorted(column, key=lambda r: rank[r]):
            others = [c for c in columns if c is not column and run in c]
            if others and all(any(mate in other for other in others) for mate in column - {run}):
                column.discard(run)
    columns = _absorbed([column for column in columns if column])
    columns.sort(key=lambda column: sorted(rank[list(column)]))
    names = [_letter(i) for i in range(len(columns))]
    return tuple(
        "".join(name for name, column in zip(names, columns, strict=True) if run in column)
        for run in range(k)
    )


def _absorbed(columns: list[set[int]]) -> list[set[int]]:
    """The columns that are not contained in another (one of equal columns kept)."""
    kept: list[set[int]] = []
    for column in sorted(columns, key=len, reverse=True):
        if not any(column <= other for other in kept):
            kept.append(column)
    return kept


def _letter(index: int) -> str:
    base = len(_LETTERS)
    return _LETTERS[index % base] + (str(index // base) if index >= base else "")


def _competition_ranks(means: FloatVector) -> IntVector:
    """1 for the highest mean; equal means share the better rank."""
    return np.asarray(scipy.stats.rankdata(-means, method="min").astype(np.intp), dtype=np.intp)


def leaderboard(
    per_query: Mapping[str, pd.DataFrame],
    measures: Sequence[str],
    *,
    options: LeaderboardOptions = DEFAULT_OPTIONS,
    latency: Mapping[str, LatencySummary] | None = None,
) -> Leaderboard:
    """Rank two or more runs on ``measures`` with corrected pairwise statistics.

    ``per_query`` maps each run id (in report order) to per-query values as
    ``ScoredRun.per_query``; runs are paired on the queries all share, the rest counted in
    ``n_dropped``. Methods: docs/gate.md, "Comparing many runs". Raises ConfigError for fewer
    than two runs, no shared query or latency of a run not ranked; InputError for bad values.
    """
    runs = tuple(per_query)
    if len(runs) < 2:
        raise ConfigError(f"a leaderboard ranks at least two runs, got {len(runs)}")
    bad = [run for run in runs if not isinstance(run, str)]
    if bad:
        raise ConfigError(f"runs are named by strings (run ids), got {bad[:_SHOWN_IDS]!r}")
    chosen = distinct_measures(measure_names(measures), purpose="rank")
    latency = dict(latency or {})
    unknown = sorted(set(latency) - set(runs))
    if unknown:
        raise ConfigError(f"latency given for runs not ranked: {', '.join(unknown)}")
    frames = [_frame(run, per_query[run]) for run in runs]
    shared = frames[0].index
    union = frames[0].index
    for frame in frames[1:]:
        shared = shared.intersection(frame.index)
        union = union.union(frame.index)
    if shared.empty:
        sizes = ", ".join(f"{run} {len(frame)}" for run, frame in zip(runs, frames, strict=True))
        raise ConfigError(
            f"the runs share no query id (queries per run: {sizes}): rank runs of the same "
            "golden set"
        )
    shared = shared.sort_values()

    # Computed in the order of the run names so that the figures do not depend on the order
    # given; reported in the order given.
    canonical = sorted(range(len(runs)), key=lambda r: runs[r])
    position = np.empty(len(runs), dtype=np.intp)
    position[canonical] = np.arange(len(runs))
    ordered = [runs[r] for r in canonical]
    values = _values([frames[r] for r in canonical], ordered, shared, chosen)
    stats = _statistics(values, len(runs), options)

    boards = []
    for mi, measure in enumerate(chosen):
        boards.append(_board(measure, mi, stats, runs, position))
    return Leaderboard(
        runs=runs,
        boards=tuple(boards),
        n_queries=len(shared),
        n_dropped=len(union) - len(shared),
        dropped_by_run=tuple(len(frame) - len(shared) for frame in frames),
        latency=tuple(latency.get(run) for run in runs),
        options=options,
    )


@dataclass(frozen=True, slots=True)
class _Statistics:
    """Figures in canonical order: runs ``(measures, k)``, pairs ``(measures, P)``."""

    n_runs: int
    first: IntVector
    second: IntVector
    means: FloatMatrix
    run_low: FloatMatrix
    run_high: FloatMatrix
    deltas: FloatMatrix
    delta_low: FloatMatrix
    delta_high: FloatMatrix
    effect: FloatMatrix
    p_values: FloatMatrix
    p_adjusted: FloatMatrix
    wins: npt.NDArray[np.int64]
    ties: npt.NDArray[np.int64]
    losses: npt.NDArray[np.int64]
    letters: tuple[tuple[str, ...], ...]
    alpha: float


@dataclass(frozen=True, slots=True)
class _PairFigures:
    """What the per-query differences of each pair give: their mean, standard deviation,
    sum and tie tolerance, wins/ties/losses, and the t-test p-values when asked for."""

    deltas: FloatVector
    sds: FloatVector
    observed: FloatVector
    tolerance: FloatVector
    wins: npt.NDArray[np.int64]
    ties: npt.NDArray[np.int64]
    losses: npt.NDArray[np.int64]
    t_p_values: FloatVector | None


def _pair_blocks(count: int, *, rows: int) -> Iterator[slice]:
    """Slices of ``count`` pairs small enough that ``rows`` x pairs stays within a chunk."""
    block = max(1, _CHUNK_ELEMENTS // max(rows, 1))
    return (slice(start, min(start + block, count)) for start in range(0, count, block))


def _pair_figures(
    values: FloatMatrix, first: IntVector, second: IntVector, *, t_test: bool
) -> _PairFigures:
    """Pair figures computed a block of pairs at a time, so that the differences of all
    pairs (queries x pairs) are never held at once."""
    n, count = values.shape[0], first.size
    deltas, sds, observed, tolerance = (np.empty(count) for _ in range(4))
    wins, ties, losses = (np.empty(count, dtype=np.int64) for _ in range(3))
    t_p_values = np.empty(count) if t_test else None
    for part in _pair_blocks(count, rows=n):
        differences = values[:, first[part]] - values[:, second[part]]
        deltas[part] = differences.mean(axis=0)
        sds[part] = differences.std(axis=0, ddof=1) if n > 1 else 0.0
        observed[part] = differences.sum(axis=0)
        tolerance[part] = tie_tolerance(differences)
        wins[part] = (differences > 0.0).sum(axis=0)
        ties[part] = (differences == 0.0).sum(axis=0)
        losses[part] = (differences < 0.0).sum(axis=0)
        if t_p_values is not None:
            t_p_values[part] = _t_pvalues(differences)
    return _PairFigures(deltas, sds, observed, tolerance, wins, ties, losses, t_p_values)


def _delta_intervals(
    boot: FloatMatrix,
    values: FloatMatrix,
    first: IntVector,
    second: IntVector,
    *,
    confidence: float,
) -> tuple[FloatVector, FloatVector]:
    """Percentile intervals of each pair's mean difference from the runs' bootstrap means
    (the same resamples), a block of pairs at a time."""
    low, high = np.empty(first.size), np.empty(first.size)
    for part in _pair_blocks(first.size, rows=boot.shape[0]):
        boot_deltas = boot[:, first[part]] - boot[:, second[part]]
        low[part], high[part] = percentile_interval(boot_deltas, values, confidence=confidence)
    return low, high


def _statistics(values: FloatMatrix, k: int, options: LeaderboardOptions) -> _Statistics:
    n, width = values.shape
    measures = width // k
    first_run, second_run = np.triu_indices(k, 1)
    pairs = first_run.size
    column = np.arange(measures)[:, np.newaxis] * k
    first = (column + first_run).ravel()
    second = (column + second_run).ravel()

    centred = values.reshape(n, measures, k)
    centred = (centred - centred.mean(axis=2, keepdims=True)).reshape(n, width)
    figures = _pair_figures(values, first, second, t_test=options.test == "t")

    rng = np.random.Generator(np.random.PCG64(options.seed))
    parts = stream_sizes(options.resamples)
    flip_rngs = rng.spawn(len(parts))
    boot_rngs = rng.spawn(len(parts))
    relabel_rng, *tukey_rngs = rng.spawn(1 + len(parts))
    randomised_tukey = options.correction == "tukey" and options.test == "randomization"

    jobs: list[Callable[[], Any]] = []
    if options.test == "randomization":
        weights = centred.astype(np.float32)
        thresholds = np.abs(figures.observed) - figures.tolerance
        totals = centred.sum(axis=0)
        jobs += [
            partial(
                _flip_hits, weights, totals, first, second, thresholds, resamples=part, rng=child
            )
            for part, child in zip(parts, flip_rngs, strict=True)
        ]
    jobs += [
        partial(bootstrap_means, values, resamples=part, rng=child)
        for part, child in zip(parts, boot_rngs, strict=True)
    ]
    if randomised_tukey:
        relabel = np.argsort(relabel_rng.random((n, k)), axis=1)
        jobs += [
            partial(_tukey_sums, centred, relabel, k, resamples=part, rng=child)
            for part, child in zip(parts, tukey_rngs, strict=True)
        ]
    results = run_streams(jobs, draws=n * options.resamples)
    if figures.t_p_values is None:
        hits = np.sum(results[: len(parts)], axis=0)
        p_values = np.asarray((1.0 + hits) / (1.0 + options.resamples), dtype=np.float64)
        results = results[len(parts) :]
    else:
        p_values = figures.t_p_values
    boot = np.concatenate(results[: len(parts)], axis=0)

    means = values.mean(axis=0)
    run_low, run_high = percentile_interval(boot, values, confidence=options.confidence)
    delta_low, delta_high = _delta_intervals(
        boot, values, first, second, confidence=options.confidence
    )
    run_sd = values.std(axis=0, ddof=1) if n > 1 else np.zeros(width)
    # Without spread a bootstrap distribution is a point that float32 resampling would
    # only blur; a single query says nothing about the spread, so its interval is unbounded.
    run_low, run_high = _pinned(means, run_low, run_high, run_sd, n)
    deltas, delta_sd = figures.deltas, figures.sds
    delta_low, delta_high = _pinned(deltas, delta_low, delta_high, delta_sd, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        effect = np.where(
            delta_sd > 0.0,
            deltas / delta_sd,
            np.where(deltas == 0.0, 0.0, np.sign(deltas) * np.inf),
        )

    p_by_measure = p_values.reshape(measures, pairs)
    if randomised_tukey:
        sums = np.concatenate(results[len(parts) :], axis=0)
        adjusted = _tukey_randomised(
            sums,
            figures.observed.reshape(measures, pairs),
            figures.tolerance.reshape(measures, pairs),
            k,
        )
    elif options.correction == "tukey":
        adjusted = np.stack(
            [
                _tukey_parametric(values[:, mi * k : (mi + 1) * k], first_run, second_run)
                for mi in range(measures)
            ]
        )
    else:
        correct = _PAIRWISE_CORRECTIONS[options.correction]
        adjusted = np.stack([correct(row) for row in p_by_measure])

    significant = adjusted <= options.alpha
    letters = []
    for mi in range(measures):
        matrix = np.zeros((k, k), dtype=bool)
        matrix[first_run, second_run] = significant[mi]
        letters.append(compact_letters(means[mi * k : (mi + 1) * k], matrix | matrix.T))
    return _Statistics(
        n_runs=k,
        first=first_run,
        second=second_run,
        means=means.reshape(measures, k),
        run_low=run_low.reshape(measures, k),
        run_high=run_high.reshape(measures, k),
        deltas=deltas.reshape(measures, pairs),
        delta_low=delta_low.reshape(measures, pairs),
        delta_high=delta_high.reshape(measures, pairs),
        effect=effect.reshape(measures, pairs),
        p_values=p_by_measure,
        p_adjusted=adjusted,
        wins=figures.wins.reshape(measures, pairs),
        ties=figures.ties.reshape(measures, pairs),
        losses=figures.losses.reshape(measures, pairs),
        letters=tuple(letters),
        alpha=options.alpha,
    )


def _pinned(
    centre: FloatVector, low: FloatVector, high: FloatVector, sd: FloatVector, n: int
) -> tuple[FloatVector, FloatVector]:
    flat = sd == 0.0
    low = np.where(flat, centre, low)
    high = np.where(flat, centre, high)
    if n == 1:
        low = np.full_like(low, -np.inf)
        high = np.full_like(high, np.inf)
    return low, high


def _board(
    measure: str, mi: int, stats: _Statistics, runs: tuple[str, ...], position: IntVector
) -> MeasureLeaderboard:
    """One measure's figures in the order the runs were given."""
    means = stats.means[mi]
    ranks = _competition_ranks(means)
    standings = tuple(
        RunStanding(
            run=run,
            mean=float(means[position[r]]),
            ci_low=float(stats.run_low[mi, position[r]]),
            ci_high=float(stats.run_high[mi, position[r]]),
            rank=int(ranks[position[r]]),
            letters=stats.letters[mi][position[r]],
        )
        for r, run in enumerate(runs)
    )
    pair_index = {
        (int(a), int(b)): p for p, (a, b) in enumerate(zip(stats.first, stats.second, strict=True))
    }
    pairs = []
    for i in range(len(runs)):
        for j in range(i + 1, len(runs)):
            a, b = int(position[i]), int(position[j])
            p = pair_index[(min(a, b), max(a, b))]
            canonical_first, canonical_second = (runs[i], runs[j]) if a < b else (runs[j], runs[i])
            pair = PairComparison(
                first=canonical_first,
                second=canonical_second,
                delta=float(stats.deltas[mi, p]),
                ci_low=float(stats.delta_low[mi, p]),
                ci_high=float(stats.delta_high[mi, p]),
                effect_size=float(stats.effect[mi, p]),
                p_value=float(stats.p_values[mi, p]),
                p_adjusted=float(stats.p_adjusted[mi, p]),
                significant=bool(stats.p_adjusted[mi, p] <= stats.alpha),
                wins=int(stats.wins[mi, p]),
                ties=int(stats.ties[mi, p]),
                losses=int(stats.losses[mi, p]),
            )
            pairs.append(pair if a < b else pair.reversed())
    return MeasureLeaderboard(measure=measure, standings=standings, pairs=tuple(pairs))
