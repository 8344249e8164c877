"""How ``traffic slices``, ``traffic gaps`` and ``runs show --by`` print slices."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from evalkit.cli._output import console, format_interval, format_share, key_values, say, table

if TYPE_CHECKING:
    from evalkit.pipeline.goldset_slices import GoldsetSlice
    from evalkit.pipeline.slices import SliceFigures, WindowSlices
    from evalkit.store.review import QueueCounts

__all__ = ["print_gaps", "print_goldset_slices", "print_window_slices"]


def _flag(sliced: WindowSlices, figure: SliceFigures) -> str:
    change = sliced.change(figure.slice)
    marks = []
    if change is not None and change.grew:
        marks.append(f"grew from {change.baseline_share:.1%} (q {change.share_q:.2g})")
    if change is not None and change.shrank:
        marks.append(f"shrank from {change.baseline_share:.1%} (q {change.share_q:.2g})")
    if change is not None and change.dropped:
        marks.append(
            f"precision dropped from {change.baseline_precision:.3f} (q {change.drop_q:.2g})"
        )
    if figure in sliced.content_gaps:
        marks.append("CONTENT GAP")
    return "; ".join(marks) or "-"


def print_window_slices(sliced: WindowSlices) -> None:
    """The window's slices, their figures with intervals, and what changed."""
    if not sliced.figures:
        say(f"window {sliced.window_label} has no replayed query to slice (every one failed)")
        return
    whole = sliced.figures[0]
    precision = whole.precision
    facts: dict[str, object] = {
        "replay run": sliced.run_id,
        "topics": "-"
        if sliced.topics is None
        else f"version {sliced.topics.version}, fitted on {sliced.topics.reference_window}"
        + (" (now)" if sliced.refitted else ""),
        "baseline window": sliced.baseline_window or "-",
        "precision": "-"
        if precision is None
        else f"{precision.measure} from {precision.source} ({precision.labeller})",
        "out of scope": format_interval(
            whole.out_of_scope_share, whole.out_of_scope_low, whole.out_of_scope_high
        )
        + (
            f" (best score below {whole.details['scope_floor']:.3f})"
            if "scope_floor" in whole.details
            else ""
        ),
        "tested": f"{len(sliced.changes)} slices, Benjamini-Hochberg at "
        f"{sliced.false_discovery_rate:g} over the slices",
    }
    console.print(key_values(f"slices of window {sliced.window_label}", facts))
    rows = [
        [
            f.label,
            f.n_queries,
            format_interval(f.share, f.share_low, f.share_high),
            "-"
            if f.precision is None
            else format_interval(f.precision.value, f.precision.low, f.precision.high),
            format_interval(f.out_of_scope_share, f.out_of_scope_low, f.out_of_scope_high),
            format_share(f.low_confidence_share),
            format_share(f.churn),
            _flag(sliced, f),
        ]
        for f in sliced.figures
    ]
    console.print(
        table(
            None,
            [
                "slice",
                "queries",
                "share",
                "precision",
                "out of scope",
                "low conf.",
                "churn",
                "change",
            ],
            rows,
        )
    )
    for note in sliced.notes:
        say(note)


def print_gaps(sliced: WindowSlices, queued: QueueCounts | None) -> None:
    """The window's content gaps with their central queries, and what was queued."""
    if not sliced.content_gaps:
        say(
            f"no content gap in window {sliced.window_label}: no topic mostly out of scope "
            f"grew against {sliced.baseline_window or 'no baseline'}"
        )
    for gap in sliced.content_gaps:
        central = gap.details.get("window_central_queries") or gap.details.get("central_queries")
        console.print(
            key_values(
                f"content gap {gap.label}",
                {
                    "share": format_interval(gap.share, gap.share_low, gap.share_high),
                    "out of scope": format_interval(
                        gap.out_of_scope_share, gap.out_of_scope_low, gap.out_of_scope_high
                    ),
                    "terms": ", ".join(gap.details.get("window_terms") or []) or "-",
                    "central queries": "\n".join(central or []) or "-",
                },
            )
        )
    if queued is not None:
        say(f"review queue: {queued.added} added, {queued.updated} updated, {queued.kept} kept")


def print_goldset_slices(slices: Sequence[GoldsetSlice], measures: Sequence[str]) -> None:
    """A goldset run's measures per slice, each with its interval."""
    rows = [
        [
            s.slice,
            s.n_queries,
            *(format_interval(*s.measures[m]) if m in s.measures else "-" for m in measures),
        ]
        for s in slices
    ]
    console.print(
        table("per slice (each slice's queries alone)", ["slice", "queries", *measures], rows)
    )
