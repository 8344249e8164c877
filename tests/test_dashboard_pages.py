"""Every dashboard page, opened with Streamlit's AppTest on the seeded store, on an empty
one, on one without the later areas' tables, and on one a writer holds."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from test_dashboard_seed import (
    DEGRADED_NDCG,
    GOLDSET,
    MIXED_CUTOFFS,
    MIXED_SERIES,
    N_QUERIES,
    SERIES_A,
    SERIES_B,
    SERIES_C,
    SeededStore,
    document_text,
    goldset,
    mixed_measures,
    perfect,
    query_ids,
    seed_mixed_store,
    seed_store,
    shared_scale_store,
    shared_seeded_store,
    store_run,
)

from evalkit.records.drift import DriftCheck
from evalkit.store import Store
from evalkit.store.drift import save_drift_check
from evalkit.store.goldsets import save_goldset
from evalkit.store.runs import list_runs

APP = Path(__file__).resolve().parents[1] / "evalkit" / "dashboard" / "app.py"
PAGES = {
    "overview": "Overview",
    "quality": "Quality over time",
    "compare": "Compare runs",
    "query": "Query drill-down",
    "goldsets": "Goldsets",
    "drift": "Drift",
    "traffic": "Traffic",
    "slices": "Slices",
    "answers": "Answers",
    "index_health": "Index health",
    "alerts": "Alerts",
    "drills": "Drills",
}
TIMEOUT = 120


@pytest.fixture
def seeded(tmp_path_factory: pytest.TempPathFactory) -> SeededStore:
    """The seeded store (with its Chroma collection), shared by the dashboard tests."""
    return shared_seeded_store(tmp_path_factory)


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> SeededStore:
    """A store with goldsets and runs only (no table of the later areas)."""
    return seed_store(tmp_path_factory.mktemp("core") / "evalkit.duckdb", areas=False)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A store whose series changed k and measures, with partial runs and NULL values."""
    path = tmp_path_factory.mktemp("mixed") / "evalkit.duckdb"
    return path, seed_mixed_store(path)


