"""``evalkit goldset import|validate|list|remap|publish`` (``goldset_generate`` and
``goldset_versions`` add the others)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evalkit.cli import (
    goldset_generate,  # noqa: F401  (registers `goldset generate`)
    goldset_versions,  # noqa: F401  (registers `goldset export`, `show`)
)
from evalkit.cli._app import goldset_app
from evalkit.cli._options import Output as OutputOrFormat
from evalkit.cli._output import (
    OutputFormat,
    console,
    emit_json,
    err_console,
    print_text,
    say,
    table,
)
from evalkit.cli._store import open_store
from evalkit.errors import GoldsetError
from evalkit.records.requests import (
    DEFAULT_GOLDSET_FORMAT,
    DEFAULT_GOLDSET_SPLIT,
    DEFAULT_MIN_OVERLAP,
)
from evalkit.records.review import PUBLISH_DEFAULTS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from evalkit.pipeline import RemapOutcome

SOURCE_FORMAT_HELP = "Source format: jsonl (evalkit's own), beir (a BEIR folder) or trec."
OUTPUT_HELP = "Output: table or json (--format names the source format here)."

SourceFormat = Annotated[str, typer.Option("--format", help=SOURCE_FORMAT_HELP)]
Split = Annotated[str, typer.Option(help="BEIR qrels split (qrels/<split>.tsv).")]
Topics = Annotated[
    Path | None, typer.Option(help="TREC topics file (with --format trec; PATH is the qrels).")
]
Output = Annotated[OutputFormat, typer.Option("--output", "-o", help=OUTPUT_HELP)]
GoldsetPath = Annotated[
    Path, typer.Argument(help="Goldset folder, BEIR folder or TREC qrels file.")
]


@goldset_app.command("import")
def import_goldset(
    path: GoldsetPath,
    name: Annotated[str, typer.Option(help="Name to store the goldset under.")],
    source_format: SourceFormat = DEFAULT_GOLDSET_FORMAT,
    split: Split = DEFAULT_GOLDSET_SPLIT,
    topics: Topics = None,
    output: Output = OutputFormat.table,
) -> None:
    """Validate a goldset and store it as a new version (a content hash), made current.

    Importing the content of a version stored before makes that version current again.

    Example: evalkit goldset import --format beir ../shared/data/beir_scifact --split test
    --name scifact
    """
    from evalkit.goldset.formats import load_goldset
    from evalkit.store.goldsets import save_goldset_version, version_query_ids

    notices: list[str] = []
    try:
        goldset = load_goldset(
            path,
            format=source_format,
            name=name,
            split=split,
            topics=topics,
            on_notice=notices.append,
        )
    except GoldsetError as error:
        if source_format == "jsonl" and (Path(path) / "qrels").is_dir():
            # Editing thousands of `_id` fields is the wrong fix for a folder in BEIR's layout.
            error.args = (
                f"{error.args[0]}\nThe folder holds qrels/, as a BEIR dataset does: import it "
                "with --format beir (and --split)",
                *error.args[1:],
            )
        raise
    with open_store(write=True, purpose="goldset import") as store:
        stored = save_goldset_version(store, goldset)
        replaced = (
            version_query_ids(store, stored.was_current)
            if stored.created and stored.was_current is not None
            else []
        )
    kept = {query.id for query in goldset.queries}
    dropped = [query_id for query_id in replaced if query_id not in kept]
    if dropped:
        notices.append(_dropped_notice(goldset.name, str(stored.was_current), dropped))
    summary = {
        "name": goldset.name,
        "version": goldset.version,
        "queries": len(goldset.queries),
        "judgments": len(goldset.judgments),
        "new_version": stored.created,
        "was_current": stored.was_current,
        "source": goldset.source,
        "notices": notices,
        "queries_dropped": len(dropped),
    }
    if output is OutputFormat.json:
        emit_json(summary)
        return
    for notice in notices:
        err_console.print(f"note: {notice}", markup=False)
    state = _stored_state(stored.created, stored.was_current, "same content")
    console.print(
        f"goldset {goldset.name} version {goldset.version}: {len(goldset.queries)} queries, "
        f"{len(goldset.judgments)} judgments, {state}",
        markup=False,
    )


def _dropped_notice(name: str, replaced: str, dropped: Sequence[str]) -> str:
    """What a user importing a handful of new queries under a goldset's name would not
    expect: the import replaced the current version, and its other queries are no longer
    run."""
    shown = ", ".join(dropped[:3]) + (f" and {len(dropped) - 3} more" if len(dropped) > 3 else "")
    return (
        f"{len(dropped)} queries of {name}'s version {replaced} are not in this version, which "
        f"is current now, so runs of {name} no longer ask them: {shown}. An import replaces a "
        f"goldset's queries; to add queries to it, queue them (`evalkit review add PATH "
        f"--goldset {name}`) and publish them (`evalkit goldset publish {name}`)"
    )


def _stored_state(created: bool, was_current: str | None, same: str) -> str:
    if created:
        return "stored as a new version"
    if was_current is not None:
        return f"already stored; now current again (was {was_current})"
    return f"already stored ({same})"


@goldset_app.command("validate")
def validate(
    path: GoldsetPath,
    source_format: SourceFormat = DEFAULT_GOLDSET_FORMAT,
    split: Split = DEFAULT_GOLDSET_SPLIT,
    topics: Topics = None,
    output: Output = OutputFormat.table,
) -> None:
    """Check a goldset (and the corpus beside it) without storing anything.

    Lists every problem with its file, line and field; exits 2 when there is any.

    Example: evalkit goldset validate goldsets/demo
    """
    from evalkit.goldset.formats import validate_goldset

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
        raise typer.Exit(GoldsetError.exit_code)


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
    """List stored goldsets and their versions, each name's current version first.

    Example: evalkit goldset list -o json
    """

    from evalkit.store.goldsets import list_goldsets as list_stored_goldsets

    with open_store(write=False, purpose="goldset list") as store:
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
                    "current": i.current,
                    "current_since": i.current_since,
                    "source": i.source,
                }
                for i in infos
            ]
        )
        return
    rows = [
        [
            i.name,
            i.version,
            "yes" if i.current else "",
            i.n_queries,
            i.n_judgments,
            f"{i.imported_at:%Y-%m-%d %H:%M}",
            i.source,
        ]
        for i in infos
    ]
    console.print(
        table(
            "goldsets",
            ["name", "version", "current", "queries", "judgments", "imported (UTC)", "source"],
            rows,
            whole=(1,),  # the version is what `--goldset-version` and `goldset export` take
        )
    )


REMAP_LOSS_EXIT_CODE = 1
_NO_SPAN = "no span"
"""How the reasons of judgments without a span, lost for want of their old chunk, begin."""
_SHOWN_LOST = 50


@goldset_app.command("remap")
def remap(
    name: Annotated[str, typer.Argument(help="The stored goldset to remap (its current version).")],
    corpus: Annotated[
        Path,
        typer.Option(
            help="The new, re-chunked corpus: JSONL whose chunks carry source_id, start, end."
        ),
    ],
    old_corpus: Annotated[
        Path | None,
        typer.Option(
            help="The corpus the goldset's doc ids name, for judgments without a span "
            "(default: the corpus.jsonl of the folder the goldset was imported from, through "
            "the versions a publish or remap made from it; refused when there is none)."
        ),
    ] = None,
    min_overlap: Annotated[
        float,
        typer.Option(
            help="Share (0 < share <= 1) of the shorter of span and chunk that must overlap "
            "for the chunk to inherit the grade.",
        ),
    ] = DEFAULT_MIN_OVERLAP,
    new_name: Annotated[
        str | None,
        typer.Option("--name", help="Store the new version under this name (default: NAME)."),
    ] = None,
    output: OutputOrFormat = OutputFormat.table,
) -> None:
    """Move a goldset's span-anchored judgments onto a re-chunked corpus, as a new version.

    A new chunk inherits the highest grade of the judged spans it overlaps (docs/goldsets.md,
    "Re-chunking"); stale and unmapped judgments are listed. Exit codes: 0 every judgment
    mapped; 1 new version stored, some judgments stale or unmapped; 2 bad input, or no
    judgment could be mapped (nothing stored); 3 store failure.

    Example: evalkit goldset remap scifact --corpus chunks.jsonl --min-overlap 0.5 -o json
    """
    from evalkit.cli._store import CommandStore
    from evalkit.pipeline import GoldsetRemapRequest, remap_goldset

    request = GoldsetRemapRequest(
        goldset=name,
        corpus=corpus,
        old_corpus=old_corpus,
        min_overlap=min_overlap,
        name=new_name,
    )
    outcome = remap_goldset(CommandStore("goldset remap"), request)
    result, written = outcome.result, outcome.goldset
    counts = result.counts
    if output is OutputFormat.json:
        emit_json(
            {
                "goldset": written.name if written else None,
                "version": written.version if written else None,
                "old_goldset": outcome.old.name,
                "old_version": outcome.old.version,
                "stored": outcome.stored,
                "was_current": outcome.was_current,
                "corpus": str(corpus),
                "old_corpus": str(outcome.old_corpus) if outcome.old_corpus else None,
                "min_overlap": min_overlap,
                "counts": counts,
                "new_judgments": len(result.judgments),
                "moved": sum(row.reason == "moved" for row in result.mappings),
                "lost": [
                    {
                        "query_id": row.query_id,
                        "doc_id": row.old_doc_id,
                        "status": row.status.value,
                        "reason": row.reason,
                    }
                    for row in result.lost
                ],
                "conflicts": [
                    {
                        "source_id": conflict.source_id,
                        "chunk": conflict.other,
                        "overlaps": conflict.kept,
                        "start": conflict.start,
                        "end": conflict.end,
                        "differs_at": conflict.offset,
                    }
                    for conflict in result.conflicts
                ],
            }
        )
    else:
        _print_remap(outcome)
    if written is None:
        raise typer.Exit(GoldsetError.exit_code)
    if result.lost:
        raise typer.Exit(REMAP_LOSS_EXIT_CODE)


def _print_remap(outcome: RemapOutcome) -> None:
    result, written = outcome.result, outcome.goldset
    counts = result.counts
    lost = result.lost
    if lost:
        rows = [
            [row.query_id, row.old_doc_id, row.status.value, row.reason or "-"]
            for row in lost[:_SHOWN_LOST]
        ]
        shown = "" if len(lost) <= _SHOWN_LOST else f", first {_SHOWN_LOST} shown"
        console.print(
            table(
                f"{len(lost)} judgments not mapped{shown}",
                ["query", "document", "status", "reason"],
                rows,
            )
        )
    if result.conflicts:
        rows = [
            [c.other, c.source_id, c.kept, f"{c.start}-{c.end}", str(c.offset)]
            for c in result.conflicts[:_SHOWN_LOST]
        ]
        shown = "" if len(result.conflicts) <= _SHOWN_LOST else f", first {_SHOWN_LOST} shown"
        console.print(
            table(
                f"{len(result.conflicts)} chunks overlap another chunk of their source with "
                f"other text{shown}: a judgment went only to the chunks whose text holds "
                "its passage",
                ["chunk", "source", "overlaps", "overlap", "differs at"],
                rows,
            )
        )
    moved = sum(row.reason == "moved" for row in result.mappings)
    console.print(
        f"{counts['mapped']} mapped ({moved} moved), {counts['stale']} stale, "
        f"{counts['unmapped']} unmapped of {len(outcome.old.judgments)} judgments of "
        f"{outcome.old.name} {outcome.old.version}",
        markup=False,
    )
    if written is None:
        hints = []
        if any(not (row.reason or "").startswith(_NO_SPAN) for row in lost):
            hints.append(
                "Check that its chunks carry source_id, start and end of the goldset's sources."
            )
        if any((row.reason or "").startswith(_NO_SPAN) for row in lost):
            hints.append(
                f"Check that the old corpus ({outcome.old_corpus}) is the one the goldset's "
                "doc ids name, else give that one with --old-corpus PATH."
            )
        err_console.print(
            "no judgment could be mapped onto the new corpus; nothing was stored. "
            + " ".join(hints),
            markup=False,
        )
        return
    if written.name == outcome.old.name and written.version == outcome.old.version:
        state = "unchanged: every judgment maps onto the document it had, nothing stored"
    else:
        state = _stored_state(outcome.stored, outcome.was_current, "same remap")
    console.print(
        f"goldset {written.name} version {written.version}: {len(result.judgments)} "
        f"judgments of the new chunks, {state}",
        markup=False,
    )


@goldset_app.command("publish")
def publish(
    name: Annotated[str, typer.Argument(help="The goldset whose reviewed items to publish.")],
    min_reviews: Annotated[
        int,
        typer.Option(
            "--min-reviews",
            min=1,
            help="Publish an accepted item only once this many reviewers reviewed it.",
        ),
    ] = PUBLISH_DEFAULTS.min_reviews,
    output: OutputOrFormat = OutputFormat.table,
) -> None:
    """Publish the review queue's accepted items as a new version of goldset NAME.

    An item is published when most of its reviewers accepted it and at least --min-reviews
    reviewed it (docs/goldsets.md, "Review queue"). The version is written in one
    transaction: an interrupted publish leaves the previous version current.

    Example: evalkit goldset publish support --min-reviews 2
    """
    from evalkit.cli._store import CommandStore
    from evalkit.pipeline import publish_goldset
    from evalkit.records.review import PublishRequest

    outcome = publish_goldset(
        CommandStore("goldset publish"), name, PublishRequest(min_reviews=min_reviews)
    )
    if output is OutputFormat.json:
        emit_json(outcome.to_dict())
        return
    waiting = (
        f"; {len(outcome.waiting)} accepted items wait for {min_reviews} reviewers"
        if outcome.waiting
        else ""
    )
    if outcome.ungraded:
        say(
            f"{len(outcome.ungraded)} accepted items have no graded document and were not "
            f"published ({', '.join(outcome.ungraded[:3])}"
            f"{', ...' if len(outcome.ungraded) > 3 else ''}): review them again with grades "
            "(`evalkit review grade ITEM --reviewer NAME --grade DOC=GRADE`)"
        )
    publication = outcome.publication
    if publication is None:
        console.print(f"goldset {name}: no accepted item ready to publish{waiting}", markup=False)
        return
    state = "a new version" if outcome.created else "same content as the current version"
    console.print(
        f"goldset {name} version {publication.goldset_version} ({state}) from "
        f"{publication.n_items} reviewed items: {publication.n_queries_added} queries added, "
        f"{publication.n_queries_edited} edited, {publication.n_judgments_added} judgments "
        f"added, {publication.n_judgments_changed} changed{waiting}",
        markup=False,
    )
    if outcome.merged:
        print_text(outcome.merged_summary())
