"""Printing a leaderboard of runs: ``evalkit compare RUN RUN RUN ...`` and ``evalkit sweep``."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from evalkit.cli._output import console, emit_json, print_text, say, table

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
            f"note: {board.n_dropped} queries are not in every run and were not compared "
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
    headers = list(columns)
    rows = [list(row) for row in ranked_rows]
    if any(what.values()):
        headers.insert(2, "what")
        for row in rows:
            row.insert(2, what.get(row[1], ""))
    # The ranked runs' ids are copied into the next command (runs show, explain): whole.
    console.print(table(title, headers, rows, whole=(1,)))
    for measure in board.measures:
        console.print(table(f"pairs on {measure}", *ranked.pairs_table(measure)))
    console.print(
        f"runs sharing a letter are not significantly different at alpha "
        f"{board.options.alpha:g}; the best run on {board.measures[0]} is listed first",
        markup=False,
        highlight=False,
    )


def _describe(record: RunRecord) -> str:
    """A stored run in a few words: its label, else its retriever and depth, and its tags."""
    # pandas and numpy: the pipeline is loaded by the time a leaderboard is printed.
    from evalkit.pipeline import describe_run

    shown = [tag for tag in record.spec.tags if not tag.startswith("sweep-point:")]
    return describe_run(record) + (f"  [{', '.join(shown)}]" if shown else "")
