"""Promote replayed traffic to a goldset draft for a person to judge.

``promote_window`` picks ``n`` queries of a window's latest replay, stratified by tenant
(each at least ``min_per_stratum``), favouring the queries the retriever was least sure of
(low top-1 score) and those whose results moved most from production's (low rank-biased
overlap), and writes a draft folder with ``"relevance": null`` judgments; the importer
refuses a draft with a grade left ``null``. The folder and how to review it:
docs/traffic.md, "Promotion to goldsets".
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from evalkit.errors import ConfigError, InputError, NotFoundError
from evalkit.records.requests import (
    DEFAULT_PROMOTED_MIN_PER_TENANT,
    DEFAULT_PROMOTED_QUERIES,
    DEFAULT_PROMOTED_TOP,
)
from evalkit.store.traffic.windows import (
    latest_window_summary,
    promotion_candidates,
    replay_top_results,
    window_summary_of_run,
)
from evalkit.traffic.sampling import allocate_quotas

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = [
    "CANDIDATES_FILE",
    "HIGH_CHURN_RBO",
    "PromotionDraft",
    "choose_promotions",
    "promote_window",
    "promotion_priority",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

CANDIDATES_FILE = "candidates.jsonl"
HIGH_CHURN_RBO = 0.5
"""Rank-biased overlap with the logged results below which a query is flagged ``high_churn``."""

_README = """# Goldset draft from traffic window {window}

Replay run {run_id}: {n} queries chosen from {available} replayed ones, stratified by
tenant, favouring low-confidence and high-churn queries (see candidates.jsonl for why).

To add these queries to an existing goldset, queue the draft for review and publish what
the reviewers accept (a goldset question asked again is merged, not added twice):
`evalkit review add {directory} --goldset NAME`, then `evalkit goldset publish NAME`.

To make this draft a goldset of its own instead:

1. In judgments.jsonl, replace every `"relevance": null` with a grade:
   0 = not relevant, 1 = related, 2 = relevant, 3 = highly relevant (the scale of
   `evalkit review`). Delete lines you cannot judge, and
   add lines for relevant documents the retriever missed.
2. Import it under a new name: `evalkit goldset import {directory} --name NEW-NAME`
   (the import refuses the draft while any grade is still null, naming each line). Under
   an existing goldset's name it would replace that goldset's queries with these.
