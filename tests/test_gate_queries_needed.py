"""An inconclusive gate says which effect its "queries needed" is for, and gives the figure
for the drop it observed too: a drop of 0.4 seen on three queries needs a handful more
queries to confirm, not the thousand that a min effect of 0.01 asks for."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_cli_gate import run_files, write_qrels, write_run

from evalkit.cli import invoke
from evalkit.stats import Comparison, Decision, PairedTestSettings, compare_runs, queries_needed
from evalkit.stats.render import to_markdown

LEVEL = 0.025
"""The one-sided level the gate sizes at: (1 - confidence) / 2."""


def drop_of_04_on_three_queries(*, min_effect: float) -> Comparison:
    """The gate's comparison of three queries' ndcg@10 that each dropped (by 0.4 on average)."""
    baseline = pd.DataFrame({"ndcg@10": [0.9, 0.8, 0.95]}, index=["q1", "q2", "q3"])
    candidate = pd.DataFrame({"ndcg@10": [0.2, 0.7, 0.55]}, index=["q1", "q2", "q3"])
    return compare_runs(
        baseline, candidate, PairedTestSettings(min_effect=min_effect, resamples=2000)
    )


def test_the_figure_names_its_effect_and_the_observed_one_has_its_own() -> None:
    result = drop_of_04_on_three_queries(min_effect=0.01)
    metric = result.metric("ndcg@10")
    assert metric.decision is Decision.INCONCLUSIVE
    observed = abs(metric.delta)
    assert observed == pytest.approx(0.4)
    assert metric.queries_needed == queries_needed(metric.sd_diff, 0.01, alpha=LEVEL)
    assert metric.queries_needed_effect == 0.01
    assert metric.queries_needed_observed == queries_needed(metric.sd_diff, observed, alpha=LEVEL)
    assert metric.queries_needed_observed < 10 < metric.queries_needed
    assert "min_effect 0.01" in metric.queries_needed_note
    assert f"{metric.queries_needed_observed} one of the observed |delta| 0.4" in (
        metric.queries_needed_note
    )
    data = metric.to_dict()
    assert data["queries_needed_effect"] == 0.01
    assert data["queries_needed_observed"] == metric.queries_needed_observed


def test_without_a_min_effect_the_observed_effect_is_the_one_sized() -> None:
    rng = np.random.default_rng(3)
    baseline = pd.DataFrame({"mrr": rng.uniform(0.3, 0.9, 6)})
    candidate = baseline - 0.05 + rng.normal(0.0, 0.2, (6, 1))
    metric = compare_runs(
        baseline, candidate, PairedTestSettings(min_effect=0.0, resamples=1000)
    ).metric("mrr")
    assert metric.decision is Decision.INCONCLUSIVE
    assert metric.queries_needed_effect == pytest.approx(abs(metric.delta))
    assert metric.queries_needed_observed == metric.queries_needed


def test_a_comparison_that_decides_sizes_nothing() -> None:
    same = pd.DataFrame({"mrr": [0.5, 0.7, 0.9]})
    metric = compare_runs(same, same, PairedTestSettings(resamples=200)).metric("mrr")
    assert (metric.queries_needed, metric.queries_needed_effect) == (None, None)
    assert metric.queries_needed_observed is None


@pytest.fixture
def files(tmp_path: Path, evalkit_home: Path) -> Path:
    write_qrels(tmp_path / "qrels", 3)
    write_run(tmp_path / "base.run", 3, seed=1)
    write_run(tmp_path / "cand.run", 3, seed=1, drop={0, 1})
    return tmp_path


def _gate(files: Path, *extra: str) -> int:
    return invoke(
        [
            "gate",
            *run_files(files),
            "-m",
            "ndcg@10",
            "--min-effect",
            "0.01",
            "--resamples",
            "2000",
            *extra,
        ]
    )


def test_gate_json_table_and_markdown_give_both_figures(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _gate(files, "--format", "json") == 4
    metric = json.loads(capsys.readouterr().out)["metrics"]["ndcg@10"]
    assert metric["decision"] == "inconclusive"
    assert metric["delta"] < -0.2
    needed, observed = metric["queries_needed"], metric["queries_needed_observed"]
    assert needed == queries_needed(metric["sd_diff"], 0.01, alpha=LEVEL)
    assert observed == queries_needed(metric["sd_diff"], abs(metric["delta"]), alpha=LEVEL)
    assert metric["queries_needed_effect"] == 0.01
    assert observed < needed
    said = (
        f"~{needed:,} to detect a difference of 0.01 (the min effect), "
        f"~{observed:,} for the observed delta {metric['delta']:+.4f}"
    )

    assert _gate(files, "--markdown", str(files / "gate.md")) == 4
    table = capsys.readouterr().out
    assert f"queries needed to decide ndcg@10: {said}" in " ".join(table.split())

    markdown = (files / "gate.md").read_text(encoding="utf-8")
    verdict = next(line for line in markdown.splitlines() if line.startswith("**Gate:"))
    assert f"queries needed to decide: ndcg@10 {said}." in verdict


def test_markdown_of_a_comparison_without_min_effect_says_so() -> None:
    result = drop_of_04_on_three_queries(min_effect=0.0)
    metric = result.metric("ndcg@10")
    assert metric.decision is Decision.INCONCLUSIVE
    assert (
        f"ndcg@10 ~{metric.queries_needed:,} to detect the observed delta -0.4000 (min effect 0)"
        in to_markdown(result)
    )
