"""The Slices page's data: the sliced windows, one window's slices against its baseline, and
one slice's figures over the windows (``evalkit traffic slices``; docs/slices.md)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from evalkit.drift.slices import SliceChange, content_gaps, slice_changes
from evalkit.records.slices import SliceFigures
from evalkit.store import Store
from evalkit.store.slices import (
    slice_figures_of_run,
    slice_series,
    sliced_run_of_window,
    sliced_windows,
    topic_reference_window,
)

__all__ = ["SlicesData", "slices"]


@dataclass(frozen=True, slots=True)
class SlicesData:
    """The windows with stored slices (newest first), and for ``window``: its replay run, its
    slices, the baseline window and each slice's change against it, the content gaps, and
    ``series``: the chosen slice's figures over the windows (oldest first)."""

    windows: tuple[str, ...]
    window: str | None = None
    run_id: str | None = None
    figures: tuple[SliceFigures, ...] = ()
    baseline_window: str | None = None
    changes: tuple[SliceChange, ...] = ()
    gaps: tuple[str, ...] = ()
    series: pd.DataFrame | None = None

    def change(self, name: str) -> SliceChange | None:
        """The change of slice ``name``, or None."""
        return next((c for c in self.changes if c.slice == name), None)


def slices(store: Store, *, window: str | None = None, slice_name: str | None = None) -> SlicesData:
    """The Slices page's data for ``window`` (default: the newest sliced) and ``slice_name``."""
    listed = sliced_windows(store)
    if not listed:
        return SlicesData(())
    labels = tuple(label for label, _, _ in listed)
    chosen = next((row for row in listed if row[0] == window), listed[0])
    label, run_id, version = chosen
    figures = slice_figures_of_run(store, run_id)
    baseline = None if version is None else topic_reference_window(store, version)
    base_run = None if baseline is None else sliced_run_of_window(store, baseline, version)
    changes: list[SliceChange] = []
    if base_run is not None:
        base_figures = slice_figures_of_run(store, base_run)
        changes = slice_changes(base_figures, figures)
    gaps = tuple(f.slice for f in content_gaps(figures, changes))
    series = None
    if slice_name is not None:
        series = pd.DataFrame(slice_series(store, slice_name, topic_version=version))
    return SlicesData(
        windows=labels,
        window=label,
        run_id=run_id,
        figures=tuple(figures),
        baseline_window=baseline,
        changes=tuple(changes),
        gaps=gaps,
        series=series,
    )
