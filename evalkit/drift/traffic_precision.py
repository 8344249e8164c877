"""Precision on production traffic over time: the series of judged traffic windows.

A series is one assessor's figure over one retriever's windows, watched by Page-Hinkley and
an unpaired test of the newest window against a baseline; every check carries the assessor
and its agreement. docs/judging.md, "Over time: drift and alerts".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from evalkit.drift.watch import watch_drops
from evalkit.errors import ConfigError, MeasureError
from evalkit.metrics.measures import Measure, parse_measure
from evalkit.records.drift import DriftCheck
from evalkit.records.jsonready import JsonReady
from evalkit.records.requests import (
    TRAFFIC_PRECISION_MEASURE,
    TRAFFIC_PRECISION_MIN_EFFECT,
    TRAFFIC_PRECISION_MIN_JUDGED_SHARE,
)
from evalkit.store.drift import save_drift_check
from evalkit.store.judging import JudgedFigure, WindowFigure, traffic_figure_series

if TYPE_CHECKING:
    from evalkit.store import Store

__all__ = [
    "DEFAULT_MIN_EFFECT",
    "DEFAULT_MIN_JUDGED_SHARE",
    "NoJudgedWindowError",
    "TrafficPrecisionCheck",
    "WindowTest",
    "watch_traffic_precision",
    "window_measure",
    "window_test",
]


class NoJudgedWindowError(ConfigError):
    """No traffic window has the watched figure yet (nothing to watch until one is judged)."""


DEFAULT_MIN_EFFECT = TRAFFIC_PRECISION_MIN_EFFECT
DEFAULT_MIN_JUDGED_SHARE = TRAFFIC_PRECISION_MIN_JUDGED_SHARE

_Z95 = NormalDist().inv_cdf(0.975)


@dataclass(frozen=True, slots=True)
class WindowTest(JsonReady):
    """The newest window against the baseline window: the drop, its standard error, the
    one-sided p-value of a drop, and whether it is a regression (p < alpha and a drop of at
    least ``min_effect``)."""

    baseline_window: str
    current_window: str
    baseline: float
    current: float
    delta: float
    standard_error: float
    p_value: float
    regression: bool


def _standard_error(point: WindowFigure) -> float:
    """The standard error ``point``'s interval implies. The interval of a small window is
    widened for its few queries (``evalkit.judging.window.mean_interval``), so the normal
    approximation over it holds the test's level from 5 queries a window
    (``benchmarks/window_intervals.py``)."""
    figure = point.figure
    if figure.low is None or figure.high is None:
        return 0.0
    return (figure.high - figure.low) / (2 * _Z95)


def _counted_unjudged_as_not_relevant(figure: JudgedFigure) -> bool:
    """A partial figure stored before figures rested on fully judged queries only (it has
    no ``window_queries``): biased low by its unjudged share."""
    return figure.status == "partial" and "window_queries" not in figure.details


def window_test(
    baseline: WindowFigure, current: WindowFigure, *, alpha: float, min_effect: float
) -> WindowTest:
    """Test ``current`` against ``baseline`` (see the module docstring)."""
    base = float(baseline.figure.value or 0.0)
    now = float(current.figure.value or 0.0)
    delta = now - base
    error = math.hypot(_standard_error(baseline), _standard_error(current))
    # Two windows without spread (every query alike) differ for sure, or not at all.
    no_spread = 0.0 if delta < 0 else 1.0
    p_value = NormalDist().cdf(delta / error) if error > 0 else no_spread
    return WindowTest(
        baseline_window=baseline.window_label,
        current_window=current.window_label,
        baseline=base,
        current=now,
        delta=delta,
        standard_error=error,
        p_value=p_value,
        regression=p_value < alpha and delta <= -min_effect,
    )


@dataclass(frozen=True, slots=True)
class TrafficPrecisionCheck:
    """One assessor's figure over one retriever's judged traffic windows.

    ``series`` holds (window label, run id, value, low, high, judged share), oldest first;
    ``levels`` the sequential detector's level after each window; ``test`` the newest window
    against the baseline window (None with one window); ``agreement_id`` the assessor's
    agreement the newest window was computed under (None: not measured).
    """

    assessor: str
    retriever: str
    measure: str
    source: str
    series: tuple[tuple[str, str, float, float | None, float | None, float | None], ...]
    levels: tuple[str, ...]
    change_point: str | None
    test: WindowTest | None
    finding: str
    agreement_id: str | None
    warmup: int
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        """``assessor|retriever``: what the series is of."""
        return f"{self.assessor}|{self.retriever}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "assessor": self.assessor,
            "retriever": self.retriever,
            "measure": self.measure,
            "source": self.source,
            "series": [
                {
                    "window": window,
                    "run_id": run_id,
                    "value": value,
                    "low": low,
                    "high": high,
                    "judged_share": share,
                    "level": level,
                }
                for (window, run_id, value, low, high, share), level in zip(
                    self.series, self.levels, strict=True
                )
            ],
            "change_point": self.change_point,
            "test": None if self.test is None else self.test.to_dict(),
            "finding": self.finding,
            "agreement_id": self.agreement_id,
            "agreement": "measured" if self.agreement_id else "agreement not measured",
            "warmup": self.warmup,
            "details": dict(self.details),
        }


def window_measure(name: str) -> str:
    """``name`` canonical (``P@10`` is ``precision@10``), as judged traffic windows store
    it. Raises MeasureError for a name that does not parse, and for ``ndcg@k``, which no
    window stores: a window's nDCG takes its ideal from its judged top k, ``ndcg_judged@k``,
    and trec_eval's ``ndcg@k`` (the ideal from all judgments) is a goldset run's."""
    measure = parse_measure(name)
    if measure.name == "ndcg":
        judged = Measure("ndcg_judged", measure.cutoff or 10)
        raise MeasureError(
            f"traffic windows store no {measure}: a window's nDCG takes its ideal from its "
            f"judged top k and is stored as {judged} (docs/judging.md); {measure} is a goldset "
            f"run's, whose ideal comes from all its judgments. Watch {judged}",
            field="measure",
        )
    return str(measure)


def watch_traffic_precision(
    store: Store,
    *,
    measure: str = TRAFFIC_PRECISION_MEASURE,
    source: str = "assessor",
    assessor: str | None = None,
    retriever: str | None = None,
    baseline_window: str | None = None,
    alpha: float = 0.05,
    min_effect: float = DEFAULT_MIN_EFFECT,
    min_judged_share: float = DEFAULT_MIN_JUDGED_SHARE,
    warmup: int | None = None,
    h_warning: float = 5.0,
    h_alert: float = 8.0,
    save: bool = True,
) -> list[TrafficPrecisionCheck]:
    """Check every judged traffic series of ``measure`` (of one ``assessor`` and one
    ``retriever`` when given) for a drop; store each check (stream ``traffic_precision``)
    unless ``save`` is False. Raises NoJudgedWindowError (a ConfigError) when no traffic
    window was judged, ConfigError when ``baseline_window`` is not in a series, and
    MeasureError for a measure no window stores (``window_measure``)."""
    measure = window_measure(measure)
    points = [
        point
        for point in traffic_figure_series(
            store, measure, source=source, labeller=assessor, retriever_id=retriever
        )
        if point.figure.value is not None
        and (point.figure.judged_share or 0.0) >= min_judged_share
        and not _counted_unjudged_as_not_relevant(point.figure)
    ]
    if not points:
        raise NoJudgedWindowError(
            f"no judged traffic window has {measure} ({source} labels"
            + (f" of {assessor}" if assessor else "")
            + "): label windows with `evalkit traffic replay --judge` or `evalkit judge traffic`"
        )
    groups: dict[tuple[str, str], list[WindowFigure]] = {}
    for point in points:
        groups.setdefault((point.figure.labeller, point.retriever_id), []).append(point)
    checks = []
    for (labeller, retriever_id), series in groups.items():
        check = _check(
            series,
            labeller,
            retriever_id,
            measure=measure,
            source=source,
            baseline_window=baseline_window,
            alpha=alpha,
            min_effect=min_effect,
            warmup=warmup,
            h_warning=h_warning,
            h_alert=h_alert,
        )
        if save:
            _save(store, check, alpha=alpha)
        checks.append(check)
    return checks


def _check(
    series: list[WindowFigure],
    labeller: str,
    retriever_id: str,
    *,
    measure: str,
    source: str,
    baseline_window: str | None,
    alpha: float,
    min_effect: float,
    warmup: int | None,
    h_warning: float,
    h_alert: float,
) -> TrafficPrecisionCheck:
    values = np.array([float(point.figure.value or 0.0) for point in series])
    drops = watch_drops(values, warmup=warmup, h_warning=h_warning, h_alert=h_alert)
    levels, warm = drops.levels, drops.warmup
    change_point = None if drops.change_point is None else series[drops.change_point].window_label
    details: dict[str, Any] = {"warmup": warm, "alpha": alpha, "min_effect": min_effect}
    details.update(drops.details)
    base = series[0]
    if baseline_window is not None:
        pinned = [point for point in series if point.window_label == baseline_window]
        if not pinned:
            windows = ", ".join(point.window_label for point in series)
            raise ConfigError(
                f"baseline window {baseline_window} is not in the judged series of "
                f"{labeller} on {retriever_id} (windows: {windows}); windows judged below "
                "the minimum judged share are left out"
            )
        base = pinned[0]
    newest = series[-1]
    test = (
        window_test(base, newest, alpha=alpha, min_effect=min_effect)
        if newest.run_id != base.run_id
        else None
    )
    finding = drops.finding(regression=test is not None and test.regression)
    return TrafficPrecisionCheck(
        assessor=labeller,
        retriever=retriever_id,
        measure=measure,
        source=source,
        series=tuple(
            (
                point.window_label,
                point.run_id,
                float(point.figure.value or 0.0),
                point.figure.low,
                point.figure.high,
                point.figure.judged_share,
            )
            for point in series
        ),
        levels=tuple(levels),
        change_point=change_point,
        test=test,
        finding=finding,
        agreement_id=newest.figure.agreement_id,
        warmup=warm,
        details=details,
    )


def _save(store: Store, check: TrafficPrecisionCheck, *, alpha: float) -> None:
    test = check.test
    save_drift_check(
        store,
        DriftCheck(
            stream="traffic_precision",
            subject=check.subject,
            finding=check.finding,
            method="page_hinkley+window",
            is_drift=check.finding == "drift",
            reference=check.series[0][0] if test is None else test.baseline_window,
            current=check.series[-1][0],
            n_reference=len(check.series),
            n_current=None,
            statistic=check.details.get("statistic"),
            p_value=None if test is None else test.p_value,
            threshold=alpha,
            effect_size=None if test is None else test.delta,
            seed=None,
            details={
                "measure": check.measure,
                "source": check.source,
                "assessor": check.assessor,
                "retriever": check.retriever,
                "agreement_id": check.agreement_id,
                "levels": list(check.levels),
                "change_point": check.change_point,
                "windows": [window for window, *_ in check.series],
                **dict(check.details),
            },
        ),
    )
