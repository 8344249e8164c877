"""Records of answer scoring: what is scored, each score, and the result of a scoring.

A ``MetricScore`` is a value in [0, 1] or *unmeasured* with a reason; each ``MetricSummary``
averages measured rows only and counts the unmeasured ones, so a failed judge never turns an
average into NaN.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from evalkit.records import Query
from evalkit.records.jsonready import JsonReady

__all__ = [
    "AnswerRecord",
    "AnswerScores",
    "CachedJudgment",
    "Method",
    "MetricScore",
    "MetricSummary",
    "Unmeasured",
    "item_columns",
    "method_version",
    "summarise",
]


@dataclass(frozen=True, slots=True)
class CachedJudgment:
    """A judge output as cached: the value (or None with a reason) and the claim counts."""

    metric: str
    judge_model: str
    prompt_version: str
    value: float | None
    unmeasured_reason: str | None = None
    n_claims: int | None = None
    n_supported: int | None = None
    detail: str | None = None


class Method(StrEnum):
    """How a score was computed; stored with every score and shown on the dashboard."""

    ragas_llm = "ragas-llm"
    """ragas' LLM metric (Faithfulness, AnswerRelevancy) with the configured judge."""
    offline_embedding = "offline-embedding"
    """evalkit's offline faithfulness: sentence support by embedding similarity, no LLM."""
    offline_nli = "offline-nli"
    """Offline faithfulness by the user's local NLI cross-encoder (``nli_model_path``)."""
    ragas_id_based = "ragas-id-based"
    """ragas' ID-based context precision / recall (retrieved vs reference context ids)."""
    ragas_non_llm = "ragas-non-llm"
    """ragas' non-LLM context precision / recall (string similarity to reference contexts)."""


class Unmeasured(StrEnum):
    """Why a score is missing. Unmeasured rows are stored, counted and left out of means."""

    empty_answer = "empty_answer"
    """The answer is empty."""
    empty_question = "empty_question"
    """The question is empty and the metric's prompt needs it (the LLM judge)."""
    no_claims = "no_claims"
    """The answer holds no claim to check (no sentence, or the judge found no statement)."""
    empty_contexts = "empty_contexts"
    """No context (or no context id) was retrieved for the answer."""
    no_reference = "no_reference"
    """The metric needs reference contexts or reference context ids that the record lacks."""
    judge_timeout = "judge_timeout"
    """The judge did not answer in time, after every retry."""
    judge_malformed_output = "judge_malformed_output"
    """The judge's reply was not the JSON asked for, after every retry."""
    judge_error = "judge_error"
    """The judge endpoint failed (HTTP error, connection refused), after every retry."""
    missing_dependency = "missing_dependency"
    """A package the metric needs is not installed (the detail names it)."""


@dataclass(frozen=True, slots=True)
class AnswerRecord:
    """One generated answer to score, with the contexts (``context_ids``) it was generated from,
    in rank order; ``reference`` and ``reference_contexts`` / ``reference_context_ids`` enable
    ragas' non-LLM / ID-based context metrics.
    """

    id: str
    question: str
    answer: str
    contexts: tuple[str, ...] = ()
    context_ids: tuple[str, ...] = ()
    reference: str | None = None
    reference_contexts: tuple[str, ...] = ()
    reference_context_ids: tuple[str, ...] = ()

    @classmethod
    def from_query(
        cls,
        query: Query,
        *,
        answer: str,
        contexts: Sequence[str] = (),
        context_ids: Sequence[str] = (),
    ) -> AnswerRecord:
        """The record of a goldset (or traffic) query answered by the application.

        The query's reference answer and reference context ids come along, so ID-based
        context precision / recall are scored whenever the goldset has them.
        """
        return cls(
            id=query.id,
            question=query.text,
            answer=answer,
            contexts=tuple(contexts),
            context_ids=tuple(context_ids),
            reference=query.reference_answer,
            reference_context_ids=query.reference_context_ids,
        )


def item_columns(records: Sequence[AnswerRecord]) -> dict[str, list[Any]]:
    """What is stored of each scored record, by column: ``item_id``, ``question``,
    ``answer``, ``contexts``, ``context_ids`` and ``reference``."""
    return {
        "item_id": [record.id for record in records],
        "question": [record.question for record in records],
        "answer": [record.answer for record in records],
        "contexts": [list(record.contexts) for record in records],
        "context_ids": [list(record.context_ids) for record in records],
        "reference": [record.reference for record in records],
    }


