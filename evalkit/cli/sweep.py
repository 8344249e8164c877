"""``evalkit sweep``: run a grid of retriever settings against a goldset and rank them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evalkit.cli._app import app, end_without_teardown
from evalkit.cli._leaderboard import CompareFormat, print_leaderboard
from evalkit.cli._options import Format
from evalkit.cli._output import (
    OutputFormat,
    console,
    emit_json,
    print_fitting,
    say,
    settings,
    table,
)
from evalkit.cli._retriever import Engine, RayActors, RayAddress
from evalkit.cli._store import CommandStore
from evalkit.records.requests import DEFAULT_RAY_ACTORS

if TYPE_CHECKING:
    from collections.abc import Mapping

    from evalkit.pipeline import (
        PointRerun,
        PointResult,
        Sweep,
        SweepOutcome,
        SweepPlan,
        SweepPoint,
    )

SOME_POINT_FAILED = 1
NO_POINT_RAN = 3


class _Progress:
    """A line on stderr per point (``SweepProgress``)."""

    def __init__(self) -> None:
        self._quality = ""
        self._rerun: Mapping[int, PointRerun] = {}

    def planned(self, plan: SweepPlan) -> None:
        self._quality = plan.quality
        self._rerun = plan.rerun
        say(plan.describe())

    def started(self, number: int, total: int, point: SweepPoint) -> None:
        rerun = self._rerun.get(number)
        why = f" again ({rerun.said()}: run {rerun.run_id})" if rerun is not None else ""
        say(f"point {number}/{total} {point.describe()}: running{why}")

    def finished(self, result: PointResult) -> None:
        if result.run is None:
            say(f"point {result.number}: failed, no run: {result.error}")
            return
        quality = result.quality(self._quality)
        figures = (
            f"{self._quality} {quality:.4f}"
            if quality is not None
            else f"not ranked on {self._quality}: the run is not complete"
        )
        if result.latency_p95_ms is not None:
            figures += f", latency p95 {result.latency_p95_ms:.1f} ms"
        error = f": {result.error}" if result.error and not result.ok else ""
        say(f"point {result.number}: {result.status} ({figures}), run {result.run.run_id}{error}")


@app.command("sweep")
def sweep(
    file: Annotated[Path, typer.Argument(help="The sweep file (TOML; see docs/sweeps.md).")],
    engine: Engine = "local",
    ray_address: RayAddress = None,
    ray_actors: RayActors = DEFAULT_RAY_ACTORS,
    max_points: Annotated[
        int | None,
        typer.Option(
            "--max-points",
            min=1,
            help="Run a sweep of more points than its file's max_points (default 1000) allows.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Read and check the sweep file, print its points and their count; run nothing.",
        ),
    ] = False,
    output: Format = OutputFormat.table,
) -> None:
    """Run every point of a sweep file (a grid or list of retriever settings) against its
    goldset, each as a stored run tagged sweep:NAME, then print the points' figures and the
    Pareto front of quality against replay latency p95 (docs/sweeps.md).

    Only points without a complete run are run. Exit codes: 0 every point has a complete run,
    1 some point failed (the others are stored), 2 a bad sweep file, 3 no point could run.

    Example: evalkit sweep sweep.toml

    Example: evalkit sweep sweep.toml --engine ray --format json

    Example: evalkit sweep sweep.toml --dry-run
    """
    from evalkit.pipeline import read_sweep_file, run_sweep_file

    config = settings()
    if dry_run:
        _print_plan(read_sweep_file(file, config, max_points=max_points), output)
        return
    outcome = run_sweep_file(
        CommandStore("sweep", config=config),
        file,
        config,
        engine=engine,
        ray_address=ray_address,
        ray_actors=ray_actors,
        max_points=max_points,
        progress=_Progress() if output is OutputFormat.table else None,
    )
    if output is OutputFormat.json:
        emit_json(outcome.to_dict())
    else:
        _print_outcome(outcome)
    end_without_teardown()
    if outcome.failed:
        raise typer.Exit(SOME_POINT_FAILED if outcome.run_ids else NO_POINT_RAN)


def _print_plan(sweep: Sweep, output: OutputFormat) -> None:
    """What ``--dry-run`` prints: the sweep's points, numbered as a run numbers them."""
    points = [
        {"number": number, "settings": dict(point.settings), "source": point.source}
        for number, point in enumerate(sweep.points, start=1)
    ]
    if output is OutputFormat.json:
        emit_json(
            {
                "sweep": sweep.name,
                "file": str(sweep.path),
                "tag": sweep.tag,
                "goldset": sweep.goldset,
                "measures": list(sweep.measures),
                "points_total": len(points),
                "max_points": sweep.max_points,
                "points": points,
            }
        )
        return
    rows = [[n, point.describe(), point.source] for n, point in enumerate(sweep.points, start=1)]
    console.print(table(None, ["#", "settings", "written"], rows))
    console.print(
        f"sweep {sweep.name} ({sweep.path}): {len(points)} point"
        f"{'s' if len(points) != 1 else ''} (at most {sweep.max_points:,}) on goldset "
        f"{sweep.goldset}; dry run: nothing was run",
        markup=False,
    )


def _print_outcome(outcome: SweepOutcome) -> None:
    measures = list(outcome.sweep.measures)
    front = set(outcome.front)
    rows = [
        [
            result.number,
            result.point.describe(),
            result.status + (" (earlier)" if result.reused else ""),
            result.run.run_id if result.run else None,
            *[
                result.run.aggregates.get(measure) if result.run and result.ok else None
                for measure in measures
            ],
            result.latency_p50_ms,
            result.latency_p95_ms,
            "*" if result.number in front else "",
        ]
        for result in outcome.points
    ]
    columns = ["#", "settings", "status", "run", *measures, "p50 ms", "p95 ms", "front"]
    title = (
        f"sweep {outcome.sweep.name}: goldset {outcome.goldset_name} "
        f"(version {outcome.goldset_version[:12]}), tag {outcome.sweep.tag}"
    )
    # On a terminal too narrow for the points side by side (80 columns cut the run id to
    # copy, each figure and the settings), one block per point.
    blocks = [
        (
            f"point {row[0]}: {row[1]}",
            {
                **dict(zip(columns[2:-1], row[2:-1], strict=True)),
                "on the front": "yes" if row[-1] else "no",
            },
        )
        for row in rows
    ]
    print_fitting(table(title, columns, rows), blocks, title=title)
    on_front = ", ".join(str(number) for number in outcome.front) or "none (no complete run)"
    console.print(
        f"Pareto front of {outcome.quality_measure} against replay latency p95 (best "
        f"{outcome.quality_measure} first): points {on_front}",
        markup=False,
    )
    console.print(f"note: {outcome.cost_note}", markup=False)
    # Before the leaderboard, whose pairs run to hundreds of lines on a sweep of a dozen
    # points: a failure is read beside the table that shows it.
    for result in outcome.failed:
        console.print(
            f"point {result.number} ({result.point.describe()}) {result.status}: {result.error}",
            markup=False,
        )
    if outcome.leaderboard is not None:
        print_leaderboard(outcome.leaderboard, CompareFormat.table)
