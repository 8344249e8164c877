"""``evalkit compare`` and ``evalkit gate``: paired statistics between two runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evalkit.cli._app import app
from evalkit.cli._goldset import GOLDSET_HELP, GoldsetFormat, GoldsetSplit, GoldsetTopics
from evalkit.cli._options import Format
from evalkit.cli._output import (
    OutputFormat,
    console,
    emit_json,
    err_console,
    progress_bar,
    say,
    settings,
    table,
)
from evalkit.cli._retriever import (
    AllowMismatch,
    ChromaUrl,
    Collection,
    HttpUrl,
    RetrieverSpec,
    WhereKey,
    retriever_options,
)
from evalkit.cli._store import CommandStore
from evalkit.errors import ConfigError
from evalkit.records.requests import COMPARE_DEFAULTS, GATE_DEFAULTS, GatePolicy

if TYPE_CHECKING:
    from evalkit.config import Settings
    from evalkit.goldset.model import Goldset
    from evalkit.pipeline import GateOutcome
    from evalkit.retrievers.factory import RetrieverOptions

Measures = Annotated[
    list[str] | None,
    typer.Option("-m", "--measure", help="Measure to compare, repeatable (default: ndcg@10)."),
]
GoldsetOption = Annotated[
    str | None,
    typer.Option(
        help="Goldset whose judgments score run files (and that a live candidate replays). "
        + GOLDSET_HELP
    ),
]
QrelsOption = Annotated[Path | None, typer.Option(help="TREC qrels to score both runs with.")]
Alpha = Annotated[float, typer.Option(help="Family-wise error rate across the measures.")]
MinEffect = Annotated[
    float,
    typer.Option(help="Smallest drop that matters (in the measure's units, e.g. 0.01)."),
]
Resamples = Annotated[int, typer.Option(help="Bootstrap resamples and sign-flip permutations.")]
Seed = Annotated[int, typer.Option(help="Seed of the resampling (recorded in the output).")]
Worst = Annotated[int, typer.Option(help="Worst-regressed queries to list per measure.")]
FailedAsZero = Annotated[
    bool,
    typer.Option(
        "--failed-as-zero",
        help="Count a query whose retrieval failed in a stored run as 0 on every measure "
        "(the worst outcome). Without it, a run with failed queries is refused (exit 3).",
    ),
]


def _print(outcome: GateOutcome) -> None:
    from evalkit.stats.render import queries_needed_text

    report = outcome.report
    comparison = report.comparison
    rows = [
        [
            m.measure,
            m.baseline_mean,
            m.candidate_mean,
            m.delta,
            f"[{m.ci_low:+.4f}, {m.ci_high:+.4f}]",
            m.p_permutation,
            m.p_wilcoxon,
            m.p_adjusted,
            m.n,
            m.decision.value,
        ]
        for m in comparison.metrics
    ]
    columns = [
        "measure",
        "baseline",
        "candidate",
        "delta",
        f"{round(comparison.confidence * 100)}% CI",
        "p perm",
        "p wilcoxon",
        "p adj (Holm)",
        "n",
        "decision",
    ]
    console.print(table(f"{report.baseline} -> {report.candidate}", columns, rows))
    for m in comparison.metrics:
        if m.queries_needed_note:
            console.print(
                f"queries needed to decide {m.measure}: "
                + queries_needed_text(m, min_effect=comparison.min_effect)
                + (f"\n  ({m.queries_needed_note})" if m.queries_needed else ""),
                markup=False,
            )
    for measure in report.measures:
        queries = report.worst_for(measure)
        if not queries:
            continue
        worst_rows = [
            [q.query_id, q.baseline, q.candidate, q.delta, ", ".join(q.lost_docs) or "-"]
            for q in queries
        ]
        console.print(
            table(
                f"worst-regressed queries on {measure}",
                ["query", "baseline", "candidate", "delta", "relevant docs lost"],
                worst_rows,
            )
        )
    for role, failed in (
        ("baseline", comparison.failed_in_baseline),
        ("candidate", comparison.failed_in_candidate),
    ):
        if failed:
            err_console.print(
                f"note: {len(failed)} queries failed in the {role} and were counted as 0 "
                f"(--failed-as-zero): {', '.join(failed)}",
                markup=False,
            )
    if comparison.n_dropped:
        err_console.print(
            f"note: {comparison.n_dropped} queries are in only one of the runs and were not "
            f"compared (only in baseline: {len(comparison.only_in_baseline)}, "
            f"only in candidate: {len(comparison.only_in_candidate)})",
            markup=False,
        )
    console.print(f"decision: {report.decision.value}", markup=False)


def _exports(*references: str | None) -> bool:
    """Whether any of ``references`` is a run export, which is imported into the store
    before it is compared (so the store is opened for writing)."""
    from evalkit.store.export import is_run_export

    return any(reference is not None and is_run_export(Path(reference)) for reference in references)


def _command_store(
    *, write: bool, purpose: str, config: Settings | None = None
) -> CommandStore | None:
    """How the command opens the store (None when only reading and there is none)."""
    config = config or settings()
    if not write and not config.resolved_store_path.exists():
        return None
    return CommandStore(purpose, write=write, config=config)


def _policy(
    measure: list[str] | None,
    alpha: float,
    min_effect: float,
    resamples: int,
    seed: int,
    worst: int,
    failed_as_zero: bool,
) -> GatePolicy:
    """The comparison the options ask for (``--measure`` default: ndcg@10)."""
    return GatePolicy(
        measures=tuple(measure or GATE_DEFAULTS.measures),
        alpha=alpha,
        min_effect=min_effect,
        resamples=resamples,
        seed=seed,
        worst=worst,
        failed_as_zero=failed_as_zero,
    )


def _goldset(
    goldset: str | None,
    goldset_format: str,
    split: str,
    topics: Path | None,
    purpose: str,
    *,
    config: Settings | None = None,
) -> str | Goldset | None:
    """The goldset ``--goldset`` names: a stored name, or one read from its files."""
    from evalkit.pipeline import resolve_goldset

    if goldset is None:
        return None
    return resolve_goldset(
        _command_store(write=False, purpose=purpose, config=config),
        goldset,
        format=goldset_format,
        split=split,
        topics=topics,
    )


@app.command("compare")
def compare(
    baseline: Annotated[
        str, typer.Argument(help="Stored run id, run export (directory) or TREC run file.")
    ],
    candidate: Annotated[
        str, typer.Argument(help="Stored run id, run export (directory) or TREC run file.")
    ],
    measure: Measures = None,
    goldset: GoldsetOption = None,
    goldset_format: GoldsetFormat = "jsonl",
    goldset_split: GoldsetSplit = "test",
    goldset_topics: GoldsetTopics = None,
    qrels: QrelsOption = None,
    alpha: Alpha = COMPARE_DEFAULTS.alpha,
    min_effect: MinEffect = COMPARE_DEFAULTS.min_effect,
    resamples: Resamples = COMPARE_DEFAULTS.resamples,
    seed: Seed = COMPARE_DEFAULTS.seed,
    worst: Worst = COMPARE_DEFAULTS.worst,
    failed_as_zero: FailedAsZero = COMPARE_DEFAULTS.failed_as_zero,
    output: Format = OutputFormat.table,
) -> None:
    """Compare two runs query by query: deltas, bootstrap CIs, p-values, worst queries.

    Example: evalkit compare 20261121T101500-1a2b3c 20261121T113000-4d5e6f -m ndcg@10
    -m recall@100

    A stored run whose retrieval failed on some queries is refused (exit 3) unless
    --failed-as-zero counts those queries as 0; they are never left out silently.
    """
    from evalkit.pipeline import gate_against_baseline

    outcome = gate_against_baseline(
        _command_store(write=_exports(baseline, candidate), purpose="compare"),
        baseline,
        candidate,
        policy=_policy(measure, alpha, min_effect, resamples, seed, worst, failed_as_zero),
        goldset=_goldset(goldset, goldset_format, goldset_split, goldset_topics, "compare"),
        qrels=qrels,
    )
    _show(outcome, output, dashboard_url=settings().alerts.dashboard_url)


def _show(outcome: GateOutcome, output: OutputFormat, *, dashboard_url: str | None) -> None:
    """Print the comparison, then the probable causes of a verdict other than pass (JSON
    carries them whatever the verdict, as ``probable_causes``; null for run files)."""
    from evalkit.cli.explain import print_causes

    report = outcome.report
    defaults = outcome.default_measures
    if defaults is not None and defaults.note:
        say(
            f"note: the candidate run {outcome.candidate_run_id} is also scored on the default "
            f"measures: {defaults.note}"
        )
    explanation = outcome.explanation
    if output is OutputFormat.json:
        data = report.to_dict()
        data["default_measures"] = defaults.to_dict() if defaults is not None else None
        data["probable_causes"] = explanation.to_dict(dashboard_url) if explanation else None
        emit_json(data)
        return
    _print(outcome)
    if explanation is not None and report.decision.value != "pass":
        print_causes(explanation, root=dashboard_url)


@app.command("gate")
def gate(
    baseline: Annotated[
        str,
        typer.Option(
            help="Stored run id, run export (a directory `evalkit runs export RUN --format "
            "parquet` wrote: imported, so its provenance and the probable causes come with "
            "it) or TREC run file."
        ),
    ],
    candidate: Annotated[
        str | None,
        typer.Option(help="Stored run id or TREC run file; or name a live retriever instead."),
    ] = None,
    measure: Measures = None,
    min_effect: MinEffect = GATE_DEFAULTS.min_effect,
    alpha: Alpha = GATE_DEFAULTS.alpha,
    goldset: GoldsetOption = None,
    goldset_format: GoldsetFormat = "jsonl",
    goldset_split: GoldsetSplit = "test",
    goldset_topics: GoldsetTopics = None,
    qrels: QrelsOption = None,
    collection: Collection = None,
    chroma_url: ChromaUrl = None,
    http_retriever: HttpUrl = None,
    retriever_spec: RetrieverSpec = None,
    k: Annotated[int | None, typer.Option("--k", help="Depth of a live candidate run.")] = None,
    where_key: WhereKey = None,
    allow_model_mismatch: AllowMismatch = False,
    resamples: Resamples = GATE_DEFAULTS.resamples,
    seed: Seed = GATE_DEFAULTS.seed,
    worst: Worst = GATE_DEFAULTS.worst,
    failed_as_zero: FailedAsZero = GATE_DEFAULTS.failed_as_zero,
    junit: Annotated[Path | None, typer.Option(help="Write JUnit XML here.")] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write a Markdown summary here.")] = None,
    output: Format = OutputFormat.table,
) -> None:
    """Fail on a statistically significant retrieval regression.

    Per measure: regression when the drop is significant after Holm correction and the
    confidence interval shows a drop larger than --min-effect; pass when the interval rules
    such a drop out; otherwise inconclusive. Exit codes: 0 pass, 1 regression, 2 bad input,
    3 retriever or store failure (including a baseline or candidate run with failed queries,
    unless --failed-as-zero counts them as 0), 4 inconclusive.

    Example: evalkit gate --baseline 20261121T101500-1a2b3c --goldset demo --collection demo
    -m ndcg@10 -m recall@100 --min-effect 0.01 --junit gate.xml --markdown gate.md
    """
    from evalkit.pipeline import gate_against_baseline, write_gate_reports

    live_options = retriever_options(
        collection=collection,
        chroma_url=chroma_url,
        http_retriever=http_retriever,
        retriever_spec=retriever_spec,
        where_key=where_key,
        allow_model_mismatch=allow_model_mismatch,
    )
    named_live = bool(collection or chroma_url or http_retriever or retriever_spec)
    if named_live and candidate is not None:
        raise ConfigError(
            "name the candidate once: --candidate RUN_OR_FILE, or a live retriever "
            "(--retriever / --collection / --chroma-url / --http-retriever) to replay now"
        )
    config = settings()
    configured = config.retriever
    live = named_live or (candidate is None and bool(configured.kind or configured.factory))
    target: str | RetrieverOptions
    if live:
        target = live_options
    elif candidate is not None:
        target = candidate
    else:
        raise ConfigError(
            "name the candidate: --candidate RUN_OR_FILE, or a live retriever "
            "(--retriever / --collection / --chroma-url / --http-retriever, or a [retriever] "
            "table in evalkit.toml) to replay now"
        )
    replaying = f"replaying {goldset} against the candidate"
    with progress_bar(replaying, enabled=live and output is OutputFormat.table) as bar:
        outcome = gate_against_baseline(
            _command_store(
                write=live or _exports(baseline, candidate), purpose="gate", config=config
            ),
            baseline,
            target,
            policy=_policy(measure, alpha, min_effect, resamples, seed, worst, failed_as_zero),
            goldset=_goldset(
                goldset, goldset_format, goldset_split, goldset_topics, "gate", config=config
            ),
            qrels=qrels,
            settings=config,
            k=k,
            progress=bar,
        )
    dashboard_url = config.alerts.dashboard_url
    write_gate_reports(outcome, junit=junit, markdown=markdown, dashboard_url=dashboard_url)
    _show(outcome, output, dashboard_url=dashboard_url)
    raise typer.Exit(outcome.exit_code)
