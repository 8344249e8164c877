"""How many queries a golden set needs to detect a drop of a given size.

``queries_needed`` sizes a paired t-test exactly (non-central t distribution), which is
what the sign-flip permutation test approaches for the sample sizes a gate sees.
``power_table`` applies it to the spread of per-query differences measured between real
pairs of retrievers (``TYPICAL_SD_DIFFS``), for drops of 0.01, 0.02 and 0.05 nDCG@10.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import scipy

from evalkit.errors import ConfigError, InputError

__all__ = ["TYPICAL_SD_DIFFS", "PowerRow", "paired_t_power", "power_table", "queries_needed"]

TYPICAL_SD_DIFFS: Final[Mapping[str, float]] = {
    "SciFact nDCG@10, BM25 vs BM25+dense (RRF)": 0.2036,
    "SciFact nDCG@10, BM25 vs dense (all-MiniLM-L6-v2)": 0.3480,
}
"""Standard deviation of per-query nDCG@10 differences between two real retrievers.

Measured on the 300 BEIR SciFact test queries: the BM25 top-100 run of
``shared/data/reference_values`` (nDCG@10 0.6618) against an exact dense top-100 run with
all-MiniLM-L6-v2 (0.6451; 53 % of queries unchanged) and against the reciprocal-rank
fusion of the two (k=60; 0.6880; 67 % unchanged), scored with pytrec_eval. Re-measure with
``benchmarks/gate_calibration.py --measure-sd``.
"""

DEFAULT_EFFECTS: Final = (0.01, 0.02, 0.05)


@dataclass(frozen=True, slots=True)
class PowerRow:
    """Queries needed to detect a drop of ``effect`` when differences have ``sd_diff``."""

    source: str
    sd_diff: float
    effect: float
    queries_needed: int


def _check_level(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ConfigError(f"{name} must be strictly between 0 and 1, got {value!r}")


def paired_t_power(
    n_queries: npt.ArrayLike,
    standardized_effect: float,
    *,
    alpha: float = 0.05,
    one_sided: bool = True,
) -> npt.NDArray[np.float64]:
    """Power of a paired t-test on ``n_queries`` pairs for an effect of ``effect / sd``."""
    n = np.asarray(n_queries, dtype=np.float64)
    df = n - 1.0
    noncentrality = standardized_effect * np.sqrt(n)
    # scipy.special rather than scipy.stats.nct: the same functions without the
    # distribution machinery, which costs milliseconds per call in the sizing search.
    if one_sided:
        critical = scipy.special.stdtrit(df, 1.0 - alpha)
        return np.asarray(1.0 - scipy.special.nctdtr(df, noncentrality, critical), np.float64)
    critical = scipy.special.stdtrit(df, 1.0 - alpha / 2.0)
    upper = 1.0 - scipy.special.nctdtr(df, noncentrality, critical)
    lower = scipy.special.nctdtr(df, noncentrality, -critical)
    return np.asarray(upper + lower, dtype=np.float64)


def queries_needed(
    sd_diff: float,
    effect: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    one_sided: bool = True,
) -> int:
    """Smallest number of queries for which a paired t-test detects ``effect`` with ``power``.

    ``sd_diff`` is the standard deviation of the per-query differences, ``effect`` the size
    of the mean difference to detect (positive, in the measure's units). The normal
    approximation ``((z_alpha + z_power) * sd / effect) ** 2`` gives a starting point that
    is refined with the exact non-central t power. Differences without spread
    (``sd_diff == 0``) are detectable with the minimum of 2 queries.
    """
    if not (math.isfinite(sd_diff) and sd_diff >= 0.0):
        raise InputError(f"sd_diff must be a finite number >= 0, got {sd_diff!r}")
    if not (math.isfinite(effect) and effect > 0.0):
        raise InputError(f"effect must be a finite number > 0, got {effect!r}")
    _check_level("alpha", alpha)
    _check_level("power", power)
    if sd_diff == 0.0:
        return 2
    standardized = effect / sd_diff
    tail = alpha if one_sided else alpha / 2.0
    z_total = float(scipy.special.ndtri(1.0 - tail) + scipy.special.ndtri(power))

    def reaches(n: int) -> bool:
        reached = paired_t_power(n, standardized, alpha=alpha, one_sided=one_sided)
        return bool(reached >= power)

    if reaches(2):
        return 2
    # The normal approximation never overestimates; power rises with n, so bisect between
    # it and the first doubling that reaches the target.
    low = max(2, math.ceil((z_total / standardized) ** 2) - 1)
    if reaches(low):
        low = 2
    high = low + 1
    while not reaches(high):
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if reaches(middle) else (middle, high)
    return high


def power_table(
    sd_diffs: Mapping[str, float] | None = None,
    effects: Sequence[float] = DEFAULT_EFFECTS,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    one_sided: bool = True,
) -> tuple[PowerRow, ...]:
    """Queries needed per (spread of differences, drop size) pair.

    ``sd_diffs`` maps a description of where a spread came from to its value; by default
    the spreads measured on SciFact (``TYPICAL_SD_DIFFS``).
    """
    spreads = TYPICAL_SD_DIFFS if sd_diffs is None else sd_diffs
    return tuple(
        PowerRow(
            source=source,
            sd_diff=float(sd),
            effect=float(effect),
            queries_needed=queries_needed(
                sd, effect, alpha=alpha, power=power, one_sided=one_sided
            ),
        )
        for source, sd in spreads.items()
        for effect in effects
    )
