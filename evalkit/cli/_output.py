"""Shared output helpers for the CLI: table or JSON, progress bars, settings."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from evalkit.jsonsafe import finite_or_null

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from evalkit.config import Settings

__all__ = [
    "OutputFormat",
    "console",
    "emit_json",
    "err_console",
    "format_value",
    "progress_bar",
    "settings",
    "table",
]

# Piped output (CI logs, files) would otherwise be cut to 80 columns, squashing tables.
_PIPED_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160


class _ConsoleOnFirstUse:
    """A rich Console made when first printed to, so `evalkit --help` never loads rich.

    Attribute access is forwarded; code that needs the Console itself (rich's ``Progress``
    enters it as a context manager, which a forwarding proxy cannot be) asks ``resolve()``.
    """

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def resolve(self) -> Console:
        """The Console, made now if nothing has printed yet."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.resolve(), name)


_stdout_proxy = _ConsoleOnFirstUse(width=_PIPED_WIDTH)
# Messages on stderr are read by people and grepped by CI logs: never wrap them.
_stderr_proxy = _ConsoleOnFirstUse(stderr=True, soft_wrap=True)
console = cast("Console", _stdout_proxy)
err_console = cast("Console", _stderr_proxy)

_global_overrides: dict[str, Any] = {}


class OutputFormat(StrEnum):
    """How a command prints its result."""

    table = "table"
    json = "json"


def set_global_overrides(**overrides: Any) -> None:
    """Remember options given before the command name (``evalkit --home DIR run ...``).

    Replaces what an earlier invocation in the same process set.
    """
    _global_overrides.clear()
    _global_overrides.update({key: value for key, value in overrides.items() if value})


def settings(**overrides: Any) -> Settings:
    """The settings for this command: global options, then the command's own overrides."""
    from evalkit.config import load_settings

    return load_settings(**{**_global_overrides, **overrides})


def _json_default(value: object) -> object:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (NaN and infinities become null)."""
    sys.stdout.write(json.dumps(finite_or_null(data), indent=2, default=_json_default) + "\n")


def format_value(value: object) -> str:
    """A cell for people: floats to 4 decimals, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    """A rich table with numeric-looking columns right-aligned."""
    from rich.table import Table

    result = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        numeric = bool(rows) and all(
            isinstance(row[index], int | float) or row[index] is None for row in rows
        )
        result.add_column(column, justify="right" if numeric else "left")
    for row in rows:
        result.add_row(*(format_value(cell) for cell in row))
    return result


def key_values(title: str, items: Mapping[str, object]) -> Table:
    """A two-column table of labelled facts."""
    return table(title, ["", ""], [[key, value] for key, value in items.items()])


@contextmanager
def progress_bar(
    description: str, *, enabled: bool
) -> Iterator[Callable[[int, int | None], None] | None]:
    """A progress callback drawing a bar on stderr, or None when output must stay quiet.

    Bars show only on a terminal and never with ``--format json``.
    """
    stderr = _stderr_proxy.resolve() if enabled else None
    if stderr is None or not stderr.is_terminal:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield update
