"""Topics of queries: a reference set fitted once, assigned to every later window, named.

``fit_topics`` clusters the reference window's query vectors (scikit-learn's k-means; k the
square root of half the queries, between 2 and 40, unless given), names each topic by its
distinctive terms (class-based TF-IDF: a topic's queries read as one document, each term
weighted by how much more often it occurs there than across all topics) and by its central
queries, and fingerprints the set with the embedding model's fingerprint, so that vectors of
another model are never assigned to it. ``TopicSet.assign`` puts a later window's queries in
the nearest reference topic (cosine), so a topic means the same across windows, or, farther
from it than all but ``OUTSIDE_SHARE`` of the topic's own reference queries, in ``OUTSIDE``:
queries of no known topic, where a new subject shows first. ``match_topics`` maps a refitted
set's topics to the old ones (Hungarian assignment on centroid cosine) and says which are new
and which are gone.
``slice_terms`` names any partition of a window's queries the same way (the queries outside
every topic, say). A set is stored and read back with ``to_dict`` / ``TopicSet.from_dict``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from evalkit.errors import ConfigError

__all__ = [
    "OUTSIDE",
    "Topic",
    "TopicMatch",
    "TopicSet",
    "emerging_subjects",
    "fit_topics",
    "match_topics",
    "slice_terms",
    "topic_slice",
]

FloatMatrix = npt.NDArray[np.float32]

OUTSIDE = -1
"""The slice of queries farther from their nearest topic than its reference queries are."""
OUTSIDE_SHARE = 0.02
"""The share of a topic's queries left outside it: its floor is the cosine below which this
share of its reference queries lie from the centroid of the others (each left out of the
centroid it is measured against: measured against a centroid it helped make, 20 % of unseen
queries of the same domain fell below the floor instead of 2 %)."""
MIN_QUERIES = 20
"""Fewer reference queries than this make no topic set (a cluster of two says nothing)."""
_TERMS = 5
_CENTRAL = 3
SAME_TOPIC_COSINE = 0.5
"""A refitted topic whose centroid is at least this close (cosine) to the old one the
assignment pairs it with is that topic. Measured with MiniLM on SciFact's claims (14 topics):
refitted on 400 other claims, 12 of 14 pairs were at 0.55 to 0.87 (two at 0.31 and 0.45, a
partition that moved); the topics of Vaswani's physics queries mixed in were at -0.1 to any
old one."""


@dataclass(frozen=True, slots=True)
class Topic:
    """One topic: its number in the set, its distinctive terms and central queries, and its
    share of the reference window."""

    number: int
    terms: tuple[str, ...]
    central_queries: tuple[str, ...]
    reference_share: float
    floor: float
    """The cosine to the centroid below which a query is outside the topic."""
    members: int = 0
    """Reference queries in the topic."""
    spread: float = 1.0
    """The length of the mean of its members' unit vectors (1: all alike)."""

    @property
    def label(self) -> str:
        """``3: insulin, glucose, diabetes``: its number and first three terms."""
        return f"{self.number}: {', '.join(self.terms[:3]) or '-'}"