"""


@dataclass(frozen=True, slots=True)
class PromotionDraft:
    """A goldset draft written by ``promote_window``."""

    directory: Path
    window_label: str
    run_id: str
    n_available: int
    n_promoted: int
    n_judgments: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "directory": str(self.directory),
            "window": self.window_label,
            "run_id": self.run_id,
            "available": self.n_available,
            "promoted": self.n_promoted,
            "judgments_to_grade": self.n_judgments,
        }


def _percentile_rank(values: FloatArray) -> FloatArray:
    """Rank of each finite value among the finite ones, scaled to [0, 1]; NaN stays NaN."""
    from scipy.stats import rankdata

    result = np.full(values.shape, np.nan)
    finite = np.isfinite(values)
    count = int(finite.sum())
    if count:
        ranks = rankdata(values[finite], method="average")
        result[finite] = (ranks - 1.0) / max(count - 1, 1)
    return result


def promotion_priority(top1_score: FloatArray, rbo: FloatArray) -> FloatArray:
    """How much a person's judgment is worth for each query, in [0, 1].

    The mean of two percentile ranks: of low top-1 score (low confidence) and, where
    logged results were compared, of low rank-biased overlap (high churn). A query with
    neither signal gets 0.
    """
    top1 = np.asarray(top1_score, dtype=np.float64)
    overlap = np.asarray(rbo, dtype=np.float64)
    components = np.vstack([_percentile_rank(-top1), _percentile_rank(-overlap)])
    present = np.isfinite(components)
    totals = np.where(present, components, 0.0).sum(axis=0)
    counts = present.sum(axis=0)
    priority: FloatArray = np.divide(totals, counts, out=np.zeros(top1.shape), where=counts > 0)
    return priority


def choose_promotions(
    priority: FloatArray,
    strata: Sequence[str | None],
    n: int,
    *,
    minimum: int = 1,
    seed: int = 0,
) -> IntArray:
    """Indices of the queries to promote, highest priority first.

    Each stratum gets its quota from ``allocate_quotas`` and fills it with its
    highest-priority queries; equal priorities are ordered by a seeded shuffle.
    """
    values = np.asarray(priority, dtype=np.float64)
    if values.shape != (len(strata),):
        raise ConfigError("give one priority per query and one stratum per query")
    labels = ["\x00none" if stratum is None else stratum for stratum in strata]
    names, codes = np.unique(np.array(labels, dtype=object), return_inverse=True)
    codes = codes.reshape(-1)
    quotas = allocate_quotas(np.bincount(codes, minlength=len(names)), n, minimum=minimum)
    tie_break = np.random.default_rng(seed).random(values.size)
    order = np.lexsort((tie_break, -values))
    rank_in_stratum = np.empty(values.size, dtype=np.int64)
    seen = np.zeros(len(names), dtype=np.int64)
    for position in order:
        rank_in_stratum[position] = seen[codes[position]]
        seen[codes[position]] += 1
    chosen = rank_in_stratum < quotas[codes]
    return order[chosen[order]].astype(np.int64)


def promote_window(
    store: Store,
    window_label: str,
    directory: Path | str,
    *,
    n: int = DEFAULT_PROMOTED_QUERIES,
    top: int = DEFAULT_PROMOTED_TOP,
    min_per_stratum: int = DEFAULT_PROMOTED_MIN_PER_TENANT,
    seed: int = 0,
    run_id: str | None = None,
    overwrite: bool = False,
) -> PromotionDraft:
    """Write a goldset draft of ``n`` queries of a replayed window to ``directory``.

    Uses the window's latest replay unless ``run_id`` names one. Each chosen query lists its
    current ``top`` results to judge. Failed queries and queries with no results are never
    chosen (there is nothing to judge). Existing draft files are replaced only with
    ``overwrite=True``.
    """
    if n < 1 or top < 1:
        raise ConfigError(f"n and top must be at least 1, got n={n}, top={top}")
    summary = latest_window_summary(store, window_label)
    chosen_run = run_id or summary.run_id
    if run_id is not None:
        of_run = window_summary_of_run(store, run_id)
        if of_run is None or of_run.window_label != summary.window_label:
            raise NotFoundError(
                f"run {run_id} is no replay of traffic window {window_label}; its newest "
                f"replay is {summary.run_id} (`evalkit traffic windows` lists them)"
            )
    candidates = promotion_candidates(store, chosen_run)
    usable = candidates[~candidates["failed"].astype(bool) & (candidates["n_results"] > 0)]
    usable = usable.reset_index(drop=True)
    if usable.empty:
        raise ConfigError(
            f"replay {chosen_run} of window {window_label} has no answered query to promote; "
            "replay the window again once the retriever answers"
        )
    top1 = usable["top1_score"].to_numpy(dtype=np.float64, na_value=np.nan)
    rbo = usable["rbo"].to_numpy(dtype=np.float64, na_value=np.nan)
    priority = promotion_priority(top1, rbo)
    strata = [_optional(tenant) for tenant in usable["tenant"]]
    picked = choose_promotions(priority, strata, n, minimum=min_per_stratum, seed=seed)
    results = replay_top_results(store, chosen_run, top=top)
    by_query: dict[str, list[dict[str, Any]]] = {}
    for query_id, rank, doc_id, score in zip(
        results["query_id"].tolist(),
        results["rank"].tolist(),
        results["doc_id"].tolist(),
        results["score"].tolist(),
        strict=True,
    ):
        by_query.setdefault(str(query_id), []).append(
            {"rank": int(rank), "doc_id": str(doc_id), "score": float(score)}
        )
    target = Path(directory)
    _check_target(target, overwrite=overwrite)
    target.mkdir(parents=True, exist_ok=True)
    tags = ["traffic", f"window:{summary.window_label}"]
    queries: list[dict[str, Any]] = []
    judgments: list[dict[str, Any]] = []
    explained: list[dict[str, Any]] = []
    for index in picked:
        candidate = usable.iloc[int(index)]
        query_id = str(candidate["query_id"])
        tenant = _optional(candidate["tenant"])
        query: dict[str, Any] = {"id": query_id, "text": str(candidate["text"])}
        if tenant is not None:
            query["tenant"] = tenant
        query["tags"] = tags
        queries.append(query)
        listed = by_query.get(query_id, [])
        judgments.extend(
            {"query_id": query_id, "doc_id": doc["doc_id"], "relevance": None} for doc in listed
        )
        explained.append(
            {
                "query_id": query_id,
                "text": str(candidate["text"]),
                "tenant": tenant,
                "priority": round(float(priority[index]), 4),
                "reasons": _reasons(top1[index], rbo[index], summary.low_confidence_threshold),
                "top1_score": _finite(top1[index]),
                "overlap_at_k": _finite(candidate["overlap_at_k"]),
                "rbo": _finite(rbo[index]),
                "results": listed,
            }
        )
    _write_lines(target / "queries.jsonl", queries)
    _write_lines(target / "judgments.jsonl", judgments)
    _write_lines(target / CANDIDATES_FILE, explained)
    (target / "README.md").write_text(
        _README.format(
            window=summary.window_label,
            run_id=chosen_run,
            n=len(queries),
            available=len(usable),
            directory=target,
        ),
        encoding="utf-8",
    )
    return PromotionDraft(
        directory=target,
        window_label=summary.window_label,
        run_id=chosen_run,
        n_available=len(usable),
        n_promoted=len(queries),
        n_judgments=len(judgments),
    )


def _check_target(target: Path, *, overwrite: bool) -> None:
    if target.exists() and not target.is_dir():
        raise InputError("is a file; give the folder to write the draft to", path=str(target))
    existing = [
        target / name
        for name in ("queries.jsonl", "judgments.jsonl", CANDIDATES_FILE, "README.md")
        if (target / name).exists()
    ]
    if existing and not overwrite:
        raise InputError(
            "already holds a goldset draft; choose another directory or pass `overwrite`",
            path=str(existing[0]),
        )


def _reasons(top1: float, rbo: float, threshold: float) -> list[str]:
    reasons = []
    if math.isfinite(top1) and top1 < threshold:
        reasons.append("low_confidence")
    if math.isfinite(rbo) and rbo < HIGH_CHURN_RBO:
        reasons.append("high_churn")
    return reasons


def _finite(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return round(number, 6) if math.isfinite(number) else None


def _optional(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _write_lines(path: Path, records: Iterable[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
