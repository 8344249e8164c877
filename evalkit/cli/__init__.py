"""evalkit's command line: a thin edge over the library.

The library raises EvalkitError subclasses; only this module turns them into exit codes
(docs/cli.md, "Exit codes"). Commands import the stages they call inside the command
function, so `evalkit --help` loads no stage and `evalkit CMD` only CMD's module and what it
runs; this is the one place where evalkit imports its own modules inside functions without
a comment on each.
"""

from __future__ import annotations

import copy
import importlib
import logging
import os
import signal
import sys
import threading
import typing
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Any, cast

import typer
import typer.core
import typer.main
import typer.models

from evalkit.cli._output import OutputFormat, emit_json, err_console, visible, with_flags
from evalkit.errors import DUCKDB_INTERRUPTED, EvalkitError
from evalkit.extras import missing_extra
from evalkit.redaction import SecretLogFilter, redact_known

if TYPE_CHECKING:
    import click

    from evalkit.cli._app import app

__all__ = ["COMMAND_MODULES", "app", "invoke", "load_commands", "main"]

# The module that registers each top-level command, in the order `evalkit --help` lists them.
COMMAND_MODULES: dict[str, str] = {
    "answers": "answers",
    "audit": "audit",
    "dashboard": "dashboard",
    "drift": "drift",
    "drill": "drill",
    "explain": "explain",
    "freshness": "freshness",
    "gate": "gate",
    "compare": "gate",
    "fuse": "fuse",
    "goldset": "goldset",
    "index": "index",
    "jobs": "jobs",
    "judge": "judge",
    "review": "review",
    "alerts": "alerts",
    "run": "run",
    "runs": "runs",
    "schema": "schema",
    "score": "score",
    "serve": "serve",
    "store": "store",
    "sweep": "sweep",
    "traffic": "traffic",
}
COMMAND_SUMMARIES: dict[str, str] = {
    "audit": "Audit an index: duplicates, staleness, model mismatch, recall.",
    "dashboard": "Serve the dashboard (Streamlit) over the configured store.",
    "drill": "Rehearse incidents on a copy of the index; see what fires.",
    "explain": "Name the probable causes of a regression, ranked.",
    "freshness": "Measure how long source changes take to become retrievable.",
    "compare": "Compare runs query by query, or rank several.",
    "gate": "Fail on a statistically significant retrieval regression.",
    "fuse": "Fuse stored runs of one goldset version into a new run.",
    "index": "Embed a corpus into a Chroma collection, or build a BM25 index.",
    "run": "Replay a goldset against the live retriever, score, store it.",
    "schema": "Print a JSON Schema of a format evalkit reads or writes.",
    "score": "Score a TREC run file against TREC qrels, as trec_eval does.",
    "serve": "Run the scheduled jobs and alert rules, and deliver alerts.",
    "sweep": "Run a grid of retriever settings against a goldset; rank them.",
    "goldset": "Import, validate and list versioned golden sets.",
    "runs": "List, inspect, export and import stored runs.",
    "review": "Review and grade draft goldset items; measure agreement.",
    "store": "Look after the store file itself (evalkit.duckdb).",
    "answers": "Score generated answers: faithfulness, relevance, context.",
    "drift": "Test embeddings, the embedding model and precision for drift.",
    "jobs": "List the configured jobs and run one now.",
    "judge": "Grade retrieved documents 0-3 with an LLM; measure agreement.",
    "alerts": "Stored alerts, rule evaluation and delivery, and sink checks.",
    "traffic": "Ingest, sample and replay production queries; promote them.",
}
"""Each top-level command's line in ``evalkit --help``, in the order it lists them: the list
is drawn from here, without loading any command's module (``_listing``). A line fits the
80 columns of the list whole."""
_OPTIONS_WITH_A_VALUE = {"--home"}

USAGE_ERROR = 2
STORE_OR_SYSTEM_FAILURE = 3


