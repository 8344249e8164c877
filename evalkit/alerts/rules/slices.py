"""Slice rule kinds, over the newest window whose slices are stored (``evalkit traffic slices``
or the traffic job's ``slices``) against its baseline window: ``slice_precision_drop``, a
slice whose precision dropped, and ``slice_emerged``, a topic whose share grew; both with the
false discovery rate controlled over the window's slices (``evalkit.drift.slices``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field

from evalkit.alerts.model import Signal
from evalkit.alerts.rules.base import RuleContext, RuleKind, RuleParams, close_unwatched
from evalkit.drift.slices import (
    DEFAULT_FALSE_DISCOVERY_RATE,
    SliceChange,
    content_gaps,
    slice_changes,
)
from evalkit.records.slices import SliceFigures
from evalkit.store.alerts import has_tables
from evalkit.store.slices import (
    newest_sliced_window,
    slice_figures_of_run,
    sliced_run_of_window,
    topic_reference_window,
)

__all__ = [
    "SLICE_EMERGED",
    "SLICE_PRECISION_DROP",
    "SliceEmergedParams",
    "SlicePrecisionDropParams",
]


class _SliceParams(RuleParams):
    baseline_window: str | None = Field(
        default=None,
        description="The window slices are tested against (default: the one the topics were "
        "fitted on).",
    )
    false_discovery_rate: float = Field(
        default=DEFAULT_FALSE_DISCOVERY_RATE,
        gt=0,
        lt=1,
        description="Expected share of wrongly flagged slices among those flagged "
        "(Benjamini-Hochberg over the window's slices).",
    )
    min_queries: int = Field(
        default=10, ge=1, description="Leave out slices with fewer queries in the window."
    )


class SlicePrecisionDropParams(_SliceParams):
    """``kind = "slice_precision_drop"``."""

    min_drop: float = Field(default=0.0, ge=0, description="Smallest drop that matters.")


class SliceEmergedParams(_SliceParams):
    """``kind = "slice_emerged"``."""

    out_of_scope_only: bool = Field(
        default=False,
        description="Only topics mostly out of scope (content gaps), not every topic that grew.",
    )


def _windows(
    ctx: RuleContext, params: _SliceParams
) -> tuple[str, str, list[SliceFigures], str, list[SliceFigures]] | None:
    """The newest sliced window and its baseline: labels, run and figures of each."""
    if not has_tables(ctx.store, "traffic_slice_figures"):
        return None
    newest = newest_sliced_window(ctx.store)
    if newest is None:
        return None
    run_id, window, version = newest
    baseline = params.baseline_window or (
        None if version is None else topic_reference_window(ctx.store, version)
    )
    base_run = None if baseline is None else sliced_run_of_window(ctx.store, baseline, version)
    if base_run is None or base_run == run_id:
        return None
    figures = slice_figures_of_run(ctx.store, run_id)
    base_figures = slice_figures_of_run(ctx.store, base_run)
    return run_id, window, figures, str(baseline), base_figures


def _signals(
    ctx: RuleContext,
    params: _SliceParams,
    flagged: Callable[[SliceChange, SliceFigures], bool],
    describe: Callable[[SliceChange, SliceFigures], str],
    *,
    kinds: tuple[str, ...],
    min_drop: float = 0.0,
) -> list[Signal]:
    found = _windows(ctx, params)
    if found is None:
        # Nothing to compare (no window sliced yet, or the newest is its own baseline, as
        # after a refit on it): the slices watched before are not watched now.
        return close_unwatched(
            ctx, lambda _: False, "the newest sliced window has no baseline window to test against"
        )
    run_id, window, figures, baseline, base_figures = found
    by_name = {f.slice: f for f in figures}
    changes = slice_changes(
        base_figures,
        figures,
        false_discovery_rate=params.false_discovery_rate,
        min_drop=min_drop,
    )
    signals: list[Signal] = []
    for change in changes:
        figure = by_name.get(change.slice)
        if figure is None or figure.kind not in kinds:
            continue
        active = figure.n_queries >= params.min_queries and flagged(change, figure)
        evidence: dict[str, Any] = {
            "window": window,
            "baseline_window": baseline,
            "run_id": run_id,
            "change": change.to_dict(),
            "figures": figure.to_dict(),
            "family": f"{len(changes)} slices, Benjamini-Hochberg at "
            f"{params.false_discovery_rate:g}",
        }
        signals.append(
            Signal(
                subject=f"slice|{change.slice}",
                active=active,
                title=describe(change, figure),
                summary=f"{describe(change, figure)}; window {window} against {baseline}, "
                f"{len(changes)} slices tested, false discovery rate "
                f"{params.false_discovery_rate:g}; run {run_id}",
                evidence=evidence,
                links={
                    "slices": f"evalkit traffic slices --window {window}",
                    **ctx.dashboard("slices", window=window, slice=change.slice),
                },
            )
        )
    seen = {signal.subject for signal in signals}
    return signals + close_unwatched(
        ctx,
        lambda subject: subject in seen,
        f"the slice is not among window {window}'s (a refit renumbered the topics, or "
        "the rule's fields changed)",
    )


def _precision_drop(ctx: RuleContext, params: SlicePrecisionDropParams) -> list[Signal]:
    def describe(change: SliceChange, figure: SliceFigures) -> str:
        if change.drop_q is None:
            return f"precision of slice {figure.label} not comparable with the baseline"
        return (
            f"precision of slice {figure.label} "
            + ("dropped" if change.dropped else "held")
            + f": {change.baseline_precision or 0:.3f} to {change.precision or 0:.3f} "
            f"(q {change.drop_q:.2g})"
        )

    return _signals(
        ctx,
        params,
        lambda change, _: change.dropped,
        describe,
        kinds=("topic", "tenant", "tag"),
        min_drop=params.min_drop,
    )


def _emerged(ctx: RuleContext, params: SliceEmergedParams) -> list[Signal]:
    def gap(change: SliceChange, figure: SliceFigures) -> bool:
        return bool(content_gaps([figure], [change]))

    def flagged(change: SliceChange, figure: SliceFigures) -> bool:
        return change.grew and (gap(change, figure) or not params.out_of_scope_only)

    def describe(change: SliceChange, figure: SliceFigures) -> str:
        scope = (
            f", {figure.out_of_scope_share:.0%} of it out of scope (a content gap)"
            if gap(change, figure)
            else ""
        )
        verb = "grew" if change.grew else "holds"
        return (
            f"topic {figure.label} {verb}: {change.baseline_share:.1%} to {change.share:.1%} "
            f"of traffic (q {change.share_q:.2g}){scope}"
        )

    return _signals(ctx, params, flagged, describe, kinds=("topic",))


SLICE_PRECISION_DROP = RuleKind(
    "slice_precision_drop",
    SlicePrecisionDropParams,
    _precision_drop,
    "a slice of traffic lost precision against the baseline window (false discoveries "
    "controlled over the slices)",
)
SLICE_EMERGED = RuleKind(
    "slice_emerged",
    SliceEmergedParams,
    _emerged,
    "a topic's share of traffic grew beyond its interval (a content gap when mostly out of scope)",
)
