"""The Overview after a run at another k: a series whose latest run stored no value of the
chosen measure is "no data", counted as such, and still shows the drop before it.

After `evalkit run --k 5` the series showed `pass` with value None, and the no-data count
stayed 0: the regression of the run before (at k 10) was hidden. The store here is a real
DuckDB file written through evalkit's own store API, as `evalkit run` writes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from test_dashboard_browser import _cells, _finished, _missing, _serving, browser  # noqa: F401
from test_dashboard_pages import frame_with, metrics, open_page
from test_dashboard_seed import (
    DEGRADED_NDCG,
    HTTP_URL,
    MEASURES,
    degraded,
    goldset,
    perfect,
    query_ids,
    store_run,
)

from evalkit.clock import utc_now
from evalkit.dashboard.loaders.overview import overview, series_status
from evalkit.dashboard.ui import md
from evalkit.metrics.defaults import default_measures_for
from evalkit.store import RunSpec, Store
from evalkit.store.goldsets import save_goldset
from evalkit.store.runs import create_run, fail_run, get_run

N = 14
CHROMA = {
    "retriever_kind": "chroma-embedded",
    "config": {"kind": "chroma-embedded", "path": "chroma", "collection": "mini"},
    "collection": "mini",
}
HTTP = {
    "retriever_kind": "http",
    "config": {"kind": "http", "url": HTTP_URL},
    "collection": None,
}


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Series "mini x chroma": a perfect run and a regressed one at k 10, then a run at k 5
    (the default measures at 5: no ndcg@10). Series "mini x http": one run at k 5 only."""
    path = tmp_path_factory.mktemp("no-data") / "evalkit.duckdb"
    gold = goldset(N)
    ids = query_ids(N)
    at_five = default_measures_for(5).measures
    runs: dict[str, str] = {}
    with Store.open(path) as store:
        save_goldset(store, gold)
        common = {"model_fingerprint": "fp-1", "index_fingerprint": "idx-1"}
        runs["good"] = store_run(store, gold, {q: perfect(q) for q in ids}, **CHROMA, **common)
        runs["drop"] = store_run(store, gold, {q: degraded(q) for q in ids}, **CHROMA, **common)
        runs["k5"] = store_run(
            store, gold, {q: perfect(q)[:5] for q in ids}, k=5, measures=at_five, **CHROMA, **common
        )
        runs["http"] = store_run(
            store, gold, {q: perfect(q)[:5] for q in ids}, k=5, measures=at_five, **HTTP, **common
        )
    return path, runs


