"""The goldset formats evalkit reads and writes, by name, and the entry points that use them.

``load_goldset(path, format=...)``, ``validate_goldset(path, format=...)`` and
``export_goldset(goldset, folder, format=...)`` look the format up in ``GOLDSET_FORMATS``;
adding a format means registering one ``GoldsetFormat``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from evalkit.errors import ConfigError, GoldsetError, InputError
from evalkit.goldset._reading import NoticeSink
from evalkit.goldset.beir import beir_files, load_beir_goldset
from evalkit.goldset.corpus import validate_corpus
from evalkit.goldset.jsonl import CORPUS_FILE, jsonl_files, load_jsonl_goldset
from evalkit.goldset.model import Goldset
from evalkit.goldset.trec import (
    TREC_QRELS_FILE,
    TREC_TOPICS_FILE,
    load_trec_goldset,
    trec_files,
)
from evalkit.records.requests import DEFAULT_GOLDSET_FORMAT, DEFAULT_GOLDSET_SPLIT
from evalkit.registry import lookup_named

__all__ = [
    "GOLDSET_FORMATS",
    "Exported",
    "GoldsetFormat",
    "LoadOptions",
    "export_goldset",
    "load_goldset",
    "validate_goldset",
]


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """Options a format's loader may use; each format ignores the ones it has no use for."""

    name: str | None = None
    split: str = DEFAULT_GOLDSET_SPLIT
    topics: Path | None = None
    on_notice: NoticeSink | None = None


def _no_companion_checks(path: Path, options: LoadOptions) -> list[InputError]:
    return []


def _the_folder(folder: Path, split: str) -> tuple[Path, Path | None]:
    return folder, None


def _trec_files_in(folder: Path, split: str) -> tuple[Path, Path | None]:
    return folder / TREC_QRELS_FILE, folder / TREC_TOPICS_FILE


@dataclass(frozen=True, slots=True)
class GoldsetFormat:
    """A goldset format: how to load it, and what else ``validate_goldset`` should check.

    ``companion_checks`` validates files that travel with the goldset but are not part of
    it, such as the corpus.
    """

    name: str
    description: str
    load: Callable[[Path, LoadOptions], Goldset]
    companion_checks: Callable[[Path, LoadOptions], list[InputError]] = _no_companion_checks
    uses_topics: bool = False
    files: Callable[[Goldset, str], Mapping[str, str]] | None = None
    """The goldset (and a BEIR split) as the text of each file of a folder in this format, by
    its path in the folder; None for a format evalkit only reads."""
    files_in: Callable[[Path, str], tuple[Path, Path | None]] = _the_folder
    """Where ``load`` reads the files ``files`` wrote into a folder: its path, and the
    topics file (for ``uses_topics``)."""


def _load_jsonl(path: Path, options: LoadOptions) -> Goldset:
    return load_jsonl_goldset(path, name=options.name)


def _load_beir(path: Path, options: LoadOptions) -> Goldset:
    return load_beir_goldset(
        path, split=options.split, name=options.name, on_notice=options.on_notice
    )


def _load_trec(path: Path, options: LoadOptions) -> Goldset:
    if options.topics is None:
        raise ConfigError(
            f"the trec format needs the topics file as well as the qrels ({path}); "
            "pass it as `topics`"
        )
    return load_trec_goldset(path, options.topics, name=options.name, on_notice=options.on_notice)


def _check_corpus_beside(path: Path, options: LoadOptions) -> list[InputError]:
    corpus = path / CORPUS_FILE
    return validate_corpus(corpus, format="jsonl") if corpus.is_file() else []


def _check_beir_corpus(path: Path, options: LoadOptions) -> list[InputError]:
    return validate_corpus(path, format="beir") if (path / CORPUS_FILE).is_file() else []


