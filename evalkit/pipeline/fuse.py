"""A fused run (``evalkit fuse``, docs/fusion.md): stored runs of one goldset version fused
into a new run, scored and stored like a replayed run, with its provenance in its retriever
configuration (kind ``fusion``). Its latency is not measured (NULL), and a query that failed
in a source run fails in the fused run too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from evalkit import __version__
from evalkit.errors import ConfigError
from evalkit.goldset.model import Goldset
from evalkit.metrics import Evaluator, parse_measures
from evalkit.metrics.defaults import measures_at
from evalkit.metrics.fusion import Fusion, FusionRuns, OptimizedFusion, optimize_fusion
from evalkit.pipeline.runs import default_measures
from evalkit.records import QueryResult, ScoredDoc
from evalkit.records.requests import FusionRequest
from evalkit.store import RunRecord, RunSpec, Store, utc_now
from evalkit.store.access import WriterAccess
from evalkit.store.goldsets import load_stored_goldset
from evalkit.store.runs import RunRecorder, get_run, run_queries, run_results

__all__ = ["FUSED_RUN_KIND", "FUSION_RETRIEVER_KIND", "FusionOutcome", "fuse_runs"]

FUSED_RUN_KIND = "fused"
"""The ``kind`` of a fused run (a goldset run's is ``goldset``, a traffic replay's ``traffic``)."""
FUSION_RETRIEVER_KIND = "fusion"
"""The ``retriever_kind`` of a fused run."""


@dataclass(frozen=True, slots=True)
class FusionOutcome:
    """A fused run as stored, the runs it fused and how; when the request optimised, ``optimized``
    holds the fitted fusion and its figure on the ``train`` queries (the run holds ``held_out``).
    """

    run: RunRecord
    sources: tuple[RunRecord, ...]
    fusion: Fusion
    optimized: OptimizedFusion | None = None
    train: tuple[str, ...] = ()
    held_out: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the stored run, the fusion, the sources and the training figure."""
        data = self.run.to_dict()
        data["fusion"] = self.fusion.to_dict()
        data["sources"] = [
            {
                "run_id": source.run_id,
                "label": source.spec.label,
                "retriever_id": source.retriever_id,
                "aggregates": dict(source.aggregates),
            }
            for source in self.sources
        ]
        data["notes"] = list(self.notes)
        data["optimized"] = (
            None
            if self.optimized is None
            else {
                **self.optimized.to_dict(),
                "train_queries": len(self.train),
                "held_out_queries": len(self.held_out),
            }
        )
        return data


@dataclass(frozen=True, slots=True)
class _Sources:
    """What the fusion reads of the source runs: their records, rankings and failures."""

    runs: tuple[RunRecord, ...]
    results: tuple[pd.DataFrame, ...]
    failures: Mapping[str, str]
    goldset: Goldset


