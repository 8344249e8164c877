"""Scoring a batch of answers: which metrics apply, the judge and its cache, the store.

``score_answers`` (used by ``evalkit run``, ``evalkit answers score`` and library users)
scores faithfulness with the LLM judge or offline, adds context precision / recall when
records carry references, and stores every score, measured or not. docs/answers.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from evalkit.answers.cache import (
    EmbeddingCache,
    JudgeCache,
    JudgeCallOutput,
    MemoryJudgeCache,
    judge_cache_key,
)
from evalkit.answers.context import CONTEXT_METRICS, applicable_context_metrics, score_context
from evalkit.answers.judge import JudgeCallError, JudgeTask, LLMJudge
from evalkit.answers.nli import NLIFaithfulness
from evalkit.answers.offline import DEFAULT_THRESHOLD, OfflineFaithfulness, Progress
from evalkit.answers.records import (
    AnswerRecord,
    AnswerScores,
    CachedJudgment,
    Method,
    MetricScore,
    Unmeasured,
    summarise,
)
from evalkit.batches import BatchWriter
from evalkit.clock import utc_now
from evalkit.config import JudgeSettings, ScoringMethod, load_settings
from evalkit.coroutines import run_sync
from evalkit.embedding import Embedder, load_embedder
from evalkit.errors import ConfigError, InputError, JudgeError

__all__ = ["check_judge_settings", "score_answers", "score_with_judge", "uses_judge"]


def uses_judge(settings: JudgeSettings) -> bool:
    if settings.method in (ScoringMethod.llm, ScoringMethod.both):
        if not settings.judge_configured:
            raise ConfigError(
                f"method {settings.method.value!r} needs an LLM judge: set base_url and model "
                "in the [judge] table of evalkit.toml (or EVALKIT_JUDGE_BASE_URL and "
                "EVALKIT_JUDGE_MODEL), or use the offline method (--method offline, or "
                'method = "offline" in [judge])'
            )
        return True
    return settings.method is ScoringMethod.auto and settings.judge_configured


def check_judge_settings(settings: JudgeSettings) -> None:
    """Raise ``ConfigError`` when the method asks for an LLM judge that is not configured.

    ``score_answers`` raises the same error; callers that score after a long step (a run's
    replay) check first, so a configuration mistake costs nothing.
    """
    uses_judge(settings)


def _uses_offline(settings: JudgeSettings) -> bool:
    return settings.method in (ScoringMethod.offline, ScoringMethod.both) or (
        settings.method is ScoringMethod.auto and not settings.judge_configured
    )


def _check_ids(records: Sequence[AnswerRecord]) -> None:
    seen: set[str] = set()
    for record in records:
        if record.id in seen:
            raise InputError(f"answer record id {record.id!r} appears twice; ids must be unique")
        seen.add(record.id)


def score_answers(
    records: Sequence[AnswerRecord],
    *,
    settings: JudgeSettings | None = None,
    run_id: str | None = None,
    source: str | None = None,
    embedder: Embedder | None = None,
    cache: JudgeCache | None = None,
    offline: OfflineFaithfulness | None = None,
    embedding_cache: EmbeddingCache | None = None,
    progress: Progress | None = None,
    every_context_metric: bool = False,
    judge_must_answer: bool = False,
) -> AnswerScores:
    """Score ``records`` (``run_id`` / ``source`` say what was scored); docs/answers.md says how.

    Faithfulness comes from the LLM judge when ``settings`` configure one, else offline
    (``offline-nli`` with ``nli_model_path``, else ``offline``); context metrics from ragas when a
    record carries reference context. Unmeasurable answers keep their reason, out of the means.
    ``cache``/``embedding_cache`` default to memory; ``progress`` gets (done, in all). With
    ``every_context_metric`` every context metric is scored (a batch of a larger set); with
    ``judge_must_answer`` a judge that answers no call raises JudgeError.
    """
    settings = settings or load_settings().judge
    _check_ids(records)
    started_at = utc_now()
    use_judge, use_offline = uses_judge(settings), _uses_offline(settings)
    scores: list[MetricScore] = []
    judge_calls = cache_hits = 0

    if use_offline:
        threshold = settings.offline_threshold or DEFAULT_THRESHOLD
        method: OfflineFaithfulness | NLIFaithfulness
        if offline is None and settings.nli_model_path is not None:
            method = NLIFaithfulness(settings.nli_model_path, threshold=threshold)
        else:
            method = offline = offline or OfflineFaithfulness(
                embedder, threshold=threshold, version=settings.offline_version
            )
        scores.extend(
            method.score(records, cache=embedding_cache, progress=_phase(progress, 0, use_judge))
        )
    if use_judge:
        needs_embedder = settings.answer_relevancy
        if needs_embedder and embedder is None:
            embedder = offline.embedder if offline is not None else _default_embedder()
        judge = LLMJudge(settings, embedder=embedder)
        judged, judge_calls, cache_hits = score_with_judge(
            records,
            judge=judge,
            cache=cache if cache is not None else MemoryJudgeCache(),
            repeats=settings.repeats,
            must_answer=judge_must_answer,
            progress=_phase(progress, int(use_offline), use_offline),
        )
        scores.extend(judged)
    context_metrics = (
        list(CONTEXT_METRICS.values())
        if every_context_metric
        else applicable_context_metrics(records)
    )
    for metric in context_metrics:
        scores.extend(score_context(metric, records))

    return AnswerScores(
        scores=tuple(scores),
        summaries=summarise(scores),
        n_records=len(records),
        started_at=started_at,
        finished_at=utc_now(),
        run_id=run_id,
        source=source,
        judge_calls=judge_calls,
        cache_hits=cache_hits,
    )


def _phase(progress: Progress | None, before: int, shared: bool) -> Progress | None:
    """``progress`` as one method's pass over the answers reports it: when two methods
    score them (``shared``), each answer counts once for each, ``before`` passes done."""
    if progress is None or not shared:
        return progress
    report = progress
    return lambda done, total: report(before * total + done, 2 * total)


def _default_embedder() -> Embedder:
    return load_embedder()


def _precheck(record: AnswerRecord, metric: str) -> Unmeasured | None:
    if not record.answer.strip():
        return Unmeasured.empty_answer
    if metric == "faithfulness" and not any(context.strip() for context in record.contexts):
        return Unmeasured.empty_contexts
    if not record.question.strip():
        return Unmeasured.empty_question
    return None


def score_with_judge(
    records: Sequence[AnswerRecord],
    *,
    judge: LLMJudge,
    cache: JudgeCache,
    repeats: int = 1,
    must_answer: bool = False,
    progress: Progress | None = None,
) -> tuple[list[MetricScore], int, int]:
    """Judge every record with every judge metric; returns (scores, judge calls, cache hits).

    ``cache`` spares judgments and calls already made and takes new ones within a second, so a
    killed scoring keeps its work; failures are not cached. ``progress`` gets (done, in all).
    With ``must_answer`` a judge that answered no call raises JudgeError.
    """
    tasks: list[JudgeTask] = []
    scores: list[MetricScore] = []
    for record in records:
        for metric in judge.metrics:
            reason = _precheck(record, metric)
            if reason is not None:
                scores.append(_unmeasured(record, metric, judge, reason))
                continue
            for repeat in range(repeats):
                key = judge_cache_key(
                    metric=metric,
                    judge_model=judge.model,
                    prompt_version=judge.prompt_versions[metric],
                    question=record.question,
                    answer=record.answer,
                    contexts=record.contexts if metric == "faithfulness" else (),
                    repeat=repeat,
                )
                tasks.append(JudgeTask(record=record, metric=metric, repeat=repeat, key=key))
    cached = cache.get_many([task.key for task in tasks])
    missing = [task for task in tasks if task.key not in cached]
    calls_before = judge.calls
    outcomes = _judge_missing(missing, judge=judge, cache=cache, progress=progress, records=records)
    if must_answer and missing and not cached:
        _check_answered(outcomes)
    results: dict[str, CachedJudgment | JudgeCallError] = {
        **cached,
        **{task.key: outcome for task, outcome in zip(missing, outcomes, strict=True)},
    }
    grouped: dict[tuple[str, str], list[CachedJudgment | JudgeCallError]] = {}
    for task in tasks:
        grouped.setdefault((task.metric, task.record.id), []).append(results[task.key])
    by_id = {record.id: record for record in records}
    for (metric, record_id), outcomes_of_record in grouped.items():
        scores.append(_combine_repeats(by_id[record_id], metric, judge, outcomes_of_record))
    order = {
        (m, r.id): i for i, (m, r) in enumerate((m, r) for m in judge.metrics for r in records)
    }
    scores.sort(key=lambda score: order[(score.metric, score.item_id)])
    return scores, judge.calls - calls_before, len(cached)


def _judge_missing(
    missing: Sequence[JudgeTask],
    *,
    judge: LLMJudge,
    cache: JudgeCache,
    progress: Progress | None,
    records: Sequence[AnswerRecord],
) -> list[CachedJudgment | JudgeCallError]:
    """The outcomes of ``missing``, each judgment and call output added to ``cache`` as it
    arrives, ``progress`` told as each record's judgments are all made."""
    waiting = Counter(task.record.id for task in missing)
    done = len(records) - len(waiting)
    if progress is not None:
        progress(done, len(records))
    if not missing:
        return []
    known = cache.get_calls([task.key for task in missing])
    writer = _cache_writer(cache)

    def judged(task: JudgeTask, outcome: CachedJudgment | JudgeCallError) -> None:
        nonlocal done
        if isinstance(outcome, CachedJudgment):
            writer.add((task.key, outcome))
        waiting[task.record.id] -= 1
        if not waiting[task.record.id]:
            done += 1
            if progress is not None:
                progress(done, len(records))

    try:
        outcomes = run_sync(
            lambda: judge.judge(missing, known_calls=known, on_call=writer.add, on_judged=judged)
        )
    except BaseException:
        writer.close(raise_failure=False)  # what was answered is cached; the error goes on
        raise
    writer.close()
    return outcomes


