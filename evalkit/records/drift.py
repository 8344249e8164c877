"""What a drift test says (``DriftResult``: one detector's verdict on two windows) and what
a drift check stores (``DriftCheck``; the store adds an id and a time,
``evalkit.store.drift.StoredDriftCheck``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["DriftCheck", "DriftResult"]


@dataclass(frozen=True, slots=True)
class DriftResult:
    """The verdict of one drift test: statistic and decision are separate fields, and
    ``is_drift == (p_value <= threshold)`` (the detector's ``alpha``). ``seed`` is that of any
    random step (None: deterministic); ``details`` holds a few JSON-able method extras."""

    statistic: float
    p_value: float
    threshold: float
    is_drift: bool
    effect_size: float
    method: str
    n_reference: int
    n_current: int
    seed: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field (``details`` copied)."""
        return {
            "statistic": float(self.statistic),
            "p_value": float(self.p_value),
            "threshold": float(self.threshold),
            "is_drift": bool(self.is_drift),
            "effect_size": float(self.effect_size),
            "method": self.method,
            "n_reference": int(self.n_reference),
            "n_current": int(self.n_current),
            "seed": self.seed,
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftCheck:
    """One drift check as it is stored: ``stream`` watched (``queries``, ``documents``,
    ``model``, ``precision``...), ``subject`` named; ``finding`` is ``ok``, ``drift``,
    ``warning`` or ``model_mismatch`` (a model mismatch is never mere drift). The figures are
    those of the test that decided, where one ran; ``details`` holds JSON-able evidence."""

    stream: str
    subject: str | None = None
    finding: str
    method: str
    reference: str | None = None
    current: str | None = None
    n_reference: int | None = None
    n_current: int | None = None
    statistic: float | None = None
    p_value: float | None = None
    threshold: float | None = None
    effect_size: float | None = None
    is_drift: bool
    seed: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    report_path: str | None = None

    @classmethod
    def of_result(
        cls,
        result: DriftResult,
        *,
        stream: str,
        subject: str | None = None,
        reference: str | None = None,
        current: str | None = None,
        details: Mapping[str, Any] | None = None,
        report_path: str | None = None,
    ) -> DriftCheck:
        """The check of a detector's ``result`` on ``stream``: finding ``drift`` or ``ok``,
        the result's figures, and ``details`` stored beside the result's own."""
        return cls(
            stream=stream,
            subject=subject,
            finding="drift" if result.is_drift else "ok",
            reference=reference,
            current=current,
            **{f.name: getattr(result, f.name) for f in fields(result) if f.name != "details"},
            details={**dict(result.details), **dict(details or {})},
            report_path=report_path,
        )
