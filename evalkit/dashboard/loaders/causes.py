"""The probable-causes panel's data (Compare runs, Drift and Alerts pages), as ``evalkit
explain`` joins them."""

from __future__ import annotations

from collections.abc import Sequence

from evalkit.causes import Explanation, explain_alert, explain_drift_check, explain_runs
from evalkit.dashboard.loaders.shared import paired_test
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
    test = paired_test(alpha, min_effect)
    if drift_check is not None:
        return explain_drift_check(store, drift_check, test=test)
    if alert is not None:
        stored = get_alert(store, alert)
        if stored is None:
            raise NotFoundError(f"no alert {alert!r} in this store")
        return explain_alert(store, stored, test=test)
    if candidate is None:
        raise InputError("name a candidate run, a drift check or an alert to explain")
    return explain_runs(
        store, candidate, baseline=baseline, measures=list(measures) or None, test=test
    )
