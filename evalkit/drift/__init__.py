"""Statistical drift detection: embeddings, metric series and result churn.

Embedding detectors share one contract: settings in ``__init__``, ``fit(reference) ->
self``, ``test(current) -> DriftResult``; ``make_detector`` builds one by name.
``sequential`` watches per-run metric means (CUSUM, Page-Hinkley); ``churn`` compares ranked
results without labels. Methods, false-alarm rates and power: docs/drift.md.
"""

from evalkit.drift.auto import AutoDrift
from evalkit.drift.base import (
    DETECTORS,
    DriftDetector,
    NotFittedError,
    available_methods,
    make_detector,
)
from evalkit.drift.churn import low_confidence_share, top1_score_shift
from evalkit.drift.classifier import ClassifierDrift
from evalkit.drift.ks import KSDrift
from evalkit.drift.mean_cosine import MeanCosineDrift
from evalkit.drift.mmd import MMDDrift, RFFMMDDrift
from evalkit.drift.moments import MomentsDrift
from evalkit.drift.sequential import (
    AlertLevel,
    Cusum,
    PageHinkley,
    SequentialState,
    SequentialTrace,
    cusum,
    page_hinkley,
    sequential_trace,
)
from evalkit.records.drift import DriftResult
from evalkit.records.requests import DRIFT_TEST_DEFAULTS

DEFAULT_METHOD = DRIFT_TEST_DEFAULTS.method
"""The method ``make_detector`` users should reach for first (chosen in docs/drift.md)."""

__all__ = [
    "DEFAULT_METHOD",
    "DETECTORS",
    "AlertLevel",
    "AutoDrift",
    "ClassifierDrift",
    "Cusum",
    "DriftDetector",
    "DriftResult",
    "KSDrift",
    "MMDDrift",
    "MeanCosineDrift",
    "MomentsDrift",
    "NotFittedError",
    "PageHinkley",
    "RFFMMDDrift",
    "SequentialState",
    "SequentialTrace",
    "available_methods",
    "cusum",
    "low_confidence_share",
    "make_detector",
    "page_hinkley",
    "sequential_trace",
    "top1_score_shift",
]
