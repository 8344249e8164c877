"""Gate speed: compare_runs against ranx.compare on the same 10,000-query pair of runs.

Builds a synthetic qrels and two runs (100 documents per query), scores five measures per
query with ranx, then times

* evalkit: ``compare_runs`` on the per-query values (bootstrap CI + sign-flip test +
  Wilcoxon + Holm, 10,000 resamples, all five measures);
* ranx 0.3.21: ``ranx.compare(qrels, runs, metrics, stat_test="fisher",
  n_permutations=10_000)`` (its randomisation test) and ``stat_test="student"``; ranx
  also scores the runs inside ``compare``, so its scoring time is measured separately and
  subtracted to give the statistics-only time.

Each timing is the best of ``--repeats`` runs after a warm-up (ranx compiles with numba).

Then what a CI job waits for, each a whole process on the same runs written as TREC files
(the median of ``--repeats`` after a warm-up): ``evalkit gate --baseline FILE --candidate
FILE --qrels FILE`` with the five measures and ``--resamples``, against a bare script that
reads the three files with ranx and runs ``ranx.compare(stat_test="fisher")``; no ratio
is printed unless both processes report the same means (``--skip-command`` leaves this part
out).

    .venv/bin/python benchmarks/gate.py [--queries 10000] [--resamples 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from timing import best_time, cpu_time

from evalkit.stats import PairedTestSettings, compare_runs

MEASURES = ["ndcg@10", "recall@10", "precision@10", "mrr@10", "map@100"]
DEPTH = 100


def synthetic(n_queries: int, seed: int) -> tuple[Any, Any, Any]:
    """ranx Qrels and two Runs: the candidate is the baseline with mild rank noise."""
    from ranx import Qrels, Run

    rng = np.random.default_rng(seed)
    qrels: dict[str, dict[str, int]] = {}
    runs: list[dict[str, dict[str, float]]] = [{}, {}]
    scores = np.sort(rng.random(DEPTH))[::-1]
    for q in range(n_queries):
        qid = f"q{q}"
        relevant = rng.integers(1, 4)
        qrels[qid] = {f"d{q}_{r}": int(rng.integers(1, 3)) for r in range(relevant)}
        for run, spread in zip(runs, (8.0, 9.0), strict=True):
            ranks = np.minimum(rng.geometric(1.0 / spread, size=relevant) - 1, DEPTH - 1)
            order = [f"d{q}_x{i}" for i in range(DEPTH)]
            for r, rank in enumerate(ranks):
                order[rank] = f"d{q}_{r}"
            run[qid] = dict(zip(order, scores.tolist(), strict=True))
    return Qrels(qrels), Run(runs[0], name="baseline"), Run(runs[1], name="candidate")


RANX_SCRIPT = """
import json, sys
import ranx
qrels = ranx.Qrels.from_file(sys.argv[1], kind="trec")
runs = [ranx.Run.from_file(path, kind="trec") for path in sys.argv[2:4]]
runs[0].name, runs[1].name = "baseline", "candidate"
measures = json.loads(sys.argv[4])
report = ranx.compare(qrels, runs, measures, stat_test="fisher",
                      n_permutations=int(sys.argv[5]), max_p=0.05)
