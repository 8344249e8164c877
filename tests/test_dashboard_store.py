"""The dashboard's read-only queries and loaders, against hand-computed values and oracles."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from store_holder import held_open
from test_dashboard_seed import (
    GOLDSET,
    SERIES_A,
    SERIES_B,
    SERIES_C,
    SeededStore,
    shared_seeded_store,
)

from evalkit.dashboard import access, loaders
from evalkit.dashboard.loaders.alerts import alert_deliveries
from evalkit.dashboard.loaders.answers import answer_items
from evalkit.dashboard.loaders.compare import compare
from evalkit.dashboard.loaders.index_health import index_health
from evalkit.dashboard.loaders.overview import paired_tests, series_status
from evalkit.dashboard.loaders.quality import _t_interval
from evalkit.dashboard.loaders.query import explain_measure
from evalkit.errors import StoreError
from evalkit.records.drift import DriftCheck
from evalkit.store import Store
from evalkit.store.access import StoreBusyError
from evalkit.store.dashboard.overview import (
    drifting_series_frame,
    paired_differences_frame,
    per_query_values,
    series_frame,
)
from evalkit.store.dashboard.quality import series_points_frame
from evalkit.store.dashboard.query import relevant_ranks_frame, search_queries
from evalkit.store.dashboard.shared import runs_frame
from evalkit.store.drift import save_drift_check
from evalkit.store.retention import prune_run_details


@pytest.fixture
def seeded(tmp_path_factory: pytest.TempPathFactory) -> SeededStore:
    """The seeded store, shared by the dashboard tests."""
    return shared_seeded_store(tmp_path_factory)


@pytest.fixture
def store(seeded: SeededStore):  # type: ignore[no-untyped-def]
    """The seeded store, open read-only as the dashboard opens it."""
    with Store.open(seeded.path, read_only=True) as opened:
        yield opened


def test_series_group_runs_by_goldset_and_retriever_with_baseline_and_newest(
    store: Store, seeded: SeededStore
) -> None:
    series = series_frame(store).set_index("retriever")
    assert set(series.index) == {SERIES_A, SERIES_B, SERIES_C}
    assert series.loc[SERIES_A, "n_runs"] == 3
    assert series.loc[SERIES_A, "baseline_run"] == seeded.runs["A1"]
    assert series.loc[SERIES_A, "latest_run"] == seeded.runs["A3"]
    assert series.loc[SERIES_B, "latest_run"] == seeded.runs["B2"]
    assert series.loc[SERIES_B, "newest_run"] == seeded.runs["B3"]
    assert series.loc[SERIES_B, "newest_status"] == "failed"
    assert series.loc[SERIES_C, "latest_status"] == "partial"


def test_paired_differences_equal_a_pandas_join(store: Store, seeded: SeededStore) -> None:
    pairs = [(seeded.runs["A1"], seeded.runs["A3"]), (seeded.runs["C1"], seeded.runs["C2"])]
    frame = paired_differences_frame(store, pairs=pairs, measure="mrr@10")
    values = per_query_values(store, [r for pair in pairs for r in pair], "mrr@10")
    for baseline, candidate in pairs:
        before = values[values["run_id"] == baseline].set_index("query_id")["value"]
        after = values[values["run_id"] == candidate].set_index("query_id")["value"]
        difference = (after - before).dropna()
        row = frame[(frame["baseline_run"] == baseline) & (frame["candidate_run"] == candidate)]
        assert row["n"].item() == len(difference)
        assert row["mean_diff"].item() == pytest.approx(difference.mean())
        assert row["sd_diff"].item() == pytest.approx(difference.std(ddof=1))
    a_row = frame[frame["baseline_run"] == seeded.runs["A1"]]
    assert a_row["mean_diff"].item() == pytest.approx(0.2 - 1.0)


def test_paired_tests_match_scipy_paired_t_test() -> None:
    rng = np.random.default_rng(11)
    rows = []
    samples = {}
    for index, (n, shift) in enumerate(((40, -0.1), (25, 0.0), (60, 0.02))):
        differences = rng.normal(shift, 0.2, n)
        samples[index] = differences
        rows.append(
            {
                "baseline_run": f"b{index}",
                "candidate_run": f"c{index}",
                "n": n,
                "mean_diff": differences.mean(),
                "sd_diff": differences.std(ddof=1),
            }
        )
    tested = paired_tests(pd.DataFrame(rows))
    for index, differences in samples.items():
        oracle = stats.ttest_1samp(differences, 0.0)
        interval = oracle.confidence_interval(0.95)
        row = tested.iloc[index]
        assert row["p_adjusted"] == pytest.approx(oracle.pvalue)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((interval.low, interval.high))
    assert tested.iloc[0]["decision"] == "regression"


def test_paired_tests_without_spread_follow_compare_runs() -> None:
    frame = pd.DataFrame(
        {
            "baseline_run": ["b0", "b1", "b2"],
            "candidate_run": ["c0", "c1", "c2"],
            "n": [10, 10, 1],
            "mean_diff": [0.0, -0.3, -0.3],
            "sd_diff": [0.0, 0.0, 0.0],
        }
    )
    tested = paired_tests(frame)
    assert tested["decision"].tolist() == ["pass", "regression", "inconclusive"]
    assert (tested.iloc[1]["ci_low"], tested.iloc[1]["ci_high"]) == (-0.3, -0.3)
    assert pd.isna(tested.iloc[2]["ci_low"])


def test_series_points_mark_what_changed_since_the_previous_run(
    store: Store, seeded: SeededStore
) -> None:
    points = series_points_frame(store, goldset=GOLDSET, measure="ndcg@10")
    a = points[points["retriever"] == SERIES_A].set_index("run_id")
    assert a["index_changed"].tolist() == [False, True, False]
    assert a["model_changed"].tolist() == [False, False, True]
    assert a["goldset_changed"].tolist() == [False, False, True]
    assert a.loc[seeded.runs["A3"], "n"] == 15
    assert set(points["run_id"]) == set(seeded.runs.values()) - {seeded.runs["B3"]}


def test_t_interval_matches_scipy() -> None:
    rng = np.random.default_rng(5)
    samples = [rng.normal(0.5, 0.1, n) for n in (2, 5, 30)]
    low, high = _t_interval(
        pd.Series([s.mean() for s in samples]),
        pd.Series([s.std(ddof=1) for s in samples]),
        pd.Series([len(s) for s in samples]),
    )
    for index, sample in enumerate(samples):
        expected = stats.t.interval(
            0.95, len(sample) - 1, loc=sample.mean(), scale=stats.sem(sample)
        )
        assert (low[index], high[index]) == pytest.approx(expected)


def test_drifting_series_match_subjects_of_the_series(store: Store) -> None:
    series = [(GOLDSET, SERIES_A), (GOLDSET, SERIES_B), (GOLDSET, SERIES_C)]
    drifting = drifting_series_frame(store, series=series, measure="ndcg@10")
    found = dict(zip(drifting["retriever"], drifting["drift"], strict=True))
    # "queries" on subject "mini" (collection of series A) drifts; series B's precision check
    # drifts; series C's newest model check is fine.
    assert found[SERIES_A].startswith("queries drift (ks, ")
    assert found[SERIES_B].startswith("precision drift (page_hinkley+paired, ")
    assert SERIES_C not in found


def test_user_text_is_a_parameter_never_sql(store: Store, seeded: SeededStore) -> None:
    old, _ = seeded.goldset_versions
    for text in ("'; DROP TABLE runs; --", "%", "_", "q01' OR '1'='1"):
        assert search_queries(store, goldset_version=old, text=text).empty
    found = search_queries(store, goldset_version=old, text="TOPIC 03")
    assert found["query_id"].tolist() == ["q03"]
    assert found["n_relevant"].tolist() == [2]
    assert runs_frame(store, goldset="mini' OR '1'='1").empty


def test_series_status_orders_failed_regression_drift_stale_pass() -> None:
    now = datetime(2026, 11, 21)
    base = {
        "latest_run": "r2",
        "measured_run": "r2",
        "baseline_run": "r1",
        "latest_started": now - timedelta(days=1),
        "newest_run": "r2",
        "decision": "pass",
        "drift": "",
        "p_adjusted": 0.5,
    }
    week = timedelta(days=7)
    assert series_status(base, measure="m", now=now, stale_after=week)[0] == "pass"
    later = now + timedelta(days=30)
    status, why = series_status(base, measure="m", now=later, stale_after=week)
    assert status == "stale"
    assert why[0].startswith("stale: latest finished run started 2026-11-20")
    drifted = {**base, "drift": "queries drift (ks)"}
    assert series_status(drifted, measure="m", now=later, stale_after=week)[0] == "drift"
    regressed = {**drifted, "decision": "regression", "p_adjusted": 0.001}
    status, why = series_status(regressed, measure="m", now=later, stale_after=week)
    assert status == "regression"
    assert len(why) == 3
    running = {**base, "newest_run": "r3", "newest_status": "running"}
    status, why = series_status(running, measure="m", now=now, stale_after=week)
    assert (status, why) == ("stale", ["stale: newest run r3 is running"])
    # A failing nightly job is red whatever came before, with its error.
    failed = {**regressed, "newest_run": "r3", "newest_status": "failed", "newest_error": "boom"}
    status, why = series_status(failed, measure="m", now=later, stale_after=week)
    assert status == "failed"
    assert why[0] == "failed: newest run r3 failed: boom"
    assert why[1].startswith("regression: m dropped against baseline r1")
    empty = {"latest_run": None}
    assert series_status(empty, measure="m", now=now, stale_after=week) == (
        "no data",
        ["no finished run yet"],
    )
    never = {"latest_run": None, "n_runs": 2, "newest_run": "r2", "newest_status": "failed"}
    assert series_status(
        {**never, "newest_error": "HTTP 400"}, measure="m", now=now, stale_after=week
    ) == (
        "failed",
        ["failed: newest run r2 failed: HTTP 400", "no data: none of its 2 runs finished"],
    )


@pytest.mark.parametrize(
    ("measure", "expected"),
    [
        ("precision@10", "2 relevant documents in the top 10 (at ranks 2, 7), / 10"),
        ("recall@5", "1 of 3 relevant documents in the top 5 (at ranks 2)"),
        ("hit_rate@1", "a relevant document in the top 1: no"),
        ("mrr", "first relevant document at rank 2: 1/2"),
        ("r_precision", "1 relevant documents in the top R = 3, / 3"),
        (
            "map",
            "precision at each relevant rank in the top 100 (0.500 + 0.286), summed and / 3"
            " relevant",
        ),
    ],
)
def test_explanations_name_the_ranks_behind_each_measure(measure: str, expected: str) -> None:
    text = explain_measure(
        measure, relevant_ranks=[2, 7], grades_by_rank={2: 1, 7: 2}, n_relevant=3, depth=100
    )
    assert text == expected


def test_store_version_follows_writes(tmp_path: Path) -> None:
    path = tmp_path / "evalkit.duckdb"
    assert access.store_version(path) is None
    with Store.open(path) as store:
        first = access.store_version(path)
        save_drift_check(
            store, DriftCheck(stream="queries", finding="ok", method="ks", is_drift=False)
        )
        assert access.store_version(path) != first


def test_open_read_only_retries_then_names_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "evalkit.duckdb"
    Store.open(path).close()
    with (
        held_open(path) as pid,
        pytest.raises(StoreBusyError, match=f"being written by pid {pid}"),
    ):
        access.open_read_only(path, wait=0.3)
    access.open_read_only(path, wait=0.3).close()


@pytest.mark.parametrize("damage", ["not a DuckDB file", "overwritten blocks"])
def test_open_read_only_does_not_retry_other_errors(tmp_path: Path, damage: str) -> None:
    """A checksum error names a "block" at some location: it was taken for a writer's lock,
    retried for the whole wait, then shown as a store being written."""
    damaged = tmp_path / "evalkit.duckdb"
    if damage == "not a DuckDB file":
        damaged.write_text("this is not a DuckDB file", encoding="utf-8")
    else:
        Store.open(damaged).close()
        size = damaged.stat().st_size
        with damaged.open("r+b") as file:
            file.seek(3 * 4096)
            file.write(bytes(range(256)) * ((size - 3 * 4096) // 256))
    started = time.monotonic()
    with pytest.raises(StoreError, match=f"the store {damaged} is damaged") as raised:
        access.open_read_only(damaged, wait=5.0)
    assert not isinstance(raised.value, StoreBusyError)
    assert time.monotonic() - started < 5.0


def test_every_loader_runs_on_the_seeded_store(store: Store, seeded: SeededStore) -> None:
    compared = compare(
        store, baseline=seeded.runs["C1"], candidate=seeded.runs["C2"], measures=["recall@10"]
    )
    # C2 failed on q14: it counts as 0 in the comparison, never as "only in the baseline".
    assert compared.decision == "inconclusive"
    assert compared.only_in_baseline == ()
    assert compared.failed_in_candidate == ("q14",)
    q14 = compared.per_query.set_index("query_id").loc["q14"]
    assert q14["recall@10 candidate"] == 0.0
    overview = loaders.overview.overview(store, measure="recall@10")
    assert set(overview.series["decision"].dropna()) == {"regression", "pass"}
    traffic = loaders.traffic.traffic(store)
    assert traffic.records == 40
    assert list(traffic.windows["window_label"]) == ["2026-11-19", "2026-11-20"]
    items = answer_items(store, scoring_id=seeded.scoring, metric="faithfulness")
    assert items.items["item_id"].tolist() == ["q01", "q02", "q03"]
    health = index_health(store)
    assert health.collection == "mini"
    assert len(health.audits) == 2
    assert alert_deliveries(store, alert_id=seeded.alert)["attempt"].tolist() == [1, 1]


def test_a_document_returned_twice_is_ranked_where_it_was_first_found(
    seeded: SeededStore, tmp_path: Path
) -> None:
    copy = tmp_path / "evalkit.duckdb"
    copy.write_bytes(seeded.path.read_bytes())
    run_id = seeded.runs["A3"]
    with Store.open(copy) as store:
        query_id, doc_id, rank = store.fetch(
            "SELECT rr.query_id, rr.doc_id, rr.rank FROM run_results rr"
            " JOIN runs r USING (run_id) JOIN judgments j ON j.goldset_version = r.goldset_version"
            " AND j.query_id = rr.query_id AND j.doc_id = rr.doc_id AND j.relevance >= 1"
            " WHERE rr.run_id = ? ORDER BY rr.query_id, rr.rank LIMIT 1",
            [run_id],
        )[0]
        store.execute(
            "INSERT INTO run_results VALUES (?, ?, ?, ?, 0.0)", [run_id, query_id, rank + 5, doc_id]
        )
        ranks = relevant_ranks_frame(store, goldset=GOLDSET, query_id=query_id)
    mine = ranks[(ranks["run_id"] == run_id) & (ranks["doc_id"] == doc_id)]
    assert mine["rank"].tolist() == [rank]
    assert not ranks.duplicated(["run_id", "doc_id"]).any()


def test_a_pruned_run_is_not_drawn_as_retrieving_nothing(
    seeded: SeededStore, tmp_path: Path
) -> None:
    """Retention deletes a run's per-query rows; the rank history must not show each
    relevant document of that run as "not retrieved" (on a year-old store most of the
    chart's points were such runs)."""
    copy = tmp_path / "evalkit.duckdb"
    copy.write_bytes(seeded.path.read_bytes())
    pruned = seeded.runs["A1"]
    with Store.open(copy) as store:
        query_id = str(
            store.fetch(
                "SELECT rr.query_id FROM run_results rr JOIN runs r USING (run_id)"
                " JOIN judgments j ON j.goldset_version = r.goldset_version"
                " AND j.query_id = rr.query_id AND j.relevance >= 1"
                " WHERE rr.run_id = ? ORDER BY rr.query_id LIMIT 1",
                [pruned],
            )[0][0]
        )
        before = relevant_ranks_frame(store, goldset=GOLDSET, query_id=query_id)
        assert pruned in set(before["run_id"])
        prune_run_details(store, [pruned])
        ranks = relevant_ranks_frame(store, goldset=GOLDSET, query_id=query_id)
    assert pruned not in set(ranks["run_id"])
    assert set(ranks["run_id"]) == set(before["run_id"]) - {pruned}
