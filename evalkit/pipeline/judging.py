"""Relevance judging workflows on goldsets: measure an assessor's agreement with a goldset's
human judgments, and fill a goldset run's holes (top-k documents the goldset never judged)
with the assessor's grades, beside the exact figures.

Both judge through ``judge_pool.judge_pairs`` (cached, budgeted, stored as it goes);
document texts come from the corpus file the documents were indexed from, or the Chroma
collection that holds them (``judge_pool.DocumentTexts``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from evalkit.clock import utc_now
from evalkit.errors import ConfigError, GoldsetError, JudgeError, NotFoundError
from evalkit.judging.agreement import TauResult, kendall_tau, weighted_kappa_interval
from evalkit.judging.assessor import RelevanceAssessor
from evalkit.judging.records import JudgePair
from evalkit.metrics import Evaluator
from evalkit.pipeline.judge_pool import (
    DocumentTexts,
    JudgingOutcome,
    Progress,
    judge_pairs,
    top_k,
)
from evalkit.records import Judgment
from evalkit.records.requests import AgreementRequest, JudgingRequest
from evalkit.store.access import WriterAccess
from evalkit.store.goldsets import load_stored_goldset
from evalkit.store.judging import (
    HOLES_SOURCE,
    JudgedFigure,
    StoredAgreement,
    latest_agreement,
    new_agreement_id,
    save_agreement,
    save_run_figures,
)
from evalkit.store.runs import RunRecord, get_run, list_runs, run_queries, run_results

__all__ = [
    "HOLES_SOURCE",
    "AgreementOutcome",
    "HolesOutcome",
    "judge_run_holes",
    "measure_agreement",
]


@dataclass(frozen=True, slots=True)
class AgreementOutcome:
    """A measured agreement (None on a dry run) and the judging pass it took."""

    agreement: StoredAgreement | None
    judging: JudgingOutcome

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "agreement": None if self.agreement is None else self.agreement.to_dict(),
            "judging": self.judging.to_dict(),
        }


def measure_agreement(
    access: WriterAccess,
    goldset_name: str,
    assessor: RelevanceAssessor,
    texts: DocumentTexts,
    request: AgreementRequest,
    *,
    judging: JudgingRequest,
    progress: Progress | None = None,
) -> AgreementOutcome:
    """Judge a sample of ``goldset_name``'s human-judged pairs with ``assessor`` and store
    its agreement with the humans: weighted kappa with a bootstrap interval and the
    confusion matrix and, over the goldset's stored complete runs (at least three),
    Kendall's tau between the runs ranked by precision@k under human and assessor labels.

    A goldset whose sample holds no judgment below the relevance threshold (many list only
    relevant documents) gets as many retrieved but unjudged documents of the same queries
    from its newest run, counted as not relevant as trec_eval counts them (said in the
    details), so that kappa can tell agreement from chance. Document texts come from
    ``texts``; pairs whose document it lacks are left out and counted.
    """
    with access.writer("judge agreement") as store:
        goldset = load_stored_goldset(store, goldset_name)
        runs = [
            run
            for run in list_runs(store, goldset=goldset_name, status="complete", limit=200)
            if run.spec.goldset_version == goldset.version
        ][: request.max_runs]
        rankings = {run.run_id: top_k(run_results(store, run.run_id), request.k) for run in runs}
    if not goldset.judgments:
        raise GoldsetError(f"goldset {goldset_name!r} has no judgments to measure agreement on")
    rng = np.random.default_rng(request.seed)
    texts_of = {query.id: query.text for query in goldset.queries}
    human = {(j.query_id, j.doc_id): j.relevance for j in goldset.judgments}
    judged = sorted(human)
    picked = sorted(
        judged[int(i)]
        for i in rng.choice(len(judged), size=min(request.sample, len(judged)), replace=False)
    )
    threshold = max((run.spec.relevance_threshold for run in runs), default=1)
    added_as_zero: list[tuple[str, str]] = []
    if all(human[pair] >= threshold for pair in picked) and runs:
        newest = rankings[runs[0].run_id]
        candidates = sorted(
            {
                (query_id, doc_id)
                for query_id, _ in picked
                for doc_id in newest.get(query_id, [])
                if (query_id, doc_id) not in human
            }
        )
        if candidates:
            chosen = rng.choice(
                len(candidates), size=min(len(picked), len(candidates)), replace=False
            )
            added_as_zero = sorted(candidates[int(i)] for i in chosen)
    kappa_pairs = picked + added_as_zero
    human_grade = {**human, **dict.fromkeys(added_as_zero, 0)}

    tau_queries: list[str] = []
    if len(runs) >= 3:
        judged_queries = sorted({query_id for query_id, _ in judged})
        size = min(request.tau_queries, len(judged_queries))
        tau_queries = sorted(
            judged_queries[int(i)] for i in rng.choice(len(judged_queries), size, replace=False)
        )
    tau_pairs = sorted(
        {
            (query_id, doc_id)
            for ranking in rankings.values()
            for query_id in tau_queries
            for doc_id in ranking.get(query_id, [])
        }
    )
    documents = texts({doc for _, doc in kappa_pairs + tau_pairs})
    pairs = {
        (query_id, doc_id): JudgePair(
            texts_of[query_id], doc_id, documents[doc_id], query_id=query_id
        )
        for query_id, doc_id in dict.fromkeys(kappa_pairs + tau_pairs)
        if doc_id in documents and query_id in texts_of
    }
    outcome = judge_pairs(access, list(pairs.values()), assessor, judging, progress=progress)
    if judging.dry_run:
        return AgreementOutcome(None, outcome)

    def assessed(pair: tuple[str, str]) -> int | None:
        judge_pair = pairs.get(pair)
        return None if judge_pair is None else outcome.grades.get(judge_pair.key)

    both = [(human_grade[p], grade) for p in kappa_pairs if (grade := assessed(p)) is not None]
    if not both:
        if not outcome.plan.n_to_judge:
            raise ConfigError(
                "no sampled pair could be judged: none is in the judged pool and none was sent "
                "(the documents are missing from the corpus or collection, or --max-judgments is 0)"
            )
        reasons = ", ".join(f"{k} {n}" for k, n in outcome.unjudged.items())
        said = f"; the first: {outcome.first_failure}" if outcome.first_failure else ""
        raise JudgeError(
            f"the judge graded none of the {outcome.plan.n_to_judge} pairs sent ({reasons}"
            f"{said}): nothing to measure agreement on"
        )
    kappa = weighted_kappa_interval(
        [h for h, _ in both],
        [a for _, a in both],
        assessor_threshold=request.assessor_threshold,
        confidence=request.confidence,
        n_resamples=request.resamples,
        seed=request.seed,
    )
    tau = None
    per_run: dict[str, dict[str, float]] = {}
    if tau_queries:
        for run_id, ranking in rankings.items():
            human_hits = assessor_hits = 0
            for query_id in tau_queries:
                for doc_id in ranking.get(query_id, []):
                    human_hits += human.get((query_id, doc_id), 0) >= threshold
                    grade = assessed((query_id, doc_id))
                    assessor_hits += grade is not None and grade >= request.assessor_threshold
            denominator = request.k * len(tau_queries)
            per_run[run_id] = {
                "human": human_hits / denominator,
                "assessor": assessor_hits / denominator,
            }
        tau = kendall_tau(
            [figures["human"] for figures in per_run.values()],
            [figures["assessor"] for figures in per_run.values()],
        )
    measured_at = utc_now()
    confusion = {
        "human_levels": list(kappa.human_levels),
        "assessor_levels": list(kappa.assessor_levels),
        "counts": [list(row) for row in kappa.confusion],
    }
    agreement = StoredAgreement(
        agreement_id=new_agreement_id(measured_at),
        assessor=assessor.name,
        goldset_name=goldset.name,
        goldset_version=goldset.version,
        measured_at=measured_at,
        n_pairs=kappa.n_pairs,
        n_unjudged=len(kappa_pairs) - len(both),
        kappa=_finite(kappa.kappa),
        kappa_low=_finite(kappa.low),
        kappa_high=_finite(kappa.high),
        kappa_scale=kappa.scale,
        confusion=confusion,
        tau=None if tau is None else _finite(tau.tau),
        tau_p_value=None if tau is None else _finite(tau.p_value),
        tau_measure=f"precision@{request.k}" if tau is not None else None,
        n_runs=len(per_run),
        seed=request.seed,
        details={
            "sample": request.sample,
            "n_human_judged_sampled": len(picked),
            "n_unjudged_counted_as_not_relevant": len(added_as_zero),
            "n_missing_text": len(dict.fromkeys(kappa_pairs + tau_pairs)) - len(pairs),
            "assessor_threshold": request.assessor_threshold,
            "relevance_threshold": threshold,
            "confidence": kappa.confidence,
            "resamples": kappa.n_resamples,
            "tau_queries": len(tau_queries),
            "runs": per_run,
            "note": _tau_note(tau, per_run, request.k),
        },
    )
    with access.writer("judge agreement") as store:
        save_agreement(store, agreement)
    return AgreementOutcome(agreement, outcome)


def _tau_note(tau: TauResult | None, per_run: dict[str, dict[str, float]], k: int) -> str | None:
    """Why Kendall's tau has no value, if it has none."""
    if tau is None:
        return "Kendall's tau needs at least 3 complete runs"
    if math.isfinite(tau.tau):
        return None
    constant = [
        source
        for source, key in (("human labels", "human"), ("the assessor's labels", "assessor"))
        if len({figures[key] for figures in per_run.values()}) == 1
    ]
    under = " and ".join(constant) or "one of the label sources"
    return f"Kendall's tau is undefined: under {under} every run has the same precision@{k}"


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None


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
    """Judge the top-``request.k`` documents of goldset run ``run_id`` that its goldset
    never judged, and store the run's measures with those holes filled by the assessor's
    grades (source ``holes_filled``), beside its exact figures, which stay as they are.

    Against a binary goldset a hole counts as relevant (grade 1) when the assessor grades it
    ``assessor_threshold`` or more; against a graded one it takes the assessor's grade.
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
            f"--k {request.k} is deeper than run {run.run_id} retrieved (k {run.spec.k}); use "
            f"--k {run.spec.k} or less"
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
    documents = texts({doc for _, doc in holes})
    pairs = {
        hole: JudgePair(texts_of[hole[0]], hole[1], documents[hole[1]], query_id=hole[0])
        for hole in holes
        if hole[1] in documents
    }
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
