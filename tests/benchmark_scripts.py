"""The scripts of ``benchmarks/`` loaded as modules, for the tests that run them small or use
their helpers."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/NAME.py`` as a module, its ``main`` not run (registered in sys.modules
    under a name of its own: dataclasses look their module up there)."""
    spec = importlib.util.spec_from_file_location(
        f"evalkit_benchmark_{name}", BENCHMARKS / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
