"""Production traffic labelled: ``judge_traffic_run`` grades a replayed window's rankings with
the LLM assessor (``judge_pool.judge_pairs``), ``estimate_traffic_run`` estimates its
precision from the retriever's scores calibrated on a goldset run; both store their figures
in ``judged_run_figures`` (docs/judging.md, "Production traffic").
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from evalkit.clock import utc_now
from evalkit.errors import ConfigError, NotFoundError
from evalkit.judging.assessor import RelevanceAssessor
from evalkit.judging.estimate import PrecisionEstimate, estimate_precision, fit_calibration
from evalkit.judging.window import (
    NO_DOCUMENT,
    UNLABELLED,
    WINDOW_INTERVAL,
    figures_of,
    judged_share,
    labelled_per_query,
)
from evalkit.pipeline.judge_pool import (
    OVER_BUDGET,
    DocumentTexts,
    JudgingOutcome,
    Progress,
    judge_pairs,
    text_pairs,
    top_k,
)
from evalkit.records.requests import DEFAULT_CALIBRATION, JudgingRequest
from evalkit.store.access import WriterAccess
from evalkit.store.goldsets import load_stored_goldset
from evalkit.store.judging import (
    ASSESSOR_SOURCE,
    ESTIMATE_SOURCE,
    LOGGED_SOURCE,
    JudgedFigure,
    StoredAgreement,
    latest_agreement,
    save_run_figures,
)
from evalkit.store.runs import RunRecord, get_run, list_runs, run_queries, run_results
from evalkit.store.slices import save_query_values
from evalkit.store.store import Store
from evalkit.store.traffic import (
    StoredWindowSummary,
    load_sample_queries,
    logged_results,
    window_summary_of_run,
)

__all__ = [
    "ASSESSOR_SOURCE",
    "ESTIMATE_SOURCE",
    "LOGGED_SOURCE",
    "WindowEstimate",
    "WindowJudging",
    "calibration_key",
    "calibration_run",
    "estimate_traffic_run",
    "found_top_scores",
    "judge_traffic_run",
    "judging_order",
]


@dataclass(frozen=True, slots=True)
class WindowJudging:
    """A traffic window's replayed (and, where production logged them, logged) rankings
    labelled by the assessor: the stored figures, the judging pass and the agreement they
    carry."""

    run: RunRecord
    window_label: str
    figures: tuple[JudgedFigure, ...]
    judging: JudgingOutcome
    agreement: StoredAgreement | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "run_id": self.run.run_id,
            "window": self.window_label,
            "figures": [figure.to_dict() for figure in self.figures],
            "judging": self.judging.to_dict(),
            "agreement": None if self.agreement is None else self.agreement.to_dict(),
            "agreement_note": None if self.agreement is not None else "agreement not measured",
        }


def _traffic_run(store: Store, run_id: str) -> tuple[RunRecord, StoredWindowSummary]:
    """The traffic replay ``run_id`` and its window summary; NotFoundError for another run."""
    run = get_run(store, run_id)
    summary = window_summary_of_run(store, run.run_id)
    if summary is None:
        raise NotFoundError(
            f"run {run.run_id} is not a traffic replay (a {run.spec.kind} run): only traffic "
            "windows are labelled or estimated; a goldset run's holes are judged with "
            "`evalkit judge holes`"
        )
    return run, summary


def _answered(store: Store, run: RunRecord, k: int) -> tuple[list[str], int]:
    """The run's queries the retriever answered (empty answers included, as trec_eval
    scores them 0), in query order, and how many failed (left out; a figure missing them
    is ``partial``). Refuses a depth the run did not retrieve to."""
    if k > run.spec.k:
        raise ConfigError(
            f"`k` {k} is deeper than run {run.run_id} retrieved (k {run.spec.k}): its missing "
            f"ranks would count as not relevant; use `k` {run.spec.k} or less"
        )
    replayed = run_queries(store, run.run_id)
    failed = replayed["error"].notna()
    return [str(q) for q in replayed.loc[~failed, "query_id"]], int(failed.sum())


def judging_order(query_ids: Iterable[str], seed: int) -> list[str]:
    """``query_ids`` in a seeded random order, the order a window's queries are judged in:
    each query's place is the SHA-256 of ``seed:query_id``, so it does not depend on which
    other queries the window holds, and a later pass with the same seed goes on where the
    budget stopped."""
    return sorted(
        query_ids,
        key=lambda query_id: (hashlib.sha256(f"{seed}:{query_id}".encode()).hexdigest(), query_id),
    )


def _grade_matrix(
    rankings: Mapping[str, Sequence[str]],
    queries: Sequence[str],
    grade_of: Callable[[str, str], int | None],
    k: int,
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """The grades of ``queries``' top ``k`` in ``rankings``, one row per query."""
    matrix = np.full((len(queries), k), NO_DOCUMENT, dtype=np.int64)
    for row, query_id in enumerate(queries):
        for column, doc_id in enumerate(rankings[query_id][:k]):
            grade = grade_of(query_id, doc_id)
            matrix[row, column] = UNLABELLED if grade is None else grade
    return matrix


