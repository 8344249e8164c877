"""The ``--goldset`` option of ``run``, ``gate`` and ``compare``, and the options that say
how to read a goldset given there as files (``evalkit.pipeline.resolve_goldset``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

GOLDSET_HELP = (
    "A stored goldset's name, or a goldset folder or file read now and stored by content "
    "(a value with a / is a path; a bare word is a stored name first, else an existing file "
    "or folder)."
)
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
