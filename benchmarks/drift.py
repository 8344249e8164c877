"""Time evalkit's default drift test against Evidently's default embedding drift method.

Both run on the same two 5,000 x 384 windows of unit vectors (the shape of
all-MiniLM-L6-v2 embeddings), interleaved, in one process:

* evalkit: ``make_detector(DEFAULT_METHOD).fit(reference).test(current)``, p-value included;
* Evidently 0.7.23: ``EmbeddingsDriftMetric``'s default method for windows of 1,000 rows or
  more, ``model(bootstrap=False)`` (a 50/50 split, an SGD logistic classifier, ROC AUC
  against a fixed 0.55 threshold, no p-value), called directly on two DataFrames.

Prints the median and best wall time of each, their ratio, and the peak traced memory
(tracemalloc) of one call. Run twice: a no-drift pair and a drifted pair.

    .venv/bin/python benchmarks/drift.py --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evalkit.drift import DEFAULT_METHOD, make_detector  # noqa: E402


def embedding_like(rng: np.random.Generator, n: int, centre: np.ndarray) -> np.ndarray:
    """Unit vectors scattered around a shared direction, as sentence embeddings are."""
    vectors = centre + rng.standard_normal((n, centre.size)) / np.sqrt(centre.size) * 1.2
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def windows(n: int, dimension: int, drift: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A reference window and a current one (same distribution, or a tilted centre)."""
    rng = np.random.default_rng(seed)
    centre = rng.standard_normal(dimension)
    centre /= np.linalg.norm(centre)
    tilted = centre.copy()
    if drift:
        tilted += 0.25 * rng.standard_normal(dimension) / np.sqrt(dimension)
        tilted /= np.linalg.norm(tilted)
    return embedding_like(rng, n, centre), embedding_like(rng, n, tilted)


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds and result of one call."""
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def peak_memory(call: Callable[[], Any]) -> float:
    """Peak traced allocation (MiB) during one call."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    call()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    """Time both methods on a no-drift and a drifted pair and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=7)
    arguments = parser.parse_args()

    from evidently import __version__ as evidently_version
    from evidently.legacy.metrics.data_drift.embedding_drift_methods import model

    print(
        f"{arguments.n} x {arguments.dimension} vs {arguments.n} x {arguments.dimension}; "
        f"evalkit method {DEFAULT_METHOD!r}; evidently {evidently_version} model(bootstrap=False)"
    )
    for drift in (False, True):
        reference, current = windows(arguments.n, arguments.dimension, drift)
        reference_frame = pd.DataFrame(reference)
        current_frame = pd.DataFrame(current)

        def run_evalkit(reference: np.ndarray = reference, current: np.ndarray = current) -> Any:
            return make_detector(DEFAULT_METHOD).fit(reference).test(current)

        def run_evidently(
            reference: pd.DataFrame = reference_frame, current: pd.DataFrame = current_frame
        ) -> Any:
            # The method adds a "target" column to its inputs, so it gets fresh copies.
            return model(bootstrap=False)(current.copy(), reference.copy())

        run_evalkit()
        run_evidently()
        evalkit_times: list[float] = []
        evidently_times: list[float] = []
        for _ in range(arguments.repeats):
            seconds, evalkit_result = timed(run_evalkit)
            evalkit_times.append(seconds)
            seconds, evidently_result = timed(run_evidently)
            evidently_times.append(seconds)
        evalkit_median = statistics.median(evalkit_times)
        evidently_median = statistics.median(evidently_times)
        print(f"\n{'drifted' if drift else 'no drift'} pair")
        print(
            f"  evalkit   {1000 * evalkit_median:8.1f} ms median, "
            f"{1000 * min(evalkit_times):8.1f} ms best, peak {peak_memory(run_evalkit):6.1f} MiB"
            f" -> p={evalkit_result.p_value:.4g}"
            f" drift={evalkit_result.is_drift} ({dict(evalkit_result.details)})"
        )
        print(
            f"  evidently {1000 * evidently_median:8.1f} ms median, "
            f"{1000 * min(evidently_times):8.1f} ms best, peak "
            f"{peak_memory(run_evidently):6.1f} MiB -> AUC={evidently_result[0]:.4f}"
            f" drift={evidently_result[1]}"
        )
        print(
            f"  speed-up (evidently / evalkit): {evidently_median / evalkit_median:.1f}x median, "
            f"{min(evidently_times) / min(evalkit_times):.1f}x best"
        )


if __name__ == "__main__":
    main()
