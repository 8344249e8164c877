"""One goldset run: replay a goldset against a live retriever, score it on the goldset's
judgments and store everything. ``evalkit run``, the scheduled job, the gate's live
candidate and a gate's first baseline all make this run (``evaluate_goldset``); ``evalkit
run`` and the job start from a goldset argument and retriever options (``run_goldset``).
``resolve_goldset`` tells what a goldset argument names (a stored goldset or files), for
them and for a sweep."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from evalkit import answers as answer_stage
from evalkit.config import JudgeSettings
from evalkit.engines import (
    EngineReport,
    LocalEngine,
    RayEngine,
    ReplayQueries,
    ReplayTiming,
    actor_judge_settings,
    check_engine,
    results_frame,
)
from evalkit.errors import ConfigError
from evalkit.goldset.formats import load_goldset as read_goldset_files
from evalkit.goldset.model import Goldset, check_goldset_name
from evalkit.metrics import EvaluationResult, Evaluator, parse_measures
from evalkit.metrics.defaults import default_measures_for
from evalkit.pipeline.answer_scores import answer_settings, score_run_answers
from evalkit.pipeline.runs import (
    Recorded,
    RunOutcome,
    _session,
    closing_retriever,
    default_measures,
    replay_run,
    sharded_run,
)
from evalkit.records import QueryResult
from evalkit.records.requests import (
    DEFAULT_GOLDSET_FORMAT,
    DEFAULT_GOLDSET_SPLIT,
    GoldsetRunRequest,
)
from evalkit.retrievers.base import SupportsPrefetch, SupportsRetrieve, filters_by_tenant
from evalkit.retrievers.factory import RetrieverOptions, build_retriever, query_embedder_ahead
from evalkit.store import RunSpec, Store
from evalkit.store.access import WriterAccess
from evalkit.store.goldsets import (
    ensure_goldset,
    list_goldsets,
    load_stored_goldset,
    save_goldset,
)
from evalkit.store.runs import get_run

if TYPE_CHECKING:
    from evalkit.answers import OfflineFaithfulness
    from evalkit.config import Settings


class StagedProgress(Protocol):
    """A replay's progress callback whose ``stage`` gives the callback of a later stage."""

    def __call__(self, done: int, total: int) -> None: ...

    def stage(self, description: str) -> Callable[[int, int], None]: ...


def run_goldset(
    access: WriterAccess,
    request: GoldsetRunRequest,
    settings: Settings,
    retriever: RetrieverOptions | SupportsRetrieve,
    *,
    goldset: Goldset | None = None,
    make_current: bool = True,
    engine: RayEngine | None = None,
    build: Callable[[], SupportsRetrieve] | None = None,
    progress: Callable[[int, int], None] | None = None,
    progress_bar: Callable[[str], AbstractContextManager[StagedProgress | None]] | None = None,
) -> RunOutcome:
    """The goldset run of ``evalkit run``, the ``goldset_replay`` job, the gate's live candidate and
    each sweep point: ``request``'s goldset (or ``goldset``) replayed, scored and stored
    (``evaluate_goldset``).

    ``retriever`` is a ready retriever (left open) or options built with ``settings`` and closed
    afterwards; ``build`` builds it instead. ``progress_bar`` opens a staged bar over ``progress``.
    """
    options = retriever if isinstance(retriever, RetrieverOptions) else None
    on_ray = engine
    if on_ray is None and check_engine(request.engine) == "ray":
        if options is None:
            raise ConfigError("engine ray builds the retriever on each actor: give its options")
        on_ray = RayEngine(
            options, settings, address=request.ray_address, actors=request.ray_actors
        )
    # The query model loads in the background while the store, the goldset and the
    # retriever are opened, then embeds the goldset's queries ahead of the replay: the
    # model's native code runs while this thread imports and opens things.
    embedder = (
        query_embedder_ahead(options, settings) if build is None and options is not None else None
    )
    try:
        if goldset is None:
            goldset, make_current = _read_goldset(access, request)
        if embedder is not None and on_ray is None:
            embedder.prefetch([query.text for query in goldset.queries])
        live: SupportsRetrieve
        if build is not None:
            live = build()
        elif isinstance(retriever, RetrieverOptions):
            live = build_retriever(
                dataclasses.replace(retriever, query_embedder=embedder), settings
            )
        else:
            live = retriever
        opened = progress_bar(goldset.name) if progress_bar is not None else nullcontext(None)
        with opened as bar:
            outcome = evaluate_goldset(
                access,
                goldset,
                live,
                request,
                progress=bar if bar is not None else progress,
                answers_progress=bar.stage("scoring answers") if bar is not None else None,
                close_retriever=live is not retriever,
                engine=on_ray,
                make_current=make_current,
            )
    finally:
        if embedder is not None:
            embedder.close()
    return outcome