@dataclass(frozen=True, eq=False)
class TopicSet:
    """Reference topics: unit centroids (a row per topic), the topics, the embedding model they
    were fitted with (its canary hash) and a version that changes with any of them."""

    centroids: FloatMatrix
    topics: tuple[Topic, ...]
    model_fingerprint: str
    seed: int

    @property
    def version(self) -> str:
        """A hash of the centroids, the terms and the model: equal sets, equal versions."""
        digest = hashlib.sha256(self.model_fingerprint.encode())
        digest.update(np.ascontiguousarray(self.centroids, dtype=np.float32).tobytes())
        for topic in self.topics:
            digest.update("\x1f".join(topic.terms).encode())
        return digest.hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, read back by ``from_dict`` into an equal set (same version)."""
        return {
            "version": self.version,
            "model_fingerprint": self.model_fingerprint,
            "seed": self.seed,
            "centroids": [[float(x) for x in row] for row in self.centroids],
            "topics": [
                {
                    "number": t.number,
                    "terms": list(t.terms),
                    "central_queries": list(t.central_queries),
                    "reference_share": t.reference_share,
                    "floor": t.floor,
                    "members": t.members,
                    "spread": t.spread,
                }
                for t in self.topics
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TopicSet:
        """The set ``to_dict`` wrote."""
        topics = tuple(
            Topic(
                number=int(t["number"]),
                terms=tuple(t["terms"]),
                central_queries=tuple(t["central_queries"]),
                reference_share=float(t["reference_share"]),
                floor=float(t["floor"]),
                members=int(t["members"]),
                spread=float(t["spread"]),
            )
            for t in data["topics"]
        )
        centroids = np.asarray(data["centroids"], dtype=np.float32).reshape(len(topics), -1)
        return cls(centroids, topics, str(data["model_fingerprint"]), int(data["seed"]))

    def topic(self, number: int) -> Topic | None:
        """The topic numbered ``number``; None for ``OUTSIDE``."""
        return self.topics[number] if 0 <= number < len(self.topics) else None

    def assign(
        self, vectors: FloatMatrix, model_fingerprint: str, *, reference: bool = False
    ) -> npt.NDArray[np.int64]:
        """The topic number of each row of ``vectors``: the nearest centroid by cosine, or
        ``OUTSIDE`` below that topic's floor; ConfigError when they were embedded by another
        model than the set's. ``reference``: the rows are the reference queries themselves,
        each measured against its topic's centroid without it (as the floors were), so that
        the reference window's share outside is the one a later window of the same traffic
        has, not the near-zero share of queries measured against a centroid they made."""
        if model_fingerprint != self.model_fingerprint:
            raise ConfigError(
                f"the topics (version {self.version}) were fitted on vectors of model "
                f"{self.model_fingerprint}, these queries were embedded by "
                f"{model_fingerprint}: fit the topics again with this model"
            )
        if len(vectors) == 0:
            return np.zeros(0, dtype=np.int64)
        unit = _unit(vectors)
        nearest = np.argmax(unit @ self.centroids.T, axis=1)
        own = self.centroids[nearest]
        if reference:
            sizes = np.asarray([t.members * t.spread for t in self.topics], dtype=np.float32)
            without = own * sizes[nearest, np.newaxis] - unit
            single = np.asarray([t.members <= 1 for t in self.topics])[nearest]
            own = np.where(single[:, np.newaxis], own, _unit(without))
        floors = np.asarray([topic.floor for topic in self.topics], dtype=np.float32)
        inside = np.sum(unit * own, axis=1) >= floors[nearest]
        return np.where(inside, nearest, OUTSIDE).astype(np.int64)


def fit_topics(
    vectors: FloatMatrix,
    texts: Sequence[str],
    *,
    model_fingerprint: str,
    n_topics: int | None = None,
    seed: int = 0,
) -> TopicSet:
    """Topics of the reference queries ``texts`` (embedded as ``vectors``): ``n_topics`` of
    them, by default the square root of half the queries, between 2 and 40 (a silhouette
    choice settles on 2 or 3 broad topics for text embeddings, too coarse to tell where
    quality fails)."""
    if len(vectors) != len(texts):
        raise ConfigError(f"{len(vectors)} vectors for {len(texts)} queries")
    if len(texts) < MIN_QUERIES:
        raise ConfigError(
            f"{len(texts)} reference queries: topics need at least {MIN_QUERIES}; choose a "
            "longer reference window"
        )
    unit = _unit(vectors)
    if n_topics is not None and not 2 <= n_topics <= len(texts) // 2:
        raise ConfigError(f"n_topics must be between 2 and {len(texts) // 2}, got {n_topics}")
    count = n_topics if n_topics is not None else max(2, min(40, round(math.sqrt(len(texts) / 2))))
    model = _kmeans(count, seed).fit(unit)
    labels = np.asarray(model.labels_, dtype=np.int64)
    # Numbered by size, largest first, so that topic 0 is the reference window's biggest.
    order = np.argsort(-np.bincount(labels, minlength=count), kind="stable")
    renumber = np.empty_like(order)
    renumber[order] = np.arange(len(order))
    labels = renumber[labels]
    means = np.vstack([unit[labels == number].mean(axis=0) for number in range(count)])
    centroids = _unit(means)
    terms = _distinctive_terms([texts[i] for i in range(len(texts))], labels, len(centroids))
    topics = tuple(
        Topic(
            number=number,
            terms=terms[number],
            central_queries=_central(unit, texts, labels, centroids, number),
            reference_share=float(np.mean(labels == number)),
            floor=_floor(unit[labels == number]),
            members=int(np.sum(labels == number)),
            spread=float(np.linalg.norm(means[number])),
        )
        for number in range(len(centroids))
    )
    return TopicSet(centroids, topics, model_fingerprint, seed)


def topic_slice(number: int) -> str:
    """The slice name of topic ``number``: ``topic:3``, or ``topic:outside`` for ``OUTSIDE``."""
    return "topic:outside" if number == OUTSIDE else f"topic:{number}"


def slice_terms(
    vectors: FloatMatrix, texts: Sequence[str], labels: Sequence[int]
) -> dict[int, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Each label's distinctive terms among the labels of ``texts`` (class-based TF-IDF, as
    topics are named) and its central queries (the nearest its members' mean), by label."""
    numbers = sorted(set(labels))
    index = {number: i for i, number in enumerate(numbers)}
    dense = np.asarray([index[label] for label in labels], dtype=np.int64)
    unit = _unit(vectors)
    centroids = _unit(np.vstack([unit[dense == i].mean(axis=0) for i in range(len(numbers))]))
    terms = _distinctive_terms(texts, dense, len(numbers))
    return {
        number: (terms[i], _central(unit, texts, dense, centroids, i))
        for i, number in enumerate(numbers)
    }


