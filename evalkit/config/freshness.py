"""The ``[freshness]`` table: the service level an index is held to, and how it is checked.

``evalkit freshness``, the scheduler's ``freshness`` job and the ``freshness_lag`` alert rule
read it (docs/configuration.md, "[freshness]"; docs/freshness.md).
"""

from __future__ import annotations

from pydantic import Field

from evalkit.config.types import Duration, SettingsTable

__all__ = ["FreshnessSettings"]


class FreshnessSettings(SettingsTable, frozen=True):
    """How long a change at the source may take to become retrievable, and how it is told."""

    slo_p95_lag: Duration = Field(
        default=3600.0,
        description="The freshness objective: the 95th percentile of the lag of the changes a "
        "check finds reflected may not exceed it (seconds, or '15m', '1h').",
    )
    max_unreflected_age: Duration = Field(
        default=6 * 3600.0,
        description="The other half of the objective: no change may wait longer than this "
        "without being reflected (the oldest unreflected change's age).",
    )
    probe_k: int = Field(
        default=10,
        ge=1,
        description="Depth of a probe: a changed document counts as retrievable once its "
        "probe query returns it within the top probe_k.",
    )
    probe_timeout: Duration = Field(
        default=0.0,
        description="How long one check keeps probing the changes not yet found (0: one "
        "round of probe queries per check).",
    )
    probe_interval: Duration = Field(
        default=5.0,
        description="Pause between two rounds of probe queries within one check; the lag "
        "a probe measures is exact to within it.",
    )
    indexed_at_field: str | None = Field(
        default=None,
        description="Column of a pgvector table, or payload key of a Qdrant collection, "
        "holding when each document was written; with it the lag is read from the index "
        "(exactly), without it each change's lag is known to within the check interval. "
        "Chroma collections written by `evalkit index` carry evalkit_indexed_at.",
    )
    updated_at_key: str = Field(
        default="updated_at",
        description="Metadata key of a corpus document holding when it last changed (files "
        "of a folder corpus use their modification times).",
    )
    changes_table: str = Field(
        default="changes",
        description="Table read from a DuckDB change file when --changes-table names none.",
    )