def _read_goldset(access: WriterAccess, request: GoldsetRunRequest) -> tuple[Goldset, bool]:
    """The goldset ``request`` names, and whether running it makes it its name's current
    version (files: yes; a stored goldset: no)."""
    # Held only to read the goldset: other writers need not wait for the replay.
    with access.writer("reading the goldset") as store:
        chosen = (
            resolve_goldset(
                store,
                request.goldset,
                format=request.goldset_format,
                split=request.goldset_split,
                topics=request.goldset_topics,
            )
            if request.goldset_files
            else request.goldset
        )
        if not isinstance(chosen, str) and request.goldset_version is not None:
            raise ConfigError(
                f"`goldset_version` picks a stored goldset's version; {request.goldset} "
                f"is read from its files (version {chosen.version})"
            )
        if isinstance(chosen, str):
            return load_stored_goldset(store, chosen, request.goldset_version), False
        return chosen, True


def evaluate_goldset(
    store: WriterAccess,
    goldset: Goldset,
    retriever: SupportsRetrieve,
    request: GoldsetRunRequest,
    *,
    progress: Callable[[int, int], None] | None = None,
    answers_progress: Callable[[int, int], None] | None = None,
    judge_settings: JudgeSettings | None = None,
    offline: OfflineFaithfulness | None = None,
    close_retriever: bool = False,
    engine: RayEngine | None = None,
    make_current: bool = True,
) -> RunOutcome:
    """Replay a goldset against a live retriever as ``request`` says, score it and store it all.

    ``store`` is held as ``runs._record_run`` says. Failed queries make the run ``partial``; a
    crash marks it ``failed`` and re-raises. ``answers`` are scored after the run is recorded
    (a failed scoring leaves the run as it is). The goldset is stored as an import stores it,
    current unless ``make_current`` is false. An ``engine`` replays on Ray (``sharded_run``).
    """
    k, measures, answers = request.k, request.measures, request.answers
    relevance_threshold = request.relevance_threshold
    store_goldset = save_goldset if make_current else ensure_goldset
    with closing_retriever(retriever if close_retriever else None):
        defaults = None if measures else default_measures_for(k)
        measure_names = [str(m) for m in parse_measures(measures or default_measures(k))]
        spec = _goldset_run_spec(
            goldset,
            retriever,
            k=k,
            measure_names=measure_names,
            relevance_threshold=relevance_threshold,
            label=request.label,
            tags=request.tags,
        )
        if answers:
            judge_settings = answer_settings(judge_settings)
        if engine is not None:
            if answers and judge_settings is not None and answer_stage.uses_judge(judge_settings):
                # A judge concurrency the actors cannot share fails before any query.
                actor_judge_settings(judge_settings, engine.actors)
            judged = {judgment.query_id for judgment in goldset.judgments}
            outcome = sharded_run(
                store,
                spec,
                engine,
                ReplayQueries(goldset.queries, goldset.judgments),
                n_total=sum(1 for query in goldset.queries if query.id in judged),
                prepare=lambda writing: store_goldset(writing, goldset),
                progress=progress,
                nothing_answered="failed",
                answers=judge_settings if answers else None,
            )
            return dataclasses.replace(outcome, default_measures=defaults)
        if isinstance(retriever, SupportsPrefetch):
            # The goldset is known in full: its queries are embedded in one length-sorted
            # pass (less padding than batch by batch) that starts before the first batch.
            retriever.prefetch([query.text for query in goldset.queries])

        def record(writing: Store, run_id: str, results: Sequence[QueryResult]) -> Recorded[float]:
            began = time.perf_counter()
            evaluation, n_total = _score_goldset(
                goldset,
                results,
                measure_names=measure_names,
                relevance_threshold=relevance_threshold,
            )
            return Recorded(
                per_query=evaluation.per_query if evaluation else None,
                aggregates=evaluation.aggregate if evaluation else {},
                n_evaluated=evaluation.n_queries if evaluation else 0,
                n_total=n_total,
                value=time.perf_counter() - began,
            )

        replayed: list[Sequence[QueryResult]] = []

        def conclude(
            writing: Store,
            run_id: str,
            report: EngineReport,
            metrics_seconds: float,
            store_seconds: float,
        ) -> RunOutcome:
            replayed.append(report.results)
            outcome = _goldset_outcome(
                writing,
                run_id,
                goldset,
                timing=report.timing,
                seconds_metrics=metrics_seconds,
                seconds_store=store_seconds,
            )
            note = nothing_judged_note(goldset, report.results)
            return dataclasses.replace(outcome, nothing_judged_note=note)

        outcome = replay_run(
            store,
            spec,
            LocalEngine(retriever, batch_size=request.batch_size),
            goldset.queries,
            progress=progress,
            prepare=lambda writing: store_goldset(writing, goldset),
            record=record,
            conclude=conclude,
            nothing_answered="failed",
        )
    outcome = dataclasses.replace(outcome, default_measures=defaults)
    if not answers:
        return outcome
    # Once the run is recorded, and outside that stretch: the judge can take long.
    began = time.perf_counter()
    scored = score_run_answers(
        store,
        outcome.run.run_id,
        goldset.queries,
        replayed[0],
        settings=judge_settings,
        offline=offline,
        progress=answers_progress,
    )
    return dataclasses.replace(
        outcome,
        answers=scored,
        seconds_answers=time.perf_counter() - began if scored is not None else 0.0,
    )


