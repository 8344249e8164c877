"""``evalkit compare`` and ``evalkit gate``: paired statistics between two runs."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evalkit.cli._app import app
from evalkit.cli._goldset import GOLDSET, GOLDSET_HELP, resolve_selection
from evalkit.cli._groups import grouped
from evalkit.cli._leaderboard import CompareFormat, print_leaderboard
from evalkit.cli._options import PAIRED_TEST, Format
from evalkit.cli._output import (
    OutputFormat,
    console,
    emit_json,
    err_console,
    fits,
    key_values,
    print_text,
    progress_bar,
    say,
    settings,
    table,
)
from evalkit.cli._retriever import RETRIEVER
from evalkit.cli._store import CommandStore, open_store
from evalkit.errors import ConfigError
from evalkit.records.requests import (
    COMPARE_DEFAULTS,
    GATE_DEFAULTS,
    LEADERBOARD_DEFAULTS,
    GatePolicy,
    GoldsetSelection,
    LeaderboardRequest,
    PairedTestSettings,
)
from evalkit.records.run_reference import RunReference, RunReferenceKind

if TYPE_CHECKING:
    from evalkit.goldset.model import Goldset
    from evalkit.pipeline import GateOutcome
    from evalkit.retrievers.factory import RetrieverOptions

Measures = Annotated[
    list[str] | None,
    typer.Option("-m", "--measure", help="Measure to compare, repeatable (default: ndcg@10)."),
]
SCORING_GOLDSET = GOLDSET.use(
    omit=("goldset_version",),
    options={
        "goldset": Annotated[
            str | None,
            typer.Option(
                help="Goldset whose judgments score run files (and that a live candidate "
                "replays). " + GOLDSET_HELP
            ),
        ]
    },
    goldset=None,
)
"""The goldset options of ``gate`` and ``compare``: optional, a stored goldset's newest
version or files."""
QrelsOption = Annotated[Path | None, typer.Option(help="TREC qrels to score both runs with.")]
Worst = Annotated[int, typer.Option(min=0, help="Worst-regressed queries to list per measure.")]
FailedAsZero = Annotated[
    bool,
    typer.Option(
        "--failed-as-zero",
        help="Count a query whose retrieval failed (in a stored run, or in a live candidate's "
        "replay) as 0 on every measure (the worst outcome). Without it, a run with failed "
        "queries is refused (exit 3).",
    ),
]


def _print(outcome: GateOutcome) -> None:
    from evalkit.stats.render import coverage_note, queries_needed_text

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
    title = f"{report.baseline} -> {report.candidate}"
    measures = table(title, columns, rows)
    if fits(measures):
        console.print(measures)
    else:
        # Too narrow for the measures side by side: one block of figures per measure.
        for row in rows:
            console.print(
                key_values(f"{title}: {row[0]}", dict(zip(columns[1:], row[1:], strict=True)))
            )
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
    if comparison.n_dropped or comparison.not_judged:
        err_console.print(f"note: {coverage_note(comparison)}", markup=False)
    console.print(f"decision: {report.decision.value}", markup=False)


def _exports(*references: RunReference | None) -> bool:
    """Whether any of ``references`` is a run export, which is imported into the store
    before it is compared, so the store is opened for writing; unless this process cannot
    write it (a read-only mount, a CI artifact): an export of a run it holds is then
    compared read-only, and another is refused saying why (``import_run``)."""
    if not any(
        reference is not None and reference.kind is RunReferenceKind.EXPORT
        for reference in references
    ):
        return False
    path = settings().resolved_store_path
    return not path.exists() or (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))


def _command_store(*, write: bool, purpose: str) -> CommandStore | None:
    """How the command opens the store (None when only reading and there is none)."""
    config = settings()
    if not write and not config.resolved_store_path.exists():
        return None
    return CommandStore(purpose, write=write, config=config)


def _policy(
    measure: list[str] | None, paired: PairedTestSettings, worst: int, failed_as_zero: bool
) -> GatePolicy:
    """The comparison the options ask for (``--measure`` default: ndcg@10)."""
    return GatePolicy(
        measures=tuple(measure or GATE_DEFAULTS.measures),
        worst=worst,
        failed_as_zero=failed_as_zero,
        **dataclasses.asdict(paired),
    )


@app.command("compare")
@grouped
def compare(
    runs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Two or more stored run ids, run exports (directories) or TREC run files; "
            "the first of two is the baseline."
        ),
    ] = None,
    measure: Measures = None,
    goldset: GoldsetSelection = SCORING_GOLDSET,
    last: Annotated[
        int | None,
        typer.Option(help="Rank the N newest finished runs of --goldset NAME (or of --tag)."),
    ] = None,
    tag: Annotated[
        str | None, typer.Option(help="Rank the runs stored with this tag (evalkit run --tag).")
    ] = None,
    qrels: QrelsOption = None,
    paired: PairedTestSettings = PAIRED_TEST.use(
        **dataclasses.asdict(COMPARE_DEFAULTS.paired_test)
    ),
    worst: Worst = COMPARE_DEFAULTS.worst,
    failed_as_zero: FailedAsZero = COMPARE_DEFAULTS.failed_as_zero,
    test: Annotated[
        str,
        typer.Option(
            help="With more than two runs: the paired test of each pair, randomization "
            "(sign-flip) or t."
        ),
    ] = LEADERBOARD_DEFAULTS.test,
    correction: Annotated[
        str,
        typer.Option(
            help="With more than two runs: the correction for the many pairs, holm, "
            "bonferroni, tukey (Tukey's HSD on a randomised test) or none."
        ),
    ] = LEADERBOARD_DEFAULTS.correction,
    output: Annotated[
        CompareFormat, typer.Option("--format", help="table, json, markdown or latex")
    ] = CompareFormat.table,
) -> None:
    """Compare runs query by query. Two runs: deltas, bootstrap CIs, p-values, worst queries.
    More: a leaderboard with every pair tested and corrected for the many comparisons. A run
    whose retrieval failed on some queries is refused (exit 3) unless --failed-as-zero counts
    those queries as 0; they are never left out silently.

    Example: evalkit compare 20261121T101500-1a2b3c 20261121T113000-4d5e6f -m ndcg@10
    -m recall@100

    Example: evalkit compare --goldset demo --last 5 -m ndcg@10 --format markdown
    """
    named = list(runs or [])
    selecting = last is not None or tag is not None
    if named and selecting:
        raise ConfigError("name the runs, or select them with --last/--tag, not both")
    if not named and not selecting:
        raise ConfigError("name two or more runs, or give --goldset NAME --last N, or --tag TAG")
    if len(named) == 1:
        raise ConfigError(f"compare needs two or more runs, got one: {named[0]}")
    if selecting:
        from evalkit.pipeline import select_runs

        if not settings().resolved_store_path.exists():
            raise ConfigError("there is no store yet: no runs to compare")
        with open_store(write=False, purpose="compare") as opened:
            named = select_runs(opened, goldset=goldset.name, tag=tag, last=last)
    scoring_goldset = resolve_selection(goldset, "compare", settings())
    references = [RunReference.parse(reference) for reference in named]
    if len(named) == 2 and output is not CompareFormat.latex:
        _compare_two(
            references,
            _policy(measure, paired, worst, failed_as_zero),
            goldset=scoring_goldset,
            qrels=qrels,
            output=output,
        )
        return
    _compare_many(
        references,
        LeaderboardRequest(
            measures=tuple(measure or LEADERBOARD_DEFAULTS.measures),
            alpha=paired.alpha,
            resamples=paired.resamples,
            seed=paired.seed,
            test=test,
            correction=correction,
            failed_as_zero=failed_as_zero,
        ),
        goldset=scoring_goldset,
        qrels=qrels,
        output=output,
    )


def _compare_two(
    runs: list[RunReference],
    policy: GatePolicy,
    *,
    goldset: str | Goldset | None,
    qrels: Path | None,
    output: CompareFormat,
) -> None:
    """Two runs: the gate's comparison, printed as it always was."""
    from evalkit.pipeline import gate_against_baseline, gate_reports

    baseline, candidate = runs
    outcome = gate_against_baseline(
        _command_store(write=_exports(baseline, candidate), purpose="compare"),
        baseline,
        candidate,
        policy=policy,
        goldset=goldset,
        qrels=qrels,
    )
    dashboard_url = settings().alerts.dashboard_url
    if output is CompareFormat.markdown:
        print_text(gate_reports(outcome, dashboard_url=dashboard_url)[1])
        return
    _show(outcome, OutputFormat(output.value), dashboard_url=dashboard_url)


