"""What several dashboard pages load: the store's facts (which areas hold data), the
measures and runs of its pickers, the texts of a run's queries, the hints shown where an area
is empty, and the resampled tests' settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from evalkit.records.requests import PAIRED_TEST_DEFAULTS, PairedTestSettings
from evalkit.store import Store
from evalkit.store.dashboard.query import query_texts_frame
from evalkit.store.dashboard.shared import (
    AREA_TABLES,
    FINISHED_STATUSES,
    existing_tables,
    goldset_names,
    measures_frame,
    runs_frame,
    store_counts,
)

__all__ = [
    "AREA_HINTS",
    "RESAMPLES",
    "SEED",
    "StoreFacts",
    "failed_runs",
    "has_area",
    "measures",
    "paired_test",
    "query_texts",
    "runs",
    "store_facts",
]


RESAMPLES = 10_000
SEED = 0
"""The resampled tests' settings: those of ``evalkit compare`` (10,000 resamples, seed 0), so
that Compare runs and the probable causes show the CLI's numbers; the projection's seed."""


def paired_test(
    alpha: float = PAIRED_TEST_DEFAULTS.alpha, min_effect: float = PAIRED_TEST_DEFAULTS.min_effect
) -> PairedTestSettings:
    """The paired test of two runs at ``alpha`` and ``min_effect``, resampled as
    ``evalkit compare`` does (``RESAMPLES``, ``SEED``)."""
    return PairedTestSettings(alpha=alpha, min_effect=min_effect, resamples=RESAMPLES, seed=SEED)


AREA_HINTS: Mapping[str, str] = {
    "core": "`evalkit goldset import ...` then `evalkit run --goldset NAME --collection C` "
    "(or `make demo`) store goldsets and runs.",
    "drift": "`evalkit drift embeddings|documents|model|precision`, or a scheduled "
    "`drift_check` job of `evalkit serve`, stores drift checks.",
    "traffic": "`evalkit traffic ingest LOGS`, then `evalkit traffic sample --window W` and "
    "`evalkit traffic replay --window W --collection C`, store traffic windows.",
    "embeddings": "`evalkit traffic replay --window W ...` stores the query embeddings of "
    "each window it replays.",
    "answers": "`evalkit answers score answers.jsonl` stores answer scores (faithfulness, "
    "context precision and recall).",
    "audit": "`evalkit audit --collection C --source corpus.jsonl` stores index audits.",
    "alerts": "`evalkit alerts evaluate` (or `evalkit serve` with `[[alerts.rules]]` in "
    "evalkit.toml) stores alerts and their deliveries.",
    "jobs": "`evalkit serve` (or `evalkit jobs run JOB`) records job runs.",
    "slices": "`evalkit traffic slices --window W` (or the `traffic` job with `slices = true`) "
    "cuts a replayed window into topics, tenants and tags and stores their figures.",
    "judging": "`evalkit traffic replay --judge --corpus C` (or `evalkit judge traffic RUN "
    "--corpus C`) labels a replayed window with the [judge] LLM assessor and stores its "
    "judged figures.",
    "review": "`evalkit review add DRAFT_DIR --goldset NAME` queues a draft (from `evalkit "
    "goldset generate` or `evalkit traffic promote`); `evalkit review disagreements "
    "--goldset NAME` queues the judgments an LLM assessor graded differently.",
}
"""What produces each area's tables, shown where a page finds none of its data."""


@dataclass(frozen=True, slots=True)
class StoreFacts:
    """Which areas a store holds data for, and how much core data it has."""

    tables: frozenset[str]
    counts: Mapping[str, int]
    goldsets: tuple[str, ...]

    @property
    def empty(self) -> bool:
        """No goldset and no run: nothing to show yet."""
        return self.counts.get("goldsets", 0) == 0 and self.counts.get("runs", 0) == 0

    def has(self, area: str) -> bool:
        """Whether every table of ``area`` (see ``evalkit.store.dashboard.AREA_TABLES``) exists."""
        return has_area(self.tables, area)


def has_area(tables: frozenset[str], area: str) -> bool:
    """Whether every table of ``area`` (``evalkit.store.dashboard.shared.AREA_TABLES``) is in
    ``tables``."""
    return all(table in tables for table in AREA_TABLES[area])


def store_facts(store: Store) -> StoreFacts:
    """Tables, counts and goldset names of the store."""
    return StoreFacts(
        tables=existing_tables(store),
        counts=store_counts(store),
        goldsets=tuple(goldset_names(store)),
    )


def measures(store: Store, *, goldset: str | None = None) -> tuple[str, ...]:
    """Measures stored for finished runs (of one goldset), most common first."""
    frame = measures_frame(store, goldset=goldset)
    return tuple(str(name) for name in frame["measure"])


def runs(store: Store, *, goldset: str | None = None, limit: int = 5000) -> pd.DataFrame:
    """Finished runs (of one goldset), newest first, for run pickers."""
    return runs_frame(store, goldset=goldset, statuses=FINISHED_STATUSES, limit=limit)


def failed_runs(store: Store, *, goldset: str | None = None, limit: int = 5000) -> pd.DataFrame:
    """Failed runs (of one goldset), newest first, with their error: they carry no figures,
    but a failing job must be seen."""
    return runs_frame(store, goldset=goldset, statuses=("failed",), limit=limit)


def query_texts(store: Store, *, run_id: str) -> dict[str, str]:
    """The text of every query of a run's goldset version, by query id."""
    frame = query_texts_frame(store, run_id=run_id)
    return dict(zip(frame["query_id"].astype(str), frame["text"].astype(str), strict=True))
