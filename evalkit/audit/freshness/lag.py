"""Which changes an index reflects, since when, and the lag percentiles: whole frames at once.

A change is reflected when the index holds its version (same hash, or a write time at or
after it); the older of several waiting changes of one document are superseded. docs/freshness.md,
"Telling that the index reflects a change".
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from evalkit.store.freshness import CHANGE_COLUMNS, OUTCOME_COLUMNS

__all__ = [
    "CANDIDATE_COLUMNS",
    "assess_found",
    "assess_versions",
    "lag_percentiles",
    "newest_per_document",
    "seconds_between",
    "superseded_outcomes",
]

CANDIDATE_COLUMNS = (*CHANGE_COLUMNS, "last_checked_at")
"""The columns of the changes a check assesses: those waiting and those just read."""


def newest_per_document(candidates: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The newest change of each document, and the older ones it supersedes."""
    ordered = candidates.sort_values(["doc_id", "updated_at"], kind="stable")
    newest = ordered.duplicated("doc_id", keep="last")
    return (
        ordered[~newest].reset_index(drop=True),
        ordered[newest].reset_index(drop=True),
    )


def superseded_outcomes(older: pd.DataFrame) -> pd.DataFrame:
    """The outcome rows (``OUTCOME_COLUMNS``) of changes superseded by newer ones."""
    return _outcomes(
        older,
        status=np.full(len(older), "superseded", dtype=object),
        state=np.full(len(older), None, dtype=object),
        reflected_at=_no_times(len(older)),
        reflected_after=_no_times(len(older)),
        reflected_by=np.full(len(older), None, dtype=object),
        lag=np.full(len(older), np.nan),
    )


def assess_versions(
    changes: pd.DataFrame, versions: pd.DataFrame, *, checked_at: datetime
) -> pd.DataFrame:
    """The outcome (``OUTCOME_COLUMNS``) of each change of ``changes`` (``CANDIDATE_COLUMNS``,
    one per document) given the ``versions`` the index holds (``VERSION_COLUMNS`` of
    ``evalkit.retrievers.versions``), read at ``checked_at``."""
    merged = changes.merge(
        versions.rename(
            columns={
                "content_hash": "held_content_hash",
                "text_hash": "held_text_hash",
                "indexed_at": "held_at",
            }
        ),
        on="doc_id",
        how="left",
        indicator=True,
    )
    held = (merged["_merge"] == "both").to_numpy()
    same_content = _equal(merged["content_hash"], merged["held_content_hash"])
    same_text = _equal(merged["text_hash"], merged["held_text_hash"])
    comparable = (
        merged["content_hash"].notna() & merged["held_content_hash"].notna()
    ).to_numpy() | (merged["text_hash"].notna() & merged["held_text_hash"].notna()).to_numpy()
    held_at = pd.to_datetime(merged["held_at"]).astype("datetime64[us]").to_numpy()
    updated = merged["updated_at"].astype("datetime64[us]").to_numpy()
    timed = ~np.isnat(held_at)
    written_after = timed & (held_at >= updated)
    reflected = held & np.where(comparable, same_content | same_text, written_after)

    now = np.datetime64(checked_at, "us")
    last = pd.to_datetime(merged["last_checked_at"]).astype("datetime64[us]").to_numpy()
    exact = reflected & timed
    reflected_at = np.where(exact, np.maximum(held_at, updated), now)
    reflected_after = np.where(exact, reflected_at, np.where(np.isnat(last), updated, last))
    reflected_at = np.where(reflected, reflected_at, np.datetime64("NaT", "us"))
    reflected_after = np.where(reflected, reflected_after, np.datetime64("NaT", "us"))
    lag = np.where(reflected, seconds_between(reflected_at, updated), np.nan)
    return _outcomes(
        merged,
        status=_pick(reflected, "reflected", "pending"),
        state=_pick(reflected, None, _pick(held, "stale", "missing")),
        reflected_at=reflected_at,
        reflected_after=reflected_after,
        reflected_by=_pick(reflected, _pick(exact, "index_time", "check"), None),
        lag=np.maximum(lag, 0.0),
    )


