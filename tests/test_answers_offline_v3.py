"""offline-v3: offline-v2's share of supported claims, calibrated on human faithfulness
ratings (MTRAG); the default offline method, stored under its own version."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from benchmark_scripts import load_benchmark

from evalkit.answers import AnswerRecord, OfflineFaithfulness, score_answers
from evalkit.answers.offline import (
    DEFAULT_ANSWER_CALIBRATION,
    OFFLINE_VERSION,
    AnswerCalibration,
    ClaimSupport,
    fitted_parameters_v3,
)
from evalkit.answers.records import method_version
from evalkit.config import JudgeSettings

CONTEXTS = (
    "The Sydney Harbour Bridge is a steel through arch bridge in Sydney, Australia. "
    "It was opened in 1932 after eight years of construction. "
    "The bridge was designed and built by the British firm Dorman Long of Middlesbrough.",
)


def test_offline_v3_is_the_default_offline_method() -> None:
    assert OFFLINE_VERSION == "offline-v3"
    assert JudgeSettings().offline_version == "offline-v3"
    assert OfflineFaithfulness().version == "offline-v3/threshold=0.5"
    assert OfflineFaithfulness(version="offline-v2", threshold=0.7).version == (
        "offline-v2/threshold=0.7"
    )
    with pytest.raises(ValueError, match="offline-v2, offline-v3"):
        OfflineFaithfulness(version="offline-v9")


def test_method_version_drops_the_threshold_only() -> None:
    assert method_version("offline-v3/threshold=0.5") == "offline-v3"
    assert method_version("offline-v2/threshold=0.7") == "offline-v2"
    assert method_version("ragas-0.4.3/faithfulness/ab12") == "ragas-0.4.3/faithfulness/ab12"
    assert method_version(None) is None


def test_answer_calibration_by_hand() -> None:
    calibration = AnswerCalibration(intercept=1.0, slope=2.0)
    share = np.array([0.0, 0.25, 0.5, 0.9, 1.0])
    logit = np.log(np.clip(share, 1e-3, 1 - 1e-3) / (1 - np.clip(share, 1e-3, 1 - 1e-3)))
    expected = 1 / (1 + np.exp(-(1.0 + 2.0 * logit)))
    np.testing.assert_allclose(calibration.apply(share), expected)
    # Strictly increasing: the order of the answers is offline-v2's.
    grid = np.linspace(0.0, 1.0, 1001)
    assert (np.diff(DEFAULT_ANSWER_CALIBRATION.apply(grid)[1:-1]) > 0).all()
    with pytest.raises(ValueError, match="positive slope"):
        AnswerCalibration(intercept=0.0, slope=0.0)
    with pytest.raises(ValueError, match="floor"):
        AnswerCalibration(intercept=0.0, slope=1.0, floor=0.5)


def test_a_claim_support_scores_its_share_through_the_calibration() -> None:
    support = ClaimSupport(
        claims=("a b c", "d e f"),
        similarity=np.array([0.9, 0.2]),
        coverage=np.array([1.0, 0.0]),
        salient=np.array([1.0, 1.0]),
        probability=np.array([0.9, 0.3]),
        weights=np.array([3.0, 1.0]),
        threshold=0.5,
        answer_calibration=AnswerCalibration(intercept=0.5, slope=1.5),
    )
    assert support.share == pytest.approx(0.75)
    assert support.score == pytest.approx(1 / (1 + np.exp(-(0.5 + 1.5 * np.log(3.0)))))
    plain = ClaimSupport(**{**_fields(support), "answer_calibration": None})
    assert plain.score == plain.share == pytest.approx(0.75)


def _fields(support: ClaimSupport) -> dict[str, object]:
    return {name: getattr(support, name) for name in ClaimSupport.__slots__}


def test_the_committed_v3_fit_says_where_it_comes_from_and_meets_its_targets() -> None:
    parameters = fitted_parameters_v3()
    provenance = parameters["provenance"]
    assert provenance["script"] == "benchmarks/faithfulness_human.py --write"
    assert "MTRAG" in provenance["data"]
    assert "267 answers, 89 tasks" in provenance["data"]
    assert "by task" in provenance["cross_validation"]
    assert {"target", "method", "builds_on", "bootstrap", "code_commit", "fitted_on"} <= set(
        provenance
    )
    assert AnswerCalibration(**parameters["answer_calibration"]) == DEFAULT_ANSWER_CALIBRATION
    figures, targets = parameters["cross_validated"], parameters["targets"]
    v2, v3 = figures["point"]["offline-v2"], figures["point"]["offline-v3"]
    assert v3["rated_4_mean"] >= targets["rated_4_mean_min"] > v2["rated_4_mean"]
    assert v3["rated_1_2_mean"] <= targets["rated_1_2_mean_max"]
    # On the same folds, offline-v3 ranks exactly as offline-v2 (a strictly increasing map).
    within = figures["within_folds"]
    assert within["offline-v3"] == within["offline-v2"]
    for name in ("offline-v2", "offline-v3"):
        for statistic, (low, high) in figures["interval_95"][name].items():
            assert low <= figures["point"][name][statistic] <= high, (name, statistic)


@pytest.fixture(scope="module")
def benchmark() -> ModuleType:
    """benchmarks/faithfulness_human.py, imported as the fit ran."""
    pytest.importorskip("sklearn")
    return load_benchmark("faithfulness_human")


def test_cross_validation_keeps_a_task_on_one_side(benchmark: ModuleType) -> None:
    tasks = np.asarray([f"t{i // 3}" for i in range(60)])
    folds = benchmark.folds_of(tasks)
    for task in set(tasks.tolist()):
        assert len(set(folds[tasks == task].tolist())) == 1, task
    assert sorted(np.bincount(folds).tolist()) == [12, 12, 12, 12, 12]
    # The map is fitted on the other folds only: a fold's own labels cannot move its values.
    shares = np.linspace(0.05, 0.95, 60)
    labels = (np.random.default_rng(7).random(60) < shares).astype(int)

    def run(flip: int | None) -> np.ndarray:
        changed = labels.copy()
        if flip is not None:
            changed[folds == flip] = 1 - changed[folds == flip]

        def fit(train: np.ndarray):  # type: ignore[no-untyped-def]
            calibration = benchmark.fit_answer_calibration(shares[train], changed[train])
            return lambda test: calibration.apply(shares[test])

        return np.asarray(benchmark.out_of_fold(fit, len(shares), folds))

    plain, own_flipped, other_flipped = run(None), run(0), run(1)
    np.testing.assert_allclose(plain[folds == 0], own_flipped[folds == 0])
    assert not np.allclose(plain[folds == 0], other_flipped[folds == 0])


@pytest.mark.slow
def test_scores_are_stored_under_their_version_and_v3_maps_v2() -> None:
    records = [
        AnswerRecord(
            id="faithful",
            question="When did the bridge open?",
            answer="The Sydney Harbour Bridge opened in 1932 after eight years of construction.",
            contexts=CONTEXTS,
        ),
        AnswerRecord(
            id="unfaithful",
            question="When did the bridge open?",
            answer="The bridge opened in 1958 and was built by a firm from Glasgow.",
            contexts=CONTEXTS,
        ),
    ]
    v3 = score_answers(records, settings=JudgeSettings(method="offline")).scores
    v2 = score_answers(
        records, settings=JudgeSettings(method="offline", offline_version="offline-v2")
    ).scores
    assert {s.prompt_version for s in v3} == {"offline-v3/threshold=0.5"}
    assert {s.prompt_version for s in v2} == {"offline-v2/threshold=0.5"}
    shares = np.array([s.value for s in v2], dtype=float)
    np.testing.assert_allclose(
        [s.value for s in v3], DEFAULT_ANSWER_CALIBRATION.apply(shares), rtol=1e-9
    )
    assert [s.n_supported for s in v3] == [s.n_supported for s in v2]
    assert v3[0].value > v3[1].value


@pytest.mark.slow
@pytest.mark.shared_data
def test_the_committed_v3_fit_is_reproduced_from_the_human_ratings(
    shared_data: Path, benchmark: ModuleType
) -> None:
    """Re-run the fit and the cross-validation on ../shared/data/mtrag_faithfulness: the
    committed map and every committed figure come out again."""
    rated = benchmark.load_ratings(shared_data / "mtrag_faithfulness" / "calibration.jsonl")
    result = benchmark.evaluate(rated, benchmark.shares_of(rated))
    committed = fitted_parameters_v3()
    assert result["calibration"].intercept == pytest.approx(
        committed["answer_calibration"]["intercept"], abs=2e-3
    )
    assert result["calibration"].slope == pytest.approx(
        committed["answer_calibration"]["slope"], abs=2e-3
    )
    _assert_close(result["figures"], committed["cross_validated"])


def _assert_close(found: object, committed: object, where: str = "") -> None:
    if isinstance(committed, dict):
        assert isinstance(found, dict)
        assert set(found) == set(committed), where
        for key, value in committed.items():
            _assert_close(found[key], value, f"{where}/{key}")
    elif isinstance(committed, list):
        assert isinstance(found, list)
        assert len(found) == len(committed), where
        for index, (a, b) in enumerate(zip(found, committed, strict=True)):
            _assert_close(a, b, f"{where}[{index}]")
    else:
        assert found == pytest.approx(committed, abs=2e-3), where
