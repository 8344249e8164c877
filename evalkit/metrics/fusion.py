"""Rank fusion: several runs of the same queries combined into one, as ranx fuses them.

Scores are normalised per query (:data:`NORMALIZATIONS`) and combined (:data:`FUSION_METHODS`)
with ranx 0.3's formulas, ties ordered where ranx leaves them to chance. The runs are laid out
once as a (runs x candidates) grid (:class:`FusionRuns`) that :func:`optimize_fusion` fuses
many times. docs/fusion.md.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from evalkit.errors import ConfigError, InputError
from evalkit.metrics.evaluator import Evaluator
from evalkit.metrics.inputs import JudgmentsInput, RunArrays, RunInput, long_run, to_int64
from evalkit.metrics.measures import parse_measure
from evalkit.records.jsonready import JsonReady, json_ready

__all__ = [
    "DEFAULT_NORM",
    "FUSION_METHODS",
    "NORMALIZATIONS",
    "Fusion",
    "FusionMethod",
    "FusionRuns",
    "FusionTrial",
    "OptimizedFusion",
    "fuse",
    "fusion_method",
    "optimize_fusion",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

DEFAULT_NORM = "min-max"
"""The normalisation when none is named, as ranx's ``fuse``."""

_FLOOR = 1e-9
"""ranx's smallest denominator of a normalisation (a query whose scores are all equal)."""
_ABSENT_FOR_MAX = -1e9
_ABSENT_FOR_MIN = 1e9

NORMALIZATIONS: Mapping[str, str] = MappingProxyType(
    {
        "min-max": "(score - min) / (max - min), per run and query",
        "max": "score / max",
        "sum": "(score - min) / (sum - min x n)",
        "zmuv": "(score - mean) / standard deviation (zero mean, unit variance)",
        "rank": "1 - position / n, from the run's ranking (position 0 is the top)",
        "borda": "1 - position / candidates; a document the run did not retrieve gets "
        "0.5 - (n - 1) / (2 x candidates)",
        "none": "the scores as they are",
    }
)
"""Score normalisations by name, with what each computes (``n``: the documents the run
retrieved for the query; ``candidates``: the documents any of the runs retrieved for it).
A denominator below 1e-9 is taken as 1e-9, as ranx does."""

_NORM_ALIASES = {"min_max": "min-max", "minmax": "min-max"}


@dataclass(frozen=True, eq=False)
class _Grid:
    """Runs laid out over the candidates of each query: row ``r`` is run ``r``.

    ``values`` holds each run's normalised score (0 where absent), ``present`` where the run
    retrieved the candidate, ``positions`` its 0-based place there; ``candidate_query`` each
    candidate's query; ``sizes`` each run's documents per query (runs x queries).
    """

    values: FloatArray
    present: BoolArray
    positions: IntArray
    candidate_query: IntArray
    sizes: IntArray
    candidates_per_query: IntArray

    @cached_property
    def count(self) -> IntArray:
        """How many runs hold each candidate."""
        return np.asarray(np.count_nonzero(self.present, axis=0), dtype=np.int64)

    @cached_property
    def total(self) -> FloatArray:
        """Each candidate's scores added up, run after run (absent: 0)."""
        return _floats(self.values.sum(axis=0))

    @cached_property
    def candidates(self) -> IntArray:
        """How many candidates each candidate's query has."""
        return self.candidates_per_query[self.candidate_query]

    @cached_property
    def run_sizes(self) -> IntArray:
        """How many documents each run holds for each candidate's query (runs x candidates)."""
        return self.sizes[:, self.candidate_query]

    def where_present(self, values: NDArray[Any], absent: float = 0.0) -> FloatArray:
        """``values`` (runs x candidates) where a run holds the candidate, else ``absent``."""
        return _floats(np.where(self.present, values, absent))


Combine = Callable[[_Grid, Mapping[str, float], FloatArray | None], FloatArray]


@dataclass(frozen=True, slots=True)
class FusionMethod:
    """One registered fusion method.

    ``params`` maps each parameter to its default (None: required); ``weighted`` methods
    take one weight per run; ``search`` is what :func:`optimize_fusion` fits and its grid
    (``("weights", ())``: the weight grid); ``positional`` methods read rankings, not scores.
    """

    name: str
    ranx_name: str
    description: str
    combine: Combine
    params: Mapping[str, float | None] = field(default_factory=dict)
    weighted: bool = False
    search: tuple[str, tuple[float, ...]] | None = None
    positional: bool = False


