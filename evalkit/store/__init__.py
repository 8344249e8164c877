"""The DuckDB store: goldsets, runs, per-query results and metrics (the only SQL in evalkit)."""

from evalkit.store.migrations import MIGRATIONS, Migration
from evalkit.store.store import GoldsetInfo, RunRecord, RunSpec, RunStatus, Store, utc_now

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