def _goldset_run_spec(
    goldset: Goldset,
    retriever: SupportsRetrieve,
    *,
    k: int,
    measure_names: Sequence[str],
    relevance_threshold: int,
    label: str | None,
    tags: Sequence[str],
) -> RunSpec:
    return RunSpec.for_retriever(
        retriever,
        kind="goldset",
        k=k,
        n_queries=len(goldset.queries),
        measures=measure_names,
        relevance_threshold=relevance_threshold,
        goldset_name=goldset.name,
        goldset_version=goldset.version,
        label=label,
        tags=tags,
    )


def _score_goldset(
    goldset: Goldset,
    results: Sequence[QueryResult],
    *,
    measure_names: Sequence[str],
    relevance_threshold: int,
) -> tuple[EvaluationResult | None, int]:
    """The replayed results scored on the goldset's judgments (None when no query was
    answered), and the number of judged queries."""
    answered = [r.query_id for r in results if r.ok]
    evaluator = Evaluator(
        list(goldset.judgments),
        parse_measures(measure_names),
        relevance_threshold=relevance_threshold,
    )
    judged = {judgment.query_id for judgment in goldset.judgments}
    evaluated_ids = [query_id for query_id in answered if query_id in judged]
    evaluation = (
        evaluator.evaluate(results_frame(results), complete=True, query_ids=evaluated_ids)
        if answered
        else None
    )
    return evaluation, sum(1 for query in goldset.queries if query.id in judged)


