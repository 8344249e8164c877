"""What the command modules share: the ``--format`` option and their command groups."""

from __future__ import annotations

from typing import Annotated

import typer

from evalkit.cli._app import CONTEXT, app
from evalkit.cli._output import OutputFormat

__all__ = ["Format", "command_group"]

Format = Annotated[OutputFormat, typer.Option("--format", help="table or json")]
"""The ``--format table|json`` option of a command that prints a result."""


def command_group(name: str, help: str) -> typer.Typer:
    """A command group ``evalkit NAME``, registered on the application: without a
    subcommand it prints its help."""
    group = typer.Typer(help=help, no_args_is_help=True, context_settings=CONTEXT)
    app.add_typer(group, name=name)
    return group
