"""Sequential change detection on a series of per-run metric means (e.g. nDCG@10 per run).

``cusum`` and ``page_hinkley`` take a whole array, ``Cusum`` and ``PageHinkley`` one value at
a time, with the same Lindley recursion over baseline-standardised values. Units, levels and
recovery: docs/drift.md, "Sequential detection on metric series".
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Concatenate, Final, Literal, ParamSpec, TypedDict, Unpack

import numpy as np
import numpy.typing as npt

from evalkit.drift.base import FloatArray
from evalkit.errors import ConfigError, InputError

__all__ = [
    "RECOVERY_RUNS",
    "AlertLevel",
    "Cusum",
    "PageHinkley",
    "SequentialState",
    "SequentialTrace",
    "cusum",
    "page_hinkley",
    "sequential_trace",
    "warmup_widening",
]

Direction = Literal["drop", "rise"]
IntArray = npt.NDArray[np.int64]

RECOVERY_RUNS: Final = 4
"""Consecutive values back at the baseline that reset a statistic which passed ``h_alert``
(docs/drift.md, Recovery). Under a sustained 1 sd drop four in a row come by chance with
probability 0.009; three cleared a CUSUM during such a drop on 67 % of series against 31 %
(``benchmarks/drift_calibration.py --sequential-recovery``)."""


class AlertLevel(StrEnum):
    """Severity of one point of a sequential detector."""

    OK = "ok"
    WARNING = "warning"
    ALERT = "alert"


@dataclass(frozen=True, slots=True)
class SequentialState:
    """The detector's state after one value: statistic (sd units), level, change point.

    ``change_point`` is the index of the first run believed to be after the change, or None
    while the statistic is zero (or during warm-up).
    """

    index: int
    value: float
    statistic: float
    level: AlertLevel
    change_point: int | None


@dataclass(frozen=True, slots=True)
class SequentialTrace:
    """Per-point states of a sequential detector over a whole series."""

    method: str
    values: FloatArray
    statistic: FloatArray
    levels: tuple[AlertLevel, ...]
    change_points: IntArray
    baseline_mean: float
    baseline_sd: float
    monitoring_start: int

    def __len__(self) -> int:
        return int(self.values.size)

    def state(self, index: int) -> SequentialState:
        """The state after value ``index``."""
        change = int(self.change_points[index])
        return SequentialState(
            index=index,
            value=float(self.values[index]),
            statistic=float(self.statistic[index]),
            level=self.levels[index],
            change_point=None if change < 0 else change,
        )

    def first(self, level: AlertLevel) -> int | None:
        """Index of the first point at ``level`` or worse, None if there is none."""
        rank = _LEVEL_RANK[level]
        for index, point_level in enumerate(self.levels):
            if _LEVEL_RANK[point_level] >= rank:
                return index
        return None

    @property
    def first_warning(self) -> int | None:
        """Index of the first point at warning level or worse."""
        return self.first(AlertLevel.WARNING)

    @property
    def first_alert(self) -> int | None:
        """Index of the first point at alert level."""
        return self.first(AlertLevel.ALERT)


_LEVEL_RANK = {AlertLevel.OK: 0, AlertLevel.WARNING: 1, AlertLevel.ALERT: 2}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Settings:
    allowance: float = 0.5
    h_warning: float = 5.0
    h_alert: float = 8.0
    warmup: int = 20
    target: float | None = None
    sd: float | None = None
    min_sd: float = 1e-3
    direction: Direction = "drop"

    def check(self, method: str) -> None:
        if self.allowance < 0.0:
            raise ConfigError(f"{method}: the allowance (k or delta) must be >= 0")
        if not 0.0 < self.h_warning < self.h_alert:
            raise ConfigError(
                f"{method}: need 0 < h_warning < h_alert, got {self.h_warning} and {self.h_alert}"
            )
        if self.direction not in ("drop", "rise"):
            raise ConfigError(f"{method}: direction must be 'drop' or 'rise'")
        if self.sd is not None and not self.sd > 0.0:
            raise ConfigError(f"{method}: sd must be positive, got {self.sd}")
        if self.min_sd <= 0.0:
            raise ConfigError(f"{method}: min_sd must be positive")
        if self.warmup_length(method) > 0 and self.warmup < 2:
            raise ConfigError(
                f"{method}: warmup must be at least 2 to estimate the baseline, or give "
                "target and sd"
            )
        if self.warmup < 0:
            raise ConfigError(f"{method}: warmup must be >= 0")

    def warmup_length(self, method: str) -> int:
        """Values used for the baseline before monitoring starts (0 when it is given)."""
        needs_target = method == "cusum" and self.target is None
        return self.warmup if (self.sd is None or needs_target) else 0

    @property
    def sign(self) -> float:
        return 1.0 if self.direction == "drop" else -1.0

    def baseline(self, warmup_values: FloatArray) -> tuple[float, float]:
        if self.target is not None:
            mean = self.target
        else:
            mean = float(np.mean(warmup_values)) if warmup_values.size else 0.0
        if self.sd is not None:
            return mean, self.sd
        sd = float(np.std(warmup_values, ddof=1)) if warmup_values.size > 1 else 0.0
        return mean, max(sd * warmup_widening(warmup_values.size), self.min_sd)

    def back(self, values: FloatArray, mean: float, sd: float) -> npt.NDArray[np.bool_]:
        """Whether each value is back at the baseline ``mean``: within the allowance."""
        back: npt.NDArray[np.bool_] = self.sign * (mean - values) / sd - self.allowance <= 0.0
        return back

    def level(self, statistic: float) -> AlertLevel:
        if statistic > self.h_alert:
            return AlertLevel.ALERT
        if statistic > self.h_warning:
            return AlertLevel.WARNING
        return AlertLevel.OK


FULL_WARMUP = 20
"""Warm-up length from which the estimated sd is used as it is (see ``warmup_widening``)."""


@functools.cache
def warmup_widening(runs: int) -> float:
    """Factor on an sd estimated from ``runs`` warm-up values: 1 from ``FULL_WARMUP`` runs.

    ``U(runs) / U(20)``, ``U(n) = sqrt((n - 1) / chi2_0.05(n - 1))`` being the one-sided
    95 % upper bound of an sd from ``n`` values over the estimate (1.73 at 5 runs, 1.20 at
    10): a short warm-up's sd, often far too small, keeps the 20-run false-alarm rates.
    """
    if runs >= FULL_WARMUP or runs < 2:
        return 1.0
    # scipy.stats loads in about a second: only short warm-ups need it, once per length.
    from scipy.stats import chi2

    def bound(n: int) -> float:
        return math.sqrt((n - 1) / float(chi2.ppf(0.05, n - 1)))

    return bound(runs) / bound(FULL_WARMUP)


def _as_series(values: Sequence[float] | npt.ArrayLike) -> FloatArray:
    try:
        series = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InputError(f"the metric series must be numbers: {error}") from error
    if series.ndim != 1:
        raise InputError(f"the metric series must be 1-D, got shape {series.shape}")
    if not np.isfinite(series).all():
        bad = np.flatnonzero(~np.isfinite(series))[:5].tolist()
        raise InputError(
            f"the metric series has NaN or infinite values at {bad}; drop failed runs first"
        )
    return series


def _lindley(increments: FloatArray) -> tuple[FloatArray, IntArray]:
    """``S_t = max(0, S_{t-1} + z_t)`` with ``S_0 = 0``, and the index of the last zero.

    ``S_t = C_t - min(0, min_{j<=t} C_j)`` for the cumulative sum ``C``, so the recursion
    vectorises; the last index where ``C`` sat on its running minimum is the last zero.
    """
    cumulative = np.concatenate([[0.0], np.cumsum(increments)])
    running_min = np.minimum.accumulate(cumulative)
    statistic = (cumulative - running_min)[1:]
    steps = np.arange(cumulative.size)
    last_zero = np.maximum.accumulate(np.where(cumulative == running_min, steps, 0))[1:]
    return statistic, last_zero


def _recovering(
    statistic: FloatArray,
    last_zero: IntArray,
    increments: FloatArray,
    back: npt.NDArray[np.bool_],
    h_alert: float,
) -> tuple[FloatArray, IntArray]:
    """``_lindley``'s statistic and last zeros from the first point past ``h_alert`` on,
    recomputed one step at a time with the reset after ``RECOVERY_RUNS`` values ``back`` at
    the baseline; unchanged before."""
    raised = np.flatnonzero(statistic > h_alert)
    if raised.size == 0:
        return statistic, last_zero
    statistic, last_zero = statistic.copy(), last_zero.copy()
    first = int(raised[0])
    current, zero, calm, alarmed = float(statistic[first]), int(last_zero[first]), 0, True
    for step in range(first + 1, increments.size):
        current = max(0.0, current + float(increments[step]))
        calm = calm + 1 if back[step] else 0
        if alarmed and calm >= RECOVERY_RUNS:
            current, alarmed = 0.0, False
        alarmed = alarmed or current > h_alert
        if current == 0.0:
            zero = step + 1
        statistic[step], last_zero[step] = current, zero
    return statistic, last_zero


def _trace(
    method: str, values: FloatArray, settings: _Settings, running_reference: bool
) -> SequentialTrace:
    settings.check(method)
    start = settings.warmup_length(method)
    if values.size < start:
        raise InputError(
            f"{method}: the series has {values.size} values but the warm-up needs {start}"
        )
    mean, sd = settings.baseline(values[:start])
    if running_reference:
        reference = np.cumsum(values) / np.arange(1, values.size + 1)
    else:
        reference = np.full(values.size, mean)
    increments = settings.sign * (reference[start:] - values[start:]) / sd - settings.allowance
    back = settings.back(values[start:], mean, sd)
    monitored, last_zero = _recovering(*_lindley(increments), increments, back, settings.h_alert)
    statistic = np.zeros(values.size)
    statistic[start:] = monitored
    change_points = np.full(values.size, -1, dtype=np.int64)
    change_points[start:] = np.where(monitored > 0.0, start + last_zero, -1)
    levels = tuple(settings.level(float(value)) for value in statistic)
    return SequentialTrace(
        method=method,
        values=values,
        statistic=statistic,
        levels=levels,
        change_points=change_points,
        baseline_mean=mean,
        baseline_sd=sd,
        monitoring_start=start,
    )


def sequential_trace(
    method: str,
    values: Sequence[float] | npt.ArrayLike,
    *,
    allowance: float = 0.5,
    h_warning: float = 5.0,
    h_alert: float = 8.0,
    warmup: int = 20,
    min_sd: float = 1e-3,
) -> SequentialTrace:
    """``cusum`` or ``page_hinkley`` (``method``) over a whole series, ``allowance`` being
    the detector's slack (CUSUM's ``k``, Page-Hinkley's ``delta``)."""
    settings = _Settings(
        allowance=allowance, h_warning=h_warning, h_alert=h_alert, warmup=warmup, min_sd=min_sd
    )
    running_reference = method != "cusum"
    name = "page_hinkley" if running_reference else "cusum"
    return _trace(name, _as_series(values), settings, running_reference=running_reference)


