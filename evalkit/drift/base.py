"""The detector base class and registry (the result record is ``records.drift.DriftResult``).

A detector takes keyword-only settings in ``__init__``, learns in ``fit(reference) -> self``
and judges in ``test(current) -> DriftResult``; ``make_detector(name, **settings)`` builds a
registered one from configuration.
"""

from __future__ import annotations

import inspect
import math
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Final, Self, TypeVar

import numpy as np
import numpy.typing as npt

from evalkit.errors import ConfigError, EvalkitError, InputError
from evalkit.records.drift import DriftResult

__all__ = [
    "DETECTORS",
    "DriftDetector",
    "LabelSums",
    "NotFittedError",
    "as_embeddings",
    "available_methods",
    "make_detector",
    "permutation_p_value",
    "permuted_label_sums",
    "random_assignments",
    "register_detector",
    "require_finite",
]

FloatArray = npt.NDArray[np.float64]
Embeddings = npt.NDArray[np.floating[Any]]


# Statistics of two labellings closer than this fraction of the largest one are the same
# statistic rounded differently (sums in single precision, or along another path).
_TIE_RTOL: Final = 1e-6


class NotFittedError(EvalkitError, RuntimeError):
    """A detector was asked for a verdict before it learned a reference window."""


def as_embeddings(
    values: npt.ArrayLike,
    *,
    name: str,
    min_rows: int = 2,
    dimension: int | None = None,
    check_finite: bool = True,
) -> Embeddings:
    """Validate an (n, d) array-like of embeddings, or raise InputError saying why.

    float32 stays float32 (halves memory traffic), anything else becomes float64.
    ``check_finite=False`` leaves the NaN check to a detector that sees every value
    (it must call ``require_finite`` when its sums are not finite).
    """
    try:
        array = np.asarray(values)
        if array.dtype != np.float32:
            array = array.astype(np.float64)
    except (TypeError, ValueError) as error:
        raise InputError(
            f"{name} must be a numeric (n, dimension) array of embeddings: {error}"
        ) from error
    if array.ndim != 2:
        raise InputError(
            f"{name} must be a 2-D (n, dimension) array of embeddings, got shape {array.shape}; "
            "stack one embedding per row"
        )
    if array.shape[0] < min_rows:
        raise InputError(
            f"{name} has {array.shape[0]} rows; this detector needs at least {min_rows}"
        )
    if array.shape[1] == 0:
        raise InputError(f"{name} has zero columns; pass embeddings with at least one dimension")
    if dimension is not None and array.shape[1] != dimension:
        raise InputError(
            f"{name} has dimension {array.shape[1]} but the reference had {dimension}; "
            "embed both windows with the same model"
        )
    if check_finite:
        require_finite(array, name=name)
    return array


def require_finite(array: Embeddings, *, name: str) -> None:
    """Raise InputError naming the first rows of ``array`` with a NaN or infinite value."""
    if not np.isfinite(array).all():
        rows = np.flatnonzero(~np.isfinite(array).all(axis=1))
        raise InputError(
            f"{name} contains NaN or infinite values (first bad rows: {rows[:5].tolist()}); "
            "drop or re-embed those rows"
        )


def permutation_p_value(observed: float, null: FloatArray) -> float:
    """Monte-Carlo permutation p-value ``(1 + #{null >= observed}) / (1 + len(null))``.

    Valid at every level; a relabelling within ``1e-6`` (relative) below the observed one is
    a tie rounded another way and counts as reaching it (docs/drift.md, "How `mmd` works").
    """
    scale = max(abs(observed), float(np.abs(null).max(initial=0.0)))
    exceed = int(np.count_nonzero(null >= observed - _TIE_RTOL * scale))
    return (1.0 + exceed) / (1.0 + null.size)


def random_assignments(
    n_reference: int,
    n_pool: int,
    n_permutations: int,
    rng: np.random.Generator,
    *,
    chunk: int,
    dtype: type[np.floating[Any]] = np.float64,
) -> Iterator[npt.NDArray[np.floating[Any]]]:
    """Yield (n_pool, <= chunk) 0/1 matrices: each column marks a uniformly random reference set.

    Each column has exactly ``n_reference`` ones, drawn independently of the other columns
    (random keys, smallest ``n_reference`` by partition), so a permutation statistic that is
    linear or quadratic in the labels becomes one matrix product per chunk.
    """
    remaining = n_permutations
    while remaining > 0:
        size = min(chunk, remaining)
        keys = rng.random((size, n_pool), dtype=np.float32)
        chosen = np.argpartition(keys, n_reference - 1, axis=1)[:, :n_reference]
        labels = np.zeros((size, n_pool), dtype=dtype)
        np.put_along_axis(labels, chosen, 1.0, axis=1)
        yield labels.T
        remaining -= size


