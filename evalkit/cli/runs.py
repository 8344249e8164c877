"""``evalkit runs list|show|export|import``."""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from evalkit.cli._app import runs_app
from evalkit.cli._options import Format
from evalkit.cli._output import (
    OutputFormat,
    console,
    emit_json,
    fits,
    key_values,
    print_text,
    say,
    settings,
    table,
)
from evalkit.cli._store import open_store

if TYPE_CHECKING:
    import pandas as pd

    from evalkit.pipeline.goldset_slices import GoldsetSlice
    from evalkit.store import RunRecord, Store

RunId = Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")]
SortOption = Annotated[
    str,
    typer.Option(
        "--sort",
        help="Order of the per-query rows: id (numeric-aware, q2 before q10), worst "
        "(lowest ndcg@10, or the first measure, first) or a measure name (lowest first).",
    ),
]


def natural_key(query_id: object) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders ids numeric-aware: q2 before q10, q10 before q10a."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part)
        for part in re.split(r"(\d+)", str(query_id))
        if part
    )


def sort_per_query(values: pd.DataFrame, sort: str) -> pd.DataFrame:
    """Per-query values (index: query id, a column per measure) in the order ``sort`` asks:
    ``id`` (numeric-aware), ``worst`` (lowest ndcg@10, or the first measure, first) or a
    measure name (lowest first); ties and missing values go by id."""
    from evalkit.errors import ConfigError

    by_id = values.loc[sorted(values.index, key=natural_key)]
    if sort == "id" or values.empty:
        return by_id
    measure = sort
    if sort == "worst":
        measure = "ndcg@10" if "ndcg@10" in values.columns else str(values.columns[0])
    if measure not in values.columns:
        raise ConfigError(
            f"--sort {sort!r}: give id, worst or one of the run's measures "
            f"({', '.join(map(str, values.columns))})"
        )
    return by_id.sort_values(measure, kind="stable", na_position="last")


def _queries_cell(run: RunRecord) -> object:
    if run.spec.kind == "traffic":
        return run.n_queries - (run.n_failed or 0)
    return run.n_evaluated


