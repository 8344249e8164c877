"""``evalkit run``: replay a goldset against a live retriever and store the run."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evalkit.cli._app import app, end_without_teardown
from evalkit.cli._goldset import GOLDSET
from evalkit.cli._groups import grouped
from evalkit.cli._options import Format, corpus_for, max_judgments_with
from evalkit.cli._output import (
    OutputFormat,
    console,
    emit_json,
    progress_bar,
    say,
    settings,
)
from evalkit.cli._retriever import RETRIEVER, Engine, RayActors, RayAddress
from evalkit.cli._store import CommandStore
from evalkit.errors import RetrieverError
from evalkit.records.requests import (
    DEFAULT_RAY_ACTORS,
    JUDGING_DEFAULTS,
    GoldsetRunRequest,
    GoldsetSelection,
)

if TYPE_CHECKING:
    from evalkit.retrievers.factory import RetrieverOptions

NEXT_STEPS = """\
Next (`source .venv/bin/activate` first if `evalkit` is not on your PATH):
  # every query's figures
  evalkit runs show {run_id} --per-query
  # trends, run comparison and per-query drill-down in the browser (http://127.0.0.1:8501)
  evalkit dashboard
  # replay now against this run; exit 1 on a statistically significant regression
  evalkit gate --baseline {run_id} --goldset {goldset} --collection {collection}{where}
  # is the query model the model the index was built with?
  evalkit drift model --collection {collection}
  # duplicates, stale documents, ANN recall, judgment coverage
  evalkit audit --collection {collection} --goldset {goldset}
  # run the [[jobs]] of evalkit.toml on a schedule, with alerts
  evalkit serve
Store: {store}"""


@app.command("run")
@grouped
def run(
    goldset: GoldsetSelection = GOLDSET.use(),
    retriever: RetrieverOptions = RETRIEVER.use(),
    k: Annotated[int | None, typer.Option("--k", help="Documents retrieved per query.")] = None,
    measure: Annotated[
        list[str] | None,
        typer.Option("-m", "--measure", help="Measure, repeatable (default: a standard set)."),
    ] = None,
    label: Annotated[str | None, typer.Option(help="Free-text label stored with the run.")] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option(
            "--tag",
            help="Tag stored with the run, repeatable; `evalkit compare --tag T` ranks the "
            "runs of a tag.",
        ),
    ] = None,
    answers: Annotated[
        bool,
        typer.Option(
            "--answers/--no-answers",
            help="Score the answers a RAG endpoint generates with its results (faithfulness "
            "by the [judge] LLM, else offline; stored under the run id). Without answers in "
            "the responses there is nothing to score.",
        ),
    ] = True,
    engine: Engine = "local",
    ray_address: RayAddress = None,
    ray_actors: RayActors = DEFAULT_RAY_ACTORS,
    judge_holes: Annotated[
        bool,
        typer.Option(
            "--judge-holes",
            help="Then label the top-10 documents the goldset never judged with the [judge] "
            "LLM assessor and show the measures with those holes filled beside the exact ones "
            "(needs --corpus; the exact figures stay the run's).",
        ),
    ] = False,
    corpus: Annotated[Path | None, corpus_for("--judge-holes' texts")] = None,
    max_judgments: Annotated[int | None, max_judgments_with("--judge-holes")] = None,
    next_steps: Annotated[bool, typer.Option(hidden=True)] = False,
    output: Format = OutputFormat.table,
) -> None:
    """Replay a goldset against the live retriever, score it and store the run.

    A query the retriever fails on is recorded with its error and left out of the averages;
    the run is then stored as partial and the command exits 3. The store is not held during
    the replay. --goldset: docs/cli.md, "Goldsets and the store: what `--goldset` names, where
    the store is"; --engine ray: docs/scale.md.

    Example: evalkit run --goldset demo --collection demo --k 100 --format json

    Example: evalkit run --goldset goldsets/demo --collection demo

    Example: evalkit run --goldset demo --retriever bm25 --option index=.evalkit/bm25/demo
    """
    # The other commands' modules, here rather than at the top: `evalkit run --help` then
    # loads and lists `run` alone.
    from evalkit.cli.answers import print_answer_summaries
    from evalkit.cli.judge import build_assessor, print_holes, texts_to_judge
    from evalkit.cli.runs import documents_without_vectors, print_run, unfinished_indexing
    from evalkit.pipeline.goldset_run import run_goldset

    texts = (
        texts_to_judge("--judge-holes", corpus, retriever.collection, retriever.chroma_url)
        if judge_holes
        else None
    )
    assessor = build_assessor() if judge_holes else None
    config = settings()
    request = dataclasses.replace(
        GoldsetRunRequest.from_settings(
            config, k=k, measures=measure, label=label, answers=answers, tags=tag or ()
        ),
        goldset=goldset.name or "",
        goldset_version=goldset.version,
        goldset_format=goldset.format,
        goldset_split=goldset.split,
        goldset_topics=goldset.topics,
        engine=engine,
        ray_address=ray_address,
        ray_actors=ray_actors,
    )
    outcome = run_goldset(
        CommandStore("run", config=config),
        request,
        config,
        retriever,
        progress_bar=lambda name: progress_bar(
            f"replaying {name}", enabled=output is OutputFormat.table
        ),
    )
    holes = None
    if assessor is not None and texts is not None:
        from evalkit.pipeline import judge_run_holes
        from evalkit.records.requests import JudgingRequest

        depth = min(outcome.run.spec.k, JUDGING_DEFAULTS.k)
        with progress_bar("judging holes", enabled=output is OutputFormat.table) as bar:
            holes = judge_run_holes(
                CommandStore("run", config=config),
                outcome.run.run_id,
                assessor,
                texts,
                JudgingRequest(k=depth, max_judgments=max_judgments),
                progress=bar,
            )
    data = outcome.run.to_dict()
    data["answers"] = outcome.answers.to_dict(per_item=False) if outcome.answers else None
    data["holes"] = holes.to_dict() if holes is not None else None
    defaults = outcome.default_measures
    data["default_measures"] = defaults.to_dict() if defaults is not None else None
    if defaults is not None and defaults.note:
        say(f"note: {defaults.note}")
    shallow = outcome.shallow_measures_note
    if shallow:
        say(f"note: {shallow}")
    unfiltered = outcome.unfiltered_tenants_note
    if unfiltered:
        say(f"note: {unfiltered}")
    if outcome.nothing_judged_note:
        say(f"warning: {outcome.nothing_judged_note}")
    partial = unfinished_indexing(data)
    if partial:
        say(f"warning: {partial}")
    missing = documents_without_vectors(data)
    if missing:
        say(f"note: {missing}")
    if output is OutputFormat.json:
        emit_json(data)
    else:
        print_run(data)
        print_answer_summaries(data["answers"])
        if holes is not None:
            print_holes(holes)
        if next_steps:
            console.print(
                NEXT_STEPS.format(
                    run_id=outcome.run.run_id,
                    goldset=outcome.run.spec.goldset_name,
                    collection=retriever.collection or "NAME",
                    where=f" --where-key {retriever.where_key}" if retriever.where_key else "",
                    store=config.resolved_store_path,
                ),
                markup=False,
                soft_wrap=True,
            )
    # The store and the retriever are closed and the model's threads stopped.
    end_without_teardown()
    if outcome.run.status != "complete":
        raise typer.Exit(RetrieverError.exit_code)