def assess_found(
    changes: pd.DataFrame, found: Mapping[str, tuple[datetime, datetime]]
) -> pd.DataFrame:
    """The outcome of each change of ``changes`` after probing: ``found`` gives, for each
    document a probe query returned, when it came back and the last time it did not."""
    reflected = changes["doc_id"].isin(list(found)).to_numpy()
    updated = changes["updated_at"].astype("datetime64[us]").to_numpy()
    at = np.array(
        [np.datetime64(found[doc][0], "us") if doc in found else None for doc in changes["doc_id"]],
        dtype="datetime64[us]",
    )
    after = np.array(
        [
            np.datetime64(max(found[doc][1], moment), "us") if doc in found else None
            for doc, moment in zip(
                changes["doc_id"],
                changes["updated_at"].to_numpy(dtype="datetime64[us]").tolist(),
                strict=True,
            )
        ],
        dtype="datetime64[us]",
    )
    lag = np.where(reflected, seconds_between(at, updated), np.nan)
    return _outcomes(
        changes,
        status=_pick(reflected, "reflected", "pending"),
        state=_pick(reflected, None, "not_found"),
        reflected_at=at,
        reflected_after=after,
        reflected_by=_pick(reflected, "probe", None),
        lag=np.maximum(lag, 0.0),
    )


def lag_percentiles(lags: np.ndarray[Any, Any]) -> tuple[float | None, float | None, float | None]:
    """The median, 95th percentile (linear interpolation) and maximum of ``lags`` in
    seconds; None each when there is none."""
    finite = lags[np.isfinite(lags)]
    if not finite.size:
        return None, None, None
    p50, p95 = np.percentile(finite, [50, 95])
    return float(p50), float(p95), float(finite.max())


def seconds_between(
    later: np.ndarray[Any, Any], earlier: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """``later - earlier`` in seconds, element by element (NaN where either is missing)."""
    difference = (later - earlier).astype("timedelta64[us]")
    seconds = difference.astype(np.int64) / 1e6
    return np.where(np.isnat(difference), np.nan, seconds)


def _pick(mask: np.ndarray[Any, Any], chosen: object, otherwise: object) -> np.ndarray[Any, Any]:
    """An object array holding ``chosen`` where ``mask`` is true, else ``otherwise`` (each a
    value, or an array of values aligned with ``mask``)."""
    picked = np.empty(len(mask), dtype=object)
    picked[:] = otherwise
    picked[mask] = chosen[mask] if isinstance(chosen, np.ndarray) else chosen
    return picked


def _equal(left: pd.Series, right: pd.Series) -> np.ndarray[Any, Any]:
    both = left.notna() & right.notna()
    return (both & (left.astype(object) == right.astype(object))).to_numpy(dtype=bool)


def _no_times(count: int) -> np.ndarray[Any, Any]:
    return np.full(count, np.datetime64("NaT", "us"))


def _outcomes(
    rows: pd.DataFrame,
    *,
    status: np.ndarray[Any, Any],
    state: np.ndarray[Any, Any],
    reflected_at: np.ndarray[Any, Any],
    reflected_after: np.ndarray[Any, Any],
    reflected_by: np.ndarray[Any, Any],
    lag: np.ndarray[Any, Any],
) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "doc_id": rows["doc_id"].to_numpy(dtype=object),
            "updated_at": rows["updated_at"].astype("datetime64[us]").to_numpy(),
            "status": status,
            "state": state,
            "reflected_at": reflected_at,
            "reflected_after": reflected_after,
            "reflected_by": reflected_by,
            "lag_seconds": lag,
        }
    )
    return frame.loc[:, list(OUTCOME_COLUMNS)]
