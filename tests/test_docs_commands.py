"""The command lines of README.md and docs/*.md parse against the real command line: an option
renamed or removed, a subcommand moved, a choice that is no longer one would otherwise leave
a page a user copies from failing (`goldset publish NAME --format json` did)."""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from conftest import REPO_ROOT
from test_cli_exit_codes import registered_commands

from evalkit.cli import _USAGE_ERRORS, app

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SHELL_BLOCKS = {"", "sh", "bash", "shell", "console"}
# Where a documented command line stops being the command's arguments.
SHELL_OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "2>", "2>&1", "<"}
# A placeholder path, an option left for the reader to add: the command line is still right.
TOLERATED = ("Missing argument", "Missing option", "does not exist")


def command_lines(page: Path) -> Iterator[str]:
    """The ``evalkit ...`` command lines of the page's shell blocks (console blocks: the
    ``$`` lines), continuation lines joined and environment assignments dropped."""
    for language, body in FENCE.findall(page.read_text(encoding="utf-8")):
        if language not in SHELL_BLOCKS:
            continue
        for typed in body.replace("\\\n", " ").splitlines():
            if language == "console" and not typed.startswith("$ "):
                continue  # the command's output
            line = re.sub(r"^(\w+=\S*\s+)+", "", typed.removeprefix("$ ").strip())
            # Diagrams drawn in a plain block name commands beside their arrows.
            if line.startswith("evalkit ") and not re.search(r"[─│┼►]", line):
                yield line


def arguments(line: str) -> list[str]:
    """The arguments after ``evalkit``: up to a comment or a shell operator, with the
    brackets of optional parts (``[--seed 0]``) dropped so those options are checked too."""
    words = []
    for typed in shlex.split(line, comments=True)[1:]:
        if typed in SHELL_OPERATORS or typed.startswith((">", "2>")):
            break
        word = typed.removeprefix("[").removesuffix("]")
        if word and word != "...":
            words.append(word)
    return words


@functools.cache
def root() -> Any:
    """The click command ``evalkit`` runs, every command registered."""
    return typer.main.get_command(app)


def parse(args: list[str]) -> None:
    """Parse ``args`` as ``evalkit`` would, down to the leaf command, without running it."""
    context: Any = root().make_context("evalkit", list(args))
    while hasattr(context.command, "resolve_command"):
        rest = [*context._protected_args, *context.args]
        if not rest:
            return
        name, command, rest = context.command.resolve_command(context, rest)
        context = command.make_context(name, rest, parent=context)


DOCUMENTED = [
    pytest.param(line, id=f"{page.name}:{line[:60]}")
    for page in PAGES
    for line in command_lines(page)
]


def help_examples() -> Iterator[tuple[str, str]]:
    """Each command with the command lines of its ``--help`` example (``Example: ...``; a
    second command line of one example, after ``or`` or ``later``, is one too)."""

    def walk(command: Any, path: str) -> Iterator[tuple[str, str]]:
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")
        if not getattr(command, "commands", None):
            for example in re.findall(r"Examples?:\s*(.*?)(?:\n\s*\n|$)", command.help or "", re.S):
                text = " ".join(example.split())
                for line in re.findall(
                    r"evalkit .*?(?=[,;]? (?:or |later |then )?evalkit |$)", text
                ):
                    yield path, line

    yield from walk(root(), "evalkit")


def test_the_docs_show_command_lines() -> None:
    pages = {param.id.split(":")[0] for param in DOCUMENTED if param.id}
    assert len(DOCUMENTED) > 100
    assert {"README.md", "cli.md", "goldsets.md", "traffic.md", "ci.md"} <= pages


def test_a_misspelt_option_is_caught() -> None:
    with pytest.raises(_USAGE_ERRORS, match="No such option"):
        parse(arguments("evalkit runs show RUN_ID --per-querry  # a typo"))


@pytest.mark.parametrize("line", DOCUMENTED)
def test_a_documented_command_line_parses(line: str) -> None:
    try:
        parse(arguments(line))
    except typer.Exit:
        pass  # --help, --version
    except _USAGE_ERRORS as error:
        message = error.format_message()
        if not any(reason in message for reason in TOLERATED):
            pytest.fail(f"{line}\n  -> {message}")


def test_every_command_has_a_help_example_that_parses() -> None:
    """``evalkit CMD --help`` shows an example (README.md says every command has one), and
    the example is a command line the command takes."""
    examples: dict[str, list[str]] = {}
    for command, line in help_examples():
        examples.setdefault(command, []).append(line)
    without = sorted(registered_commands() - set(examples))
    assert without == [], "no example in --help"
    for lines in examples.values():
        for line in lines:
            test_a_documented_command_line_parses(line)


def choices(param: Any) -> set[str]:
    """The values an option's type allows: click's ``Choice``, or the enum typer annotated."""
    found = getattr(getattr(param, "type", None), "choices", None)
    if found is not None:
        return {str(getattr(choice, "value", choice)) for choice in found}
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return {str(member.value) for member in annotation}
    return set()


def output_options() -> Iterator[tuple[str, set[str]]]:
    """Each command printing a table or JSON, with the names of its output option."""

    def walk(command: Any, path: str) -> Iterator[tuple[str, set[str]]]:
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")
        for param in getattr(command, "params", ()):
            if {"table", "json"} <= choices(param):
                yield path, set(param.opts)

    yield from walk(root(), "evalkit")


def test_every_command_printing_table_or_json_takes_format() -> None:
    """``--format json`` works wherever ``--format`` does not name a file format (the
    goldset files read or written, the annotation tool of the review exchange)."""
    commands = dict(output_options())
    assert len(commands) > 40
    missing = [
        command
        for command, names in commands.items()
        if "--format" not in names
        and command
        not in {
            "evalkit goldset export",
            "evalkit goldset import",
            "evalkit goldset validate",
            "evalkit review export",
            "evalkit review import",
        }
    ]
    assert missing == []
