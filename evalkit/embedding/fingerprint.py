"""What identifies an embedding model: a ``ModelFingerprint`` (name, dimension, hash of the
embeddings of fixed canary strings, and those embeddings), so that two processes, or an index
and a query encoder, can tell whether they embed identically.

Whether two fingerprints are of one model is decided by their canary embeddings' cosine
(``agrees_with``), never by the hash alone: the hash is of rounded embeddings, and the same
model on ONNX Runtime and on torch (or on two CPUs) lands a few of its 3,072 values on the
other side of a rounding boundary. The hash is a short name for display and a cache key."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "CANARY_TEXTS",
    "SAME_MODEL_MIN_COSINE",
    "ModelFingerprint",
    "fingerprint_from_canaries",
    "same_model",
]

CANARY_TEXTS: tuple[str, ...] = (
    "How do I reset my password?",
    "The quarterly revenue grew by twelve percent compared to last year.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "Error 503: the upstream service is temporarily unavailable.",
    "Quelle est la politique de remboursement des frais de voyage ?",
    "def fibonacci(n): return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)",
    "a",
    "Retrieval-augmented generation grounds answers in retrieved documents.",
)
"""Fixed strings whose embeddings identify a model: varied length, language and domain."""

# Canary embeddings are rounded before hashing so that most last-bit differences between
# BLAS builds leave the hash alone; a value near a rounding boundary still flips it, which is
# why sameness is decided by cosine (`agrees_with`). Changing this changes every stored hash.
_FINGERPRINT_DECIMALS = 3
# Two encoders count as the same model when every canary embedding agrees this closely.
SAME_MODEL_MIN_COSINE = 0.999


@dataclass(frozen=True, slots=True)
class ModelFingerprint:
    """Identity of an embedding model: name, dimension, and a hash of its canary embeddings.

    ``canary_vectors`` keeps the canary embeddings themselves (float16) so that a later
    process can measure *how far* a model moved, not just that the hash differs.
    """

    name: str
    dimension: int
    canary_hash: str
    canary_vectors: bytes = b""

    @classmethod
    def stored(
        cls,
        name: str | None,
        dimension: int | None,
        canary_hash: str | None,
        canary_vectors: bytes | None,
    ) -> ModelFingerprint | None:
        """The fingerprint a run or a window stored in its columns; None when it stored none
        (nothing was embedded), and no canary embeddings for rows stored before they were
        kept."""
        if canary_hash is None:
            return None
        return cls(name or "", dimension or 0, canary_hash, bytes(canary_vectors or b""))

    def matches(self, other: ModelFingerprint) -> bool:
        """True when both fingerprints describe a model that embeds identically."""
        return self.agrees_with(other) is True

    def agrees_with(self, other: ModelFingerprint) -> bool | None:
        """True when both fingerprints describe a model that embeds identically (the same
        canary hash, or every canary embedding within ``SAME_MODEL_MIN_COSINE``), False when
        they do not, None when it cannot be told: the hashes differ and one of them was
        stored without its canary embeddings, so a change of model cannot be told from the
        same model rounding a canary value the other way on another backend or CPU."""
        if self.dimension != other.dimension:
            return False
        if self.canary_hash == other.canary_hash:
            return True
        similarity = self.canary_similarity(other)
        return None if similarity is None else similarity >= SAME_MODEL_MIN_COSINE

    def canary_similarity(self, other: ModelFingerprint) -> float | None:
        """Lowest cosine similarity between matching canary embeddings, or None if unknown."""
        if not self.canary_vectors or not other.canary_vectors:
            return None
        if self.dimension != other.dimension:
            return 0.0
        mine = _decode_vectors(self.canary_vectors, self.dimension)
        theirs = _decode_vectors(other.canary_vectors, other.dimension)
        if mine.shape != theirs.shape:
            return 0.0
        return float(np.min(np.sum(mine * theirs, axis=1)))

    def to_metadata(self, prefix: str = "evalkit_model_") -> dict[str, str | int]:
        """Flat key/value form for stores that take scalars only (Chroma collection metadata)."""
        return {
            f"{prefix}name": self.name,
            f"{prefix}dimension": self.dimension,
            f"{prefix}fingerprint": self.canary_hash,
            f"{prefix}canaries": base64.b64encode(self.canary_vectors).decode("ascii"),
        }

    @classmethod
    def from_metadata(
        cls, metadata: dict[str, Any] | None, prefix: str = "evalkit_model_"
    ) -> ModelFingerprint | None:
        """Read a fingerprint written by ``to_metadata``; None when none was stored."""
        if not metadata or f"{prefix}fingerprint" not in metadata:
            return None
        return cls(
            name=str(metadata.get(f"{prefix}name", "")),
            dimension=int(metadata.get(f"{prefix}dimension", 0)),
            canary_hash=str(metadata[f"{prefix}fingerprint"]),
            canary_vectors=base64.b64decode(str(metadata.get(f"{prefix}canaries", ""))),
        )


def fingerprint_from_canaries(
    name: str, dimension: int, canaries: npt.NDArray[np.float32]
) -> ModelFingerprint:
    """The fingerprint of a model named ``name`` whose embeddings of ``CANARY_TEXTS`` are
    ``canaries`` (unit vectors, in that order): every embedder fingerprints the same way."""
    rounded = np.round(canaries.astype(np.float64), _FINGERPRINT_DECIMALS) + 0.0
    digest = hashlib.sha256()
    digest.update(f"{dimension}:".encode())
    digest.update(rounded.tobytes())
    return ModelFingerprint(
        name=name,
        dimension=dimension,
        canary_hash=digest.hexdigest()[:16],
        canary_vectors=canaries.astype(np.float16).tobytes(),
    )


def same_model(before: ModelFingerprint | None, after: ModelFingerprint | None) -> bool | None:
    """Whether two embedders, each known by its fingerprint (None: it embeds nothing), are one
    model: both None, or the same name and canary embeddings that agree (``agrees_with``).
    None when that cannot be told (canary hashes that differ, one stored without its canary
    embeddings)."""
    if before is None or after is None:
        return before is None and after is None
    if before.name != after.name:
        return False
    return before.agrees_with(after)


def _decode_vectors(blob: bytes, dimension: int) -> npt.NDArray[np.float32]:
    vectors = np.frombuffer(blob, dtype=np.float16).astype(np.float32)
    return vectors.reshape(-1, dimension)