@dataclass(frozen=True, slots=True)
class LabelSums:
    """Sums of feature rows over the reference set, for the observed and permuted labellings.

    With ``S = Σ_{i in reference} φ_i`` and ``T = Σ_i φ_i``: ``square[j] = S·S`` and
    ``cross[j] = S·T`` for labelling ``j`` (0 the observed one), and ``total = T·T``.
    """

    square: FloatArray
    cross: FloatArray
    total: float
    scheme: str

    @property
    def n_permutations(self) -> int:
        """Number of permuted labellings (excluding the observed one)."""
        return int(self.square.size - 1)


# Memory one chunk of label or spectrum matrices may take in the permutation helpers.
_CHUNK_BYTES = 32 * 2**20


def permuted_label_sums(
    features: npt.NDArray[np.floating[Any]],
    n_reference: int,
    *,
    n_permutations: int,
    rng: np.random.Generator,
) -> LabelSums:
    """``LabelSums`` of the observed labelling (first ``n_reference`` rows) and permutations.

    Small pools draw uniform relabellings; a pool of more than ``n_permutations + 1`` rows
    uses every cyclic shift in a random row order, a group, so the test stays exact, by one
    FFT per feature (docs/drift.md, "How `mmd` works"). Sums of centred features stay
    O(√n), so float32 input stays accurate; totals accumulate in float64.
    """
    n_pool = features.shape[0]
    mean = features.mean(axis=0, dtype=np.float64)
    if n_pool - 1 > n_permutations:
        centred_square, centred_cross = _cyclic_centred_sums(features, n_reference, mean, rng)
        scheme = "cyclic"
    else:
        centred_square, centred_cross = _random_centred_sums(
            features, n_reference, mean, n_permutations, rng
        )
        scheme = "random"
    mean_square = float(mean @ mean)
    return LabelSums(
        square=centred_square + 2.0 * n_reference * centred_cross + n_reference**2 * mean_square,
        cross=n_pool * centred_cross + n_reference * n_pool * mean_square,
        total=n_pool**2 * mean_square,
        scheme=scheme,
    )


