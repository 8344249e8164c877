"""``evalkit goldset import|validate|list``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evalkit.cli._app import goldset_app
from evalkit.cli._output import (
    OutputFormat,
    console,
    emit_json,
    err_console,
    settings,
    table,
)
from evalkit.cli._store import open_store

SOURCE_FORMAT_HELP = "Source format: jsonl (evalkit's own), beir (a BEIR folder) or trec."
OUTPUT_HELP = "Output: table or json (--format names the source format here)."

SourceFormat = Annotated[str, typer.Option("--format", help=SOURCE_FORMAT_HELP)]
Split = Annotated[str, typer.Option(help="BEIR qrels split (qrels/<split>.tsv).")]
Topics = Annotated[
    Path | None, typer.Option(help="TREC topics file (with --format trec; PATH is the qrels).")
]
Output = Annotated[OutputFormat, typer.Option("--output", "-o", help=OUTPUT_HELP)]


@goldset_app.command("import")
def import_goldset(
    path: Annotated[Path, typer.Argument(help="Goldset folder, BEIR folder or TREC qrels file.")],
    name: Annotated[str, typer.Option(help="Name to store the goldset under.")],
    source_format: SourceFormat = "jsonl",
    split: Split = "test",
    topics: Topics = None,
    output: Output = OutputFormat.table,
) -> None:
    """Validate a goldset and store it as a new version (a content hash).

    Example: evalkit goldset import --format beir ../shared/data/beir_scifact --split test
    --name scifact
    """
    from evalkit.goldset import load_goldset
    from evalkit.store.goldsets import save_goldset

    notices: list[str] = []
    goldset = load_goldset(
        path, format=source_format, name=name, split=split, topics=topics, on_notice=notices.append
    )
    with open_store(write=True, purpose="goldset import") as store:
        created = save_goldset(store, goldset)
    summary = {
        "name": goldset.name,
        "version": goldset.version,
        "queries": len(goldset.queries),
        "judgments": len(goldset.judgments),
        "new_version": created,
        "source": goldset.source,
        "notices": notices,
    }
    if output is OutputFormat.json:
        emit_json(summary)
        return
    for notice in notices:
        err_console.print(f"note: {notice}", markup=False)
    state = "stored as a new version" if created else "already stored (same content)"
    console.print(
        f"goldset {goldset.name} version {goldset.version}: {len(goldset.queries)} queries, "
        f"{len(goldset.judgments)} judgments, {state}",
        markup=False,
    )


@goldset_app.command("validate")
def validate(
    path: Annotated[Path, typer.Argument(help="Goldset folder, BEIR folder or TREC qrels file.")],
    source_format: SourceFormat = "jsonl",
    split: Split = "test",
    topics: Topics = None,
    output: Output = OutputFormat.table,
) -> None:
    """Check a goldset (and the corpus beside it) without storing anything.

    Lists every problem with its file, line and field; exits 2 when there is any.

    Example: evalkit goldset validate goldsets/demo
    """
    from evalkit.goldset import validate_goldset

    problems = validate_goldset(path, format=source_format, split=split, topics=topics)
    if output is OutputFormat.json:
        emit_json(
            {
                "valid": not problems,
                "problems": [
                    {"path": p.path, "line": p.line, "field": p.field, "message": p.detail}
                    for p in problems
                ],
            }
        )
    elif problems:
        rows = [[p.path, p.line, p.field, p.detail] for p in problems]
        console.print(
            table(f"{len(problems)} problems", ["file", "line", "field", "problem"], rows)
        )
    else:
        console.print(f"{path}: valid", markup=False)
    if problems:
        raise typer.Exit(2)


@goldset_app.command("list")
def list_goldsets(
    output: Annotated[
        OutputFormat,
        typer.Option(
            "--output",
            "-o",
            "--format",
            help="Output: table or json (-o/--output as in goldset import and validate).",
        ),
    ] = OutputFormat.table,
) -> None:
    """List stored goldsets and their versions, newest first.

    Example: evalkit goldset list -o json
    """

    from evalkit.store.goldsets import list_goldsets as list_stored_goldsets

    config = settings()
    if not config.resolved_store_path.exists():
        infos = []
    else:
        with open_store(write=False, purpose="goldset list", config=config) as store:
            infos = list_stored_goldsets(store)
    if output is OutputFormat.json:
        emit_json(
            [
                {
                    "name": i.name,
                    "version": i.version,
                    "queries": i.n_queries,
                    "judgments": i.n_judgments,
                    "imported_at": i.imported_at,
                    "source": i.source,
                }
                for i in infos
            ]
        )
        return
    rows = [
        [i.name, i.version, i.n_queries, i.n_judgments, f"{i.imported_at:%Y-%m-%d %H:%M}", i.source]
        for i in infos
    ]
    console.print(
        table(
            "goldsets",
            ["name", "version", "queries", "judgments", "imported (UTC)", "source"],
            rows,
        )
    )
