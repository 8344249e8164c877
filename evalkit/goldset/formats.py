"""The goldset formats evalkit reads, by name, and the two entry points that use them.

``load_goldset(path, format=...)`` and ``validate_goldset(path, format=...)`` look the
format up in ``GOLDSET_FORMATS``; adding a format means registering one ``GoldsetFormat``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from evalkit.errors import ConfigError, GoldsetError, InputError
from evalkit.goldset._reading import NoticeSink
from evalkit.goldset.beir import load_beir_goldset
from evalkit.goldset.corpus import validate_corpus
from evalkit.goldset.jsonl import CORPUS_FILE, load_jsonl_goldset
from evalkit.goldset.model import Goldset
from evalkit.goldset.trec import load_trec_goldset
from evalkit.records.requests import DEFAULT_GOLDSET_FORMAT, DEFAULT_GOLDSET_SPLIT
from evalkit.registry import lookup_named

__all__ = ["GOLDSET_FORMATS", "GoldsetFormat", "LoadOptions", "load_goldset", "validate_goldset"]


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """Options a format's loader may use; each format ignores the ones it has no use for."""

    name: str | None = None
    split: str = DEFAULT_GOLDSET_SPLIT
    topics: Path | None = None
    on_notice: NoticeSink | None = None


def _no_companion_checks(path: Path, options: LoadOptions) -> list[InputError]:
    return []


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
            "pass it: --topics FILE on the command line, topics=FILE in Python"
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
        ),
        GoldsetFormat(
            name="beir",
            description="a BEIR folder: queries.jsonl, qrels/<split>.tsv, corpus.jsonl",
            load=_load_beir,
            companion_checks=_check_beir_corpus,
        ),
        GoldsetFormat(
            name="trec",
            description=(
                "a TREC qrels file plus a topics file (SGML <top>, XML <topic> or qid<TAB>text)"
            ),
            load=_load_trec,
            uses_topics=True,
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
    also needs ``topics``). ``split`` picks the BEIR qrels split. Notices about data an
    importer changed on purpose go to ``on_notice`` (default: the ``evalkit.goldset``
    logger). Raises ``ConfigError`` for an unknown format or missing option and
    ``GoldsetError`` (listing every problem) for invalid data.

    The goldset's ``source`` is ``path`` made absolute, so that what it was imported from (a
    remap looks for the ``corpus.jsonl`` beside it) is found from any working directory.
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