def _sampled_queries(
    order: Sequence[str],
    rankings: Mapping[str, Sequence[str]],
    reached: Callable[[str, str], bool],
) -> list[str]:
    """The queries of ``rankings`` in ``order`` up to the first the budget did not reach
    (a pair of it ``reached`` says was left over the budget): a random sample of the window
    whatever the pool held already, as a query judged for free further on (the same query
    in an earlier window, say) would not be."""
    sampled = []
    for query_id in order:
        if query_id not in rankings:
            continue
        if not all(reached(query_id, doc_id) for doc_id in rankings[query_id]):
            break
        sampled.append(query_id)
    return sampled


def judge_traffic_run(
    access: WriterAccess,
    run_id: str,
    assessor: RelevanceAssessor,
    texts: DocumentTexts,
    request: JudgingRequest,
    *,
    assessor_threshold: int = 2,
    seed: int = 0,
    progress: Progress | None = None,
) -> WindowJudging:
    """Label the top-``request.k`` of a traffic replay's queries (and of the logged results) with
    ``assessor`` and store the window's precision, nDCG and hit rate at k with intervals, the
    judged share and the newest agreement (docs/judging.md, "Production traffic").
    """
    with access.writer("judge traffic") as store:
        run, summary = _traffic_run(store, run_id)
        answered, n_failed = _answered(store, run, request.k)
        queries = load_sample_queries(store, summary.sample_id)
        ranked = top_k(run_results(store, run.run_id), request.k)
        replayed = {query_id: ranked.get(query_id, []) for query_id in answered}
        logged = {
            query_id: docs[: request.k]
            for query_id, docs in logged_results(store, list(replayed)).items()
            if docs
        }
        agreement = latest_agreement(store, assessor.name)
    texts_of = dict(zip(queries["query_id"].astype(str), queries["text"].astype(str), strict=True))
    replayed = {query_id: docs for query_id, docs in replayed.items() if query_id in texts_of}
    order = judging_order(replayed, seed)
    wanted = {
        query_id: sorted(
            {doc for rankings in (replayed, logged) for doc in rankings.get(query_id, [])}
        )
        for query_id in order
    }
    pairs = text_pairs(
        ((query_id, doc_id) for query_id in order for doc_id in wanted[query_id]),
        texts_of,
        texts,
    )
    outcome = judge_pairs(
        access, list(pairs.values()), assessor, request, whole_queries=True, progress=progress
    )

    def grade_of(query_id: str, doc_id: str) -> int | None:
        pair = pairs.get((query_id, doc_id))
        return None if pair is None else outcome.grades.get(pair.key)

    def reached(query_id: str, doc_id: str) -> bool:
        pair = pairs.get((query_id, doc_id))
        return pair is None or outcome.ungraded.get(pair.key) != OVER_BUDGET

    figures: list[JudgedFigure] = []
    per_query: dict[str, dict[str, float]] = {}
    if not outcome.dry_run:
        computed_at = utc_now()
        for source, rankings in ((ASSESSOR_SOURCE, replayed), (LOGGED_SOURCE, logged)):
            if not rankings:
                continue
            sampled = _sampled_queries(order, rankings, reached)
            complete, values = labelled_per_query(
                _grade_matrix(rankings, sampled, grade_of, request.k), threshold=assessor_threshold
            )
            if source == ASSESSOR_SOURCE:
                labelled = [q for q, ok in zip(sampled, complete, strict=True) if ok]
                per_query = {
                    m: dict(zip(labelled, v.tolist(), strict=True)) for m, v in values.items()
                }
            measured = figures_of(values)
            share = judged_share(_grade_matrix(rankings, list(rankings), grade_of, request.k))
            n_used = measured[0].n_queries
            left_out = {
                "over_budget": len(rankings) - len(sampled),
                "unjudged_or_no_text": len(sampled) - n_used,
            }
            figures.extend(
                JudgedFigure(
                    run_id=run.run_id,
                    source=source,
                    labeller=assessor.name,
                    measure=figure.measure,
                    value=figure.value,
                    low=figure.low,
                    high=figure.high,
                    n_queries=figure.n_queries,
                    judged_share=share,
                    status="complete" if n_used == len(rankings) and not n_failed else "partial",
                    agreement_id=None if agreement is None else agreement.agreement_id,
                    computed_at=computed_at,
                    details={
                        "window": summary.window_label,
                        "k": request.k,
                        "window_queries": len(rankings),
                        "queries_left_out": left_out,
                        "failed_queries_left_out": n_failed,
                        "assessor_threshold": assessor_threshold,
                        "interval": WINDOW_INTERVAL,
                        "seed": seed,
                        "agreement": None if agreement is None else agreement.summary(),
                    },
                )
                for figure in measured
            )
        with access.writer("judge traffic") as store:
            save_run_figures(store, figures)
            save_query_values(store, run.run_id, ASSESSOR_SOURCE, assessor.name, per_query)
    return WindowJudging(
        run=run,
        window_label=summary.window_label,
        figures=tuple(figures),
        judging=outcome,
        agreement=agreement,
    )


