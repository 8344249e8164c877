"""The incidents a drill injects into a scratch copy of an index (``ScratchIndex``).

Each kind declares its name, what its severity means and its default, and how to inject it;
the drill, its report and the help text read the declaration. An incident writes only to an
index named as a drill's copy (``DRILL_PREFIX``): ``ScratchOnlyError`` otherwise. To
restore, a drill puts back a copy of the live index, so an incident need not know how to
undo itself. Every choice an incident makes is drawn from a generator seeded by the drill.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evalkit.clock import utc_now
from evalkit.drill.index import (
    ChromaIndex,
    Contents,
    NotInjectableError,
    ScratchIndex,
    Vectors,
    in_pages,
)
from evalkit.drill.scratch import DRILL_PREFIX
from evalkit.errors import ConfigError, EvalkitError

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

__all__ = ["INCIDENTS", "Incident", "Injected", "ScratchOnlyError", "inject"]

DUPLICATE_SUFFIX = "#drill-copy"
LAGGING_SHARE = 0.05
"""The share of the documents (relevant and the rest alike) whose change an ingestion lag
withholds."""
REVISION = " (revised)"
"""What a withheld change appends to a document's text."""
CHUNK_WORDS = 48
"""The words of a chunk the chunking drift cuts a document into (its last one shorter)."""

Rebuild = Callable[[Mapping[str, Any]], object]
"""Copies the live index again in place of the copy, with these HNSW settings."""
Embed = Callable[[Sequence[str]], Vectors]
"""Embeds texts with the model the jobs query with."""


class ScratchOnlyError(EvalkitError):
    """An incident was asked to write to a collection that is not a drill's copy."""


@dataclass(frozen=True, slots=True)
class Injected:
    """What an incident changed: its kind and severity, the document ids it touched (for
    deletions, removed; for duplicates, the copies added) and a line saying so."""

    incident: str
    severity: float
    documents: tuple[str, ...]
    summary: str
    withheld: Mapping[str, str] = field(default_factory=dict)
    """Source changes the index has not taken in (ingestion lag): document id to its new
    text; the drill's restore takes them in."""


@dataclass(frozen=True, slots=True)
class _Target:
    """What an incident is injected into, at which share, with which choices."""

    index: ScratchIndex
    contents: Contents
    share: float
    relevant: frozenset[str]
    rng: np.random.Generator
    rebuild: Rebuild | None = None
    embed: Embed | None = None
    changes: Path | None = None

    def pick(self, share: float | None = None) -> list[int]:
        """Positions of ``share`` (the target's, unless given) of the judged-relevant
        documents and of the rest (each rounded, at least one of a non-empty group when it
        is above 0): the goldset sees exactly that share of its relevant documents hit,
        whatever the corpus's size."""
        share = self.share if share is None else share
        chosen: list[int] = []
        ids = self.contents.ids
        for group in (
            [i for i, doc_id in enumerate(ids) if doc_id in self.relevant],
            [i for i, doc_id in enumerate(ids) if doc_id not in self.relevant],
        ):
            if group and share > 0:
                count = max(1, round(share * len(group)))
                chosen += sorted(self.rng.choice(group, size=count, replace=False).tolist())
        return chosen

    def injected(self, incident: str, positions: Sequence[int], what: str) -> Injected:
        """What ``incident`` did to the documents at ``positions``, ``what`` saying it."""
        touched = tuple(self.contents.ids[i] for i in positions)
        return Injected(incident, self.share, touched, f"{len(touched)} documents {what}")


Inject = Callable[[_Target], Injected]
CatchUp = Callable[[ScratchIndex, Injected], None]


