"""``evalkit traffic ingest|sample|replay|promote|windows``: production traffic."""

from __future__ import annotations

import re
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from evalkit.cli import Terminated
from evalkit.cli._groups import grouped
from evalkit.cli._options import Format, command_group, corpus_for, max_judgments_with, seed_option
from evalkit.cli._output import (
    OutputFormat,
    console,
    emit_json,
    err_console,
    format_share,
    key_values,
    print_text,
    progress_bar,
    say,
    settings,
    table,
)
from evalkit.cli._retriever import RETRIEVER
from evalkit.cli._store import CommandStore, open_store
from evalkit.errors import InputError, RetrieverError
from evalkit.records.requests import (
    DEFAULT_MIN_PER_STRATUM,
    DEFAULT_PROMOTED_MIN_PER_TENANT,
    DEFAULT_PROMOTED_QUERIES,
    DEFAULT_PROMOTED_TOP,
    DEFAULT_TRAFFIC_SAMPLE,
    TRAFFIC_REPLAY_DEFAULTS,
    TrafficCycleRequest,
    TrafficReplayRequest,
)

if TYPE_CHECKING:
    from evalkit.retrievers.factory import RetrieverOptions
    from evalkit.store import Store
    from evalkit.store.judging import JudgedFigure, StoredAgreement
    from evalkit.traffic.ingest import IngestReport

__all__ = ["traffic_app"]

traffic_app = command_group(
    "traffic",
    "Ingest production query logs, sample them per time window, replay the samples "
    "against the live retriever, and promote queries to goldset drafts.",
)

WindowOption = Annotated[
    str,
    typer.Option(
        "--window",
        help="Time window: a day (2026-11-21), hour (2026-11-21T13), ISO week (2026-W47), "
        "month (2026-11), START/END interval, today or yesterday (UTC).",
    ),
]


class IngestFormat(StrEnum):
    """What ``traffic ingest --format`` takes: the output format, the files' format, or both."""

    table = "table"
    json = "json"
    jsonl = "jsonl"
    parquet = "parquet"
    otlp_json = "otlp-json"


_OUTPUT_FORMATS = {IngestFormat.table: OutputFormat.table, IngestFormat.json: OutputFormat.json}


