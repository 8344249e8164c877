"""A window's slice and its figures (``evalkit.drift.slices`` computes them; docs/slices.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from evalkit.records.jsonready import JsonReady, json_ready

__all__ = ["SliceFigures", "SlicePrecision"]


@dataclass(frozen=True, slots=True)
class SlicePrecision(JsonReady):
    """A slice's precision: the mean over its labelled queries, its interval, how many it
    rests on, and where the labels come from (``assessor`` or ``estimate``, never mixed)."""

    source: str
    labeller: str
    measure: str
    value: float | None
    low: float | None
    high: float | None
    n_queries: int


@dataclass(frozen=True, slots=True)
class SliceFigures(JsonReady):
    """One slice of one window (see the module docstring)."""

    slice: str
    n_queries: int
    n_family: int
    """The queries its share is of (``evalkit.drift.slices.slice_family``)."""
    share: float
    share_low: float
    share_high: float
    n_out_of_scope: int | None
    out_of_scope_share: float | None
    out_of_scope_low: float | None
    out_of_scope_high: float | None
    low_confidence_share: float | None
    churn: float | None
    precision: SlicePrecision | None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, its precision as a dict."""
        return json_ready(self) | {
            "precision": None if self.precision is None else self.precision.to_dict()
        }

    @property
    def label(self) -> str:
        """``topic:3 (insulin, glucose, diabetes)``: the slice and, for a topic, its first
        three terms in the window (else its reference terms)."""
        terms = self.details.get("window_terms") or self.details.get("terms") or []
        return f"{self.slice} ({', '.join(terms[:3])})" if terms else self.slice

    @property
    def kind(self) -> str:
        """``topic``, ``tenant``, ``tag`` or ``all``."""
        return self.slice.partition(":")[0]