@dataclass(frozen=True, slots=True)
class Incident:
    """One kind of incident: ``severity`` means ``severity_meaning``, from
    ``severity_range``; ``causes`` are the probable causes (``evalkit.causes.CAUSE_KINDS``)
    that name it, one of which ``explain`` should rank first; ``seen_by`` are the alert rule
    kinds that can see it, the one to suggest first. ``inject`` changes a copy; None: the
    incident is in front of the index, played by the drill's proxy (``slows``) or by the
    traffic it logs (``feeds_traffic``)."""

    name: str
    severity_meaning: str
    default_severity: float
    inject: Inject | None
    causes: tuple[str, ...]
    seen_by: tuple[str, ...]
    severity_range: tuple[float, float] = (0.0, 1.0)
    catch_up: CatchUp | None = None
    """What the restore does to the restored copy besides (ingestion catching up)."""
    feeds_traffic: bool = False
    """Whether the drill's simulated traffic plays it (``inject`` None)."""

    @property
    def slows(self) -> bool:
        """Whether the drill's proxy in front of a Chroma server plays it."""
        return self.inject is None and not self.feeds_traffic

    def severity_of(self, severity: float | None) -> float:
        """``severity``, or the default for None; ConfigError when out of its range."""
        chosen = self.default_severity if severity is None else severity
        low, high = self.severity_range
        if not low <= chosen <= high:
            raise ConfigError(
                f"incident '{self.name}': severity {chosen:g} is not from {low:g} to {high:g} "
                f"({self.severity_meaning})"
            )
        return chosen


def _deletion(target: _Target) -> Injected:
    removed = [target.contents.ids[i] for i in target.pick()]
    target.index.delete(removed)
    hit = sum(doc_id in target.relevant for doc_id in removed)
    return Injected(
        "deletion",
        target.share,
        tuple(removed),
        f"removed {len(removed)} documents, {hit} of them judged relevant",
    )


def _duplicates(target: _Target) -> Injected:
    contents, positions = target.contents, target.pick()
    copies = [f"{contents.ids[i]}{DUPLICATE_SUFFIX}" for i in positions]
    target.index.add(
        copies,
        contents.embeddings[positions],
        [contents.documents[i] for i in positions],
        [contents.metadatas[i] for i in positions],
    )
    return Injected(
        "duplicates",
        target.share,
        tuple(copies),
        f"re-added {len(copies)} documents under new ids",
    )


def _stale_content(target: _Target) -> Injected:
    contents, positions = target.contents, target.pick()
    if len(contents.ids) < 2 or not positions:
        return Injected(
            "stale_content", target.share, (), "nothing to swap in a collection this small"
        )
    # Each chosen document takes another document's text and vector (never its own); its id
    # and metadata stay, as when a pipeline wrote the wrong content under the right id.
    donors = [
        (i + int(target.rng.integers(1, len(contents.ids)))) % len(contents.ids) for i in positions
    ]
    target.index.update(
        [contents.ids[i] for i in positions],
        embeddings=contents.embeddings[donors],
        documents=[contents.documents[j] or "" for j in donors],
    )
    return target.injected(
        "stale_content", positions, "now hold another document's text and vector"
    )


def _model_mismatch(target: _Target) -> Injected:
    contents, positions = target.contents, target.pick()
    dimension = contents.embeddings.shape[1]
    if not dimension:
        raise NotInjectableError(
            "not injectable: the index holds no vectors (a lexical index), so no embedding "
            "model can mismatch it"
        )
    # A random rotation: distances within the moved documents are kept, as between two
    # vectors of one model, but a query embedded by the live model no longer matches them.
    rotation, _ = np.linalg.qr(target.rng.normal(size=(dimension, dimension)))
    target.index.update(
        [contents.ids[i] for i in positions],
        embeddings=(contents.embeddings[positions] @ rotation).astype(np.float32),
    )
    return target.injected(
        "model_mismatch", positions, "had their vectors moved into another embedding space"
    )


