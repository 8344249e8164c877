"""Stored drift checks: every test evalkit runs on embeddings, models and metric series."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from evalkit.clock import utc_now
from evalkit.errors import NotFoundError
from evalkit.records.drift import DriftCheck
from evalkit.store.columns import json_text, json_value, placeholders, values_of

if TYPE_CHECKING:
    import pandas as pd

    from evalkit.store.store import Store

__all__ = [
    "StoredDriftCheck",
    "get_drift_check",
    "list_drift_checks",
    "save_drift_check",
]

_COLUMNS = ("check_id", "created_at", *(item.name for item in fields(DriftCheck)))
_INSERT = f"INSERT INTO drift_checks ({', '.join(_COLUMNS)}) VALUES ({placeholders(len(_COLUMNS))})"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredDriftCheck(DriftCheck):
    """One stored drift check: the check as it was saved, with its id and time (UTC)."""

    check_id: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data: dict[str, Any] = {
            "check_id": self.check_id,
            "created_at": self.created_at.isoformat() + "Z",
        }
        data.update((item.name, getattr(self, item.name)) for item in fields(DriftCheck))
        data["details"] = dict(self.details)
        return data


def save_drift_check(store: Store, check: DriftCheck) -> StoredDriftCheck:
    """Store one drift check and return it as stored."""
    created_at = utc_now()
    stored = StoredDriftCheck(
        check_id=f"{created_at:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}",
        created_at=created_at,
        **{item.name: getattr(check, item.name) for item in fields(DriftCheck)}
        | {"details": dict(check.details)},
    )
    store.execute(
        _INSERT, values_of(stored, ", ".join(_COLUMNS), details=json_text(stored.details))
    )
    return stored


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
        values["details"] = json_value(values["details"])
        values["is_drift"] = bool(values["is_drift"])
        values["created_at"] = pd.Timestamp(values["created_at"]).to_pydatetime()
        checks.append(StoredDriftCheck(**values))
    return checks
