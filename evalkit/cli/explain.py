"""``evalkit explain``: the probable causes of a run's regression, a drift check or an alert."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from evalkit.cli._app import app
from evalkit.cli._options import seed_option
from evalkit.cli._output import console, emit_json, settings, table
from evalkit.cli._store import open_store
from evalkit.errors import ConfigError

if TYPE_CHECKING:
    from evalkit.causes import Explanation


class ExplainFormat(StrEnum):
    """How ``evalkit explain`` prints the causes."""

    table = "table"
    json = "json"
    markdown = "markdown"


def print_causes(explanation: Explanation, *, root: str | None = None) -> None:
    """The causes as a table for people (``compare`` and ``gate`` print it too)."""
    console.print(explanation.headline(), markup=False)
    if explanation.causes:
        rows = [
            [
                index,
                cause.kind,
                f"{cause.score:.0%}" + ("" if cause.measured else " (residual)"),
                cause.statement,
            ]
            for index, cause in enumerate(explanation.causes, start=1)
        ]
        console.print(table("probable causes", ["#", "cause", "share of loss", "statement"], rows))
        # Links on lines of their own: a table cell would cut them where a log is narrow.
        for index, cause in enumerate(explanation.causes, start=1):
            console.print(
                f"{index}. see {cause.link.url(root)}",
                markup=False,
                soft_wrap=True,
            )
    else:
        console.print("probable causes: none found in the store", markup=False)
    for note in explanation.notes:
        console.print(f"note: {note}", markup=False)
    read = explanation.evidence_line()
    if read is not None:
        console.print(read, markup=False, soft_wrap=True)


@app.command("explain")
def explain(
    run: Annotated[
        str | None,
        typer.Argument(help="Candidate run id (omit with --drift-check or --alert)."),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            help="Baseline run id (default: the run before RUN of the same goldset and retriever)."
        ),
    ] = None,
    measure: Annotated[
        list[str] | None,
        typer.Option(
            "-m",
            "--measure",
            help="Measure to compare, repeatable (default: ndcg@10 if both runs stored it).",
        ),
    ] = None,
    drift_check: Annotated[
        str | None,
        typer.Option("--drift-check", help="Explain this stored drift check's runs instead."),
    ] = None,
    alert: Annotated[
        str | None, typer.Option("--alert", help="Explain this stored alert's runs instead.")
    ] = None,
    seed: Annotated[int, seed_option("Seed of the resampling.")] = 0,
    output: Annotated[
        ExplainFormat, typer.Option("--format", help="table, json or markdown")
    ] = ExplainFormat.table,
) -> None:
    """Name the probable causes of a regression, ranked by the share of the loss each can
    account for (missing or stale documents, a changed retriever, model, index, goldset or
    settings, drift, failed queries), each with the dashboard page that shows its evidence.

    Example: evalkit explain 20261121T113000-4d5e6f --baseline 20261121T101500-1a2b3c
    --format markdown >> "$GITHUB_STEP_SUMMARY"
    """
    from evalkit.causes import explain_alert, explain_drift_check, explain_runs
    from evalkit.errors import NotFoundError
    from evalkit.records.requests import PairedTestSettings
    from evalkit.store.alerts import get_alert

    named = [
        name
        for name, value in (("RUN", run), ("--drift-check", drift_check), ("--alert", alert))
        if value
    ]
    if len(named) != 1:
        raise ConfigError("name one thing to explain: RUN, --drift-check ID or --alert ID")
    if baseline is not None and run is None:
        raise ConfigError("--baseline goes with RUN")
    config = settings()
    test = PairedTestSettings(seed=seed)
    with open_store(write=False, purpose="explain", config=config) as store:
        if drift_check is not None:
            explanation = explain_drift_check(store, drift_check, test=test)
        elif alert is not None:
            stored = get_alert(store, alert)
            if stored is None:
                raise NotFoundError(f"no alert {alert!r}; `evalkit alerts list` shows them")
            explanation = explain_alert(store, stored, test=test)
        else:
            explanation = explain_runs(
                store, str(run), baseline=baseline, measures=measure or None, test=test
            )
    root = config.alerts.dashboard_url
    if output is ExplainFormat.json:
        emit_json(explanation.to_dict(root))
    elif output is ExplainFormat.markdown:
        sys.stdout.write(explanation.to_markdown(root))
    else:
        print_causes(explanation, root=root)
