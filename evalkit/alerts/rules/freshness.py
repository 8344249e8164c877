"""Rule kind ``freshness_lag``: the freshness objective of each subject's newest check (its
p95 lag, and how long its oldest unreflected change has waited).
"""

from __future__ import annotations

from pydantic import Field

from evalkit.alerts.model import Signal
from evalkit.alerts.rules.base import RuleContext, RuleKind, RuleParams, close_unwatched, iso
from evalkit.config.types import Duration
from evalkit.records.freshness import human_seconds
from evalkit.store.alerts import has_tables
from evalkit.store.freshness import StoredFreshnessCheck, list_freshness_checks

__all__ = ["FRESHNESS_LAG", "FreshnessLagParams", "freshness_breaches"]


class FreshnessLagParams(RuleParams):
    """``kind = "freshness_lag"``."""

    subject: str | None = Field(
        default=None, description="Only this subject (default: every subject's newest check)."
    )
    max_p95_lag: Duration | None = Field(
        default=None,
        description="Fire when the newest check's p95 lag is above this (default: the "
        "objective the check was made with, [freshness] slo_p95_lag).",
    )
    max_unreflected_age: Duration | None = Field(
        default=None,
        description="Fire when the newest check's oldest unreflected change has waited "
        "longer (default: the check's own objective, [freshness] max_unreflected_age).",
    )
    min_reflected: int = Field(
        default=1,
        ge=1,
        description="Judge the p95 lag only of checks that found at least this many changes "
        "reflected (a percentile of two lags says little).",
    )

    def limits(self, check: StoredFreshnessCheck) -> tuple[float, float]:
        """The p95 lag and the unreflected age ``check`` is held to: these parameters',
        else the objective the check was made with."""
        return (
            check.slo_p95_lag if self.max_p95_lag is None else self.max_p95_lag,
            check.max_unreflected_age
            if self.max_unreflected_age is None
            else self.max_unreflected_age,
        )


def freshness_breaches(
    check: StoredFreshnessCheck, params: FreshnessLagParams | None = None
) -> list[str]:
    """What of the objective ``check`` breaches: its own limits unless ``params`` set others."""
    held_to = params if params is not None else FreshnessLagParams()
    p95_limit, age_limit = held_to.limits(check)
    found = []
    p95 = check.lag_p95
    if p95 is not None and check.n_reflected >= held_to.min_reflected and p95 > p95_limit:
        found.append(
            f"p95 lag {human_seconds(p95)} above {human_seconds(p95_limit)} "
            f"({check.n_reflected} changes reflected)"
        )
    oldest = check.oldest_unreflected_seconds
    if oldest is not None and oldest > age_limit:
        found.append(
            f"{check.n_pending} changes not yet retrievable, the oldest for "
            f"{human_seconds(oldest)} (limit {human_seconds(age_limit)})"
        )
    return found


def _freshness_lag(ctx: RuleContext, params: FreshnessLagParams) -> list[Signal]:
    signals = close_unwatched(
        ctx,
        lambda subject: params.subject in (None, subject),
        "the rule's subject changed",
    )
    if not has_tables(ctx.store, "freshness_checks"):
        return signals
    for check in list_freshness_checks(
        ctx.store, subject=params.subject, latest_only=True, limit=1000
    ):
        breaches = freshness_breaches(check, params)
        p95_limit, age_limit = params.limits(check)
        active = bool(breaches)
        waiting = [change["doc_id"] for change in check.details.get("oldest_unreflected", [])[:10]]
        signals.append(
            Signal(
                subject=check.subject,
                active=active,
                title=f"freshness of {check.subject}: "
                + ("; ".join(breaches) if active else "within the objective"),
                summary=(
                    f"check {check.check_id} at {iso(check.checked_at)}: "
                    f"{check.n_reflected} changes reflected (p50 "
                    f"{human_seconds(check.lag_p50)}, p95 {human_seconds(check.lag_p95)}, max "
                    f"{human_seconds(check.lag_max)}), {check.n_pending} waiting (oldest "
                    f"{human_seconds(check.oldest_unreflected_seconds)})"
                ),
                evidence={
                    "check_id": check.check_id,
                    "subject": check.subject,
                    "checked_at": iso(check.checked_at),
                    "method": check.method,
                    "lag_p50_seconds": check.lag_p50,
                    "lag_p95_seconds": check.lag_p95,
                    "lag_max_seconds": check.lag_max,
                    "n_reflected": check.n_reflected,
                    "n_pending": check.n_pending,
                    "unreflected_share": check.unreflected_share,
                    "oldest_unreflected_seconds": check.oldest_unreflected_seconds,
                    "max_p95_lag_seconds": p95_limit,
                    "max_unreflected_age_seconds": age_limit,
                    "breaches": breaches,
                    "oldest_unreflected": waiting,
                },
                links={
                    "check": f"evalkit freshness --subject {check.subject} ...",
                    **ctx.dashboard("index_health", freshness=check.subject),
                },
            )
        )
    return signals


FRESHNESS_LAG = RuleKind(
    "freshness_lag",
    FreshnessLagParams,
    _freshness_lag,
    "changes at the source take longer to become retrievable than the objective allows",
)
