"""Caches of answer scoring: judge outputs, and the offline method's context embeddings.

Failures are never cached. Either cache lives in the store, a DuckDB file of its own or
memory. What each key covers: docs/answers.md, "The LLM judge".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from evalkit.answers.records import CachedJudgment

__all__ = [
    "CachedJudgment",
    "EmbeddingCache",
    "JudgeCache",
    "JudgeCallOutput",
    "KeyedCache",
    "MemoryCache",
    "MemoryEmbeddingCache",
    "MemoryJudgeCache",
    "context_cache_key",
    "judge_cache_key",
    "judge_call_key",
]

Vectors = npt.NDArray[np.float32]
V = TypeVar("V")


def _digest(parts: list[object]) -> str:
    """SHA-256 (hex) of ``parts`` as compact JSON."""
    payload = json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def judge_cache_key(
    *,
    metric: str,
    judge_model: str,
    prompt_version: str,
    question: str,
    answer: str,
    contexts: Sequence[str],
    repeat: int = 0,
) -> str:
    """SHA-256 (hex) of everything that determines one judge output."""
    return _digest([metric, judge_model, prompt_version, question, answer, list(contexts), repeat])


def judge_call_key(*, judgment_key: str, request: Sequence[object], occurrence: int) -> str:
    """SHA-256 (hex) of one LLM call of the judgment ``judgment_key``: its ``request`` (what
    is sent: prompt, output schema, sampling settings) and ``occurrence``, how many identical
    requests the judgment made before (ragas' answer relevancy asks the same thing three
    times, and each reply counts)."""
    return _digest([judgment_key, list(request), occurrence])


@dataclass(frozen=True, slots=True)
class JudgeCallOutput:
    """The output of one LLM call of a judgment (the parsed reply, as JSON)."""

    call_key: str
    judgment_key: str
    judge_model: str
    output: str


def context_cache_key(*, model: str, splitter: str, context: str) -> str:
    """SHA-256 (hex) of what determines a context's sentence vectors."""
    return _digest([model, splitter, context])


class KeyedCache(Protocol[V]):
    """Where values are kept by key between answers and scorings."""

    def get_many(self, keys: Sequence[str]) -> dict[str, V]:
        """The cached values among ``keys``."""
        ...

    def put_many(self, entries: Iterable[tuple[str, V]]) -> None:
        """Keep these values (a key already cached keeps its first value)."""
        ...


class JudgeCache(KeyedCache[CachedJudgment], Protocol):
    """Where judge outputs are kept between scorings: whole judgments by key, and the
    outputs of the single calls of judgments not finished yet."""

    def get_calls(self, judgment_keys: Sequence[str]) -> dict[str, str]:
        """The call outputs kept for these judgments: call key -> output."""
        ...

    def put_calls(self, entries: Iterable[JudgeCallOutput]) -> None:
        """Keep these call outputs (a call cached already keeps its first output)."""
        ...


EmbeddingCache = KeyedCache[Vectors]
"""Where the sentence vectors of contexts ((sentences, dimension) float32 arrays) are kept
between answers and scorings."""


class MemoryCache(Generic[V]):
    """A keyed cache for the life of the process."""

    def __init__(self) -> None:
        self._entries: dict[str, V] = {}

    def get_many(self, keys: Sequence[str]) -> dict[str, V]:
        """The cached values among ``keys``."""
        return {key: self._entries[key] for key in keys if key in self._entries}

    def put_many(self, entries: Iterable[tuple[str, V]]) -> None:
        """Keep these values (a key already cached keeps its first value)."""
        for key, value in entries:
            self._entries.setdefault(key, value)

    def __len__(self) -> int:
        return len(self._entries)


class MemoryJudgeCache(MemoryCache[CachedJudgment]):
    """A judge cache for the life of the process (used when there is no store)."""

    def __init__(self) -> None:
        super().__init__()
        self._calls: dict[str, JudgeCallOutput] = {}

    def put_many(self, entries: Iterable[tuple[str, CachedJudgment]]) -> None:
        """Keep these judgments (a key already cached keeps its first one) and forget the
        outputs of their calls."""
        entries = list(entries)
        super().put_many(entries)
        judged = {key for key, _ in entries}
        self._calls = {
            key: call for key, call in self._calls.items() if call.judgment_key not in judged
        }

    def get_calls(self, judgment_keys: Sequence[str]) -> dict[str, str]:
        """The call outputs kept for these judgments: call key -> output."""
        wanted = set(judgment_keys)
        return {
            key: call.output for key, call in self._calls.items() if call.judgment_key in wanted
        }

    def put_calls(self, entries: Iterable[JudgeCallOutput]) -> None:
        """Keep these call outputs (a call cached already keeps its first output)."""
        for call in entries:
            self._calls.setdefault(call.call_key, call)


class MemoryEmbeddingCache(MemoryCache[Vectors]):
    """A context embedding cache for the life of the process."""
