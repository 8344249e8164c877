"""Statistical drift detection: embeddings, metric series and result churn.

Embedding detectors share one contract: settings in ``__init__``, ``fit(reference) ->
self``, ``test(current) -> DriftResult``. Build one by name with ``make_detector``::

    detector = make_detector(DEFAULT_METHOD, alpha=0.05, seed=7).fit(reference_embeddings)
    result = detector.test(current_embeddings)
    result.is_drift, result.p_value, result.effect_size

Methods: ``auto`` (the default: exact-kernel ``mmd`` up to 2,000 pooled rows, ``moments``
above), ``mmd`` (exact kernel sums for small windows, random Fourier features for large
ones), ``moments`` (mean and per-dimension spread, linear time), ``mmd_rff``,
``classifier``, ``ks``, ``mean_cosine``. The false-alarm rate and power of each, measured
on real embeddings, are in docs/drift.md.

``sequential`` watches a series of per-run metric means for drops (CUSUM,
Page-Hinkley); ``churn`` compares ranked result lists without labels.
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
