"""Comparing two runs: the one piece the gate, the alert rules, the precision-drift check and
the dashboard share.

A run is scored (``score_run``; ``evalkit.pipeline.compared_runs.resolve_run`` gives the runs:
this module never reads a file), then ``compare_scored`` returns one ``ComparisonReport``.
The partial-run rule lives here: a failed query is refused (``FailedQueriesError``) or,
with ``failed_as_zero``, counted as 0, never dropped as if not asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

import pandas as pd

from evalkit.errors import ConfigError, InputError
from evalkit.metrics import Evaluator, parse_measure, parse_measures
from evalkit.records.requests import PAIRED_TEST_DEFAULTS, PairedTestSettings, measure_names
from evalkit.stats.decision import Decision
from evalkit.stats.paired import (
    Comparison,
    MetricComparison,
    QueryDrop,
    compare_runs,
    worst_queries,
)
from evalkit.store.goldsets import judgments_frame
from evalkit.store.retention import require_per_query_rows
from evalkit.store.runs import get_run, query_metrics, run_queries, run_results

if TYPE_CHECKING:
    from evalkit.store import Store

__all__ = [
    "JUDGMENT_SETTINGS",
    "UNCUT_DEPTH",
    "ComparisonReport",
    "RunFile",
    "ScoredRun",
    "compare_scored",
    "compare_stored_runs",
    "document_depth",
    "lost_relevant_documents",
    "score_run",
    "score_run_file",
    "score_stored_run",
]

UNCUT_DEPTH: Final = 1000
"""Depth at which lost and gained relevant documents are looked for under a measure without
a cutoff (``map``, ``mrr``, ``r_precision``): the 1000 documents per query a TREC run
conventionally holds."""

JUDGMENT_SETTINGS: Final = "qrels or goldset"
"""The settings that give a comparison its judgments, as this module's errors name them (the
CLI names its flags instead)."""


@dataclass(frozen=True, slots=True)
class RunFile:
    """A TREC run file's rows as read (``query_id``, ``doc_id``, ``score``), and the file's
    name as the user gave it (``reference``)."""

    reference: str
    results: pd.DataFrame


@dataclass(frozen=True, slots=True)
class ScoredRun:
    """A run ready to compare: its ranked results, per-query values and the judgments used.

    ``reference`` is what the user named; ``run_id`` is set for stored runs. Failed
    (judged) queries are absent from ``per_query`` and named in ``failed``; queries
    ``judgments`` do not cover cannot be scored and are named in ``unjudged``.
    """

    reference: str
    run_id: str | None
    results: pd.DataFrame
    per_query: pd.DataFrame
    judgments: pd.DataFrame
    relevance_threshold: int
    failed: tuple[str, ...] = ()
    unjudged: tuple[str, ...] = ()

    @property
    def held(self) -> set[str]:
        """Every query the run holds: scored, failed or not judged."""
        return {str(q) for q in self.per_query.index} | set(self.failed) | set(self.unjudged)


def score_run_file(
    run: RunFile,
    judgments: pd.DataFrame,
    measures: Sequence[str],
    *,
    relevance_threshold: int = 1,
    complete: bool = True,
) -> ScoredRun:
    """Score a TREC run file's rows on ``judgments``; judged queries missing from it score 0
    (with ``complete`` false they are left out, taken as not asked).

    Raises InputError when none of its queries is judged (every query would score 0, a
    false regression) and ``RepeatedPairError`` for a document listed twice for a query.
    """
    results = run.results
    _require_judged_queries("the run file", results["query_id"], judgments, path=run.reference)
    evaluator = Evaluator(
        judgments, parse_measures(measures), relevance_threshold=relevance_threshold
    )
    evaluation = evaluator.evaluate(results, complete=complete)
    return ScoredRun(
        reference=run.reference,
        run_id=None,
        results=results,
        per_query=evaluation.per_query,
        judgments=judgments,
        relevance_threshold=relevance_threshold,
        unjudged=_unjudged(results["query_id"], judgments),
    )


def score_stored_run(
    store: Store,
    run_id: str,
    measures: Sequence[str],
    *,
    judgments: pd.DataFrame | None = None,
) -> ScoredRun:
    """Per-query values of a stored run for ``measures``: stored values as they are, the
    others (or all, when other ``judgments`` are given) computed from its stored results.
    Failed queries stay out of ``per_query`` and are listed in ``failed``.
    """
    run = get_run(store, run_id)
    names = [str(m) for m in parse_measures(measures)]
    require_per_query_rows(
        store,
        run.run_id,
        needed=". A paired comparison needs them: compare with a run retention kept, and list "
        "the runs you compare against in the retention job's keep_runs",
    )
    judgments_given = judgments is not None
    if judgments is None:
        if run.spec.goldset_version is None:
            raise ConfigError(
                f"run {run.run_id} has no goldset; pass judgments ({JUDGMENT_SETTINGS})"
            )
        judgments = judgments_frame(store, run.spec.goldset_version)
    stored = run_results(store, run.run_id)
    results = stored[["query_id", "doc_id", "score"]]
    per_query = query_metrics(store, run.run_id)
    replayed = run_queries(store, run.run_id)
    judged = set(judgments["query_id"])
    failed = tuple(
        sorted(str(q) for q in replayed.loc[replayed["error"].notna(), "query_id"] if q in judged)
    )
    missing = [name for name in names if name not in per_query.columns]
    if missing or per_query.empty or judgments_given:
        for name in names:
            measure = parse_measures([name])[0]
            if measure.cutoff is not None and measure.cutoff > run.spec.k:
                raise ConfigError(
                    f"run {run.run_id} retrieved only {run.spec.k} documents per query: "
                    f"{name} needs {measure.cutoff}"
                )
        answered = replayed.loc[replayed["error"].isna(), "query_id"].tolist()
        if judgments_given:
            _require_judged_queries(f"run {run.run_id}", replayed["query_id"], judgments)
        evaluator = Evaluator(
            judgments, parse_measures(names), relevance_threshold=run.spec.relevance_threshold
        )
        per_query = evaluator.evaluate(
            results, complete=True, query_ids=[q for q in answered if q in judged]
        ).per_query
    return ScoredRun(
        reference=run_id,
        run_id=run.run_id,
        results=results,
        per_query=per_query[names],
        judgments=judgments,
        relevance_threshold=run.spec.relevance_threshold,
        failed=failed,
        unjudged=_unjudged(replayed["query_id"], judgments),
    )


def _unjudged(query_ids: pd.Series, judgments: pd.DataFrame) -> tuple[str, ...]:
    """The queries of ``query_ids`` that ``judgments`` do not cover, sorted."""
    return tuple(sorted({str(q) for q in query_ids} - {str(q) for q in judgments["query_id"]}))


def _require_judged_queries(
    what: str, query_ids: pd.Series, judgments: pd.DataFrame, *, path: str | None = None
) -> None:
    judged = set(judgments["query_id"])
    asked = set(query_ids)
    if asked & judged:
        return
    example = f" (such as {min(asked)!r})" if asked else ""
    raise InputError(
        f"no query of {what} is judged: it has {len(asked)} queries{example}, the judgments "
        f"{len(judged)} (such as {min(judged)!r}); check that the run and the goldset or "
        "qrels number queries alike",
        path=path,
    )


def score_run(
    store: Store | None,
    run: str | RunFile,
    measures: Sequence[str],
    *,
    judgments: pd.DataFrame | None = None,
    complete: bool = True,
) -> ScoredRun:
    """Score ``run``: a run file's rows (on ``judgments``; ``complete`` as ``score_run_file``
    takes it) or the id of a run ``store`` holds (``score_stored_run``)."""
    if isinstance(run, RunFile):
        if judgments is None:
            raise ConfigError(
                f"{run.reference} is a run file: give {JUDGMENT_SETTINGS} to score it"
            )
        return score_run_file(run, judgments, measures, complete=complete)
    if store is None:
        raise ConfigError(f"no store to read run {run!r} from")
    return score_stored_run(store, run, measures, judgments=judgments)


def document_depth(measure: str) -> int:
    """How deep lost and gained relevant documents are looked for under ``measure``: its
    cutoff, or ``UNCUT_DEPTH`` for a measure without one."""
    return parse_measure(measure).cutoff or UNCUT_DEPTH


def lost_relevant_documents(
    baseline: ScoredRun, candidate: ScoredRun, query_ids: Sequence[str], *, depth: int
) -> dict[str, dict[str, list[str]]]:
    """Per query: relevant documents in the baseline's top ``depth`` but not the candidate's
    (``lost``), and the other way round (``gained``)."""
    relevant = baseline.judgments[baseline.judgments["relevance"] >= baseline.relevance_threshold]
    relevant_by_query: dict[str, set[str]] = {}
    for query_id, doc_id in zip(
        relevant["query_id"].tolist(), relevant["doc_id"].tolist(), strict=True
    ):
        relevant_by_query.setdefault(str(query_id), set()).add(str(doc_id))

    def top(run: ScoredRun) -> dict[str, set[str]]:
        frame = run.results[run.results["query_id"].isin(query_ids)]
        ranked = frame.sort_values(["query_id", "score", "doc_id"], ascending=[True, False, False])
        kept = ranked.groupby("query_id").head(depth)
        tops: dict[str, set[str]] = {}
        for query_id, doc_id in zip(
            kept["query_id"].tolist(), kept["doc_id"].tolist(), strict=True
        ):
            tops.setdefault(str(query_id), set()).add(str(doc_id))
        return tops

    before, after = top(baseline), top(candidate)
    changes = {}
    for query_id in query_ids:
        wanted = relevant_by_query.get(query_id, set())
        had = before.get(query_id, set()) & wanted
        has = after.get(query_id, set()) & wanted
        changes[query_id] = {"lost": sorted(had - has), "gained": sorted(has - had)}
    return changes


@dataclass(frozen=True, slots=True)
class ComparisonReport:
    """Two runs compared: the paired statistics (``compare_runs``), the verdict and the
    queries behind it. ``worst_queries``: per measure, at most ``worst`` queries that got
    worse, largest drop first, with the relevant documents lost and gained in the top
    ``document_depth(measure)``. ``baseline``/``candidate`` are the references as named.
    """

    baseline: str
    candidate: str
    comparison: Comparison
    worst_queries: tuple[QueryDrop, ...]
    worst: int
    baseline_run: ScoredRun = field(repr=False, compare=False)
    candidate_run: ScoredRun = field(repr=False, compare=False)

    @property
    def decision(self) -> Decision:
        """The overall verdict: ``regression`` if any measure regressed, and so on."""
        return self.comparison.decision

    @property
    def measures(self) -> tuple[str, ...]:
        """The measures compared, in order."""
        return self.comparison.measures

    @property
    def metrics(self) -> tuple[MetricComparison, ...]:
        """One paired comparison per measure."""
        return self.comparison.metrics

    @property
    def failed_in_baseline(self) -> tuple[str, ...]:
        """Queries whose retrieval failed in the baseline (compared as 0)."""
        return self.comparison.failed_in_baseline

    @property
    def failed_in_candidate(self) -> tuple[str, ...]:
        """Queries whose retrieval failed in the candidate (compared as 0)."""
        return self.comparison.failed_in_candidate

    def metric(self, measure: str) -> MetricComparison:
        """The comparison of one measure; raises InputError naming the known ones."""
        return self.comparison.metric(measure)

    def worst_for(self, measure: str) -> tuple[QueryDrop, ...]:
        """The worst-regressed queries of ``measure``, largest drop first."""
        self.comparison.metric(measure)
        return tuple(drop for drop in self.worst_queries if drop.measure == measure)

    def document_changes(
        self, measure: str, query_ids: Sequence[str] | None = None
    ) -> dict[str, dict[str, list[str]]]:
        """Relevant documents lost and gained per query (default: every shared query) in
        the top ``document_depth(measure)``."""
        ids = list(self.comparison.metric(measure).query_ids if query_ids is None else query_ids)
        return lost_relevant_documents(
            self.baseline_run, self.candidate_run, ids, depth=document_depth(measure)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report: ``Comparison.to_dict()`` with the two references and the worst
        queries of each measure (with the relevant documents ``lost`` and ``gained``)."""
        data = self.comparison.to_dict()
        data["baseline"] = self.baseline
        data["candidate"] = self.candidate
        data["worst_queries"] = {
            measure: [
                {**drop.to_dict(), "lost": list(drop.lost_docs), "gained": list(drop.gained_docs)}
                for drop in self.worst_for(measure)
            ]
            for measure in self.measures
        }
        return data


