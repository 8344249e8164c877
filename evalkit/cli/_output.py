"""Shared output helpers for the CLI: table or JSON, progress bars, settings."""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from evalkit.jsonsafe import finite_or_null
from evalkit.redaction import visible

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table

    from evalkit.config import Settings

__all__ = [
    "PROGRESS_INTERVAL",
    "PROGRESS_STEP",
    "OutputFormat",
    "ProgressCallback",
    "ProgressLines",
    "StagedProgress",
    "console",
    "emit_json",
    "err_console",
    "fits",
    "format_interval",
    "format_share",
    "format_value",
    "print_listing",
    "print_text",
    "progress_bar",
    "say",
    "settings",
    "table",
    "visible",
    "with_flags",
]

SETTING_FLAGS: Mapping[str, str] = {
    "(failed_as_zero)": "(--failed-as-zero)",
    "qrels or goldset": "--qrels or --goldset",
    "`max_judgments`": "--max-judgments",
    "verdict `reject` or `grades`": "--reject or --grade",
    "`where_key`": "--where-key",
    "`http_url`": "--http-retriever",
    "`retriever`": "--retriever",
    "`collection`": "--collection",
    "`chroma_url`": "--chroma-url",
    "`goldset`": "--goldset",
    "`goldset_version`": "--goldset-version",
    "give output DIR": "give --output DIR",
    "another output": "another --output",
    "pass overwrite to": "pass --overwrite to",
    "with changes_table": "with --changes-table",
    "`tenant_isolation = false`": "--no-tenant-isolation",
    "pass `overwrite`": "pass --overwrite",
    "pass it as `topics`": "pass it: --topics FILE on the command line, topics=FILE in Python",
    "(`changes`)": "(--changes PATH, repeatable)",
    "(`corpus`)": "(--corpus PATH)",
    "(`name`)": "(--name)",
    '(method = "probe")': "(--method probe)",
    'engine = "ray"': "--engine ray",
    'engine = "local"': "--engine local",
    "(`ray_actors`)": "(--ray-actors)",
    "(`answers = false`)": "(--no-answers)",
    "`weights` per run": "--weight per run",
    "(`params` ": "(--param ",
    "`optimize`": "--optimize",
    "leave out `weights`": "leave out --weight",
    "leave out `params` ": "leave out --param ",
    "`train_tag`": "--train-tag",
    "(`weights`, in the order": "(--weight, in the order",
    "one `weights` entry per run": "one --weight per run",
    "(`baseline`)": "(--baseline RUN)",
    "name one (`measures`)": "name one with -m",
    "`mix`": "--mix",
    "`max_per_source`": "--max-per-source",
    "`dedup_threshold`": "--dedup-threshold",
    "`max_calls`": "--max-calls",
    "`k`": "--k",
    "`out`": "--out",
    "`last`": "--last",
    "`tag`": "--tag",
    "`min_overlap`": "--min-overlap",
    "`min_reviews`": "--min-reviews",
    "`old_corpus`": "--old-corpus",
}
"""How a message raised below the CLI names a setting (a record's field, a config key;
a field in backticks), and the flags the CLI gives it by."""


def with_flags(message: str) -> str:
    """``message`` with each setting it names (``SETTING_FLAGS``) named by its flag."""
    for setting, flag in SETTING_FLAGS.items():
        message = message.replace(setting, flag)
    return message


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


# No markup: what is printed holds query texts, ids and paths from users' data, where
# "[/x]" is text (rich would read it as a closing tag, and fail on it). No highlighting:
# rich colours every number, date and bracket it finds, mid-sentence, in a terminal.
_stdout_proxy = _ConsoleOnFirstUse(width=_PIPED_WIDTH, markup=False, highlight=False)
# Messages on stderr are read by people and grepped by CI logs: never wrap them.
_stderr_proxy = _ConsoleOnFirstUse(stderr=True, soft_wrap=True, markup=False, highlight=False)
console = cast("Console", _stdout_proxy)
err_console = cast("Console", _stderr_proxy)

PROGRESS_INTERVAL = 10.0
"""Seconds between plain progress lines, at most, when stderr is not a terminal."""
PROGRESS_STEP = 0.1
"""Share of the work after which a plain progress line is printed, whatever the time."""

_global_overrides: dict[str, Any] = {}


class OutputFormat(StrEnum):
    """How a command prints its result."""

    table = "table"
    json = "json"


def set_global_overrides(**overrides: Any) -> None:
    """Remember options given before the command name (``evalkit --home DIR run ...``),
    replacing what an earlier invocation in the same process set."""
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


def print_text(message: str) -> None:
    """Print a message on stdout, as it is (control characters escaped)."""
    console.print(visible(message), markup=False)


def say(message: str) -> None:
    """Print a message for people on stderr, as it is (control characters escaped)."""
    err_console.print(visible(message), markup=False)


