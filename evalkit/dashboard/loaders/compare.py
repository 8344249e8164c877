"""The Compare runs page's data: two stored runs compared as ``evalkit compare`` does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from evalkit.dashboard.loaders.shared import paired_test, query_texts
from evalkit.errors import NotFoundError
from evalkit.stats import compare_stored_runs, document_depth
from evalkit.store import Store
from evalkit.store.runs import get_run

__all__ = ["CompareData", "compare", "run_facts"]


@dataclass(frozen=True, slots=True)
class CompareData:
    """Two runs compared as ``evalkit compare`` does.

    ``metrics``: one row per measure (measure, baseline_mean, candidate_mean, delta,
    ci_low, ci_high, p_permutation, p_wilcoxon, p_adjusted, n, decision). ``per_query``:
    every shared query with, per measure, ``<m> baseline``, ``<m> candidate``, ``<m> delta``,
    and the relevant documents ``lost`` and ``gained`` in the top ``depth``; sorted by the
    loss on ``sort_measure``, largest first. ``failed_in_baseline`` / ``failed_in_candidate``:
    queries whose retrieval failed in that run, compared as 0 (never left out).
    """

    baseline: str
    candidate: str
    measures: tuple[str, ...]
    sort_measure: str
    depth: int
    decision: str
    metrics: pd.DataFrame
    per_query: pd.DataFrame
    only_in_baseline: tuple[str, ...]
    only_in_candidate: tuple[str, ...]
    settings: Mapping[str, Any] = field(default_factory=dict)
    failed_in_baseline: tuple[str, ...] = ()
    failed_in_candidate: tuple[str, ...] = ()


def compare(
    store: Store,
    *,
    baseline: str,
    candidate: str,
    measures: Sequence[str],
    sort_measure: str | None = None,
    alpha: float = 0.05,
    min_effect: float = 0.0,
) -> CompareData:
    """Compare two stored runs on ``measures``: deltas, bootstrap CIs, p-values and the
    per-query table with the relevant documents each query lost or gained."""

    chosen = list(dict.fromkeys(measures)) or ["ndcg@10"]
    sort_by = sort_measure if sort_measure in chosen else chosen[0]
    # The page shows a partial run rather than refusing it: its failed queries count as 0
    # (the worst outcome), as `evalkit compare --failed-as-zero` does, never left out.
    test = paired_test(alpha, min_effect)
    report = compare_stored_runs(
        store, baseline, candidate, chosen, test, worst=0, failed_as_zero=True
    )
    comparison = report.comparison
    metrics = pd.DataFrame([{"measure": m.measure, **m.to_dict()} for m in comparison.metrics])[
        [
            "measure",
            "baseline_mean",
            "candidate_mean",
            "delta",
            "ci_low",
            "ci_high",
            "p_permutation",
            "p_wilcoxon",
            "p_adjusted",
            "n",
            "decision",
        ]
    ]
    first = comparison.metrics[0]
    table = pd.DataFrame(index=pd.Index(first.query_ids, name="query_id"))
    for metric in comparison.metrics:
        table[f"{metric.measure} baseline"] = metric.baseline_values
        table[f"{metric.measure} candidate"] = metric.candidate_values
        table[f"{metric.measure} delta"] = metric.candidate_values - metric.baseline_values
    depth = document_depth(sort_by)
    changes = report.document_changes(sort_by)
    table["lost"] = [", ".join(changes[q]["lost"]) for q in first.query_ids]
    table["gained"] = [", ".join(changes[q]["gained"]) for q in first.query_ids]
    table["n_lost"] = [len(changes[q]["lost"]) for q in first.query_ids]
    table["n_gained"] = [len(changes[q]["gained"]) for q in first.query_ids]
    texts = query_texts(store, run_id=str(report.baseline_run.run_id))
    table.insert(0, "text", [texts.get(q, "") for q in first.query_ids])
    table = (
        table.reset_index()
        .sort_values([f"{sort_by} delta", "query_id"], ascending=[True, True], kind="stable")
        .reset_index(drop=True)
    )
    return CompareData(
        baseline=str(report.baseline_run.run_id),
        candidate=str(report.candidate_run.run_id),
        measures=tuple(chosen),
        sort_measure=sort_by,
        depth=depth,
        decision=comparison.decision.value,
        metrics=metrics,
        per_query=table,
        only_in_baseline=comparison.only_in_baseline,
        only_in_candidate=comparison.only_in_candidate,
        failed_in_baseline=comparison.failed_in_baseline,
        failed_in_candidate=comparison.failed_in_candidate,
        settings={**asdict(test), "confidence": comparison.confidence},
    )


def run_facts(store: Store, *, run_id: str) -> dict[str, str | None] | None:
    """What a linked run is, for a page that cannot show it (a traffic replay has no
    goldset): run_id, kind, status and goldset; None when the store holds no such run."""
    try:
        run = get_run(store, run_id)
    except NotFoundError:
        return None
    if run.run_id != run_id:
        return None
    return {
        "run_id": run.run_id,
        "kind": run.spec.kind,
        "status": run.status,
        "goldset": run.spec.goldset_name,
    }