@pytest.fixture(scope="module")
def partial_path(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Series "mini x chroma": a complete run and a later one. Series "mini x http": one
    partial run (2 of 14 queries failed) and nothing else."""
    path = tmp_path_factory.mktemp("partial-only") / "evalkit.duckdb"
    gold = goldset(N)
    ids = query_ids(N)
    runs: dict[str, str] = {}
    with Store.open(path) as store:
        save_goldset(store, gold)
        common = {"model_fingerprint": "fp-1", "index_fingerprint": "idx-1"}
        runs["good"] = store_run(store, gold, {q: perfect(q) for q in ids}, **CHROMA, **common)
        runs["again"] = store_run(store, gold, {q: perfect(q) for q in ids}, **CHROMA, **common)
        runs["partial"] = store_run(
            store, gold, {q: perfect(q) for q in ids}, failed=ids[:2], **HTTP, **common
        )
    return path, runs


FAILURE = f"{N} of {N} queries failed; first: HTTP 400 Bad Request: bad query (after 1 attempt)"


def _failing_store(path: Path, *, healthy: bool) -> dict[str, str]:
    """Series "mini x http": two runs that failed (HTTP 400 to every query). With
    ``healthy``, series "mini x chroma" too: two complete runs, then a nightly that failed."""
    gold = goldset(N)
    ids = query_ids(N)
    runs: dict[str, str] = {}
    http = RunSpec(
        kind="goldset",
        retriever_kind="http",
        k=10,
        measures=MEASURES,
        evalkit_version="test",
        goldset_name=gold.name,
        goldset_version=gold.version,
        retriever_config=HTTP["config"],
        n_queries=N,
    )
    with Store.open(path) as store:
        save_goldset(store, gold)
        if healthy:
            common = {"model_fingerprint": "fp-1", "index_fingerprint": "idx-1"}
            for name in ("good", "again"):
                runs[name] = store_run(
                    store, gold, {q: perfect(q) for q in ids}, **CHROMA, **common
                )
            runs["nightly"] = create_run(store, get_run(store, runs["good"]).spec)
            fail_run(store, runs["nightly"], "RetrieverError: connection refused")
        for name in ("http1", "http2"):
            runs[name] = create_run(store, http)
            fail_run(store, runs[name], FAILURE)
    return runs


@pytest.fixture(scope="module")
def failing_path(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A store with a healthy series whose nightly failed and a series that never ran."""
    path = tmp_path_factory.mktemp("failing") / "evalkit.duckdb"
    return path, _failing_store(path, healthy=True)


@pytest.fixture(scope="module")
def all_failed_path(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A store whose every run failed."""
    path = tmp_path_factory.mktemp("all-failed") / "evalkit.duckdb"
    return path, _failing_store(path, healthy=False)


def _statuses(path: Path, measure: str) -> dict[str, tuple[str, list[str], dict[str, object]]]:
    with Store.open(path, read_only=True) as store:
        data = overview(store, measure=measure)
    shown = {}
    for row in data.series.to_dict("records"):
        status, why = series_status(
            row, measure=measure, now=utc_now(), stale_after=timedelta(days=7)
        )
        shown[str(row["retriever"]).split(":")[0]] = (status, why, row)
    return shown


def test_a_latest_run_without_the_measure_is_no_data_and_keeps_the_drop(
    store_path: tuple[Path, dict[str, str]],
) -> None:
    path, runs = store_path
    shown = _statuses(path, "ndcg@10")
    status, why, row = shown["chroma-embedded"]
    assert status == "no data"
    assert row["latest_run"] == runs["k5"]
    assert row["measured_run"] == runs["drop"]
    assert row["baseline_run"] == runs["good"]
    assert row["value"] == pytest.approx(DEGRADED_NDCG)
    assert row["delta"] == pytest.approx(DEGRADED_NDCG - 1)
    assert row["decision"] == "regression"
    assert why[0] == (
        f"no data: the latest finished run {runs['k5']} (k 5) stored no ndcg@10; the figures "
        f"are of run {runs['drop']} (k 10), the newest that stored it"
    )
    assert why[1].startswith(f"regression: ndcg@10 dropped against baseline {runs['good']}")

    status, why, row = shown["http"]
    assert status == "no data"
    assert why == [
        f"no data: the latest finished run {runs['http']} (k 5) stored no ndcg@10, nor did any "
        "earlier run"
    ]
    assert row["value"] is None or row["value"] != row["value"]  # None or NaN

    # On the measure the k 5 run did store, the series is measured by its latest run.
    status, _, row = _statuses(path, "ndcg@5")["chroma-embedded"]
    # Its only run on ndcg@5 is its baseline: nothing is compared yet.
    assert (status, row["measured_run"], row["baseline_run"]) == ("new", runs["k5"], runs["k5"])


def test_overview_counts_no_data_and_shows_the_hidden_drop(
    store_path: tuple[Path, dict[str, str]], use_store
) -> None:
    path, runs = store_path
    use_store(path)
    app = open_page("overview")
    shown = metrics(app)
    assert shown["no data"][0] == "2"
    assert shown["pass"][0] == "0"
    assert shown["regression"][0] == "0"
    card = next(label for label in shown if label.startswith("mini x chroma-embedded"))
    assert shown[card] == (f"{DEGRADED_NDCG:.4f}", f"{DEGRADED_NDCG - 1:+.4f}")
    assert ":gray-badge[:material/help: no data]" in [m.value for m in app.markdown]

    table = frame_with(app, "decision").set_index("latest_run")
    chroma = table.loc[runs["k5"]]
    assert chroma["status"] == "no data"
    assert chroma["measured_run"] == runs["drop"]
    assert chroma["value"] == pytest.approx(DEGRADED_NDCG)
    assert "stored no ndcg@10" in chroma["why"]
    assert "regression: ndcg@10 dropped" in chroma["why"]
    assert table.loc[runs["http"], "status"] == "no data"
    ranked = frame_with(app, "compare")
    assert ranked["compare"].iloc[0].endswith(f"&baseline={runs['good']}&candidate={runs['drop']}")


@pytest.fixture
def use_store(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Point the dashboard at a store, as `evalkit dashboard` does (EVALKIT_STORE_PATH)."""
    monkeypatch.delenv("EVALKIT_CONFIG", raising=False)
    return lambda path: monkeypatch.setenv("EVALKIT_STORE_PATH", str(path))


@pytest.fixture(scope="module")
def served(
    store_path: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`evalkit dashboard` serving the store on a free loopback port."""
    reason = _missing()
    if reason:
        pytest.fail(f"{reason}; `make browser` installs Chromium and chromedriver")
    with _serving(store_path[0], tmp_path_factory.mktemp("no-data-log") / "dashboard.log") as url:
        yield url


@pytest.mark.slow
def test_overview_shows_no_data_and_the_measured_run_in_chromium(
    served: str,
    store_path: tuple[Path, dict[str, str]],
    browser: object,  # noqa: F811 (the fixture of test_dashboard_browser)
) -> None:
    _, runs = store_path
    body = _finished(browser, "Overview", url=f"{served}/")
    assert f"{DEGRADED_NDCG:.4f}" in body  # the card of the series that dropped
    assert "no data" in body
    statuses = _cells(browser, "Status")
    assert statuses.count("no data") == 2, statuses
    assert runs["drop"] in _cells(browser, "Measured run")
    assert f"the latest finished run {runs['k5']} (k 5) stored no ndcg@10" in body  # its card


def test_a_series_whose_only_runs_are_partial_is_new_not_pass(
    partial_path: tuple[Path, dict[str, str]], use_store
) -> None:
    # Without a complete run there is no baseline: it read as a green "pass" because "no
    # paired test (no per-query values)", which was not why.
    path, runs = partial_path
    status, why, row = _statuses(path, "ndcg@10")["http"]
    assert row["baseline_run"] is None or row["baseline_run"] != row["baseline_run"]
    assert (status, why) == (
        "new",
        [
            "new: no complete run that stored ndcg@10 to compare with yet; the latest run "
            f"{runs['partial']} is partial: 2 of {N} queries failed"
        ],
    )
    assert _statuses(path, "ndcg@10")["chroma-embedded"][0] == "pass"
    use_store(path)
    app = open_page("overview")
    assert metrics(app)["new"][0] == "1"
    assert metrics(app)["pass"][0] == "1"
    table = frame_with(app, "decision").set_index("latest_run")
    assert table.loc[runs["partial"], "status"] == "new"
    assert table.loc[runs["partial"], "why"] == why[0]


@pytest.mark.slow
def test_failed_runs_and_their_errors_are_shown_beside_healthy_series(
    failing_path: tuple[Path, dict[str, str]], use_store
) -> None:
    # Failed runs never appeared: the failed series read "no data: no finished run yet" and
    # Quality's Runs table left the failed runs out.
    path, runs = failing_path
    use_store(path)
    app = open_page("overview")
    assert metrics(app)["failed"][0] == "2"
    assert ":red-badge[:material/error: failed]" in [m.value for m in app.markdown]
    table = frame_with(app, "decision").set_index("retriever")
    assert table.loc[f"http:{HTTP_URL}", "status"] == "failed"
    assert table.loc[f"http:{HTTP_URL}", "why"] == (
        f"failed: newest run {runs['http2']} failed: {FAILURE}; "
        "no data: none of its 2 runs finished"
    )
    chroma = table.loc["chroma-embedded:mini"]
    assert chroma["status"] == "failed"
    assert chroma["why"] == (
        f"failed: newest run {runs['nightly']} failed: RetrieverError: connection refused"
    )
    assert chroma["value"] == pytest.approx(1.0)  # the figures are still of finished runs

    app = open_page("quality", goldset="mini")
    listed = frame_with(app, "error").set_index("run_id")
    assert list(listed.index) == [runs[n] for n in ("http2", "http1", "nightly", "again", "good")]
    assert listed.loc[runs["http2"], "status"] == "failed"
    assert listed.loc[runs["http2"], "error"] == FAILURE
    assert listed.loc[runs["nightly"], "compare"] is None
    assert pd.isna(listed.loc[runs["nightly"], "value"])
    assert listed.loc[runs["again"], "value"] == pytest.approx(1.0)
    assert (
        "3 runs of goldset mini failed and have no ndcg@10 (listed with the error, not drawn)."
        in [c.value for c in app.caption]
    )


@pytest.mark.slow
def test_a_store_whose_every_run_failed_shows_the_failures(
    all_failed_path: tuple[Path, dict[str, str]], use_store
) -> None:
    # It said "Goldsets are stored but no run has finished yet: evalkit run ... evaluates
    # one", and "No finished run of goldset mini yet", as if nothing had run.
    path, runs = all_failed_path
    use_store(path)
    app = open_page("overview")
    assert [w.value for w in app.warning] == [
        "No run has finished yet: every goldset run of this store failed or is still running. "
        "Each series' newest error is below (`evalkit runs show RUN` prints it in full)."
    ]
    assert metrics(app)["failed"][0] == "1"
    row = frame_with(app, "decision").iloc[0]
    assert (row["status"], row["why"]) == (
        "failed",
        f"failed: newest run {runs['http2']} failed: {FAILURE}; "
        "no data: none of its 2 runs finished",
    )
    for page in ("quality", "query"):
        app = open_page(page, goldset="mini")
        said = [w.value for w in app.warning]
        assert said == [
            f"No run of goldset mini has finished: 2 runs failed. The newest, {runs['http2']} "
            f"({md(f'http:{HTTP_URL}')}): {md(FAILURE)}. `evalkit runs show RUN` prints a "
            "run's error in full."
        ], page
        listed = frame_with(app, "error")
        assert list(listed["run_id"]) == [runs["http2"], runs["http1"]]
        assert set(listed["error"]) == {FAILURE}
