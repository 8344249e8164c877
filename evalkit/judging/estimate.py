"""A label-free estimate of precision@k from the retriever's own scores.

:func:`fit_calibration` fits P(relevant | score) on goldset runs; :func:`estimate_precision`
averages a window's calibrated top-k probabilities, with a bootstrap interval. It refuses
another ``k`` than the fit's (one fitted deeper reads P@10 far low) and another configuration
or model (``fingerprint``). docs/judging.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

# scipy's submodules load on first use: scipy.optimize alone is about a second of imports,
# which every command importing evalkit.pipeline would pay before doing anything.
import scipy

from evalkit.errors import ConfigError, InputError
from evalkit.records.requests import DEFAULT_CALIBRATION

__all__ = [
    "CALIBRATION_METHODS",
    "PrecisionEstimate",
    "ScoreCalibration",
    "estimate_precision",
    "expected_precision_per_query",
    "fit_calibration",
]

FloatArray = npt.NDArray[np.float64]
_Fitter = Callable[[FloatArray, FloatArray, FloatArray], tuple[FloatArray, FloatArray]]

# Quantiles of the goldset's scores added to the curve's own knots, so a replicate's curve,
# stored at the same knots, keeps its shape (the interval moved by at most 0.002 on SciFact
# and Vaswani against replicates evaluated exactly).
_GRID_QUANTILES: Final = 65
# The logistic curve is stored piecewise-linear on this many score quantiles.
_LOGISTIC_KNOTS: Final = 129
# A tiny ridge on the logistic slope keeps the fit finite when the scores separate
# relevant from non-relevant pairs completely.
_LOGISTIC_RIDGE: Final = 1e-6
# Bootstrap resamples are drawn in blocks of at most this many (resample, query) cells.
_BLOCK_CELLS: Final = 1 << 22


@dataclass(frozen=True, slots=True)
class ScoreCalibration:
    """P(relevant | score) of one retriever configuration and model, fitted at depth ``k``.

    Piecewise-linear through ``(knots, probabilities)``, flat beyond the ends; ``replicates`` are
    seeded bootstrap refits at the same knots. ``n_*`` count what it was fitted on;
    ``fingerprint`` names the retriever and model (None: not recorded).
    """

    method: str
    k: int
    knots: tuple[float, ...]
    probabilities: tuple[float, ...]
    replicates: tuple[tuple[float, ...], ...]
    n_pairs: int
    n_queries: int
    n_relevant: int
    seed: int
    fingerprint: str | None = None

    def probability(self, scores: npt.ArrayLike) -> FloatArray:
        """Calibrated P(relevant) of each score (any shape); scores outside the fitted range
        get the probability of the nearest end."""
        probabilities: FloatArray = np.interp(
            np.asarray(scores, dtype=np.float64),
            np.asarray(self.knots),
            np.asarray(self.probabilities),
        )
        return probabilities

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (the fields by name, the curves as lists); :meth:`from_dict` reads
        it back to an equal calibration."""
        return asdict(self) | {
            "knots": list(self.knots),
            "probabilities": list(self.probabilities),
            "replicates": [list(replicate) for replicate in self.replicates],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ScoreCalibration:
        """Read the form :meth:`to_dict` writes; raises :class:`InputError` naming the field
        that is missing or malformed."""
        knots = _float_tuple(data, "knots")
        probabilities = _float_tuple(data, "probabilities")
        raw_replicates = data.get("replicates")
        if not isinstance(raw_replicates, list):
            raise InputError("expected a list of lists of numbers", field="replicates")
        replicates = tuple(
            _float_tuple({"replicates": row}, "replicates") for row in raw_replicates
        )
        fingerprint = data.get("fingerprint")
        if fingerprint is not None and not isinstance(fingerprint, str):
            raise InputError("expected a string or null", field="fingerprint")
        method = data.get("method")
        if method not in CALIBRATION_METHODS:
            raise InputError(
                f"expected one of {', '.join(sorted(CALIBRATION_METHODS))}", field="method"
            )
        if not knots or len(probabilities) != len(knots) or list(knots) != sorted(knots):
            raise InputError(
                "expected as many probabilities as knots, knots sorted and not empty",
                field="knots",
            )
        if any(len(row) != len(knots) for row in replicates):
            raise InputError("expected one probability per knot in each", field="replicates")
        return cls(
            method=str(method),
            k=_positive_int(data, "k"),
            knots=knots,
            probabilities=probabilities,
            replicates=replicates,
            n_pairs=_positive_int(data, "n_pairs"),
            n_queries=_positive_int(data, "n_queries"),
            n_relevant=_positive_int(data, "n_relevant"),
            seed=_int(data, "seed"),
            fingerprint=fingerprint,
        )


@dataclass(frozen=True, slots=True)
class PrecisionEstimate:
    """The estimated precision@k of a window of unlabelled queries, with its interval.

    ``estimate`` is the mean of ``per_query``; ``[low, high]`` the seeded percentile bootstrap at
    ``confidence``, each resample with one calibration replicate (0: taken as exact). It assumes
    P(relevant | score) on traffic is what it was on the goldset (``calibration_*`` fields).
    """

    k: int
    estimate: float
    low: float
    high: float
    confidence: float
    n_queries: int
    n_resamples: int
    seed: int
    calibration_method: str
    calibration_queries: int
    calibration_replicates: int
    calibration_fingerprint: str | None
    per_query: tuple[float, ...]

    @property
    def measure(self) -> str:
        """The canonical name of the measure estimated, as evalkit's metrics spell it."""
        return f"precision@{self.k}"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (``per_query`` as a list)."""
        return {"measure": self.measure} | asdict(self) | {"per_query": list(self.per_query)}


def fit_calibration(
    ranked_scores: Sequence[npt.ArrayLike],
    ranked_relevant: Sequence[npt.ArrayLike],
    *,
    k: int,
    method: str = DEFAULT_CALIBRATION,
    n_replicates: int = 200,
    seed: int = 0,
    fingerprint: str | None = None,
) -> ScoreCalibration:
    """Fit P(relevant | score) on the top ``k`` documents of each goldset query (docs/judging.md).

    ``ranked_scores[i]`` / ``ranked_relevant[i]`` are query ``i``'s scores and relevance in rank
    order; ``method`` is ``isotonic`` or ``logistic``; ``n_replicates`` seeded bootstrap fits give
    the calibration's uncertainty. Raises ConfigError for a bad ``k``, ``method`` or
    ``n_replicates`` and InputError for mismatched, non-finite or pairless inputs.
    """
    _check_k(k)
    fitter = CALIBRATION_METHODS.get(method)
    if fitter is None:
        raise ConfigError(
            f"unknown calibration method {method!r}: use one of "
            f"{', '.join(sorted(CALIBRATION_METHODS))}"
        )
    if n_replicates < 0:
        raise ConfigError(f"n_replicates must be 0 or more, not {n_replicates}")
    scores, relevant, query_of_pair = _top_pairs(ranked_scores, ranked_relevant, k)
    n_queries = len(ranked_scores)
    n_relevant = int(relevant.sum())
    unique_scores, pair_to_unique = np.unique(scores, return_inverse=True)
    positives = relevant.astype(np.float64)

    def fit_weighted(pair_weights: FloatArray) -> tuple[FloatArray, FloatArray]:
        totals = np.bincount(
            pair_to_unique, weights=pair_weights, minlength=unique_scores.size
        ).astype(np.float64)
        hits = np.bincount(
            pair_to_unique, weights=pair_weights * positives, minlength=unique_scores.size
        ).astype(np.float64)
        present = totals > 0
        return fitter(unique_scores[present], totals[present], hits[present])

    curve_knots, curve_probabilities = fit_weighted(np.ones(scores.size))
    quantiles = np.quantile(scores, np.linspace(0.0, 1.0, _GRID_QUANTILES))
    knots = np.unique(np.concatenate([curve_knots, quantiles]))
    probabilities = np.interp(knots, curve_knots, curve_probabilities)

    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_queries, np.full(n_queries, 1.0 / n_queries), size=n_replicates)
    replicates = []
    for query_counts in counts:
        replicate_knots, replicate_probabilities = fit_weighted(
            query_counts[query_of_pair].astype(np.float64)
        )
        replicates.append(_as_tuple(np.interp(knots, replicate_knots, replicate_probabilities)))
    return ScoreCalibration(
        method=method,
        k=k,
        knots=_as_tuple(knots),
        probabilities=_as_tuple(probabilities),
        replicates=tuple(replicates),
        n_pairs=int(scores.size),
        n_queries=n_queries,
        n_relevant=n_relevant,
        seed=seed,
        fingerprint=fingerprint,
    )


def expected_precision_per_query(
    ranked_scores: Sequence[npt.ArrayLike], calibration: ScoreCalibration
) -> FloatArray:
    """Each query's expected precision@k: the calibrated probabilities of its first ``k``
    scores (``k`` of the calibration) summed and divided by ``k``; missing documents count
    as not relevant. Raises :class:`InputError` for a score that is not finite."""
    weights = _knot_weights(ranked_scores, np.asarray(calibration.knots), calibration.k)
    expected: FloatArray = weights @ np.asarray(calibration.probabilities)
    return expected


def estimate_precision(
    ranked_scores: Sequence[npt.ArrayLike],
    calibration: ScoreCalibration,
    *,
    k: int | None = None,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
    fingerprint: str | None = None,
) -> PrecisionEstimate:
    """Estimate the precision@k of a window of unlabelled queries from their scores.

    ``ranked_scores[i]`` holds query ``i``'s scores in rank order (fewer than ``k`` count as
    non-relevant); ``k`` must be the calibration's. The interval is a seeded percentile bootstrap
    over queries, each resample using a random replicate. Raises ConfigError for a ``k`` or
    ``fingerprint`` the calibration does not match or bad ``confidence`` / ``n_resamples``, and
    InputError for an empty window or a non-finite score.
    """
    depth = calibration.k if k is None else k
    _check_k(depth)
    if depth != calibration.k:
        raise ConfigError(
            f"the calibration was fitted on the top {calibration.k} documents and cannot "
            f"estimate precision@{depth}: fit one with k={depth} on the same goldset runs "
            "(a calibration fitted at another depth is biased; docs/judging.md)"
        )
    if (
        fingerprint is not None
        and calibration.fingerprint is not None
        and fingerprint != calibration.fingerprint
    ):
        raise ConfigError(
            f"the calibration was fitted on goldset runs of {calibration.fingerprint!r}, not "
            f"of {fingerprint!r}: replay the goldset with this retriever configuration and "
            "model and fit a calibration on that run"
        )
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be between 0 and 1 (exclusive), not {confidence}")
    if n_resamples < 1:
        raise ConfigError(f"n_resamples must be at least 1, not {n_resamples}")
    if len(ranked_scores) == 0:
        raise InputError(
            "the window has no query: sample a window with at least one query",
            field="ranked_scores",
        )
    weights = _knot_weights(ranked_scores, np.asarray(calibration.knots), depth)
    per_query = weights @ np.asarray(calibration.probabilities)
    if calibration.replicates:
        curves = np.asarray(calibration.replicates).T
    else:
        curves = np.asarray(calibration.probabilities)[:, np.newaxis]
    per_query_by_curve = weights @ curves
    resampled = _bootstrap_means(per_query_by_curve, n_resamples=n_resamples, seed=seed)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(resampled, [tail, 1.0 - tail])
    return PrecisionEstimate(
        k=depth,
        estimate=float(per_query.mean()),
        low=float(low),
        high=float(high),
        confidence=confidence,
        n_queries=int(per_query.size),
        n_resamples=n_resamples,
        seed=seed,
        calibration_method=calibration.method,
        calibration_queries=calibration.n_queries,
        calibration_replicates=len(calibration.replicates),
        calibration_fingerprint=calibration.fingerprint,
        per_query=_as_tuple(per_query),
    )


def _fit_isotonic(
    scores: FloatArray, totals: FloatArray, hits: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Weighted isotonic regression over the distinct scores, kept as the first and last
    score of each block of equal probability (linear between blocks, as scikit-learn's
    ``IsotonicRegression`` interpolates)."""
    fitted = scipy.optimize.isotonic_regression(hits / totals, weights=totals, increasing=True).x
    ends = np.zeros(fitted.size, dtype=bool)
    ends[[0, -1]] = True
    changes = np.diff(fitted) != 0.0
    ends[:-1] |= changes
    ends[1:] |= changes
    return scores[ends], fitted[ends]


