"""Time evalkit's default drift test against Evidently's default embedding drift method.

Both run on the same two 5,000 x 384 windows of unit vectors (the shape of
all-MiniLM-L6-v2 embeddings), interleaved, in one process:

* evalkit: ``make_detector(DEFAULT_METHOD).fit(reference).test(current)``, p-value included
  (``auto``, which at this size runs ``moments``; ``--method mmd`` times MMD with random
  Fourier features instead);
* Evidently 0.7.23: ``EmbeddingsDriftMetric``'s default method for windows of 1,000 rows or
  more, ``model(bootstrap=False)`` (a 50/50 split, an SGD logistic classifier, ROC AUC
  against a fixed 0.55 threshold, no p-value), called directly on two DataFrames.

Prints, for a no-drift pair and a drifted pair: the median and best wall time of each, the
median CPU time of the process (less sensitive to other load on the machine; counts every
BLAS thread), their ratios, and the peak traced memory (tracemalloc) of one call. The
machine's load average is printed alongside: on a busy machine wall times mean little.

    .venv/bin/python benchmarks/drift.py --repeats 7
    .venv/bin/python benchmarks/drift.py --threads 1 --calibration-trials 300
    .venv/bin/python benchmarks/drift.py --repeats 0 --power-trials 40 --power-tilt 0.015 \
        --settings '{"n_frequencies": 128}'

``--repeats 0`` skips the timing comparison. ``--report-api`` also times Evidently's
``EmbeddingsDrift`` metric run the way its users run it, through ``Report.run`` over two
``Dataset``s (the same default method plus Evidently's dataset handling), once per pair:
it takes tens of seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evalkit.drift import DEFAULT_METHOD, make_detector  # noqa: E402


def embedding_like(rng: np.random.Generator, n: int, centre: np.ndarray) -> np.ndarray:
    """Unit vectors scattered around a shared direction, as sentence embeddings are."""
    vectors = centre + rng.standard_normal((n, centre.size)) / np.sqrt(centre.size) * 1.2
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def windows(
    n: int, dimension: int, drift: bool, seed: int = 0, tilt: float = 0.25
) -> tuple[np.ndarray, np.ndarray]:
    """A reference window and a current one (same distribution, or a centre tilted by
    ``tilt`` times a random unit-scale direction)."""
    rng = np.random.default_rng(seed)
    centre = rng.standard_normal(dimension)
    centre /= np.linalg.norm(centre)
    tilted = centre.copy()
    if drift:
        tilted += tilt * rng.standard_normal(dimension) / np.sqrt(dimension)
        tilted /= np.linalg.norm(tilted)
    return embedding_like(rng, n, centre), embedding_like(rng, n, tilted)


def timed(call: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds, CPU seconds and result of one call."""
    start, start_cpu = time.perf_counter(), time.process_time()
    result = call()
    return time.perf_counter() - start, time.process_time() - start_cpu, result


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
    parser.add_argument("--repeats", type=int, default=7, help="0 skips the timing comparison")
    parser.add_argument(
        "--threads", type=int, default=None, help="cap BLAS/OpenMP threads for both (default: none)"
    )
    parser.add_argument("--method", default=DEFAULT_METHOD, help="evalkit method to time")
    parser.add_argument(
        "--settings",
        type=json.loads,
        default={},
        help="evalkit detector settings, e.g. '{\"n_frequencies\": 32}'",
    )
    parser.add_argument(
        "--calibration-trials",
        type=int,
        default=0,
        help="also measure the false-alarm rate on this many seeded no-drift pairs of size --n",
    )
    parser.add_argument(
        "--power-trials", type=int, default=0, help="also measure power on this many pairs"
    )
    parser.add_argument("--power-tilt", type=float, default=0.015)
    parser.add_argument(
        "--report-api",
        action="store_true",
        help="also time Evidently's EmbeddingsDrift through Report.run (slow)",
    )
    arguments = parser.parse_args()
    with threadpool_limits(arguments.threads):
        if arguments.repeats:
            compare(arguments)
        if arguments.calibration_trials:
            calibrate(arguments)
        if arguments.power_trials:
            detection_rate(arguments)


def detection_rate(arguments: argparse.Namespace) -> None:
    """Share of slightly tilted pairs of size --n that the default method flags."""
    hits = 0
    for trial in range(arguments.power_trials):
        reference, current = windows(
            arguments.n, arguments.dimension, True, seed=20_000 + trial, tilt=arguments.power_tilt
        )
        detector = make_detector(arguments.method, seed=trial, **arguments.settings)
        hits += detector.fit(reference).test(current).is_drift
    print(
        f"\npower, {arguments.power_trials} pairs of {arguments.n} with tilt "
        f"{arguments.power_tilt} ({arguments.settings or 'defaults'}): "
        f"{hits / arguments.power_trials:.3f} flagged"
    )


