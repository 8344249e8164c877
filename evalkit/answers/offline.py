"""Offline faithfulness: how much of an answer its contexts support, with no LLM at all.

Claims are compared with the contexts' sentences (models fitted by
``benchmarks/faithfulness.py``); ``legacy_units=True`` keeps the ``offline-v1`` signals for
the benchmark; an answer with no claim or no context is unmeasured. docs/answers.md, "The
offline method".
"""

from __future__ import annotations

import abc
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, partial
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

from evalkit.answers.cache import EmbeddingCache, MemoryEmbeddingCache, context_cache_key
from evalkit.answers.records import (
    AnswerRecord,
    Method,
    MetricScore,
    Unmeasured,
    method_version,
)
from evalkit.answers.sentences import (
    SPLIT_VERSION,
    STOPWORDS,
    WORD_TOKEN,
    split_claims,
    split_sentences,
)
from evalkit.embedding import DEFAULT_MODEL_NAME, Embedder, load_embedder

__all__ = [
    "CALIBRATION_FILE",
    "CALIBRATION_V3_FILE",
    "DEFAULT_ANSWER_CALIBRATION",
    "DEFAULT_CALIBRATION",
    "DEFAULT_SUPPORT_MODEL",
    "DEFAULT_THRESHOLD",
    "IDENTITY_CALIBRATION",
    "OFFLINE_VERSION",
    "OFFLINE_VERSIONS",
    "AnswerCalibration",
    "Calibration",
    "ClaimFaithfulness",
    "ClaimSupport",
    "OfflineFaithfulness",
    "Progress",
    "SupportModel",
    "best_similarity",
    "claim_scores",
    "claim_token_features",
    "context_units",
    "fitted_parameters",
    "fitted_parameters_v3",
    "method_version",
    "sentence_units",
]

OFFLINE_VERSION = "offline-v3"
"""The default version of the offline method."""
OFFLINE_VERSIONS = ("offline-v2", "offline-v3")
"""The versions this code computes (``offline-v1`` is only reproduced by the benchmark)."""
DEFAULT_THRESHOLD = 0.5
STEM_LENGTH = 6
CALIBRATION_FILE = "offline_calibration.json"
"""Fitted support model and calibration map, beside this module (with their provenance)."""
CALIBRATION_V3_FILE = "offline_calibration_v3.json"
"""offline-v3's answer calibration on human ratings, beside this module (with provenance)."""

Progress = Callable[[int, int], None]
"""Called with (answers done, answers in all) as scoring advances."""

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SupportModel:
    """Logistic model: P(claim supported) from its similarity, coverage and salient signals."""

    intercept: float
    similarity: float
    coverage: float
    salient: float

    def probability(
        self, similarity: FloatArray, coverage: FloatArray, salient: FloatArray
    ) -> FloatArray:
        """Probability that each claim is supported (arrays of equal length)."""
        logit = (
            self.intercept
            + self.similarity * similarity
            + self.coverage * coverage
            + self.salient * salient
        )
        return np.asarray(1.0 / (1.0 + np.exp(-logit)), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Calibration:
    """A monotone map from support score to the probability that a claim is supported.

    Piecewise linear through ``(scores[i], probabilities[i])`` (the thresholds of an
    isotonic regression), constant beyond the first and last point.
    """

    scores: tuple[float, ...]
    probabilities: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.scores) != len(self.probabilities) or not self.scores:
            raise ValueError("a calibration needs as many probabilities as scores, at least one")
        if any(b < a for a, b in itertools.pairwise(self.scores)) or any(
            b < a for a, b in itertools.pairwise(self.probabilities)
        ):
            raise ValueError("calibration points must be non-decreasing")

    def apply(self, score: FloatArray) -> FloatArray:
        """The calibrated probability of each support score."""
        return np.asarray(
            np.interp(score, np.asarray(self.scores), np.asarray(self.probabilities)),
            dtype=np.float64,
        )


IDENTITY_CALIBRATION = Calibration(scores=(0.0, 1.0), probabilities=(0.0, 1.0))
"""No calibration: the support score is taken as the probability."""


