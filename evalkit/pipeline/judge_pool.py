"""The judged pool as the judging workflows share it (docs/judging.md, "The judged pool"):
``judge_pairs`` judges pairs through the cache and the ``max_judgments`` budget, storing
each judgment within a second of arriving, so a killed pass loses at most its last second;
document texts come from a corpus file or a Chroma collection.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from evalkit.audit.snapshot import fetch_documents
from evalkit.batches import BatchWriter
from evalkit.goldset.corpus import iter_corpus
from evalkit.judging.assessor import RelevanceAssessor, estimate_tokens, prompt_flags
from evalkit.judging.records import Assessment, JudgePair
from evalkit.records.requests import JudgingRequest
from evalkit.store.access import WriterAccess
from evalkit.store.judging import load_pool, save_assessments

if TYPE_CHECKING:
    from evalkit.config import Settings

__all__ = [
    "OVER_BUDGET",
    "CollectionTexts",
    "CorpusTexts",
    "DocumentTexts",
    "JudgingOutcome",
    "JudgingPlan",
    "Key",
    "Progress",
    "RelevanceAssessor",
    "corpus_texts",
    "judge_pairs",
    "settings_assessor",
    "text_pairs",
    "top_k",
]

Progress = Callable[[int, int], None]
Key = tuple[str, str]

OVER_BUDGET = "over_budget"
"""Why a pair left over the budget has no grade (``JudgingOutcome.ungraded``)."""

DocumentTexts = Callable[[Iterable[str]], dict[str, str]]
"""Where the judging workflows read document texts: given document ids, the texts of those
it has (``CorpusTexts``, ``CollectionTexts``)."""


def text_pairs(
    wanted: Iterable[Key], query_texts: Mapping[str, str], texts: DocumentTexts
) -> dict[Key, JudgePair]:
    """The pairs of ``wanted`` (query id, doc id; in order, once each) the assessor can
    read: those whose query ``query_texts`` and whose document ``texts`` has a text."""
    keys = list(dict.fromkeys(wanted))
    documents = texts({doc_id for _, doc_id in keys})
    return {
        (query_id, doc_id): JudgePair(
            query_texts[query_id], doc_id, documents[doc_id], query_id=query_id
        )
        for query_id, doc_id in keys
        if doc_id in documents and query_id in query_texts
    }


def settings_assessor(settings: Settings) -> RelevanceAssessor:
    """The LLM assessor of the ``[judge]`` settings, which the judging workflows are handed
    (``evalkit judge``, ``run --judge-holes``, the traffic cycle)."""
    return RelevanceAssessor(settings.judge)


def corpus_texts(path: Path | str, doc_ids: Iterable[str]) -> dict[str, str]:
    """The texts (title and body) of ``doc_ids`` found in the corpus at ``path``, read in
    one pass that keeps only those documents."""
    wanted = set(doc_ids)
    texts: dict[str, str] = {}
    if not wanted:
        return texts
    for document in iter_corpus(path, check_duplicates=False):
        if document.id in wanted:
            texts[document.id] = document.content
            if len(texts) == len(wanted):
                break
    return texts


@dataclass(frozen=True, slots=True)
class CorpusTexts:
    """Document texts from the corpus file the index was built from (any format
    ``evalkit index`` reads)."""

    path: Path

    def __call__(self, doc_ids: Iterable[str]) -> dict[str, str]:
        return corpus_texts(self.path, doc_ids)


@dataclass(frozen=True, slots=True)
class CollectionTexts:
    """Document texts from a Chroma collection under the settings' home or at ``chroma_url``.

    Each text is the one embedded (``Document.content``, from the title ``evalkit index`` keeps
    in the metadata), so a pair judged from the corpus is the same pair read from the collection.
    """

    settings: Settings
    collection: str
    chroma_url: str | None = None

    def __call__(self, doc_ids: Iterable[str]) -> dict[str, str]:
        # Chroma is a heavy optional dependency: loaded only when a collection is read.
        from evalkit.retrievers.chroma_client import (
            close_client,
            get_collection,
            open_chroma_client,
        )

        wanted = sorted(set(doc_ids))
        url = self.chroma_url or self.settings.chroma_url
        client = open_chroma_client(
            path=None if url else self.settings.resolved_chroma_path, url=url
        )
        try:
            documents = fetch_documents(get_collection(client, self.collection), wanted)
        finally:
            close_client(client)
        return {doc_id: document.content for doc_id, document in documents.items()}


@dataclass(frozen=True, slots=True)
class JudgingPlan:
    """What a judging pass costs: distinct pairs asked about, those the pool holds graded
    already, those sent now (or, on a dry run, that would be), those left over the budget,
    and a rough token count of what is sent (``estimate_tokens``)."""

    assessor: str
    n_pairs: int
    n_in_pool: int
    n_to_judge: int
    n_over_budget: int
    estimated_tokens: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the fields, each count named without its ``n_``."""
        return {name.removeprefix("n_"): value for name, value in asdict(self).items()}


