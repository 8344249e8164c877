"""One nDCG kernel, two measures: ``ndcg@k`` (trec_eval's, the ideal from all of a query's
judgments) and ``ndcg_judged@k`` (the ideal from the judged top k), a traffic window's.
A window's nDCG was computed by a second implementation and stored as ``ndcg@k``, so a
goldset's nDCG@10 and a window's read as one series."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from test_dashboard_seed import WINDOWS, SeededStore, shared_seeded_store

from evalkit.alerts import alerts_config
from evalkit.config import parse_settings
from evalkit.dashboard import loaders
from evalkit.drift.traffic_precision import watch_traffic_precision
from evalkit.errors import ConfigError, MeasureError
from evalkit.judging.window import NO_DOCUMENT, labelled_figures
from evalkit.metrics import Measure, RankedGrades, kernels, parse_measure
from evalkit.store import Store
from evalkit.store.dashboard.traffic import traffic_judged_frame
from evalkit.store.judging import traffic_figure_series

# Two window queries, top 4 graded by an assessor; query 1 retrieved 3 documents.
GRADES = np.array([[3, 0, 2, NO_DOCUMENT], [0, 1, 0, 0]], dtype=np.int64)
# By hand: query 1, DCG 3/1 + 2/log2(4) = 4, ideal (3, 2) 3 + 2/log2(3); query 2, DCG
# 1/log2(3), ideal (1) 1.
HAND = [4 / (3 + 2 / math.log2(3)), 1 / math.log2(3)]


def test_a_window_s_ndcg_is_the_kernel_s_with_the_judged_top_k_as_judgments() -> None:
    figures = {f.measure: f for f in labelled_figures(GRADES, threshold=2)}
    assert set(figures) == {"precision@4", "ndcg_judged@4", "hit_rate@4"}
    top_k = [[3, 0, 2], [0, 1, 0, 0]]
    kernel = kernels.ndcg(RankedGrades.from_lists(top_k, top_k), k=4)
    assert kernel == pytest.approx(HAND)
    assert figures["ndcg_judged@4"].value == pytest.approx(float(np.mean(HAND)))
    assert figures["ndcg_judged@4"].value == pytest.approx(float(kernel.mean()))
    assert figures["precision@4"].value == pytest.approx((2 / 4 + 0) / 2)
    assert figures["hit_rate@4"].value == pytest.approx(0.5)


def test_ndcg_judged_takes_its_ideal_from_the_top_k_where_ndcg_takes_all_judgments() -> None:
    """Query 2 has a grade-3 document judged but not retrieved: trec_eval's nDCG counts it
    in the ideal, the judged-top-k nDCG does not."""
    ranked = RankedGrades.from_lists([[3, 0, 2], [0, 1, 0, 0]], [[3, 0, 2], [0, 1, 0, 0, 3]])
    judged = parse_measure("ndcg_judged@4").compute(ranked)
    exact = parse_measure("ndcg@4").compute(ranked)
    assert judged == pytest.approx(HAND)
    assert exact == pytest.approx([HAND[0], (1 / math.log2(3)) / (3 + 1 / math.log2(3))])


@pytest.mark.parametrize("text", ["ndcg_judged@10", "NDCG_JUDGED@10", "ndcg_judged_10"])
def test_ndcg_judged_parses_and_prints_back(text: str) -> None:
    measure = parse_measure(text)
    assert measure == Measure("ndcg_judged", 10)
    assert str(measure) == "ndcg_judged@10"
    assert parse_measure(str(measure)) == measure
    assert measure != parse_measure("ndcg@10")
    assert measure.trec_eval_name is None
    assert measure.definition.label != parse_measure("ndcg@10").definition.label


def test_ndcg_judged_needs_a_cutoff() -> None:
    with pytest.raises(MeasureError, match=r"needs a cutoff, e\.g\. 'ndcg_judged@10'"):
        parse_measure("ndcg_judged")


def test_a_goldset_ndcg_and_a_window_s_are_two_series_where_the_store_and_dashboard_read_them(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    seeded: SeededStore = shared_seeded_store(tmp_path_factory)
    with Store.open(seeded.path, read_only=True) as store:
        windows_as_goldset = traffic_figure_series(store, "ndcg@10")
        windows = traffic_figure_series(store, "ndcg_judged@10")
        frame = traffic_judged_frame(store, window_labels=list(WINDOWS), measure_prefix="ndcg@")
        overview = loaders.overview.overview(store, measure="ndcg@10")
    assert windows_as_goldset == []
    assert frame.empty
    assert {point.run_id for point in windows} == set(seeded.traffic_runs)
    assert {point.figure.measure for point in windows} == {"ndcg_judged@10"}
    goldset_ndcg = overview.figures[overview.figures["measure"] == "ndcg@10"]
    assert not goldset_ndcg.empty
    assert "ndcg_judged@10" not in set(overview.figures["measure"])
    assert not set(overview.series["latest_run"].dropna()) & set(seeded.traffic_runs)


def test_a_traffic_rule_watching_ndcg_is_told_the_window_s_measure() -> None:
    """A rule naming ndcg@10 for traffic windows would find no window and stay silent."""
    rule = {"name": "windows", "kind": "traffic_precision_drop", "measure": "ndcg@10"}
    config = {"alerts": {"rules": [rule]}}
    with pytest.raises(ConfigError, match=r"traffic windows store no ndcg@10.*ndcg_judged@10"):
        alerts_config(parse_settings(config, Path("evalkit.toml")))
    config["alerts"]["rules"] = [rule | {"measure": "NDCG_judged@10"}]
    parsed = alerts_config(parse_settings(config, Path("evalkit.toml"))).rules[0]
    assert getattr(parsed.params, "measure", None) == "ndcg_judged@10"


def test_checking_a_traffic_series_of_ndcg_names_the_window_s_measure(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    seeded: SeededStore = shared_seeded_store(tmp_path_factory)
    with Store.open(seeded.path, read_only=True) as store:
        with pytest.raises(MeasureError, match="Watch ndcg_judged@10"):
            watch_traffic_precision(store, measure="ndcg@10", save=False)
        checks = watch_traffic_precision(
            store, measure="ndcg_judged@10", min_judged_share=0.0, save=False
        )
    assert {check.measure for check in checks} == {"ndcg_judged@10"}
