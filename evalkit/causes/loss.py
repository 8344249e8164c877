"""What a candidate run lost against its baseline, query by query, and the causes traced so
far: the measure every cause of ``evalkit.causes`` shares out (see ``join``'s docstring)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import pandas as pd

from evalkit.causes.records import CAUSE_KINDS, Cause, CauseLink

if TYPE_CHECKING:
    from evalkit.stats import ComparisonReport

__all__ = ["Found", "Loss", "cause_link", "loss_of", "ranked_results", "top_documents"]

_Source = TypeVar("_Source")


def ranked_results(results: pd.DataFrame, query_ids: Sequence[str]) -> pd.DataFrame:
    """The results of ``query_ids`` in trec_eval's order (score descending, then document id
    descending), with ``rank`` (from 1, within its query) added."""
    results = results[results["query_id"].astype(str).isin(query_ids)]
    ranked = results.sort_values(["query_id", "score", "doc_id"], ascending=[True, False, False])
    return ranked.assign(rank=ranked.groupby("query_id").cumcount() + 1)


def top_documents(
    results: pd.DataFrame, query_ids: Sequence[str], depth: int
) -> dict[str, list[str]]:
    """The documents of each of ``query_ids`` ranked in the top ``depth``, best first."""
    ranked = ranked_results(results, query_ids)
    kept = ranked[ranked["rank"] <= depth]
    tops: dict[str, list[str]] = {}
    for query_id, doc_id in zip(
        kept["query_id"].astype(str), kept["doc_id"].astype(str), strict=True
    ):
        tops.setdefault(query_id, []).append(doc_id)
    return tops


def _baseline_ranks(
    results: pd.DataFrame, lost: Mapping[str, tuple[str, ...]]
) -> dict[tuple[str, str], int]:
    """The baseline rank of each lost (query, doc) pair. Only the queries that lost
    documents are ranked (a rank is within its query): a dict of every pair of two 50,000-
    query runs at k 100 took most of a comparison's 2.6 GB."""
    wanted = {(query, doc) for query, docs in lost.items() for doc in docs}
    if not wanted:
        return {}
    ranked = ranked_results(results, list(lost))
    pairs = zip(
        ranked["query_id"].astype(str), ranked["doc_id"].astype(str), ranked["rank"], strict=True
    )
    return {(q, d): int(r) for q, d, r in pairs if (q, d) in wanted}


@dataclass(frozen=True, slots=True)
class Loss:
    """What the candidate lost on the primary ``measure``, query by query: each dropped
    query's drop, the relevant documents it lost and their baseline ranks."""

    measure: str
    drops: Mapping[str, float]
    lost: Mapping[str, tuple[str, ...]]
    baseline_ranks: Mapping[tuple[str, str], int]

    @property
    def total(self) -> float:
        """The sum of the per-query drops."""
        return float(sum(self.drops.values()))

    @property
    def documents(self) -> set[str]:
        """Every relevant document some dropped query lost."""
        return {doc for docs in self.lost.values() for doc in docs}

    def share(self, fractions: Mapping[str, float]) -> float:
        """The share of the loss that per-query ``fractions`` account for."""
        total = self.total
        if total <= 0:
            return 0.0
        return float(sum(drop * fractions.get(q, 0.0) for q, drop in self.drops.items())) / total

    def lost_pairs_of(self, by_doc: Mapping[str, _Source]) -> dict[tuple[str, str], _Source]:
        """The lost (query, document) pairs of the documents in ``by_doc``, each with its
        document's entry."""
        return {
            (q, doc): by_doc[doc] for q, docs in self.lost.items() for doc in docs if doc in by_doc
        }

    def document_fractions(self, wanted: Mapping[tuple[str, str], object]) -> dict[str, float]:
        """Per query: the share of its lost documents among the ``wanted`` (query, doc) pairs."""
        return {
            q: sum((q, doc) in wanted for doc in docs) / len(docs)
            for q, docs in self.lost.items()
            if docs
        }


def loss_of(report: ComparisonReport, measure: str) -> Loss:
    """What the candidate of ``report`` lost on ``measure``."""
    metric = report.metric(measure)
    drops = {
        str(q): float(b - c)
        for q, b, c in zip(
            metric.query_ids, metric.baseline_values, metric.candidate_values, strict=True
        )
        if b - c > 0
    }
    changes = report.document_changes(measure, list(drops)) if drops else {}
    lost = {q: tuple(change["lost"]) for q, change in changes.items()}
    return Loss(
        measure=measure,
        drops=drops,
        lost=lost,
        baseline_ranks=_baseline_ranks(report.baseline_run.results, lost),
    )


@dataclass
class Found:
    """The causes found so far, with the per-query fractions of the measured ones."""

    causes: list[Cause] = field(default_factory=list)
    fractions: list[Mapping[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def measured(
        self, cause: Cause, fractions: Mapping[str, float], *, established: bool = True
    ) -> None:
        """Add a measured cause; only an ``established`` one (not a mere hint) takes its
        share out of the residual that whole-index changes can account for."""
        self.causes.append(cause)
        if established:
            self.fractions.append(fractions)

    def explained(self, query_id: str) -> float:
        """The largest fraction of ``query_id``'s loss a measured cause accounts for."""
        return max((f.get(query_id, 0.0) for f in self.fractions), default=0.0)


def cause_link(kind: str, label: str, **params: str | None) -> CauseLink:
    """A link to the dashboard page of cause ``kind``, with the ``params`` that are set."""
    return CauseLink(
        page=CAUSE_KINDS[kind].page,
        params={name: value for name, value in params.items() if value is not None},
        label=label,
    )