def _chunking_drift(target: _Target) -> Injected:
    if target.embed is None:
        raise ConfigError("incident 'chunking_drift' needs the jobs' embedding model")
    contents = target.contents
    positions = [i for i in target.pick() if (contents.documents[i] or "").strip()]
    for page in in_pages(positions):
        ids: list[str] = []
        texts: list[str] = []
        metadatas: list[Mapping[str, Any]] = []
        for i in page:
            text = contents.documents[i] or ""
            for number, (start, end) in enumerate(_chunk_spans(text)):
                ids.append(f"{contents.ids[i]}#chunk-{number}")
                texts.append(text[start:end])
                # The span metadata evalkit's span judgments and goldset remap read.
                span = {"source_id": contents.ids[i], "start": start, "end": end}
                metadatas.append({**(contents.metadatas[i] or {}), **span})
        target.index.delete([contents.ids[i] for i in page])
        # A lexical index (no vector columns) takes the chunks' texts alone.
        vectors = target.embed(texts) if contents.embeddings.shape[1] else _no_vectors(texts)
        target.index.add(ids, vectors, texts, metadatas)
    return target.injected(
        "chunking_drift", positions, f"re-chunked into pieces of {CHUNK_WORDS} words"
    )


def _no_vectors(texts: Sequence[str]) -> Vectors:
    return np.empty((len(texts), 0), dtype=np.float32)


def _chunk_spans(text: str) -> list[tuple[int, int]]:
    """The character spans of ``text``'s chunks of ``CHUNK_WORDS`` words."""
    words = [(found.start(), found.end()) for found in re.finditer(r"\S+", text)]
    return [
        (words[start][0], words[min(start + CHUNK_WORDS, len(words)) - 1][1])
        for start in range(0, len(words), CHUNK_WORDS)
    ]


def _ingestion_lag(target: _Target) -> Injected:
    if target.changes is None:
        raise NotInjectableError(
            "not injectable: no freshness job reads change tables (changes = [...]), where a "
            "drill writes the source changes it withholds from the index"
        )
    contents, hours = target.contents, target.share
    positions = [i for i in target.pick(LAGGING_SHARE) if contents.documents[i]]
    made = (utc_now() - timedelta(hours=hours)).isoformat(timespec="seconds") + "Z"
    withheld = {contents.ids[i]: f"{contents.documents[i]}{REVISION}" for i in positions}
    with target.changes.open("a", encoding="utf-8") as log:
        for doc_id, text in withheld.items():
            log.write(json.dumps({"doc_id": doc_id, "updated_at": made, "content": text}) + "\n")
    return Injected(
        "ingestion_lag",
        hours,
        tuple(withheld),
        f"{len(withheld)} source changes withheld from the index for {hours:g} hours",
        withheld,
    )


def _take_in(index: ScratchIndex, injected: Injected) -> None:
    """Ingestion catches up: the copy takes in the texts ``injected`` withheld. Every vector
    stays: a revision's vector would move the goldset's figures off the quiet cycles' level,
    which the restore exists to bring back."""
    index.set_texts(injected.withheld)


def _ann_degradation(target: _Target) -> Injected:
    if target.rebuild is None:
        raise ConfigError("incident 'ann_degradation' needs the drill's copies to rebuild")
    live = target.index.hnsw()
    # hnswlib and pgvector need two neighbours a node; a search breadth below k is searched
    # at k.
    lowered = {key: max(2, round(int(value) * (1 - target.share))) for key, value in live.items()}
    if "ef_construction" in lowered and "max_neighbors" in lowered:
        # pgvector builds an HNSW index only with ef_construction at least 4 and 2 * m.
        lowered["ef_construction"] = max(
            lowered["ef_construction"], 2 * lowered["max_neighbors"], 4
        )
    target.rebuild(lowered)
    changed = ", ".join(f"{key} {live[key]} -> {value}" for key, value in lowered.items())
    return Injected("ann_degradation", target.share, (), f"HNSW index rebuilt with {changed}")