@dataclass(frozen=True, slots=True)
class WindowEstimate:
    """A traffic window's label-free precision estimate, the goldset run its calibration
    was fitted on, and the stored figure."""

    run: RunRecord
    window_label: str
    calibration_run: RunRecord
    estimate: PrecisionEstimate
    figure: JudgedFigure

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "run_id": self.run.run_id,
            "window": self.window_label,
            "calibration_run": self.calibration_run.run_id,
            "goldset": self.calibration_run.spec.goldset_name,
            "estimate": self.estimate.to_dict() | {"per_query": None},
            "figure": self.figure.to_dict(),
        }


def _scores_by_query(results: pd.DataFrame, k: int) -> dict[str, np.ndarray[Any, Any]]:
    ranked = results[results["rank"] <= k].sort_values(["query_id", "rank"])
    return {
        str(query_id): group["score"].to_numpy(dtype=np.float64)
        for query_id, group in ranked.groupby("query_id", sort=True)
    }


def calibration_key(run: RunRecord) -> str:
    """The name of what a calibration must match: the run's retriever (as runs are grouped
    by it) and its query model's canary hash. Which goldset runs match is decided by
    ``RunSpec.same_query_model`` (canary cosine), not by this string: the same model's hash
    differs between ONNX Runtime and torch."""
    return f"{run.retriever_id}|{run.spec.model_fingerprint or 'no model'}"


def calibration_run(store: Store, run: RunRecord, k: int) -> RunRecord:
    """The newest complete goldset run of ``run``'s retriever and query model retrieved to
    depth ``k`` or more: what a traffic window's scores are read against. ConfigError when
    there is none."""
    for candidate in list_runs(store, status="complete", kind="goldset", limit=1000):
        if (
            candidate.retriever_id == run.retriever_id
            and candidate.spec.same_query_model(run.spec) is True
            and candidate.spec.k >= k
        ):
            return candidate
    raise ConfigError(
        f"no complete goldset run of the same retriever and model as run {run.run_id} "
        f"({calibration_key(run)}), retrieved to depth {k} or more, to calibrate its scores "
        "on: replay a goldset with this retriever first (`evalkit run --goldset NAME ...`)"
    )


