"""``evalkit review export|import``: the review queue in Label Studio, where teams annotate."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Annotated

import typer

from evalkit.cli._app import review_app
from evalkit.cli._options import OutputOnly
from evalkit.cli._output import OutputFormat, console, emit_json, key_values, say
from evalkit.cli._store import CommandStore

__all__ = ["CONFIG_SUFFIX", "parse_annotators"]

CONFIG_SUFFIX = ".label-config.xml"
"""The labeling config is written beside the tasks: ``tasks.json`` -> ``tasks.label-config.xml``."""


class ExchangeFormat(enum.StrEnum):
    """Annotation tools evalkit exchanges reviews with."""

    label_studio = "label-studio"


def parse_annotators(values: list[str]) -> dict[int | str, str]:
    """``ID=NAME`` or ``EMAIL=NAME`` options (a Label Studio user, by id or email, and the
    name to sign with); a malformed one, or one user named twice, is a usage error."""
    from evalkit.goldset.label_studio import annotator_key
    from evalkit.records.review import reviewer_problem
    from evalkit.redaction import visible

    names: dict[int | str, str] = {}
    for value in values:
        user, separator, name = value.partition("=")
        key = annotator_key(user)
        if not separator or key is None or not name.strip():
            raise typer.BadParameter(
                f"{value!r} is not ID=NAME or EMAIL=NAME (a Label Studio user id or email, "
                "'=', a name)",
                param_hint="--annotator",
            )
        problem = reviewer_problem(name.strip())
        if problem is not None:
            raise typer.BadParameter(f"'{visible(value)}': {problem}", param_hint="--annotator")
        if key in names and names[key] != name.strip():
            raise typer.BadParameter(
                f"Label Studio user {key} is named twice ({names[key]}, {name.strip()})",
                param_hint="--annotator",
            )
        names[key] = name.strip()
    return names


@review_app.command("export")
def export(
    goldset: Annotated[str, typer.Option("--goldset", help="The goldset whose items to export.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help=f"The tasks file to write (Label Studio's import JSON); the labeling config "
            f"goes beside it (NAME{CONFIG_SUFFIX}).",
        ),
    ],
    exchange_format: Annotated[
        ExchangeFormat, typer.Option("--format", help="The annotation tool's format.")
    ] = ExchangeFormat.label_studio,
    every_status: Annotated[
        bool,
        typer.Option("--all", help="Export every item, not only those still open."),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace the tasks file and its config if they exist."),
    ] = False,
    output: OutputOnly = OutputFormat.table,
) -> None:
    """Write the goldset's queued items as Label Studio tasks, with the suggested grades as
    pre-annotations, and the labeling config to create the project with.

    Example: evalkit review export --goldset support --out tasks.json
    """
    from evalkit.errors import InputError
    from evalkit.files import replace_text
    from evalkit.pipeline import export_label_studio

    config_file = out.with_name(out.stem + CONFIG_SUFFIX)
    for path in (out, config_file):
        if not overwrite and (path.exists() or path.is_symlink()):
            raise InputError(
                "already exists; pass --overwrite to replace it, or choose another --out",
                path=str(path),
            )
    exported = export_label_studio(
        CommandStore("review export", write=False),
        goldset,
        status=None if every_status else "open",
    )
    replace_text(out, json.dumps(exported.tasks, ensure_ascii=False, indent=2) + "\n")
    replace_text(config_file, exported.config)
    summary = {**exported.to_dict(), "tasks_file": str(out), "config_file": str(config_file)}
    if output is OutputFormat.json:
        emit_json(summary)
        return
    console.print(key_values(f"{exchange_format} export", summary))


@review_app.command("import")
def import_reviews(
    export_file: Annotated[
        Path, typer.Argument(help="Label Studio's export of the project (JSON or JSON-MIN).")
    ],
    annotator: Annotated[
        list[str] | None,
        typer.Option(
            "--annotator",
            help="ID=NAME or EMAIL=NAME: sign the annotations of the Label Studio user with "
            "that id or email as NAME (default: the annotator's email, else "
            "label-studio-user-ID). Repeatable.",
        ),
    ] = None,
    output: OutputOnly = OutputFormat.table,
) -> None:
    """Save the annotations of a Label Studio export as reviews, signed by their annotators.

    The whole export is checked first; with any problem, each is named and nothing is saved.
    Annotations imported before are skipped (docs/goldsets.md, "Label Studio").

    Example: evalkit review import project-3-at-2026-11-25.json --annotator 4=ben
    """
    from evalkit.pipeline import import_label_studio

    imported = import_label_studio(
        CommandStore("review import"), export_file, annotators=parse_annotators(annotator or [])
    )
    if output is OutputFormat.json:
        emit_json(imported.to_dict())
        return
    repeated = f", {imported.repeated} repeated in the export" if imported.repeated else ""
    console.print(
        f"{imported.saved} reviews saved on {imported.items} items by "
        f"{', '.join(imported.reviewers) or 'nobody'}; {imported.already} imported before"
        f"{repeated} (from {imported.source})",
        markup=False,
    )
    if imported.unmatched:
        whom = "that Label Studio user" if len(imported.unmatched) == 1 else "those users"
        say(
            f"--annotator {', '.join(imported.unmatched)}: no annotation of this export is by "
            f"{whom} (its annotators: {', '.join(imported.users) or 'none'}); "
            "check the user id or email in Label Studio. Users --annotator does not name "
            "are signed by email, else label-studio-user-ID"
        )
    if imported.grades_dropped:
        say(
            f"{imported.grades_dropped} grades of rejected items were left out: a rejection "
            "takes no grades (they are the suggested grades the task was pre-annotated with)"
        )
    if imported.on_published:
        say(
            f"{imported.on_published} annotations of items published since the export were "
            "not saved: they can no longer change the goldset (`evalkit review list --status "
            "published`)"
        )