def _click_exception_classes() -> tuple[type[click.ClickException], ...]:
    """The ClickException class a usage error is raised as: typer (from 0.26) carries its own
    copy of click, whose ClickException is reachable only through the public
    ``typer.BadParameter``'s bases. (click itself is not imported: 20 ms of every start.)"""
    # The copy has click's interface (show, format_message), which is all invoke uses.
    return tuple(
        cast("type[click.ClickException]", base)
        for base in typer.BadParameter.__mro__
        if base.__name__ == "ClickException"
    )


_USAGE_ERRORS = _click_exception_classes()
_ABORTS: tuple[type[BaseException], ...] = (typer.Abort,)
_MISNAMED_PATHS: dict[type[OSError], str] = {
    IsADirectoryError: "is a folder; give a file",
    NotADirectoryError: "is not a folder (a file stands where the path goes through one)",
}
INTERRUPTED = 130
INTERRUPTED_NOTE = (
    "interrupted: what was stored before is kept, and a run that was being recorded is "
    "stored as failed (`evalkit runs list`)"
)
TERMINATED = 128 + signal.SIGTERM
TERMINATED_NOTE = INTERRUPTED_NOTE.replace("interrupted:", "terminated (SIGTERM):", 1)


class Terminated(SystemExit):
    """SIGTERM, raised in the main thread so that what a command is writing is closed as on
    Ctrl-C (a run being recorded stored as failed) instead of the process just vanishing.

    A SystemExit, because asyncio logs and drops any other exception raised in an event loop's
    callbacks: a SIGTERM landing while a judge's requests were being sent was ignored.
    """


_signalled: dict[str, bool] = {"SIGTERM": False}


def _raise_terminated(signum: int, frame: object) -> None:
    _signalled["SIGTERM"] = True
    raise Terminated("SIGTERM")


def __getattr__(name: str) -> Any:
    # `from evalkit.cli import app` gets the application with every command registered.
    if name == "app":
        return load_commands([])
    raise AttributeError(name)


def _command_name(args: list[str]) -> str | None:
    """The top-level command ``args`` name, skipping the global options before it."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _OPTIONS_WITH_A_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def load_commands(args: list[str]) -> typer.Typer:
    """The application with the commands ``args`` can reach registered: only the named
    command's module when ``args`` name a known command (each command then pays only for
    its own options), none for ``--version``, every one otherwise (``--help``, a typo)."""
    from evalkit.cli._app import app

    name = _command_name(args)
    if name in COMMAND_MODULES:
        modules = [COMMAND_MODULES[name]]
    elif name is None and "--version" in args:
        modules = []
    else:
        modules = list(dict.fromkeys(COMMAND_MODULES.values()))
    for module in modules:
        importlib.import_module(f"evalkit.cli.{module}")
    return app


_COMPLETION = "_EVALKIT_COMPLETE"
"""The variable a shell's completion call sets (typer's ``_PROG_COMPLETE``): it completes
every command's options, from no arguments on the command line."""


def _only_listing(args: list[str]) -> bool:
    """Whether ``args`` name no command: what they do (the help, a usage error of the root's
    options, the completion scripts) needs each command's name and help, not its options."""
    return _command_name(args) is None and "--version" not in args and _COMPLETION not in os.environ


def _listing() -> typer.Typer:
    """The application as ``evalkit --help`` shows it: the root's options and each command
    by its name and ``COMMAND_SUMMARIES`` line, without loading a command's module (typer
    would read all 130 commands' signatures for a list that shows none of it)."""
    from evalkit.cli._app import app

    listed = copy.copy(app)
    listed.registered_groups = []
    listed.registered_commands = [
        typer.models.CommandInfo(name, callback=_listed, short_help=summary)
        for name, summary in COMMAND_SUMMARIES.items()
    ]
    return listed


