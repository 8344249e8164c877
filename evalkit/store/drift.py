"""Stored drift checks: every test evalkit runs on embeddings, models and metric series."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from evalkit.clock import utc_now
from evalkit.errors import NotFoundError

if TYPE_CHECKING:
    import pandas as pd

    from evalkit.store.store import Store

__all__ = [
    "StoredDriftCheck",
    "get_drift_check",
    "list_drift_checks",
    "save_drift_check",
]


@dataclass(frozen=True, slots=True)
class StoredDriftCheck:
    """One stored drift check.

    ``stream`` is what was watched (``queries``, ``documents``, ``model``, ``precision``,
    ``top1_score``...); ``subject`` names it (a collection, a goldset x retriever);
    ``finding`` is ``ok``, ``drift``, ``warning`` or ``model_mismatch`` — a mismatch between
    embedding models is its own finding, never mere drift.
    """

    check_id: str
    created_at: datetime
    stream: str
    subject: str | None
    finding: str
    method: str
    reference: str | None
    current: str | None
    n_reference: int | None
    n_current: int | None
    statistic: float | None
    p_value: float | None
    threshold: float | None
    effect_size: float | None
    is_drift: bool
    seed: int | None
    details: Mapping[str, Any]
    report_path: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = {name: getattr(self, name) for name in self.__slots__}
        data["created_at"] = self.created_at.isoformat() + "Z"
        data["details"] = dict(self.details)
        return data


def save_drift_check(
    store: Store,
    *,
    stream: str,
    finding: str,
    method: str,
    is_drift: bool,
    subject: str | None = None,
    reference: str | None = None,
    current: str | None = None,
    n_reference: int | None = None,
    n_current: int | None = None,
    statistic: float | None = None,
    p_value: float | None = None,
    threshold: float | None = None,
    effect_size: float | None = None,
    seed: int | None = None,
    details: Mapping[str, Any] | None = None,
    report_path: str | None = None,
) -> StoredDriftCheck:
    """Store one drift check and return it as stored."""
    created_at = utc_now()
    check = StoredDriftCheck(
        check_id=f"{created_at:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}",
        created_at=created_at,
        stream=stream,
        subject=subject,
        finding=finding,
        method=method,
        reference=reference,
        current=current,
        n_reference=n_reference,
        n_current=n_current,
        statistic=statistic,
        p_value=p_value,
        threshold=threshold,
        effect_size=effect_size,
        is_drift=is_drift,
        seed=seed,
        details=dict(details or {}),
        report_path=report_path,
    )
    store.execute(
        "INSERT INTO drift_checks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            check.check_id,
            check.created_at,
            check.stream,
            check.subject,
            check.finding,
            check.method,
            check.reference,
            check.current,
            check.n_reference,
            check.n_current,
            check.statistic,
            check.p_value,
            check.threshold,
            check.effect_size,
            check.is_drift,
            check.seed,
            json.dumps(check.details, sort_keys=True, default=str),
            check.report_path,
        ],
    )
    return check


def get_drift_check(store: Store, check_id: str) -> StoredDriftCheck:
    """The drift check ``check_id``; raises ``NotFoundError`` when there is none."""
    found = list_drift_checks(store, check_id=check_id, limit=1)
    if not found:
        raise NotFoundError(
            f"no drift check {check_id!r} in {store.path}; the dashboard's Drift page lists "
            "the stored checks"
        )
    return found[0]


def list_drift_checks(
    store: Store,
    *,
    stream: str | None = None,
    subject: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    check_id: str | None = None,
    limit: int = 100,
) -> list[StoredDriftCheck]:
    """Stored drift checks, newest first, optionally of one stream and subject, and made
    between ``since`` and ``until`` (naive UTC, both included)."""
    import pandas as pd

    frame: pd.DataFrame = store.fetch_frame(
        "SELECT * FROM drift_checks WHERE (? IS NULL OR stream = ?) AND (? IS NULL OR subject = ?)"
        " AND (? IS NULL OR created_at >= ?) AND (? IS NULL OR created_at <= ?)"
        " AND (? IS NULL OR check_id = ?)"
        " ORDER BY created_at DESC, check_id DESC LIMIT ?",
        [stream, stream, subject, subject, since, since, until, until, check_id, check_id, limit],
    )

    def missing(value: object) -> bool:
        try:
            return bool(pd.isna(value))  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return False

    checks = []
    for row in frame.to_dict("records"):
        values: dict[str, Any] = {
            str(key): (None if missing(value) else value) for key, value in row.items()
        }
        values["details"] = json.loads(values["details"]) if values["details"] else {}
        values["is_drift"] = bool(values["is_drift"])
        values["created_at"] = pd.Timestamp(values["created_at"]).to_pydatetime()
        checks.append(StoredDriftCheck(**values))
    return checks