def _goldset_outcome(
    store: Store,
    run_id: str,
    goldset: Goldset,
    *,
    timing: ReplayTiming,
    seconds_metrics: float,
    seconds_store: float,
) -> RunOutcome:
    run = get_run(store, run_id)
    tenanted = [query.tenant for query in goldset.queries if query.tenant is not None]
    unfiltered = (
        (len(tenanted), len(set(tenanted)))
        if tenanted and not filters_by_tenant(run.spec.retriever_config)
        else (0, 0)
    )
    return RunOutcome(
        run=run,
        timing=timing,
        seconds_metrics=seconds_metrics,
        seconds_store=seconds_store,
        unfiltered_tenants=unfiltered,
    )


def nothing_judged_note(goldset: Goldset, results: Sequence[QueryResult]) -> str | None:
    """What to tell when every measure of a goldset run is 0 for want of a judged document: no
    document came back, or none is judged in ``goldset`` (most often ids of the retriever's own).
    None when a returned document is judged, or no query was answered.
    """
    answered = [result for result in results if result.ok]
    judged = {judgment.doc_id for judgment in goldset.judgments}
    returned = [doc.doc_id for result in answered for doc in result.docs]
    if not answered or not judged or any(doc_id in judged for doc_id in returned):
        return None
    if not returned:
        return (
            f"the retriever returned no document for any of the {len(answered)} queries it "
            "answered, so every measure is 0: check that the index holds documents and that "
            "no filter (a tenant, --where-key) excludes them all"
        )
    return (
        f"not one of the {len(returned)} documents the retriever returned is judged in "
        f"goldset {goldset.name} (it returned ids such as {returned[0]!r}; the goldset "
        f"judges ids such as {min(judged)!r}), so every measure is 0. If the retriever "
        "names documents by ids of its own, have it return the goldset's doc ids "
        "(docs/retrievers.md#document-ids)"
    )


def resolve_goldset(
    store: WriterAccess | None,
    value: str | os.PathLike[str],
    *,
    root: Path | None = None,
    format: str = DEFAULT_GOLDSET_FORMAT,
    name: str | None = None,
    split: str = DEFAULT_GOLDSET_SPLIT,
    topics: Path | None = None,
) -> str | Goldset:
    """What a goldset argument names: a stored goldset's name, or goldset files, read now.

    A path (separator or ``PathLike``) must exist; a bare word is a stored goldset, else an existing
    file, else a name the store will refuse. Paths are relative to ``root``; files are read as
    ``evalkit goldset import`` reads them (name checked first; ConfigError), versioned by hash.
    """
    text = os.fspath(value)
    base = root or Path.cwd()
    path = base / Path(text).expanduser()
    spelt_as_path = isinstance(value, os.PathLike) or any(
        separator and separator in text for separator in ("/", os.sep, os.altsep)
    )
    if spelt_as_path:
        if not path.exists():
            raise ConfigError(
                f"goldset {text}: no such file or folder ({path}); give the path of a goldset "
                f"folder or file (relative to {base}), or the name of a stored goldset"
            )
    elif not path.exists() or _goldset_stored(store, text):
        return text
    if name is None:
        # Checked before the files are read and the queries replayed, since the run would
        # only store its goldset under this name once every query had been sent.
        check_goldset_name(
            path.stem,
            advice="the name is the goldset folder's or file's: rename it, or import the "
            "goldset under a name such as 'support-faq' (`evalkit goldset import PATH "
            "--name support-faq`) and give --goldset that name",
        )
    loaded = read_goldset_files(
        path, format=format, name=path.stem if name is None else name, split=split, topics=topics
    )
    shown = path.relative_to(base) if path.is_relative_to(base) else path
    return dataclasses.replace(loaded, source=str(shown))


def _goldset_stored(store: WriterAccess | None, name: str) -> bool:
    with _session(store, "read goldsets") as opened:
        return opened is not None and bool(list_goldsets(opened, name))
