"""Model mismatch: was the index built by the model that embeds the queries?

Two signals: the collection's recorded fingerprint and a seeded sample of stored documents
re-embedded from their text (``reembed_stored``); a vector not reproduced whose text is not
the document's own either is replaced content, not another model. docs/audit.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from evalkit.audit.context import AuditContext, SourceHashes
from evalkit.audit.duplicates import unit_rows
from evalkit.audit.snapshot import StoredDocument, embedded_text_hash, stored_documents
from evalkit.audit.view import IndexView, advice
from evalkit.embedding import ModelFingerprint, TextEmbedder
from evalkit.records.audit import CheckOutcome, Finding, Reembedding

__all__ = ["check_model", "reembed_stored", "rowwise_cosine", "sample_rows"]


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


def _content_changed(stored: StoredDocument, source: SourceHashes | None) -> bool:
    """Whether a stored document's text is not its own: it differs from its source while
    the hash recorded at indexing says that source version was indexed, or (the source
    not given, or moved on since) its stored content no longer has the recorded hash."""
    doc_id = stored.document.id
    indexed_from_source = (
        source is not None
        and doc_id in source.text
        and bool(stored.recorded_hash)
        and stored.recorded_hash == source.content.get(doc_id)
    )
    if source is not None and indexed_from_source:
        # Compared by text: metadata that does not round-trip through the store exactly
        # (a float's last digits) must not make an intact document look rewritten.
        return embedded_text_hash(stored.document) != source.text[doc_id]
    return stored.rewritten


def reembed_stored(
    stored: Sequence[StoredDocument],
    embedder: TextEmbedder,
    *,
    min_cosine: float,
    source: SourceHashes | None = None,
) -> Reembedding:
    """Re-embed the stored text of each of ``stored`` (read with their vectors, see
    ``stored_documents``) with ``embedder`` and compare with the stored vector; each
    document's text is checked against ``source`` (or the hash recorded at indexing) to
    tell replaced content from another model. The vectors must have ``embedder``'s
    dimension."""
    kept = [document for document in stored if document.vector is not None]
    if not kept:
        empty = np.zeros(0)
        return Reembedding((), empty, empty.astype(bool), min_cosine)
    fresh = embedder.embed([document.document.content for document in kept])
    vectors = np.stack([document.vector for document in kept if document.vector is not None])
    return Reembedding(
        doc_ids=tuple(document.document.id for document in kept),
        cosines=rowwise_cosine(vectors, fresh),
        content_changed=np.asarray([_content_changed(document, source) for document in kept]),
        min_cosine=min_cosine,
    )


def _sample_finding(
    context: AuditContext,
    sample: Reembedding,
    rows: npt.NDArray[np.bool_],
    kind: str,
    message: str,
    **details: object,
) -> Finding:
    """The finding ``kind`` on the re-embedded documents ``rows`` selects, with their cosines."""
    bad_ids, cosines = sample.ids(rows), sample.cosines[rows]
    return context.config.finding(
        kind,
        message,
        len(bad_ids),
        doc_ids=bad_ids,
        value=float(cosines.min()),
        threshold=context.config.model_min_cosine,
        details={
            "sampled": len(sample),
            **details,
            "cosines": {
                doc_id: round(float(cosine), 6)
                for doc_id, cosine in zip(bad_ids, cosines, strict=True)
            },
        },
    )


def _other_model_finding(context: AuditContext, sample: Reembedding) -> Finding:
    config, snapshot = context.config, context.snapshot
    other = sample.other_model
    share = float(other.mean())
    bad = int(other.sum())
    estimated = round(share * len(snapshot))
    return _sample_finding(
        context,
        sample,
        other,
        "vectors_from_another_model",
        f"{bad} of {len(sample)} re-embedded documents do not match their "
        f"stored vectors (cosine < {config.model_min_cosine}); about {estimated} "
        f"of {len(snapshot)} documents were embedded by another model. "
        + advice(
            context.collection,
            "Indexing the corpus again leaves them as they are, since their content has not "
            "changed: rebuild the collection with the query model "
            f"({_rebuild(snapshot.name)}), or delete these documents from it (Chroma's "
            "`collection.delete(ids=...)`) and index again.",
            "Embed them again with the query model and write them to the {engine} index.",
        ),
        mismatched_share=share,
        estimated_documents=estimated,
    )


def _judged_beyond(context: AuditContext, sampled: set[str], embedder: TextEmbedder) -> Reembedding:
    """The goldset's judged-relevant documents in the index, outside ``sampled``,
    re-embedded (none without a goldset)."""
    goldset, positions = context.goldset, context.snapshot.positions
    wanted = (
        sorted(
            {j.doc_id for j in goldset.judgments if j.relevance > 0 and j.doc_id in positions}
            - sampled
        )
        if goldset is not None
        else []
    )
    held = stored_documents(context.collection, wanted, vectors=True) if wanted else {}
    return reembed_stored(
        [held[doc_id] for doc_id in wanted if doc_id in held],
        embedder,
        min_cosine=context.config.model_min_cosine,
        source=context.source_hashes,
    )


def _joined(first: Reembedding, second: Reembedding) -> Reembedding:
    if not len(second):
        return first
    return Reembedding(
        doc_ids=first.doc_ids + second.doc_ids,
        cosines=np.concatenate([first.cosines, second.cosines]),
        content_changed=np.concatenate([first.content_changed, second.content_changed]),
        min_cosine=first.min_cosine,
    )


def _replaced_finding(context: AuditContext, sample: Reembedding) -> Finding:
    config, snapshot = context.config, context.snapshot
    replaced = sample.replaced
    with_source = context.source_hashes is not None
    against = (
        "their source (whose version they were indexed from)"
        if with_source
        else "the content hash recorded when they were indexed"
    )
    listed = (
        "The staleness check lists every such document (changed_in_index)"
        if with_source
        else "Audit with --source to list every such document (changed_in_index)"
    )
    return _sample_finding(
        context,
        sample,
        replaced,
        "content_replaced",
        f"{int(replaced.sum())} of {len(sample)} re-embedded documents do not match their stored "
        f"vectors (cosine < {config.model_min_cosine}), and their stored text differs from "
        f"{against}: the text and vectors under these ids were replaced after indexing "
        "(e.g. `collection.update(documents=..., embeddings=...)`), not embedded by another "
        f"model. {listed}; "
        + advice(
            context.collection,
            f"delete them from the collection and index again, or rebuild it "
            f"({_rebuild(snapshot.name)}).",
            "write them again from the source to the {engine} index.",
        ),
        replaced_share=float(replaced.mean()),
        compared_with="source" if with_source else "recorded_hash",
    )


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
                "sample below is the only evidence of which model built it. "
                + (
                    f"A {context.collection.engine} index records none."
                    if isinstance(context.collection, IndexView)
                    else "Indexing with `evalkit index` records one."
                ),
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
                "query it with the model it was built with, or "
                + advice(
                    context.collection,
                    f"rebuild it with the query model ({_rebuild(snapshot.name)})",
                    "embed it again with the query model",
                ),
                len(snapshot),
                value=0.0,
                threshold=config.model_min_cosine,
                details={"reason": context.embedder_problem},
            )
        )
        measurements["model_sampled_documents"] = 0.0
        return CheckOutcome("model", True, measurements, tuple(findings))

    held = stored_documents(context.collection, sampled_ids, vectors=True)
    sample = reembed_stored(
        [held[doc_id] for doc_id in sampled_ids if doc_id in held],
        embedder,
        min_cosine=config.model_min_cosine,
        source=context.source_hashes,
    )
    measurements["model_sampled_documents"] = float(len(sample))
    if not len(sample):
        note = "the collection stores no document text to re-embed" if len(rows) else None
        return CheckOutcome("model", True, measurements, tuple(findings), note=note)
    other = sample.other_model
    measurements["model_mismatched_documents"] = float(other.sum())
    measurements["model_min_cosine"] = float(sample.cosines.min())
    if other.any():
        findings.append(_other_model_finding(context, sample))
    # Replaced content is looked for in the goldset's relevant documents too, beyond the
    # random sample: they are the ones whose loss a regression is explained by, and a
    # drill's 5 % of them stale on SciFact put 19 in a sample of 256 of 5,183.
    judged = _judged_beyond(context, set(sampled_ids), embedder)
    checked = _joined(sample, judged)
    measurements["model_judged_documents"] = float(len(judged))
    measurements["model_content_replaced_documents"] = float(checked.replaced.sum())
    if checked.replaced.any():
        findings.append(_replaced_finding(context, checked))
    kept = len(sample)
    note = None if kept == len(snapshot) else f"re-embedded a sample of {kept}"
    return CheckOutcome("model", True, measurements, tuple(findings), note=note)