def format_value(value: object) -> str:
    """A cell for people: floats to 4 decimals, None as a dash, control characters escaped."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return visible(str(value))


def format_interval(
    value: float | None, low: float | None, high: float | None, *, undefined: str = "-"
) -> str:
    """A figure with its interval for people, ``value [low, high]`` to 3 decimals: the value
    alone without both bounds, ``undefined`` without a value."""
    if value is None:
        return undefined
    if low is None or high is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def format_share(share: float | None) -> str:
    """A share for people as a percentage with one decimal, None as a dash."""
    return "-" if share is None else f"{share:.1%}"


# Characters that break a line: in a cell naming a row they are written as escapes, or
# "q1\nq2" would read as a row q1 and a row q2 (format_value escapes the control characters
# among them already). Other cells keep their newlines: an error message spans lines.
_LINE_BREAKS = str.maketrans({c: ascii(c)[1:-1] for c in "\n\r\x0b\x0c\x85\u2028\u2029"})


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    whole: Sequence[int] = (),
) -> Table:
    """A rich table with numeric-looking columns right-aligned, its first column (what
    names each row) on one line, and kept whole unless it cannot fit beside the others.

    The columns numbered in ``whole`` (ids past the first column, such as a leaderboard's
    run beside its rank) are kept on one line and whole up to 40 characters too."""
    from evalkit.cli._rows import NamedRows, RowName

    # The first column names the row (a run id, a query id): kept whole, to be copied into
    # the next command, while the others are shortened when the terminal is narrow; only a
    # name too wide to leave the others room is shortened (in the middle) instead.
    names = [format_value(row[0]).translate(_LINE_BREAKS) for row in rows]
    result = NamedRows(title, names)
    for index, column in enumerate(columns):
        numeric = bool(rows) and all(
            isinstance(row[index], int | float) or row[index] is None for row in rows
        )
        kept = index in whole
        result.add_column(
            column,
            justify="right" if numeric else "left",
            no_wrap=index == 0 or kept,
            min_width=result.name_min_width
            if index == 0
            else min(max((len(format_value(row[index])) for row in rows), default=0), 40)
            if kept
            else None,
        )
    for name, row in zip(names, rows, strict=True):
        result.add_row(RowName(name), *(format_value(cell) for cell in row[1:]))
    return result


# Wide enough for any table's natural width: measured there, a table is not squeezed yet.
_UNBOUNDED_WIDTH = 100_000


def fits(renderable: RenderableType) -> bool:
    """Whether ``renderable`` fits the terminal as it is, no column of it squeezed.

    Where it does not, rich narrows the columns until it fits, and a column narrower than
    its values cuts them: a table of many measures in an 80-column terminal read ``0.7…``
    for every number and ``regr…`` for the decision."""
    from rich.measure import Measurement

    out = _stdout_proxy.resolve()
    options = out.options.update_width(_UNBOUNDED_WIDTH)
    return Measurement.get(out, options, renderable).maximum <= out.width


class _Listed(Protocol):
    """A stored record a command lists: it has a JSON-ready form."""

    def to_dict(self) -> Any: ...


_ListedT = TypeVar("_ListedT", bound=_Listed)


def print_listing(
    items: Sequence[_ListedT],
    output: OutputFormat,
    *,
    title: str,
    columns: Sequence[str],
    row: Callable[[_ListedT], Sequence[object]],
) -> None:
    """Print stored records as JSON (each one's ``to_dict()``) or as a table titled
    ``title`` with a ``row(item)`` under ``columns`` for each."""
    if output is OutputFormat.json:
        emit_json([item.to_dict() for item in items])
        return
    console.print(table(title, columns, [row(item) for item in items]))


def key_values(title: str, items: Mapping[str, object]) -> Table:
    """A two-column table of labelled facts, without a header row: its labels name them."""
    facts = table(title, ["", ""], [[key, value] for key, value in items.items()])
    facts.show_header = False
    return facts


def print_fitting(
    drawn: Table,
    blocks: Sequence[tuple[str, Mapping[str, object]]],
    *,
    title: str | None = None,
) -> None:
    """Print the table ``drawn`` when it fits the terminal (``fits``); else, rather than
    have it cut its values, ``title`` and then each of ``blocks`` (a row's name and its
    labelled facts) as a table of its own."""
    if fits(drawn):
        console.print(drawn)
        return
    if title is not None:
        console.print(title, markup=False)
    for name, facts in blocks:
        block = key_values(name, facts)
        # As wide as its name, which would otherwise wrap to the width of short facts.
        block.min_width = min(len(name), console.width)
        console.print(block)


def _clock_text(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


class ProgressLines:
    """Plain progress lines for a log: ``description: done/total (pct), elapsed, left``.

    A line is printed when the work passes a further ``step`` of its total and, while the
    work runs, whenever ``interval`` seconds went by without one (``start()`` runs that
    heartbeat on a thread), so a CI log shows a long command is alive. ``write`` receives
    whole lines; ``clock`` is monotonic seconds. Safe to update from several threads.
    """

    def __init__(
        self,
        description: str,
        *,
        write: Callable[[str], None],
        interval: float = PROGRESS_INTERVAL,
        step: float = PROGRESS_STEP,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._description = visible(description)
        self._write = write
        self._interval = interval
        self._step = step
        self._clock = clock
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = clock()
        self._last_line = self._started
        self._done = 0
        self._total: int | None = None
        self._steps_shown = 0
        self._shown: tuple[int, int | None] | None = None
        self._completed: float | None = None

    def update(self, done: int, total: int | None) -> None:
        """Record progress; print a line if it passed a further step of the work."""
        with self._lock:
            self._done, self._total = done, total
            if total and done >= total and self._completed is None:
                self._completed = self._clock()
            if total and total > 0:
                steps = int(min(done, total) / total / self._step + 1e-9)
                if steps > self._steps_shown:
                    self._steps_shown = steps
                    self._emit(self._clock())

    def tick(self) -> None:
        """Print a line if ``interval`` seconds passed since the last one."""
        with self._lock:
            now = self._clock()
            if now - self._last_line >= self._interval:
                self._emit(now)

    def finish(self) -> None:
        """Print the final state unless the last line already showed it."""
        with self._lock:
            if self._shown is not None and self._shown != (self._done, self._total):
                self._emit(self._clock())

    def start(self) -> None:
        """Run ``tick`` on a daemon thread until ``stop``."""
        self._thread = threading.Thread(target=self._beat, name="evalkit-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the heartbeat thread."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()

    def _beat(self) -> None:
        # Wakes often enough that a line is never much later than the interval.
        while not self._stopped.wait(min(self._interval / 4, 1.0)):
            self.tick()

    def _emit(self, now: float) -> None:
        elapsed = now - self._started
        done, total = self._done, self._total
        if total and self._completed is not None and self._shown == (done, total):
            # The work counted is done and said so; what runs now (scoring and storing a
            # run) is said as such, not as the same 100 % again, which reads as stuck.
            took = _clock_text(self._completed - self._started)
            line = (
                f"{self._description}: {done:,}/{total:,} (100%) in {took}; finishing, "
                f"{_clock_text(elapsed)}"
            )
        elif total:
            share = min(done, total) / total
            line = f"{self._description}: {done:,}/{total:,} ({share:.0%}), {_clock_text(elapsed)}"
            if 0 < done < total:
                line += f", about {_clock_text(elapsed / share - elapsed)} left"
        elif done:
            line = f"{self._description}: {done:,} done, {_clock_text(elapsed)}"
        else:
            line = f"{self._description}: started, {_clock_text(elapsed)}"
        self._write(line + "\n")
        self._last_line = now
        self._shown = (done, total)


def _write_stderr(line: str) -> None:
    sys.stderr.write(line)
    sys.stderr.flush()


ProgressCallback = Callable[[int, int | None], None]
"""``update(done, total)``: how far a piece of work is (``total`` None: not known yet)."""


class StagedProgress:
    """The progress callback of a command's work (call it: ``update(done, total)``), and of
    what follows it: ``stage(description)`` gives the callback of a later stage, shown once
    it is first called (a run's answers, scored by the judge after its replay, would
    otherwise sit behind a finished bar that reads as stuck)."""

    def __init__(self, start: Callable[[str], ProgressCallback], description: str) -> None:
        self._start = start
        self._update = start(description)

    def __call__(self, done: int, total: int | None) -> None:
        self._update(done, total)

    def stage(self, description: str) -> ProgressCallback:
        """The callback of the stage ``description``, which shows it when first called."""
        started: list[ProgressCallback] = []

        def update(done: int, total: int | None) -> None:
            if not started:
                started.append(self._start(description))
            started[0](done, total)

        return update


@contextmanager
def progress_bar(
    description: str,
    *,
    enabled: bool,
    interval: float = PROGRESS_INTERVAL,
    total: int | None = None,
) -> Iterator[StagedProgress | None]:
    """A progress callback for ``description``'s work (and its later stages:
    ``StagedProgress.stage``), or None when output must stay quiet. ``total``, when known
    before the work starts, is shown from the first frame (else ``0/?`` until the first
    update).

    On a terminal it draws a bar per stage on stderr, elsewhere ``ProgressLines`` on stderr.
    """
    if not enabled:
        yield None
        return
    stderr = _stderr_proxy.resolve()
    first_total = [total]  # the first stage's, taken by the first stage started
    if not stderr.is_terminal:
        stages: list[ProgressLines] = []

        def start_lines(stage: str) -> ProgressCallback:
            if stages:
                stages[-1].stop()
                stages[-1].finish()
            lines = ProgressLines(stage, write=_write_stderr, interval=interval)
            if first_total:
                lines.update(0, first_total.pop())
            lines.start()
            stages.append(lines)
            return lines.update

        try:
            yield StagedProgress(start_lines, description)
        finally:
            stages[-1].stop()
        stages[-1].finish()
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
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
    ) as bar:

        def start_bar(stage: str) -> ProgressCallback:
            task = bar.add_task(visible(stage), total=first_total.pop() if first_total else None)

            def update(done: int, total: int | None) -> None:
                bar.update(task, completed=done, total=total)

            return update

        yield StagedProgress(start_bar, description)
