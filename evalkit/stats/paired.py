"""Paired comparison of two runs over the queries they share: the CI gate's engine.

``compare_runs`` reports per measure the mean difference with a bootstrap interval, a
sign-flip and a Wilcoxon test, Holm-adjusted p-values, Cohen's d_z and the gate's decision.
Queries present in only one run are listed, never silently dropped. docs/gate.md.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy

from evalkit.errors import ConfigError, InputError, RetrieverError
from evalkit.records.requests import PAIRED_TEST_DEFAULTS, PairedTestSettings, measure_names
from evalkit.stats._resampling import (
    CI_METHODS,
    FloatMatrix,
    FloatVector,
    check_resampling,
    paired_resampling,
)
from evalkit.stats.decision import Decision, decide, overall_decision
from evalkit.stats.power import queries_needed

__all__ = [
    "DECISION_TESTS",
    "Comparison",
    "MetricComparison",
    "QueryDrop",
    "compare_runs",
    "holm_adjust",
    "worst_queries",
]


_TARGET_POWER: Final = 0.8
# A mean difference below this fraction of the spread is rounding, not an effect: sizing a
# golden set for it would ask for more than 10**12 queries.
_NEGLIGIBLE_EFFECT: Final = 1e-6
_SHOWN_IDS: Final = 5


# Up to this many non-zero differences the signed-rank p-value is exact (scipy's own limit
# for its exact method); above, the normal approximation is accurate.
_WILCOXON_EXACT_MAX: Final = 50


def _wilcoxon_pvalues(differences: FloatMatrix) -> FloatVector:
    """Two-sided Wilcoxon signed-rank p-values per column; 1 when every difference is 0.

    Zero differences are dropped; up to ``_WILCOXON_EXACT_MAX`` non-zero ones the p-value is
    exact, since scipy falls back to the (too small) normal approximation on any zero.
    """
    p_values = np.ones(differences.shape[1], dtype=np.float64)
    for column in np.flatnonzero(np.any(differences != 0.0, axis=0)):
        values = differences[:, column]
        nonzero = values[values != 0.0]
        if nonzero.size <= _WILCOXON_EXACT_MAX:
            p_values[column] = _signed_rank_exact_pvalue(nonzero)
        else:
            p_values[column] = float(scipy.stats.wilcoxon(nonzero, method="approx").pvalue)
    return p_values


def _signed_rank_exact_pvalue(differences: npt.ArrayLike) -> float:
    """Exact two-sided Wilcoxon signed-rank p-value of non-zero ``differences``, ties included.

    Under the null each sign is a coin flip, so the positive (doubled, integer) midrank sum
    is counted exactly by convolution; 1 when there is no difference.
    """
    values = np.asarray(differences, dtype=np.float64)
    if values.size == 0:
        return 1.0
    doubled = np.rint(2.0 * scipy.stats.rankdata(np.abs(values))).astype(np.int64)
    total = int(doubled.sum())
    counts = np.zeros(total + 1, dtype=np.float64)
    counts[0] = 1.0
    for rank in doubled:
        shifted = np.zeros_like(counts)
        shifted[rank:] = counts[: total + 1 - rank]
        counts += shifted
    observed = int(doubled[values > 0.0].sum())
    distance = np.abs(2 * np.arange(total + 1) - total)
    extreme = counts[distance >= abs(2 * observed - total)].sum()
    return float(min(1.0, extreme / counts.sum()))


DECISION_TESTS: Final = ("permutation", "wilcoxon")
"""Tests whose Holm-adjusted p-value can drive the decision (``compare_runs(decision_test=)``)."""


def holm_adjust(p_values: npt.ArrayLike) -> FloatVector:
    """Holm step-down adjusted p-values (family-wise error control), in the input order.

    The i-th smallest of m p-values is multiplied by ``m - i + 1``; running maxima keep the
    adjusted values monotone, and they are capped at 1.
    """
    raw = np.asarray(p_values, dtype=np.float64)
    if raw.size == 0:
        return raw.copy()
    order = np.argsort(raw, kind="stable")
    multipliers = np.arange(raw.size, 0, -1, dtype=np.float64)
    stepped = np.minimum(np.maximum.accumulate(multipliers * raw[order]), 1.0)
    adjusted = np.empty_like(raw)
    adjusted[order] = stepped
    return adjusted


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class MetricComparison:
    """Paired comparison of one measure over the shared queries (docs/gate.md, the fields).

    ``delta`` and the interval are ``candidate - baseline``; ``queries_needed*`` size a
    repeat comparison for an inconclusive measure (for ``queries_needed_effect`` and for the
    observed ``|delta|``), ``queries_needed_note`` says so in words. An infinite bound (one
    changed query) is ``None`` in ``to_dict``.
    """

    measure: str
    n: int
    baseline_mean: float
    candidate_mean: float
    delta: float
    ci_low: float
    ci_high: float
    p_permutation: float
    p_wilcoxon: float
    p_adjusted: float
    effect_size: float
    sd_diff: float
    decision: Decision
    queries_needed: int | None
    queries_needed_note: str
    queries_needed_effect: float | None = None
    queries_needed_observed: int | None = None
    query_ids: tuple[str, ...] = field(default=(), repr=False, compare=False)
    baseline_values: FloatVector = field(
        default_factory=lambda: np.empty(0), repr=False, compare=False
    )
    candidate_values: FloatVector = field(
        default_factory=lambda: np.empty(0), repr=False, compare=False
    )

    @property
    def differences(self) -> pd.Series:
        """Per-query ``candidate - baseline``, indexed by query id."""
        return pd.Series(
            self.candidate_values - self.baseline_values,
            index=pd.Index(self.query_ids, name="query_id"),
            name=self.measure,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the per-query values)."""
        return {
            "decision": self.decision.value,
            "n": self.n,
            "baseline_mean": self.baseline_mean,
            "candidate_mean": self.candidate_mean,
            "delta": self.delta,
            "ci_low": _finite_or_none(self.ci_low),
            "ci_high": _finite_or_none(self.ci_high),
            "p_permutation": self.p_permutation,
            "p_wilcoxon": self.p_wilcoxon,
            "p_adjusted": self.p_adjusted,
            "effect_size": self.effect_size,
            "sd_diff": self.sd_diff,
            "queries_needed": self.queries_needed,
            "queries_needed_effect": self.queries_needed_effect,
            "queries_needed_observed": self.queries_needed_observed,
            "queries_needed_note": self.queries_needed_note,
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    """Result of ``compare_runs``: per-measure comparisons, the verdict, and the settings.

    ``only_in_*`` list (sorted) the ids left out of the ``n_shared``, ``not_judged`` those the
    judgments do not cover; ``failed_in_*`` were compared as 0 (``failed_as_zero``).
    """

    metrics: tuple[MetricComparison, ...]
    decision: Decision
    n_shared: int
    only_in_baseline: tuple[str, ...]
    only_in_candidate: tuple[str, ...]
    alpha: float
    min_effect: float
    resamples: int
    seed: int
    confidence: float
    ci_method: str
    decision_test: str
    higher_is_better: bool
    failed_in_baseline: tuple[str, ...] = ()
    failed_in_candidate: tuple[str, ...] = ()
    not_judged: tuple[str, ...] = ()

    @property
    def n_dropped(self) -> int:
        """Queries left out because only one of the runs has them."""
        return len(self.only_in_baseline) + len(self.only_in_candidate)

    @property
    def measures(self) -> tuple[str, ...]:
        """The measures compared, in order."""
        return tuple(metric.measure for metric in self.metrics)

    def metric(self, measure: str) -> MetricComparison:
        """The comparison of one measure; raises InputError naming the known ones."""
        for metric in self.metrics:
            if metric.measure == measure:
                return metric
        raise InputError(
            f"measure {measure!r} was not compared; compared: {', '.join(self.measures)}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: settings, verdict, dropped queries and one entry per measure."""
        return {
            "decision": self.decision.value,
            "n_shared": self.n_shared,
            "n_dropped": self.n_dropped,
            "only_in_baseline": list(self.only_in_baseline),
            "only_in_candidate": list(self.only_in_candidate),
            "failed_in_baseline": list(self.failed_in_baseline),
            "failed_in_candidate": list(self.failed_in_candidate),
            "not_judged": list(self.not_judged),
            "alpha": self.alpha,
            "min_effect": self.min_effect,
            "resamples": self.resamples,
            "seed": self.seed,
            "confidence": self.confidence,
            "ci_method": self.ci_method,
            "decision_test": self.decision_test,
            "higher_is_better": self.higher_is_better,
            "metrics": {metric.measure: metric.to_dict() for metric in self.metrics},
        }


@dataclass(frozen=True, slots=True)
class QueryDrop:
    """One query whose value got worse, for listing under a regression.

    ``lost_docs`` and ``gained_docs`` are empty here; ``evalkit.stats.compare`` fills them
    (``dataclasses.replace``) with the relevant documents the candidate no longer retrieves
    and those it newly retrieves.
    """

    query_id: str
    measure: str
    baseline: float
    candidate: float
    delta: float
    lost_docs: tuple[str, ...] = ()
    gained_docs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (without the documents): query_id, baseline, candidate, delta."""
        return {
            "query_id": self.query_id,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "delta": self.delta,
        }


class FailedQueriesError(RetrieverError):
    """A run to compare has queries whose retrieval failed, and they may not count as 0.

    ``failed_in_baseline`` and ``failed_in_candidate`` name them (sorted).
    """

    def __init__(
        self, failed_in_baseline: Sequence[str], failed_in_candidate: Sequence[str]
    ) -> None:
        self.failed_in_baseline = tuple(failed_in_baseline)
        self.failed_in_candidate = tuple(failed_in_candidate)
        parts = [
            f"{len(ids)} queries failed in the {role} ({shown_ids(list(ids))})"
            for role, ids in (
                ("candidate", self.failed_in_candidate),
                ("baseline", self.failed_in_baseline),
            )
            if ids
        ]
        super().__init__(
            f"{'; '.join(parts)}: a comparison needs every query answered, and leaving a "
            "failed query out would hide the worst outcome. Replay the run again once the "
            "retriever answers, or count each failed query as 0 (failed_as_zero)."
        )


def with_failed_as_zero(
    frame: pd.DataFrame, failed: Sequence[str], measures: Sequence[str]
) -> pd.DataFrame:
    """``frame`` with every failed query present and valued 0 on ``measures``."""
    if not failed:
        return frame
    ids = [str(query_id) for query_id in failed]
    widened = frame.reindex(frame.index.union(pd.Index(ids)))
    widened.loc[ids, list(measures)] = 0.0
    return widened


def _check_options(
    test: PairedTestSettings, *, confidence: float, ci_method: str, decision_test: str
) -> None:
    check_resampling(
        alpha=test.alpha, confidence=confidence, resamples=test.resamples, seed=test.seed
    )
    if not (math.isfinite(test.min_effect) and test.min_effect >= 0.0):
        raise ConfigError(
            "min_effect must be a finite number >= 0 (in the measure's units), "
            f"got {test.min_effect!r}"
        )
    if ci_method not in CI_METHODS:
        raise ConfigError(f"unknown ci_method {ci_method!r}; choose one of {', '.join(CI_METHODS)}")
    if decision_test not in DECISION_TESTS:
        raise ConfigError(
            f"unknown decision_test {decision_test!r}; choose one of {', '.join(DECISION_TESTS)}"
        )


def shown_ids(ids: Sequence[Hashable], *, limit: int = _SHOWN_IDS) -> str:
    """The first ``limit`` of ``ids``, comma-separated, and how many more there are."""
    listed = ", ".join(str(query_id) for query_id in ids[:limit])
    return listed + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _as_frame(values: pd.DataFrame | pd.Series, *, role: str) -> pd.DataFrame:
    """Per-query values with string query ids as the index."""
    if isinstance(values, pd.Series):
        values = values.to_frame()
    if not isinstance(values, pd.DataFrame):
        raise InputError(
            f"{role} must be a pandas DataFrame indexed by query id with one column per "
            f"measure, got {type(values).__name__}"
        )
    if "query_id" in values.columns:
        values = values.set_index("query_id")
    frame = values.copy()
    frame.index = frame.index.map(str)
    duplicated = frame.index[frame.index.duplicated()].unique()
    if len(duplicated):
        raise InputError(
            f"{role} has more than one row for query ids {shown_ids(list(duplicated))}: "
            "give one row per query (aggregate repeated replays first)"
        )
    return frame


def _choose_measures(
    baseline: pd.DataFrame, candidate: pd.DataFrame, measures: Sequence[str] | None
) -> tuple[str, ...]:
    if measures is None:
        missing_in_candidate = [str(m) for m in baseline.columns if m not in candidate.columns]
        missing_in_baseline = [str(m) for m in candidate.columns if m not in baseline.columns]
        if missing_in_candidate or missing_in_baseline:
            raise InputError(
                "baseline and candidate have different measures (only in baseline: "
                f"{missing_in_candidate or 'none'}; only in candidate: "
                f"{missing_in_baseline or 'none'}); pass measures=[...] to compare the "
                "shared ones",
                field="measures",
            )
        chosen = tuple(str(m) for m in baseline.columns)
    else:
        chosen = measure_names(measures)
        for role, frame in (("baseline", baseline), ("candidate", candidate)):
            absent = [m for m in chosen if m not in frame.columns]
            if absent:
                raise InputError(
                    f"{role} has no column for measures {absent}; it has "
                    f"{[str(c) for c in frame.columns]}",
                    field="measures",
                )
    return distinct_measures(chosen, purpose="compare")


def distinct_measures(chosen: tuple[str, ...], *, purpose: str) -> tuple[str, ...]:
    """``chosen``, checked to name at least one measure and none twice (InputError saying
    there are no measures to ``purpose``, or which are repeated)."""
    if not chosen:
        raise InputError(f"no measures to {purpose}", field="measures")
    if len(set(chosen)) != len(chosen):
        raise InputError(f"measures are repeated: {list(chosen)}", field="measures")
    return chosen


def _values(
    frame: pd.DataFrame, ids: list[str], measures: tuple[str, ...], role: str
) -> FloatMatrix:
    rows = frame.index.get_indexer(pd.Index(ids))
    try:
        values = frame[list(measures)].to_numpy(dtype=np.float64)[rows]
    except (TypeError, ValueError) as error:
        raise InputError(f"{role} has non-numeric per-query values: {error}") from error
    bad_rows, bad_columns = np.nonzero(~np.isfinite(values))
    if bad_rows.size:
        measure = measures[int(bad_columns[0])]
        queries = [ids[int(row)] for row in bad_rows[bad_columns == bad_columns[0]]]
        raise InputError(
            f"{role} has no finite {measure} for queries {shown_ids(queries)}: score every query "
            "(a query the retriever failed on scores 0) or remove it from both runs",
            field=measure,
        )
    return values


@dataclass(frozen=True, slots=True)
class _Sizing:
    """What an inconclusive measure needs, as ``MetricComparison``'s fields of the same names:
    queries for the effect and for the observed ``|delta|``, and the sentence that says which."""

    queries_needed: int | None
    queries_needed_effect: float | None
    queries_needed_observed: int | None
    queries_needed_note: str


def _inconclusive_size(*, sd_diff: float, delta: float, min_effect: float, level: float) -> _Sizing:
    """Queries a repeat comparison needs to decide, for ``min_effect`` (the observed
    ``|delta|`` when it is 0) and for the observed ``|delta|``."""
    observed = abs(delta)
    power = f"with {_TARGET_POWER:.0%} power at the observed sd of differences {sd_diff:.4g} "
    power += f"(one-sided level {level:g})"

    def size(effect: float) -> int:
        return queries_needed(sd_diff, effect, alpha=level, power=_TARGET_POWER, one_sided=True)

    measurable = observed > _NEGLIGIBLE_EFFECT * sd_diff
    if min_effect > 0.0:
        needed = size(min_effect)
        if not measurable:
            return _Sizing(
                needed,
                min_effect,
                None,
                f"{needed} shared queries tell a difference of min_effect {min_effect:g} from "
                f"none {power}; the observed mean difference is 0",
            )
        observed_needed = size(observed)
        return _Sizing(
            needed,
            min_effect,
            observed_needed,
            f"{needed} shared queries tell a difference of min_effect {min_effect:g} from none "
            f"and {observed_needed} one of the observed |delta| {observed:.4g}, {power}",
        )
    if not measurable:
        return _Sizing(
            None,
            None,
            None,
            "min_effect is 0 and the observed mean difference is 0: there is no effect size "
            "to size the golden set for; set min_effect to the smallest drop that matters",
        )
    needed = size(observed)
    return _Sizing(
        needed,
        observed,
        needed,
        f"{needed} shared queries tell a difference of the observed |delta| {observed:.4g} "
        f"(min_effect is 0) from none {power}",
    )


def compare_runs(
    baseline: pd.DataFrame,
    candidate: pd.DataFrame,
    test: PairedTestSettings = PAIRED_TEST_DEFAULTS,
    *,
    measures: Sequence[str] | None = None,
    confidence: float = 0.95,
    higher_is_better: bool = True,
    ci_method: str = "percentile",
    decision_test: str = "permutation",
    failed_in_baseline: Sequence[str] = (),
    failed_in_candidate: Sequence[str] = (),
    failed_as_zero: bool = False,
) -> Comparison:
    """Compare a candidate run with a baseline over their shared queries and decide the gate.

    ``baseline``/``candidate``: per-query values indexed by query id (or a ``query_id``
    column), one column per measure name. Queries in one run only are listed, not compared.
    Failed queries raise ``FailedQueriesError`` unless ``failed_as_zero`` counts them as 0.
    The tests, interval and decision are described in docs/gate.md.
    """
    _check_options(test, confidence=confidence, ci_method=ci_method, decision_test=decision_test)
    base_frame = _as_frame(baseline, role="baseline")
    cand_frame = _as_frame(candidate, role="candidate")
    chosen = _choose_measures(base_frame, cand_frame, measures)
    failed_base = tuple(sorted({str(q) for q in failed_in_baseline}))
    failed_cand = tuple(sorted({str(q) for q in failed_in_candidate}))
    if failed_base or failed_cand:
        if not failed_as_zero:
            raise FailedQueriesError(failed_base, failed_cand)
        if not higher_is_better:
            raise ConfigError(
                "failed_as_zero counts a failed query as 0, the worst value only when higher "
                "is better; with higher_is_better=False compare complete runs"
            )
        base_frame = with_failed_as_zero(base_frame, failed_base, chosen)
        cand_frame = with_failed_as_zero(cand_frame, failed_cand, chosen)
    base_ids, cand_ids = set(base_frame.index), set(cand_frame.index)
    shared = sorted(base_ids & cand_ids)
    only_in_baseline = tuple(sorted(base_ids - cand_ids))
    only_in_candidate = tuple(sorted(cand_ids - base_ids))
    if not shared:
        raise InputError(
            f"baseline ({len(base_ids)} queries) and candidate ({len(cand_ids)} queries) share "
            "no query id: compare runs of the same golden set"
        )
    base_values = _values(base_frame, shared, chosen, "baseline")
    cand_values = _values(cand_frame, shared, chosen, "candidate")
    differences = cand_values - base_values

    p_permutation, boot_means = paired_resampling(
        differences, resamples=test.resamples, rng=np.random.Generator(np.random.PCG64(test.seed))
    )
    ci_low, ci_high = CI_METHODS[ci_method](boot_means, differences, confidence=confidence)
    p_wilcoxon = _wilcoxon_pvalues(differences)
    p_by_test = {"permutation": p_permutation, "wilcoxon": p_wilcoxon}
    p_adjusted = holm_adjust(p_by_test[decision_test])

    n = len(shared)
    deltas = differences.mean(axis=0)
    sds = differences.std(axis=0, ddof=1) if n > 1 else np.zeros(len(chosen))
    # Without spread the bootstrap distribution is a point; float32 resampling would only
    # blur it, and identical runs must give exactly [0, 0]. A comparison on one query that
    # changed says nothing about the spread: its interval is unbounded, so it can never pass.
    flat = sds == 0.0
    ci_low = np.where(flat, deltas, ci_low)
    ci_high = np.where(flat, deltas, ci_high)
    if n == 1:
        changed = deltas != 0.0
        ci_low = np.where(changed, -np.inf, ci_low)
        ci_high = np.where(changed, np.inf, ci_high)
    effect_sizes = np.divide(deltas, sds, out=np.zeros_like(deltas), where=sds > 0.0)
    ids = tuple(shared)
    level = (1.0 - confidence) / 2.0
    metrics = []
    for j, measure in enumerate(chosen):
        decision = decide(
            ci_low=float(ci_low[j]),
            ci_high=float(ci_high[j]),
            p_adjusted=float(p_adjusted[j]),
            alpha=test.alpha,
            min_effect=test.min_effect,
            higher_is_better=higher_is_better,
        )
        sizing = (
            _inconclusive_size(
                sd_diff=float(sds[j]),
                delta=float(deltas[j]),
                min_effect=test.min_effect,
                level=level,
            )
            if decision is Decision.INCONCLUSIVE
            else _Sizing(None, None, None, "")
        )
        base_column = base_values[:, j].copy()
        cand_column = cand_values[:, j].copy()
        base_column.flags.writeable = False
        cand_column.flags.writeable = False
        metrics.append(
            MetricComparison(
                measure=measure,
                n=n,
                baseline_mean=float(base_column.mean()),
                candidate_mean=float(cand_column.mean()),
                delta=float(deltas[j]),
                ci_low=float(ci_low[j]),
                ci_high=float(ci_high[j]),
                p_permutation=float(p_permutation[j]),
                p_wilcoxon=float(p_wilcoxon[j]),
                p_adjusted=float(p_adjusted[j]),
                effect_size=float(effect_sizes[j]),
                sd_diff=float(sds[j]),
                decision=decision,
                **asdict(sizing),
                query_ids=ids,
                baseline_values=base_column,
                candidate_values=cand_column,
            )
        )
    return Comparison(
        metrics=tuple(metrics),
        decision=overall_decision(metric.decision for metric in metrics),
        n_shared=n,
        only_in_baseline=only_in_baseline,
        only_in_candidate=only_in_candidate,
        **asdict(test),
        confidence=confidence,
        ci_method=ci_method,
        decision_test=decision_test,
        higher_is_better=higher_is_better,
        failed_in_baseline=failed_base,
        failed_in_candidate=failed_cand,
    )


def worst_queries(comparison: Comparison, measure: str, n: int = 10) -> tuple[QueryDrop, ...]:
    """The ``n`` queries whose ``measure`` got worst, largest drop first (ties by query id).

    Only queries that actually got worse are listed, so fewer than ``n`` may come back.
    """
    if n < 0:
        raise ConfigError(f"n must be >= 0, got {n!r}")
    metric = comparison.metric(measure)
    deltas = metric.candidate_values - metric.baseline_values
    losses = -deltas if comparison.higher_is_better else deltas
    ids = np.asarray(metric.query_ids, dtype=object)
    worse = np.flatnonzero(losses > 0.0)
    order = worse[np.lexsort((ids[worse].astype(str), -losses[worse]))][:n]
    return tuple(
        QueryDrop(
            query_id=metric.query_ids[i],
            measure=measure,
            baseline=float(metric.baseline_values[i]),
            candidate=float(metric.candidate_values[i]),
            delta=float(deltas[i]),
        )
        for i in order
    )
