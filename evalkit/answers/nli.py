"""Offline faithfulness with the user's own NLI / hallucination-detection cross-encoder.

``offline-nli`` loads the model directory named by ``nli_model_path`` with
``local_files_only`` and never runs code shipped with weights. An answer's score is the
content-word-weighted mean of each claim's best entailment probability over its contexts'
premises; the probabilities are not calibrated. docs/answers.md, "A local NLI model".
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from evalkit.answers.offline import (
    DEFAULT_THRESHOLD,
    ClaimFaithfulness,
    ClaimSupport,
    claim_token_features,
)
from evalkit.answers.records import AnswerRecord, Method, Unmeasured
from evalkit.answers.sentences import WORD_TOKEN, split_sentences
from evalkit.errors import ConfigError

if TYPE_CHECKING:
    from evalkit.answers.cache import EmbeddingCache

__all__ = ["ENTAILMENT_LABELS", "NLI_VERSION", "NLIFaithfulness", "premises"]

NLI_VERSION = "nli-v1"
ENTAILMENT_LABELS = ("entail", "support", "consistent", "faithful")
"""A label whose lower-cased name contains one of these is the 'claim supported' class."""

FloatArray = npt.NDArray[np.float64]


def premises(context: str, *, max_words: int) -> list[str]:
    """``context`` cut into runs of whole sentences of at most ``max_words`` words each (a
    longer sentence stands alone)."""
    chunks: list[str] = []
    current: list[str] = []
    words = 0
    for sentence in split_sentences(context) or ([context.strip()] if context.strip() else []):
        length = len(WORD_TOKEN.findall(sentence))
        if current and words + length > max_words:
            chunks.append(" ".join(current))
            current, words = [], 0
        current.append(sentence)
        words += length
    if current:
        chunks.append(" ".join(current))
    return chunks


class NLIFaithfulness(ClaimFaithfulness):
    """Faithfulness by a local cross-encoder (see the module doc): build once, score many.

    The model loads on first use; ``ConfigError`` when ``model_path`` is not a local
    sequence-classification model directory.
    """

    method = Method.offline_nli

    def __init__(
        self,
        model_path: Path | str,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        batch_size: int = 32,
        premise_words: int = 200,
        max_length: int = 512,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be a probability in (0, 1), got {threshold}")
        self.model_path = Path(model_path)
        self.threshold = threshold
        self.batch_size = batch_size
        self.premise_words = premise_words
        self.max_length = max_length
        self._loaded: tuple[Any, Any, int | None] | None = None

    @property
    def judge_model(self) -> str:
        """What judges: the model directory's name."""
        return self.model_path.name

    @property
    def version(self) -> str:
        """The method's version and threshold, stored as the prompt version of its scores."""
        return f"{NLI_VERSION}/threshold={self.threshold:g}"

    def _load(self) -> tuple[Any, Any, int | None]:
        if self._loaded is not None:
            return self._loaded
        if not (self.model_path / "config.json").is_file():
            raise ConfigError(
                f"nli_model_path {self.model_path} is not a local model directory (no "
                "config.json): download a sequence-classification NLI model yourself and set "
                "nli_model_path in [judge] to its directory; evalkit never downloads weights"
            )
        # deferred: transformers and torch are heavy and only this method needs them here
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(
                self.model_path, local_files_only=True
            )
        except (OSError, ValueError, KeyError) as error:
            raise ConfigError(
                f"cannot load the NLI model in {self.model_path} as a transformers "
                f"sequence-classification model: {error}"
            ) from error
        model.eval()
        self._loaded = (tokenizer, model, self._supported_label(model.config))
        return self._loaded

    def _supported_label(self, config: Any) -> int | None:
        """Index of the 'supported' class; None for a one-logit model (sigmoid)."""
        n_labels = int(config.num_labels)
        if n_labels == 1:
            return None
        names = {int(i): str(name).lower() for i, name in config.id2label.items()}
        found = [i for i, name in names.items() if any(k in name for k in ENTAILMENT_LABELS)]
        found = [i for i in found if not names[i].startswith(("not", "non", "un", "in"))]
        if len(found) == 1:
            return found[0]
        if n_labels == 2 and not found:
            return 1
        raise ConfigError(
            f"the NLI model in {self.model_path} has labels {sorted(names.values())}: none "
            "names the supported class (entailment, supported, consistent, faithful); "
            "rename it in config.json's id2label"
        )

    def entailment(self, pairs: Sequence[tuple[str, str]]) -> FloatArray:
        """P(the premise supports the claim) of each (premise, claim) pair."""
        if not pairs:
            return np.zeros(0, dtype=np.float64)
        tokenizer, model, label = self._load()
        import torch  # deferred: heavy, and loaded already with the model

        out: list[FloatArray] = []
        with torch.inference_mode():
            for start in range(0, len(pairs), self.batch_size):
                batch = pairs[start : start + self.batch_size]
                encoded = tokenizer(
                    [premise for premise, _ in batch],
                    [claim for _, claim in batch],
                    padding=True,
                    truncation="only_first",
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                logits = model(**encoded).logits.float()
                if label is None:
                    probability = torch.sigmoid(logits[:, 0])
                else:
                    probability = torch.softmax(logits, dim=-1)[:, label]
                out.append(probability.cpu().numpy().astype(np.float64))
        return np.concatenate(out)

    @property
    def _records_per_batch(self) -> int:
        return self.batch_size

    def _analyse_batch(
        self, records: Sequence[AnswerRecord], cache: EmbeddingCache | None
    ) -> list[ClaimSupport | Unmeasured]:
        """Claim-level support of each of ``records`` (``cache`` is accepted for symmetry
        with the embedding method and not used)."""
        del cache
        return [self._analyse_one(record) for record in records]

    def _analyse_one(self, record: AnswerRecord) -> ClaimSupport | Unmeasured:
        plan = self._plan(record)
        if isinstance(plan, Unmeasured):
            return plan
        claims, contexts = plan
        chunks = [p for c in contexts for p in premises(c, max_words=self.premise_words)]
        pairs = list(itertools.product(range(len(claims)), range(len(chunks))))
        probability = self.entailment([(chunks[p], claims[c]) for c, p in pairs])
        support = probability.reshape(len(claims), len(chunks)).max(axis=1)
        coverage, salient, weights = claim_token_features(claims, contexts)
        return ClaimSupport(
            claims=tuple(claims),
            similarity=support,  # the model's support stands where the embedding's cosine is
            coverage=coverage,
            salient=salient,
            probability=support,
            weights=weights,
            threshold=self.threshold,
        )