@dataclass(frozen=True, slots=True)
class AnswerCalibration:
    """offline-v3's map from an answer's expected share of supported claims to the probability a
    person rates it fully faithful: ``sigmoid(intercept + slope * logit(share))``, the share
    clipped to ``[floor, 1 - floor]``; increasing (``slope > 0``), so it never reorders scores.
    """

    intercept: float
    slope: float
    floor: float = 1e-3

    def __post_init__(self) -> None:
        if self.slope <= 0:
            raise ValueError(f"an answer calibration needs a positive slope, got {self.slope}")
        if not 0.0 < self.floor < 0.5:
            raise ValueError(f"floor must lie in (0, 0.5), got {self.floor}")

    def apply(self, share: FloatArray) -> FloatArray:
        """The calibrated value of each share (an array of shares in [0, 1])."""
        clipped = np.clip(np.asarray(share, dtype=np.float64), self.floor, 1.0 - self.floor)
        logit = self.intercept + self.slope * np.log(clipped / (1.0 - clipped))
        return np.asarray(1.0 / (1.0 + np.exp(-logit)), dtype=np.float64)


def _read_fit(name: str) -> Mapping[str, Any]:
    text = resources.files("evalkit.answers").joinpath(name).read_text("utf-8")
    parameters: Mapping[str, Any] = json.loads(text)
    return parameters


@cache
def fitted_parameters() -> Mapping[str, Any]:
    """The committed fit (``CALIBRATION_FILE``): support model, calibration, provenance."""
    return _read_fit(CALIBRATION_FILE)


@cache
def fitted_parameters_v3() -> Mapping[str, Any]:
    """offline-v3's committed fit (``CALIBRATION_V3_FILE``): the answer calibration, its
    provenance and its cross-validated figures on human ratings."""
    return _read_fit(CALIBRATION_V3_FILE)


def _default_support_model() -> SupportModel:
    return SupportModel(**fitted_parameters()["support_model"])


def _default_calibration() -> Calibration:
    points = fitted_parameters()["calibration"]
    return Calibration(
        scores=tuple(float(x) for x in points["scores"]),
        probabilities=tuple(float(y) for y in points["probabilities"]),
    )


DEFAULT_SUPPORT_MODEL = _default_support_model()
"""Weights fitted by ``benchmarks/faithfulness.py`` on the fit part of CLAPNQ dev."""
DEFAULT_CALIBRATION = _default_calibration()
"""Isotonic map fitted by ``benchmarks/faithfulness.py`` on the calibration part."""
DEFAULT_ANSWER_CALIBRATION = AnswerCalibration(**fitted_parameters_v3()["answer_calibration"])
"""offline-v3's map, fitted by ``benchmarks/faithfulness_human.py`` on MTRAG human ratings."""


@dataclass(frozen=True, slots=True)
class ClaimSupport:
    """How well each claim of one answer is supported by its contexts."""

    claims: tuple[str, ...]
    similarity: FloatArray
    coverage: FloatArray
    salient: FloatArray
    probability: FloatArray
    weights: FloatArray
    threshold: float
    answer_calibration: AnswerCalibration | None = None

    @property
    def supported(self) -> npt.NDArray[np.bool_]:
        """Which claims count as supported (probability >= threshold)."""
        return np.asarray(self.probability >= self.threshold)

    @property
    def share(self) -> float:
        """Expected share of supported claims (claims weighted by their content words)."""
        return float(np.average(self.probability, weights=self.weights))

    @property
    def score(self) -> float:
        """The answer's faithfulness: the share, through the answer calibration if any."""
        if self.answer_calibration is None:
            return self.share
        return float(self.answer_calibration.apply(np.asarray([self.share]))[0])


def context_units(contexts: Sequence[str]) -> list[str]:
    """The units a claim is compared with: every context sentence and adjacent pair."""
    units: list[str] = []
    for context in contexts:
        sentences = _context_sentences(context)
        units.extend(sentences)
        units.extend(f"{first} {second}" for first, second in itertools.pairwise(sentences))
    return units


