"""The Leaderboard page's queries: the tags of a goldset's runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from evalkit.store.dashboard.shared import existing_tables, read_frame

if TYPE_CHECKING:
    from evalkit.store import Store

__all__ = ["run_tags_frame"]


def run_tags_frame(store: Store, *, goldset: str | None = None) -> pd.DataFrame:
    """The tags of the runs (of ``goldset``), one row per run and tag: run_id, tag,
    started_at; empty in a store older than run tags."""
    if "run_tags" not in existing_tables(store):
        return pd.DataFrame({"run_id": [], "tag": [], "started_at": []})
    return read_frame(
        store,
        "SELECT t.run_id, t.tag, r.started_at FROM run_tags t JOIN runs r USING (run_id)"
        " WHERE ? IS NULL OR r.goldset_name = ? ORDER BY t.tag, r.started_at, t.run_id",
        [goldset, goldset],
    )