GOLDSET_FORMATS: Mapping[str, GoldsetFormat] = {
    entry.name: entry
    for entry in (
        GoldsetFormat(
            name="jsonl",
            description="evalkit's format: a folder with queries.jsonl and judgments.jsonl",
            load=_load_jsonl,
            companion_checks=_check_corpus_beside,
            files=lambda goldset, split: jsonl_files(goldset),
        ),
        GoldsetFormat(
            name="beir",
            description="a BEIR folder: queries.jsonl, qrels/<split>.tsv, corpus.jsonl",
            load=_load_beir,
            companion_checks=_check_beir_corpus,
            files=lambda goldset, split: beir_files(goldset, split=split),
        ),
        GoldsetFormat(
            name="trec",
            description=(
                "a TREC qrels file plus a topics file (SGML <top>, XML <topic> or qid<TAB>text)"
            ),
            load=_load_trec,
            uses_topics=True,
            files=lambda goldset, split: trec_files(goldset),
            files_in=_trec_files_in,
        ),
    )
}
"""Goldset formats by name."""


def load_goldset(
    path: Path | str,
    *,
    format: str = DEFAULT_GOLDSET_FORMAT,
    name: str | None = None,
    split: str = DEFAULT_GOLDSET_SPLIT,
    topics: Path | str | None = None,
    on_notice: NoticeSink | None = None,
) -> Goldset:
    """Load a goldset in one of ``GOLDSET_FORMATS``.

    ``path`` is the goldset folder (``jsonl``, ``beir``) or the qrels file (``trec``, which
    also needs ``topics``). Notices go to ``on_notice`` (default: the ``evalkit.goldset``
    logger). Raises ``ConfigError`` for an unknown format or missing option and
    ``GoldsetError`` (listing every problem) for invalid data. ``source`` is ``path`` made
    absolute, so a remap finds the ``corpus.jsonl`` beside it from any working directory.
    """
    entry = _format(format)
    goldset = entry.load(Path(path), _options(entry, name, split, topics, on_notice))
    return replace(goldset, source=os.path.abspath(goldset.source))


def validate_goldset(
    path: Path | str,
    *,
    format: str = DEFAULT_GOLDSET_FORMAT,
    split: str = DEFAULT_GOLDSET_SPLIT,
    topics: Path | str | None = None,
    on_notice: NoticeSink | None = None,
) -> list[InputError]:
    """Every problem of a goldset and of the corpus that travels with it; empty when valid.

    Each problem is an ``InputError`` naming the file, 1-based line and field. The corpus
    (``corpus.jsonl`` in a ``jsonl`` or ``beir`` folder) is checked when present.
    """
    entry = _format(format)
    location = Path(path)
    options = _options(entry, None, split, topics, on_notice)
    problems: list[InputError] = []
    try:
        entry.load(location, options)
    except GoldsetError as error:
        problems.extend(error.problems or [error])
    problems.extend(entry.companion_checks(location, options))
    return problems


@dataclass(frozen=True, slots=True)
class Exported:
    """What ``export_goldset`` wrote: its ``files``; where ``load_goldset`` reads them
    (``path``, and ``topics`` for TREC); the ``version`` they read back as (the goldset's
    own, unless the format cannot hold all of it); and ``notes``, one for each part of the
    goldset the format could not hold."""

    files: tuple[Path, ...]
    path: Path
    topics: Path | None
    version: str
    notes: tuple[str, ...]