def sentence_units(sentence_vectors: FloatArray) -> FloatArray:
    """Unit vectors of a context's units: its sentences, then each adjacent pair (the
    normalised sum of the two sentence vectors)."""
    if sentence_vectors.shape[0] < 2:
        return sentence_vectors
    pairs = sentence_vectors[:-1] + sentence_vectors[1:]
    norms = np.linalg.norm(pairs, axis=1, keepdims=True)
    pairs = pairs / np.where(norms > 0, norms, 1.0)
    return np.vstack([sentence_vectors, pairs])


def _context_sentences(context: str) -> list[str]:
    return split_sentences(context) or ([context.strip()] if context.strip() else [])


def best_similarity(claim_vectors: FloatArray, unit_vectors: FloatArray) -> FloatArray:
    """For each claim (row of unit vectors), its best cosine similarity with any unit."""
    if claim_vectors.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    if unit_vectors.shape[0] == 0:
        return np.zeros(claim_vectors.shape[0], dtype=np.float64)
    similarity = claim_vectors @ unit_vectors.T
    return np.asarray(np.clip(similarity.max(axis=1), -1.0, 1.0), dtype=np.float64)


def _stem(token: str) -> str:
    return token if any(ch.isdigit() for ch in token) else token[:STEM_LENGTH]