def _combsum(grid: _Grid, params: Mapping[str, float], weights: FloatArray | None) -> FloatArray:
    return grid.total


def _combmnz(grid: _Grid, params: Mapping[str, float], weights: FloatArray | None) -> FloatArray:
    return grid.total * grid.count


def _combanz(grid: _Grid, params: Mapping[str, float], weights: FloatArray | None) -> FloatArray:
    return grid.total / grid.count


def _combgmnz(grid: _Grid, params: Mapping[str, float], weights: FloatArray | None) -> FloatArray:
    return grid.total * grid.count.astype(np.float64) ** params["gamma"]


def _combmax(grid: _Grid, params: Mapping[str, float], weights: FloatArray | None) -> FloatArray:
    return _floats(grid.where_present(grid.values, _ABSENT_FOR_MAX).max(axis=0))


def _combmin(grid: _Grid, params: Mapping[str, float], weights: FloatArray | None) -> FloatArray:
    return _floats(grid.where_present(grid.values, _ABSENT_FOR_MIN).min(axis=0))


def _combmed(grid: _Grid, params: Mapping[str, float], weights: FloatArray | None) -> FloatArray:
    # NaN sorts last, so each column's present values come first, in ascending order.
    ordered = np.sort(grid.where_present(grid.values, math.nan), axis=0)
    low = ((grid.count - 1) // 2)[None, :]
    high = (grid.count // 2)[None, :]
    middle = np.take_along_axis(ordered, low, axis=0) + np.take_along_axis(ordered, high, axis=0)
    return np.asarray(middle[0] / 2, dtype=np.float64)


def _wsum(grid: _Grid, params: Mapping[str, float], weights: FloatArray | None) -> FloatArray:
    return _floats((_weights(weights)[:, None] * grid.values).sum(axis=0))


def _wmnz(grid: _Grid, params: Mapping[str, float], weights: FloatArray | None) -> FloatArray:
    held = grid.where_present(np.broadcast_to(_weights(weights)[:, None], grid.values.shape))
    return _floats(grid.total * held.sum(axis=0))


def _mixed(grid: _Grid, params: Mapping[str, float], weights: FloatArray | None) -> FloatArray:
    return _wsum(grid, params, weights) * np.sqrt(grid.count)


def _rrf(grid: _Grid, params: Mapping[str, float], weights: FloatArray | None) -> FloatArray:
    return _floats(grid.where_present(1.0 / (params["k"] + grid.positions + 1)).sum(axis=0))


def _isr_sum(grid: _Grid) -> FloatArray:
    return _floats(grid.where_present(1.0 / (grid.positions + 1) ** 2).sum(axis=0))


def _isr(grid: _Grid, params: Mapping[str, float], weights: FloatArray | None) -> FloatArray:
    return _isr_sum(grid) * grid.count


def _log_isr(grid: _Grid, params: Mapping[str, float], weights: FloatArray | None) -> FloatArray:
    return _isr_sum(grid) * np.log(grid.count)


def _logn_isr(grid: _Grid, params: Mapping[str, float], weights: FloatArray | None) -> FloatArray:
    return _floats(_isr_sum(grid) * np.log(grid.count + params["sigma"]))


def _rbc(grid: _Grid, params: Mapping[str, float], weights: FloatArray | None) -> FloatArray:
    phi = params["phi"]
    return _floats(
        grid.where_present((1 - phi) * phi ** grid.positions.astype(np.float64)).sum(axis=0)
    )


def _borda_points(grid: _Grid) -> FloatArray:
    """Borda points: the number of candidates less the position for a document the run
    retrieved; the points left over, shared out evenly, for one it did not."""
    candidates = grid.candidates[None, :]
    return np.where(
        grid.present,
        candidates - grid.positions,
        (candidates - grid.run_sizes + 1) / 2,
    ).astype(np.float64)


def _bordafuse(grid: _Grid, params: Mapping[str, float], weights: FloatArray | None) -> FloatArray:
    return _floats(_borda_points(grid).sum(axis=0))


def _w_bordafuse(
    grid: _Grid, params: Mapping[str, float], weights: FloatArray | None
) -> FloatArray:
    return _floats((_weights(weights)[:, None] * _borda_points(grid)).sum(axis=0))


def _floats(values: Any) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


def _weights(weights: FloatArray | None) -> FloatArray:
    if weights is None:
        raise ConfigError("this fusion method needs one weight per run")
    return weights


def _unit_grid() -> tuple[float, ...]:
    """0.01, 0.02, ..., 1.0: the values ranx's optimize_fusion tries for gamma, sigma, phi."""
    return tuple(round(float(x), 2) for x in np.arange(0.01, 1.0 + 0.01, 0.01))


_UNIT_GRID = _unit_grid()
_WEIGHTS: tuple[str, tuple[float, ...]] = ("weights", ())

FUSION_METHODS: Mapping[str, FusionMethod] = MappingProxyType(
    {
        method.name: method
        for method in (
            FusionMethod(
                "rrf",
                "rrf",
                "reciprocal rank fusion: sum of 1 / (k + position + 1) (Cormack et al. 2009)",
                _rrf,
                params={"k": 60},
                search=("k", tuple(range(10, 101, 10))),
                positional=True,
            ),
            FusionMethod("combsum", "sum", "sum of the scores (Fox & Shaw 1993)", _combsum),
            FusionMethod(
                "combmnz",
                "mnz",
                "sum of the scores x the number of runs that retrieved the document",
                _combmnz,
            ),
            FusionMethod(
                "combmax",
                "max",
                "highest score (a run that did not retrieve the document counts -1e9)",
                _combmax,
            ),
            FusionMethod(
                "combmin",
                "min",
                "lowest score (a run that did not retrieve the document counts 1e9)",
                _combmin,
            ),
            FusionMethod(
                "combmed",
                "med",
                "median of the scores of the runs that retrieved the document",
                _combmed,
            ),
            FusionMethod(
                "combanz",
                "anz",
                "mean of the scores of the runs that retrieved the document",
                _combanz,
            ),
            FusionMethod(
                "combgmnz",
                "gmnz",
                "sum of the scores x (runs that retrieved the document) ^ gamma (Lee 1997)",
                _combgmnz,
                params={"gamma": None},
                search=("gamma", _UNIT_GRID),
            ),
            FusionMethod(
                "wsum",
                "wsum",
                "weighted sum of the scores",
                _wsum,
                weighted=True,
                search=_WEIGHTS,
            ),
            FusionMethod(
                "wmnz",
                "wmnz",
                "sum of the scores x the weights of the runs that retrieved the document "
                "(Wu & Crestani 2002)",
                _wmnz,
                weighted=True,
                search=_WEIGHTS,
            ),
            FusionMethod(
                "mixed",
                "mixed",
                "weighted sum of the scores x sqrt(runs that retrieved the document) "
                "(Wu & Crestani 2002)",
                _mixed,
                weighted=True,
                search=_WEIGHTS,
            ),
            FusionMethod(
                "isr",
                "isr",
                "sum of 1 / (position + 1)^2 x runs that retrieved the document "
                "(Mourão et al. 2015)",
                _isr,
                positional=True,
            ),
            FusionMethod(
                "log_isr",
                "log_isr",
                "sum of 1 / (position + 1)^2 x log(runs that retrieved the document)",
                _log_isr,
                positional=True,
            ),
            FusionMethod(
                "logn_isr",
                "logn_isr",
                "sum of 1 / (position + 1)^2 x log(runs that retrieved the document + sigma)",
                _logn_isr,
                params={"sigma": 0.01},
                search=("sigma", _UNIT_GRID),
                positional=True,
            ),
            FusionMethod(
                "rbc",
                "rbc",
                "rank-biased centroid: sum of (1 - phi) x phi^position (Bailey et al. 2017)",
                _rbc,
                params={"phi": None},
                search=("phi", _UNIT_GRID),
                positional=True,
            ),
            FusionMethod(
                "bordafuse",
                "bordafuse",
                "Borda count: candidates - position points (Aslam & Montague 2001)",
                _bordafuse,
                positional=True,
            ),
            FusionMethod(
                "w_bordafuse",
                "w_bordafuse",
                "weighted Borda count",
                _w_bordafuse,
                weighted=True,
                search=_WEIGHTS,
                positional=True,
            ),
        )
    }
)
"""Fusion methods by name. ranx's names (``sum``, ``mnz``, ``gmnz``, ...) are accepted too.
Not here: ranx's methods trained on judgments (probfuse, segfuse, slidefuse, bayesfuse,
posfuse, mapfuse) and the pairwise Condorcet methods."""

_METHOD_ALIASES = {
    alias: method.name
    for method in FUSION_METHODS.values()
    for alias in (method.ranx_name, method.name.replace("comb", "comb_"))
}


def fusion_method(name: str) -> FusionMethod:
    """The registered method ``name`` (its name or ranx's); ConfigError if there is none."""
    key = name.strip().lower()
    method = FUSION_METHODS.get(key) or FUSION_METHODS.get(_METHOD_ALIASES.get(key, ""))
    if method is None:
        raise ConfigError(
            f"unknown fusion method {name!r}; choose one of: {', '.join(FUSION_METHODS)}"
        )
    return method


def _norm_name(norm: str | None) -> str:
    if norm is None:
        return DEFAULT_NORM
    key = norm.strip().lower()
    key = _NORM_ALIASES.get(key, key)
    if key not in NORMALIZATIONS:
        raise ConfigError(
            f"unknown score normalisation {norm!r}; choose one of: {', '.join(NORMALIZATIONS)}"
        )
    return key


@dataclass(frozen=True, slots=True)
class Fusion:
    """How runs are fused: a method (canonical name), a normalisation, the method's
    parameters (every one, defaults filled in) and, for a weighted method, one weight per
    run. Build it with :meth:`of`, which checks all of it."""

    method: str
    norm: str = DEFAULT_NORM
    params: Mapping[str, float] = field(default_factory=dict)
    weights: tuple[float, ...] | None = None

    @classmethod
    def of(
        cls,
        method: str,
        *,
        norm: str | None = None,
        params: Mapping[str, float] | None = None,
        weights: Sequence[float] | None = None,
        n_runs: int | None = None,
        fitting: bool = False,
    ) -> Fusion:
        """The fusion ``method`` under ``norm`` (default min-max) with ``params`` and
        ``weights``, checked: a known method and normalisation, the method's own parameters
        (a missing one takes its default; one without a default must be given), finite
        values, and one weight per run (``n_runs``) for a weighted method and none for
        another. With ``fitting`` (:func:`optimize_fusion`) what is to be fitted may be
        left out."""
        chosen = fusion_method(method)
        given = dict(params or {})
        unknown = sorted(set(given) - set(chosen.params))
        if unknown:
            takes = ", ".join(chosen.params) or "no parameters"
            hint = " (weights are given apart: `weights` per run)" if "weights" in unknown else ""
            raise ConfigError(
                f"fusion method {chosen.name} takes {takes}; got {', '.join(unknown)}{hint}"
            )
        fitted = chosen.search[0] if fitting and chosen.search is not None else None
        resolved: dict[str, float] = {}
        for name, default in chosen.params.items():
            value = given.get(name, default)
            if value is None:
                if name == fitted:
                    continue
                raise ConfigError(
                    f"fusion method {chosen.name} needs {name}: give it (`params` "
                    f"{name}=VALUE) or fit it on the goldset (`optimize`)"
                )
            resolved[name] = _checked_param(chosen.name, name, value)
        return cls(
            method=chosen.name,
            norm=_norm_name(norm),
            params=MappingProxyType(resolved),
            weights=_checked_weights(chosen, weights, n_runs, fitting=fitting),
        )

    @property
    def definition(self) -> FusionMethod:
        """The registered method."""
        return fusion_method(self.method)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what a fused run records as its retriever configuration)."""
        return json_ready(self)


def _checked_param(method: str, name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ConfigError(f"fusion parameter {name} of {method} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ConfigError(f"fusion parameter {name} of {method} must be finite, got {value!r}")
    if name == "k" and value < 0:
        raise ConfigError(f"fusion parameter k of {method} must be >= 0, got {value!r}")
    if name in {"sigma", "phi"} and not 0 <= value <= 1:
        raise ConfigError(
            f"fusion parameter {name} of {method} must be between 0 and 1, got {value!r}"
        )
    return int(value) if isinstance(value, int | np.integer) else float(value)


def _checked_weights(
    method: FusionMethod,
    weights: Sequence[float] | None,
    n_runs: int | None,
    *,
    fitting: bool,
) -> tuple[float, ...] | None:
    if not method.weighted:
        if weights:
            raise ConfigError(
                f"fusion method {method.name} takes no weights; the weighted methods are "
                + ", ".join(m.name for m in FUSION_METHODS.values() if m.weighted)
            )
        return None
    if not weights:
        if fitting:
            return None
        raise ConfigError(
            f"fusion method {method.name} needs one weight per run (`weights`, in the order "
            "the runs are named), or fit them on the goldset (`optimize`)"
        )
    values = tuple(float(w) for w in weights)
    if not all(math.isfinite(w) for w in values):
        raise ConfigError(f"fusion weights must be finite numbers, got {list(weights)}")
    if n_runs is not None and len(values) != n_runs:
        raise ConfigError(
            f"{len(values)} weight(s) for {n_runs} runs: give one `weights` entry per run, in the "
            "order the runs are named"
        )
    return values


class FusionRuns:
    """Runs indexed once for fusion: queries, candidates, and each run's ranking.

    ``runs`` are DataFrames (query_id, doc_id, score) or ``{query_id: {doc_id: score}}``,
    at least two. A document listed twice for one query of one run, a missing or NaN score,
    or a missing column raises ``InputError`` naming the run (1-based, in the order given).
    """

    def __init__(self, runs: Sequence[RunInput]) -> None:
        if len(runs) < 2:
            raise ConfigError(f"fusion needs at least two runs, got {len(runs)}")
        self.n_runs = len(runs)
        queries, docs, scores = [], [], []
        for number, run in enumerate(runs, start=1):
            try:
                long = long_run(run)
            except InputError as error:
                raise InputError(
                    f"run {number} of {self.n_runs}: {error.detail}", field=error.field
                ) from error
            groups = long.groups
            if long.group_lengths is not None:
                groups = groups.take(
                    pa.array(np.repeat(np.arange(len(groups)), long.group_lengths))
                )
            queries.append(groups)
            docs.append(long.doc_ids)
            scores.append(long.scores)
        lengths = np.array([len(s) for s in scores], dtype=np.int64)
        query_codes, self.query_ids = _sorted_codes(queries)
        doc_codes, self.doc_ids = _sorted_codes(docs)
        self._n_docs = max(len(self.doc_ids), 1)
        run_of_row = np.repeat(np.arange(self.n_runs, dtype=np.int64), lengths)
        score = np.concatenate(scores) if scores else np.zeros(0)
        self._index(run_of_row, query_codes, doc_codes, score)
        self._grids: dict[str, _Grid] = {}

    @property
    def n_queries(self) -> int:
        """Queries any of the runs holds."""
        return len(self.query_ids)

    def _index(
        self, run_of_row: IntArray, query_codes: IntArray, doc_codes: IntArray, score: FloatArray
    ) -> None:
        """Order the rows by run, query and ranking, and number the candidates."""
        n_queries = len(self.query_ids)
        group = run_of_row * max(n_queries, 1) + query_codes
        if not _ranked(group, score, doc_codes):
            order = np.lexsort((-doc_codes, -score, group))
            group, score, doc_codes = group[order], score[order], doc_codes[order]
            query_codes, run_of_row = query_codes[order], run_of_row[order]
        n_rows = group.size
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if n_rows else group
        sizes = np.diff(np.r_[starts, n_rows])
        group_of_row = np.repeat(np.arange(starts.size), sizes)
        self._row_run = run_of_row
        self._row_score = score
        self._row_position = np.arange(n_rows, dtype=np.int64) - starts[group_of_row]
        self._row_first = starts[group_of_row]
        self._row_size = sizes[group_of_row]
        self._row_group = group_of_row
        self._group_starts = starts
        self._sizes = np.zeros((self.n_runs, n_queries), dtype=np.int64)
        self._sizes[run_of_row[starts], query_codes[starts]] = sizes
        # Candidates numbered by query, then doc id descending: the order fused ties keep.
        key = query_codes * self._n_docs + (self._n_docs - 1 - doc_codes)
        first_seen, seen_keys = pd.factorize(key)
        by_key = np.argsort(seen_keys)
        number = np.empty_like(by_key)
        number[by_key] = np.arange(by_key.size)
        self._row_candidate = number[first_seen].astype(np.int64, copy=False)
        keys = np.asarray(seen_keys, dtype=np.int64)[by_key]
        self.candidate_query = keys // self._n_docs
        self.candidate_doc = self._n_docs - 1 - keys % self._n_docs
        self.candidates_per_query = np.bincount(self.candidate_query, minlength=n_queries)
        self._query_start = np.r_[0, np.cumsum(self.candidates_per_query)[:-1]].astype(np.int64)
        held = np.zeros((self.n_runs, keys.size), dtype=np.bool_)
        held[run_of_row, self._row_candidate] = True
        if int(np.count_nonzero(held)) < n_rows:
            self._reject_repeats()

    def _reject_repeats(self) -> None:
        pairs = pd.DataFrame({"run": self._row_run, "candidate": self._row_candidate})
        row = int(np.flatnonzero(pairs.duplicated().to_numpy())[0])
        candidate = int(self._row_candidate[row])
        raise InputError(
            f"run {int(self._row_run[row]) + 1} of {self.n_runs} lists document "
            f"{self.doc_ids[int(self.candidate_doc[candidate])].as_py()!r} twice for query "
            f"{self.query_ids[int(self.candidate_query[candidate])].as_py()!r}; "
            "keep one row per (query, document)",
            field="doc_id",
        )

    def grid(self, norm: str | None = None) -> _Grid:
        """The runs normalised by ``norm`` (default min-max) and laid out over the candidates
        (computed once per normalisation)."""
        name = _norm_name(norm)
        if name not in self._grids:
            self._grids[name] = self._build_grid(name)
        return self._grids[name]

    def _build_grid(self, norm: str) -> _Grid:
        n_candidates = self.candidate_query.size
        shape = (self.n_runs, n_candidates)
        values = np.zeros(shape, dtype=np.float64)
        present = np.zeros(shape, dtype=np.bool_)
        positions = np.zeros(shape, dtype=np.int64)
        rows = (self._row_run, self._row_candidate)
        present[rows] = True
        positions[rows] = self._row_position
        candidates = self.candidates_per_query[self.candidate_query]
        sizes = self._sizes
        if norm == "borda":
            candidates_of_row = candidates[self._row_candidate]
            values[rows] = 1 - self._row_position / candidates_of_row
            run_sizes = self._sizes[:, self.candidate_query]
            absent = ~present
            values[absent] = (0.5 - (run_sizes - 1) / (2 * candidates[None, :]))[absent]
            positions[absent] = (run_sizes + self._absent_order(absent))[absent]
            present = np.ones(shape, dtype=np.bool_)
            sizes = np.broadcast_to(self.candidates_per_query, self._sizes.shape)
        else:
            values[rows] = self._normalised(norm)
        return _Grid(
            values=values,
            present=present,
            positions=positions,
            candidate_query=self.candidate_query,
            sizes=sizes,
            candidates_per_query=self.candidates_per_query,
        )

    def _absent_order(self, absent: BoolArray) -> IntArray:
        """Where each candidate a run did not retrieve stands among those of its query the
        run did not retrieve (candidates are numbered by doc id descending within a query)."""
        before: IntArray = np.cumsum(absent, axis=1, dtype=np.int64) - absent
        return (before - before[:, self._query_start][:, self.candidate_query]).astype(np.int64)

    def _normalised(self, norm: str) -> FloatArray:
        """Each row's score under ``norm``, per run and query (rows ranked, best first)."""
        score = self._row_score
        n = self._row_size.astype(np.float64)
        if norm == "none":
            return score
        if norm == "rank":
            return _floats(1 - self._row_position / n)
        highest = score[self._row_first]
        lowest = score[self._row_first + self._row_size - 1]
        if norm == "min-max":
            return _floats((score - lowest) / np.maximum(highest - lowest, _FLOOR))
        if norm == "max":
            return score / np.maximum(highest, _FLOOR)
        total = np.add.reduceat(score, self._group_starts)[self._row_group] if score.size else n
        if norm == "sum":
            return _floats((score - lowest) / np.maximum(total - lowest * n, _FLOOR))
        mean = total / n
        deviation = score - mean
        spread = np.add.reduceat(deviation**2, self._group_starts)[self._row_group] / n
        return _floats(deviation / np.maximum(np.sqrt(spread), _FLOOR))

    def scores(self, fusion: Fusion) -> FloatArray:
        """The fused score of every candidate (numbered by query, then doc id descending)."""
        checked = _checked(fusion, self.n_runs)
        weights = None if checked.weights is None else np.asarray(checked.weights, np.float64)
        method = checked.definition
        # Positions are the same under every normalisation but Borda's, and are all that
        # the positional methods read.
        grid = self.grid("none" if method.positional and checked.norm != "borda" else checked.norm)
        fused = method.combine(grid, checked.params, weights)
        return _floats(fused)

    def ranked(self, scores: FloatArray, *, k: int | None = None) -> tuple[IntArray, IntArray]:
        """The candidates of the fused ranking, query by query (score descending, ties by
        doc id descending), cut to ``k`` a query, and their 1-based ranks."""
        counts = self.candidates_per_query
        width = int(counts.max(initial=0))
        if self.n_queries * width > 4 * scores.size + 4096:
            # Queries of very different sizes: one sort of everything beats padded rows.
            by_score = np.argsort(-scores, kind="stable")
            order = by_score[np.argsort(self.candidate_query[by_score], kind="stable")]
            ranks = (
                np.arange(order.size, dtype=np.int64)
                - self._query_start[self.candidate_query[order]]
            )
            kept = ranks < (order.size if k is None else k)
            return order[kept], ranks[kept] + 1
        # One row a query, its candidates in slots by doc id descending: a stable sort of
        # each row by score keeps that order among ties.
        slot = np.arange(scores.size, dtype=np.int64) - self._query_start[self.candidate_query]
        padded = np.full((self.n_queries, width), np.inf)
        padded[self.candidate_query, slot] = -scores
        depth = width if k is None else min(k, width)
        slots = np.argsort(padded, axis=1, kind="stable")[:, :depth]
        ranks = np.broadcast_to(np.arange(1, depth + 1, dtype=np.int64), slots.shape)
        held = slots < counts[:, None]
        return (self._query_start[:, None] + slots)[held], ranks[held]

    def fuse(self, fusion: Fusion, *, k: int | None = None) -> pd.DataFrame:
        """The fused run: query_id, doc_id, score, rank, ``k`` documents a query at most
        (None: every candidate), query by query, best first."""
        _check_depth(k)
        scores = self.scores(fusion)
        order, ranks = self.ranked(scores, k=k)
        return pd.DataFrame(
            {
                "query_id": self.query_ids.take(pa.array(self.candidate_query[order])).to_numpy(
                    zero_copy_only=False
                ),
                "doc_id": self.doc_ids.take(pa.array(self.candidate_doc[order])).to_numpy(
                    zero_copy_only=False
                ),
                "score": scores[order],
                "rank": ranks,
            }
        )

    def arrays(self, scores: FloatArray, *, k: int | None = None) -> RunArrays:
        """The fused ranking as :class:`RunArrays` over ``doc_ids`` (for
        :meth:`Evaluator.evaluate_arrays` with a corpus index of ``doc_ids``)."""
        order, ranks = self.ranked(scores, k=k)
        depth = int(ranks.max(initial=0))
        doc_indices = np.full((self.n_queries, depth), -1, dtype=np.int64)
        ranked_scores = np.zeros((self.n_queries, depth), dtype=np.float64)
        where = (self.candidate_query[order], ranks - 1)
        doc_indices[where] = self.candidate_doc[order]
        ranked_scores[where] = scores[order]
        return RunArrays(
            query_ids=self.query_ids.to_numpy(zero_copy_only=False).astype(object),
            doc_indices=doc_indices,
            scores=ranked_scores,
        )


def _sorted_codes(arrays: list[pa.Array]) -> tuple[IntArray, pa.Array]:
    """Codes of the values of ``arrays`` (one after the other) into their sorted distinct
    values, and those values: ``sorted_codes`` without joining the arrays first."""
    encoded = pa.chunked_array(arrays, type=pa.string()).dictionary_encode()
    if encoded.num_chunks == 0:
        return np.zeros(0, dtype=np.int64), pa.array([], type=pa.string())
    # Every chunk's indices point into the last chunk's dictionary, the complete one.
    dictionary = encoded.chunk(encoded.num_chunks - 1).dictionary
    order = to_int64(pc.sort_indices(dictionary))
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size, dtype=np.int64)
    indices = np.concatenate([to_int64(chunk.indices) for chunk in encoded.chunks])
    return rank[indices], dictionary.take(pa.array(order))