INCIDENTS: Mapping[str, Incident] = {
    incident.name: incident
    for incident in (
        Incident(
            "deletion",
            "the share of the judged-relevant documents removed, and the same share of the rest",
            0.05,
            _deletion,
            ("missing_from_index", "absent_from_results"),
            ("precision_regression", "audit_findings", "embedding_drift"),
        ),
        Incident(
            "duplicates",
            "the share of the documents (relevant and others alike) re-added under new ids",
            0.10,
            _duplicates,
            ("crowded_by_duplicates",),
            ("audit_findings", "precision_regression", "embedding_drift"),
        ),
        Incident(
            "stale_content",
            "the share of the documents (relevant and others alike) that take another "
            "document's text and vector under their own id",
            0.05,
            _stale_content,
            ("stale_documents",),
            ("precision_regression", "audit_findings"),
        ),
        Incident(
            "model_mismatch",
            "the share of the documents whose vectors a random rotation moves into another "
            "space of the same dimension",
            1.0,
            _model_mismatch,
            ("index_model_mismatch",),
            # A retriever that checks the model (Qdrant's text_payload_key) fails its job.
            ("model_mismatch", "precision_regression", "embedding_drift", "job_failure"),
        ),
        Incident(
            "chunking_drift",
            "the share of the documents (relevant and others alike) replaced by chunks of "
            f"{CHUNK_WORDS} words, embedded with the jobs' model, under new ids",
            0.05,
            _chunking_drift,
            ("missing_from_index", "absent_from_results"),
            ("precision_regression", "audit_findings", "embedding_drift"),
        ),
        Incident(
            "ann_degradation",
            "the share by which the HNSW index's search breadth (ef_search), and its "
            "max_neighbors and ef_construction, are lowered (the index rebuilt; on pgvector "
            "m and ef_construction: ef_search is the session's)",
            0.75,
            _ann_degradation,
            ("retriever_changed",),
            ("precision_regression", "audit_findings"),
            severity_range=(0.0, 0.95),
        ),
        Incident(
            "ingestion_lag",
            f"the hours the source changes of {LAGGING_SHARE:.0%} of the documents (relevant "
            "and others alike) have waited, withheld from the index",
            12.0,
            _ingestion_lag,
            ("unreflected_changes",),
            ("freshness_lag",),
            severity_range=(0.0, 8760.0),
            catch_up=_take_in,
        ),
        Incident(
            "query_drift",
            "the share of each simulated day's traffic replaced by queries from another "
            "domain (needs a traffic job)",
            0.3,
            None,
            ("query_drift",),
            ("embedding_drift", "low_confidence_rate", "traffic_precision_drop"),
            feeds_traffic=True,
        ),
        Incident(
            "latency",
            "the factor by which every search of the jobs' Chroma server is slowed",
            2.0,
            None,
            (),
            ("latency_regression",),
            severity_range=(1.0, 100.0),
        ),
    )
}
"""The incidents, by name."""


def inject(
    index: ScratchIndex | Collection,
    incident: str,
    severity: float | None = None,
    *,
    relevant: frozenset[str] = frozenset(),
    seed: int = 0,
    rebuild: Rebuild | None = None,
    embed: Embed | None = None,
    changes: Path | None = None,
) -> Injected:
    """Inject ``incident`` at ``severity`` (its default when None) into ``index``, a drill's
    scratch copy (a Chroma collection, or any ``ScratchIndex``); ``relevant`` are the
    goldset's judged-relevant document ids; ``rebuild`` copies it again with other HNSW
    settings, ``embed`` embeds texts as the jobs do, ``changes`` is the change table the
    freshness jobs read (the incidents that need them fail without)."""
    copy = index if isinstance(index, ScratchIndex) else ChromaIndex(index)
    if not copy.name.startswith(DRILL_PREFIX):
        raise ScratchOnlyError(
            f"refusing to inject '{incident}' into '{copy.name}': a drill writes only to its "
            f"own copies (named '{DRILL_PREFIX}...')"
        )
    kind = INCIDENTS.get(incident)
    if kind is None:
        raise ConfigError(
            f"unknown incident '{incident}'; the incidents are: {', '.join(INCIDENTS)}"
        )
    share = kind.severity_of(severity)
    if kind.inject is None:
        raise ConfigError(
            f"incident '{incident}' changes no index: a drill plays it in front of the "
            "Chroma server"
        )
    target = _Target(
        copy,
        copy.contents(),
        share,
        relevant,
        np.random.default_rng(seed),
        rebuild,
        embed,
        changes,
    )
    return kind.inject(target)
