"""The remap workflow: a stored goldset's judgments moved onto a re-chunked corpus, stored as
a new version with the mapping that made it (``evalkit goldset remap``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evalkit.errors import ConfigError
from evalkit.goldset.jsonl import CORPUS_FILE
from evalkit.goldset.model import Goldset
from evalkit.goldset.remap import RemapResult, iter_chunks, remap_judgments
from evalkit.records.requests import DEFAULT_MIN_OVERLAP
from evalkit.store.access import WriterAccess
from evalkit.store.goldsets import load_stored_goldset
from evalkit.store.remaps import save_remap, version_origin

if TYPE_CHECKING:
    from evalkit.store.store import Store

__all__ = ["GoldsetRemapRequest", "RemapOutcome", "old_corpus_of", "remap_goldset"]


@dataclass(frozen=True, slots=True)
class GoldsetRemapRequest:
    """What a remap is asked to do (docs/goldsets.md).

    ``goldset`` (at ``version``, default current) onto the chunk ``corpus``; ``old_corpus`` for
    judgments without a span (default ``old_corpus_of``); ``min_overlap``; the new ``name``.
    """

    goldset: str
    corpus: Path
    old_corpus: Path | None = None
    min_overlap: float = DEFAULT_MIN_OVERLAP
    name: str | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.min_overlap <= 1.0:
            raise ConfigError(f"`min_overlap` must be in (0, 1], got {self.min_overlap}")


@dataclass(frozen=True, slots=True)
class RemapOutcome:
    """What a remap did: the goldset it read, the one it wrote (None when no judgment could
    be mapped, so nothing was written), the mapping, the old corpus it used, whether the
    version was new to its name (``stored``) and the version that was current under that
    name before, when it was another one (``was_current``)."""

    old: Goldset
    goldset: Goldset | None
    result: RemapResult
    old_corpus: Path | None
    stored: bool
    was_current: str | None = None

    @property
    def complete(self) -> bool:
        """True when every old judgment reached a chunk of the new corpus."""
        return self.goldset is not None and not self.result.lost


def old_corpus_of(store: Store, goldset: Goldset) -> Path | None:
    """The corpus the stored goldset version's doc ids name, found from where the version
    came from: for an imported version, the ``corpus.jsonl`` beside the files it was
    imported from; for a version a remap wrote, that remap's new corpus; for a version a
    review-queue publish made, the corpus of the version it was made from (and so on back).
    None when that corpus is not there (any more)."""
    return _trace_old_corpus(store, goldset)[0]


def _trace_old_corpus(store: Store, goldset: Goldset) -> tuple[Path | None, str]:
    """``old_corpus_of``, with where it looked last (for the error when nothing is found)."""
    version, seen = goldset.version, set()
    looked = f"version {version} records no source"
    while version not in seen:
        seen.add(version)
        origin = version_origin(store, goldset.name, version)
        if origin.remap_corpus is not None:
            corpus = Path(origin.remap_corpus)
            found = corpus if corpus.is_file() else None
            return found, f"{corpus}, the corpus the remap that made version {version} read"
        if origin.published_from is not None:
            version = origin.published_from
            continue
        if not origin.source:
            return None, f"version {version} records no source"
        candidate = Path(origin.source)
        folder = candidate if candidate.is_dir() else candidate.parent
        corpus = folder / CORPUS_FILE
        looked = (
            f"{CORPUS_FILE} beside {origin.source!r}, which version {version} was imported from"
        )
        return (corpus if corpus.is_file() else None), looked
    return None, looked


def remap_goldset(store: WriterAccess, request: GoldsetRemapRequest) -> RemapOutcome:
    """Remap the stored goldset's judgments onto ``request.corpus`` and store the new version with
    its mapping in one transaction (``evalkit.goldset.remap`` has the rule).

    When no judgment maps, nothing is written. Judgments without a span need the old corpus:
    without one the remap raises ConfigError before anything is read or written.
    """
    with store.writer("goldset remap") as opened:
        old = load_stored_goldset(opened, request.goldset, request.version)
        without_span = [judgment for judgment in old.judgments if judgment.span is None]
        old_corpus, looked = request.old_corpus, ""
        if old_corpus is None and without_span:
            old_corpus, looked = _trace_old_corpus(opened, old)
    if without_span and old_corpus is None:
        first = without_span[0]
        raise ConfigError(
            f"goldset {old.name} version {old.version}: {len(without_span)} of its "
            f"{len(old.judgments)} judgments have no span (first: query {first.query_id}, "
            f"document {first.doc_id}) and are remapped through the corpus their doc ids "
            f"name, which was not found ({looked}); give it with `old_corpus` PATH. "
            "Nothing was stored."
        )
    result = remap_judgments(
        old.judgments,
        iter_chunks(request.corpus),
        old_corpus=iter_chunks(old_corpus) if old_corpus is not None else None,
        min_overlap=request.min_overlap,
    )
    if not result.judgments:
        return RemapOutcome(old, None, result, old_corpus, stored=False)
    remapped = Goldset.build(
        request.name or old.name,
        old.queries,
        result.judgments,
        source=f"remap of {old.name} {old.version} onto {os.path.abspath(request.corpus)}",
    )
    if remapped.name == old.name and remapped.version == old.version:
        # The corpus maps every judgment onto the documents it had: nothing new to store.
        return RemapOutcome(old, remapped, result, old_corpus, stored=False)
    with store.writer("goldset remap") as opened:
        saved = save_remap(
            opened,
            remapped,
            old=old,
            mappings=result.mappings,
            counts=result.counts,
            corpus=os.path.abspath(request.corpus),
            old_corpus=os.path.abspath(old_corpus) if old_corpus is not None else None,
            min_overlap=request.min_overlap,
        )
    return RemapOutcome(
        old, remapped, result, old_corpus, stored=saved.created, was_current=saved.was_current
    )
