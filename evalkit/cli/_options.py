"""What the command modules share: the output format options, the options of a command
that reads documents' texts or judges its results as a further step, and the command
groups."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from evalkit.cli._app import CONTEXT, app
from evalkit.cli._output import OutputFormat
from evalkit.records.requests import MAX_SEED

__all__ = [
    "Format",
    "Output",
    "OutputOnly",
    "TextsChromaUrl",
    "command_group",
    "corpus_for",
    "max_judgments_with",
    "seed_option",
]


def seed_option(help: str, *names: str) -> Any:
    """A ``--seed`` option: an integer from 0 (numpy refuses less) to ``MAX_SEED`` (the store
    keeps seeds as 64-bit integers), refused as misuse before any work."""
    return typer.Option(*names, min=0, max=MAX_SEED, help=help)


Format = Annotated[OutputFormat, typer.Option("--format", help="table or json")]
"""The ``--format table|json`` option of a command that prints a result."""

Output = Annotated[
    OutputFormat, typer.Option("--output", "-o", "--format", help="Output: table or json.")
]
"""The output format of the review commands and of ``goldset generate`` (which writes drafts
for review): ``-o/--output``, or ``--format`` as elsewhere."""

OutputOnly = Annotated[OutputFormat, typer.Option("--output", "-o", help="Output: table or json.")]
"""The ``-o/--output`` format of a command without ``--format`` for it: the review exchange
commands, whose ``--format`` names the annotation tool, and ``goldset remap``."""

TextsChromaUrl = Annotated[
    str | None, typer.Option("--chroma-url", help="With --collection: a Chroma server's URL.")
]
"""The ``--chroma-url`` of a command that reads documents' texts from a ``--collection``."""


def corpus_for(texts: str) -> Any:
    """The ``--corpus`` option of a command whose judging flag reads documents' ``texts``
    (e.g. "--judge's document texts") from the corpus rather than the collection."""
    return typer.Option(
        help=f"The corpus the index was built from, for {texts} (default: the --collection's "
        "stored documents)."
    )


def max_judgments_with(flag: str) -> Any:
    """The ``--max-judgments`` option of a command that judges when given ``flag``."""
    return typer.Option(min=0, help=f"With {flag}: send at most this many new pairs.")


def command_group(name: str, help: str) -> typer.Typer:
    """A command group ``evalkit NAME``, registered on the application: without a
    subcommand it prints its help."""
    group = typer.Typer(help=help, no_args_is_help=True, context_settings=CONTEXT)
    app.add_typer(group, name=name)
    return group