class _Options(TypedDict, total=False):
    """The settings both detectors take, defaults in ``_Settings``: docs/drift.md."""

    h_warning: float
    h_alert: float
    warmup: int
    sd: float | None
    min_sd: float
    direction: Direction


class _Incremental:
    """One value at a time with the same arithmetic as the pure functions."""

    method = ""

    def __init__(self, settings: _Settings, *, running_reference: bool) -> None:
        settings.check(self.method)
        self._settings = settings
        self._running_reference = running_reference
        self.reset()

    def reset(self) -> None:
        """Forget everything, including the baseline: the next values are a new warm-up."""
        self._index = 0
        self._statistic = 0.0
        self._calm = 0
        self._alarmed = False
        self._last_zero = -1
        self._sum = 0.0
        self._warmup_values: list[float] = []
        self._baseline: tuple[float, float] | None = None
        if self._settings.warmup_length(self.method) == 0:
            self._baseline = self._settings.baseline(np.zeros(0))

    def trace(self, values: FloatArray) -> SequentialTrace:
        """The states over a whole series under these settings, this detector left as it is."""
        return _trace(self.method, values, self._settings, self._running_reference)

    @property
    def baseline(self) -> tuple[float, float] | None:
        """(mean, sd) once the warm-up is over, else None."""
        return self._baseline

    def update(self, value: float) -> SequentialState:
        """Add the next per-run value and return the state after it."""
        value = float(value)
        if not math.isfinite(value):
            raise InputError(f"{self.method}: value {value} is not finite; skip failed runs")
        index = self._index
        self._index += 1
        self._sum += value
        settings = self._settings
        if self._baseline is None:
            self._warmup_values.append(value)
            if len(self._warmup_values) == settings.warmup:
                self._baseline = settings.baseline(np.asarray(self._warmup_values))
                self._last_zero = index
            return SequentialState(index, value, 0.0, AlertLevel.OK, None)
        mean, sd = self._baseline
        reference = self._sum / self._index if self._running_reference else mean
        increment = settings.sign * (reference - value) / sd - settings.allowance
        self._statistic = max(0.0, self._statistic + increment)
        back = bool(settings.back(np.array([value]), mean, sd)[0])
        self._calm = self._calm + 1 if back else 0
        if self._alarmed and self._calm >= RECOVERY_RUNS:
            self._statistic, self._alarmed = 0.0, False
        self._alarmed = self._alarmed or self._statistic > settings.h_alert
        if self._statistic == 0.0:
            self._last_zero = index
        return SequentialState(
            index=index,
            value=value,
            statistic=self._statistic,
            level=settings.level(self._statistic),
            change_point=self._last_zero + 1 if self._statistic > 0.0 else None,
        )


