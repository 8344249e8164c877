"""How long a user waits for evalkit's quick commands, against a bare Python start.

Named peer: ``python -c pass`` in the same venv, timed side by side in this run. Each
command is a whole process, as a user or CI runs it; the figure is the median of
``--repeat`` runs. Target (issue 16): ``evalkit --help`` and the start of ``evalkit score``
at most 0.3 s above the bare start. The start of a command is its ``--help`` (the command's
module loaded, its options parsed, nothing scored); the full ``score``, ``gate`` on files and
``runs list`` are printed beside it for what they cost in all.

Run: ``.venv/bin/python benchmarks/startup.py [--repeat 15]``.
"""

from __future__ import annotations

import argparse
import ast
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("torch", "sentence_transformers", "chromadb", "ragas", "evidently", "streamlit")


def timed(
    command: list[str], env: dict[str, str], repeat: int, expected: int = 0
) -> tuple[float, float]:
    """Median wall and CPU (user + system) seconds of ``command`` over ``repeat`` runs,
    after one warm-up. CPU time is what a loaded machine does not inflate. Every run must
    end with ``expected``: a command that fails early would otherwise time as fast."""
    subprocess.run(command, env=env, capture_output=True, check=False)
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, check=False)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if done.returncode != expected:
            raise SystemExit(
                f"{' '.join(command)} exited {done.returncode}, not {expected}: "
                f"{done.stderr.decode()[-2000:]}"
            )
    return statistics.median(walls), statistics.median(cpus)


def heavy_modules_loaded(args: list[str], env: dict[str, str]) -> list[str]:
    """Which heavy packages a command's process imported."""
    code = (
        "import sys, atexit\n"
        f"atexit.register(lambda: print('LOADED', [m for m in {HEAVY!r} if m in sys.modules],"
        " file=sys.stderr))\n"
        "from evalkit.cli import main\n"
        f"main({args!r})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    line = [text for text in done.stderr.splitlines() if text.startswith("LOADED")]
    return list(ast.literal_eval(line[-1].removeprefix("LOADED ")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="evalkit-startup-") as folder:
        measure(Path(folder), options.repeat)


def measure(work: Path, repeat: int) -> None:
    """Time every command with its store and files under ``work``; print the table."""
    env = {**os.environ, "EVALKIT_HOME": str(work / "home")}
    qrels, base, worse = work / "qrels.txt", work / "base.run", work / "worse.run"
    qrels.write_text("".join(f"q{q} 0 d{q}_{r} 1\n" for q in range(50) for r in (0, 1)))
    base.write_text("".join(f"q{q} Q0 d{q}_{r} {r + 1} 1 b\n" for q in range(50) for r in (0, 1)))
    worse.write_text("".join(f"q{q} Q0 x{q}_{r} {r + 1} 1 w\n" for q in range(50) for r in (0, 1)))
    evalkit = str(Path(sys.executable).with_name("evalkit"))
    subprocess.run([evalkit, "goldset", "import", str(Path(__file__).parents[1] / "goldsets/demo"),
                    "--name", "demo"], env=env, capture_output=True, check=True)  # fmt: skip
    commands = {
        "evalkit --help": ["--help"],
        "evalkit --version": ["--version"],
        "evalkit score --help (start)": ["score", "--help"],
        "evalkit gate --help (start)": ["gate", "--help"],
        "evalkit score (50 queries)": [
            "score",
            "--qrels",
            str(qrels),
            "--run",
            str(base),
            "-m",
            "ndcg@10",
        ],
        "evalkit gate on files": [
            "gate",
            "--baseline",
            str(base),
            "--candidate",
            str(worse),
            "--qrels",
            str(qrels),
            "-m",
            "ndcg@10",
        ],
        "evalkit runs list": ["runs", "list"],
        "evalkit goldset list": ["goldset", "list"],
    }
    bare_wall, bare_cpu = timed([sys.executable, "-c", "pass"], env, repeat)
    print(
        f"peer: python -c pass: {bare_wall:.3f} s wall, {bare_cpu:.3f} s CPU "
        f"(medians of {repeat}; target: quick commands at most +0.300 s)"
    )
    print(f"{'command':30} {'wall s':>7} {'above':>7} {'CPU s':>7} {'above':>7}  heavy loaded")
    for label, args in commands.items():
        # The candidate retrieves none of the judged documents: the gate fails it (exit 1).
        expected = 1 if label == "evalkit gate on files" else 0
        wall, cpu = timed([evalkit, *args], env, repeat, expected)
        loaded = ", ".join(heavy_modules_loaded(args, env)) or "none"
        print(
            f"{label:30} {wall:7.3f} {wall - bare_wall:+7.3f} {cpu:7.3f} "
            f"{cpu - bare_cpu:+7.3f}  {loaded}"
        )
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"load average (1, 5, 15 min): {load} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