def compare_scored(
    baseline: ScoredRun,
    candidate: ScoredRun,
    measures: Sequence[str],
    test: PairedTestSettings = PAIRED_TEST_DEFAULTS,
    *,
    worst: int = 10,
    failed_as_zero: bool = False,
) -> ComparisonReport:
    """Compare two scored runs on ``measures`` with ``compare_runs``'s paired ``test``: the
    verdict and at most ``worst`` worst-regressed queries per measure. Failed queries
    follow the module's partial-run rule (``FailedQueriesError`` unless ``failed_as_zero``).
    """
    comparison = _with_unjudged(
        compare_runs(
            baseline.per_query,
            candidate.per_query,
            test,
            measures=list(measure_names(measures)),
            failed_in_baseline=baseline.failed,
            failed_in_candidate=candidate.failed,
            failed_as_zero=failed_as_zero,
        ),
        baseline,
        candidate,
    )
    drops: list[QueryDrop] = []
    for measure in comparison.measures:
        rows = [row for row in worst_queries(comparison, measure, n=worst) if row.delta < 0]
        if not rows:
            continue
        changes = lost_relevant_documents(
            baseline, candidate, [row.query_id for row in rows], depth=document_depth(measure)
        )
        drops.extend(
            replace(
                row,
                lost_docs=tuple(changes[row.query_id]["lost"]),
                gained_docs=tuple(changes[row.query_id]["gained"]),
            )
            for row in rows
        )
    return ComparisonReport(
        baseline=baseline.reference,
        candidate=candidate.reference,
        comparison=comparison,
        worst_queries=tuple(drops),
        worst=worst,
        baseline_run=baseline,
        candidate_run=candidate,
    )