def _compare_many(
    runs: list[RunReference],
    request: LeaderboardRequest,
    *,
    goldset: str | Goldset | None,
    qrels: Path | None,
    output: CompareFormat,
) -> None:
    """More than two runs (or LaTeX): the leaderboard."""
    from evalkit.pipeline import leaderboard_of_runs

    ranked = leaderboard_of_runs(
        _command_store(write=_exports(*runs), purpose="compare"),
        runs,
        request,
        goldset=goldset,
        qrels=qrels,
    )
    print_leaderboard(ranked, output)


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
        data.update(_latency_json(outcome))
        emit_json(data)
        return
    _print(outcome)
    _print_latency(outcome)
    if explanation is not None and report.decision.value != "pass":
        print_causes(explanation, root=dashboard_url)


@app.command("gate")
@grouped
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
    paired: PairedTestSettings = PAIRED_TEST.use(**dataclasses.asdict(GATE_DEFAULTS.paired_test)),
    goldset: GoldsetSelection = SCORING_GOLDSET,
    qrels: QrelsOption = None,
    retriever: RetrieverOptions = RETRIEVER.use(),
    k: Annotated[int | None, typer.Option("--k", help="Depth of a live candidate run.")] = None,
    worst: Worst = GATE_DEFAULTS.worst,
    failed_as_zero: FailedAsZero = GATE_DEFAULTS.failed_as_zero,
    junit: Annotated[Path | None, typer.Option(help="Write JUnit XML here.")] = None,
    markdown: Annotated[Path | None, typer.Option(help="Write a Markdown summary here.")] = None,
    output: Format = OutputFormat.table,
    max_latency_increase: Annotated[
        str | None,
        typer.Option(
            help="Also fail when the replay latency quantile (--latency-quantile) rose by more "
            "than this, beyond the noise: 20% (or 0.2). Runs without latencies (run files, "
            "imported runs) skip the check with a note."
        ),
    ] = None,
    latency_quantile: Annotated[
        str,
        typer.Option(help="The latency quantile --max-latency-increase watches: p50, p95, p99."),
    ] = GATE_DEFAULTS.latency_quantile,
) -> None:
    """Fail on a statistically significant retrieval regression.

    Per measure: regression, pass or inconclusive (docs/gate.md, "Decision rule"). Exit codes:
    0 pass, 1 regression, 2 bad input, 3 retriever or store failure (including a baseline or
    candidate run with failed queries, unless --failed-as-zero counts them as 0), 4 inconclusive.
    With --max-latency-increase the runs' replay latencies are gated too (docs/gate.md, "Latency").

    Example: evalkit gate --baseline 20261121T101500-1a2b3c --goldset demo --collection demo
    -m ndcg@10 -m recall@100 --min-effect 0.01 --junit gate.xml --markdown gate.md
    """
    from evalkit.pipeline import gate_against_baseline, write_gate_reports

    named_live = bool(
        retriever.collection or retriever.chroma_url or retriever.http_url or retriever.retriever
    )
    if named_live and candidate is not None:
        raise ConfigError(
            "name the candidate once: --candidate RUN_OR_FILE, or a live retriever "
            "(--retriever / --collection / --chroma-url / --http-retriever) to replay now"
        )
    config = settings()
    configured = config.retriever
    live = named_live or (candidate is None and bool(configured.kind or configured.factory))
    base = RunReference.parse(baseline)
    named_candidate = RunReference.parse(candidate) if candidate is not None else None
    target: RunReference | RetrieverOptions
    if live:
        target = retriever
    elif named_candidate is not None:
        target = named_candidate
    else:
        raise ConfigError(
            "name the candidate: --candidate RUN_OR_FILE, or a live retriever "
            "(--retriever / --collection / --chroma-url / --http-retriever, or a [retriever] "
            "table in evalkit.toml) to replay now"
        )
    replaying = f"replaying {goldset.name} against the candidate"
    with progress_bar(replaying, enabled=live and output is OutputFormat.table) as bar:
        outcome = gate_against_baseline(
            _command_store(write=live or _exports(base, named_candidate), purpose="gate"),
            base,
            target,
            policy=_with_latency(
                _policy(measure, paired, worst, failed_as_zero),
                max_latency_increase,
                latency_quantile,
            ),
            goldset=resolve_selection(goldset, "gate", config),
            qrels=qrels,
            settings=config,
            k=k,
            progress=bar,
        )
    dashboard_url = config.alerts.dashboard_url
    write_gate_reports(outcome, junit=junit, markdown=markdown, dashboard_url=dashboard_url)
    _show(outcome, output, dashboard_url=dashboard_url)
    raise typer.Exit(outcome.exit_code)


