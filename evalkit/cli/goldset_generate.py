"""``evalkit goldset generate``: a draft goldset written from a corpus by the [judge] LLM."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evalkit.cli._app import goldset_app
from evalkit.cli._options import Output, seed_option
from evalkit.cli._output import (
    OutputFormat,
    console,
    emit_json,
    key_values,
    progress_bar,
    settings,
    table,
)
from evalkit.cli._store import CommandStore
from evalkit.records.requests import GENERATION_DEFAULTS

if TYPE_CHECKING:
    from evalkit.pipeline import GenerationOutcome

__all__ = ["generate", "print_generation"]

_SHOWN_FAILURES = 20


@goldset_app.command("generate")
def generate(
    corpus: Annotated[
        Path,
        typer.Option(
            "--corpus",
            help="The corpus to write questions from (JSONL, BEIR or TREC; chunks may carry "
            "source_id, start and end).",
            exists=True,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", help="The draft folder to write (it must not exist yet)."),
    ],
    n: Annotated[
        int, typer.Option("--n", min=1, help="Questions to ask for.")
    ] = GENERATION_DEFAULTS.n,
    mix: Annotated[
        str,
        typer.Option(
            "--mix",
            help="Shares of each kind of question: factoid (one passage, a specific fact), "
            "paraphrase (one passage, few of its words), multi (two passages of two sources).",
        ),
    ] = GENERATION_DEFAULTS.mix,
    max_per_source: Annotated[
        int,
        typer.Option(
            "--max-per-source", min=1, help="At most this many passages of one source document."
        ),
    ] = GENERATION_DEFAULTS.max_per_source,
    clusters: Annotated[
        int | None,
        typer.Option(
            "--clusters",
            min=1,
            help="Clusters of the documents' embeddings to spread the questions over "
            "(default: half as many as questions, at most a third as many as documents).",
        ),
    ] = GENERATION_DEFAULTS.clusters,
    max_overlap: Annotated[
        float,
        typer.Option(
            "--max-overlap",
            min=0.0,
            max=1.0,
            help="Most of a paraphrase's content words that may appear in its passage; "
            "above it the question is asked again once, then dropped.",
        ),
    ] = GENERATION_DEFAULTS.max_overlap,
    dedup_threshold: Annotated[
        float,
        typer.Option(
            "--dedup-threshold",
            help="Drop a question whose embedding has this cosine similarity or more with "
            "an earlier question's.",
        ),
    ] = GENERATION_DEFAULTS.dedup_threshold,
    max_calls: Annotated[
        int | None,
        typer.Option(
            "--max-calls",
            min=0,
            help="Send at most this many requests (a hard budget: retries and second asks "
            "count, replies kept from an earlier run do not; questions left unasked are "
            "counted over_budget). Default: no limit.",
        ),
    ] = GENERATION_DEFAULTS.max_calls,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Send nothing and write nothing: print how many calls the plan takes and "
            "an estimate of the tokens.",
        ),
    ] = GENERATION_DEFAULTS.dry_run,
    seed: Annotated[
        int,
        seed_option("Seed of the clustering and the sampling.", "--seed"),
    ] = GENERATION_DEFAULTS.seed,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing --out folder.")
    ] = GENERATION_DEFAULTS.overwrite,
    queue: Annotated[
        str | None,
        typer.Option(
            "--queue",
            help="Queue the draft for review in goldset NAME's review queue once it is "
            "written (as `evalkit review add DIR --goldset NAME`).",
        ),
    ] = None,
    output: Output = OutputFormat.table,
) -> None:
    """Generate a draft goldset from a corpus: questions spread evenly over clusters of the
    documents' embeddings, written by the [judge] LLM endpoint, each with the spans of the
    passages its answer stands in, for review before it becomes a goldset version.

    Replies are stored as they arrive: the same command again resumes a stopped run.

    Example: evalkit goldset generate --corpus corpus.jsonl --n 100 --out drafts/generated
    --max-calls 250
    """
    from evalkit.embedding import LazyEmbedder
    from evalkit.goldset.model import check_goldset_name
    from evalkit.judging.generate import QuestionWriter
    from evalkit.pipeline import generate_goldset
    from evalkit.records.requests import GenerationRequest

    if queue is not None:  # before any call is paid for: publish could never take the name
        check_goldset_name(queue, option="--queue")
    config = settings()
    writer = QuestionWriter(config.judge)
    request = GenerationRequest(
        n=n,
        mix=mix,
        max_per_source=max_per_source,
        clusters=clusters,
        max_overlap=max_overlap,
        dedup_threshold=dedup_threshold,
        max_calls=max_calls,
        dry_run=dry_run,
        seed=seed,
        overwrite=overwrite,
    )
    # A dry run writes nothing: it reads the replies kept in a store that exists already.
    store = (
        CommandStore("goldset generate", write=not dry_run)
        if not dry_run or config.resolved_store_path.exists()
        else None
    )
    enabled = output is OutputFormat.table and not dry_run
    with progress_bar("writing questions", enabled=enabled) as bar:
        outcome = generate_goldset(
            corpus,
            out,
            request,
            writer=writer,
            embedder=LazyEmbedder.from_settings(config),
            progress=bar,
            replies=store,
        )
    queued = None
    if queue is not None and store is not None and not dry_run and outcome.n_generated:
        from evalkit.pipeline import ingest_draft

        queued = ingest_draft(store, out, goldset=queue)
    if output is OutputFormat.json:
        emit_json({**outcome.to_dict(), "queued": None if queued is None else queued.to_dict()})
        return
    print_generation(outcome, queued=None if queued is None else queued.goldset)


def print_generation(outcome: GenerationOutcome, *, queued: str | None = None) -> None:
    """Print a generation's summary: what was asked, made and dropped (by reason), its
    coverage and its cost, and what to do next (``queued``: the goldset whose review queue
    holds the draft); or, on a dry run, what it would cost."""
    facts: dict[str, object] = {
        "corpus": f"{outcome.corpus} ({outcome.n_documents} documents with text)",
        "generator": f"{outcome.generator} (prompt {outcome.prompt_version})",
        "mix": outcome.mix,
        "requested": outcome.n_requested,
    }
    coverage = f"{outcome.clusters_covered} of {outcome.n_clusters}"
    if outcome.dry_run:
        facts["planned"] = outcome.n_planned
        facts["clusters planned"] = coverage
        facts["sources planned"] = outcome.sources_used
        facts["calls"] = (
            f"{outcome.calls} (up to {2 * outcome.calls} if replies are asked again)"
            if outcome.max_calls is None
            else f"{outcome.calls} (budget {outcome.max_calls})"
        )
        facts["replies from cache"] = outcome.from_cache or "-"
        facts["estimated tokens"] = f"about {outcome.estimated_tokens:,}"
        console.print(key_values("goldset generate (dry run: nothing sent)", facts))
        return
    facts["generated"] = outcome.n_generated
    facts["kinds"] = ", ".join(f"{kind} {count}" for kind, count in sorted(outcome.kinds.items()))
    facts["dropped"] = sum(outcome.dropped.values()) or "-"
    facts["clusters covered"] = coverage
    facts["sources used"] = outcome.sources_used
    facts["calls"] = (
        outcome.calls
        if outcome.max_calls is None
        else (f"{outcome.calls} (budget {outcome.max_calls})")
    )
    facts["replies from cache"] = outcome.from_cache or "-"
    facts["tokens"] = (
        outcome.tokens
        or (outcome.calls and f"not reported (about {outcome.estimated_tokens:,})")
        or "-"
    )
    facts["draft"] = outcome.directory
    console.print(key_values("goldset generate", facts))
    if outcome.dropped:
        rows = [[reason, count] for reason, count in sorted(outcome.dropped.items())]
        console.print(table("dropped", ["reason", "questions"], rows))
    failures = outcome.failures[:_SHOWN_FAILURES]
    if failures:
        rows = [[f["task"], f["kind"], f["reason"], f["detail"]] for f in failures]
        more = len(outcome.failures) - len(failures)
        title = "why" + (
            f" (first {len(failures)}; --format json lists {more} more)" if more else ""
        )
        console.print(table(title, ["task", "kind", "reason", "detail"], rows))
    first = (
        f"queued for review in goldset {queued}; review it"
        if queued is not None
        else f"evalkit review add {outcome.directory} --goldset NAME, then review it"
    )
    name = queued or "NAME"
    console.print(
        "A draft until reviewed: grades are the generator's suggestions (docs/goldsets.md).\n"
        f"Next: {first} (evalkit review grade, the dashboard's Review queue, or Label Studio "
        f"through evalkit review export) and evalkit goldset publish {name}.",
        markup=False,
    )
