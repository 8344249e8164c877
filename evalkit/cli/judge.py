"""``evalkit judge agreement|holes|agreements|pool``: relevance labels from an LLM assessor."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from evalkit.cli._options import (
    Format,
    TextsChromaUrl,
    TextsCollection,
    TextsCorpus,
    command_group,
    document_texts,
    seed_option,
)
from evalkit.cli._output import (
    OutputFormat,
    console,
    emit_json,
    format_interval,
    format_share,
    format_value,
    key_values,
    print_listing,
    progress_bar,
    say,
    settings,
    table,
)
from evalkit.cli._store import CommandStore, open_store
from evalkit.records.requests import (
    AGREEMENT_DEFAULTS,
    DEFAULT_CALIBRATION,
    JUDGING_DEFAULTS,
)

if TYPE_CHECKING:
    from evalkit.pipeline import (
        DocumentTexts,
        HolesOutcome,
        JudgingOutcome,
        WindowEstimate,
        WindowJudging,
    )
    from evalkit.pipeline.judge_pool import RelevanceAssessor
    from evalkit.store.judging import JudgedFigure, StoredAgreement

__all__ = [
    "ASSESSOR_BIAS_NOTE",
    "agreement_line",
    "build_assessor",
    "judge_app",
    "judged_interval",
    "partial_note",
    "print_holes",
    "print_window_estimate",
    "print_window_judging",
    "queries_used",
    "texts_to_judge",
]

judge_app = command_group(
    "judge",
    "Grade the relevance of retrieved documents 0-3 with the [judge] LLM endpoint, "
    "cached in the judged pool, and measure how far those labels agree with human "
    "judgments.",
)

MaxJudgments = Annotated[
    int | None,
    typer.Option(
        "--max-judgments",
        min=0,
        help="Send at most this many pairs the judged pool does not hold (a hard budget; "
        "the rest wait for a later pass). Default: no limit.",
    ),
]
DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Send nothing: print how many pairs would be judged and an estimate of the tokens.",
    ),
]
Depth = Annotated[int, typer.Option("--k", min=1, help="Depth of each ranking judged.")]
TrafficRunId = Annotated[
    str, typer.Argument(help="A traffic replay run (a unique prefix is enough).")
]


def texts_to_judge(
    option: str, corpus: Path | None, collection: str | None, chroma_url: str | None
) -> DocumentTexts:
    """The document texts a command's ``option`` (``--judge``, ``--judge-holes``) judges
    with: the ``corpus`` file, else the documents the ``collection`` holds."""
    from evalkit.errors import ConfigError

    if corpus is None and collection is None:
        raise ConfigError(
            f"{option} needs the documents' texts: --corpus (the corpus the index was built "
            "from), or a --collection that holds them"
        )
    return document_texts(corpus, None if corpus else collection, chroma_url)


def build_assessor() -> RelevanceAssessor:
    """The ``[judge]`` assessor of the loaded settings."""
    from evalkit.pipeline.judge_pool import settings_assessor

    return settings_assessor(settings())


def _judging_facts(outcome: JudgingOutcome) -> dict[str, object]:
    plan = outcome.plan
    facts: dict[str, object] = {
        "assessor": plan.assessor,
        "pairs": plan.n_pairs,
        "in the pool already": plan.n_in_pool,
        "sent" if not outcome.dry_run else "would be sent": plan.n_to_judge,
        "over the budget": plan.n_over_budget,
    }
    if outcome.dry_run:
        facts["estimated tokens"] = f"about {plan.estimated_tokens:,}"
    else:
        facts["judged"] = outcome.n_judged
        facts["left unjudged"] = outcome.n_unjudged or "-"
        if outcome.unjudged:
            facts["why unjudged"] = ", ".join(f"{k} {n}" for k, n in outcome.unjudged.items())
        facts["requests"] = outcome.calls
    if outcome.flagged:
        counts = ", ".join(f"{flag} {n}" for flag, n in outcome.flag_counts.items())
        facts["flagged"] = (
            f"{len(outcome.flagged)} pairs ({counts}): their text reads as written to steer "
            "the assessor; it was shown as data and the flags are stored (judged_pool.flags): "
            "check their grades"
        )
    return facts


def agreement_line(agreement: StoredAgreement | None) -> str:
    """The agreement a figure made from assessor labels is shown with: its summary and id,
    or how to measure one."""
    if agreement is None:
        return "agreement not measured (run `evalkit judge agreement --goldset NAME`)"
    return f"{agreement.summary()} ({agreement.agreement_id})"


@judge_app.command("agreement")
def agreement(
    goldset: Annotated[
        str, typer.Option("--goldset", help="The stored goldset whose judgments are compared.")
    ],
    corpus: TextsCorpus = None,
    collection: TextsCollection = None,
    chroma_url: TextsChromaUrl = None,
    sample: Annotated[
        int, typer.Option(min=1, help="Human-judged pairs drawn and judged.")
    ] = AGREEMENT_DEFAULTS.sample,
    seed: Annotated[int, seed_option("Seed of the samples.")] = AGREEMENT_DEFAULTS.seed,
    k: Depth = AGREEMENT_DEFAULTS.k,
    tau_queries: Annotated[
        int,
        typer.Option(min=1, help="Queries over which the runs are ranked for Kendall's tau."),
    ] = AGREEMENT_DEFAULTS.tau_queries,
    min_judged_share: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Store nothing (exit 3) unless at least this share of the kappa sample and "
            "of the runs' top-k were judged.",
        ),
    ] = AGREEMENT_DEFAULTS.min_judged_share,
    max_judgments: MaxJudgments = JUDGING_DEFAULTS.max_judgments,
    dry_run: DryRun = False,
    output: Format = OutputFormat.table,
) -> None:
    """Measure how far the assessor agrees with a goldset's human judgments.

    Stores weighted Cohen's kappa with its interval and the confusion matrix (docs/judging.md,
    "Agreement (`evalkit judge agreement`)"). With less than --min-judged-share judged nothing
    is stored (exit 3), and the next pass sends only the missing pairs.

    Example: evalkit judge agreement --goldset demo --corpus goldsets/demo/corpus.jsonl
    """
    from evalkit.pipeline import measure_agreement
    from evalkit.records.requests import AgreementRequest, JudgingRequest

    texts = document_texts(corpus, collection, chroma_url)
    assessor = build_assessor()
    request = AgreementRequest(
        sample=sample,
        seed=seed,
        k=k,
        tau_queries=tau_queries,
        min_judged_share=min_judged_share,
    )
    judging = JudgingRequest(max_judgments=max_judgments, dry_run=dry_run)
    enabled = output is OutputFormat.table and not dry_run
    with progress_bar("judging pairs", enabled=enabled) as bar:
        outcome = measure_agreement(
            CommandStore(purpose="judge agreement"),
            goldset,
            assessor,
            texts,
            request,
            judging=judging,
            progress=bar,
        )
    if output is OutputFormat.json:
        emit_json(outcome.to_dict())
        return
    console.print(key_values("judging", _judging_facts(outcome.judging)))
    measured = outcome.agreement
    if measured is None:
        return
    facts: dict[str, object] = {
        "agreement": measured.agreement_id,
        "goldset": f"{measured.goldset_name} ({measured.goldset_version[:12]})",
        "pairs": measured.n_pairs,
        "left unjudged": measured.unjudged_line(),
        "weighted kappa": _interval(measured.kappa, measured.kappa_low, measured.kappa_high),
        "scale": measured.kappa_scale,
        f"Kendall tau ({measured.tau_measure or 'runs'})": (
            "-"
            if measured.tau is None
            else f"{measured.tau:.3f} over {measured.n_runs} runs "
            f"(p {format_value(measured.tau_p_value)})"
        ),
    }
    note = measured.details.get("note")
    if note:
        facts["note"] = note
    added = measured.details.get("n_unjudged_counted_as_not_relevant")
    if added:
        facts["unjudged counted not relevant"] = added
    console.print(key_values("agreement", facts))
    confusion = measured.confusion
    levels = confusion["assessor_levels"]
    rows = [
        [f"human {level}", *counts]
        for level, counts in zip(confusion["human_levels"], confusion["counts"], strict=True)
    ]
    console.print(table("confusion", ["", *(f"assessor {g}" for g in levels)], rows))
    console.print(
        "Labels are for window- and system-level figures: never gate or alert on one "
        "query's label (docs/judging.md).",
    )


def _interval(value: float | None, low: float | None, high: float | None) -> str:
    return format_interval(value, low, high, undefined="undefined (one label everywhere)")


@judge_app.command("holes")
def holes(
    run_id: Annotated[str, typer.Argument(help="A goldset run (a unique prefix is enough).")],
    corpus: TextsCorpus = None,
    collection: TextsCollection = None,
    chroma_url: TextsChromaUrl = None,
    k: Depth = JUDGING_DEFAULTS.k,
    max_judgments: MaxJudgments = JUDGING_DEFAULTS.max_judgments,
    dry_run: DryRun = False,
    output: Format = OutputFormat.table,
) -> None:
    """Judge the top-k documents a goldset run retrieved that the goldset never judged, and
    show the run's measures with those holes filled beside the exact ones.

    The exact figures stay the run's everywhere; the filled ones are stored apart, labelled
    with the assessor and its agreement.

    Example: evalkit judge holes run-20261125T101500-3f9a1c --corpus corpus.jsonl --k 10
    """
    from evalkit.pipeline import judge_run_holes

    texts = document_texts(corpus, collection, chroma_url)
    _judge_a_run(
        judge_run_holes, print_holes, "holes", run_id, texts, k, max_judgments, dry_run, output
    )


def _judge_a_run(
    workflow: Callable[..., Any],
    show: Callable[[Any], None],
    what: str,
    run_id: str,
    texts: DocumentTexts,
    k: int,
    max_judgments: int | None,
    dry_run: bool,
    output: OutputFormat,
) -> None:
    """Run ``judge holes`` or ``judge traffic``'s workflow on ``run_id`` and show it."""
    from evalkit.records.requests import JudgingRequest

    assessor = build_assessor()
    request = JudgingRequest(max_judgments=max_judgments, dry_run=dry_run, k=k)
    enabled = output is OutputFormat.table and not dry_run
    with progress_bar(f"judging {what}", enabled=enabled) as bar:
        outcome = workflow(
            CommandStore(purpose=f"judge {what}"), run_id, assessor, texts, request, progress=bar
        )
    if output is OutputFormat.json:
        emit_json(outcome.to_dict())
    else:
        show(outcome)