def _ranked(group: IntArray, score: FloatArray, doc_codes: IntArray) -> bool:
    """Whether the rows are ordered by run and query, then score descending, ties by doc id
    descending (stored runs mostly are: no sort needed then)."""
    if group.size < 2:
        return True
    step = np.diff(group)
    drop = np.diff(score)
    return bool(
        np.all((step > 0) | ((step == 0) & ((drop < 0) | ((drop == 0) & (np.diff(doc_codes) < 0)))))
    )


def _checked(fusion: Fusion, n_runs: int) -> Fusion:
    return Fusion.of(
        fusion.method,
        norm=fusion.norm,
        params=fusion.params,
        weights=fusion.weights,
        n_runs=n_runs,
    )


def _check_depth(k: int | None) -> None:
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ConfigError(f"the fused run's depth k must be a whole number >= 1, got {k!r}")


def fuse(runs: Sequence[RunInput], fusion: Fusion, *, k: int | None = None) -> pd.DataFrame:
    """Fuse ``runs`` as ``fusion`` says: a DataFrame (query_id, doc_id, score, rank), query
    by query, best first, ``k`` documents a query at most (None: every candidate)."""
    return FusionRuns(runs).fuse(fusion, k=k)


@dataclass(frozen=True, slots=True)
class FusionTrial(JsonReady):
    """One configuration :func:`optimize_fusion` tried, and its mean on the queries."""

    params: Mapping[str, float]
    weights: tuple[float, ...] | None
    score: float


