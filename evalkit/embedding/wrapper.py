"""The base of an embedder that wraps another (a cache, a pace teller): what it is, it takes
from the embedder it wraps; only how it embeds is its own."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evalkit.embedding.fingerprint import ModelFingerprint
    from evalkit.embedding.query import TextEmbedder

__all__ = ["EmbedderWrapper"]


class EmbedderWrapper:
    """A ``TextEmbedder`` whose name, dimension and fingerprint are those of the embedder
    it wraps; a subclass gives ``embed``."""

    def __init__(self, embedder: TextEmbedder) -> None:
        self._embedder = embedder

    @property
    def name(self) -> str:
        """The wrapped model's name."""
        return self._embedder.name

    @property
    def dimension(self) -> int:
        """Length of the vectors the wrapped model makes."""
        return self._embedder.dimension

    @property
    def fingerprint(self) -> ModelFingerprint:
        """The wrapped model's fingerprint."""
        return self._embedder.fingerprint