def _cache_writer(cache: JudgeCache) -> BatchWriter[tuple[str, CachedJudgment] | JudgeCallOutput]:
    """Adds judgments and call outputs to ``cache`` as they arrive (``BatchWriter``)."""

    def save(batch: list[tuple[str, CachedJudgment] | JudgeCallOutput]) -> None:
        judgments = [item for item in batch if not isinstance(item, JudgeCallOutput)]
        judged = {key for key, _ in judgments}
        # The calls of a judgment cached in the same batch are not needed any more.
        cache.put_calls(
            item
            for item in batch
            if isinstance(item, JudgeCallOutput) and item.judgment_key not in judged
        )
        cache.put_many(judgments)

    return BatchWriter(save, name="evalkit-judge-cache")


def _check_answered(outcomes: Sequence[CachedJudgment | JudgeCallError]) -> None:
    """Raise JudgeError when every one of ``outcomes`` is a failed call."""
    failures = [outcome for outcome in outcomes if isinstance(outcome, JudgeCallError)]
    if len(failures) < len(outcomes):
        return
    reasons: dict[str, int] = {}
    for failure in failures:
        reasons[str(failure.reason)] = reasons.get(str(failure.reason), 0) + 1
    counted = ", ".join(f"{reason} {n}" for reason, n in reasons.items())
    raise JudgeError(
        f"the judge gave none of the {len(failures)} judgments asked for ({counted}; the first: "
        f"{failures[0].detail}): nothing was scored or stored; check the [judge] endpoint"
    )


