"""The default detector on real query embeddings: false alarms and power (../shared/data).

A smaller version of benchmarks/drift_calibration.py: SciFact queries split into disjoint
random halves give no-drift window pairs; SciFact against Vaswani topics gives a domain
change. Both are embedded with evalkit's default model.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from evalkit.drift import DEFAULT_METHOD, make_detector

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]

ALPHA = 0.05
WINDOW = 200
NO_DRIFT_TRIALS = 150
POWER_TRIALS = 20


@pytest.fixture(autouse=True)
def _single_thread_blas() -> Iterator[None]:
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def query_embeddings(shared_data: Path) -> tuple[np.ndarray, np.ndarray]:
    from evalkit.embedding import load_embedder

    with (shared_data / "beir_scifact" / "queries.jsonl").open(encoding="utf-8") as handle:
        scifact = [json.loads(line)["text"] for line in handle if line.strip()]
    topics_file = shared_data / "vaswani_npl" / "tests" / "fixtures" / "vaswani_npl"
    topics = re.findall(
        r"<title>(.*?)</title>",
        (topics_file / "query-text.trec").read_text(encoding="utf-8", errors="replace"),
        flags=re.DOTALL,
    )
    embedder = load_embedder()
    return embedder.embed(scifact), embedder.embed([" ".join(t.split()) for t in topics])


def test_default_method_false_alarm_rate_on_split_halves_of_scifact(
    query_embeddings: tuple[np.ndarray, np.ndarray],
) -> None:
    scifact, _ = query_embeddings
    assert scifact.shape == (1109, 384)
    alarms = 0
    for trial in range(NO_DRIFT_TRIALS):
        rng = np.random.default_rng([20, trial])
        order = rng.permutation(scifact.shape[0])
        first, second = order[: scifact.shape[0] // 2], order[scifact.shape[0] // 2 :]
        reference = scifact[rng.choice(first, WINDOW, replace=False)]
        current = scifact[rng.choice(second, WINDOW, replace=False)]
        detector = make_detector(DEFAULT_METHOD, alpha=ALPHA, seed=trial)
        alarms += detector.fit(reference).test(current).is_drift
    # alpha plus three Monte-Carlo standard deviations at this trial count (0.103).
    bound = ALPHA + 3.0 * math.sqrt(ALPHA * (1.0 - ALPHA) / NO_DRIFT_TRIALS)
    assert alarms / NO_DRIFT_TRIALS <= bound


def test_default_method_detects_scifact_against_vaswani(
    query_embeddings: tuple[np.ndarray, np.ndarray],
) -> None:
    scifact, vaswani = query_embeddings
    assert vaswani.shape == (93, 384)
    detections = 0
    for trial in range(POWER_TRIALS):
        rng = np.random.default_rng([21, trial])
        reference = scifact[rng.choice(scifact.shape[0], WINDOW, replace=False)]
        # Vaswani has 93 topics: the current window uses each once.
        current = vaswani[rng.permutation(vaswani.shape[0])]
        result = make_detector(DEFAULT_METHOD, seed=trial).fit(reference).test(current)
        detections += result.is_drift
    assert detections == POWER_TRIALS
