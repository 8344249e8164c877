"""The probe query of a changed document: its most distinctive passage.

The sentence whose words are rarest among the changed documents read together (mean inverse
document frequency), longer ones preferred up to ``FULL_SENTENCE_WORDS``, so two documents
sharing a boilerplate sentence each get one of their own.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

__all__ = ["FULL_SENTENCE_WORDS", "MAX_PASSAGE_CHARS", "MIN_SENTENCE_WORDS", "probe_passages"]

MIN_SENTENCE_WORDS = 4
"""Shorter sentences (headings, list items) are a probe only when nothing longer exists."""
FULL_SENTENCE_WORDS = 12
"""Words from which a sentence's length no longer adds to its score."""
MAX_PASSAGE_CHARS = 300
"""A passage is cut to this length, at a word boundary."""

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n|\n(?=\s*[-*#\d])")
_WORD = re.compile(r"\w+")


def probe_passages(texts: Sequence[str]) -> list[str]:
    """The probe passage of each text of ``texts`` (changed documents read together)."""
    sentences = [_sentences(text) for text in texts]
    frequency: Counter[str] = Counter()
    for words_of_text in sentences:
        frequency.update({word for _, words in words_of_text for word in words})
    total = len(texts)
    passages = []
    for text, candidates in zip(texts, sentences, strict=True):
        best: tuple[float, str] | None = None
        for sentence, words in candidates:
            if len(words) < MIN_SENTENCE_WORDS:
                continue
            rarity = sum(math.log((1 + total) / (1 + frequency[word])) + 1 for word in words)
            score = rarity / len(words) * min(1.0, len(words) / FULL_SENTENCE_WORDS)
            if best is None or score > best[0]:
                best = (score, sentence)
        passages.append(_cut(best[1] if best is not None else " ".join(text.split())))
    return passages


def _sentences(text: str) -> list[tuple[str, set[str]]]:
    found = []
    for part in _SENTENCE_END.split(text):
        sentence = " ".join(part.split())
        if sentence:
            found.append((sentence, {word.lower() for word in _WORD.findall(sentence)}))
    return found


def _cut(passage: str) -> str:
    if len(passage) <= MAX_PASSAGE_CHARS:
        return passage
    cut = passage[:MAX_PASSAGE_CHARS]
    space = cut.rfind(" ")
    return cut[:space] if space > MAX_PASSAGE_CHARS // 2 else cut