def _random_centred_sums(
    features: npt.NDArray[np.floating[Any]],
    n_reference: int,
    mean: FloatArray,
    n_permutations: int,
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray]:
    centred = features - mean.astype(features.dtype)
    n_pool = centred.shape[0]
    observed = np.zeros((n_pool, 1), dtype=centred.dtype)
    observed[:n_reference] = 1.0
    squares, crosses = [], []
    chunk = max(1, _CHUNK_BYTES // (centred.itemsize * n_pool))
    for index, permuted in enumerate(
        random_assignments(
            n_reference, n_pool, n_permutations, rng, chunk=chunk, dtype=centred.dtype.type
        )
    ):
        # The observed labelling goes through the same product as the relabellings, so
        # that a relabelling equal to it gives the same statistic, not one rounded apart.
        labels = np.hstack([observed, permuted]) if index == 0 else permuted
        sums = (centred.T @ labels).astype(np.float64)
        squares.append(np.einsum("ij,ij->j", sums, sums))
        crosses.append(mean @ sums)
    return np.concatenate(squares), np.concatenate(crosses)


def _cyclic_centred_sums(
    features: npt.NDArray[np.floating[Any]],
    n_reference: int,
    mean: FloatArray,
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray]:
    import scipy.fft

    n_pool = features.shape[0]
    order = rng.permutation(n_pool)
    labels = (order < n_reference).astype(features.dtype)
    # One feature per row, columns in the random order: FFTs run along the contiguous axis
    # (cheapest when ``features`` is the transpose of a C-contiguous array).
    shuffled = np.take(features.T, order, axis=1)
    shuffled -= mean.astype(features.dtype)[:, None]
    projection = mean.astype(features.dtype) @ shuffled
    # A fast FFT length avoids Bluestein's slow path for awkward n; zero padding to at
    # least 2n - 1 with the sequence repeated keeps shifts 0..n-1 free of wrap-around.
    length = n_pool
    if scipy.fft.next_fast_len(n_pool, real=True) != n_pool:
        length = scipy.fft.next_fast_len(2 * n_pool - 1, real=True)
        shuffled = np.concatenate([shuffled, shuffled[:, : n_pool - 1]], axis=1)
        projection = np.concatenate([projection, projection[: n_pool - 1]])
    label_spectrum = np.conj(scipy.fft.rfft(labels, n=length))

    def correlate(rows: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.floating[Any]]:
        spectrum = scipy.fft.rfft(rows, n=length, axis=-1)
        spectrum *= label_spectrum
        result: npt.NDArray[np.floating[Any]] = scipy.fft.irfft(spectrum, n=length, axis=-1)
        return result[..., :n_pool]

    squares = np.zeros(n_pool)
    step = max(1, _CHUNK_BYTES // (2 * shuffled.itemsize * length))
    for start in range(0, shuffled.shape[0], step):
        sums = correlate(shuffled[start : start + step])
        squares += np.einsum("ij,ij->j", sums, sums)
    crosses = correlate(projection).astype(np.float64)
    return squares, crosses


def resolve_seed(seed: int | None) -> int:
    """The seed to record: the given one, or fresh entropy when None (recorded for replay)."""
    return secrets.randbits(32) if seed is None else int(seed)


class DriftDetector(ABC):
    """Base class: settings in ``__init__``, ``fit(reference) -> self``, ``test(current)``.

    Subclasses are registered under their method name and implement ``_test``; ``fit``
    validates and stores (a copy of) the reference window.
    """

    method: ClassVar[str] = ""
    checks_finite_in_test: ClassVar[bool] = False
    """True for detectors whose ``_test`` finds NaN and infinite values itself, in sums
    it computes anyway (one pass over each window saved); ``_test`` then raises the same
    InputError ``fit`` and ``test`` raise for the others, naming the window."""

    def __init__(self, *, alpha: float = 0.05, seed: int | None = 0) -> None:
        if not 0.0 < alpha < 1.0 or math.isnan(alpha):
            raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
        self.alpha = float(alpha)
        self.seed = seed
        self._reference: Embeddings | None = None

    @property
    def min_rows(self) -> int:
        """Fewest rows each window must have for this detector's statistic to exist."""
        return 2

    @property
    def is_fitted(self) -> bool:
        """True once ``fit`` has stored a reference window."""
        return self._reference is not None

    @property
    def reference(self) -> Embeddings:
        """The fitted reference window (float32 or float64, read-only)."""
        if self._reference is None:
            raise NotFittedError(
                f"{type(self).__name__} has no reference yet: call fit(reference) with the "
                "reference window's embeddings before test(current)"
            )
        return self._reference

    def fit(self, reference: npt.ArrayLike) -> Self:
        """Learn the reference window (an (n, d) array of embeddings); returns ``self``."""
        array = as_embeddings(
            reference,
            name="reference",
            min_rows=self.min_rows,
            check_finite=not self.checks_finite_in_test,
        ).copy()
        array.setflags(write=False)
        self._reference = array
        return self

    def test(self, current: npt.ArrayLike) -> DriftResult:
        """Test whether ``current`` (an (n, d) array) comes from the reference distribution."""
        reference = self.reference
        array = as_embeddings(
            current,
            name="current",
            min_rows=self.min_rows,
            dimension=reference.shape[1],
            check_finite=not self.checks_finite_in_test,
        )
        return self._test(reference, array)

    @abstractmethod
    def _test(self, reference: Embeddings, current: Embeddings) -> DriftResult:
        """Compute the result for validated arrays."""

    def _result(
        self,
        *,
        statistic: float,
        p_value: float,
        effect_size: float,
        n_reference: int,
        n_current: int,
        seed: int | None,
        details: Mapping[str, Any],
    ) -> DriftResult:
        # A statistic that could not be computed is no evidence of drift.
        computed = not (math.isnan(statistic) or math.isnan(p_value))
        return DriftResult(
            statistic=float(statistic),
            p_value=float(p_value),
            threshold=self.alpha,
            is_drift=computed and p_value <= self.alpha,
            effect_size=float(effect_size),
            method=self.method,
            n_reference=n_reference,
            n_current=n_current,
            seed=seed,
            details=MappingProxyType(dict(details)),
        )

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in self.get_params().items())
        return f"{type(self).__name__}({settings})"

    def get_params(self) -> dict[str, Any]:
        """The detector's settings: its constructor's keyword arguments and their values."""
        parameters = inspect.signature(type(self).__init__).parameters
        return {name: getattr(self, name) for name in parameters if name != "self"}


_REGISTRY: dict[str, type[DriftDetector]] = {}
DETECTORS: Mapping[str, type[DriftDetector]] = MappingProxyType(_REGISTRY)
"""Registered detector classes by method name (read-only view)."""

DetectorT = TypeVar("DetectorT", bound=type[DriftDetector])


def register_detector(name: str) -> Callable[[DetectorT], DetectorT]:
    """Class decorator: register a detector under its canonical method ``name``."""

    def register(cls: DetectorT) -> DetectorT:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"drift method {name!r} is already registered")
        cls.method = name
        _REGISTRY[name] = cls
        return cls

    return register


def available_methods() -> tuple[str, ...]:
    """Names of every registered drift method, sorted."""
    return tuple(sorted(_REGISTRY))


def make_detector(method: str, **settings: Any) -> DriftDetector:
    """Build the detector registered as ``method`` with keyword ``settings``.

    Raises ConfigError naming the known methods, or the setting that was not understood.
    """
    try:
        cls = _REGISTRY[method]
    except KeyError:
        known = ", ".join(available_methods())
        raise ConfigError(f"unknown drift method {method!r}; choose one of: {known}") from None
    try:
        return cls(**settings)
    except TypeError as error:
        raise ConfigError(f"invalid settings for drift method {method!r}: {error}") from error
