"""``evalkit drill``: rehearse incidents against the configured monitoring."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evalkit.cli._app import app
from evalkit.cli._options import Format, seed_option
from evalkit.cli._output import OutputFormat, console, emit_json, say, settings, table
from evalkit.errors import ConfigError


def _incident(spec: str) -> tuple[str, float | None]:
    name, _, severity = spec.partition(":")
    if not severity:
        return name, None
    try:
        return name, float(severity)
    except ValueError:
        raise ConfigError(
            f"--incident {spec!r}: the severity after ':' must be a number, e.g. deletion:0.05"
        ) from None


def _queries(path: Path) -> tuple[str, ...]:
    queries = tuple(
        line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    )
    if not queries:
        raise ConfigError(f"--foreign-queries {path}: the file holds no query (one a line)")
    return queries


@app.command("drill")
def drill(
    incident: Annotated[
        list[str] | None,
        typer.Option(
            "--incident",
            help="NAME or NAME:SEVERITY, repeatable (default: every incident this set-up can "
            "play, at its default severity; docs/drills.md lists them and what a severity "
            "means).",
        ),
    ] = None,
    quiet_cycles: Annotated[
        int, typer.Option(min=1, help="Cycles before the first incident (false alarms).")
    ] = 3,
    cycles: Annotated[
        int, typer.Option(min=1, help="Cycles an incident has to be caught, and to resolve.")
    ] = 3,
    recovery_cycles: Annotated[
        int,
        typer.Option(min=1, help="Cycles after a restore for the incident's alerts to resolve."),
    ] = 10,
    deliver: Annotated[
        bool,
        typer.Option(
            "--deliver",
            help="Also send the drill's alerts to the configured sinks (their subjects name "
            "the drill's copies).",
        ),
    ] = False,
    foreign_queries: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Query drift's other domain: a text file, one query a line (default: 160 "
            "everyday questions).",
        ),
    ] = None,
    corpus: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            help="The corpus the BM25 indexes the jobs read were built from (a BM25 index "
            "keeps no texts): their copies are built from it, and must come out with the "
            "index's fingerprint.",
        ),
    ] = None,
    seed: Annotated[int, seed_option("Seed of every choice an incident makes.")] = 0,
    output: Format = OutputFormat.table,
) -> None:
    """Rehearse incidents against your own [[jobs]] and [[alerts.rules]], on scratch copies
    of the Chroma and Qdrant collections, pgvector tables and BM25 indexes the jobs read
    (the live ones are only read; the drill's runs and alerts stay in its own store and
    reach no sink unless --deliver). Exit 1 when an incident is not caught within --cycles.

    Example: evalkit drill --incident deletion:0.05 --incident duplicates --cycles 2
    """
    from evalkit.drill.incidents import INCIDENTS
    from evalkit.scheduler.drill import DRILL_COLUMNS, DrillRequest, run_drill

    user = settings()
    # By default every incident this set-up can play: one that slows a Chroma server needs
    # one (chroma_url); named with --incident, it is reported as not injectable instead.
    chosen = (
        tuple(_incident(spec) for spec in incident)
        if incident
        else tuple(
            (name, None) for name, kind in INCIDENTS.items() if user.chroma_url or not kind.slows
        )
    )
    request = DrillRequest(
        chosen,
        quiet_cycles=quiet_cycles,
        cycles=cycles,
        recovery_cycles=recovery_cycles,
        seed=seed,
        deliver=deliver,
        foreign_queries=() if foreign_queries is None else _queries(foreign_queries),
        corpus=corpus,
    )
    say(f"drill {request.drill_id}: {quiet_cycles} quiet cycles, then {len(chosen)} incidents")
    report = run_drill(user, request)
    if output is OutputFormat.json:
        emit_json(report.to_dict())
    else:
        console.print(
            table(
                f"drill {report.drill_id}: {len(report.false_alarms)} false alarms in "
                f"{report.quiet_cycles} quiet cycles",
                list(DRILL_COLUMNS),
                report.rows(),
            )
        )
        if report.delivered is not None:
            say(f"delivered {report.delivered} notifications to the configured sinks")
        for note in report.notes:
            say(f"note: {note}")
        for rule, error in report.rule_errors.items():
            say(f"warning: rule {rule} could not be evaluated, so it could not fire: {error}")
        say(f"the drill's runs and alerts: {report.store}; its report: {report.folder}")
    if report.exit_code:
        raise typer.Exit(report.exit_code)
