"""Configuration sweeps, ``evalkit sweep`` (docs/sweeps.md): ``load_sweep`` reads and checks a
sweep file, ``check_sweep`` checks it against its retriever, ``run_sweep`` runs the points
without a complete run yet (found by their ``sweep-point:HASH`` tag, ``earlier_runs``) and
returns a ``SweepOutcome``; ``pareto_front`` is the pure front of quality against a cost.
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
