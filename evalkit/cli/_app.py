"""The typer application and its command groups (commands register themselves on these)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evalkit import __version__
from evalkit.cli._output import set_global_overrides

__all__ = [
    "app",
    "command_group",
    "end_without_teardown",
    "goldset_app",
    "review_app",
    "runs_app",
    "store_app",
    "teardown_needed",
]

CONTEXT = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    name="evalkit",
    help="Watch the retrieval layer of a RAG system: replay golden sets against the live "
    "retriever, score them exactly as trec_eval does, and keep every figure in DuckDB.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings=CONTEXT,
    rich_markup_mode=None,
)


def command_group(name: str, help: str) -> typer.Typer:
    """A command group ``evalkit NAME``, registered on the application: without a
    subcommand it prints its help."""
    group = typer.Typer(help=help, no_args_is_help=True, context_settings=CONTEXT)
    app.add_typer(group, name=name)
    return group


goldset_app = command_group("goldset", "Import, validate and list versioned golden sets.")
runs_app = command_group("runs", "List, inspect, export and import stored runs.")
review_app = command_group(
    "review",
    "Review draft goldset items (promoted traffic, generated questions, assessor "
    "disagreements) in priority order, grade them 0-3, and measure reviewer agreement; "
    "`evalkit goldset publish` turns accepted items into a goldset version.",
)
store_app = command_group("store", "Look after the store file itself (evalkit.duckdb).")


_teardown = {"needed": True}


def end_without_teardown() -> None:
    """Let the process end as soon as the command returns, without the interpreter's
    teardown (exit hooks other than logging's do not run), which unloads modules and Chroma's
    and ONNX Runtime's native libraries for about 0.4 s. Call it only once everything the
    command wrote is closed (the store, reports) and no thread of its own is left."""
    _teardown["needed"] = False


def teardown_needed() -> bool:
    """False once the running command has said it may end without teardown."""
    return _teardown["needed"]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"evalkit {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="Directory of the store and embedded Chroma (default: $EVALKIT_HOME, else "
            "the nearest .evalkit/ in the working directory or its parents, else ./.evalkit).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print evalkit's version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """evalkit: retrieval evaluation and monitoring."""
    set_global_overrides(home=home)
