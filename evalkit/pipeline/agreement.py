"""An assessor's agreement with a goldset's human judgments: weighted kappa on a sample of
human-judged pairs, Kendall's tau between the goldset's runs ranked under both label
sources, stored only when enough pairs were judged (judging through ``judge_pool``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from evalkit.clock import utc_now
from evalkit.errors import ConfigError, GoldsetError, JudgeError, TooFewJudgedError
from evalkit.judging.agreement import TauResult, kendall_tau, weighted_kappa_interval
from evalkit.judging.assessor import RelevanceAssessor
from evalkit.pipeline.judge_pool import (
    OVER_BUDGET,
    DocumentTexts,
    JudgingOutcome,
    Progress,
    judge_pairs,
    text_pairs,
    top_k,
)
from evalkit.records.requests import AgreementRequest, JudgingRequest
from evalkit.store.access import WriterAccess
from evalkit.store.goldsets import load_stored_goldset
from evalkit.store.judging import StoredAgreement, new_agreement_id, save_agreement
from evalkit.store.runs import list_runs, run_results

__all__ = ["NO_TEXT", "AgreementOutcome", "measure_agreement"]


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
    """Judge a sample of ``goldset_name``'s human-judged pairs with ``assessor`` and store its
    agreement with the humans: weighted kappa, confusion matrix and Kendall's tau over the
    stored runs (docs/judging.md, "Agreement"). Raises ``TooFewJudgedError`` (nothing stored)
    below ``request.min_judged_share``.
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
    pairs = text_pairs(kappa_pairs + tau_pairs, texts_of, texts)
    outcome = judge_pairs(access, list(pairs.values()), assessor, judging, progress=progress)
    if judging.dry_run:
        return AgreementOutcome(None, outcome)

    def assessed(pair: tuple[str, str]) -> int | None:
        judge_pair = pairs.get(pair)
        return None if judge_pair is None else outcome.grades.get(judge_pair.key)

    def why_ungraded(pair: tuple[str, str]) -> str:
        judge_pair = pairs.get(pair)
        return NO_TEXT if judge_pair is None else outcome.ungraded[judge_pair.key]

    kappa_ungraded = Counter(why_ungraded(p) for p in kappa_pairs if assessed(p) is None)
    tau_ungraded = Counter(why_ungraded(p) for p in tau_pairs if assessed(p) is None)
    both = [(human_grade[p], grade) for p in kappa_pairs if (grade := assessed(p)) is not None]
    if not both:
        if not outcome.plan.n_to_judge:
            raise ConfigError(
                "no sampled pair could be judged: none is in the judged pool and none was sent "
                "(the documents are missing from the corpus or collection, or `max_judgments` is 0)"
            )
        reasons = ", ".join(f"{k} {n}" for k, n in outcome.unjudged.items())
        said = f"; the first: {outcome.first_failure}" if outcome.first_failure else ""
        raise JudgeError(
            f"the judge graded none of the {outcome.plan.n_to_judge} pairs sent ({reasons}"
            f"{said}): nothing to measure agreement on"
        )
    _refuse_too_few_judged(
        {"kappa": (len(kappa_pairs), kappa_ungraded), "tau": (len(tau_pairs), tau_ungraded)},
        request.min_judged_share,
        outcome,
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
    per_run: dict[str, dict[str, float | None]] = {}
    if tau_queries:
        for run_id, ranking in rankings.items():
            human_hits = assessor_hits = unjudged = 0
            for query_id in tau_queries:
                for doc_id in ranking.get(query_id, []):
                    grade = assessed((query_id, doc_id))
                    # Left out under both labels: an unjudged pair is not a non-relevant one.
                    if grade is None:
                        unjudged += 1
                        continue
                    human_hits += human.get((query_id, doc_id), 0) >= threshold
                    assessor_hits += grade >= request.assessor_threshold
            positions = request.k * len(tau_queries) - unjudged
            per_run[run_id] = {
                "human": human_hits / positions if positions else None,
                "assessor": assessor_hits / positions if positions else None,
                "unjudged": unjudged,
            }
        human_figures = [f for figures in per_run.values() if (f := figures["human"]) is not None]
        assessor_figures = [
            f for figures in per_run.values() if (f := figures["assessor"]) is not None
        ]
        if len(human_figures) == len(per_run):
            tau = kendall_tau(human_figures, assessor_figures)
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
            "tau_pairs": len(tau_pairs),
            "tau_unjudged": tau_ungraded.total(),
            "unjudged_by_reason": {
                "kappa": dict(sorted(kappa_ungraded.items())),
                "tau": dict(sorted(tau_ungraded.items())),
            },
            "min_judged_share": request.min_judged_share,
            "runs": per_run,
            "note": _tau_note(tau, per_run, request.k, n_runs=len(runs)),
        },
    )
    with access.writer("judge agreement") as store:
        save_agreement(store, agreement)
    return AgreementOutcome(agreement, outcome)


NO_TEXT = "no_text"
"""Why a pair was never sent: the corpus or collection given has no text for its document."""

_UNGRADED_NAMES = {OVER_BUDGET: "over the budget", NO_TEXT: "no document text"}
_PART_NAMES = {"kappa": "kappa sample", "tau": "runs' top-k for Kendall's tau"}


def _refuse_too_few_judged(
    parts: Mapping[str, tuple[int, Counter[str]]], min_share: float, outcome: JudgingOutcome
) -> None:
    """Raise ``TooFewJudgedError`` when a part (its pairs, and why those without a grade
    have none) has less than ``min_share`` of its pairs graded: saying how many were,
    why the rest were not, and how to go on."""
    short = {
        part: (total, ungraded)
        for part, (total, ungraded) in parts.items()
        if total and (total - ungraded.total()) / total < min_share
    }
    if not short:
        return
    counted = "; ".join(
        f"{_PART_NAMES[part]}: {total - ungraded.total():,} of {total:,} pairs judged"
        + _reasons(ungraded)
        for part, (total, ungraded) in parts.items()
        if total
    )
    reasons = {reason for _, ungraded in short.values() for reason in ungraded}
    advice = []
    if OVER_BUDGET in reasons:
        advice.append("raise --max-judgments (or leave it out)")
    if reasons - {OVER_BUDGET, NO_TEXT}:
        said = f" (the first: {outcome.first_failure})" if outcome.first_failure else ""
        advice.append(f"run again once the judge answers{said}")
    if NO_TEXT in reasons:
        advice.append("give the corpus or collection the goldset's runs retrieved from")
    raise TooFewJudgedError(
        f"too few pairs judged to measure an agreement ({counted}); at least "
        f"{min_share:.0%} of each part is needed, so nothing is stored. The pairs judged are "
        f"kept in the judged pool and the next pass sends only the rest: {'; '.join(advice)}"
    )


def _reasons(ungraded: Counter[str]) -> str:
    """`` (over the budget 3, judge_error 2)``: why pairs have no grade, or nothing."""
    if not ungraded:
        return ""
    named = (f"{_UNGRADED_NAMES.get(why, why)} {n:,}" for why, n in sorted(ungraded.items()))
    return f" ({', '.join(named)})"


def _tau_note(
    tau: TauResult | None, per_run: dict[str, dict[str, float | None]], k: int, *, n_runs: int
) -> str | None:
    """Why Kendall's tau has no value, if it has none."""
    if tau is None and n_runs < 3:
        return "Kendall's tau needs at least 3 complete runs"
    if tau is None:
        bare = [run_id for run_id, figures in per_run.items() if figures["human"] is None]
        return f"Kendall's tau is undefined: no pair of {', '.join(bare)}'s top-{k} was judged"
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
