"""Renderers for a gate comparison: JUnit XML for CI, Markdown for PR comments, table rows.

``table_rows`` gives the formatted cells that both the Markdown table and a terminal table
(``rich.table.Table(*TABLE_HEADERS)`` then ``add_row(*row)``) show, so every surface prints
the same numbers.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Collection, Sequence
from typing import Final

from evalkit.stats.decision import Decision
from evalkit.stats.paired import Comparison, MetricComparison, QueryDrop, shown_ids
from evalkit.stats.power import PowerRow

__all__ = [
    "TABLE_HEADERS",
    "coverage_note",
    "markdown_cell",
    "markdown_table",
    "power_table_markdown",
    "queries_needed_text",
    "table_rows",
    "to_junit_xml",
    "to_markdown",
    "verdict_line",
]

TABLE_HEADERS: Final = ("metric", "baseline", "candidate", "Δ", "95 % CI", "p (adj.)", "decision")
_SUITE_NAME: Final = "evalkit gate"
_SHOWN_IDS: Final = 10
# Markup characters get a backslash; line breaks are written as escapes (``\n``), as a
# terminal table shows them: a query id holding one would split its table row in two.
_MARKDOWN_SPECIAL: Final = str.maketrans(
    {c: f"\\{c}" for c in "\\`*_[]<>|#"}
    | {c: ascii(c)[1:-1] for c in "\n\r\x0b\x0c\x85\u2028\u2029"}
)


def _value(number: float) -> str:
    return f"{number:.4f}"


def _signed(number: float) -> str:
    return f"{number:+.4f}"


def _p(p_value: float) -> str:
    return f"{p_value:.1e}" if p_value < 0.001 else f"{p_value:.3f}"


def _ci_header(comparison: Comparison) -> str:
    return f"{comparison.confidence:.0%} CI".replace("%", " %")


def _interval(metric: MetricComparison) -> str:
    return f"[{_signed(metric.ci_low)}, {_signed(metric.ci_high)}]"


def table_rows(comparison: Comparison) -> tuple[tuple[str, ...], ...]:
    """One row of formatted cells per measure, in ``TABLE_HEADERS`` order."""
    return tuple(
        (
            metric.measure,
            _value(metric.baseline_mean),
            _value(metric.candidate_mean),
            _signed(metric.delta),
            _interval(metric),
            _p(metric.p_adjusted),
            metric.decision.value,
        )
        for metric in comparison.metrics
    )


def _headers(comparison: Comparison) -> tuple[str, ...]:
    return (*TABLE_HEADERS[:4], _ci_header(comparison), *TABLE_HEADERS[5:])


def markdown_cell(text: str) -> str:
    """``text`` as one Markdown table cell: what Markdown would read as formatting, a ``|``
    and a line break (which ends the row) escaped."""
    return text.translate(_MARKDOWN_SPECIAL)


def markdown_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    left: Collection[int] = (0,),
    names: Collection[int] = (),
) -> list[str]:
    """The lines of a Markdown table: the columns ``left`` left-aligned, the others (figures)
    right-aligned; the cells of the columns ``names`` (users' names) pass ``markdown_cell``."""
    lines = [
        "| " + " | ".join(header.replace("|", "\\|") for header in headers) + " |",
        "|" + "|".join("---" if i in left else "---:" for i in range(len(headers))) + "|",
    ]
    lines.extend(
        "| " + " | ".join(markdown_cell(c) if i in names else c for i, c in enumerate(row)) + " |"
        for row in rows
    )
    return lines


def coverage_note(comparison: Comparison) -> str:
    """Which queries the comparison covers, which it left out (with how many queries each run
    holds), and which failed (as 0)."""
    failed = "".join(
        f" {len(ids)} queries failed in the {role} and count as 0 "
        f"({shown_ids(ids, limit=_SHOWN_IDS)})."
        for role, ids in (
            ("baseline", comparison.failed_in_baseline),
            ("candidate", comparison.failed_in_candidate),
        )
        if ids
    )
    not_judged = comparison.not_judged
    if not comparison.n_dropped and not not_judged:
        return (
            f"Compared on all {comparison.n_shared} queries; both runs have the same ones." + failed
        )
    parts = [
        f"{len(ids)} {where} ({shown_ids(ids, limit=_SHOWN_IDS)})"
        for where, ids in (
            ("only in the baseline", comparison.only_in_baseline),
            ("only in the candidate", comparison.only_in_candidate),
            ("in both runs but not judged by the goldset or qrels scored on", not_judged),
        )
        if ids
    ]
    held = comparison.n_shared + len(not_judged)
    return (
        f"Compared on the {comparison.n_shared} queries both runs share; "
        f"{comparison.n_dropped + len(not_judged)} left out: {'; '.join(parts)}. The baseline "
        f"holds {held + len(comparison.only_in_baseline)} queries, the candidate "
        f"{held + len(comparison.only_in_candidate)}." + failed
    )


def _metric_summary(metric: MetricComparison, comparison: Comparison) -> str:
    return (
        f"{metric.measure}: delta {_signed(metric.delta)} "
        f"({metric.baseline_mean:.4f} -> {metric.candidate_mean:.4f}), "
        f"{_ci_header(comparison)} {_interval(metric)}, p_adj {_p(metric.p_adjusted)} "
        f"({comparison.decision_test}), n {metric.n}"
    )


def queries_needed_text(metric: MetricComparison, *, min_effect: float) -> str:
    """The queries an inconclusive measure needs, saying which effect each figure is for:
    ``~1,234 to detect a difference of 0.01 (the min effect), ~5 for the observed delta
    -0.4000``; the note's reason when there is none."""
    needed, observed = metric.queries_needed, metric.queries_needed_observed
    if needed is None:
        return metric.queries_needed_note or ""
    delta = f"the observed delta {float(metric.delta):+.4f}"
    if min_effect <= 0.0:
        return f"~{needed:,} to detect {delta} (min effect 0)"
    effect = float(metric.queries_needed_effect or min_effect)
    text = f"~{needed:,} to detect a difference of {effect:g} (the min effect)"
    if observed is None:
        return text + f"; {delta} is 0"
    return text + f", ~{observed:,} for {delta}"


def verdict_line(comparison: Comparison) -> str:
    """One sentence with the verdict as a plain status word and the measures behind it."""
    by_decision = {
        decision: [markdown_cell(m.measure) for m in comparison.metrics if m.decision is decision]
        for decision in Decision
    }
    tolerance = f"{comparison.min_effect:g}"
    if comparison.decision is Decision.REGRESSION:
        reason = (
            f"{', '.join(by_decision[Decision.REGRESSION])} dropped significantly, by more "
            f"than the minimum effect {tolerance}."
        )
    elif comparison.decision is Decision.INCONCLUSIVE:
        sizes = [
            f"{markdown_cell(m.measure)} "
            + queries_needed_text(m, min_effect=comparison.min_effect)
            for m in comparison.metrics
            if m.decision is Decision.INCONCLUSIVE and m.queries_needed is not None
        ]
        reason = (
            f"{', '.join(by_decision[Decision.INCONCLUSIVE])}: the data neither show a "
            f"significant drop nor rule out one larger than {tolerance}"
            + (f"; queries needed to decide: {', '.join(sizes)}." if sizes else ".")
        )
    else:
        reason = f"every measure rules out a drop larger than {tolerance}."
    return f"**Gate: {comparison.decision.value.upper()}** - {reason}"


def _method_note(comparison: Comparison) -> str:
    method = "BCa" if comparison.ci_method == "bca" else comparison.ci_method
    return (
        f"Δ = candidate - baseline. CI: {method} bootstrap with small-sample expansion, "
        f"{comparison.resamples:,} resamples, seed {comparison.seed}. "
        f"p: two-sided {comparison.decision_test} test, "
        f"Holm-adjusted over {len(comparison.metrics)} measure(s); alpha "
        f"{comparison.alpha:g}, minimum effect {comparison.min_effect:g}."
    )


def _worst_section(worst: Sequence[QueryDrop]) -> list[str]:
    lines: list[str] = []
    measures = list(dict.fromkeys(drop.measure for drop in worst))
    for measure in measures:
        drops = [drop for drop in worst if drop.measure == measure]
        with_docs = any(drop.lost_docs for drop in drops)
        headers = ["query", "baseline", "candidate", "Δ"] + (
            ["relevant docs lost"] if with_docs else []
        )
        rows = [
            [
                markdown_cell(drop.query_id),
                _value(drop.baseline),
                _value(drop.candidate),
                _signed(drop.delta),
            ]
            + ([markdown_cell(", ".join(drop.lost_docs))] if with_docs else [])
            for drop in drops
        ]
        lines += [
            "",
            f"#### Largest drops in {markdown_cell(measure)}",
            "",
            *markdown_table(headers, rows),
        ]
    return lines


def to_markdown(comparison: Comparison, *, worst: Sequence[QueryDrop] | None = None) -> str:
    """A PR comment / job summary: verdict, per-measure table, coverage, method, worst queries."""
    rows = [
        (markdown_cell(row[0]), *row[1:-1], f"**{row[-1]}**" if row[-1] != "pass" else row[-1])
        for row in table_rows(comparison)
    ]
    lines = [
        "### evalkit gate",
        "",
        verdict_line(comparison),
        "",
        *markdown_table(_headers(comparison), rows),
        "",
        markdown_cell(coverage_note(comparison)),
        "",
        _method_note(comparison),
    ]
    notes = [
        f"- {markdown_cell(metric.measure)}: {metric.queries_needed_note}."
        for metric in comparison.metrics
        if metric.queries_needed_note
    ]
    if notes:
        lines += ["", *notes]
    if worst:
        lines += _worst_section(worst)
    return "\n".join(lines) + "\n"


def _located(
    attributes: dict[str, str], time: float | None, file: str | os.PathLike[str] | None
) -> dict[str, str]:
    if time is not None:
        attributes["time"] = f"{time:.3f}"
    if file is not None:
        attributes["file"] = os.fspath(file)
    return attributes


def to_junit_xml(
    comparison: Comparison,
    *,
    time: float | None = None,
    file: str | os.PathLike[str] | None = None,
    details: str | None = None,
) -> str:
    """JUnit XML: one ``<testsuite name="evalkit gate">`` with one ``<testcase>`` per measure.

    A regression is a ``<failure>``, an inconclusive measure ``<skipped>``. ``time`` (seconds
    the gate took) is split equally over the cases; ``file`` (the goldset or run file) is
    set on the suite and every case for CI annotations; ``details`` (probable causes) is
    added to every failure and the suite's output, which is all a CI report shows.
    """
    decisions = [metric.decision for metric in comparison.metrics]
    if time is not None and not (math.isfinite(time) and time >= 0):
        raise ValueError(f"time must be a finite number of seconds >= 0, got {time!r}")
    case_time = time / len(decisions) if time is not None and decisions else time
    suite = ET.Element(
        "testsuite",
        _located(
            {
                "name": _SUITE_NAME,
                "tests": str(len(decisions)),
                "failures": str(decisions.count(Decision.REGRESSION)),
                "skipped": str(decisions.count(Decision.INCONCLUSIVE)),
                "errors": "0",
            },
            time,
            file,
        ),
    )
    properties = ET.SubElement(suite, "properties")
    settings: tuple[tuple[str, object], ...] = (
        ("decision", comparison.decision.value),
        ("n_shared", comparison.n_shared),
        ("n_dropped", comparison.n_dropped),
        ("n_not_judged", len(comparison.not_judged)),
        ("alpha", comparison.alpha),
        ("min_effect", comparison.min_effect),
        ("resamples", comparison.resamples),
        ("seed", comparison.seed),
        ("confidence", comparison.confidence),
        ("ci_method", comparison.ci_method),
        ("decision_test", comparison.decision_test),
    )
    for name, value in settings:
        ET.SubElement(properties, "property", {"name": name, "value": str(value)})
    for metric in comparison.metrics:
        case = ET.SubElement(
            suite,
            "testcase",
            _located({"classname": "evalkit.gate", "name": metric.measure}, case_time, file),
        )
        summary = _metric_summary(metric, comparison)
        if metric.decision is Decision.REGRESSION:
            failure = ET.SubElement(
                case, "failure", {"type": "regression", "message": f"regression: {summary}"}
            )
            failure.text = summary + (f"\n\n{details}" if details else "")
        elif metric.decision is Decision.INCONCLUSIVE:
            note = f"; {metric.queries_needed_note}" if metric.queries_needed_note else ""
            ET.SubElement(case, "skipped", {"message": f"inconclusive: {summary}{note}"})
        ET.SubElement(case, "system-out").text = summary
    ET.SubElement(suite, "system-out").text = coverage_note(comparison) + (
        f"\n{details}" if details else ""
    )
    ET.indent(suite)
    body = ET.tostring(suite, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def power_table_markdown(rows: Sequence[PowerRow]) -> str:
    """The power table as Markdown: one line per spread, one column per drop size."""
    effects = list(dict.fromkeys(row.effect for row in rows))
    sources = list(dict.fromkeys((row.source, row.sd_diff) for row in rows))
    needed = {(row.source, row.effect): row.queries_needed for row in rows}
    headers = ["per-query differences", "sd"] + [f"drop {effect:g}" for effect in effects]
    body = [
        [markdown_cell(source), f"{sd:.3f}"]
        + [f"{needed[(source, effect)]:,}" for effect in effects]
        for source, sd in sources
    ]
    return "\n".join(markdown_table(headers, body)) + "\n"
