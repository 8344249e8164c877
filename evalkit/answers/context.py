"""Context precision and recall, computed by ragas' own ID-based and non-LLM metrics.

A metric is computed for a batch when some record carries what it compares against; the
others are unmeasured (``no_reference``, ``empty_contexts``; docs/answers.md, "Unmeasured
answers"). The text-based metrics need ``rapidfuzz`` (else ``missing_dependency``).
"""

from __future__ import annotations

import importlib.util
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter

from evalkit.answers.records import AnswerRecord, Method, MetricScore, Unmeasured

__all__ = ["CONTEXT_METRICS", "ContextMetric", "applicable_context_metrics", "score_context"]


@dataclass(frozen=True, slots=True)
class ContextMetric:
    """A ragas context metric: its name, method, what it needs and how to build its sample.

    ``ragas_class`` is the name of the metric's class in ``ragas.metrics``.
    """

    name: str
    method: Method
    ragas_class: str
    retrieved: Callable[[AnswerRecord], Sequence[str]]
    reference: Callable[[AnswerRecord], Sequence[str]]
    sample_fields: tuple[str, str]
    requires: str | None = None


def _context_metric(name: str, ragas_class: str, *, by_id: bool) -> ContextMetric:
    """An ID-based metric compares context ids; a non-LLM one compares context texts."""
    method, compared, requires = (
        (Method.ragas_id_based, "context_ids", None)
        if by_id
        else (Method.ragas_non_llm, "contexts", "rapidfuzz")
    )
    return ContextMetric(
        name=name,
        method=method,
        ragas_class=ragas_class,
        retrieved=attrgetter(compared),
        reference=attrgetter(f"reference_{compared}"),
        sample_fields=(f"retrieved_{compared}", f"reference_{compared}"),
        requires=requires,
    )


CONTEXT_METRICS: dict[str, ContextMetric] = {
    metric.name: metric
    for metric in (
        _context_metric(
            "id_based_context_precision",
            "IDBasedContextPrecision",
            by_id=True,
        ),
        _context_metric(
            "id_based_context_recall",
            "IDBasedContextRecall",
            by_id=True,
        ),
        _context_metric(
            "non_llm_context_precision_with_reference",
            "NonLLMContextPrecisionWithReference",
            by_id=False,
        ),
        _context_metric(
            "non_llm_context_recall",
            "NonLLMContextRecall",
            by_id=False,
        ),
    )
}
"""The context metrics, by their ragas names."""


def applicable_context_metrics(records: Sequence[AnswerRecord]) -> list[ContextMetric]:
    """The context metrics some record of the batch has a reference for."""
    return [
        metric
        for metric in CONTEXT_METRICS.values()
        if any(metric.reference(record) for record in records)
    ]


def _ragas_metric(metric: ContextMetric) -> object:
    os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
    import ragas.metrics

    with warnings.catch_warnings():
        # ragas 0.4 deprecates these names in ragas.metrics for ragas.metrics.collections,
        # which has no ID-based or non-LLM context metrics: ragas.metrics is still their
        # only public home, and ragas is pinned to the version checked.
        warnings.filterwarnings(
            "ignore",
            message=rf"Importing {metric.ragas_class} from 'ragas\.metrics' is deprecated",
            category=DeprecationWarning,
        )
        ragas_class = getattr(ragas.metrics, metric.ragas_class)
    return ragas_class()


def score_context(metric: ContextMetric, records: Sequence[AnswerRecord]) -> list[MetricScore]:
    """One score per record for ``metric``, computed by ragas (unmeasured rows explained)."""
    missing = metric.requires is not None and importlib.util.find_spec(metric.requires) is None
    ragas_metric = None
    if not missing and any(
        metric.retrieved(record) and metric.reference(record) for record in records
    ):
        ragas_metric = _ragas_metric(metric)
    scores = []
    for record in records:
        retrieved, reference = metric.retrieved(record), metric.reference(record)
        if not reference:
            scores.append(_unmeasured(metric, record, Unmeasured.no_reference))
        elif not retrieved:
            scores.append(_unmeasured(metric, record, Unmeasured.empty_contexts))
        elif missing:
            scores.append(
                _unmeasured(
                    metric,
                    record,
                    Unmeasured.missing_dependency,
                    f"{metric.name} needs the {metric.requires} package: "
                    f"pip install {metric.requires}",
                )
            )
        else:
            value = _ragas_score(ragas_metric, metric, retrieved, reference)
            if value is None:
                scores.append(
                    _unmeasured(
                        metric, record, Unmeasured.empty_contexts, "ragas returned no value"
                    )
                )
                continue
            scores.append(
                MetricScore(
                    item_id=record.id,
                    metric=metric.name,
                    method=str(metric.method),
                    value=value,
                    prompt_version=f"ragas-{_ragas_version()}",
                )
            )
    return scores


def _ragas_score(
    ragas_metric: object,
    metric: ContextMetric,
    retrieved: Sequence[str],
    reference: Sequence[str],
) -> float | None:
    from ragas.dataset_schema import SingleTurnSample

    retrieved_field, reference_field = metric.sample_fields
    sample = SingleTurnSample(
        **{retrieved_field: list(retrieved), reference_field: list(reference)}
    )
    value = float(ragas_metric.single_turn_score(sample))  # type: ignore[attr-defined]
    # ragas' average precision divides by (hits + 1e-10): clamp its rounding, keep [0, 1].
    return min(max(value, 0.0), 1.0) if math.isfinite(value) else None


def _ragas_version() -> str:
    import ragas

    return str(ragas.__version__)


def _unmeasured(
    metric: ContextMetric, record: AnswerRecord, reason: Unmeasured, detail: str | None = None
) -> MetricScore:
    return MetricScore(
        item_id=record.id,
        metric=metric.name,
        method=str(metric.method),
        value=None,
        unmeasured_reason=str(reason),
        detail=detail,
    )
