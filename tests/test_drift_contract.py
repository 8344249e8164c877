"""The detector contract: registry, fit/test protocol, result record, input errors."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import evalkit.drift as drift
from evalkit.drift import (
    DEFAULT_METHOD,
    DETECTORS,
    DriftDetector,
    DriftResult,
    NotFittedError,
    available_methods,
    make_detector,
)
from evalkit.errors import ConfigError, EvalkitError, InputError

METHODS = ["auto", "mmd", "moments", "mmd_rff", "classifier", "ks", "mean_cosine"]


@pytest.fixture(autouse=True)
def _single_thread_blas() -> Iterator[None]:
    with threadpool_limits(1):
        yield


@pytest.fixture
def windows() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((40, 6)), rng.standard_normal((30, 6))


def test_registry_names_every_required_method() -> None:
    assert set(METHODS) <= set(available_methods())
    assert available_methods() == tuple(sorted(DETECTORS))
    assert DEFAULT_METHOD in DETECTORS
    for name, cls in DETECTORS.items():
        assert cls.method == name
        assert issubclass(cls, DriftDetector)


def test_public_surface_is_exported() -> None:
    for name in drift.__all__:
        assert hasattr(drift, name), name
    assert {"DriftResult", "make_detector", "DEFAULT_METHOD", "cusum", "PageHinkley"} <= set(
        drift.__all__
    )


def test_unknown_method_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown drift method 'wasserstein'.*mmd"):
        make_detector("wasserstein")


def test_unknown_setting_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="invalid settings for drift method 'ks'"):
        make_detector("ks", n_permutations=10)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, float("nan")])
def test_alpha_outside_unit_interval_is_rejected(alpha: float) -> None:
    with pytest.raises(ConfigError, match="alpha"):
        make_detector("mmd", alpha=alpha)


@pytest.mark.parametrize("method", METHODS)
def test_test_before_fit_says_what_to_call(method: str) -> None:
    detector = make_detector(method)
    assert not detector.is_fitted
    with pytest.raises(NotFittedError, match=r"call fit\(reference\)"):
        detector.test(np.zeros((10, 3)))
    assert issubclass(NotFittedError, EvalkitError)


@pytest.mark.parametrize("method", METHODS)
def test_fit_returns_self_and_result_has_every_field(
    method: str, windows: tuple[np.ndarray, np.ndarray]
) -> None:
    reference, current = windows
    detector = make_detector(method, alpha=0.1, seed=11)
    assert detector.fit(reference) is detector
    result = detector.test(current)
    assert isinstance(result, DriftResult)
    ran = "mmd" if method == "auto" else method  # the default names the test it ran
    assert result.method == ran
    assert (result.n_reference, result.n_current) == (40, 30)
    assert result.threshold == 0.1
    assert 0.0 < result.p_value <= 1.0
    assert result.is_drift == (result.p_value <= result.threshold)
    assert np.isfinite(result.statistic)
    assert np.isfinite(result.effect_size)
    assert result.seed == (None if method == "ks" else 11)
    encoded = json.loads(json.dumps(result.to_dict()))
    assert encoded["method"] == ran
    assert set(encoded) == {
        "statistic",
        "p_value",
        "threshold",
        "is_drift",
        "effect_size",
        "method",
        "n_reference",
        "n_current",
        "seed",
        "details",
    }


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_result_and_get_params_round_trip(
    method: str, windows: tuple[np.ndarray, np.ndarray]
) -> None:
    reference, current = windows
    detector = make_detector(method, seed=5)
    first = detector.fit(reference).test(current)
    rebuilt = make_detector(method, **detector.get_params())
    assert rebuilt.get_params() == detector.get_params()
    assert rebuilt.fit(reference).test(current) == first


def test_seed_none_draws_and_records_a_seed(windows: tuple[np.ndarray, np.ndarray]) -> None:
    reference, current = windows
    result = make_detector("mmd", seed=None).fit(reference).test(current)
    assert isinstance(result.seed, int)
    replay = make_detector("mmd", seed=result.seed).fit(reference).test(current)
    assert replay.p_value == result.p_value


def test_result_is_frozen(windows: tuple[np.ndarray, np.ndarray]) -> None:
    reference, current = windows
    result = make_detector("ks").fit(reference).test(current)
    with pytest.raises(AttributeError):
        result.p_value = 0.0  # type: ignore[misc]


def test_fit_copies_the_reference(windows: tuple[np.ndarray, np.ndarray]) -> None:
    reference, current = windows
    detector = make_detector("mean_cosine").fit(reference)
    before = detector.test(current)
    reference[:] = 100.0
    assert detector.test(current) == before
    assert reference.flags.writeable


def test_float32_input_is_accepted(windows: tuple[np.ndarray, np.ndarray]) -> None:
    reference, current = windows
    result64 = make_detector("ks").fit(reference).test(current)
    result32 = (
        make_detector("ks").fit(reference.astype(np.float32)).test(current.astype(np.float32))
    )
    assert result32.p_value == pytest.approx(result64.p_value)


@pytest.mark.parametrize(
    ("current", "message"),
    [
        (np.zeros((10, 5)), "dimension 5 but the reference had 6"),
        (np.zeros(6), "2-D"),
        (np.zeros((1, 6)), "at least 2"),
        (np.full((10, 6), np.nan), "NaN"),
        ([["a"] * 6] * 10, "numeric"),
    ],
)
def test_bad_current_window_raises_input_error(
    current: object, message: str, windows: tuple[np.ndarray, np.ndarray]
) -> None:
    detector = make_detector("mmd").fit(windows[0])
    with pytest.raises(InputError, match=message):
        detector.test(current)  # type: ignore[arg-type]


def test_classifier_needs_a_row_per_fold() -> None:
    detector = make_detector("classifier", null="permutation", n_splits=5)
    with pytest.raises(InputError, match="at least 5"):
        detector.fit(np.zeros((4, 3)))
    holdout = make_detector("classifier", test_share=0.2)
    with pytest.raises(InputError, match="at least 5"):
        holdout.fit(np.zeros((4, 3)))


@pytest.mark.parametrize(
    ("method", "settings"),
    [
        ("mmd", {"n_permutations": 0}),
        ("mmd", {"bandwidth": -1.0}),
        ("mean_cosine", {"n_permutations": 0}),
        ("moments", {"n_blocks": 1}),
        ("moments", {"n_permutations": 0}),
        ("auto", {"exact_max_pool": -1}),
        ("classifier", {"n_splits": 1}),
        ("classifier", {"null": "mann_whitney"}),
        ("classifier", {"test_share": 1.0}),
        ("ks", {"max_reported_dimensions": -1}),
    ],
)
def test_invalid_settings_raise_config_error(method: str, settings: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        make_detector(method, **settings)
