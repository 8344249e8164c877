"""The traffic stage of a replay of a stored sample against the live retriever.

``plan_replay`` loads and checks the sample and describes its run; ``save_window_summary``
stores what the replay found; ``evalkit.pipeline.replay_traffic_window`` runs the replay
between the two (docs/traffic.md, "Replay"). When the sample holds tenants and the retriever
cannot filter by them, ``plan_replay`` refuses to run rather than search every tenant's
documents (docs/traffic.md, "Tenant isolation").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evalkit.clock import utc_now
from evalkit.errors import ConfigError
from evalkit.metrics.overlap import jaccard_at_k_many, rank_biased_overlap_many
from evalkit.records import Query, QueryResult
from evalkit.records.requests import (
    DEFAULT_EMBEDDING_SAMPLE,
    TRAFFIC_REPLAY_DEFAULTS,
    TrafficReplayRequest,
)
from evalkit.retrievers.base import TENANT_FORWARDING_KINDS, description_of, filters_by_tenant
from evalkit.store.runs import RunSpec
from evalkit.store.traffic import (
    StoredSample,
    StoredWindowSummary,
    draw_window_queries,
    load_sample,
    load_sample_queries,
    logged_latency_quantiles,
    logged_results,
    save_traffic_replay,
)
from evalkit.traffic.summary import replay_figures

if TYPE_CHECKING:
    import numpy.typing as npt

    from evalkit.embedding import ModelFingerprint, TextEmbedder
    from evalkit.retrievers.base import SupportsRetrieve
    from evalkit.store.store import Store

__all__ = [
    "DEFAULT_EMBEDDING_SAMPLE",
    "TENANT_FORWARDING_KINDS",
    "ReplayPlan",
    "WindowEmbeddings",
    "compare_with_logged",
    "embed_window",
    "filters_by_tenant",
    "plan_replay",
    "save_window_summary",
    "window_embedding_sample",
]


def compare_with_logged(
    replayed: Sequence[Sequence[str]],
    logged: Sequence[Sequence[str] | None],
    *,
    k: int,
    p: float = 0.9,
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]]]:
    """Jaccard overlap@k and RBO (``p``, depth k) of each replayed ranking with the logged one.

    Both are NaN where nothing was logged (``None``); an empty logged list is a real answer.
    """
    overlap = np.full(len(replayed), np.nan)
    rbo = np.full(len(replayed), np.nan)
    present = [index for index, ranking in enumerate(logged) if ranking is not None]
    if present:
        mine = [list(replayed[index]) for index in present]
        theirs = [list(logged[index] or ()) for index in present]
        overlap[present] = jaccard_at_k_many(mine, theirs, k)
        rbo[present] = rank_biased_overlap_many(mine, theirs, p=p, depth=k)
    return overlap, rbo


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    """A checked traffic replay, ready to run: the sample, its queries and the run's spec.

    ``frame`` holds the sample's queries as stored (tenant and stratum with them);
    ``request`` is how the replay was asked for.
    """

    sample: StoredSample
    frame: pd.DataFrame
    queries: list[Query]
    spec: RunSpec
    request: TrafficReplayRequest

    @property
    def compare_k(self) -> int:
        """The depth of the comparison with logged results: the request's, else its ``k``."""
        return self.request.compare_k or self.request.k


def plan_replay(
    store: Store,
    sample_id: str,
    retriever: SupportsRetrieve,
    request: TrafficReplayRequest = TRAFFIC_REPLAY_DEFAULTS,
) -> ReplayPlan:
    """Load the sample ``sample_id`` and check it can be replayed against ``retriever`` as
    ``request`` says.

    ``request.compare_k`` (default ``request.k``) is the depth of the comparison with logged
    results. Raises ConfigError when the sample holds tenants but the retriever does not
    filter by tenant (unless ``request.tenant_isolation`` is off). A retriever that left its
    embedding-model check for later makes it here, before any run is recorded.
    """
    sample = load_sample(store, sample_id)
    frame = load_sample_queries(store, sample.sample_id)
    queries = [
        Query(id=str(row.query_id), text=str(row.text), tenant=_optional(row.tenant))
        for row in frame.itertuples(index=False)
    ]
    description = description_of(retriever)
    tenants = {query.tenant for query in queries if query.tenant is not None}
    if tenants and request.tenant_isolation and not filters_by_tenant(description):
        raise ConfigError(
            f"sample {sample.sample_id} holds queries of {len(tenants)} tenant(s), but the "
            f"retriever ({description.get('kind', type(retriever).__name__)}) does not filter "
            "by tenant, so a query could see another tenant's documents. Name the metadata "
            "key holding the tenant (`where_key`), or replay without tenant isolation on "
            "purpose (`tenant_isolation = false`) for a single-tenant index."
        )
    # A retriever that left its embedding-model check for later (it loads the model) makes
    # it now, after the cheap refusals above and before a run is recorded.
    verify_model = getattr(retriever, "verify_model", None)
    if callable(verify_model):
        verify_model()
    spec = RunSpec.for_retriever(
        retriever,
        kind="traffic",
        k=request.k,
        n_queries=len(queries),
        seed=sample.seed,
        label=request.label or f"traffic {sample.window_label}",
    )
    return ReplayPlan(sample=sample, frame=frame, queries=queries, spec=spec, request=request)