@dataclass(frozen=True, slots=True)
class JudgingOutcome:
    """A judging pass: its plan, the grade of every asked pair that has one (pool and new),
    what this pass judged and left unjudged (by reason), and the requests it sent."""

    plan: JudgingPlan
    grades: Mapping[Key, int]
    n_judged: int = 0
    unjudged: Mapping[str, int] = field(default_factory=dict)
    calls: int = 0
    dry_run: bool = False
    first_failure: str | None = None
    """What the endpoint said of the first pair left unjudged (its error, or its reply)."""
    ungraded: Mapping[Key, str] = field(default_factory=dict)
    """Why each pair asked about has no grade: ``OVER_BUDGET`` (not sent), or the
    ``Unjudged`` reason it came back with (empty on a dry run)."""
    flagged: Mapping[Key, tuple[str, ...]] = field(default_factory=dict)
    """The pairs asked about whose text reads as written to steer the assessor, and what
    for (``evalkit.judging.assessor.prompt_flags``): judged as data, their flags stored."""

    @property
    def flag_counts(self) -> dict[str, int]:
        """How many pairs asked about were flagged for each reason."""
        counts = Counter(flag for flags in self.flagged.values() for flag in flags)
        return dict(sorted(counts.items()))

    @property
    def n_unjudged(self) -> int:
        """Pairs this pass sent that got no grade."""
        return sum(self.unjudged.values())

    @property
    def complete(self) -> bool:
        """True when every pair asked about has a grade."""
        return len(self.grades) == self.plan.n_pairs

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            **self.plan.to_dict(),
            "dry_run": self.dry_run,
            "judged": self.n_judged,
            "unjudged": self.n_unjudged,
            "unjudged_by_reason": dict(self.unjudged),
            "calls": self.calls,
            "graded": len(self.grades),
            "complete": self.complete,
            "flagged": len(self.flagged),
            "flagged_by_reason": self.flag_counts,
        }


def _pool_writer(access: WriterAccess) -> BatchWriter[Assessment]:
    """Stores assessments as they arrive (``BatchWriter``), each batch in a short writing
    stretch."""

    def save(batch: list[Assessment]) -> None:
        with access.writer("judge") as store:
            save_assessments(store, batch)

    return BatchWriter(save, name="evalkit-judged-pool")


def judge_pairs(
    access: WriterAccess,
    pairs: Sequence[JudgePair],
    assessor: RelevanceAssessor,
    request: JudgingRequest,
    *,
    whole_queries: bool = False,
    progress: Progress | None = None,
) -> JudgingOutcome:
    """Grade ``pairs`` with ``assessor``, storing each new judgment as it arrives: pooled pairs are
    free, at most ``request.max_judgments`` others are sent in order (none on a dry run). With
    ``whole_queries`` it stops before the first query whose missing pairs do not all fit.
    """
    unique = list({pair.key: pair for pair in pairs}.values())
    with access.writer("judge") as store:
        pool = load_pool(store, assessor.name, [pair.key for pair in unique])
    grades = {key: row.grade for key, row in pool.items() if row.grade is not None}
    missing = [pair for pair in unique if pair.key not in grades]
    budget = request.max_judgments
    if budget is None:
        to_judge = missing
    elif whole_queries:
        to_judge = _whole_queries_within(missing, budget)
    else:
        to_judge = missing[:budget]
    flagged = {pair.key: flags for pair in unique if (flags := prompt_flags(pair))}
    plan = JudgingPlan(
        assessor=assessor.name,
        n_pairs=len(unique),
        n_in_pool=len(grades),
        n_to_judge=len(to_judge),
        n_over_budget=len(missing) - len(to_judge),
        estimated_tokens=sum(estimate_tokens(pair) for pair in to_judge),
    )
    if request.dry_run:
        return JudgingOutcome(plan, grades, dry_run=True, flagged=flagged)
    over_budget = dict.fromkeys((pair.key for pair in missing[len(to_judge) :]), OVER_BUDGET)
    if not to_judge:
        return JudgingOutcome(plan, grades, ungraded=over_budget, flagged=flagged)
    writer = _pool_writer(access)
    done = 0

    def stored(assessment: Assessment) -> None:
        nonlocal done
        writer.add(assessment)
        done += 1
        if progress is not None:
            progress(done, len(to_judge))

    calls_before = assessor.calls
    try:
        assessments = assessor.assess(to_judge, on_assessed=stored)
    except BaseException:
        writer.close(raise_failure=False)  # what was judged is stored; the error goes on
        raise
    writer.close()
    unjudged = Counter(str(a.unjudged) for a in assessments if a.grade is None)
    for assessment in assessments:
        if assessment.grade is not None:
            grades[assessment.pair.key] = assessment.grade
    return JudgingOutcome(
        plan,
        grades,
        n_judged=sum(1 for a in assessments if a.grade is not None),
        unjudged=dict(sorted(unjudged.items())),
        calls=assessor.calls - calls_before,
        first_failure=next((a.detail for a in assessments if a.grade is None and a.detail), None),
        ungraded={
            **over_budget,
            **{a.pair.key: str(a.unjudged) for a in assessments if a.grade is None},
        },
        flagged=flagged,
    )


def _whole_queries_within(missing: Sequence[JudgePair], budget: int) -> list[JudgePair]:
    """The first of ``missing``'s queries (runs of the same query text) whose pairs fit in
    ``budget`` together, up to the first that does not fit: skipping it for a smaller one
    would favour queries with few pairs left to judge."""
    taken = 0
    for _, run in groupby(missing, key=lambda pair: pair.query_hash):
        size = len(list(run))
        if taken + size > budget:
            break
        taken += size
    return list(missing[:taken])


def top_k(results: pd.DataFrame, k: int) -> dict[str, list[str]]:
    """Each query's first ``k`` document ids, in rank order."""
    ranked = results[results["rank"] <= k].sort_values(["query_id", "rank"])
    return {
        str(query_id): [str(doc) for doc in group["doc_id"]]
        for query_id, group in ranked.groupby("query_id", sort=True)
    }