@dataclass(frozen=True, slots=True)
class OptimizedFusion:
    """What :func:`optimize_fusion` chose: the fusion with its fitted parameter or weights,
    the measure, its mean (``score``) over the ``n_queries`` queries it was fitted on, and
    every configuration tried."""

    fusion: Fusion
    measure: str
    score: float
    n_queries: int
    trials: tuple[FusionTrial, ...]

    def to_dict(self, *, trials: bool = False) -> dict[str, Any]:
        """JSON-ready form (the trials only when asked for)."""
        data: dict[str, Any] = {
            "fusion": self.fusion.to_dict(),
            "measure": self.measure,
            "score": self.score,
            "n_queries": self.n_queries,
            "n_trials": len(self.trials),
        }
        if trials:
            data["trials"] = [trial.to_dict() for trial in self.trials]
        return data


def weight_grid(n_runs: int, step: float = 0.1) -> list[tuple[float, ...]]:
    """Every combination of ``n_runs`` weights, each a multiple of ``step`` between 0 and 1,
    that adds up to 1, in the order ranx tries them (ranx's check of the sum in floating
    point leaves out some of them from three runs on, e.g. 0.1 + 0.2 + 0.7)."""
    units = round(1 / step)
    if units < 1 or not math.isclose(units * step, 1.0):
        raise ConfigError(f"the weight step must divide 1 (0.1, 0.05, 0.25, ...), got {step}")
    digits = max(0, -math.floor(math.log10(step) + 1e-12))
    return [
        tuple(round(part * step, digits) for part in parts)
        for parts in itertools.product(range(units + 1), repeat=n_runs)
        if sum(parts) == units
    ]


