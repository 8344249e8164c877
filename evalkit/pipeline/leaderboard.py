"""Many runs ranked with corrected statistics: ``evalkit compare RUN RUN RUN ...``, a sweep's
leaderboard and the dashboard's Leaderboard page. What the runs are scored with (the runs
named, the judgments) is ``evalkit.pipeline.compared_runs``, which the gate shares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit.errors import ConfigError, RetrieverError
from evalkit.goldset.model import Goldset
from evalkit.pipeline.compared_runs import comparison_judgments, resolve_run, score_reference
from evalkit.pipeline.runs import _session
from evalkit.records.requests import LEADERBOARD_DEFAULTS, LeaderboardRequest
from evalkit.records.run_reference import RunReference
from evalkit.stats.compare import ScoredRun
from evalkit.stats.leaderboard import (
    LatencySummary,
    Leaderboard,
    LeaderboardOptions,
    leaderboard,
)
from evalkit.stats.leaderboard_render import (
    PAIR_HEADERS,
    leaderboard_headers,
    leaderboard_latex,
    leaderboard_markdown,
    leaderboard_rows,
    pair_rows,
)
from evalkit.stats.paired import with_failed_as_zero
from evalkit.store import RunRecord, Store
from evalkit.store.access import WriterAccess
from evalkit.store.runs import get_run, list_runs, run_queries

__all__ = [
    "RunLeaderboard",
    "describe_run",
    "leaderboard_of_runs",
    "replay_latency",
    "select_runs",
]


@dataclass(frozen=True, slots=True)
class RunLeaderboard:
    """A leaderboard of runs and the stored records behind it (None for a run file)."""

    board: Leaderboard
    references: tuple[str, ...]
    records: tuple[RunRecord | None, ...]
    failed_as_zero: tuple[tuple[str, int], ...] = ()
    """(run, failed queries counted as 0) for each run that had some."""

    def table(self) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
        """Headers and formatted rows of the ranked table, best first on the first measure
        (``leaderboard_headers`` / ``leaderboard_rows``)."""
        return leaderboard_headers(self.board), leaderboard_rows(self.board)

    def pairs_table(self, measure: str) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
        """Headers and formatted rows of ``measure``'s pairs, most significant first."""
        return PAIR_HEADERS, pair_rows(self.board, measure)

    def markdown(self) -> str:
        """The Markdown report (``leaderboard_markdown``)."""
        return leaderboard_markdown(self.board)

    def latex(self) -> str:
        """The LaTeX table as ranx writes it (``leaderboard_latex``)."""
        return leaderboard_latex(self.board)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form: the leaderboard and each run's stored facts."""
        data = self.board.to_dict()
        data["runs_stored"] = [
            None
            if record is None
            else {
                "run_id": record.run_id,
                "label": record.spec.label,
                "tags": list(record.spec.tags),
                "retriever": record.spec.retriever_kind,
                "retriever_config": dict(record.spec.retriever_config),
                "k": record.spec.k,
                "started_at": record.started_at.isoformat() + "Z",
            }
            for record in self.records
        ]
        data["failed_as_zero"] = dict(self.failed_as_zero)
        return data


def describe_run(record: RunRecord) -> str:
    """A stored run in a few words, as a leaderboard names it beside its id: its label,
    else its retriever as ``evalkit runs list`` names it (``chroma-embedded:demo``, a fused
    run by its method) and depth. Runs of one kind against two collections are told apart.
    """
    spec = record.spec
    if spec.label:
        return spec.label
    if record.retriever_id:
        return f"{record.retriever_id} k={spec.k}"
    method = spec.retriever_config.get("method") if spec.retriever_kind == "fusion" else None
    return f"{spec.retriever_kind}{f' {method}' if method else ''} k={spec.k}"


def select_runs(
    store: Store, *, goldset: str | None = None, tag: str | None = None, last: int | None = None
) -> list[str]:
    """The finished goldset runs a leaderboard ranks when none are named: those of ``tag``
    (all of them, or the ``last`` newest), else the ``last`` newest of ``goldset``; oldest
    first. Failed runs are left out (they have no figures); partial ones stay, and the
    leaderboard refuses them unless their failed queries count as 0."""
    if tag is None and (goldset is None or last is None):
        raise ConfigError("name the runs, or give `goldset` NAME with `last` N, or `tag` TAG")
    if last is not None and last < 2:
        raise ConfigError(f"`last` must be at least 2 to compare runs, not {last}")
    runs = [
        run
        for run in list_runs(store, goldset=goldset, tag=tag, kind=None, limit=1_000_000)
        if run.status in ("complete", "partial") and run.spec.goldset_version is not None
    ]
    if last is not None:
        runs = runs[:last]
    if len(runs) < 2:
        where = f"tag {tag!r}" if tag is not None else f"goldset {goldset!r}"
        raise ConfigError(f"{where} has {len(runs)} finished run(s); a comparison needs two")
    return [run.run_id for run in reversed(runs)]


