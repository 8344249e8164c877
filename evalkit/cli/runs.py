"""``evalkit runs list|show``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, cast

import typer

from evalkit.cli._output import OutputFormat, console, emit_json, key_values, table
from evalkit.cli._store import open_store
from evalkit.cli.app import runs_app

Format = Annotated[OutputFormat, typer.Option("--format", help="table or json")]


@runs_app.command("list")
def list_runs(
    goldset: Annotated[str | None, typer.Option(help="Only runs of this goldset.")] = None,
    status: Annotated[
        str | None, typer.Option(help="Only runs with this status (complete, partial, ...).")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs.")] = 20,
    measure: Annotated[str, typer.Option("-m", "--measure", help="Measure to show.")] = "ndcg@10",
    output: Format = OutputFormat.table,
) -> None:
    """List stored runs, newest first.

    Example: evalkit runs list --goldset demo --limit 5
    """

    with open_store(write=False, purpose="runs") as store:
        runs = store.list_runs(goldset=goldset, status=status, limit=limit)
    if output is OutputFormat.json:
        emit_json([run.to_dict() for run in runs])
        return
    rows = [
        [
            run.run_id,
            run.status,
            run.spec.goldset_name,
            run.spec.retriever_kind,
            run.spec.collection,
            run.n_evaluated,
            run.aggregates.get(measure),
            f"{run.started_at:%Y-%m-%d %H:%M}",
        ]
        for run in runs
    ]
    columns = ["run", "status", "goldset", "retriever", "collection", "queries", measure, "started"]
    console.print(table("runs", columns, rows))


@runs_app.command("show")
def show_run(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    per_query: Annotated[bool, typer.Option(help="Also print every query's values.")] = False,
    output: Format = OutputFormat.table,
) -> None:
    """Show one run: what it was, its status and its metrics (and its answers' scores).

    Example: evalkit runs show 20261121T183500-3f9a1c --per-query --format json
    """
    from evalkit.cli.answers import print_answer_summaries
    from evalkit.store.answers import answer_summaries, list_scorings

    with open_store(write=False, purpose="runs") as store:
        run = store.get_run(run_id)
        values = store.query_metrics(run.run_id) if per_query else None
        scorings = list_scorings(store, run_id=run.run_id, limit=1)
        answers = (
            {**scorings[0].to_dict(), "summaries": answer_summaries(store, scorings[0].scoring_id)}
            if scorings
            else None
        )
    data = run.to_dict()
    data["answers"] = answers
    if values is not None:
        data["per_query"] = {str(query_id): row.to_dict() for query_id, row in values.iterrows()}
    if output is OutputFormat.json:
        emit_json(data)
        return
    print_run(data)
    print_answer_summaries(answers)
    if values is not None and not values.empty:
        rows = [[str(qid), *row.tolist()] for qid, row in values.iterrows()]
        console.print(table("per query", ["query", *values.columns], rows))


def print_run(data: dict[str, object]) -> None:
    """Print a run's facts and its aggregates as tables."""
    model = cast(dict[str, Any], data.get("model") or {})
    facts = {
        "run": data["run_id"],
        "status": data["status"],
        "goldset": f"{data['goldset']} @ {data['goldset_version']}",
        "retriever": f"{data['retriever']} {data.get('collection') or ''}".strip(),
        "model": (
            f"{model['name']} ({model.get('dimension')}d, {model.get('fingerprint')})"
            if model.get("name")
            else "-"
        ),
        "k": data["k"],
        "queries": f"{data['n_evaluated']} evaluated of {data['n_queries']}"
        + (f", {data['n_failed']} failed" if data.get("n_failed") else ""),
        **(
            {"repeats": f"{data['n_duplicates']} repeated documents dropped (best rank kept)"}
            if data.get("n_duplicates")
            else {}
        ),
        "started": data["started_at"],
    }
    if data.get("error"):
        facts["error"] = data["error"]
    console.print(key_values("run", facts))
    aggregates = cast(dict[str, Any], data.get("aggregates") or {})
    console.print(table("metrics", ["measure", "value"], [[k, v] for k, v in aggregates.items()]))


@runs_app.command("export")
def export_run(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    trec: Annotated[Path, typer.Option(help="Write the run here as a TREC run file.")],
    output: Format = OutputFormat.table,
) -> None:
    """Write a stored run's ranked results as a TREC run file (qid Q0 docid rank score tag).

    Useful as a CI baseline artifact, or to score the run with other tools.

    Example: evalkit runs export 20261121T183500-3f9a1c --trec baseline.run
    """

    with open_store(write=False, purpose="runs") as store:
        run = store.get_run(run_id)
        results = store.run_results(run.run_id)
    trec.parent.mkdir(parents=True, exist_ok=True)
    with trec.open("w", encoding="utf-8") as handle:
        for query_id, rank, doc_id, score in zip(
            results["query_id"].tolist(),
            results["rank"].tolist(),
            results["doc_id"].tolist(),
            results["score"].tolist(),
            strict=True,
        ):
            handle.write(f"{query_id} Q0 {doc_id} {rank} {score!r} {run.run_id}\n")
    summary = {"run_id": run.run_id, "path": str(trec), "lines": len(results)}
    if output is OutputFormat.json:
        emit_json(summary)
    else:
        console.print(f"wrote {len(results)} lines of run {run.run_id} to {trec}", markup=False)