def _listed() -> None:
    """Stands for a command in the list of commands (``_listing``); never run."""


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and exit with its code. SIGTERM (a CI job cancelled, ``timeout``, a
    container stopped) ends the command as Ctrl-C does, with exit code 143."""
    signal.signal(signal.SIGTERM, _raise_terminated)
    code = invoke(argv)
    from evalkit.cli._app import teardown_needed

    if not teardown_needed() and threading.active_count() == 1:
        _end_now(code)
    if code in (INTERRUPTED, TERMINATED) and _only_requests_left():
        # What the command wrote is closed; the interpreter's exit would wait for requests
        # in flight to a hung endpoint (timeout times attempts) before the process ends.
        _end_now(code)
    sys.exit(code)


def _only_requests_left() -> bool:
    """Whether every thread but this one is a retriever request left in flight."""
    from evalkit.coroutines import REQUEST_THREADS

    main_thread = threading.main_thread()
    return all(
        thread is main_thread or thread.daemon or thread.name.startswith(REQUEST_THREADS)
        for thread in threading.enumerate()
    )


def _end_now(code: int) -> None:
    """End the process with ``code`` without the interpreter's teardown (the command has
    closed what it wrote and no other thread is left); a stream that cannot be flushed
    falls back to the ordinary exit, which reports it."""
    logging.shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(code)


def invoke(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code instead of exiting.

    A failure prints its message on stderr and, with JSON output, a JSON error object on
    stdout (docs/cli.md, "Errors as JSON").
    """
    args = sys.argv[1:] if argv is None else list(argv)
    _mask_log_lines()
    _quiet_offline_models()
    try:
        application = _listing() if _only_listing(args) else load_commands(args)
        result = application(args=args, standalone_mode=False, prog_name="evalkit")
    except _ABORTS:
        err_console.print("aborted")
        return _json_error(args, "Interrupted", "aborted", INTERRUPTED)
    except Terminated:
        return _stopped(args, terminated=True)
    except RuntimeError as error:
        if str(error) != DUCKDB_INTERRUPTED:  # the signal is then told by the flag
            raise
        return _stopped(args, terminated=_signalled["SIGTERM"])
    except _USAGE_ERRORS as error:
        error.show()
        return _json_error(args, "UsageError", error.format_message(), USAGE_ERROR)
    except EvalkitError as error:
        message = redact_known(with_flags(str(error)))
        err_console.print(f"error: {visible(message)}", style="bold red", markup=False)
        problems = [
            {"path": p.path, "line": p.line, "field": p.field, "message": redact_known(p.detail)}
            for p in getattr(error, "problems", [])
        ]
        return _json_error(args, type(error).__name__, message, error.exit_code, problems)
    except ImportError as error:
        missing = missing_extra(error, f"`evalkit {_command_words(args)}`")
        if missing is None:
            raise
        err_console.print(f"error: {visible(str(missing))}", style="bold red", markup=False)
        return _json_error(args, type(missing).__name__, str(missing), missing.exit_code)
    except OSError as error:
        # The system refused (disk full, permissions, a vanished file): say so, no traceback.
        # A folder given where a file goes (or the reverse) is the user's path, not a fault.
        misnamed = _MISNAMED_PATHS.get(type(error))
        path = error.filename2 if error.filename2 is not None else error.filename
        message = redact_known(f"{path}: {misnamed}" if misnamed and path else str(error))
        err_console.print(f"error: {visible(message)}", style="bold red", markup=False)
        code = USAGE_ERROR if misnamed and path else STORE_OR_SYSTEM_FAILURE
        return _json_error(args, type(error).__name__, message, code)
    if result == INTERRUPTED:  # typer's answer to Ctrl-C in a command
        return _stopped(args, terminated=False)
    return result if isinstance(result, int) else 0


def _stopped(args: list[str], *, terminated: bool) -> int:
    """Say that Ctrl-C (or SIGTERM) stopped the command, on stderr and, when it was asked
    for JSON, as the error object on stdout; return the exit code."""
    note, code = (TERMINATED_NOTE, TERMINATED) if terminated else (INTERRUPTED_NOTE, INTERRUPTED)
    err_console.print(note, markup=False)
    return _json_error(args, "Terminated" if terminated else "Interrupted", note, code)


class _MaskedStderr(logging.Handler):
    """Prints each record on ``sys.stderr`` as it is when the record comes (a command run
    in process may have redirected it), as Python's last-resort handler does."""

    def emit(self, record: logging.LogRecord) -> None:
        """Write the formatted record and a newline."""
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