def found_top_scores(store: Store, goldset_run: RunRecord, k: int) -> list[float]:
    """The top-1 score of each query of a goldset run whose top ``k`` holds a document the
    goldset judges relevant."""
    goldset = load_stored_goldset(
        store, str(goldset_run.spec.goldset_name), goldset_run.spec.goldset_version
    )
    threshold = goldset_run.spec.relevance_threshold
    relevant = {(j.query_id, j.doc_id) for j in goldset.judgments if j.relevance >= threshold}
    results = run_results(store, goldset_run.run_id)
    ranked = results[results["rank"] <= k]
    found = ranked[
        [(q, d) in relevant for q, d in zip(ranked["query_id"], ranked["doc_id"], strict=True)]
    ]
    top = ranked[ranked["rank"] == 1].set_index("query_id")["score"]
    return [float(top[q]) for q in sorted(set(found["query_id"])) if q in top.index]


def estimate_traffic_run(
    access: WriterAccess,
    run_id: str,
    *,
    k: int = 10,
    method: str = DEFAULT_CALIBRATION,
    seed: int = 0,
) -> WindowEstimate:
    """Estimate the precision@``k`` of traffic replay ``run_id`` without labels and store it
    (source ``estimate``) with its calibration, refitted each time on the newest complete goldset
    run of the same retriever and query model (``calibration_key``).

    Raises ConfigError when no such goldset run exists.
    """
    with access.writer("judge estimate") as store:
        run, summary = _traffic_run(store, run_id)
        answered, n_failed = _answered(store, run, k)
        key = calibration_key(run)
        calibrating = calibration_run(store, run, k)
        goldset = load_stored_goldset(
            store, str(calibrating.spec.goldset_name), calibrating.spec.goldset_version
        )
        goldset_results = run_results(store, calibrating.run_id)
        window_scores = _scores_by_query(run_results(store, run.run_id), k)
    threshold = calibrating.spec.relevance_threshold
    relevant = {(j.query_id, j.doc_id) for j in goldset.judgments if j.relevance >= threshold}
    judged_queries = {j.query_id for j in goldset.judgments}
    goldset_scores = _scores_by_query(goldset_results, k)
    goldset_docs = top_k(goldset_results, k)
    queries = [q for q in goldset_scores if q in judged_queries]
    calibration = fit_calibration(
        [goldset_scores[q] for q in queries],
        [np.array([(q, doc) in relevant for doc in goldset_docs[q]]) for q in queries],
        k=k,
        method=method,
        seed=seed,
        fingerprint=key,
    )
    # A query answered with nothing is in the window with nothing relevant; a failed one is not.
    window = [window_scores.get(query_id, np.zeros(0)) for query_id in answered]
    estimate = estimate_precision(window, calibration, k=k, seed=seed, fingerprint=key)
    figure = JudgedFigure(
        run_id=run.run_id,
        source=ESTIMATE_SOURCE,
        labeller=f"calibration:{calibrating.run_id}",
        measure=estimate.measure,
        value=estimate.estimate,
        low=estimate.low,
        high=estimate.high,
        n_queries=estimate.n_queries,
        judged_share=None,
        status="partial" if n_failed else "complete",
        agreement_id=None,
        computed_at=utc_now(),
        details={
            "window": summary.window_label,
            "failed_queries_left_out": n_failed,
            "calibration_run": calibrating.run_id,
            "calibration_index_fingerprint": calibrating.spec.index_fingerprint,
            "index_fingerprint": run.spec.index_fingerprint,
            "goldset": calibrating.spec.goldset_name,
            "goldset_version": calibrating.spec.goldset_version,
            "calibration_key": key,
            "calibration": calibration.to_dict() | {"replicates": len(calibration.replicates)},
            "method": method,
            "seed": seed,
            "limit": "assumes P(relevant | score) on this traffic is what it was on the goldset",
        },
    )
    with access.writer("judge estimate") as store:
        save_run_figures(store, [figure])
        save_query_values(
            store,
            run.run_id,
            ESTIMATE_SOURCE,
            figure.labeller,
            {figure.measure: dict(zip(answered, estimate.per_query, strict=True))},
        )
    return WindowEstimate(run, summary.window_label, calibrating, estimate, figure)
