"""The remap workflow: a stored goldset's judgments moved onto a re-chunked corpus, stored as
a new version with the mapping that made it (``evalkit goldset remap``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evalkit.errors import ConfigError
from evalkit.goldset.corpus import iter_corpus
from evalkit.goldset.jsonl import CORPUS_FILE
from evalkit.goldset.model import Goldset
from evalkit.goldset.remap import RemapResult, remap_judgments
from evalkit.records.requests import DEFAULT_MIN_OVERLAP
from evalkit.store.access import WriterAccess
from evalkit.store.goldsets import load_stored_goldset
from evalkit.store.remaps import save_remap

__all__ = ["GoldsetRemapRequest", "RemapOutcome", "old_corpus_of", "remap_goldset"]


@dataclass(frozen=True, slots=True)
class GoldsetRemapRequest:
    """What a remap is asked to do.

    ``goldset`` names a stored goldset (its ``version``, default the current one);
    ``corpus`` is the new chunk corpus (JSONL with ``source_id``/``start``/``end``);
    ``old_corpus`` the corpus the judgments' doc ids name, for judgments without a span
    (default: the ``corpus.jsonl`` of the folder the goldset was imported from, when there
    is one); ``min_overlap`` the rule's share; ``name`` the name of the new version
    (default the goldset's).
    """

    goldset: str
    corpus: Path
    old_corpus: Path | None = None
    min_overlap: float = DEFAULT_MIN_OVERLAP
    name: str | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.min_overlap <= 1.0:
            raise ConfigError(f"--min-overlap must be in (0, 1], got {self.min_overlap}")


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


def old_corpus_of(goldset: Goldset) -> Path | None:
    """The corpus beside the goldset's files when it was imported from a folder that still
    holds one (``corpus.jsonl``), else None."""
    if not goldset.source:
        return None
    candidate = Path(goldset.source)
    corpus = candidate / CORPUS_FILE if candidate.is_dir() else candidate.parent / CORPUS_FILE
    return corpus if corpus.is_file() else None


def remap_goldset(store: WriterAccess, request: GoldsetRemapRequest) -> RemapOutcome:
    """Remap the stored goldset's judgments onto ``request.corpus`` and store the new
    version with its mapping in one transaction (``evalkit.goldset.remap`` has the rule).

    The store is opened twice for short stretches (to read the goldset, to write the new
    version); the corpora are read in between. When no judgment maps, nothing is written.
    """
    with store.writer("goldset remap") as opened:
        old = load_stored_goldset(opened, request.goldset, request.version)
    needs_old_corpus = any(judgment.span is None for judgment in old.judgments)
    old_corpus = request.old_corpus or (old_corpus_of(old) if needs_old_corpus else None)
    result = remap_judgments(
        old.judgments,
        iter_corpus(request.corpus),
        old_corpus=iter_corpus(old_corpus) if old_corpus is not None else None,
        min_overlap=request.min_overlap,
    )
    if not result.judgments:
        return RemapOutcome(old, None, result, old_corpus, stored=False)
    remapped = Goldset.build(
        request.name or old.name,
        old.queries,
        result.judgments,
        source=f"remap of {old.name} {old.version} onto {request.corpus}",
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
            corpus=str(request.corpus),
            old_corpus=str(old_corpus) if old_corpus is not None else None,
            min_overlap=request.min_overlap,
        )
    return RemapOutcome(
        old, remapped, result, old_corpus, stored=saved.created, was_current=saved.was_current
    )