def _with_latency(policy: GatePolicy, max_increase: str | None, quantile: str) -> GatePolicy:
    """``policy`` with the latency check ``--max-latency-increase`` asks for (none without)."""
    from evalkit.config.types import parse_increase, parse_quantile, quantile_name

    if max_increase is None:
        return policy
    try:
        share = parse_increase(max_increase)
        name = quantile_name(parse_quantile(quantile))
    except ValueError as error:
        raise ConfigError(
            f"--max-latency-increase {max_increase} --latency-quantile {quantile}: {error}"
        ) from error
    return dataclasses.replace(policy, max_latency_increase=share, latency_quantile=name)


def _latency_json(outcome: GateOutcome) -> dict[str, object]:
    """The latency check's JSON fields: ``latency``, and ``decision`` the overall verdict
    with ``quality_decision`` beside it (nothing without a latency check)."""
    if outcome.latency is None:
        return {}
    return {
        "decision": outcome.decision.value,
        "quality_decision": outcome.report.decision.value,
        "latency": outcome.latency.to_dict(),
    }


def _print_latency(outcome: GateOutcome) -> None:
    """The latency check's lines and, when it changes it, the overall verdict."""
    if outcome.latency is None:
        return
    for line in outcome.latency.lines():
        console.print(line, markup=False)
    if outcome.decision is not outcome.report.decision:
        console.print(f"decision with latency: {outcome.decision.value}", markup=False)