@pytest.fixture
def use_store(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Point the dashboard at a store (as `evalkit dashboard` does, by EVALKIT_STORE_PATH)."""
    monkeypatch.delenv("EVALKIT_CONFIG", raising=False)

    def point(path: Path) -> None:
        monkeypatch.setenv("EVALKIT_STORE_PATH", str(path))

    return point


def open_page(page: str, **params: str) -> AppTest:
    """Run the app on ``page`` with URL query parameters; fail on any exception."""
    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    for name, value in params.items():
        app.query_params[name] = value
    app.switch_page(f"views/{page}.py").run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    return app


def metrics(app: AppTest) -> dict[str, tuple[str, str]]:
    """Metric label -> (value, delta) as displayed."""
    return {m.label: (m.value, m.delta) for m in app.metric}


def frame_with(app: AppTest, column: str):  # type: ignore[no-untyped-def]
    """The first dataframe on the page that has ``column``."""
    for element in app.dataframe:
        if column in element.value.columns:
            return element.value
    raise AssertionError(f"no dataframe with column {column!r}")


@pytest.mark.slow
def test_overview_shows_each_series_status_and_change_since_baseline(
    seeded: SeededStore, use_store
) -> None:
    use_store(seeded.path)
    app = open_page("overview")
    shown = metrics(app)
    assert shown["regression"][0] == "1"
    assert shown["failed"][0] == "1"  # series B drifts, and its newest run failed
    assert shown["drift"][0] == "0"
    assert shown["pass"][0] == "1"
    assert shown[f"mini x {SERIES_A}"] == (f"{DEGRADED_NDCG:.4f}", f"{DEGRADED_NDCG - 1:+.4f}")
    assert f"mini x {SERIES_C}" not in shown  # a passing series is a row, not a card
    ranked = frame_with(app, "compare")
    assert ranked["series"].iloc[0] == f"mini x {SERIES_A}"  # the largest drop first
    deltas = ranked["delta"].dropna().tolist()
    assert deltas == sorted(deltas)
    row_c = ranked.set_index("series").loc[f"mini x {SERIES_C}"]
    assert (f"{row_c['value']:.4f}", f"{row_c['delta']:+.4f}") == ("1.0000", "+0.0000")
    row_a = ranked.set_index("series").loc[f"mini x {SERIES_A}"]
    assert row_a["compare"] == (
        f"./compare?goldset=mini&measure=ndcg%4010&baseline={seeded.runs['A1']}"
        f"&candidate={seeded.runs['A3']}"
    )
    assert row_a["history"][-1] == pytest.approx(DEGRADED_NDCG)
    assert row_a["history"][0] == pytest.approx(1.0)
    series = frame_with(app, "decision").set_index("retriever")
    assert series.loc[SERIES_A, "status"] == "regression"
    assert series.loc[SERIES_A, "decision"] == "regression"
    assert series.loc[SERIES_B, "status"] == "failed"
    assert series.loc[SERIES_B, "why"].startswith(
        f"failed: newest run {seeded.runs['B3']} failed: "
    )
    assert "; drift: " in series.loc[SERIES_B, "why"]
    assert series.loc[SERIES_C, "status"] == "pass"
    assert series.loc[SERIES_A, "baseline_run"] == seeded.runs["A1"]
    assert series.loc[SERIES_A, "latest_run"] == seeded.runs["A3"]
    figures = frame_with(app, "recall@10 latest").set_index("retriever")
    assert figures.loc[SERIES_A, "recall@10 latest"] == pytest.approx(0.5)
    assert figures.loc[SERIES_A, "recall@10 delta"] == pytest.approx(-0.5)


@pytest.mark.slow
def test_quality_over_time_draws_bands_baselines_and_events(seeded: SeededStore, use_store) -> None:
    use_store(seeded.path)
    app = open_page("quality", goldset="mini", measure="recall@10")
    assert len(app.get("plotly_chart")) == 1
    events = frame_with(app, "kind")
    assert set(events["kind"]) == {"index", "model", "goldset version", "alert"}
    model_change = events[events["kind"] == "model"].iloc[0]
    assert "fp-1 -> fp-2" in model_change["description"]
    runs = frame_with(app, "ci_low").set_index("run_id")
    latest = runs.loc[seeded.runs["A3"]]
    assert (latest["value"], latest["ci_low"], latest["ci_high"]) == pytest.approx((0.5,) * 3)
    assert latest["n"] == N_QUERIES + 1
    assert metrics(app)[SERIES_A] == ("0.5000", "-0.5000")


def test_compare_runs_shows_the_numbers_of_evalkit_compare(
    seeded: SeededStore, use_store, capsys: pytest.CaptureFixture[str]
) -> None:
    from evalkit.cli import invoke

    use_store(seeded.path)
    baseline, candidate = seeded.runs["A1"], seeded.runs["A3"]
    app = open_page("compare", goldset="mini", baseline=baseline, candidate=candidate)
    table = frame_with(app, "p_permutation").set_index("measure")
    capsys.readouterr()
    assert invoke(["compare", baseline, candidate, "-m", "ndcg@10", "--format", "json"]) == 0
    cli = json.loads(capsys.readouterr().out)["metrics"]["ndcg@10"]
    shown = table.loc["ndcg@10"]
    for field in ("baseline_mean", "candidate_mean", "delta", "ci_low", "ci_high"):
        assert shown[field] == pytest.approx(cli[field], abs=1e-12)
    for field in ("p_permutation", "p_wilcoxon", "p_adjusted"):
        assert shown[field] == pytest.approx(cli[field], abs=1e-12)
    assert shown["decision"] == cli["decision"] == "regression"
    per_query = frame_with(app, "lost")
    assert len(per_query) == N_QUERIES
    assert list(per_query["query_id"]) == sorted(per_query["query_id"])
    first = per_query.iloc[0]
    assert first["ndcg@10 delta"] == pytest.approx(DEGRADED_NDCG - 1)
    # Each query id links to that query in the candidate run, beside the baseline.
    link = f"./query?goldset=mini&run={candidate}&baseline={baseline}&query="
    assert first["query_id"].startswith(link)
    query_id = first["query_id"].removeprefix(link)
    assert first["lost"] == f"{query_id}-b"
    assert first["gained"] == ""
    assert any("only in the candidate" in w.value for w in app.warning)


@pytest.mark.slow
def test_compare_with_a_partial_run_shows_a_command_that_gives_its_figures(
    mixed: tuple[Path, dict[str, str]], use_store, capsys: pytest.CaptureFixture[str]
) -> None:
    # The page counts the partial run's failed queries as 0; the command it showed lacked
    # --failed-as-zero, and pasted it refused the run (exit 3).
    from evalkit.cli import invoke

    path, runs = mixed
    use_store(path)
    baseline, candidate = runs["k10"], runs["partial"]
    app = open_page("compare", baseline=baseline, candidate=candidate)
    said = next(c.value for c in app.caption if c.value.startswith("Same figures as"))
    assert said == (
        f"Same figures as `evalkit compare {baseline} {candidate} -m map --failed-as-zero`"
    )
    command = said.removeprefix("Same figures as `").removesuffix("`").split()
    capsys.readouterr()
    assert invoke([*command[1:], "--format", "json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert cli["failed_in_candidate"] == ["q13", "q14"]
    shown = frame_with(app, "p_permutation").set_index("measure").loc["map"]
    for field in ("baseline_mean", "candidate_mean", "delta", "ci_low", "ci_high"):
        assert shown[field] == pytest.approx(cli["metrics"]["map"][field], abs=1e-12)
    # Complete runs need no flag: the command stays as short as the user would type it.
    app = open_page("compare", baseline=baseline, candidate=runs["k20"])
    said = next(c.value for c in app.caption if c.value.startswith("Same figures as"))
    assert "--failed-as-zero" not in said


def test_query_drill_down_explains_the_score_with_document_text(
    seeded: SeededStore, use_store
) -> None:
    use_store(seeded.path)
    app = open_page("query", goldset="mini", run=seeded.runs["A3"], query="q01")
    why = frame_with(app, "why").set_index("measure")
    assert why.loc["recall@10", "value"] == pytest.approx(0.5)
    assert why.loc["recall@10", "why"] == "1 of 2 relevant documents in the top 10 (at ranks 5)"
    assert why.loc["mrr@10", "why"] == "first relevant document at rank 5: 1/5"
    assert why.loc["ndcg@10", "value"] == pytest.approx(DEGRADED_NDCG)
    results = frame_with(app, "evaluated_rank").set_index("doc_id")
    assert results.loc["q01-a", "rank"] == 5
    assert results.loc["q01-a", "relevance"] == 2
    assert results.loc["q01-a", "text"] == document_text("q01-a")
    assert any("Relevant but not retrieved: q01-b" in c.value for c in app.caption)
    assert metrics(app)["first relevant rank"][0] == "5"
    across = frame_with(app, "retriever")
    assert seeded.runs["A3"] in set(across["run_id"])
    landed = frame_with(app, seeded.runs["A3"]).set_index("doc_id")
    assert list(landed.index) == ["q01-a", "q01-b"]
    assert landed.loc["q01-a", seeded.runs["A3"]] == 5
    assert pd.isna(landed.loc["q01-b", seeded.runs["A3"]])
    assert landed.loc["q01-b", seeded.runs["A1"]] == 2


def test_query_search_text_is_passed_as_a_parameter(seeded: SeededStore, use_store) -> None:
    use_store(seeded.path)
    with Store.open(seeded.path, read_only=True) as store:
        before = len(list_runs(store, limit=100))
    app = open_page("query", goldset="mini", run=seeded.runs["A1"])
    app.text_input[0].input("x'); DROP TABLE runs; --").run()
    assert not app.exception
    assert any("No query of this goldset version matches" in i.value for i in app.info)
    app.text_input[0].input("topic 07").run()
    assert app.selectbox(key="choose-query").value == "q07"
    with Store.open(seeded.path, read_only=True) as store:
        assert len(list_runs(store, limit=100)) == before


def test_goldsets_page_counts_versions_and_judgment_coverage(
    seeded: SeededStore, use_store
) -> None:
    use_store(seeded.path)
    app = open_page("goldsets")
    versions = frame_with(app, "n_relevant").set_index("version")
    old, new = seeded.goldset_versions
    assert versions.loc[old, ["n_queries", "n_judgments", "n_relevant"]].tolist() == [14, 42, 28]
    assert versions.loc[new, ["n_queries", "n_judgments", "n_relevant"]].tolist() == [15, 45, 30]
    coverage = frame_with(app, "judged_at_depth").set_index(["goldset_version", "retriever"])
    assert coverage.loc[(new, SERIES_A), "judged_at_depth"] == pytest.approx(0.1)
    assert coverage.loc[(old, SERIES_B), "judged_at_depth"] == pytest.approx(0.3)
    # The partial run: 13 answered queries, 3 of 10 retrieved documents judged in each.
    assert coverage.loc[(old, SERIES_C), "n_top"] == 130
    assert coverage.loc[(old, SERIES_C), "judged_at_depth"] == pytest.approx(0.3)


def test_a_run_shallower_than_the_depth_has_no_share_of_its_top(tmp_path: Path) -> None:
    """A k=5 run's share over its top 5 stood beside the others' share of the top 10."""
    from test_dashboard_seed import goldset as seeded_goldset
    from test_dashboard_seed import perfect, store_run

    from evalkit.store.dashboard.goldsets import goldset_coverage_frame
    from evalkit.store.goldsets import save_goldset

    gold = seeded_goldset(4)
    with Store.open(tmp_path / "evalkit.duckdb") as store:
        save_goldset(store, gold)
        for kind, k in (("deep", 10), ("shallow", 5)):
            store_run(
                store,
                gold,
                {q.id: perfect(q.id)[:k] for q in gold.queries},
                retriever_kind=kind,
                config={"kind": kind},
                collection=None,
                model_fingerprint="m",
                index_fingerprint=None,
                k=k,
                measures=("precision@5",),
            )
        coverage = goldset_coverage_frame(store, depth=10).set_index("retriever")
    assert coverage.loc["deep", "judged_at_depth"] == pytest.approx(0.3)
    assert pd.isna(coverage.loc["shallow", "judged_at_depth"])
    assert coverage.loc["shallow", "judged_at_k"] == pytest.approx(3 / 5)


def test_drift_page_shows_checks_projection_and_report(seeded: SeededStore, use_store) -> None:
    use_store(seeded.path)
    app = open_page("drift", check=seeded.drift_check)
    shown = metrics(app)
    assert shown["drifting now"][0] == "2"  # queries / mini and precision of series B
    assert shown["checks"][0] == "4"
    assert any("queries / mini (ks" in c.value for c in app.caption)
    checks = frame_with(app, "check_id")
    assert len(checks) == 4
    assert set(checks["open"]) == {f"./drift?check={c}" for c in checks["check_id"]}
    assert len(app.get("download_button")) == 1
    assert any("4, 1, 7" in c.value for c in app.caption)
    assert len(app.get("plotly_chart")) == 4
    dimensions = frame_with(app, "ks_statistic")
    assert len(dimensions) == 8
    # The current window is shifted by 1.5 sd in every dimension.
    assert (dimensions["p_adjusted"] < 0.05).all()
    assert (dimensions["mean_shift_sd"] > 0.5).all()


def test_traffic_page_breaks_windows_down_by_tenant(seeded: SeededStore, use_store) -> None:
    use_store(seeded.path)
    app = open_page("traffic", window="2026-11-20")
    shown = metrics(app)
    assert shown["volume (2026-11-20)"][0] == "20"
    assert shown["replay latency p95 (ms)"][0] == "41.0"
    assert shown["low-confidence share"][0] == "0.250"
    assert shown["churn"][0] == "0.500"
    tenants = frame_with(app, "records").set_index("tenant")
    assert tenants.loc["acme", "low_confidence_share"] == pytest.approx(0.5)
    assert tenants.loc["globex", "low_confidence_share"] == pytest.approx(0.0)
    assert tenants.loc["acme", "records"] == 10
    assert tenants.loc["acme", "churn"] == pytest.approx(0.5)
    # Logged latencies of acme on day 2: 110, 130, ..., 290 ms; globex: 120, ..., 300 ms.
    assert tenants.loc["acme", "latency_p50"] == pytest.approx(200.0)
    assert tenants.loc["globex", "latency_p50"] == pytest.approx(210.0)


def test_answers_page_shows_means_unmeasured_and_least_faithful(
    seeded: SeededStore, use_store
) -> None:
    use_store(seeded.path)
    app = open_page("answers")
    value, delta = metrics(app)["faithfulness (offline-embedding)"]
    assert value == f"{(0.25 + 0.5 + 1.0) / 3:.3f}"
    assert delta == "1 unmeasured of 4"
    assert app.expander[0].label == "q01: 0.250 (offline-embedding)"
    assert any("what is topic 01 about" in m.value for m in app.markdown)
    unmeasured = frame_with(app, "reason")
    assert unmeasured.iloc[0][["reason", "n"]].tolist() == ["no_claims", 1]


def test_index_health_page_shows_the_latest_findings(seeded: SeededStore, use_store) -> None:
    use_store(seeded.path)
    app = open_page("index_health")
    shown = metrics(app)
    assert shown["documents"][0] == "51"
    assert shown["warning"][0] == "1"
    findings = frame_with(app, "kind")
    assert list(findings["kind"]) == ["near_duplicates"]


def test_alerts_page_shows_history_and_delivery_attempts(seeded: SeededStore, use_store) -> None:
    use_store(seeded.path)
    app = open_page("alerts")
    assert metrics(app)["firing now"][0] == "1"
    assert metrics(app)["undelivered"][0] == "1"
    attempts = frame_with(app, "attempt")
    assert sorted(attempts["ok"].tolist()) == [False, True]
    assert 503 in set(attempts["status_code"].dropna().astype(int))


def test_the_alerts_pages_firing_filter_leaves_out_conditions_resolved_since(
    tmp_path: Path, use_store
) -> None:
    """?status=firing lists what `evalkit alerts list --status firing` lists: a firing
    notification whose condition a later resolved notification closed is left out."""
    from evalkit.store.alerts import StoredAlert, StoredAlertState, list_alerts, save_alert

    path = tmp_path / "evalkit.duckdb"
    raised = [
        ("20261121T020000-aaaa0001", "jobs:traffic", "firing", 0),
        ("20261121T020100-aaaa0002", "jobs:broken", "firing", 1),
        ("20261121T020200-aaaa0003", "jobs:traffic", "resolved", 2),
    ]
    gold = goldset(4)
    with Store.open(path) as store:
        save_goldset(store, gold)
        store_run(
            store,
            gold,
            {q.id: perfect(q.id) for q in gold.queries},
            retriever_kind="bm25",
            config={"kind": "bm25"},
            collection=None,
            model_fingerprint="m",
            index_fingerprint=None,
        )
        for alert_id, key, status, minute in raised:
            moment = datetime(2026, 11, 21, 2, minute)
            alert = StoredAlert(
                alert_id=alert_id,
                rule="jobs",
                kind="job_failure",
                dedup_key=key,
                subject=key.removeprefix("jobs:"),
                status=status,
                severity="critical",
                title=f"{key} {status}",
                summary="",
                evidence={},
                links={},
                fired_at=moment,
                created_at=moment,
                n_sinks=1,
            )
            state = StoredAlertState(
                dedup_key=key,
                rule="jobs",
                subject=alert.subject,
                active=status == "firing",
                severity="critical",
                since=moment,
                last_evaluated_at=moment,
                notified_status=status,
                last_alert_id=alert_id,
            )
            save_alert(store, alert, state=state, sinks=["log"])
        listed = [alert.alert_id for alert in list_alerts(store, status="firing")]
    use_store(path)
    app = open_page("alerts", status="firing")
    assert frame_with(app, "alert_id")["alert_id"].tolist() == listed
    assert listed == ["20261121T020100-aaaa0002"]
    assert metrics(app)["notifications"][0] == "1"
    assert metrics(app)["undelivered"][0] == "1"
    everything = open_page("alerts", status="all")
    assert len(frame_with(everything, "alert_id")) == 3


def test_every_page_greets_an_empty_store_with_the_first_run_page(
    tmp_path: Path, use_store
) -> None:
    path = tmp_path / "evalkit.duckdb"
    Store.open(path).close()
    use_store(path)
    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    for page, title in PAGES.items():
        app.switch_page(f"views/{page}.py").run()
        assert not app.exception, (page, [e.value for e in app.exception])
        assert app.title[0].value == title
        assert any("No evaluation is stored" in i.value for i in app.info), page
        assert any("make demo" in c.value for c in app.code), page


def test_a_missing_store_is_explained_and_never_created(tmp_path: Path, use_store) -> None:
    path = tmp_path / "nothing" / "evalkit.duckdb"
    use_store(path)
    app = open_page("overview")
    assert any("No evaluation is stored" in i.value for i in app.info)
    assert not path.exists()
    assert not path.parent.exists()


@pytest.mark.slow
def test_pages_of_areas_without_tables_say_what_produces_them(core: SeededStore, use_store) -> None:
    # Whether this evalkit's migrations created the areas' tables or not, they hold nothing.
    use_store(core.path)
    expected = {
        "drift": "evalkit drift embeddings",
        "traffic": "evalkit traffic ingest",
        "answers": "evalkit answers score",
        "index_health": "evalkit audit",
        "alerts": "evalkit alerts evaluate",
    }
    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    for page, command in expected.items():
        app.switch_page(f"views/{page}.py").run()
        assert not app.exception, page
        assert app.title[0].value == PAGES[page]
        assert any(command in i.value for i in app.info), page
    app.switch_page("views/overview.py").run()
    assert metrics(app)["regression"][0] == "1"
    assert any("evalkit serve" in c.value for c in app.caption)


def test_a_store_with_an_older_schema_says_how_to_migrate_it(tmp_path: Path, use_store) -> None:
    import duckdb

    path = tmp_path / "evalkit.duckdb"
    Store.open(path).close()
    with duckdb.connect(str(path)) as connection:
        connection.execute("DELETE FROM schema_migrations WHERE number > 1")
    use_store(path)
    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    app.switch_page("views/overview.py").run()
    assert not app.exception
    assert any("run `evalkit store migrate` once" in e.value for e in app.error)


WRITER = textwrap.dedent(
    """
    import sys, time
    import duckdb

    connection = duckdb.connect(sys.argv[1])
    connection.execute(
        "INSERT INTO goldsets (name, version, source, imported_at, n_queries, n_judgments)"
        " VALUES ('other', 'v1', 'test', now(), 0, 0)"
    )
    print("holding", flush=True)
    time.sleep(120)
    """
)


def _hold_store(path: Path) -> subprocess.Popen[str]:
    """A second process that opens the store for writing, writes, and keeps it open."""
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "holding"
    return writer


def _release(writer: subprocess.Popen[str]) -> None:
    writer.terminate()
    writer.wait(timeout=30)


@pytest.mark.slow
def test_a_store_held_by_a_writer_is_retried_explained_and_shown_as_last_loaded(
    core: SeededStore, use_store, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_store(core.path)
    monkeypatch.setenv("EVALKIT_DASHBOARD_WAIT", "0.5")
    before = metrics(open_page("overview"))
    writer = _hold_store(core.path)
    try:
        began = time.monotonic()
        never_loaded = open_page("goldsets")
        waited = time.monotonic() - began
        warnings = [w.value for w in never_loaded.warning]
        assert any("is being written by" in w and f"pid {writer.pid}" in w for w in warnings)
        assert waited >= 0.5
        assert not never_loaded.dataframe
        loaded_before = open_page("overview")
        assert any("Showing figures loaded at" in w.value for w in loaded_before.warning)
        assert metrics(loaded_before) == before
    finally:
        _release(writer)
    app = open_page("goldsets")
    assert not app.warning
    assert "other" in set(frame_with(app, "n_relevant")["name"])


@pytest.mark.slow
def test_every_page_renders_a_store_with_mixed_measure_sets_partial_runs_and_nulls(
    mixed: tuple[Path, dict[str, str]], use_store
) -> None:
    path, runs = mixed
    use_store(path)
    for page, title in PAGES.items():
        app = open_page(page)
        assert app.title[0].value == title
    measures = {name for k in MIXED_CUTOFFS for name in mixed_measures(k)}
    for measure in sorted(measures):
        app = open_page("quality", goldset="demo", measure=measure)
        assert len(app.get("plotly_chart")) == 1, measure
        listed = frame_with(app, "ci_low")
        # The failed run is listed with its error, and has no figure.
        assert listed.set_index("run_id").loc[runs["failed"], "status"] == "failed", measure
        drawn = listed[listed["status"] != "failed"]
        assert drawn["value"].notna().all(), measure
        stored = {runs[f"k{k}"] for k in MIXED_CUTOFFS if measure in mixed_measures(k)}
        assert stored <= set(drawn["run_id"]), measure
        assert runs["empty"] not in set(drawn["run_id"]), measure
    app = open_page("compare", baseline=runs["k10"], candidate=runs["partial"])
    assert set(frame_with(app, "p_permutation")["measure"]) == {"map"}
    app = open_page("query", goldset="demo", run=runs["empty"], query="q01")
    assert frame_with(app, "why").set_index("measure")["value"].isna().all()
    open_page("query", goldset="demo", run=runs["http"], query="q01")
    open_page("goldsets")


def test_quality_over_time_of_a_measure_only_some_runs_stored(
    mixed: tuple[Path, dict[str, str]], use_store
) -> None:
    # The runs at k = 10, 20 and 50 did not store recall@100: this page crashed on them
    # with "Type is not JSON serializable: NAType".
    path, runs = mixed
    use_store(path)
    app = open_page("quality", goldset="demo", measure="recall@100")
    assert len(app.get("plotly_chart")) == 1
    listed = frame_with(app, "ci_low")
    drawn = listed[listed["status"] != "failed"].set_index("run_id")
    assert set(drawn.index) == {runs["k100"], runs["partial"]}
    assert drawn.loc[runs["partial"], "n"] == 12
    assert drawn.loc[runs["k100"], "value"] == pytest.approx(1.0)
    assert metrics(app)[MIXED_SERIES] == ("1.0000", "+0.0000")
    skipped = next(c.value for c in app.caption if "stored no recall@100" in c.value)
    for name in ("k10", "k20", "k50", "empty"):
        assert runs[name] in skipped
    assert app.query_params["measure"] == "recall@100"


def _refused(app: AppTest, param: str, value: str) -> None:
    """The page says the linked ``value`` does not exist and shows nothing in its place."""
    assert not app.exception, [e.value for e in app.exception]
    said = [e.value for e in app.error]
    assert any("does not exist" in text and f"?{param}={value}" in text for text in said), said
    assert not app.dataframe
    assert not app.metric
    assert not app.get("plotly_chart")
    assert app.query_params[param] == value


def test_a_compare_link_to_runs_that_do_not_exist_is_refused(
    mixed: tuple[Path, dict[str, str]], use_store
) -> None:
    path, runs = mixed
    use_store(path)
    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    app.query_params["baseline"] = "nope"
    app.query_params["candidate"] = "nope"
    app.switch_page("views/compare.py").run()
    _refused(app, "baseline", "nope")
    assert app.query_params["candidate"] == "nope"
    assert not app.selectbox
    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    app.query_params["baseline"] = runs["k10"]
    app.query_params["candidate"] = "gone-run"
    app.switch_page("views/compare.py").run()
    _refused(app, "candidate", "gone-run")
    assert app.query_params["baseline"] == runs["k10"]
    # A failed run has no metrics to compare: it is not offered in another's place either.
    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    app.query_params["baseline"] = runs["k10"]
    app.query_params["candidate"] = runs["failed"]
    app.switch_page("views/compare.py").run()
    _refused(app, "candidate", runs["failed"])


def test_a_query_link_to_a_run_or_query_that_does_not_exist_is_refused(
    mixed: tuple[Path, dict[str, str]], use_store
) -> None:
    path, runs = mixed
    use_store(path)
    for params, param in (
        ({"goldset": "demo", "run": "nope", "query": "q01"}, "run"),
        ({"goldset": "demo", "run": runs["k100"], "query": "nope"}, "query"),
        ({"goldset": "nope", "run": runs["k100"], "query": "q01"}, "goldset"),
    ):
        app = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
        for name, value in params.items():
            app.query_params[name] = value
        app.switch_page("views/query.py").run()
        _refused(app, param, params[param])
        for name, value in params.items():
            assert app.query_params[name] == value, (params, name)


def test_pickers_still_move_on_after_a_good_link(
    mixed: tuple[Path, dict[str, str]], use_store
) -> None:
    # Only the link is checked: choosing another run leaves the old ?query= behind harmlessly.
    path, runs = mixed
    use_store(path)
    app = open_page("query", goldset="demo", run=runs["k100"], query="q02")
    app.selectbox(key="choose-run").select(runs["k10"]).run()
    assert not app.exception
    assert not app.error
    assert app.query_params["run"] == runs["k10"]
    assert app.selectbox(key="choose-query").value == "q02"


@pytest.fixture
def scale(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The benchmark's store shape: 20 series, 1,000 alerts, 60 windows, 2,000 checks."""
    return shared_scale_store(tmp_path_factory)


@pytest.mark.slow
def test_overview_ranks_twenty_series_and_filters_them(scale: Path, use_store) -> None:
    from evalkit.dashboard import loaders

    use_store(scale)
    app = open_page("overview")
    ranked = frame_with(app, "compare")
    assert len(ranked) == 20
    deltas = ranked["delta"].tolist()
    assert deltas == sorted(deltas)
    with Store.open(scale, read_only=True) as store:
        expected = loaders.overview.overview(store, measure="ndcg@10").series
    worst = expected.sort_values("delta").iloc[0]
    assert ranked.iloc[0]["series"] == f"{worst['goldset_name']} x {worst['retriever']}"
    assert all(len(history) == 10 for history in ranked["history"])
    app.multiselect(key="filter-goldset_name").select("gold1").run()
    kept = frame_with(app, "compare")
    assert set(kept["goldset_name"]) == {"gold1"}
    assert len(kept) == 5
    assert any("5 series (of 20)" in c.value for c in app.caption)


@pytest.mark.slow
def test_alerts_and_traffic_say_how_many_the_store_holds(scale: Path, use_store) -> None:
    use_store(scale)
    app = open_page("alerts")
    assert metrics(app)["notifications"][0] == "1,000"
    assert any(c.value == "alerts 1-50 of 1,000" for c in app.caption)
    history = frame_with(app, "summary")
    assert len(history) == 50
    app.number_input(key="alerts-page").set_value(20).run()
    assert any(c.value == "alerts 951-1,000 of 1,000" for c in app.caption)
    last = frame_with(app, "summary")
    assert last.iloc[-1]["alert_id"] == "alert-00000"
    assert last.iloc[0]["open"] == f"./alerts?status=all&alert={last.iloc[0]['alert_id']}"
    app = open_page("traffic")
    assert any("newest 30 of 60 replayed windows" in c.value for c in app.caption)
    app.number_input[0].set_value(60).run()
    assert any("newest 60 of 60 replayed windows." in c.value for c in app.caption)


def test_quality_draws_events_per_day_and_links_every_run(scale: Path, use_store) -> None:
    use_store(scale)
    app = open_page("quality", goldset="gold0", measure="ndcg@10")
    chart = json.loads(app.get("plotly_chart")[0].proto.spec)
    assert not chart["layout"].get("shapes")  # no shape per event
    events = [t for t in chart["data"] if t.get("name", "").startswith("event: ")]
    assert events
    assert all(t["yaxis"] == "y2" for t in events)
    lines = [t for t in chart["data"] if t.get("mode") == "lines+markers"]
    assert len(lines) == 5
    assert len({t["line"]["color"] for t in lines}) == 5
    runs = frame_with(app, "ci_low")
    row = runs.iloc[0]
    assert row["compare"].startswith("./compare?goldset=gold0&measure=ndcg%4010&baseline=")
    assert row["compare"].endswith(f"&candidate={row['run_id']}")


def test_query_drill_down_charts_its_history_instead_of_a_column_per_run(
    scale: Path, use_store
) -> None:
    from evalkit.dashboard import loaders

    use_store(scale)
    with Store.open(scale, read_only=True) as store:
        run = loaders.shared.runs(store, goldset="gold0").iloc[0]["run_id"]
    app = open_page("query", goldset="gold0", run=run, query="q000")
    charts = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    assert len(charts) == 2
    runs_drawn = {point[0] for t in charts[0]["data"] for point in t["customdata"]}
    assert len(runs_drawn) == 50  # every run of the goldset, 5 series x 10
    landed = frame_with(app, "relevance")
    assert len(landed.columns) <= 2 + 10


def test_drift_facets_methods_and_picks_few_of_many_series(scale: Path, use_store) -> None:
    use_store(scale)
    app = open_page("drift")
    assert metrics(app)["series"][0] == "20"
    assert metrics(app)["checks"][0] == "2,000"
    picked = app.multiselect[1].value
    assert len(picked) == 8
    statistic = json.loads(app.get("plotly_chart")[0].proto.spec)
    drawn = {t["name"] for t in statistic["data"] if not t["name"].startswith("drift ")}
    assert drawn == set(picked)
    titles = [a["text"] for a in statistic["layout"]["annotations"]]
    assert titles == sorted(titles)
    assert all(t.endswith("ks statistic") for t in titles)


def test_quality_cards_of_series_with_long_names_keep_what_tells_them_apart(
    tmp_path: Path, use_store
) -> None:
    # Four bm25 indexes under one long directory: every card read
    # "bm25:/tmp/explore-dash/many/bm…", cut where the names differ.
    path = tmp_path / "evalkit.duckdb"
    gold = goldset(N_QUERIES)
    folder = "/srv/evaluation/indexes/nightly-builds/bm25"
    with Store.open(path) as store:
        save_goldset(store, gold)
        for name in ("a", "b"):
            store_run(
                store,
                gold,
                {q: perfect(q) for q in query_ids()},
                retriever_kind="bm25",
                config={"kind": "bm25", "path": f"{folder}/{name}"},
                collection=None,
                model_fingerprint="fp-1",
                index_fingerprint=None,
            )
    use_store(path)
    app = open_page("quality", goldset=GOLDSET)
    cards = {m.label: m for m in app.metric}
    assert list(cards) == ["bm25:…htly-builds/bm25/a", "bm25:…htly-builds/bm25/b"]
    assert cards["bm25:…htly-builds/bm25/a"].proto.help.startswith(
        f"bm25:{folder}/a: latest ndcg@10, run "
    )


def _store_drift_checks(path: Path, *checks: tuple[str, str, float | None]) -> None:
    """A store holding the goldset and one "ok" check per (stream, method, statistic)."""
    with Store.open(path) as store:
        save_goldset(store, goldset(N_QUERIES))
        for stream, method, statistic in checks:
            save_drift_check(
                store,
                DriftCheck(
                    stream=stream,
                    subject=GOLDSET,
                    finding="ok",
                    method=method,
                    is_drift=False,
                    statistic=statistic,
                    p_value=0.4,
                    threshold=0.05,
                ),
            )


def test_drift_draws_no_empty_panel_for_checks_without_a_statistic(
    tmp_path: Path, use_store
) -> None:
    # Precision checks store no statistic (their paired test decides): their panel of
    # "statistic per check" had axes and no point.
    path = tmp_path / "evalkit.duckdb"
    _store_drift_checks(path, ("queries", "mmd", 0.2), ("precision", "page_hinkley+paired", None))
    use_store(path)
    app = open_page("drift")
    statistic, p_values = (json.loads(chart.proto.spec) for chart in app.get("plotly_chart")[:2])
    titles = [note["text"] for note in statistic["layout"]["annotations"]]
    assert titles == ["queries: mmd statistic"]
    assert [note["text"] for note in p_values["layout"]["annotations"]] == [
        "precision: p-value",
        "queries: p-value",
    ]
    assert (
        "precision checks (page_hinkley+paired) store no statistic, so they have no panel "
        "here; their paired test's p-value, where there is one, is charted beside."
    ) in [c.value for c in app.caption]


def test_drift_of_precision_checks_only_says_once_why_there_is_no_statistic_panel(
    tmp_path: Path, use_store
) -> None:
    # "No check in these series stores a statistic." stood above the caption that says which
    # checks store none and why.
    path = tmp_path / "evalkit.duckdb"
    _store_drift_checks(path, ("precision", "page_hinkley+paired", None))
    use_store(path)
    captions = [c.value for c in open_page("drift").caption]
    assert "No check in these series stores a statistic." not in captions
    assert (
        "precision checks (page_hinkley+paired) store no statistic, so they have no panel "
        "here; their paired test's p-value, where there is one, is charted beside."
    ) in captions


@pytest.mark.slow
def test_compare_writes_its_measures_to_the_url_so_a_link_keeps_them(
    seeded: SeededStore, use_store
) -> None:
    # The Measures picked were never written to the URL: a shared link dropped them.
    use_store(seeded.path)
    baseline, candidate = seeded.runs["A1"], seeded.runs["A3"]
    app = open_page("compare", goldset="mini", baseline=baseline, candidate=candidate)
    assert app.query_params["measure"] == "ndcg@10"
    app.multiselect[0].set_value(["ndcg@10", "recall@10"]).run()
    assert app.query_params["measure"] == "ndcg@10,recall@10"
    shared = open_page(
        "compare", goldset="mini", baseline=baseline, candidate=candidate, measure="recall@10,map"
    )
    assert shared.multiselect[0].value == ["recall@10", "map"]
    assert list(frame_with(shared, "p_permutation")["measure"]) == ["recall@10", "map"]
    assert "-m recall@10 -m map" in next(
        c.value for c in shared.caption if c.value.startswith("Same figures as")
    )


@pytest.mark.slow
def test_leaderboard_writes_its_runs_and_measures_to_the_url_so_a_reload_keeps_them(
    seeded: SeededStore, use_store, tmp_path: Path
) -> None:
    # The Runs and Measures picked were never written to the URL: a reload, a shared link
    # or the sidebar's way back opened the goldset's newest runs on ndcg@10 again.
    path = tmp_path / "evalkit.duckdb"
    shutil.copy(seeded.path, path)
    picked = [seeded.runs["A1"], seeded.runs["B1"], seeded.runs["C1"]]
    with Store.open(path) as store:
        store.execute(
            "INSERT INTO run_tags (run_id, tag) VALUES (?, 'sweep:k'), (?, 'sweep:k')",
            [seeded.runs["A1"], seeded.runs["A2"]],
        )
    use_store(path)
    app = open_page("leaderboard", goldset="mini")
    app.multiselect[0].set_value(picked).run()
    app.multiselect[1].set_value(["recall@10", "ndcg@10"]).run()
    assert app.query_params["runs"] == ",".join(picked)
    assert app.query_params["measure"] == "recall@10,ndcg@10"
    reloaded = open_page("leaderboard", **dict(app.query_params))
    assert reloaded.multiselect[0].value == picked
    assert reloaded.multiselect[1].value == ["recall@10", "ndcg@10"]
    assert not reloaded.warning, [w.value for w in reloaded.warning]
    ranked = frame_with(reloaded, "letters")
    assert sorted(ranked["run"]) == sorted(picked)
    assert f"evalkit compare {' '.join(picked)} -m recall@10 -m ndcg@10" in next(
        c.value for c in reloaded.caption if c.value.startswith("Same figures as")
    )
    # Picking a tag ranks the tag's runs, not the runs picked before it.
    app.selectbox(key="choose-tag").set_value("sweep:k").run()
    assert app.multiselect[0].value == [seeded.runs["A1"], seeded.runs["A2"]]
    assert app.query_params["runs"] == f"{seeded.runs['A1']},{seeded.runs['A2']}"


@pytest.mark.slow
def test_overview_filters_follow_the_url_so_a_reload_keeps_them(scale: Path, use_store) -> None:
    # The goldset, retriever and status filters and the staleness were never written to
    # the URL: a reload or a shared link showed every series again.
    use_store(scale)
    app = open_page("overview")
    retrievers = sorted(frame_with(app, "compare")["retriever"].unique())[:2]
    app.multiselect(key="filter-goldset_name").select("gold1").select("gold2").run()
    app.multiselect(key="filter-retriever").set_value(retrievers).run()
    app.number_input[0].set_value(30).run()
    kept = frame_with(app, "compare")
    assert app.query_params["goldset"] == ["gold1", "gold2"]
    assert app.query_params["retriever"] == retrievers
    assert app.query_params["stale"] == "30"
    reloaded = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    reloaded.query_params.update(app.query_params)
    reloaded.run()
    assert not reloaded.exception, [e.value for e in reloaded.exception]
    assert reloaded.multiselect(key="filter-goldset_name").value == ["gold1", "gold2"]
    assert reloaded.multiselect(key="filter-retriever").value == retrievers
    assert reloaded.number_input[0].value == 30
    again = frame_with(reloaded, "compare")
    assert list(again["series"]) == list(kept["series"])
    assert set(again["goldset_name"]) == {"gold1", "gold2"}
    # Left for another page and reopened by the sidebar (whose links carry no parameters),
    # it comes back with every value of each filter.
    app.switch_page("views/goldsets.py").run()
    app.query_params.clear()
    app.switch_page("views/overview.py").run()
    assert app.query_params["goldset"] == ["gold1", "gold2"]
    assert app.query_params["retriever"] == retrievers
    assert list(frame_with(app, "compare")["series"]) == list(kept["series"])
    # Emptying a filter shows every series again, and says so in the URL.
    reloaded.multiselect(key="filter-goldset_name").set_value([]).run()
    assert "goldset" not in reloaded.query_params or not reloaded.query_params["goldset"]
    assert set(frame_with(reloaded, "compare")["goldset_name"]) == {f"gold{i}" for i in range(4)}
    # A link to a status no series has now shows none, not every series.
    linked = open_page("overview", status="failed")
    assert linked.multiselect(key="filter-status").value == ["failed"]
    assert any("0 series (of 20)" in c.value for c in linked.caption)


def test_leaderboard_names_the_collection_each_run_searched(seeded: SeededStore, use_store) -> None:
    # Runs of one kind against two collections were both described "chroma-embedded k=10"
    # (here and by `evalkit compare`), so which row was which collection was not said.
    use_store(seeded.path)
    picked = [seeded.runs["A1"], seeded.runs["B1"], seeded.runs["C1"]]
    app = open_page("leaderboard", goldset="mini", runs=",".join(picked))
    what = frame_with(app, "letters").set_index("run")["what"]
    assert what[seeded.runs["A1"]] == f"{SERIES_A} k=10"
    assert what[seeded.runs["C1"]] == f"{SERIES_C} k=10"
    assert what[seeded.runs["B1"]] == f"{SERIES_B} k=10"


@pytest.mark.slow
def test_compare_writes_its_test_settings_to_the_url_so_a_link_keeps_them(
    seeded: SeededStore, use_store
) -> None:
    # --alpha, --min-effect and the measure the queries are sorted by were kept in the
    # widgets only: a reload or a shared link showed other figures than the caption's.
    use_store(seeded.path)
    baseline, candidate = seeded.runs["A1"], seeded.runs["A3"]
    linked = {"goldset": "mini", "baseline": baseline, "candidate": candidate}
    app = open_page("compare", **linked, measure="ndcg@10,recall@10")
    assert not {"alpha", "min_effect", "sort"} & set(app.query_params)
    app.number_input[0].set_value(0.01).run()
    app.number_input[1].set_value(0.05).run()
    app.selectbox[-1].set_value("recall@10").run()
    assert (app.query_params["alpha"], app.query_params["min_effect"]) == ("0.01", "0.05")
    assert app.query_params["sort"] == "recall@10"
    shared = open_page("compare", **dict(app.query_params))
    assert [n.value for n in shared.number_input[:2]] == [0.01, 0.05]
    assert shared.selectbox[-1].value == "recall@10"
    command = next(c.value for c in shared.caption if c.value.startswith("Same figures as"))
    assert "--alpha 0.01 --min-effect 0.05" in command
    assert any(h.value == "Queries by loss on recall@10" for h in shared.subheader)


def test_a_reviewer_name_with_an_escape_sequence_signs_nothing(
    tmp_path: Path, use_store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The review page took any name: an ESC sequence, a newline, U+202E. The field says at
    once what is wrong with the name, and saving says "Not saved"; nothing is stored."""
    from evalkit.config import DASHBOARD_READ_ONLY_ENV
    from evalkit.records import Query
    from evalkit.records.review import ReviewDocument, ReviewItem, ReviewOrigin
    from evalkit.store.review import item_reviews, save_items

    path = tmp_path / "evalkit.duckdb"
    item = ReviewItem(
        item_id="item-1",
        goldset="support",
        origin=ReviewOrigin.traffic,
        query=Query("q1", "refund window"),
        documents=(ReviewDocument("d1", "Refunds within 30 days."),),
    )
    with Store.open(path) as store:
        save_items(store, [item])
    use_store(path)
    monkeypatch.setenv(DASHBOARD_READ_ONLY_ENV, "0")
    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    app.switch_page("views/review.py").run()
    for name in ("ann\x1b[2J", "ann\nbob", "ann\u202egpj.exe"):
        app.text_input(key="review-reviewer").set_value(name).run()
        assert any("cannot sign a review" in e.value for e in app.error), name
        app.button(key="grade-2").click().run()
        app.button(key="review-accept").click().run()
        assert not app.exception
        assert any("Not saved" in e.value and "reviewer" in e.value for e in app.error), name
    with Store.open(path, read_only=True) as store:
        assert item_reviews(store, goldset="support") == {}
    app.text_input(key="review-reviewer").set_value("ann").run()
    assert not app.error


def test_the_drills_page_shows_the_newest_drill_and_a_rule_that_could_not_fire(
    seeded: SeededStore, use_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalkit.drill.incidents import Injected
    from evalkit.scheduler.drill import DrillReport, IncidentResult

    use_store(seeded.path)
    home = tmp_path / "home"
    monkeypatch.setenv("EVALKIT_HOME", str(home))
    app = open_page("drills")
    assert any("No drill yet: `evalkit drill`" in i.value for i in app.info)

    caught = IncidentResult(
        "deletion",
        0.05,
        Injected("deletion", 0.05, ("d1", "d2"), "removed 2 documents, 1 of them judged relevant"),
        first_alert=("ndcg-drop", 2),
        alerts=("ndcg-drop",),
        effect={"ndcg@10": (0.75, 0.70)},
        top_cause="index_changed",
        cause_rank=2,
        resolved_after=4,
    )
    gap = IncidentResult("model_mismatch", 1.0, gap="not covered: no [[alerts.rules]] entry")
    report = DrillReport(
        "d1", {"kb": "evalkit-drill-d1-kb"}, str(home / "drills" / "d1" / "evalkit.duckdb"),
        3, ("ndcg-drop",), (caught, gap), {"gate": "no run 'x'"},
    )  # fmt: skip
    (home / "drills" / "d1").mkdir(parents=True)
    (home / "drills" / "d1" / "report.json").write_text(json.dumps(report.to_dict()))

    app = open_page("drills")
    assert metrics(app)["incidents caught"][0] == "1 of 2"
    assert metrics(app)["causes named first"][0] == "0 of 2"
    assert metrics(app)["false alarms"][0] == "1"
    assert [w.value for w in app.warning] == [
        "Rule gate could not be evaluated, so it could not fire: no run 'x'"
    ]
    incidents = frame_with(app, "own cause's rank")
    assert list(incidents["incident"]) == ["deletion", "model_mismatch"]
    assert list(incidents["injected"]) == [
        "removed 2 documents, 1 of them judged relevant",
        "not covered: no [[alerts.rules]] entry",
    ]
    effect = frame_with(app, "change")
    assert effect.iloc[0]["change"] == pytest.approx(-0.05)