def print_holes(outcome: HolesOutcome) -> None:
    """Print a goldset run's judged holes: the judging pass, judged@k, and each measure
    exact (human judgments) beside the same with the holes filled by the assessor."""
    console.print(key_values("judging", _judging_facts(outcome.judging)))
    console.print(
        key_values(
            "holes",
            {
                "run": outcome.run.run_id,
                f"judged@{outcome.k} (human)": f"{outcome.judged_at_k:.1%}",
                "holes": outcome.n_holes,
                "without text": outcome.n_without_text,
                "agreement": agreement_line(outcome.agreement),
            },
        )
    )
    if outcome.n_without_text:
        say(
            f"{outcome.n_without_text} of the {outcome.n_holes} holes have no text in the "
            "corpus or collection given, so they were not judged and count as not relevant: "
            "give the corpus the run retrieved from (--corpus or --collection)"
        )
    if not outcome.figures:
        return
    rows: list[list[Any]] = []
    for figure in outcome.figures:
        exact = figure.details.get("exact")
        delta = None if exact is None or figure.value is None else figure.value - exact
        rows.append([figure.measure, exact, figure.value, delta, figure.status])
    columns = ["measure", "exact (human)", "holes filled (assessor)", "difference", "status"]
    console.print(table("measures", columns, rows))