def calibrate(arguments: argparse.Namespace) -> None:
    """False-alarm rate and p-value uniformity of the default method at window size --n."""
    from scipy.stats import kstest

    p_values = []
    for trial in range(arguments.calibration_trials):
        reference, current = windows(arguments.n, arguments.dimension, False, seed=10_000 + trial)
        detector = make_detector(arguments.method, seed=trial, **arguments.settings)
        p_values.append(detector.fit(reference).test(current).p_value)
    rate = float(np.mean(np.array(p_values) <= 0.05))
    sd = (0.05 * 0.95 / len(p_values)) ** 0.5
    print(
        f"\nno-drift calibration, {len(p_values)} pairs of {arguments.n}: false-alarm rate "
        f"{rate:.3f} at alpha 0.05 (Monte-Carlo sd {sd:.3f}); KS test of p-value "
        f"uniformity p = {kstest(p_values, 'uniform').pvalue:.3f}"
    )


def compare(arguments: argparse.Namespace) -> None:
    """Run the comparison for a no-drift and a drifted pair."""

    from evidently import __version__ as evidently_version
    from evidently.legacy.metrics.data_drift.embedding_drift_methods import model

    settings = dict(arguments.settings)
    print(
        f"{arguments.n} x {arguments.dimension} vs {arguments.n} x {arguments.dimension}; "
        f"evalkit method {arguments.method!r} {settings}; evidently {evidently_version} "
        f"model(bootstrap=False); BLAS threads: {arguments.threads or 'default'}"
    )
    for drift in (False, True):
        reference, current = windows(arguments.n, arguments.dimension, drift)
        reference_frame = pd.DataFrame(reference)
        current_frame = pd.DataFrame(current)

        def run_evalkit(reference: np.ndarray = reference, current: np.ndarray = current) -> Any:
            return make_detector(arguments.method, **settings).fit(reference).test(current)

        def run_evidently(
            reference: pd.DataFrame = reference_frame, current: pd.DataFrame = current_frame
        ) -> Any:
            # The method adds a "target" column to its inputs, so it gets fresh copies.
            return model(bootstrap=False)(current.copy(), reference.copy())

        run_evalkit()
        run_evidently()
        evalkit_times: list[float] = []
        evidently_times: list[float] = []
        evalkit_cpu: list[float] = []
        evidently_cpu: list[float] = []
        for _ in range(arguments.repeats):
            seconds, cpu, evalkit_result = timed(run_evalkit)
            evalkit_times.append(seconds)
            evalkit_cpu.append(cpu)
            seconds, cpu, evidently_result = timed(run_evidently)
            evidently_times.append(seconds)
            evidently_cpu.append(cpu)
        evalkit_median = statistics.median(evalkit_times)
        evidently_median = statistics.median(evidently_times)
        print(
            f"\n{'drifted' if drift else 'no drift'} pair "
            f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
        )
        print(
            f"  evalkit   {1000 * evalkit_median:8.1f} ms median, "
            f"{1000 * min(evalkit_times):8.1f} ms best, peak {peak_memory(run_evalkit):6.1f} MiB"
            f" -> {evalkit_result.method} p={evalkit_result.p_value:.4g}"
            f" drift={evalkit_result.is_drift} ({dict(evalkit_result.details)})"
        )
        print(
            f"  evidently {1000 * evidently_median:8.1f} ms median, "
            f"{1000 * min(evidently_times):8.1f} ms best, peak "
            f"{peak_memory(run_evidently):6.1f} MiB -> AUC={evidently_result[0]:.4f}"
            f" drift={evidently_result[1]}"
        )
        print(
            f"  CPU time: evalkit {1000 * statistics.median(evalkit_cpu):.1f} ms, evidently "
            f"{1000 * statistics.median(evidently_cpu):.1f} ms (medians)"
        )
        print(
            f"  speed-up (evidently / evalkit): {evidently_median / evalkit_median:.1f}x median "
            f"wall, {min(evidently_times) / min(evalkit_times):.1f}x best wall, "
            f"{statistics.median(evidently_cpu) / statistics.median(evalkit_cpu):.1f}x CPU"
        )
        if arguments.report_api:
            seconds, cpu, value = timed(partial(evidently_report, reference, current))
            print(
                f"  evidently Report.run(EmbeddingsDrift) {1000 * seconds:8.1f} ms wall, "
                f"{1000 * cpu:.1f} ms CPU -> AUC={value:.4f}; speed-up "
                f"{seconds / evalkit_median:.0f}x wall (against evalkit's median)"
            )


def evidently_report(reference: np.ndarray, current: np.ndarray) -> float:
    """Evidently's EmbeddingsDrift (default method) through its public Report API."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import EmbeddingsDrift

    columns = [f"e{index}" for index in range(reference.shape[1])]
    definition = DataDefinition(numerical_columns=columns, embeddings={"e": columns})
    snapshot = Report([EmbeddingsDrift(embeddings_name="e")]).run(
        current_data=Dataset.from_pandas(
            pd.DataFrame(current, columns=columns), data_definition=definition
        ),
        reference_data=Dataset.from_pandas(
            pd.DataFrame(reference, columns=columns), data_definition=definition
        ),
    )
    return float(snapshot.dict()["metrics"][0]["value"])


if __name__ == "__main__":
    main()