def replay_latency(store: Store, run_id: str) -> LatencySummary | None:
    """The run's replay latency per query, p50 and p95 in ms, over its answered queries
    (None when it recorded none: a fused or imported run without latencies)."""
    replayed = run_queries(store, run_id)
    answered = replayed.loc[replayed["error"].isna(), "latency_ms"].dropna()
    if answered.empty:
        return None
    p50, p95 = np.percentile(answered.to_numpy(dtype=float), [50, 95])
    return LatencySummary(p50_ms=float(p50), p95_ms=float(p95))


def leaderboard_of_runs(
    store: WriterAccess | None,
    references: Sequence[str | RunReference],
    request: LeaderboardRequest = LEADERBOARD_DEFAULTS,
    *,
    goldset: str | Goldset | None = None,
    qrels: Path | None = None,
) -> RunLeaderboard:
    """Score each of ``references`` on the request's measures and rank them
    (``evalkit.stats.leaderboard``; docs/gate.md).

    Scored with ``qrels`` or ``goldset`` when given, else each stored run with its own goldset's
    judgments (then all must share one goldset version). A run with failed queries raises
    ``FailedQueriesError`` unless ``request.failed_as_zero``.
    """
    if len(references) < 2:
        raise ConfigError(f"a leaderboard compares at least two runs, got {len(references)}")
    texts = [str(reference) for reference in references]
    if len(set(texts)) != len(texts):
        repeated = sorted({r for r in texts if texts.count(r) > 1})
        raise ConfigError(f"run named twice: {', '.join(repeated)}")
    measures = list(request.measures)
    with _session(store, "compare") as opened:
        judgments = comparison_judgments(opened, goldset, qrels)
        runs = [resolve_run(opened, reference) for reference in references]
        records = [
            get_run(opened, run) if opened is not None and isinstance(run, str) else None
            for run in runs
        ]
        if judgments is None:
            _one_goldset(records)
        scored = [score_reference(opened, run, measures, judgments=judgments) for run in runs]
        latency = {
            run.reference: summary
            for run, record in zip(scored, records, strict=True)
            if opened is not None
            and record is not None
            and (summary := replay_latency(opened, record.run_id)) is not None
        }
    per_query, counted = _per_query(scored, measures, failed_as_zero=request.failed_as_zero)
    board = leaderboard(
        per_query,
        measures,
        options=LeaderboardOptions(
            alpha=request.alpha,
            resamples=request.resamples,
            seed=request.seed,
            test=request.test,
            correction=request.correction,
        ),
        latency=latency,
    )
    return RunLeaderboard(
        board=_with_unjudged(board, scored),
        references=tuple(run.reference for run in scored),
        records=tuple(records),
        failed_as_zero=tuple(counted),
    )


def _with_unjudged(board: Leaderboard, scored: Sequence[ScoredRun]) -> Leaderboard:
    """``board`` with the queries a run holds that the judgments do not cover counted as
    left out: scored on a goldset that lost queries, they would otherwise vanish unsaid."""
    if not any(run.unjudged for run in scored):
        return board
    held = [run.held for run in scored]
    return replace(
        board,
        n_dropped=len(set().union(*held)) - board.n_queries,
        dropped_by_run=tuple(len(queries) - board.n_queries for queries in held),
    )


def _one_goldset(records: Sequence[RunRecord | None]) -> None:
    """Refuse stored runs of different goldset versions scored on their own judgments: their
    figures would not be over the same queries and grades."""
    versions = {
        record.spec.goldset_version: record.run_id for record in records if record is not None
    }
    if len(versions) > 1:
        listed = ", ".join(f"{run} ({version})" for version, run in versions.items())
        raise ConfigError(
            f"the runs are of different goldset versions: {listed}; rank runs of one version, "
            "or score them all on one goldset with `goldset` NAME"
        )


def _per_query(
    scored: Sequence[ScoredRun], measures: Sequence[str], *, failed_as_zero: bool
) -> tuple[dict[str, pd.DataFrame], list[tuple[str, int]]]:
    """Each run's per-query values, its failed queries counted as 0 when allowed."""
    failed = [run for run in scored if run.failed]
    if failed and not failed_as_zero:
        listed = "; ".join(f"{run.reference}: {len(run.failed)}" for run in failed)
        raise RetrieverError(
            f"queries failed in {len(failed)} of the runs ({listed}): a comparison needs every "
            "query answered, and leaving a failed query out would hide the worst outcome. "
            "Replay those runs once the retriever answers, or count each failed query as 0 "
            "(failed_as_zero)."
        )
    per_query = {
        run.reference: with_failed_as_zero(run.per_query, run.failed, measures) for run in scored
    }
    return per_query, [(run.reference, len(run.failed)) for run in failed]