@dataclass(frozen=True, slots=True)
class MetricScore(JsonReady):
    """One metric of one record: a value in [0, 1], or None with the reason it is unmeasured.
    ``judge_model`` / ``prompt_version`` say what produced it; ``n_repeats``, ``spread``,
    ``n_claims`` and ``n_supported`` describe repeated judging and claims.
    """

    item_id: str
    metric: str
    method: str
    value: float | None
    judge_model: str | None = None
    prompt_version: str | None = None
    unmeasured_reason: str | None = None
    detail: str | None = None
    n_repeats: int = 1
    spread: float | None = None
    n_claims: int | None = None
    n_supported: int | None = None

    def __post_init__(self) -> None:
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError(
                f"{self.metric} of {self.item_id}: a non-finite value must be stored as "
                "unmeasured (value None with a reason)"
            )
        if self.value is None and self.unmeasured_reason is None:
            raise ValueError(f"{self.metric} of {self.item_id}: unmeasured without a reason")

    @property
    def measured(self) -> bool:
        """True when the score has a value."""
        return self.value is not None


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """The mean of one (metric, method) over measured records, and the unmeasured count.

    ``mean`` is None when no record was measured (never NaN).
    """

    metric: str
    method: str
    mean: float | None
    n_measured: int
    n_unmeasured: int
    unmeasured_by_reason: Mapping[str, int] = field(default_factory=dict)
    judge_model: str | None = None
    prompt_version: str | None = None

    @property
    def n_total(self) -> int:
        """Records this metric was asked of."""
        return self.n_measured + self.n_unmeasured

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "metric": self.metric,
            "method": self.method,
            "mean": self.mean,
            "n_measured": self.n_measured,
            "n_unmeasured": self.n_unmeasured,
            "n_total": self.n_total,
            "unmeasured_by_reason": dict(self.unmeasured_by_reason),
            "judge_model": self.judge_model,
            "prompt_version": self.prompt_version,
        }


@dataclass(frozen=True, slots=True)
class AnswerScores:
    """The result of scoring a batch of answers: every score, per-metric summaries, counts;
    ``scoring_id`` once stored, ``judge_calls`` requests sent, ``cache_hits`` from the cache.
    """

    scores: tuple[MetricScore, ...]
    summaries: tuple[MetricSummary, ...]
    n_records: int
    started_at: datetime
    finished_at: datetime
    scoring_id: str | None = None
    run_id: str | None = None
    source: str | None = None
    judge_calls: int = 0
    cache_hits: int = 0

    def summary(self, metric: str, method: str | None = None) -> MetricSummary:
        """The summary of ``metric`` (and ``method`` when several methods scored it)."""
        matching = [s for s in self.summaries if s.metric == metric and method in (None, s.method)]
        if len(matching) != 1:
            known = ", ".join(f"{s.metric}/{s.method}" for s in self.summaries) or "none"
            raise KeyError(
                f"{len(matching)} summaries match {metric!r}"
                + (f" by {method!r}" if method else "")
                + f"; scored: {known}"
            )
        return matching[0]

    def to_dict(self, *, per_item: bool = True) -> dict[str, Any]:
        """JSON-ready form (per-item scores included unless ``per_item`` is False)."""
        data: dict[str, Any] = {
            "scoring_id": self.scoring_id,
            "run_id": self.run_id,
            "source": self.source,
            "n_records": self.n_records,
            "judge_calls": self.judge_calls,
            "cache_hits": self.cache_hits,
            "started_at": self.started_at.isoformat() + "Z",
            "finished_at": self.finished_at.isoformat() + "Z",
            "summaries": [summary.to_dict() for summary in self.summaries],
        }
        if per_item:
            data["scores"] = [score.to_dict() for score in self.scores]
        return data


def summarise(scores: Sequence[MetricScore]) -> tuple[MetricSummary, ...]:
    """One summary per (metric, method), in first-seen order; unmeasured rows are counted only."""
    groups: dict[tuple[str, str], list[MetricScore]] = {}
    for score in scores:
        groups.setdefault((score.metric, score.method), []).append(score)
    summaries = []
    for (metric, method), group in groups.items():
        values = [score.value for score in group if score.value is not None]
        reasons = Counter(score.unmeasured_reason for score in group if score.value is None)
        identities = {(score.judge_model, score.prompt_version) for score in group}
        judge_model, prompt_version = identities.pop() if len(identities) == 1 else (None, None)
        summaries.append(
            MetricSummary(
                metric=metric,
                method=method,
                mean=sum(values) / len(values) if values else None,
                n_measured=len(values),
                n_unmeasured=len(group) - len(values),
                unmeasured_by_reason={str(reason): n for reason, n in sorted(reasons.items())},
                judge_model=judge_model,
                prompt_version=prompt_version,
            )
        )
    return tuple(summaries)


def method_version(prompt_version: str | None) -> str | None:
    """The method version of a stored ``prompt_version``: ``offline-v3/threshold=0.5`` ->
    ``offline-v3`` (the threshold changes which claims count as supported, not the value);
    an LLM judge's prompt version is its own version. Scores of different method versions
    read on different scales and are never compared or drawn as one series."""
    if prompt_version is None:
        return None
    return prompt_version.split("/threshold=", 1)[0]
