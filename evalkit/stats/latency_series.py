"""A series of runs' latency: each run's quantile against the quiet runs before it.

Latency moves from day to day with the machine's load by more than one run's sampling of
queries says, so a run's quantile is judged against the spread of the last quiet runs' (a
prediction interval on ``log q``), and a regression's runs never join that reference:
docs/gate.md, "The latency_regression rule: a series of runs".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np
import scipy

from evalkit.errors import ConfigError, InputError
from evalkit.stats.decision import Decision
from evalkit.stats.latency import (
    DEFAULT_CONFIDENCE,
    DEFAULT_MAX_INCREASE,
    latency_decision,
    percent,
)

__all__ = [
    "DEFAULT_REFERENCE_RUNS",
    "DEFAULT_WARMUP",
    "ReferenceComparison",
    "SeriesVerdict",
    "compare_with_reference",
    "judge_latency_series",
]

DEFAULT_WARMUP: Final = 5
"""Quiet runs the reference needs before a run is judged (the precision rules' warm-up)."""
DEFAULT_REFERENCE_RUNS: Final = 10
"""Quiet runs the reference holds: the most recent ones."""


@dataclass(frozen=True, slots=True)
class ReferenceComparison:
    """How one run's latency quantile compares with the quiet runs' before it.

    ``reference_ms`` is their level (the geometric mean of their quantiles), ``spread`` the
    standard deviation of their log quantiles (0.1 is about 10 % from run to run);
    ``increase`` is ``candidate_ms / reference_ms - 1`` and ``ci_low`` / ``ci_high`` bound
    the rise a quiet run could show at ``confidence``, shifted by the observed one.
    """

    quantile: str
    candidate_ms: float
    reference_ms: float
    reference_low_ms: float
    reference_high_ms: float
    spread: float
    n_reference: int
    increase: float
    ci_low: float
    ci_high: float
    confidence: float
    max_increase: float
    decision: Decision

    def summary(self, runs: str = "runs") -> str:
        """One line: ``p50 latency 2.07 ms against 1.02 ms, the level of 7 quiet runs
        (0.95-1.10 ms, +/-4.1 % from run to run) (+103.0 %, 95 % interval [+80.2 %, +128.9 %];
        allowed +20.0 %): regression``; ``runs`` names what the series is of."""
        one = runs.removesuffix("s")
        return (
            f"{self.quantile} latency {self.candidate_ms:.3g} ms against {self.reference_ms:.3g}"
            f" ms, the level of {self.n_reference} quiet {runs} ({self.reference_low_ms:.3g}-"
            f"{self.reference_high_ms:.3g} ms, +/-{self.spread * 100:.1f} % from {one} to {one}) "
            f"({percent(self.increase)}, {round(self.confidence * 100)} % interval "
            f"[{percent(self.ci_low)}, {percent(self.ci_high)}]; allowed "
            f"{percent(self.max_increase)}): {self.decision.value}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the fields, then the method."""
        return {
            **asdict(self),
            "decision": self.decision.value,
            "method": "prediction interval of the log quantile over the quiet reference runs",
        }


def compare_with_reference(
    reference: Sequence[float],
    candidate: float,
    *,
    quantile: str,
    max_increase: float = DEFAULT_MAX_INCREASE,
    confidence: float = DEFAULT_CONFIDENCE,
) -> ReferenceComparison:
    """Compare one run's quantile ``candidate`` (milliseconds) with the quantiles of the
    quiet ``reference`` runs (see the module's docstring). ``quantile`` is the name shown.

    Raises InputError when a value is not a positive finite number or the reference holds
    fewer than two distinct values (its spread, and so the interval, would be unknown: not
    measurable); ConfigError on a bad ``confidence`` or ``max_increase``.
    """
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    if not (max_increase >= 0.0 and math.isfinite(max_increase)):
        raise ConfigError(f"max_increase must be a finite share >= 0, got {max_increase!r}")
    values = np.asarray(reference, dtype=np.float64)
    if not (np.isfinite(values).all() and (values > 0).all() and candidate > 0):
        raise InputError("latency quantiles must be positive finite milliseconds")
    if len(np.unique(values)) < 2:
        raise InputError(
            f"not measurable: the {len(values)} reference runs' quantiles take fewer than two "
            "distinct values, so their run-to-run spread is unknown"
        )
    logs = np.log(values)
    n = len(values)
    centre = float(logs.mean())
    spread = float(logs.std(ddof=1))
    t = float(scipy.special.stdtrit(n - 1, 0.5 + confidence / 2.0))
    half = t * spread * math.sqrt(1.0 + 1.0 / n)
    rise = math.log(candidate) - centre
    ci_low, ci_high = math.expm1(rise - half), math.expm1(rise + half)
    return ReferenceComparison(
        quantile=quantile,
        candidate_ms=float(candidate),
        reference_ms=math.exp(centre),
        reference_low_ms=float(values.min()),
        reference_high_ms=float(values.max()),
        spread=spread,
        n_reference=n,
        increase=math.expm1(rise),
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=confidence,
        max_increase=max_increase,
        decision=latency_decision(ci_low=ci_low, ci_high=ci_high, max_increase=max_increase),
    )


@dataclass(frozen=True, slots=True)
class SeriesVerdict:
    """One run of a series as ``judge_latency_series`` judged it: its comparison with the
    reference (None while the reference is warming up), whether a slowdown episode is
    under way after it, and the positions of its reference runs in the series."""

    comparison: ReferenceComparison | None
    firing: bool
    reference: tuple[int, ...]


def judge_latency_series(
    quantiles: Sequence[float],
    *,
    quantile: str,
    max_increase: float = DEFAULT_MAX_INCREASE,
    confidence: float = DEFAULT_CONFIDENCE,
    warmup: int = DEFAULT_WARMUP,
    reference_runs: int = DEFAULT_REFERENCE_RUNS,
) -> list[SeriesVerdict]:
    """Judge each run of a series (``quantiles``: each run's latency quantile in
    milliseconds, oldest first) against the quiet runs before it; one verdict per run.

    A regression starts an episode; it ends on the first run whose rise is back within
    ``max_increase``. Runs of an episode never join the reference; every other run does.
    ConfigError when ``warmup`` is below 2 or ``reference_runs`` below ``warmup``.
    """
    if warmup < 2 or reference_runs < warmup:
        raise ConfigError(
            f"warmup must be at least 2 and reference_runs at least warmup, got warmup "
            f"{warmup} and reference_runs {reference_runs}"
        )
    quiet: list[int] = []
    firing = False
    verdicts = []
    for position, value in enumerate(quantiles):
        reference = tuple(quiet[-reference_runs:])
        values = [quantiles[index] for index in reference]
        comparison = None
        if len(reference) >= warmup and len(set(values)) >= 2:
            comparison = compare_with_reference(
                values,
                value,
                quantile=quantile,
                max_increase=max_increase,
                confidence=confidence,
            )
            if comparison.decision is Decision.REGRESSION:
                firing = True
            elif comparison.increase <= max_increase:
                firing = False
        if not firing:
            quiet.append(position)
        verdicts.append(SeriesVerdict(comparison, firing, reference))
    return verdicts
