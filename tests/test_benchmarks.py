"""The benchmarks against today's evalkit: every name a script imports from evalkit still
exists (mypy checks evalkit, not benchmarks/), and metrics_throughput.py and fusion.py, run
small, fail when their peers compute other numbers instead of printing speed-ups over them;
dashboard.py's pandas peer does the Quality page's aggregation, no more."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from benchmark_scripts import BENCHMARKS, load_benchmark


def evalkit_imports(script: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, name) of each import from evalkit in ``script``, at any depth (most
    scripts import inside ``main``); name is None for ``import evalkit.x``."""
    found: list[tuple[int, str, str | None]] = []
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "evalkit":
                found += [(node.lineno, node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, alias.name, None)
                for alias in node.names
                if alias.name.split(".")[0] == "evalkit"
            ]
    return found


def missing(module_name: str, name: str | None) -> bool:
    """Whether ``from module_name import name`` (or ``import module_name``) would fail."""
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return True
    if name is None or hasattr(module, name):
        return False
    try:
        importlib.import_module(f"{module_name}.{name}")
    except ImportError:
        return True
    return False


# Slow: the scripts import every adapter's framework (LangChain, LlamaIndex, Qdrant...).
@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(BENCHMARKS.glob("*.py")), ids=lambda path: path.name)
def test_every_name_a_benchmark_imports_from_evalkit_exists(script: Path) -> None:
    gone = [
        f"{script.name}:{line}: {module}" + (f".{name}" if name else "")
        for line, module, name in evalkit_imports(script)
        if missing(module, name)
    ]
    assert gone == []


METRICS_THROUGHPUT = """
import runpy, sys
import ranx

evaluate = ranx.evaluate
if sys.argv[1] == "off":
    ranx.evaluate = lambda *args, **kwargs: {
        name: value + 0.01 for name, value in evaluate(*args, **kwargs).items()
    }
sys.argv = [sys.argv[2], "--queries", "200", "--repeats", "1"]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
"""metrics_throughput.py on 200 queries, one repeat, with ranx as it is or off by a hundredth
(ranx runs without numba here)."""


def run_metrics_throughput(ranx_means: str) -> subprocess.CompletedProcess[str]:
    """The script in a process of its own, as it is run: its memory column turns on
    tracemalloc, which hooks the allocations of every thread of the process, and a test
    worker has the native threads of the libraries earlier tests used (it crashed one)."""
    pytest.importorskip("pytrec_eval")
    pytest.importorskip("ranx")
    script = str(BENCHMARKS / "metrics_throughput.py")
    return subprocess.run(
        [sys.executable, "-c", METRICS_THROUGHPUT, ranx_means, script],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_metrics_throughput_runs_and_its_contenders_agree() -> None:
    done = run_metrics_throughput("as-is")
    assert done.returncode == 0, done.stderr
    assert "largest difference from pytrec_eval: 0.0e+00 (all agree)" in done.stdout
    assert "evalkit: arrays, evaluate vs pytrec_eval: dict, evaluate" in done.stdout


@pytest.mark.slow
def test_metrics_throughput_fails_when_a_peer_computes_other_means() -> None:
    done = run_metrics_throughput("off")
    assert done.returncode == 1, done.stderr
    assert "(DISAGREE)" in done.stdout


@pytest.fixture
def fusion(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """fusion.py on 5 runs of 200 queries, one repeat (``timing`` importable as when the
    script runs from benchmarks/)."""
    pytest.importorskip("ranx")
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setattr(sys, "argv", ["fusion.py", "--queries", "200", "--repeats", "1"])
    return load_benchmark("fusion")


@pytest.mark.slow
def test_fusion_runs_and_fuses_to_ranx_scores(
    fusion: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fusion.main() == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [row[-1] for row in rows if row[0] in ("rrf", "wsum,")] == ["0.0e+00", "0.0e+00"]


@pytest.mark.slow
def test_fusion_fails_when_ranx_fuses_to_other_scores(
    fusion: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import ranx

    fuse = ranx.fuse

    class Shifted:
        def __init__(self, run: Any) -> None:
            self.run = run

        def __getitem__(self, query: str) -> dict[str, float]:
            return {doc: score + 0.01 for doc, score in dict(self.run[query]).items()}

    monkeypatch.setattr(ranx, "fuse", lambda *args, **kwargs: Shifted(fuse(*args, **kwargs)))
    assert fusion.main() == 1
    assert "the fused scores differ from ranx's (up to 1.0e-02)" in capsys.readouterr().out


@pytest.mark.slow
def test_dashboard_pandas_peer_computes_what_the_quality_query_does(tmp_path: Path) -> None:
    """The Quality page's peer aggregates the same rows to the same per-run spread as the
    page's DuckDB query, reading the measure's rows only (not every measure's and column)."""
    module = load_benchmark("dashboard")
    path = tmp_path / "evalkit.duckdb"
    module.seed(path, runs_per_series=3)
    with module.Store.open(path, read_only=True) as store:
        ours = module.duckdb_series(store, "gold0")
        theirs = module.pandas_peer(store, "gold0")
    assert len(theirs) == len(ours) > 0
    assert module.same_spread(ours, theirs)
    assert not module.same_spread(ours, theirs.assign(sd=theirs["sd"] + 0.01))