def _combine_repeats(
    record: AnswerRecord,
    metric: str,
    judge: LLMJudge,
    outcomes: Sequence[CachedJudgment | JudgeCallError],
) -> MetricScore:
    judgments = [outcome for outcome in outcomes if isinstance(outcome, CachedJudgment)]
    failures = [outcome for outcome in outcomes if isinstance(outcome, JudgeCallError)]
    values = [j.value for j in judgments if j.value is not None]
    failed = (
        f"{len(failures)} of {len(outcomes)} repeats failed ({failures[0].reason}: "
        f"{failures[0].detail})"
        if failures
        else None
    )
    value: float | None = None
    spread: float | None = None
    reason: str | None = None
    detail = failed
    if values:
        value = sum(values) / len(values)
        spread = max(values) - min(values) if len(values) > 1 else None
    elif judgments:
        reason = judgments[0].unmeasured_reason or str(Unmeasured.no_claims)
        detail = judgments[0].detail
    else:
        reason = str(failures[0].reason)
        detail = failures[0].detail if len(outcomes) == 1 else failed
    return _judged(
        record,
        metric,
        judge,
        value,
        reason=reason,
        detail=detail,
        n_repeats=len(values) if values else len(judgments),
        spread=spread,
    )


def _unmeasured(
    record: AnswerRecord, metric: str, judge: LLMJudge, reason: Unmeasured
) -> MetricScore:
    return _judged(record, metric, judge, None, reason=str(reason), n_repeats=0)


def _judged(
    record: AnswerRecord,
    metric: str,
    judge: LLMJudge,
    value: float | None,
    *,
    reason: str | None,
    n_repeats: int,
    detail: str | None = None,
    spread: float | None = None,
) -> MetricScore:
    """The score of ``metric`` for ``record`` as ``judge`` gave it (its model and prompt)."""
    return MetricScore(
        item_id=record.id,
        metric=metric,
        method=str(Method.ragas_llm),
        value=value,
        judge_model=judge.model,
        prompt_version=judge.prompt_versions[metric],
        unmeasured_reason=reason,
        detail=detail,
        n_repeats=n_repeats,
        spread=spread,
    )
