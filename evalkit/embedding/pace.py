"""How long an embedding will take, measured on its first small batch and told before the rest.

Embedding a corpus, or an index's stored texts, with a local model on a CPU takes minutes: a
few to a few hundred texts a second, by text length and machine (docs/audit.md gives measured
rates). Before a long one, ``embed_paced`` embeds a first small batch alone, times it, and
hands the expected time of the rest to a callback (the CLI prints it); ``PacedEmbedder``
does the same for every long ``embed`` call of the embedder it wraps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from evalkit.embedding.wrapper import EmbedderWrapper

if TYPE_CHECKING:
    from evalkit.embedding.query import TextEmbedder

__all__ = [
    "LONG_EMBEDDING",
    "PACE_BATCH",
    "EmbeddingPace",
    "PaceCallback",
    "PacedEmbedder",
    "embed_paced",
]

PACE_BATCH: Final = 16
"""Texts embedded alone first and timed: enough to average out one text's length, few enough
that the estimate comes within seconds."""
LONG_EMBEDDING: Final = 10.0
"""Seconds the rest of an embedding must be expected to take for its pace to be told."""


@dataclass(frozen=True, slots=True)
class EmbeddingPace:
    """The pace of an embedding of ``texts`` texts (at most that many, with ``at_most``):
    its first ``measured`` texts, of ``characters`` characters in all, took ``seconds``."""

    texts: int
    measured: int
    seconds: float
    characters: int
    at_most: bool = False

    @property
    def rate(self) -> float:
        """Texts embedded a second."""
        return self.measured / self.seconds if self.seconds > 0 else float("inf")

    @property
    def remaining_seconds(self) -> float:
        """Expected seconds for the texts after the measured ones, at the measured rate."""
        return max(self.texts - self.measured, 0) / self.rate

    def describe(self, what: str = "embedding", noun: str = "texts") -> str:
        """One line for people: ``embedding 5,183 texts, about 9 min at the measured rate
        (9.4 texts a second over a first batch of 16, 1,480 characters a text on
        average)``."""
        count = f"{'up to ' if self.at_most else ''}{self.texts:,} {noun}"
        return (
            f"{what} {count}, about {_about(self.remaining_seconds)} at the measured rate "
            f"({self.rate:,.1f} {noun} a second over a first batch of {self.measured}, "
            f"{self.characters / max(self.measured, 1):,.0f} characters a text on average)"
        )


PaceCallback = Callable[[EmbeddingPace], None]
"""Called with the pace of a long embedding before its rest is embedded."""


def _about(seconds: float) -> str:
    if seconds < 90:
        return f"{max(round(seconds), 1)} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def embed_paced(
    embedder: TextEmbedder,
    texts: Sequence[str],
    on_pace: PaceCallback | None,
    *,
    total: int | None = None,
    at_most: bool = False,
    batch: int = PACE_BATCH,
    long: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> npt.NDArray[np.float32]:
    """``embedder.embed(texts)``; with ``on_pace``, the first ``batch`` texts are embedded
    alone and timed, and ``on_pace`` is told the pace before the rest is embedded when the
    rest of the embedding is expected to take ``long`` seconds or more (default
    ``LONG_EMBEDDING``).

    ``total`` is the number of texts the whole embedding holds when ``texts`` is its first
    part (default: ``len(texts)``), an upper bound with ``at_most``.
    """
    if on_pace is None or len(texts) <= 1:
        return embedder.embed(texts)
    head = texts[:batch]
    started = clock()
    first = embedder.embed(head)
    pace = EmbeddingPace(
        texts=len(texts) if total is None else total,
        measured=len(head),
        seconds=clock() - started,
        characters=sum(len(text) for text in head),
        at_most=at_most,
    )
    if pace.remaining_seconds >= (LONG_EMBEDDING if long is None else long):
        on_pace(pace)
    if len(head) == len(texts):
        return first
    return np.concatenate([first, embedder.embed(texts[batch:])], axis=0)


class PacedEmbedder(EmbedderWrapper):
    """A ``TextEmbedder`` that tells the pace of each long ``embed`` call of the embedder it
    wraps (``embed_paced``); its name, dimension and fingerprint are the wrapped one's."""

    def __init__(self, embedder: TextEmbedder, on_pace: PaceCallback) -> None:
        super().__init__(embedder)
        self._on_pace = on_pace

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts``, telling the pace first when they take long."""
        return embed_paced(self._embedder, texts, self._on_pace)

    def close(self) -> None:
        """Close the wrapped embedder, when it can be."""
        close = getattr(self._embedder, "close", None)
        if close is not None:
            close()
