"""``evalkit goldset export`` and ``goldset show``: a stored goldset's versions as files,
and its history."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evalkit.cli._app import goldset_app
from evalkit.cli._options import Output
from evalkit.cli._output import OutputFormat, console, emit_json, key_values, print_text, say
from evalkit.cli._store import open_store
from evalkit.records.requests import DEFAULT_GOLDSET_FORMAT, DEFAULT_GOLDSET_SPLIT

if TYPE_CHECKING:
    from evalkit.goldset.formats import Exported
    from evalkit.store.goldset_history import VersionHistory

__all__ = ["export", "show"]


@goldset_app.command("export")
def export(
    name: Annotated[
        str,
        typer.Argument(
            help="The stored goldset, NAME (its current version) or NAME@VERSION (a version "
            "or the start of one, as `goldset show` lists them)."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="The folder to write (new or empty, or --overwrite).")
    ],
    file_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="Files to write: jsonl (evalkit's own, spans and every query field "
            "included), beir (queries.jsonl, qrels/<split>.tsv) or trec (qrels.txt, "
            "topics.xml).",
        ),
    ] = DEFAULT_GOLDSET_FORMAT,
    split: Annotated[
        str, typer.Option(help="BEIR qrels split to write (qrels/<split>.tsv).")
    ] = DEFAULT_GOLDSET_SPLIT,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Write into a folder that holds files: replace the ones the export writes, "
            "leave the others.",
        ),
    ] = False,
    output: Annotated[
        OutputFormat,
        typer.Option("--output", "-o", help="Output: table or json (--format names the files)."),
    ] = OutputFormat.table,
) -> None:
    """Write a stored goldset version as files, to keep in git or hand to other tools.

    The same version always gives the same bytes; what BEIR and TREC cannot hold is listed
    (docs/goldsets.md, "Exporting a stored version"). Exit codes: 0 written; 2 no such
    goldset or version, a folder that is not empty (without --overwrite), or ids the format
    cannot hold; 3 store failure.

    Example: evalkit goldset export demo --out goldsets/demo-export --format beir
    """
    from evalkit.goldset.formats import export_goldset
    from evalkit.store.goldsets import load_stored_goldset

    goldset_name, version = _name_and_version(name)
    with open_store(write=False, purpose="goldset export") as store:
        goldset = load_stored_goldset(store, goldset_name, version)
    exported = export_goldset(goldset, out, format=file_format, split=split, overwrite=overwrite)
    again = _import_command(exported, file_format, split, goldset.name)
    if output is OutputFormat.json:
        emit_json(
            {
                "name": goldset.name,
                "version": goldset.version,
                "format": file_format,
                "files": [str(path) for path in exported.files],
                "queries": len(goldset.queries),
                "judgments": len(goldset.judgments),
                "reads_back_as": exported.version,
                "notes": list(exported.notes),
                "import_command": again,
            }
        )
        return
    for note in exported.notes:
        say(f"note: {note}")
    print_text(
        f"goldset {goldset.name} version {goldset.version}: {len(goldset.queries)} queries, "
        f"{len(goldset.judgments)} judgments written to {out} ({file_format}: "
        f"{', '.join(str(path.relative_to(out)) for path in exported.files)})"
    )
    print_text(f"import them with: {again}")


def _name_and_version(value: str) -> tuple[str, str | None]:
    """``NAME@VERSION`` as its two parts (a name holding ``@`` is read up to its last)."""
    name, at, version = value.rpartition("@")
    return (name, version or None) if at and name else (value, None)


def _import_command(exported: Exported, file_format: str, split: str, name: str) -> str:
    """The ``goldset import`` command that reads the exported files back."""
    words = ["evalkit", "goldset", "import"]
    if file_format != DEFAULT_GOLDSET_FORMAT:
        words += ["--format", file_format]
    words.append(str(exported.path))
    if file_format == "beir" and split != DEFAULT_GOLDSET_SPLIT:
        words += ["--split", split]
    if exported.topics is not None:
        words += ["--topics", str(exported.topics)]
    words += ["--name", name]
    return shlex.join(words)


@goldset_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The stored goldset.")],
    output: Output = OutputFormat.table,
) -> None:
    """Show a stored goldset's versions, newest first: counts, how each was made, query tags,
    and what it changed (docs/goldsets.md, "A goldset's history").

    Example: evalkit goldset show demo -o json
    """
    from evalkit.store.goldset_history import goldset_history

    with open_store(write=False, purpose="goldset show") as store:
        history = goldset_history(store, name)
    if output is OutputFormat.json:
        emit_json({"name": name, "versions": [version.to_dict() for version in history]})
        return
    for version in history:
        console.print(key_values(_title(version), _facts(version)))


def _title(version: VersionHistory) -> str:
    info = version.info
    current = " (current)" if info.current else ""
    return f"{info.name} version {info.version}{current}"


def _facts(version: VersionHistory) -> dict[str, object]:
    info = version.info
    facts: dict[str, object] = {
        "stored (UTC)": f"{info.imported_at:%Y-%m-%d %H:%M:%S}",
        "queries": info.n_queries,
        "judgments": f"{info.n_judgments} ({version.n_relevant} relevant, grade >= 1)",
        "made by": _made_by(version),
    }
    if version.changes is not None:
        change = version.changes
        facts[f"changes vs {change.against}"] = (
            f"queries +{change.queries_added} -{change.queries_removed} "
            f"~{change.queries_edited}; judgments +{change.judgments_added} "
            f"-{change.judgments_removed} ~{change.judgments_changed}"
        )
    facts["tags"] = ", ".join(f"{tag} {count}" for tag, count in version.tags.items()) or "-"
    if info.current:
        facts["current since (UTC)"] = f"{info.current_since:%Y-%m-%d %H:%M:%S}"
    return facts


def _made_by(version: VersionHistory) -> str:
    made = version.provenance
    detail = made.detail
    if made.kind == "remap":
        return (
            f"remap of {detail['from_goldset']} {made.made_from} onto {detail['corpus']} "
            f"(min overlap {detail['min_overlap']}: {detail['mapped']} mapped, "
            f"{detail['stale']} stale, {detail['unmapped']} unmapped)"
        )
    if made.kind == "publish":
        origins = detail.get("item_origins")
        counted = origins.items() if isinstance(origins, dict) else ()
        where = ", ".join(f"{origin} {count}" for origin, count in counted)
        return (
            f"publish of {detail['items']} reviewed items{f' ({where})' if where else ''} "
            f"onto {made.made_from or 'nothing'}: {detail['queries_added']} queries added, "
            f"{detail['queries_edited']} edited, {detail['judgments_added']} judgments "
            f"added, {detail['judgments_changed']} changed"
        )
    return f"import of {detail.get('source') or 'files'}"
