"""Whether a store's vectors were made by the query embedder, told from its stored text.

A store evalkit did not build records no embedding model, and its dimension alone would pass
two models of one dimension (MiniLM and bge-small are both 384) while every search is
silently wrong. Where the store keeps each document's text, a few documents are re-embedded
with the query embedder: the same model gives cosines near 1, another model near 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evalkit.embedding import TextEmbedder
from evalkit.errors import RetrieverError

__all__ = [
    "REEMBED_MAX_CHARS",
    "REEMBED_SAMPLE",
    "SAME_MODEL_MEDIAN_COSINE",
    "ReembeddingCheck",
    "check_reembedding",
    "describe_model_check",
]

REEMBED_SAMPLE = 16
"""Documents re-embedded before a run: enough for a stable median, cheap next to a run."""

REEMBED_MAX_CHARS = 2000
"""Texts are cut to this before re-embedding: a document far past the model's window would
be cut by the model anyway, and an embedding endpoint refuses very long inputs."""

SAME_MODEL_MEDIAN_COSINE = 0.5
"""Below this median cosine the stored vectors come from another embedding space. Far from
both the same model's ~1 and another model's ~0, so a text column that is only close to
what was embedded does not trip it."""


@dataclass(frozen=True, slots=True)
class ReembeddingCheck:
    """How closely re-embedded stored texts agree with their stored vectors."""

    sampled: int
    median_cosine: float
    lowest_cosine: float

    @property
    def same_model(self) -> bool:
        """Whether the stored vectors were made by the query embedder's model."""
        return self.median_cosine >= SAME_MODEL_MEDIAN_COSINE

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for ``describe()`` and the stored run."""
        return {
            "sampled": self.sampled,
            "median_cosine": round(self.median_cosine, 6),
            "lowest_cosine": round(self.lowest_cosine, 6),
        }


def check_reembedding(
    rows: Sequence[tuple[str, Sequence[float]]],
    embedder: TextEmbedder,
    *,
    store: str,
    text_source: str,
    remedy: str = "if that text is not what was embedded, leave it unset",
    refuse: bool = True,
) -> ReembeddingCheck | None:
    """Re-embed each row's text and compare it with the row's stored vector.

    ``rows`` are (text, stored vector) pairs; rows without text, or whose vector is not of
    the embedder's dimension, are left out; None when none is left. Raises
    ``RetrieverError`` naming ``store``, the model and the cosines when the vectors come from
    another model (ending with ``remedy``: what to do when the text is not what was
    embedded); with ``refuse=False`` the check is returned instead, ``same_model`` False.
    """
    dimension = embedder.dimension
    kept = [
        (text[:REEMBED_MAX_CHARS], vector)
        for text, vector in rows
        if text and text.strip() and len(vector) == dimension
    ]
    if not kept:
        return None
    stored = np.asarray([vector for _, vector in kept], dtype=np.float64)
    fresh = np.asarray(embedder.embed([text for text, _ in kept]), dtype=np.float64)
    norms = np.linalg.norm(stored, axis=1) * np.linalg.norm(fresh, axis=1)
    cosines = np.sum(stored * fresh, axis=1) / np.where(norms > 0, norms, 1.0)
    check = ReembeddingCheck(
        sampled=len(kept),
        median_cosine=float(np.median(cosines)),
        lowest_cosine=float(np.min(cosines)),
    )
    if refuse and not check.same_model:
        raise RetrieverError(
            f"the vectors of {store} were not made by the query embedder {embedder.name}: "
            f"{check.sampled} documents' {text_source} re-embedded with it agree with their "
            f"stored vectors at a median cosine of {check.median_cosine:.3f} (the same model "
            f"gives about 1, another model about 0; the limit is {SAME_MODEL_MEDIAN_COSINE}). "
            f"Configure [embedder] with the model the store was built with; {remedy}."
        )
    return check


def describe_model_check(
    reembedding: ReembeddingCheck | None,
    *,
    text_source: str | None,
    unset: str,
    skipped: str | None = None,
) -> dict[str, Any]:
    """The model check as ``describe()`` reports it: the dimension only when the store has no
    text to re-embed (``unset`` says how to give it one), else the re-embedding of
    ``text_source`` with its result, and why no sample was read when ``skipped``."""
    if text_source is None:
        return {"method": f"dimension only ({unset})"}
    found = reembedding.to_dict() if reembedding is not None else None
    checked: dict[str, Any] = {
        "method": f"dimension and {REEMBED_SAMPLE} re-embedded {text_source}",
        "result": found,
    }
    if skipped is not None:
        checked["skipped"] = skipped
    return checked