def fuse_runs(store: WriterAccess, request: FusionRequest) -> FusionOutcome:
    """Fuse the stored runs ``request`` names and store the fused run.

    The runs must share a goldset version and threshold (else ConfigError naming the run); the
    store is closed while an optimisation's grid search runs.
    """
    with store.writer("fuse: reading the runs") as reading:
        sources = _read_sources(reading, request)
    goldset = sources.goldset
    depth = request.k if request.k is not None else max(run.spec.k for run in sources.runs)
    if depth < 1:
        raise ConfigError(f"the fused run's depth k must be at least 1, got {depth}")
    shared_measures = [
        name
        for name in sources.runs[0].spec.measures
        if all(name in run.spec.measures for run in sources.runs)
    ]
    measure_names, notes = _measures_at_depth(
        request.measures, shared_measures, depth, min(run.spec.k for run in sources.runs)
    )
    threshold = sources.runs[0].spec.relevance_threshold
    fusion = Fusion.of(
        request.method,
        norm=request.norm,
        params=request.params,
        weights=request.weights,
        n_runs=len(sources.runs),
        fitting=request.optimize,
    )
    judged = {judgment.query_id for judgment in goldset.judgments}
    scope = [query.id for query in goldset.queries]
    optimized: OptimizedFusion | None = None
    train: list[str] = []
    held_out: list[str] = []
    if request.optimize:
        _check_nothing_fitted_is_given(fusion, request)
        train, held_out = _split(goldset, judged, request)
        answered_train = [q for q in train if q not in sources.failures]
        optimized = optimize_fusion(
            _restricted(sources.results, answered_train),
            list(goldset.judgments),
            method=fusion.method,
            measure=request.optimize_measure,
            norm=fusion.norm,
            params=fusion.params,
            k=depth,
            query_ids=answered_train,
            relevance_threshold=threshold,
        )
        fusion = optimized.fusion
        scope = list(held_out)
    answered = [q for q in scope if q not in sources.failures]
    fused = FusionRuns(_restricted(sources.results, answered)).fuse(fusion, k=depth)
    spec = _fused_spec(
        sources.runs,
        request,
        fusion,
        depth=depth,
        measure_names=measure_names,
        threshold=threshold,
        n_queries=len(scope),
        optimized=optimized,
        train=train,
        held_out=held_out,
    )
    evaluated = [q for q in answered if q in judged]
    evaluation = (
        Evaluator(list(goldset.judgments), measure_names, relevance_threshold=threshold).evaluate(
            fused, complete=True, query_ids=evaluated
        )
        if evaluated
        else None
    )
    with store.writer("fuse") as writing:
        with RunRecorder(writing, spec, started_at=utc_now()) as recording:
            recording.add(_query_results(scope, fused, sources.failures))
            recording.finish(
                per_query=evaluation.per_query if evaluation is not None else None,
                aggregates=evaluation.aggregate if evaluation is not None else {},
                n_evaluated=evaluation.n_queries if evaluation is not None else 0,
                n_total=sum(1 for query_id in scope if query_id in judged),
            )
        run = get_run(writing, recording.run_id)
    return FusionOutcome(
        run=run,
        sources=sources.runs,
        fusion=fusion,
        optimized=optimized,
        train=tuple(train),
        held_out=tuple(held_out),
        notes=tuple(notes),
    )


def _measures_at_depth(
    asked: Sequence[str], shared: Sequence[str], depth: int, source_depth: int
) -> tuple[list[str], list[str]]:
    """The fused run's measures and a note when some were adapted: cut below ``source_depth``,
    it refuses an ``asked`` measure deeper than ``depth`` and takes the ``shared`` ones cut at
    ``depth``; otherwise ``asked``, else ``shared``, else the defaults at ``depth``.
    """
    cut = depth < source_depth
    if asked or not cut:
        parsed = parse_measures(asked or shared or default_measures(depth))
        deeper = [m for m in parsed if cut and m.cutoff is not None and m.cutoff > depth]
        if deeper:
            raise ConfigError(
                f"{deeper[0]} needs {deeper[0].cutoff} documents per query; the fused run "
                f"keeps {depth} (`k`)"
            )
        return [str(m) for m in parsed], []
    at_depth = measures_at(shared or default_measures(depth), depth)
    notes = []
    if at_depth.adapted:
        taken = ", ".join(f"{deep} as {kept}" for deep, kept in at_depth.adapted.items())
        notes.append(
            f"the fused run keeps {depth} documents per query, so the sources' measures cut "
            f"deeper are taken at {depth}: {taken}"
        )
    return list(at_depth.measures), notes