def _with_unjudged(comparison: Comparison, baseline: ScoredRun, candidate: ScoredRun) -> Comparison:
    """``comparison`` with the queries neither run could be scored on told apart: a query one
    run holds unjudged and the other never ran is only in that run, one both hold unjudged
    is ``not_judged``. Scored on other judgments (a goldset that lost queries), the
    baseline's extra queries would otherwise vanish as if both runs had the same ones."""
    if not baseline.unjudged and not candidate.unjudged:
        return comparison
    return replace(
        comparison,
        only_in_baseline=tuple(
            sorted({*comparison.only_in_baseline, *(set(baseline.unjudged) - candidate.held)})
        ),
        only_in_candidate=tuple(
            sorted({*comparison.only_in_candidate, *(set(candidate.unjudged) - baseline.held)})
        ),
        not_judged=tuple(sorted(set(baseline.unjudged) & set(candidate.unjudged))),
    )


def compare_stored_runs(
    store: Store,
    baseline: str,
    candidate: str,
    measures: Sequence[str],
    test: PairedTestSettings = PAIRED_TEST_DEFAULTS,
    *,
    worst: int = 10,
    failed_as_zero: bool = False,
) -> ComparisonReport:
    """``compare_scored`` on two stored runs, each scored with the values stored with it."""
    return compare_scored(
        score_stored_run(store, baseline, measures),
        score_stored_run(store, candidate, measures),
        measures,
        test,
        worst=worst,
        failed_as_zero=failed_as_zero,
    )