_MODEL_ENVIRONMENT: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
}
"""What the command line's process sets, unless already set, before any model library is
imported: nothing of Hugging Face's reaches the network, prints progress bars or warns."""


def _quiet_offline_models() -> None:
    """Set ``_MODEL_ENVIRONMENT`` in this process (and the processes it starts).

    Only the command line does: the library leaves a notebook's or script's environment as it
    found it (huggingface_hub reads ``HF_HUB_OFFLINE`` once, on import, so a setting made
    while loading would refuse the user's own downloads for good).
    """
    for name, value in _MODEL_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def _mask_log_lines() -> None:
    """Give the ``evalkit`` logger a stderr handler that masks every registered secret,
    unless it has handlers already (``evalkit serve`` sets up its own, masking too).

    Without one, a warning went out through Python's last-resort handler, which masks
    nothing: a sink's delivery failure printed the other sinks' tokens it quoted.
    """
    logger = logging.getLogger("evalkit")
    if logger.handlers:
        return
    handler = _MaskedStderr(logging.WARNING)
    handler.addFilter(SecretLogFilter())
    logger.addHandler(handler)


def _command_words(args: list[str]) -> str:
    """The command ``args`` name (``run``, ``goldset import``), for messages."""
    words = [arg for arg in args if not arg.startswith("-")][:2]
    command = typer.main.get_group(load_commands(words)).commands.get(words[0]) if words else None
    if isinstance(command, typer.core.TyperGroup):
        return " ".join(words)
    return words[0] if words else ""


def _json_error(
    args: list[str],
    kind: str,
    message: str,
    exit_code: int,
    problems: list[dict[str, Any]] | None = None,
) -> int:
    """Print the JSON error object when ``args`` ask for JSON output; return ``exit_code``.

    ``problems`` (an input file's bad lines, when the error lists them) is ``error.problems``.
    """
    if _wants_json(args):
        error: dict[str, Any] = {"type": kind, "message": message, "exit_code": exit_code}
        if problems:
            error["problems"] = problems
        emit_json({"error": error})
    return exit_code


def _is_output_option(param: Any) -> bool:
    """An output-format option (``OutputFormat``, or another enum of output formats that
    offers table and json, like ``explain``'s with markdown), or a repeatable format option
    that takes ``json`` among input formats (``traffic ingest --format otlp-json --format
    json``)."""
    default = getattr(param, "default", None)
    if isinstance(default, OutputFormat):
        return True
    if isinstance(default, StrEnum) and {"table", "json"} <= {m.value for m in type(default)}:
        return True
    return bool(getattr(param, "multiple", False)) and OutputFormat.json.value in _choices(param)


def _choices(param: Any) -> list[str]:
    """The values a choice option takes: click's ``Choice``, or (typer 0.29 keeps no click
    type on its options) the enum its annotation names, alone or as the items of a list."""
    choices = getattr(getattr(param, "type", None), "choices", None)
    if choices is not None:
        return [str(choice) for choice in choices]
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, Enum):
            return [str(member.value) for member in candidate]
    return []


def _wants_json(args: list[str]) -> bool:
    """Whether ``args`` give the invoked command's output-format option the value ``json``.

    The option is found on the command itself (``--format`` on most, ``-o/--output`` where
    ``--format`` names an input format), so ``goldset import --format beir`` is not mistaken.
    """
    command: Any = typer.main.get_command(load_commands(args))
    for arg in args:
        subcommands = getattr(command, "commands", None)
        if subcommands is not None and arg in subcommands:
            command = subcommands[arg]
    names = {
        opt
        for param in command.params
        if _is_output_option(param)
        for opt in getattr(param, "opts", ())
    }
    for position, arg in enumerate(args):
        name, equals, value = arg.partition("=")
        if not equals:
            value = args[position + 1] if position + 1 < len(args) else ""
        if name in names and value == OutputFormat.json.value:
            return True
        if arg.startswith("-o") and "-o" in names and arg[2:] == OutputFormat.json.value:
            return True
    return False
