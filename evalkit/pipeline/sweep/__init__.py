"""Configuration sweeps: ``evalkit sweep sweep.toml`` runs a grid (or a list) of retriever
settings against one goldset, each point a normal stored goldset run, then ranks them.

A sweep file names the goldset, the measures, the base retriever and the settings that
vary (``k``, a named query embedder, the collection, the store's search settings
``ef_search`` and ``probes``, a factory's ``options.NAME``), as a ``[grid]`` of every
combination or a list of ``[[points]]`` (docs/sweeps.md). ``load_sweep`` reads and checks
it; ``check_sweep`` checks it against the retriever it will run on; ``run_sweep`` runs
what is missing and returns a ``SweepOutcome``; ``pareto_front`` is the pure front of
quality against a cost.

Every point's run is tagged ``sweep:NAME``, ``sweep-point:HASH`` and one tag per setting
(``k=20``, ``ef_search=64``), and labelled with its settings. The hash is of what the
file and the settings say makes the point's figures (the sweep's name, the goldset version,
the measures, the relevance threshold and query batch size, the base retriever and the
``[retriever]`` settings, the point's settings and its embedder's definition), so a sweep
run again finds the points that already have a complete run and runs only the others;
a run whose index has changed since (by its index fingerprint) is not reused
(``earlier_runs``).
"""

from evalkit.pipeline.sweep.file import (
    MAX_POINTS,
    SWEEP_KEYS,
    Sweep,
    SweepPoint,
    load_sweep,
)
from evalkit.pipeline.sweep.points import check_sweep
from evalkit.pipeline.sweep.reuse import PointRerun
from evalkit.pipeline.sweep.run import (
    PointResult,
    SweepOutcome,
    SweepPlan,
    SweepProgress,
    pareto_front,
    read_sweep_file,
    run_sweep,
    run_sweep_file,
)

__all__ = [
    "MAX_POINTS",
    "SWEEP_KEYS",
    "PointRerun",
    "PointResult",
    "Sweep",
    "SweepOutcome",
    "SweepPlan",
    "SweepPoint",
    "SweepProgress",
    "check_sweep",
    "load_sweep",
    "pareto_front",
    "read_sweep_file",
    "run_sweep",
    "run_sweep_file",
]
