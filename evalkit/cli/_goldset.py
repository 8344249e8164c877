"""The goldset options of ``run``, ``gate`` and ``compare`` (``--goldset``, and how to read
a goldset given there as files), one group (``GOLDSET``) parsed into a ``GoldsetSelection``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evalkit.cli._groups import OptionGroup
from evalkit.records.requests import (
    DEFAULT_GOLDSET_FORMAT,
    DEFAULT_GOLDSET_SPLIT,
    GoldsetSelection,
)

if TYPE_CHECKING:
    from evalkit.config import Settings
    from evalkit.goldset.model import Goldset

__all__ = ["GOLDSET", "GOLDSET_HELP", "resolve_selection"]

GOLDSET_HELP = (
    "A stored goldset's name, or a goldset folder or file read now and stored by content "
    "(a value with a / is a path; a bare word is a stored name first, else an existing file "
    "or folder)."
)


GoldsetName = Annotated[str, typer.Option(help=GOLDSET_HELP)]
GoldsetVersion = Annotated[
    str | None, typer.Option(help="Stored goldset's version (default: newest).")
]
GoldsetFormat = Annotated[
    str,
    typer.Option("--goldset-format", help="Format of a --goldset path: jsonl, beir or trec."),
]
GoldsetSplit = Annotated[
    str, typer.Option("--goldset-split", help="BEIR qrels split of a --goldset path.")
]
GoldsetTopics = Annotated[
    Path | None,
    typer.Option("--goldset-topics", help="TREC topics file of a --goldset qrels path."),
]


def _goldset(
    *,
    goldset: GoldsetName,
    goldset_version: GoldsetVersion = None,
    goldset_format: GoldsetFormat = DEFAULT_GOLDSET_FORMAT,
    goldset_split: GoldsetSplit = DEFAULT_GOLDSET_SPLIT,
    goldset_topics: GoldsetTopics = None,
) -> GoldsetSelection:
    return GoldsetSelection(goldset, goldset_version, goldset_format, goldset_split, goldset_topics)


GOLDSET = OptionGroup(_goldset)
"""``--goldset`` (required unless a command declares it otherwise), ``--goldset-version``,
``--goldset-format``, ``--goldset-split`` and ``--goldset-topics``, parsed into a
``GoldsetSelection``."""


def resolve_selection(
    selection: GoldsetSelection, purpose: str, config: Settings
) -> str | Goldset | None:
    """The goldset ``selection`` names (``evalkit.pipeline.resolve_goldset``): a stored
    name, or one read from its files; None when it names none."""
    from evalkit.cli._store import CommandStore
    from evalkit.pipeline import resolve_goldset

    if selection.name is None:
        return None
    store = (
        CommandStore(purpose, write=False, config=config)
        if config.resolved_store_path.exists()
        else None
    )
    return resolve_goldset(
        store,
        selection.name,
        format=selection.format,
        split=selection.split,
        topics=selection.topics,
    )
