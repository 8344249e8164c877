"""Model mismatch: was the index built by the model that embeds the queries?

Two independent signals. The *fingerprint* the collection records (``evalkit_model_*``) is
compared with the query model's. Then a seeded sample of stored documents is re-embedded
from their stored text with the query model and compared, vector by vector, with what the
collection stores: a stored vector that the query model does not reproduce (cosine below
``model_min_cosine``) was made by another model, even when no fingerprint was stored or
only a slice of the index was written by another model.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from evalkit.audit.context import AuditContext
from evalkit.audit.duplicates import unit_rows
from evalkit.audit.snapshot import fetch_documents
from evalkit.embedding import ModelFingerprint
from evalkit.records.audit import CheckOutcome, Finding

__all__ = ["check_model", "rowwise_cosine", "sample_rows"]


def rowwise_cosine(first: npt.ArrayLike, second: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Cosine similarity of ``first[i]`` and ``second[i]`` for every row (0 for a zero row)."""
    left, right = unit_rows(first), unit_rows(second)
    if left.shape != right.shape:
        raise ValueError(f"row shapes differ: {left.shape} vs {right.shape}")
    cosines: npt.NDArray[np.float64] = np.einsum(
        "ij,ij->i", left.astype(np.float64), right.astype(np.float64)
    )
    return cosines


def sample_rows(n: int, size: int | None, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """Ascending rows of a uniform sample without replacement (every row when size >= n)."""
    if size is None or size >= n:
        return np.arange(n, dtype=np.int64)
    return np.sort(rng.choice(n, size=size, replace=False)).astype(np.int64)


def _describe(fingerprint: ModelFingerprint) -> str:
    return f"{fingerprint.name} ({fingerprint.dimension} dims, {fingerprint.canary_hash})"


def _rebuild(collection: str) -> str:
    return f"`evalkit index --corpus CORPUS --collection {collection} --rebuild`"


def check_model(context: AuditContext) -> CheckOutcome:
    """Compare the stored model fingerprint and re-embedded stored documents with the model."""
    embedder, snapshot, config = context.embedder, context.snapshot, context.config
    if embedder is None:
        return CheckOutcome("model", False, note="no query model given")
    findings: list[Finding] = []
    current = embedder.fingerprint
    stored = snapshot.stored_model
    measurements: dict[str, float] = {}
    if stored is None:
        findings.append(
            config.finding(
                "model_fingerprint_missing",
                f"collection '{snapshot.name}' records no embedding model; the re-embedding "
                "sample below is the only evidence of which model built it. Indexing with "
                "`evalkit index` records one.",
                0,
            )
        )
    else:
        matches = stored.matches(current)
        measurements["model_fingerprint_match"] = float(matches)
        if not matches:
            similarity = stored.canary_similarity(current)
            findings.append(
                config.finding(
                    "model_fingerprint_mismatch",
                    f"collection '{snapshot.name}' was built with {_describe(stored)} but "
                    f"queries are embedded with {_describe(current)}; query it with the model "
                    "it was built with, or rebuild it (`evalkit index --rebuild`)",
                    0,
                    value=similarity,
                    details={
                        "stored": {
                            "name": stored.name,
                            "dimension": stored.dimension,
                            "fingerprint": stored.canary_hash,
                        },
                        "query_model": {
                            "name": current.name,
                            "dimension": current.dimension,
                            "fingerprint": current.canary_hash,
                        },
                        "lowest_canary_cosine": similarity,
                    },
                )
            )

    rows = sample_rows(len(snapshot), config.model_sample_size, context.rng)
    sampled_ids = [snapshot.ids[row] for row in rows]
    if context.embedder_problem is not None:
        findings.append(
            config.finding(
                "vectors_from_another_model",
                f"every stored vector was made by another model: {context.embedder_problem}; "
                "query it with the model it was built with, or rebuild it with the query "
                f"model ({_rebuild(snapshot.name)})",
                len(snapshot),
                value=0.0,
                threshold=config.model_min_cosine,
                details={"reason": context.embedder_problem},
            )
        )
        measurements["model_sampled_documents"] = 0.0
        return CheckOutcome("model", True, measurements, tuple(findings))

    documents = fetch_documents(collection=context.collection, doc_ids=sampled_ids)
    kept = np.asarray([row for row in rows if snapshot.ids[row] in documents], dtype=np.int64)
    measurements["model_sampled_documents"] = float(kept.size)
    if kept.size == 0:
        note = "the collection stores no document text to re-embed" if len(rows) else None
        return CheckOutcome("model", True, measurements, tuple(findings), note=note)
    fresh = embedder.embed([documents[snapshot.ids[row]].content for row in kept])
    cosines = rowwise_cosine(snapshot.vectors[kept], fresh)
    disagree = cosines < config.model_min_cosine
    measurements["model_mismatched_documents"] = float(disagree.sum())
    measurements["model_min_cosine"] = float(cosines.min())
    if disagree.any():
        share = float(disagree.mean())
        bad_ids = tuple(snapshot.ids[row] for row in kept[disagree])
        estimated = round(share * len(snapshot))
        findings.append(
            config.finding(
                "vectors_from_another_model",
                f"{len(bad_ids)} of {kept.size} re-embedded documents do not match their "
                f"stored vectors (cosine < {config.model_min_cosine}); about {estimated} "
                f"of {len(snapshot)} documents were embedded by another model. Indexing "
                "the corpus again leaves them as they are, since their content has not "
                "changed: rebuild the collection with the query model "
                f"({_rebuild(snapshot.name)}), or delete these documents from it (Chroma's "
                "`collection.delete(ids=...)`) and index again.",
                len(bad_ids),
                doc_ids=bad_ids,
                value=float(cosines[disagree].min()),
                threshold=config.model_min_cosine,
                details={
                    "sampled": int(kept.size),
                    "mismatched_share": share,
                    "estimated_documents": estimated,
                    "cosines": {
                        doc_id: round(float(cosine), 6)
                        for doc_id, cosine in zip(bad_ids, cosines[disagree], strict=True)
                    },
                },
            )
        )
    note = None if kept.size == len(snapshot) else f"re-embedded a sample of {kept.size}"
    return CheckOutcome("model", True, measurements, tuple(findings), note=note)
