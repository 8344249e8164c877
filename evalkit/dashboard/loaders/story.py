"""What the dashboard opens on when no link says otherwise: the story of the store.

The series that dropped most on the Overview (a regressed one first), its latest run against
the baseline `evalkit explain` picks for it (``evalkit.causes.previous_run``: the run before,
of the same goldset and retriever), that comparison's probable causes and worst queries,
which Compare runs and Query drill-down open on.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from evalkit.causes import Explanation, explain_comparison, previous_run
from evalkit.dashboard.loaders.overview import overview
from evalkit.dashboard.loaders.shared import paired_test, query_texts
from evalkit.errors import ConfigError, NotFoundError
from evalkit.stats import compare_stored_runs
from evalkit.store import Store
from evalkit.store.runs import get_run

__all__ = ["WORST_QUERIES", "Regression", "Story", "explain_baseline", "regression", "story"]

WORST_QUERIES = 3
"""Worst queries a regressed series' card lists."""


@dataclass(frozen=True, slots=True)
class Story:
    """The series a page opens on and the comparison that tells its story.

    ``candidate``: the series' latest run that stored ``measure`` (None: no finished run);
    ``series_baseline``: the Overview's baseline of the series (its pinned baseline, else its
    oldest complete run that stored the measure), which its status and change are against;
    ``previous``: the run `evalkit explain` compares the candidate with by default (the run
    before it). ``baseline`` is what the pages open on: the series' baseline when the
    Overview says the series regressed (so that Compare shows the regression the Overview
    reports, however many runs ago it began), else the previous run; None when there is
    none (``note`` says why).
    """

    measure: str
    goldset: str | None = None
    retriever: str | None = None
    candidate: str | None = None
    baseline: str | None = None
    series_baseline: str | None = None
    status: str | None = None
    note: str = ""
    previous: str | None = None


@dataclass(frozen=True, slots=True)
class Regression:
    """A comparison as `evalkit explain` makes it: its probable causes and its worst queries
    (query_id, text, baseline, candidate, delta, lost: largest drop first, ties by query id,
    the order of Compare runs' query table)."""

    explanation: Explanation
    worst: pd.DataFrame


def explain_baseline(store: Store, *, run_id: str) -> str | None:
    """The baseline `evalkit explain RUN` takes for a run (``previous_run``), or None."""
    try:
        return previous_run(store, get_run(store, run_id)).run_id
    except (ConfigError, NotFoundError):
        return None


def story(store: Store, *, measure: str) -> Story:
    """The series that dropped most on ``measure`` (the Overview's ranking, a series whose
    paired test says regression first), and its latest run against `explain`'s baseline."""
    series = overview(store, measure=measure).series
    measured = series[series["measured_run"].notna()]
    if measured.empty:
        return Story(measure=measure, note=f"no finished run stored {measure} yet")
    regressed = measured[measured["decision"] == "regression"]
    dropped = measured[pd.to_numeric(measured["delta"]) < 0]
    worst = (regressed if not regressed.empty else dropped if not dropped.empty else measured).iloc[
        0
    ]
    candidate = str(worst["measured_run"])
    previous = explain_baseline(store, run_id=candidate)
    series_baseline = worst["baseline_run"]
    if not isinstance(series_baseline, str) or series_baseline == candidate:
        series_baseline = None
    status = str(worst["decision"]) if isinstance(worst["decision"], str) else None
    baseline = series_baseline if status == "regression" and series_baseline else previous
    return Story(
        measure=measure,
        goldset=str(worst["goldset_name"]),
        retriever=str(worst["retriever"]),
        candidate=candidate,
        baseline=baseline,
        series_baseline=series_baseline,
        status=status,
        previous=previous,
        note=""
        if baseline is not None
        else f"run {candidate} is the only finished run of series {worst['goldset_name']} x "
        f"{worst['retriever']}: there is no earlier run to compare it with",
    )


def regression(
    store: Store, *, baseline: str, candidate: str, measure: str, worst: int = WORST_QUERIES
) -> Regression:
    """Compare two runs on ``measure`` as `evalkit explain` does (a failed query counting as
    0, `evalkit compare`'s resampling), join the probable causes, and list the ``worst``
    queries that dropped most."""
    report = compare_stored_runs(
        store,
        baseline,
        candidate,
        [measure],
        paired_test(),
        worst=worst,
        failed_as_zero=True,
    )
    text_of = query_texts(store, run_id=candidate)
    drops = report.worst_for(measure)
    table = pd.DataFrame(
        [
            {
                "query_id": drop.query_id,
                "text": text_of.get(drop.query_id, ""),
                "baseline": drop.baseline,
                "candidate": drop.candidate,
                "delta": drop.delta,
                "lost": ", ".join(drop.lost_docs),
            }
            for drop in drops
        ],
        columns=["query_id", "text", "baseline", "candidate", "delta", "lost"],
    )
    return Regression(explanation=explain_comparison(store, report), worst=table)
