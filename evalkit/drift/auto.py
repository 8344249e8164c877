"""The default embedding drift test (method ``auto``): the measured best test for the size.

Exact-kernel ``mmd`` up to ``exact_max_pool`` pooled rows, ``moments`` above: the most
powerful measured at each size (docs/drift.md). The result's ``method`` names the test that
ran, so stored checks say what was computed.
"""

from __future__ import annotations

from evalkit.drift.base import (
    DriftDetector,
    Embeddings,
    register_detector,
    require_finite,
)
from evalkit.drift.mmd import MMDDrift
from evalkit.drift.moments import MomentsDrift
from evalkit.errors import ConfigError
from evalkit.records.drift import DriftResult

__all__ = ["AutoDrift"]


@register_detector("auto")
class AutoDrift(DriftDetector):
    """Exact-kernel ``mmd`` up to ``exact_max_pool`` pooled rows, ``moments`` above."""

    checks_finite_in_test = True  # only the chosen detector knows whether it does

    def __init__(
        self, *, alpha: float = 0.05, seed: int | None = 0, exact_max_pool: int = 2000
    ) -> None:
        super().__init__(alpha=alpha, seed=seed)
        if exact_max_pool < 0:
            raise ConfigError(f"exact_max_pool must be >= 0, got {exact_max_pool}")
        self.exact_max_pool = exact_max_pool

    def chosen(self, n_pool: int) -> DriftDetector:
        """The detector that tests a pooled sample of ``n_pool`` rows."""
        if n_pool <= self.exact_max_pool:
            return MMDDrift(alpha=self.alpha, seed=self.seed, exact_max_pool=self.exact_max_pool)
        return MomentsDrift(alpha=self.alpha, seed=self.seed)

    def _test(self, reference: Embeddings, current: Embeddings) -> DriftResult:
        chosen = self.chosen(reference.shape[0] + current.shape[0])
        if not chosen.checks_finite_in_test:
            require_finite(reference, name="reference")
            require_finite(current, name="current")
        return chosen._test(reference, current)