def _read_sources(store: Store, request: FusionRequest) -> _Sources:
    """The source runs, checked to be fusable together, with their rankings, the queries
    that failed in any of them (and why) and their goldset."""
    if len(request.run_ids) < 2:
        raise ConfigError(f"fusion needs at least two runs, got {len(request.run_ids)}")
    runs = tuple(get_run(store, run_id) for run_id in request.run_ids)
    seen: dict[str, str] = {}
    for reference, run in zip(request.run_ids, runs, strict=True):
        if run.run_id in seen:
            raise ConfigError(
                f"run {run.run_id} is named twice ({seen[run.run_id]!r} and {reference!r}); "
                "name each run once"
            )
        seen[run.run_id] = reference
        if run.status not in ("complete", "partial"):
            raise ConfigError(
                f"run {run.run_id} is {run.status}: only finished runs (complete or partial) "
                "can be fused"
            )
        if run.spec.goldset_version is None:
            raise ConfigError(
                f"run {run.run_id} ({run.spec.kind}) has no goldset: a fused run is scored "
                "on a goldset's judgments, so fuse goldset runs"
            )
    first = runs[0]
    for run in runs[1:]:
        if run.spec.goldset_version != first.spec.goldset_version:
            raise ConfigError(
                f"runs of different goldsets cannot be fused: {first.run_id} is of "
                f"{_goldset_of(first)}, {run.run_id} of {_goldset_of(run)}; fuse runs of one "
                "goldset version"
            )
        if run.spec.relevance_threshold != first.spec.relevance_threshold:
            raise ConfigError(
                f"runs {first.run_id} and {run.run_id} were scored at different relevance "
                f"thresholds ({first.spec.relevance_threshold} and "
                f"{run.spec.relevance_threshold}); fuse runs scored alike"
            )
    goldset = load_stored_goldset(
        store, str(first.spec.goldset_name), str(first.spec.goldset_version)
    )
    failures: dict[str, str] = {}
    for run in runs:
        replayed = run_queries(store, run.run_id)
        errors = dict(zip(replayed["query_id"], replayed["error"], strict=True))
        for query in goldset.queries:
            if query.id in failures:
                continue
            if query.id not in errors:
                failures[query.id] = f"not in source run {run.run_id}"
            elif isinstance(errors[query.id], str):
                failures[query.id] = f"failed in source run {run.run_id}: {errors[query.id]}"
    results = tuple(run_results(store, run.run_id) for run in runs)
    return _Sources(runs=runs, results=results, failures=failures, goldset=goldset)


def _goldset_of(run: RunRecord) -> str:
    return f"goldset {run.spec.goldset_name} @ {run.spec.goldset_version}"


def _check_nothing_fitted_is_given(fusion: Fusion, request: FusionRequest) -> None:
    """With ``optimize``, what is fitted must not be given too: it would be overwritten."""
    search = fusion.definition.search
    fitted = search[0] if search is not None else None
    if fitted == "weights" and request.weights:
        raise ConfigError(f"`optimize` fits the weights of {fusion.method}: leave out `weights`")
    if fitted is not None and fitted in request.params:
        raise ConfigError(
            f"`optimize` fits {fitted} of {fusion.method}: leave out `params` {fitted}=..."
        )


def _split(
    goldset: Goldset, judged: set[str], request: FusionRequest
) -> tuple[list[str], list[str]]:
    """The judged queries split into training and held-out queries: by ``train_tag``, or
    a seeded random ``train_share`` of them; each side at least one query."""
    eligible = [query for query in goldset.queries if query.id in judged]
    if request.train_tag is not None:
        train = [query.id for query in eligible if request.train_tag in query.tags]
        held_out = [query.id for query in eligible if request.train_tag not in query.tags]
        if not train or not held_out:
            raise ConfigError(
                f"`train_tag` {request.train_tag!r} marks {len(train)} of the "
                f"{len(eligible)} judged queries of goldset {goldset.name}: both the "
                "training and the held-out queries need at least one"
            )
        return train, held_out
    if not 0 < request.train_share < 1:
        raise ConfigError(
            f"the training share must be between 0 and 1 (exclusive), got {request.train_share}"
        )
    if len(eligible) < 2:
        raise ConfigError(
            f"goldset {goldset.name} has {len(eligible)} judged queries; optimising needs two "
            "or more (some to fit on, some held out)"
        )
    n_train = min(max(round(request.train_share * len(eligible)), 1), len(eligible) - 1)
    chosen = set(np.random.default_rng(request.seed).permutation(len(eligible))[:n_train])
    train = [query.id for i, query in enumerate(eligible) if i in chosen]
    held_out = [query.id for i, query in enumerate(eligible) if i not in chosen]
    return train, held_out


