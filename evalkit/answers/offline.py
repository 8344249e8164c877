"""Offline faithfulness: how much of an answer its contexts support, with no LLM at all.

The method (``offline-embedding``, version ``OFFLINE_VERSION``), built on evalkit's own
embedding model (all-MiniLM-L6-v2 by default):

1. The answer is split into claims (``split_claims``: its sentences that state something);
   each context into sentences, and each pair of adjacent sentences is kept as a unit too
   (answers often fuse two sentences of a passage into one).
2. For each claim, three signals of support:

   * ``similarity``: the best cosine similarity between the claim and any context unit;
   * ``coverage``: the share of the claim's content words (stopwords removed, words cut to
     their first six letters as a light stemmer) found anywhere in the contexts;
   * ``salient``: the share of the claim's numbers and capitalised words (names, places,
     dates) found in the contexts, the details a hallucination typically gets wrong.

3. A logistic model turns the three signals into the probability that the claim is
   supported (``SupportModel``). Its weights were fitted on labelled data (CLAPNQ answers
   against their own passage = supported; against the passage of the most similar other
   question, or with names and numbers swapped = unsupported): ``benchmarks/faithfulness.py``
   reproduces the fit and reports agreement on held-out data.
4. The answer's faithfulness is the expected share of supported claims: the mean of the
   claim probabilities, each claim weighted by its number of content words. A claim counts
   as supported (``n_supported``) when its probability reaches ``threshold`` (0.5).

An answer with no claim is unmeasured (``no_claims``), and so is one with no context
(``empty_contexts``): neither is scored 0 or 1 by default.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from evalkit.answers.records import AnswerRecord, Method, MetricScore, Unmeasured
from evalkit.answers.sentences import STOPWORDS, WORD_TOKEN, split_claims, split_sentences
from evalkit.embedding import DEFAULT_MODEL_NAME, Embedder, load_embedder

__all__ = [
    "DEFAULT_SUPPORT_MODEL",
    "DEFAULT_THRESHOLD",
    "OFFLINE_VERSION",
    "ClaimSupport",
    "OfflineFaithfulness",
    "SupportModel",
    "best_similarity",
    "claim_token_features",
    "context_units",
]

OFFLINE_VERSION = "offline-v1"
DEFAULT_THRESHOLD = 0.5
STEM_LENGTH = 6

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


DEFAULT_SUPPORT_MODEL = SupportModel(intercept=-11.87, similarity=2.95, coverage=3.2, salient=7.32)
"""Weights fitted by ``benchmarks/faithfulness.py`` on the calibration half of CLAPNQ dev."""


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

    @property
    def supported(self) -> npt.NDArray[np.bool_]:
        """Which claims count as supported (probability >= threshold)."""
        return np.asarray(self.probability >= self.threshold)

    @property
    def score(self) -> float:
        """Expected share of supported claims (claims weighted by their content words)."""
        return float(np.average(self.probability, weights=self.weights))


def context_units(contexts: Sequence[str]) -> list[str]:
    """The units a claim is compared with: every context sentence and adjacent pair."""
    units: list[str] = []
    for context in contexts:
        sentences = split_sentences(context) or ([context] if context.strip() else [])
        units.extend(sentences)
        units.extend(f"{first} {second}" for first, second in itertools.pairwise(sentences))
    return units


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
    """(coverage, salient, weights) of each claim against the contexts.

    ``coverage``: share of the claim's stemmed content words present in the contexts (1 when
    it has none); ``salient``: share of its numbers and capitalised words (not first in the
    claim) present in the contexts (1 when it has none); ``weights``: its number of content
    words (at least 1).
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


class OfflineFaithfulness:
    """Faithfulness without an LLM (see the module doc): build once, score many batches.

    The embedding model loads on first use (``load_embedder()`` unless one is given).
    """

    metric = "faithfulness"
    method = Method.offline_embedding

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        model: SupportModel = DEFAULT_SUPPORT_MODEL,
        threshold: float = DEFAULT_THRESHOLD,
        batch_records: int = 256,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be a probability in (0, 1), got {threshold}")
        self._embedder = embedder
        self.model = model
        self.threshold = threshold
        self.batch_records = batch_records

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
        return f"{OFFLINE_VERSION}/threshold={self.threshold:g}"

    def analyse(self, records: Sequence[AnswerRecord]) -> list[ClaimSupport | Unmeasured]:
        """Claim-level support of every record, or why it cannot be measured."""
        results: list[ClaimSupport | Unmeasured] = []
        for start in range(0, len(records), self.batch_records):
            results.extend(self._analyse_batch(records[start : start + self.batch_records]))
        return results

    def _analyse_batch(self, records: Sequence[AnswerRecord]) -> list[ClaimSupport | Unmeasured]:
        plans: list[tuple[list[str], list[str]] | Unmeasured] = []
        for record in records:
            if not record.answer.strip():
                plans.append(Unmeasured.empty_answer)
                continue
            units = context_units(record.contexts)
            if not units:
                plans.append(Unmeasured.empty_contexts)
                continue
            claims = split_claims(record.answer)
            plans.append((claims, units) if claims else Unmeasured.no_claims)
        texts = list(
            dict.fromkeys(
                text
                for plan in plans
                if not isinstance(plan, Unmeasured)
                for text in plan[0] + plan[1]
            )
        )
        row_of = {text: row for row, text in enumerate(texts)}
        vectors = self.embedder.embed(texts).astype(np.float64) if texts else np.zeros((0, 0))
        results: list[ClaimSupport | Unmeasured] = []
        for record, plan in zip(records, plans, strict=True):
            if isinstance(plan, Unmeasured):
                results.append(plan)
                continue
            claims, units = plan
            similarity = best_similarity(
                vectors[[row_of[c] for c in claims]], vectors[[row_of[u] for u in units]]
            )
            coverage, salient, weights = claim_token_features(claims, record.contexts)
            results.append(
                ClaimSupport(
                    claims=tuple(claims),
                    similarity=similarity,
                    coverage=coverage,
                    salient=salient,
                    probability=self.model.probability(similarity, coverage, salient),
                    weights=weights,
                    threshold=self.threshold,
                )
            )
        return results

    def score(self, records: Sequence[AnswerRecord]) -> list[MetricScore]:
        """One faithfulness score per record (unmeasured ones with their reason)."""
        scores = []
        results = self.analyse(records)
        judge_model, version = self.judge_model, self.version
        for record, result in zip(records, results, strict=True):
            if isinstance(result, Unmeasured):
                scores.append(
                    MetricScore(
                        item_id=record.id,
                        metric=self.metric,
                        method=str(self.method),
                        value=None,
                        judge_model=judge_model,
                        prompt_version=version,
                        unmeasured_reason=str(result),
                    )
                )
                continue
            scores.append(
                MetricScore(
                    item_id=record.id,
                    metric=self.metric,
                    method=str(self.method),
                    value=result.score,
                    judge_model=judge_model,
                    prompt_version=version,
                    n_claims=len(result.claims),
                    n_supported=int(result.supported.sum()),
                )
            )
        return scores
