"""Seeded samples of a window's traffic: uniform, or stratified by tenant or a tag.

Identical queries (same tenant, same text up to case and whitespace) count once. Within a
stratum the sample is drawn by seeded hashing, so the same seed over the same window gives
the same sample; each stratum gets its proportional share of ``n`` but at least
``min_per_stratum`` (``allocate_quotas``), so a small tenant is not left out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from evalkit.errors import ConfigError
from evalkit.records.requests import DEFAULT_MIN_PER_STRATUM, MAX_K
from evalkit.store.traffic.samples import (
    StoredSample,
    Stratification,
    save_sample,
    stratum_sizes,
)
from evalkit.traffic.windows import Window

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = ["SampleSpec", "allocate_quotas", "parse_stratification", "sample_window"]

IntArray = npt.NDArray[np.int64]

_TAG_KEY = re.compile(r"[A-Za-z0-9_.:-]+")


def parse_stratification(text: str | None) -> Stratification:
    """``None`` or ``none`` (uniform), ``tenant``, or ``tag:KEY``; ConfigError otherwise."""
    if text is None or text == "none":
        return Stratification()
    if text == "tenant":
        return Stratification("tenant")
    kind, _, key = text.partition(":")
    if kind == "tag" and _TAG_KEY.fullmatch(key):
        return Stratification("tag", key)
    raise ConfigError(
        f"cannot stratify by '{text}'; use tenant or tag:KEY (KEY made of letters, digits, "
        "'_', '.', ':' or '-'), or leave it out for a uniform sample"
    )


@dataclass(frozen=True, slots=True)
class SampleSpec:
    """How to sample a window: size, seed, strata, per-stratum minimum, deduplication."""

    window: Window
    n: int
    seed: int
    stratify_by: Stratification = field(default_factory=Stratification)
    min_per_stratum: int = DEFAULT_MIN_PER_STRATUM
    dedup: bool = True

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError(f"the sample size n must be at least 1, got {self.n}")
        if self.n > MAX_K:  # stored, as k is, as a 32-bit integer
            raise ConfigError(f"the sample size n must be at most {MAX_K}, got {self.n}")
        if self.min_per_stratum < 0:
            raise ConfigError(f"min_per_stratum must be >= 0, got {self.min_per_stratum}")


def allocate_quotas(sizes: Sequence[int] | IntArray, n: int, *, minimum: int = 0) -> IntArray:
    """How many queries to draw from each stratum of these ``sizes``.

    Proportional allocation of ``n`` with a floor: every stratum gets at least
    ``min(size, minimum)``, no stratum more than its size, and the rest in proportion to
    stratum size (largest remainders, ties to the earlier stratum). The total is
    ``min(n, sum(sizes))``, or more when the floors alone need more.
    """
    size = np.asarray(sizes, dtype=np.int64)
    if size.ndim != 1 or (size < 0).any():
        raise ConfigError("stratum sizes must be a list of counts >= 0")
    if n < 0 or minimum < 0:
        raise ConfigError(f"n and minimum must be >= 0, got n={n}, minimum={minimum}")
    floor = np.minimum(size, minimum)
    target = min(n, int(size.sum()))
    if floor.sum() >= target:
        return floor
    # Allocation proportional to size reaches every stratum's size only when everything is
    # taken (target == total), so only the floors bind: fix the strata whose proportional
    # share falls below their floor, and share the rest among the others, until none does.
    fixed = np.zeros(size.shape, dtype=bool)
    share = np.zeros(size.shape, dtype=np.float64)
    while True:
        free = ~fixed
        remaining = target - int(floor[fixed].sum())
        weight = size[free].sum()
        share[free] = remaining * size[free] / weight if weight else 0.0
        below = free & (share < floor)
        if not below.any():
            break
        fixed |= below
    quota = np.minimum(np.where(fixed, floor, np.floor(share).astype(np.int64)), size)
    remainder = np.where(fixed, -1.0, share - np.floor(share))
    order = np.lexsort((np.arange(size.size), -remainder))
    while (leftover := target - int(quota.sum())) > 0:
        room = order[quota[order] < size[order]]
        quota[room[:leftover]] += 1
    return quota


def sample_window(store: Store, spec: SampleSpec) -> StoredSample:
    """Draw and store a sample of ``spec.window``'s traffic; returns it as stored.

    Raises ConfigError when the window holds no traffic.
    """
    window = spec.window
    strata = stratum_sizes(
        store,
        start=window.start,
        end=window.end,
        stratification=spec.stratify_by,
        dedup=spec.dedup,
    )
    if not strata:
        raise ConfigError(
            f"window {window.label} ({window.start:%Y-%m-%d %H:%M} to "
            f"{window.end:%Y-%m-%d %H:%M} UTC) holds no ingested traffic; ingest its logs "
            "first (`evalkit traffic ingest PATH`) or pick another window"
        )
    sizes = np.array([distinct for _, distinct, _ in strata], dtype=np.int64)
    quotas = allocate_quotas(sizes, spec.n, minimum=spec.min_per_stratum)
    return save_sample(
        store,
        window_label=window.label,
        start=window.start,
        end=window.end,
        stratification=spec.stratify_by,
        n_requested=spec.n,
        min_per_stratum=spec.min_per_stratum,
        dedup=spec.dedup,
        seed=spec.seed,
        n_records=sum(records for _, _, records in strata),
        n_distinct=int(sizes.sum()),
        quotas={stratum: int(q) for (stratum, _, _), q in zip(strata, quotas, strict=True)},
    )