def _fit_logistic(
    scores: FloatArray, totals: FloatArray, hits: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Maximum-likelihood ``sigmoid(a + b * score)`` on weighted pairs, kept piecewise-linear
    on score quantiles."""
    knots = np.unique(np.quantile(scores, np.linspace(0.0, 1.0, _LOGISTIC_KNOTS)))
    share = float(hits.sum() / totals.sum())
    if share in {0.0, 1.0} or scores.size == 1:
        return knots, np.full(knots.size, share)
    centre = float(np.average(scores, weights=totals))
    spread = float(np.sqrt(np.average((scores - centre) ** 2, weights=totals)))
    standard = (scores - centre) / spread
    ridge = _LOGISTIC_RIDGE * float(totals.sum())

    def loss(parameters: FloatArray) -> tuple[float, FloatArray]:
        logits = parameters[0] + parameters[1] * standard
        value = float(
            np.sum(totals * np.logaddexp(0.0, logits) - hits * logits)
            + ridge * parameters[1] ** 2 / 2.0
        )
        residual = totals * scipy.special.expit(logits) - hits
        gradient = np.array([residual.sum(), float(residual @ standard) + ridge * parameters[1]])
        return value, gradient

    start = np.array([math.log(share / (1.0 - share)), 0.0])
    result = scipy.optimize.minimize(loss, start, jac=True, method="L-BFGS-B")
    intercept, slope = (float(value) for value in result.x)
    logits = intercept + slope * (knots - centre) / spread
    probabilities: FloatArray = scipy.special.expit(logits)
    return knots, probabilities


CALIBRATION_METHODS: Mapping[str, _Fitter] = {
    "isotonic": _fit_isotonic,
    "logistic": _fit_logistic,
}
"""The calibration methods by name: each maps the distinct scores, how many pairs have each
(weighted) and how many of those are relevant to a piecewise-linear curve (knots and
probabilities)."""


def _knot_weights(ranked_scores: Sequence[npt.ArrayLike], knots: FloatArray, k: int) -> FloatArray:
    """Matrix ``(queries, knots)`` such that ``weights @ probabilities`` is each query's
    expected precision@k under the curve through ``(knots, probabilities)``: every score's
    linear interpolation weights on its two neighbouring knots, divided by ``k``."""
    tops = [_query_scores(scores, index)[:k] for index, scores in enumerate(ranked_scores)]
    lengths = np.array([top.size for top in tops], dtype=np.int64)
    flat = np.concatenate(tops) if tops else np.empty(0)
    query_of_score = np.repeat(np.arange(len(tops)), lengths)
    if knots.size == 1:
        counts = np.bincount(query_of_score, minlength=len(tops)).astype(np.float64)
        return (counts / k)[:, np.newaxis]
    cells = len(tops) * knots.size
    clipped = np.clip(flat, knots[0], knots[-1])
    left = np.clip(np.searchsorted(knots, clipped, side="right") - 1, 0, knots.size - 2)
    share_right = (clipped - knots[left]) / (knots[left + 1] - knots[left])
    rows = query_of_score * knots.size
    weights = np.bincount(rows + left, weights=1.0 - share_right, minlength=cells).astype(
        np.float64
    )
    weights += np.bincount(rows + left + 1, weights=share_right, minlength=cells)
    return weights.reshape(len(tops), knots.size) / k


def _bootstrap_means(values: FloatArray, *, n_resamples: int, seed: int) -> FloatArray:
    """Means of ``n_resamples`` bootstrap resamples of the rows of ``values`` (queries x
    curves), each resample scored with one column drawn at random."""
    n_queries, n_curves = values.shape
    rng = np.random.default_rng(seed)
    columns = rng.integers(0, n_curves, size=n_resamples)
    means = np.empty(n_resamples)
    block = max(1, _BLOCK_CELLS // n_queries)
    for start in range(0, n_resamples, block):
        stop = min(start + block, n_resamples)
        rows = rng.integers(0, n_queries, size=(stop - start, n_queries))
        means[start:stop] = values[rows, columns[start:stop, np.newaxis]].mean(axis=1)
    return means


def _top_pairs(
    ranked_scores: Sequence[npt.ArrayLike], ranked_relevant: Sequence[npt.ArrayLike], k: int
) -> tuple[FloatArray, npt.NDArray[np.bool_], npt.NDArray[np.intp]]:
    """The scores and relevance of the top ``k`` documents of every goldset query, flat, and
    the query each pair belongs to; raises :class:`InputError` for input that cannot be
    calibrated."""
    if len(ranked_scores) != len(ranked_relevant):
        raise InputError(
            f"{len(ranked_scores)} queries have scores but {len(ranked_relevant)} have "
            "relevance: give both for every goldset query",
            field="ranked_relevant",
        )
    tops: list[FloatArray] = []
    flags: list[npt.NDArray[np.bool_]] = []
    for index, (scores, relevant) in enumerate(zip(ranked_scores, ranked_relevant, strict=True)):
        query_scores = _query_scores(scores, index)
        query_relevant = _query_relevance(relevant, index)
        if query_scores.shape != query_relevant.shape:
            raise InputError(
                f"query {index} has {query_scores.size} scores but {query_relevant.size} "
                "relevance flags",
                field="ranked_relevant",
            )
        tops.append(query_scores[:k])
        flags.append(query_relevant[:k])
    if sum(top.size for top in tops) == 0:
        raise InputError(
            "the goldset runs retrieved no document: fit on goldset runs that returned results",
            field="ranked_scores",
        )
    relevant_flat = np.concatenate(flags)
    if not relevant_flat.any():
        raise InputError(
            f"none of the top {k} documents of the goldset runs is relevant, so scores cannot "
            "be calibrated: check that the judgments belong to these runs' queries and corpus",
            field="ranked_relevant",
        )
    query_of_pair = np.repeat(np.arange(len(tops)), [top.size for top in tops])
    return np.concatenate(tops), relevant_flat, query_of_pair


def _query_scores(scores: npt.ArrayLike, index: int) -> FloatArray:
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim != 1:
        raise InputError(
            f"query {index} has scores of shape {array.shape}: give one 1-D array per query",
            field="ranked_scores",
        )
    if not np.isfinite(array).all():
        raise InputError(
            f"query {index} has a score that is not a finite number", field="ranked_scores"
        )
    return array


def _query_relevance(relevant: npt.ArrayLike, index: int) -> npt.NDArray[np.bool_]:
    array = np.asarray(relevant)
    if array.ndim != 1 or (array.dtype != np.bool_ and not np.isin(array, (0, 1)).all()):
        raise InputError(
            f"query {index} has relevance that is not one flag per document: give True/False "
            "(grade at or above the threshold), not grades",
            field="ranked_relevant",
        )
    return array.astype(bool)


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be a positive integer, not {k!r}")


def _as_tuple(values: FloatArray) -> tuple[float, ...]:
    return tuple(values.astype(np.float64).tolist())


def _float_tuple(data: Mapping[str, object], name: str) -> tuple[float, ...]:
    values = data.get(name)
    if not isinstance(values, list) or not all(
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        for value in values
    ):
        raise InputError("expected a list of finite numbers", field=name)
    return tuple(float(value) for value in values)


def _int(data: Mapping[str, object], name: str) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError("expected an integer", field=name)
    return value


def _positive_int(data: Mapping[str, object], name: str) -> int:
    value = _int(data, name)
    if value < 1:
        raise InputError("expected a positive integer", field=name)
    return value
