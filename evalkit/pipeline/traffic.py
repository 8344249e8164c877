"""Traffic replay: replay a stored sample of production traffic and store the run, without
holding the store during the replay when given a ``WriterAccess`` that does not keep it
open. The whole cycle (sample, replay, judge, estimate) is ``pipeline.traffic_cycle``'s."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evalkit.answers.records import AnswerScores
from evalkit.config import JudgeSettings
from evalkit.embedding import LazyEmbedder
from evalkit.engines import EngineReport, LocalEngine, ReplayTiming
from evalkit.errors import NotFoundError
from evalkit.pipeline.answer_scores import answer_settings, score_answers_for_run
from evalkit.pipeline.runs import Recorded, closing_retriever, replay_run
from evalkit.records import QueryResult
from evalkit.records.requests import TrafficReplayRequest
from evalkit.retrievers.base import SupportsRetrieve
from evalkit.store import RunRecord, Store
from evalkit.store.access import WriterAccess
from evalkit.store.runs import get_run
from evalkit.store.traffic import StoredWindowSummary, list_samples
from evalkit.traffic.replay import (
    embed_window,
    plan_replay,
    save_window_summary,
    window_embedding_sample,
)
from evalkit.traffic.windows import parse_window

if TYPE_CHECKING:
    from evalkit.config import Settings
    from evalkit.embedding import TextEmbedder


@dataclass(frozen=True, slots=True)
class TrafficReplay:
    """A stored traffic replay: its run, its window summary, where the time went, and the
    scores of the answers production logged for its queries (None when none were scored)."""

    run: RunRecord
    summary: StoredWindowSummary
    timing: ReplayTiming
    answers: AnswerScores | None = None


@dataclass(frozen=True, slots=True)
class ReplaySetup:
    """What a traffic replay needs besides its request, set up before the store is opened:
    the judge settings its answers are scored with (checked) and the embedder of the
    window's query sample (not loaded until the sample is embedded)."""

    judge_settings: JudgeSettings | None = None
    embedder: TextEmbedder | None = None


def prepare_traffic_replay(request: TrafficReplayRequest, settings: Settings) -> ReplaySetup:
    """The set-up ``request`` needs under ``settings``, the same for ``evalkit traffic
    replay`` and the ``traffic`` job: the ``[judge]`` settings checked when answers are
    scored (a misconfiguration fails before the store is opened and any query is sent) and
    the local query model, loaded only when the sample is embedded, when embeddings are
    stored."""
    return ReplaySetup(
        judge_settings=answer_settings(settings.judge) if request.answers else None,
        embedder=(
            LazyEmbedder.from_settings(settings) if request.embedding_sample_size > 0 else None
        ),
    )


def replay_traffic_window(
    store: WriterAccess,
    sample_id: str,
    retriever: SupportsRetrieve,
    request: TrafficReplayRequest,
    *,
    setup: ReplaySetup | None = None,
    progress: Callable[[int, int], None] | None = None,
    answers_progress: Callable[[int, int], None] | None = None,
    close_retriever: bool = False,
) -> TrafficReplay:
    """Replay traffic sample ``sample_id`` against ``retriever``; store the run (kind ``traffic``),
    the comparison with logged results and the window summary (``evalkit.traffic.replay``).

    ``store`` is held as for a goldset run. ``setup.embedder`` embeds up to
    ``request.embedding_sample_size`` queries first. Raises ConfigError for tenants the retriever
    cannot filter (unless ``tenant_isolation`` is off); a crash fails the run and re-raises.
    ``request.answers`` scores the logged answers after the run is stored.
    """
    setup = setup or ReplaySetup()
    embedder = setup.embedder
    answers = request.answers
    judge_settings = setup.judge_settings
    with closing_retriever(retriever if close_retriever else None):
        if answers:
            # Checked before the replay, so a judge misconfiguration costs no retriever calls.
            judge_settings = answer_settings(judge_settings)
        with store.writer("traffic replay: reading the sample") as reading:
            plan = plan_replay(reading, sample_id, retriever, request)
            drawn = (
                window_embedding_sample(reading, plan)
                if embedder is not None and request.embedding_sample_size > 0
                else None
            )
        embedded = embed_window(drawn, embedder) if drawn is not None and embedder else None

        def record(
            writing: Store, run_id: str, results: Sequence[QueryResult]
        ) -> Recorded[StoredWindowSummary]:
            summary = save_window_summary(writing, plan, run_id, results, embedded=embedded)
            return Recorded(
                per_query=None, aggregates={}, n_evaluated=0, n_total=len(results), value=summary
            )

        def conclude(
            writing: Store,
            run_id: str,
            report: EngineReport,
            summary: StoredWindowSummary,
            store_seconds: float,
        ) -> TrafficReplay:
            return TrafficReplay(
                run=get_run(writing, run_id), summary=summary, timing=report.timing
            )

        replayed = replay_run(
            store,
            plan.spec,
            LocalEngine(retriever, batch_size=request.batch_size),
            plan.queries,
            progress=progress,
            prepare=lambda writing: None,
            record=record,
            conclude=conclude,
            nothing_answered="complete",
        )
    if not answers:
        return replayed
    # Once the run is recorded, and outside that stretch: the judge can take long.
    scored = score_answers_for_run(
        store, replayed.run.run_id, settings=judge_settings, progress=answers_progress
    )
    return dataclasses.replace(replayed, answers=scored)


def newest_sample(store: Store, window: str) -> str:
    """The id of the newest stored sample of ``window`` (a window label or expression).

    Raises NotFoundError saying how to draw one when the window has none.
    """
    label = parse_window(window).label
    samples = list_samples(store, window_label=label, limit=1)
    if not samples:
        raise NotFoundError(
            f"window {label} has no stored sample; draw one with "
            f"`evalkit traffic sample --window {label}`"
        )
    return samples[0].sample_id
