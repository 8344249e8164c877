"""Fill a goldset run's holes (top-k documents the goldset never judged) with an
assessor's grades, and store the run's measures so computed beside the exact figures
(judging through ``judge_pool``; agreement: ``pipeline.agreement``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from evalkit.clock import utc_now
from evalkit.errors import ConfigError, NotFoundError
from evalkit.judging.assessor import RelevanceAssessor
from evalkit.metrics import Evaluator
from evalkit.pipeline.judge_pool import (
    DocumentTexts,
    JudgingOutcome,
    Progress,
    judge_pairs,
    text_pairs,
    top_k,
)
from evalkit.records import Judgment
from evalkit.records.requests import JudgingRequest
from evalkit.store.access import WriterAccess
from evalkit.store.goldsets import load_stored_goldset
from evalkit.store.judging import (
    HOLES_SOURCE,
    JudgedFigure,
    StoredAgreement,
    latest_agreement,
    save_run_figures,
)
from evalkit.store.runs import RunRecord, get_run, run_queries, run_results

__all__ = ["HOLES_SOURCE", "HolesOutcome", "judge_run_holes"]


@dataclass(frozen=True, slots=True)
class HolesOutcome:
    """A goldset run's holes (top-k documents the goldset never judged) and the run's
    measures with the holes filled by the assessor, beside the exact ones."""

    run: RunRecord
    k: int
    judged_at_k: float
    n_holes: int
    figures: tuple[JudgedFigure, ...]
    judging: JudgingOutcome
    agreement: StoredAgreement | None
    n_without_text: int = 0
    """Holes whose document the corpus or collection given has no text for: never sent."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "run_id": self.run.run_id,
            "k": self.k,
            "judged_at_k": self.judged_at_k,
            "holes": self.n_holes,
            "holes_without_text": self.n_without_text,
            "exact": dict(self.run.aggregates),
            "filled": [figure.to_dict() for figure in self.figures],
            "judging": self.judging.to_dict(),
            "agreement": None if self.agreement is None else self.agreement.to_dict(),
        }


def judge_run_holes(
    access: WriterAccess,
    run_id: str,
    assessor: RelevanceAssessor,
    texts: DocumentTexts,
    request: JudgingRequest,
    *,
    assessor_threshold: int = 2,
    progress: Progress | None = None,
) -> HolesOutcome:
    """Judge the top-``request.k`` documents of goldset run ``run_id`` its goldset never judged and
    store its measures with those holes filled (source ``holes_filled``) beside the exact ones;
    a binary goldset takes grade 1 at ``assessor_threshold`` or more, a graded one the grade.
    """
    with access.writer("judge holes") as store:
        run = get_run(store, run_id)
        if not run.spec.goldset_name or not run.spec.goldset_version:
            raise NotFoundError(
                f"run {run.run_id} has no goldset (a {run.spec.kind} run): only goldset runs "
                "have holes to judge"
            )
        goldset = load_stored_goldset(store, run.spec.goldset_name, run.spec.goldset_version)
        results = run_results(store, run.run_id)
        replayed = run_queries(store, run.run_id)
        agreement = latest_agreement(store, assessor.name, goldset=run.spec.goldset_name)
    if request.k > run.spec.k:
        raise ConfigError(
            f"`k` {request.k} is deeper than run {run.run_id} retrieved (k {run.spec.k}); use "
            f"`k` {run.spec.k} or less"
        )
    ranked = top_k(results, request.k)
    # Answered queries with nothing retrieved are scored (0), as the run's exact figures are.
    answered = [str(q) for q in replayed.loc[replayed["error"].isna(), "query_id"]]
    ranking = {query_id: ranked.get(query_id, []) for query_id in answered}
    texts_of = {query.id: query.text for query in goldset.queries}
    human = {(j.query_id, j.doc_id): j.relevance for j in goldset.judgments}
    judged_queries = {query_id for query_id, _ in human}
    queries = [query_id for query_id in ranking if query_id in judged_queries]
    holes = [
        (query_id, doc_id)
        for query_id in queries
        for doc_id in ranking[query_id]
        if (query_id, doc_id) not in human
    ]
    judged_at_k = (
        float(
            np.mean(
                [
                    sum((query_id, doc) in human for doc in ranking[query_id]) / request.k
                    for query_id in queries
                ]
            )
        )
        if queries
        else 0.0
    )
    pairs = text_pairs(holes, texts_of, texts)
    outcome = judge_pairs(access, list(pairs.values()), assessor, request, progress=progress)
    binary = max(human.values(), default=0) <= 1
    filled: list[Judgment] = [Judgment(q, d, r) for (q, d), r in human.items()]
    n_filled = 0
    for hole, pair in pairs.items():
        grade = outcome.grades.get(pair.key)
        if grade is None:
            continue
        n_filled += 1
        relevance = int(grade >= assessor_threshold) if binary else grade
        filled.append(Judgment(hole[0], hole[1], relevance))
    figures: tuple[JudgedFigure, ...] = ()
    if not outcome.dry_run and queries:
        evaluator = Evaluator(
            filled, run.spec.measures, relevance_threshold=run.spec.relevance_threshold
        )
        evaluated = evaluator.evaluate(
            results[results["query_id"].isin(queries)], complete=True, query_ids=queries
        )
        computed_at = utc_now()
        status = "complete" if n_filled == len(holes) else "partial"
        figures = tuple(
            JudgedFigure(
                run_id=run.run_id,
                source=HOLES_SOURCE,
                labeller=assessor.name,
                measure=measure,
                value=float(value),
                low=None,
                high=None,
                n_queries=len(queries),
                judged_share=(
                    judged_at_k + (n_filled / (request.k * len(queries))) if queries else None
                ),
                status=status,
                agreement_id=None if agreement is None else agreement.agreement_id,
                computed_at=computed_at,
                details={
                    "exact": run.aggregates.get(measure),
                    "k": request.k,
                    "judged_at_k": judged_at_k,
                    "holes": len(holes),
                    "holes_judged": n_filled,
                    "holes_without_text": len(holes) - len(pairs),
                    "assessor_threshold": assessor_threshold,
                    "binary_goldset": binary,
                },
            )
            for measure, value in evaluated.aggregate.items()
        )
        with access.writer("judge holes") as store:
            save_run_figures(store, figures)
    return HolesOutcome(
        run=run,
        k=request.k,
        judged_at_k=judged_at_k,
        n_holes=len(holes),
        n_without_text=len(holes) - len(pairs),
        figures=figures,
        judging=outcome,
        agreement=agreement,
    )