def claim_token_features(
    claims: Sequence[str], contexts: Sequence[str]
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(coverage, salient, weights) of each claim against the contexts: shares of its stemmed
    content words and of its numbers / capitalised words present (1 when none), and its
    number of content words (at least 1).
    """
    context_words = {match.group().lower() for c in contexts for match in WORD_TOKEN.finditer(c)}
    context_stems = {_stem(word) for word in context_words if word not in STOPWORDS}
    vocabulary = {word: index for index, word in enumerate(sorted(context_words | context_stems))}
    present = np.ones(len(vocabulary) + 1, dtype=bool)
    present[-1] = False  # the id of every word the contexts lack
    missing_id = len(vocabulary)

    content_ids: list[int] = []
    content_owner: list[int] = []
    salient_ids: list[int] = []
    salient_owner: list[int] = []
    for owner, claim in enumerate(claims):
        for position, match in enumerate(WORD_TOKEN.finditer(claim)):
            word = match.group()
            lower = word.lower()
            if lower not in STOPWORDS:
                content_ids.append(vocabulary.get(_stem(lower), missing_id))
                content_owner.append(owner)
            if any(ch.isdigit() for ch in word) or (position > 0 and word[0].isupper()):
                salient_ids.append(vocabulary.get(lower, missing_id))
                salient_owner.append(owner)
    n_claims = len(claims)
    coverage, weights = _share_present(present, content_ids, content_owner, n_claims)
    salient, _ = _share_present(present, salient_ids, salient_owner, n_claims)
    return coverage, salient, np.maximum(weights, 1.0)


def _share_present(
    present: npt.NDArray[np.bool_], ids: list[int], owners: list[int], n_claims: int
) -> tuple[FloatArray, FloatArray]:
    id_array = np.asarray(ids, dtype=np.int64)
    owner_array = np.asarray(owners, dtype=np.int64)
    totals = np.bincount(owner_array, minlength=n_claims).astype(np.float64)
    found = np.bincount(
        owner_array, weights=present[id_array].astype(np.float64), minlength=n_claims
    )
    share = np.divide(found, totals, out=np.ones(n_claims, dtype=np.float64), where=totals > 0)
    return share, totals


class ClaimFaithfulness(abc.ABC):
    """Faithfulness from claim-level support: a method analyses each record's claims against
    its contexts, and every method turns that analysis into scores the same way."""

    metric = "faithfulness"
    method: Method

    @property
    @abc.abstractmethod
    def judge_model(self) -> str:
        """What judges, stored as the judge model of the scores."""

    @property
    @abc.abstractmethod
    def version(self) -> str:
        """The method's version and threshold, stored as the prompt version of its scores."""

    @property
    @abc.abstractmethod
    def _records_per_batch(self) -> int:
        """How many records ``analyse`` hands ``_analyse_batch`` at a time."""

    @abc.abstractmethod
    def _analyse_batch(
        self, records: Sequence[AnswerRecord], cache: EmbeddingCache | None
    ) -> list[ClaimSupport | Unmeasured]:
        """Claim-level support of each of ``records``, or why it cannot be measured."""

    def analyse(
        self,
        records: Sequence[AnswerRecord],
        *,
        cache: EmbeddingCache | None = None,
        progress: Progress | None = None,
    ) -> list[ClaimSupport | Unmeasured]:
        """Claim-level support of every record, or why it cannot be measured, a batch of
        records at a time; ``progress`` is called after each batch. ``cache`` holds context
        vectors, for a method that embeds contexts (see its ``_analyse_batch``)."""
        results: list[ClaimSupport | Unmeasured] = []
        size = self._records_per_batch
        for start in range(0, len(records), size):
            results.extend(self._analyse_batch(records[start : start + size], cache))
            if progress is not None:
                progress(len(results), len(records))
        return results

    @staticmethod
    def _plan(record: AnswerRecord) -> tuple[list[str], list[str]] | Unmeasured:
        """(claims, non-empty contexts) of a record, or why it cannot be measured: the same
        for every method, so that they measure the same records."""
        if not record.answer.strip():
            return Unmeasured.empty_answer
        contexts = [context for context in record.contexts if context.strip()]
        if not contexts:
            return Unmeasured.empty_contexts
        claims = split_claims(record.answer)
        return (claims, contexts) if claims else Unmeasured.no_claims

    def score(
        self,
        records: Sequence[AnswerRecord],
        *,
        cache: EmbeddingCache | None = None,
        progress: Progress | None = None,
    ) -> list[MetricScore]:
        """One faithfulness score per record (unmeasured ones with their reason)."""
        results = self.analyse(records, cache=cache, progress=progress)
        return claim_scores(
            records,
            results,
            metric=self.metric,
            method=str(self.method),
            judge_model=self.judge_model,
            version=self.version,
        )


class OfflineFaithfulness(ClaimFaithfulness):
    """Faithfulness without an LLM (see the module doc): build once, score many batches. The
    embedder loads on first use; ``cache`` keeps context vectors; ``version`` is ``offline-v3``
    or ``offline-v2``; ``legacy_units`` is the ``offline-v1`` way (benchmarks only).
    """

    method = Method.offline_embedding

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        model: SupportModel = DEFAULT_SUPPORT_MODEL,
        calibration: Calibration = DEFAULT_CALIBRATION,
        threshold: float = DEFAULT_THRESHOLD,
        batch_records: int = 256,
        cache: EmbeddingCache | None = None,
        legacy_units: bool = False,
        version: str = OFFLINE_VERSION,
        answer_calibration: AnswerCalibration = DEFAULT_ANSWER_CALIBRATION,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be a probability in (0, 1), got {threshold}")
        if version not in OFFLINE_VERSIONS:
            raise ValueError(
                f"unknown offline method version {version!r}; one of {', '.join(OFFLINE_VERSIONS)}"
            )
        self.offline_version = version
        self.answer_calibration: AnswerCalibration | None = (
            answer_calibration if version == "offline-v3" else None
        )
        self._embedder = embedder
        self.model = model
        self.calibration = calibration
        self.threshold = threshold
        self.batch_records = batch_records
        self.cache: EmbeddingCache = cache if cache is not None else MemoryEmbeddingCache()
        self.legacy_units = legacy_units
        self._model_key: str | None = None

    @property
    def embedder(self) -> Embedder:
        """The embedding model (loaded on first use)."""
        if self._embedder is None:
            self._embedder = load_embedder()
        return self._embedder

    @property
    def judge_model(self) -> str:
        """What judges: the embedding model's name (known without loading the default)."""
        if self._embedder is None:
            return DEFAULT_MODEL_NAME
        return self._embedder.name

    @property
    def version(self) -> str:
        """The method's version and threshold, stored as the prompt version of its scores."""
        return f"{self.offline_version}/threshold={self.threshold:g}"

    @property
    def _records_per_batch(self) -> int:
        return self.batch_records

    def _context_vectors(
        self, contexts: Sequence[str], cache: EmbeddingCache
    ) -> dict[str, FloatArray]:
        """Unit vectors (sentences and pairs) of each distinct context, embedding only the
        contexts the cache lacks, in one call."""
        if self._model_key is None:
            self._model_key = f"{self.embedder.name}:{self.embedder.fingerprint.canary_hash}"
        keys = {
            context: context_cache_key(
                model=self._model_key, splitter=SPLIT_VERSION, context=context
            )
            for context in dict.fromkeys(contexts)
        }
        cached = cache.get_many(list(keys.values()))
        missing = [context for context, key in keys.items() if key not in cached]
        sentences = {context: _context_sentences(context) for context in missing}
        texts = list(dict.fromkeys(s for context in missing for s in sentences[context]))
        row_of = {text: row for row, text in enumerate(texts)}
        vectors = self.embedder.embed(texts)
        fresh = {
            keys[context]: np.ascontiguousarray(vectors[[row_of[s] for s in sentences[context]]])
            for context in missing
        }
        cache.put_many(fresh.items())
        found = {**cached, **fresh}
        return {
            context: sentence_units(found[key].astype(np.float64)) for context, key in keys.items()
        }

    def _analyse_batch(
        self, records: Sequence[AnswerRecord], cache: EmbeddingCache | None
    ) -> list[ClaimSupport | Unmeasured]:
        """Claim-level support of each of ``records``; context vectors are looked up in (and
        added to) ``cache`` if given, else this object's cache."""
        cache = cache or self.cache
        plans = [self._plan(record) for record in records]
        measured = [plan for plan in plans if not isinstance(plan, Unmeasured)]
        claim_texts = list(dict.fromkeys(claim for claims, _ in measured for claim in claims))
        if self.legacy_units:
            unit_texts = {
                context: context_units([context])
                for _, contexts in measured
                for context in contexts
            }
            texts = list(
                dict.fromkeys(claim_texts + [u for units in unit_texts.values() for u in units])
            )
        else:
            texts = claim_texts
        row_of = {text: row for row, text in enumerate(texts)}
        vectors = self.embedder.embed(texts).astype(np.float64) if texts else np.zeros((0, 0))
        if self.legacy_units:
            units_of = {
                context: vectors[[row_of[u] for u in units]]
                for context, units in unit_texts.items()
            }
        else:
            units_of = self._context_vectors(
                [context for _, contexts in measured for context in contexts], cache
            )
        results: list[ClaimSupport | Unmeasured] = []
        for plan in plans:
            if isinstance(plan, Unmeasured):
                results.append(plan)
                continue
            claims, contexts = plan
            similarity = best_similarity(
                vectors[[row_of[c] for c in claims]],
                np.vstack([units_of[context] for context in contexts]),
            )
            coverage, salient, weights = claim_token_features(claims, contexts)
            support = self.model.probability(similarity, coverage, salient)
            results.append(
                ClaimSupport(
                    claims=tuple(claims),
                    similarity=similarity,
                    coverage=coverage,
                    salient=salient,
                    probability=self.calibration.apply(support),
                    weights=weights,
                    threshold=self.threshold,
                    answer_calibration=self.answer_calibration,
                )
            )
        return results


def claim_scores(
    records: Sequence[AnswerRecord],
    results: Sequence[ClaimSupport | Unmeasured],
    *,
    metric: str,
    method: str,
    judge_model: str,
    version: str,
) -> list[MetricScore]:
    """One ``MetricScore`` per record from its claim-level analysis (or why it is unmeasured)."""
    scores = []
    for record, result in zip(records, results, strict=True):
        score = partial(
            MetricScore,
            item_id=record.id,
            metric=metric,
            method=method,
            judge_model=judge_model,
            prompt_version=version,
        )
        if isinstance(result, Unmeasured):
            scores.append(score(value=None, unmeasured_reason=str(result)))
        else:
            scores.append(
                score(
                    value=result.score,
                    n_claims=len(result.claims),
                    n_supported=int(result.supported.sum()),
                )
            )
    return scores
