"""Renderers for a leaderboard: table rows, Markdown, and LaTeX as ranx writes it.

The formatted cells serve both the Markdown table and a terminal table; ``leaderboard_latex``
writes the table ranx's ``Report.to_latex()`` writes (runs labelled a, b, c..., best scores in
bold, superscripts naming the runs each is significantly better than).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from evalkit.errors import ConfigError
from evalkit.metrics.measures import parse_measure
from evalkit.stats.leaderboard import LatencySummary, Leaderboard, MeasureLeaderboard
from evalkit.stats.render import markdown_cell, markdown_table

__all__ = [
    "PAIR_HEADERS",
    "leaderboard_headers",
    "leaderboard_latex",
    "leaderboard_markdown",
    "leaderboard_rows",
    "pair_rows",
]

PAIR_HEADERS: Final = (
    "first",
    "second",
    "Δ",
    "95 % CI",
    "d_z",
    "W/T/L",
    "p",
    "p (adj.)",
    "significant",
)
_RUN_LABELS: Final = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LATEX_SPECIAL: Final = str.maketrans(
    {
        "\\": r"\textbackslash{}",
        "&": r"\&",
        "%": r"\%",
        "$": r"\$",
        "#": r"\#",
        "_": r"\_",
        "{": r"\{",
        "}": r"\}",
        "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}",
    }
)


def _value(number: float) -> str:
    return f"{number:.4f}"


def _signed(number: float) -> str:
    return f"{number:+.4f}" if math.isfinite(number) else ("+inf" if number > 0 else "-inf")


def _p(p_value: float) -> str:
    return f"{p_value:.1e}" if p_value < 0.001 else f"{p_value:.3f}"


def _confidence(board: Leaderboard) -> str:
    return f"{board.options.confidence:.0%} CI".replace("%", " %")


def _number(value: float, fmt: str = "{:.4f}") -> str:
    return fmt.format(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def _interval(low: float, high: float, fmt: str = "{:.4f}") -> str:
    return f"[{_number(low, fmt)}, {_number(high, fmt)}]"


def _effect(value: float) -> str:
    return _number(value, "{:.2f}")


def _ms(value: float) -> str:
    return f"{value:,.1f}"


def _has_latency(board: Leaderboard) -> bool:
    return any(summary is not None for summary in board.latency)


def _ranked_runs(board: Leaderboard) -> list[int]:
    """Run positions by rank on the first measure (equal ranks in the order given)."""
    first = board.boards[0]
    return sorted(range(len(board.runs)), key=lambda r: (first.standings[r].rank, r))


def leaderboard_headers(board: Leaderboard) -> tuple[str, ...]:
    """Column headers of ``leaderboard_rows``: rank, run, then per measure its mean with
    the interval and its letter groups, then latency p50/p95 when any run has one."""
    headers = ["#", "run"]
    for measure in board.measures:
        headers += [f"{measure} [{_confidence(board)}]", f"{measure} groups"]
    if _has_latency(board):
        headers += ["p50 ms", "p95 ms"]
    return tuple(headers)


def leaderboard_rows(board: Leaderboard) -> tuple[tuple[str, ...], ...]:
    """One row of formatted cells per run, best first on the first measure, in
    ``leaderboard_headers`` order; ``-`` for a run without latency."""
    rows = []
    for r in _ranked_runs(board):
        cells = [str(board.boards[0].standings[r].rank), board.runs[r]]
        for measure_board in board.boards:
            standing = measure_board.standings[r]
            cells += [
                f"{_value(standing.mean)} {_interval(standing.ci_low, standing.ci_high)}",
                standing.letters,
            ]
        if _has_latency(board):
            summary: LatencySummary | None = board.latency[r]
            cells += ["-", "-"] if summary is None else [_ms(summary.p50_ms), _ms(summary.p95_ms)]
        rows.append(tuple(cells))
    return tuple(rows)


def pair_rows(board: Leaderboard, measure: str) -> tuple[tuple[str, ...], ...]:
    """One row per pair of runs on ``measure`` in ``PAIR_HEADERS`` order, each pair seen
    from its better run (``Δ >= 0``), most significant first."""
    measure_board = board.board(measure)
    pairs = [pair if pair.delta >= 0.0 else pair.reversed() for pair in measure_board.pairs]
    pairs.sort(key=lambda pair: (pair.p_adjusted, -pair.delta))
    return tuple(
        (
            pair.first,
            pair.second,
            _signed(pair.delta),
            _interval(pair.ci_low, pair.ci_high, "{:+.4f}"),
            _effect(pair.effect_size),
            f"{pair.wins}/{pair.ties}/{pair.losses}",
            _p(pair.p_value),
            _p(pair.p_adjusted),
            "yes" if pair.significant else "no",
        )
        for pair in pairs
    )


def _markdown_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, names: Sequence[int]
) -> list[str]:
    """A Markdown table whose run names (columns ``names``) and letter groups are left-aligned."""
    groups = [i for i, header in enumerate(headers) if header.endswith("groups")]
    return markdown_table(headers, rows, left=[*names, *groups], names=names)


def _method_note(board: Leaderboard) -> str:
    options = board.options
    pairs = len(board.runs) * (len(board.runs) - 1) // 2
    dropped = (
        f"; {board.n_dropped} left out as not in every run or not judged" if board.n_dropped else ""
    )
    return (
        f"{board.n_queries} queries shared by all {len(board.runs)} runs{dropped}. "
        f"Intervals: percentile bootstrap, {options.resamples:,} resamples, seed "
        f"{options.seed}. Pairs: two-sided {board.test_label}, {board.correction_label} "
        f"across the {pairs} pairs of each measure; runs sharing a letter are not "
        f"significantly different at alpha {options.alpha:g}."
    )


def leaderboard_markdown(board: Leaderboard) -> str:
    """A Markdown leaderboard: the ranked table, how it was computed, and each measure's
    pairs in a collapsed section."""
    lines = [
        "## Leaderboard",
        "",
        *_markdown_table(leaderboard_headers(board), leaderboard_rows(board), names=(1,)),
        "",
        markdown_cell(_method_note(board)),
    ]
    for measure in board.measures:
        significant = sum(pair.significant for pair in board.board(measure).pairs)
        lines += [
            "",
            f"<details><summary>{markdown_cell(measure)}: {significant} of "
            f"{len(board.board(measure).pairs)} pairs significantly different</summary>",
            "",
            *_markdown_table(PAIR_HEADERS, pair_rows(board, measure), names=(0, 1)),
            "",
            "</details>",
        ]
    return "\n".join(lines) + "\n"


def _latex_measure(measure: str) -> str:
    # The label the measure is registered with (ranx's): MeasureError for one evalkit lacks.
    parsed = parse_measure(measure)
    label = parsed.definition.label
    return _latex(label + (f"@{parsed.cutoff}" if parsed.cutoff else ""))


def _latex(text: str) -> str:
    return text.translate(_LATEX_SPECIAL)


def _test_caption(board: Leaderboard) -> str:
    if board.options.correction == "tukey":
        kind = "randomised" if board.options.test == "randomization" else "parametric"
        return f"Tukey's HSD test ({kind})"
    if board.options.correction == "none":
        return board.test_label
    return f"{board.test_label} with {board.correction_label} correction"


def _latex_cell(
    measure_board: MeasureLeaderboard, r: int, runs: Sequence[str], best: bool, digits: int
) -> str:
    standing = measure_board.standings[r]
    beaten = set(measure_board.better_than(standing.run))
    superscript = "".join(
        _RUN_LABELS[j] for j, other in enumerate(runs) if other != standing.run and other in beaten
    )
    phantoms = "".join(
        _RUN_LABELS[j]
        for j, other in enumerate(runs)
        if other != standing.run and other not in beaten
    )
    score = f"{standing.mean:.{digits}f}"
    score = f"\\textbf{{{score}}}" if best else score
    return f"{score}$^{{{superscript}}}$\\hphantom{{$^{{{phantoms}}}$}}"


def leaderboard_latex(board: Leaderboard, *, digits: int = 3) -> str:
    """A LaTeX table (booktabs) laid out as ranx's ``Report.to_latex()``: runs labelled
    a, b, c... in the order given, scores rounded to ``digits``, the best of each measure
    in bold (every run tied at the best rounded score), and superscripts naming the runs a
    run is significantly better than (corrected p-value at most alpha, higher mean), with
    phantoms that keep the columns aligned."""
    if len(board.runs) > len(_RUN_LABELS):
        raise ConfigError(
            f"a LaTeX table labels its runs a-z and A-Z: at most {len(_RUN_LABELS)} runs, "
            f"got {len(board.runs)}"
        )
    runs = board.runs
    best = {
        measure_board.measure: max(round(s.mean, digits) for s in measure_board.standings)
        for measure_board in board.boards
    }
    prefix = [
        "% Add in preamble: \\usepackage{graphicx} and \\usepackage{booktabs}",
        "% To change the table size, act on the resizebox argument `0.8`.",
        "\\begin{table*}[ht]",
        "\\centering",
        "\\caption{",
        "Overall effectiveness of the models.",
        "The best results are highlighted in boldface.",
        f"Superscripts denote significant differences in {_latex(_test_caption(board))} "
        f"with $p \\le {board.options.alpha:g}$.",
        "}",
        "\\resizebox{0.8\\textwidth}{!}{",
        "\\begin{tabular}{c|l" + "|c" * len(board.measures) + "}",
        "\\toprule",
        "\\textbf{\\#}",
        "& \\textbf{Model}",
        *[f"& \\textbf{{{_latex_measure(measure)}}}" for measure in board.measures[:-1]],
        f"& \\textbf{{{_latex_measure(board.measures[-1])}}} \\\\ ",
        "\\midrule",
    ]
    body = []
    for r, run in enumerate(runs):
        cells = [
            _latex_cell(
                measure_board,
                r,
                runs,
                round(measure_board.standings[r].mean, digits) == best[measure_board.measure],
                digits,
            )
            for measure_board in board.boards
        ]
        body.append(
            f"{_RUN_LABELS[r]} &\n{_latex(run)} &\n"
            + " &\n".join(cells).replace("$^{}$", "")
            + " \\\\"
        )
    suffix = ["\\bottomrule", "\\end{tabular}", "}", "\\label{tab:results}", "\\end{table*}"]
    return "\n".join([*prefix, *body, *suffix]) + "\n"
