"""What a measure is called and how it is explained comes from its registration alone: the
dashboard's query page and the leaderboard's LaTeX header read it, and a measure evalkit
does not register is an error there, never a guess."""

from __future__ import annotations

import pandas as pd
import pytest

from evalkit.dashboard.loaders.query import explain_measure
from evalkit.errors import MeasureError
from evalkit.metrics.measures import MEASURES, Cutoff, QueryEvidence, parse_measure
from evalkit.stats import leaderboard_latex
from evalkit.stats.leaderboard import leaderboard


def _runs(measure: str) -> dict[str, pd.DataFrame]:
    index = pd.Index([f"q{i}" for i in range(8)], name="query_id")
    return {
        "a": pd.DataFrame({measure: [0.1, 0.4, 0.3, 0.5, 0.2, 0.6, 0.3, 0.4]}, index=index),
        "b": pd.DataFrame({measure: [0.3, 0.5, 0.4, 0.7, 0.2, 0.8, 0.5, 0.6]}, index=index),
    }


@pytest.mark.parametrize("name", sorted(MEASURES))
def test_every_measure_is_explained_and_labelled_by_its_registration(name: str) -> None:
    definition = MEASURES[name]
    measure = name if definition.cutoff is Cutoff.NONE else f"{name}@5"
    evidence = QueryEvidence(
        found=(2, 4), relevant_ranks=(2, 4, 9), grades_by_rank={2: 1, 4: 2}, n_relevant=3, cutoff=5
    )
    told = explain_measure(
        measure, relevant_ranks=[2, 4, 9], grades_by_rank={2: 1, 4: 2}, n_relevant=3, depth=100
    )
    assert told == definition.explain(evidence)
    assert definition.label.strip()
    latex = leaderboard_latex(leaderboard(_runs(measure), [measure]))
    cutoff = parse_measure(measure).cutoff
    shown = definition.label + (f"@{cutoff}" if cutoff else "")
    assert f"\\textbf{{{shown}}}" in latex


def test_a_measure_evalkit_does_not_register_is_an_error_not_a_guess() -> None:
    board = leaderboard(_runs("bleu@5"), ["bleu@5"])
    with pytest.raises(MeasureError, match="bleu@5"):
        leaderboard_latex(board)
    with pytest.raises(MeasureError, match="bleu@5"):
        explain_measure("bleu@5", relevant_ranks=[1], grades_by_rank={1: 1}, n_relevant=1, depth=10)
