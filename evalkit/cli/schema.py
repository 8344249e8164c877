"""``evalkit schema``: print the JSON Schema of a file or message evalkit reads or sends."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from evalkit.cli._app import app
from evalkit.cli._output import OutputFormat, console, emit_json, table


@app.command("schema")
def schema(
    name: Annotated[
        str | None,
        typer.Argument(help="The schema to print; without it, the schemas are listed."),
    ] = None,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="table or json (for the list)")
    ] = OutputFormat.table,
) -> None:
    """Print a JSON Schema (draft 2020-12) evalkit publishes: goldset, corpus and traffic
    log lines, the HTTP retriever's request and response, the alert payload.

    Example: evalkit schema traffic-log-line > traffic-log-line.schema.json
    """
    from evalkit.schemas import SCHEMA_NAMES, load_schema, schema_text

    if name is not None:
        sys.stdout.write(schema_text(name))
        return
    listed = [
        {"name": item, "title": load_schema(item)["title"], "file": f"{item}.schema.json"}
        for item in SCHEMA_NAMES
    ]
    if output is OutputFormat.json:
        emit_json(listed)
        return
    rows = [[item["name"], item["title"]] for item in listed]
    console.print(table("schemas (evalkit schema NAME prints one)", ["name", "title"], rows))