def optimize_fusion(
    runs: Sequence[RunInput] | FusionRuns,
    judgments: JudgmentsInput,
    *,
    method: str,
    measure: str,
    norm: str | None = None,
    params: Mapping[str, float] | None = None,
    k: int | None = None,
    query_ids: Iterable[str] | None = None,
    relevance_threshold: int = 1,
    weight_step: float = 0.1,
) -> OptimizedFusion:
    """Fit ``method``'s parameter or weights on ``judgments`` by ranx's grid search.

    Each configuration of ``FusionMethod.search`` (grids: docs/fusion.md) is fused, cut to
    ``k`` and scored on ``measure`` over ``query_ids`` (default: the judged queries the runs
    hold); the best is kept, the last tried among equals, as ranx keeps it. ``params`` fixes
    the other parameters. A method with nothing to fit raises ConfigError.
    """
    chosen = fusion_method(method)
    if chosen.search is None:
        fitted = ", ".join(m.name for m in FUSION_METHODS.values() if m.search is not None)
        raise ConfigError(
            f"fusion method {chosen.name} has no parameter or weights to fit; "
            f"the methods that have: {fitted}"
        )
    prepared = runs if isinstance(runs, FusionRuns) else FusionRuns(runs)
    _check_depth(k)
    base = Fusion.of(chosen.name, norm=norm, params=params, n_runs=prepared.n_runs, fitting=True)
    parsed = parse_measure(measure)
    evaluator = Evaluator(judgments, [parsed], relevance_threshold=relevance_threshold)
    corpus = evaluator.corpus_index(prepared.doc_ids)
    scored = (
        [str(q) for q in query_ids] if query_ids is not None else prepared.query_ids.to_pylist()
    )
    name, values = chosen.search
    candidates: list[Fusion] = (
        [
            Fusion(chosen.name, base.norm, base.params, weights)
            for weights in weight_grid(prepared.n_runs, weight_step)
        ]
        if name == "weights"
        else [
            Fusion(chosen.name, base.norm, MappingProxyType({**base.params, name: value}))
            for value in values
        ]
    )
    trials = []
    n_queries = 0
    for candidate in candidates:
        arrays = prepared.arrays(prepared.scores(candidate), k=k)
        result = evaluator.evaluate_arrays(arrays, corpus=corpus, complete=True, query_ids=scored)
        mean = result.aggregate[str(parsed)]
        trials.append(
            FusionTrial(candidate.params, candidate.weights, 0.0 if math.isnan(mean) else mean)
        )
        n_queries = result.n_queries
    best = max(range(len(trials)), key=lambda i: (trials[i].score, i))
    return OptimizedFusion(
        fusion=candidates[best],
        measure=str(parsed),
        score=trials[best].score,
        n_queries=n_queries,
        trials=tuple(trials),
    )
