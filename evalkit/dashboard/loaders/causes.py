"""The probable-causes panel's data (Compare runs, Drift and Alerts pages), as ``evalkit
explain`` joins them."""

from __future__ import annotations

from collections.abc import Sequence

from evalkit.causes import Explanation, explain_alert, explain_drift_check, explain_runs
from evalkit.dashboard.loaders.shared import RESAMPLES, SEED
from evalkit.errors import InputError, NotFoundError
from evalkit.store import Store
from evalkit.store.alerts import get_alert

__all__ = ["causes"]


def causes(
    store: Store,
    *,
    baseline: str | None = None,
    candidate: str | None = None,
    measures: Sequence[str] = (),
    drift_check: str | None = None,
    alert: str | None = None,
    alpha: float = 0.05,
    min_effect: float = 0.0,
) -> Explanation:
    """The probable causes of a candidate run against its baseline (``explain_runs``, with
    Compare runs' test settings), or of a stored drift check or alert, as `evalkit explain`
    joins them."""
    options = {"alpha": alpha, "min_effect": min_effect, "resamples": RESAMPLES, "seed": SEED}
    if drift_check is not None:
        return explain_drift_check(store, drift_check, **options)
    if alert is not None:
        stored = get_alert(store, alert)
        if stored is None:
            raise NotFoundError(f"no alert {alert!r} in this store")
        return explain_alert(store, stored, **options)
    if candidate is None:
        raise InputError("name a candidate run, a drift check or an alert to explain")
    return explain_runs(
        store, candidate, baseline=baseline, measures=list(measures) or None, **options
    )