@dataclass(frozen=True, slots=True)
class WindowEmbeddings:
    """A seeded sample of a window's distinct queries embedded for drift checks: their
    ids, their vectors ((n, dimension) float32) and the model that embedded them."""

    query_ids: list[str]
    vectors: npt.NDArray[np.float32]
    model: ModelFingerprint


def window_embedding_sample(store: Store, plan: ReplayPlan) -> pd.DataFrame:
    """Up to ``plan.request.embedding_sample_size`` distinct queries of the window (a seeded
    uniform sample, the sample's seed), to embed with ``embed_window``."""
    sample = plan.sample
    return draw_window_queries(
        store,
        start=sample.window_start,
        end=sample.window_end,
        seed=sample.seed,
        limit=plan.request.embedding_sample_size,
        dedup=sample.dedup,
    )


def embed_window(drawn: pd.DataFrame, embedder: TextEmbedder) -> WindowEmbeddings | None:
    """The queries ``drawn`` (``window_embedding_sample``) embedded by ``embedder``: slow
    work that needs no store. None when none were drawn."""
    if drawn.empty:
        return None
    vectors = embedder.embed([str(text) for text in drawn["text"]])
    return WindowEmbeddings(
        query_ids=[str(q) for q in drawn["query_id"]],
        vectors=np.asarray(vectors, dtype=np.float32),
        model=embedder.fingerprint,
    )


def save_window_summary(
    store: Store,
    plan: ReplayPlan,
    run_id: str,
    results: Sequence[QueryResult],
    *,
    embedded: WindowEmbeddings | None = None,
) -> StoredWindowSummary:
    """Store the per-query comparison with logged results and the window summary of the
    replay run ``run_id`` (the run's own status is for the caller to finish), with the
    RBO persistence and low-confidence threshold of ``plan.request``, and the window's
    query sample ``embedded`` (``embed_window``) when given.
    """
    sample = plan.sample
    request = plan.request
    per_query = _per_query_frame(store, plan.frame, results, plan.compare_k, request.rbo_p)
    figures = replay_figures(
        latency_ms=np.array([r.latency_ms for r in results], dtype=np.float64),
        failed=per_query["failed"].to_numpy(dtype=bool),
        top1_score=per_query["top1_score"].to_numpy(dtype=np.float64, na_value=np.nan),
        overlap_at_k=per_query["overlap_at_k"].to_numpy(dtype=np.float64, na_value=np.nan),
        rbo=per_query["rbo"].to_numpy(dtype=np.float64, na_value=np.nan),
        low_confidence_threshold=request.low_confidence_threshold,
    )
    logged_p50, logged_p95, logged_p99 = logged_latency_quantiles(
        store, start=sample.window_start, end=sample.window_end
    )
    embedding_ids = embedded.query_ids if embedded is not None else []
    model = embedded.model if embedded is not None else None
    summary = StoredWindowSummary(
        run_id=run_id,
        sample_id=sample.sample_id,
        window_label=sample.window_label,
        window_start=sample.window_start,
        window_end=sample.window_end,
        computed_at=utc_now(),
        k=plan.spec.k,
        compare_k=plan.compare_k,
        rbo_p=request.rbo_p,
        volume=sample.n_records,
        n_distinct=sample.n_distinct,
        logged_latency_p50=logged_p50,
        logged_latency_p95=logged_p95,
        logged_latency_p99=logged_p99,
        low_confidence_threshold=request.low_confidence_threshold,
        embedding_model=model.name if model else None,
        embedding_dimension=model.dimension if model else None,
        embedding_fingerprint=model.canary_hash if model else None,
        embedding_canaries=model.canary_vectors if model else None,
        embedding_seed=sample.seed if model else None,
        n_embeddings=len(embedding_ids),
        **asdict(figures),
    )
    save_traffic_replay(
        store,
        summary=summary,
        per_query=per_query,
        embedding_ids=embedding_ids,
        embeddings=embedded.vectors if embedded is not None else None,
    )
    return summary


def _optional(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value)


def _per_query_frame(
    store: Store,
    sample: pd.DataFrame,
    results: Sequence[QueryResult],
    compare_k: int,
    rbo_p: float,
) -> pd.DataFrame:
    """One row per replayed query: failure, result count, top-1 score, logged comparison."""
    query_ids = [result.query_id for result in results]
    logged_ids = logged_results(store, query_ids)
    replayed = [[doc.doc_id for doc in result.docs] for result in results]
    rankings = [
        logged_ids.get(query_id) if result.ok else None
        for query_id, result in zip(query_ids, results, strict=True)
    ]
    overlap, rbo = compare_with_logged(replayed, rankings, k=compare_k, p=rbo_p)
    return pd.DataFrame(
        {
            "query_id": query_ids,
            "tenant": [_optional(t) for t in sample["tenant"]],
            "stratum": [_optional(s) for s in sample["stratum"]],
            "failed": [not result.ok for result in results],
            "n_results": pd.array([len(result.docs) for result in results], dtype="int32"),
            "top1_score": pd.array(
                [result.docs[0].score if result.docs else None for result in results],
                dtype="Float64",
            ),
            "n_logged": pd.array(
                [None if ranking is None else len(ranking) for ranking in rankings], dtype="Int32"
            ),
            "overlap_at_k": pd.Series(overlap, dtype="float64").astype("Float64").array,
            "rbo": pd.Series(rbo, dtype="float64").astype("Float64").array,
        }
    )