@traffic_app.command("ingest")
def ingest(
    paths: Annotated[
        list[Path], typer.Argument(help="Log files (.jsonl, .parquet) or directories of them.")
    ],
    redact: Annotated[
        list[str] | None,
        typer.Option(
            help="Mask a named pattern (email, number) in text, answer and contexts; repeatable."
        ),
    ] = None,
    redact_pattern: Annotated[
        list[str] | None,
        typer.Option(help="Mask matches of this regular expression (RE2) too; repeatable."),
    ] = None,
    drop: Annotated[
        list[str] | None,
        typer.Option(
            help="Do not store this field (answer, contexts, tags, results, "
            "latency_ms); repeatable."
        ),
    ] = None,
    watch: Annotated[
        bool, typer.Option(help="Keep ingesting new lines every --interval seconds until Ctrl-C.")
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between passes with --watch.")] = 30.0,
    strict: Annotated[
        bool,
        typer.Option(
            help="Exit 2 when any line was malformed, a file could not be read or a directory "
            "held no log file (all are still reported; the rest is ingested)."
        ),
    ] = False,
    formats: Annotated[
        list[IngestFormat] | None,
        typer.Option(
            "--format",
            help="Output (table or json) and/or the files' format: otlp-json (an "
            "OpenTelemetry Collector file exporter's output), jsonl or parquet (default: by "
            "file name); repeatable: --format otlp-json --format json.",
        ),
    ] = None,
) -> None:
    """Ingest traffic logs incrementally: lines already ingested are never read twice.

    A malformed line is reported with its file and line number and skipped; a line still
    being written is left for the next pass. The files a directory yields and --format
    otlp-json: docs/traffic.md, "Ingest".

    Example: evalkit traffic ingest logs/ --redact email --redact number --format json

    Example: evalkit traffic ingest traces.json --format otlp-json
    """
    from evalkit.traffic.ingest import ingest_paths
    from evalkit.traffic.ingest import watch as watch_paths
    from evalkit.traffic.otlp import SpanMapping
    from evalkit.traffic.redaction import Redaction

    output, file_format = _ingest_formats(formats or [])
    redaction = Redaction.build(patterns=redact or (), custom=redact_pattern or (), drop=drop or ())
    spans = SpanMapping(
        tenant_attribute=settings().otlp.tenant_attribute,
        document_id_keys=tuple(settings().otlp.document_id_keys),
    )
    problems = 0

    def show(report: IngestReport) -> None:
        nonlocal problems
        problems += report.n_problems
        _print_ingest(report, output)

    if watch:
        try:
            watch_paths(
                partial(open_store, write=True, purpose="traffic ingest --watch"),
                paths,
                interval=interval,
                on_report=show,
                redaction=redaction,
                file_format=file_format,
                spans=spans,
            )
        except (KeyboardInterrupt, Terminated):
            # Ctrl-C or SIGTERM (a service manager) is how a watch is meant to end.
            err_console.print("stopped watching")
    else:
        with open_store(write=True, purpose="traffic ingest") as store:
            show(
                ingest_paths(
                    store, paths, redaction=redaction, file_format=file_format, spans=spans
                )
            )
    if strict and problems:
        raise typer.Exit(InputError.exit_code)


def _ingest_formats(formats: list[IngestFormat]) -> tuple[OutputFormat, str | None]:
    """The output format and the files' format (None: by file name) of ``--format``s."""
    from evalkit.errors import ConfigError

    outputs = {_OUTPUT_FORMATS[f] for f in formats if f in _OUTPUT_FORMATS}
    inputs = {f.value for f in formats if f not in _OUTPUT_FORMATS}
    if len(outputs) > 1 or len(inputs) > 1:
        raise ConfigError(
            "--format takes at most one output format (table or json) and one file format "
            "(otlp-json, jsonl or parquet), e.g. --format otlp-json --format json"
        )
    return next(iter(outputs), OutputFormat.table), next(iter(inputs), None)


def _print_ingest(report: IngestReport, output: OutputFormat) -> None:
    if output is OutputFormat.json:
        emit_json(report.to_dict())
        return
    rows = [
        [
            entry.path,
            entry.status,
            entry.lines_read,
            entry.records_added,
            entry.duplicates,
            entry.malformed,
        ]
        for entry in report.files
    ]
    columns = ["file", "status", "lines", "added", "duplicates", "malformed"]
    console.print(table("traffic ingest", columns, rows))
    for entry in report.files:
        if entry.note:
            say(f"note: {entry.path}: {entry.note}")
    for problem in report.problems:
        say(f"malformed: {problem}")
    hidden = report.n_problems - len(report.problems)
    if hidden > 0:
        err_console.print(
            f"... and {hidden} more (all stored in the traffic_ingest_problems table)",
            markup=False,
        )
    if report.unknown_fields:
        fields = ", ".join(f"{name} ({count})" for name, count in report.unknown_fields.items())
        err_console.print(
            f"note: fields not in the log format were ignored: {fields}", markup=False
        )


@traffic_app.command("sample")
def sample(
    window: WindowOption,
    n: Annotated[int, typer.Option("--n", help="Queries to sample.")] = DEFAULT_TRAFFIC_SAMPLE,
    seed: Annotated[int, seed_option("Seed; the same seed gives the same sample.")] = 0,
    stratify_by: Annotated[
        str | None,
        typer.Option(help="Stratify by tenant or by a tag (tag:KEY); default uniform."),
    ] = None,
    min_per_stratum: Annotated[
        int, typer.Option(help="At least this many queries of every stratum (or all it has).")
    ] = DEFAULT_MIN_PER_STRATUM,
    dedup: Annotated[bool, typer.Option(help="Count identical queries of the window once.")] = True,
    output: Format = OutputFormat.table,
) -> None:
    """Draw and store a seeded sample of one window's distinct queries.

    Example: evalkit traffic sample --window 2026-11-21 --n 2000 --stratify-by tenant
    --min-per-stratum 20 --seed 7
    """
    from evalkit.traffic.sampling import SampleSpec, parse_stratification, sample_window
    from evalkit.traffic.windows import parse_window

    spec = SampleSpec(
        window=parse_window(window),
        n=n,
        seed=seed,
        stratify_by=parse_stratification(stratify_by),
        min_per_stratum=min_per_stratum,
        dedup=dedup,
    )
    with open_store(write=True, purpose="traffic") as store:
        stored = sample_window(store, spec)
    data = stored.to_dict()
    if output is OutputFormat.json:
        emit_json(data)
        return
    console.print(
        key_values(
            f"sample {stored.sample_id}",
            {
                "window": f"{stored.window_label} ({stored.window_start:%Y-%m-%d %H:%M} to "
                f"{stored.window_end:%Y-%m-%d %H:%M} UTC)",
                "records in window": stored.n_records,
                "distinct queries": stored.n_distinct,
                "sampled": stored.n_sampled,
                "stratified by": stored.stratify_by or "- (uniform)",
                "seed": stored.seed,
            },
        )
    )
    if stored.stratify_by:
        rows = [[stratum or "(none)", quota] for stratum, quota in stored.quotas.items()]
        console.print(table("per stratum", ["stratum", "sampled"], rows))


@traffic_app.command("replay")
@grouped
def replay(
    window: Annotated[
        str | None, typer.Option(help="Replay the newest sample of this window.")
    ] = None,
    sample_id: Annotated[
        str | None, typer.Option("--sample", help="Replay this sample (id or unique prefix).")
    ] = None,
    retriever: RetrieverOptions = RETRIEVER.use(
        omit=("option",), fixed={"defer_model_check": True}
    ),
    k: Annotated[
        int, typer.Option("--k", help="Documents retrieved per query.")
    ] = TRAFFIC_REPLAY_DEFAULTS.k,
    compare_k: Annotated[
        int | None, typer.Option(help="Depth of the comparison with logged results (default k).")
    ] = None,
    low_confidence: Annotated[
        float | None,
        typer.Option(help="Top-1 score below which a query is low-confidence (default 0.4)."),
    ] = None,
    embed_sample: Annotated[
        int, typer.Option(help="Query embeddings stored for the window (0: none).")
    ] = TRAFFIC_REPLAY_DEFAULTS.embedding_sample_size,
    tenant_isolation: Annotated[
        bool,
        typer.Option(
            help="Refuse to replay tenants' queries on a retriever that does not filter by tenant."
        ),
    ] = TRAFFIC_REPLAY_DEFAULTS.tenant_isolation,
    answers: Annotated[
        bool,
        typer.Option(
            "--answers/--no-answers",
            help="Score the answers production logged with these queries against their "
            "logged contexts (faithfulness by the [judge] LLM, else offline; stored under "
            "the replay's run id).",
        ),
    ] = TRAFFIC_REPLAY_DEFAULTS.answers,
    judge: Annotated[
        bool,
        typer.Option(
            "--judge",
            help="Label the replayed top-k (and the logged top-k) with the [judge] LLM "
            "assessor and store the window's precision, nDCG and hit rate under those "
            "labels (needs --corpus).",
        ),
    ] = False,
    corpus: Annotated[Path | None, corpus_for("--judge's document texts")] = None,
    max_judgments: Annotated[int | None, max_judgments_with("--judge")] = None,
    estimate: Annotated[
        bool,
        typer.Option(
            "--estimate",
            help="Estimate the window's precision@k without labels, from the scores "
            "calibrated on the newest goldset run of the same retriever and model (no LLM).",
        ),
    ] = False,
    with_slices: Annotated[
        bool,
        typer.Option(
            "--slices",
            help="Then cut the window into slices and test them against the baseline "
            "(as `traffic slices` does).",
        ),
    ] = False,
    output: Format = OutputFormat.table,
) -> None:
    """Replay a stored sample against the live retriever; store the run and window summary.

    Each query of tenant A is filtered to tenant A's documents (--where-key; docs/traffic.md,
    "Tenant isolation"). Exits 3 when any query failed.

    Example: evalkit traffic replay --window 2026-11-21 --collection support-kb --where-key tenant
    --k 10 --format json
    """
    # The other commands' modules, here rather than at the top: `evalkit traffic --help`
    # then loads and lists `traffic` alone.
    from evalkit.cli.answers import print_answer_summaries
    from evalkit.cli.judge import print_window_estimate, print_window_judging, texts_to_judge
    from evalkit.errors import ConfigError
    from evalkit.pipeline.traffic_cycle import run_traffic_cycle
    from evalkit.retrievers.factory import build_retriever

    if window is not None and sample_id is not None:
        raise ConfigError("name what to replay: --window LABEL or --sample ID, not both")
    if window is None and sample_id is None:
        raise ConfigError("name what to replay: --window LABEL or --sample ID")
    config = settings()
    request = TrafficCycleRequest(
        replay=TrafficReplayRequest.from_settings(
            config,
            k=k,
            compare_k=compare_k,
            low_confidence=low_confidence,
            tenant_isolation=tenant_isolation,
            embedding_sample_size=embed_sample,
            answers=answers,
        ),
        sample_id=sample_id,
        window=window,
        judge=judge,
        max_judgments=max_judgments,
        estimate=estimate,
        slices=with_slices,
    )
    texts = (
        texts_to_judge("--judge", corpus, retriever.collection, retriever.chroma_url)
        if judge
        else None
    )
    with progress_bar("replaying traffic", enabled=output is OutputFormat.table) as bar:
        cycle = run_traffic_cycle(
            # Opened for each piece of work the replay does: the queries are sent without it.
            CommandStore(purpose="traffic replay", config=config),
            request,
            config,
            partial(build_retriever, retriever, config),
            texts=texts,
            progress=bar,
            answers_progress=bar.stage("scoring logged answers") if bar is not None else None,
            judging_progress=bar.stage("judging the window") if bar is not None else None,
        )
    outcome, judged, estimated = cycle.replay, cycle.judged, cycle.estimate
    assert outcome is not None, "the command's request replays"
    if cycle.estimate_note is not None:
        say(f"no estimate: {cycle.estimate_note}")
    if cycle.slices_note is not None:
        say(f"no slices: {cycle.slices_note}")
    scored = outcome.answers
    data: dict[str, Any] = {
        "run": outcome.run.to_dict(),
        "summary": outcome.summary.to_dict(),
        "answers": scored.to_dict(per_item=False) if scored else None,
        "judged": judged.to_dict() if judged else None,
        "estimate": (
            estimated.to_dict()
            if estimated
            else {"note": cycle.estimate_note}
            if estimate
            else None
        ),
        "slices": (
            cycle.slices.to_dict()
            if cycle.slices
            else {"note": cycle.slices_note}
            if with_slices
            else None
        ),
    }
    if output is OutputFormat.json:
        emit_json(data)
    else:
        _print_summary(outcome.summary.to_dict(), title=f"replay {outcome.run.run_id}")
        print_answer_summaries(data["answers"], title="logged answers")
        if judged is not None:
            print_window_judging(judged)
        if estimated is not None:
            print_window_estimate(estimated)
        if cycle.slices is not None:
            from evalkit.cli._slices import print_window_slices

            print_window_slices(cycle.slices)
    if outcome.run.status != "complete":
        raise typer.Exit(RetrieverError.exit_code)


def _print_summary(summary: dict[str, Any], *, title: str) -> None:
    shown = {
        "window": summary["window_label"],
        "status / queries": f"{summary['n_replayed']} replayed, {summary['n_failed']} failed",
        "volume (records, distinct)": f"{summary['volume']}, {summary['n_distinct']}",
        "latency p50 / p95 / p99 ms": _triple(summary, "latency"),
        "logged latency p50 / p95 / p99 ms": _triple(summary, "logged_latency"),
        "top-1 score p05 / p50 / p95": " / ".join(
            _cell(summary[f"top1_{q}"]) for q in ("p05", "p50", "p95")
        ),
        "low-confidence share": summary["low_confidence_share"],
        "compared with logged": summary["n_compared"],
        "overlap@k / RBO": f"{_cell(summary['overlap_mean'])} / {_cell(summary['rbo_mean'])}",
        "embeddings stored": summary["n_embeddings"],
    }
    console.print(key_values(title, shown))


def _triple(summary: dict[str, Any], prefix: str) -> str:
    return " / ".join(_cell(summary[f"{prefix}_{q}"]) for q in ("p50", "p95", "p99"))


def _cell(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


@traffic_app.command("promote")
def promote(
    window: WindowOption,
    n: Annotated[int, typer.Option("--n", help="Queries to promote.")] = DEFAULT_PROMOTED_QUERIES,
    out: Annotated[
        Path | None,
        typer.Option(help="Draft folder to write (default: goldset-draft-<window>)."),
    ] = None,
    top: Annotated[
        int, typer.Option(help="Current top results listed per query.")
    ] = DEFAULT_PROMOTED_TOP,
    min_per_tenant: Annotated[
        int, typer.Option(help="At least this many queries of every tenant (or all it has).")
    ] = DEFAULT_PROMOTED_MIN_PER_TENANT,
    seed: Annotated[int, seed_option("Seed ordering queries of equal priority.")] = 0,
    run_id: Annotated[
        str | None, typer.Option("--run", help="Use this replay (default: the newest).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing draft.")] = False,
    output: Format = OutputFormat.table,
) -> None:
    """Write a goldset draft of a replayed window's most useful queries to judge.

    Stratified by tenant, favouring low-confidence and high-churn queries. The draft goes
    through the review queue or becomes a goldset of its own (docs/traffic.md, "Promotion to
    goldsets").

    Example: evalkit traffic promote --window 2026-11-21 --n 50 --out drafts/2026-11-21
    """
    from evalkit.traffic.promote import promote_window
    from evalkit.traffic.windows import parse_window

    label = parse_window(window).label
    target = out or Path(f"goldset-draft-{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)}")
    with open_store(write=True, purpose="traffic") as store:
        draft = promote_window(
            store,
            label,
            target,
            n=n,
            top=top,
            min_per_stratum=min_per_tenant,
            seed=seed,
            run_id=run_id,
            overwrite=overwrite,
        )
    if output is OutputFormat.json:
        emit_json(draft.to_dict())
        return
    print_text(
        f"wrote {draft.n_promoted} of the {draft.n_available} answered queries of the replay of "
        f"{draft.window_label} "
        f"with {draft.n_judgments} results to grade to {draft.directory}\n"
        f"to add them to a goldset: evalkit review add {draft.directory} --goldset NAME, then "
        "evalkit goldset publish NAME\n"
        f"or grade them (see {draft.directory / 'README.md'}) as a goldset of their own: "
        f"evalkit goldset import {draft.directory} --name NEW-NAME"
    )


@traffic_app.command("windows")
def windows(
    granularity: Annotated[
        str, typer.Option(help="Window size to list traffic by: hour, day, week or month.")
    ] = "day",
    limit: Annotated[int, typer.Option(min=1, help="At most this many windows.")] = 30,
    output: Format = OutputFormat.table,
) -> None:
    """List windows with traffic, newest first, with their latest sample and replay summary.

    A window an LLM assessor judged also shows its precision@k with the 95% interval, per
    assessor; --format json lists every judged figure of the window under "judged"
    (docs/judging.md, "Production traffic").

    Example: evalkit traffic windows --granularity day --format json
    """
    from evalkit.cli.judge import queries_used
    from evalkit.store.traffic import list_samples, list_window_summaries, traffic_volume
    from evalkit.traffic.windows import GRANULARITIES

    unit = GRANULARITIES.get(granularity)
    if unit is None:
        from evalkit.errors import ConfigError

        raise ConfigError(
            f"unknown granularity '{granularity}'; use one of: {', '.join(GRANULARITIES)}"
        )
    entries: list[dict[str, Any]] = []
    with open_store(write=False, purpose="traffic") as store:
        volumes = traffic_volume(store, granularity=granularity, limit=limit)
        samples: dict[str, Any] = {}
        for stored in list_samples(store, limit=10_000):
            samples.setdefault(stored.window_label, stored)
        summaries: dict[str, Any] = {}
        replays: dict[str, list[str]] = {}
        for summary in list_window_summaries(store, limit=10_000):
            summaries.setdefault(summary.window_label, summary)
            replays.setdefault(summary.window_label, []).append(summary.run_id)
        labels = [unit.window(start).label for start, *_ in volumes]
        judged = {label: _judged_figures(store, replays.get(label, [])) for label in labels}
        agreements = _agreements(store, judged)
        for start, records, tenants, logged, without_text in volumes:
            label = unit.window(start).label
            latest_sample = samples.get(label)
            latest_summary = summaries.get(label)
            entries.append(
                {
                    "window": label,
                    "records": records,
                    "tenants": tenants,
                    "with_logged_results": logged,
                    "without_text": without_text,
                    "sample": latest_sample.to_dict() if latest_sample else None,
                    "summary": latest_summary.to_dict() if latest_summary else None,
                    "judged": [
                        {
                            **figure.to_dict(),
                            "agreement": _agreement_summary(figure.agreement_id, agreements),
                        }
                        for figure in judged.get(label, [])
                    ],
                }
            )
    if output is OutputFormat.json:
        emit_json(entries)
        return
    rows = [
        [
            entry["window"],
            entry["records"],
            entry["without_text"],
            entry["sample"]["n_sampled"] if entry["sample"] else None,
            _summary_value(entry, "latency_p95"),
            _summary_value(entry, "top1_p50"),
            _summary_value(entry, "low_confidence_share"),
            _summary_value(entry, "churn"),
        ]
        for entry in entries
    ]
    columns = ["window", "records", "no text", "sampled", "p95 ms", "top-1", "low conf", "churn"]
    precision = {
        entry["window"]: _replayed_precision(judged.get(entry["window"], [])) for entry in entries
    }
    if not any(precision.values()):
        console.print(table(f"traffic windows by {granularity}", columns, rows))
        return
    measures = {figure.measure for shown in precision.values() for figure in shown}
    header = next(iter(measures)) if len(measures) == 1 else "precision@k"
    for row, entry in zip(rows, entries, strict=True):
        shown = precision[entry["window"]]
        row.extend(
            [
                "\n".join(
                    _interval_cell(figure, with_measure=len(measures) > 1) for figure in shown
                )
                or None,
                "\n".join(_judged_cell(figure) for figure in shown) or None,
                "\n".join(queries_used(figure) for figure in shown) or None,
                "\n".join(figure.labeller for figure in shown) or None,
            ]
        )
    columns += [f"{header} [95% CI]", "judged", "queries", "assessor"]
    console.print(table(f"traffic windows by {granularity}", columns, rows))
    _print_agreements(precision, agreements)


def _summary_value(entry: dict[str, Any], name: str) -> object:
    summary = entry["summary"]
    return summary[name] if summary else None


def _judged_figures(store: Store, run_ids: list[str]) -> list[JudgedFigure]:
    """A window's figures from assessor labels: per assessor, source and measure, that of the
    newest replay judged (``run_ids`` newest first), whichever retriever replayed it, as the
    row's summary is the newest replay's; one assessor's figures are never merged with
    another's."""
    from evalkit.store.judging import ASSESSOR_SOURCES, run_figures

    stored = [figure for run_id in run_ids for figure in run_figures(store, run_id)]
    chosen: dict[tuple[str, str, str], JudgedFigure] = {}
    for figure in stored:
        if figure.source in ASSESSOR_SOURCES:
            chosen.setdefault((figure.labeller, figure.source, figure.measure), figure)
    return [chosen[key] for key in sorted(chosen)]


def _agreements(store: Store, judged: dict[str, list[JudgedFigure]]) -> dict[str, StoredAgreement]:
    """The stored agreements ``judged``'s figures were computed under, by agreement id."""
    from evalkit.store.judging import agreements_by_id

    return agreements_by_id(
        store, {f.agreement_id for figures in judged.values() for f in figures if f.agreement_id}
    )


def _agreement_summary(agreement_id: str | None, agreements: dict[str, StoredAgreement]) -> str:
    """The summary of the agreement a figure was computed under, or why there is none."""
    if agreement_id is None:
        return "agreement not measured"
    if agreement_id not in agreements:
        return f"agreement {agreement_id} is no longer stored"
    return agreements[agreement_id].summary()


def _replayed_precision(figures: list[JudgedFigure]) -> list[JudgedFigure]:
    """The precision@k figures of the replayed top-k, one per assessor and depth."""
    from evalkit.store.judging import ASSESSOR_SOURCE

    return [
        figure
        for figure in figures
        if figure.source == ASSESSOR_SOURCE and figure.measure.startswith("precision@")
    ]


def _interval_cell(figure: JudgedFigure, *, with_measure: bool) -> str:
    from evalkit.cli.judge import judged_interval

    text = judged_interval(figure)
    return f"{figure.measure} {text}" if with_measure else text


def _judged_cell(figure: JudgedFigure) -> str:
    """The judged share, marked when the figure is partial (it rests on part of the window)."""
    share = format_share(figure.judged_share)
    return f"{share} partial" if figure.status == "partial" else share


def _print_agreements(
    precision: dict[str, list[JudgedFigure]], agreements: dict[str, StoredAgreement]
) -> None:
    """One line per assessor and agreement its shown figures were computed under, and what
    the figures' intervals do not hold."""
    from evalkit.cli.judge import ASSESSOR_BIAS_NOTE, agreement_line

    windows_of: dict[tuple[str, str | None], list[str]] = {}
    for window, figures in precision.items():
        for figure in figures:
            windows_of.setdefault((figure.labeller, figure.agreement_id), []).append(window)
    for (labeller, agreement_id), windows_shown in windows_of.items():
        stored = agreements.get(agreement_id) if agreement_id is not None else None
        if agreement_id is not None and stored is None:
            line = _agreement_summary(agreement_id, agreements)
        else:
            line = agreement_line(stored)
        if sum(1 for other, _ in windows_of if other == labeller) > 1:
            line += f", windows {', '.join(dict.fromkeys(windows_shown))}"
        print_text(f"assessor {labeller}: {line}")
    if windows_of:
        print_text(ASSESSOR_BIAS_NOTE)


class SliceKind(StrEnum):
    """What ``traffic slices --by`` cuts a window by."""

    topic = "topic"
    tenant = "tenant"
    tag = "tag"


@traffic_app.command("slices")
def slices(
    window: WindowOption,
    by: Annotated[
        list[SliceKind] | None,
        typer.Option(help="Slice by topic, tenant, tag (repeat; default all three)."),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(help="Window to test against (default: the one the topics were fitted on)."),
    ] = None,
    reference: Annotated[
        str | None, typer.Option(help="Fit the topics again on this window.")
    ] = None,
    refit: Annotated[
        bool, typer.Option("--refit", help="Fit the topics again on --window.")
    ] = False,
    topics: Annotated[
        int | None, typer.Option(min=2, help="Topics to fit (default: sqrt(queries / 2)).")
    ] = None,
    false_discovery_rate: Annotated[
        float,
        typer.Option(help="Expected share of wrongly flagged slices among those flagged."),
    ] = 0.05,
    output: Format = OutputFormat.table,
) -> None:
    """Cut a replayed window into slices (topics, tenants, tags), store each slice's figures
    and test them against the baseline window, false discoveries controlled over the slices.

    The first call fits the reference topics on the first replayed window; later windows are
    assigned to them (docs/slices.md). Exits 1 when a slice's precision dropped or an
    out-of-scope topic grew (a content gap).

    Example: evalkit traffic slices --window 2026-11-21 --by topic --by tenant --format json
    """
    from evalkit.cli._slices import print_window_slices
    from evalkit.pipeline.slices import window_slices
    from evalkit.traffic.windows import parse_window

    def label(text: str | None) -> str | None:
        return None if text is None else parse_window(text).label

    sliced = window_slices(
        CommandStore(purpose="traffic slices"),
        label(window),
        baseline=label(baseline),
        reference=label(reference),
        refit=refit,
        n_topics=topics,
        kinds=[kind.value for kind in by or SliceKind],
        false_discovery_rate=false_discovery_rate,
    )
    if output is OutputFormat.json:
        emit_json(sliced.to_dict())
    else:
        print_window_slices(sliced)
    if any(change.dropped for change in sliced.changes) or sliced.content_gaps:
        raise typer.Exit(1)


@traffic_app.command("gaps")
def gaps(
    window: WindowOption,
    queue_for: Annotated[
        str | None,
        typer.Option(help="Queue the gaps' central queries for review into this goldset."),
    ] = None,
    per_gap: Annotated[int, typer.Option(min=1, help="Central queries queued per gap.")] = 3,
    output: Format = OutputFormat.table,
) -> None:
    """List the content gaps of a window: out-of-scope topics whose share of traffic grew,
    with their terms and central queries; --queue-for sends those queries to the review
    queue as drafts with no judged document.

    Example: evalkit traffic gaps --window 2026-11-21 --queue-for support
    """
    from evalkit.cli._slices import print_gaps
    from evalkit.pipeline.slices import window_gaps
    from evalkit.traffic.windows import parse_window

    sliced, queued = window_gaps(
        CommandStore(purpose="traffic gaps"),
        parse_window(window).label,
        queue_for=queue_for,
        per_gap=per_gap,
    )
    if output is OutputFormat.json:
        emit_json(
            {
                "window": sliced.window_label,
                "baseline_window": sliced.baseline_window,
                "gaps": [gap.to_dict() for gap in sliced.content_gaps],
                "queued": None if queued is None else queued.to_dict(),
            }
        )
    else:
        print_gaps(sliced, queued)