class Cusum(_Incremental):
    """Incremental one-sided CUSUM; ``update(value)`` returns a SequentialState."""

    method = "cusum"

    def __init__(
        self, *, k: float = 0.5, target: float | None = None, **options: Unpack[_Options]
    ) -> None:
        settings = _Settings(allowance=k, target=target, **options)
        super().__init__(settings, running_reference=False)


class PageHinkley(_Incremental):
    """Incremental Page-Hinkley test; ``update(value)`` returns a SequentialState."""

    method = "page_hinkley"

    def __init__(self, *, delta: float = 0.5, **options: Unpack[_Options]) -> None:
        super().__init__(_Settings(allowance=delta, target=None, **options), running_reference=True)


_P = ParamSpec("_P")


def _over_series(
    name: str, detector: Callable[_P, _Incremental], doc: str
) -> Callable[Concatenate[Sequence[float] | npt.ArrayLike, _P], SequentialTrace]:
    """The pure function over a whole series taking ``detector``'s settings."""

    def over_series(
        values: Sequence[float] | npt.ArrayLike, /, *args: _P.args, **kwargs: _P.kwargs
    ) -> SequentialTrace:
        series = _as_series(values)
        return detector(*args, **kwargs).trace(series)

    over_series.__name__ = over_series.__qualname__ = name
    over_series.__doc__ = doc
    # help() and IDEs show the detector's settings and defaults, not *args/**kwargs.
    settings = inspect.signature(detector)
    values = inspect.signature(over_series).parameters["values"]
    over_series.__signature__ = settings.replace(  # type: ignore[attr-defined]
        parameters=[values, *settings.parameters.values()],
        return_annotation=SequentialTrace,
    )
    return over_series


cusum = _over_series("cusum", Cusum, "One-sided CUSUM over a whole series.")
page_hinkley = _over_series("page_hinkley", PageHinkley, "Page-Hinkley over a whole series.")