def emerging_subjects(vectors: FloatMatrix, texts: Sequence[str]) -> dict[str, Any]:
    """What the queries outside every topic (``MIN_QUERIES`` or more) are about: clustered
    among themselves, each subject by its terms, central queries and share, largest first
    (``emerging``); ``window_terms`` and ``window_central_queries`` take the first of each.
    Named among themselves, not among the window's topics: there, their distinctive terms
    are the words the new subjects share ("use", "high"), not what they are about."""
    found = fit_topics(vectors, texts, model_fingerprint="outside")
    subjects: list[dict[str, Any]] = [
        {
            "terms": list(topic.terms),
            "central_queries": list(topic.central_queries),
            "share": topic.reference_share,
        }
        for topic in found.topics
    ]
    return {
        "window_terms": [s["terms"][0] for s in subjects if s["terms"]],
        "window_central_queries": [
            s["central_queries"][0] for s in subjects if s["central_queries"]
        ],
        "emerging": subjects,
    }


def _unit(vectors: npt.ArrayLike) -> FloatMatrix:
    rows = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.asarray(rows / np.where(norms == 0, 1.0, norms), dtype=np.float32)


def _floor(members: FloatMatrix) -> float:
    """The ``OUTSIDE_SHARE`` quantile of each member's cosine to the centroid of the others."""
    if len(members) < 2:
        return -1.0
    others = members.sum(axis=0) - members
    cosines = np.sum(members * _unit(others), axis=1)
    return float(np.quantile(cosines, OUTSIDE_SHARE))


def _kmeans(count: int, seed: int) -> Any:
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=count, n_init=4, random_state=seed)


def _distinctive_terms(
    texts: Sequence[str], labels: npt.NDArray[np.int64], count: int
) -> list[tuple[str, ...]]:
    """Class-based TF-IDF: each topic's queries as one document; a term's weight in a topic
    is its frequency there times log(1 + average words per topic / its frequency overall)."""
    from sklearn.feature_extraction.text import CountVectorizer

    joined = [" ".join(t for t, label in zip(texts, labels, strict=True) if label == n)
              for n in range(count)]  # fmt: skip
    vectorizer = CountVectorizer(stop_words="english", token_pattern=r"(?u)\b[^\W\d_]{3,}\b")
    try:
        counts = vectorizer.fit_transform(joined).toarray().astype(np.float64)
    except ValueError:  # no term at all (every query a stop word or a number)
        return [() for _ in range(count)]
    words = vectorizer.get_feature_names_out()
    per_topic = counts.sum(axis=1, keepdims=True)
    frequency = counts / np.where(per_topic == 0, 1.0, per_topic)
    weight = frequency * np.log1p(per_topic.mean() / np.maximum(counts.sum(axis=0), 1.0))
    return [
        tuple(
            str(words[i])
            for i in np.argsort(-weight[n], kind="stable")[:_TERMS]
            if weight[n, i] > 0
        )
        for n in range(count)
    ]


def _central(
    unit: FloatMatrix,
    texts: Sequence[str],
    labels: npt.NDArray[np.int64],
    centroids: FloatMatrix,
    number: int,
) -> tuple[str, ...]:
    members = np.flatnonzero(labels == number)
    closeness = unit[members] @ centroids[number]
    chosen: list[str] = []
    for row in members[np.argsort(-closeness, kind="stable")]:
        if texts[row] not in chosen:
            chosen.append(texts[row])
        if len(chosen) == _CENTRAL:
            break
    return tuple(chosen)


@dataclass(frozen=True, slots=True)
class TopicMatch:
    """A refitted set against the old one: new topic number to old (those that are the same
    topic), the new topics that are new, the old ones that are gone."""

    same: Mapping[int, int]
    new: tuple[int, ...]
    gone: tuple[int, ...]


def match_topics(old: TopicSet, new: TopicSet) -> TopicMatch:
    """Which of ``new``'s topics are ``old``'s: a one-to-one assignment maximising the
    centroids' cosine (Hungarian), kept where that cosine is at least
    ``SAME_TOPIC_COSINE``."""
    if old.model_fingerprint != new.model_fingerprint:
        return TopicMatch({}, tuple(range(len(new.topics))), tuple(range(len(old.topics))))
    similarity = new.centroids @ old.centroids.T
    rows, columns = linear_sum_assignment(-similarity)
    same = {
        int(row): int(column)
        for row, column in zip(rows, columns, strict=True)
        if similarity[row, column] >= SAME_TOPIC_COSINE
    }
    return TopicMatch(
        same=same,
        new=tuple(n for n in range(len(new.topics)) if n not in same),
        gone=tuple(o for o in range(len(old.topics)) if o not in set(same.values())),
    )
