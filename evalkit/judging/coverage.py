"""Which passages questions are written from, so that they cover a corpus evenly.

Seeded k-means over the documents' embeddings; ``plan_tasks`` deals questions to clusters in
turn, largest first. docs/goldsets.md, "Generating a draft goldset".
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from evalkit.errors import ConfigError
from evalkit.extras import require
from evalkit.judging.generate import GenerationTask, QuestionKind
from evalkit.records import Document

__all__ = [
    "DEFAULT_MIX",
    "CoveragePlan",
    "allocate_kinds",
    "cluster_count",
    "cluster_documents",
    "format_mix",
    "parse_mix",
    "plan_tasks",
    "source_of",
]

IntArray = npt.NDArray[np.int64]

DEFAULT_MIX: Mapping[QuestionKind, float] = {
    QuestionKind.factoid: 0.5,
    QuestionKind.paraphrase: 0.3,
    QuestionKind.multi: 0.2,
}
"""Half factoid, three tenths paraphrase, a fifth multi-passage."""


def parse_mix(text: str) -> dict[QuestionKind, float]:
    """``factoid=0.5,paraphrase=0.3,multi=0.2`` as shares of each kind; the weights need
    not add up to 1 (they are normalised), kinds left out get none."""
    weights: dict[QuestionKind, float] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        try:
            kind = QuestionKind(name.strip())
        except ValueError:
            known = ", ".join(kind.value for kind in QuestionKind)
            raise ConfigError(f"`mix`: unknown kind {name.strip()!r}; use {known}") from None
        try:
            weight = float(value) if sep else math.nan
        except ValueError:
            weight = math.nan
        if not math.isfinite(weight) or weight < 0:
            raise ConfigError(f"`mix`: give {kind}=WEIGHT with a number >= 0, got {item!r}")
        if kind in weights:
            raise ConfigError(f"`mix`: {kind} is given twice")
        weights[kind] = weight
    total = sum(weights.values())
    if total <= 0:
        raise ConfigError("`mix`: give at least one kind a weight above 0")
    return {kind: weight / total for kind, weight in weights.items() if weight > 0}


def format_mix(mix: Mapping[QuestionKind, float]) -> str:
    """The mix as ``parse_mix`` reads it."""
    return ",".join(f"{kind}={share:g}" for kind, share in mix.items())


def allocate_kinds(mix: Mapping[QuestionKind, float], n: int) -> dict[QuestionKind, int]:
    """How many questions of each kind make ``n`` in the shares of ``mix``: largest
    remainders, ties to the kind listed first, so the counts add up to ``n`` exactly."""
    kinds = [kind for kind, share in mix.items() if share > 0]
    total = sum(mix[kind] for kind in kinds)
    if n < 0 or not kinds or total <= 0:
        raise ConfigError("give n >= 0 and a mix with at least one share above 0")
    exact = [n * mix[kind] / total for kind in kinds]
    counts = [math.floor(value) for value in exact]
    order = sorted(range(len(kinds)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return dict(zip(kinds, counts, strict=True))


def cluster_count(n_documents: int, n_questions: int) -> int:
    """How many clusters ``n_questions`` are spread over: half as many as questions
    (about two a cluster), at most a third as many as documents, at least one."""
    return max(1, min(math.ceil(n_questions / 2), n_documents // 3))


def cluster_documents(vectors: npt.ArrayLike, k: int, *, seed: int) -> IntArray:
    """The k-means cluster (0 to k-1) of each row of ``vectors`` (scikit-learn's KMeans,
    ten seeded starts)."""
    matrix = np.asarray(vectors, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise ConfigError("give at least one document vector to cluster")
    k = max(1, min(k, matrix.shape[0]))
    if k == 1:
        return np.zeros(matrix.shape[0], dtype=np.int64)
    cluster = require("sklearn.cluster", "clustering the corpus for goldset generation")
    model = cluster.KMeans(n_clusters=k, n_init=10, random_state=seed).fit(matrix)
    return np.asarray(model.labels_, dtype=np.int64)


def source_of(document: Document) -> str:
    """The source a passage belongs to: its ``source_id``, else the document itself."""
    return document.source_id if document.source_id is not None else document.id


@dataclass(frozen=True, slots=True)
class CoveragePlan:
    """The tasks to write, the number of clusters, and the questions that found no
    passage (by kind) under the per-source limit."""

    tasks: tuple[GenerationTask, ...]
    n_clusters: int
    unplaced: Mapping[QuestionKind, int]


def plan_tasks(
    documents: Sequence[Document],
    vectors: npt.ArrayLike,
    labels: npt.ArrayLike,
    counts: Mapping[QuestionKind, int],
    *,
    max_per_source: int,
    seed: int,
) -> CoveragePlan:
    """Deal ``counts`` questions over the clusters ``labels`` gives ``documents`` (see the
    module's docstring); ``vectors`` are the documents' unit embeddings, for the second
    passage of a multi-passage question."""
    if max_per_source < 1:
        raise ConfigError(f"max_per_source must be at least 1, got {max_per_source}")
    matrix = np.asarray(vectors, dtype=np.float64)
    cluster_of = np.asarray(labels, dtype=np.int64)
    if len(documents) != cluster_of.shape[0] or len(documents) != matrix.shape[0]:
        raise ConfigError("give one vector and one cluster label per document")
    rng = np.random.default_rng(seed)
    n_clusters = int(cluster_of.max()) + 1 if len(documents) else 0
    members: dict[int, list[int]] = {c: [] for c in range(n_clusters)}
    for index in rng.permutation(len(documents)):
        members[int(cluster_of[index])].append(int(index))
    sources = [source_of(document) for document in documents]
    source_uses: Counter[str] = Counter()
    document_uses: Counter[int] = Counter()
    queue = [kind for kind, count in counts.items() for _ in range(count)]
    queue = [queue[int(i)] for i in rng.permutation(len(queue))]

    def open_members(cluster: int) -> list[int]:
        eligible = [i for i in members[cluster] if source_uses[sources[i]] < max_per_source]
        return sorted(eligible, key=lambda i: document_uses[i])  # stable: seeded order

    def pick(cluster: int, kind: QuestionKind) -> list[int] | None:
        eligible = open_members(cluster)
        if kind.n_passages == 1:
            return eligible[:1] or None
        for first in eligible:
            partners = [j for j in eligible if sources[j] != sources[first]]
            if partners:
                fewest = min(document_uses[j] for j in partners)
                partners = [j for j in partners if document_uses[j] == fewest]
                closest = max(partners, key=lambda j: float(matrix[first] @ matrix[j]))
                return [first, closest]
        return None

    tasks: list[GenerationTask] = []
    rotation = sorted(members, key=lambda c: (-len(members[c]), c))
    while queue and rotation:
        staying = []
        for cluster in rotation:
            if not queue:
                break
            for position, kind in enumerate(queue):
                chosen = pick(cluster, kind)
                if chosen is None:
                    continue
                for index in chosen:
                    source_uses[sources[index]] += 1
                    document_uses[index] += 1
                tasks.append(
                    GenerationTask(
                        f"t{len(tasks):05d}",
                        kind,
                        tuple(documents[index] for index in chosen),
                        cluster,
                    )
                )
                del queue[position]
                staying.append(cluster)
                break
        # A cluster that could take no question of any kind left leaves the rotation.
        rotation = staying
    return CoveragePlan(tuple(tasks), n_clusters, dict(Counter(queue)))