def export_goldset(
    goldset: Goldset,
    folder: Path | str,
    *,
    format: str = DEFAULT_GOLDSET_FORMAT,
    split: str = DEFAULT_GOLDSET_SPLIT,
    overwrite: bool = False,
) -> Exported:
    """Write ``goldset`` into ``folder`` in one of ``GOLDSET_FORMATS``; the same goldset
    always gives the same bytes.

    A folder that holds anything is refused (``InputError``) unless ``overwrite``. The files
    are read back before they replace anything: judgments that would not read back as
    written raise ``GoldsetError`` and nothing is written. Files and what each format holds:
    docs/goldsets.md, "Exporting a stored version".
    """
    entry = _format(format)
    if entry.files is None:
        raise ConfigError(f"evalkit reads the {entry.name} format but does not write it")
    if "/" in split or "\\" in split or split.strip(".") == "" or split != split.strip():
        raise ConfigError(f"split {split!r} is not a file name; give one such as 'test'")
    target = Path(folder)
    if target.exists() and not target.is_dir():
        raise InputError("is a file; give a folder to export into", path=str(target))
    held = sorted(path.name for path in target.iterdir()) if target.is_dir() else []
    if held and not overwrite:
        shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
        raise InputError(
            f"is not empty (it holds {shown}); give a new or empty folder, or pass "
            "overwrite to replace the files the export writes there",
            path=str(target),
        )
    files = entry.files(goldset, split)
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=target))
    written: list[Path] = []
    try:
        for name, text in files.items():
            staged = staging / name
            staged.parent.mkdir(parents=True, exist_ok=True)
            with staged.open("w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
        path, topics = entry.files_in(staging, split)
        # What the loader says of the files is what the notes below say of the goldset.
        loaded = entry.load(path, _options(entry, goldset.name, split, topics, _ignore))
        if _triples(loaded) != _triples(goldset):
            raise GoldsetError(
                f"goldset '{goldset.name}' version {goldset.version} would not read back as "
                f"written in the {entry.name} format (its judgments differ); nothing was "
                "written. Export it as jsonl"
            )
        for name in files:
            placed = target / name
            placed.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, placed)
            written.append(placed)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not written:
            shutil.rmtree(target, ignore_errors=True)
    path, topics = entry.files_in(target, split)
    return Exported(
        files=tuple(written),
        path=path,
        topics=topics,
        version=loaded.version,
        notes=tuple(_not_held(goldset, loaded, entry.name)),
    )


def _ignore(notice: str) -> None:
    return None


def _triples(goldset: Goldset) -> list[tuple[str, str, int]]:
    return sorted((j.query_id, j.doc_id, j.relevance) for j in goldset.judgments)


def _not_held(goldset: Goldset, loaded: Goldset, layout: str) -> list[str]:
    """One note for each part of ``goldset`` the files of ``layout``, read back as
    ``loaded``, do not hold."""
    notes = []
    read = {query.id: query for query in loaded.queries}
    left_out = [query.id for query in goldset.queries if query.id not in read]
    if left_out:
        notes.append(
            f"{len(left_out)} queries have no judgment: they are written, but an import "
            f"leaves them out, as BEIR and trec_eval do (first: {left_out[0]})"
        )
    reworded = [q.id for q in goldset.queries if q.id in read and read[q.id].text != q.text]
    if reworded:
        notes.append(
            f"{len(reworded)} query texts read back with their white space collapsed "
            f"(first: {reworded[0]})"
        )
    for field, label in (
        ("tenant", "tenants"),
        ("tags", "tags"),
        ("reference_answer", "reference answers"),
        ("reference_context_ids", "reference context ids"),
    ):
        dropped = [q.id for q in goldset.queries if getattr(q, field) and q.id in read]
        dropped = [q for q in dropped if not getattr(read[q], field)]
        if dropped:
            notes.append(
                f"{len(dropped)} queries' {label} are not part of the {layout} format "
                f"(first: {dropped[0]})"
            )
    spans = sum(j.span is not None for j in goldset.judgments)
    if spans and not any(j.span is not None for j in loaded.judgments):
        notes.append(f"{spans} judgments' spans are not part of the {layout} format")
    if loaded.version != goldset.version:
        notes.append(
            f"so an import of these files gives version {loaded.version}, not "
            f"{goldset.version}; export as jsonl to keep everything"
        )
    return notes


def _format(format: str) -> GoldsetFormat:
    return lookup_named(GOLDSET_FORMATS, format, what="goldset format")


def _options(
    entry: GoldsetFormat,
    name: str | None,
    split: str,
    topics: Path | str | None,
    on_notice: NoticeSink | None,
) -> LoadOptions:
    if topics is not None and not entry.uses_topics:
        raise ConfigError(
            f"topics is only used by the trec format, not by '{entry.name}'; leave it out"
        )
    return LoadOptions(
        name=name,
        split=split,
        topics=Path(topics) if topics is not None else None,
        on_notice=on_notice,
    )