@judge_app.command("agreements")
def agreements(
    assessor: Annotated[str | None, typer.Option(help="Only this assessor's.")] = None,
    goldset: Annotated[str | None, typer.Option(help="Only on this goldset.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 20,
    output: Format = OutputFormat.table,
) -> None:
    """List measured agreements, newest first.

    Example: evalkit judge agreements --goldset demo --format json
    """
    from evalkit.store.judging import list_agreements

    with open_store(write=False, purpose="judge agreements") as store:
        found = list_agreements(store, assessor=assessor, goldset=goldset, limit=limit)
    print_listing(
        found,
        output,
        title="assessor agreements",
        columns=[
            "agreement",
            "assessor",
            "goldset",
            "pairs",
            "unjudged",
            "kappa",
            "tau",
            "measured",
        ],
        row=lambda entry: [
            entry.agreement_id,
            entry.assessor,
            entry.goldset_name,
            entry.n_pairs,
            entry.unjudged_line(),
            _interval(entry.kappa, entry.kappa_low, entry.kappa_high),
            "-" if entry.tau is None else f"{entry.tau:.3f} ({entry.n_runs} runs)",
            f"{entry.measured_at:%Y-%m-%d %H:%M}",
        ],
    )


@judge_app.command("pool")
def pool(output: Format = OutputFormat.table) -> None:
    """Count the judged pool's pairs per assessor.

    Example: evalkit judge pool
    """
    from evalkit.store.judging import pool_counts

    with open_store(write=False, purpose="judge pool") as store:
        counts = pool_counts(store)
    if output is OutputFormat.json:
        emit_json(counts)
        return
    rows = [
        [c["assessor"], c["judged"], c["unjudged"], c["flagged"], f"{c['newest']:%Y-%m-%d %H:%M}"]
        for c in counts
    ]
    headers = ["assessor", "judged", "unjudged", "flagged", "newest"]
    console.print(table("judged pool", headers, rows))


_SOURCE_NAMES = {"assessor": "replayed", "assessor_logged": "logged by production"}
ASSESSOR_BIAS_NOTE = (
    "note: an interval is the window's sampling error, not the assessor's: its false "
    "positives raise every window alike, so compare windows, not a value with a goldset's"
)
"""Said under figures from assessor labels: a high agreement (kappa) on a balanced sample
does not bound the bias of an absolute figure where few retrieved documents are relevant."""
_NO_FULLY_JUDGED = "none: no query fully judged"


def judged_interval(figure: JudgedFigure) -> str:
    """A traffic figure from assessor labels with its interval, or that no query of its
    window is fully judged (a figure never rests on unjudged documents)."""
    return format_interval(figure.value, figure.low, figure.high, undefined=_NO_FULLY_JUDGED)


def queries_used(figure: JudgedFigure) -> str:
    """How many of the window's queries a traffic figure rests on: ``13 of 40`` (its query
    count alone for a figure stored without the window's)."""
    window = figure.details.get("window_queries")
    return str(figure.n_queries) if window is None else f"{figure.n_queries} of {window}"


def partial_note(figure: JudgedFigure) -> str | None:
    """What a partial traffic figure rests on and what it leaves out (None when complete or
    stored without that account)."""
    window = figure.details.get("window_queries")
    if figure.status != "partial" or window is None:
        return None
    left_out = dict(figure.details.get("queries_left_out") or {})
    left_out["failed"] = figure.details.get("failed_queries_left_out", 0)
    reasons = ", ".join(
        f"{left_out[reason]} {text}" for reason, text in _LEFT_OUT.items() if left_out.get(reason)
    )
    if figure.n_queries == 0:
        rests = "no figure: no query is fully judged"
    else:
        rests = (
            f"partial: the figures rest on the {figure.n_queries} of {window} queries whose "
            "top-k is fully judged, a random sample of the window"
        )
    return f"{rests} (left out: {reasons}); judge the window again to go on"


_LEFT_OUT = {
    "over_budget": "over the budget",
    "unjudged_or_no_text": "with a pair unjudged or without a text",
    "failed": "failed in the replay",
}


def print_window_judging(outcome: WindowJudging) -> None:
    """Print a traffic window's judging pass and its assessor-labelled figures."""
    console.print(key_values("judging", _judging_facts(outcome.judging)))
    if not outcome.figures:
        return
    rows = [
        [
            _SOURCE_NAMES.get(figure.source, figure.source),
            figure.measure,
            judged_interval(figure),
            format_share(figure.judged_share),
            queries_used(figure),
            figure.status,
        ]
        for figure in outcome.figures
    ]
    columns = ["rankings", "measure", "value [95% interval]", "judged", "queries", "status"]
    console.print(table(f"window {outcome.window_label}, assessor labels", columns, rows))
    notes = {figure.source: partial_note(figure) for figure in outcome.figures}
    for source, note in notes.items():
        if note is not None:
            console.print(f"{_SOURCE_NAMES.get(source, source)}: {note}")
    console.print(f"assessor: {outcome.judging.plan.assessor}")
    console.print(f"agreement: {agreement_line(outcome.agreement)}")
    console.print(ASSESSOR_BIAS_NOTE)


@judge_app.command("traffic")
def traffic(
    run_id: TrafficRunId,
    corpus: TextsCorpus = None,
    collection: TextsCollection = None,
    chroma_url: TextsChromaUrl = None,
    k: Depth = JUDGING_DEFAULTS.k,
    max_judgments: MaxJudgments = JUDGING_DEFAULTS.max_judgments,
    dry_run: DryRun = False,
    output: Format = OutputFormat.table,
) -> None:
    """Label a replayed traffic window's top-k (and production's logged top-k) with the
    assessor, and store its precision@k, nDCG@k and hit rate@k with bootstrap intervals.

    Example: evalkit judge traffic run-20261125T101500-3f9a1c --corpus corpus.jsonl
    """
    from evalkit.pipeline import judge_traffic_run

    texts = document_texts(corpus, collection, chroma_url)
    _judge_a_run(
        judge_traffic_run,
        print_window_judging,
        "traffic",
        run_id,
        texts,
        k,
        max_judgments,
        dry_run,
        output,
    )


@judge_app.command("estimate")
def estimate(
    run_id: TrafficRunId,
    k: Depth = JUDGING_DEFAULTS.k,
    method: Annotated[
        str, typer.Option(help="Calibration of the scores: isotonic or logistic.")
    ] = DEFAULT_CALIBRATION,
    seed: Annotated[int, seed_option("Seed of the bootstrap.")] = 0,
    output: Format = OutputFormat.table,
) -> None:
    """Estimate a traffic window's precision@k without labels, from the retriever's scores
    calibrated on the newest goldset run of the same retriever and query model.

    No LLM is called. It assumes a score means on this traffic what it meant on the goldset,
    which a shift of the queries, the index or the model breaks (docs/judging.md, "Limits").

    Example: evalkit judge estimate run-20261125T101500-3f9a1c --k 10
    """
    from evalkit.pipeline import estimate_traffic_run

    outcome = estimate_traffic_run(
        CommandStore(purpose="judge estimate"), run_id, k=k, method=method, seed=seed
    )
    if output is OutputFormat.json:
        emit_json(outcome.to_dict())
        return
    print_window_estimate(outcome)


def print_window_estimate(outcome: WindowEstimate) -> None:
    """Print a traffic window's label-free precision estimate and what it rests on."""
    figure = outcome.figure
    console.print(
        key_values(
            f"window {outcome.window_label}, estimated (no labels)",
            {
                "run": outcome.run.run_id,
                figure.measure: _interval(figure.value, figure.low, figure.high),
                "queries": figure.n_queries,
                "calibrated on": f"goldset run {outcome.calibration_run.run_id} "
                f"({outcome.calibration_run.spec.goldset_name})",
                "method": figure.details.get("method"),
                "assumes": "P(relevant | score) on this traffic is what it was on the goldset",
            },
        )
    )
