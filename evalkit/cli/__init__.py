"""evalkit's command line: a thin edge over the library.

The library raises EvalkitError subclasses; only this module turns them into exit codes:
0 success, 2 bad input or usage, 3 retriever or store failure (commands may define more,
such as the gate's 1 regression and 4 inconclusive).
"""

from __future__ import annotations

import sys

import click
import typer.exceptions
from typer._click import exceptions as _typer_click

from evalkit.cli import (  # noqa: F401  (registers the commands)
    answers,
    audit,
    dashboard,
    drift,
    gate,
    goldset,
    index,
    run,
    runs,
    score,
    serve,
    traffic,
)
from evalkit.cli._output import err_console
from evalkit.cli.app import app
from evalkit.errors import EvalkitError
from evalkit.redaction import redact_known

__all__ = ["app", "main"]

USAGE_ERROR = 2
STORE_OR_SYSTEM_FAILURE = 3

# typer 0.29 carries its own copy of click; usage errors may come from either.
_USAGE_ERRORS = (click.ClickException, _typer_click.ClickException)
_ABORTS: tuple[type[BaseException], ...] = (click.exceptions.Abort, typer.exceptions.Abort)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and exit with its code."""
    code = invoke(argv)
    sys.exit(code)


def invoke(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code instead of exiting."""
    try:
        result = app(args=argv, standalone_mode=False, prog_name="evalkit")
    except _ABORTS:
        err_console.print("aborted")
        return 130
    except _USAGE_ERRORS as error:
        error.show()
        return USAGE_ERROR
    except EvalkitError as error:
        err_console.print(
            f"error: {redact_known(str(error))}", style="bold red", markup=False, highlight=False
        )
        return error.exit_code
    except OSError as error:
        # The system refused (disk full, permissions, a vanished file): say so, no traceback.
        err_console.print(
            f"error: {redact_known(str(error))}", style="bold red", markup=False, highlight=False
        )
        return STORE_OR_SYSTEM_FAILURE
    return result if isinstance(result, int) else 0
