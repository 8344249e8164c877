"""The DuckDB store: goldsets, runs, per-query results and metrics (the only SQL in evalkit)."""

from evalkit.clock import utc_now
from evalkit.store.goldsets import GoldsetInfo
from evalkit.store.migrations import MIGRATIONS, Migration
from evalkit.store.runs import RunRecord, RunSpec, RunStatus
from evalkit.store.store import Store

__all__ = [
    "MIGRATIONS",
    "GoldsetInfo",
    "Migration",
    "RunRecord",
    "RunSpec",
    "RunStatus",
    "Store",
    "utc_now",
]
