"""Printing a leaderboard of runs: ``evalkit compare RUN RUN RUN ...`` and ``evalkit sweep``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING

from evalkit.cli._output import (
    console,
    emit_json,
    fits,
    print_fitting,
    print_text,
    say,
    table,
)

if TYPE_CHECKING:
    from evalkit.pipeline import RunLeaderboard
    from evalkit.store import RunRecord

__all__ = ["CompareFormat", "print_leaderboard"]


class CompareFormat(StrEnum):
    """How a comparison of runs prints: a table, JSON, or Markdown and LaTeX for a report."""

    table = "table"
    json = "json"
    markdown = "markdown"
    latex = "latex"


def print_leaderboard(ranked: RunLeaderboard, output: CompareFormat) -> None:
    """Print the leaderboard as ``output`` asks; notes on dropped and zero-counted queries
    go to stderr in every format, so that a report on stdout stays clean."""
    board = ranked.board
    for run, n_failed in ranked.failed_as_zero:
        say(f"note: {n_failed} queries failed in {run} and were counted as 0 (--failed-as-zero)")
    if board.n_dropped:
        dropped = ", ".join(
            f"{run}: {n}" for run, n in zip(board.runs, board.dropped_by_run, strict=True) if n
        )
        say(
            f"note: {board.n_dropped} queries are not in every run, or not judged in what "
            f"the runs were scored on, and were not compared "
            f"({dropped})"
        )
    if output is CompareFormat.json:
        emit_json(ranked.to_dict())
        return
    if output is CompareFormat.markdown:
        print_text(ranked.markdown())
        return
    if output is CompareFormat.latex:
        print_text(ranked.latex())
        return
    title = (
        f"leaderboard of {len(board.runs)} runs over {board.n_queries} queries: "
        f"{board.test_label}, {board.correction_label}"
    )
    what = {record.run_id: _describe(record) for record in ranked.records if record is not None}
    columns, ranked_rows = ranked.table()
    _print_ranked(title, columns, ranked_rows, what)
    for measure in board.measures:
        pair_headers, pairs = ranked.pairs_table(measure)
        drawn = table(f"pairs on {measure}", pair_headers, pairs)
        if fits(drawn):
            console.print(drawn)
            continue
        # A block per pair would run to hundreds of lines: a line each, wrapped whole.
        console.print(f"pairs on {measure}", markup=False)
        for first, second, *figures in pairs:
            facts = ", ".join(
                f"{name}: {value}" for name, value in zip(pair_headers[2:], figures, strict=True)
            )
            console.print(f"{first} vs {second}: {facts}", markup=False)
    console.print(
        f"runs sharing a letter are not significantly different at alpha "
        f"{board.options.alpha:g}; the best run on {board.measures[0]} is listed first",
        markup=False,
    )


def _print_ranked(
    title: str,
    columns: Sequence[str],
    ranked_rows: Sequence[Sequence[str]],
    what: Mapping[str, str],
) -> None:
    """The ranked runs: a table with each run's description beside its figures where it
    fits; else the figures' table with a line per description under it; else a block per
    run, rather than a table cutting the figures. The runs' ids are copied into the next
    command (runs show, explain): whole in every layout."""
    bare = table(title, columns, ranked_rows, whole=(1,))
    if not any(what.values()):
        print_fitting(bare, _blocks(columns, ranked_rows), title=title)
        return
    headers = [*columns[:2], "what", *columns[2:]]
    rows = [[*row[:2], what.get(row[1], ""), *row[2:]] for row in ranked_rows]
    described = table(title, headers, rows, whole=(1,))
    if fits(described):
        console.print(described)
    elif fits(bare):
        console.print(bare)
        for row in ranked_rows:
            if what.get(row[1]):
                console.print(f"{row[1]}: {what[row[1]]}", markup=False)
    else:
        print_fitting(described, _blocks(headers, rows), title=title)


def _blocks(
    headers: Sequence[str], rows: Sequence[Sequence[str]]
) -> list[tuple[str, Mapping[str, object]]]:
    """A block per ranked run: ``#RANK RUN`` and its other cells, labelled by their headers."""
    return [(f"#{row[0]} {row[1]}", dict(zip(headers[2:], row[2:], strict=True))) for row in rows]


def _describe(record: RunRecord) -> str:
    """A stored run in a few words: its label, else its retriever and depth, and its tags."""
    # pandas and numpy: the pipeline is loaded by the time a leaderboard is printed.
    from evalkit.pipeline import describe_run

    shown = [tag for tag in record.spec.tags if not tag.startswith("sweep-point:")]
    return describe_run(record) + (f"  [{', '.join(shown)}]" if shown else "")