@runs_app.command("list")
def list_runs(
    goldset: Annotated[str | None, typer.Option(help="Only runs of this goldset.")] = None,
    status: Annotated[
        str | None, typer.Option(help="Only runs with this status (complete, partial, ...).")
    ] = None,
    tag: Annotated[
        str | None,
        typer.Option(help="Only runs stored with this tag (`run --tag`, a sweep's sweep:NAME)."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many runs.")] = 20,
    measure: Annotated[str, typer.Option("-m", "--measure", help="Measure to show.")] = "ndcg@10",
    output: Format = OutputFormat.table,
) -> None:
    """List stored runs, newest first.

    Example: evalkit runs list --goldset demo --limit 5
    """

    from evalkit.errors import ConfigError
    from evalkit.store.runs import RUN_STATUSES
    from evalkit.store.runs import list_runs as list_stored_runs

    if status is not None and status not in RUN_STATUSES:
        raise ConfigError(f"--status {status!r}: give one of {', '.join(RUN_STATUSES)}")
    with open_store(write=False, purpose="runs") as store:
        runs = list_stored_runs(store, goldset=goldset, status=status, tag=tag, limit=limit)
    if output is OutputFormat.json:
        emit_json([run.to_dict() for run in runs])
        return
    rows = [
        [
            run.run_id,
            run.status,
            run.spec.goldset_name if run.spec.kind != "traffic" else run.spec.label,
            run.retriever_id,
            run.spec.collection,
            _queries_cell(run),
            run.aggregates.get(measure),
            f"{run.started_at:%Y-%m-%d %H:%M}",
        ]
        for run in runs
    ]
    columns = [
        "run",
        "status",
        "goldset / traffic window",
        "retriever",
        "collection",
        "queries",
        measure,
        "started",
    ]
    if any(run.imported_from for run in runs):
        # Only then: a run that ran elsewhere must not pass for one of this store's.
        columns.append("imported from")
        for row, run in zip(rows, runs, strict=True):
            row.append(run.imported_from or "-")
    if any(run.spec.tags for run in runs):
        columns.append("tags")
        for row, run in zip(rows, runs, strict=True):
            row.append(", ".join(run.spec.tags) or "-")
    drawn = table("runs", columns, rows)
    if fits(drawn):
        console.print(drawn)
        return
    # Squeezed into 80 columns every cell was cut ("comp…", "0.74…", "202… 17:…"): the
    # columns a reader scans, whole, without vertical rules, and a word on the rest. Where
    # a run was imported, and its tags, stay: they say what the run is.
    from rich import box

    # After "started" (column 7): where a run was imported from, and its tags.
    extra = list(range(8, len(columns)))
    for kept in ([0, 1, 2, 3, 5, 6], [0, 1, 2, 5, 6]):
        narrow = table(
            "runs",
            ["goldset / window" if index == 2 else columns[index] for index in kept]
            + ["started"]
            + [columns[index] for index in extra],
            [
                [row[index] for index in kept]
                + [f"{run.started_at:%m-%d %H:%M}"]
                + [row[index] for index in extra]
                for row, run in zip(rows, runs, strict=True)
            ],
        )
        narrow.box, narrow.show_edge, narrow.pad_edge = box.SIMPLE_HEAD, False, False
        narrow.collapse_padding = True
        if fits(narrow):
            break
    console.print(narrow)
    left_out = [columns[index] for index in (3, 4) if index not in kept]
    say(f"not shown at this width: {', '.join(left_out)} (see `evalkit runs show RUN`)")


@runs_app.command("show")
def show_run(
    run_id: RunId,
    per_query: Annotated[
        bool,
        typer.Option(help="Also print every query's values, and every failed query's error."),
    ] = False,
    sort: SortOption = "id",
    by: Annotated[
        str | None,
        typer.Option(
            help="Also each slice's measures over its queries alone: tag, tag:KEY (tags "
            "KEY:VALUE), tenant or topic (the traffic topics; embeds the goldset's queries)."
        ),
    ] = None,
    output: Format = OutputFormat.table,
) -> None:
    """Show one run: what it was, its status and its metrics (and its answers' scores).

    A traffic replay run shows its window, tenants, sample size and label-free figures.

    Example: evalkit runs show 20261121T183500-3f9a1c --per-query --sort worst --by tag:locale
    --format json
    """
    from evalkit.cli.answers import print_answer_summaries
    from evalkit.store.answers import answer_summaries, list_scorings
    from evalkit.store.runs import get_run, query_metrics, run_queries

    with open_store(write=False, purpose="runs") as store:
        run = get_run(store, run_id)
        values = sort_per_query(query_metrics(store, run.run_id), sort) if per_query else None
        failed = _failed_queries(run_queries(store, run.run_id)) if per_query else None
        traffic = _traffic_facts(store, run.run_id) if run.spec.kind == "traffic" else None
        scorings = list_scorings(store, run_id=run.run_id, limit=1)
        sliced = _slices(store, run.run_id, by) if by is not None else None
        answers = (
            {**scorings[0].to_dict(), "summaries": answer_summaries(store, scorings[0].scoring_id)}
            if scorings
            else None
        )
    data = run.to_dict()
    data["answers"] = answers
    if traffic is not None:
        data["traffic"] = traffic
    if values is not None:
        data["per_query"] = {str(query_id): row.to_dict() for query_id, row in values.iterrows()}
    if failed is not None:
        data["failed_queries"] = failed
    if sliced is not None:
        data["slices"] = {"by": by, "slices": [s.to_dict() for s in sliced]}
    if output is OutputFormat.json:
        emit_json(data)
        return
    print_run(data)
    if sliced is not None:
        from evalkit.cli._slices import print_goldset_slices

        print_goldset_slices(sliced, run.spec.measures)
    print_answer_summaries(answers)
    if values is not None and not values.empty:
        rows = [[str(qid), *row.tolist()] for qid, row in values.iterrows()]
        console.print(table("per query", ["query", *values.columns], rows))
    if failed:
        console.print(
            table(
                f"failed queries ({len(failed)})",
                ["query", "error"],
                [[item["query_id"], item["error"]] for item in failed],
            )
        )


def _slices(store: Store, run_id: str, by: str) -> list[GoldsetSlice]:
    """A goldset run's measures per slice ``by``; topics embed its queries with the
    configured model (loaded only then: it takes seconds)."""
    from evalkit.pipeline.goldset_slices import goldset_run_slices, goldset_topics

    if by == "topic":
        # sentence-transformers (or ONNX Runtime) loads here, only for topics.
        from evalkit.embedding.lazy import LazyEmbedder

        embedder = LazyEmbedder.from_settings(settings())
        return goldset_run_slices(store, run_id, by, topic_of=goldset_topics(store, embedder))
    return goldset_run_slices(store, run_id, by)


def _failed_queries(replayed: pd.DataFrame) -> list[dict[str, str]]:
    """Every query whose retrieval failed, with its error, in numeric-aware id order."""
    rows = replayed[replayed["error"].notna()]
    pairs: Iterable[tuple[object, object]] = zip(
        rows["query_id"].tolist(), rows["error"].tolist(), strict=True
    )
    return [
        {"query_id": str(query_id), "error": str(error)}
        for query_id, error in sorted(pairs, key=lambda pair: natural_key(pair[0]))
    ]


def _traffic_facts(store: Store, run_id: str) -> dict[str, Any] | None:
    """What a traffic replay run is: its window, sample, tenants and label-free figures."""
    from evalkit.store.traffic import load_sample, load_sample_queries, window_summary_of_run

    summary = window_summary_of_run(store, run_id)
    if summary is None:
        return None
    sample = load_sample(store, summary.sample_id)
    queries = load_sample_queries(store, sample.sample_id)
    tenants = sorted({str(t) for t in queries["tenant"].dropna().tolist()})
    return {
        "summary": summary.to_dict(),
        "sample": sample.to_dict(),
        "tenants": tenants,
    }


NOT_FINGERPRINTED = "not fingerprinted (the retriever encodes queries itself, or does not embed)"
"""What a run shows as its model when evalkit did not embed the queries: the retriever
embeds them with a model evalkit does not call, or searches without embeddings (keywords)."""


def retriever_fact(data: Mapping[str, object]) -> str:
    """The retriever of a run for people: its kind and collection, and for the user's own
    factory or plug-in, the function and the class of what it returned."""
    shown = f"{data['retriever']} {data.get('collection') or ''}".strip()
    config = cast(Mapping[str, Any], data.get("retriever_config") or {})
    if config.get("factory"):
        made = f" returning {config['class']}" if config.get("class") else ""
        shown = f"{shown} ({config['factory']}{made})"
    return shown


def unfinished_indexing(data: Mapping[str, object]) -> str | None:
    """What to tell about a run whose Chroma collection an ``evalkit index`` had left half
    written when the run started (its retriever recorded ``unfinished_indexing``); None
    otherwise."""
    config = cast(Mapping[str, Any], data.get("retriever_config") or {})
    started = config.get("unfinished_indexing")
    if started is None:
        return None
    return (
        f"collection {data.get('collection') or config.get('collection')} was partly indexed: "
        f"an `evalkit index` that started at {started} did not finish, so the run searched "
        "only the documents it had written; run the same `evalkit index` again to finish it"
    )


def documents_without_vectors(data: Mapping[str, object]) -> str | None:
    """What to tell about a run whose index held documents without a vector when it started
    (a pgvector row whose embedding is NULL): no query could retrieve them. None otherwise,
    and for an index its kind declares lexical (``RetrieverKind.lexical``: it records 0
    vectors, and every document can still be retrieved)."""
    from evalkit.retrievers.kinds import RETRIEVER_KINDS

    kind = RETRIEVER_KINDS.get(str(data.get("retriever")))
    if kind is not None and kind.lexical:
        return None
    size = cast(Mapping[str, Any], data.get("index_size") or {})
    documents, vectors = size.get("documents"), size.get("vectors")
    if documents is None or vectors is None or vectors >= documents:
        return None
    return (
        f"{vectors:,} of the index's {documents:,} documents have a vector: the other "
        f"{documents - vectors:,} cannot be retrieved by any query"
    )


def print_run(data: dict[str, object]) -> None:
    """Print a run's facts and its aggregates as tables."""
    traffic = cast(dict[str, Any] | None, data.get("traffic"))
    if data.get("kind") == "traffic":
        _print_traffic_run(data, traffic)
        return
    model = cast(dict[str, Any], data.get("model") or {})
    facts = {
        "run": data["run_id"],
        "status": data["status"],
        "goldset": f"{data['goldset']} @ {data['goldset_version']}",
        "retriever": retriever_fact(data),
        "model": (
            f"{model['name']} ({model.get('dimension')}d, {model.get('fingerprint')})"
            if model.get("name")
            else NOT_FINGERPRINTED
        ),
        "k": data["k"],
        "queries": f"{data['n_evaluated'] or 0} evaluated of {data['n_queries']}"
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
    partial = unfinished_indexing(data)
    if partial:
        facts["index"] = partial
    missing = documents_without_vectors(data)
    if missing:
        facts["vectors"] = missing
    if data.get("imported_from"):
        facts["imported"] = f"from {data['imported_from']} at {data['imported_at']}"
    console.print(key_values("run", facts))
    aggregates = cast(dict[str, Any], data.get("aggregates") or {})
    console.print(table("metrics", ["measure", "value"], [[k, v] for k, v in aggregates.items()]))


def _figure(value: object, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _print_traffic_run(data: dict[str, object], traffic: dict[str, Any] | None) -> None:
    """A traffic replay run: no goldset and no judged metrics, but a window, a sample and
    label-free figures (docs/traffic.md)."""
    facts: dict[str, object] = {
        "run": data["run_id"],
        "status": data["status"],
        "kind": f"traffic replay ({data.get('label') or '-'})",
        "retriever": retriever_fact(data),
        "k": data["k"],
        "queries": f"{data['n_queries']} sampled"
        + (f", {data['n_failed']} failed" if data.get("n_failed") else ""),
        "started": data["started_at"],
    }
    if data.get("error"):
        facts["error"] = data["error"]
    if traffic is None:
        facts["window"] = "- (no window summary stored: the replay did not finish)"
        console.print(key_values("run", facts))
        return
    summary = cast(dict[str, Any], traffic["summary"])
    sample = cast(dict[str, Any], traffic["sample"])
    tenants = cast(list[str], traffic["tenants"])
    facts["window"] = (
        f"{summary['window_label']} ({summary['window_start']} to {summary['window_end']})"
    )
    facts["sample"] = (
        f"{sample['n_sampled']} of {sample['n_distinct']} distinct queries "
        f"({sample['n_records']} logged requests), sample {sample['sample_id']}, "
        f"seed {sample['seed']}"
        + (f", stratified by {sample['stratify_by']}" if sample.get("stratify_by") else "")
    )
    facts["tenants"] = (
        ", ".join(tenants[:10]) + (f" and {len(tenants) - 10} more" if len(tenants) > 10 else "")
        if tenants
        else "-"
    )
    console.print(key_values("run", facts))
    figures = [
        ["replayed", summary["n_replayed"]],
        ["failed", summary["n_failed"]],
        [
            "latency p50 / p95 / p99 ms",
            " / ".join(_figure(summary[f"latency_p{q}"], 1) for q in (50, 95, 99)),
        ],
        ["top-1 score mean", _figure(summary["top1_mean"])],
        [
            f"low-confidence share (top-1 < {summary['low_confidence_threshold']:g})",
            _figure(summary["low_confidence_share"]),
        ],
        ["empty-result share", _figure(summary["empty_share"])],
        [f"overlap@{summary['compare_k']} with logged results", _figure(summary["overlap_mean"])],
        ["RBO with logged results", _figure(summary["rbo_mean"])],
        ["churn", _figure(summary["churn"])],
    ]
    console.print(table("label-free figures", ["figure", "value"], figures))


class ExportFormat(StrEnum):
    """What ``evalkit runs export`` writes."""

    trec = "trec"
    jsonl = "jsonl"
    parquet = "parquet"


@runs_app.command("export")
def export_run(
    run_id: RunId,
    export_format: Annotated[
        ExportFormat | None,
        typer.Option(
            "--format",
            help="trec (a TREC run file, the default), jsonl (one object per query with its "
            "results and metrics) or parquet (a directory of results.parquet, "
            "queries.parquet and run.json).",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="File to write (a directory for parquet); trec and jsonl go to stdout without it.",
        ),
    ] = None,
    trec: Annotated[
        Path | None,
        typer.Option(
            help="Same as --format trec --output PATH (kept for existing scripts).",
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace an existing --output file (parquet: write into a directory that "
            "holds files).",
        ),
    ] = False,
) -> None:
    """Write a stored run's results and per-query metrics for other tools.

    trec: `qid Q0 docid rank score tag` lines, from which trec_eval computes the stored
    metrics; jsonl and parquet carry the per-query metrics too (docs/export.md).

    Example: evalkit runs export 20261121T183500-3f9a1c --format parquet --output exports/main
    """
    from evalkit.errors import ConfigError
    from evalkit.store.export import export_run as export_stored_run

    if trec is not None:
        if output is not None or export_format not in (None, ExportFormat.trec):
            raise ConfigError("--trec PATH is --format trec --output PATH: give one or the other")
        export_format, output = ExportFormat.trec, trec
    chosen = export_format or ExportFormat.trec
    with open_store(write=False, purpose="runs") as store:
        done = export_stored_run(
            store,
            run_id,
            format=chosen.value,
            output=output,
            stream=sys.stdout,
            overwrite=overwrite,
        )
    if done.status != "complete":
        say(f"note: run {done.run_id} is {done.status}; `evalkit runs show {done.run_id}` says why")
    if done.path is not None:
        say(
            f"wrote run {done.run_id} ({done.n_queries} queries, {done.n_results} results) "
            f"as {done.format} to {done.path}"
        )


@runs_app.command("import")
def import_run(
    path: Annotated[
        Path,
        typer.Argument(
            help="A run export: the directory `evalkit runs export RUN --format parquet` "
            "wrote (or its run.json)."
        ),
    ],
    output: Format = OutputFormat.table,
) -> None:
    """Store a run exported from another store (a CI job's baseline, a colleague's run) as
    it was: its id, provenance, per-query results and metrics. `runs list` and `runs show`
    say where it came from; importing the same export again changes nothing.

    Example: evalkit runs import exports/20261121T183500-3f9a1c
    """
    from evalkit.store.export import import_run as import_exported_run

    with open_store(write=True, purpose="runs import") as store:
        done = import_exported_run(store, path)
    if output is OutputFormat.json:
        emit_json(done.to_dict())
        return
    if done.imported:
        print_text(
            f"imported run {done.run_id} ({done.status}, {done.n_queries} queries, "
            f"{done.n_results} results) from {done.path}"
        )
    else:
        print_text(f"run {done.run_id} is stored already: nothing imported from {done.path}")
