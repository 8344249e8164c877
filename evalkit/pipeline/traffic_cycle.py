"""The traffic cycle: a window's sample chosen (drawn, or a stored one), replayed against the
live retriever, labelled by the assessor and estimated from calibrated scores, as
``evalkit traffic replay`` and the ``traffic`` job ask. Each holds the store only for short
stretches (``replay_traffic_window``, ``judge_traffic_run``, ``estimate_traffic_run``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evalkit.errors import ConfigError, EvalkitError, NotFoundError, StoreError
from evalkit.pipeline.judge_pool import DocumentTexts, Progress, settings_assessor
from evalkit.pipeline.slices import WindowSlices, window_slices
from evalkit.pipeline.traffic import (
    TrafficReplay,
    newest_sample,
    prepare_traffic_replay,
    replay_traffic_window,
)
from evalkit.pipeline.traffic_labels import (
    WindowEstimate,
    WindowJudging,
    estimate_traffic_run,
    judge_traffic_run,
)
from evalkit.records.requests import TrafficCycleRequest
from evalkit.retrievers.base import SupportsRetrieve
from evalkit.store.access import WriterAccess
from evalkit.store.traffic import StoredSample
from evalkit.traffic.sampling import SampleSpec, sample_window

if TYPE_CHECKING:
    from evalkit.config import Settings

__all__ = ["TrafficCycle", "run_traffic_cycle"]


@dataclass(frozen=True, slots=True)
class TrafficCycle:
    """What a traffic cycle did: the sample it drew (None when it replayed a stored one),
    the replay (None when the sample was only drawn), the window's judged figures, its
    estimate and its slices (None when not asked for, or when none could be made:
    ``estimate_note`` and ``slices_note`` say why)."""

    sample: StoredSample | None
    replay: TrafficReplay | None
    judged: WindowJudging | None = None
    estimate: WindowEstimate | None = None
    estimate_note: str | None = None
    slices: WindowSlices | None = None
    slices_note: str | None = None


def run_traffic_cycle(
    access: WriterAccess,
    request: TrafficCycleRequest,
    settings: Settings,
    retriever: Callable[[], SupportsRetrieve],
    *,
    texts: DocumentTexts | None = None,
    draw: SampleSpec | None = None,
    progress: Progress | None = None,
    answers_progress: Progress | None = None,
    judging_progress: Progress | None = None,
    between: Callable[[], None] | None = None,
) -> TrafficCycle:
    """Replay a window's sample against the retriever ``retriever`` builds, then judge and estimate
    it, and cut it into slices, as ``request`` asks (with ``draw``, a new sample is drawn and
    stored first).

    Judge settings, assessor and sample are checked before the retriever is built. ``texts`` feed
    the assessor; ``between`` runs before the judging. The replay stays stored whatever happens to
    the estimate and the slices; ``estimate_note`` and ``slices_note`` say why they could not be
    made.
    """
    replay = request.replay
    if request.judge and texts is None:
        raise ConfigError("judging a traffic window needs the documents' texts")
    # Before the store is opened: a judge misconfiguration costs no store and no retriever.
    setup = prepare_traffic_replay(replay, settings) if replay is not None else None
    assessor = settings_assessor(settings) if request.judge and replay is not None else None
    sample: StoredSample | None = None
    if draw is not None:
        with access.writer("traffic: drawing the sample") as writing:
            sample = sample_window(writing, draw)
        if replay is None:
            return TrafficCycle(sample, None)
        if between is not None:
            between()
        sample_id = sample.sample_id
    elif replay is None:
        raise ConfigError("a traffic cycle that does not replay must draw its sample")
    elif request.sample_id is not None:
        sample_id = request.sample_id
    elif request.window is None:
        raise ConfigError("name the sample to replay: its id or its window")
    else:
        with access.writer("traffic replay") as store:
            sample_id = newest_sample(store, request.window)
    replayed = replay_traffic_window(
        access,
        sample_id,
        retriever(),
        replay,
        setup=setup,
        progress=progress,
        answers_progress=answers_progress,
        close_retriever=True,
    )
    run_id = replayed.run.run_id
    judged = None
    if assessor is not None and texts is not None:
        if between is not None:
            between()
        judged = judge_traffic_run(
            access, run_id, assessor, texts, request.judging, progress=judging_progress
        )
    estimated, note = None, None
    if request.estimate:
        try:
            estimated = estimate_traffic_run(access, run_id, k=replay.k)
        except EvalkitError as error:
            if isinstance(error, StoreError) and not isinstance(error, NotFoundError):
                raise
            note = str(error)
    sliced, slices_note = None, None
    if request.slices:
        try:
            sliced = window_slices(access, run_id=run_id)
        except EvalkitError as error:
            if isinstance(error, StoreError) and not isinstance(error, NotFoundError):
                raise
            slices_note = str(error)
    return TrafficCycle(sample, replayed, judged, estimated, note, sliced, slices_note)