def _restricted(results: Sequence[pd.DataFrame], query_ids: Sequence[str]) -> list[pd.DataFrame]:
    """Each run's rows of ``query_ids`` only."""
    wanted = pd.Index(query_ids)
    return [frame[frame["query_id"].isin(wanted)] for frame in results]


def _query_results(
    scope: Sequence[str], fused: pd.DataFrame, failures: Mapping[str, str]
) -> list[QueryResult]:
    """The fused run's per-query results (no latency: NaN, stored as NULL)."""
    docs: dict[str, list[ScoredDoc]] = {}
    for query_id, doc_id, score, rank in zip(
        fused["query_id"], fused["doc_id"], fused["score"], fused["rank"], strict=True
    ):
        docs.setdefault(query_id, []).append(ScoredDoc(doc_id, float(score), int(rank)))
    return [
        QueryResult(query_id, (), math.nan, error=failures[query_id])
        if query_id in failures
        else QueryResult(query_id, tuple(docs.get(query_id, ())), math.nan)
        for query_id in scope
    ]


def _fused_spec(
    sources: Sequence[RunRecord],
    request: FusionRequest,
    fusion: Fusion,
    *,
    depth: int,
    measure_names: Sequence[str],
    threshold: int,
    n_queries: int,
    optimized: OptimizedFusion | None,
    train: Sequence[str],
    held_out: Sequence[str],
) -> RunSpec:
    """The fused run's spec: kind ``fused``, retriever ``fusion`` configured by the fusion
    and its sources (and the split and training figure when optimised); the collection,
    model and index of the sources when they all share them."""
    first = sources[0].spec
    config: dict[str, Any] = {
        "kind": FUSION_RETRIEVER_KIND,
        **fusion.to_dict(),
        "sources": [source.run_id for source in sources],
    }
    if optimized is not None:
        config["optimize"] = {
            "measure": optimized.measure,
            "train_score": optimized.score,
            "train_queries": len(train),
            "held_out_queries": len(held_out),
            "split": {"train_tag": request.train_tag}
            if request.train_tag is not None
            else {"train_share": request.train_share, "seed": request.seed},
            "trials": len(optimized.trials),
            "stored": "held-out queries only",
        }

    def shared(values: Sequence[Any]) -> Any:
        return values[0] if len(set(values)) == 1 else None

    # One query model when every source embedded with it by canary cosine (the hashes of
    # one model differ between ONNX Runtime and torch); the first source's record names it.
    one_model = all(s.spec.same_query_model(first) is True for s in sources)
    model = first.query_model if one_model else None
    return RunSpec(
        kind=FUSED_RUN_KIND,
        retriever_kind=FUSION_RETRIEVER_KIND,
        k=depth,
        measures=tuple(measure_names),
        evalkit_version=__version__,
        relevance_threshold=threshold,
        goldset_name=first.goldset_name,
        goldset_version=first.goldset_version,
        retriever_config=config,
        collection=shared([s.spec.collection for s in sources]),
        model_name=model.name if model else None,
        model_dimension=model.dimension if model else None,
        model_fingerprint=model.canary_hash if model else None,
        model_canaries=model.canary_vectors if model else b"",
        index_fingerprint=shared([s.spec.index_fingerprint for s in sources]),
        seed=request.seed if request.optimize and request.train_tag is None else None,
        label=request.label,
        n_queries=n_queries,
        tags=tuple(sorted(set(request.tags))),
    )