print(json.dumps({run: {m: report.results[run][m] for m in measures} for run in report.results}))
"""


def write_trec(qrels: Any, runs: list[Any], folder: Path) -> list[Path]:
    """The qrels and runs as TREC files (scores to the bit), for the whole commands."""
    qrels_path = folder / "qrels.txt"
    with qrels_path.open("w") as out:
        for query, judged in qrels.to_dict().items():
            out.writelines(f"{query} 0 {doc} {grade}\n" for doc, grade in judged.items())
    paths = [qrels_path]
    for run in runs:
        path = folder / f"{run.name}.run"
        with path.open("w") as out:
            for query, ranking in run.to_dict().items():
                ordered = sorted(ranking.items(), key=lambda item: -item[1])
                out.writelines(
                    f"{query} Q0 {doc} {rank} {score!r} {run.name}\n"
                    for rank, (doc, score) in enumerate(ordered, 1)
                )
        paths.append(path)
    return paths


def median_process(
    command: list[str], env: dict[str, str], repeats: int, codes: tuple[int, ...]
) -> tuple[float, float, str]:
    """Median wall and CPU (user + system) seconds of ``command`` as a whole process over
    ``repeats`` runs after a warm-up (numba's cache, the page cache), and its output; it
    must exit with ``codes``."""
    times, cpus, out = [], [], ""
    for attempt in range(repeats + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if attempt:
            times.append(time.perf_counter() - began)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if done.returncode not in codes:
            sys.exit(f"{' '.join(command[:3])} ... exited {done.returncode}:\n{done.stderr}")
        out = done.stdout
    return statistics.median(times), statistics.median(cpus), out


def whole_commands(qrels: Any, runs: list[Any], resamples: int, repeats: int) -> None:
    """Time ``evalkit gate`` on TREC files against a bare ranx script on the same files,
    after checking that both see the same means."""
    with tempfile.TemporaryDirectory(prefix="evalkit-gate-bench-") as folder:
        qrels_path, baseline, candidate = write_trec(qrels, runs, Path(folder))
        env = {**os.environ, "EVALKIT_HOME": str(Path(folder) / "home")}
        measures = [option for m in MEASURES for option in ("-m", m)]
        gate = [str(Path(sys.executable).with_name("evalkit")), "gate"]
        gate += ["--baseline", str(baseline), "--candidate", str(candidate)]
        gate += ["--qrels", str(qrels_path), *measures, "--resamples", str(resamples)]
        gate += ["--min-effect", "0.01", "--format", "json"]
        peer = [sys.executable, "-c", RANX_SCRIPT, str(qrels_path), str(baseline)]
        peer += [str(candidate), json.dumps(MEASURES), str(resamples)]
        ours, ours_cpu, ours_out = median_process(gate, env, repeats, (0, 1, 4))
        theirs, theirs_cpu, theirs_out = median_process(peer, env, repeats, (0,))
    verdict = json.loads(ours_out)
    means = json.loads(theirs_out)
    worst = max(
        abs(verdict["metrics"][m][f"{side}_mean"] - means[side][m])
        for m in MEASURES
        for side in ("baseline", "candidate")
    )
    print(
        f"  whole commands on TREC files (median of {repeats} after a warm-up; "
        f"largest difference of the means {worst:.1e}):"
    )
    if worst > 1e-9:
        sys.exit("  the two processes disagree on the means: the timing compares nothing")
    print(f"    evalkit gate: {ours:.2f} s (CPU {ours_cpu:.2f} s; {verdict['decision']})")
    print(f"    bare script, ranx read + compare fisher: {theirs:.2f} s (CPU {theirs_cpu:.2f} s)")
    print(
        f"    ratio ranx script / evalkit gate: {theirs / ours:.1f}x "
        f"(CPU {theirs_cpu / ours_cpu:.1f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-command", action="store_true", help="only the library calls")
    args = parser.parse_args()

    import ranx

    qrels, baseline_run, candidate_run = synthetic(args.queries, seed=0)
    per_query = [
        pd.DataFrame(
            ranx.evaluate(qrels, run, MEASURES, return_mean=False),
            index=pd.Index(list(qrels.keys()), name="query_id"),
        )
        for run in (baseline_run, candidate_run)
    ]

    def evalkit_gate() -> object:
        test = PairedTestSettings(resamples=args.resamples, min_effect=0.01)
        return compare_runs(per_query[0], per_query[1], test)

    def ranx_compare(test: str) -> object:
        return ranx.compare(
            qrels,
            [baseline_run, candidate_run],
            MEASURES,
            stat_test=test,
            n_permutations=args.resamples,
            max_p=0.05,
        )

    def ranx_scoring() -> object:
        return [
            ranx.evaluate(qrels, run, MEASURES, return_mean=False)
            for run in (baseline_run, candidate_run)
        ]

    load = os.getloadavg()[0]
    small_qrels, small_a, small_b = synthetic(50, seed=1)
    ranx.compare(small_qrels, [small_a, small_b], MEASURES, stat_test="fisher", n_permutations=10)
    evalkit_gate()

    ours = best_time(evalkit_gate, args.repeats)
    ours_cpu = cpu_time(evalkit_gate)
    fisher_cpu = cpu_time(lambda: ranx_compare("fisher"))
    scoring = best_time(ranx_scoring, args.repeats)
    fisher = best_time(lambda: ranx_compare("fisher"), args.repeats)
    student = best_time(lambda: ranx_compare("student"), args.repeats)
    result = evalkit_gate()

    print(
        f"{args.queries:,} queries x {len(MEASURES)} measures, {args.resamples:,} resamples "
        f"(best of {args.repeats})"
    )
    print(f"  load average before timing: {load:.1f} (on {os.cpu_count()} cores)")
    print(
        f"  evalkit compare_runs (bootstrap + sign-flip + Wilcoxon + Holm): {ours:.3f} s "
        f"(CPU {ours_cpu:.3f} s)"
    )
    print(
        f"  ranx.compare stat_test='fisher' ({args.resamples:,} permutations): {fisher:.3f} s "
        f"(CPU {fisher_cpu:.3f} s)"
    )
    print(f"      of which scoring (ranx.evaluate x 2): {scoring:.3f} s")
    print(f"      statistics only: {fisher - scoring:.3f} s")
    print(f"  ranx.compare stat_test='student': {student:.3f} s")
    print(
        f"  ratio ranx fisher / evalkit: {fisher / ours:.1f}x (statistics only: "
        f"{(fisher - scoring) / ours:.1f}x)"
    )
    print(
        f"  evalkit verdict: {result.decision.value}; "
        + ", ".join(f"{m.measure} {m.delta:+.4f} p={m.p_adjusted:.2g}" for m in result.metrics)
    )
    if not args.skip_command:
        whole_commands(qrels, [baseline_run, candidate_run], args.resamples, args.repeats)


if __name__ == "__main__":
    main()
