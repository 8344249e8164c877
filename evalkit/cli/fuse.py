"""``evalkit fuse``: fuse stored runs of one goldset into a new stored run."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any

import typer

from evalkit.cli._app import app
from evalkit.cli._options import Format, seed_option
from evalkit.cli._output import OutputFormat, console, emit_json, say, settings, table
from evalkit.cli._store import CommandStore
from evalkit.errors import ConfigError
from evalkit.records.requests import FUSION_DEFAULTS, FusionRequest

if TYPE_CHECKING:
    from evalkit.pipeline import FusionOutcome

METHODS_HELP = (
    "rrf, combsum, combmnz, combmax, combmin, combmed, combanz, combgmnz (gamma), wsum, "
    "wmnz, mixed, isr, log_isr, logn_isr (sigma), rbc (phi), bordafuse, w_bordafuse; "
    "ranx's names (sum, mnz, ...) are accepted too"
)
"""The methods ``--method`` takes (``evalkit.metrics.fusion.FUSION_METHODS``; a test keeps
them in step), written out so that ``--help`` loads no stage."""
NORMS_HELP = "min-max (default), max, sum, zmuv, rank, borda, none"


def parse_params(values: list[str] | None) -> dict[str, float]:
    """``--param NAME=NUMBER`` options as a mapping (an integer stays an integer)."""
    params: dict[str, float] = {}
    for value in values or ():
        name, equals, number = value.partition("=")
        name = name.strip()
        try:
            parsed: float = int(number) if number.strip().lstrip("+-").isdigit() else float(number)
        except ValueError:
            parsed = math.nan
        if not equals or not name or math.isnan(parsed):
            raise ConfigError(f"--param takes NAME=NUMBER, e.g. --param k=60; got {value!r}")
        if name in params:
            raise ConfigError(f"--param {name} is given twice")
        params[name] = parsed
    return params


@app.command("fuse")
def fuse(
    runs: Annotated[
        list[str],
        typer.Argument(
            help="Stored run ids (a unique prefix is enough), two or more.", metavar="RUN"
        ),
    ],
    method: Annotated[
        str, typer.Option("--method", help=f"Fusion method: {METHODS_HELP}.")
    ] = FUSION_DEFAULTS.method,
    norm: Annotated[
        str | None,
        typer.Option("--norm", help=f"Score normalisation before fusing: {NORMS_HELP}."),
    ] = FUSION_DEFAULTS.norm,
    weight: Annotated[
        list[float] | None,
        typer.Option(
            "--weight",
            help="Weight of a run for the weighted methods (wsum, wmnz, mixed, w_bordafuse), "
            "repeatable: one per run, in the order the runs are named.",
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="A method parameter as NAME=NUMBER, repeatable: k for rrf (default 60), "
            "gamma for combgmnz, sigma for logn_isr (default 0.01), phi for rbc.",
        ),
    ] = None,
    k: Annotated[
        int | None,
        typer.Option(
            "--k", min=1, help="Documents kept per query (default: the deepest source run's k)."
        ),
    ] = FUSION_DEFAULTS.k,
    measure: Annotated[
        list[str] | None,
        typer.Option(
            "-m",
            "--measure",
            help="Measure the fused run is scored on, repeatable "
            "(default: the measures the source runs share, else the standard set for its k).",
        ),
    ] = None,
    optimize: Annotated[
        bool,
        typer.Option(
            "--optimize",
            help="Fit the method's weights or parameter on a training split of the goldset's "
            "judged queries (ranx's grid search), and store the fused run on the held-out "
            "queries only.",
        ),
    ] = FUSION_DEFAULTS.optimize,
    optimize_measure: Annotated[
        str, typer.Option(help="Measure --optimize maximises on the training queries.")
    ] = FUSION_DEFAULTS.optimize_measure,
    train_share: Annotated[
        float, typer.Option(help="With --optimize: the share of judged queries trained on.")
    ] = FUSION_DEFAULTS.train_share,
    seed: Annotated[
        int,
        seed_option("With --optimize: the seed of the split (recorded)."),
    ] = FUSION_DEFAULTS.seed,
    train_tag: Annotated[
        str | None,
        typer.Option(
            help="With --optimize: train on the goldset's queries carrying this tag and hold "
            "out the others (instead of a random split)."
        ),
    ] = FUSION_DEFAULTS.train_tag,
    label: Annotated[
        str | None, typer.Option(help="Free-text label stored with the fused run.")
    ] = FUSION_DEFAULTS.label,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", help="Tag stored with the fused run, repeatable."),
    ] = None,
    output: Format = OutputFormat.table,
) -> None:
    """Fuse stored runs of one goldset version into a new run, scored on the goldset's
    judgments and stored like any run. A query that failed in a source run fails in the fused
    run too (stored as partial; exit code 0). Methods, normalisations and --optimize (fitted
    on a training split, stored on the held-out queries): docs/fusion.md.

    Example: evalkit fuse 20261121T101500-1a2b3c 20261121T113000-4d5e6f --method rrf

    Example: evalkit fuse RUN_A RUN_B --method wsum --optimize --optimize-measure ndcg@10
    """
    from evalkit.pipeline import fuse_runs

    request = FusionRequest(
        run_ids=tuple(runs),
        method=method,
        norm=norm,
        params=parse_params(param),
        weights=tuple(weight) if weight else None,
        k=k,
        measures=tuple(measure or ()),
        optimize=optimize,
        optimize_measure=optimize_measure,
        train_share=train_share,
        seed=seed,
        train_tag=train_tag,
        label=label,
        tags=tuple(sorted(set(tag or ()))),
    )
    outcome = fuse_runs(CommandStore("fuse", config=settings()), request)
    data = outcome.to_dict()
    data["compare"] = compare_command(outcome)
    if outcome.run.status != "complete":
        say(f"note: the fused run is {outcome.run.status}: {outcome.run.error}")
    for note in outcome.notes:
        say(f"note: {note}")
    if output is OutputFormat.json:
        emit_json(data)
        return
    _print(outcome, data)


def compare_command(outcome: FusionOutcome) -> str:
    """The command that ranks the fused run against its sources."""
    return "evalkit compare " + " ".join(
        [*(source.run_id for source in outcome.sources), outcome.run.run_id]
    )


def _print(outcome: FusionOutcome, data: dict[str, Any]) -> None:
    from evalkit.cli.runs import print_run

    print_run(data)
    fusion = outcome.fusion
    facts: dict[str, object] = {
        "method": fusion.method,
        "normalisation": fusion.norm,
        "parameters": ", ".join(f"{name}={value}" for name, value in fusion.params.items()) or "-",
        "weights": ", ".join(f"{w:g}" for w in fusion.weights) if fusion.weights else "-",
        "sources": ", ".join(source.run_id for source in outcome.sources),
    }
    optimized = outcome.optimized
    if optimized is not None:
        facts["fitted on"] = (
            f"{len(outcome.train)} training queries: {optimized.measure} "
            f"{optimized.score:.4f} (best of {len(optimized.trials)} configurations)"
        )
        facts["stored"] = f"the {len(outcome.held_out)} held-out queries only"
    console.print(table("fusion", ["", ""], [[key, value] for key, value in facts.items()]))
    if optimized is None:
        measures = list(outcome.run.aggregates)
        rows = [
            [
                source.run_id,
                *(source.aggregates.get(name) for name in measures),
            ]
            for source in outcome.sources
        ]
        rows.append([f"{outcome.run.run_id} (fused)", *outcome.run.aggregates.values()])
        console.print(table("fused and source runs", ["run", *measures], rows))
    held = " on the held-out queries the runs share" if optimized is not None else ""
    console.print(
        f"Compare{held}, with corrected tests: {data['compare']}",
        markup=False,
        soft_wrap=True,
    )
